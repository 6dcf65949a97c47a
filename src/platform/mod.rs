//! What differs between operating systems, one file per concern, with the
//! `cfg` branches of each side by side: the rest of the crate calls these and
//! has no `cfg(target_os)` of its own.
//!
//! Apple and Windows branches are type-checked in the test command
//! (`cargo clippy --target …`) and the Windows ones run under wine; see the
//! README's "Platforms" table for what is tested how.

pub mod exit_hook;
pub mod files;
pub mod heap;
pub mod os_version;
pub mod pin;
pub mod priority;
pub mod rename;
pub mod storage_dir;
