//! A queue file of arbitrary bytes, as a killed process leaves it: records
//! and whatever else, then the zeros of its mapped tail's allocated space
//! (the first two bytes say how many), then more bytes (a done marker an
//! adopter appended, or anything). Opened as a segment left by an earlier
//! run: whatever is in it loads (damage is skipped and counted, zeros are
//! not damage), every item it reports can be read back, and adopting it as
//! another process's orphan visits the same items. Never a panic, a hang,
//! or an allocation larger than the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trodo::delivery::segments::{self, Segment};
use trodo::delivery::store::{self, QueueStore};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("trodo-fuzz-queue-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (zeros, rest) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => (0, data),
    };
    // The zeros go in the middle of the rest.
    let (before, after) = rest.split_at(rest.len() / 2);
    let mut file = before.to_vec();
    file.resize(before.len() + zeros % 8192, 0);
    file.extend_from_slice(after);
    std::fs::write(dir.join("queue.bin"), &file).expect("write");

    // As an orphan: the items another process would adopt.
    let stem = segments::stems(&dir)
        .expect("list")
        .pop_first()
        .expect("the segment");
    let orphan = Segment::claim(&dir, &stem).expect("claim").expect("free");
    let mut adopted = Vec::new();
    store::read_orphan(&orphan, |item| {
        adopted.push(item.seq);
        true
    })
    .expect("read");
    drop(orphan);

    // As this process's own queue, with a small head so most are spilled.
    let (queue, recovered) = QueueStore::open_in(&dir, 64).expect("open");
    let mut loaded: Vec<u64> = recovered.items.iter().map(|i| i.seq).collect();
    let spilled: Vec<u64> = recovered.spilled.iter().map(|r| r.seq()).collect();
    let read_back = queue.read_spilled(&spilled, |end| end, |_| {}).expect("read back");
    assert_eq!(read_back.iter().map(|i| i.seq).collect::<Vec<_>>(), spilled);
    loaded.extend(spilled);
    assert_eq!(loaded, adopted, "start-up and adoption see the same items");
    queue.close(false);
});
