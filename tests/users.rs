//! Server mode: calls for many users through `User` handles — bodies,
//! routes, the group stamp, session registration once per user per client,
//! bad input, opt-out, restarts, and many threads acting for many users.

mod common;
mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use common::*;
use serde_json::{json, Value};
use support::FakeTrodo;
use trodo::{Client, ErrorKind, Memberships, Options, PeopleOp, User};

fn user(id: &str, groups: Option<&str>) -> User {
    User::from_json(id, groups).unwrap()
}

fn paths(server: &FakeTrodo) -> Vec<String> {
    server.requests().into_iter().map(|r| r.path).collect()
}

#[test]
fn a_users_event_carries_its_id_server_session_and_group_context() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    let anon = c.distinct_id().unwrap();
    let u = user("u-1", Some(r#"{"active_team":["team-a"],"org":["o1"]}"#));
    c.user_track_json(
        &u,
        "report_viewed",
        Some(r#"{"org":"explicit","n":1}"#),
        None,
    )
    .unwrap();
    c.flush(WAIT).unwrap();

    assert_eq!(paths(&server), ["/api/sdk/track", "/api/events"]);
    let session = &server.to_path("/api/sdk/track")[0].body;
    let data = &session["sessionData"];
    let start_time = data["start_time"].clone();
    assert!(start_time.as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(data["last_activity"].as_u64().is_some());
    let mut expected = json!({
        "session_id": "server:u-1", "site_id": SITE, "user_id": "u-1",
        "distinct_id": "u-1", "team_id": null, "start_time": start_time,
        "is_bounce": false, "referrer": "server", "device_type": "server",
        "is_server_session": true,
    });
    expected["last_activity"] = data["last_activity"].clone();
    assert_eq!(*session, json!({ "sessionData": expected }));

    let e = server.event("report_viewed");
    assert_eq!(e["user_id"], "u-1");
    assert_eq!(e["session_id"], "server:u-1");
    assert_eq!(e["event_category"], "custom");
    assert_eq!(
        e["custom_properties"],
        json!({"org": "explicit", "n": 1, "active_team": ["team-a"]}),
        "stamped like app mode; the caller's property wins"
    );
    // The process's current user is untouched.
    assert_eq!(c.distinct_id().unwrap(), anon);
    assert!(c.groups().unwrap().is_empty());
    c.shutdown(WAIT).unwrap();
}

#[test]
fn a_session_is_registered_once_per_user_per_client_before_its_first_event_or_identify() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    let c = start(server.url(), &dir);
    let (a1, a2, b) = (user("a", None), user("a", None), user("b", None));
    // Membership and people calls register nothing.
    c.user_add_group(&b, "team", "t").unwrap();
    c.user_people(&b, PeopleOp::ClearCharges).unwrap();
    c.flush(WAIT).unwrap();
    assert!(server.to_path("/api/sdk/track").is_empty());

    c.user_track(&a1, "one", None, None).unwrap();
    c.user_track(&a2, "two", None, None).unwrap();
    c.user_track(&a1, "three", None, None).unwrap();
    c.user_identify(&b, "b-known").unwrap();
    c.user_track(&b, "four", None, None).unwrap();
    c.flush(WAIT).unwrap();
    let requests = server.requests();
    let mut registered: Vec<(String, usize)> = requests
        .iter()
        .enumerate()
        .filter(|(_, r)| r.path == "/api/sdk/track")
        .map(|(at, r)| {
            let data = &r.body["sessionData"];
            assert_eq!(
                data["session_id"],
                format!("server:{}", data["distinct_id"].as_str().unwrap())
            );
            (data["session_id"].as_str().unwrap().to_string(), at)
        })
        .collect();
    registered.sort();
    let ids: Vec<&str> = registered.iter().map(|(id, _)| id.as_str()).collect();
    // b registered under the id it had before identify, and before it.
    assert_eq!(ids, ["server:a", "server:b"]);
    let b_session = Some(registered[1].1);
    let b_identify = requests.iter().position(|r| r.path == "/api/sdk/identify");
    assert!(b_session < b_identify, "registered before identify");
    c.shutdown(WAIT).unwrap();

    // A new client registers again (the same session id: harmless).
    let c = start(server.url(), &dir);
    c.user_track(&a1, "five", None, None).unwrap();
    c.flush(WAIT).unwrap();
    assert_eq!(server.to_path("/api/sdk/track").len(), 3);
    c.shutdown(WAIT).unwrap();
}

#[test]
fn a_forgotten_user_is_registered_again_at_its_next_use() {
    let server = FakeTrodo::start();
    let c = Client::start(
        SITE,
        Options {
            remembered_users: 2,
            ..options(server.url(), &temp_dir())
        },
    )
    .unwrap();
    for id in ["a", "b", "c"] {
        c.user_track(&user(id, None), "e", None, None).unwrap();
    }
    // "b" is still remembered; "a" was the least recently used of three.
    c.user_track(&user("b", None), "e", None, None).unwrap();
    c.user_track(&user("a", None), "e", None, None).unwrap();
    c.flush(WAIT).unwrap();
    let sessions: Vec<Value> = server
        .to_path("/api/sdk/track")
        .iter()
        .map(|r| r.body["sessionData"]["session_id"].clone())
        .collect();
    let count = |s: &str| sessions.iter().filter(|x| **x == s).count();
    assert_eq!(
        (count("server:a"), count("server:b"), count("server:c")),
        (2, 1, 1),
        "{sessions:?}"
    );
    assert_eq!(server.events().len(), 5);
    c.shutdown(WAIT).unwrap();
}

#[test]
fn identify_switches_the_handle_and_keeps_its_session() {
    let server = FakeTrodo::start();
    server.answer_new_distinct_id("alias@x", "canonical-9");
    let c = start(server.url(), &temp_dir());
    let u = user("anon-1", None);
    let other = user("someone", None);
    c.user_identify(&u, "alias@x").unwrap();
    assert_eq!(u.distinct_id(), "alias@x", "switches before any answer");
    c.user_identify(&other, "someone-else").unwrap();
    c.flush(WAIT).unwrap();
    assert_eq!(u.distinct_id(), "canonical-9", "the server's answer wins");
    assert_eq!(other.distinct_id(), "someone-else");
    let body = &server.to_path("/api/sdk/identify")[0].body;
    assert_eq!(
        *body,
        json!({"siteId": SITE, "sessionId": "server:anon-1", "userId": "anon-1",
               "distinctId": "anon-1", "identifyId": "alias@x"})
    );
    c.user_track(&u, "after", None, None).unwrap();
    c.flush(WAIT).unwrap();
    let e = server.event("after");
    assert_eq!(e["user_id"], "canonical-9");
    assert_eq!(e["session_id"], "server:anon-1");
    assert_eq!(server.to_path("/api/sdk/track").len(), 2, "no new session");
    assert_ne!(c.distinct_id().unwrap(), "canonical-9");
    c.shutdown(WAIT).unwrap();
}

#[test]
fn membership_calls_go_to_the_server_and_change_only_the_handles_context() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    let u = user("u-2", Some(r#"{"team":["a"]}"#));
    c.user_add_group(&u, "team", "b").unwrap();
    c.user_set_group(&u, "active_team", "a").unwrap();
    c.user_set_groups(&u, "workspace", &["w1", "w2", "w1"])
        .unwrap();
    c.user_remove_group(&u, "team", "a").unwrap();
    assert_eq!(
        u.groups().to_json(),
        json!({"team": ["b"], "active_team": ["a"], "workspace": ["w1", "w2"]})
    );
    c.user_track(&u, "stamped", None, None).unwrap();
    c.flush(WAIT).unwrap();
    assert_eq!(
        paths(&server),
        [
            "/api/sdk/groups/add_group",
            "/api/sdk/groups/set_group",
            "/api/sdk/groups/set_group",
            "/api/sdk/groups/remove_group",
            "/api/sdk/track",
            "/api/events",
        ]
    );
    for r in server.requests().iter().take(4) {
        assert_eq!(r.body["userId"], "u-2", "{:?}", r.body);
    }
    assert_eq!(
        server.event("stamped")["custom_properties"],
        json!({"active_team": ["a"], "team": ["b"], "workspace": ["w1", "w2"]})
    );
    assert!(
        c.groups().unwrap().is_empty(),
        "the current user's are untouched"
    );
    c.shutdown(WAIT).unwrap();
}

#[test]
fn people_calls_are_made_for_the_handles_user() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    let u = user("u-3", None);
    let obj = |v: Value| v.as_object().unwrap().clone();
    let ops = [
        PeopleOp::Set(obj(json!({"plan": "pro"}))),
        PeopleOp::SetOnce(obj(json!({"first": 1}))),
        PeopleOp::Unset { key: "x".into() },
        PeopleOp::Increment {
            key: "n".into(),
            amount: 2.0,
        },
        PeopleOp::Append {
            key: "l".into(),
            values: vec![json!(1)],
        },
        PeopleOp::Union {
            key: "l".into(),
            values: vec![json!(2)],
        },
        PeopleOp::Remove {
            key: "l".into(),
            values: vec![json!(1)],
        },
        PeopleOp::TrackCharge {
            amount: 9.5,
            properties: obj(json!({"sku": "s"})),
        },
        PeopleOp::ClearCharges,
        PeopleOp::DeleteUser,
    ];
    // The same bodies as app mode, for the handle's user and session.
    let app = FakeTrodo::start();
    let a = start(app.url(), &temp_dir());
    a.identify("u-3").unwrap();
    a.flush(WAIT).unwrap();
    for op in ops {
        c.user_people(&u, op.clone()).unwrap();
        a.people(op).unwrap();
    }
    c.flush(WAIT).unwrap();
    a.flush(WAIT).unwrap();
    let ours = server.requests();
    let theirs: Vec<_> = app
        .requests()
        .into_iter()
        .filter(|r| r.path != "/api/sdk/track" && r.path != "/api/sdk/identify")
        .collect();
    assert_eq!(ours.len(), 10);
    assert_eq!(theirs.len(), 10, "{:?}", paths(&app));
    let app_session = app.to_path("/api/sdk/track")[0].body["sessionData"]["session_id"].clone();
    for (o, t) in ours.iter().zip(&theirs) {
        assert_eq!(o.path, t.path);
        let mut expected = t.body.clone();
        let text = expected.to_string().replace(
            &format!("\"{}\"", app_session.as_str().unwrap()),
            "\"server:u-3\"",
        );
        expected = serde_json::from_str(&text).unwrap();
        assert_eq!(o.body, expected, "{}", o.path);
    }
    c.shutdown(WAIT).unwrap();
    a.shutdown(WAIT).unwrap();
}

#[test]
fn bad_input_is_refused_and_queues_nothing() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    let u = user("u-4", None);
    let kind = |r: trodo::Result<()>| r.unwrap_err().kind;
    assert_eq!(
        kind(c.user_track(&u, "", None, None)),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(c.user_track(&u, "e", None, Some(&"c".repeat(256)))),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(c.user_track_json(&u, "e", Some("[1]"), None)),
        ErrorKind::InvalidJson
    );
    assert_eq!(
        kind(c.user_track_json(&u, "e", Some("{"), None)),
        ErrorKind::InvalidJson
    );
    assert_eq!(kind(c.user_identify(&u, "")), ErrorKind::InvalidArgument);
    assert_eq!(
        kind(c.user_set_group(&u, "", "a")),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(c.user_add_group(&u, "k", "")),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(c.user_set_groups::<&str>(&u, "k", &[])),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        kind(c.user_people(
            &u,
            PeopleOp::Increment {
                key: "n".into(),
                amount: f64::NAN
            }
        )),
        ErrorKind::InvalidArgument
    );
    for (id, groups, expected) in [
        ("", None, ErrorKind::InvalidArgument),
        ("u", Some("[]"), ErrorKind::InvalidJson),
        ("u", Some(r#"{"k":"a"}"#), ErrorKind::InvalidJson),
        ("u", Some(r#"{"k":[""]}"#), ErrorKind::InvalidArgument),
    ] {
        assert_eq!(
            User::from_json(id, groups).err().map(|e| e.kind),
            Some(expected),
            "{id:?} {groups:?}"
        );
    }
    // Nothing of the failed calls was queued or changed; a good call still works.
    assert!(u.groups().is_empty());
    assert_eq!(u.distinct_id(), "u-4");
    c.user_track(&u, "ok", None, None).unwrap();
    c.flush(WAIT).unwrap();
    assert_eq!(paths(&server), ["/api/sdk/track", "/api/events"]);
    c.shutdown(WAIT).unwrap();
    // After shutdown: not initialized, whatever the arguments.
    assert_eq!(
        kind(c.user_track(&u, "", None, None)),
        ErrorKind::NotInitialized
    );
    assert_eq!(kind(c.user_identify(&u, "x")), ErrorKind::NotInitialized);
}

#[test]
fn opted_out_calls_are_checked_and_change_nothing() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    let u = user("u-5", Some(r#"{"team":["a"]}"#));
    c.set_opt_out(true).unwrap();
    c.user_track(&u, "hidden", None, None).unwrap();
    c.user_identify(&u, "other").unwrap();
    c.user_add_group(&u, "team", "b").unwrap();
    c.user_people(&u, PeopleOp::DeleteUser).unwrap();
    assert_eq!(
        c.user_track(&u, "", None, None).unwrap_err().kind,
        ErrorKind::InvalidArgument
    );
    assert_eq!(u.distinct_id(), "u-5");
    assert_eq!(u.groups().to_json(), json!({"team": ["a"]}));
    c.flush(WAIT).unwrap();
    assert!(server.requests().is_empty());
    c.set_opt_out(false).unwrap();
    c.user_track(&u, "seen", None, None).unwrap();
    c.flush(WAIT).unwrap();
    assert_eq!(paths(&server), ["/api/sdk/track", "/api/events"]);
    c.shutdown(WAIT).unwrap();
}

#[test]
fn opting_out_discards_what_the_user_lanes_hold() {
    let c = start(&dead_address(), &temp_dir());
    let u = user("u-6", None);
    for _ in 0..5 {
        c.user_track(&u, "e", None, None).unwrap();
    }
    c.track("app", None, None).unwrap();
    c.set_opt_out(true).unwrap();
    let st = c.stats().unwrap();
    assert_eq!(st.queued, 0, "{st:?}");
    // Registration + 5 events on the user's lane; app session + event on the main one.
    assert_eq!(st.dropped_opted_out + st.in_flight, 8, "{st:?}");
    c.shutdown(std::time::Duration::ZERO).ok();
}

#[test]
fn what_a_user_lane_holds_is_sent_by_the_next_start() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    let c = start(&dead_address(), &dir);
    let u = user("u-7", Some(r#"{"team":["t"]}"#));
    for i in 0..3 {
        c.user_track(&u, &format!("offline-{i}"), None, None)
            .unwrap();
    }
    let _ = c.shutdown(std::time::Duration::from_millis(100));
    let c = start(server.url(), &dir);
    c.flush(WAIT).unwrap();
    let names: HashSet<String> = names(&server.events()).into_iter().collect();
    assert_eq!(
        names,
        ["offline-0", "offline-1", "offline-2"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        server.event("offline-2")["custom_properties"]["team"],
        json!(["t"])
    );
    c.shutdown(WAIT).unwrap();
}

#[test]
fn eight_threads_for_a_thousand_users_each_lose_nothing_and_send_nothing_twice() {
    const THREADS: usize = 8;
    const USERS: usize = 1000;
    const EVENTS: usize = 3;
    let server = FakeTrodo::start();
    let c = Client::start(
        SITE,
        Options {
            max_queue_items: 1_000_000,
            ..options(server.url(), &temp_dir())
        },
    )
    .unwrap();
    // Half the users are shared by two threads; each thread also has its own.
    let shared: Arc<Vec<User>> = Arc::new(
        (0..USERS / 2)
            .map(|i| {
                let groups = format!(r#"{{"team":["team-s{i}"]}}"#);
                user(&format!("s{i}"), Some(&groups))
            })
            .collect(),
    );
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (c, shared) = (c.clone(), shared.clone());
            std::thread::spawn(move || {
                let own: Vec<User> = (0..USERS / 2)
                    .map(|i| {
                        let groups = format!(r#"{{"team":["team-t{t}u{i}"]}}"#);
                        user(&format!("t{t}u{i}"), Some(&groups))
                    })
                    .collect();
                for n in 0..EVENTS {
                    for (i, u) in own.iter().enumerate() {
                        let props = format!(r#"{{"who":"t{t}u{i}","n":{n}}}"#);
                        c.user_track_json(u, "e", Some(&props), None).unwrap();
                        // Shared users: thread pairs (0,1), (2,3), ... share a quarter each.
                        let s = (t / 2) * (USERS / 8) + i % (USERS / 8);
                        let props = format!(r#"{{"who":"s{s}","n":{n},"t":{t},"i":{i}}}"#);
                        c.user_track_json(&shared[s], "e", Some(&props), None)
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    c.flush(WAIT).unwrap();
    let events = server.events();
    let expected = THREADS * USERS * EVENTS;
    assert_eq!(events.len(), expected);
    let mut insert_ids = HashSet::new();
    for e in &events {
        let who = e["custom_properties"]["who"].as_str().unwrap();
        assert_eq!(e["user_id"], who);
        assert_eq!(e["session_id"], format!("server:{who}"));
        let team = format!("team-{who}");
        assert_eq!(e["custom_properties"]["team"], json!([team]), "{e}");
        assert!(insert_ids.insert(e["insert_id"].as_str().unwrap().to_string()));
    }
    // Each user registered once, before its first event.
    let mut first_event: HashMap<String, usize> = HashMap::new();
    let mut registered: HashMap<String, usize> = HashMap::new();
    for (at, r) in server.requests().iter().enumerate() {
        if r.path == "/api/sdk/track" {
            let id = r.body["sessionData"]["distinct_id"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(registered.insert(id, at).is_none(), "registered twice");
        }
    }
    for (at, r) in server.requests().iter().enumerate() {
        let bodies: Vec<Value> = match r.path.as_str() {
            "/api/events" => vec![r.body.clone()],
            "/api/events/bulk" => r.body["events"].as_array().unwrap().clone(),
            _ => continue,
        };
        for e in bodies {
            let who = e["user_id"].as_str().unwrap().to_string();
            first_event.entry(who).or_insert(at);
        }
    }
    assert_eq!(registered.len(), THREADS * USERS / 2 + USERS / 2);
    for (who, at) in &first_event {
        assert!(
            registered[who] < *at,
            "{who} registered after its first event"
        );
    }
    let st = c.stats().unwrap();
    assert_eq!(st.dropped(), 0, "{st:?}");
    c.shutdown(WAIT).unwrap();
}

#[test]
fn a_user_context_is_independent_of_the_memberships_type() {
    // The Rust API takes a Memberships directly too.
    let mut m = Memberships::default();
    m.set("team", &["x".to_string()]);
    let u = User::new("u-8", m.clone()).unwrap();
    assert_eq!(u.groups(), m);
    assert_eq!(u.session_id(), "server:u-8");
}

#[test]
fn new_users_first_events_travel_in_bulk_behind_their_registrations() {
    let server = FakeTrodo::start();
    // The second request fails: its batch is sent again, registrations first.
    server.script(&[200, 503]);
    let c = Client::start(
        SITE,
        Options {
            user_lanes: 1,
            flush_at: 50,
            ..options(server.url(), &temp_dir())
        },
    )
    .unwrap();
    for i in 0..20 {
        c.user_track(&user(&format!("n{i}"), None), "first", None, None)
            .unwrap();
    }
    c.flush(WAIT).unwrap();
    let requests = server.requests();
    let bulks = requests
        .iter()
        .filter(|r| r.accepted && r.path == "/api/events/bulk")
        .count();
    assert!(bulks >= 1, "{:?}", paths(&server));
    assert!(
        requests.iter().filter(|r| r.accepted).count() < 40,
        "first events did not travel in bulk: {:?}",
        paths(&server)
    );
    assert_eq!(server.events().len(), 20, "each event once");
    // No event reached the server before its user's registration had.
    let mut registered = HashSet::new();
    for r in requests.iter().filter(|r| r.accepted) {
        match r.path.as_str() {
            "/api/sdk/track" => {
                registered.insert(
                    r.body["sessionData"]["distinct_id"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
            }
            "/api/events/bulk" => {
                for e in r.body["events"].as_array().unwrap() {
                    assert!(registered.contains(e["user_id"].as_str().unwrap()), "{e}");
                }
            }
            "/api/events" => {
                assert!(registered.contains(r.body["user_id"].as_str().unwrap()));
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(registered.len(), 20);
    c.shutdown(WAIT).unwrap();
}

#[test]
fn calls_on_one_shared_handle_are_linearizable() {
    // In each round four threads race set_group for one key on one handle.
    // Whatever the interleaving, the handle's context for the key is what
    // the server received last for it.
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    let u = user("shared", None);
    const ROUNDS: usize = 400;
    for round in 0..ROUNDS {
        let key = format!("k{round}");
        let barrier = std::sync::Barrier::new(4);
        std::thread::scope(|scope| {
            for id in ["a", "b", "c", "d"] {
                let (c, u, key, barrier) = (&c, &u, &key, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    c.user_set_group(u, key, id).unwrap();
                });
            }
        });
    }
    c.flush(WAIT).unwrap();
    let mut last_sent = HashMap::new();
    for r in server.to_path("/api/sdk/groups/set_group") {
        last_sent.insert(
            r.body["groupKey"].as_str().unwrap().to_string(),
            r.body["groupId"].clone(),
        );
    }
    let groups = u.groups().to_json();
    let differ: Vec<String> = (0..ROUNDS)
        .map(|r| format!("k{r}"))
        .filter(|k| groups[k] != json!([last_sent[k]]))
        .collect();
    assert!(
        differ.is_empty(),
        "the handle and the server disagree on {differ:?}"
    );
    c.shutdown(WAIT).unwrap();
}
