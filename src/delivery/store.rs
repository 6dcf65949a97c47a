//! The on-disk queue: one append-only file of checksummed records, so a crash
//! at any moment leaves every complete record readable and at most one torn
//! record at the end.
//!
//! Record: `[u32 LE payload length][u32 LE CRC-32 of payload][payload]`.
//! Payload `I`: an item — `seq: u64 LE`, `path length: u16 LE`, path, body.
//! Payload `D`: items `from..=to` are done (delivered or dropped).
//!
//! Loading keeps every intact record before the first damaged one; the
//! damaged tail is moved to `queue.corrupt` and reported, never fatal.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::error::{Error, ErrorKind, Result};

const QUEUE_FILE: &str = "queue.bin";
const LOCK_FILE: &str = "queue.lock";
const CORRUPT_FILE: &str = "queue.corrupt";
/// A record larger than this is damage, not data (items are at most a few MiB).
const MAX_RECORD: u32 = 64 * 1024 * 1024;
/// Rewrite the file once this much of it is done records.
const COMPACT_AFTER_DEAD_BYTES: u64 = 4 * 1024 * 1024;

/// An item read back from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    pub seq: u64,
    pub path: String,
    pub body: Vec<u8>,
}

/// What loading found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Items not yet done, in seq order.
    pub items: Vec<StoredItem>,
    /// The highest seq seen (items and done markers), so new seqs continue.
    pub last_seq: u64,
    /// Damage found and moved aside, for the report.
    pub damage: Option<String>,
    pub damaged_bytes: u64,
}

pub struct QueueStore {
    path: PathBuf,
    file: Mutex<Option<File>>,
    /// Held for the store's life: a second process gets `Storage`.
    lock: Mutex<Option<File>>,
    /// Bytes of records known to be done, for deciding when to compact.
    dead_bytes: Mutex<u64>,
}

pub fn encode_item(seq: u64, path: &str, body: &[u8], out: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(11 + path.len() + body.len());
    payload.push(b'I');
    payload.extend_from_slice(&seq.to_le_bytes());
    payload.extend_from_slice(&(path.len() as u16).to_le_bytes());
    payload.extend_from_slice(path.as_bytes());
    payload.extend_from_slice(body);
    frame(&payload, out);
}

pub fn encode_done(from: u64, to: u64, out: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(17);
    payload.push(b'D');
    payload.extend_from_slice(&from.to_le_bytes());
    payload.extend_from_slice(&to.to_le_bytes());
    frame(&payload, out);
}

/// The size on disk of an item record.
pub fn item_record_len(path: &str, body: &[u8]) -> u64 {
    (8 + 11 + path.len() + body.len()) as u64
}

fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

fn storage(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Storage,
        format!("storage: {} {what}: {e}", path.display()),
    )
}

enum Parsed {
    Item(StoredItem),
    Done(u64, u64),
}

fn parse(payload: &[u8]) -> Option<Parsed> {
    let u64_at = |at: usize| {
        payload
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    match payload.first()? {
        b'I' => {
            let seq = u64_at(1)?;
            let len = u16::from_le_bytes(payload.get(9..11)?.try_into().ok()?) as usize;
            let path = std::str::from_utf8(payload.get(11..11 + len)?)
                .ok()?
                .to_string();
            let body = payload.get(11 + len..)?.to_vec();
            Some(Parsed::Item(StoredItem { seq, path, body }))
        }
        b'D' => Some(Parsed::Done(u64_at(1)?, u64_at(9)?)),
        _ => None,
    }
}

impl QueueStore {
    /// Locks the directory for this process, then reads what is queued.
    pub fn open(dir: &Path) -> Result<(QueueStore, Recovered)> {
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| storage(&lock_path, "cannot be opened", e))?;
        lock_exclusive(&lock, dir)?;
        let path = dir.join(QUEUE_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| storage(&path, "cannot be opened", e))?;
        let (recovered, good_len, dead) = read_all(&mut file, &path)?;
        let file_len = file.metadata().map(|m| m.len()).unwrap_or(good_len);
        let store = QueueStore {
            path,
            file: Mutex::new(Some(file)),
            lock: Mutex::new(Some(lock)),
            dead_bytes: Mutex::new(dead),
        };
        let mut recovered = recovered;
        if good_len < file_len {
            recovered.damage = Some(store.quarantine_tail(good_len, file_len)?);
            recovered.damaged_bytes = file_len - good_len;
        }
        if recovered.items.is_empty() && good_len > 0 {
            store.rewrite(&[])?;
        } else if dead > COMPACT_AFTER_DEAD_BYTES {
            store.rewrite(&recovered.items)?;
        }
        Ok((store, recovered))
    }

    /// Moves the unreadable tail aside and cuts the file before it.
    fn quarantine_tail(&self, good_len: u64, file_len: u64) -> Result<String> {
        let mut guard = self.file.lock();
        let file = guard
            .as_mut()
            .ok_or_else(|| storage(&self.path, "is closed", "closed"))?;
        let aside = self.path.with_file_name(CORRUPT_FILE);
        let mut tail = Vec::new();
        file.seek(SeekFrom::Start(good_len))
            .and_then(|_| file.read_to_end(&mut tail))
            .map_err(|e| storage(&self.path, "cannot be read", e))?;
        let saved = fs::write(&aside, &tail).is_ok();
        file.set_len(good_len)
            .and_then(|_| file.sync_all())
            .map_err(|e| storage(&self.path, "cannot be truncated", e))?;
        Ok(format!(
            "queue file {} was damaged at byte {good_len}: the {} byte(s) after it could not be read{}; \
             every intact record before it was kept",
            self.path.display(),
            file_len - good_len,
            if saved { format!(" and were moved to {}", aside.display()) } else { String::new() }
        ))
    }

    /// Appends encoded records; with `sync`, they are on disk when this returns.
    pub fn append(&self, bytes: &[u8], sync: bool) -> std::io::Result<()> {
        let mut guard = self.file.lock();
        let Some(file) = guard.as_mut() else {
            return Ok(()); // closed at shutdown: a late writer changes nothing
        };
        file.seek(SeekFrom::End(0))?;
        file.write_all(bytes)?;
        if sync {
            file.sync_data()?;
        }
        Ok(())
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

    /// Replaces the file with just `live` items (temp file, fsync, rename).
    pub fn rewrite(&self, live: &[StoredItem]) -> Result<()> {
        self.rewrite_with(|out| {
            for item in live {
                encode_item(item.seq, &item.path, &item.body, out);
            }
        })
    }

    /// As `rewrite`, with `encode_live` appending the live item records while
    /// the file is held, so no append can land in the old file after they
    /// were taken.
    pub fn rewrite_with(&self, encode_live: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
        let mut guard = self.file.lock();
        if guard.is_none() {
            return Ok(());
        }
        let tmp = self.path.with_extension("tmp");
        let mut bytes = Vec::new();
        encode_live(&mut bytes);
        let write = || -> std::io::Result<File> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            #[cfg(unix)]
            File::open(self.path.parent().unwrap_or(Path::new(".")))?.sync_all()?;
            OpenOptions::new().read(true).write(true).open(&self.path)
        };
        let file = write().map_err(|e| storage(&self.path, "cannot be rewritten", e))?;
        *guard = Some(file);
        *self.dead_bytes.lock() = 0;
        Ok(())
    }

    /// Closes the file and releases the directory lock.
    pub fn close(&self) {
        if let Some(f) = self.file.lock().take() {
            let _ = f.sync_all();
        }
        self.lock.lock().take();
    }
}

#[cfg(unix)]
fn lock_exclusive(lock: &File, dir: &Path) -> Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a file descriptor we own; released when it is closed.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Storage,
            format!(
                "storage: {} is in use by another libtrodo client (process or trodo_init); \
                 give each its own storage_dir",
                dir.display()
            ),
        ))
    }
}

#[cfg(not(unix))]
fn lock_exclusive(_lock: &File, _dir: &Path) -> Result<()> {
    Ok(())
}

/// Reads every intact record; returns what is live, where the intact part
/// ends, and how many bytes are done records.
fn read_all(file: &mut File, path: &Path) -> Result<(Recovered, u64, u64)> {
    file.seek(SeekFrom::Start(0))
        .map_err(|e| storage(path, "cannot be read", e))?;
    let mut reader = BufReader::with_capacity(1 << 20, &mut *file);
    let mut items: Vec<StoredItem> = Vec::new();
    let mut done: Vec<(u64, u64)> = Vec::new();
    let mut good_len = 0u64;
    let mut last_seq = 0u64;
    let mut header = [0u8; 8];
    loop {
        if read_exact_or_eof(&mut reader, &mut header)
            .map_err(|e| storage(path, "cannot be read", e))?
        {
            break;
        }
        let len = u32::from_le_bytes(header[0..4].try_into().unwrap_or([0; 4]));
        let crc = u32::from_le_bytes(header[4..8].try_into().unwrap_or([0; 4]));
        if len == 0 || len > MAX_RECORD {
            break;
        }
        let mut payload = vec![0u8; len as usize];
        if read_exact_or_eof(&mut reader, &mut payload)
            .map_err(|e| storage(path, "cannot be read", e))?
        {
            break;
        }
        if crc32fast::hash(&payload) != crc {
            break;
        }
        match parse(&payload) {
            Some(Parsed::Item(item)) => {
                last_seq = last_seq.max(item.seq);
                items.push(item);
            }
            Some(Parsed::Done(from, to)) => {
                last_seq = last_seq.max(to);
                done.push((from, to));
            }
            None => break,
        }
        good_len += 8 + u64::from(len);
    }
    done.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(done.len());
    for (from, to) in done {
        match merged.last_mut() {
            Some(last) if from <= last.1.saturating_add(1) => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    let is_done = |seq: u64| {
        let idx = merged.partition_point(|&(from, _)| from <= seq);
        idx > 0 && merged[idx - 1].1 >= seq
    };
    let mut dead = 0u64;
    let mut live = Vec::with_capacity(items.len());
    for item in items {
        if is_done(item.seq) {
            dead += item_record_len(&item.path, &item.body);
        } else {
            live.push(item);
        }
    }
    live.sort_by_key(|i| i.seq);
    live.dedup_by_key(|i| i.seq);
    Ok((
        Recovered {
            items: live,
            last_seq,
            damage: None,
            damaged_bytes: 0,
        },
        good_len,
        dead,
    ))
}

/// Fills `buf`; true at a clean or torn end of file.
fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("trodo-store-{}", crate::util::new_id()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn items(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in 1..=n {
            encode_item(
                seq,
                "/api/events",
                format!("{{\"n\":{seq}}}").as_bytes(),
                &mut out,
            );
        }
        out
    }

    #[test]
    fn items_and_done_markers_round_trip() {
        let d = dir();
        let (store, rec) = QueueStore::open(&d).unwrap();
        assert!(rec.items.is_empty() && rec.damage.is_none());
        store.append(&items(5), true).unwrap();
        let mut done = Vec::new();
        encode_done(1, 2, &mut done);
        encode_done(4, 4, &mut done);
        store.append(&done, true).unwrap();
        store.close();
        let (_store, rec) = QueueStore::open(&d).unwrap();
        let seqs: Vec<u64> = rec.items.iter().map(|i| i.seq).collect();
        assert_eq!(seqs, [3, 5]);
        assert_eq!(rec.items[0].body, b"{\"n\":3}");
        assert_eq!(rec.items[0].path, "/api/events");
        assert_eq!(rec.last_seq, 5);
    }

    #[test]
    fn a_torn_or_scribbled_tail_keeps_everything_before_it() {
        let d = dir();
        let (store, _) = QueueStore::open(&d).unwrap();
        store.append(&items(10), true).unwrap();
        store.close();
        let path = d.join(QUEUE_FILE);
        let full = fs::read(&path).unwrap();
        let record = full.len() / 10;
        // Scribble inside record 7 (index 6).
        let mut bad = full.clone();
        bad[record * 6 + 12] ^= 0xFF;
        fs::write(&path, &bad).unwrap();
        let (store, rec) = QueueStore::open(&d).unwrap();
        assert_eq!(rec.items.len(), 6);
        let report = rec.damage.unwrap();
        assert!(
            report.contains("damaged") && report.contains(CORRUPT_FILE),
            "{report}"
        );
        assert_eq!(
            fs::read(d.join(CORRUPT_FILE)).unwrap().len(),
            full.len() - record * 6
        );
        // The file was cut at the damage, so appends land after intact records.
        store.append(&items(1), true).unwrap();
        store.close();
        // Truncation mid-record is damage too.
        let len = fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        let (_s, rec) = QueueStore::open(&d).unwrap();
        assert_eq!(rec.items.len(), 6);
        assert!(rec.damage.is_some());
    }

    #[test]
    fn a_second_opener_is_refused_until_the_first_closes() {
        let d = dir();
        let (first, _) = QueueStore::open(&d).unwrap();
        let err = QueueStore::open(&d).err().unwrap();
        assert_eq!(err.kind, ErrorKind::Storage);
        assert!(err.message.contains("in use"), "{err}");
        first.close();
        assert!(QueueStore::open(&d).is_ok());
    }

    #[test]
    fn a_fully_done_file_is_emptied_on_open() {
        let d = dir();
        let (store, _) = QueueStore::open(&d).unwrap();
        store.append(&items(3), true).unwrap();
        let mut done = Vec::new();
        encode_done(1, 3, &mut done);
        store.append(&done, true).unwrap();
        store.close();
        let (store, rec) = QueueStore::open(&d).unwrap();
        assert!(rec.items.is_empty());
        assert_eq!(rec.last_seq, 3);
        assert_eq!(fs::metadata(d.join(QUEUE_FILE)).unwrap().len(), 0);
        store.close();
    }
}
