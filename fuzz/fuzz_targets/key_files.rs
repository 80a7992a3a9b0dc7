//! Key files: PEM public keys, and cosign encrypted private keys through the PEM and JSON layers.
//! Decryption uses a fixed password; scrypt runs only for the three accepted cost settings, which
//! random PEM text practically never reaches (`encrypted_key_json` fuzzes the JSON directly).
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_sign::{EncryptedKeyFile, PublicKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = PublicKey::from_pem(data, "fuzz.pub") {
        let again = PublicKey::from_pem(key.to_pem().as_bytes(), "again.pub");
        assert_eq!(again.ok(), Some(key));
    }
    let _ = EncryptedKeyFile::decrypt(data, b"fuzz-password", "fuzz.key");
});
