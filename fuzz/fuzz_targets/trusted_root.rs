//! Sigstore `trusted_root.json` (`--trusted-root FILE`, the TUF cache): parse and build a verifier;
//! must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_keyless::{TrustSource, TrustedRoot, Verifier};

fuzz_target!(|data: &[u8]| {
    if let Ok(root) = TrustedRoot::from_json(data, TrustSource::File("fuzz".into())) {
        let _ = (root.has_tlogs(), root.has_ct_logs(), root.sha256());
        let _ = Verifier::new(&root);
    }
});
