//! Running a function when the process exits normally (`exit`, or a return
//! from `main`), and a function in the child after `fork()`.

/// Registers `at_exit` to run at a normal exit, after the host's own
/// handlers registered later (C's `atexit` order). It may be called more
/// than once (see Windows below): only its first run may do anything.
///
/// On Windows C's `atexit`, called from a DLL, runs only when the DLL is
/// detached, after `ExitProcess` has ended every other thread wherever it
/// was, holding whatever locks it held. So the function is also put in the
/// table the host's `exit` runs while its threads still live: that of the
/// C runtime the host uses (UCRT's `_crt_atexit`, or msvcrt's `_onexit`).
/// The DLL's own `atexit` stays as the last resort.
pub fn on_exit(at_exit: extern "C" fn()) {
    #[cfg(windows)]
    windows::register_with_the_host_runtime(at_exit);
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

#[cfg(windows)]
mod windows {
    use std::sync::OnceLock;
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};

    static AT_EXIT: OnceLock<extern "C" fn()> = OnceLock::new();

    /// `_onexit` wants `int (*)(void)`.
    extern "C" fn at_exit_int() -> i32 {
        if let Some(f) = AT_EXIT.get() {
            f();
        }
        0
    }

    pub(super) fn register_with_the_host_runtime(at_exit: extern "C" fn()) {
        if AT_EXIT.set(at_exit).is_err() {
            return;
        }
        type CrtAtExit = unsafe extern "C" fn(extern "C" fn()) -> i32;
        type OnExit = unsafe extern "C" fn(extern "C" fn() -> i32) -> usize;
        // SAFETY: GetModuleHandleA does not load anything, and the handle
        // of a loaded runtime needs no release; the names are
        // NUL-terminated. The two symbols have these C signatures in every
        // version of those runtimes; the functions registered live as long
        // as the process (the DLL is pinned) and never unwind.
        unsafe {
            let ucrt = GetModuleHandleA(c"ucrtbase.dll".as_ptr().cast());
            if !ucrt.is_null() {
                if let Some(f) = GetProcAddress(ucrt, c"_crt_atexit".as_ptr().cast()) {
                    let crt_atexit: CrtAtExit = std::mem::transmute(f);
                    crt_atexit(at_exit);
                }
            }
            let msvcrt = GetModuleHandleA(c"msvcrt.dll".as_ptr().cast());
            if !msvcrt.is_null() {
                if let Some(f) = GetProcAddress(msvcrt, c"_onexit".as_ptr().cast()) {
                    let onexit: OnExit = std::mem::transmute(f);
                    onexit(at_exit_int);
                }
            }
        }
    }
}
