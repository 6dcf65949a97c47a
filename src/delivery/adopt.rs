//! Adoption: a live process takes over the queue segments of processes that
//! ended without sending everything (killed, crashed, exited while offline,
//! or forked workers that exited), at start, at every flush and shutdown, and
//! every 30 s while it runs. The items join this process's own queue, in
//! their order, and reach its own file before the orphan is removed; a crash
//! in between sends them twice at worst (events carry their insert_id).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sync::{Condvar, Mutex, MutexGuard};

use super::queue::stored_path;
use super::segments::{self, Segment};
use super::{store, Shared, Tag};

const EVERY: Duration = Duration::from_secs(30);
/// Adopted records are written to this process's file every so many items,
/// so a large orphan does not pile up in memory.
const WRITE_EVERY: usize = 1000;

#[derive(Default)]
pub(super) struct Adoption {
    /// Held while adopting (one adoption at a time, so a flush that finds
    /// one running waits for it and then sees what it adopted). Holds the
    /// segments that failed, so they are reported once, not every 30 s.
    failed: Mutex<HashSet<String>>,
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Adoption {
    pub(super) fn stop(&self) {
        *self.stopped.lock() = true;
        self.wake.notify_all();
    }

    /// Waits until `deadline` for no adoption to be under way; while the
    /// returned guard lives, none starts.
    pub(super) fn idle_by(&self, deadline: Instant) -> Option<MutexGuard<'_, HashSet<String>>> {
        self.failed.try_lock_until(deadline)
    }
}

/// The thread that adopts at start (unless the config says not to) and
/// then every 30 s.
pub(super) fn start(shared: &Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
    let s = shared.clone();
    let mut now = s.config.adopt_at_start;
    std::thread::Builder::new()
        .name("trodo-adopt".into())
        .spawn(move || loop {
            if std::mem::replace(&mut now, true) {
                let _ = s.adopt_orphans(None); // cut short only by the stop
            }
            let mut stopped = s.adoption.stopped.lock();
            if !*stopped {
                s.adoption.wake.wait_for(&mut stopped, EVERY);
            }
            if *stopped {
                return;
            }
        })
}

impl Shared {
    /// Adopts every segment in the storage directory whose owner is gone,
    /// until `deadline` (a flush's) if any, and not past a stop. Returns
    /// false when it was cut short with orphans left.
    pub(super) fn adopt_orphans(&self, deadline: Option<Instant>) -> bool {
        // Held while adopting: a flush that finds a round running waits for
        // it, but not past its own deadline.
        let Some(mut failed) = self.adoption.failed.lock_by(deadline) else {
            return false;
        };
        let dir = &self.config.storage_dir;
        let stems = match segments::stems(dir) {
            Ok(stems) => stems,
            Err(e) => {
                self.diag.report(format!(
                    "storage: {} cannot be listed to adopt queues left by other processes: {e}",
                    dir.display()
                ));
                return true; // nothing more can be done now
            }
        };
        for stem in stems {
            if stem == self.store.name() || failed.contains(&stem) {
                continue;
            }
            if self.adoption_ends(deadline) {
                return false;
            }
            let problem = match Segment::claim(dir, &stem) {
                Ok(None) => None, // its owner is alive
                Ok(Some(segment)) => match self.adopt(segment, deadline) {
                    Ok(true) => None,
                    Ok(false) => return false,
                    Err(e) => Some(e),
                },
                Err(e) => Some(format!("cannot be locked: {e}")),
            };
            if let Some(problem) = problem {
                self.diag.report(format!(
                    "queue segment {stem} left by another process was not adopted: {problem}"
                ));
                failed.insert(stem);
            }
        }
        true
    }

    /// Whether an adoption must stop where it is: past `deadline`, or
    /// stopping.
    fn adoption_ends(&self, deadline: Option<Instant>) -> bool {
        deadline.is_some_and(|d| Instant::now() >= d)
            || self.stop.load(Ordering::Acquire)
            || *self.adoption.stopped.lock()
    }

    /// Takes `segment`'s items into this process's queue, in chunks: each
    /// chunk is written to this process's file, then marked done in the
    /// orphan's, so an adoption cut short (by `deadline` or a stop) leaves
    /// the rest for a later round and repeats nothing.
    /// Ok(false) when cut short.
    fn adopt(&self, segment: Segment, deadline: Option<Instant>) -> Result<bool, String> {
        let due = self.config.due_now();
        let mut n = 0usize;
        let mut dropped = super::Dropped::default();
        let mut chunk: Option<(u64, u64)> = None;
        let mut problem = None;
        let mut finished = true;
        let commit = |chunk: &mut Option<(u64, u64)>| -> Result<(), String> {
            let Some((from, to)) = chunk.take() else {
                return Ok(());
            };
            // Adopted items are this process's as soon as their records are
            // in its queue file's window (they survive its death from then on); records
            // that had to wait in memory must reach its queue file first.
            let in_memory = self.queue.lock().unwritten.memory_bytes() > 0;
            if in_memory && !self.write_unwritten() {
                // The orphan stays until they are written, so nothing is
                // lost if this process dies first.
                return Err("this process's own queue cannot be written".into());
            }
            store::mark_orphan_done(&segment, from, to)
                .map_err(|e| format!("its adopted items cannot be marked: {e}"))
        };
        let damaged = store::read_orphan(&segment, |item| {
            if self.adoption_ends(deadline) {
                finished = false;
                return false;
            }
            let seq = item.seq;
            let (_, d) = self.push(stored_path(item.path), item.body.into(), Tag::None, due);
            dropped.merge(d);
            n += 1;
            chunk = Some((chunk.map_or(seq, |c| c.0), seq));
            if n.is_multiple_of(WRITE_EVERY) {
                if let Err(e) = commit(&mut chunk) {
                    problem = Some(e);
                    return false;
                }
            }
            true
        })
        .map_err(|e| format!("cannot be read: {e}"));
        // The adoption lock is the only one held here, and the core never takes it.
        self.settle(dropped);
        let damaged = damaged?;
        if let Some(problem) = problem {
            return Err(problem);
        }
        commit(&mut chunk)?;
        if !finished {
            return Ok(false); // the rest waits for a later round, still an orphan
        }
        if damaged > 0 {
            self.queue.lock().stats.corrupt_bytes += damaged;
            let aside = segment.file("corrupt");
            let _ = crate::platform::rename::replace(&segment.file("bin"), &aside);
            self.diag.report(format!(
                "queue segment {} left by another process was damaged: {damaged} byte(s) held no \
                 intact record (the file was kept as {}); its {n} intact item(s) were adopted",
                segment.name(),
                aside.display()
            ));
        }
        segment.remove();
        Ok(true)
    }
}
