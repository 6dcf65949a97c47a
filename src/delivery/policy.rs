//! Every upload limit and wait in one place (`docs/wire-protocol.md`, "Delivery and retries").

use std::time::Duration;

/// How failed requests are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// First backoff wait; each retry doubles it up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// An item still failing after this long is dropped as `gave_up`.
    pub give_up_after: Duration,
    /// Pause after a 429 without a usable `Retry-After`.
    pub default_retry_after: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            give_up_after: Duration::from_secs(600),
            default_retry_after: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(600),
        }
    }
}

/// What to do with a response status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// 5xx, 408, 425, network errors, timeouts.
    Retry,
    /// 429: pause all sending.
    Pause,
    /// 413 for a single item.
    TooLarge,
    /// Any other 4xx (and anything else unexpected).
    Rejected,
}

pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 425 | 500..=599 => Verdict::Retry,
        429 => Verdict::Pause,
        413 => Verdict::TooLarge,
        _ => Verdict::Rejected,
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (0-based), drawn uniformly from
    /// the upper half of its doubling window so clients do not retry in lockstep.
    pub fn backoff(&self, attempt: u32, random: u64) -> Duration {
        let full = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        let half = full / 2;
        let span = (full - half).as_micros() as u64;
        half + Duration::from_micros(if span == 0 { 0 } else { random % (span + 1) })
    }

    /// The pause a 429 asks for: `Retry-After` in seconds or as an HTTP date.
    pub fn retry_after(&self, header: Option<&str>, now_epoch_secs: u64) -> Duration {
        let asked = header.and_then(|h| {
            let h = h.trim();
            h.parse::<u64>().ok().map(Duration::from_secs).or_else(|| {
                http_date_epoch_secs(h)
                    .map(|t| Duration::from_secs(t.saturating_sub(now_epoch_secs)))
            })
        });
        asked
            .unwrap_or(self.default_retry_after)
            .min(self.max_retry_after)
    }
}

/// Parses the IMF-fixdate form of an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date_epoch_secs(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    // A server's header, so anything: out-of-range fields are no date (and
    // would overflow below; found by fuzzing).
    let (h, m, sec) = (*h, *m, *sec);
    if !(1..=31).contains(&day) || !(1970..=9999).contains(&year) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant), the inverse of util::civil_from_days.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400) as u64;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe as i64 - 719_468;
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_date_with_fields_out_of_range_is_no_date_and_never_overflows() {
        // Found by fuzzing: the year overflowed the day count and panicked.
        let p = RetryPolicy::default();
        for h in [
            ", 21 Oct 24444444444444026 07:2:20 GMT",
            "Wed, 99999999999999999 Oct 2026 07:28:00 GMT",
            "Wed, 21 Oct 2026 99999999999999:28:00 GMT",
            "Wed, 21 Oct 2026 07:28:99999999999999999 GMT",
            "Wed, 32 Oct 2026 07:28:00 GMT",
        ] {
            assert_eq!(
                p.retry_after(Some(h), 1_795_700_000),
                p.default_retry_after,
                "{h}"
            );
        }
        assert_eq!(
            http_date_epoch_secs("Wed, 21 Oct 2026 07:28:00 GMT"),
            Some(1_792_567_680)
        );
    }

    #[test]
    fn statuses_map_to_the_documented_verdicts() {
        assert_eq!(verdict(200), Verdict::Delivered);
        assert_eq!(verdict(204), Verdict::Delivered);
        for s in [500, 502, 503, 408, 425] {
            assert_eq!(verdict(s), Verdict::Retry, "{s}");
        }
        assert_eq!(verdict(429), Verdict::Pause);
        assert_eq!(verdict(413), Verdict::TooLarge);
        for s in [400, 401, 403, 404, 422, 301] {
            assert_eq!(verdict(s), Verdict::Rejected, "{s}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_in_the_upper_half() {
        let p = RetryPolicy::default();
        for (attempt, full) in [
            (0, 1),
            (1, 2),
            (2, 4),
            (5, 32),
            (6, 60),
            (30, 60),
            (200, 60),
        ] {
            let full = Duration::from_secs(full);
            assert_eq!(p.backoff(attempt, 0), full / 2, "attempt {attempt}");
            let top = p.backoff(attempt, u64::MAX);
            assert!(top >= full / 2 && top <= full, "attempt {attempt}: {top:?}");
            assert_eq!(
                p.backoff(attempt, (full - full / 2).as_micros() as u64),
                full
            );
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let p = RetryPolicy::default();
        assert_eq!(p.retry_after(Some("7"), 0), Duration::from_secs(7));
        assert_eq!(p.retry_after(None, 0), Duration::from_secs(30));
        assert_eq!(p.retry_after(Some("soon"), 0), Duration::from_secs(30));
        assert_eq!(p.retry_after(Some("99999"), 0), Duration::from_secs(600));
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT.
        assert_eq!(
            p.retry_after(Some("Sun, 06 Nov 1994 08:49:37 GMT"), 784_111_777 - 12),
            Duration::from_secs(12)
        );
        assert_eq!(
            p.retry_after(Some("Sun, 06 Nov 1994 08:49:37 GMT"), 784_111_777 + 5),
            Duration::ZERO
        );
    }
}
