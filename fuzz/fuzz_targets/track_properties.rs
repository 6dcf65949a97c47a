//! The `trodo_track` properties path, differentially: the one-pass
//! transcoder (`json::raw_object`) must accept only what serde_json accepts
//! as an object, and the event it writes must carry exactly serde_json's
//! parse of the text (`custom_properties`, no group stamp here). When it
//! declines (repeated keys, anything unusual), the ordinary parse decides,
//! and its verdict must be serde_json's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trodo::groups::Memberships;
use trodo::wire::{self, Properties, Who};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // the C API refuses non-UTF-8 before this point
    };
    let reference = serde_json::from_str::<Value>(text);
    match trodo::json::raw_object(text) {
        Some(raw) => {
            let Ok(Value::Object(expected)) = &reference else {
                panic!("transcoder accepted what serde_json refuses as an object: {reference:?}");
            };
            let who = Who {
                site_id: "s",
                session_id: "sess",
                distinct_id: "u",
            };
            let queued = wire::event(
                &who,
                "e",
                None,
                Properties::Raw(&raw),
                &Memberships::default(),
                0,
                "00000000-0000-4000-8000-000000000000",
            );
            let mut sent = Vec::new();
            wire::complete_event(&queued, &mut sent);
            let event: Value = serde_json::from_slice(&sent).expect("the event is JSON");
            // Both sides as printed and read back: serde_json (without its
            // float_roundtrip feature) may read a printed float back one ulp
            // off, the same way for both, so only a real difference remains.
            let expected = Value::Object(expected.clone());
            let expected: Value =
                serde_json::from_str(&expected.to_string()).expect("serde_json's own output");
            assert_eq!(
                event["custom_properties"], expected,
                "properties differ from serde_json's parse"
            );
        }
        None => {
            let ours = trodo::json::object(text, "properties_json");
            match (&reference, ours) {
                (Ok(Value::Object(expected)), Ok(got)) => assert_eq!(&got, expected),
                (Ok(Value::Object(_)), Err(e)) => {
                    panic!("refused an object serde_json accepts: {e}")
                }
                (_, Ok(_)) => panic!("accepted what is not a JSON object: {reference:?}"),
                (_, Err(e)) => assert_eq!(e.kind, trodo::ErrorKind::InvalidJson),
            }
        }
    }
});
