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
use signet_oci::{Descriptor, Digest, FetchedManifest, ImageManifest, Manifest, Reference};
use signet_sign::keys::SigningKey;
use signet_sign::payload::SimpleSigningPayload;
use signet_sign::SIGNATURE_ANNOTATION;

use crate::signatures::{signature_manifest, DEFAULT_MAX_SIGNATURES};
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

/// Whether two signature layers are the same signature (same payload, same signature bytes).
fn same_signature(a: &Descriptor, b: &Descriptor) -> bool {
    a.digest == b.digest && a.annotation(SIGNATURE_ANNOTATION) == b.annotation(SIGNATURE_ANNOTATION)
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
    // The payload is the same in every round: storing it before the first read keeps each round's
    // read-to-write window short.
    store
        .put_blob(bytes::Bytes::from(payload.clone()), SIMPLE_SIGNING)
        .await?;
    let present = |existing: &[Descriptor]| holds_equivalent(existing, &layer, &payload, key);
    let added = ensure_layers(
        store,
        digest.signature_tag(),
        std::slice::from_ref(&layer),
        &present,
        max_attempts,
    )
    .await?;
    Ok(added > 0)
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
    let present = |existing: &[Descriptor]| {
        incoming
            .iter()
            .all(|l| existing.iter().any(|e| same_signature(e, l)))
    };
    ensure_layers(
        store,
        digest.signature_tag(),
        incoming,
        &present,
        max_attempts,
    )
    .await
}

/// The tag of cosign's legacy attestation manifest for `digest`: `sha256-<hex>.att`.
pub fn attestation_tag(digest: &Digest) -> String {
    format!("{}.att", digest.tag_form())
}

/// Append an attestation layer (a DSSE envelope blob, `envelope`) to the `sha256-<hex>.att`
/// manifest of `digest` with the same grow-only protocol as signatures. An identical envelope
/// (same statement, same key: ECDSA nonces are deterministic) counts as present. Returns false
/// when it was already there.
pub async fn append_attestation_layer(
    store: &ImageStore,
    digest: &Digest,
    layer: Descriptor,
    envelope: Vec<u8>,
    max_attempts: u32,
) -> Result<bool, Error> {
    store
        .put_blob(bytes::Bytes::from(envelope), &layer.media_type)
        .await?;
    let present = |existing: &[Descriptor]| existing.iter().any(|l| l.digest == layer.digest);
    let added = ensure_layers(
        store,
        attestation_tag(digest),
        std::slice::from_ref(&layer),
        &present,
        max_attempts,
    )
    .await?;
    Ok(added > 0)
}

/// Merge `incoming` attestation layers into the `.att` manifest of `digest` (used by copy).
pub async fn merge_attestation_layers(
    store: &ImageStore,
    digest: &Digest,
    incoming: &[Descriptor],
    max_attempts: u32,
) -> Result<usize, Error> {
    let present = |existing: &[Descriptor]| {
        incoming
            .iter()
            .all(|l| existing.iter().any(|e| same_signature(e, l)))
    };
    ensure_layers(
        store,
        attestation_tag(digest),
        incoming,
        &present,
        max_attempts,
    )
    .await
}

/// Read the image manifest tagged `tag` (a `.sig` or `.att` manifest); `Ok(None)` when absent.
pub async fn read_tagged_manifest(
    store: &ImageStore,
    tag: &str,
) -> Result<Option<(FetchedManifest, ImageManifest)>, Error> {
    let Some(fetched) = store.manifest_by_tag(tag).await? else {
        return Ok(None);
    };
    match &fetched.manifest {
        Manifest::Image(m) => {
            let manifest = m.clone();
            Ok(Some((fetched, manifest)))
        }
        Manifest::Index(_) => Err(Error::InvalidSignatureManifest {
            tag: tag.to_string(),
            reason: "is an index, not an image manifest".into(),
        }),
    }
}

/// Registry errors tolerated per signature manifest before giving up. Under concurrent writers
/// `docker-registry` briefly answers with errors (it rewrites its link files in place, so a
/// manifest PUT can find a blob another writer is re-linking "unknown"); real failures repeat.
const MAX_TRANSIENT_ERRORS: u32 = 4;

/// Whether `error` can be such a passing registry failure (HTTP errors and failed requests; never
/// authentication, a missing image or invalid content).
fn is_transient(error: &Error) -> bool {
    matches!(error, Error::Image(signet_oci::Error::Registry { .. }))
}

/// What one round of [`ensure_layers`] ended with.
enum Step {
    /// Everything wanted (and everything seen) is present and confirmed.
    Done,
    /// We wrote (and paused); read again.
    Wrote,
    /// Something we wrote or saw has gone missing; merge again at once.
    Lost,
    /// The manifest changed while we prepared our write; nothing written, start over.
    Changed,
}

/// The state of one writer's read-merge-write rounds on one `.sig` manifest.
struct Ensure<'a> {
    store: &'a ImageStore,
    tag: String,
    wanted: &'a [Descriptor],
    /// Whether `wanted` (or equivalents) are all in the given layers.
    present: &'a dyn Fn(&[Descriptor]) -> bool,
    /// Whether to pause and re-check (no lock held: a registry).
    pause: bool,
    /// Every layer seen in any read: none of them is ever dropped by this writer, so a signature
    /// one writer lost to a stale write is put back by any other writer that saw it.
    seen: Vec<Descriptor>,
    /// How many wanted layers were missing when we first wrote.
    added: Option<usize>,
}

/// Make sure the `.sig` (or `.att`) manifest `tag` of `digest` holds `wanted` (as judged by
/// `present`) and keeps every layer seen meanwhile; returns how many of `wanted` were missing at
/// our first write.
async fn ensure_layers(
    store: &ImageStore,
    tag: String,
    wanted: &[Descriptor],
    present: &dyn Fn(&[Descriptor]) -> bool,
    max_attempts: u32,
) -> Result<usize, Error> {
    let attempts = max_attempts.max(2);
    // In a layout the update lock keeps other Signet processes out for the whole read-merge-write,
    // so nothing can overwrite us and no pause is needed; a registry offers no such lock.
    let lock = lock_layout(store).await?;
    let mut state = Ensure {
        store,
        tag,
        wanted,
        present,
        pause: lock.is_none(),
        seen: Vec::new(),
        added: None,
    };
    let mut attempt = 0;
    let mut restarts_left = attempts.saturating_mul(4);
    let mut transient_left = MAX_TRANSIENT_ERRORS;
    while attempt < attempts {
        match state.round(attempt).await {
            Ok(Step::Done) => return Ok(state.added.unwrap_or(0)),
            Ok(Step::Wrote | Step::Lost) => attempt += 1,
            Ok(Step::Changed) if restarts_left > 0 => {
                restarts_left -= 1;
                let jitter = u64::from(rand_core::OsRng.next_u32() % 30);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            Ok(Step::Changed) => attempt += 1,
            Err(e) if is_transient(&e) && transient_left > 0 => {
                transient_left -= 1;
                tracing::debug!(tag = %state.tag, attempt, error = %e, "registry error while signatures are being written; retrying");
                settle(attempt).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Contended {
        tag: state.tag,
        attempts,
    })
}

impl Ensure<'_> {
    /// Read the `.sig` manifest, remembering every layer in it.
    async fn read(&mut self) -> Result<Option<(FetchedManifest, ImageManifest)>, Error> {
        let current = read_tagged_manifest(self.store, &self.tag).await?;
        if let Some((_, manifest)) = &current {
            // Verifiers examine at most this many signatures (cosign too): one more would make
            // every signature of the image unverifiable, and a hostile manifest could hold 100,000.
            if manifest.layers.len() >= DEFAULT_MAX_SIGNATURES {
                return Err(Error::LimitExceeded {
                    what: format!(
                        "signature manifest {} with {} layers",
                        self.tag,
                        manifest.layers.len()
                    ),
                    limit: format!(
                        "{DEFAULT_MAX_SIGNATURES} signatures (verifiers examine no more; not adding another)"
                    ),
                });
            }
            for layer in &manifest.layers {
                if !self.seen.iter().any(|s| same_signature(s, layer)) {
                    self.seen.push(layer.clone());
                }
            }
        }
        Ok(current)
    }

    /// Whether `layers` hold everything wanted and everything seen.
    fn complete(&self, layers: &[Descriptor]) -> bool {
        (self.present)(layers)
            && self
                .seen
                .iter()
                .all(|s| layers.iter().any(|l| same_signature(l, s)))
    }

    async fn round(&mut self, attempt: u32) -> Result<Step, Error> {
        let current = self.read().await?;
        let layers = current
            .as_ref()
            .map(|(_, m)| m.layers.clone())
            .unwrap_or_default();
        let wrote = self.added.is_some();
        if self.complete(&layers) {
            if !wrote || !self.pause {
                return Ok(Step::Done);
            }
            // Our write is visible; confirm once more after a longer pause, since a writer that
            // read before our write may still replace it.
            confirm_pause().await;
            let again = self.read().await?;
            let layers = again.map(|(_, m)| m.layers).unwrap_or_default();
            if self.complete(&layers) {
                return Ok(Step::Done);
            }
            tracing::debug!(tag = %self.tag, attempt, "a signature was replaced by a concurrent writer after it was seen; merging again");
            return Ok(Step::Lost);
        }
        if wrote {
            tracing::debug!(tag = %self.tag, attempt, "a signature was not seen after our write (a concurrent writer replaced it); merging again");
        }
        let mut merged = layers.clone();
        for layer in &self.seen {
            if !merged.iter().any(|m| same_signature(m, layer)) {
                merged.push(layer.clone());
            }
        }
        let mut missing_wanted = 0;
        if !(self.present)(&merged) {
            for layer in self.wanted {
                if !merged.iter().any(|m| same_signature(m, layer)) {
                    merged.push(layer.clone());
                    missing_wanted += 1;
                }
            }
        }
        let previous = current.as_ref().map(|(_, m)| m);
        let (manifest, config) = signature_manifest(previous, merged)?;
        self.store
            .put_blob(bytes::Bytes::from(config), signet_oci::manifest::OCI_CONFIG)
            .await?;
        if self.pause {
            // Uploading the config took a while; if another writer got in meanwhile, writing now
            // would drop its signature. This check shrinks the window in which a write can be
            // stale to one GET and one PUT.
            let fresh = read_tagged_manifest(self.store, &self.tag).await?;
            if fresh.map(|(f, _)| f.digest) != current.as_ref().map(|(f, _)| f.digest.clone()) {
                tracing::debug!(tag = %self.tag, attempt, "signature manifest changed while we prepared our write; starting over");
                return Ok(Step::Changed);
            }
        }
        // Set before the write is sent: a write that reports an error may still have been
        // applied, and must then be confirmed like any other.
        self.added.get_or_insert(missing_wanted);
        self.store
            .put_manifest(
                &manifest,
                signet_oci::manifest::OCI_MANIFEST,
                Some(&self.tag),
            )
            .await?;
        tracing::debug!(tag = %self.tag, attempt, "wrote signature manifest");
        if self.pause {
            settle(attempt).await;
        }
        Ok(Step::Wrote)
    }
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

/// The pause before the confirming read: it must outlast the window between another writer's
/// last read and its write (one GET and one PUT, see `Ensure::round`).
async fn confirm_pause() {
    let jitter = u64::from(rand_core::OsRng.next_u32() % 200);
    tokio::time::sleep(Duration::from_millis(200 + jitter)).await;
}

async fn settle(attempt: u32) {
    let jitter = u64::from(rand_core::OsRng.next_u32() % 100);
    let base = 50u64.saturating_mul(1 << attempt.min(4));
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}
