//! What libtrodo knows about the process it runs in: which fork generation
//! this is, and which descriptors hold a queue segment's lock.
//!
//! After `fork()` only the forking thread exists in the child; every lock
//! another thread held stays held and every background thread is gone. The
//! child handler (installed by the C API, see `ffi::hooks`) therefore does
//! only two lock-free, allocation-free things: it bumps the generation, which
//! every entry point compares before use, and it closes the lock descriptors
//! inherited from the parent, so a parent that dies is not kept looking alive
//! by its children. Closing (never `LOCK_UN`) leaves the parent's own lock
//! alone: a `flock` belongs to the open file the two processes share.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Lock descriptors to close in a forked child. More segments than slots
/// (only with many Rust `Client`s at once) just go unclosed in children.
const SLOTS: usize = 32;
static HELD: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];

/// Bumped in every forked child; compared by every entry point.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// The child side of `fork()`: async-signal-safe (atomics and `close` only).
pub fn after_fork_in_child(close: impl Fn(i32)) {
    GENERATION.fetch_add(1, Ordering::AcqRel);
    for slot in &HELD {
        let fd = slot.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            close(fd);
        }
    }
}

/// A descriptor listed for closing in forked children while this lives.
#[derive(Debug)]
pub struct Held {
    slot: Option<usize>,
    fd: i32,
    generation: u64,
}

impl Held {
    pub fn new(fd: i32) -> Held {
        let slot = HELD.iter().position(|s| {
            s.compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        });
        Held {
            slot,
            fd,
            generation: generation(),
        }
    }

    /// Whether the process forked since: the descriptor is then closed
    /// already (by the child handler) and must not be closed again.
    pub fn inherited(&self) -> bool {
        self.generation != generation()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        #[cfg(all(test, target_os = "linux"))]
        tests::note_dropped(self.fd);
        if let Some(slot) = self.slot {
            let _ = HELD[slot].compare_exchange(self.fd, -1, Ordering::AcqRel, Ordering::Acquire);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #[cfg(target_os = "linux")]
    use std::cell::RefCell;

    #[cfg(target_os = "linux")]
    thread_local! {
        /// Each `Held` dropped on this thread: its descriptor, and whether
        /// it was still open then.
        static DROPPED: RefCell<Vec<(i32, bool)>> = const { RefCell::new(Vec::new()) };
    }

    #[cfg(target_os = "linux")]
    pub(crate) fn note_dropped(fd: i32) {
        let open = std::path::Path::new(&format!("/proc/self/fd/{fd}")).exists();
        DROPPED.with(|d| d.borrow_mut().push((fd, open)));
    }

    #[cfg(target_os = "linux")]
    pub(crate) fn dropped_held() -> Vec<(i32, bool)> {
        DROPPED.with(|d| d.borrow().clone())
    }
}
