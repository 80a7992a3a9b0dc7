//! The JSON inside a cosign encrypted key file, wrapped in the PEM block here so the fuzzer works
//! on the JSON layer. Inputs naming an accepted scrypt cost are skipped: each would spend tens of
//! milliseconds in scrypt, which is not what is being tested.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_sign::EncryptedKeyFile;

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if ["32768", "65536", "131072"]
        .iter()
        .any(|n| text.contains(n))
    {
        return;
    }
    let mut pem = String::from("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n");
    let encoded = base64(data);
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n");
    let _ = EncryptedKeyFile::decrypt(pem.as_bytes(), b"fuzz-password", "fuzz.key");
});
