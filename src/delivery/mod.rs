//! Delivery: the core hands requests to a [`Delivery`] and never waits on the
//! network. Requests are kept in a crash-safe file queue ([`store`]) and sent
//! in call order by one background thread: consecutive events are coalesced
//! into `/api/events/bulk` batches, other calls go to their own routes in
//! between, and failures follow the retry policy ([`policy`]).

pub mod policy;
pub mod store;
pub mod transport;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::{json, Value};

use crate::diag::Diagnostics;
use crate::error::Result;
use crate::state::Persister;
use crate::wire;
use policy::{RetryPolicy, Verdict};
use store::QueueStore;
use transport::Transport;

/// Largest batch body before compression (`trodo-wire.md`).
const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// What the core wants sent.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: &'static str,
    /// The JSON body, serialized.
    pub body: Vec<u8>,
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

/// Why items were dropped; each is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Rejected,
    TooLarge,
    GaveUp,
    QueueFull,
    /// Discarded by `set_opt_out(true)`: the user's choice, not a failure.
    OptedOut,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Rejected => "rejected",
            DropReason::TooLarge => "too_large",
            DropReason::GaveUp => "gave_up",
            DropReason::QueueFull => "queue_full",
            DropReason::OptedOut => "opted_out",
        }
    }
}

/// Told how a tagged request ended (on the delivery thread, or the thread
/// whose call made the queue drop it).
pub type OnComplete = Arc<dyn Fn(Tag, Outcome<'_>) + Send + Sync>;

/// Every delivery limit, from the options.
#[derive(Debug, Clone)]
pub struct Config {
    pub api_base: String,
    pub site_id: String,
    pub storage_dir: PathBuf,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub flush_at: usize,
    pub flush_interval: Duration,
    pub max_queue_items: u64,
    pub max_queue_bytes: u64,
    pub gzip: bool,
    /// Write each accepted request to disk before `enqueue` returns.
    pub sync: bool,
    pub persist_interval: Duration,
    pub ca_file: Option<PathBuf>,
}

/// Counts since start, in items (one event, one call), not requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Waiting, not counting what is in flight.
    pub queued: u64,
    pub queued_bytes: u64,
    pub in_flight: u64,
    pub sent: u64,
    pub dropped_rejected: u64,
    pub dropped_too_large: u64,
    pub dropped_gave_up: u64,
    pub dropped_queue_full: u64,
    pub dropped_opted_out: u64,
    /// Epoch ms until which a 429 paused sending; 0 when not paused.
    pub paused_until_ms: u64,
    /// Bytes of a damaged queue file that could not be read at start (moved
    /// to queue.corrupt and reported).
    pub corrupt_bytes: u64,
}

impl Stats {
    pub fn dropped(&self) -> u64 {
        self.dropped_rejected
            + self.dropped_too_large
            + self.dropped_gave_up
            + self.dropped_queue_full
            + self.dropped_opted_out
    }

    /// The `trodo_get_stats` object.
    pub fn to_json(&self) -> Value {
        json!({
            "queued": self.queued,
            "queued_bytes": self.queued_bytes,
            "in_flight": self.in_flight,
            "sent": self.sent,
            "dropped": self.dropped(),
            "dropped_by_reason": {
                "rejected": self.dropped_rejected,
                "too_large": self.dropped_too_large,
                "gave_up": self.dropped_gave_up,
                "queue_full": self.dropped_queue_full,
                "opted_out": self.dropped_opted_out,
            },
            "paused_until_ms": self.paused_until_ms,
            "corrupt_bytes": self.corrupt_bytes,
        })
    }

    fn count(&mut self, reason: DropReason, n: u64) {
        match reason {
            DropReason::Rejected => self.dropped_rejected += n,
            DropReason::TooLarge => self.dropped_too_large += n,
            DropReason::GaveUp => self.dropped_gave_up += n,
            DropReason::QueueFull => self.dropped_queue_full += n,
            DropReason::OptedOut => self.dropped_opted_out += n,
        }
    }
}

struct Item {
    seq: u64,
    path: Cow<'static, str>,
    body: Arc<[u8]>,
    is_event: bool,
    tag: Tag,
    enqueued: Instant,
    first_failure: Option<Instant>,
}

impl Item {
    fn disk_len(&self) -> u64 {
        store::item_record_len(&self.path, &self.body)
    }
}

struct Queue {
    items: VecDeque<Item>,
    bytes: u64,
    /// How many items at the front are being sent.
    in_flight: usize,
    last_seq: u64,
    /// Items up to this seq are due now (a flush asked for them).
    flush_through: u64,
    /// No request before this (backoff or a 429 pause).
    not_before: Option<Instant>,
    /// Records (items and done markers) not yet written.
    unwritten: Vec<u8>,
    /// Enough of the file is done records: rewrite it (in `settle`).
    compact_due: bool,
    /// Consecutive events at the back of the queue.
    tail_events: usize,
    /// Opt-out discarded everything up to here; an item then in flight is
    /// dropped too unless that attempt delivers it.
    discard_through: u64,
    stats: Stats,
}

struct Shared {
    config: Config,
    queue: Mutex<Queue>,
    /// Wakes the worker: new item, flush or stop.
    work: Condvar,
    /// Wakes flushers: items finished.
    done: Condvar,
    stop: AtomicBool,
    store: QueueStore,
    diag: Arc<Diagnostics>,
    /// Wakes the writer thread (set once it has started).
    dirty: std::sync::OnceLock<crate::state::DirtyFlag>,
}

pub struct Delivery {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
    writer: Mutex<Option<Persister>>,
    on_complete: OnComplete,
}

impl Delivery {
    /// Opens the queue under `storage_dir` (reporting any damage) and starts
    /// the writer and delivery threads. What an earlier run left is sent first.
    pub fn start(
        config: Config,
        diag: Arc<Diagnostics>,
        on_complete: OnComplete,
    ) -> Result<Delivery> {
        let (store, recovered) = QueueStore::open(&config.storage_dir)?;
        if let Some(report) = &recovered.damage {
            diag.report(report.clone());
        }
        // Left by an earlier run: due at once.
        let due = Instant::now()
            .checked_sub(config.flush_interval)
            .unwrap_or_else(Instant::now);
        let mut bytes = 0;
        let items: VecDeque<Item> = recovered
            .items
            .into_iter()
            .map(|s| {
                bytes += s.body.len() as u64;
                Item {
                    seq: s.seq,
                    is_event: s.path == wire::path::EVENT,
                    path: Cow::Owned(s.path),
                    body: s.body.into(),
                    tag: Tag::None,
                    enqueued: due,
                    first_failure: None,
                }
            })
            .collect();
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items,
                bytes,
                in_flight: 0,
                last_seq: recovered.last_seq,
                flush_through: 0,
                not_before: None,
                unwritten: Vec::new(),
                compact_due: false,
                tail_events: 0,
                discard_through: 0,
                stats: Stats {
                    corrupt_bytes: recovered.damaged_bytes,
                    ..Stats::default()
                },
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            stop: AtomicBool::new(false),
            store,
            diag,
            config,
            dirty: std::sync::OnceLock::new(),
        });
        let internal = |e: std::io::Error| {
            crate::error::Error::new(
                crate::error::ErrorKind::Internal,
                format!("cannot start a thread: {e}"),
            )
        };
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        let writer = Persister::start(shared.config.persist_interval, move || {
            if let Some(s) = weak.upgrade() {
                s.write_unwritten();
            }
        })
        .map_err(internal)?;
        let _ = shared.dirty.set(writer.flag());
        let (s, hook) = (shared.clone(), on_complete.clone());
        let worker = std::thread::Builder::new()
            .name("trodo-delivery".into())
            .spawn(move || run(&s, &hook))
            .map_err(internal)?;
        Ok(Delivery {
            shared,
            worker: Mutex::new(Some(worker)),
            writer: Mutex::new(Some(writer)),
            on_complete,
        })
    }

    /// Queues a request; returns at once (after the disk write with `sync`).
    pub fn enqueue(&self, request: Request) {
        let s = &*self.shared;
        let body: Arc<[u8]> = request.body.into();
        let is_event = request.path == wire::path::EVENT;
        let mut q = s.queue.lock();
        q.last_seq += 1;
        let seq = q.last_seq;
        // The worker only needs waking when this item changes what it waits
        // for: an empty queue, another call, or a batch that just filled up.
        // Otherwise it wakes at the oldest event's flush_interval anyway.
        q.tail_events = if is_event { q.tail_events + 1 } else { 0 };
        let wake = q.items.is_empty() || !is_event || q.tail_events % s.config.flush_at.max(1) == 0;
        store::encode_item(seq, request.path, &body, &mut q.unwritten);
        q.bytes += body.len() as u64;
        q.items.push_back(Item {
            seq,
            path: Cow::Borrowed(request.path),
            is_event,
            body,
            tag: request.tag,
            enqueued: Instant::now(),
            first_failure: None,
        });
        let before = q.stats.dropped_queue_full;
        let dropped_tags = s.enforce_bounds(&mut q);
        let dropped = q.stats.dropped_queue_full - before;
        drop(q);
        if wake {
            s.work.notify_one();
        }
        for tag in dropped_tags {
            (self.on_complete)(tag, Outcome::Dropped(DropReason::QueueFull));
        }
        if dropped > 0 {
            s.diag.report(format!(
                "queue full (max_queue_items {} / max_queue_bytes {}): dropped the {dropped} oldest item(s) (queue_full)",
                s.config.max_queue_items, s.config.max_queue_bytes
            ));
        }
        s.persist_soon();
        if dropped > 0 {
            s.compact_if_due();
        }
    }

    /// Waits until everything enqueued before this call has been sent or
    /// dropped; false when `timeout` passed first.
    pub fn flush(&self, timeout: Duration) -> bool {
        let s = &*self.shared;
        let deadline = Instant::now() + timeout;
        let mut q = s.queue.lock();
        let target = q.last_seq;
        q.flush_through = q.flush_through.max(target);
        s.work.notify_one();
        while q.items.front().is_some_and(|i| i.seq <= target) {
            if s.done.wait_until(&mut q, deadline).timed_out() {
                return q.items.front().is_none_or(|i| i.seq > target);
            }
        }
        true
    }

    /// Flushes for at most `timeout`, then stops. What is still queued stays
    /// on disk for the next start. Returns whether the flush finished.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let flushed = self.flush(timeout);
        let s = &*self.shared;
        s.stop.store(true, Ordering::Release);
        s.work.notify_all();
        if let Some(mut w) = self.writer.lock().take() {
            w.stop();
        }
        s.write_unwritten();
        s.store.close();
        // The worker leaves at its next check; inside a request it may take up
        // to timeout_ms, so it is only joined when it has already left. A
        // request it then completes is sent again by the next start (the
        // server de-duplicates events by insert_id).
        if let Some(w) = self.worker.lock().take() {
            if w.is_finished() {
                let _ = w.join();
            }
        }
        flushed
    }

    /// Discards everything queued and not in flight (opt-out).
    pub fn discard_all(&self) {
        let s = &*self.shared;
        let mut q = s.queue.lock();
        q.discard_through = q.last_seq;
        let (at, n) = (q.in_flight, q.items.len() - q.in_flight);
        let tags = s.drop_items(&mut q, at, n, DropReason::OptedOut);
        drop(q);
        s.settle();
        s.done.notify_all();
        for tag in tags {
            (self.on_complete)(tag, Outcome::Dropped(DropReason::OptedOut));
        }
    }

    pub fn stats(&self) -> Stats {
        let q = self.shared.queue.lock();
        let mut st = q.stats.clone();
        st.in_flight = q.in_flight as u64;
        st.queued = (q.items.len() - q.in_flight) as u64;
        st.queued_bytes = q.bytes
            - q.items
                .iter()
                .take(q.in_flight)
                .map(|i| i.body.len() as u64)
                .sum::<u64>();
        if st.paused_until_ms <= crate::util::now_ms() {
            st.paused_until_ms = 0;
        }
        st
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.work.notify_all();
    }
}

impl Shared {
    /// Appends records and syncs them; a failure is reported, and the items
    /// stay queued in memory.
    fn write(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Err(e) = self.store.append(bytes, true) {
            self.diag.report(format!(
                "queue write failed (items stay queued in memory): {e}"
            ));
        }
    }

    fn write_unwritten(&self) {
        let bytes = std::mem::take(&mut self.queue.lock().unwritten);
        self.write(&bytes);
    }

    /// Drops the oldest items not in flight while over a bound; returns how many.
    fn enforce_bounds(&self, q: &mut Queue) -> Vec<Tag> {
        let (mut items, mut bytes) = (q.items.len() as u64, q.bytes);
        let mut n = 0;
        while (items > self.config.max_queue_items || bytes > self.config.max_queue_bytes)
            && q.items.len() > q.in_flight + n
        {
            bytes -= q.items[q.in_flight + n].body.len() as u64;
            items -= 1;
            n += 1;
        }
        let at = q.in_flight;
        self.drop_items(q, at, n, DropReason::QueueFull)
    }

    /// Removes `n` items starting at `at`, counts them, and marks them done on disk.
    /// Returns the tags of dropped requests the core asked to hear about.
    fn drop_items(&self, q: &mut Queue, at: usize, n: usize, reason: DropReason) -> Vec<Tag> {
        if n == 0 {
            return Vec::new();
        }
        let removed: Vec<Item> = q.items.drain(at..at + n).collect();
        q.stats.count(reason, n as u64);
        self.finish(q, &removed);
        removed
            .iter()
            .map(|i| i.tag)
            .filter(|t| *t != Tag::None)
            .collect()
    }

    /// Bookkeeping for items that left the queue: bytes and the done marker
    /// (written by [`settle`](Self::settle), after the queue lock is released).
    fn finish(&self, q: &mut Queue, removed: &[Item]) {
        let mut dead = 0;
        for item in removed {
            q.bytes -= item.body.len() as u64;
            dead += item.disk_len();
        }
        if let (Some(first), Some(last)) = (removed.first(), removed.last()) {
            store::encode_done(first.seq, last.seq, &mut q.unwritten);
        }
        q.compact_due |= self.store.add_dead(dead, q.bytes);
    }

    /// Gets done markers to disk and compacts when due, never under the queue
    /// lock (callers must not wait on the disk). With sync durability the
    /// markers are written at once, so a crash re-sends as little as possible.
    fn settle(&self) {
        self.persist_soon();
        self.compact_if_due();
    }

    /// Unwritten records go to disk now with sync durability, else within
    /// persist_interval through the writer thread.
    fn persist_soon(&self) {
        if self.config.sync {
            self.write_unwritten();
        } else if let Some(flag) = self.dirty.get() {
            flag.mark();
        }
    }

    fn compact_if_due(&self) {
        if std::mem::take(&mut self.queue.lock().compact_due) {
            // The snapshot is taken under the file lock, so no record can be
            // appended to the old file after it and be lost by the rename.
            let result = self.store.rewrite_with(|out| {
                for i in &self.queue.lock().items {
                    store::encode_item(i.seq, &i.path, &i.body, out);
                }
            });
            if let Err(e) = result {
                self.diag
                    .report(format!("queue compaction failed (will retry): {e}"));
            }
        }
    }
}

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
    if !front.is_event {
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
        if !item.is_event {
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
    let due_at = front.enqueued + config.flush_interval;
    if full || front.seq <= q.flush_through || due_at <= now {
        Next::Send(n)
    } else {
        Next::Wait(Some(due_at))
    }
}

/// The worker: one request at a time, in order, retried per the policy.
fn run(s: &Shared, on_complete: &OnComplete) {
    // Loading the system's trust store is file I/O: done here, not in init.
    let transport = Transport::new(
        &s.config.api_base,
        &s.config.site_id,
        s.config.timeout,
        s.config.ca_file.as_deref(),
        &s.diag,
    );
    let mut attempt = 0u32;
    let mut split_limit: Option<usize> = None;
    loop {
        let batch = {
            let mut q = s.queue.lock();
            loop {
                if s.stop.load(Ordering::Acquire) {
                    return;
                }
                match next_batch(&mut q, &s.config, split_limit, Instant::now()) {
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
                    Next::Wait(None) => s.work.wait(&mut q),
                }
            }
        };
        // A panic here must not end delivery: the batch is treated as rejected.
        let (route, body) = compose(&batch);
        let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            transport.post(&route, body, s.config.gzip)
        }))
        .unwrap_or_else(|_| Err("internal error while sending".into()));
        let (verdict, detail, reply) = match sent {
            Ok(reply) => (
                policy::verdict(reply.status),
                format!("HTTP {}", reply.status),
                Some(reply),
            ),
            Err(e) => (Verdict::Retry, e, None),
        };
        let n = batch.len();
        let tell = |tag: Tag, outcome: Outcome<'_>| {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                on_complete(tag, outcome)
            }));
        };
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
                return; // stopping: the items stay on disk for the next start
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
                s.settle();
                for tag in tags {
                    tell(tag, Outcome::Dropped(DropReason::OptedOut));
                }
                s.done.notify_all();
                continue;
            }
            match verdict {
                Verdict::Delivered => {
                    let removed: Vec<Item> = q.items.drain(..n).collect();
                    q.stats.sent += n as u64;
                    s.finish(&mut q, &removed);
                    attempt = 0;
                    split_limit = None;
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
                        attempt = 0;
                    } else {
                        q.not_before =
                            Some(now + s.config.retry.backoff(attempt, crate::util::jitter_u64()));
                        attempt = attempt.saturating_add(1);
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
                        split_limit = Some(n / 2);
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
        s.settle();
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
    }
}

type Batch = [(Cow<'static, str>, Arc<[u8]>, Tag)];

/// One item goes to its own route; several events go as one bulk body.
fn compose(batch: &Batch) -> (String, Vec<u8>) {
    match batch {
        [(path, body, _)] if path == wire::path::EVENT => {
            let mut out = Vec::with_capacity(body.len() + 80);
            wire::complete_event(body, &mut out);
            (path.to_string(), out)
        }
        [(path, body, _)] => (path.to_string(), body.to_vec()),
        _ => {
            let bodies: Vec<&[u8]> = batch.iter().map(|(_, b, _)| &b[..]).collect();
            (
                wire::path::EVENTS_BULK.to_string(),
                wire::bulk_events(&bodies),
            )
        }
    }
}
