//! The handles: `TrodoGroup` and `TrodoUser`. Each is always a `Box` (never
//! shared with the library), so it is created only by [`into_raw`] and
//! destroyed only by [`free`]; what a user handle shares between threads is
//! inside it (an `Arc`), not the Box.

use crate::error::{Error, Result};
use crate::groups::Group;
use crate::user::User;

/// A handle for one group's profile operations; free it with
/// `trodo_group_free`. Thread-safe: calls on one handle may run on several
/// threads at once (it holds only the group's key and id). Free it once,
/// after every call on it has returned.
pub struct TrodoGroup {
    pub(crate) group: Group,
}

/// A user that per-user (server mode) calls act for; free it with
/// `trodo_user_free`. Thread-safe: calls on one handle may come from several
/// threads at once and take effect one at a time, in the order they got
/// the handle's lock. Free it once, after every call on it has returned.
pub struct TrodoUser {
    pub(crate) user: User,
}

/// What a NULL handle is called in the error message.
pub trait Handle {
    const NAME: &'static str;
}

impl Handle for TrodoGroup {
    const NAME: &'static str = "group";
}

impl Handle for TrodoUser {
    const NAME: &'static str = "user";
}

pub fn into_raw<H: Handle>(handle: H) -> *mut H {
    Box::into_raw(Box::new(handle))
}

/// Borrows a handle for the duration of a call.
pub fn borrow<'a, H: Handle>(p: *const H) -> Result<&'a H> {
    if p.is_null() {
        return Err(Error::invalid_argument(format!("{} is NULL", H::NAME)));
    }
    // SAFETY: non-NULL; the contract says it came from this library's
    // constructor for H and has not been freed.
    Ok(unsafe { &*p })
}

/// Takes a handle back; NULL is fine.
pub fn free<H: Handle>(p: *mut H) {
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
    use crate::groups::Memberships;

    #[test]
    fn a_handle_is_borrowed_while_alive_and_freed_once() {
        let group = Group::new("company", "acme").unwrap();
        let p = into_raw(TrodoGroup {
            group: group.clone(),
        });
        assert_eq!(borrow(p).unwrap().group, group);
        assert_eq!(borrow(p).unwrap().group.id(), "acme");
        free(p);
        free(std::ptr::null_mut::<TrodoGroup>());
        let e = borrow(std::ptr::null::<TrodoGroup>()).err().unwrap();
        assert_eq!(e.message, "group is NULL");
    }

    #[test]
    fn a_user_handle_is_shared_between_threads_and_freed_once() {
        let p = into_raw(TrodoUser {
            user: User::new("u-1", Memberships::default()).unwrap(),
        });
        let addr = p as usize;
        let threads: Vec<_> = (0..2)
            .map(|_| {
                std::thread::spawn(move || {
                    let h = borrow(addr as *const TrodoUser).unwrap();
                    h.user.distinct_id()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), "u-1");
        }
        free(p);
        free(std::ptr::null_mut::<TrodoUser>());
        let e = borrow(std::ptr::null::<TrodoUser>()).err().unwrap();
        assert_eq!(e.message, "user is NULL");
    }
}
