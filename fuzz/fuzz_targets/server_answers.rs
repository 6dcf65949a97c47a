//! What servers send back: an identify answer (any JSON), a Retry-After
//! header (any text) and a status code. Never a panic; the pause a 429
//! asks for stays within the policy's cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trodo::delivery::policy::{self, RetryPolicy};

fuzz_target!(|data: &[u8]| {
    let (head, rest) = data.split_at(data.len().min(2));
    let status = u16::from_le_bytes([
        head.first().copied().unwrap_or(0),
        head.get(1).copied().unwrap_or(0),
    ]);
    let _ = policy::verdict(status);
    let text = String::from_utf8_lossy(rest);
    let p = RetryPolicy::default();
    let pause = p.retry_after(Some(&text), 1_795_700_000);
    assert!(pause <= p.max_retry_after, "{pause:?} for {text:?}");
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(rest) {
        let answer = trodo::wire::parse_identify_response(&body);
        if let Some(id) = answer.new_distinct_id {
            assert!(!id.is_empty());
        }
    }
});
