//! cosign 3's bundle format: a Sigstore bundle v0.3 (a DSSE envelope over an in-toto statement,
//! verification material = the managed key's hint) stored as an OCI 1.1 referrer of the image,
//! laid out as cosign's `specs/BUNDLE_SPEC.md` says: `artifactType` and the one layer are the
//! bundle media type, the config is the empty descriptor, `subject` names the image, and the
//! manifest carries the `dev.sigstore.bundle.content`/`.predicateType` and `created` annotations.
//!
//! Writing goes through [`ImageStore::push_referrer`] (the referrers API where the registry
//! has it, else the grow-only `sha256-<hex>` tag index; `index.json` in a layout). Reading lists
//! the referrers of that artifact type and fetches each manifest and bundle by digest, bounded.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Value};
use signet_oci::manifest::OCI_MANIFEST;
use signet_oci::referrers::subject_of;
use signet_oci::store::ImageStore;
use signet_oci::{Descriptor, Digest, FetchedManifest, Manifest, Reference};
use signet_sign::dsse::{Envelope, INTOTO_PAYLOAD_TYPE};
use signet_sign::intoto::{PredicateType, Statement, COSIGN_SIGN_PREDICATE};
use signet_sign::keys::{PublicKey, SigningKey};

use crate::Error;

/// Media type (and referrer `artifactType`) of a Sigstore bundle v0.3.
pub const BUNDLE_V03_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Media types of the older bundle versions, read (never written).
pub const OLDER_BUNDLE_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
];
/// The OCI empty descriptor's media type (the bundle manifest's config).
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// Manifest annotation: `dsse-envelope` or `message-signature`.
pub const CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
/// Manifest annotation: the predicate type of the statement in the bundle.
pub const PREDICATE_TYPE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
/// Manifest annotation: when the bundle was made (RFC 3339).
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
/// Layer annotation: a file name for the bundle.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// Largest bundle blob read (a 4 MiB statement in base64 plus material).
pub const MAX_BUNDLE_BYTES: u64 = 8 * 1024 * 1024;
/// Most bundle referrers examined per image (the cap for `.sig` layers, for the same reason).
pub const MAX_BUNDLES: usize = 100;

/// Which formats `sign` and `attest` write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureFormat {
    /// cosign's legacy tags: `sha256-<hex>.sig` / `.att`.
    #[default]
    Legacy,
    /// A Sigstore bundle as an OCI 1.1 referrer (cosign 3).
    Bundle,
    /// Both, in one run: old and new verifiers accept the same image.
    Both,
}

impl SignatureFormat {
    /// Whether the legacy tag is written.
    pub fn legacy(self) -> bool {
        matches!(self, SignatureFormat::Legacy | SignatureFormat::Both)
    }

    /// Whether a bundle referrer is written.
    pub fn bundle(self) -> bool {
        matches!(self, SignatureFormat::Bundle | SignatureFormat::Both)
    }
}

/// The public-key hint cosign writes into a key-signed bundle: standard base64 of the SHA-256
/// of the key's SubjectPublicKeyInfo DER (cosign's `SignerVerifierKeypair`).
pub fn key_hint(key: &PublicKey) -> String {
    // The key id is that very SHA-256, in hex.
    let raw = hex::decode(key.key_id().as_str()).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// A key-signed Sigstore bundle v0.3 carrying `envelope`, as cosign 3 writes it (no log entry,
/// no timestamp: Signet signs offline).
pub fn bundle_json(envelope: &Envelope, key: &PublicKey) -> Vec<u8> {
    let bundle = json!({
        "mediaType": BUNDLE_V03_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint(key)}},
        "dsseEnvelope": envelope.to_value(),
    });
    serde_json::to_vec(&bundle).unwrap_or_default()
}

/// The referrer manifest for a bundle blob, per cosign's bundle specification.
pub fn bundle_manifest(
    bundle: &Descriptor,
    subject: &Descriptor,
    predicate_type: &PredicateType,
    created: &str,
) -> Vec<u8> {
    let empty = Descriptor::of(EMPTY_MEDIA_TYPE, b"{}");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_V03_MEDIA_TYPE,
        "config": {"mediaType": empty.media_type, "digest": empty.digest.to_string(), "size": empty.size},
        "layers": [{
            "mediaType": BUNDLE_V03_MEDIA_TYPE,
            "digest": bundle.digest.to_string(),
            "size": bundle.size,
            "annotations": {TITLE_ANNOTATION: format!("{}.sigstore.json", bundle.digest.tag_form())},
        }],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest.to_string(), "size": subject.size},
        "annotations": {
            CONTENT_ANNOTATION: "dsse-envelope",
            PREDICATE_TYPE_ANNOTATION: predicate_type.as_str(),
            CREATED_ANNOTATION: created,
        },
    });
    serde_json::to_vec(&manifest).unwrap_or_default()
}

/// One bundle written (or found already there).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BundleWritten {
    /// The image manifest digest the bundle is about.
    pub subject: Digest,
    /// The referrer manifest's digest.
    pub referrer: Digest,
    /// False when a referrer with this very bundle was already there (nothing added).
    pub added: bool,
}

/// Store `envelope` (signed by `key`) as a bundle referrer of `subject` in `store`. A referrer
/// already carrying the same bundle bytes (same statement, same key: the nonces are
/// deterministic) is not added again.
pub async fn push_bundle(
    store: &ImageStore,
    subject: &FetchedManifest,
    envelope: &Envelope,
    key: &PublicKey,
    predicate_type: &PredicateType,
    created: &str,
) -> Result<BundleWritten, Error> {
    let bundle = bundle_json(envelope, key);
    let bundle_descriptor = Descriptor::of(BUNDLE_V03_MEDIA_TYPE, &bundle);
    for existing in read_bundle_manifests(store, &subject.digest).await? {
        if let Ok((manifest, _)) = &existing.manifest {
            if manifest.layers.first().map(|l| &l.digest) == Some(&bundle_descriptor.digest) {
                return Ok(BundleWritten {
                    subject: subject.digest.clone(),
                    referrer: existing.descriptor.digest.clone(),
                    added: false,
                });
            }
        }
    }
    store
        .put_blob(bytes::Bytes::from(bundle), BUNDLE_V03_MEDIA_TYPE)
        .await?;
    store
        .put_blob(bytes::Bytes::from_static(b"{}"), EMPTY_MEDIA_TYPE)
        .await?;
    // The subject's descriptor: its digest and size as stored (the bytes hash to the digest).
    let subject_descriptor = Descriptor::of(&subject.media_type, &subject.bytes);
    let manifest = bundle_manifest(
        &bundle_descriptor,
        &subject_descriptor,
        predicate_type,
        created,
    );
    let listed = store
        .push_referrer(&subject.digest, &manifest, OCI_MANIFEST)
        .await?;
    Ok(BundleWritten {
        subject: subject.digest.clone(),
        referrer: listed.digest,
        added: true,
    })
}

/// Sign `subject` in cosign 3's bundle form: an in-toto statement with predicate type
/// `https://sigstore.dev/cosign/sign/v1`, subject = the digest (annotations as cosign puts
/// them), in a DSSE envelope, stored as a bundle referrer.
pub async fn sign_bundle(
    store: &ImageStore,
    subject: &FetchedManifest,
    key: &SigningKey,
    annotations: &BTreeMap<String, String>,
    created: &str,
) -> Result<BundleWritten, Error> {
    let predicate_type = PredicateType::uri(COSIGN_SIGN_PREDICATE)?;
    let mut statement = Statement::for_image(
        None,
        &subject.digest,
        predicate_type.clone(),
        Value::Object(serde_json::Map::new()),
    );
    if !annotations.is_empty() {
        if let Some(s) = statement.subjects.first_mut() {
            s.annotations = Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            );
        }
    }
    let envelope = Envelope::sign(key, INTOTO_PAYLOAD_TYPE, statement.to_bytes()?);
    push_bundle(
        store,
        subject,
        &envelope,
        &key.public_key(),
        &predicate_type,
        created,
    )
    .await
}

/// A bundle referrer as read: its descriptor, and its manifest and bundle bytes or why they
/// could not be used (a broken candidate is a failed candidate, not an error for the image).
#[derive(Debug, Clone)]
pub struct BundleReferrer {
    /// How the referrer is listed.
    pub descriptor: Descriptor,
    /// The manifest (parsed) and the bundle blob's descriptor, or why not.
    pub manifest: Result<(signet_oci::ImageManifest, Descriptor), String>,
}

/// The bundle referrers of `subject` (artifact type bundle v0.3), each manifest fetched by
/// digest and checked: an image manifest naming `subject`, with exactly one bundle layer.
/// More than [`MAX_BUNDLES`] is an error (as more than 100 `.sig` layers is).
pub async fn read_bundle_manifests(
    store: &ImageStore,
    subject: &Digest,
) -> Result<Vec<BundleReferrer>, Error> {
    let listed = store
        .referrers(subject, Some(BUNDLE_V03_MEDIA_TYPE))
        .await?;
    if listed.descriptors.len() > MAX_BUNDLES {
        return Err(Error::LimitExceeded {
            what: format!("{} bundle referrers of {subject}", listed.descriptors.len()),
            limit: format!("{MAX_BUNDLES} bundles"),
        });
    }
    let mut out = Vec::with_capacity(listed.descriptors.len());
    for descriptor in listed.descriptors {
        let manifest = match store.manifest(&descriptor).await {
            Ok(fetched) => check_bundle_manifest(&fetched, subject),
            Err(e) if matches!(e, signet_oci::Error::Registry { .. }) => return Err(e.into()),
            Err(e) => Err(e.to_string()),
        };
        out.push(BundleReferrer {
            descriptor,
            manifest,
        });
    }
    Ok(out)
}

pub(crate) fn check_bundle_manifest(
    fetched: &FetchedManifest,
    subject: &Digest,
) -> Result<(signet_oci::ImageManifest, Descriptor), String> {
    let Manifest::Image(m) = &fetched.manifest else {
        return Err("the referrer is an index, not a bundle manifest".into());
    };
    match subject_of(&fetched.manifest) {
        Ok(Some(s)) if &s == subject => {}
        Ok(_) => return Err(format!("the referrer's subject is not {subject}")),
        Err(e) => return Err(e.to_string()),
    }
    let [layer] = m.layers.as_slice() else {
        return Err(format!(
            "the bundle manifest has {} layers, not one",
            m.layers.len()
        ));
    };
    if layer.media_type != BUNDLE_V03_MEDIA_TYPE
        && !OLDER_BUNDLE_MEDIA_TYPES.contains(&layer.media_type.as_str())
    {
        return Err(format!(
            "the bundle layer has media type {:?}",
            layer.media_type
        ));
    }
    if layer.size > MAX_BUNDLE_BYTES {
        return Err(format!(
            "the bundle is {} bytes, over the {MAX_BUNDLE_BYTES}-byte limit",
            layer.size
        ));
    }
    Ok((m.clone(), layer.clone()))
}

/// What a bundle carries for verification.
#[derive(Debug)]
pub struct BundleContent {
    /// The public-key hint, if any (informational: the key given is what is checked).
    pub hint: Option<String>,
    /// The DSSE envelope.
    pub envelope: Envelope,
    /// The bundle as sigstore reads it (for keyless verification).
    pub bundle: signet_keyless::Bundle,
}

/// Read a bundle: sigstore's own parser must accept it (signet-keyless: bounds, structure) and
/// it must carry a DSSE envelope (not a message signature). Whether it is signed with a
/// certificate (keyless) or a managed key is [`signet_keyless::Bundle::has_certificate`].
pub fn parse_bundle(bytes: &[u8]) -> Result<BundleContent, String> {
    let bundle = signet_keyless::Bundle::from_json(bytes).map_err(|e| e.to_string())?;
    let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let envelope = value
        .get("dsseEnvelope")
        .ok_or("the bundle carries a message signature, not a DSSE envelope")?;
    let envelope = Envelope::from_value(envelope).map_err(|e| e.to_string())?;
    let hint = value
        .pointer("/verificationMaterial/publicKey/hint")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(BundleContent {
        hint,
        envelope,
        bundle,
    })
}

/// The name a statement's subject carries for an image: its repository.
pub fn subject_name(identity: &Reference) -> String {
    identity.name()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_hint_is_base64_sha256_of_the_spki() {
        let key = SigningKey::generate().public_key();
        let hint = key_hint(&key);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&hint)
            .unwrap();
        assert_eq!(hex::encode(raw), key.key_id().as_str());
    }

    #[test]
    fn key_hint_equals_the_one_in_a_real_managed_key_bundle() {
        // testdata/sigstore-bundles/managed-key-v0.3: a bundle from sigstore-verify's test data.
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/sigstore-bundles/managed-key-v0.3"
        );
        let pem = std::fs::read(format!("{dir}/key.pub")).unwrap();
        let key = PublicKey::from_pem(&pem, "key.pub").unwrap();
        let bundle: Value =
            serde_json::from_slice(&std::fs::read(format!("{dir}/bundle.sigstore.json")).unwrap())
                .unwrap();
        assert_eq!(
            bundle["verificationMaterial"]["publicKey"]["hint"],
            key_hint(&key)
        );
    }

    #[test]
    fn written_bundle_is_read_by_sigstore_and_carries_the_envelope() {
        let key = SigningKey::generate();
        let digest = Digest::sha256(b"image");
        let statement = Statement::for_image(
            None,
            &digest,
            PredicateType::uri(COSIGN_SIGN_PREDICATE).unwrap(),
            json!({}),
        );
        let envelope = Envelope::sign(&key, INTOTO_PAYLOAD_TYPE, statement.to_bytes().unwrap());
        let bytes = bundle_json(&envelope, &key.public_key());
        let content = parse_bundle(&bytes).unwrap();
        assert_eq!(content.envelope, envelope);
        assert_eq!(content.hint.unwrap(), key_hint(&key.public_key()));
        let parsed = signet_keyless::Bundle::from_json(&bytes).unwrap();
        assert_eq!(parsed.version().as_str(), "0.3");
        let (payload_type, payload) = parsed.dsse_payload().unwrap();
        assert_eq!(payload_type, INTOTO_PAYLOAD_TYPE);
        assert_eq!(Statement::parse(payload).unwrap(), statement);
    }

    #[test]
    fn manifest_has_cosigns_shape() {
        let bundle = Descriptor::of(BUNDLE_V03_MEDIA_TYPE, b"bundle");
        let subject = Descriptor::of(OCI_MANIFEST, b"image");
        let bytes = bundle_manifest(
            &bundle,
            &subject,
            &PredicateType::uri(COSIGN_SIGN_PREDICATE).unwrap(),
            "2026-01-01T00:00:00Z",
        );
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["artifactType"], BUNDLE_V03_MEDIA_TYPE);
        assert_eq!(v["config"]["mediaType"], EMPTY_MEDIA_TYPE);
        assert_eq!(v["config"]["size"], 2);
        assert_eq!(
            v["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(v["layers"].as_array().unwrap().len(), 1);
        assert_eq!(
            v["layers"][0]["annotations"][TITLE_ANNOTATION],
            format!("sha256-{}.sigstore.json", bundle.digest.hex())
        );
        assert_eq!(v["subject"]["digest"], subject.digest.to_string());
        assert_eq!(v["annotations"][CONTENT_ANNOTATION], "dsse-envelope");
        assert_eq!(
            v["annotations"][PREDICATE_TYPE_ANNOTATION],
            COSIGN_SIGN_PREDICATE
        );
        let m = Manifest::parse(&bytes, Some(OCI_MANIFEST), "m").unwrap();
        assert_eq!(subject_of(&m).unwrap(), Some(subject.digest));
    }
}
