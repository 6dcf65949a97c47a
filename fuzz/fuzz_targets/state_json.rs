//! `state.json` as found on disk: any bytes load as state or are
//! quarantined (moved aside, with a reason), never a panic; what loads
//! survives a change, a write and a second read unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trodo::state::{LocalState, StateFile};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("trodo-fuzz-state-{}", std::process::id()));
    let file = StateFile::open(&dir).expect("temp dir");
    std::fs::write(dir.join("state.json"), data).expect("write");
    // A new process: it changed nothing, so it takes what the file holds.
    let fresh = LocalState::fresh();
    let synced = file.sync_by(&fresh, &fresh, 1, None).expect("sync").expect("ran");
    if let Some(reason) = synced.report {
        assert!(!reason.is_empty());
        assert_eq!(synced.state, fresh, "quarantined: started fresh");
        return;
    }
    let loaded = synced.state;
    let mut changed = loaded.clone();
    changed.opt_out = !changed.opt_out;
    let written = file.sync_by(&loaded, &changed, 2, None).expect("sync").expect("ran");
    assert_eq!(written.state, changed);
    let again = file.sync_by(&changed, &changed, 3, None).expect("sync").expect("ran");
    assert_eq!(again.state, changed, "a written state reads back the same");
});
