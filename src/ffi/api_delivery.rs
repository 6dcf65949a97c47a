use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use super::status::TrodoStatus;
use super::user_data::UserData;
use super::{args, guard};
use crate::global;

/// Delivery counts as a JSON object: {"queued", "queued_bytes",
/// "queued_memory_bytes", "in_flight", "sent", "dropped", "dropped_by_reason":
/// {"rejected", "too_large", "gave_up", "queue_full", "opted_out",
/// "unreadable"}, "paused_until_ms", "corrupt_bytes", "memory_only_bytes",
/// "worker_panics"}.
/// Counts are items (one event, one call), not requests; "queued" excludes
/// what is in flight; "queued_memory_bytes" is the part of the queue held in
/// memory (a backlog beyond 4 MiB waits on disk only); "unreadable" counts
/// items kept on disk only that could not be read back; "paused_until_ms" is
/// the epoch ms a 429 paused sending until (0 when not paused);
/// "memory_only_bytes" counts records not yet durable (the queue file's
/// mapped tail, which makes an accepted call survive a crash, was full or
/// could not be mapped);
/// "worker_panics" counts internal errors the delivery thread survived. Free it with
/// trodo_string_free. NULL when not initialized.
#[must_use]
#[no_mangle]
pub extern "C" fn trodo_get_stats() -> *mut c_char {
    guard::pointer(|| guard::string_out(global::current()?.stats()?.to_json().to_string()))
}

/// Receives a message whenever data is dropped (counted by reason in
/// trodo_get_stats) or a request fails for good, and when init finds a
/// damaged queue or state file. Called on the thread that found it: the
/// delivery thread for drops and failed requests, trodo_init's thread for
/// damage found at start, the calling thread for queue_full. `message` is
/// valid for the call only. The callback must not call back into libtrodo.
pub type TrodoErrorCallback =
    Option<unsafe extern "C" fn(message: *const c_char, user_data: *mut c_void)>;

/// Sets the error callback (process-wide, kept across shutdown and init);
/// NULL turns it off. `user_data` is passed back to every call. When this
/// returns, the previous callback is not running and will not be called
/// again, so its `user_data` may be freed (called from inside the callback,
/// it returns at once and only the report in progress finishes). libtrodo
/// holds none of its locks while a callback runs.
#[no_mangle]
pub unsafe extern "C" fn trodo_set_error_callback(
    callback: TrodoErrorCallback,
    user_data: *mut c_void,
) {
    guard::value((), || {
        let Some(cb) = callback else {
            crate::diag::set_error_callback(None);
            return Ok(());
        };
        let data = UserData(user_data);
        crate::diag::set_error_callback(Some(Arc::new(move |message: &str| {
            let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
            // SAFETY: the caller registered a function with this signature.
            unsafe { cb(text.as_ptr(), data.get()) };
        })));
        Ok(())
    })
}

/// Turns opt-out on or off; the setting is saved at once and survives
/// restarts. Turning it on discards everything queued (counted as
/// "opted_out"); while on, calls are checked as usual, return TRODO_OK and
/// record nothing, locally or remotely. The setting is the storage
/// directory's: every process using it takes it up within 2 s.
#[no_mangle]
pub extern "C" fn trodo_set_opt_out(opted_out: bool) -> TrodoStatus {
    guard::status(|| global::current()?.set_opt_out(opted_out))
}

/// Whether opt-out is on; false when not initialized (use
/// trodo_get_opt_out to tell the two apart).
#[no_mangle]
pub extern "C" fn trodo_is_opted_out() -> bool {
    guard::value(false, || global::current()?.is_opted_out())
}

/// Stores in `*opted_out_out` whether opt-out is on. TRODO_ERR_NOT_INITIALIZED
/// before trodo_init and after trodo_shutdown (then `*opted_out_out` is left
/// as it was); TRODO_ERR_INVALID_ARGUMENT when `opted_out_out` is NULL.
#[no_mangle]
pub unsafe extern "C" fn trodo_get_opt_out(opted_out_out: *mut bool) -> TrodoStatus {
    guard::status(|| {
        let client = global::current()?;
        let out = args::out_ptr(opted_out_out, "opted_out_out")?;
        let opted_out = client.is_opted_out()?;
        // SAFETY: `out` is non-NULL (checked) and, per the contract, points
        // to a writable bool owned by the caller for the call.
        unsafe { out.write(opted_out) };
        Ok(())
    })
}
