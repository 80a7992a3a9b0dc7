//! Signing: build the simple-signing payload for an image digest, sign it, and append it to the
//! image's `sha256-<hex>.sig` manifest without ever dropping a signature already there.
//!
//! The distribution API has no compare-and-swap, so concurrent signers can overwrite each other's
//! manifest. Each signer therefore reads, merges its layer into what it read, writes, waits a
//! little, reads again, and repeats until its layer is seen to have survived (see ARCHITECTURE.md).
//! In an OCI layout a lock file serialises the whole read-merge-write instead.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand_core::RngCore;
use serde::Serialize;
use serde_json::{Map, Value};
use signet_oci::layout::{LayoutLock, UPDATE_LOCK_FILE};
use signet_oci::manifest::SIMPLE_SIGNING;
use signet_oci::store::ImageStore;
use signet_oci::{Descriptor, Digest, Manifest, Reference};
use signet_sign::keys::SigningKey;
use signet_sign::payload::SimpleSigningPayload;
use signet_sign::SIGNATURE_ANNOTATION;

use crate::signatures::{read_signature_manifest, signature_manifest};
use crate::Error;

/// Which identity the payload's `docker-reference` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignedIdentity {
    /// The repository only (cosign's style; verified with `matchRepository`).
    #[default]
    Repository,
    /// The reference as given, tag included (podman's `matchRepoDigestOrExact` accepts it).
    Reference,
}

/// Read-merge-write rounds before a signer gives up under contention.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 12;

/// What to sign and how.
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// Annotations written to the payload's `optional` section.
    pub annotations: BTreeMap<String, String>,
    /// The identity style.
    pub signed_identity: SignedIdentity,
    /// Also sign every child manifest of an index.
    pub recursive: bool,
    /// Read-merge-write rounds before giving up under contention.
    pub max_attempts: u32,
}

impl Default for SignOptions {
    fn default() -> Self {
        SignOptions {
            annotations: BTreeMap::new(),
            signed_identity: SignedIdentity::default(),
            recursive: false,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// One manifest signed.
#[derive(Debug, Clone, Serialize)]
pub struct Signed {
    /// The manifest digest signed.
    pub digest: Digest,
    /// The `docker-reference` written.
    pub docker_reference: String,
    /// The signature tag written to.
    pub signature_tag: String,
    /// False when an identical signature was already there (nothing was added).
    pub added: bool,
}

/// The payload's `docker-reference` for `identity` under `style`.
pub fn docker_reference(identity: &Reference, style: SignedIdentity) -> String {
    match style {
        SignedIdentity::Repository => identity.name(),
        SignedIdentity::Reference => match (identity.tag(), identity.digest()) {
            (Some(tag), _) => format!("{}:{tag}", identity.name()),
            (None, Some(digest)) => format!("{}@{digest}", identity.name()),
            (None, None) => identity.name(),
        },
    }
}

/// Sign the image in `image` (and with `recursive`, each child of an index), storing signatures
/// in `signatures` (the same store unless signatures live in another repository). `identity` is
/// the registry reference the payload names.
pub async fn sign_image(
    image: &ImageStore,
    signatures: &ImageStore,
    identity: &Reference,
    key: &SigningKey,
    options: &SignOptions,
) -> Result<Vec<Signed>, Error> {
    let top = image.resolve().await?;
    let mut digests = vec![top.digest.clone()];
    if options.recursive {
        if let Manifest::Index(index) = &top.manifest {
            digests.extend(
                index
                    .manifests
                    .iter()
                    .filter(|d| d.is_manifest())
                    .map(|d| d.digest.clone()),
            );
        }
    }
    let mut signed = Vec::with_capacity(digests.len());
    for digest in digests {
        signed.push(sign_digest(signatures, identity, &digest, key, options).await?);
    }
    Ok(signed)
}

/// Sign one manifest digest and append the signature to its `.sig` manifest in `signatures`.
pub async fn sign_digest(
    signatures: &ImageStore,
    identity: &Reference,
    digest: &Digest,
    key: &SigningKey,
    options: &SignOptions,
) -> Result<Signed, Error> {
    let docker_reference = docker_reference(identity, options.signed_identity);
    let optional = if options.annotations.is_empty() {
        None
    } else {
        Some(
            options
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<String, Value>>(),
        )
    };
    let payload = SimpleSigningPayload {
        docker_reference: docker_reference.clone(),
        manifest_digest: digest.clone(),
        optional,
    }
    .to_bytes();
    let signature = signet_sign::signature::sign(key, &payload);
    let mut layer = Descriptor::of(SIMPLE_SIGNING, &payload);
    layer.annotations = Some(BTreeMap::from([(
        SIGNATURE_ANNOTATION.to_string(),
        signature,
    )]));
    let added = append_layer(
        signatures,
        digest,
        layer,
        payload,
        key,
        options.max_attempts,
    )
    .await?;
    Ok(Signed {
        digest: digest.clone(),
        docker_reference,
        signature_tag: digest.signature_tag(),
        added,
    })
}

/// Whether `existing` already holds a signature equivalent to `layer`: the same payload, signed by
/// the same key (ECDSA signatures differ between runs, so the bytes of the signature cannot tell).
fn holds_equivalent(
    existing: &[Descriptor],
    layer: &Descriptor,
    payload: &[u8],
    key: &SigningKey,
) -> bool {
    let public = key.public_key();
    existing.iter().any(|l| {
        l.digest == layer.digest
            && l.annotation(SIGNATURE_ANNOTATION)
                .is_some_and(|sig| signet_sign::signature::verify(&public, payload, sig).is_ok())
    })
}

/// Append `layer` (with its `payload` blob) to the `.sig` manifest of `digest`, merging with
/// whatever is there and confirming the result survived concurrent writers. Returns false when an
/// equivalent signature was already present.
pub async fn append_layer(
    store: &ImageStore,
    digest: &Digest,
    layer: Descriptor,
    payload: Vec<u8>,
    key: &SigningKey,
    max_attempts: u32,
) -> Result<bool, Error> {
    let tag = digest.signature_tag();
    let attempts = max_attempts.max(2);
    // In a layout the update lock keeps other Signet processes out for the whole read-merge-write,
    // so nothing can overwrite us and no pause is needed; a registry offers no such lock.
    let lock = lock_layout(store).await?;
    let pause = lock.is_none();
    // The payload is the same in every round: storing it before the first read keeps each round's
    // read-to-write window (in which a concurrent writer's manifest can be overwritten) short.
    store
        .put_blob(bytes::Bytes::from(payload.clone()), SIMPLE_SIGNING)
        .await?;
    let mut wrote = false;
    for attempt in 0..attempts {
        let current = read_signature_manifest(store, digest).await?;
        let existing_layers = current
            .as_ref()
            .map(|(_, m)| m.layers.clone())
            .unwrap_or_default();
        if holds_equivalent(&existing_layers, &layer, &payload, key) {
            if !wrote {
                return Ok(false);
            }
            if !pause {
                return Ok(true);
            }
            // Our write is visible; confirm once more after a pause, since a writer that read
            // before our write may still replace it.
            settle(attempt).await;
            let again = read_signature_manifest(store, digest).await?;
            let layers = again.map(|(_, m)| m.layers).unwrap_or_default();
            if holds_equivalent(&layers, &layer, &payload, key) {
                return Ok(true);
            }
            tracing::debug!(%tag, attempt, "signature replaced by a concurrent writer after it was seen; merging again");
            continue;
        }
        if wrote {
            tracing::debug!(%tag, attempt, "signature not seen after our write (a concurrent writer replaced it); merging again");
        }
        let mut layers = existing_layers;
        layers.push(layer.clone());
        let previous = current.as_ref().map(|(_, m)| m);
        let (manifest, config) = signature_manifest(previous, layers)?;
        store
            .put_blob(bytes::Bytes::from(config), signet_oci::manifest::OCI_CONFIG)
            .await?;
        store
            .put_manifest(&manifest, signet_oci::manifest::OCI_MANIFEST, Some(&tag))
            .await?;
        tracing::debug!(%tag, attempt, "wrote signature manifest");
        wrote = true;
        if pause {
            settle(attempt).await;
        }
    }
    Err(Error::Contended { tag, attempts })
}

/// Merge `incoming` signature layers into the `.sig` manifest of `digest` in `store` (used by copy):
/// layers already present (same digest and signature annotation) are not added twice, and nothing
/// already there is dropped. Blobs must already be in `store`.
pub async fn merge_layers(
    store: &ImageStore,
    digest: &Digest,
    incoming: &[Descriptor],
    max_attempts: u32,
) -> Result<usize, Error> {
    let tag = digest.signature_tag();
    let same = |a: &Descriptor, b: &Descriptor| {
        a.digest == b.digest
            && a.annotation(SIGNATURE_ANNOTATION) == b.annotation(SIGNATURE_ANNOTATION)
    };
    let attempts = max_attempts.max(2);
    let lock = lock_layout(store).await?;
    let pause = lock.is_none();
    let mut added_total = None;
    for attempt in 0..attempts {
        let current = read_signature_manifest(store, digest).await?;
        let mut layers = current
            .as_ref()
            .map(|(_, m)| m.layers.clone())
            .unwrap_or_default();
        let missing: Vec<&Descriptor> = incoming
            .iter()
            .filter(|l| !layers.iter().any(|e| same(e, l)))
            .collect();
        if missing.is_empty() {
            return Ok(added_total.unwrap_or(0));
        }
        if added_total.is_some() {
            tracing::debug!(%tag, attempt, "merged signatures not seen after our write; merging again");
        }
        added_total.get_or_insert(missing.len());
        layers.extend(missing.into_iter().cloned());
        let (manifest, config) = signature_manifest(current.as_ref().map(|(_, m)| m), layers)?;
        store
            .put_blob(bytes::Bytes::from(config), signet_oci::manifest::OCI_CONFIG)
            .await?;
        store
            .put_manifest(&manifest, signet_oci::manifest::OCI_MANIFEST, Some(&tag))
            .await?;
        if pause {
            settle(attempt).await;
        }
    }
    Err(Error::Contended { tag, attempts })
}

/// How long a signer waits for another Signet process's update of the same layout (an update
/// holds the lock for milliseconds; only a stopped process holds it longer).
const LAYOUT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// For a layout, wait for its update lock (polling, so the runtime is not blocked and a stuck
/// holder cannot hang us for ever); `None` for a registry.
async fn lock_layout(store: &ImageStore) -> Result<Option<LayoutLock>, Error> {
    let ImageStore::Layout { layout, .. } = store else {
        return Ok(None);
    };
    let deadline = Instant::now() + LAYOUT_LOCK_TIMEOUT;
    loop {
        if let Some(lock) = layout.try_lock_updates()? {
            return Ok(Some(lock));
        }
        if Instant::now() >= deadline {
            return Err(Error::Image(signet_oci::Error::io(
                layout.dir().join(UPDATE_LOCK_FILE),
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "held by another process for over {} s",
                        LAYOUT_LOCK_TIMEOUT.as_secs()
                    ),
                ),
            )));
        }
        let jitter = u64::from(rand_core::OsRng.next_u32() % 10);
        tokio::time::sleep(Duration::from_millis(5 + jitter)).await;
    }
}

async fn settle(attempt: u32) {
    let jitter = u64::from(rand_core::OsRng.next_u32() % 100);
    let base = 50u64.saturating_mul(1 << attempt.min(4));
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}
