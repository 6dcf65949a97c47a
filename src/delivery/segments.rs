//! Queue segments: every process (and every forked child) appends to a queue
//! file of its own, `queue-<pid>-<random>.bin`, and holds the matching
//! `.lock` file locked for as long as it runs. Several processes can thus use
//! one storage directory without ever writing into the same file.
//!
//! A segment whose lock is free belongs to nobody: its owner died (or was
//! killed) before sending everything. A live process claims it, takes its
//! items into its own queue, and removes it. `queue.bin` / `queue.lock`, the
//! single queue of earlier versions, is just another segment.
//!
//! Claiming locks the lock file and then checks that the name still refers
//! to the file locked (as sentry-native checks its run directories): an
//! adopter that has just finished removes the lock file while still holding
//! it, so a second adopter that locks the removed file sees that it is gone
//! and leaves, and no segment is ever sent by two processes.

use std::collections::BTreeSet;
use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};
use crate::platform::files;
use crate::process::Held;

const PREFIX: &str = "queue";

/// A segment this process holds locked: its own, or one it claimed.
#[derive(Debug)]
pub struct Segment {
    dir: PathBuf,
    stem: String,
    /// Declared before `lock`, so it is dropped first: the descriptor leaves
    /// the set a forked child closes before it is closed, never after (a
    /// number closed but still listed could be another file's by the fork).
    held: Held,
    /// Not closed when the process forked since: the child handler closed
    /// it already, and the number may belong to another file by now.
    lock: Option<File>,
}

impl Segment {
    /// A new segment for this process.
    pub fn create(dir: &Path) -> Result<Segment> {
        Segment::create_with(dir, |_| {})
    }

    /// As [`create`](Self::create); `between` runs after a lock file is
    /// created and before it is locked (where another process may step in).
    fn create_with(dir: &Path, between: impl Fn(&Path)) -> Result<Segment> {
        loop {
            let stem = format!(
                "{PREFIX}-{}-{:08x}",
                std::process::id(),
                crate::util::random_u64() as u32
            );
            let path = dir.join(format!("{stem}.lock"));
            let fail = |e: &dyn std::fmt::Display| {
                Error::new(
                    ErrorKind::Storage,
                    format!("storage: {} cannot be created: {e}", path.display()),
                )
            };
            let lock = files::options()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| fail(&e))?;
            between(&path);
            // Between creating and locking, another process may take the new,
            // still unlocked file for a stale one: it then holds the lock
            // (WouldBlock here) or has removed the file (no longer named).
            // Either way a fresh name is tried; neither is a storage error.
            match lock.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => return Err(fail(&e)),
            }
            if still_named(&lock, &path).map_err(|e| fail(&e))? {
                return Ok(Segment::holding(dir, stem, lock));
            }
        }
    }

    /// Locks segment `stem` when nobody holds it. `None` when its owner is
    /// alive, or when another process finished with it meanwhile.
    pub fn claim(dir: &Path, stem: &str) -> io::Result<Option<Segment>> {
        let path = dir.join(format!("{stem}.lock"));
        let lock = files::options().write(true).create(true).open(&path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e),
        }
        if !still_named(&lock, &path)? {
            return Ok(None);
        }
        Ok(Some(Segment::holding(dir, stem.to_string(), lock)))
    }

    fn holding(dir: &Path, stem: String, lock: File) -> Segment {
        let held = Held::new(raw_fd(&lock));
        Segment {
            dir: dir.to_path_buf(),
            stem,
            held,
            lock: Some(lock),
        }
    }

    /// `<stem>.<ext>` beside the lock: `bin` (the queue), `tmp`, `corrupt`.
    pub fn file(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", self.stem))
    }

    pub fn name(&self) -> &str {
        &self.stem
    }

    /// Removes the segment's files, the lock file last, while still holding it.
    pub fn remove(self) {
        for ext in ["bin", "tmp"] {
            let _ = fs::remove_file(self.file(ext));
        }
        let _ = fs::remove_file(self.file("lock"));
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.held.inherited() {
            std::mem::forget(self.lock.take());
        }
    }
}

/// The stems of the segments in `dir` (a queue file or a lock file), sorted.
pub fn stems(dir: &Path) -> io::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name
            .strip_suffix(".bin")
            .or_else(|| name.strip_suffix(".lock"))
        else {
            continue;
        };
        if stem == PREFIX
            || stem
                .strip_prefix(PREFIX)
                .is_some_and(|r| r.starts_with('-'))
        {
            out.insert(stem.to_string());
        }
    }
    Ok(out)
}

#[cfg(unix)]
fn raw_fd(f: &File) -> i32 {
    use std::os::unix::io::AsRawFd;
    f.as_raw_fd()
}

#[cfg(not(unix))]
fn raw_fd(_f: &File) -> i32 {
    -1
}

/// Whether `path` still names the file `lock` has open.
#[cfg(unix)]
fn still_named(lock: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = lock.metadata()?;
    Ok(match fs::symlink_metadata(path) {
        Ok(named) => named.ino() == open.ino() && named.dev() == open.dev(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    })
}

/// Windows cannot remove a file that is open: the name is the file.
#[cfg(not(unix))]
fn still_named(_lock: &File, path: &Path) -> io::Result<bool> {
    Ok(path.exists())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn temp_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("trodo-segments-{}", crate::util::new_id()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_new_lock_file_locked_by_another_process_first_is_left_to_it() {
        // An adopter that lists the directory between our create and lock
        // may lock the new file first: create takes a fresh name instead of
        // failing init with a storage error.
        let dir = temp_dir();
        let taken: RefCell<Vec<(PathBuf, File)>> = RefCell::new(Vec::new());
        let segment = Segment::create_with(&dir, |path| {
            if taken.borrow().is_empty() {
                let other = File::open(path).unwrap();
                other.try_lock().unwrap(); // another open file: flock conflicts
                taken.borrow_mut().push((path.to_path_buf(), other));
            }
        })
        .expect("a fresh name, not an error");
        let taken = taken.into_inner();
        assert_eq!(taken.len(), 1);
        assert_ne!(segment.file("lock"), taken[0].0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_segment_leaves_the_fork_set_before_its_descriptor_closes() {
        let dir = temp_dir();
        let segment = Segment::create(&dir).unwrap();
        let fd = raw_fd(segment.lock.as_ref().unwrap());
        drop(segment);
        let seen = crate::process::tests::dropped_held();
        assert!(
            seen.contains(&(fd, true)),
            "descriptor {fd} was still open when it left the set: {seen:?}"
        );
    }
}
