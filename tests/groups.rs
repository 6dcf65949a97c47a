//! Groups as the seed describes them: membership calls, attribution stamps,
//! profile operations, against the loopback fake server.

mod common;
mod support;

use common::*;
use serde_json::json;
use support::FakeTrodo;
use trodo::{ErrorKind, Group, GroupProfileOp};

#[test]
fn multi_team_pattern_stamps_events_from_the_switch_on() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    let c = start(server.url(), &dir);

    c.track("before_any_group", None, None).unwrap();
    c.add_group("team", "team-a").unwrap();
    c.add_group("team", "team-b").unwrap();
    c.set_group("active_team", "team-a").unwrap();
    c.track("worked_in_a", props(json!({"doc": 1})), None)
        .unwrap();
    c.set_group("active_team", "team-b").unwrap();
    c.track("worked_in_b", None, Some("editor")).unwrap();
    c.flush(WAIT).unwrap();

    let before = server.event("before_any_group");
    assert_eq!(
        before["custom_properties"],
        json!({}),
        "no backfill, no stamp before a group call"
    );
    let a = server.event("worked_in_a");
    assert_eq!(
        a["custom_properties"],
        json!({"doc": 1, "team": ["team-a", "team-b"], "active_team": ["team-a"]})
    );
    let b = server.event("worked_in_b");
    assert_eq!(b["custom_properties"]["active_team"], json!(["team-b"]));
    assert_eq!(b["custom_properties"]["team"], json!(["team-a", "team-b"]));
    assert_eq!(b["event_category"], "editor");
    assert_eq!(a["event_category"], "custom");
    assert_eq!(
        c.groups().unwrap().to_json(),
        json!({"team": ["team-a", "team-b"], "active_team": ["team-b"]})
    );

    // The membership calls went out in call order with the documented bodies.
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/api/sdk/track",
            "/api/events",
            "/api/sdk/groups/add_group",
            "/api/sdk/groups/add_group",
            "/api/sdk/groups/set_group",
            "/api/events",
            "/api/sdk/groups/set_group",
            "/api/events",
        ]
    );
    let set = &server.to_path("/api/sdk/groups/set_group")[1];
    let user = c.distinct_id().unwrap();
    assert_eq!(
        set.body,
        json!({"siteId": SITE, "userId": user, "groupKey": "active_team", "groupId": "team-b"})
    );
    assert_eq!(set.header("content-type"), Some("application/json"));
    assert_eq!(set.header("x-trodo-site-id"), Some(SITE));
    let ua = set.header("user-agent").unwrap();
    assert!(
        ua.starts_with("trodo-native/0.1.0 (") && ua.ends_with(')'),
        "{ua}"
    );
    c.shutdown(WAIT).unwrap();
}

#[test]
fn event_objects_have_every_documented_field() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    c.track("signup", props(json!({"plan": "pro"})), None)
        .unwrap();
    c.track("signup", None, None).unwrap();
    c.flush(WAIT).unwrap();
    let events = server.events();
    let e = &events[0];
    let session = &server.to_path("/api/sdk/track")[0].body["sessionData"];
    assert_eq!(e["event_type"], "custom");
    assert_eq!(e["session_id"], session["session_id"]);
    assert_eq!(e["user_id"], c.distinct_id().unwrap());
    for null_field in [
        "page_data",
        "auto_event_data",
        "element_data",
        "override_data",
    ] {
        assert!(e[null_field].is_null(), "{null_field}");
    }
    let ts = e["timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{ts}"
    );
    assert_eq!(e["insert_id"].as_str().unwrap().len(), 36);
    assert_ne!(e["insert_id"], events[1]["insert_id"]);

    assert_eq!(session["site_id"], SITE);
    assert_eq!(session["user_id"], session["distinct_id"]);
    assert!(session["team_id"].is_null());
    assert_eq!(session["is_bounce"], false);
    assert_eq!(session["is_server_session"], false);
    assert_eq!(session["device_type"], "desktop");
    assert!(session["os_name"].is_string() && session["os_version"].is_string());
    assert!(session["last_activity"].is_u64() && session["start_time"].is_string());
    assert_eq!(
        server.to_path("/api/sdk/track").len(),
        1,
        "one registration per session"
    );
    c.shutdown(WAIT).unwrap();
}

#[test]
fn caller_properties_win_over_the_stamp_and_remove_clears_a_key() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    c.set_groups("company", &["acme", "globex", "acme"])
        .unwrap();
    c.track("explicit", props(json!({"company": "mine"})), None)
        .unwrap();
    c.remove_group("company", "acme").unwrap();
    c.track("one_left", None, None).unwrap();
    c.remove_group("company", "globex").unwrap();
    c.track("none_left", None, None).unwrap();
    c.flush(WAIT).unwrap();
    assert_eq!(
        server.event("explicit")["custom_properties"]["company"],
        "mine"
    );
    assert_eq!(
        server.event("one_left")["custom_properties"]["company"],
        json!(["globex"])
    );
    assert_eq!(server.event("none_left")["custom_properties"], json!({}));
    let set = &server.to_path("/api/sdk/groups/set_group")[0];
    assert_eq!(
        set.body["groupId"],
        json!(["acme", "globex"]),
        "an array for several ids"
    );
    assert_eq!(
        server.to_path("/api/sdk/groups/remove_group")[0].body["groupId"],
        "acme"
    );
    assert!(c.groups().unwrap().is_empty());
    c.shutdown(WAIT).unwrap();
}

#[test]
fn add_group_twice_changes_nothing_locally() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    c.add_group("team", "a").unwrap();
    c.add_group("team", "a").unwrap();
    assert_eq!(c.groups().unwrap().to_json(), json!({"team": ["a"]}));
    c.flush(WAIT).unwrap();
    // Still sent each time, so the server is sure to have it.
    assert_eq!(server.to_path("/api/sdk/groups/add_group").len(), 2);
    assert_eq!(
        server.memberships_of(&c.distinct_id().unwrap()),
        json!({"team": ["a"]})
    );
    c.shutdown(WAIT).unwrap();
}

#[test]
fn all_eight_profile_operations_send_their_documented_bodies() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    let g = Group::new("company", "acme").unwrap();
    let ops = [
        GroupProfileOp::Set(props(json!({"plan": "pro"})).unwrap()),
        GroupProfileOp::SetOnce(props(json!({"founded": 1999})).unwrap()),
        GroupProfileOp::Union {
            list_name: "tags".into(),
            values: vec![json!("b2b"), json!(2)],
        },
        GroupProfileOp::Remove {
            list_name: "tags".into(),
            value: json!("old"),
        },
        GroupProfileOp::Append {
            property: "events".into(),
            value: json!({"x": 1}),
        },
        GroupProfileOp::Increment {
            property: "seats".into(),
            value: 3.0,
        },
        GroupProfileOp::Unset {
            property: "legacy".into(),
        },
        GroupProfileOp::Delete,
    ];
    for op in ops {
        c.group_profile(&g, op).unwrap();
    }
    c.flush(WAIT).unwrap();
    let user = c.distinct_id().unwrap();
    let base = json!({"siteId": SITE, "userId": user, "groupKey": "company", "groupId": "acme"});
    let with = |extra: serde_json::Value| {
        let mut b = base.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let expected = [
        ("set", with(json!({"properties": {"plan": "pro"}}))),
        ("set_once", with(json!({"properties": {"founded": 1999}}))),
        (
            "union",
            with(json!({"listName": "tags", "values": ["b2b", 2]})),
        ),
        ("remove", with(json!({"listName": "tags", "value": "old"}))),
        (
            "append",
            with(json!({"property": "events", "value": {"x": 1}})),
        ),
        ("increment", with(json!({"property": "seats", "value": 3}))),
        ("unset", with(json!({"property": "legacy"}))),
        ("delete", base.clone()),
    ];
    let got = server.requests();
    assert_eq!(
        got.len(),
        expected.len(),
        "profile calls register no session and send nothing else"
    );
    for (r, (op, body)) in got.iter().zip(expected) {
        assert_eq!(r.path, format!("/api/sdk/groups/profile/{op}"));
        assert_eq!(r.body, body, "{op}");
    }
    // A handle has no effect on attribution.
    assert!(c.groups().unwrap().is_empty());
    c.shutdown(WAIT).unwrap();
}

#[test]
fn bad_arguments_are_refused_and_lose_nothing_accepted() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    c.add_group("team", "a").unwrap();
    let long = "x".repeat(256);
    let cases: Vec<(trodo::Error, &str)> = vec![
        (c.add_group("", "a").unwrap_err(), "group_key"),
        (c.add_group("team", &long).unwrap_err(), "group_id"),
        (c.set_groups::<&str>("team", &[]).unwrap_err(), "group_ids"),
        (
            c.set_groups("team", &["ok", ""]).unwrap_err(),
            "group_ids[1]",
        ),
        (c.track("", None, None).unwrap_err(), "event_name"),
        (c.track("e", None, Some("")).unwrap_err(), "category"),
        (c.identify(&long).unwrap_err(), "identify_id"),
        (
            c.group_profile(
                &Group::new("k", "v").unwrap(),
                GroupProfileOp::Increment {
                    property: "p".into(),
                    value: f64::NAN,
                },
            )
            .unwrap_err(),
            "value",
        ),
        (
            c.people(trodo::PeopleOp::TrackCharge {
                amount: f64::INFINITY,
                properties: Default::default(),
            })
            .unwrap_err(),
            "amount",
        ),
    ];
    for (e, arg) in cases {
        assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
        assert!(e.message.contains(arg), "{arg}: {e}");
    }
    c.track("still_here", None, None).unwrap();
    c.flush(WAIT).unwrap();
    assert_eq!(c.groups().unwrap().to_json(), json!({"team": ["a"]}));
    assert_eq!(
        server.event("still_here")["custom_properties"],
        json!({"team": ["a"]})
    );
    assert_eq!(
        server.requests().len(),
        3,
        "session, add_group, event: nothing from refused calls"
    );
    c.shutdown(WAIT).unwrap();
}
