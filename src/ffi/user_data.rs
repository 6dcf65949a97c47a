//! The caller's `void *user_data`, handed back untouched on whichever
//! libtrodo thread calls back (the error callback, the host's transport).

use std::ffi::c_void;

pub(crate) struct UserData(pub(crate) *mut c_void);
// SAFETY: libtrodo never dereferences it; the caller chose to receive it on
// libtrodo's threads by registering the callback or transport (the header
// says which threads).
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

impl UserData {
    // A method, so closures capture the whole (Send) wrapper, not its field.
    pub(crate) fn get(&self) -> *mut c_void {
        self.0
    }
}
