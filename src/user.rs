//! A user that server-mode calls act for (the C API's `TrodoUser`): a
//! distinct id, a group context that events tracked for the user are stamped
//! with, and a server session of its own. None of it touches the process's
//! current user, and none of it is written to disk: only the requests made
//! for the user are, through the same queue as every other request.
//!
//! The calls themselves are on [`Client`](crate::Client) (`user_track`,
//! `user_identify`, ...), which owns the queue and the session registrations.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::groups::Memberships;
use crate::validate;

/// `server:<distinct id>`: the same for a user in every process and after
/// every restart, as Trodo's server SDK makes it (`docs/wire-protocol.md`).
pub const SERVER_SESSION_PREFIX: &str = "server:";

/// A user the server-mode calls act for. Clones share one user: its
/// identity and group context change for all of them.
#[derive(Clone)]
pub struct User(pub(crate) Arc<UserInner>);

pub(crate) struct UserInner {
    /// `server:<the id the user was made with>`; identify does not change it.
    pub(crate) session_id: String,
    /// Picks the delivery lane: one per user, so its requests stay in order.
    pub(crate) lane_key: u64,
    /// Swapped whole, never locked: a handle shared by a forked child must
    /// not find a lock held by a thread of its parent, and threads sharing
    /// a handle do not wait for each other.
    pub(crate) state: ArcSwap<UserState>,
    /// The number of the client that has this user's session registered,
    /// so that a user in use skips the client's registration table.
    pub(crate) registered_with: AtomicU64,
    /// Serialises the calls on this user (see [`UserInner::serialized`]).
    busy: HandleLock,
}

impl UserInner {
    /// Runs one call on this user with no other call on it running, so the
    /// order its requests are queued in is the order its context changes in
    /// (two threads sharing a handle cannot leave its context different from
    /// what the server received last).
    pub(crate) fn serialized<R>(&self, call: impl FnOnce() -> R) -> R {
        let _held = self.busy.lock();
        call()
    }
}

/// A lock for one handle's calls that a forked child can never find held:
/// it records the fork generation of its holder, and a child takes over a
/// lock held in an earlier generation (by a thread that does not exist in
/// the child). Calls on one handle are short (no I/O): waiters spin and yield.
#[derive(Default)]
struct HandleLock(AtomicU64);

struct HandleGuard<'a>(&'a AtomicU64);

impl HandleLock {
    fn lock(&self) -> HandleGuard<'_> {
        // 0 is free; a holder stores its generation + 1.
        let mine = crate::process::generation() + 1;
        loop {
            let now = self.0.load(Ordering::Acquire);
            if (now == 0 || now != mine)
                && self
                    .0
                    .compare_exchange(now, mine, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                return HandleGuard(&self.0);
            }
            std::thread::yield_now();
        }
    }
}

impl Drop for HandleGuard<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

#[derive(Debug, Clone)]
pub(crate) struct UserState {
    pub(crate) distinct_id: String,
    pub(crate) groups: Memberships,
}

impl User {
    /// A user with `distinct_id` and a starting group context.
    pub fn new(distinct_id: &str, groups: Memberships) -> Result<User> {
        validate::name(distinct_id, "distinct_id")?;
        let session_id = format!("{SERVER_SESSION_PREFIX}{distinct_id}");
        // Deterministic (SipHash with fixed keys): only spreads users over lanes.
        let mut h = std::hash::DefaultHasher::new();
        session_id.hash(&mut h);
        Ok(User(Arc::new(UserInner {
            lane_key: h.finish(),
            session_id,
            state: ArcSwap::from_pointee(UserState {
                distinct_id: distinct_id.to_string(),
                groups,
            }),
            registered_with: AtomicU64::new(0),
            busy: HandleLock::default(),
        })))
    }

    /// As [`new`](Self::new), with the group context as JSON text (`None`: none).
    pub fn from_json(distinct_id: &str, groups_json: Option<&str>) -> Result<User> {
        validate::name(distinct_id, "distinct_id")?;
        let groups = match groups_json {
            Some(text) => group_context(text)?,
            None => Memberships::default(),
        };
        User::new(distinct_id, groups)
    }

    /// The id requests are made for: the one it was made with, or the last
    /// identify's (or the id the server answered that identify with).
    pub fn distinct_id(&self) -> String {
        self.0.state.load().distinct_id.clone()
    }

    /// The group context events are stamped with.
    pub fn groups(&self) -> Memberships {
        self.0.state.load().groups.clone()
    }

    pub fn session_id(&self) -> &str {
        &self.0.session_id
    }
}

/// Reads a group context: a JSON object of group key → array of ids. The
/// shape is `InvalidJson`; a key or id that breaks the id rules is
/// `InvalidArgument`; a key with an empty array is left out.
pub fn group_context(text: &str) -> Result<Memberships> {
    const WHAT: &str = "groups_json";
    let map = crate::json::object(text, WHAT)?;
    let mut groups = Memberships::default();
    for (key, ids) in &map {
        let Value::Array(ids) = ids else {
            return Err(Error::invalid_json(format!(
                "{WHAT}[\"{key}\"] must be an array of group ids, got {}",
                crate::json::type_name(ids)
            )));
        };
        validate::name(key, &format!("a key of {WHAT}"))?;
        let mut checked = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let Value::String(id) = id else {
                return Err(Error::invalid_json(format!(
                    "{WHAT}[\"{key}\"][{i}] must be a string, got {}",
                    crate::json::type_name(id)
                )));
            };
            checked.push(validate::name(id, &format!("{WHAT}[\"{key}\"][{i}]"))?.to_string());
        }
        groups.set(key, &checked);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn a_group_context_is_an_object_of_id_arrays() {
        let g = group_context(r#"{"active_team":["a","b","a"],"empty":[]}"#).unwrap();
        assert_eq!(g.to_json().to_string(), r#"{"active_team":["a","b"]}"#);
        assert!(group_context("{}").unwrap().is_empty());
        for bad in [
            "[]",
            "\"x\"",
            "{",
            r#"{"k":"a"}"#,
            r#"{"k":[1]}"#,
            r#"{"k":[null]}"#,
        ] {
            let e = group_context(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidJson, "{bad}: {}", e.message);
        }
        for bad in [r#"{"k":[""]}"#, r#"{"":["a"]}"#] {
            let e = group_context(bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{bad}: {}", e.message);
        }
        let long = format!(r#"{{"k":["{}"]}}"#, "x".repeat(256));
        assert_eq!(
            group_context(&long).unwrap_err().kind,
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn a_user_has_a_fixed_server_session_and_lane() {
        let u = User::from_json("u-1", Some(r#"{"team":["t"]}"#)).unwrap();
        let same = User::new("u-1", Memberships::default()).unwrap();
        assert_eq!(u.session_id(), "server:u-1");
        assert_eq!(u.0.lane_key, same.0.lane_key);
        assert_eq!(u.groups().get("team"), Some(&["t".to_string()][..]));
        assert_eq!(
            User::new("", Memberships::default()).err().map(|e| e.kind),
            Some(ErrorKind::InvalidArgument)
        );
    }
}
