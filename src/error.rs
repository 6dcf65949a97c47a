//! Errors of the safe core. The FFI layer maps [`ErrorKind`] to `TrodoStatus`.

use std::fmt;

/// What went wrong, in the categories the C API reports as status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotInitialized,
    AlreadyInitialized,
    InvalidArgument,
    InvalidJson,
    Storage,
    Timeout,
    Internal,
}

/// An error with a message that names the argument or resource at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidJson, message)
    }

    pub fn not_initialized() -> Self {
        Self::new(
            ErrorKind::NotInitialized,
            "libtrodo is not initialized: call trodo_init first (or again after trodo_shutdown)",
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
