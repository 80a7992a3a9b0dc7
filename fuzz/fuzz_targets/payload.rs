//! The simple-signing payload of a signature layer (attacker-chosen bytes that a valid signature
//! may cover): strict parsing must never panic, and what it accepts must survive a round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_sign::SimpleSigningPayload;

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = SimpleSigningPayload::parse_strict(data) {
        let _ = payload.creator();
        let _ = payload.timestamp();
        let again = SimpleSigningPayload::parse_strict(&payload.to_bytes());
        assert!(again.is_ok(), "re-serialised payload refused: {again:?}");
    }
});
