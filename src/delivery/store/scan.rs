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
/// where a whole record checks out. Zeros are free space, never damage: the
/// allocated tail of a file whose process was killed (see
/// [`window`](crate::delivery::window)), with perhaps a done marker an
/// adopter appended after it. Returns the damaged byte ranges and the end of
/// the data (after the last record or damage; zeros after it are free).
pub(super) fn scan(
    file: &mut File,
    start: u64,
    visit: impl FnMut(u64, u64, &[u8]),
) -> io::Result<(Vec<(u64, u64)>, u64)> {
    scan_to(file, start, None, visit)
}

/// As [`scan`], up to `end` (the file's end when None).
pub(super) fn scan_to(
    file: &mut File,
    start: u64,
    end: Option<u64>,
    mut visit: impl FnMut(u64, u64, &[u8]),
) -> io::Result<(Vec<(u64, u64)>, u64)> {
    scan_while(file, start, end, |at, size, payload| {
        visit(at, size, payload);
        true
    })
}

/// As [`scan_to`], stopping after the first record for which `visit`
/// returns false (the end of the data is then the end of that record).
pub(super) fn scan_while(
    file: &mut File,
    start: u64,
    end: Option<u64>,
    mut visit: impl FnMut(u64, u64, &[u8]) -> bool,
) -> io::Result<(Vec<(u64, u64)>, u64)> {
    let file_len = file.metadata()?.len();
    let len = end.map_or(file_len, |e| e.min(file_len));
    let (mut pos, mut damaged, mut payload) = (start, Vec::new(), Vec::new());
    let mut data_end = start;
    while pos < len {
        file.seek(SeekFrom::Start(pos))?;
        let mut reader = BufReader::with_capacity(256 * 1024, (&mut *file).take(len - pos));
        while let Some((size, _)) = read_record(&mut reader, &mut payload)? {
            let more = visit(pos, size, &payload);
            pos += size;
            data_end = pos;
            if !more {
                return Ok((damaged, data_end));
            }
        }
        if pos < len {
            let zeros_end = skip_zeros(file, pos, len)?;
            if zeros_end > pos {
                pos = zeros_end;
                continue;
            }
            let next = resync(file, pos + 1, len)?;
            let damage_end = trim_zeros(file, pos, next)?;
            damaged.push((pos, damage_end));
            data_end = damage_end;
            pos = next;
        }
    }
    Ok((damaged, data_end))
}

/// The first offset from `from` on (before `len`) that is not a zero byte,
/// or `len`; `from` itself when a record cannot start there with a zero
/// length word (fewer than four zeros).
fn skip_zeros(file: &mut File, from: u64, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = from;
    while at < len {
        let n = buf.len().min((len - at) as usize);
        file.seek(SeekFrom::Start(at))?;
        file.read_exact(&mut buf[..n])?;
        match buf[..n].iter().position(|&b| b != 0) {
            Some(i) => {
                at += i as u64;
                break;
            }
            None => at += n as u64,
        }
    }
    Ok(if at - from >= 4 || at == len {
        at
    } else {
        from
    })
}

/// `to`, moved back past the zero bytes that end `from..to`.
fn trim_zeros(file: &mut File, from: u64, to: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut end = to;
    while end > from {
        let n = buf.len().min((end - from) as usize);
        file.seek(SeekFrom::Start(end - n as u64))?;
        file.read_exact(&mut buf[..n])?;
        match buf[..n].iter().rposition(|&b| b != 0) {
            Some(i) => return Ok(end - n as u64 + i as u64 + 1),
            None => end -= n as u64,
        }
    }
    Ok(from)
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
