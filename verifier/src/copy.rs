//! Signature-preserving copy: an image (an index with all its children) and the cosign signatures
//! of every manifest in it, between registries and OCI layouts, every digest checked on the way.

use serde::Serialize;
use signet_oci::store::ImageStore;
use signet_oci::{Digest, FetchedManifest, LayoutSelector, Manifest};

use crate::sign::{merge_layers, DEFAULT_MAX_ATTEMPTS};
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
