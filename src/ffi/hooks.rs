//! Process hooks, installed by the first `trodo_init`: a `fork()` child
//! handler and an exit handler. See [`crate::process`] and [`crate::global`].

use std::sync::Once;

/// Installs both hooks once per process (a child inherits them).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(unix)]
        // SAFETY: both handlers are plain `extern "C"` functions that live as
        // long as the library; neither unwinds.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
            libc::atexit(at_exit);
        }
    });
}

/// Async-signal-safe: bumps an atomic and closes descriptors, nothing else.
#[cfg(unix)]
extern "C" fn after_fork_in_child() {
    crate::process::after_fork_in_child(|fd| {
        // SAFETY: `fd` is a lock descriptor libtrodo opened and listed; the
        // parent's copy, and so its lock, is untouched.
        unsafe { libc::close(fd) };
    });
}

#[cfg(unix)]
extern "C" fn at_exit() {
    let _ = std::panic::catch_unwind(crate::global::at_exit);
}
