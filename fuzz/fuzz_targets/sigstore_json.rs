//! containers/image `signature-N` files (sigstore JSON) read from OCI layouts and `dir:` copies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_sign::SigstoreJson;

fuzz_target!(|data: &[u8]| {
    let _ = SigstoreJson::parse(data);
});
