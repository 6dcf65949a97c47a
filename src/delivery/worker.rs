//! The delivery worker: one request at a time, in order, batched and
//! retried per the policy.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::MutexGuard;

use super::policy::{self, Verdict};
use super::queue::{Item, Queue};
use super::transport::{Settings, Transport};
use super::{Config, DropReason, Outcome, Shared, Tag};
use crate::wire;

/// Largest batch body before compression (`docs/wire-protocol.md`).
const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// What the worker does next.
enum Next {
    Send(usize),
    Wait(Option<Instant>),
}

/// How many items at the front go in the next request, or how long to wait.
fn next_batch(q: &mut Queue, config: &Config, split_limit: Option<usize>, now: Instant) -> Next {
    if let Some(t) = q.not_before {
        if t > now {
            return Next::Wait(Some(t));
        }
        q.not_before = None;
    }
    let Some(front) = q.items.front() else {
        return Next::Wait(None);
    };
    let joins = |item: &Item| config.joins_batches(&item.path, item.tag);
    if !joins(front) {
        return Next::Send(1);
    }
    let cap = config
        .flush_at
        .min(split_limit.unwrap_or(usize::MAX))
        .max(1);
    let mut n = 0;
    let mut bytes = 0;
    let mut full = false;
    for item in q.items.iter() {
        if !joins(item) {
            full = true; // another call waits behind the batch
            break;
        }
        if n > 0 && bytes + item.body.len() + 1 > MAX_BATCH_BYTES {
            full = true;
            break;
        }
        bytes += item.body.len() + 1;
        n += 1;
        if n == cap {
            full = true;
            break;
        }
    }
    // More waiting on disk behind the head: the batch is as full as memory allows.
    full |= !q.spilled.is_empty();
    let due_at = front.enqueued + config.flush_interval;
    if full || front.seq <= q.flush_through || due_at <= now {
        Next::Send(n)
    } else {
        Next::Wait(Some(due_at))
    }
}

/// The worker: one request at a time, in order, retried per the policy. A
/// panic in a turn does not end delivery: it is reported, counted, and the
/// worker carries on after a pause (the batch it held is sent again).
pub(super) fn run(s: &Shared) {
    crate::platform::priority::yield_to_the_app();
    // Loading the system's trust store is file I/O: done here, not in init.
    let transport = Transport::new(
        Settings {
            api_base: &s.config.api_base,
            site_id: &s.config.site_id,
            timeout: s.config.timeout,
            ca_file: s.config.ca_file.as_deref(),
            proxy: s.config.proxy.as_deref(),
            host: s.config.host.as_ref(),
            stop: &s.stop,
        },
        &s.diag,
    );
    let mut retry = Retry::default();
    loop {
        let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            send_next(s, &transport, &mut retry)
        }));
        match turn {
            Ok(true) => {}
            Ok(false) => return,
            Err(panic) => s.survive_panic(&*panic),
        }
    }
}

/// Where the worker is in the retry policy.
#[derive(Default)]
struct Retry {
    /// Failed attempts in a row, for the backoff.
    attempt: u32,
    /// While isolating what a 413 or 400 refuses: the batch size to try.
    split_limit: Option<usize>,
}

/// After a panic on the delivery thread, this long before the next turn.
const AFTER_PANIC: Duration = Duration::from_secs(1);

/// One turn of the worker: waits for the next batch, sends it and applies
/// the answer. False when stopping.
fn send_next(s: &Shared, transport: &Transport<'_>, retry: &mut Retry) -> bool {
    #[cfg(test)]
    tests::maybe_panic(&s.config);
    let tell = |tag: Tag, outcome: Outcome<'_>| {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (s.on_complete)(tag, outcome)
        }));
    };
    let batch = {
        let mut q = s.queue.lock();
        loop {
            if s.stop.load(Ordering::Acquire) {
                return false;
            }
            if s.opted_out.load(Ordering::Acquire) && q.len() > q.in_flight {
                // Adopted from an ended process after the opt-out.
                let tags = s.discard_queued(&mut q);
                MutexGuard::unlocked(&mut q, || {
                    let _ = s.persist_soon(); // a failure is reported and retried
                    s.settle(super::Dropped::tags(tags, DropReason::OptedOut));
                    s.done.notify_all();
                });
                continue;
            }
            let now = Instant::now();
            if let Some(wanted) = q.refill_wanted(now, s.config.memory_queue_bytes) {
                if let Some(lost) = s.refill(&mut q, &wanted) {
                    MutexGuard::unlocked(&mut q, || {
                        for tag in lost {
                            tell(tag, Outcome::Dropped(DropReason::Unreadable));
                        }
                        let _ = s.persist_soon(); // a failure is reported and retried
                        s.done.notify_all();
                    });
                }
                continue;
            }
            match next_batch(&mut q, &s.config, retry.split_limit, now) {
                Next::Send(n) => {
                    q.in_flight = n;
                    break q
                        .items
                        .iter()
                        .take(n)
                        .map(|i| (i.path.clone(), i.body.clone(), i.tag))
                        .collect::<Vec<_>>();
                }
                Next::Wait(Some(t)) => {
                    s.work.wait_until(&mut q, t);
                }
                Next::Wait(None) => match q.refill_not_before {
                    Some(t) => drop(s.work.wait_until(&mut q, t)),
                    None => s.work.wait(&mut q),
                },
            }
        }
    };
    // A panic here must not end delivery: the batch is treated as rejected.
    // One request, or a batch's registrations and then its events: the
    // first that does not go through decides for the whole batch (a
    // retry sends the registrations again, which is harmless).
    let mut route = String::new();
    let mut answer = (Verdict::Delivered, String::new(), None);
    for (path, body) in compose(&batch) {
        route = path;
        let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            transport.post(&route, body, s.config.gzip)
        }))
        .unwrap_or_else(|_| Err("internal error while sending".into()));
        answer = match sent {
            Ok(reply) => (
                policy::verdict(reply.status),
                format!("HTTP {}", reply.status),
                Some(reply),
            ),
            Err(e) => (Verdict::Retry, e, None),
        };
        if answer.0 != Verdict::Delivered {
            break;
        }
    }
    let (verdict, detail, reply) = answer;
    let n = batch.len();
    // The core hears an answer before the item leaves the queue, so a
    // flush that returns has seen its effects (e.g. identify hydration).
    if let (Verdict::Delivered, [(_, _, tag)]) = (verdict, batch.as_slice()) {
        if *tag != Tag::None {
            let body = reply.as_ref().map(|r| r.body.clone()).unwrap_or_default();
            tell(*tag, Outcome::Delivered(&body));
        }
    }
    let mut dropped: Option<(DropReason, usize, Vec<Tag>)> = None;
    {
        let mut q = s.queue.lock();
        q.in_flight = 0;
        if s.stop.load(Ordering::Acquire) && verdict != Verdict::Delivered {
            return false; // stopping: the items stay on disk for the next start
        }
        let now = Instant::now();
        let discarded = q
            .items
            .iter()
            .take(n)
            .take_while(|i| i.seq <= q.discard_through)
            .count();
        if verdict != Verdict::Delivered && discarded > 0 {
            let tags = s.drop_items(&mut q, 0, discarded, DropReason::OptedOut);
            drop(q);
            let _ = s.persist_soon(); // a failure is reported and retried
            for tag in tags {
                tell(tag, Outcome::Dropped(DropReason::OptedOut));
            }
            s.done.notify_all();
            return true;
        }
        match verdict {
            Verdict::Delivered => {
                let removed: Vec<Item> = q.items.drain(..n).collect();
                q.stats.sent += n as u64;
                s.finish(&mut q, &removed);
                retry.attempt = 0;
                retry.split_limit = None;
            }
            Verdict::Retry => {
                let give_up = s.config.retry.give_up_after;
                // Items are dropped once they have failed for give_up_after;
                // the oldest fail first, so they form a prefix.
                let mut expired = 0;
                let mut prefix = true;
                for item in q.items.iter_mut().take(n) {
                    let first = *item.first_failure.get_or_insert(now);
                    prefix &= now.duration_since(first) >= give_up;
                    expired += usize::from(prefix);
                }
                if expired > 0 {
                    let tags = s.drop_items(&mut q, 0, expired, DropReason::GaveUp);
                    dropped = Some((DropReason::GaveUp, expired, tags));
                    retry.attempt = 0;
                } else {
                    q.not_before = Some(
                        now + s
                            .config
                            .retry
                            .backoff(retry.attempt, crate::util::random_u64()),
                    );
                    retry.attempt = retry.attempt.saturating_add(1);
                }
            }
            Verdict::Pause => {
                let wait = s.config.retry.retry_after(
                    reply.as_ref().and_then(|r| r.retry_after.as_deref()),
                    crate::util::now_ms() / 1000,
                );
                q.not_before = Some(now + wait);
                q.stats.paused_until_ms = crate::util::now_ms() + wait.as_millis() as u64;
            }
            Verdict::TooLarge | Verdict::Rejected => {
                if n > 1 {
                    // Halve the batch to isolate what the server refuses.
                    retry.split_limit = Some(n / 2);
                } else {
                    let reason = if verdict == Verdict::TooLarge {
                        DropReason::TooLarge
                    } else {
                        DropReason::Rejected
                    };
                    let tags = s.drop_items(&mut q, 0, 1, reason);
                    dropped = Some((reason, 1, tags));
                }
            }
        }
    }
    let _ = s.persist_soon(); // a failure is reported and retried
    s.compact_soon();
    if let Some((reason, count, tags)) = dropped {
        s.diag.report(format!(
            "dropped {count} item(s) sent to {route} ({}): {detail}",
            reason.as_str()
        ));
        for tag in tags {
            tell(tag, Outcome::Dropped(reason));
        }
    }
    // Flushers wake only now, after the reports: a flush that returns has
    // seen every drop it waited for reported.
    s.done.notify_all();
    true
}

impl Shared {
    /// A turn of the worker panicked: what it held in flight goes back to
    /// the queue (sent again after a pause), and it is counted and reported.
    fn survive_panic(&self, panic: &(dyn std::any::Any + Send)) {
        let what = crate::util::panic_text(panic);
        {
            let mut q = self.queue.lock();
            q.in_flight = 0;
            q.not_before = Some(Instant::now() + AFTER_PANIC);
            q.stats.worker_panics += 1;
        }
        self.done.notify_all();
        self.diag.report(format!(
            "internal error on the delivery thread ({what}); delivery carries on in {} s",
            AFTER_PANIC.as_secs()
        ));
    }
}

type Batch = [(Cow<'static, str>, Arc<[u8]>, Tag)];

/// One item goes to its own route; several go as their registrations, one
/// request each, then their events: alone, or as one bulk body.
fn compose(batch: &Batch) -> Vec<(String, Vec<u8>)> {
    if let [(path, body, _)] = batch {
        if path != wire::path::EVENT {
            return vec![(path.to_string(), body.to_vec())];
        }
    }
    let (events, others): (Vec<_>, Vec<_>) = batch
        .iter()
        .partition(|(path, _, _)| path == wire::path::EVENT);
    let mut out: Vec<(String, Vec<u8>)> = others
        .into_iter()
        .map(|(path, body, _)| (path.to_string(), body.to_vec()))
        .collect();
    match events.as_slice() {
        [] => {}
        [(path, body, _)] => {
            let mut one = Vec::with_capacity(body.len() + 80);
            wire::complete_event(body, &mut one);
            out.push((path.to_string(), one));
        }
        _ => {
            let bodies: Vec<&[u8]> = events.iter().map(|(_, b, _)| &b[..]).collect();
            out.push((
                wire::path::EVENTS_BULK.to_string(),
                wire::bulk_events(&bodies),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::policy::RetryPolicy;
    use crate::delivery::{Delivery, Request};
    use crate::diag::Diagnostics;
    use std::io::{Read, Write};
    use std::sync::atomic::AtomicUsize;

    /// The site whose worker panics once, at the start of a turn.
    const PANICKING_SITE: &str = "test-panic-once";
    static PANICS_LEFT: AtomicUsize = AtomicUsize::new(1);

    pub(super) fn maybe_panic(config: &Config) {
        if config.site_id == PANICKING_SITE
            && PANICS_LEFT
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
        {
            panic!("injected by the test");
        }
    }

    /// A loopback server answering every request 200 `{}`; counts them.
    fn answering_server() -> (String, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then as many body bytes as Content-Length says.
                let body_start = loop {
                    let Ok(n) = stream.read(&mut chunk) else {
                        break None;
                    };
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break Some(at + 4);
                    }
                };
                let Some(body_start) = body_start else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..body_start]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < body_start + len {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                seen.fetch_add(1, Ordering::AcqRel);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                );
            }
        });
        (url, count)
    }

    #[test]
    fn a_panic_on_the_delivery_thread_is_reported_counted_and_delivery_carries_on() {
        let (url, requests) = answering_server();
        let dir = std::env::temp_dir().join(format!("trodo-worker-{}", crate::util::new_id()));
        crate::platform::files::create_dir(&dir).unwrap();
        let config = Config {
            api_base: url,
            site_id: PANICKING_SITE.into(),
            storage_dir: dir,
            timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            flush_at: 50,
            flush_interval: Duration::from_millis(10),
            max_queue_items: 1000,
            max_queue_bytes: 1 << 20,
            gzip: false,
            sync: false,
            persist_interval: Duration::from_millis(10),
            ca_file: None,
            memory_queue_bytes: 1 << 20,
            adopt: false,
            adopt_at_start: false,
            registrations_join_batches: false,
            opted_out: false,
            proxy: None,
            host: None,
        };
        let diag = Arc::new(Diagnostics::new(false));
        let d = Delivery::start(config, diag.clone(), Arc::new(|_, _| {})).unwrap();
        let request = Request {
            path: wire::path::RESET,
            body: b"{}".to_vec(),
            tag: Tag::None,
        };
        let (dropped, durable) = d.enqueue(request);
        assert!(dropped.is_empty() && durable);
        assert!(
            d.flush(Duration::from_secs(20)),
            "delivered after the panic"
        );
        let stats = d.stats();
        assert_eq!((stats.worker_panics, stats.sent), (1, 1), "{stats:?}");
        assert_eq!(requests.load(Ordering::Acquire), 1);
        let reports = diag.recent();
        assert!(
            reports
                .iter()
                .any(|r| r.contains("internal error on the delivery thread (injected by the test)")),
            "{reports:?}"
        );
        assert!(d.shutdown(Duration::from_secs(5)));
    }
}
