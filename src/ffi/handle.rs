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

#[cfg(test)]
mod tests {
    //! Run under Miri too (`scripts/test-miri.sh`): a leak, a double free or a
    //! use after free here is a Miri error.
    use super::*;

    #[test]
    fn a_handle_is_borrowed_while_alive_and_freed_once() {
        let group = Group::new("company", "acme").unwrap();
        let p = into_raw(group.clone());
        assert_eq!(borrow(p).unwrap(), &group);
        assert_eq!(borrow(p).unwrap().id(), "acme");
        free(p);
        free(std::ptr::null_mut());
        assert!(borrow(std::ptr::null()).is_err());
    }
}
