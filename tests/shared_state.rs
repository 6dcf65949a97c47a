//! One state per storage directory (`docs/c-conventions.md`, "One storage
//! directory, several processes"): a change made by one process is seen by
//! the others within 2 s, nobody writes back a value it did not change, and
//! an opt-out anywhere stops every process from sending and holds across
//! starts. The other process is a real one: a child copy of this binary.

mod common;
mod support;

use std::io::Write;
use std::process::{Child, ChildStdin};
use std::time::{Duration, Instant};

use common::children::*;
use common::*;
use serde_json::Value;
use support::FakeTrodo;
use trodo::util::now_ms;
use trodo::{Client, Options};

/// The contract's 2 s, and a second for a loaded test machine.
const SEEN_WITHIN: Duration = Duration::from_secs(3);

#[test]
#[ignore = "run as a child process by the tests in this file"]
fn child_roles() {
    let dir = std::path::PathBuf::from(std::env::var("TRODO_DIR").unwrap());
    let api = std::env::var("TRODO_API").unwrap();
    assert_eq!(std::env::var("TRODO_CHILD").unwrap(), "sibling");
    // A sibling process: tracks an event named after the time every 10 ms,
    // and does what its stdin says.
    let o = Options {
        flush_interval: Duration::from_millis(10),
        ..options(&api, &dir)
    };
    let c = Client::start(SITE, o).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let _ = c.track(&format!("sibling-{}", now_ms()), None, None);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let mut out = std::io::stdout();
        writeln!(out, "@@ready").unwrap();
        out.flush().unwrap();
        for line in std::io::stdin().lines().map_while(Result::ok) {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["ask"] => {
                    let groups = c.groups().unwrap().to_json();
                    let answer = serde_json::json!({
                        "opted_out": c.is_opted_out().unwrap(),
                        "distinct_id": c.distinct_id().unwrap(),
                        "groups": groups,
                    });
                    writeln!(out, "@@{answer}").unwrap();
                    out.flush().unwrap();
                }
                ["add_group", key, id] => c.add_group(key, id).unwrap(),
                ["quit"] => break,
                other => panic!("unknown command {other:?}"),
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
    });
    c.shutdown(WAIT).unwrap();
    writeln!(std::io::stdout(), "@@done").unwrap();
}

struct Sibling {
    kid: Child,
    stdin: ChildStdin,
    lines: Lines,
}

impl Sibling {
    fn start(dir: &std::path::Path, api: &str) -> Sibling {
        let mut kid = child("sibling", dir, api, &[]);
        let stdin = kid.stdin.take().unwrap();
        let mut lines = child_lines(&mut kid);
        assert_eq!(lines.next().as_deref(), Some("ready"));
        Sibling { kid, stdin, lines }
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn ask(&mut self) -> Value {
        self.say("ask");
        serde_json::from_str(&self.lines.next().expect("an answer")).unwrap()
    }

    /// Asks until `seen` holds, for at most `SEEN_WITHIN`.
    fn sees(&mut self, seen: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + SEEN_WITHIN;
        loop {
            let answer = self.ask();
            if seen(&answer) || Instant::now() > end {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn quit(mut self) {
        self.say("quit");
        assert_eq!(self.lines.next().as_deref(), Some("done"));
        wait_within(&mut self.kid, DEADLINE);
    }
}

fn state_file(dir: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap()
}

/// The times in the names of the sibling's events the server received.
fn sibling_times(server: &FakeTrodo) -> Vec<u64> {
    names(&server.events())
        .iter()
        .filter_map(|n| n.strip_prefix("sibling-")?.parse().ok())
        .collect()
}

#[test]
fn an_opt_out_in_one_process_stops_the_others_and_holds_across_starts() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    let mut sibling = Sibling::start(&dir, server.url());
    let a = start(server.url(), &dir);
    assert!(wait_until(WAIT, || !sibling_times(&server).is_empty()));

    a.set_opt_out(true).unwrap();
    let opted_out_at = now_ms();
    let seen = sibling.sees(|s| s["opted_out"] == true);
    assert_eq!(seen["opted_out"], true, "the sibling took up the opt-out");
    // Time for anything it still sent by mistake to arrive.
    std::thread::sleep(Duration::from_millis(2500));
    let late: Vec<u64> = sibling_times(&server)
        .into_iter()
        .filter(|t| *t > opted_out_at + 2000)
        .collect();
    assert!(
        late.is_empty(),
        "the sibling tracked {} event(s) more than 2 s after the opt-out and they were sent",
        late.len()
    );

    // The sibling changes something else and ends: it writes back its own
    // change only, so the opt-out holds for the next start.
    sibling.say("add_group team t1");
    a.shutdown(WAIT).unwrap();
    sibling.quit();
    assert_eq!(state_file(&dir)["opt_out"], true);
    let next = start(server.url(), &dir);
    assert!(
        next.is_opted_out().unwrap(),
        "the opt-out holds across starts"
    );

    // Opting back in is a change too, and reaches a new sibling.
    next.set_opt_out(false).unwrap();
    let mut again = Sibling::start(&dir, server.url());
    assert_eq!(again.ask()["opted_out"], false);
    next.shutdown(WAIT).unwrap();
    again.quit();
}

#[test]
fn identity_and_memberships_changed_in_two_processes_merge_field_by_field() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    let mut sibling = Sibling::start(&dir, server.url());
    let a = start(server.url(), &dir);

    a.identify("alice").unwrap();
    a.set_group("company", "acme").unwrap();
    sibling.say("add_group team t1");
    let seen = sibling.sees(|s| s["distinct_id"] == "alice" && s["groups"]["company"][0] == "acme");
    assert_eq!(seen["distinct_id"], "alice", "{seen}");
    assert_eq!(
        seen["groups"]["company"],
        serde_json::json!(["acme"]),
        "{seen}"
    );
    assert_eq!(seen["groups"]["team"], serde_json::json!(["t1"]), "{seen}");

    // And the other way round: the sibling's group reaches this process.
    let end = Instant::now() + SEEN_WITHIN;
    while a.groups().unwrap().get("team").is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        a.groups().unwrap().get("team"),
        Some(&["t1".to_string()][..])
    );

    // The sibling's later events are the shared identity's, with both groups.
    let from = now_ms();
    assert!(wait_until(WAIT, || sibling_times(&server)
        .iter()
        .any(|t| *t > from)));
    let event = server
        .events()
        .into_iter()
        .rev()
        .find(|e| {
            e["event_name"]
                .as_str()
                .unwrap_or("")
                .starts_with("sibling-")
        })
        .unwrap();
    assert_eq!(event["user_id"], "alice", "{event}");

    a.shutdown(WAIT).unwrap();
    sibling.quit();
    let on_disk = state_file(&dir);
    assert_eq!(on_disk["distinct_id"], "alice");
    assert_eq!(on_disk["groups"]["company"], serde_json::json!(["acme"]));
    assert_eq!(on_disk["groups"]["team"], serde_json::json!(["t1"]));
}

#[test]
fn an_opted_out_process_does_not_send_what_an_ended_process_left() {
    let server = FakeTrodo::start();
    let dir = temp_dir();
    // A sibling queues events against a dead server and is killed.
    let mut sibling = Sibling::start(&dir, &dead_address());
    std::thread::sleep(Duration::from_millis(300));
    sibling.kid.kill().unwrap();
    wait_within(&mut sibling.kid, DEADLINE);
    // Opted out by a process that has ended since.
    let mut state = state_file(&dir);
    state["opt_out"] = Value::Bool(true);
    std::fs::write(dir.join("state.json"), state.to_string()).unwrap();

    let a = start(server.url(), &dir);
    assert!(a.is_opted_out().unwrap());
    a.flush(WAIT).unwrap(); // adopts what the sibling left
    assert!(
        a.stats().unwrap().dropped_opted_out > 0,
        "the sibling's events were adopted and discarded"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        sibling_times(&server),
        Vec::<u64>::new(),
        "nothing was sent"
    );
    a.shutdown(WAIT).unwrap();
}
