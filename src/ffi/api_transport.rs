//! The host's transport: `trodo_set_transport`, the `TrodoRequest`
//! accessors and `trodo_request_complete` (see the header).

use std::ffi::{c_char, c_void, CStr};

use arc_swap::ArcSwapOption;

use super::guard;
use super::status::TrodoStatus;
use super::user_data::UserData;
use crate::delivery::transport::{HostReply, HostRequest, HostSender};
use crate::error::Error;
use crate::global;

/// One HTTP request for the host's transport to send; owned by libtrodo.
/// Valid from the send call until `trodo_request_complete`, which frees it;
/// its accessors may be called from any thread meanwhile.
pub struct TrodoRequest {
    inner: HostRequest,
}

/// Called on a libtrodo delivery thread, once per HTTP request. The host
/// sends it (at once, or later on any thread) and reports the outcome with
/// `trodo_request_complete` exactly once. From inside the send function it
/// may call the `trodo_request_*` functions (complete included), no other
/// `trodo_*`. libtrodo holds none of its locks while it runs.
pub type TrodoSendFn =
    Option<unsafe extern "C" fn(request: *mut TrodoRequest, user_data: *mut c_void)>;

/// The transport every later `trodo_init` uses.
static TRANSPORT: ArcSwapOption<HostSender> = ArcSwapOption::const_empty();

/// What `trodo_init` sends through: the host's send function, if set.
pub(crate) fn current_transport() -> Option<HostSender> {
    TRANSPORT.load_full().map(|s| (*s).clone())
}

/// Sends every request through `send` instead of the built-in HTTP client.
/// Call it before trodo_init (TRODO_ERR_ALREADY_INITIALIZED after it); it
/// stays for later inits, and forked children keep it. NULL restores the
/// built-in client. libtrodo keeps the queue, batching, gzip, order,
/// retries, backoff, Retry-After and timeouts; one request is in flight at
/// a time per delivery lane.
#[no_mangle]
pub unsafe extern "C" fn trodo_set_transport(
    send: TrodoSendFn,
    user_data: *mut c_void,
) -> TrodoStatus {
    guard::status(|| {
        if global::current().is_ok() {
            return Err(Error::new(
                crate::error::ErrorKind::AlreadyInitialized,
                "trodo_set_transport must come before trodo_init (or after trodo_shutdown)",
            ));
        }
        let Some(send) = send else {
            TRANSPORT.store(None);
            return Ok(());
        };
        let data = UserData(user_data);
        TRANSPORT.store(Some(std::sync::Arc::new(HostSender::new(
            move |request: HostRequest| {
                let raw = Box::into_raw(Box::new(TrodoRequest { inner: request }));
                // SAFETY: the host registered a function with this signature;
                // `raw` is a live request it owns until it completes it.
                unsafe { send(raw, data.get()) }
            },
        ))));
        Ok(())
    })
}

/// The request's URL (the method is always POST). NULL for a NULL request.
#[no_mangle]
pub unsafe extern "C" fn trodo_request_url(request: *const TrodoRequest) -> *const c_char {
    // SAFETY: the host passes a request it has not completed (the contract).
    match unsafe { request.as_ref() } {
        Some(r) => r.inner.url.as_ptr(),
        None => std::ptr::null(),
    }
}

/// How many headers the request has.
#[no_mangle]
pub unsafe extern "C" fn trodo_request_header_count(request: *const TrodoRequest) -> usize {
    // SAFETY: as for trodo_request_url.
    unsafe { request.as_ref() }.map_or(0, |r| r.inner.headers.len())
}

/// Header `index`'s name; NULL when `index` is out of range.
#[no_mangle]
pub unsafe extern "C" fn trodo_request_header_name(
    request: *const TrodoRequest,
    index: usize,
) -> *const c_char {
    // SAFETY: as for trodo_request_url.
    let header = unsafe { request.as_ref() }.and_then(|r| r.inner.headers.get(index));
    header.map_or(std::ptr::null(), |(name, _)| name.as_ptr())
}

/// Header `index`'s value; NULL when `index` is out of range.
#[no_mangle]
pub unsafe extern "C" fn trodo_request_header_value(
    request: *const TrodoRequest,
    index: usize,
) -> *const c_char {
    // SAFETY: as for trodo_request_url.
    let header = unsafe { request.as_ref() }.and_then(|r| r.inner.headers.get(index));
    header.map_or(std::ptr::null(), |(_, value)| value.as_ptr())
}

/// The body (JSON, gzip-compressed when a Content-Encoding header says so);
/// its length goes to `*length` (when `length` is not NULL).
#[no_mangle]
pub unsafe extern "C" fn trodo_request_body(
    request: *const TrodoRequest,
    length: *mut usize,
) -> *const u8 {
    // SAFETY: as for trodo_request_url.
    let body = unsafe { request.as_ref() }.map_or(&[][..], |r| &r.inner.body[..]);
    // SAFETY: NULL or, per the contract, a writable size_t of the caller's.
    if let Some(out) = unsafe { length.as_mut() } {
        *out = body.len();
    }
    body.as_ptr()
}

/// How long libtrodo waits for the outcome before it counts the request as
/// timed out (and retries it later); the request stays valid after that.
#[no_mangle]
pub unsafe extern "C" fn trodo_request_timeout_ms(request: *const TrodoRequest) -> u32 {
    // SAFETY: as for trodo_request_url.
    unsafe { request.as_ref() }.map_or(0, |r| r.inner.timeout_ms)
}

/// Reports the outcome and frees the request. `http_status`: the response's
/// status, or 0 when none came (network error, timeout, cancelled).
/// `retry_after`: the Retry-After header's value or NULL. `body`: the
/// response body (copied; NULL with length 0 when none). A completion after
/// the request's timeout, or after trodo_shutdown, is accepted and ignored.
/// NULL `request` does nothing.
#[no_mangle]
pub unsafe extern "C" fn trodo_request_complete(
    request: *mut TrodoRequest,
    http_status: i32,
    retry_after: *const c_char,
    body: *const u8,
    length: usize,
) {
    guard::value((), || {
        if request.is_null() {
            return Ok(());
        }
        // SAFETY: a request from the send function, completed once (the
        // contract); taken back into the Box it was handed out as.
        let request = unsafe { Box::from_raw(request) };
        let retry_after = match retry_after.is_null() {
            true => None,
            // SAFETY: non-NULL, and NUL-terminated per the contract.
            false => Some(
                unsafe { CStr::from_ptr(retry_after) }
                    .to_string_lossy()
                    .into_owned(),
            ),
        };
        let body = match body.is_null() || length == 0 {
            true => Vec::new(),
            // SAFETY: `length` readable bytes at `body`, per the contract.
            false => unsafe { std::slice::from_raw_parts(body, length) }.to_vec(),
        };
        request.inner.complete(HostReply {
            status: http_status,
            retry_after,
            body,
        });
        Ok(())
    })
}
