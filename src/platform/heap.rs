//! Giving the heap's free memory back to the system after a burst.
//!
//! When a burst of calls outruns the queue file's writer, its records wait
//! in memory (megabytes for a large offline burst) and are freed once
//! written. glibc keeps freed heap memory for reuse, so a process that
//! once held such a burst would stay at its peak resident size for good;
//! `malloc_trim` hands the free pages back. Other allocators (Apple's,
//! Windows', musl's) return large blocks on their own, and have no such
//! call: there this does nothing.

/// Returns the heap's free pages to the system (glibc); costs a walk of
/// the heap, so it is called once a burst has been written, not per write.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only walks glibc's own
    // heap, under glibc's own locks; it is safe to call from any thread at
    // any time (std's `alloc` has no call that does this).
    unsafe {
        libc::malloc_trim(0);
    }
}
