//! Running a function when the process exits normally (`exit`, or a return
//! from `main`), and a function in the child after `fork()`.

/// Registers `at_exit` to run at a normal exit, after the host's own
/// handlers registered later (C's `atexit` order).
///
/// On Windows `atexit` in a DLL runs when the DLL is detached at process
/// exit: the host's other threads are gone by then, so a lock one of them
/// held is never released; `at_exit` must only ever wait with a deadline.
pub fn on_exit(at_exit: extern "C" fn()) {
    #[cfg(any(unix, windows))]
    // SAFETY: `at_exit` is a plain function that lives as long as the
    // library (pinned on Windows, see `pin`) and never unwinds.
    unsafe {
        libc::atexit(at_exit);
    }
    #[cfg(not(any(unix, windows)))]
    let _ = at_exit;
}

/// Registers `in_child` to run in the child after each `fork()` (Unix only:
/// Windows has no fork).
pub fn after_fork(in_child: extern "C" fn()) {
    #[cfg(unix)]
    // SAFETY: `in_child` lives as long as the library, is async-signal-safe
    // and never unwinds.
    unsafe {
        libc::pthread_atfork(None, None, Some(in_child));
    }
    #[cfg(not(unix))]
    let _ = in_child;
}
