//! The Trodo HTTP API as data: every path and every field name the SDK sends or
//! reads lives here and nowhere else (`docs/wire-protocol.md`). Builders take checked
//! core values and return request bodies.

use serde_json::{json, Map, Value};

use crate::groups::Memberships;
use crate::json::{type_name, write_json, write_str, RawObject};
use crate::profile::{GroupProfileOp, PeopleOp};

macro_rules! sdk {
    ($p:literal) => {
        concat!("/api/sdk/", $p)
    };
}

/// Request paths, relative to `api_base`.
pub mod path {
    pub const SESSION: &str = sdk!("track");
    pub const EVENT: &str = "/api/events";
    pub const EVENTS_BULK: &str = "/api/events/bulk";
    pub const IDENTIFY: &str = sdk!("identify");
    pub const RESET: &str = sdk!("reset");
    pub const SET_GROUP: &str = sdk!("groups/set_group");
    pub const ADD_GROUP: &str = sdk!("groups/add_group");
    pub const REMOVE_GROUP: &str = sdk!("groups/remove_group");
}

/// Header names and the media type of every body.
pub mod header {
    pub const SITE_ID: &str = "X-Trodo-Site-Id";
    pub const CONTENT_TYPE: &str = "Content-Type";
    pub const USER_AGENT: &str = "User-Agent";
    pub const CONTENT_ENCODING: &str = "Content-Encoding";
    pub const JSON: &str = "application/json";
    pub const GZIP: &str = "gzip";
}

/// `trodo-native/<version> (<os>; <arch>)` (our choice of UA text).
pub fn user_agent() -> String {
    format!(
        "trodo-native/{} ({}; {})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// What identifies the caller in every body.
pub struct Who<'a> {
    pub site_id: &'a str,
    pub session_id: &'a str,
    pub distinct_id: &'a str,
}

/// The device description sent with a session (our choice for native apps).
pub struct Device<'a> {
    pub device_type: &'a str,
    pub os_name: &'a str,
    pub os_version: &'a str,
    pub app_version: Option<&'a str>,
}

/// `sessionData` for `POST /api/sdk/track`.
pub fn session_registration(
    who: &Who,
    start_ms: u64,
    last_activity_ms: u64,
    device: &Device,
) -> Value {
    let mut data = json!({
        "session_id": who.session_id,
        "site_id": who.site_id,
        "user_id": who.distinct_id,
        "distinct_id": who.distinct_id,
        "team_id": null,
        "start_time": crate::util::iso8601_ms(start_ms),
        "last_activity": last_activity_ms,
        "is_bounce": false,
        "device_type": device.device_type,
        "os_name": device.os_name,
        "os_version": device.os_version,
        "is_server_session": false,
    });
    if let (Some(v), Some(obj)) = (device.app_version, data.as_object_mut()) {
        obj.insert("app_version".into(), Value::from(v));
    }
    json!({ "sessionData": data })
}

/// `sessionData` for `POST /api/sdk/track` registering a server-mode user's
/// session: exactly the fields Trodo's server SDK sends (no device fields).
/// Written straight to bytes: it comes with the first call for every user.
pub fn server_session_registration(who: &Who, start_ms: u64, last_activity_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(320);
    out.extend_from_slice(b"{\"sessionData\":{\"session_id\":");
    write_str(&mut out, who.session_id);
    out.extend_from_slice(b",\"site_id\":");
    write_str(&mut out, who.site_id);
    out.extend_from_slice(b",\"user_id\":");
    write_str(&mut out, who.distinct_id);
    out.extend_from_slice(b",\"distinct_id\":");
    write_str(&mut out, who.distinct_id);
    out.extend_from_slice(b",\"team_id\":null,\"start_time\":\"");
    out.extend_from_slice(&crate::util::iso8601_ms_bytes(start_ms));
    out.extend_from_slice(b"\",\"last_activity\":");
    out.extend_from_slice(last_activity_ms.to_string().as_bytes());
    out.extend_from_slice(
        b",\"is_bounce\":false,\"referrer\":\"server\",\"device_type\":\"server\",\"is_server_session\":true}}",
    );
    out
}

/// Default `event_category` when the caller gives none.
pub const DEFAULT_CATEGORY: &str = "custom";

/// An event's custom properties as the caller gave them.
#[derive(Debug, Clone, Copy)]
pub enum Properties<'a> {
    None,
    Map(&'a Map<String, Value>),
    /// JSON text, checked and re-encoded (the C API's path).
    Raw(&'a RawObject<'a>),
}

impl<'a> From<Option<&'a Map<String, Value>>> for Properties<'a> {
    fn from(map: Option<&'a Map<String, Value>>) -> Self {
        map.map_or(Properties::None, Properties::Map)
    }
}

impl Properties<'_> {
    fn contains_key(self, key: &str) -> bool {
        match self {
            Properties::None => false,
            Properties::Map(m) => m.contains_key(key),
            Properties::Raw(r) => r.contains_key(key),
        }
    }
}

/// An event object, serialized. `custom_properties` are the caller's
/// properties; the group stamp is added for each key the caller did not set.
/// Written straight to bytes: this is the track hot path, and building a
/// `Value` tree only to serialize it again would double its cost.
///
/// This is the queued form: the fields that are always `null` for a native
/// app are left out (72 bytes of every queued event, in memory and on disk)
/// and added back by [`complete_event`] when the request is composed.
pub fn event(
    who: &Who,
    name: &str,
    category: Option<&str>,
    custom_properties: Properties<'_>,
    groups: &Memberships,
    timestamp_ms: u64,
    insert_id: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(384);
    let field = |out: &mut Vec<u8>, key: &str| {
        out.push(if out.is_empty() { b'{' } else { b',' });
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
    };
    let string = |out: &mut Vec<u8>, key: &str, value: &str| {
        field(out, key);
        write_str(out, value);
    };
    string(&mut out, "event_type", "custom");
    string(&mut out, "event_name", name);
    string(
        &mut out,
        "event_category",
        category.unwrap_or(DEFAULT_CATEGORY),
    );
    string(&mut out, "session_id", who.session_id);
    string(&mut out, "user_id", who.distinct_id);
    // Digits and separators only: no escaping needed.
    field(&mut out, "timestamp");
    out.push(b'"');
    out.extend_from_slice(&crate::util::iso8601_ms_bytes(timestamp_ms));
    out.push(b'"');
    string(&mut out, "insert_id", insert_id);
    field(&mut out, "custom_properties");
    out.push(b'{');
    let start = out.len();
    let entry = |out: &mut Vec<u8>, key: &str| {
        if out.len() > start {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
    };
    match custom_properties {
        Properties::None => {}
        Properties::Map(map) => {
            for (key, value) in map {
                entry(&mut out, key);
                match value {
                    Value::String(text) => write_str(&mut out, text),
                    other => write_json(&mut out, other),
                }
            }
        }
        Properties::Raw(raw) => out.extend_from_slice(&raw.members),
    }
    for (key, ids) in groups.iter() {
        if !custom_properties.contains_key(key) {
            entry(&mut out, key);
            write_json(&mut out, ids);
        }
    }
    out.extend_from_slice(b"}}");
    out
}

/// The event fields that are always `null` for a native app.
const NULL_EVENT_FIELDS: &[u8] =
    b"\"page_data\":null,\"auto_event_data\":null,\"element_data\":null,\"override_data\":null,";

/// Appends a queued event (from [`event`]) with its `null` fields restored.
pub fn complete_event(queued: &[u8], out: &mut Vec<u8>) {
    match queued.split_first() {
        Some((b'{', rest)) => {
            out.push(b'{');
            out.extend_from_slice(NULL_EVENT_FIELDS);
            out.extend_from_slice(rest);
        }
        _ => out.extend_from_slice(queued),
    }
}

/// The body of `POST /api/events/bulk` from queued events.
pub fn bulk_events(events: &[&[u8]]) -> Vec<u8> {
    let extra = NULL_EVENT_FIELDS.len() + 1;
    let mut out = Vec::with_capacity(events.iter().map(|e| e.len() + extra).sum::<usize>() + 12);
    out.extend_from_slice(b"{\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        complete_event(e, &mut out);
    }
    out.extend_from_slice(b"]}");
    out
}

/// `POST /api/sdk/identify`: `who` is the identity in use *before* the call.
pub fn identify(who: &Who, identify_id: &str) -> Value {
    json!({
        "siteId": who.site_id,
        "sessionId": who.session_id,
        "userId": who.distinct_id,
        "distinctId": who.distinct_id,
        "identifyId": identify_id,
    })
}

/// `POST /api/sdk/reset`, naming the identity being left.
pub fn reset(who: &Who) -> Value {
    json!({
        "siteId": who.site_id,
        "sessionId": who.session_id,
        "userId": who.distinct_id,
        "distinctId": who.distinct_id,
    })
}

/// Which membership call, and for `set_group` one id or several.
pub enum MembershipCall<'a> {
    Set(&'a [String]),
    Add(&'a str),
    Remove(&'a str),
}

/// Path and body of a membership call.
pub fn membership(who: &Who, group_key: &str, call: MembershipCall) -> (&'static str, Value) {
    let (path, group_id) = match call {
        // One id goes as a string, as the web SDK sends it; several as an array.
        MembershipCall::Set([one]) => (path::SET_GROUP, Value::from(one.as_str())),
        MembershipCall::Set(ids) => (path::SET_GROUP, Value::from(ids.to_vec())),
        MembershipCall::Add(id) => (path::ADD_GROUP, Value::from(id)),
        MembershipCall::Remove(id) => (path::REMOVE_GROUP, Value::from(id)),
    };
    let body = json!({
        "siteId": who.site_id,
        "userId": who.distinct_id,
        "groupKey": group_key,
        "groupId": group_id,
    });
    (path, body)
}

/// Path and body of a group-profile operation.
pub fn group_profile(
    who: &Who,
    group_key: &str,
    group_id: &str,
    op: GroupProfileOp,
) -> (&'static str, Value) {
    let mut body = Map::new();
    body.insert("siteId".into(), who.site_id.into());
    body.insert("userId".into(), who.distinct_id.into());
    body.insert("groupKey".into(), group_key.into());
    body.insert("groupId".into(), group_id.into());
    let path = match op {
        GroupProfileOp::Set(p) => {
            body.insert("properties".into(), Value::Object(p));
            sdk!("groups/profile/set")
        }
        GroupProfileOp::SetOnce(p) => {
            body.insert("properties".into(), Value::Object(p));
            sdk!("groups/profile/set_once")
        }
        GroupProfileOp::Union { list_name, values } => {
            body.insert("listName".into(), list_name.into());
            body.insert("values".into(), Value::Array(values));
            sdk!("groups/profile/union")
        }
        GroupProfileOp::Remove { list_name, value } => {
            body.insert("listName".into(), list_name.into());
            body.insert("value".into(), value);
            sdk!("groups/profile/remove")
        }
        GroupProfileOp::Append { property, value } => {
            body.insert("property".into(), property.into());
            body.insert("value".into(), value);
            sdk!("groups/profile/append")
        }
        GroupProfileOp::Increment { property, value } => {
            body.insert("property".into(), property.into());
            body.insert("value".into(), number(value));
            sdk!("groups/profile/increment")
        }
        GroupProfileOp::Unset { property } => {
            body.insert("property".into(), property.into());
            sdk!("groups/profile/unset")
        }
        GroupProfileOp::Delete => sdk!("groups/profile/delete"),
    };
    (path, Value::Object(body))
}

/// Path and body of a people operation on the current user.
pub fn people(who: &Who, op: PeopleOp) -> (&'static str, Value) {
    let mut body = Map::new();
    body.insert("siteId".into(), who.site_id.into());
    body.insert("userId".into(), who.distinct_id.into());
    let path = match op {
        PeopleOp::Set(p) => {
            body.insert("properties".into(), Value::Object(p));
            sdk!("people/set")
        }
        PeopleOp::SetOnce(p) => {
            body.insert("properties".into(), Value::Object(p));
            sdk!("people/set_once")
        }
        PeopleOp::Unset { key } => {
            body.insert("keys".into(), Value::from(vec![key]));
            sdk!("people/unset")
        }
        PeopleOp::Increment { key, amount } => {
            body.insert("key".into(), key.into());
            body.insert("amount".into(), number(amount));
            sdk!("people/increment")
        }
        PeopleOp::Append { key, values } => {
            body.insert("key".into(), key.into());
            body.insert("values".into(), Value::Array(values));
            sdk!("people/append")
        }
        PeopleOp::Union { key, values } => {
            body.insert("key".into(), key.into());
            body.insert("values".into(), Value::Array(values));
            sdk!("people/union")
        }
        PeopleOp::Remove { key, values } => {
            body.insert("key".into(), key.into());
            body.insert("values".into(), Value::Array(values));
            sdk!("people/remove")
        }
        PeopleOp::TrackCharge { amount, properties } => {
            body.insert("amount".into(), number(amount));
            body.insert("properties".into(), Value::Object(properties));
            sdk!("people/track_charge")
        }
        PeopleOp::ClearCharges => sdk!("people/clear_charges"),
        PeopleOp::DeleteUser => sdk!("people/delete_user"),
    };
    (path, Value::Object(body))
}

/// A finite f64 as JSON, written as an integer when it is one (`5`, not `5.0`).
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15 {
        Value::from(v as i64)
    } else {
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

/// What an identify response tells the SDK.
#[derive(Debug, Default, PartialEq)]
pub struct IdentifyResponse {
    /// `newDistinctId`, else `distinctId`, when a non-empty string.
    pub new_distinct_id: Option<String>,
    /// `group_memberships`, when present and usable.
    pub memberships: Option<Memberships>,
    /// What was ignored and why, for the diagnostics.
    pub problems: Vec<String>,
}

/// Reads an identify response leniently: an object mapping group key to a
/// string or an array of strings; anything else is ignored and reported.
pub fn parse_identify_response(body: &Value) -> IdentifyResponse {
    let mut out = IdentifyResponse {
        new_distinct_id: ["newDistinctId", "distinctId"]
            .iter()
            .filter_map(|k| body.get(*k).and_then(Value::as_str))
            .find(|s| crate::validate::name(s, "distinct id").is_ok())
            .map(str::to_string),
        ..Default::default()
    };
    match body.get("group_memberships") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            let mut m = Memberships::default();
            for (key, ids) in map {
                if crate::validate::name(key, "group key").is_err() {
                    out.problems.push(format!(
                        "group_memberships: ignored unusable group key {key:?}"
                    ));
                    continue;
                }
                let list: Vec<&Value> = match ids {
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                let mut good = Vec::new();
                for id in list {
                    match id
                        .as_str()
                        .filter(|s| crate::validate::name(s, "group id").is_ok())
                    {
                        Some(s) => good.push(s.to_string()),
                        None => out.problems.push(format!(
                            "group_memberships[{key:?}]: ignored {id} (not a usable group id)"
                        )),
                    }
                }
                m.set(key, &good);
            }
            out.memberships = Some(m);
        }
        Some(other) => out.problems.push(format!(
            "group_memberships ignored: expected an object, got {}",
            type_name(other)
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_response_is_read_leniently() {
        let r = parse_identify_response(&json!({
            "newDistinctId": "u-9",
            "group_memberships": {"company": "acme", "team": ["a", 3, "b"], "": ["x"]}
        }));
        assert_eq!(r.new_distinct_id.as_deref(), Some("u-9"));
        let m = r.memberships.unwrap();
        assert_eq!(m.get("company"), Some(&["acme".to_string()][..]));
        assert_eq!(m.get("team"), Some(&["a".to_string(), "b".to_string()][..]));
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);

        let r = parse_identify_response(&json!({"distinctId": "d", "group_memberships": [1]}));
        assert_eq!(r.new_distinct_id.as_deref(), Some("d"));
        assert!(r.memberships.is_none());
        assert_eq!(r.problems.len(), 1);

        assert_eq!(
            parse_identify_response(&json!({})),
            IdentifyResponse::default()
        );
    }

    #[test]
    fn events_carry_every_field_and_the_stamp_under_the_callers_keys() {
        let who = Who {
            site_id: "s",
            session_id: "sess",
            distinct_id: "u\"1\n\\",
        };
        let mut groups = Memberships::default();
        groups.set("team", &["a".to_string(), "b".to_string()]);
        groups.set("company", &["acme".to_string()]);
        let props = json!({"company": "mine", "n": 1.5, "q\"k": "t\u{1}x"})
            .as_object()
            .cloned()
            .unwrap();
        let queued = event(
            &who,
            "clicked",
            None,
            Properties::Map(&props),
            &groups,
            0,
            "id-1",
        );
        // Given as text, the properties make the same event (the group stamp
        // still yields to a property of the same name).
        let text = serde_json::to_string(&props).unwrap();
        let raw = crate::json::raw_object(&text).unwrap();
        let from_text = event(
            &who,
            "clicked",
            None,
            Properties::Raw(&raw),
            &groups,
            0,
            "id-1",
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&from_text).unwrap(),
            serde_json::from_slice::<Value>(&queued).unwrap()
        );
        assert!(
            !String::from_utf8_lossy(&queued).contains("page_data"),
            "kept short in the queue"
        );
        let mut bytes = Vec::new();
        complete_event(&queued, &mut bytes);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            json!({
                "event_type": "custom", "event_name": "clicked", "event_category": "custom",
                "session_id": "sess", "user_id": "u\"1\n\\", "timestamp": "1970-01-01T00:00:00.000Z",
                "insert_id": "id-1", "page_data": null, "auto_event_data": null,
                "element_data": null, "override_data": null,
                "custom_properties": {"company": "mine", "n": 1.5, "q\"k": "t\u{1}x", "team": ["a", "b"]},
            })
        );
        let empty = event(
            &who,
            "e",
            Some("cat"),
            Properties::None,
            &Memberships::default(),
            0,
            "i",
        );
        let v: Value = serde_json::from_slice(&empty).unwrap();
        assert_eq!(v["custom_properties"], json!({}));
        assert_eq!(v["event_category"], "cat");
    }

    #[test]
    fn a_server_session_registration_has_exactly_the_server_sdks_fields() {
        let who = Who {
            site_id: "site",
            session_id: "server:a \"quoted\" id",
            distinct_id: "a \"quoted\" id",
        };
        let body = server_session_registration(&who, 0, 1_700_000_000_123);
        let parsed: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed,
            json!({"sessionData": {
                "session_id": "server:a \"quoted\" id", "site_id": "site",
                "user_id": "a \"quoted\" id", "distinct_id": "a \"quoted\" id",
                "team_id": null, "start_time": "1970-01-01T00:00:00.000Z",
                "last_activity": 1_700_000_000_123u64, "is_bounce": false,
                "referrer": "server", "device_type": "server", "is_server_session": true,
            }})
        );
    }

    #[test]
    fn bulk_bodies_wrap_serialized_events() {
        let body = bulk_events(&[br#"{"a":1}"#, br#"{"b":2}"#]);
        let v: Value = serde_json::from_slice(&body).unwrap();
        let nulls = json!({"page_data": null, "auto_event_data": null, "element_data": null, "override_data": null});
        let with = |extra: Value| {
            let mut o = nulls.as_object().cloned().unwrap();
            o.extend(extra.as_object().cloned().unwrap());
            Value::Object(o)
        };
        assert_eq!(
            v,
            json!({"events": [with(json!({"a": 1})), with(json!({"b": 2}))]})
        );
    }

    #[test]
    fn whole_numbers_are_sent_as_integers() {
        assert_eq!(number(5.0).to_string(), "5");
        assert_eq!(number(-2.5).to_string(), "-2.5");
        assert_eq!(number(1e300).to_string(), "1e+300");
    }
}
