//! in-toto statements (`verify-attestation`, attestation requirements): a statement that parses
//! serialises to bytes that parse back to the same statement, and the subject check never
//! panics. Every path must return.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_oci::Digest;
use signet_sign::intoto::Statement;

fuzz_target!(|data: &[u8]| {
    let Ok(statement) = Statement::parse(data) else {
        return;
    };
    let _ = statement.names_digest(&Digest::sha256(data));
    // A statement near the byte bound may grow when re-serialised (numbers, escapes): then
    // writing it is refused, which is fine; what is written must read back the same.
    let Ok(bytes) = statement.to_bytes() else {
        return;
    };
    let again = Statement::parse(&bytes)
        .unwrap_or_else(|e| panic!("a written statement does not parse: {e}"));
    assert_eq!(again, statement, "statement changed through a round trip");
});
