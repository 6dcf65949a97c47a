//! Child processes for the tests that need several: each is a copy of the
//! test binary running that binary's `child_roles` test, told its role by
//! `TRODO_CHILD`. Every wait on one has a deadline, so a hang fails.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(60);

/// A child's own lines, marked `@@` (the test harness prints around them,
/// sometimes on the same line). A child silent for `DEADLINE` fails the test.
pub struct Lines(mpsc::Receiver<String>);

impl Iterator for Lines {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        match self.0.recv_timeout(DEADLINE) {
            Ok(line) => Some(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("a child process printed nothing for {DEADLINE:?} (deadlock?)")
            }
        }
    }
}

pub fn child_lines(kid: &mut Child) -> Lines {
    let out = BufReader::new(kid.stdout.take().unwrap());
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if let Some((_, mine)) = line.split_once("@@") {
                if send.send(mine.to_string()).is_err() {
                    return;
                }
            }
        }
    });
    Lines(receive)
}

/// Runs `role` in a child copy of this test binary (see `child_roles`).
pub fn child(role: &str, dir: &Path, api: &str, extra: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "child_roles",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("TRODO_CHILD", role)
    .env("TRODO_DIR", dir)
    .env("TRODO_API", api)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Waits for `kid` to exit, killing it and failing at the deadline.
pub fn wait_within(kid: &mut Child, deadline: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + deadline;
    loop {
        if let Some(status) = kid.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > end {
            let _ = kid.kill();
            panic!("a child process did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
