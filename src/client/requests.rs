//! The requests the app-mode calls build: an event (timed and given its
//! insert id when the call is made), a membership call, and a plain call.

use serde_json::Value;

use crate::delivery::{Request, Tag};
use crate::error::Result;
use crate::groups::{MembershipOp, Memberships};
use crate::util::now_ms;
use crate::validate;
use crate::wire::{self, MembershipCall, Who};

/// Runs `track` with properties given as JSON text (an object, or `None`):
/// copied into the event as they are checked, or parsed first when that
/// fast path cannot take them (it then reports the error).
pub(super) fn with_properties_json(
    properties_json: Option<&str>,
    track: impl FnOnce(wire::Properties<'_>) -> Result<()>,
) -> Result<()> {
    let Some(text) = properties_json else {
        return track(wire::Properties::None);
    };
    match crate::json::raw_object(text) {
        Some(raw) => track(wire::Properties::Raw(&raw)),
        None => track(wire::Properties::Map(&crate::json::object(
            text,
            "properties_json",
        )?)),
    }
}

/// An event a caller asked for, timed and given its insert id when asked
/// (not when its turn for the lock comes).
pub(super) struct NewEvent<'a> {
    name: &'a str,
    properties: wire::Properties<'a>,
    category: Option<&'a str>,
    timestamp: u64,
    insert_id: [u8; 36],
}

impl<'a> NewEvent<'a> {
    pub(super) fn now(
        name: &'a str,
        properties: wire::Properties<'a>,
        category: Option<&'a str>,
    ) -> Self {
        NewEvent {
            name,
            properties,
            category,
            timestamp: now_ms(),
            insert_id: crate::util::new_id_bytes(),
        }
    }

    pub(super) fn check(&self) -> Result<()> {
        validate::name(self.name, "event_name")?;
        if let Some(c) = self.category {
            validate::name(c, "category")?;
        }
        Ok(())
    }

    /// When the call was made (ms since the epoch).
    pub(super) fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The event for `who`, stamped with `groups`.
    pub(super) fn request(&self, who: &Who, groups: &Memberships) -> Request {
        // Hex digits and hyphens: always UTF-8.
        let insert_id = std::str::from_utf8(&self.insert_id).unwrap_or_default();
        Request {
            path: wire::path::EVENT,
            body: wire::event(
                who,
                self.name,
                self.category,
                self.properties,
                groups,
                self.timestamp,
                insert_id,
            ),
            tag: Tag::None,
        }
    }
}

/// The request a membership call sends.
pub(super) fn membership_request(who: &Who, op: &MembershipOp) -> Request {
    let (path, body) = match op {
        MembershipOp::Set { key, ids } => wire::membership(who, key, MembershipCall::Set(ids)),
        MembershipOp::Add { key, id } => wire::membership(who, key, MembershipCall::Add(id)),
        MembershipOp::Remove { key, id } => wire::membership(who, key, MembershipCall::Remove(id)),
    };
    plain(path, body)
}

pub(super) fn plain(path: &'static str, body: Value) -> Request {
    Request {
        path,
        body: body.to_string().into_bytes(),
        tag: Tag::None,
    }
}
