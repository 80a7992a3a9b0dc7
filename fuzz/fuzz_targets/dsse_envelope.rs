//! DSSE envelopes (`.att` layers, bundle `dsseEnvelope`s): an envelope that parses round-trips
//! through both of its JSON forms, verifying it against a fixed key fails without panicking,
//! and an in-toto payload goes on to the statement parser.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use signet_sign::dsse::{Envelope, INTOTO_PAYLOAD_TYPE};
use signet_sign::intoto::Statement;
use signet_sign::PublicKey;

const KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFNLqFhf4fiN6o/glAuYnq2jYUeL0
vRuLu/z39pmbVwS9ff5AYnlwaP9sxREajdLY9ynM6G1sy6AAmb7Z63TsLg==
-----END PUBLIC KEY-----
";

fn key() -> Option<&'static PublicKey> {
    static K: OnceLock<Option<PublicKey>> = OnceLock::new();
    K.get_or_init(|| PublicKey::from_pem(KEY.as_bytes(), "fuzz").ok())
        .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = Envelope::parse(data) else {
        return;
    };
    let again = Envelope::parse(&envelope.to_json())
        .unwrap_or_else(|e| panic!("a written envelope does not parse: {e}"));
    assert_eq!(again, envelope, "envelope changed through to_json");
    let from_value = Envelope::from_value(&envelope.to_value())
        .unwrap_or_else(|e| panic!("an envelope value does not read back: {e}"));
    assert_eq!(from_value, envelope, "envelope changed through to_value");
    if let Some(key) = key() {
        // The harness holds no private key: nothing the fuzzer writes can verify.
        assert!(envelope.verify(key).is_err(), "a fuzzed envelope verified");
    }
    if envelope.payload_type == INTOTO_PAYLOAD_TYPE {
        let _ = Statement::parse(&envelope.payload);
    }
});
