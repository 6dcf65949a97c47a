//! The queue's way to disk, on the writer thread: it maps the queue file's
//! tail ahead of the callers (see [`window`](super::window)), moves in what
//! had to wait in memory, pushes the records to the disk for power loss once
//! per `persist_interval` (at once with sync durability), and compacts.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::store::{self, Tail};
use super::unwritten::Moved;
use super::Shared;

/// Records moved from memory into the window per hold of the queue lock.
const MOVE_STEP: usize = 256 * 1024;
/// Windows mapped and memory moved in one go, at most (the writer comes
/// back at once when more is left).
const MAX_STEPS: usize = 64;

impl Shared {
    /// Puts every record in the queue file and syncs it. On failure they
    /// are kept, ahead of newer ones, for the next try, and it is reported.
    /// Returns whether everything was written.
    pub(super) fn write_unwritten(&self) -> bool {
        self.write_unwritten_by(None)
    }

    /// As [`write_unwritten`](Self::write_unwritten), giving up at
    /// `deadline` on the file or the queue if another thread holds them.
    pub(super) fn write_unwritten_by(&self, deadline: Option<Instant>) -> bool {
        self.write(deadline, true)
    }

    /// The writer thread's round: a window ready for the callers and
    /// memory moved into it, but a sync only once per `persist_interval`,
    /// which is all power loss is promised.
    pub(super) fn write_in_round(&self) {
        let due = self.last_sync.lock().elapsed() >= self.config.persist_interval;
        self.write(None, due);
    }

    fn write(&self, deadline: Option<Instant>, sync: bool) -> bool {
        let Some(mut tail) = self.store.tail_by(deadline) else {
            return false; // the deadline passed
        };
        if !tail.is_open() {
            // Closed at shutdown: what is left is in the file already, or
            // in memory, which no one can write now.
            return false;
        }
        let placed = self.place(&mut tail, deadline);
        if placed.is_some_and(|all| !all) {
            // Come back within the interval, not only when urged.
            self.persist_later();
        }
        let synced = !sync || self.sync(tail, deadline);
        placed == Some(true) && synced
    }

    /// Maps a window when one is wanted and moves the records waiting in
    /// memory into it. Some(whether memory is empty now); None when the
    /// deadline passed.
    fn place(&self, tail: &mut Tail<'_>, deadline: Option<Instant>) -> Option<bool> {
        for _ in 0..MAX_STEPS {
            let wanted = self.queue.lock_by(deadline)?.unwritten.wants_window();
            if let Some((room, end)) = wanted {
                if !self.map_window(tail, room, end) {
                    return Some(self.append_memory(tail));
                }
            }
            let moved = self.queue.lock_by(deadline)?.unwritten.move_in(MOVE_STEP);
            match moved {
                Moved::All => return Some(true),
                Moved::Freed => {
                    // A burst had outrun the writer: give its memory back.
                    crate::platform::heap::return_free_memory();
                    return Some(true);
                }
                Moved::Some | Moved::None => continue,
            }
        }
        self.write_now();
        Some(self.queue.lock_by(deadline)?.unwritten.memory_bytes() == 0)
    }

    /// Maps the window after the records (`end`, or the file's end without
    /// one) and puts it in use; false (reported once) when it cannot.
    fn map_window(&self, tail: &mut Tail<'_>, room: usize, end: Option<u64>) -> bool {
        let mapped = tail.map_window(end.unwrap_or(tail.end()), room);
        let mut q = self.queue.lock();
        match mapped {
            Ok(window) => match q.unwritten.install(window) {
                Ok(old) => {
                    drop(q);
                    if let Some(mut old) = old {
                        // Its pages go to the disk with the next sync; here
                        // they are only started on their way (Windows keeps
                        // a view's pages until it is flushed).
                        let _ = old.unflushed().start();
                        self.unsynced.store(true, Ordering::Release);
                    }
                    true
                }
                // Callers moved past where it was asked for; asked again.
                Err(_) => true,
            },
            Err(e) => {
                let first = q.unwritten.stall();
                drop(q);
                if first {
                    self.diag.report(format!(
                        "queue write failed: {} cannot take more records ({e}); they wait in \
                         memory, within the queue bounds, and are written when it can",
                        tail.path().display()
                    ));
                }
                false
            }
        }
    }

    /// Where no window can be mapped and none is in use (a file system
    /// without mappings), writes the records in memory at the file's end.
    /// Returns whether memory is empty now.
    fn append_memory(&self, tail: &mut Tail<'_>) -> bool {
        let taken = {
            let mut q = self.queue.lock();
            if q.unwritten.end().is_some() {
                return q.unwritten.memory_bytes() == 0;
            }
            q.unwritten.take_memory()
        };
        if taken.is_empty() {
            return true;
        }
        match tail.append(&taken) {
            Ok(()) => {
                self.unsynced.store(true, Ordering::Release);
                self.queue.lock().unwritten.memory_bytes() == 0
            }
            Err(_) => {
                // Reported when the window could not be mapped.
                self.queue.lock().unwritten.give_back(taken);
                false
            }
        }
    }

    /// Pushes the window's new records and the file to the disk; true when
    /// that worked (or there was nothing new). The disk's time is spent
    /// without the file lock, which read-back needs.
    fn sync(&self, tail: Tail<'_>, deadline: Option<Instant>) -> bool {
        let Some(unflushed) = self
            .queue
            .lock_by(deadline)
            .map(|mut q| q.unwritten.unflushed())
        else {
            return false;
        };
        let new_in_window = unflushed.as_ref().is_some_and(|u| !u.is_empty());
        // Written since the last sync outside the window (a retired window,
        // an append): the file's sync covers those.
        let written_elsewhere = self.unsynced.swap(false, Ordering::AcqRel);
        if !new_in_window && !written_elsewhere {
            return true;
        }
        let file = tail.sync_handle();
        drop(tail);
        let synced = unflushed
            .as_ref()
            .map_or(Ok(()), |u| u.flush())
            .and_then(|()| file.and_then(|f| f.map_or(Ok(()), |f| f.sync_data())));
        match synced {
            Ok(()) => {
                *self.last_sync.lock() = Instant::now();
                true
            }
            Err(e) => {
                self.unsynced.store(true, Ordering::Release);
                if let Some(u) = &unflushed {
                    self.queue.lock().unwritten.flush_failed(u);
                }
                self.diag
                    .report(format!("queue sync failed (will retry): {e}"));
                false
            }
        }
    }

    /// Has the writer come back within its interval.
    fn persist_later(&self) {
        if let Some(flag) = self.dirty.get() {
            flag.mark();
        }
    }

    /// Has the writer come without waiting out its interval: the window is
    /// filling up, or records wait in memory.
    pub(super) fn write_now(&self) {
        if let Some(flag) = self.dirty.get() {
            flag.urge();
        }
    }

    /// With sync durability, the records go to disk now; else within
    /// persist_interval through the writer thread, which also compacts when
    /// due (never the caller's thread: a compaction copies the backlog).
    /// Returns false when sync durability asked for the write and it failed.
    pub(super) fn persist_soon(&self) -> bool {
        let written = !self.config.sync || self.write_unwritten();
        self.persist_later();
        written
    }

    /// Has the writer compact the queue file when enough of it is done. The
    /// delivery thread only asks: a compaction copies the backlog, and
    /// sending goes on from the head meanwhile.
    pub(super) fn compact_soon(&self) {
        if self.queue.lock().compact_due {
            self.write_now();
        }
    }

    pub(super) fn compact_if_due(&self) {
        if !std::mem::take(&mut self.queue.lock().compact_due) {
            return;
        }
        let result = self.store.rewrite(
            |out, file_end| {
                let q = self.queue.lock();
                for i in &q.items {
                    store::encode_item(i.seq, &i.path, &i.body, out);
                }
                let spilled = store::spill_range(q.spilled.front().zip(q.spilled.back()));
                (spilled, q.unwritten.end().unwrap_or(file_end))
            },
            || self.queue.lock().unwritten.take_window(),
        );
        if let Err(e) = result {
            self.diag
                .report(format!("queue compaction failed (will retry): {e}"));
        }
        // The window went with the old file: callers' records wait in memory
        // until the writer maps the next one, which it does at once.
        self.write_now();
    }
}
