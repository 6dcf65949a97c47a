//! The C ABI. This module is the only place with `extern "C"`, raw pointers
//! and `unsafe`. Conventions, written down once:
//!
//! - every exported body runs inside [`guard`]: a panic becomes
//!   `TRODO_ERR_INTERNAL` (or NULL) and never unwinds into C;
//! - every call first clears this thread's last error, then checks that the
//!   library is initialized, then converts its arguments ([`args`]), then calls
//!   the safe core; a failure sets the last error and returns its status;
//! - strings returned are `CString`s handed over with `into_raw` and taken
//!   back by `trodo_string_free`; a group or user handle is a `Box` handed
//!   over by [`handle`] and taken back by `trodo_group_free` / `trodo_user_free`.
// Pointer arguments come from C callers bound by the header's contract
// (NUL-terminated, valid for the call); each is checked for NULL before use.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod args;
pub mod guard;
pub mod handle;
pub mod hooks;
pub mod status;

mod api_delivery;
mod api_groups;
mod api_lifecycle;
mod api_people;
mod api_users;

pub use api_delivery::*;
pub use api_groups::*;
pub use api_lifecycle::*;
pub use api_people::*;
pub use api_users::*;
pub use handle::{TrodoGroup, TrodoUser};
pub use status::TrodoStatus;
