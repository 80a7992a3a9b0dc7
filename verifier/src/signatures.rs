//! Cosign signature storage: reading the `sha256-<hex>.sig` manifest of an image and checking each
//! of its layers, and building the manifest that appends a new signature to the existing ones.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use signet_oci::manifest::{OCI_CONFIG, OCI_MANIFEST, SIMPLE_SIGNING};
use signet_oci::store::ImageStore;
use signet_oci::{Descriptor, Digest, FetchedManifest, ImageManifest, Manifest};
use signet_sign::keys::{KeyId, PublicKey};
use signet_sign::payload::SimpleSigningPayload;
use signet_sign::SIGNATURE_ANNOTATION;

use crate::Error;

/// How many signature layers are examined at most by default (cosign's own cap).
pub const DEFAULT_MAX_SIGNATURES: usize = 100;
/// Largest payload blob read; real payloads are a few hundred bytes.
pub const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;

/// One check made on a candidate signature, with a stable name.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable kebab-case name: `media-type`, `payload-size`, `blob-digest`, `payload`,
    /// `manifest-digest`, `signature`, `identity`, `annotations`.
    pub name: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// What was found (the reason, when it failed).
    pub detail: String,
}

/// One layer of the signature manifest and what was found about it.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// Position of the layer in the signature manifest.
    pub index: usize,
    /// Digest of the payload blob.
    pub layer_digest: Digest,
    /// Every check made, in order.
    pub checks: Vec<Check>,
    /// The signed `docker-reference`, when the payload parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_reference: Option<String>,
    /// The payload's `optional` section, when the payload parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<Map<String, Value>>,
    /// Key ids of the given keys whose signature check passed.
    pub verified_by: Vec<KeyId>,
    /// The exact payload bytes, when they could be read.
    #[serde(skip)]
    pub payload_bytes: Option<Vec<u8>>,
}

impl Candidate {
    /// Whether every check made passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// Record a check.
    pub fn record(&mut self, name: &'static str, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            passed,
            detail: detail.into(),
        });
    }

    /// The payload's `optional` values that are strings (annotations given with `-a`).
    pub fn string_annotations(&self) -> BTreeMap<String, String> {
        self.optional
            .iter()
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect()
    }
}

/// Read the signature manifest for `digest` from `store`; `Ok(None)` when there is none.
pub async fn read_signature_manifest(
    store: &ImageStore,
    digest: &Digest,
) -> Result<Option<(FetchedManifest, ImageManifest)>, Error> {
    let tag = digest.signature_tag();
    let Some(fetched) = store.manifest_by_tag(&tag).await? else {
        return Ok(None);
    };
    match &fetched.manifest {
        Manifest::Image(m) => {
            let manifest = m.clone();
            Ok(Some((fetched, manifest)))
        }
        Manifest::Index(_) => Err(Error::InvalidSignatureManifest {
            tag,
            reason: "is an index, not an image manifest".into(),
        }),
    }
}

/// Check every simple-signing layer of `manifest` for `image_digest`: payload blob digest and
/// size, strict payload parse, the digest claim, and the signature with each of `keys`.
/// Identity and annotations are left to the caller, who knows the rule in force.
pub async fn check_layers(
    store: &ImageStore,
    manifest: &ImageManifest,
    image_digest: &Digest,
    keys: &[PublicKey],
    max_signatures: usize,
) -> Result<Vec<Candidate>, Error> {
    let signatures: Vec<(usize, &Descriptor)> = manifest
        .layers
        .iter()
        .enumerate()
        .filter(|(_, layer)| layer.media_type == SIMPLE_SIGNING)
        .collect();
    if signatures.len() > max_signatures {
        return Err(Error::LimitExceeded {
            what: format!(
                "signature manifest {} with {} signatures",
                image_digest.signature_tag(),
                signatures.len()
            ),
            limit: format!("{max_signatures} signatures"),
        });
    }
    let mut candidates = Vec::with_capacity(signatures.len());
    for (index, layer) in signatures {
        candidates.push(check_layer(store, index, layer, image_digest, keys).await?);
    }
    Ok(candidates)
}

async fn check_layer(
    store: &ImageStore,
    index: usize,
    layer: &Descriptor,
    image_digest: &Digest,
    keys: &[PublicKey],
) -> Result<Candidate, Error> {
    let mut candidate = Candidate {
        index,
        layer_digest: layer.digest.clone(),
        checks: Vec::new(),
        docker_reference: None,
        optional: None,
        verified_by: Vec::new(),
        payload_bytes: None,
    };
    if layer.size > MAX_PAYLOAD_BYTES {
        candidate.record(
            "payload-size",
            false,
            format!(
                "payload of {} bytes exceeds {MAX_PAYLOAD_BYTES}",
                layer.size
            ),
        );
        return Ok(candidate);
    }
    let payload = match store.blob_bytes(layer, MAX_PAYLOAD_BYTES).await {
        Ok(bytes) => bytes,
        Err(
            e @ (signet_oci::Error::DigestMismatch { .. } | signet_oci::Error::SizeMismatch { .. }),
        ) => {
            candidate.record("blob-digest", false, e.to_string());
            return Ok(candidate);
        }
        Err(e) => return Err(e.into()),
    };
    candidate.record(
        "blob-digest",
        true,
        format!("payload blob matches {}", layer.digest),
    );
    match SimpleSigningPayload::parse_strict(&payload) {
        Ok(parsed) => {
            candidate.record(
                "payload",
                true,
                "simple-signing payload, cosign container image signature",
            );
            let matches = &parsed.manifest_digest == image_digest;
            candidate.record(
                "manifest-digest",
                matches,
                if matches {
                    format!("payload names {image_digest}")
                } else {
                    format!(
                        "payload names {}, not the image's {image_digest}",
                        parsed.manifest_digest
                    )
                },
            );
            candidate.docker_reference = Some(parsed.docker_reference.clone());
            candidate.optional = parsed.optional.clone();
        }
        Err(e) => candidate.record("payload", false, e.to_string()),
    }
    match layer.annotation(SIGNATURE_ANNOTATION) {
        None => candidate.record(
            "signature",
            false,
            format!("no {SIGNATURE_ANNOTATION} annotation"),
        ),
        Some(signature) => {
            // Every key's reason, once each (a malformed signature fails the same way for all).
            let mut errors: Vec<String> = Vec::new();
            for key in keys {
                match signet_sign::signature::verify(key, &payload, signature) {
                    Ok(()) => candidate.verified_by.push(key.key_id()),
                    Err(e) => {
                        let text = e.to_string();
                        if !errors.contains(&text) {
                            errors.push(text);
                        }
                    }
                }
            }
            if candidate.verified_by.is_empty() {
                let why = if errors.is_empty() {
                    "no key given".to_string()
                } else {
                    errors.join("; ")
                };
                candidate.record(
                    "signature",
                    false,
                    format!("no given key verifies it: {why}"),
                );
            } else {
                let ids: Vec<String> = candidate
                    .verified_by
                    .iter()
                    .map(|k| k.to_string())
                    .collect();
                candidate.record(
                    "signature",
                    true,
                    format!("verified by key {}", ids.join(", ")),
                );
            }
        }
    }
    candidate.payload_bytes = Some(payload);
    Ok(candidate)
}

/// The config blob of a signature manifest, as containers/image writes it: deterministic and
/// naming each layer's digest, so that appending a layer changes it consistently.
pub fn signature_config(layers: &[Descriptor]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.to_string()).collect();
    serde_json::json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string()
    .into_bytes()
}

/// The signature manifest holding `layers`, with its config blob.
pub fn signature_manifest(
    previous: Option<&ImageManifest>,
    layers: Vec<Descriptor>,
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let config = signature_config(&layers);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        config: Descriptor::of(OCI_CONFIG, &config),
        layers,
        annotations: previous.and_then(|p| p.annotations.clone()),
        extra: previous.map(|p| p.extra.clone()).unwrap_or_default(),
    };
    let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok((bytes, config))
}
