//! Delivery: the core hands requests to a [`Delivery`] and never waits on the
//! network. This in-memory version keeps call order with one background
//! thread; the durable queue replaces it behind the same small interface
//! (`start`, `enqueue`, `flush`, `shutdown`, `stats`).

pub mod policy;
pub mod transport;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::Value;

use crate::diag::Diagnostics;
use policy::{RetryPolicy, Verdict};
use transport::Transport;

/// What the core wants sent.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: &'static str,
    pub body: Value,
    pub tag: Tag,
}

/// Lets the core recognise the answer to a request it cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    None,
    Identify { token: u64, epoch: u64 },
}

/// How a request ended.
#[derive(Debug)]
pub enum Outcome<'a> {
    Delivered(&'a Value),
    Dropped(DropReason),
}

/// Why a request was dropped; each is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Rejected,
    TooLarge,
    GaveUp,
    /// Still queued when shutdown's time ran out (the in-memory queue keeps
    /// nothing across restarts).
    Shutdown,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Rejected => "rejected",
            DropReason::TooLarge => "too_large",
            DropReason::GaveUp => "gave_up",
            DropReason::Shutdown => "shutdown",
        }
    }
}

/// Called on the delivery thread when a request has ended.
pub type OnComplete = Box<dyn Fn(&Request, Outcome<'_>) + Send + Sync>;

pub struct Config {
    pub api_base: String,
    pub site_id: String,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

/// Counts since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub queued: u64,
    pub sent: u64,
    pub dropped_rejected: u64,
    pub dropped_too_large: u64,
    pub dropped_gave_up: u64,
    pub dropped_shutdown: u64,
}

struct Queue {
    items: VecDeque<Request>,
    /// Items ever enqueued / ever finished (sent or dropped).
    enqueued: u64,
    finished: u64,
    stats: Stats,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the worker: new item or stop.
    work: Condvar,
    /// Wakes flushers: an item finished.
    done: Condvar,
    stop: AtomicBool,
    /// The worker is inside an HTTP request (its item may still arrive).
    sending: AtomicBool,
    diag: Arc<Diagnostics>,
}

pub struct Delivery {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Delivery {
    pub fn start(
        config: Config,
        diag: Arc<Diagnostics>,
        on_complete: OnComplete,
    ) -> std::io::Result<Delivery> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                enqueued: 0,
                finished: 0,
                stats: Stats::default(),
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            stop: AtomicBool::new(false),
            sending: AtomicBool::new(false),
            diag,
        });
        let s = shared.clone();
        let transport = Transport::new(&config.api_base, &config.site_id, config.timeout);
        let worker = std::thread::Builder::new()
            .name("trodo-delivery".into())
            .spawn(move || run(&s, &transport, &config.retry, &on_complete))?;
        Ok(Delivery {
            shared,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// Queues a request; returns at once.
    pub fn enqueue(&self, request: Request) {
        let mut q = self.shared.queue.lock();
        q.items.push_back(request);
        q.enqueued += 1;
        drop(q);
        self.shared.work.notify_one();
    }

    /// Waits until everything enqueued before this call has been sent or
    /// dropped; false when `timeout` passed first.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut q = self.shared.queue.lock();
        let target = q.enqueued;
        while q.finished < target {
            if self.shared.done.wait_until(&mut q, deadline).timed_out() {
                return q.finished >= target;
            }
        }
        true
    }

    /// Flushes for at most `timeout`, then stops the worker. What is left is
    /// counted and reported as dropped. Returns whether the flush finished.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let flushed = self.flush(timeout);
        self.shared.stop.store(true, Ordering::Release);
        let left = {
            let mut q = self.shared.queue.lock();
            // An item in flight stays at the front until it ends, and may arrive.
            let in_flight = usize::from(self.shared.sending.load(Ordering::Acquire));
            let left = q.items.len().saturating_sub(in_flight) as u64;
            q.stats.dropped_shutdown += left;
            left
        };
        self.shared.work.notify_all();
        if left > 0 {
            self.shared.diag.report(format!(
                "shutdown: {left} queued request(s) not sent in time were dropped"
            ));
        }
        // The worker leaves at its next check; when it is inside a request it
        // may take up to timeout_ms, so only join it when it has already left.
        if let Some(w) = self.worker.lock().take() {
            if w.is_finished() {
                let _ = w.join();
            }
        }
        flushed
    }

    pub fn stats(&self) -> Stats {
        let q = self.shared.queue.lock();
        let mut s = q.stats.clone();
        s.queued = q.items.len() as u64;
        s
    }
}

/// The worker: one request at a time, in order, retried per the policy.
fn run(s: &Shared, transport: &Transport, policy: &RetryPolicy, on_complete: &OnComplete) {
    loop {
        let request = {
            let mut q = s.queue.lock();
            loop {
                if s.stop.load(Ordering::Acquire) {
                    return;
                }
                if let Some(r) = q.items.front() {
                    break r.clone();
                }
                s.work.wait(&mut q);
            }
        };
        // A panic here must not kill delivery for good: drop the one item.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            deliver(s, transport, policy, &request)
        }))
        .unwrap_or_else(|_| {
            s.diag.report(format!(
                "internal error while sending {}; dropped",
                request.path
            ));
            Some(Err(DropReason::Rejected))
        });
        let Some(result) = outcome else {
            return; // stopped mid-way; the item stays queued
        };
        {
            let mut q = s.queue.lock();
            q.items.pop_front();
            q.finished += 1;
            match &result {
                Ok(_) => q.stats.sent += 1,
                Err(DropReason::Rejected) => q.stats.dropped_rejected += 1,
                Err(DropReason::TooLarge) => q.stats.dropped_too_large += 1,
                Err(DropReason::GaveUp) => q.stats.dropped_gave_up += 1,
                Err(DropReason::Shutdown) => q.stats.dropped_shutdown += 1,
            }
        }
        let outcome = match &result {
            Ok(body) => Outcome::Delivered(body),
            Err(reason) => Outcome::Dropped(*reason),
        };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            on_complete(&request, outcome)
        }));
        s.done.notify_all();
    }
}

/// Sends one request until it is delivered or dropped; `None` when stopped.
fn deliver(
    s: &Shared,
    transport: &Transport,
    policy: &RetryPolicy,
    request: &Request,
) -> Option<Result<Value, DropReason>> {
    let bytes = request.body.to_string().into_bytes();
    let first_try = Instant::now();
    let mut attempt = 0u32;
    loop {
        if s.stop.load(Ordering::Acquire) {
            return None;
        }
        s.sending.store(true, Ordering::Release);
        let result = transport.post(request.path, &bytes);
        s.sending.store(false, Ordering::Release);
        let (verdict, detail, reply) = match result {
            Ok(reply) => (
                policy::verdict(reply.status),
                format!("HTTP {}", reply.status),
                Some(reply),
            ),
            Err(e) => (Verdict::Retry, e, None),
        };
        let wait = match verdict {
            Verdict::Delivered => return Some(Ok(reply.map(|r| r.body).unwrap_or_default())),
            Verdict::Rejected | Verdict::TooLarge => {
                let reason = if verdict == Verdict::TooLarge {
                    DropReason::TooLarge
                } else {
                    DropReason::Rejected
                };
                s.diag.report(format!(
                    "dropped {} ({}): the server answered {detail}",
                    request.path,
                    reason.as_str()
                ));
                return Some(Err(reason));
            }
            // A 429 pauses everything (this worker is the only sender) and
            // never counts towards giving up.
            Verdict::Pause => {
                let now = crate::util::now_ms() / 1000;
                policy.retry_after(reply.as_ref().and_then(|r| r.retry_after.as_deref()), now)
            }
            Verdict::Retry => {
                if first_try.elapsed() >= policy.give_up_after {
                    s.diag.report(format!(
                        "dropped {} (gave_up): still failing after {:?}: {detail}",
                        request.path, policy.give_up_after
                    ));
                    return Some(Err(DropReason::GaveUp));
                }
                let w = policy.backoff(attempt, crate::util::jitter_u64());
                attempt = attempt.saturating_add(1);
                w
            }
        };
        // New items also wake `work`; only the deadline or stop end the wait.
        let until = Instant::now() + wait;
        let mut q = s.queue.lock();
        while !s.stop.load(Ordering::Acquire) {
            if s.work.wait_until(&mut q, until).timed_out() {
                break;
            }
        }
    }
}
