//! libtrodo: the native Trodo product-analytics SDK. A safe Rust core
//! ([`Client`]) with group analytics at its heart, and a C ABI in [`ffi`].
//!
//! Data flows one way: the FFI layer checks and converts arguments, the core
//! updates local state and builds a wire request, the delivery queue sends it.

pub mod client;
pub mod config;
pub mod delivery;
pub mod diag;
pub mod error;
pub mod ffi;
pub mod global;
pub mod groups;
pub mod json;
pub mod persister;
pub mod platform;
pub mod process;
pub mod profile;
pub mod state;
pub mod sync;
pub mod user;
pub mod util;
pub mod validate;
pub mod wire;

pub use client::Client;
pub use config::{Durability, Options};
pub use error::{Error, ErrorKind, Result};
pub use groups::{Group, Memberships};
pub use profile::{GroupProfileOp, PeopleOp};
pub use user::User;
