//! Delivery: the core hands requests to a [`Delivery`] and never waits on the
//! network. Requests are kept in a crash-safe file queue ([`store`]) and sent
//! in call order by one background thread: consecutive events are coalesced
//! into `/api/events/bulk` batches, other calls go to their own routes in
//! between, and failures follow the retry policy ([`policy`]).

mod adopt;
pub mod journal;
pub mod lanes;
pub mod policy;
pub mod segments;
pub mod store;
pub mod transport;
mod unwritten;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sync::{Condvar, Mutex, MutexGuard};
use serde_json::{json, Value};

use crate::diag::Diagnostics;
use crate::error::Result;
use crate::state::Persister;
use crate::wire;
use policy::{RetryPolicy, Verdict};
use store::{QueueStore, SpillRef, StoredItem};
use transport::Transport;
use unwritten::Unwritten;

/// Largest batch body before compression (`trodo-wire.md`).
const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// After a failed read-back of spilled items, the worker tries again after this.
const REFILL_RETRY: Duration = Duration::from_secs(1);
/// Records not yet written beyond this are written at once, not at the
/// writer's next interval.
const WRITE_NOW_BYTES: usize = 512 * 1024;

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
    Identify {
        token: u64,
        epoch: u64,
    },
    /// A server-mode user's identify (`token` names the user and the id).
    UserIdentify {
        token: u64,
    },
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
    /// Kept only on disk and then not found there again (the file was
    /// damaged or removed while running).
    Unreadable,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Rejected => "rejected",
            DropReason::TooLarge => "too_large",
            DropReason::GaveUp => "gave_up",
            DropReason::QueueFull => "queue_full",
            DropReason::OptedOut => "opted_out",
            DropReason::Unreadable => "unreadable",
        }
    }
}

/// Told how a tagged request ended (on the delivery thread, or the thread
/// whose call made the queue drop it, once that call holds no lock).
pub type OnComplete = Arc<dyn Fn(Tag, Outcome<'_>) + Send + Sync>;

/// What a queue operation on a caller's thread dropped: the tagged requests
/// whose end the core must hear of, and the reports for the error callback.
/// The queue itself calls nobody; the caller hands this to
/// [`Delivery::settle`] once it holds no lock, so no drop can re-enter a
/// lock the caller holds (an opt-out or an overflow dropping a queued
/// identify used to deadlock that way).
#[must_use = "what was dropped must be told once no lock is held (Delivery::settle)"]
#[derive(Debug, Default)]
pub struct Dropped {
    tags: Vec<(Tag, DropReason)>,
    reports: Vec<String>,
}

impl Dropped {
    fn tags(tags: Vec<Tag>, reason: DropReason) -> Dropped {
        Dropped {
            tags: tags.into_iter().map(|t| (t, reason)).collect(),
            reports: Vec::new(),
        }
    }

    /// Adds `other`'s drops after this one's.
    pub fn merge(&mut self, other: Dropped) {
        self.tags.extend(other.tags);
        self.reports.extend(other.reports);
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.reports.is_empty()
    }
}

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
    /// Bodies held in memory: the oldest items up to this many bytes. Later
    /// items stay only on disk until the head has drained to half of it, so a
    /// large offline backlog costs memory only for a small reference per item.
    pub memory_queue_bytes: u64,
    /// Adopt the segments of processes that ended (one queue per process
    /// does it; the per-user lanes leave it to the main one).
    pub adopt: bool,
    /// Take over or adopt orphans at start, not only in the periodic round.
    /// False in a forked child: its siblings are being born, not dead, and
    /// short-lived children adopting at start would re-send in-flight
    /// batches in chains.
    pub adopt_at_start: bool,
    /// Session registrations join event batches: a batch's registrations
    /// are sent first, then its events in bulk (the per-user lanes, where
    /// every new user's first event follows its registration).
    pub registrations_join_batches: bool,
}

impl Config {
    /// Whether an item with `path` and `tag` may go in a batch with others:
    /// events, and in lanes that allow it, untagged session registrations.
    fn joins_batches(&self, path: &str, tag: Tag) -> bool {
        path == wire::path::EVENT
            || (self.registrations_join_batches && path == wire::path::SESSION && tag == Tag::None)
    }

    /// Records held in memory only (the queue file cannot be written) are
    /// cut back to the live items' once they pass this: twice the queue
    /// bounds, counting a record's framing, so memory stays bounded while
    /// the disk keeps failing.
    fn memory_only_limit(&self) -> u64 {
        const FRAMING: u64 = 64;
        (2 * self.max_queue_bytes).saturating_add(FRAMING.saturating_mul(self.max_queue_items))
    }

    /// An enqueue time that makes an item due at once: it was left by an
    /// earlier run, or has waited behind a backlog.
    fn due_now(&self) -> Instant {
        Instant::now()
            .checked_sub(self.flush_interval)
            .unwrap_or_else(Instant::now)
    }
}

/// Counts since start, in items (one event, one call), not requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Waiting, not counting what is in flight.
    pub queued: u64,
    pub queued_bytes: u64,
    /// Bodies held in memory (in flight included); the rest of the queue is
    /// only on disk until the worker reads it back.
    pub queued_memory_bytes: u64,
    pub in_flight: u64,
    pub sent: u64,
    pub dropped_rejected: u64,
    pub dropped_too_large: u64,
    pub dropped_gave_up: u64,
    pub dropped_queue_full: u64,
    pub dropped_opted_out: u64,
    pub dropped_unreadable: u64,
    /// Epoch ms until which a 429 paused sending; 0 when not paused.
    pub paused_until_ms: u64,
    /// Bytes of a damaged queue file that could not be read at start (moved
    /// to queue.corrupt and reported).
    pub corrupt_bytes: u64,
    /// Panics caught on the delivery thread (each reported; it carries on).
    pub worker_panics: u64,
    /// Bytes of records held in memory only (the journal was full, or could
    /// not be made): not yet durable, they die with the process until the
    /// writer has written them.
    pub memory_only_bytes: u64,
}

impl Stats {
    pub fn dropped(&self) -> u64 {
        self.dropped_rejected
            + self.dropped_too_large
            + self.dropped_gave_up
            + self.dropped_queue_full
            + self.dropped_opted_out
            + self.dropped_unreadable
    }

    /// The `trodo_get_stats` object.
    pub fn to_json(&self) -> Value {
        json!({
            "queued": self.queued,
            "queued_bytes": self.queued_bytes,
            "queued_memory_bytes": self.queued_memory_bytes,
            "in_flight": self.in_flight,
            "sent": self.sent,
            "dropped": self.dropped(),
            "dropped_by_reason": {
                "rejected": self.dropped_rejected,
                "too_large": self.dropped_too_large,
                "gave_up": self.dropped_gave_up,
                "queue_full": self.dropped_queue_full,
                "opted_out": self.dropped_opted_out,
                "unreadable": self.dropped_unreadable,
            },
            "paused_until_ms": self.paused_until_ms,
            "corrupt_bytes": self.corrupt_bytes,
            "memory_only_bytes": self.memory_only_bytes,
            "worker_panics": self.worker_panics,
        })
    }

    fn count(&mut self, reason: DropReason, n: u64) {
        match reason {
            DropReason::Rejected => self.dropped_rejected += n,
            DropReason::TooLarge => self.dropped_too_large += n,
            DropReason::GaveUp => self.dropped_gave_up += n,
            DropReason::QueueFull => self.dropped_queue_full += n,
            DropReason::OptedOut => self.dropped_opted_out += n,
            DropReason::Unreadable => self.dropped_unreadable += n,
        }
    }
}

struct Item {
    seq: u64,
    path: Cow<'static, str>,
    body: Arc<[u8]>,
    tag: Tag,
    enqueued: Instant,
    first_failure: Option<Instant>,
}

/// A path read back from disk. Events are nearly every item: they get no
/// string of their own.
fn stored_path(path: String) -> Cow<'static, str> {
    if path == wire::path::EVENT {
        Cow::Borrowed(wire::path::EVENT)
    } else {
        Cow::Owned(path)
    }
}

impl Item {
    /// An item read back from disk (at start or from the spilled part).
    fn recovered(stored: StoredItem, tag: Tag, enqueued: Instant) -> Item {
        let path = stored_path(stored.path);
        Item {
            seq: stored.seq,
            path,
            body: stored.body.into(),
            tag,
            enqueued,
            first_failure: None,
        }
    }

    fn disk_len(&self) -> u64 {
        store::item_record_len(&self.path, &self.body)
    }
}

struct Queue {
    /// The head of the queue, bodies in memory.
    items: VecDeque<Item>,
    /// Body bytes of `items`.
    head_bytes: u64,
    /// The rest of the queue, after `items`: only on disk (or in `unwritten`).
    spilled: VecDeque<SpillRef>,
    /// Tags of spilled requests, by seq (rare: only identify has one).
    spilled_tags: VecDeque<(u64, Tag)>,
    /// No read-back of spilled items before this (one just failed).
    refill_not_before: Option<Instant>,
    /// Body bytes of every queued item, in memory or spilled.
    bytes: u64,
    /// How many items at the front are being sent.
    in_flight: usize,
    last_seq: u64,
    /// Items up to this seq are due now (a flush asked for them).
    flush_through: u64,
    /// No request before this (backoff or a 429 pause).
    not_before: Option<Instant>,
    /// Records (items and done markers) not yet in the queue file: in the
    /// mapped journal, or in memory when it is full.
    unwritten: Unwritten,
    /// Enough of the file is done records: rewrite it (in `compact_if_due`).
    compact_due: bool,
    /// Consecutive events at the back of the queue.
    tail_events: usize,
    /// Opt-out discarded everything up to here; an item then in flight is
    /// dropped too unless that attempt delivers it.
    discard_through: u64,
    stats: Stats,
}

impl Queue {
    /// The oldest item not yet finished.
    fn front_seq(&self) -> Option<u64> {
        self.items
            .front()
            .map(|i| i.seq)
            .or_else(|| self.spilled.front().map(|r| r.seq()))
    }

    fn len(&self) -> usize {
        self.items.len() + self.spilled.len()
    }

    /// The spilled items to read back now, if the head has drained enough.
    fn refill_wanted(&self, now: Instant, budget: u64) -> Option<Vec<u64>> {
        if self.spilled.is_empty()
            || self.head_bytes >= budget / 2
            || self.refill_not_before.is_some_and(|t| t > now)
        {
            return None;
        }
        let mut room = budget - self.head_bytes;
        let mut wanted = Vec::new();
        for r in &self.spilled {
            if !wanted.is_empty() && r.body_len() > room {
                break;
            }
            room = room.saturating_sub(r.body_len());
            wanted.push(r.seq());
        }
        Some(wanted)
    }

    fn push_head(&mut self, item: Item) {
        self.head_bytes += item.body.len() as u64;
        self.items.push_back(item);
    }

    /// Tags of spilled requests up to `seq`, removed.
    fn take_spilled_tags(&mut self, through: u64) -> Vec<Tag> {
        let mut tags = Vec::new();
        while let Some(&(seq, tag)) = self.spilled_tags.front() {
            if seq > through {
                break;
            }
            self.spilled_tags.pop_front();
            tags.push(tag);
        }
        tags
    }
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
    on_complete: OnComplete,
    adoption: adopt::Adoption,
}

pub struct Delivery {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
    writer: Mutex<Option<Persister>>,
    adopter: Mutex<Option<JoinHandle<()>>>,
}

impl Delivery {
    /// Opens a queue segment under `storage_dir` (reporting any damage) and
    /// starts the writer, delivery and adopter threads. What an earlier run
    /// left is sent first.
    pub fn start(
        config: Config,
        diag: Arc<Diagnostics>,
        on_complete: OnComplete,
    ) -> Result<Delivery> {
        let (store, recovered) = match config.adopt_at_start {
            true => QueueStore::open_in(&config.storage_dir, config.memory_queue_bytes)?,
            false => QueueStore::open_new(&config.storage_dir, config.memory_queue_bytes)?,
        };
        for report in recovered.damage.iter().chain(&recovered.skipped) {
            diag.report(report.clone());
        }
        // Left by an earlier run: due at once.
        let due = config.due_now();
        let mut queue = Queue {
            items: VecDeque::with_capacity(recovered.items.len()),
            head_bytes: 0,
            bytes: recovered.spilled.iter().map(|r| r.body_len()).sum(),
            spilled: recovered.spilled.into(),
            spilled_tags: VecDeque::new(),
            refill_not_before: None,
            in_flight: 0,
            last_seq: recovered.last_seq,
            flush_through: 0,
            not_before: None,
            unwritten: Unwritten::new(recovered.journal),
            compact_due: false,
            tail_events: 0,
            discard_through: 0,
            stats: Stats {
                corrupt_bytes: recovered.damaged_bytes,
                ..Stats::default()
            },
        };
        for stored in recovered.items {
            queue.bytes += stored.body.len() as u64;
            queue.push_head(Item::recovered(stored, Tag::None, due));
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(queue),
            work: Condvar::new(),
            done: Condvar::new(),
            stop: AtomicBool::new(false),
            store,
            diag,
            config,
            dirty: std::sync::OnceLock::new(),
            on_complete,
            adoption: adopt::Adoption::default(),
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
                s.compact_if_due();
            }
        })
        .map_err(internal)?;
        let _ = shared.dirty.set(writer.flag());
        let s = shared.clone();
        let worker = std::thread::Builder::new()
            .name("trodo-delivery".into())
            .spawn(move || run(&s))
            .map_err(internal)?;
        let adopter = match shared.config.adopt {
            true => Some(adopt::start(&shared).map_err(internal)?),
            false => None,
        };
        Ok(Delivery {
            shared,
            worker: Mutex::new(Some(worker)),
            writer: Mutex::new(Some(writer)),
            adopter: Mutex::new(adopter),
        })
    }

    /// Queues a request; returns at once (after the disk write with `sync`),
    /// with what the queue bounds dropped to make room, and whether the
    /// request is as durable as configured (false: `sync` asked for the
    /// write and it failed; the request stays queued, and is written later).
    pub fn enqueue(&self, request: Request) -> (Dropped, bool) {
        let (large, dropped) = self.shared.push(
            Cow::Borrowed(request.path),
            request.body.into(),
            request.tag,
            Instant::now(),
        );
        let durable = self.shared.persist_soon();
        if large {
            self.shared.write_now();
        }
        (dropped, durable)
    }

    /// Tells the core and the error callback what a call on the caller's
    /// thread dropped. The caller must hold no lock of its own.
    pub fn settle(&self, dropped: Dropped) {
        self.shared.settle(dropped);
    }

    /// Waits until everything enqueued before this call, and everything
    /// left by processes that have ended, has been sent or dropped; false
    /// when `timeout` passed first. When it returns true, that is on disk
    /// too: a process that then exits at once (`_exit` in a forked worker)
    /// leaves nothing that would be sent again.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let adopted = !self.shared.config.adopt || self.shared.adopt_orphans(Some(deadline));
        let flushed = self.flush_until(deadline) && adopted;
        if flushed {
            // A failed write is reported and retried; what was sent stays sent.
            self.shared.write_unwritten();
        }
        flushed
    }

    fn flush_until(&self, deadline: Instant) -> bool {
        let s = &*self.shared;
        let mut q = s.queue.lock();
        let target = q.last_seq;
        q.flush_through = q.flush_through.max(target);
        s.work.notify_one();
        while q.front_seq().is_some_and(|seq| seq <= target) {
            if s.done.wait_until(&mut q, deadline).timed_out() {
                return q.front_seq().is_none_or(|seq| seq > target);
            }
        }
        true
    }

    /// Flushes for at most `timeout`, then stops. What is still queued stays
    /// on disk for the next start (or another process on the directory).
    /// Returns whether the flush finished.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let deadline = stop_deadline(Instant::now(), timeout);
        let flushed = self.flush(timeout);
        let s = &*self.shared;
        s.stop.store(true, Ordering::Release);
        s.work.notify_all();
        s.adoption.stop();
        // Nothing below waits past the deadline: a thread still busy then (a
        // long compaction, a stuck disk) is left to finish on its own, and
        // what it leaves is in the journal for the segment's next opener.
        // Once the adoption lock is had, no adoption is under way, and after
        // the stop none starts: then an empty segment may be removed.
        let adoption_idle = s.adoption.idle_by(deadline);
        if let Some(a) = self.adopter.lock().take() {
            crate::util::join_by(a, Some(deadline));
        }
        if let Some(mut w) = self.writer.lock().take() {
            w.stop_by(Some(deadline));
        }
        let written = s.write_unwritten_by(Some(deadline));
        let empty = s.queue.lock().len() == 0;
        s.store
            .close_by(written && empty && adoption_idle.is_some(), Some(deadline));
        drop(adoption_idle);
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

    /// Writes the records not yet on disk, giving up at `deadline` on the
    /// queue or the file if another thread holds them: for process exit.
    pub fn persist_by(&self, deadline: Instant) {
        self.shared.write_unwritten_by(Some(deadline));
    }

    /// Discards everything queued and not in flight (opt-out); returns it
    /// for [`settle`](Self::settle).
    pub fn discard_all(&self) -> Dropped {
        let s = &*self.shared;
        let mut q = s.queue.lock();
        q.discard_through = q.last_seq;
        let (at, n, spilled) = (q.in_flight, q.items.len() - q.in_flight, q.spilled.len());
        let mut tags = s.drop_items(&mut q, at, n, DropReason::OptedOut);
        tags.extend(s.drop_spilled(&mut q, spilled, DropReason::OptedOut));
        drop(q);
        let _ = s.persist_soon(); // the discard marks are not the caller's records
        s.done.notify_all();
        Dropped::tags(tags, DropReason::OptedOut)
    }

    pub fn stats(&self) -> Stats {
        let q = self.shared.queue.lock();
        let mut st = q.stats.clone();
        st.in_flight = q.in_flight as u64;
        st.queued = (q.len() - q.in_flight) as u64;
        st.queued_memory_bytes = q.head_bytes;
        st.memory_only_bytes = q.unwritten.memory_bytes() as u64;
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
        self.shared.adoption.stop();
    }
}

impl Shared {
    fn settle(&self, dropped: Dropped) {
        for (tag, reason) in dropped.tags {
            (self.on_complete)(tag, Outcome::Dropped(reason));
        }
        for report in dropped.reports {
            self.diag.report(report);
        }
    }

    /// Queues one item (a new request, or one adopted from an ended process).
    /// Returns whether the records not yet written have grown past
    /// [`WRITE_NOW_BYTES`], and what the queue bounds dropped (told by the
    /// caller once it holds no lock).
    fn push(
        &self,
        path: Cow<'static, str>,
        body: Arc<[u8]>,
        tag: Tag,
        enqueued: Instant,
    ) -> (bool, Dropped) {
        let mut q = self.queue.lock();
        q.last_seq += 1;
        let seq = q.last_seq;
        // The worker only needs waking when this item changes what it waits
        // for: an empty queue, another call, or a batch that just filled up.
        // Otherwise it wakes at the oldest event's flush_interval anyway. Nor
        // while it is sending (it looks again when the answer is in) or
        // waiting out a backoff: a wake per call would cost a context switch
        // per call, and the caller's time.
        let joins = self.config.joins_batches(&path, tag);
        q.tail_events = if joins { q.tail_events + 1 } else { 0 };
        let worker_can_act = q.in_flight == 0 && q.not_before.is_none_or(|t| t <= enqueued);
        let wake = worker_can_act
            && (q.len() == 0
                || !joins
                || q.tail_events.is_multiple_of(self.config.flush_at.max(1)));
        q.unwritten
            .add(|out| store::encode_item(seq, &path, &body, out));
        q.bytes += body.len() as u64;
        // Once one item is spilled, every later one is too, so that the head
        // is always older than the spilled part.
        let spill = !q.spilled.is_empty()
            || (!q.items.is_empty()
                && q.head_bytes + body.len() as u64 > self.config.memory_queue_bytes);
        if spill {
            q.spilled.push_back(SpillRef {
                seq,
                body_len: body.len() as u32,
                path_len: path.len() as u16,
            });
            if tag != Tag::None {
                q.spilled_tags.push_back((seq, tag));
            }
        } else {
            q.push_head(Item {
                seq,
                path,
                body,
                tag,
                enqueued,
                first_failure: None,
            });
        }
        let before = q.stats.dropped_queue_full;
        let dropped_tags = self.enforce_bounds(&mut q);
        let dropped = q.stats.dropped_queue_full - before;
        if q.unwritten.memory_bytes() as u64 > self.config.memory_only_limit() {
            let Queue {
                items,
                spilled,
                unwritten,
                ..
            } = &mut *q;
            unwritten.shrink(|seq| {
                items.binary_search_by_key(&seq, |i| i.seq).is_ok()
                    || spilled.binary_search_by_key(&seq, |r| r.seq()).is_ok()
            });
        }
        let large = q.unwritten.urgent(WRITE_NOW_BYTES);
        drop(q);
        if wake {
            self.work.notify_one();
        }
        let mut out = Dropped::tags(dropped_tags, DropReason::QueueFull);
        if dropped > 0 {
            out.reports.push(format!(
                "queue full (max_queue_items {} / max_queue_bytes {}): dropped the {dropped} oldest item(s) (queue_full)",
                self.config.max_queue_items, self.config.max_queue_bytes
            ));
        }
        (large, out)
    }

    /// Appends the unwritten records to the queue file and syncs them. On
    /// failure they are kept, ahead of newer ones, for the next write, and
    /// it is reported. Returns whether everything was written.
    fn write_unwritten(&self) -> bool {
        self.write_unwritten_by(None)
    }

    /// As [`write_unwritten`](Self::write_unwritten), giving up at
    /// `deadline` on the file or the queue if another thread holds them.
    fn write_unwritten_by(&self, deadline: Option<Instant>) -> bool {
        // A half left by a failed write, the active half, then memory: at
        // most three appends bring everything up to date.
        for _ in 0..3 {
            let taken = self.store.append_with(
                || {
                    let q = match deadline {
                        None => Some(self.queue.lock()),
                        Some(d) => self.queue.try_lock_until(d),
                    };
                    q.map(|mut q| q.unwritten.take())
                },
                true,
                deadline,
            );
            let Some((Some(mut job), result)) = taken else {
                return false; // the deadline passed
            };
            let empty = job.is_empty();
            let written = matches!(result, Ok(true));
            if written {
                job.written();
            }
            self.queue.lock().unwritten.give_back(job, written);
            match result {
                Ok(true) if empty => return true,
                Ok(true) => continue,
                // Closed at shutdown: what is left stays in the journal,
                // which the segment's next opener reads back.
                Ok(false) => return false,
                Err(e) => {
                    self.diag.report(format!(
                        "queue write failed (the records are kept and written again later): {e}"
                    ));
                    return false;
                }
            }
        }
        true
    }

    /// Drops the oldest items not in flight while over a bound, first from
    /// the head, then from the spilled part. Returns the dropped tags.
    fn enforce_bounds(&self, q: &mut Queue) -> Vec<Tag> {
        let (mut items, mut bytes) = (q.len() as u64, q.bytes);
        let over = |items: u64, bytes: u64| {
            items > self.config.max_queue_items || bytes > self.config.max_queue_bytes
        };
        let (mut n, mut m) = (0, 0);
        while over(items, bytes) && q.items.len() > q.in_flight + n {
            bytes -= q.items[q.in_flight + n].body.len() as u64;
            items -= 1;
            n += 1;
        }
        while over(items, bytes) && m < q.spilled.len() {
            bytes -= q.spilled[m].body_len();
            items -= 1;
            m += 1;
        }
        let at = q.in_flight;
        let mut tags = self.drop_items(q, at, n, DropReason::QueueFull);
        tags.extend(self.drop_spilled(q, m, DropReason::QueueFull));
        tags
    }

    /// Removes the `n` oldest spilled items, counts them and marks them done.
    fn drop_spilled(&self, q: &mut Queue, n: usize, reason: DropReason) -> Vec<Tag> {
        let (Some(first), Some(last)) = (q.spilled.front(), q.spilled.get(n.wrapping_sub(1)))
        else {
            return Vec::new();
        };
        let (first, last) = (first.seq(), last.seq());
        let mut dead = 0;
        for r in q.spilled.drain(..n) {
            q.bytes -= r.body_len();
            dead += r.record_len();
        }
        q.stats.count(reason, n as u64);
        q.unwritten.add(|out| store::encode_done(first, last, out));
        q.compact_due |= self.store.add_dead(dead, q.bytes);
        let tags = q.take_spilled_tags(last);
        tags.into_iter().filter(|t| *t != Tag::None).collect()
    }

    /// Reads the `wanted` spilled items back into the head (on the worker,
    /// with the queue unlocked while it reads). Items dropped meanwhile are
    /// skipped. Items not found are dropped as unreadable: then the tags of
    /// those the core asked to hear about are returned.
    fn refill(&self, q: &mut MutexGuard<'_, Queue>, wanted: &[u64]) -> Option<Vec<Tag>> {
        let read = MutexGuard::unlocked(q, || {
            self.store.read_spilled(wanted, |visit| {
                let q = self.queue.lock();
                q.unwritten.parts().into_iter().for_each(visit)
            })
        });
        let found = match read {
            Ok(found) => found,
            Err(e) => {
                q.refill_not_before = Some(Instant::now() + REFILL_RETRY);
                MutexGuard::unlocked(q, || {
                    self.diag.report(format!(
                        "queue read-back failed (will retry; the items stay queued): {e}"
                    ))
                });
                return None;
            }
        };
        q.refill_not_before = None;
        // Waiting behind a backlog: due at once.
        let due = self.config.due_now();
        let mut found = found.into_iter().peekable();
        let (mut lost, mut lost_tags) = (0u64, Vec::new());
        for &seq in wanted {
            let item = found.next_if(|i| i.seq == seq);
            if q.spilled.front().map(|r| r.seq()) != Some(seq) {
                continue; // dropped while the file was read
            }
            match item {
                Some(stored) => {
                    q.spilled.pop_front();
                    let tag = q.take_spilled_tags(seq).pop().unwrap_or(Tag::None);
                    q.push_head(Item::recovered(stored, tag, due));
                }
                None => {
                    lost += 1;
                    lost_tags.extend(self.drop_spilled(q, 1, DropReason::Unreadable));
                }
            }
        }
        if lost == 0 {
            return None;
        }
        MutexGuard::unlocked(q, || {
            self.diag.report(format!(
                "dropped {lost} queued item(s) that could not be read back from the queue file (unreadable)"
            ))
        });
        Some(lost_tags)
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
    /// (written by [`persist_soon`](Self::persist_soon), after the queue lock is released).
    fn finish(&self, q: &mut Queue, removed: &[Item]) {
        let mut dead = 0;
        for item in removed {
            q.bytes -= item.body.len() as u64;
            q.head_bytes -= item.body.len() as u64;
            dead += item.disk_len();
        }
        if let (Some(first), Some(last)) = (removed.first(), removed.last()) {
            let (first, last) = (first.seq, last.seq);
            q.unwritten.add(|out| store::encode_done(first, last, out));
        }
        q.compact_due |= self.store.add_dead(dead, q.bytes);
    }

    /// Has the writer write without waiting out its interval: a burst of
    /// calls then reuses one buffer of about `WRITE_NOW_BYTES` instead of
    /// growing a new one, page by page, for each interval.
    fn write_now(&self) {
        if let Some(flag) = self.dirty.get() {
            flag.urge();
        }
    }

    /// Unwritten records go to disk now with sync durability, else within
    /// persist_interval through the writer thread, which also compacts when
    /// due (never the caller's thread: a compaction copies the backlog).
    /// Returns false when sync durability asked for the write and it failed.
    fn persist_soon(&self) -> bool {
        let written = !self.config.sync || self.write_unwritten();
        if let Some(flag) = self.dirty.get() {
            flag.mark();
        }
        written
    }

    fn compact_if_due(&self) {
        if std::mem::take(&mut self.queue.lock().compact_due) {
            // The snapshot is taken under the file lock, so no record can be
            // appended to the old file after it and be lost by the rename.
            let result = self.store.rewrite_with(|out| {
                let q = self.queue.lock();
                for i in &q.items {
                    store::encode_item(i.seq, &i.path, &i.body, out);
                }
                store::spill_range(q.spilled.front().zip(q.spilled.back()))
            });
            if let Err(e) = result {
                self.diag
                    .report(format!("queue compaction failed (will retry): {e}"));
            }
        }
    }
}

/// Stopping (threads ending, the last writes, closing the file) takes what
/// is left of a shutdown's timeout, but at least this: a thread that is
/// merely waking up, or a write in progress, is not abandoned for a zero
/// timeout. Only something stuck (a long compaction, a lock another
/// process holds) is left behind, and its work is in the journal.
pub const STOP_GRACE: Duration = Duration::from_millis(250);

/// The deadline for stopping, for a shutdown that started at `start`.
pub fn stop_deadline(start: Instant, timeout: Duration) -> Instant {
    (start + timeout).max(Instant::now() + STOP_GRACE)
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
fn run(s: &Shared) {
    yield_to_the_app();
    // Loading the system's trust store is file I/O: done here, not in init.
    let transport = Transport::new(
        &s.config.api_base,
        &s.config.site_id,
        s.config.timeout,
        s.config.ca_file.as_deref(),
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
fn send_next(s: &Shared, transport: &Transport, retry: &mut Retry) -> bool {
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
    s.compact_if_due();
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
        let what = panic
            .downcast_ref::<&str>()
            .map(|m| m.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
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

/// Sending is background work: the worker runs at nice 10, so the threads
/// of the program it serves (a request handler calling libtrodo, say) get
/// the CPU first when it is scarce; idle CPU still goes to sending. It is
/// also SCHED_BATCH: waking up (an answer in, a batch due) does not preempt
/// a running caller, which otherwise lost its CPU hundreds of times in a
/// burst of calls, each costing it its caches too.
#[cfg(target_os = "linux")]
fn yield_to_the_app() {
    // SAFETY: plain integers and a pointer to a local struct in, an int
    // out; on Linux, PRIO_PROCESS / pid 0 is the calling thread only, as is
    // pid 0 for sched_setscheduler. std and libc offer no safe form.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
        let batch = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_BATCH, &batch);
    }
}

#[cfg(not(target_os = "linux"))]
fn yield_to_the_app() {}

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
        crate::files::create_dir(&dir).unwrap();
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
