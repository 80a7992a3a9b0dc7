//! Sigstore bundles (`signet verify-blob --bundle`; the images verifier reads the same type): parse
//! with Signet's bounds, then verify whatever parses against the embedded public-good root, by
//! digest and by bytes, as keyless and as managed key. Every path must return, never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use signet_keyless::{
    Artifact, Bundle, Instance, PublicKey, Sha256Digest, Signer, TrustedRoot, Verifier,
};

const KEY: &str = include_str!("../../testdata/sigstore-bundles/managed-key-v0.3/key.pub");

fn verifier() -> Option<&'static (Verifier, Option<PublicKey>)> {
    static V: OnceLock<Option<(Verifier, Option<PublicKey>)>> = OnceLock::new();
    V.get_or_init(|| {
        let root = TrustedRoot::embedded(Instance::PublicGood).ok()?;
        Some((Verifier::new(&root).ok()?, PublicKey::from_pem(KEY).ok()))
    })
    .as_ref()
}

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::from_json(data) else {
        return;
    };
    let _ = (
        bundle.version(),
        bundle.content_kind(),
        bundle.log_entries(),
        bundle.dsse_payload(),
    );
    let Some((verifier, key)) = verifier() else {
        return;
    };
    let digest = Sha256Digest::of(b"signet fuzz");
    let _ = verifier.verify(Artifact::Digest(digest), &bundle, Signer::Certificate);
    let _ = verifier.verify(
        Artifact::Bytes(b"signet fuzz"),
        &bundle,
        Signer::Certificate,
    );
    if let Some(key) = key {
        let _ = verifier.verify(Artifact::Digest(digest), &bundle, Signer::Key(key));
    }
});
