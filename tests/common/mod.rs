//! Shared set-up for the Rust integration tests.
#![allow(dead_code)]

pub mod children;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use trodo::delivery::policy::RetryPolicy;
use trodo::{Client, Options};

pub const SITE: &str = "site-test";
pub const WAIT: Duration = Duration::from_secs(20);

pub fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("trodo-it-{}", trodo::util::new_id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Options pointing at `api_base`, storing under `dir`, with short retry waits.
pub fn options(api_base: &str, dir: &Path) -> Options {
    Options {
        api_base: api_base.to_string(),
        storage_dir: Some(dir.to_path_buf()),
        persist_interval: Duration::from_millis(10),
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            // Long enough that no test against a dead server gives up by accident;
            // the give-up test sets its own.
            give_up_after: Duration::from_secs(30),
            default_retry_after: Duration::from_millis(50),
            max_retry_after: Duration::from_millis(200),
        },
        ..Options::default()
    }
}

pub fn start(api_base: &str, dir: &Path) -> Arc<Client> {
    Client::start(SITE, options(api_base, dir)).expect("client starts")
}

pub fn props(v: Value) -> Option<Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m),
        _ => panic!("not an object"),
    }
}

/// Asserts that some diagnostic report of `c` mentions `needle`.
pub fn assert_reported(c: &Client, needle: &str) {
    let reports = c.diagnostics();
    assert!(
        reports.iter().any(|m| m.contains(needle)),
        "no report mentions {needle:?}: {reports:?}"
    );
}

/// The queue files (`<segment>.bin`) in `dir`, sorted.
pub fn queue_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("queue") && name.ends_with(".bin")
        })
        .collect();
    out.sort();
    out
}

/// The one queue file in `dir`.
pub fn queue_file(dir: &Path) -> PathBuf {
    let files = queue_files(dir);
    assert_eq!(files.len(), 1, "one queue segment expected: {files:?}");
    files.into_iter().next().unwrap()
}

/// A loopback address where nothing listens: the discard port, which no
/// test server can be given (they bind port 0, and get a port from the
/// system's ephemeral range). A port freed by a listener just dropped could
/// be given to another test's server meanwhile, which then received what
/// was meant to find no one.
pub fn dead_address() -> String {
    "http://127.0.0.1:9".to_string()
}

/// The event names, in order.
pub fn names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_name"].as_str().unwrap().to_string())
        .collect()
}

/// Polls `done` every 10 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    while !done() {
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}
