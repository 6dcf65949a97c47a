//! The journal: what makes a call's record survive its process's death the
//! moment the call returns, with no system call on the caller's thread.
//!
//! Each segment has a `<stem>.jnl` file beside its queue file: two halves of
//! [`HALF`] bytes, space really allocated when it is made (never a sparse
//! file: a write into a mapped page the disk cannot provide would raise
//! `SIGBUS`) and memory-mapped shared, so a record copied into it is in the
//! kernel's page cache as soon as the copy ends. The caller frames its record
//! into the active half under the queue lock; the writer thread swaps the
//! halves, appends the full one's records to the queue file, and clears it.
//!
//! A half: `[u64 LE generation][records…][u32 0]`. The records are the queue
//! file's own (see [`store`](super::store)); a zero length ends them. A
//! record is written after the end marker that follows it, so a copy cut
//! short by a kill leaves a record whose checksum fails, and readers stop
//! there: it belongs to a call that never returned.
//!
//! Whoever opens a segment next (its next owner, or an adopter) first folds
//! the journal into the queue file ([`fold`]): both halves' records, the
//! older generation first. A record that had already been appended is then
//! there twice, which readers already skip (a repeat of a seq they passed;
//! done markers are idempotent).

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::platform::files;

/// One half's size: what a burst can queue before records wait in memory
/// until the writer has swapped the halves.
pub const HALF: usize = 512 * 1024;
const HEADER: usize = 8;
const END: [u8; 4] = [0; 4];

/// One half of the journal, mapped.
pub struct Half {
    map: files::Mapped,
    /// Bytes in use, header included.
    len: usize,
}

impl std::fmt::Debug for Half {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Half({} bytes of records)", self.len - HEADER)
    }
}

impl Half {
    /// Starts the half afresh as generation `generation` (its old records,
    /// already in the queue file, are hidden behind the end marker).
    pub fn activate(&mut self, generation: u64) {
        let m = self.map.bytes_mut();
        m[HEADER..HEADER + END.len()].copy_from_slice(&END);
        m[..HEADER].copy_from_slice(&generation.to_le_bytes());
        self.len = HEADER;
    }

    /// Hides the half's records (they are in the queue file now). The
    /// marker reaches the disk with the kernel's writeback, not at once: a
    /// power loss before that can bring the records back, to be sent again
    /// with their insert_id (a process's death cannot: the page cache
    /// outlives it).
    pub fn clear(&mut self) {
        self.map.bytes_mut()[HEADER..HEADER + END.len()].copy_from_slice(&END);
        self.len = HEADER;
    }

    /// Copies one framed record in; false (nothing written) when it does
    /// not fit.
    #[cfg(test)]
    pub fn put(&mut self, record: &[u8]) -> bool {
        self.reserve(record.len())
            .map(|space| space.copy_from_slice(record))
            .is_some()
    }

    /// The space for a record of `len` bytes at the end of the half, for
    /// the caller to fill at once, front to back, header first (as a copy
    /// of a framed record does); `None` when it does not fit.
    pub fn reserve(&mut self, len: usize) -> Option<&mut [u8]> {
        let (at, end) = (self.len, self.len + len);
        let m = self.map.bytes_mut();
        if end + END.len() > m.len() {
            return None;
        }
        // The end marker first: a copy cut short leaves a torn record
        // followed by nothing a reader would take.
        m[end..end + END.len()].copy_from_slice(&END);
        self.len = end;
        Some(&mut m[at..end])
    }

    /// The records written since the half was activated.
    pub fn records(&self) -> &[u8] {
        &self.map.bytes()[HEADER..self.len]
    }

    pub fn is_empty(&self) -> bool {
        self.len == HEADER
    }
}

/// Makes (or reuses) the journal at `path` and maps its two halves, both
/// empty, the first active as generation 1. Call [`fold`] first on a
/// journal that may hold records.
pub fn open(path: &Path) -> io::Result<(Half, Half)> {
    let file = files::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    files::allocate(&file, 2 * HALF as u64)?;
    let half = |i: usize| -> io::Result<Half> {
        Ok(Half {
            map: files::Mapped::new(&file, (i * HALF) as u64, HALF)?,
            len: HEADER,
        })
    };
    let (mut a, mut b) = (half(0)?, half(1)?);
    b.activate(0);
    a.activate(1);
    Ok((a, b))
}

/// The records the journal at `path` holds (none when there is no journal),
/// older half first, each half up to its end marker or first damaged
/// record; and empties the journal on disk. `append` must put the records
/// in the queue file durably before the journal is emptied: if it fails,
/// the journal is left as it was.
pub fn fold(path: &Path, append: impl FnOnce(&[u8]) -> io::Result<()>) -> io::Result<()> {
    let mut file = match files::options().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let mut halves: Vec<(u64, &[u8])> = bytes
        .chunks(HALF)
        .filter(|h| h.len() > HEADER)
        .map(|h| {
            let generation = u64::from_le_bytes(h[..HEADER].try_into().unwrap_or_default());
            (generation, &h[HEADER..])
        })
        .collect();
    halves.sort_by_key(|&(generation, _)| generation);
    let mut records = Vec::new();
    for (_, half) in halves {
        records.extend_from_slice(&half[..intact_prefix(half)]);
    }
    if records.is_empty() {
        return Ok(());
    }
    append(&records)?;
    for at in [0, HALF] {
        if bytes.len() >= at + HEADER + END.len() {
            file.seek(SeekFrom::Start((at + HEADER) as u64))?;
            file.write_all(&END)?;
        }
    }
    file.sync_data()
}

/// How many bytes at the start of `records` are whole records that check
/// out: a journal's records end at a zero length or at the first that does
/// not (torn by a kill mid-copy; nothing after it was ever written whole).
fn intact_prefix(records: &[u8]) -> usize {
    let mut at = 0;
    while let Some(size) = super::store::intact_record_at(&records[at..]) {
        at += size;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::store::encode_done;

    fn path() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("trodo-jnl-{}", crate::util::new_id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join("q.jnl")
    }

    fn record(seq: u64) -> Vec<u8> {
        crate::delivery::store::test_item(seq)
    }

    fn folded(path: &Path) -> Vec<u8> {
        let mut got = Vec::new();
        fold(path, |r| {
            got.extend_from_slice(r);
            Ok(())
        })
        .unwrap();
        got
    }

    #[test]
    fn records_come_back_older_half_first_and_only_once() {
        let p = path();
        let (mut a, mut b) = open(&p).unwrap();
        assert!(a.put(&record(1)) && a.put(&record(2)));
        b.activate(2);
        assert!(b.put(&record(3)));
        let mut done = Vec::new();
        encode_done(1, 1, &mut done);
        assert!(b.put(&done));
        drop((a, b)); // as a killed process leaves them
        let expected = [record(1), record(2), record(3), done].concat();
        assert_eq!(folded(&p), expected);
        assert_eq!(folded(&p), b"", "folding empties the journal");
    }

    #[test]
    fn a_record_torn_mid_copy_ends_its_half_and_a_cleared_half_is_empty() {
        let p = path();
        let (mut a, mut b) = open(&p).unwrap();
        assert!(a.put(&record(1)));
        // A copy cut short: the end marker and part of the record.
        let torn = record(2);
        let at = a.len;
        a.map.bytes_mut()[at + torn.len()..at + torn.len() + 4].copy_from_slice(&END);
        a.map.bytes_mut()[at..at + 10].copy_from_slice(&torn[..10]);
        b.activate(2);
        assert!(b.put(&record(7)));
        b.clear();
        drop((a, b));
        assert_eq!(folded(&p), record(1));
    }

    #[test]
    fn a_record_that_does_not_fit_is_refused_whole() {
        let p = path();
        let (mut a, _b) = open(&p).unwrap();
        let big = vec![0u8; HALF];
        assert!(!a.put(&big));
        assert!(a.is_empty());
        assert!(a.put(&record(1)));
        assert_eq!(a.records(), record(1));
    }
}
