use crate::error::ErrorKind;

/// The result of every call that can fail. `TRODO_OK` is 0; on any other
/// value `trodo_last_error()` says what went wrong.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrodoStatus {
    TRODO_OK = 0,
    /// No `trodo_init`, or after `trodo_shutdown`.
    TRODO_ERR_NOT_INITIALIZED = 1,
    TRODO_ERR_ALREADY_INITIALIZED = 2,
    /// NULL, empty, non-UTF-8 or over-long string; NaN or infinite number; NULL handle.
    TRODO_ERR_INVALID_ARGUMENT = 3,
    /// Malformed JSON, or JSON of the wrong shape (e.g. properties that are not an object).
    TRODO_ERR_INVALID_JSON = 4,
    /// The storage directory cannot be used.
    TRODO_ERR_STORAGE = 5,
    /// flush/shutdown did not finish in time.
    TRODO_ERR_TIMEOUT = 6,
    /// A bug in libtrodo (e.g. a caught panic); the library keeps working.
    TRODO_ERR_INTERNAL = 99,
}

impl From<ErrorKind> for TrodoStatus {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::NotInitialized => TrodoStatus::TRODO_ERR_NOT_INITIALIZED,
            ErrorKind::AlreadyInitialized => TrodoStatus::TRODO_ERR_ALREADY_INITIALIZED,
            ErrorKind::InvalidArgument => TrodoStatus::TRODO_ERR_INVALID_ARGUMENT,
            ErrorKind::InvalidJson => TrodoStatus::TRODO_ERR_INVALID_JSON,
            ErrorKind::Storage => TrodoStatus::TRODO_ERR_STORAGE,
            ErrorKind::Timeout => TrodoStatus::TRODO_ERR_TIMEOUT,
            ErrorKind::Internal => TrodoStatus::TRODO_ERR_INTERNAL,
        }
    }
}
