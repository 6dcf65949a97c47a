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
//!
//! Every export that takes a pointer is an `unsafe extern "C" fn`: from C it
//! is the same symbol, and from Rust its pointers are the caller's promise.
//! The helpers that read pointers are private to the crate:
//!
//! ```compile_fail
//! // Not reachable from outside the crate.
//! let _ = trodo::ffi::args::string(std::ptr::null(), "name");
//! ```
//!
//! ```compile_fail
//! // An export that reads a pointer cannot be called from safe Rust.
//! let _ = trodo::ffi::trodo_track(std::ptr::null(), std::ptr::null());
//! ```
// The `# Safety` section of every unsafe export is the header's conventions
// (pointers NUL-terminated, valid for the call, handles from their `_new`),
// which cbindgen puts at the top of include/trodo.h once, not per function.
#![allow(clippy::missing_safety_doc)]

pub(crate) mod args;
pub(crate) mod guard;
pub(crate) mod handle;
pub(crate) mod hooks;
pub mod status;
mod user_data;

mod api_delivery;
mod api_groups;
mod api_lifecycle;
mod api_people;
mod api_transport;
mod api_users;

pub use api_delivery::*;
pub use api_groups::*;
pub use api_lifecycle::*;
pub use api_people::*;
pub use api_transport::*;
pub use api_users::*;
pub use handle::{TrodoGroup, TrodoUser};
pub use status::*;
