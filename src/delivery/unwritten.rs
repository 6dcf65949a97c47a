//! The records on their way to the queue file, in this order: a journal
//! half a failed write left behind (`sealed`), records in memory a failed
//! write left behind (`failed`), the active journal half, and records in
//! memory only because the active half was full (`memory`). Callers add
//! records under the queue lock; the writer takes a prefix of that order
//! ([`Unwritten::take`]) and gives the job back when it has written it or
//! failed ([`Unwritten::give_back`]), so the order on disk is always the
//! order of the calls. Pure bookkeeping: no I/O but the copies into the
//! mapped journal.

use super::journal::Half;
use super::store::{
    append_record, encode_done, item_record_len, merge_ranges, records, write_done, write_item,
    Record, Records, DONE_RECORD_LEN,
};

/// The largest memory buffer kept for reuse; a larger one (the writer fell
/// behind) is let go.
const KEPT_BUFFER: usize = 1024 * 1024;

#[derive(Default)]
pub struct Unwritten {
    /// A half whose write failed: it goes first next time.
    sealed: Option<Half>,
    /// Memory records whose write failed: after `sealed`, before `active`.
    failed: Vec<u8>,
    /// The half records go to; None without a journal.
    active: Option<Half>,
    /// Records in memory only, after everything in the journal.
    memory: Vec<u8>,
    /// The other half, empty, when the writer is not writing it.
    spare: Option<Half>,
    generation: u64,
    /// An empty buffer to take `memory`'s place while it is written.
    spare_memory: Vec<u8>,
}

/// Records taken for one append, in order: a half, then memory records.
pub struct Job {
    half: Option<Half>,
    memory: Vec<u8>,
}

impl Records for Job {
    fn parts(&self) -> [&[u8]; 2] {
        [
            self.half.as_ref().map_or(&[][..], Half::records),
            &self.memory,
        ]
    }
}

impl Job {
    pub fn is_empty(&self) -> bool {
        self.parts().iter().all(|p| p.is_empty())
    }

    /// Whether the job carries more memory records than a buffer kept for
    /// reuse holds: a burst outran the journal, and its buffer is let go.
    pub fn holds_a_burst(&self) -> bool {
        self.memory.capacity() > KEPT_BUFFER
    }

    /// After a successful write: the half's records are in the queue file,
    /// so it is emptied (on the writer's thread, before the queue lock is
    /// taken to give it back).
    pub fn written(&mut self) {
        if let Some(h) = self.half.as_mut() {
            h.clear();
        }
    }
}

impl Unwritten {
    /// With the journal's two halves (`active` is generation 1), or none.
    pub fn new(journal: Option<(Half, Half)>) -> Unwritten {
        let (active, spare) = journal.unzip();
        Unwritten {
            active,
            spare,
            generation: 1,
            ..Unwritten::default()
        }
    }

    /// Adds the record of `len` bytes that `write` frames: straight into the
    /// active half when it fits and nothing waits in memory ahead of it
    /// (the caller's path: one copy of the body), else into memory.
    pub fn add(&mut self, len: usize, write: impl FnOnce(&mut [u8])) {
        let space = match self.active.as_mut() {
            Some(half) if self.memory.is_empty() => half.reserve(len),
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
    /// until written.
    pub fn memory_bytes(&self) -> usize {
        self.failed.len() + self.memory.len()
    }

    /// Keeps, of the records in memory only, the items `live` still wants
    /// and the done ranges merged: while the queue file cannot be written,
    /// memory then stays within the queue bounds instead of growing with
    /// every record of items dropped since. (Records the writer holds are
    /// left alone: they come back as `failed`, shrunk the next time.)
    pub fn shrink(&mut self, live: impl Fn(u64) -> bool) {
        for part in [&mut self.failed, &mut self.memory] {
            let mut kept = Vec::with_capacity(part.len() / 2);
            let mut done = Vec::new();
            for (frame, record) in records(part) {
                match record {
                    Record::Item { seq, .. } if live(seq) => kept.extend_from_slice(frame),
                    Record::Item { .. } => {}
                    Record::Done(from, to) => done.push((from, to)),
                }
            }
            for (from, to) in merge_ranges(done) {
                encode_done(from, to, &mut kept);
            }
            *part = kept;
        }
    }

    /// Whether the writer should write now rather than at its next
    /// interval: the active half is over half full, or records wait in
    /// memory.
    pub fn urgent(&self, write_now_bytes: usize) -> bool {
        let active = self.active.as_ref().map_or(0, |h| h.records().len());
        active >= write_now_bytes.min(super::journal::HALF / 2)
            || self.memory.len() >= write_now_bytes
            || (!self.memory.is_empty() && self.spare.is_some())
    }

    /// The next records to append: a prefix of the order above. A failed
    /// half with the failed memory behind it; else the failed memory alone;
    /// else the active half (the spare takes its place) and, once nothing
    /// in the journal is left ahead of it, the memory.
    pub fn take(&mut self) -> Job {
        if let Some(half) = self.sealed.take() {
            let memory = std::mem::take(&mut self.failed);
            return Job {
                half: Some(half),
                memory,
            };
        }
        if !self.failed.is_empty() {
            return Job {
                half: None,
                memory: std::mem::take(&mut self.failed),
            };
        }
        let mut half = None;
        if self.active.as_ref().is_some_and(|h| !h.is_empty()) {
            if let Some(mut next) = self.spare.take() {
                self.generation += 1;
                next.activate(self.generation);
                half = self.active.replace(next);
            }
        }
        let journal_ahead = self.active.as_ref().is_some_and(|h| !h.is_empty());
        let memory = match journal_ahead {
            true => Vec::new(),
            false => {
                let empty = std::mem::take(&mut self.spare_memory);
                std::mem::replace(&mut self.memory, empty)
            }
        };
        // Records added while this job is out go to the (new) active half:
        // after the job's, whether it is written or fails (then its records
        // come back as `sealed` and `failed`, still ahead).
        Job { half, memory }
    }

    /// A job back from the writer: written, its half becomes the spare; not
    /// written, it goes first next time, ahead of everything added since.
    pub fn give_back(&mut self, job: Job, written: bool) {
        let Job { half, mut memory } = job;
        if written {
            if half.is_some() {
                self.spare = half;
            }
            if memory.capacity() <= KEPT_BUFFER {
                memory.clear();
                self.spare_memory = memory;
            }
        } else {
            if half.is_some() {
                self.sealed = half;
            }
            memory.extend_from_slice(&self.failed);
            self.failed = memory;
        }
    }

    /// Every record not yet in the queue file, in order.
    pub fn parts(&self) -> [&[u8]; 4] {
        fn records(h: &Option<Half>) -> &[u8] {
            h.as_ref().map_or(&[], Half::records)
        }
        [
            records(&self.sealed),
            &self.failed,
            records(&self.active),
            &self.memory,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::journal;

    fn journal() -> (Half, Half) {
        let d = std::env::temp_dir().join(format!("trodo-unwritten-{}", crate::util::new_id()));
        std::fs::create_dir_all(&d).unwrap();
        journal::open(&d.join("q.jnl")).unwrap()
    }

    fn put(u: &mut Unwritten, bytes: &[u8]) {
        u.add(bytes.len(), |space| space.copy_from_slice(bytes));
    }

    fn all(u: &Unwritten) -> Vec<u8> {
        u.parts().concat()
    }

    fn job_bytes(j: &Job) -> Vec<u8> {
        j.parts().concat()
    }

    #[test]
    fn without_a_journal_records_wait_in_memory_and_keep_their_order() {
        let mut u = Unwritten::new(None);
        put(&mut u, b"ab");
        let job = u.take();
        put(&mut u, b"cd");
        assert_eq!(job_bytes(&job), b"ab");
        u.give_back(job, false);
        assert_eq!(all(&u), b"abcd");
        assert_eq!(u.memory_bytes(), 4);
        // What failed goes first, alone; then what came after.
        let job = u.take();
        assert_eq!(job_bytes(&job), b"ab");
        u.give_back(job, true);
        let job = u.take();
        assert_eq!(job_bytes(&job), b"cd");
        u.give_back(job, true);
        assert!(u.take().is_empty());
    }

    #[test]
    fn the_halves_swap_and_a_failed_half_goes_first_next_time() {
        let mut u = Unwritten::new(Some(journal()));
        put(&mut u, b"one");
        assert_eq!(u.memory_bytes(), 0, "in the journal");
        let job = u.take();
        put(&mut u, b"two");
        assert_eq!(job_bytes(&job), b"one");
        u.give_back(job, false);
        put(&mut u, b"three");
        assert_eq!(all(&u), b"onetwothree");
        // The failed half first, alone: the active one is still ahead of memory.
        let mut job = u.take();
        assert_eq!(job_bytes(&job), b"one");
        job.written();
        u.give_back(job, true);
        let job = u.take();
        assert_eq!(job_bytes(&job), b"twothree");
        u.give_back(job, true);
        assert!(u.take().is_empty());
    }

    #[test]
    fn an_item_framed_in_the_journal_is_the_record_framed_in_memory() {
        use crate::delivery::store::{encode_item, records, Record};
        let (mut into_journal, mut into_memory) =
            (Unwritten::new(Some(journal())), Unwritten::new(None));
        for u in [&mut into_journal, &mut into_memory] {
            u.add_item(7, "/api/events", br#"{"n":7}"#);
            u.add_item(8, "/api/people", b"{}");
        }
        assert_eq!(into_journal.memory_bytes(), 0, "in the journal");
        let mut expected = Vec::new();
        encode_item(7, "/api/events", br#"{"n":7}"#, &mut expected);
        encode_item(8, "/api/people", b"{}", &mut expected);
        assert_eq!(all(&into_journal), expected);
        assert_eq!(all(&into_memory), expected);
        let read: Vec<_> = records(&expected)
            .map(|(_, r)| match r {
                Record::Item { seq, .. } => seq,
                Record::Done(..) => 0,
            })
            .collect();
        assert_eq!(read, [7, 8], "the reader takes both, checksums intact");
    }

    #[test]
    fn shrinking_keeps_the_live_items_in_order_and_the_done_ranges_merged() {
        use crate::delivery::store::encode_item;
        let mut u = Unwritten::new(None);
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
        assert_eq!(all(&u), expected);
    }

    #[test]
    fn memory_that_failed_to_be_written_stays_ahead_of_the_journal_records_after_it() {
        let mut u = Unwritten::new(Some(journal()));
        let big = vec![7u8; journal::HALF - 100];
        put(&mut u, &big);
        put(&mut u, &[1u8; 200]); // memory: the half is full
        let job = u.take(); // the half and the memory
        put(&mut u, b"z"); // the new active half, behind the job
        u.give_back(job, false);
        put(&mut u, b"w");
        let expected = [&big[..], &[1u8; 200], b"z", b"w"].concat();
        assert_eq!(all(&u), expected);
        // Written back in that order: the failed half and memory, then the rest.
        let mut written = Vec::new();
        for _ in 0..3 {
            let mut job = u.take();
            written.extend(job_bytes(&job));
            job.written();
            u.give_back(job, true);
        }
        assert_eq!(written, expected);
        assert!(u.take().is_empty());
    }

    #[test]
    fn records_beyond_a_full_half_wait_in_memory_behind_it() {
        let mut u = Unwritten::new(Some(journal()));
        let big = vec![7u8; journal::HALF - 100];
        put(&mut u, &big);
        put(&mut u, &[1u8; 200]); // does not fit
        put(&mut u, b"x"); // would fit, but must stay behind the one that did not
        assert_eq!(u.memory_bytes(), 201);
        assert!(u.urgent(usize::MAX));
        let job = u.take();
        assert_eq!(
            job_bytes(&job).len(),
            big.len() + 201,
            "the half, then memory"
        );
        put(&mut u, b"y"); // while the job is out: in the new active half
        assert_eq!(u.memory_bytes(), 0);
        u.give_back(job, false);
        let expected = [&big[..], &[1u8; 200], b"x", b"y"].concat();
        assert_eq!(all(&u), expected);
    }
}
