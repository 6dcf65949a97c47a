use std::ffi::c_char;
use std::time::Duration;

use super::args;
use super::guard;
use super::hooks;
use super::status::TrodoStatus;
use crate::config::Options;
use crate::global;

/// Starts the one global client for `site_id`.
///
/// `options_json` may be NULL; otherwise a JSON object whose keys are all
/// optional: "api_base" ("https://sdkapi.trodo.ai"), "storage_dir" (the
/// per-user data directory + "/trodo/<site id>"; a relative path is taken
/// from the working directory at trodo_init), "app_group_dir" (null; an
/// app container shared with app extensions, such as an Apple App Group's:
/// state then lives in its "Library/Application Support/trodo/<site id>";
/// not together with "storage_dir"), "flush_at" (50),
/// "flush_interval_ms" (2000), "timeout_ms" (10000), "max_queue_items"
/// (100000), "max_queue_bytes" (67108864), "durability" ("batched" or "sync"),
/// "persist_interval_ms" (100), "gzip" (true), "app_version" (null),
/// "ca_file" (null), "debug" (false: true prints diagnostics to stderr).
/// An unknown key or a wrong type or value gives TRODO_ERR_INVALID_JSON.
///
/// Restores identity, session and group memberships saved by an earlier run;
/// a corrupt state file is moved aside (state.json.corrupt) and replaced by
/// fresh state. Several processes may use one storage directory at once:
/// each queues in a file of its own, and what a process that ended left
/// unsent is sent by a live one. After fork() the child keeps using the
/// library without a new trodo_init (see the README, "Processes").
/// TRODO_ERR_STORAGE when the storage directory cannot be created or
/// written; TRODO_ERR_ALREADY_INITIALIZED when already started.
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn trodo_init(
    site_id: *const c_char,
    options_json: *const c_char,
) -> TrodoStatus {
    guard::status(|| {
        hooks::install();
        let site_id = args::string(site_id, "site_id")?;
        let mut options = match args::opt_string(options_json, "options_json")? {
            Some(text) => Options::from_json(text)?,
            None => Options::default(),
        };
        options.transport = super::api_transport::current_transport();
        global::init(site_id, options)
    })
}

/// Waits up to `timeout_ms` until everything accepted before this call has
/// been sent (or dropped and reported), together with what processes that
/// ended left queued in the same storage directory. TRODO_ERR_TIMEOUT when
/// time ran out.
#[no_mangle]
pub extern "C" fn trodo_flush(timeout_ms: u32) -> TrodoStatus {
    guard::status(|| global::current()?.flush(Duration::from_millis(timeout_ms.into())))
}

/// Flushes for at most `timeout_ms`, then always stops: the state is written,
/// what could not be sent stays queued on disk for the next trodo_init (or
/// another process on the same storage directory), and later calls give
/// TRODO_ERR_NOT_INITIALIZED until trodo_init is called again. Returns
/// TRODO_ERR_TIMEOUT if the flush did not finish. Stopping takes what is
/// left of `timeout_ms`, but at least 250 ms; what a stuck thread or lock
/// (another process holding the state lock, a long compaction) has not
/// finished by then is left to it, and nothing accepted is lost by that.
/// This is how to send at exit: a program that exits without it keeps what
/// it accepted on disk and sends it at its next start.
#[no_mangle]
pub extern "C" fn trodo_shutdown(timeout_ms: u32) -> TrodoStatus {
    guard::status(|| global::shutdown(Duration::from_millis(timeout_ms.into())))
}

/// The message of the last failure on this thread ("" when the last call
/// succeeded). Never NULL. Owned by libtrodo: valid until this thread's next
/// trodo_* call; do not free.
#[no_mangle]
pub extern "C" fn trodo_last_error() -> *const c_char {
    guard::last_error_ptr()
}

/// The status of the last call on this thread (TRODO_OK when it succeeded):
/// how to tell why a call that returns a pointer returned NULL. Valid until
/// this thread's next trodo_* call, like trodo_last_error().
#[no_mangle]
pub extern "C" fn trodo_last_error_code() -> TrodoStatus {
    guard::last_status()
}

/// The library version, e.g. "0.1.0". A static string: do not free.
#[no_mangle]
pub extern "C" fn trodo_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Frees a string returned by libtrodo (trodo_get_distinct_id,
/// trodo_get_groups, ...). NULL is fine.
#[no_mangle]
pub unsafe extern "C" fn trodo_string_free(s: *mut c_char) {
    guard::value((), || {
        if !s.is_null() {
            // SAFETY: every string libtrodo hands out comes from CString::into_raw.
            drop(unsafe { std::ffi::CString::from_raw(s) });
        }
        Ok(())
    })
}

/// Links the current (usually anonymous) user to `identify_id`: sends
/// identify with the current distinct id, then takes `identify_id` as the
/// distinct id at once. When the server answers, a newDistinctId replaces it
/// and group_memberships replace the local memberships (calls made after
/// this one are applied again on top, so they are never undone).
#[no_mangle]
pub unsafe extern "C" fn trodo_identify(identify_id: *const c_char) -> TrodoStatus {
    guard::status(|| {
        let client = global::current()?;
        client.identify(args::string(identify_id, "identify_id")?)
    })
}

/// Logs the user out locally: new anonymous distinct id, new session, no
/// group memberships. Requests already queued are still sent.
#[no_mangle]
pub extern "C" fn trodo_reset() -> TrodoStatus {
    guard::status(|| global::current()?.reset())
}

/// The current distinct id; free it with trodo_string_free. NULL when not
/// initialized.
#[must_use]
#[no_mangle]
pub extern "C" fn trodo_get_distinct_id() -> *mut c_char {
    guard::pointer(|| guard::string_out(global::current()?.distinct_id()?))
}

/// Tracks an event. `properties_json` is NULL or a JSON object. The event
/// carries the current group memberships: properties[group key] = [ids], for
/// every key with ids (a property of the same name given here wins).
#[no_mangle]
pub unsafe extern "C" fn trodo_track(
    event_name: *const c_char,
    properties_json: *const c_char,
) -> TrodoStatus {
    trodo_track_with_category(event_name, properties_json, std::ptr::null())
}

/// As trodo_track, with an event category (NULL means "custom").
#[no_mangle]
pub unsafe extern "C" fn trodo_track_with_category(
    event_name: *const c_char,
    properties_json: *const c_char,
    category: *const c_char,
) -> TrodoStatus {
    guard::status(|| {
        let client = global::current()?;
        let name = args::string(event_name, "event_name")?;
        let properties = args::opt_json_text(properties_json, "properties_json")?;
        let category = args::opt_string(category, "category")?;
        client.track_json(name, properties, category)
    })
}
