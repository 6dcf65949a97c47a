//! The queue's bookkeeping state: the items held in memory (the head), the
//! ones waiting only on disk (spilled), what is in flight, and the records
//! on their way to the queue file. Changed under the queue lock.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::sync::MutexGuard;

use super::store::{self, SpillRef, StoredItem};
use super::unwritten::Unwritten;
use super::{DropReason, Dropped, Outcome, Shared, Stats, Tag, REFILL_RETRY, WRITE_NOW_BYTES};
use crate::wire;

pub(super) struct Item {
    pub(super) seq: u64,
    pub(super) path: Cow<'static, str>,
    pub(super) body: Arc<[u8]>,
    pub(super) tag: Tag,
    pub(super) enqueued: Instant,
    pub(super) first_failure: Option<Instant>,
}

/// A path read back from disk. Events are nearly every item: they get no
/// string of their own.
pub(super) fn stored_path(path: String) -> Cow<'static, str> {
    if path == wire::path::EVENT {
        Cow::Borrowed(wire::path::EVENT)
    } else {
        Cow::Owned(path)
    }
}

impl Item {
    /// An item read back from disk (at start or from the spilled part).
    pub(super) fn recovered(stored: StoredItem, tag: Tag, enqueued: Instant) -> Item {
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

    pub(super) fn disk_len(&self) -> u64 {
        store::item_record_len(&self.path, &self.body)
    }
}

pub(super) struct Queue {
    /// The head of the queue, bodies in memory.
    pub(super) items: VecDeque<Item>,
    /// Body bytes of `items`.
    pub(super) head_bytes: u64,
    /// The rest of the queue, after `items`: only on disk (or in `unwritten`).
    pub(super) spilled: VecDeque<SpillRef>,
    /// Tags of spilled requests, by seq (rare: only identify has one).
    pub(super) spilled_tags: VecDeque<(u64, Tag)>,
    /// No read-back of spilled items before this (one just failed).
    pub(super) refill_not_before: Option<Instant>,
    /// Body bytes of every queued item, in memory or spilled.
    pub(super) bytes: u64,
    /// How many items at the front are being sent.
    pub(super) in_flight: usize,
    pub(super) last_seq: u64,
    /// Items up to this seq are due now (a flush asked for them).
    pub(super) flush_through: u64,
    /// No request before this (backoff or a 429 pause).
    pub(super) not_before: Option<Instant>,
    /// Where callers put their records (items and done markers): the
    /// queue file's mapped tail, or memory when it has no room.
    pub(super) unwritten: Unwritten,
    /// Enough of the file is done records: rewrite it (in `compact_if_due`).
    pub(super) compact_due: bool,
    /// Consecutive events at the back of the queue.
    pub(super) tail_events: usize,
    /// Opt-out discarded everything up to here; an item then in flight is
    /// dropped too unless that attempt delivers it.
    pub(super) discard_through: u64,
    pub(super) stats: Stats,
}

impl Queue {
    /// The oldest item not yet finished.
    pub(super) fn front_seq(&self) -> Option<u64> {
        self.items
            .front()
            .map(|i| i.seq)
            .or_else(|| self.spilled.front().map(|r| r.seq()))
    }

    pub(super) fn len(&self) -> usize {
        self.items.len() + self.spilled.len()
    }

    /// The spilled items to read back now, if the head has drained enough.
    pub(super) fn refill_wanted(&self, now: Instant, budget: u64) -> Option<Vec<u64>> {
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

    pub(super) fn push_head(&mut self, item: Item) {
        self.head_bytes += item.body.len() as u64;
        self.items.push_back(item);
    }

    /// Tags of spilled requests up to `seq`, removed.
    pub(super) fn take_spilled_tags(&mut self, through: u64) -> Vec<Tag> {
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

/// The bookkeeping on the queue: what enters, what leaves, what the bounds
/// drop. It calls nobody: what it drops is returned, to be told once no lock
/// is held.
impl Shared {
    pub(super) fn settle(&self, dropped: Dropped) {
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
    pub(super) fn push(
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
        q.unwritten.add_item(seq, &path, &body);
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

    /// Drops the oldest items not in flight while over a bound, first from
    /// the head, then from the spilled part. Returns the dropped tags.
    pub(super) fn enforce_bounds(&self, q: &mut Queue) -> Vec<Tag> {
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
    pub(super) fn drop_spilled(&self, q: &mut Queue, n: usize, reason: DropReason) -> Vec<Tag> {
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
        q.unwritten.add_done(first, last);
        q.compact_due |= self.store.add_dead(dead, q.bytes);
        let tags = q.take_spilled_tags(last);
        tags.into_iter().filter(|t| *t != Tag::None).collect()
    }

    /// Reads the `wanted` spilled items back into the head (on the worker,
    /// with the queue unlocked while it reads). Items dropped meanwhile are
    /// skipped. Items not found are dropped as unreadable: then the tags of
    /// those the core asked to hear about are returned.
    pub(super) fn refill(&self, q: &mut MutexGuard<'_, Queue>, wanted: &[u64]) -> Option<Vec<Tag>> {
        let read = MutexGuard::unlocked(q, || {
            self.store.read_spilled(
                wanted,
                |file_end| self.queue.lock().unwritten.end().unwrap_or(file_end),
                |visit| visit(self.queue.lock().unwritten.memory()),
            )
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
    pub(super) fn drop_items(
        &self,
        q: &mut Queue,
        at: usize,
        n: usize,
        reason: DropReason,
    ) -> Vec<Tag> {
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

    /// Drops everything queued and not in flight as `opted_out` (the item in
    /// flight is dropped when its answer is not a success).
    pub(super) fn discard_queued(&self, q: &mut Queue) -> Vec<Tag> {
        q.discard_through = q.last_seq;
        let (at, n, spilled) = (q.in_flight, q.items.len() - q.in_flight, q.spilled.len());
        let mut tags = self.drop_items(q, at, n, DropReason::OptedOut);
        tags.extend(self.drop_spilled(q, spilled, DropReason::OptedOut));
        tags
    }

    /// Bookkeeping for items that left the queue: bytes and the done marker
    /// (written by [`persist_soon`](Self::persist_soon), after the queue lock is released).
    pub(super) fn finish(&self, q: &mut Queue, removed: &[Item]) {
        let mut dead = 0;
        for item in removed {
            q.bytes -= item.body.len() as u64;
            q.head_bytes -= item.body.len() as u64;
            dead += item.disk_len();
        }
        if let (Some(first), Some(last)) = (removed.first(), removed.last()) {
            let (first, last) = (first.seq, last.seq);
            q.unwritten.add_done(first, last);
        }
        q.compact_due |= self.store.add_dead(dead, q.bytes);
    }
}
