//! Manifests and indexes as a registry, layout or archive serves them (untrusted bytes). The first
//! byte picks the declared content type, the rest is the document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_oci::Manifest;

const TYPES: [Option<&str>; 5] = [
    None,
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/vnd.docker.distribution.manifest.v2+json"),
    Some("application/vnd.docker.distribution.manifest.list.v2+json"),
];

fuzz_target!(|data: &[u8]| {
    let Some((first, bytes)) = data.split_first() else {
        return;
    };
    let content_type = TYPES[usize::from(*first) % TYPES.len()];
    if let Ok(manifest) = Manifest::parse(bytes, content_type, "fuzz") {
        let _ = manifest.media_type();
    }
});
