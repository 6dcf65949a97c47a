//! The on-disk queue: one append-only file of checksummed records, so a crash
//! at any moment leaves every complete record readable and at most one torn
//! record at the end.
//!
//! Record: `[u32 LE payload length][u32 LE CRC-32 of payload][payload]`.
//! Payload `I`: an item — `seq: u64 LE`, `path length: u16 LE`, path, body.
//! Payload `D`: items `from..=to` are done (delivered or dropped).
//!
//! Item records appear in the file in increasing seq order, except for
//! repeats of an item already written (a compaction can copy an item whose
//! record was still waiting to be appended); readers skip a seq they have
//! passed. Appends take the bytes to write while holding the file, so two
//! writers cannot swap their order. That order is what lets the queue keep
//! only a bounded head in memory and read the rest back by a file cursor.
//!
//! Damage costs only the records it touches: a reader that meets a record
//! that does not check out resumes at the next offset where one does
//! (`scan`). At open, damaged bytes are copied to `<segment>.corrupt`,
//! reported and left out (a damaged tail is cut, damage inside the file is
//! dropped by a rewrite); it is never fatal.
//!
//! Each process writes a file of its own: a [`Segment`] (see [`segments`](super::segments)).
//! Callers frame their records straight into the file's mapped tail (see
//! [`window`](super::window)); zeros after the last record are allocated
//! space, which an opener cuts off.
//!
//! Rooms: `codec` frames and parses records; `scan` reads them from a
//! file, resynchronising past damage; `recovery` decides what a file holds
//! (at start, for adoption, for a compaction's copy) by one rule; `tail` is
//! the writer's hold on the file's end; this module is the segment's queue
//! store: open, read back, compact, close.

mod codec;
mod recovery;
mod scan;
mod tail;

#[cfg(test)]
pub use codec::test_item;
pub(crate) use codec::DONE_RECORD_LEN;
pub use codec::{
    append_record, encode_done, encode_item, framed_size, intact_record_at, item_record_len,
    records, write_done, write_item, Record,
};
use codec::{parse, ITEM_OVERHEAD};
use recovery::{copy_spilled, read_all};
pub use recovery::{mark_orphan_done, merge_ranges, read_orphan};
use scan::{scan_while, take_wanted, want};
pub use tail::Tail;

use std::fs::File;

use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use std::path::{Path, PathBuf};

use crate::sync::Mutex;

use super::window::Window;

use super::segments::{self, Segment};

use crate::error::{Error, ErrorKind, Result};

use crate::platform::{files, rename};

/// Rewrite the file once this much of it is done records.
const COMPACT_AFTER_DEAD_BYTES: u64 = 4 * 1024 * 1024;

/// An item read back from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    pub seq: u64,
    pub path: String,
    pub body: Vec<u8>,
}

/// An item kept only on disk: enough to count it, bound the queue by it and
/// find it again. Packed, because a large offline backlog holds one per event.
#[derive(Debug, Clone, Copy)]
#[repr(C, packed)]
pub struct SpillRef {
    pub seq: u64,
    pub body_len: u32,
    pub path_len: u16,
}

impl SpillRef {
    pub fn seq(self) -> u64 {
        self.seq
    }

    pub fn body_len(self) -> u64 {
        u64::from(self.body_len)
    }

    pub fn record_len(self) -> u64 {
        ITEM_OVERHEAD + u64::from(self.path_len) + u64::from(self.body_len)
    }
}

/// What loading found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The oldest items not yet done, in seq order, up to `head_bytes` of bodies.
    pub items: Vec<StoredItem>,
    /// The items not yet done after those, left on disk.
    pub spilled: Vec<SpillRef>,
    /// The highest seq seen (items and done markers), so new seqs continue.
    pub last_seq: u64,
    /// Damage found and moved aside, for the report.
    pub damage: Option<String>,
    pub damaged_bytes: u64,
    /// Segments left by earlier processes that could not be taken over.
    pub skipped: Vec<String>,
}

struct FileState {
    file: Option<File>,
    /// Where the records end while no window is mapped (a window's own end
    /// is that of its records).
    end: u64,
    /// Every spilled item's record is at or after this offset.
    spill_cursor: u64,
    /// Done ranges read at open: items in them are dead although their
    /// records are still in the file, so a compaction must not copy them.
    open_done: Vec<(u64, u64)>,
}

pub struct QueueStore {
    path: PathBuf,
    file: Mutex<FileState>,
    /// This process's segment, held for the store's life.
    segment: Mutex<Option<Segment>>,
    name: String,
    /// Bytes of records known to be done, for deciding when to compact.
    dead_bytes: Mutex<u64>,
}

impl Recovered {
    /// A compaction's snapshot of what was recovered (see
    /// [`QueueStore::rewrite_copy`]): the head's records, and the spilled
    /// items' range, to be copied from the file.
    fn snapshot(&self) -> impl FnOnce(&mut Vec<u8>, u64) -> (Option<(u64, u64)>, u64) + '_ {
        |out, end| {
            for item in &self.items {
                encode_item(item.seq, &item.path, &item.body, out);
            }
            (
                spill_range(self.spilled.first().zip(self.spilled.last())),
                end,
            )
        }
    }
}

/// A compaction between its two steps: the live items copied to the temp
/// file (see [`QueueStore::rewrite_copy`]).
pub struct Rewrite {
    out: BufWriter<File>,
    tmp: PathBuf,
    /// Where the records ended at the snapshot: what follows is copied as
    /// it is when the files are swapped.
    snapshot_end: u64,
    /// The memory items' records, first in the new file.
    head_len: u64,
    /// Dead bytes counted at the snapshot: the ones the new file leaves out.
    dead_before: u64,
}

fn storage(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Storage,
        format!("storage: {} {what}: {e}", path.display()),
    )
}

impl QueueStore {
    /// Opens a queue for this process under `dir`: a segment whose owner is
    /// gone is taken over as it is (the common case of one process started
    /// again: its queue is not copied), otherwise a new one is made.
    pub fn open_in(dir: &Path, head_bytes: u64) -> Result<(QueueStore, Recovered)> {
        let mut skipped = Vec::new();
        let found = segments::stems(dir).map_err(|e| storage(dir, "cannot be listed", e))?;
        for stem in found {
            let segment = match Segment::claim(dir, &stem) {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
                    skipped.push(format!("queue segment {stem} cannot be locked: {e}"));
                    continue;
                }
            };
            if !segment.file("bin").exists() {
                segment.remove(); // a lock file left without its queue
                continue;
            }
            match QueueStore::open(segment, head_bytes) {
                Ok((store, mut recovered)) => {
                    skipped.append(&mut recovered.skipped);
                    recovered.skipped = skipped;
                    return Ok((store, recovered));
                }
                Err(e) => skipped.push(format!("queue segment {stem} was left alone: {e}")),
            }
        }
        let (store, mut recovered) = QueueStore::open(Segment::create(dir)?, head_bytes)?;
        skipped.append(&mut recovered.skipped);
        recovered.skipped = skipped;
        Ok((store, recovered))
    }

    /// Opens a new segment for this process under `dir`, taking over none.
    pub fn open_new(dir: &Path, head_bytes: u64) -> Result<(QueueStore, Recovered)> {
        QueueStore::open(Segment::create(dir)?, head_bytes)
    }

    /// Opens `segment`'s queue file and reads what is queued: the oldest
    /// live items up to `head_bytes` of bodies in full, the rest as
    /// [`SpillRef`]s.
    pub fn open(segment: Segment, head_bytes: u64) -> Result<(QueueStore, Recovered)> {
        let path = segment.file("bin");
        let mut file = files::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| storage(&path, "cannot be opened", e))?;
        let loaded = read_all(&mut file, &path, head_bytes)?;
        // The allocated tail a killed owner left (zeros) goes: the writer
        // allocates afresh from the end of the records.
        if file.metadata().map(|m| m.len()).unwrap_or(0) > loaded.data_end {
            file.set_len(loaded.data_end)
                .map_err(|e| storage(&path, "cannot be truncated", e))?;
        }
        let store = QueueStore {
            path,
            file: Mutex::new(FileState {
                file: Some(file),
                end: loaded.data_end,
                spill_cursor: loaded.spill_cursor,
                open_done: loaded.done,
            }),
            name: segment.name().to_string(),
            segment: Mutex::new(Some(segment)),
            dead_bytes: Mutex::new(loaded.dead),
        };
        let mut recovered = loaded.recovered;
        // Damage before the end is left out by a rewrite below; damage at the
        // end is cut off.
        let mut damaged_inside = false;
        if !loaded.damaged.is_empty() {
            let (report, bytes, inside) = store.quarantine(&loaded.damaged, loaded.data_end)?;
            recovered.damage = Some(report);
            recovered.damaged_bytes = bytes;
            damaged_inside = inside;
        }
        let nothing_live = recovered.items.is_empty() && recovered.spilled.is_empty();
        if (nothing_live && loaded.data_end > 0)
            || loaded.dead > COMPACT_AFTER_DEAD_BYTES
            || damaged_inside
        {
            store.rewrite(recovered.snapshot(), || None)?;
        }
        Ok((store, recovered))
    }

    /// The name of this process's segment.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Copies the `damaged` byte ranges to `<segment>.corrupt` (kept for
    /// inspection) and cuts the file before damage at its end. Returns the
    /// report, the damaged bytes, and whether damage lies before the end
    /// (then the file must be rewritten without it).
    fn quarantine(&self, damaged: &[(u64, u64)], file_len: u64) -> Result<(String, u64, bool)> {
        let mut guard = self.file.lock();
        let st = &mut *guard;
        let file = st
            .file
            .as_mut()
            .ok_or_else(|| storage(&self.path, "is closed", "closed"))?;
        let aside = self.path.with_extension("corrupt");
        let mut copy = Vec::new();
        for &(from, to) in damaged {
            let mut part = vec![0u8; (to - from) as usize];
            file.seek(SeekFrom::Start(from))
                .and_then(|_| file.read_exact(&mut part))
                .map_err(|e| storage(&self.path, "cannot be read", e))?;
            copy.extend_from_slice(&part);
        }
        let saved = files::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&aside)
            .and_then(|mut f| f.write_all(&copy))
            .is_ok();
        let inside = damaged.iter().any(|&(_, to)| to < file_len);
        if let Some(&(from, to)) = damaged.last() {
            if to == file_len && !inside {
                file.set_len(from)
                    .and_then(|_| file.sync_all())
                    .map_err(|e| storage(&self.path, "cannot be truncated", e))?;
                st.end = from;
            }
        }
        let bytes = copy.len() as u64;
        let report = format!(
            "queue file {} was damaged at byte {}: {bytes} byte(s) in {} place(s) could not be read{}; \
             every intact record was kept",
            self.path.display(),
            damaged[0].0,
            damaged.len(),
            if saved { format!(" and were copied to {}", aside.display()) } else { String::new() }
        );
        Ok((report, bytes, inside))
    }

    /// Appends encoded records at the end (no window is mapped); with
    /// `sync`, they are on disk when this returns.
    #[cfg(test)]
    pub fn append(&self, bytes: &[u8], sync: bool) -> std::io::Result<()> {
        let mut tail = self.tail_by(None).ok_or(io::ErrorKind::TimedOut)?;
        tail.append(bytes)?;
        match (sync, tail.sync_handle()?) {
            (true, Some(file)) => file.sync_data(),
            _ => Ok(()),
        }
    }

    /// The file, held (until `deadline` at most, when another thread holds
    /// it), for the writer's work on its tail. While it is held, no record
    /// moves from memory into the file, so a reader holding it sees each
    /// record in one place or the other.
    pub fn tail_by(&self, deadline: Option<std::time::Instant>) -> Option<Tail<'_>> {
        Some(Tail::new(self.file.lock_by(deadline)?, &self.path))
    }

    /// Reads back the spilled items `wanted` (ascending seqs) from the cursor
    /// on, up to the end of the records that `end` tells (given the end
    /// known without a window), then from `pending` (the records in memory,
    /// which follow the file). Moves the cursor past what it read. An item
    /// that is not found is left out of the result.
    pub fn read_spilled(
        &self,
        wanted: &[u64],
        end: impl FnOnce(u64) -> u64,
        pending: impl FnOnce(&mut dyn FnMut(&[u8])),
    ) -> std::io::Result<Vec<StoredItem>> {
        let mut guard = self.file.lock();
        let st = &mut *guard;
        let Some(file) = st.file.as_mut() else {
            return Ok(Vec::new());
        };
        let (mut next, mut found) = (0, Vec::with_capacity(wanted.len()));
        if !wanted.is_empty() {
            // Only up to the records' end as it is now: callers may be
            // framing records into the window after it, and a half-framed
            // one must not be taken for damage the cursor then passes.
            let end = end(st.end);
            let (_, read_to) = scan_while(file, st.spill_cursor, Some(end), |_, _, payload| {
                want(parse(payload), wanted, &mut next, &mut found);
                next < wanted.len()
            })?;
            st.spill_cursor = st.spill_cursor.max(read_to);
        }
        if next < wanted.len() {
            let mut result = Ok(0);
            pending(&mut |mut bytes: &[u8]| {
                if result.is_ok() {
                    result = take_wanted(&mut bytes, wanted, &mut next, &mut found);
                }
            });
            result?;
        }
        Ok(found)
    }

    /// Notes `bytes` of records as done; true when a compaction is due: when
    /// done records outweigh both the threshold and the `live` bytes, so each
    /// rewrite at least halves the file and its cost stays proportional to
    /// what was delivered (a large backlog is not rewritten over and over).
    pub fn add_dead(&self, bytes: u64, live: u64) -> bool {
        let mut d = self.dead_bytes.lock();
        *d += bytes;
        *d > COMPACT_AFTER_DEAD_BYTES && *d > live
    }

    /// Replaces the file with just the live items (temp file, fsync,
    /// rename): [`rewrite_copy`](Self::rewrite_copy), then
    /// [`rewrite_swap`](Self::rewrite_swap).
    pub fn rewrite(
        &self,
        snapshot: impl FnOnce(&mut Vec<u8>, u64) -> (Option<(u64, u64)>, u64),
        seal: impl FnOnce() -> Option<Window>,
    ) -> Result<()> {
        let result = match self.rewrite_copy(snapshot) {
            Ok(Some(rewrite)) => self.rewrite_swap(rewrite, seal),
            Ok(None) => Ok(()), // closed
            Err(e) => Err(e),
        };
        if result.is_err() {
            // A part-written copy would hold the space a full disk lacks
            // until the next try.
            let _ = std::fs::remove_file(self.tmp_path());
        }
        result
    }

    /// Where a compaction writes the new file before it replaces the queue file.
    fn tmp_path(&self) -> PathBuf {
        self.path.with_extension("tmp")
    }

    /// A compaction's first step: copies the live items to a temp file.
    /// `snapshot` appends the records of the items held in memory and
    /// returns the seq range of the spilled ones, whose records are then
    /// copied from the old file, and where the records end at that moment
    /// (given the end known without a window). The copy, the bulk of the
    /// work, runs without the file lock, through a handle of its own: the
    /// records before the snapshot's end never change, and read-back and
    /// the writer go on meanwhile. None when the store is closed. The
    /// caller is the only compactor; [`rewrite_swap`](Self::rewrite_swap)
    /// finishes it.
    pub fn rewrite_copy(
        &self,
        snapshot: impl FnOnce(&mut Vec<u8>, u64) -> (Option<(u64, u64)>, u64),
    ) -> Result<Option<Rewrite>> {
        let mut head = Vec::new();
        let (spilled, snapshot_end, cursor, open_done) = {
            let st = self.file.lock();
            if st.file.is_none() {
                return Ok(None);
            }
            let (spilled, snapshot_end) = snapshot(&mut head, st.end);
            (spilled, snapshot_end, st.spill_cursor, st.open_done.clone())
        };
        // Records that die from here on are still in the new file.
        let dead_before = *self.dead_bytes.lock();
        let tmp = self.tmp_path();
        let failed = |e| storage(&self.path, "cannot be rewritten", e);
        let mut out = files::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map(|f| BufWriter::with_capacity(256 * 1024, f))
            .map_err(failed)?;
        let copied = out.write_all(&head).and_then(|()| {
            let Some((first, last)) = spilled else {
                return Ok(());
            };
            let mut old = files::options().read(true).open(&self.path)?;
            let range = (cursor, snapshot_end);
            copy_spilled(&mut old, range, first, last, &open_done, &mut out)
        });
        // The bulk goes to the disk before the lock is taken again.
        copied
            .and_then(|()| out.flush())
            .and_then(|()| out.get_ref().sync_data())
            .map_err(failed)?;
        Ok(Some(Rewrite {
            out,
            tmp,
            snapshot_end,
            head_len: head.len() as u64,
            dead_before,
        }))
    }

    /// A compaction's second step, under the file lock: `seal` takes the
    /// window from the callers (their records wait in memory until the
    /// writer maps one on the new file), what was framed or appended since
    /// the snapshot is copied as it is, and the temp file replaces the
    /// queue file. A store closed since the copy keeps its file.
    pub fn rewrite_swap(
        &self,
        rewrite: Rewrite,
        seal: impl FnOnce() -> Option<Window>,
    ) -> Result<()> {
        let Rewrite {
            mut out,
            tmp,
            snapshot_end,
            head_len,
            dead_before,
        } = rewrite;
        let mut guard = self.file.lock();
        let st = &mut *guard;
        let Some(old) = st.file.as_mut() else {
            drop(out);
            let _ = std::fs::remove_file(&tmp);
            return Ok(());
        };
        // From here on the window is gone whatever happens: the records'
        // end is known again without it.
        let window = seal();
        if let Some(w) = &window {
            st.end = w.end();
        }
        // Windows cannot replace a file that is mapped or open, by our own
        // handles included.
        drop(window);
        let written = copy_range(old, snapshot_end, st.end, &mut out)
            .and_then(|()| out.into_inner().map_err(|e| e.into_error()))
            .and_then(|f| f.sync_all().map(|()| f));
        let file = written.map_err(|e| storage(&self.path, "cannot be rewritten", e))?;
        let new_end = file
            .metadata()
            .map_err(|e| storage(&tmp, "cannot be read", e))?
            .len();
        if cfg!(windows) {
            st.file = None;
        }
        if let Err(e) = rename::replace(&tmp, &self.path) {
            if st.file.is_none() {
                // The old file is still the queue: take it up again.
                st.file = files::options()
                    .read(true)
                    .write(true)
                    .open(&self.path)
                    .ok();
            }
            return Err(storage(&self.path, "cannot be replaced", e));
        }
        // From the rename on, the new file is the queue whatever fails next:
        // records put into the old, unlinked one would be lost.
        *st = FileState {
            file: Some(file),
            end: new_end,
            spill_cursor: head_len,
            open_done: Vec::new(),
        };
        let mut dead = self.dead_bytes.lock();
        *dead = dead.saturating_sub(dead_before);
        drop(dead);
        drop(guard);
        rename::sync_dir(self.path.parent().unwrap_or(Path::new("."))).map_err(|e| {
            storage(
                &self.path,
                "was replaced, but its directory cannot be synced",
                e,
            )
        })
    }

    /// Closes the file and releases the segment; with `remove` (nothing is
    /// left in it) its files are removed first.
    pub fn close(&self, remove: bool) {
        self.close_by(remove, None, None);
    }

    /// As [`close`](Self::close), taking the `window` out of use (the
    /// file's allocated space after the records is given back), and giving
    /// up at `deadline` if another thread holds the file (a compaction):
    /// false when it gave up, leaving the store open and the segment held.
    pub fn close_by(
        &self,
        remove: bool,
        deadline: Option<std::time::Instant>,
        window: Option<Window>,
    ) -> bool {
        let Some(mut guard) = self.file.lock_by(deadline) else {
            return false;
        };
        if let Some(mut w) = window {
            let _ = w.unflushed().flush();
            guard.end = w.end();
        }
        let end = guard.end;
        if let Some(f) = guard.file.take() {
            let _ = f.set_len(end);
            let _ = f.sync_all();
        }
        drop(guard);
        if let Some(segment) = self.segment.lock().take() {
            if remove {
                segment.remove();
            }
        }
        true
    }
}

/// Copies the bytes `from..to` of `file` to `out` as they are.
fn copy_range(file: &mut File, from: u64, to: u64, out: &mut impl Write) -> io::Result<()> {
    if to <= from {
        return Ok(());
    }
    file.seek(SeekFrom::Start(from))?;
    let copied = io::copy(&mut (&mut *file).take(to - from), out)?;
    match copied == to - from {
        true => Ok(()),
        false => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

/// Writes `records` to `file` at `at`, the end of its records (and syncs
/// with `sync`). A write that fails part-way (a full disk) is cut back to
/// `at`, so no torn record hides the records written after it when they are
/// written again whole.
fn write_records_at(file: &mut File, at: u64, records: &[u8], sync: bool) -> io::Result<()> {
    let written = file
        .seek(SeekFrom::Start(at))
        .and_then(|_| file.write_all(records))
        .and_then(|_| if sync { file.sync_data() } else { Ok(()) });
    if written.is_err() {
        let _ = file.set_len(at);
    }
    written
}

/// The seq range of the spilled items from their first and last, for a
/// compaction to copy.
pub fn spill_range(ends: Option<(&SpillRef, &SpillRef)>) -> Option<(u64, u64)> {
    ends.map(|(first, last)| (first.seq(), last.seq()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("trodo-store-{}", crate::util::new_id()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// The one segment's queue file in `d`.
    fn queue_file(d: &Path) -> PathBuf {
        let stems = segments::stems(d).unwrap();
        assert_eq!(stems.len(), 1, "{stems:?}");
        d.join(format!("{}.bin", stems.first().unwrap()))
    }

    fn items(n: u64) -> Vec<u8> {
        (1..=n).flat_map(codec::test_item).collect()
    }

    #[test]
    fn items_and_done_markers_round_trip() {
        let d = dir();
        let (store, rec) = QueueStore::open_in(&d, u64::MAX).unwrap();
        assert!(rec.items.is_empty() && rec.damage.is_none());
        store.append(&items(5), true).unwrap();
        let mut done = Vec::new();
        encode_done(1, 2, &mut done);
        encode_done(4, 4, &mut done);
        store.append(&done, true).unwrap();
        store.close(false);
        let (_store, rec) = QueueStore::open_in(&d, u64::MAX).unwrap();
        let seqs: Vec<u64> = rec.items.iter().map(|i| i.seq).collect();
        assert_eq!(seqs, [3, 5]);
        assert_eq!(rec.items[0].body, b"{\"n\":3}");
        assert_eq!(rec.items[0].path, "/api/events");
        assert_eq!(rec.last_seq, 5);
    }

    #[test]
    fn a_scribbled_record_costs_only_itself_and_a_torn_tail_is_cut() {
        let d = dir();
        let (store, _) = QueueStore::open_in(&d, u64::MAX).unwrap();
        store.append(&items(10), true).unwrap();
        store.close(false);
        let path = queue_file(&d);
        let full = fs::read(&path).unwrap();
        let (start, end) = record_span(&items(10), 7);
        let mut bad = full.clone();
        bad[start + 12] ^= 0xFF;
        fs::write(&path, &bad).unwrap();
        let (store, rec) = QueueStore::open_in(&d, u64::MAX).unwrap();
        assert_eq!(seqs(&rec.items), [1, 2, 3, 4, 5, 6, 8, 9, 10]);
        assert_eq!(rec.damaged_bytes, (end - start) as u64);
        let report = rec.damage.unwrap();
        assert!(
            report.contains("damaged") && report.contains(".corrupt"),
            "{report}"
        );
        assert_eq!(
            fs::read(path.with_extension("corrupt")).unwrap(),
            &bad[start..end]
        );
        store.close(false);
        // The file was rewritten without the damage: it opens clean.
        let (store, rec) = QueueStore::open_in(&d, u64::MAX).unwrap();
        assert!(rec.damage.is_none());
        assert_eq!(rec.items.len(), 9);
        store.close(false);
        // Truncation mid-record is damage too: the rest is kept, the tail cut.
        let len = fs::metadata(&path).unwrap().len();
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        let (_s, rec) = QueueStore::open_in(&d, u64::MAX).unwrap();
        assert_eq!(seqs(&rec.items), [1, 2, 3, 4, 5, 6, 8, 9]);
        assert!(rec.damage.is_some());
    }

    #[test]
    fn a_record_found_where_two_search_windows_meet_is_kept() {
        // Junk from byte 0 up to just before the end of the first search
        // window (which starts at byte 1), then a record straddling it.
        let d = dir();
        let mut bytes = vec![0xEEu8; 256 * 1024 - 9];
        encode_item(7, "/api/events", b"{\"n\":7}", &mut bytes);
        fs::write(d.join("queue.bin"), &bytes).unwrap();
        let (store, rec) = QueueStore::open_in(&d, u64::MAX).unwrap();
        assert_eq!(seqs(&rec.items), [7]);
        assert_eq!(rec.damaged_bytes, 256 * 1024 - 9);
        store.close(false);
    }

    /// What a killed process leaves: its records, one torn mid-copy, then
    /// the zeros of the window's allocated space; and a done marker an
    /// adopter appended after them.
    #[test]
    fn zeros_are_free_space_not_damage_and_the_opener_cuts_them_off() {
        let d = dir();
        let mut bytes = items(3);
        let torn = codec::test_item(4);
        bytes.extend_from_slice(&torn[..torn.len() - 3]);
        bytes.resize(bytes.len() + 3 + 100_000, 0);
        encode_done(2, 2, &mut bytes);
        bytes.resize(bytes.len() + 50_000, 0);
        fs::write(d.join("queue.bin"), &bytes).unwrap();
        let (store, rec) = QueueStore::open_in(&d, u64::MAX).unwrap();
        assert_eq!(
            seqs(&rec.items),
            [1, 3],
            "the done marker after the zeros counts"
        );
        assert_eq!(
            rec.damaged_bytes,
            torn.len() as u64 - 3,
            "the torn record is damage; the zeros after it are not"
        );
        store.close(false);
        let (store, rec) = QueueStore::open_in(&d, u64::MAX).unwrap();
        assert!(rec.damage.is_none(), "{:?}", rec.damage);
        assert_eq!(seqs(&rec.items), [1, 3]);
        store.close(false);
        // Only records are left: no zeros, no torn bytes.
        let left = fs::read(queue_file(&d)).unwrap();
        let expected: Vec<u8> = [1u64, 3]
            .iter()
            .flat_map(|&s| codec::test_item(s))
            .collect();
        assert_eq!(left, expected);
        // A tail of nothing but zeros is cut without a report.
        let mut bytes = items(2);
        bytes.resize(bytes.len() + 70_000, 0);
        fs::write(queue_file(&d), &bytes).unwrap();
        let (store, rec) = QueueStore::open_in(&d, u64::MAX).unwrap();
        assert!(rec.damage.is_none());
        assert_eq!(seqs(&rec.items), [1, 2]);
        assert_eq!(
            fs::metadata(queue_file(&d)).unwrap().len(),
            items(2).len() as u64
        );
        store.close(false);
    }

    /// Byte range of item `seq`'s record in `bytes` (records of `items`).
    fn record_span(bytes: &[u8], seq: u64) -> (usize, usize) {
        let mut at = 0;
        for s in 1.. {
            let len = 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            if s == seq {
                return (at, at + len);
            }
            at += len;
        }
        unreachable!()
    }

    /// 60 event-sized records; each kind of damage at 24 places. Whatever
    /// the damage did not touch is read; what it did is counted as corrupt.
    #[test]
    fn damage_of_each_kind_costs_only_the_records_it_touches() {
        let mut clean = Vec::new();
        for seq in 1..=60u64 {
            let body = format!(
                "{{\"event_name\":\"e{seq}\",\"custom_properties\":{{\"team\":[\"a\"]}},\"pad\":\"{}\"}}",
                "x".repeat(200 + seq as usize * 7 % 90)
            );
            encode_item(seq, "/api/events", body.as_bytes(), &mut clean);
        }
        let spans: Vec<(usize, usize)> = (1..=60).map(|s| record_span(&clean, s)).collect();
        // The records (seqs) that overlap the byte range [from, to).
        let touched = |from: usize, to: usize| -> Vec<u64> {
            (1..=60u64)
                .filter(|&s| {
                    let (a, b) = spans[s as usize - 1];
                    a < to && from < b
                })
                .collect()
        };
        // The record that byte `at` falls strictly inside (and that starts
        // before `copy_from`, when a copy from there follows).
        let strictly_inside = |at: usize, copy_from: Option<usize>| -> Vec<u64> {
            (1..=60u64)
                .filter(|&s| {
                    let (a, b) = spans[s as usize - 1];
                    a < at && at < b && copy_from.is_none_or(|from| a < from)
                })
                .collect()
        };
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let mut salvaged_by_kind = Vec::new();
        for kind in ["flip", "insert", "truncate", "duplicate"] {
            let mut salvaged = Vec::new();
            for _ in 0..24 {
                let at = next(clean.len());
                let (bytes, lost): (Vec<u8>, Vec<u64>) = match kind {
                    "flip" => {
                        let mut b = clean.clone();
                        b[at] ^= 1 << next(8);
                        (b, touched(at, at + 1))
                    }
                    "insert" => {
                        let junk: Vec<u8> = (0..1 + next(300)).map(|_| next(256) as u8).collect();
                        let mut b = clean[..at].to_vec();
                        b.extend_from_slice(&junk);
                        b.extend_from_slice(&clean[at..]);
                        // Only a record the junk landed inside is split.
                        (b, strictly_inside(at, None))
                    }
                    "truncate" => (clean[..at].to_vec(), touched(at, clean.len())),
                    _ => {
                        let from = next(clean.len());
                        let to = (from + 1 + next(2000)).min(clean.len());
                        let mut b = clean[..to].to_vec();
                        b.extend_from_slice(&clean[from..]);
                        // The record cut at `to` is whole again in the copy,
                        // unless the copy starts inside it too.
                        (b, strictly_inside(to, Some(from)))
                    }
                };
                let d = dir();
                fs::write(d.join("queue.bin"), &bytes).unwrap();
                let (store, rec) = QueueStore::open_in(&d, u64::MAX).unwrap();
                let got = seqs(&rec.items);
                for seq in 1..=60u64 {
                    if !lost.contains(&seq) {
                        assert!(
                            got.contains(&seq),
                            "{kind} at {at}: record {seq} was untouched but lost"
                        );
                    }
                }
                assert!(
                    got.windows(2).all(|w| w[0] < w[1]),
                    "{kind}: in order, once each"
                );
                if bytes != clean && kind != "duplicate" {
                    assert!(
                        rec.damaged_bytes > 0 || bytes.len() < clean.len(),
                        "{kind} at {at}: counted"
                    );
                }
                salvaged.push(got.len());
                store.close(false);
            }
            salvaged_by_kind.push((
                kind,
                salvaged.iter().min().copied(),
                salvaged.iter().sum::<usize>() / 24,
            ));
        }
        // Shown with --nocapture: the events salvaged of 60 (worst, mean).
        eprintln!("salvaged of 60 (kind, worst, mean): {salvaged_by_kind:?}");
    }

    #[test]
    fn a_second_opener_gets_its_own_segment_and_takes_over_the_first_once_it_is_gone() {
        let d = dir();
        let (first, _) = QueueStore::open_in(&d, u64::MAX).unwrap();
        first.append(&items(3), true).unwrap();
        let (second, rec) = QueueStore::open_in(&d, u64::MAX).unwrap();
        assert!(rec.items.is_empty(), "the first one's segment is alive");
        assert_ne!(first.name(), second.name());
        second.close(true);
        first.close(false);
        let (third, rec) = QueueStore::open_in(&d, u64::MAX).unwrap();
        assert_eq!(third.name(), first.name(), "taken over, not copied");
        assert_eq!(seqs(&rec.items), [1, 2, 3]);
        assert_eq!(
            segments::stems(&d).unwrap().len(),
            1,
            "the empty one was removed"
        );
        third.close(false);
    }

    #[test]
    fn an_orphan_is_read_item_by_item_without_its_done_ones() {
        let d = dir();
        ten_with_a_hole(&d);
        let stem = segments::stems(&d).unwrap().pop_first().unwrap();
        let segment = Segment::claim(&d, &stem).unwrap().expect("nobody holds it");
        assert!(Segment::claim(&d, &stem).unwrap().is_none(), "held once");
        let mut got = Vec::new();
        let damaged = read_orphan(&segment, |i| {
            got.push(i.seq);
            true
        })
        .unwrap();
        assert_eq!((got, damaged), (vec![1, 2, 3, 4, 5, 8, 9, 10], 0));
        segment.remove();
        assert!(segments::stems(&d).unwrap().is_empty());
    }

    #[test]
    fn the_running_reader_resyncs_past_a_torn_record_too() {
        let d = dir();
        let (store, _) = QueueStore::open_in(&d, 0).unwrap();
        // A record torn part-way (as a failed write once left), then the
        // same records again whole.
        let whole = items(6);
        let (_, end3) = record_span(&whole, 3);
        let mut bytes = whole[..end3 + 5].to_vec();
        bytes.extend_from_slice(&whole[end3..]);
        store.append(&bytes, true).unwrap();
        let found = store
            .read_spilled(&[1, 2, 3, 4, 5, 6], |end| end, |visit| visit(&[]))
            .unwrap();
        assert_eq!(seqs(&found), [1, 2, 3, 4, 5, 6]);
        store.close(false);
    }

    fn seqs(items: &[StoredItem]) -> Vec<u64> {
        items.iter().map(|i| i.seq).collect()
    }

    /// Items 1..=10 with bodies of 7 bytes, 6 and 7 done.
    fn ten_with_a_hole(d: &Path) {
        let (store, _) = QueueStore::open_in(d, u64::MAX).unwrap();
        let mut bytes = items(10);
        encode_done(6, 7, &mut bytes);
        store.append(&bytes, true).unwrap();
        store.close(false);
    }

    #[test]
    fn past_the_head_budget_items_are_references_read_back_by_cursor() {
        let d = dir();
        ten_with_a_hole(&d);
        // Bodies `{"n":1}` are 7 bytes: a 15-byte head holds two items.
        let (store, rec) = QueueStore::open_in(&d, 15).unwrap();
        assert_eq!(seqs(&rec.items), [1, 2]);
        let spilled: Vec<u64> = rec.spilled.iter().map(|r| r.seq()).collect();
        assert_eq!(spilled, [3, 4, 5, 8, 9, 10]);
        assert_eq!(rec.spilled[0].body_len(), 7);
        assert_eq!(
            rec.spilled[0].record_len(),
            item_record_len("/api/events", b"{\"n\":3}")
        );

        let none = |_: &mut dyn FnMut(&[u8])| {};
        let got = store.read_spilled(&[3, 4], |end| end, none).unwrap();
        assert_eq!(seqs(&got), [3, 4]);
        assert_eq!(got[1].body, b"{\"n\":4}");
        // A repeat of an earlier item and a new one are appended; item 12 is
        // still waiting in memory. The cursor went past 3 and 4 already.
        let mut more = Vec::new();
        encode_item(2, "/api/events", b"{\"n\":2}", &mut more);
        encode_item(11, "/api/events", b"{\"n\":11}", &mut more);
        store.append(&more, true).unwrap();
        let mut pending = Vec::new();
        encode_item(12, "/api/events", b"{\"n\":12}", &mut pending);
        let got = store
            .read_spilled(&[5, 8, 9, 10, 11, 12], |end| end, |visit| visit(&pending))
            .unwrap();
        assert_eq!(seqs(&got), [5, 8, 9, 10, 11, 12]);
        assert_eq!(got[5].body, b"{\"n\":12}");
        // One that is nowhere is left out; the ones after it are still found.
        let got = store.read_spilled(
            &[13, 14],
            |end| end,
            |visit| {
                let mut p = Vec::new();
                encode_item(14, "/api/events", b"{}", &mut p);
                visit(&p)
            },
        );
        assert_eq!(seqs(&got.unwrap()), [14]);
        store.close(false);
    }

    #[test]
    fn a_compaction_copies_the_spilled_records_but_not_the_done_ones() {
        let d = dir();
        ten_with_a_hole(&d);
        let (store, rec) = QueueStore::open_in(&d, 15).unwrap();
        let range = spill_range(rec.spilled.first().zip(rec.spilled.last()));
        assert_eq!(range, Some((3, 10)));
        store
            .rewrite_swap(copy_of_ten(&store, &rec), || None)
            .unwrap();
        // The cursor now points just past the head in the new file.
        let got = store.read_spilled(&[3, 8], |end| end, |_| {}).unwrap();
        assert_eq!(seqs(&got), [3, 8]);
        store.close(false);
        let before = fs::metadata(queue_file(&d)).unwrap().len();
        let (_s, rec) = QueueStore::open_in(&d, u64::MAX).unwrap();
        assert_eq!(seqs(&rec.items), [1, 2, 3, 4, 5, 8, 9, 10]);
        let live_len: u64 = rec
            .items
            .iter()
            .map(|i| item_record_len(&i.path, &i.body))
            .sum();
        assert_eq!(before, live_len, "nothing but the live records");
    }

    /// A compaction's copy (step one) of `ten_with_a_hole` opened with a
    /// 15-byte head: items 1 and 2 in memory, 3..=10 spilled.
    fn copy_of_ten(store: &QueueStore, rec: &Recovered) -> Rewrite {
        let copied = store.rewrite_copy(rec.snapshot());
        copied.unwrap().expect("the store is open")
    }

    #[test]
    fn read_back_and_writes_go_on_while_a_compaction_copies_and_all_are_kept() {
        let d = dir();
        ten_with_a_hole(&d);
        let (store, rec) = QueueStore::open_in(&d, 15).unwrap();
        let copy = copy_of_ten(&store, &rec);
        // Between the copy and the swap the file is free: read-back takes
        // 3 and 4, and records are appended (item 11, a done marker for 3).
        let now = Some(std::time::Instant::now());
        assert!(store.tail_by(now).is_some(), "the copy let go of the file");
        let got = store.read_spilled(&[3, 4], |end| end, |_| {}).unwrap();
        assert_eq!(seqs(&got), [3, 4]);
        let mut more = codec::test_item(11);
        encode_done(3, 3, &mut more);
        store.append(&more, true).unwrap();
        // Records that died meanwhile are in the new file: they still count
        // towards the next compaction.
        assert!(store.add_dead(COMPACT_AFTER_DEAD_BYTES, 0));
        store.rewrite_swap(copy, || None).unwrap();
        assert!(store.add_dead(1, 0), "the bytes that died during the copy");
        // The rest is read back from the new file, and what came meanwhile
        // is in it.
        let got = store.read_spilled(&[4, 5, 11], |end| end, |_| {}).unwrap();
        assert_eq!(seqs(&got), [4, 5, 11]);
        store.close(false);
        let (_s, rec) = QueueStore::open_in(&d, u64::MAX).unwrap();
        assert_eq!(seqs(&rec.items), [1, 2, 4, 5, 8, 9, 10, 11]);
    }

    #[test]
    fn a_store_closed_while_a_compaction_copies_keeps_its_file() {
        let d = dir();
        ten_with_a_hole(&d);
        let (store, rec) = QueueStore::open_in(&d, 15).unwrap();
        let before = fs::read(queue_file(&d)).unwrap();
        let copy = copy_of_ten(&store, &rec);
        store.close(false);
        store.rewrite_swap(copy, || None).unwrap();
        assert_eq!(fs::read(queue_file(&d)).unwrap(), before);
        let tmp = queue_file(&d).with_extension("tmp");
        assert!(!tmp.exists(), "the copy is removed");
        assert!(store.rewrite_copy(|_, end| (None, end)).unwrap().is_none());
    }

    #[cfg_attr(
        windows,
        ignore = "an open file's name stays until it is closed: the copy's open cannot be made to fail so"
    )]
    #[test]
    fn a_compaction_that_fails_leaves_no_part_written_copy() {
        let d = dir();
        ten_with_a_hole(&d);
        let (store, rec) = QueueStore::open_in(&d, 15).unwrap();
        let path = queue_file(&d);
        // The copy cannot open the queue file by its name: it fails after
        // the temp file was made and the head written to it.
        fs::remove_file(&path).unwrap();
        assert!(store.rewrite(rec.snapshot(), || None).is_err());
        assert!(!path.with_extension("tmp").exists(), "the copy is removed");
    }

    #[test]
    fn a_fully_done_file_is_emptied_on_open() {
        let d = dir();
        let (store, _) = QueueStore::open_in(&d, u64::MAX).unwrap();
        store.append(&items(3), true).unwrap();
        let mut done = Vec::new();
        encode_done(1, 3, &mut done);
        store.append(&done, true).unwrap();
        store.close(false);
        let (store, rec) = QueueStore::open_in(&d, u64::MAX).unwrap();
        assert!(rec.items.is_empty());
        assert_eq!(rec.last_seq, 3);
        assert_eq!(fs::metadata(queue_file(&d)).unwrap().len(), 0);
        store.close(false);
    }
}
