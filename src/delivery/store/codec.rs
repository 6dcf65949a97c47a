//! The record codec: how a record is framed (`[u32 LE payload length][u32
//! LE CRC-32 of payload][payload]`), encoded and parsed, and whether bytes
//! hold an intact one. Knows nothing of files.

use std::io::Read;

/// A record larger than this is damage, not data (items are at most a few MiB).
pub(super) const MAX_RECORD: u32 = 64 * 1024 * 1024;

/// Record framing plus the fixed part of an item payload.
pub(super) const ITEM_OVERHEAD: u64 = 8 + 11;

/// The size of a done record (crate-visible only: cbindgen would put a
/// `pub` constant in the C header).
pub(crate) const DONE_RECORD_LEN: usize = 8 + 17;

pub fn encode_item(seq: u64, path: &str, body: &[u8], out: &mut Vec<u8>) {
    append_record(out, item_record_len(path, body) as usize, |space| {
        write_item(seq, path, body, space)
    });
}

/// Frames an item record into `space`, exactly [`item_record_len`] bytes.
pub fn write_item(seq: u64, path: &str, body: &[u8], space: &mut [u8]) {
    let parts: [&[u8]; 5] = [
        b"I",
        &seq.to_le_bytes(),
        &(path.len() as u16).to_le_bytes(),
        path.as_bytes(),
        body,
    ];
    write_framed(&parts, space);
}

pub fn encode_done(from: u64, to: u64, out: &mut Vec<u8>) {
    append_record(out, DONE_RECORD_LEN, |space| write_done(from, to, space));
}

/// Frames a done record into `space`, exactly [`DONE_RECORD_LEN`] bytes.
pub fn write_done(from: u64, to: u64, space: &mut [u8]) {
    write_framed(&[b"D", &from.to_le_bytes(), &to.to_le_bytes()], space);
}

/// The size on disk of an item record.
pub fn item_record_len(path: &str, body: &[u8]) -> u64 {
    ITEM_OVERHEAD + (path.len() + body.len()) as u64
}

pub(super) fn frame(payload: &[u8], out: &mut Vec<u8>) {
    append_record(out, 8 + payload.len(), |space| {
        write_framed(&[payload], space)
    });
}

/// Appends a record of `len` bytes that `write` frames in place.
pub fn append_record(out: &mut Vec<u8>, len: usize, write: impl FnOnce(&mut [u8])) {
    let start = out.len();
    out.resize(start + len, 0);
    write(&mut out[start..]);
}

/// Frames the payload given in `parts` into `space` (exactly 8 bytes more
/// than they hold), front to back: the checksum is taken from the parts
/// first, so the header goes in before the payload, as in a copy of a
/// framed record (a write cut short fails its checksum). The caller's track
/// path thus frames its record straight into the queue file's mapped tail.
fn write_framed(parts: &[&[u8]], space: &mut [u8]) {
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0;
    for part in parts {
        crc.update(part);
        len += part.len();
    }
    space[..4].copy_from_slice(&(len as u32).to_le_bytes());
    space[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
    let mut at = 8;
    for part in parts {
        space[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
}

pub(super) fn u64_at(payload: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        payload.get(at..at + 8)?.try_into().ok()?,
    ))
}

/// A record's payload, parsed (borrowing from it).
pub enum Record<'a> {
    Item {
        seq: u64,
        path: &'a str,
        body: &'a [u8],
    },
    Done(u64, u64),
}

pub(super) fn parse(payload: &[u8]) -> Option<Record<'_>> {
    match payload.first()? {
        b'I' => {
            let len = u16::from_le_bytes(payload.get(9..11)?.try_into().ok()?) as usize;
            Some(Record::Item {
                seq: u64_at(payload, 1)?,
                path: std::str::from_utf8(payload.get(11..11 + len)?).ok()?,
                body: payload.get(11 + len..)?,
            })
        }
        b'D' => Some(Record::Done(u64_at(payload, 1)?, u64_at(payload, 9)?)),
        _ => None,
    }
}

/// Reads the next intact record into `payload`; returns its size on disk and
/// its parse. None at the end of the data or at damage (a torn, oversized,
/// mis-checksummed or unknown record).
pub(super) fn read_record<'p>(
    r: &mut impl Read,
    payload: &'p mut Vec<u8>,
) -> std::io::Result<Option<(u64, Record<'p>)>> {
    let mut header = [0u8; 8];
    if read_exact_or_eof(r, &mut header)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > MAX_RECORD {
        return Ok(None);
    }
    // Read as far as the data goes, not allocated up front: a damaged length
    // near MAX_RECORD must not cost that much memory (found by fuzzing).
    payload.clear();
    let got = r.take(u64::from(len)).read_to_end(payload)?;
    if got < len as usize || crc32fast::hash(payload) != crc {
        return Ok(None);
    }
    Ok(parse(payload).map(|record| (8 + u64::from(len), record)))
}

/// Whether `bytes` (a whole framed record) has the right checksum and parses.
pub(super) fn checks_out(bytes: &[u8]) -> bool {
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let payload = &bytes[8..];
    crc32fast::hash(payload) == crc && parse(payload).is_some()
}

/// The size of the intact record at the start of `bytes`, if one is there
/// whole (records in memory end at the first that is not).
pub fn intact_record_at(bytes: &[u8]) -> Option<usize> {
    let size = framed_size(bytes)?;
    if size == 8 || size > 8 + MAX_RECORD as usize {
        return None;
    }
    let record = bytes.get(..size)?;
    checks_out(record).then_some(size)
}

/// The size a record starting at `bytes` says it has, framing included
/// (from its length word alone: nothing is checked).
pub fn framed_size(bytes: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    usize::try_from(len).ok()?.checked_add(8)
}

/// Each whole record at the start of `bytes` (framing included), parsed, in
/// order, up to the first that is not whole and intact.
pub fn records(mut bytes: &[u8]) -> impl Iterator<Item = (&[u8], Record<'_>)> {
    std::iter::from_fn(move || {
        let size = intact_record_at(bytes)?;
        let (frame, rest) = bytes.split_at(size);
        bytes = rest;
        Some((frame, parse(&frame[8..])?))
    })
}

/// Fills `buf`; true at a clean or torn end of file.
pub(super) fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Ok(true),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// For tests: the record of an event item with seq `seq` and a small body.
#[cfg(test)]
pub fn test_item(seq: u64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_item(
        seq,
        "/api/events",
        format!("{{\"n\":{seq}}}").as_bytes(),
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_their_payloads_framed() {
        let (seq, path, body) = (0x0102_0304_0506_0708_u64, "/api/events", br#"{"n":1}"#);
        let payload = [
            &b"I"[..],
            &seq.to_le_bytes(),
            &(path.len() as u16).to_le_bytes(),
            path.as_bytes(),
            body,
        ]
        .concat();
        // The framing spelled out, not through the code under test.
        let mut framed = (payload.len() as u32).to_le_bytes().to_vec();
        framed.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        framed.extend_from_slice(&payload);
        let mut written = vec![0xAA; item_record_len(path, body) as usize];
        write_item(seq, path, body, &mut written);
        assert_eq!(written, framed);
        let mut appended = b"before".to_vec();
        encode_item(seq, path, body, &mut appended);
        assert_eq!(&appended[6..], &framed[..]);
        let mut by_frame = Vec::new();
        frame(&payload, &mut by_frame);
        assert_eq!(by_frame, framed);
        let done = [&b"D"[..], &1u64.to_le_bytes(), &2u64.to_le_bytes()].concat();
        let mut encoded = Vec::new();
        encode_done(1, 2, &mut encoded);
        assert_eq!(encoded.len(), DONE_RECORD_LEN);
        assert_eq!(&encoded[8..], &done[..]);
        assert_eq!(&encoded[..4], &(done.len() as u32).to_le_bytes());
        assert_eq!(&encoded[4..8], &crc32fast::hash(&done).to_le_bytes());
    }
}
