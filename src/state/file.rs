//! `state.json`: read, merged and replaced atomically (temp file, fsync,
//! rename) under a cross-process lock (`state.lock`), so it is never torn and
//! no process overwrites a field it did not change.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};

use super::merge::merge;
use super::LocalState;

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "state.lock";
const QUARANTINE_SUFFIX: &str = ".corrupt";

/// The state file inside `storage_dir`.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    last: crate::sync::Mutex<Last>,
}

/// What this process last did with the file.
#[derive(Debug, Default)]
struct Last {
    /// The generation last synced: writers from several threads never
    /// replace a newer snapshot with an older one, nor share the temp file.
    generation: u64,
    /// The file as it was after that sync: when it differs, another process
    /// wrote it since.
    stamp: Option<Stamp>,
}

/// Enough of a file's metadata to notice that it was replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    /// Every write renames a new file into place, so a new inode on Unix.
    #[cfg(unix)]
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let meta = fs::metadata(path).ok()?;
        Some(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: std::os::unix::fs::MetadataExt::ino(&meta),
        })
    }
}

/// What a sync left: the state the file now holds (ours merged with what
/// others wrote), and what to report if the file had to be moved aside.
#[derive(Debug)]
pub struct Synced {
    pub state: LocalState,
    pub report: Option<String>,
}

/// What reading the file found.
enum OnDisk {
    Nothing,
    State(LocalState),
    /// Unusable; moved aside, with what to report.
    Quarantined(String),
}

impl StateFile {
    /// Creates `dir` if needed. Failure is `Storage`, naming the directory.
    pub fn open(dir: &Path) -> Result<StateFile> {
        crate::platform::files::create_dir(dir)
            .map_err(|e| storage_error(dir, "cannot be created", &e))?;
        crate::platform::storage_dir::exclude_from_backup(dir);
        Ok(StateFile {
            path: dir.join(STATE_FILE),
            last: crate::sync::Mutex::new(Last::default()),
        })
    }

    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Whether another process has written the file since this one last
    /// synced it (a `stat`, for the background thread's periodic look).
    pub fn changed_on_disk(&self) -> bool {
        match self.last.try_lock() {
            Some(last) => last.stamp != Stamp::of(&self.path),
            None => false, // a sync is running, and will see it
        }
    }

    /// Merges `ours` (the state in memory, which started from `base`) with
    /// what the file holds, writes the result when it differs from the file,
    /// and returns it. `generation` orders snapshots: an older one than
    /// already synced is skipped (`None`); so is the whole sync when the
    /// lock is still held by another thread or process at `deadline`.
    pub fn sync_by(
        &self,
        base: &LocalState,
        ours: &LocalState,
        generation: u64,
        deadline: Option<Instant>,
    ) -> Result<Option<Synced>> {
        let Some(mut last) = self.last.lock_by(deadline) else {
            return Ok(None);
        };
        if generation < last.generation {
            return Ok(None);
        }
        let lock_path = self.dir().join(LOCK_FILE);
        let lock = crate::platform::files::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| storage_error(&lock_path, "cannot be opened", &e))?;
        let fail = |e: &std::io::Error| storage_error(&self.path, "cannot be written", e);
        if !lock_by(&lock, deadline).map_err(|e| fail(&e))? {
            return Ok(None);
        }
        let (merged, report, write) = match self.read() {
            OnDisk::State(theirs) => {
                let merged = merge(base, ours, &theirs);
                let write = merged != theirs;
                (merged, None, write)
            }
            OnDisk::Nothing => (ours.clone(), None, true),
            OnDisk::Quarantined(report) => (ours.clone(), Some(report), true),
        };
        let result = match write {
            true => self.replace(&merged),
            false => Ok(()),
        };
        let stamp = Stamp::of(&self.path);
        // Unlocked explicitly: a child forked meanwhile shares the open file
        // and would otherwise keep it locked after this one is closed.
        let _ = lock.unlock();
        result.map_err(|e| fail(&e))?;
        *last = Last { generation, stamp };
        Ok(Some(Synced {
            state: merged,
            report,
        }))
    }

    fn read(&self) -> OnDisk {
        let read = crate::platform::files::options()
            .read(true)
            .open(&self.path)
            .and_then(|mut f| {
                let mut b = Vec::new();
                f.read_to_end(&mut b).map(|_| b)
            });
        let bytes = match read {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return OnDisk::Nothing,
            Err(e) => return OnDisk::Quarantined(self.quarantine(format!("cannot be read: {e}"))),
        };
        let parsed = serde_json::from_slice::<Value>(&bytes)
            .map_err(|e| format!("is not valid JSON: {e}"))
            .and_then(|v| LocalState::from_json(&v).map_err(|e| format!("is not usable: {e}")));
        match parsed {
            Ok(state) => OnDisk::State(state),
            Err(reason) => OnDisk::Quarantined(self.quarantine(reason)),
        }
    }

    /// Moves a bad file aside (kept for inspection) and says what happened.
    fn quarantine(&self, reason: String) -> String {
        let mut aside = self.path.clone().into_os_string();
        aside.push(QUARANTINE_SUFFIX);
        match crate::platform::rename::replace(&self.path, Path::new(&aside)) {
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
    fn replace(&self, state: &LocalState) -> std::io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let mut f = crate::platform::files::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(state.to_json().to_string().as_bytes())?;
        f.sync_all()?;
        crate::platform::rename::replace(&tmp, &self.path)?;
        // The rename itself is durable only once the directory is synced.
        crate::platform::rename::sync_dir(self.dir())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::new_id;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("trodo-state-{name}-{}", new_id()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn sync(file: &StateFile, base: &LocalState, ours: &LocalState, gen: u64) -> LocalState {
        file.sync_by(base, ours, gen, None).unwrap().unwrap().state
    }

    #[test]
    fn state_round_trips_through_the_file() {
        let dir = temp_dir("rt");
        let file = StateFile::open(&dir).unwrap();
        assert!(matches!(file.read(), OnDisk::Nothing));
        let mut s = LocalState::fresh();
        s.groups.add("team", "a");
        assert_eq!(sync(&file, &s, &s, 1), s);
        match file.read() {
            OnDisk::State(r) => assert_eq!(r, s),
            _ => panic!("not written"),
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
            let s = LocalState::fresh();
            let synced = file.sync_by(&s, &s, 1, None).unwrap().unwrap();
            let report = synced.report.expect("a report");
            assert!(report.contains("fresh state"), "{report}");
            assert_eq!(synced.state, s);
            assert!(dir.join("state.json.corrupt").exists());
            assert!(matches!(file.read(), OnDisk::State(_)));
        }
    }

    #[test]
    fn two_files_on_one_directory_merge_instead_of_overwriting() {
        let dir = temp_dir("two");
        let (a, b) = (
            StateFile::open(&dir).unwrap(),
            StateFile::open(&dir).unwrap(),
        );
        let start = LocalState::fresh();
        sync(&a, &start, &start, 1);
        let base_b = sync(&b, &start, &start, 1);

        let mut ours_a = start.clone();
        ours_a.opt_out = true;
        let base_a = sync(&a, &start, &ours_a, 2);
        assert!(b.changed_on_disk(), "b notices a's write");
        assert!(!a.changed_on_disk(), "a does not notice its own");

        // b changed only its groups: it keeps a's opt-out and adds its groups.
        let mut ours_b = base_b.clone();
        ours_b.groups.add("team", "t");
        let merged = sync(&b, &base_b, &ours_b, 2);
        assert!(merged.opt_out);
        assert_eq!(merged.groups.get("team"), Some(&["t".to_string()][..]));

        // a, unchanged since its sync, takes b's groups and keeps the opt-out.
        let seen = sync(&a, &base_a, &base_a, 3);
        assert_eq!(seen, merged);
    }

    #[test]
    fn an_older_snapshot_is_not_synced_after_a_newer_one() {
        let dir = temp_dir("gen");
        let file = StateFile::open(&dir).unwrap();
        let s = LocalState::fresh();
        let mut newer = s.clone();
        newer.distinct_id = "newer".into();
        sync(&file, &s, &newer, 5);
        let mut older = s.clone();
        older.distinct_id = "older".into();
        assert!(file.sync_by(&s, &older, 4, None).unwrap().is_none());
        match file.read() {
            OnDisk::State(r) => assert_eq!(r.distinct_id, "newer"),
            _ => panic!("not written"),
        }
    }
}
