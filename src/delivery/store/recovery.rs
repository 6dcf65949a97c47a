//! Recovery: what a queue file holds when it is opened (its own at start,
//! or another process's orphan), one rule for all: a repeat of a seq already
//! passed is skipped, done ranges apply wherever they stand, damage costs
//! only the records it touches. Also the copy a compaction makes of the
//! spilled part, by the same rules.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use super::codec::{encode_done, frame, item_record_len, parse, Record};
use super::scan::{scan, scan_to, scan_while};
use super::{storage, write_records_at, Recovered, SpillRef, StoredItem};
use crate::delivery::segments::Segment;
use crate::error::Result;
use crate::platform::files;

pub(super) fn in_ranges(ranges: &[(u64, u64)], seq: u64) -> bool {
    let idx = ranges.partition_point(|&(from, _)| from <= seq);
    idx > 0 && ranges[idx - 1].1 >= seq
}

/// Marks items `from..=to` of another process's segment done (they were
/// adopted), so that an adoption cut short is not repeated for them.
pub fn mark_orphan_done(segment: &Segment, from: u64, to: u64) -> io::Result<()> {
    let mut record = Vec::new();
    encode_done(from, to, &mut record);
    let mut file = files::options().write(true).open(segment.file("bin"))?;
    // At the file's very end: after its owner's allocated zeros, if any,
    // which readers pass over.
    let end = file.metadata()?.len();
    write_records_at(&mut file, end, &record, true)
}

/// Copies the item records with seqs in `first..=last` from `old` (from
/// `cursor` up to `end`, each seq once, none that `done` covers) to `out`.
pub(super) fn copy_spilled(
    old: &mut File,
    (cursor, end): (u64, u64),
    first: u64,
    last: u64,
    done: &[(u64, u64)],
    out: &mut impl Write,
) -> std::io::Result<()> {
    let mut frame_buf = Vec::new();
    let mut copied_through = first.saturating_sub(1);
    let mut written = Ok(());
    scan_to(old, cursor, Some(end), |_, _, payload| {
        let Some(Record::Item { seq, .. }) = parse(payload) else {
            return;
        };
        if written.is_ok() && seq > copied_through && seq <= last && !in_ranges(done, seq) {
            frame_buf.clear();
            frame(payload, &mut frame_buf);
            written = out.write_all(&frame_buf);
            copied_through = seq;
        }
    })?;
    written
}

pub(super) struct Loaded {
    pub(super) recovered: Recovered,
    /// The end of the data: after the last record or damage (the rest of
    /// the file, if any, is zeros).
    pub(super) data_end: u64,
    /// Byte ranges that held no intact record.
    pub(super) damaged: Vec<(u64, u64)>,
    /// Bytes of done item records.
    pub(super) dead: u64,
    pub(super) done: Vec<(u64, u64)>,
    pub(super) spill_cursor: u64,
}

/// Reads every intact record in one pass. Items are taken in full until
/// `head_bytes` of bodies, then only as references; which of them are done is
/// known at the end, when every done marker has been seen.
pub(super) fn read_all(file: &mut File, path: &Path, head_bytes: u64) -> Result<Loaded> {
    let io = |e| storage(path, "cannot be read", e);
    let mut head: Vec<StoredItem> = Vec::new();
    let mut head_body_bytes = 0u64;
    let mut spilled: Vec<SpillRef> = Vec::new();
    let mut spill_cursor = None;
    let mut done: Vec<(u64, u64)> = Vec::new();
    let (mut last_seq, mut last_item) = (0u64, 0u64);
    let (damaged, data_end) = scan(file, 0, |at, _size, payload| {
        let (seq, item_path, body) = match parse(payload) {
            Some(Record::Done(from, to)) => {
                last_seq = last_seq.max(to);
                done.push((from, to));
                return;
            }
            Some(Record::Item { seq, path, body }) => (seq, path, body),
            None => return, // scan hands over parsed records only
        };
        last_seq = last_seq.max(seq);
        if seq <= last_item {
            return; // a repeat (see the module doc)
        }
        last_item = seq;
        let fits = head.is_empty() || head_body_bytes + body.len() as u64 <= head_bytes;
        if spill_cursor.is_none() && fits {
            head_body_bytes += body.len() as u64;
            head.push(StoredItem {
                seq,
                path: item_path.to_string(),
                body: body.to_vec(),
            });
        } else {
            spill_cursor.get_or_insert(at);
            spilled.push(SpillRef {
                seq,
                body_len: body.len() as u32,
                path_len: item_path.len() as u16,
            });
        }
    })
    .map_err(io)?;
    let merged = merge_ranges(done);
    let mut dead = 0u64;
    head.retain(|i| {
        let gone = in_ranges(&merged, i.seq);
        dead += if gone {
            item_record_len(&i.path, &i.body)
        } else {
            0
        };
        !gone
    });
    spilled.retain(|r| {
        let gone = in_ranges(&merged, r.seq());
        dead += if gone { r.record_len() } else { 0 };
        !gone
    });
    Ok(Loaded {
        recovered: Recovered {
            items: head,
            spilled,
            last_seq,
            damage: None,
            damaged_bytes: 0,
            skipped: Vec::new(),
        },
        data_end,
        damaged,
        dead,
        done: merged,
        spill_cursor: spill_cursor.unwrap_or(data_end),
    })
}

/// Done ranges sorted and merged, for `in_ranges`.
pub fn merge_ranges(mut done: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    done.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(done.len());
    for (from, to) in done {
        match merged.last_mut() {
            Some(last) if from <= last.1.saturating_add(1) => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    merged
}

/// Hands each live item of another process's segment to `visit`, in order,
/// without holding more than one in memory: a first pass collects the done
/// ranges, a second visits the items they do not cover, until `visit`
/// returns false. Returns the bytes that held no intact record (damage),
/// which are skipped.
pub fn read_orphan(
    segment: &Segment,
    mut visit: impl FnMut(StoredItem) -> bool,
) -> io::Result<u64> {
    let path = segment.file("bin");
    let mut file = match files::options().read(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut done = Vec::new();
    let (damaged, _) = scan(&mut file, 0, |_, _, payload| {
        if let Some(Record::Done(from, to)) = parse(payload) {
            done.push((from, to));
        }
    })?;
    let done = merge_ranges(done);
    let mut last_item = 0u64;
    scan_while(&mut file, 0, None, |_, _, payload| {
        let mut more = true;
        if let Some(Record::Item { seq, path, body }) = parse(payload) {
            if seq > last_item && !in_ranges(&done, seq) {
                more = visit(StoredItem {
                    seq,
                    path: path.to_string(),
                    body: body.to_vec(),
                });
            }
            last_item = last_item.max(seq);
        }
        more
    })?;
    Ok(damaged.iter().map(|(from, to)| to - from).sum())
}
