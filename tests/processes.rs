//! Several processes on one storage directory: each appends to a queue
//! segment of its own, a killed one's queue is adopted by a live process (at
//! flush, and at start in the background) or taken over by the next one to
//! start, and the files are private and never followed through symlinks.
//! (fork() and exit are covered by the C harness: c_fork, c_exit.)
//!
//! Child processes are copies of this test binary running `child_roles`;
//! every wait on them has a deadline, so a hang fails instead of blocking.

mod common;
mod support;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use common::children::*;
use common::*;
use serde_json::Value;
use support::FakeTrodo;
use trodo::{Client, Options};

#[test]
#[ignore = "run as a child process by the tests in this file"]
fn child_roles() {
    let dir = std::path::PathBuf::from(std::env::var("TRODO_DIR").unwrap());
    let api = std::env::var("TRODO_API").unwrap();
    let mut out = std::io::stdout();
    match std::env::var("TRODO_CHILD").unwrap().as_str() {
        "crash" => {
            // With sync durability an event is on disk once track returns:
            // each printed number is a promise someone must keep. A tiny
            // memory budget makes most of the queue wait on disk only.
            let o = Options {
                durability: trodo::Durability::Sync,
                flush_at: 10,
                memory_queue_bytes: 1024,
                ..options(&api, &dir)
            };
            let prefix = std::env::var("TRODO_PREFIX").unwrap_or_else(|_| "c".into());
            let c = Client::start(SITE, o).unwrap();
            for i in 0.. {
                c.track(&format!("{prefix}{i}"), None, None).unwrap();
                writeln!(out, "@@{i}").unwrap();
                out.flush().unwrap();
            }
        }
        "tracker" => {
            let name = std::env::var("TRODO_PREFIX").unwrap();
            let c = Client::start(SITE, options(&api, &dir)).unwrap();
            writeln!(out, "@@ready").unwrap();
            out.flush().unwrap();
            // Start together, so the four really run at once.
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            for i in 0..300 {
                c.track(&format!("{name}-{i}"), None, None).unwrap();
                if i % 100 == 0 {
                    c.add_group("team", &name).unwrap();
                }
            }
            c.shutdown(WAIT).unwrap();
            writeln!(out, "@@done").unwrap();
        }
        "burst" => {
            // Batched durability with a persist interval longer than the
            // test: only the journal can keep what the calls accepted.
            let o = Options {
                persist_interval: Duration::from_secs(600),
                ..options(&api, &dir)
            };
            let c = Client::start(SITE, o).unwrap();
            let count: u64 = std::env::var("TRODO_COUNT").map_or(2000, |n| n.parse().unwrap());
            for i in 0..count {
                c.track(&format!("burst{i}"), None, None).unwrap();
            }
            writeln!(out, "@@returned").unwrap();
            out.flush().unwrap();
            std::thread::sleep(DEADLINE); // killed long before this ends
        }
        "threads" => {
            // Bounds far above what 300 ms of calls make: nothing may be
            // dropped as queue_full, which would be no loss of the journal's.
            let o = Options {
                persist_interval: Duration::from_secs(600),
                max_queue_items: 10_000_000,
                max_queue_bytes: 1 << 34,
                ..options(&api, &dir)
            };
            let c = Client::start(SITE, o).unwrap();
            let out = std::sync::Mutex::new(out);
            std::thread::scope(|scope| {
                for t in 0..4 {
                    let (c, out) = (&c, &out);
                    scope.spawn(move || {
                        for i in 0.. {
                            c.track(&format!("t{t}-{i}"), None, None).unwrap();
                            // Each returned call, where the parent reads it.
                            let mut out = out.lock().unwrap();
                            writeln!(out, "@@{t} {i}").unwrap();
                            out.flush().unwrap();
                        }
                    });
                }
            });
        }
        "wanderer" => {
            // Starts with a relative storage_dir, then moves away: the
            // library must keep using the directory it started in.
            std::env::set_current_dir(dir.parent().unwrap()).unwrap();
            let relative = std::path::PathBuf::from(dir.file_name().unwrap());
            let o = Options {
                storage_dir: Some(relative),
                ..options(&api, &dir)
            };
            let c = Client::start(SITE, o).unwrap();
            c.track("before", None, None).unwrap();
            std::env::set_current_dir(std::env::var("TRODO_ELSEWHERE").unwrap()).unwrap();
            c.set_group("team", "moved").unwrap();
            for i in 0..200 {
                c.track(&format!("after{i}"), None, None).unwrap();
            }
            c.shutdown(Duration::from_secs(1)).ok();
            writeln!(out, "@@done").unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

/// A "crash" child and the numbers it promises.
type Crashing = (Child, Box<dyn Iterator<Item = u64>>);

/// Starts the "crash" role against a dead server and waits until it promised
/// `at_least` events.
fn crashing(dir: &Path, prefix: &str, at_least: u64) -> Crashing {
    let mut kid = child("crash", dir, &dead_address(), &[("TRODO_PREFIX", prefix)]);
    let mut promised = child_lines(&mut kid).map(|l| l.parse::<u64>().unwrap());
    let reached = promised
        .by_ref()
        .find(|n| *n >= at_least)
        .expect("it promised");
    (kid, Box::new(std::iter::once(reached).chain(promised)))
}

/// SIGKILLs the child; returns the last number it promised.
fn kill((mut kid, promised): Crashing) -> u64 {
    kid.kill().unwrap(); // SIGKILL
    wait_within(&mut kid, DEADLINE);
    promised.last().unwrap_or_default()
}

/// Runs the "crash" role until it promised `at_least` events, then SIGKILLs
/// it. Returns the last promised number.
fn crash_after(dir: &Path, prefix: &str, at_least: u64) -> u64 {
    kill(crashing(dir, prefix, at_least))
}

/// Each of `prefix`0..=`last` arrived exactly once.
fn assert_each_once(events: &[Value], prefix: &str, last: u64) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for e in events {
        *seen.entry(e["event_name"].as_str().unwrap()).or_default() += 1;
    }
    for i in 0..=last {
        let name = format!("{prefix}{i}");
        assert_eq!(
            seen.get(name.as_str()),
            Some(&1),
            "{name} reached disk and must arrive exactly once"
        );
    }
}

#[test]
fn four_processes_on_one_directory_each_deliver_300_events_exactly_once() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    let mut kids: Vec<Child> = (0..4)
        .map(|i| {
            child(
                "tracker",
                &dir,
                server.url(),
                &[("TRODO_PREFIX", &format!("p{i}"))],
            )
        })
        .collect();
    let mut outputs: Vec<_> = kids.iter_mut().map(child_lines).collect();
    for out in &mut outputs {
        assert_eq!(out.next().as_deref(), Some("ready"), "every init succeeds");
    }
    for kid in &mut kids {
        drop(kid.stdin.take()); // go
    }
    for (kid, out) in kids.iter_mut().zip(&mut outputs) {
        assert_eq!(out.next().as_deref(), Some("done"));
        assert!(wait_within(kid, DEADLINE).success());
    }
    let events = server.events();
    assert_eq!(events.len(), 1200, "{:?}", names(&events).len());
    for p in 0..4 {
        assert_each_once(&events, &format!("p{p}-"), 299);
    }
    let ids: HashSet<&str> = events
        .iter()
        .map(|e| e["insert_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1200, "no insert_id twice");
    // One state file, whole, written by whichever process wrote last.
    let state: Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["version"], 1);
    assert!(
        queue_files(&dir).is_empty(),
        "every segment was emptied and removed"
    );
}

#[test]
fn a_killed_process_queue_is_delivered_by_a_live_process_at_its_flush() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    let live = start(server.url(), &dir);
    let last = crash_after(&dir, "k", 200);
    assert_eq!(queue_files(&dir).len(), 2, "the live one's and the orphan");
    live.track("live", None, None).unwrap();
    live.flush(WAIT).unwrap();
    let events = server.events();
    assert_each_once(&events, "k", last);
    assert_eq!(queue_files(&dir).len(), 1, "the orphan was removed");
    live.shutdown(WAIT).unwrap();
}

#[test]
fn orphans_are_adopted_in_the_background_at_start_and_taken_over_by_the_next_start() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    // Both run at once, so each has a segment of its own.
    let a = crashing(&dir, "a", 50);
    let b = crashing(&dir, "b", 50);
    let (first, second) = (kill(a), kill(b));
    assert_eq!(queue_files(&dir).len(), 2);
    // The next start takes one orphan over as its own queue and adopts the
    // other in the background: both arrive with no flush asked for.
    let c = start(server.url(), &dir);
    // Each child may have tracked a last event it had no time to promise:
    // wait for the promised names, not for a count.
    let promised: Vec<String> = (0..=first)
        .map(|i| format!("a{i}"))
        .chain((0..=second).map(|i| format!("b{i}")))
        .collect();
    assert!(
        server.wait_for_names(&promised, WAIT),
        "{} of {} arrived",
        server.events().len(),
        promised.len()
    );
    let events = server.events();
    assert_each_once(&events, "a", first);
    assert_each_once(&events, "b", second);
    c.shutdown(WAIT).unwrap();
    assert!(queue_files(&dir).is_empty());
}

#[test]
fn after_sigkill_the_next_start_delivers_everything_that_reached_disk() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    // This one talks to a live server, so a batch may be in flight at the kill.
    let mut kid = child("crash", &dir, server.url(), &[]);
    let mut last = 0u64;
    for line in child_lines(&mut kid) {
        last = line.parse().unwrap();
        if last >= 300 {
            break;
        }
    }
    kid.kill().unwrap(); // SIGKILL
    wait_within(&mut kid, DEADLINE);

    let c = start(server.url(), &dir);
    c.flush(WAIT).unwrap();
    let events = server.events();
    let got: HashSet<String> = names(&events).into_iter().collect();
    for i in 0..=last {
        assert!(
            got.contains(&format!("c{i}")),
            "c{i} reached disk but never arrived"
        );
    }
    // At least once; and only the batch in flight at the kill can arrive twice.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in &events {
        *seen
            .entry(e["insert_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let twice = seen.values().filter(|n| **n > 1).count();
    assert!(
        twice <= 10,
        "{twice} events accepted twice (flush_at is 10)"
    );
    assert!(seen.values().all(|n| *n <= 2));
    c.shutdown(WAIT).unwrap();
}

#[cfg(unix)]
#[test]
fn storage_is_private_and_symlinks_in_it_are_never_followed() {
    use std::os::unix::fs::PermissionsExt;
    let server = FakeTrodo::start();
    let outside = temp_dir();
    let dir = temp_dir().join("fresh").join("storage");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_dir(&dir).unwrap(); // libtrodo creates it
    let c = start(server.url(), &dir);
    c.add_group("team", "a").unwrap();
    c.track("private", None, None).unwrap();
    std::thread::sleep(Duration::from_millis(200)); // written (persist_interval 10 ms)
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the storage directory");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        files += 1;
    }
    assert!(files >= 3, "state, queue and lock files");
    c.shutdown(WAIT).unwrap();

    // A planted queue file and state file that point elsewhere.
    let (queue_target, state_target) = (outside.join("queue-target"), outside.join("state-target"));
    std::fs::write(&queue_target, b"keep me").unwrap();
    std::fs::write(&state_target, b"keep me too").unwrap();
    for f in queue_files(&dir) {
        std::fs::remove_file(f).unwrap();
    }
    std::os::unix::fs::symlink(&queue_target, dir.join("queue.bin")).unwrap();
    std::fs::remove_file(dir.join("state.json")).unwrap();
    std::os::unix::fs::symlink(&state_target, dir.join("state.json")).unwrap();
    let c = start(server.url(), &dir);
    c.track("after_links", None, None).unwrap();
    c.add_group("team", "b").unwrap();
    c.flush(WAIT).unwrap();
    assert_reported(&c, "queue segment queue");
    c.shutdown(WAIT).unwrap();
    assert_eq!(std::fs::read(&queue_target).unwrap(), b"keep me");
    assert_eq!(std::fs::read(&state_target).unwrap(), b"keep me too");
    assert_eq!(server.event("after_links")["event_name"], "after_links");
    let state = std::fs::symlink_metadata(dir.join("state.json")).unwrap();
    assert!(
        state.is_file(),
        "the link was replaced by a file of its own"
    );
}

/// Every event `kid` reported as returned, by thread, read to the end of its
/// output (what it printed before the kill is still in the pipe).
fn returned_by_thread(lines: impl Iterator<Item = String>) -> HashMap<u64, u64> {
    let mut last = HashMap::new();
    for line in lines {
        let (t, i) = line.split_once(' ').unwrap();
        last.insert(t.parse().unwrap(), i.parse().unwrap());
    }
    last
}

#[test]
fn a_process_killed_right_after_2000_calls_returned_loses_none_of_them() {
    let dir = temp_dir();
    let mut kid = child("burst", &dir, &dead_address(), &[]);
    let mut lines = child_lines(&mut kid);
    assert_eq!(lines.next().as_deref(), Some("returned"));
    kid.kill().unwrap(); // SIGKILL, at once
    wait_within(&mut kid, DEADLINE);

    let server = FakeTrodo::start();
    let c = start(server.url(), &dir);
    c.flush(WAIT).unwrap();
    let events = server.events();
    assert_each_once(&events, "burst", 1999);
    assert_eq!(events.len(), 2000);
    c.shutdown(WAIT).unwrap();
}

#[test]
fn four_threads_killed_at_a_random_moment_lose_no_call_that_returned() {
    let dir = temp_dir();
    let mut kid = child("threads", &dir, &dead_address(), &[]);
    let mut lines = child_lines(&mut kid);
    // Every thread has made a call (on a loaded machine they start at
    // different times), then a random moment up to 300 ms later.
    let mut first: Vec<String> = Vec::new();
    while first
        .iter()
        .map(|l| l.split_once(' ').unwrap().0)
        .collect::<HashSet<_>>()
        .len()
        < 4
    {
        first.push(lines.next().expect("the child reports its calls"));
    }
    let pause = 50 + trodo::util::random_u64() % 250;
    std::thread::sleep(Duration::from_millis(pause));
    kid.kill().unwrap();
    wait_within(&mut kid, DEADLINE);
    let mut returned = returned_by_thread(first.into_iter());
    returned.extend(returned_by_thread(lines));
    assert_eq!(returned.len(), 4, "every thread tracked: {returned:?}");

    let server = FakeTrodo::start();
    let c = start(server.url(), &dir);
    c.flush(WAIT).unwrap();
    let events = server.events();
    for (t, last) in &returned {
        assert_each_once(&events, &format!("t{t}-"), *last);
    }
    let ids: HashSet<&str> = events
        .iter()
        .map(|e| e["insert_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), events.len(), "no insert_id twice");
    c.shutdown(WAIT).unwrap();
}

#[test]
fn a_forked_child_adopts_no_orphan_at_start_only_in_its_rounds() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    let parent = start(server.url(), &dir);
    let last = crash_after(&dir, "o", 20);
    assert_eq!(queue_files(&dir).len(), 2, "the parent's and the orphan");
    // What the fork handler does in a child; the parent's next round is 30 s away.
    let child = Client::continue_after_fork(&parent).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        queue_files(&dir).len(),
        3,
        "the child made its own segment and neither took over nor adopted the orphan"
    );
    assert!(server.events().is_empty());
    // A flush adopts, in the child as anywhere.
    child.flush(WAIT).unwrap();
    assert_each_once(&server.events(), "o", last);
    child.shutdown(WAIT).unwrap();
    parent.shutdown(WAIT).unwrap();
}

#[test]
fn a_flush_gives_adoption_only_its_remaining_time_and_a_cut_short_adoption_repeats_nothing() {
    let server = FakeTrodo::start();
    server.script(&vec![503; 1_000_000]); // down until the end
    let dir = temp_dir();
    let live = start(server.url(), &dir);
    let mut kid = child("burst", &dir, &dead_address(), &[("TRODO_COUNT", "20000")]);
    assert_eq!(child_lines(&mut kid).next().as_deref(), Some("returned"));
    kid.kill().unwrap();
    wait_within(&mut kid, DEADLINE);
    assert_eq!(queue_files(&dir).len(), 2, "the live one's and the orphan");

    // 1 ms cannot adopt 20 000 items: the flush returns at its deadline and
    // the orphan keeps what was not adopted yet.
    let err = live.flush(Duration::from_millis(1)).unwrap_err();
    assert_eq!(err.kind, trodo::ErrorKind::Timeout);
    assert_eq!(queue_files(&dir).len(), 2, "the orphan is still there");

    server.clear_script();
    live.flush(WAIT).unwrap();
    let events = server.events();
    assert_each_once(&events, "burst", 19_999);
    assert_eq!(events.len(), 20_000, "nothing adopted twice");
    assert_eq!(queue_files(&dir).len(), 1, "the orphan was removed");
    live.shutdown(WAIT).unwrap();
}

#[test]
fn a_host_that_changes_its_working_directory_does_not_move_a_relative_storage_dir() {
    let dir = temp_dir();
    let elsewhere = temp_dir();
    let mut kid = child(
        "wanderer",
        &dir,
        &dead_address(),
        &[("TRODO_ELSEWHERE", elsewhere.to_str().unwrap())],
    );
    let mut lines = child_lines(&mut kid);
    assert_eq!(lines.next().as_deref(), Some("done"));
    assert!(wait_within(&mut kid, DEADLINE).success());
    let strays: Vec<_> = std::fs::read_dir(&elsewhere).unwrap().flatten().collect();
    assert!(
        strays.is_empty(),
        "written where the host moved to: {strays:?}"
    );
    // What it could not send is in its queue file, in the first directory.
    assert_eq!(queue_files(&dir).len(), 1, "the child's queue segment");
    // The next start, in the directory the first began with, has it all.
    let server = FakeTrodo::start();
    let c = start(server.url(), &dir);
    assert_eq!(
        c.groups().unwrap().get("team"),
        Some(&["moved".to_string()][..])
    );
    c.flush(WAIT).unwrap();
    let names = names(&server.events());
    let expected: Vec<String> = std::iter::once("before".to_string())
        .chain((0..200).map(|i| format!("after{i}")))
        .collect();
    assert_eq!(names, expected);
    c.shutdown(WAIT).unwrap();
}
