//! Reading records from a file: in order, resuming past damage at the next
//! offset where an intact record starts (resync), and picking wanted items
//! out of a stream of records.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use super::codec::{checks_out, read_record, Record, MAX_RECORD};
use super::StoredItem;

/// Finds the items `wanted` (ascending seqs) in records read from `r`, in
/// order, starting at `wanted[*next]`. A record past the wanted seq means
/// the wanted one is not in the stream: it is skipped (the caller counts it).
/// Returns the bytes consumed up to the last record looked at.
pub(super) fn take_wanted(
    r: &mut impl Read,
    wanted: &[u64],
    next: &mut usize,
    found: &mut Vec<StoredItem>,
) -> std::io::Result<u64> {
    let mut payload = Vec::new();
    let mut consumed = 0u64;
    while *next < wanted.len() {
        let Some((size, record)) = read_record(r, &mut payload)? else {
            break;
        };
        consumed += size;
        want(Some(record), wanted, &mut *next, found);
    }
    Ok(consumed)
}

/// Takes `record` into `found` when it is the item `wanted[*next]`; an item
/// past a wanted seq means that one is not there (skipped, for the caller
/// to count).
pub(super) fn want(
    record: Option<Record<'_>>,
    wanted: &[u64],
    next: &mut usize,
    found: &mut Vec<StoredItem>,
) {
    let Some(Record::Item { seq, path, body }) = record else {
        return;
    };
    while *next < wanted.len() && wanted[*next] < seq {
        *next += 1;
    }
    if wanted.get(*next) == Some(&seq) {
        found.push(StoredItem {
            seq,
            path: path.to_string(),
            body: body.to_vec(),
        });
        *next += 1;
    }
}

/// Reads every intact record of `file` from `start` to its end, in order,
/// handing each to `visit` with its offset, size on disk and payload (which
/// [`parse`] accepts). Damage
/// (a torn, oversized, mis-checksummed or unknown record, or bytes that are
/// no record at all) costs only itself: reading resumes at the next offset
/// where a whole record checks out. Returns the damaged byte ranges.
pub(super) fn scan(
    file: &mut File,
    start: u64,
    mut visit: impl FnMut(u64, u64, &[u8]),
) -> io::Result<Vec<(u64, u64)>> {
    scan_while(file, start, |at, size, payload| {
        visit(at, size, payload);
        true
    })
    .map(|(damaged, _)| damaged)
}

/// As [`scan`], stopping after the first record for which `visit` returns
/// false. Also returns the offset after the last record visited.
pub(super) fn scan_while(
    file: &mut File,
    start: u64,
    mut visit: impl FnMut(u64, u64, &[u8]) -> bool,
) -> io::Result<(Vec<(u64, u64)>, u64)> {
    let len = file.metadata()?.len();
    let (mut pos, mut damaged, mut payload) = (start, Vec::new(), Vec::new());
    while pos < len {
        file.seek(SeekFrom::Start(pos))?;
        let mut reader = BufReader::with_capacity(256 * 1024, (&mut *file).take(len - pos));
        while let Some((size, _)) = read_record(&mut reader, &mut payload)? {
            let more = visit(pos, size, &payload);
            pos += size;
            if !more {
                return Ok((damaged, pos));
            }
        }
        if pos < len {
            let next = resync(file, pos + 1, len)?;
            damaged.push((pos, next));
            pos = next;
        }
    }
    Ok((damaged, pos))
}

/// The first offset from `from` on where an intact record starts, or `len`.
/// A window of the file is searched at a time; a candidate must look like one
/// of our records (a plausible length, an `I` payload naming an `/api/` path
/// or a 17-byte `D` payload) before its checksum is computed.
pub(super) fn resync(file: &mut File, from: u64, len: u64) -> io::Result<u64> {
    const WINDOW: u64 = 256 * 1024;
    let mut buf = Vec::new();
    let mut base = from;
    while base < len {
        let n = WINDOW.min(len - base);
        buf.resize(n as usize, 0);
        file.seek(SeekFrom::Start(base))?;
        file.read_exact(&mut buf)?;
        // Each candidate needs PLAUSIBLE_HEAD bytes in view: windows overlap
        // by that much, except the last.
        let end = if base + n == len {
            buf.len()
        } else {
            buf.len() - PLAUSIBLE_HEAD
        };
        for i in 0..end {
            let at = base + i as u64;
            let Some(rlen) = plausible(&buf[i..], len - at) else {
                continue;
            };
            let intact = match buf.get(i..i + 8 + rlen as usize) {
                Some(bytes) => checks_out(bytes),
                None => record_checks_out(file, at, rlen)?,
            };
            if intact {
                return Ok(at);
            }
        }
        base += end as u64;
    }
    Ok(len)
}

/// Bytes a candidate needs for [`plausible`]: framing, an item's fixed part
/// and the start of its path.
pub(super) const PLAUSIBLE_HEAD: usize = 8 + 11 + 5;

/// The payload length, when `head` (the bytes at a candidate offset, with
/// `remaining` bytes in the file from there) looks like the start of a record.
pub(super) fn plausible(head: &[u8], remaining: u64) -> Option<u64> {
    let rlen = u64::from(u32::from_le_bytes(head.get(..4)?.try_into().ok()?));
    if rlen == 0 || rlen > u64::from(MAX_RECORD) || 8 + rlen > remaining {
        return None;
    }
    let looks = match *head.get(8)? {
        b'D' => rlen == 17,
        b'I' => {
            let plen = u64::from(u16::from_le_bytes(head.get(17..19)?.try_into().ok()?));
            rlen >= 11 + plen && head.get(19..24)? == b"/api/"
        }
        _ => false,
    };
    looks.then_some(rlen)
}

pub(super) fn record_checks_out(file: &mut File, at: u64, rlen: u64) -> io::Result<bool> {
    let mut bytes = vec![0u8; 8 + rlen as usize];
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(&mut bytes)?;
    Ok(checks_out(&bytes))
}
