//! `trodo_init`'s options JSON: any text gives options or InvalidJson,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = trodo::Options::from_json(text) {
        assert_eq!(e.kind, trodo::ErrorKind::InvalidJson, "{e}");
    }
});
