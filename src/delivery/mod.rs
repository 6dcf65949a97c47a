//! Delivery: the core hands requests to a [`Delivery`] and never waits on the
//! network. Requests are kept in a crash-safe file queue ([`store`]) and sent
//! in call order by one background thread: consecutive events are coalesced
//! into `/api/events/bulk` batches, other calls go to their own routes in
//! between, and failures follow the retry policy ([`policy`]).

mod adopt;
mod config;
pub mod lanes;
pub mod policy;
mod queue;
mod request;
pub mod segments;
mod stats;
pub mod store;
pub mod transport;
mod unwritten;
pub mod window;
mod worker;
mod writing;

pub use config::Config;
pub use request::{DropReason, Dropped, OnComplete, Outcome, Request, Tag};
pub use stats::Stats;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sync::{Condvar, Mutex};

use crate::diag::Diagnostics;
use crate::error::Result;
use crate::persister::Persister;
use queue::{Item, Queue};
use store::QueueStore;
use unwritten::Unwritten;

/// After a failed read-back of spilled items, the worker tries again after this.
const REFILL_RETRY: Duration = Duration::from_secs(1);
/// Records not yet written beyond this are written at once, not at the
/// writer's next interval.
const WRITE_NOW_BYTES: usize = 512 * 1024;

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
    dirty: std::sync::OnceLock<crate::persister::DirtyFlag>,
    on_complete: OnComplete,
    adoption: adopt::Adoption,
    /// When the queue file was last synced, and whether records reached it
    /// since outside the current window (a retired window, an append),
    /// which only a sync of the file makes durable (see `write_in_round`).
    last_sync: Mutex<Instant>,
    unsynced: AtomicBool,
    /// While set, nothing is sent: the worker discards what reaches the
    /// queue (items adopted from ended processes) as `opted_out`.
    opted_out: AtomicBool,
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
            unwritten: Unwritten::default(),
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
            dirty: std::sync::OnceLock::new(),
            on_complete,
            adoption: adopt::Adoption::default(),
            last_sync: Mutex::new(Instant::now()),
            unsynced: AtomicBool::new(false),
            opted_out: AtomicBool::new(config.opted_out),
            config,
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
                s.write_in_round();
                s.compact_if_due();
            }
        })
        .map_err(internal)?;
        let _ = shared.dirty.set(writer.flag());
        // The first window: the main lane maps it here, within trodo_init's
        // storage set-up, so the first calls' records are durable at once;
        // a user lane, started by a caller's first per-user call, leaves it
        // to the writer (those records wait in memory until it is mapped).
        match shared.config.adopt {
            true => shared.write_in_round(),
            false => shared.write_now(),
        }
        let s = shared.clone();
        let worker = std::thread::Builder::new()
            .name("trodo-delivery".into())
            .spawn(move || worker::run(&s))
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
        // what it leaves is in the queue file for the segment's next opener.
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
        let (empty, window) = match s.queue.lock_by(Some(deadline)) {
            Some(mut q) => (q.len() == 0, q.unwritten.take_window()),
            None => (false, None),
        };
        s.store.close_by(
            written && empty && adoption_idle.is_some(),
            Some(deadline),
            window,
        );
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
        let tags = s.discard_queued(&mut s.queue.lock());
        let _ = s.persist_soon(); // the discard marks are not the caller's records
        s.done.notify_all();
        Dropped::tags(tags, DropReason::OptedOut)
    }

    /// Turns sending off (on: what is queued is discarded now, and what
    /// reaches the queue later, from ended processes, when it arrives) or
    /// back on. Returns what was discarded now.
    pub fn set_opted_out(&self, on: bool) -> Dropped {
        self.shared.opted_out.store(on, Ordering::Release);
        match on {
            true => self.discard_all(),
            false => Dropped::default(),
        }
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

/// Stopping (threads ending, the last writes, closing the file) takes what
/// is left of a shutdown's timeout, but at least this: a thread that is
/// merely waking up, or a write in progress, is not abandoned for a zero
/// timeout. Only something stuck (a long compaction, a lock another
/// process holds) is left behind, and its work is in the queue file.
pub const STOP_GRACE: Duration = Duration::from_millis(250);

/// The deadline for stopping, for a shutdown that started at `start`.
pub fn stop_deadline(start: Instant, timeout: Duration) -> Instant {
    (start + timeout).max(Instant::now() + STOP_GRACE)
}
