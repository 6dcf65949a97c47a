//! Clock, id and formatting helpers with no dependencies of their own.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A fresh random UUID v4 in its hyphenated form.
pub fn new_id() -> String {
    String::from_utf8_lossy(&new_id_bytes()).into_owned()
}

/// A fast non-cryptographic random number (ids must be unique, and retry
/// jitter spread out, not secret): a per-thread wyrand generator seeded from
/// the OS once per thread and fork generation, not a system call per number.
/// (A forked child would otherwise repeat its parent's insert_ids.)
pub fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        /// (fork generation, generator state)
        static STATE: Cell<(u64, u64)> = const { Cell::new((u64::MAX, 0)) };
    }
    STATE.with(|s| {
        let (generation, mut x) = s.get();
        let now = crate::process::generation();
        if generation != now {
            x = uuid::Uuid::new_v4().as_u64_pair().0;
        }
        x = x.wrapping_add(0xa076_1d64_78bd_642f);
        s.set((now, x));
        let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
        (t >> 64) as u64 ^ t as u64
    })
}

/// [`new_id`] without an allocation, for the track path.
pub fn new_id_bytes() -> [u8; 36] {
    let bits = (u128::from(random_u64()) << 64) | u128::from(random_u64());
    let mut out = [0u8; 36];
    uuid::Builder::from_random_bytes(bits.to_le_bytes())
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut out);
    out
}

/// ISO 8601 UTC with milliseconds, e.g. `2026-11-26T13:46:14.123Z`.
pub fn iso8601_ms(epoch_ms: u64) -> String {
    String::from_utf8_lossy(&iso8601_ms_bytes(epoch_ms)).into_owned()
}

/// [`iso8601_ms`] without an allocation, written digit by digit: `format!`
/// cost more than the rest of a track call.
pub fn iso8601_ms_bytes(epoch_ms: u64) -> [u8; 24] {
    let secs = epoch_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y.clamp(0, 9999) as u64);
    put(5, 2, u64::from(m));
    put(8, 2, u64::from(d));
    put(11, 2, rem / 3600);
    put(14, 2, (rem / 60) % 60);
    put(17, 2, rem % 60);
    put(20, 3, epoch_ms % 1000);
    out
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm:
/// exact for the whole proleptic Gregorian calendar, no table, no crate.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// What a panic said (its message), or "unknown panic".
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic")
}

/// Joins `thread` if it ends by `deadline` (at once without one); false
/// when it was left running on its own (detached).
pub fn join_by(thread: std::thread::JoinHandle<()>, deadline: Option<std::time::Instant>) -> bool {
    if let Some(d) = deadline {
        while !thread.is_finished() {
            if std::time::Instant::now() >= d {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    thread.join().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601_ms(1_795_700_774_123), "2026-11-26T13:46:14.123Z");
        assert_eq!(iso8601_ms(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn ids_are_unique_v4_uuids() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 4, "{id}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
        // Other threads draw from their own seeds.
        let other = std::thread::spawn(new_id).join().unwrap();
        assert!(!ids.contains(&other));
    }
}
