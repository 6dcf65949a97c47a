use crate::error::ErrorKind;

/// The result of every call that can fail: `TRODO_OK` (0) or one of the
/// `TRODO_ERR_*` codes, after which `trodo_last_error()` says what went
/// wrong. A fixed-width integer, not a C enum, so that a code added later
/// changes no function's ABI (a C enum's size is the compiler's choice).
pub type TrodoStatus = i32;

pub const TRODO_OK: TrodoStatus = 0;
/// No `trodo_init`, or after `trodo_shutdown`.
pub const TRODO_ERR_NOT_INITIALIZED: TrodoStatus = 1;
pub const TRODO_ERR_ALREADY_INITIALIZED: TrodoStatus = 2;
/// NULL, empty, non-UTF-8 or over-long string; NaN or infinite number; NULL handle.
pub const TRODO_ERR_INVALID_ARGUMENT: TrodoStatus = 3;
/// Malformed JSON, or JSON of the wrong shape (e.g. properties that are not an object).
pub const TRODO_ERR_INVALID_JSON: TrodoStatus = 4;
/// The storage directory cannot be used, or a "sync" call could not be made durable.
pub const TRODO_ERR_STORAGE: TrodoStatus = 5;
/// flush/shutdown did not finish in time.
pub const TRODO_ERR_TIMEOUT: TrodoStatus = 6;
/// A bug in libtrodo (e.g. a caught panic); the library keeps working.
pub const TRODO_ERR_INTERNAL: TrodoStatus = 99;

/// The status of a failure of `kind`.
pub fn status_of(kind: ErrorKind) -> TrodoStatus {
    match kind {
        ErrorKind::NotInitialized => TRODO_ERR_NOT_INITIALIZED,
        ErrorKind::AlreadyInitialized => TRODO_ERR_ALREADY_INITIALIZED,
        ErrorKind::InvalidArgument => TRODO_ERR_INVALID_ARGUMENT,
        ErrorKind::InvalidJson => TRODO_ERR_INVALID_JSON,
        ErrorKind::Storage => TRODO_ERR_STORAGE,
        ErrorKind::Timeout => TRODO_ERR_TIMEOUT,
        ErrorKind::Internal => TRODO_ERR_INTERNAL,
    }
}
