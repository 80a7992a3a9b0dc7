//! Signature-preserving copy: an image (an index with all its children) and the cosign signatures,
//! attestations (`.att`) and OCI 1.1 referrers (bundles) of every manifest in it, between
//! registries and OCI layouts, every digest checked on the way.

use serde::Serialize;
use signet_oci::store::ImageStore;
use signet_oci::{Digest, FetchedManifest, LayoutSelector, Manifest};

use crate::bundle_sign::MAX_BUNDLES;
use crate::sign::{
    attestation_tag, merge_attestation_layers, merge_layers, read_tagged_manifest,
    DEFAULT_MAX_ATTEMPTS,
};
use crate::signatures::{read_signature_manifest, DEFAULT_MAX_SIGNATURES, MAX_PAYLOAD_BYTES};
use crate::Error;

/// How deep indexes may nest (an index of indexes is legal but rare; cycles are impossible by
/// digest, this only bounds hostile input).
const MAX_DEPTH: usize = 4;

/// What a copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    /// Digest of the top manifest copied.
    pub digest: Option<Digest>,
    /// Manifests written (top, children, signature manifests).
    pub manifests: usize,
    /// Blobs transferred.
    pub blobs_copied: usize,
    /// Blobs the destination already had.
    pub blobs_present: usize,
    /// Signature layers added to the destination.
    pub signatures_copied: usize,
    /// Attestation (`.att`) layers added to the destination.
    pub attestations_copied: usize,
    /// OCI 1.1 referrers (bundles, SBOMs, …) added to the destination.
    pub referrers_copied: usize,
}

/// Copy the image named by `src` to `dst`, with its signatures (unless `with_signatures` is false).
/// Signatures already at the destination are kept; the source's are merged in.
pub async fn copy_image(
    src: &ImageStore,
    dst: &ImageStore,
    with_signatures: bool,
) -> Result<CopyReport, Error> {
    let top = src.resolve().await?;
    let mut report = CopyReport {
        digest: Some(top.digest.clone()),
        ..CopyReport::default()
    };
    let mut digests = Vec::new();
    copy_children(src, dst, &top, 0, &mut digests, &mut report).await?;
    dst.put_manifest(&top.bytes, &top.media_type, destination_tag(dst).as_deref())
        .await?;
    report.manifests += 1;
    digests.push(top.digest.clone());
    if with_signatures {
        for digest in &digests {
            copy_signatures(src, dst, digest, &mut report).await?;
            copy_attestations(src, dst, digest, &mut report).await?;
            copy_referrers(src, dst, digest, &mut report).await?;
        }
    }
    Ok(report)
}

fn destination_tag(dst: &ImageStore) -> Option<String> {
    match dst {
        ImageStore::Registry { reference, .. } => reference.tag().map(str::to_string),
        ImageStore::Layout {
            selector: Some(LayoutSelector::Tag(tag)),
            ..
        } => Some(tag.clone()),
        _ => None,
    }
}

async fn copy_children(
    src: &ImageStore,
    dst: &ImageStore,
    fetched: &FetchedManifest,
    depth: usize,
    digests: &mut Vec<Digest>,
    report: &mut CopyReport,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::LimitExceeded {
            what: format!("index nesting below {}", fetched.digest),
            limit: format!("{MAX_DEPTH} levels"),
        });
    }
    match &fetched.manifest {
        Manifest::Image(manifest) => {
            for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                if dst.has_blob(&blob.digest).await? {
                    report.blobs_present += 1;
                    continue;
                }
                let stream = src.blob_stream(blob).await?;
                dst.put_blob_stream(blob, stream).await?;
                report.blobs_copied += 1;
            }
        }
        Manifest::Index(index) => {
            for child in index.manifests.iter().filter(|d| d.is_manifest()) {
                let child_manifest = src.manifest(child).await?;
                Box::pin(copy_children(
                    src,
                    dst,
                    &child_manifest,
                    depth + 1,
                    digests,
                    report,
                ))
                .await?;
                dst.put_manifest(&child_manifest.bytes, &child_manifest.media_type, None)
                    .await?;
                report.manifests += 1;
                digests.push(child_manifest.digest.clone());
            }
        }
    }
    Ok(())
}

async fn copy_signatures(
    src: &ImageStore,
    dst: &ImageStore,
    digest: &Digest,
    report: &mut CopyReport,
) -> Result<(), Error> {
    let Some((fetched, manifest)) = read_signature_manifest(src, digest).await? else {
        return Ok(());
    };
    // Bound the work a hostile source can cause (each layer is a blob to fetch and store): more
    // signatures than verification would ever look at are refused, not copied.
    if manifest.layers.len() > DEFAULT_MAX_SIGNATURES {
        return Err(Error::LimitExceeded {
            what: format!(
                "signature manifest {} with {} layers",
                digest.signature_tag(),
                manifest.layers.len()
            ),
            limit: format!("{DEFAULT_MAX_SIGNATURES} layers"),
        });
    }
    // Signature payloads and configs are a few hundred bytes; verification refuses anything over
    // MAX_PAYLOAD_BYTES, so copying more would only let a hostile source make us move gigabytes.
    if let Some(big) = std::iter::once(&manifest.config)
        .chain(&manifest.layers)
        .find(|blob| blob.size > MAX_PAYLOAD_BYTES)
    {
        return Err(Error::LimitExceeded {
            what: format!(
                "blob {} of {} bytes in signature manifest {}",
                big.digest,
                big.size,
                digest.signature_tag()
            ),
            limit: format!("{MAX_PAYLOAD_BYTES} bytes"),
        });
    }
    for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
        if !dst.has_blob(&blob.digest).await? {
            let stream = src.blob_stream(blob).await?;
            dst.put_blob_stream(blob, stream).await?;
        }
    }
    let tag = digest.signature_tag();
    if read_signature_manifest(dst, digest).await?.is_none() {
        // Nothing there yet: copy the manifest byte for byte, so its digest is preserved.
        dst.put_manifest(&fetched.bytes, &fetched.media_type, Some(&tag))
            .await?;
        report.manifests += 1;
        report.signatures_copied += manifest.layers.len();
    } else {
        let added = merge_layers(dst, digest, &manifest.layers, DEFAULT_MAX_ATTEMPTS).await?;
        if added > 0 {
            report.manifests += 1;
        }
        report.signatures_copied += added;
    }
    Ok(())
}

/// Largest blob of a referrer copied (bundles are at most 8 MiB; SBOMs larger than this are
/// refused rather than letting a hostile source make us move gigabytes).
const MAX_REFERRER_BLOB_BYTES: u64 = 16 * 1024 * 1024;

/// Copy the `sha256-<hex>.att` manifest of `digest` like the `.sig` one: byte for byte when the
/// destination has none, else merged grow-only. Envelopes are bounded like verification bounds them.
async fn copy_attestations(
    src: &ImageStore,
    dst: &ImageStore,
    digest: &Digest,
    report: &mut CopyReport,
) -> Result<(), Error> {
    let tag = attestation_tag(digest);
    let Some((fetched, manifest)) = read_tagged_manifest(src, &tag).await? else {
        return Ok(());
    };
    if manifest.layers.len() > DEFAULT_MAX_SIGNATURES {
        return Err(Error::LimitExceeded {
            what: format!(
                "attestation manifest {tag} with {} layers",
                manifest.layers.len()
            ),
            limit: format!("{DEFAULT_MAX_SIGNATURES} layers"),
        });
    }
    let max = signet_sign::dsse::MAX_ENVELOPE_BYTES as u64;
    if let Some(big) = std::iter::once(&manifest.config)
        .chain(&manifest.layers)
        .find(|blob| blob.size > max)
    {
        return Err(Error::LimitExceeded {
            what: format!(
                "blob {} of {} bytes in attestation manifest {tag}",
                big.digest, big.size
            ),
            limit: format!("{max} bytes"),
        });
    }
    for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
        if !dst.has_blob(&blob.digest).await? {
            let stream = src.blob_stream(blob).await?;
            dst.put_blob_stream(blob, stream).await?;
        }
    }
    if read_tagged_manifest(dst, &tag).await?.is_none() {
        dst.put_manifest(&fetched.bytes, &fetched.media_type, Some(&tag))
            .await?;
        report.manifests += 1;
        report.attestations_copied += manifest.layers.len();
    } else {
        let added =
            merge_attestation_layers(dst, digest, &manifest.layers, DEFAULT_MAX_ATTEMPTS).await?;
        if added > 0 {
            report.manifests += 1;
        }
        report.attestations_copied += added;
    }
    Ok(())
}

/// Copy the OCI 1.1 referrers of `digest` (at most 100; image manifests only, each blob at most
/// 16 MiB), byte for byte, so the destination lists them (referrers API, tag schema or
/// `index.json`). Referrers the destination already lists are skipped.
async fn copy_referrers(
    src: &ImageStore,
    dst: &ImageStore,
    digest: &Digest,
    report: &mut CopyReport,
) -> Result<(), Error> {
    let listed = src.referrers(digest, None).await?;
    if listed.descriptors.is_empty() {
        return Ok(());
    }
    if listed.descriptors.len() > MAX_BUNDLES {
        return Err(Error::LimitExceeded {
            what: format!("{} referrers of {digest}", listed.descriptors.len()),
            limit: format!("{MAX_BUNDLES} referrers"),
        });
    }
    let present = dst.referrers(digest, None).await?;
    for descriptor in &listed.descriptors {
        if present
            .descriptors
            .iter()
            .any(|d| d.digest == descriptor.digest)
        {
            continue;
        }
        let fetched = src.manifest(descriptor).await?;
        let Manifest::Image(manifest) = &fetched.manifest else {
            return Err(Error::Invalid(format!(
                "referrer {} of {digest} is an index; Signet copies image-manifest referrers only",
                descriptor.digest
            )));
        };
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            if blob.size > MAX_REFERRER_BLOB_BYTES {
                return Err(Error::LimitExceeded {
                    what: format!(
                        "blob {} of {} bytes in referrer {}",
                        blob.digest, blob.size, descriptor.digest
                    ),
                    limit: format!("{MAX_REFERRER_BLOB_BYTES} bytes"),
                });
            }
            if !dst.has_blob(&blob.digest).await? {
                let stream = src.blob_stream(blob).await?;
                dst.put_blob_stream(blob, stream).await?;
            }
        }
        dst.push_referrer(digest, &fetched.bytes, &fetched.media_type)
            .await?;
        report.manifests += 1;
        report.referrers_copied += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use signet_oci::manifest::{OCI_CONFIG, OCI_MANIFEST, SIMPLE_SIGNING};
    use signet_oci::{Descriptor, ImageLocation, OciLayout, RegistryClient, RegistryOptions};

    fn manifest_bytes(config: &Descriptor, layers: &[Descriptor]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": layers,
        }))
        .unwrap()
    }

    /// A layout holding a one-layer image tagged `t` and a `.sig` manifest with `sig_layers`
    /// (whose blobs need not exist: the limits must refuse before any is read).
    fn source(dir: &std::path::Path, sig_layers: Vec<Descriptor>) -> ImageLocation {
        let layout = OciLayout::create_or_open(dir).unwrap();
        let config = b"{}".to_vec();
        layout.write_blob(&config).unwrap();
        let layer = b"layer".to_vec();
        layout.write_blob(&layer).unwrap();
        let config = Descriptor::of(OCI_CONFIG, &config);
        let image = manifest_bytes(
            &config,
            &[Descriptor::of("application/octet-stream", &layer)],
        );
        layout.write_blob(&image).unwrap();
        let image = Descriptor::of(OCI_MANIFEST, &image);
        layout.set_tag("t", &image).unwrap();
        let sig = manifest_bytes(&config, &sig_layers);
        layout.write_blob(&sig).unwrap();
        layout
            .set_tag(
                &image.digest.signature_tag(),
                &Descriptor::of(OCI_MANIFEST, &sig),
            )
            .unwrap();
        format!("oci:{}:t", dir.display()).parse().unwrap()
    }

    async fn copy_from(sig_layers: Vec<Descriptor>) -> Result<CopyReport, Error> {
        let dir = tempfile::tempdir().unwrap();
        let src = source(&dir.path().join("src"), sig_layers);
        let dst: ImageLocation = format!("oci:{}:t", dir.path().join("dst").display())
            .parse()
            .unwrap();
        let client = RegistryClient::new(RegistryOptions::default()).unwrap();
        let src = ImageStore::open(&src, &client).unwrap();
        let dst = ImageStore::open_for_write(&dst, &client).unwrap();
        copy_image(&src, &dst, true).await
    }

    fn signature_layer(seed: u32, size: u64) -> Descriptor {
        let mut layer = Descriptor::of(SIMPLE_SIGNING, &seed.to_be_bytes());
        layer.size = size;
        layer
    }

    #[tokio::test]
    async fn refuses_signature_manifests_a_hostile_source_inflated() {
        // Found by tests/e2e/hostile.rs: without these bounds copy fetched every one of 100,000
        // layers, and streamed a 1 GiB "payload" before its digest could fail.
        let many = (0..=DEFAULT_MAX_SIGNATURES as u32)
            .map(|i| signature_layer(i, 300))
            .collect();
        let err = copy_from(many).await.unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
        assert!(err.to_string().contains("101 layers"), "{err}");

        let err = copy_from(vec![signature_layer(0, 1 << 30)])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
        assert!(err.to_string().contains("1073741824 bytes"), "{err}");
    }
}
