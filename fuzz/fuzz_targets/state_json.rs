//! `state.json` as found on disk: any bytes load as state or are
//! quarantined (moved aside, with a reason), never a panic; what loads
//! survives a save and a second load unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trodo::state::{Loaded, StateFile};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("trodo-fuzz-state-{}", std::process::id()));
    let file = StateFile::open(&dir).expect("temp dir");
    std::fs::write(dir.join("state.json"), data).expect("write");
    match file.load() {
        Loaded::Restored(state) => {
            file.save(&state, u64::MAX).expect("save");
            match file.load() {
                Loaded::Restored(again) => assert_eq!(again, state),
                other => panic!("a saved state did not load again: {other:?}"),
            }
        }
        Loaded::Quarantined(reason) => assert!(!reason.is_empty()),
        Loaded::Nothing => panic!("the file was there"),
    }
});
