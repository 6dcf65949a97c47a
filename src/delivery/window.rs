//! The window: the queue file's tail, memory-mapped, where a call frames its
//! record. What makes the record survive its process's death the moment the
//! call returns, with no system call on the caller's thread: a store into a
//! shared mapping is in the kernel's page cache as soon as it is made.
//!
//! A window covers [`WINDOW`] bytes of the file from the end of its records
//! on. The writer thread maps it, and maps the next one before this one
//! fills, so that callers find space ready; the space under a window is
//! allocated for real before it is mapped (never a sparse hole: a store into
//! a mapped page the disk cannot provide raises `SIGBUS`), and the file is
//! never cut below a live window. Only one window is resident at a time, so
//! a large backlog on disk is not mapped memory.
//!
//! Beyond the records the allocated space is zeros. A zero length ends the
//! records, so a process killed mid-copy leaves a record whose checksum
//! fails followed by zeros: readers skip it (its call never returned), and
//! the next opener cuts the file back to its last record.

use std::fs::File;
use std::io;

use crate::platform::files;

/// A window's size: what a burst can queue before the writer maps the next
/// one (at half full) or records wait in memory. (A record larger than this
/// gets a window of its own size.)
pub(crate) const WINDOW: usize = 2 * 1024 * 1024;

/// The mapped tail of a queue file.
pub struct Window {
    map: files::Mapped,
    /// The file offset of the mapping's first byte.
    base: u64,
    /// Bytes of records in the mapping.
    used: usize,
    /// The mapping's size.
    size: usize,
    /// Of those, the bytes already pushed to the disk (`msync`).
    flushed: usize,
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Window({}+{} of {})", self.base, self.used, self.size)
    }
}

impl Window {
    /// Allocates and maps the window of `file` that starts at `end`, the end
    /// of its records (everything after it is zeros or unallocated), with
    /// room for a record of `min` bytes at least.
    pub fn map(file: &File, end: u64, min: usize) -> io::Result<Window> {
        let size = WINDOW.max(min);
        files::allocate(file, end, size as u64)?;
        Ok(Window {
            map: files::Mapped::new(file, end, size)?,
            base: end,
            used: 0,
            size,
            flushed: 0,
        })
    }

    /// Takes over from `old`, the window before it: records the callers put
    /// there since this one was mapped are this one's too (both map the
    /// same pages of the file). False when `old` is not of this file's
    /// records before this window's end.
    pub fn follow(&mut self, old: &Window) -> bool {
        let end = old.end();
        if end < self.base || end - self.base > self.size as u64 {
            return false;
        }
        self.used = (end - self.base) as usize;
        self.flushed = 0;
        true
    }

    /// The file offset where the records end.
    pub fn end(&self) -> u64 {
        self.base + self.used as u64
    }

    /// Bytes still free.
    pub fn free(&self) -> usize {
        self.size - self.used
    }

    /// The space for a record of `len` bytes at the end of the records, for
    /// the caller to fill at once, front to back; `None` when it does not
    /// fit. The space is zeros: a copy cut short by a kill leaves a torn
    /// record followed by nothing a reader would take.
    pub fn reserve(&mut self, len: usize) -> Option<&mut [u8]> {
        let (at, end) = (self.used, self.used.checked_add(len)?);
        if end > self.size {
            return None;
        }
        self.used = end;
        Some(&mut self.map.bytes_mut()[at..end])
    }

    /// The records in the window.
    #[cfg(test)]
    pub fn records(&self) -> &[u8] {
        &self.map.bytes()[..self.used]
    }

    /// What to push to the disk to make the window's records so far durable
    /// against power loss, for a thread that does not hold the window; and
    /// notes them as pushed (see [`Unflushed::failed`]).
    pub fn unflushed(&mut self) -> Unflushed {
        let from = std::mem::replace(&mut self.flushed, self.used);
        Unflushed {
            flusher: self.map.flusher(),
            from,
            to: self.used,
        }
    }
}

/// A range of a window's records to push to the disk.
pub struct Unflushed {
    flusher: files::Flusher,
    from: usize,
    to: usize,
}

impl Unflushed {
    /// Pushes the range and waits until it is on the disk.
    pub fn flush(&self) -> io::Result<()> {
        self.flusher.flush(self.from, self.to - self.from, true)
    }

    /// Starts the range on its way to the disk without waiting (a later
    /// sync of the file completes it).
    pub fn start(&self) -> io::Result<()> {
        self.flusher.flush(self.from, self.to - self.from, false)
    }

    /// Whether there was nothing to push.
    pub fn is_empty(&self) -> bool {
        self.from == self.to
    }

    /// After a failed push: the window pushes from the same place next time.
    pub fn failed(&self, window: &mut Window) {
        window.flushed = window.flushed.min(self.from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> File {
        let d = std::env::temp_dir().join(format!("trodo-window-{}", crate::util::new_id()));
        std::fs::create_dir_all(&d).unwrap();
        files::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(d.join("q.bin"))
            .unwrap()
    }

    fn put(w: &mut Window, bytes: &[u8]) -> bool {
        w.reserve(bytes.len())
            .map(|space| space.copy_from_slice(bytes))
            .is_some()
    }

    #[test]
    fn records_land_in_the_file_at_its_end_and_the_space_after_is_allocated_zeros() {
        use std::io::Write;
        let mut f = file();
        f.write_all(b"head").unwrap();
        let mut w = Window::map(&f, 4, 0).unwrap();
        assert!(put(&mut w, b"one") && put(&mut w, b"two"));
        assert_eq!(w.end(), 10);
        let mut read = vec![0u8; 16];
        use std::io::{Read, Seek, SeekFrom};
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_exact(&mut read).unwrap();
        assert_eq!(&read, b"headonetwo\0\0\0\0\0\0");
        assert_eq!(f.metadata().unwrap().len(), 4 + WINDOW as u64);
    }

    #[test]
    fn a_record_that_does_not_fit_is_refused_whole() {
        let f = file();
        let mut w = Window::map(&f, 0, 0).unwrap();
        assert!(!put(&mut w, &vec![1u8; WINDOW + 1]));
        assert_eq!(w.end(), 0);
        let big = Window::map(&f, 0, WINDOW + 1).unwrap();
        assert_eq!(
            big.free(),
            WINDOW + 1,
            "a window of its own for a larger record"
        );
        assert!(put(&mut w, &vec![1u8; WINDOW - 1]));
        assert!(!put(&mut w, b"xy"));
        assert!(put(&mut w, b"x"));
        assert_eq!(w.free(), 0);
    }

    #[test]
    fn the_next_window_takes_over_what_was_written_after_it_was_mapped() {
        let f = file();
        let mut old = Window::map(&f, 0, 0).unwrap();
        assert!(put(&mut old, &[1u8; 100]));
        let mut next = Window::map(&f, old.end(), 0).unwrap();
        assert!(put(&mut old, &[2u8; 50])); // a caller, before the swap
        assert!(next.follow(&old));
        assert_eq!(next.end(), 150);
        assert_eq!(next.records(), &[2u8; 50]);
        assert!(put(&mut next, &[3u8; 10]));
        assert_eq!(old.records(), [[1u8; 100].as_slice(), &[2u8; 50]].concat());
        // A window far behind cannot be followed.
        let mut far = Window::map(&f, 3 * WINDOW as u64, 0).unwrap();
        assert!(!far.follow(&next));
    }

    #[test]
    fn what_was_flushed_is_not_flushed_again_unless_the_flush_failed() {
        let f = file();
        let mut w = Window::map(&f, 0, 0).unwrap();
        assert!(put(&mut w, b"abc"));
        let u = w.unflushed();
        assert!(!u.is_empty());
        u.flush().unwrap();
        assert!(w.unflushed().is_empty());
        assert!(put(&mut w, b"d"));
        let u = w.unflushed();
        u.failed(&mut w);
        let again = w.unflushed();
        assert_eq!((again.from, again.to), (3, 4));
    }
}
