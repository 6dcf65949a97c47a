//! The durable delivery engine: batching, the retry policy against a
//! fault-injecting server, queue bounds, flush and shutdown, crash safety,
//! damage, and many threads at once. (Several processes: `processes.rs`.)

mod common;
mod support;

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use support::{FakeTrodo, Fault};
use trodo::{Client, ErrorKind, Options};

/// Sizes of the event requests the server accepted, in order.
fn accepted_batches(server: &FakeTrodo) -> Vec<usize> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.accepted)
        .filter_map(|r| match r.path.as_str() {
            "/api/events" => Some(1),
            "/api/events/bulk" => r.body["events"].as_array().map(Vec::len),
            _ => None,
        })
        .collect()
}

#[test]
fn consecutive_events_coalesce_and_other_calls_go_between() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    let c = Client::start(
        SITE,
        Options {
            flush_at: 4,
            ..options(server.url(), &dir)
        },
    )
    .unwrap();
    for i in 0..6 {
        c.track(&format!("a{i}"), None, None).unwrap();
    }
    c.set_group("active_team", "t").unwrap();
    c.track("b0", None, None).unwrap();
    c.flush(WAIT).unwrap();
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/api/sdk/track",
            "/api/events/bulk",
            "/api/events/bulk",
            "/api/sdk/groups/set_group",
            "/api/events"
        ]
    );
    assert_eq!(accepted_batches(&server), [4, 2, 1]);
    assert_eq!(
        names(&server.events()),
        ["a0", "a1", "a2", "a3", "a4", "a5", "b0"]
    );
    assert_eq!(
        server.event("b0")["custom_properties"]["active_team"],
        json!(["t"])
    );
    c.shutdown(WAIT).unwrap();
}

#[test]
fn a_partial_batch_goes_when_its_oldest_item_is_flush_interval_old() {
    let server = FakeTrodo::start();
    let o = Options {
        // Long enough that both calls land in one batch even on a loaded machine.
        flush_interval: Duration::from_millis(300),
        ..options(server.url(), &temp_dir())
    };
    let c = Client::start(SITE, o).unwrap();
    c.track("lonely", None, None).unwrap();
    c.track("pair", None, None).unwrap();
    // No flush: the interval alone sends them.
    assert!(server.wait_for(2, WAIT), "{:?}", server.requests());
    assert_eq!(accepted_batches(&server), [2]);
    c.shutdown(WAIT).unwrap();
}

#[test]
fn large_bodies_are_gzipped_unless_turned_off() {
    for gzip in [true, false] {
        let server = FakeTrodo::start();
        let c = Client::start(
            SITE,
            Options {
                gzip,
                ..options(server.url(), &temp_dir())
            },
        )
        .unwrap();
        let blob = "x".repeat(300);
        for i in 0..40 {
            c.track("big", props(json!({"i": i, "blob": blob})), None)
                .unwrap();
        }
        c.flush(WAIT).unwrap();
        let bulk = &server.to_path("/api/events/bulk")[0];
        let plain_len = bulk.body.to_string().len();
        assert!(plain_len > 8 * 1024);
        if gzip {
            assert_eq!(bulk.header("content-encoding"), Some("gzip"));
            assert!(
                bulk.wire_len < plain_len / 4,
                "{} vs {plain_len}",
                bulk.wire_len
            );
        } else {
            assert_eq!(bulk.header("content-encoding"), None);
        }
        // Small bodies are never compressed.
        assert_eq!(
            server.to_path("/api/sdk/track")[0].header("content-encoding"),
            None
        );
        assert_eq!(server.events().len(), 40);
        c.shutdown(WAIT).unwrap();
    }
}

#[test]
fn server_errors_and_network_failures_are_retried_with_stable_insert_ids() {
    let server = FakeTrodo::start();
    let o = Options {
        timeout: Duration::from_millis(300),
        ..options(server.url(), &temp_dir())
    };
    let c = Client::start(SITE, o).unwrap();
    c.track("warmup", None, None).unwrap();
    c.flush(WAIT).unwrap();
    server.script_faults([
        Fault::Status(500),
        Fault::Status(503),
        Fault::Status(408),
        Fault::Status(425),
        Fault::Reset,
        Fault::Slow(Duration::from_millis(1500)),
    ]);
    for i in 0..5 {
        c.track(&format!("e{i}"), None, None).unwrap();
    }
    c.flush(WAIT).unwrap();
    assert_eq!(server.script_left(), 0);
    let bulks = server.to_path("/api/events/bulk");
    assert!(
        bulks.len() >= 7,
        "six failures, then success: {}",
        bulks.len()
    );
    // Every attempt carried the same events, ids and timestamps: one body.
    for attempt in &bulks {
        assert_eq!(attempt.body, bulks[0].body);
    }
    let accepted: Vec<Value> = server
        .events()
        .into_iter()
        .filter(|e| e["event_name"] != "warmup")
        .collect();
    assert_eq!(names(&accepted)[..5], ["e0", "e1", "e2", "e3", "e4"]);
    let s = c.stats().unwrap();
    assert_eq!((s.dropped(), s.queued, s.in_flight), (0, 0, 0));
    c.shutdown(WAIT).unwrap();
}

#[test]
fn a_429_pauses_everything_until_retry_after_and_loses_nothing() {
    let server = FakeTrodo::start();
    let mut o = options(server.url(), &temp_dir());
    o.retry.max_retry_after = Duration::from_secs(10);
    let c = Client::start(SITE, o).unwrap();
    // Three seconds: ample time to look while paused, even on a loaded machine.
    server.script_faults([Fault::RetryAfter(429, "3".into())]);
    c.track("a", None, None).unwrap();
    c.set_group("company", "acme").unwrap();
    assert!(server.wait_for(1, WAIT));
    // Paused: the stats say until when, and nothing else was sent meanwhile.
    let mut paused = 0;
    for _ in 0..2000 {
        paused = c.stats().unwrap().paused_until_ms;
        if paused > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(paused > trodo::util::now_ms(), "paused_until_ms {paused}");
    assert_eq!(server.requests().len(), 1);
    c.flush(WAIT).unwrap();
    assert_eq!(server.events().len(), 1);
    assert_eq!(server.to_path("/api/sdk/groups/set_group").len(), 1);
    let s = c.stats().unwrap();
    assert_eq!((s.dropped(), s.sent, s.paused_until_ms), (0, 3, 0));
    c.shutdown(WAIT).unwrap();
}

#[test]
fn a_413_splits_the_batch_and_a_lone_item_too_large_is_dropped() {
    let server = FakeTrodo::start();
    let c = start(server.url(), &temp_dir());
    c.track("warmup", None, None).unwrap();
    c.flush(WAIT).unwrap();
    server.script(&[413]);
    for i in 0..10 {
        c.track(&format!("s{i}"), None, None).unwrap();
    }
    c.flush(WAIT).unwrap();
    assert_eq!(accepted_batches(&server)[1..], [5, 5]);
    assert_eq!(server.events().len(), 11);

    server.script(&[413]);
    c.people(trodo::PeopleOp::ClearCharges).unwrap();
    c.flush(WAIT).unwrap();
    let s = c.stats().unwrap();
    assert_eq!(s.dropped_too_large, 1);
    assert_reported(&c, "too_large");
    c.shutdown(WAIT).unwrap();
}

#[test]
fn other_4xx_are_dropped_as_rejected_counted_and_reported_once() {
    let server = FakeTrodo::start();
    let reports = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let r = reports.clone();
    trodo::diag::set_error_callback(Some(Arc::new(move |m: &str| {
        r.lock().unwrap().push(m.to_string())
    })));
    let c = start(server.url(), &temp_dir());
    c.track("warmup", None, None).unwrap();
    c.flush(WAIT).unwrap();
    // A bulk of 3 is refused: halved, r0 goes alone; r1 and r2 are refused
    // together, halved again, and r1 is refused alone: dropped.
    server.script(&[400, 200, 400, 400]);
    for i in 0..3 {
        c.track(&format!("r{i}"), None, None).unwrap();
    }
    c.flush(WAIT).unwrap();
    trodo::diag::set_error_callback(None);
    let s = c.stats().unwrap();
    assert_eq!(s.dropped_rejected, 1);
    assert_eq!(names(&server.events()), ["warmup", "r0", "r2"]);
    let mine: Vec<String> = reports
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.contains("rejected"))
        .cloned()
        .collect();
    // Other tests in this binary may report too; this drop is reported once.
    assert!(
        mine.iter().filter(|m| m.contains("HTTP 400")).count() >= 1,
        "{mine:?}"
    );
    c.shutdown(WAIT).unwrap();
}

#[test]
fn an_item_failing_past_give_up_after_is_dropped_as_gave_up() {
    let server = FakeTrodo::start();
    let mut o = options(server.url(), &temp_dir());
    o.retry.give_up_after = Duration::from_millis(500);
    let c = Client::start(SITE, o).unwrap();
    server.script(&[503; 400]);
    c.people(trodo::PeopleOp::ClearCharges).unwrap();
    c.flush(WAIT).unwrap();
    let s = c.stats().unwrap();
    assert_eq!((s.dropped_gave_up, s.sent), (1, 0));
    assert_reported(&c, "gave_up");
    c.shutdown(WAIT).unwrap();
}

#[test]
fn a_full_queue_drops_the_oldest_and_shutdown_keeps_the_rest_for_the_next_start() {
    let dir = temp_dir();
    let o = Options {
        max_queue_items: 5,
        ..options(&dead_address(), &dir)
    };
    let c = Client::start(SITE, o).unwrap();
    for i in 0..12 {
        c.track(&format!("q{i}"), None, None).unwrap();
    }
    let s = c.stats().unwrap();
    assert_eq!(s.queued + s.in_flight, 5);
    assert_eq!(
        s.dropped_queue_full,
        13 - 5,
        "12 events and a session registration"
    );
    assert_reported(&c, "queue_full");
    assert_eq!(
        c.flush(Duration::from_millis(100)).unwrap_err().kind,
        ErrorKind::Timeout
    );
    assert_eq!(
        c.shutdown(Duration::from_millis(50)).unwrap_err().kind,
        ErrorKind::Timeout
    );

    let server = FakeTrodo::start();
    let again = start(server.url(), &dir);
    again.flush(WAIT).unwrap();
    // The five kept are the newest, except that the session registration
    // survives when it was in flight (never dropped) at the time.
    let sessions = server.to_path("/api/sdk/track").len();
    let expected: Vec<String> = (12 - (5 - sessions)..12).map(|i| format!("q{i}")).collect();
    assert_eq!(names(&server.events()), expected);
    assert_eq!(again.stats().unwrap().dropped(), 0);
    again.shutdown(WAIT).unwrap();
}

#[test]
fn opt_out_discards_the_queue_records_nothing_and_survives_restarts() {
    let dir = temp_dir();
    let c = start(&dead_address(), &dir);
    c.add_group("team", "kept").unwrap();
    c.track("queued_then_discarded", None, None).unwrap();
    c.set_opt_out(true).unwrap();
    assert!(c.is_opted_out().unwrap());
    assert_eq!(c.stats().unwrap().queued, 0);
    c.track("ignored", None, None).unwrap();
    c.add_group("team", "ignored").unwrap();
    c.identify("ignored").unwrap();
    assert_eq!(
        c.track("", None, None).unwrap_err().kind,
        ErrorKind::InvalidArgument,
        "still checked"
    );
    assert_eq!(c.groups().unwrap().to_json(), json!({"team": ["kept"]}));
    assert_eq!(c.stats().unwrap().queued, 0);
    c.shutdown(Duration::ZERO).ok();

    let server = FakeTrodo::start();
    let c = start(server.url(), &dir);
    assert!(c.is_opted_out().unwrap(), "persisted");
    c.track("still_ignored", None, None).unwrap();
    c.set_opt_out(false).unwrap();
    c.track("counted", None, None).unwrap();
    c.flush(WAIT).unwrap();
    assert_eq!(names(&server.events()), ["counted"]);
    c.shutdown(WAIT).unwrap();
}

/// Options whose queue holds at most `budget` bytes of bodies in memory.
fn small_memory(api_base: &str, dir: &std::path::Path, budget: u64) -> Options {
    Options {
        memory_queue_bytes: budget,
        max_queue_items: 10_000,
        ..options(api_base, dir)
    }
}

#[test]
fn a_backlog_beyond_the_memory_budget_waits_on_disk_and_is_sent_in_order() {
    const BUDGET: u64 = 4096;
    let dir = temp_dir();
    let pad = props(json!({"pad": "x".repeat(100)}));
    let c = Client::start(SITE, small_memory(&dead_address(), &dir, BUDGET)).unwrap();
    for i in 0..3000 {
        c.track(&format!("b{i}"), pad.clone(), None).unwrap();
    }
    let s = c.stats().unwrap();
    assert_eq!(
        s.queued + s.in_flight,
        3001,
        "3000 events and a session registration"
    );
    assert!(s.queued_bytes > 3000 * 100, "{s:?}");
    assert!(s.queued_memory_bytes <= BUDGET, "{s:?}");
    c.shutdown(Duration::ZERO).ok();

    // The next start loads only the head; the rest is read back as it drains,
    // and what is tracked meanwhile waits behind it, on disk too.
    let server = FakeTrodo::start();
    let c = Client::start(SITE, small_memory(server.url(), &dir, BUDGET)).unwrap();
    assert!(c.stats().unwrap().queued_memory_bytes <= BUDGET);
    for i in 0..2000 {
        c.track(&format!("c{i}"), pad.clone(), None).unwrap();
    }
    assert!(c.stats().unwrap().queued_memory_bytes <= BUDGET);
    c.flush(WAIT).unwrap();
    let expected: Vec<String> = (0..3000)
        .map(|i| format!("b{i}"))
        .chain((0..2000).map(|i| format!("c{i}")))
        .collect();
    assert_eq!(names(&server.events()), expected);
    let s = c.stats().unwrap();
    assert_eq!((s.queued, s.queued_bytes, s.queued_memory_bytes), (0, 0, 0));
    assert_eq!(s.dropped(), 0);
    c.shutdown(WAIT).unwrap();
}

#[test]
fn a_head_that_memory_fills_before_flush_at_is_sent_without_waiting() {
    let server = FakeTrodo::start();
    let o = Options {
        flush_interval: Duration::from_secs(60),
        ..small_memory(server.url(), &temp_dir(), 2048)
    };
    let c = Client::start(SITE, o).unwrap();
    // ~900 bytes each: two go to memory, the other three to disk only.
    let big = props(json!({"pad": "x".repeat(600)}));
    for i in 0..5 {
        c.track(&format!("big{i}"), big.clone(), None).unwrap();
    }
    // Five events are far from flush_at (50) and the interval is a minute,
    // but only two fit in memory: what waits on disk makes the batch full.
    assert!(server.wait_for_events(5, WAIT), "{:?}", c.stats());
    let sent = names(&server.events());
    assert_eq!(sent, (0..5).map(|i| format!("big{i}")).collect::<Vec<_>>());
    c.shutdown(WAIT).unwrap();
}

/// A queue file in `dir` that is a `/dev/full` device node (a symbolic link
/// would be refused): every write fails with ENOSPC and reads see no
/// records. Nothing accepted may be lost: the records stay in memory, and
/// what waits behind the head is read back from there. False (with the
/// reason printed) where making the node needs privileges this run lacks;
/// in CI, which runs as root, that fails the test instead. Linux only: the
/// tests that use it are marked ignored elsewhere.
#[cfg(target_os = "linux")]
fn queue_file_on_dev_full(dir: &std::path::Path) -> bool {
    let node = std::ffi::CString::new(dir.join("queue.bin").to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path; makedev(1, 7) is /dev/full.
    let made = unsafe { libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 7)) };
    if made != 0 {
        assert!(
            std::env::var_os("CI").is_none(),
            "mknod failed: {}",
            std::io::Error::last_os_error()
        );
        eprintln!(
            "skipped: mknod needs root ({})",
            std::io::Error::last_os_error()
        );
    }
    made == 0
}

#[cfg(not(target_os = "linux"))]
fn queue_file_on_dev_full(_dir: &std::path::Path) -> bool {
    unreachable!("the /dev/full tests are ignored off Linux")
}

#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs a /dev/full device node (Linux)"
)]
#[test]
fn a_sync_call_whose_write_fails_says_so_and_is_still_delivered() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    if !queue_file_on_dev_full(&dir) {
        return;
    }
    let o = Options {
        durability: trodo::Durability::Sync,
        ..options(server.url(), &dir)
    };
    let c = Client::start(SITE, o).unwrap();
    let err = c.track("kept", None, None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Storage, "{err:?}");
    c.flush(WAIT).unwrap();
    assert_eq!(names(&server.events()), ["kept"]);
    c.shutdown(WAIT).ok();
}

#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs a /dev/full device node (Linux)"
)]
#[test]
fn a_disk_that_never_recovers_keeps_memory_within_the_bounds_and_counts_queue_full() {
    let dir = temp_dir();
    if !queue_file_on_dev_full(&dir) {
        return;
    }
    let o = Options {
        max_queue_bytes: 200 * 1024,
        max_queue_items: 1000,
        memory_queue_bytes: 64 * 1024,
        ..options(&dead_address(), &dir)
    };
    let c = Client::start(SITE, o).unwrap();
    let pad = props(json!({"pad": "x".repeat(200)}));
    let mut peak = 0;
    for i in 0..20_000 {
        c.track(&format!("n{i}"), pad.clone(), None).unwrap();
        if i % 500 == 0 {
            peak = peak.max(c.stats().unwrap().memory_only_bytes);
        }
    }
    let s = c.stats().unwrap();
    peak = peak.max(s.memory_only_bytes);
    // 20 000 records of ~500 bytes: 10 MB, but memory holds at most the
    // bound (2 x 200 KiB + framing for 1000 items) plus one record.
    assert!(
        peak <= 2 * 200 * 1024 + 64 * 1000 + 4096,
        "{peak} bytes: {s:?}"
    );
    assert!(s.dropped_queue_full >= 19_000 - 1000, "{s:?}");
    assert!(s.queued <= 1000, "{s:?}");
    c.shutdown(Duration::ZERO).ok();
}

#[cfg_attr(
    not(target_os = "linux"),
    ignore = "needs a /dev/full device node (Linux)"
)]
#[test]
fn when_every_queue_write_fails_nothing_accepted_is_lost() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    if !queue_file_on_dev_full(&dir) {
        return;
    }
    let c = Client::start(SITE, small_memory(server.url(), &dir, 2048)).unwrap();
    for i in 0..300 {
        c.track(&format!("f{i}"), None, None).unwrap();
    }
    c.flush(WAIT).unwrap();
    let expected: Vec<String> = (0..300).map(|i| format!("f{i}")).collect();
    assert_eq!(names(&server.events()), expected);
    assert_eq!(c.stats().unwrap().dropped(), 0);
    assert_reported(&c, "queue write failed");
    c.shutdown(WAIT).ok();
}

#[test]
fn items_that_vanish_from_the_queue_file_while_running_are_counted_as_unreadable() {
    let server = FakeTrodo::start();
    // The first request fails and backs off for at least a second, so the
    // events below wait, most of them on disk only.
    server.script(&[503]);
    let dir = temp_dir();
    let mut o = small_memory(server.url(), &dir, 2048);
    o.retry.initial_backoff = Duration::from_secs(2);
    o.retry.max_backoff = Duration::from_secs(2);
    let c = Client::start(SITE, o).unwrap();
    for i in 0..200 {
        c.track(&format!("v{i}"), None, None).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200)); // written (persist_interval 10 ms)
                                                    // Overwritten with zeros, not cut short: the file's tail is mapped, and
                                                    // cutting a mapped file under its process is a SIGBUS there (the README
                                                    // says so), as it is for any memory-mapped store.
    let path = queue_file(&dir);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all(&vec![0u8; len as usize])
        .unwrap();
    c.flush(WAIT).unwrap();
    let s = c.stats().unwrap();
    let sent = server.events().len() as u64;
    assert!(sent > 0, "what was in memory is still sent");
    assert!(s.dropped_unreadable > 0, "{s:?}");
    assert_eq!(sent + s.dropped_unreadable, 200, "{s:?}");
    assert_reported(&c, "unreadable");
    c.shutdown(WAIT).unwrap();
}

#[test]
fn a_full_queue_drops_the_oldest_of_what_waits_on_disk_too() {
    let dir = temp_dir();
    let o = Options {
        max_queue_items: 500,
        ..small_memory(&dead_address(), &dir, 2048)
    };
    let c = Client::start(SITE, o).unwrap();
    for i in 0..1500 {
        c.track(&format!("q{i}"), None, None).unwrap();
    }
    let s = c.stats().unwrap();
    assert_eq!(s.queued + s.in_flight, 500);
    assert_eq!(s.dropped_queue_full, 1501 - 500);
    c.shutdown(Duration::ZERO).ok();

    let server = FakeTrodo::start();
    let again = Client::start(SITE, small_memory(server.url(), &dir, 2048)).unwrap();
    again.flush(WAIT).unwrap();
    // The 500 kept are the newest, except that what was in flight when the
    // bound was hit (at most one batch, maybe the session registration) is
    // never dropped.
    let sessions = server.to_path("/api/sdk/track").len();
    let sent: Vec<usize> = names(&server.events())
        .iter()
        .map(|n| n[1..].parse().unwrap())
        .collect();
    assert_eq!(sent.len() + sessions, 500);
    assert!(sent.windows(2).all(|w| w[0] < w[1]), "in order, once each");
    let newest = 500 - 50 - 1;
    assert_eq!(
        sent[sent.len() - newest..],
        (1500 - newest..1500).collect::<Vec<_>>()[..]
    );
    again.shutdown(WAIT).unwrap();
}

#[test]
fn opt_out_discards_what_waits_on_disk_and_it_never_comes_back() {
    let dir = temp_dir();
    let c = Client::start(SITE, small_memory(&dead_address(), &dir, 2048)).unwrap();
    for i in 0..1000 {
        c.track(&format!("d{i}"), None, None).unwrap();
    }
    assert!(c.stats().unwrap().queued_memory_bytes <= 2048);
    c.set_opt_out(true).unwrap();
    let s = c.stats().unwrap();
    // queued_bytes leaves out what is in flight (its body is in memory, and
    // counted in queued_memory_bytes): nothing else is left, not even on disk.
    assert_eq!((s.queued, s.queued_bytes), (0, 0), "{s:?}");
    assert_eq!(s.dropped_opted_out + s.in_flight, 1001);
    c.shutdown(Duration::ZERO).ok();

    let server = FakeTrodo::start();
    let c = Client::start(SITE, small_memory(server.url(), &dir, 2048)).unwrap();
    c.set_opt_out(false).unwrap();
    c.track("after", None, None).unwrap();
    c.flush(WAIT).unwrap();
    assert_eq!(names(&server.events()), ["after"]);
    c.shutdown(WAIT).unwrap();
}

#[test]
fn an_identify_waiting_on_disk_behind_a_backlog_still_hydrates() {
    let server = FakeTrodo::start();
    server.seed_memberships("user-9", "company", &["acme"]);
    // The first request (the session registration) fails and backs off, so
    // the calls below pile up and spill to disk before anything is sent.
    server.script(&[503]);
    let dir = temp_dir();
    let mut o = small_memory(server.url(), &dir, 2048);
    o.retry.initial_backoff = Duration::from_millis(500);
    o.retry.max_backoff = Duration::from_millis(500);
    let c = Client::start(SITE, o).unwrap();
    for i in 0..200 {
        c.track(&format!("e{i}"), None, None).unwrap();
    }
    c.identify("user-9").unwrap();
    let s = c.stats().unwrap();
    assert!(s.queued_memory_bytes < s.queued_bytes / 2, "{s:?}");
    c.flush(WAIT).unwrap();
    assert_eq!(c.groups().unwrap().to_json(), json!({"company": ["acme"]}));
    assert_eq!(server.events().len(), 200);
    c.shutdown(WAIT).unwrap();
}

#[test]
fn a_damaged_record_in_the_queue_file_costs_only_itself() {
    let dir = temp_dir();
    let c = start(&dead_address(), &dir);
    for i in 0..20 {
        c.track(
            &format!("d{i}"),
            props(json!({"pad": "y".repeat(100)})),
            None,
        )
        .unwrap();
    }
    c.shutdown(Duration::ZERO).ok();
    let path = queue_file(&dir);
    let mut bytes = std::fs::read(&path).unwrap();
    let cut = bytes.len() * 3 / 4;
    for b in &mut bytes[cut..cut + 16] {
        *b ^= 0x5A; // scribble
    }
    std::fs::write(&path, &bytes).unwrap();

    let reports = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let r = reports.clone();
    trodo::diag::set_error_callback(Some(Arc::new(move |m: &str| {
        r.lock().unwrap().push(m.to_string())
    })));
    let server = FakeTrodo::start();
    let c = start(server.url(), &dir);
    trodo::diag::set_error_callback(None);
    assert!(
        reports
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("damaged")),
        "{:?}",
        reports.lock().unwrap()
    );
    let s = c.stats().unwrap();
    assert!(s.corrupt_bytes > 0);
    c.flush(WAIT).unwrap();
    // 16 scribbled bytes touch one record, two at most: every other one
    // arrives, before and after the damage, in order.
    let got = names(&server.events());
    assert!(got.len() == 18 || got.len() == 19, "{got:?}");
    let numbers: Vec<usize> = got.iter().map(|n| n[1..].parse().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{got:?}");
    assert!(
        numbers.windows(2).filter(|w| w[1] > w[0] + 1).count() <= 1,
        "the lost ones are where the damage is: {got:?}"
    );
    assert!(numbers.contains(&19), "records after the damage are kept");
    assert!(path.with_extension("corrupt").exists());
    // And the queue works on after it.
    c.track("after", None, None).unwrap();
    c.flush(WAIT).unwrap();
    c.shutdown(WAIT).unwrap();
    assert_eq!(server.event("after")["event_name"], "after");
}

#[test]
fn eight_threads_times_5000_events_through_failures_arrive_once_each() {
    let server = FakeTrodo::start();
    let faults: Vec<Fault> = (0..600)
        .map(|i| match i % 9 {
            3 => Fault::Status(503),
            7 => Fault::Reset,
            _ => Fault::Status(200),
        })
        .collect();
    server.script_faults(faults);
    let c = start(server.url(), &temp_dir());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                for i in 0..5000 {
                    c.track("load", props(json!({"t": t, "i": i})), None)
                        .unwrap();
                    if i % 1000 == 0 {
                        c.add_group("team", &format!("team-{t}")).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    c.flush(Duration::from_secs(120)).unwrap();
    let events: Vec<Value> = server
        .events()
        .into_iter()
        .filter(|e| e["event_name"] == "load")
        .collect();
    assert_eq!(events.len(), 40_000, "each event accepted exactly once");
    let ids: HashSet<&str> = events
        .iter()
        .map(|e| e["insert_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 40_000);
    for t in 0..8 {
        let mine: Vec<i64> = events
            .iter()
            .filter(|e| e["custom_properties"]["t"] == t)
            .map(|e| e["custom_properties"]["i"].as_i64().unwrap())
            .collect();
        assert_eq!(
            mine,
            (0..5000).collect::<Vec<_>>(),
            "thread {t} in call order"
        );
    }
    assert_eq!(c.stats().unwrap().dropped(), 0);
    c.shutdown(WAIT).unwrap();
}

/// The delivery worker yields to the program it serves: nice 10, and
/// SCHED_BATCH so that its wake-ups do not preempt a caller.
#[cfg(target_os = "linux")]
#[test]
fn the_delivery_worker_runs_at_nice_10_and_sched_batch() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    let c = Client::start(SITE, options(server.url(), &dir)).unwrap();
    c.track("e", None, None).unwrap();
    c.flush(WAIT).unwrap(); // the worker has run
    let mut workers = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != "trodo-delivery" {
            continue;
        }
        // Fields after the name, from field 3 (state): 19 is nice, 41 policy.
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        assert_eq!(fields[19 - 3], "10", "nice");
        assert_eq!(fields[41 - 3], libc::SCHED_BATCH.to_string(), "policy");
        workers += 1;
    }
    assert!(workers >= 1, "found the worker thread");
    c.shutdown(WAIT).unwrap();
}

/// A call's record is in the queue file when the call returns (framed into
/// its mapped tail), whatever the persist interval; a burst larger than one
/// mapped window is there too once the writer has mapped the next, long
/// before the interval ends.
#[test]
fn a_record_is_in_the_queue_file_when_its_call_returns_and_a_burst_soon_after() {
    let dir = temp_dir();
    let c = Client::start(
        SITE,
        Options {
            persist_interval: Duration::from_secs(600),
            ..options(&dead_address(), &dir)
        },
    )
    .unwrap();
    let count_in_file = |needle: &[u8]| {
        let bytes = std::fs::read(queue_file(&dir)).unwrap_or_default();
        bytes.windows(needle.len()).filter(|w| *w == needle).count()
    };
    c.track("first-of-all", None, None).unwrap();
    assert_eq!(count_in_file(b"first-of-all"), 1, "in the file at once");
    // Once the writer has had its turn (and waits out its interval), too.
    std::thread::sleep(Duration::from_millis(200));
    c.track("second-one", None, None).unwrap();
    assert_eq!(count_in_file(b"second-one"), 1, "in the file at once");
    let filler = props(json!({ "filler": "x".repeat(10_000) }));
    for i in 0..300 {
        c.track(&format!("big-{i:03}-end"), filler.clone(), None)
            .unwrap();
    }
    let deadline = std::time::Instant::now() + WAIT;
    while c.stats().unwrap().memory_only_bytes > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // One pass over the file: the number in each `big-NNN-end` found.
    let bytes = std::fs::read(queue_file(&dir)).unwrap();
    let mut found: Vec<&[u8]> = bytes
        .windows(11)
        .filter(|w| w.starts_with(b"big-") && w.ends_with(b"-end"))
        .map(|w| &w[4..7])
        .collect();
    found.sort();
    let expected: Vec<String> = (0..300).map(|i| format!("{i:03}")).collect();
    assert_eq!(
        found,
        expected.iter().map(|e| e.as_bytes()).collect::<Vec<_>>(),
        "3 MB of records, more than one window, each once"
    );
    c.shutdown(Duration::ZERO).ok();
}

#[test]
fn a_delivered_backlog_is_compacted_out_of_the_queue_file_while_running() {
    // 1 200 events of 10 kB wait offline; the next start delivers them. Done
    // records pass both the 4 MiB threshold and the live ones half-way, so
    // the writer must rewrite the file while the process runs. Its interval
    // is 600 s: only the delivery thread's urging brings it to it.
    let dir = temp_dir();
    let filler = props(json!({ "filler": "x".repeat(10_000) }));
    let c = Client::start(SITE, options(&dead_address(), &dir)).unwrap();
    for i in 0..1200 {
        c.track(&format!("big-{i:04}"), filler.clone(), None)
            .unwrap();
    }
    c.shutdown(Duration::ZERO).ok();
    let in_file = || {
        let bytes = std::fs::read(queue_file(&dir)).unwrap_or_default();
        bytes.windows(4).filter(|w| w == b"big-").count()
    };
    assert_eq!(in_file(), 1200);

    let server = FakeTrodo::start();
    let c = Client::start(
        SITE,
        Options {
            persist_interval: Duration::from_secs(600),
            ..options(server.url(), &dir)
        },
    )
    .unwrap();
    c.flush(WAIT).unwrap();
    assert_eq!(server.events().len(), 1200);
    let deadline = std::time::Instant::now() + WAIT;
    while in_file() > 600 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(in_file() <= 600, "{} records still in the file", in_file());
    c.shutdown(WAIT).unwrap();
}

/// Runs `f` on its own thread and fails if it has not returned within `WAIT`
/// (a deadlock fails the test instead of hanging the suite).
fn returns_within_wait<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(f());
    });
    receive
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("{what} did not return within {WAIT:?} (deadlock?)"))
}

#[test]
fn opting_out_with_an_identify_queued_returns_and_drops_it() {
    let dir = temp_dir();
    let c = start(&dead_address(), &dir);
    c.identify("u").unwrap();
    let c2 = c.clone();
    returns_within_wait("set_opt_out(true) with an identify queued", move || {
        c2.set_opt_out(true).unwrap()
    });
    let c3 = c.clone();
    returns_within_wait("a call after the opt-out", move || {
        c3.track("ignored", None, None).unwrap()
    });
    assert!(c.stats().unwrap().dropped_opted_out >= 1);
    c.shutdown(Duration::ZERO).ok();
}

#[test]
fn a_queue_overflow_that_drops_an_identify_returns() {
    let dir = temp_dir();
    let o = Options {
        max_queue_items: 3,
        ..options(&dead_address(), &dir)
    };
    let c = Client::start(SITE, o).unwrap();
    c.identify("u").unwrap();
    let c2 = c.clone();
    returns_within_wait("track overflowing the queue past an identify", move || {
        for i in 0..10 {
            c2.track(&format!("o{i}"), None, None).unwrap();
        }
    });
    let s = c.stats().unwrap();
    assert!(s.dropped_queue_full >= 1, "{s:?}");
    // The identify's answer will never come: its dropped id stays the one in use.
    assert_eq!(c.distinct_id().unwrap(), "u");
    c.shutdown(Duration::ZERO).ok();
}

/// A small tmpfs mounted at a new directory, unmounted when dropped. None
/// (with the reason printed) where mounting needs privileges this run lacks;
/// in CI, which runs as root, that fails the test instead.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(bytes: u64) -> Option<SmallDisk> {
        let dir = temp_dir();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .args(["tmpfs", dir.to_str().unwrap()])
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk(dir)),
            other => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "mounting a tmpfs failed in CI: {other:?}"
                );
                eprintln!("skipped: mounting a tmpfs needs root ({other:?})");
                None
            }
        }
    }

    /// Fills the disk with a file until at most `free` bytes are left.
    fn fill_leaving(&self, free: u64) -> std::path::PathBuf {
        let filler = self.0.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![1u8; 4096];
        loop {
            let avail = free_bytes(&self.0);
            if avail <= free {
                return filler;
            }
            use std::io::Write;
            if f.write_all(&chunk).is_err() {
                return filler;
            }
        }
    }
}

/// Bytes free to an unprivileged writer on the file system holding `dir`.
#[cfg(target_os = "linux")]
fn free_bytes(dir: &std::path::Path) -> u64 {
    let path = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
    // SAFETY: a zeroed statvfs filled by the call; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        assert_eq!(libc::statvfs(path.as_ptr(), &mut st), 0);
        st.f_bavail as u64 * st.f_frsize as u64
    }
}

#[cfg(not(target_os = "linux"))]
fn free_bytes(_dir: &std::path::Path) -> u64 {
    unreachable!("the small-disk test is ignored off Linux")
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[cfg_attr(not(target_os = "linux"), ignore = "mounts a small tmpfs (Linux)")]
#[test]
fn a_disk_that_fills_during_an_offline_burst_loses_nothing_once_space_returns() {
    let Some(disk) = SmallDisk::mount(4 << 20) else {
        return;
    };
    let server = FakeTrodo::start();
    // The server is down for the whole burst (every request fails, and the
    // worker backs off), then comes back.
    server.script(&vec![503; 100_000]);
    let o = Options {
        memory_queue_bytes: 8 * 1024,
        max_queue_items: 100_000,
        ..options(server.url(), &disk.0)
    };
    let c = Client::start(SITE, o).unwrap();
    let filler = disk.fill_leaving(256 * 1024);
    let pad = props(json!({"pad": "x".repeat(200)}));
    for i in 0..6000 {
        c.track(&format!("d{i}"), pad.clone(), None).unwrap();
    }
    assert!(
        wait_until(WAIT, || c
            .diagnostics()
            .iter()
            .any(|m| m.contains("queue write failed"))),
        "the disk never filled: {:?}",
        c.diagnostics()
    );
    std::fs::remove_file(filler).unwrap();
    server.clear_script();
    c.flush(WAIT).unwrap();
    let s = c.stats().unwrap();
    assert_eq!(s.dropped_unreadable, 0, "{s:?}");
    assert_eq!(s.dropped(), 0, "{s:?}");
    let expected: Vec<String> = (0..6000).map(|i| format!("d{i}")).collect();
    assert_eq!(names(&server.events()), expected);
    c.shutdown(WAIT).unwrap();
}

#[test]
fn shutdown_keeps_its_timeout_while_another_process_holds_the_state_lock() {
    let dir = temp_dir();
    let c = start(&dead_address(), &dir);
    c.add_group("team", "a").unwrap(); // a state change waits to be written
                                       // As a process stopped in the middle of writing state.json would.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("state.lock"))
        .unwrap();
    lock.lock().unwrap();
    let c2 = c.clone();
    let result = returns_within_wait("shutdown(200 ms) with state.lock held", move || {
        c2.shutdown(Duration::from_millis(200))
    });
    assert!(
        result.is_err(),
        "the queue could not be delivered: a timeout"
    );
    assert_reported(&c, "final state write skipped");
    drop(lock);
}
