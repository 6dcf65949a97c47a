//! The records on their way into the queue file: framed by the callers
//! straight into the file's mapped tail (the [`Window`]), or, where no
//! window has room (none is mapped yet, the disk is full, a burst outran the
//! writer), kept in memory behind it until the writer moves them in. Memory
//! records always follow the window's, so the order in the file is the order
//! of the calls. Pure bookkeeping under the queue lock: no I/O but the
//! copies into the mapping.

use super::store::{
    append_record, encode_done, framed_size, item_record_len, merge_ranges, records, write_done,
    write_item, Record, DONE_RECORD_LEN,
};
use super::window::{Unflushed, Window, WINDOW};

/// The largest memory buffer kept for reuse; a larger one (the writer fell
/// behind) is let go.
const KEPT_BUFFER: usize = 1024 * 1024;

#[derive(Default)]
pub struct Unwritten {
    /// The file's mapped tail; None before the writer maps one, and while
    /// none can be.
    window: Option<Window>,
    /// Records in memory only, after everything in the window: those from
    /// `moved` on (the ones before it are in the window already; the buffer
    /// is emptied when all are).
    memory: Vec<u8>,
    moved: usize,
    /// The writer could not map a window: callers stop urging it (it tries
    /// again within its interval).
    stalled: bool,
}

/// What a call to [`Unwritten::move_in`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Moved {
    /// Memory is empty.
    All,
    /// Memory is empty, and the large buffer a burst had grown was let go.
    Freed,
    /// Some records moved; more wait.
    Some,
    /// Nothing fits the window (or there is none).
    None,
}

impl Unwritten {
    /// Adds the record of `len` bytes that `write` frames: straight into the
    /// window when it fits and nothing waits in memory ahead of it (the
    /// caller's path: one copy of the body), else into memory.
    pub fn add(&mut self, len: usize, write: impl FnOnce(&mut [u8])) {
        let space = match self.window.as_mut() {
            Some(w) if self.memory.len() == self.moved => w.reserve(len),
            _ => None,
        };
        match space {
            Some(space) => write(space),
            None => append_record(&mut self.memory, len, write),
        }
    }

    pub fn add_item(&mut self, seq: u64, path: &str, body: &[u8]) {
        let len = item_record_len(path, body) as usize;
        self.add(len, |space| write_item(seq, path, body, space));
    }

    pub fn add_done(&mut self, from: u64, to: u64) {
        self.add(DONE_RECORD_LEN, |space| write_done(from, to, space));
    }

    /// Bytes of records held in memory only: they die with the process
    /// until moved into the window.
    pub fn memory_bytes(&self) -> usize {
        self.memory().len()
    }

    /// The records in memory only (they follow the file's).
    pub fn memory(&self) -> &[u8] {
        &self.memory[self.moved..]
    }

    /// Keeps, of the records in memory only, the items `live` still wants
    /// and the done ranges merged: while no window can be mapped, memory
    /// then stays within the queue bounds instead of growing with every
    /// record of items dropped since.
    pub fn shrink(&mut self, live: impl Fn(u64) -> bool) {
        let mut kept = Vec::with_capacity(self.memory_bytes() / 2);
        let mut done = Vec::new();
        for (frame, record) in records(self.memory()) {
            match record {
                Record::Item { seq, .. } if live(seq) => kept.extend_from_slice(frame),
                Record::Item { .. } => {}
                Record::Done(from, to) => done.push((from, to)),
            }
        }
        for (from, to) in merge_ranges(done) {
            encode_done(from, to, &mut kept);
        }
        self.memory = kept;
        self.moved = 0;
    }

    /// Whether the writer should come now rather than at its next interval:
    /// there is no window or it is half full, or records wait in memory
    /// (`write_now_bytes` of them while it cannot map a window).
    pub fn urgent(&self, write_now_bytes: usize) -> bool {
        if self.stalled {
            return self.memory_bytes() >= write_now_bytes;
        }
        self.memory_bytes() > 0 || self.wants_window().is_some()
    }

    /// When the writer should map a new window: the room it needs (for the
    /// first record in memory at least), and where the records end (None
    /// without a window: the file knows).
    pub fn wants_window(&self) -> Option<(usize, Option<u64>)> {
        let first = framed_size(self.memory()).unwrap_or(0);
        match &self.window {
            None => Some((first, None)),
            Some(w) if w.free() < WINDOW / 2 || w.free() < first => Some((first, Some(w.end()))),
            Some(_) => None,
        }
    }

    /// Where the records end, when a window is mapped.
    pub fn end(&self) -> Option<u64> {
        self.window.as_ref().map(Window::end)
    }

    /// Puts `next` (mapped where the records ended when it was asked for)
    /// in use, taking over what callers framed meanwhile; returns the window
    /// it replaces, or `next` back when it cannot follow it.
    pub fn install(&mut self, mut next: Window) -> Result<Option<Window>, Window> {
        if let Some(old) = &self.window {
            if !next.follow(old) {
                return Err(next);
            }
        }
        self.stalled = false;
        Ok(self.window.replace(next))
    }

    /// Notes that the writer could not map a window (until one is
    /// installed); true when it could before.
    pub fn stall(&mut self) -> bool {
        !std::mem::replace(&mut self.stalled, true)
    }

    /// Moves the records in memory into the window, in order, as many whole
    /// ones as fit, `max` bytes at most (the queue lock is held meanwhile).
    pub fn move_in(&mut self, max: usize) -> Moved {
        if self.memory_bytes() == 0 {
            return Moved::All;
        }
        let Some(window) = self.window.as_mut() else {
            return Moved::None;
        };
        let memory = &self.memory[self.moved..];
        let room = window.free().min(max.max(1));
        let mut n = 0;
        while let Some(size) = framed_size(&memory[n..]) {
            if n + size > room && (n > 0 || size > window.free()) {
                break;
            }
            n += size;
        }
        if n == 0 {
            return Moved::None;
        }
        if let Some(space) = window.reserve(n) {
            space.copy_from_slice(&memory[..n]);
        }
        self.moved += n;
        if self.moved < self.memory.len() {
            return Moved::Some;
        }
        self.moved = 0;
        match self.memory.capacity() > KEPT_BUFFER {
            true => {
                self.memory = Vec::new();
                Moved::Freed
            }
            false => {
                self.memory.clear();
                Moved::All
            }
        }
    }

    /// Takes the window out of use: callers' records wait in memory until
    /// the next one is installed.
    pub fn take_window(&mut self) -> Option<Window> {
        self.window.take()
    }

    /// Takes the records in memory, to be written where no window can be
    /// mapped; [`give_back`](Self::give_back) when that failed.
    pub fn take_memory(&mut self) -> Vec<u8> {
        let mut taken = std::mem::take(&mut self.memory);
        taken.drain(..std::mem::take(&mut self.moved));
        taken
    }

    /// Records taken by [`take_memory`](Self::take_memory) and not written:
    /// they go first again, ahead of everything added since.
    pub fn give_back(&mut self, mut taken: Vec<u8>) {
        taken.extend_from_slice(self.memory());
        self.memory = taken;
        self.moved = 0;
    }

    /// What of the window to push to the disk for power loss.
    pub fn unflushed(&mut self) -> Option<Unflushed> {
        self.window.as_mut().map(Window::unflushed)
    }

    /// A push of `u` failed: it is pushed again next time.
    pub fn flush_failed(&mut self, u: &Unflushed) {
        if let Some(w) = self.window.as_mut() {
            u.failed(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::store::{encode_item, test_item};
    use crate::platform::files;

    fn window_at(end: u64) -> (std::fs::File, Window) {
        let d = std::env::temp_dir().join(format!("trodo-unwritten-{}", crate::util::new_id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = files::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(d.join("q.bin"))
            .unwrap();
        let w = Window::map(&f, end, 0).unwrap();
        (f, w)
    }

    fn file_bytes(f: &std::fs::File, len: usize) -> Vec<u8> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = f;
        let mut b = vec![0u8; len];
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_exact(&mut b).unwrap();
        b
    }

    fn items(seqs: std::ops::RangeInclusive<u64>) -> Vec<u8> {
        seqs.flat_map(test_item).collect()
    }

    #[test]
    fn without_a_window_records_wait_in_memory_and_go_in_first_once_there_is_one() {
        let mut u = Unwritten::default();
        u.add_item(1, "/api/events", br#"{"n":1}"#);
        u.add_item(2, "/api/events", br#"{"n":2}"#);
        assert_eq!(u.memory(), items(1..=2));
        assert!(u.urgent(usize::MAX), "the writer is wanted");
        assert_eq!(u.wants_window().map(|(_, end)| end), Some(None));
        let (f, w) = window_at(0);
        assert!(u.install(w).unwrap().is_none());
        // Memory is not empty: a new record still waits behind it.
        u.add_item(3, "/api/events", br#"{"n":3}"#);
        assert_eq!(u.move_in(usize::MAX), Moved::All);
        u.add_item(4, "/api/events", br#"{"n":4}"#);
        assert_eq!(u.memory_bytes(), 0, "now straight into the window");
        let len = items(1..=4).len();
        assert_eq!(file_bytes(&f, len), items(1..=4));
        assert_eq!(u.end(), Some(len as u64));
    }

    #[test]
    fn an_item_framed_in_the_window_is_the_record_framed_in_memory() {
        let mut in_memory = Unwritten::default();
        let mut in_window = Unwritten::default();
        let (f, w) = window_at(0);
        in_window.install(w).unwrap();
        for u in [&mut in_window, &mut in_memory] {
            u.add_item(7, "/api/events", br#"{"n":7}"#);
            u.add_done(1, 6);
        }
        let mut expected = Vec::new();
        encode_item(7, "/api/events", br#"{"n":7}"#, &mut expected);
        encode_done(1, 6, &mut expected);
        assert_eq!(in_memory.memory(), expected);
        assert_eq!(file_bytes(&f, expected.len()), expected);
    }

    #[test]
    fn records_beyond_a_full_window_wait_in_memory_behind_it_and_move_in_whole_and_in_order() {
        let mut u = Unwritten::default();
        let (f, w) = window_at(0);
        u.install(w).unwrap();
        let filler = vec![b'x'; WINDOW - 8 - 40];
        u.add(filler.len() + 8, |s| s[8..].copy_from_slice(&filler));
        u.add_item(1, "/api/events", br#"{"n":1}"#); // 38 bytes: fits
        u.add_item(2, "/api/events", br#"{"n":2}"#); // does not
        u.add_done(1, 1); // would fit, but stays behind item 2
        assert_eq!(u.memory_bytes(), test_item(2).len() + DONE_RECORD_LEN);
        assert!(u.urgent(usize::MAX));
        assert_eq!(u.move_in(usize::MAX), Moved::None, "no room");
        // The next window, mapped at the end, takes them.
        let (need, end) = u.wants_window().unwrap();
        assert_eq!(need, test_item(2).len());
        let next = Window::map(&f, end.unwrap(), need).unwrap();
        assert!(u.install(next).unwrap().is_some());
        assert_eq!(u.move_in(test_item(2).len()), Moved::Some, "a step");
        assert_eq!(u.move_in(usize::MAX), Moved::All);
        let mut expected = items(2..=2);
        encode_done(1, 1, &mut expected);
        let at = WINDOW - 40 + test_item(1).len();
        let all = file_bytes(&f, at + expected.len());
        assert_eq!(&all[at..], &expected[..]);
        assert_eq!(u.end(), Some((at + expected.len()) as u64));
    }

    #[test]
    fn a_window_mapped_before_callers_moved_on_takes_over_their_records() {
        let mut u = Unwritten::default();
        let (f, w) = window_at(0);
        u.install(w).unwrap();
        u.add_item(1, "/api/events", br#"{"n":1}"#);
        let asked_at = u.end().unwrap();
        let next = Window::map(&f, asked_at, 0).unwrap();
        u.add_item(2, "/api/events", br#"{"n":2}"#); // before the swap
        let old = u.install(next).unwrap().unwrap();
        assert_eq!(old.end(), u.end().unwrap());
        u.add_item(3, "/api/events", br#"{"n":3}"#);
        let len = items(1..=3).len();
        assert_eq!(file_bytes(&f, len), items(1..=3));
    }

    #[test]
    fn memory_taken_and_given_back_stays_ahead_of_what_came_meanwhile() {
        let mut u = Unwritten::default();
        u.add_item(1, "/api/events", br#"{"n":1}"#);
        let taken = u.take_memory();
        u.add_item(2, "/api/events", br#"{"n":2}"#);
        u.give_back(taken);
        assert_eq!(u.memory(), items(1..=2));
    }

    #[test]
    fn while_stalled_callers_urge_only_for_a_large_backlog() {
        let mut u = Unwritten::default();
        assert!(u.stall() && !u.stall(), "newly stalled once");
        u.add_item(1, "/api/events", br#"{"n":1}"#);
        assert!(!u.urgent(1000));
        assert!(u.urgent(10));
        let (_f, w) = window_at(0);
        u.install(w).unwrap();
        assert!(u.urgent(1000), "memory waits and a window is there");
    }

    #[test]
    fn shrinking_keeps_the_live_items_in_order_and_the_done_ranges_merged() {
        let mut u = Unwritten::default();
        for seq in 1..=6 {
            u.add_item(seq, "/api/events", b"{}");
        }
        u.add_done(1, 2);
        u.add_done(3, 3);
        u.shrink(|seq| seq >= 4);
        let mut expected = Vec::new();
        for seq in 4..=6 {
            encode_item(seq, "/api/events", b"{}", &mut expected);
        }
        encode_done(1, 3, &mut expected);
        assert_eq!(u.memory(), expected);
    }
}
