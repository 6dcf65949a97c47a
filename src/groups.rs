//! Group membership (what events are stamped with), the membership calls, and
//! identify hydration: the server's memberships replace the local ones, then the
//! calls made after that identify was issued are applied again on top.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::validate;

/// Group key → ids, in the order they were added. A key never maps to an
/// empty list: removing its last id removes the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memberships(BTreeMap<String, Vec<String>>);

impl Memberships {
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.0.get(key).map(Vec::as_slice)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Replaces the ids for `key` (duplicates dropped, first one kept).
    pub fn set(&mut self, key: &str, ids: &[String]) {
        let mut unique: Vec<String> = Vec::with_capacity(ids.len());
        for id in ids {
            if !unique.contains(id) {
                unique.push(id.clone());
            }
        }
        if unique.is_empty() {
            self.0.remove(key);
        } else {
            self.0.insert(key.to_string(), unique);
        }
    }

    /// Appends `id` unless present; true when something changed.
    pub fn add(&mut self, key: &str, id: &str) -> bool {
        let ids = self.0.entry(key.to_string()).or_default();
        if ids.iter().any(|x| x == id) {
            return false;
        }
        ids.push(id.to_string());
        true
    }

    /// Removes `id`; true when something changed.
    pub fn remove(&mut self, key: &str, id: &str) -> bool {
        let Some(ids) = self.0.get_mut(key) else {
            return false;
        };
        let before = ids.len();
        ids.retain(|x| x != id);
        let changed = ids.len() != before;
        if ids.is_empty() {
            self.0.remove(key);
        }
        changed
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// `{"key": ["id", ...], ...}`.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, ids)| (k.clone(), Value::from(ids.clone())))
                .collect::<Map<String, Value>>(),
        )
    }

    /// The inverse of [`to_json`](Self::to_json); `None` when the shape is wrong.
    pub fn from_json(value: &Value) -> Option<Memberships> {
        let mut m = Memberships::default();
        for (key, ids) in value.as_object()? {
            let ids = ids
                .as_array()?
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<String>>>()?;
            m.set(key, &ids);
        }
        Some(m)
    }
}

/// A membership call, as applied locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipOp {
    Set { key: String, ids: Vec<String> },
    Add { key: String, id: String },
    Remove { key: String, id: String },
}

impl MembershipOp {
    /// `set_group`: `group_id` (checked) replaces the ids for `key`.
    pub fn set_one(key: &str, group_id: &str) -> Result<MembershipOp> {
        validate::name(group_id, "group_id")?;
        Ok(MembershipOp::Set {
            key: key.to_string(),
            ids: vec![group_id.to_string()],
        })
    }

    /// `set_groups`: the ids (checked, at least one, duplicates kept once)
    /// replace the ids for `key`.
    pub fn set_many<S: AsRef<str>>(key: &str, group_ids: &[S]) -> Result<MembershipOp> {
        if group_ids.is_empty() {
            return Err(Error::invalid_argument(
                "group_ids must hold at least one id (count >= 1)",
            ));
        }
        let mut ids = Vec::with_capacity(group_ids.len());
        for (i, id) in group_ids.iter().enumerate() {
            let id = validate::name(id.as_ref(), &format!("group_ids[{i}]"))?;
            if !ids.iter().any(|x| x == id) {
                ids.push(id.to_string());
            }
        }
        Ok(MembershipOp::Set {
            key: key.to_string(),
            ids,
        })
    }

    /// `add_group`: `group_id` (checked) joins the ids for `key`.
    pub fn add(key: &str, group_id: &str) -> Result<MembershipOp> {
        validate::name(group_id, "group_id")?;
        Ok(MembershipOp::Add {
            key: key.to_string(),
            id: group_id.to_string(),
        })
    }

    /// `remove_group`: `group_id` (checked) leaves the ids for `key`.
    pub fn remove(key: &str, group_id: &str) -> Result<MembershipOp> {
        validate::name(group_id, "group_id")?;
        Ok(MembershipOp::Remove {
            key: key.to_string(),
            id: group_id.to_string(),
        })
    }

    pub fn apply(&self, m: &mut Memberships) {
        match self {
            MembershipOp::Set { key, ids } => m.set(key, ids),
            MembershipOp::Add { key, id } => {
                m.add(key, id);
            }
            MembershipOp::Remove { key, id } => {
                m.remove(key, id);
            }
        }
    }
}

/// Remembers the membership calls made while an identify is in flight, so its
/// response can replace the memberships without undoing them.
#[derive(Debug, Default)]
pub struct Hydration {
    next_token: u64,
    next_op: u64,
    /// identify token → (op number when it was issued, the id it identified).
    in_flight: BTreeMap<u64, (u64, String)>,
    /// (op number, op), only kept while some identify is in flight.
    journal: Vec<(u64, MembershipOp)>,
}

impl Hydration {
    /// Registers an identify being issued now; returns its token.
    pub fn issue(&mut self, identify_id: &str) -> u64 {
        self.next_token += 1;
        self.in_flight
            .insert(self.next_token, (self.next_op, identify_id.to_string()));
        self.next_token
    }

    /// Records a membership call just applied locally.
    pub fn record(&mut self, op: &MembershipOp) {
        if !self.in_flight.is_empty() {
            self.journal.push((self.next_op, op.clone()));
        }
        self.next_op += 1;
    }

    /// The id an in-flight identify was issued for.
    pub fn identify_id(&self, token: u64) -> Option<&str> {
        self.in_flight.get(&token).map(|(_, id)| id.as_str())
    }

    /// An identify finished. With the server's memberships, `local` becomes
    /// them plus every call made after that identify was issued.
    pub fn complete(&mut self, token: u64, server: Option<Memberships>, local: &mut Memberships) {
        let Some((issued_at, _)) = self.in_flight.remove(&token) else {
            return;
        };
        if let Some(server) = server {
            *local = server;
            for (_, op) in self.journal.iter().filter(|(n, _)| *n >= issued_at) {
                op.apply(local);
            }
        }
        let oldest_needed = self.in_flight.values().map(|(n, _)| *n).min();
        match oldest_needed {
            Some(n) => self.journal.retain(|(op_n, _)| *op_n >= n),
            None => self.journal.clear(),
        }
    }

    /// Forgets everything (reset: the next person inherits nothing).
    pub fn clear(&mut self) {
        self.in_flight.clear();
        self.journal.clear();
    }
}

/// A `(group_key, group_id)` pair for profile operations: what
/// `trodo_get_group` hands out. It has no effect on attribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    key: String,
    id: String,
}

impl Group {
    pub fn new(group_key: &str, group_id: &str) -> Result<Group> {
        validate::name(group_key, "group_key")?;
        validate::name(group_id, "group_id")?;
        Ok(Group {
            key: group_key.to_string(),
            id: group_id.to_string(),
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn add_is_idempotent_and_remove_drops_empty_keys() {
        let mut m = Memberships::default();
        assert!(m.add("team", "a"));
        assert!(!m.add("team", "a"));
        assert!(m.add("team", "b"));
        assert_eq!(m.get("team"), Some(&ids(&["a", "b"])[..]));
        assert!(m.remove("team", "a"));
        assert!(!m.remove("team", "zzz"));
        assert!(m.remove("team", "b"));
        assert!(m.is_empty());
    }

    #[test]
    fn set_replaces_and_dedupes() {
        let mut m = Memberships::default();
        m.set("active_team", &ids(&["a"]));
        m.set("active_team", &ids(&["b", "c", "b"]));
        assert_eq!(m.to_json().to_string(), r#"{"active_team":["b","c"]}"#);
        assert_eq!(Memberships::from_json(&m.to_json()), Some(m));
        assert_eq!(Memberships::from_json(&serde_json::json!({"k": [1]})), None);
    }

    #[test]
    fn hydration_keeps_calls_made_after_the_identify() {
        let mut local = Memberships::default();
        let mut h = Hydration::default();
        let before = MembershipOp::Add {
            key: "team".into(),
            id: "local-only".into(),
        };
        before.apply(&mut local);
        h.record(&before);
        let token = h.issue("user-1");
        let after = MembershipOp::Add {
            key: "team".into(),
            id: "c".into(),
        };
        after.apply(&mut local);
        h.record(&after);

        let mut server = Memberships::default();
        server.set("team", &ids(&["a", "b"]));
        h.complete(token, Some(server), &mut local);
        assert_eq!(local.get("team"), Some(&ids(&["a", "b", "c"])[..]));
        assert!(h.journal.is_empty());
    }

    #[test]
    fn overlapping_identifies_each_reapply_their_own_tail() {
        let mut local = Memberships::default();
        let mut h = Hydration::default();
        let t1 = h.issue("u");
        let op1 = MembershipOp::Set {
            key: "active_team".into(),
            ids: ids(&["x"]),
        };
        op1.apply(&mut local);
        h.record(&op1);
        let t2 = h.issue("u");
        let op2 = MembershipOp::Add {
            key: "team".into(),
            id: "y".into(),
        };
        op2.apply(&mut local);
        h.record(&op2);

        h.complete(t1, Some(Memberships::default()), &mut local);
        assert_eq!(
            local.to_json().to_string(),
            r#"{"active_team":["x"],"team":["y"]}"#
        );
        assert_eq!(
            h.journal.len(),
            1,
            "op2 is still needed by the second identify"
        );
        h.complete(t2, None, &mut local);
        assert_eq!(
            local.to_json().to_string(),
            r#"{"active_team":["x"],"team":["y"]}"#
        );
        assert!(h.journal.is_empty());
    }

    #[test]
    fn group_handles_need_key_and_id() {
        assert!(Group::new("company", "acme").is_ok());
        assert!(Group::new("", "acme")
            .unwrap_err()
            .message
            .contains("group_key"));
        assert!(Group::new("company", "")
            .unwrap_err()
            .message
            .contains("group_id"));
    }
}
