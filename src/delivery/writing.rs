//! The queue's way to disk: the writer's appends of the journal (and what
//! waits in memory) to the queue file, sync durability, and compaction.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{store, Shared};

impl Shared {
    /// Appends the unwritten records to the queue file and syncs them. On
    /// failure they are kept, ahead of newer ones, for the next write, and
    /// it is reported. Returns whether everything was written.
    pub(super) fn write_unwritten(&self) -> bool {
        self.write_unwritten_by(None)
    }

    /// As [`write_unwritten`](Self::write_unwritten), giving up at
    /// `deadline` on the file or the queue if another thread holds them.
    pub(super) fn write_unwritten_by(&self, deadline: Option<Instant>) -> bool {
        self.write(deadline, true)
    }

    /// The writer thread's round: appends what is unwritten (freeing the
    /// journal for the callers), but syncs only once per
    /// `persist_interval`, which is all power loss is promised: a burst
    /// that has the writer append often does not pay an fsync each time.
    pub(super) fn write_in_round(&self) {
        let due = self.last_sync.lock().elapsed() >= self.config.persist_interval;
        self.write(None, due);
    }

    fn write(&self, deadline: Option<Instant>, sync: bool) -> bool {
        let (written, synced) = self.append_unwritten(deadline, sync);
        if synced {
            // That sync covered every earlier append to the file too.
            self.unsynced.store(false, Ordering::Release);
        } else if sync && written && self.unsynced.swap(false, Ordering::AcqRel) {
            // Appended without a sync before, nothing new now: sync.
            if let Err(e) = self.store.sync_by(deadline) {
                self.unsynced.store(true, Ordering::Release);
                self.diag
                    .report(format!("queue sync failed (will retry): {e}"));
                return false;
            }
        }
        if sync && written {
            *self.last_sync.lock() = Instant::now();
        }
        written
    }

    /// Returns whether everything was written, and whether an append synced.
    fn append_unwritten(&self, deadline: Option<Instant>, sync: bool) -> (bool, bool) {
        let mut synced = false;
        // A failed half with the memory that failed behind it, the active
        // half, then memory: at most three appends bring everything up to
        // date (one more when only failed memory was left).
        for _ in 0..4 {
            let taken = self.store.append_with(
                || {
                    let q = self.queue.lock_by(deadline);
                    q.map(|mut q| q.unwritten.take())
                },
                sync,
                deadline,
            );
            let Some((Some(mut job), result)) = taken else {
                return (false, synced); // the deadline passed
            };
            let empty = job.is_empty();
            let written = matches!(result, Ok(true));
            if written {
                job.written();
                synced |= sync && !empty;
                if !sync && !empty {
                    // Synced by a round within persist_interval.
                    self.unsynced.store(true, Ordering::Release);
                    self.persist_later();
                }
            }
            let burst = written && job.holds_a_burst();
            let burst_over = {
                let mut q = self.queue.lock();
                q.unwritten.give_back(job, written);
                q.unwritten.memory_bytes() == 0
            };
            if burst && burst_over {
                crate::platform::heap::return_free_memory();
            }
            match result {
                Ok(true) if empty => return (true, synced),
                Ok(true) => continue,
                // Closed at shutdown: what is left stays in the journal,
                // which the segment's next opener reads back.
                Ok(false) => return (false, synced),
                Err(e) => {
                    self.diag.report(format!(
                        "queue write failed (the records are kept and written again later): {e}"
                    ));
                    return (false, synced);
                }
            }
        }
        (true, synced)
    }

    /// Has the writer come back within its interval.
    fn persist_later(&self) {
        if let Some(flag) = self.dirty.get() {
            flag.mark();
        }
    }

    /// Has the writer write without waiting out its interval: the journal's
    /// active half is filling up (or records wait in memory), and the writer
    /// frees it by swapping the halves.
    pub(super) fn write_now(&self) {
        if let Some(flag) = self.dirty.get() {
            flag.urge();
        }
    }

    /// Unwritten records go to disk now with sync durability, else within
    /// persist_interval through the writer thread, which also compacts when
    /// due (never the caller's thread: a compaction copies the backlog).
    /// Returns false when sync durability asked for the write and it failed.
    pub(super) fn persist_soon(&self) -> bool {
        let written = !self.config.sync || self.write_unwritten();
        if let Some(flag) = self.dirty.get() {
            flag.mark();
        }
        written
    }

    pub(super) fn compact_if_due(&self) {
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
