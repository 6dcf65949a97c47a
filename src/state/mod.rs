//! The local state, libtrodo's localStorage: identity, session, group
//! memberships and opt-out, kept in one small JSON file (`state.json`) in the
//! storage directory.
//!
//! The state is the device's, shared by every process using the directory:
//! each process keeps the state it last agreed with the file (its *base*),
//! and a sync merges field by field under a cross-process lock, so a process
//! writes only what it changed and takes up what others changed
//! ([`merge`](merge::merge), [`StateFile::sync_by`]).

use serde_json::{json, Value};

use crate::groups::Memberships;
use crate::util::{new_id, now_ms};

mod file;
pub mod merge;

pub use file::{StateFile, Synced};

const FORMAT_VERSION: u64 = 1;

/// A session ends after this long without activity (our choice, the common default).
pub const SESSION_TIMEOUT_MS: u64 = 30 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub start_ms: u64,
    pub last_activity_ms: u64,
    /// Whether `/api/sdk/track` has been sent for this session.
    pub registered: bool,
}

impl Session {
    pub fn new(now: u64) -> Session {
        Session {
            id: new_id(),
            start_ms: now,
            last_activity_ms: now,
            registered: false,
        }
    }
}

/// Everything that must survive a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalState {
    pub anonymous_id: String,
    pub distinct_id: String,
    pub session: Session,
    pub groups: Memberships,
    /// Set by `set_opt_out(true)`: record nothing until turned off.
    pub opt_out: bool,
}

impl LocalState {
    pub fn fresh() -> LocalState {
        let anonymous_id = new_id();
        LocalState {
            distinct_id: anonymous_id.clone(),
            anonymous_id,
            session: Session::new(now_ms()),
            groups: Memberships::default(),
            opt_out: false,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "version": FORMAT_VERSION,
            "anonymous_id": self.anonymous_id,
            "distinct_id": self.distinct_id,
            "session": {
                "id": self.session.id,
                "start_ms": self.session.start_ms,
                "last_activity_ms": self.session.last_activity_ms,
                "registered": self.session.registered,
            },
            "groups": self.groups.to_json(),
            "opt_out": self.opt_out,
        })
    }

    /// `Err` says what is wrong, for the report.
    pub fn from_json(v: &Value) -> std::result::Result<LocalState, String> {
        if v.get("version").and_then(Value::as_u64) != Some(FORMAT_VERSION) {
            return Err(format!(
                "unknown format version {}",
                v.get("version").unwrap_or(&Value::Null)
            ));
        }
        let text = |obj: &Value, k: &str| -> std::result::Result<String, String> {
            obj.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("missing or empty \"{k}\""))
        };
        let num = |obj: &Value, k: &str| {
            obj.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("missing \"{k}\""))
        };
        let s = v.get("session").ok_or("missing \"session\"")?;
        Ok(LocalState {
            anonymous_id: text(v, "anonymous_id")?,
            distinct_id: text(v, "distinct_id")?,
            session: Session {
                id: text(s, "id")?,
                start_ms: num(s, "start_ms")?,
                last_activity_ms: num(s, "last_activity_ms")?,
                registered: s
                    .get("registered")
                    .and_then(Value::as_bool)
                    .ok_or("missing \"registered\"")?,
            },
            groups: v
                .get("groups")
                .and_then(Memberships::from_json)
                .ok_or("\"groups\" is not an object of string arrays")?,
            opt_out: v.get("opt_out").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}
