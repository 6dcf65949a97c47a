//! The in-order delivery thread: retries, drops (counted and reported),
//! flush and shutdown timeouts, and many threads at once.

mod common;
mod support;

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use support::FakeTrodo;
use trodo::ErrorKind;

/// A loopback address where nothing listens.
fn dead_address() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[test]
fn server_errors_are_retried_and_order_is_kept() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    server.script(&[500, 503, 408]);
    for i in 0..5 {
        c.track(&format!("e{i}"), None, None).unwrap();
    }
    c.flush(WAIT).unwrap();
    let names: Vec<String> = server
        .events()
        .iter()
        .map(|e| e["event_name"].as_str().unwrap().to_string())
        .collect();
    // The session registration was refused three times, then everything arrived once, in order.
    assert_eq!(server.to_path("/api/sdk/track").len(), 4);
    assert_eq!(names, ["e0", "e1", "e2", "e3", "e4"]);
    let stats = c.delivery_stats();
    assert_eq!((stats.sent, stats.queued, stats.dropped_gave_up), (6, 0, 0));
    c.shutdown(WAIT).unwrap();
}

#[test]
fn a_429_pauses_and_loses_nothing() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    server.script(&[429, 429]);
    c.track("a", None, None).unwrap();
    c.track("b", None, None).unwrap();
    c.flush(WAIT).unwrap();
    assert_eq!(server.events().len(), 2);
    assert_eq!(c.delivery_stats().sent, 3);
    c.shutdown(WAIT).unwrap();
}

#[test]
fn rejected_requests_are_dropped_counted_and_reported() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    c.track("warmup", None, None).unwrap();
    c.flush(WAIT).unwrap();
    server.script(&[400, 413]);
    c.track("refused", None, None).unwrap();
    c.track("too_big", None, None).unwrap();
    c.track("fine", None, None).unwrap();
    c.flush(WAIT).unwrap();
    let s = c.delivery_stats();
    assert_eq!((s.dropped_rejected, s.dropped_too_large, s.sent), (1, 1, 3));
    let d = c.diagnostics();
    assert!(
        d.iter()
            .any(|m| m.contains("rejected") && m.contains("HTTP 400")),
        "{d:?}"
    );
    assert!(d.iter().any(|m| m.contains("too_large")), "{d:?}");
    assert_eq!(server.event("fine")["event_name"], "fine");
    c.shutdown(WAIT).unwrap();
}

#[test]
fn a_request_failing_past_the_give_up_time_is_dropped_and_reported() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    server.script(&[500; 400]);
    c.people(trodo::PeopleOp::ClearCharges).unwrap();
    c.flush(WAIT).unwrap();
    let s = c.delivery_stats();
    assert_eq!((s.dropped_gave_up, s.sent), (1, 0));
    assert!(c.diagnostics().iter().any(|m| m.contains("gave_up")));
    c.shutdown(WAIT).unwrap();
}

#[test]
fn calls_do_not_wait_for_an_unreachable_server_but_flush_times_out() {
    let dir = temp_dir();
    let c = start(&dead_address(), &dir);
    for i in 0..20 {
        c.track(&format!("offline-{i}"), None, None).unwrap();
        c.add_group("team", "x").unwrap();
    }
    let e = c.flush(Duration::from_millis(100)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout);
    assert!(e.message.contains("100 ms"), "{e}");
    // Shutdown stops anyway, keeps the local state, and reports what it could not send.
    assert_eq!(
        c.shutdown(Duration::from_millis(50)).unwrap_err().kind,
        ErrorKind::Timeout
    );
    assert!(c.delivery_stats().dropped_shutdown > 0);
    assert!(c.diagnostics().iter().any(|m| m.contains("shutdown")));
    let again = start(&dead_address(), &dir);
    assert_eq!(again.groups().unwrap().to_json(), json!({"team": ["x"]}));
    again.shutdown(Duration::ZERO).ok();
}

#[test]
fn eight_threads_at_once_lose_nothing_and_duplicate_nothing() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                for i in 0..150 {
                    c.track(&format!("t{t}"), props(json!({"i": i})), None)
                        .unwrap();
                    if i % 50 == 0 {
                        c.add_group("team", &format!("team-{t}")).unwrap();
                        c.set_group("active_team", &format!("team-{t}")).unwrap();
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
    assert_eq!(events.len(), 8 * 150);
    let ids: HashSet<String> = events
        .iter()
        .map(|e| e["insert_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), events.len(), "every insert_id is unique");
    for t in 0..8 {
        let mine: Vec<i64> = events
            .iter()
            .filter(|e| e["event_name"] == format!("t{t}"))
            .map(|e| e["custom_properties"]["i"].as_i64().unwrap())
            .collect();
        assert_eq!(
            mine,
            (0..150).collect::<Vec<_>>(),
            "each thread's events arrive in its call order"
        );
    }
    let teams = c.groups().unwrap();
    assert_eq!(teams.get("team").unwrap().len(), 8);
    assert_eq!(teams.get("active_team").unwrap().len(), 1);
    c.shutdown(WAIT).unwrap();
}
