//! Identify (distinct id switch, newDistinctId, hydration), reset, sessions,
//! people, and local state surviving restarts.

mod common;
mod support;

use std::time::Duration;

use common::*;
use serde_json::json;
use support::FakeTrodo;
use trodo::{Client, ErrorKind, PeopleOp};

#[test]
fn identify_sends_the_previous_id_and_switches_at_once() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    let anon = c.distinct_id().unwrap();
    c.identify("user-42").unwrap();
    assert_eq!(
        c.distinct_id().unwrap(),
        "user-42",
        "switches before any answer"
    );
    c.track("after_login", None, None).unwrap();
    c.flush(WAIT).unwrap();
    let session = server.to_path("/api/sdk/track")[0].body["sessionData"].clone();
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/api/sdk/track", "/api/sdk/identify", "/api/events"],
        "session registered first"
    );
    let body = &server.to_path("/api/sdk/identify")[0].body;
    assert_eq!(
        *body,
        json!({"siteId": SITE, "sessionId": session["session_id"], "userId": anon,
               "distinctId": anon, "identifyId": "user-42"})
    );
    assert_eq!(server.event("after_login")["user_id"], "user-42");
    c.shutdown(WAIT).unwrap();
}

#[test]
fn a_new_distinct_id_in_the_answer_replaces_it() {
    let server = FakeTrodo::start();
    server.answer_new_distinct_id("alias@x", "canonical-7");
    let c = start(server.url(), &temp_dir());
    c.identify("alias@x").unwrap();
    c.flush(WAIT).unwrap();
    assert_eq!(c.distinct_id().unwrap(), "canonical-7");
    c.track("later", None, None).unwrap();
    c.flush(WAIT).unwrap();
    assert_eq!(server.event("later")["user_id"], "canonical-7");
    c.shutdown(WAIT).unwrap();
}

#[test]
fn identify_hydrates_memberships_from_another_device() {
    let server = FakeTrodo::start();
    // Device 1: the user joins two teams.
    let d1 = start(server.url(), &temp_dir());
    d1.identify("user-1").unwrap();
    d1.add_group("team", "a").unwrap();
    d1.add_group("team", "b").unwrap();
    d1.set_group("active_team", "b").unwrap();
    d1.shutdown(WAIT).unwrap();
    assert_eq!(
        server.memberships_of("user-1"),
        json!({"team": ["a", "b"], "active_team": ["b"]})
    );

    // Device 2: a local-only membership is replaced by the server's; a call
    // made while identify is in flight is kept on top.
    server.set_identify_delay(Duration::from_millis(300));
    let d2 = start(server.url(), &temp_dir());
    d2.add_group("team", "stale-local").unwrap();
    d2.identify("user-1").unwrap();
    d2.add_group("team", "c").unwrap();
    d2.flush(WAIT).unwrap();
    assert_eq!(
        d2.groups().unwrap().to_json(),
        json!({"team": ["a", "b", "c"], "active_team": ["b"]})
    );
    d2.track("stamped", None, None).unwrap();
    d2.flush(WAIT).unwrap();
    assert_eq!(
        server.event("stamped")["custom_properties"]["team"],
        json!(["a", "b", "c"])
    );
    d2.shutdown(WAIT).unwrap();
}

#[test]
fn an_unusable_memberships_answer_changes_nothing_and_is_reported() {
    let server = FakeTrodo::start();
    server.answer_raw_memberships("u", json!(["not", "an", "object"]));
    let c = start(server.url(), &temp_dir());
    c.add_group("team", "kept").unwrap();
    c.identify("u").unwrap();
    c.flush(WAIT).unwrap();
    assert_eq!(c.groups().unwrap().to_json(), json!({"team": ["kept"]}));
    assert_reported(&c, "group_memberships");
    c.shutdown(WAIT).unwrap();
}

#[test]
fn reset_forgets_the_user_and_ignores_a_late_identify_answer() {
    let server = FakeTrodo::start();
    server.seed_memberships("user-1", "company", &["acme"]);
    server.set_identify_delay(Duration::from_millis(200));
    let c = start(server.url(), &temp_dir());
    c.identify("user-1").unwrap();
    c.set_group("active_team", "t1").unwrap();
    let old_session = {
        c.track("as_user", None, None).unwrap();
        c.flush(WAIT).unwrap();
        server.event("as_user")["session_id"].clone()
    };
    c.identify("user-1").unwrap(); // answered late, after the reset below
    c.reset().unwrap();
    let anon = c.distinct_id().unwrap();
    assert_ne!(anon, "user-1");
    assert!(
        c.groups().unwrap().is_empty(),
        "the next person inherits nothing"
    );
    c.flush(WAIT).unwrap();
    assert!(
        c.groups().unwrap().is_empty(),
        "a late answer for the old user is ignored"
    );
    assert_eq!(c.distinct_id().unwrap(), anon);

    let reset = &server.to_path("/api/sdk/reset")[0].body;
    assert_eq!(
        *reset,
        json!({"siteId": SITE, "sessionId": old_session, "userId": "user-1", "distinctId": "user-1"})
    );
    c.track("as_anon", None, None).unwrap();
    c.flush(WAIT).unwrap();
    let e = server.event("as_anon");
    assert_eq!(e["user_id"], anon);
    assert_eq!(e["custom_properties"], json!({}));
    assert_ne!(e["session_id"], old_session, "reset starts a new session");
    let sessions = server.to_path("/api/sdk/track");
    assert_eq!(sessions.len(), 2);
    assert_eq!(
        sessions[1].body["sessionData"]["session_id"],
        e["session_id"]
    );
    c.shutdown(WAIT).unwrap();
}

#[test]
fn people_operations_send_their_documented_bodies() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    c.identify("p-1").unwrap();
    let ops = vec![
        (
            PeopleOp::Set(props(json!({"name": "Ada"})).unwrap()),
            "set",
            json!({"properties": {"name": "Ada"}}),
        ),
        (
            PeopleOp::SetOnce(props(json!({"first": true})).unwrap()),
            "set_once",
            json!({"properties": {"first": true}}),
        ),
        (
            PeopleOp::Unset { key: "old".into() },
            "unset",
            json!({"keys": ["old"]}),
        ),
        (
            PeopleOp::Increment {
                key: "logins".into(),
                amount: 1.0,
            },
            "increment",
            json!({"key": "logins", "amount": 1}),
        ),
        (
            PeopleOp::Append {
                key: "l".into(),
                values: vec![json!(1)],
            },
            "append",
            json!({"key": "l", "values": [1]}),
        ),
        (
            PeopleOp::Union {
                key: "l".into(),
                values: vec![json!("a")],
            },
            "union",
            json!({"key": "l", "values": ["a"]}),
        ),
        (
            PeopleOp::Remove {
                key: "l".into(),
                values: vec![json!(1)],
            },
            "remove",
            json!({"key": "l", "values": [1]}),
        ),
        (
            PeopleOp::TrackCharge {
                amount: 9.5,
                properties: props(json!({"sku": "x"})).unwrap(),
            },
            "track_charge",
            json!({"amount": 9.5, "properties": {"sku": "x"}}),
        ),
        (PeopleOp::ClearCharges, "clear_charges", json!({})),
        (PeopleOp::DeleteUser, "delete_user", json!({})),
    ];
    let mut expected = Vec::new();
    for (op, action, extra) in ops {
        c.people(op).unwrap();
        let mut body = json!({"siteId": SITE, "userId": "p-1"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        expected.push((format!("/api/sdk/people/{action}"), body));
    }
    c.flush(WAIT).unwrap();
    let got: Vec<(String, serde_json::Value)> = server
        .requests()
        .into_iter()
        .skip(2)
        .map(|r| (r.path, r.body))
        .collect();
    assert_eq!(got, expected);
    c.shutdown(WAIT).unwrap();
}

#[test]
fn state_survives_shutdown_and_restart() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    let c = start(server.url(), &dir);
    c.identify("user-9").unwrap();
    c.add_group("team", "a").unwrap();
    c.set_groups("active_team", &["a", "b"]).unwrap();
    c.track("first_run", None, None).unwrap();
    c.shutdown(WAIT).unwrap();
    assert_eq!(
        c.track("after", None, None).unwrap_err().kind,
        ErrorKind::NotInitialized
    );

    let c = start(server.url(), &dir);
    assert_eq!(c.distinct_id().unwrap(), "user-9");
    assert_eq!(
        c.groups().unwrap().to_json(),
        json!({"team": ["a"], "active_team": ["a", "b"]})
    );
    c.track("second_run", None, None).unwrap();
    c.flush(WAIT).unwrap();
    let (first, second) = (server.event("first_run"), server.event("second_run"));
    assert_eq!(
        second["custom_properties"],
        json!({"team": ["a"], "active_team": ["a", "b"]})
    );
    assert_eq!(
        first["session_id"], second["session_id"],
        "a restart within 30 minutes keeps the session"
    );
    assert_eq!(
        server.to_path("/api/sdk/track").len(),
        1,
        "and does not register it again"
    );
    c.shutdown(WAIT).unwrap();
}

#[test]
fn state_reaches_disk_without_shutdown() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    let c = start(server.url(), &dir);
    c.add_group("team", "persisted").unwrap();
    let file = dir.join("state.json");
    let mut seen = false;
    for _ in 0..1000 {
        if std::fs::read_to_string(&file).is_ok_and(|t| t.contains("persisted")) {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(seen, "the background writer saved the membership");
    c.shutdown(WAIT).unwrap();
}

#[test]
fn sync_durability_writes_before_the_call_returns() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    let mut o = options(server.url(), &dir);
    o.durability = trodo::Durability::Sync;
    o.persist_interval = Duration::from_secs(3600);
    let c = Client::start(SITE, o).unwrap();
    c.set_group("company", "synced").unwrap();
    let text = std::fs::read_to_string(dir.join("state.json")).unwrap();
    assert!(text.contains("synced"), "{text}");
    c.shutdown(WAIT).unwrap();
}

#[test]
fn a_corrupt_state_file_is_reported_and_replaced() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    std::fs::write(
        dir.join("state.json"),
        b"{\"version\":1,\"groups\":{\"team\":[",
    )
    .unwrap();
    let c = start(server.url(), &dir);
    assert!(c.groups().unwrap().is_empty());
    assert!(
        dir.join("state.json.corrupt").exists(),
        "kept aside for inspection"
    );
    assert_reported(&c, "state file");
    c.add_group("team", "fresh").unwrap();
    c.shutdown(WAIT).unwrap();
    let c = start(server.url(), &dir);
    assert_eq!(c.groups().unwrap().to_json(), json!({"team": ["fresh"]}));
    c.shutdown(WAIT).unwrap();
}

#[test]
fn an_unusable_storage_dir_is_a_storage_error() {
    let dir = temp_dir();
    let blocker = dir.join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let err = Client::start(SITE, options("http://127.0.0.1:9", &blocker.join("sub")))
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::Storage);
    assert!(err.message.contains("a-file"), "{err}");
}
