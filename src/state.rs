//! The local state store, libtrodo's localStorage: identity, session and group
//! memberships in one small JSON file, written atomically (temp file, fsync,
//! rename) by a background thread so callers never wait on the disk.
//!
//! Several processes may share the file: each reads it at start, and each
//! write replaces it whole under a short cross-process lock (`state.lock`),
//! so it is never torn and the last writer wins.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sync::{Condvar, Mutex};
use serde_json::{json, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::groups::Memberships;
use crate::util::{new_id, now_ms};

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "state.lock";
const QUARANTINE_SUFFIX: &str = ".corrupt";
const FORMAT_VERSION: u64 = 1;

/// A session ends after this long without activity (our choice, the common default).
pub const SESSION_TIMEOUT_MS: u64 = 30 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub start_ms: u64,
    pub last_activity_ms: u64,
    /// Whether `/api/sdk/track` has been sent for this session.
    pub registered: bool,
}

impl Session {
    pub fn new(now: u64) -> Session {
        Session {
            id: new_id(),
            start_ms: now,
            last_activity_ms: now,
            registered: false,
        }
    }
}

/// Everything that must survive a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalState {
    pub anonymous_id: String,
    pub distinct_id: String,
    pub session: Session,
    pub groups: Memberships,
    /// Set by `set_opt_out(true)`: record nothing until turned off.
    pub opt_out: bool,
}

impl LocalState {
    pub fn fresh() -> LocalState {
        let anonymous_id = new_id();
        LocalState {
            distinct_id: anonymous_id.clone(),
            anonymous_id,
            session: Session::new(now_ms()),
            groups: Memberships::default(),
            opt_out: false,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "version": FORMAT_VERSION,
            "anonymous_id": self.anonymous_id,
            "distinct_id": self.distinct_id,
            "session": {
                "id": self.session.id,
                "start_ms": self.session.start_ms,
                "last_activity_ms": self.session.last_activity_ms,
                "registered": self.session.registered,
            },
            "groups": self.groups.to_json(),
            "opt_out": self.opt_out,
        })
    }

    /// `Err` says what is wrong, for the report.
    pub fn from_json(v: &Value) -> std::result::Result<LocalState, String> {
        if v.get("version").and_then(Value::as_u64) != Some(FORMAT_VERSION) {
            return Err(format!(
                "unknown format version {}",
                v.get("version").unwrap_or(&Value::Null)
            ));
        }
        let text = |obj: &Value, k: &str| -> std::result::Result<String, String> {
            obj.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("missing or empty \"{k}\""))
        };
        let num = |obj: &Value, k: &str| {
            obj.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("missing \"{k}\""))
        };
        let s = v.get("session").ok_or("missing \"session\"")?;
        Ok(LocalState {
            anonymous_id: text(v, "anonymous_id")?,
            distinct_id: text(v, "distinct_id")?,
            session: Session {
                id: text(s, "id")?,
                start_ms: num(s, "start_ms")?,
                last_activity_ms: num(s, "last_activity_ms")?,
                registered: s
                    .get("registered")
                    .and_then(Value::as_bool)
                    .ok_or("missing \"registered\"")?,
            },
            groups: v
                .get("groups")
                .and_then(Memberships::from_json)
                .ok_or("\"groups\" is not an object of string arrays")?,
            opt_out: v.get("opt_out").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}

/// What loading found.
#[derive(Debug)]
pub enum Loaded {
    /// No state yet: a first start.
    Nothing,
    Restored(LocalState),
    /// The file was unusable; it was moved aside and the reason is given.
    Quarantined(String),
}

/// The state file inside `storage_dir`.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    /// The generation last written: writers from several threads never
    /// replace a newer snapshot with an older one, nor share the temp file.
    written: crate::sync::Mutex<u64>,
}

impl StateFile {
    /// Creates `dir` if needed. Failure is `Storage`, naming the directory.
    pub fn open(dir: &Path) -> Result<StateFile> {
        crate::files::create_dir(dir).map_err(|e| storage_error(dir, "cannot be created", &e))?;
        Ok(StateFile {
            path: dir.join(STATE_FILE),
            written: crate::sync::Mutex::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    pub fn load(&self) -> Loaded {
        let read = crate::files::options()
            .read(true)
            .open(&self.path)
            .and_then(|mut f| {
                let mut b = Vec::new();
                f.read_to_end(&mut b).map(|_| b)
            });
        let bytes = match read {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Nothing,
            Err(e) => return Loaded::Quarantined(self.quarantine(format!("cannot be read: {e}"))),
        };
        let parsed = serde_json::from_slice::<Value>(&bytes)
            .map_err(|e| format!("is not valid JSON: {e}"))
            .and_then(|v| LocalState::from_json(&v).map_err(|e| format!("is not usable: {e}")));
        match parsed {
            Ok(state) => Loaded::Restored(state),
            Err(reason) => Loaded::Quarantined(self.quarantine(reason)),
        }
    }

    /// Moves a bad file aside (kept for inspection) and says what happened.
    fn quarantine(&self, reason: String) -> String {
        let mut aside = self.path.clone().into_os_string();
        aside.push(QUARANTINE_SUFFIX);
        match fs::rename(&self.path, &aside) {
            Ok(()) => format!(
                "state file {} {reason}; moved to {} and started with fresh state",
                self.path.display(),
                Path::new(&aside).display()
            ),
            Err(e) => format!(
                "state file {} {reason}; could not move it aside ({e}); started with fresh state",
                self.path.display()
            ),
        }
    }

    /// Writes atomically: a crash leaves either the old file or the new one.
    /// `generation` orders snapshots: an older one than already written is skipped.
    pub fn save(&self, state: &LocalState, generation: u64) -> Result<()> {
        self.save_by(state, generation, None).map(|_| ())
    }

    /// As [`save`](Self::save), giving up at `deadline` (if any) rather than
    /// wait longer for another thread or process: false when it gave up.
    pub fn save_by(
        &self,
        state: &LocalState,
        generation: u64,
        deadline: Option<Instant>,
    ) -> Result<bool> {
        let Some(mut written) = self.written.lock_by(deadline) else {
            return Ok(false);
        };
        if generation < *written {
            return Ok(true);
        }
        let fail = |e: &std::io::Error| storage_error(&self.path, "cannot be written", e);
        let lock_path = self.dir().join(LOCK_FILE);
        let lock = crate::files::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| storage_error(&lock_path, "cannot be opened", &e))?;
        if !lock_by(&lock, deadline).map_err(|e| fail(&e))? {
            return Ok(false);
        }
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = crate::files::options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(state.to_json().to_string().as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            // The rename itself is durable only once the directory is synced.
            #[cfg(unix)]
            File::open(self.dir())?.sync_all()?;
            Ok(())
        };
        let result = write();
        // Unlocked explicitly: a child forked meanwhile shares the open file
        // and would otherwise keep it locked after this one is closed.
        let _ = lock.unlock();
        result.map_err(|e| fail(&e))?;
        *written = generation;
        Ok(true)
    }
}

/// Locks `file` exclusively: waits as long as needed without a deadline,
/// else tries until it; false when the deadline passed.
fn lock_by(file: &File, deadline: Option<Instant>) -> std::io::Result<bool> {
    let Some(deadline) = deadline else {
        return file.lock().map(|_| true);
    };
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(fs::TryLockError::WouldBlock) => return Ok(false),
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

fn storage_error(path: &Path, what: &str, e: &std::io::Error) -> Error {
    Error::new(
        ErrorKind::Storage,
        format!("storage: {} {what}: {e}", path.display()),
    )
}

/// Wakes a background writer when state changed; writes at most once per
/// `interval` (unless urged), so a change is on disk within about `interval`.
pub struct Persister {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

struct Signal {
    dirty: AtomicBool,
    /// Write now, without waiting out the interval.
    urgent: AtomicBool,
    stop: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
}

/// The cheap, clonable side of a [`Persister`] that callers use.
#[derive(Clone)]
pub struct DirtyFlag(Arc<Signal>);

impl DirtyFlag {
    pub fn mark(&self) {
        // Read first: marking an already dirty flag writes no shared cache line.
        if !self.0.dirty.load(Ordering::Acquire) && !self.0.dirty.swap(true, Ordering::AcqRel) {
            let _g = self.0.lock.lock();
            self.0.cv.notify_one();
        }
    }

    /// Marks and has the writer write without waiting out its interval.
    pub fn urge(&self) {
        if !self.0.urgent.load(Ordering::Acquire) && !self.0.urgent.swap(true, Ordering::AcqRel) {
            self.0.dirty.store(true, Ordering::Release);
            let _g = self.0.lock.lock();
            self.0.cv.notify_one();
        }
    }
}

impl Persister {
    /// `write` snapshots and saves the state; it runs on the persister thread.
    pub fn start(
        interval: Duration,
        write: impl Fn() + Send + 'static,
    ) -> std::io::Result<Persister> {
        let signal = Arc::new(Signal {
            dirty: AtomicBool::new(false),
            urgent: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        });
        let s = signal.clone();
        let thread = std::thread::Builder::new()
            .name("trodo-persist".into())
            .spawn(move || loop {
                {
                    let mut g = s.lock.lock();
                    while !s.dirty.load(Ordering::Acquire) && !s.stop.load(Ordering::Acquire) {
                        s.cv.wait(&mut g);
                    }
                }
                if s.stop.load(Ordering::Acquire) {
                    return; // the owner writes the final state itself
                }
                s.urgent.store(false, Ordering::Release);
                s.dirty.store(false, Ordering::Release);
                // A panic in one write must not end persistence for good.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&write));
                // The rest of the interval, even when marked meanwhile (a mark
                // notifies): otherwise a busy caller gets a write, and an
                // fsync, per few calls. Only stop or urge cuts it short.
                let until = std::time::Instant::now() + interval;
                let mut g = s.lock.lock();
                while !s.stop.load(Ordering::Acquire) && !s.urgent.load(Ordering::Acquire) {
                    if s.cv.wait_until(&mut g, until).timed_out() {
                        break;
                    }
                }
            })?;
        Ok(Persister {
            signal,
            thread: Some(thread),
        })
    }

    pub fn flag(&self) -> DirtyFlag {
        DirtyFlag(self.signal.clone())
    }

    /// Stops and joins the thread (it never blocks on the network).
    pub fn stop(&mut self) {
        self.stop_by(None);
    }

    /// As [`stop`](Self::stop), waiting for the thread only until
    /// `deadline` (it may be in a long write, or waiting for a lock another
    /// process holds): false when it was left to finish on its own.
    pub fn stop_by(&mut self, deadline: Option<Instant>) -> bool {
        self.signal.stop.store(true, Ordering::Release);
        {
            let _g = self.signal.lock.lock();
            self.signal.cv.notify_all();
        }
        match self.thread.take() {
            Some(t) => crate::util::join_by(t, deadline),
            None => true,
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("trodo-state-{name}-{}", new_id()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn state_round_trips_through_the_file() {
        let dir = temp_dir("rt");
        let file = StateFile::open(&dir).unwrap();
        assert!(matches!(file.load(), Loaded::Nothing));
        let mut s = LocalState::fresh();
        s.groups.add("team", "a");
        file.save(&s, 1).unwrap();
        match file.load() {
            Loaded::Restored(r) => assert_eq!(r, s),
            other => panic!("{other:?}"),
        }
        assert!(!dir.join("state.json.tmp").exists());
    }

    #[test]
    fn corrupt_files_are_quarantined_not_fatal() {
        for garbage in [
            &b"{\"version\":1,\"anon"[..],
            b"\xff\xfe",
            b"{\"version\":1}",
            b"[]",
        ] {
            let dir = temp_dir("bad");
            fs::write(dir.join(STATE_FILE), garbage).unwrap();
            let file = StateFile::open(&dir).unwrap();
            match file.load() {
                Loaded::Quarantined(msg) => assert!(msg.contains("fresh state"), "{msg}"),
                other => panic!("{other:?}"),
            }
            assert!(dir.join("state.json.corrupt").exists());
            assert!(matches!(file.load(), Loaded::Nothing));
        }
    }

    #[test]
    fn persister_writes_soon_after_marking() {
        let (mut p, count) = counting_persister(Duration::from_millis(5));
        let flag = p.flag();
        flag.mark();
        assert!(wait_for_count(&count, 1));
        assert_eq!(count.load(Ordering::SeqCst), 1);
        p.stop();
        flag.mark(); // harmless after stop
    }

    fn counting_persister(interval: Duration) -> (Persister, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let p = Persister::start(interval, move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        (p, count)
    }

    fn wait_for_count(count: &AtomicUsize, n: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while count.load(Ordering::SeqCst) < n {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    #[test]
    fn persister_writes_at_most_once_per_interval_however_often_marked() {
        let interval = Duration::from_millis(500);
        let (mut p, count) = counting_persister(interval);
        let flag = p.flag();
        let start = Instant::now();
        flag.mark();
        assert!(wait_for_count(&count, 1));
        while start.elapsed() < Duration::from_millis(300) {
            flag.mark();
            std::thread::sleep(Duration::from_micros(200));
        }
        let allowed = 1 + (start.elapsed().as_millis() / interval.as_millis()) as usize;
        let writes = count.load(Ordering::SeqCst);
        assert!(writes <= allowed, "{writes} writes, at most {allowed}");
        p.stop();
    }

    #[test]
    fn urge_writes_without_waiting_out_the_interval() {
        let (mut p, count) = counting_persister(Duration::from_secs(600));
        let flag = p.flag();
        flag.mark();
        assert!(wait_for_count(&count, 1));
        flag.mark(); // waits for the interval
        flag.urge();
        assert!(wait_for_count(&count, 2), "urged write came");
        flag.urge();
        assert!(wait_for_count(&count, 3), "a second urge works too");
        p.stop();
    }
}
