//! The group handle. It is always a `Box` (never shared), so it is created
//! only by [`into_raw`] and destroyed only by [`free`].

use crate::error::{Error, Result};
use crate::groups::Group;

/// A handle for one group's profile operations; free it with `trodo_group_free`.
pub struct TrodoGroup {
    pub(crate) group: Group,
}

pub fn into_raw(group: Group) -> *mut TrodoGroup {
    Box::into_raw(Box::new(TrodoGroup { group }))
}

/// Borrows a handle for the duration of a call.
pub fn borrow<'a>(p: *const TrodoGroup) -> Result<&'a Group> {
    if p.is_null() {
        return Err(Error::invalid_argument("group is NULL"));
    }
    // SAFETY: non-NULL; the contract says it came from trodo_get_group and
    // has not been freed.
    Ok(unsafe { &(*p).group })
}

/// Takes a handle back; NULL is fine.
pub fn free(p: *mut TrodoGroup) {
    if !p.is_null() {
        // SAFETY: made by `into_raw` (a Box) and freed once, per the contract.
        drop(unsafe { Box::from_raw(p) });
    }
}
