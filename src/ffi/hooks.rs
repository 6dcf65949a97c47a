//! Process hooks, installed by the first `trodo_init`: a `fork()` child
//! handler and an exit handler. See [`crate::process`] and [`crate::global`].

use std::sync::Once;

use crate::platform::{exit_hook, pin};

/// Installs both hooks once per process (a child inherits them), and pins
/// the library in memory first: the hooks and the threads `trodo_init`
/// starts run its code until the process ends.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        pin::pin_library();
        exit_hook::after_fork(after_fork_in_child);
        exit_hook::on_exit(at_exit);
    });
}

/// Async-signal-safe: bumps an atomic and closes descriptors, nothing else.
extern "C" fn after_fork_in_child() {
    crate::process::after_fork_in_child(|fd| {
        #[cfg(unix)]
        // SAFETY: `fd` is a lock descriptor libtrodo opened and listed; the
        // parent's copy, and so its lock, is untouched.
        unsafe {
            libc::close(fd)
        };
        #[cfg(not(unix))]
        let _ = fd;
    });
}

/// Runs once: on Windows it is registered with more than one runtime.
extern "C" fn at_exit() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static RAN: AtomicBool = AtomicBool::new(false);
    if !RAN.swap(true, Ordering::AcqRel) {
        let _ = std::panic::catch_unwind(crate::global::at_exit);
    }
}
