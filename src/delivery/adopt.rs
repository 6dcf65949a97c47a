//! Adoption: a live process takes over the queue segments of processes that
//! ended without sending everything (killed, crashed, exited while offline,
//! or forked workers that exited), at start, at every flush and shutdown, and
//! every 30 s while it runs. The items join this process's own queue, in
//! their order, and reach its own file before the orphan is removed; a crash
//! in between sends them twice at worst (events carry their insert_id).

use std::collections::HashSet;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::sync::{Condvar, Mutex};

use super::segments::{self, Segment};
use super::{store, stored_path, Shared, Tag};

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
                s.adopt_orphans();
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
    /// Adopts every segment in the storage directory whose owner is gone.
    pub(super) fn adopt_orphans(&self) {
        let mut failed = self.adoption.failed.lock();
        let dir = &self.config.storage_dir;
        let stems = match segments::stems(dir) {
            Ok(stems) => stems,
            Err(e) => {
                self.diag.report(format!(
                    "storage: {} cannot be listed to adopt queues left by other processes: {e}",
                    dir.display()
                ));
                return;
            }
        };
        for stem in stems {
            if stem == self.store.name() || failed.contains(&stem) {
                continue;
            }
            let problem = match Segment::claim(dir, &stem) {
                Ok(None) => None, // its owner is alive
                Ok(Some(segment)) => self.adopt(segment).err(),
                Err(e) => Some(format!("cannot be locked: {e}")),
            };
            if let Some(problem) = problem {
                self.diag.report(format!(
                    "queue segment {stem} left by another process was not adopted: {problem}"
                ));
                failed.insert(stem);
            }
        }
    }

    fn adopt(&self, segment: Segment) -> Result<(), String> {
        let due = self.config.due_now();
        let mut n = 0usize;
        let mut dropped = super::Dropped::default();
        let damaged = store::read_orphan(&segment, |item| {
            let (_, d) = self.push(stored_path(item.path), item.body.into(), Tag::None, due);
            dropped.merge(d);
            n += 1;
            if n.is_multiple_of(WRITE_EVERY) {
                self.write_unwritten();
            }
        })
        .map_err(|e| format!("cannot be read: {e}"));
        // The adoption lock is the only one held here, and the core never takes it.
        self.settle(dropped);
        let damaged = damaged?;
        if !self.write_unwritten() {
            // Its items wait in memory here; the orphan stays until they are
            // written, so nothing is lost if this process dies first.
            return Err("this process's own queue cannot be written".into());
        }
        if damaged > 0 {
            self.queue.lock().stats.corrupt_bytes += damaged;
            let aside = segment.file("corrupt");
            let _ = std::fs::rename(segment.file("bin"), &aside);
            self.diag.report(format!(
                "queue segment {} left by another process was damaged: {damaged} byte(s) held no \
                 intact record (the file was kept as {}); its {n} intact item(s) were adopted",
                segment.name(),
                aside.display()
            ));
        }
        segment.remove();
        Ok(())
    }
}
