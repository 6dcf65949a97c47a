//! The panic boundary and the thread-local last error.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::status::{status_of, TrodoStatus, TRODO_ERR_INTERNAL, TRODO_OK};
use crate::error::{Error, Result};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    static LAST_STATUS: Cell<TrodoStatus> = const { Cell::new(TRODO_OK) };
}

/// What `trodo_last_error` gives on a thread whose thread-locals are already
/// destroyed (a call from an `atexit` handler, a key destructor or a late
/// thread-local destructor): the message itself could not be kept.
const NO_THREAD_STORAGE: &std::ffi::CStr =
    c"(this thread is ending: its last error message could not be kept; see the status)";

/// This thread's last status (`TRODO_OK` after a success).
pub fn last_status() -> TrodoStatus {
    LAST_STATUS.try_with(Cell::get).unwrap_or(TRODO_OK)
}

// Every access below uses `try_with`: `with` panics once the thread's
// storage is gone, and a panic there (outside any catch_unwind, or while
// unwinding is not possible) aborts the host program.

fn set_last_error(message: &str) {
    // An interior NUL would truncate the message; C cannot see past it anyway.
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            *e = c;
        }
    });
}

/// No allocation when it is already empty: every successful call clears it.
fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            if !e.is_empty() {
                *e = CString::default();
            }
        }
    });
}

/// This thread's last error message; valid until its next `trodo_*` call.
pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|e| e.try_borrow().map(|e| e.as_ptr()).ok())
        .ok()
        .flatten()
        .unwrap_or(NO_THREAD_STORAGE.as_ptr())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let detail = crate::util::panic_text(payload);
    format!("internal error in libtrodo (please report): {detail}")
}

/// Runs `f`, catching panics and recording the error, if any.
/// Everything, the last-error bookkeeping included, runs inside the panic
/// boundary.
fn run<T>(f: impl FnOnce() -> Result<T>) -> std::result::Result<T, TrodoStatus> {
    let guarded = catch_unwind(AssertUnwindSafe(|| {
        clear_last_error();
        let result = match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(Error { kind, message })) => {
                set_last_error(&message);
                Err(status_of(kind))
            }
            Err(payload) => {
                set_last_error(&panic_message(payload.as_ref()));
                Err(TRODO_ERR_INTERNAL)
            }
        };
        let status = *result.as_ref().err().unwrap_or(&TRODO_OK);
        let _ = LAST_STATUS.try_with(|s| s.set(status));
        result
    }));
    // Only the bookkeeping can get here (it does not panic by design): a
    // panic message's own formatting, say.
    guarded.unwrap_or(Err(TRODO_ERR_INTERNAL))
}

/// For calls returning a status.
pub fn status(f: impl FnOnce() -> Result<()>) -> TrodoStatus {
    match run(f) {
        Ok(()) => TRODO_OK,
        Err(s) => s,
    }
}

/// For calls returning a pointer: NULL on failure.
pub fn pointer<T>(f: impl FnOnce() -> Result<*mut T>) -> *mut T {
    run(f).unwrap_or(std::ptr::null_mut())
}

/// For calls returning a plain value: `fallback` on failure.
pub fn value<T>(fallback: T, f: impl FnOnce() -> Result<T>) -> T {
    run(f).unwrap_or(fallback)
}

/// A Rust string handed to C: freed with `trodo_string_free`.
pub fn string_out(s: String) -> Result<*mut c_char> {
    CString::new(s).map(CString::into_raw).map_err(|_| {
        Error::new(
            crate::error::ErrorKind::Internal,
            "string with an interior NUL",
        )
    })
}

#[cfg(test)]
mod tests {
    //! Run under Miri too (`scripts/test-miri.sh`).
    use super::*;

    #[test]
    fn strings_handed_out_come_back_whole_and_are_freed_once() {
        let p = string_out("héllo".into()).unwrap();
        assert_eq!(
            unsafe { std::ffi::CStr::from_ptr(p) }.to_str().unwrap(),
            "héllo"
        );
        // SAFETY: `p` came from string_out and is freed once; NULL is allowed.
        unsafe {
            crate::ffi::trodo_string_free(p);
            crate::ffi::trodo_string_free(std::ptr::null_mut());
        }
        assert!(string_out("a\0b".into()).is_err());
    }

    #[test]
    fn panics_become_internal_errors_with_a_message() {
        let s = status(|| panic!("boom"));
        assert_eq!(s, TRODO_ERR_INTERNAL);
        assert_eq!(last_status(), TRODO_ERR_INTERNAL);
        let msg = unsafe { std::ffi::CStr::from_ptr(last_error_ptr()) };
        assert!(msg.to_str().unwrap().contains("boom"));
        // The next call clears it.
        assert_eq!(status(|| Ok(())), TRODO_OK);
        assert_eq!(last_status(), TRODO_OK);
        assert_eq!(
            unsafe { std::ffi::CStr::from_ptr(last_error_ptr()) }.to_bytes(),
            b""
        );
    }
}
