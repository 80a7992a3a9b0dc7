//! Attestations: in-toto statements about an image, signed in DSSE envelopes, stored as cosign's
//! legacy `sha256-<hex>.att` manifest (one `application/vnd.dsse.envelope.v1+json` layer per
//! attestation, with the `predicateType` annotation) and/or as Sigstore bundle referrers.
//!
//! Verification examines every candidate (each `.att` layer, each bundle referrer) and records
//! each mandatory check in [`AttestationChecks`], one field per check, built only here: envelope
//! (blob digest, bound, strict parse), signature (DSSE PAE with a given key), payload type
//! (in-toto), statement (strict parse), subject (names the image digest) and predicate type
//! (the one asked for; for `.att` layers also equal to the layer's annotation). A check that
//! could not run is `Skipped`, which never passes; only a candidate whose every check passed
//! yields its statement.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use signet_oci::referrers::Referrers;
use signet_oci::store::ImageStore;
use signet_oci::{Descriptor, Digest, FetchedManifest, Reference};
use signet_policy::AttestationEvidence;
use signet_sign::dsse::{
    Envelope, DSSE_ENVELOPE_MEDIA_TYPE, INTOTO_PAYLOAD_TYPE, MAX_ENVELOPE_BYTES,
    MAX_ENVELOPE_SIGNATURES,
};
use signet_sign::intoto::{PredicateType, Statement, COSIGN_SIGN_PREDICATE};
use signet_sign::keys::{KeyId, PublicKey, SigningKey};
use signet_sign::SIGNATURE_ANNOTATION;

use crate::bundle_sign::{
    check_bundle_manifest, key_hint, parse_bundle, push_bundle, BundleWritten, SignatureFormat,
    BUNDLE_V03_MEDIA_TYPE, MAX_BUNDLES, MAX_BUNDLE_BYTES, PREDICATE_TYPE_ANNOTATION,
};
use crate::keyless::{CertificateTrust, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION};
use crate::sign::{append_attestation_layer, attestation_tag, read_tagged_manifest};
use crate::signatures::{CheckResult, DEFAULT_MAX_SIGNATURES};
use crate::Error;

/// Largest certificate or chain annotation read from an `.att` layer.
const MAX_CERTIFICATE_ANNOTATION_BYTES: usize = 64 * 1024;
/// Most certificates in an `.att` layer's chain annotation.
const MAX_CHAIN_CERTIFICATES: usize = 8;

/// The `.att` layer annotation naming the statement's predicate type (cosign's).
pub const PREDICATE_TYPE_LAYER_ANNOTATION: &str = "predicateType";

/// What to attest and how.
#[derive(Debug, Clone)]
pub struct AttestOptions {
    /// The predicate's type.
    pub predicate_type: PredicateType,
    /// The predicate (a JSON object).
    pub predicate: Value,
    /// Legacy `.att`, bundle referrer, or both.
    pub format: SignatureFormat,
    /// When the attestation is made (RFC 3339), for the bundle manifest's `created` annotation.
    pub created: String,
    /// Read-merge-write rounds for the `.att` manifest.
    pub max_attempts: u32,
    /// A certificate for the signing key (PEM) and its chain (PEM, root last), written as
    /// cosign's `dev.sigstore.cosign/certificate` and `/chain` annotations of the `.att` layer
    /// (a private PKI's signer; legacy format only).
    pub certificate: Option<(String, Option<String>)>,
}

/// What `attest` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Attested {
    /// The image manifest digest attested.
    pub digest: Digest,
    /// The predicate type.
    pub predicate_type: PredicateType,
    /// The `.att` tag, and whether the envelope was added (false: already there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy: Option<(String, bool)>,
    /// The bundle referrer written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<BundleWritten>,
}

/// Attest the image in `store` (named `identity`): an in-toto v1 statement (subject: the
/// repository and the manifest digest) signed by `key` in a DSSE envelope, stored per
/// `options.format`.
pub async fn attest_image(
    store: &ImageStore,
    identity: &Reference,
    key: &SigningKey,
    options: &AttestOptions,
) -> Result<Attested, Error> {
    if !options.predicate.is_object() {
        return Err(Error::Invalid(
            "the predicate must be a JSON object".to_string(),
        ));
    }
    if options.certificate.is_some() && options.format.bundle() {
        return Err(Error::Invalid(
            "a certificate is written only into the legacy .att format (a bundle's certificate is Fulcio's)"
                .to_string(),
        ));
    }
    if let Some((leaf, chain)) = &options.certificate {
        crate::keyless::pem_certificates(leaf, 1)
            .map_err(|e| Error::Invalid(format!("the certificate: {e}")))?;
        if let Some(chain) = chain {
            crate::keyless::pem_certificates(chain, MAX_CHAIN_CERTIFICATES)
                .map_err(|e| Error::Invalid(format!("the certificate chain: {e}")))?;
        }
    }
    let image = store.resolve().await?;
    let statement = Statement::for_image(
        Some(&identity.name()),
        &image.digest,
        options.predicate_type.clone(),
        options.predicate.clone(),
    );
    let envelope = Envelope::sign(key, INTOTO_PAYLOAD_TYPE, statement.to_bytes()?);
    let legacy = if options.format.legacy() {
        let bytes = envelope.to_json();
        let mut layer = Descriptor::of(DSSE_ENVELOPE_MEDIA_TYPE, &bytes);
        let mut annotations = BTreeMap::from([
            (SIGNATURE_ANNOTATION.to_string(), String::new()),
            (
                PREDICATE_TYPE_LAYER_ANNOTATION.to_string(),
                options.predicate_type.as_str().to_string(),
            ),
        ]);
        if let Some((leaf, chain)) = &options.certificate {
            annotations.insert(CERTIFICATE_ANNOTATION.to_string(), leaf.clone());
            if let Some(chain) = chain {
                annotations.insert(CHAIN_ANNOTATION.to_string(), chain.clone());
            }
        }
        layer.annotations = Some(annotations);
        let added =
            append_attestation_layer(store, &image.digest, layer, bytes, options.max_attempts)
                .await?;
        Some((attestation_tag(&image.digest), added))
    } else {
        None
    };
    let bundle = if options.format.bundle() {
        Some(
            push_bundle(
                store,
                &image,
                &envelope,
                &key.public_key(),
                &options.predicate_type,
                &options.created,
            )
            .await?,
        )
    } else {
        None
    };
    Ok(Attested {
        digest: image.digest,
        predicate_type: options.predicate_type.clone(),
        legacy,
        bundle,
    })
}

/// How to verify attestations.
#[derive(Debug, Default)]
pub struct VerifyAttestationOptions {
    /// Trusted keys (any one suffices per envelope).
    pub keys: Vec<PublicKey>,
    /// Trusted certificate signers: a Sigstore root and identity (Fulcio certificates with log
    /// and timestamp evidence: bundle referrers and keyless `.att` layers), or a private PKI
    /// (`.att` layers whose certificate chains to its CA roots).
    pub certificates: Option<CertificateTrust>,
    /// Only statements of this predicate type are accepted (`None`: any).
    pub predicate_type: Option<PredicateType>,
}

/// Where a candidate came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AttestationSource {
    /// A layer of the `sha256-<hex>.att` manifest.
    Legacy {
        /// Its position among the manifest's layers.
        index: usize,
        /// The envelope blob's digest.
        layer_digest: Digest,
    },
    /// A Sigstore bundle referrer.
    Bundle {
        /// The referrer manifest's digest.
        manifest_digest: Digest,
    },
}

/// Who a candidate says signed it (read from the candidate, before any check: a claim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SignedWith {
    /// A managed key; bundles carry the key's hint (base64 SHA-256 of its SPKI).
    Key {
        /// The bundle's public-key hint, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        hint: Option<String>,
    },
    /// A certificate (Fulcio or a private PKI).
    Certificate,
    /// Not known: the candidate could not be read that far.
    Unknown,
}

/// Every mandatory check on one candidate attestation. Built only by this module; a candidate
/// is accepted only when every field passed.
#[derive(Debug, Clone)]
pub struct AttestationChecks {
    source: AttestationSource,
    signed_with: SignedWith,
    envelope: CheckResult,
    signature: CheckResult,
    payload_type: CheckResult,
    statement: CheckResult,
    subject: CheckResult,
    predicate_type: CheckResult,
    verified_by: Vec<KeyId>,
    /// The certificate that verified the signature, for a certificate-signed candidate.
    certificate: Option<VerifiedCertificate>,
    parsed: Option<Statement>,
}

impl AttestationChecks {
    /// The checks by their stable names, in order.
    pub fn checks(&self) -> [(&'static str, &CheckResult); 6] {
        [
            ("envelope", &self.envelope),
            ("signature", &self.signature),
            ("payload-type", &self.payload_type),
            ("statement", &self.statement),
            ("subject", &self.subject),
            ("predicate-type", &self.predicate_type),
        ]
    }

    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks().iter().all(|(_, c)| c.passed())
    }

    /// Where the candidate came from.
    pub fn source(&self) -> &AttestationSource {
        &self.source
    }

    /// The verified statement: only when every check passed.
    pub fn verified_statement(&self) -> Option<&Statement> {
        if self.passed() {
            self.parsed.as_ref()
        } else {
            None
        }
    }

    /// The keys that verified the envelope.
    pub fn verified_by(&self) -> &[KeyId] {
        &self.verified_by
    }

    /// Who the candidate says signed it.
    pub fn signed_with(&self) -> &SignedWith {
        &self.signed_with
    }

    /// Whether the candidate claims to be signed by one of `keys`: key-signed with a hint naming
    /// one of them, or with no hint, or not readable far enough to tell (fail closed: such a
    /// candidate that does not verify is evidence against the image, not another signer's).
    pub fn claims_one_of(&self, keys: &[PublicKey]) -> bool {
        match &self.signed_with {
            SignedWith::Key { hint: Some(hint) } => keys.iter().any(|k| &key_hint(k) == hint),
            SignedWith::Key { hint: None } | SignedWith::Unknown => true,
            SignedWith::Certificate => false,
        }
    }

    /// The policy's evidence from a verified cosign image-signature bundle (predicate type
    /// `https://sigstore.dev/cosign/sign/v1` naming `digest`): one entry per key that verified
    /// it; the format signs no repository, and the annotations are those of the subject naming
    /// `digest` (where cosign's `sign -a` puts them).
    pub fn signature_evidence(&self, digest: &Digest) -> Vec<signet_policy::SignatureEvidence> {
        let Some(statement) = self.verified_statement() else {
            return Vec::new();
        };
        if statement.predicate_type.as_str() != COSIGN_SIGN_PREDICATE
            || !matches!(self.source, AttestationSource::Bundle { .. })
        {
            return Vec::new();
        }
        let annotations: BTreeMap<String, String> = statement
            .subjects
            .iter()
            .filter(|s| {
                s.digest
                    .get(digest.algorithm().as_str())
                    .is_some_and(|hex| hex == digest.hex())
            })
            .flat_map(|s| s.annotations.iter().flatten())
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect();
        self.verified_by
            .iter()
            .map(|key| signet_policy::SignatureEvidence {
                signer: signet_policy::verdict::Signer::Key(key.clone()),
                format: signet_policy::verdict::SignatureFormat::Bundle,
                docker_reference: None,
                manifest_digest_matches: statement.names_digest(digest),
                annotations: annotations.clone(),
                tlog: None,
            })
            .collect()
    }

    fn failed_at(source: AttestationSource, envelope: CheckResult) -> AttestationChecks {
        let skipped = || CheckResult::Skipped("not checked: envelope failed".to_string());
        AttestationChecks {
            source,
            signed_with: SignedWith::Unknown,
            envelope,
            signature: skipped(),
            payload_type: skipped(),
            statement: skipped(),
            subject: skipped(),
            predicate_type: skipped(),
            verified_by: Vec::new(),
            certificate: None,
            parsed: None,
        }
    }
}

/// Check one key-signed envelope (already read and parsed) against the image digest, keys and
/// wanted type. `annotated` is the predicate type the container (layer or manifest) claims;
/// `hint` the key hint it names.
fn check_key_signed(
    source: AttestationSource,
    envelope_detail: String,
    envelope: &Envelope,
    image_digest: &Digest,
    options: &VerifyAttestationOptions,
    annotated: Option<&str>,
    hint: Option<String>,
) -> AttestationChecks {
    let verified_by: Vec<KeyId> = options
        .keys
        .iter()
        .filter(|k| envelope.verify(k).is_ok())
        .map(PublicKey::key_id)
        .collect();
    let signature = if options.keys.is_empty() {
        CheckResult::Failed("signed with a managed key, but no --key was given".into())
    } else if verified_by.is_empty() {
        CheckResult::Failed(format!(
            "the DSSE signature does not verify with the given key(s) ({})",
            options
                .keys
                .iter()
                .map(|k| k.key_id().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    } else {
        CheckResult::Passed(format!(
            "verified by {}",
            verified_by
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    };
    let mut checks = checks_after_signature(
        source,
        envelope_detail,
        envelope,
        image_digest,
        options,
        annotated,
        signature,
    );
    checks.signed_with = SignedWith::Key { hint };
    checks.verified_by = verified_by;
    checks
}

/// The checks after the signature (which the caller made, with a key or a certificate).
fn checks_after_signature(
    source: AttestationSource,
    envelope_detail: String,
    envelope: &Envelope,
    image_digest: &Digest,
    options: &VerifyAttestationOptions,
    annotated: Option<&str>,
    signature: CheckResult,
) -> AttestationChecks {
    let payload_type = if envelope.payload_type == INTOTO_PAYLOAD_TYPE {
        CheckResult::Passed(INTOTO_PAYLOAD_TYPE.to_string())
    } else {
        CheckResult::Failed(format!(
            "payloadType is {:?}, not {INTOTO_PAYLOAD_TYPE:?}",
            envelope.payload_type.chars().take(100).collect::<String>()
        ))
    };
    let (statement, parsed) = match Statement::parse(&envelope.payload) {
        Ok(s) => (
            CheckResult::Passed(format!("{} statement", s.statement_type)),
            Some(s),
        ),
        Err(e) => (CheckResult::Failed(e.to_string()), None),
    };
    let (subject, predicate_type) = match &parsed {
        None => (
            CheckResult::Skipped("not checked: statement failed".into()),
            CheckResult::Skipped("not checked: statement failed".into()),
        ),
        Some(s) => {
            let subject = if s.names_digest(image_digest) {
                CheckResult::Passed(format!("a subject names {image_digest}"))
            } else {
                CheckResult::Failed(format!(
                    "no subject names {image_digest} (subjects: {})",
                    s.subjects
                        .iter()
                        .take(5)
                        .flat_map(|x| x.digest.iter().map(|(a, h)| format!("{a}:{h}")))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            };
            let found = s.predicate_type.as_str();
            let predicate_type = match (&options.predicate_type, annotated) {
                (Some(wanted), _) if wanted.as_str() != found => CheckResult::Failed(format!(
                    "predicate type is {found}, not the {wanted} asked for"
                )),
                (_, Some(claimed)) if claimed != found => CheckResult::Failed(format!(
                    "the statement's predicate type {found} differs from the annotation's {claimed}"
                )),
                _ => CheckResult::Passed(found.to_string()),
            };
            (subject, predicate_type)
        }
    };
    AttestationChecks {
        source,
        signed_with: SignedWith::Certificate,
        envelope: CheckResult::Passed(envelope_detail),
        signature,
        payload_type,
        statement,
        subject,
        predicate_type,
        verified_by: Vec::new(),
        certificate: None,
        parsed,
    }
}

/// The outcome of verifying an image's attestations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttestationOutcome {
    /// At least one candidate passed every check.
    Verified,
    /// The image has no attestations (no `.att` layers, no bundle referrers).
    NoAttestations,
    /// Candidates exist but none passed every check.
    NoneVerified,
}

/// Every candidate and its checks.
#[derive(Debug, Clone)]
pub struct AttestationReport {
    /// The image as named.
    pub image: String,
    /// Its manifest digest.
    pub digest: Digest,
    /// The outcome.
    pub outcome: AttestationOutcome,
    /// Every candidate examined.
    pub candidates: Vec<AttestationChecks>,
    /// The predicate type asked for.
    pub predicate_type: Option<PredicateType>,
}

impl AttestationReport {
    /// The candidates that passed every check.
    pub fn verified(&self) -> impl Iterator<Item = &AttestationChecks> {
        self.candidates.iter().filter(|c| c.passed())
    }
}

#[derive(Serialize)]
struct CheckView<'a> {
    name: &'static str,
    passed: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    skipped: bool,
    detail: &'a str,
}

#[derive(Serialize)]
struct CandidateView<'a> {
    source: &'a AttestationSource,
    signed_with: &'a SignedWith,
    passed: bool,
    checks: Vec<CheckView<'a>>,
    verified_by: &'a [KeyId],
    #[serde(skip_serializing_if = "Option::is_none")]
    predicate_type: Option<&'a str>,
}

impl Serialize for AttestationChecks {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CandidateView {
            source: &self.source,
            signed_with: &self.signed_with,
            passed: self.passed(),
            checks: self
                .checks()
                .iter()
                .map(|(name, c)| CheckView {
                    name,
                    passed: c.passed(),
                    skipped: matches!(c, CheckResult::Skipped(_)),
                    detail: c.detail(),
                })
                .collect(),
            verified_by: &self.verified_by,
            predicate_type: self.parsed.as_ref().map(|s| s.predicate_type.as_str()),
        }
        .serialize(serializer)
    }
}

impl Serialize for AttestationReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            image: &'a str,
            digest: &'a Digest,
            outcome: AttestationOutcome,
            #[serde(skip_serializing_if = "Option::is_none")]
            predicate_type: Option<&'a PredicateType>,
            candidates: &'a [AttestationChecks],
        }
        View {
            image: &self.image,
            digest: &self.digest,
            outcome: self.outcome,
            predicate_type: self.predicate_type.as_ref(),
            candidates: &self.candidates,
        }
        .serialize(serializer)
    }
}

/// Verify the attestations of the image in `store`: every `.att` layer and every bundle
/// referrer, at most 100 of each (more is an error: verifiers examine no more).
pub async fn verify_attestations(
    store: &ImageStore,
    options: &VerifyAttestationOptions,
) -> Result<AttestationReport, Error> {
    let image = store.resolve().await?;
    let candidates = attestation_candidates(store, &image.digest, options).await?;
    let outcome = if candidates.is_empty() {
        AttestationOutcome::NoAttestations
    } else if candidates.iter().any(AttestationChecks::passed) {
        AttestationOutcome::Verified
    } else {
        AttestationOutcome::NoneVerified
    };
    Ok(AttestationReport {
        image: store.display_name(),
        digest: image.digest,
        outcome,
        candidates,
        predicate_type: options.predicate_type.clone(),
    })
}

/// Every candidate attestation of the manifest `digest` in `store` (`.att` layers, then bundle
/// referrers) with its checks; the same bounds as [`verify_attestations`].
pub async fn attestation_candidates(
    store: &ImageStore,
    digest: &Digest,
    options: &VerifyAttestationOptions,
) -> Result<Vec<AttestationChecks>, Error> {
    let mut read = read_legacy(store, digest).await?;
    read.extend(read_bundles(&mut BundleReads::new(store, digest), None).await?);
    Ok(read.iter().map(|c| assess(c, digest, options)).collect())
}

/// The cosign image-signature bundles (`sign --format bundle`) referring to `digest`, checked
/// with `keys`: statements of predicate type `https://sigstore.dev/cosign/sign/v1` naming the
/// digest. Referrers whose manifest announces another predicate type (attestations) are not
/// signatures and are not read.
pub async fn signature_bundle_candidates(
    store: &ImageStore,
    digest: &Digest,
    keys: &[PublicKey],
) -> Result<Vec<AttestationChecks>, Error> {
    signature_bundles(&mut BundleReads::new(store, digest), keys).await
}

/// [`signature_bundle_candidates`] from the referrers one judgement reads.
pub async fn signature_bundles(
    reads: &mut BundleReads<'_>,
    keys: &[PublicKey],
) -> Result<Vec<AttestationChecks>, Error> {
    let options = VerifyAttestationOptions {
        keys: keys.to_vec(),
        certificates: None,
        predicate_type: Some(PredicateType::uri(COSIGN_SIGN_PREDICATE)?),
    };
    let digest = reads.subject().clone();
    let read = read_bundles(reads, Some(COSIGN_SIGN_PREDICATE)).await?;
    Ok(read.iter().map(|c| assess(c, &digest, &options)).collect())
}

/// The Sigstore bundle referrers of one image digest as one judgement reads them: listed once
/// (the referrers API, else the `sha256-<hex>` tag index; artifact type bundle v0.3, the type
/// every reader wants), each manifest and bundle blob fetched at most once, for every reader —
/// key-signed signature bundles, certificate-signed ones (`crate::keyless::policy_evidence`) and
/// attestation bundles. Nothing is listed until a reader asks. What is kept was checked by its
/// digest when fetched; a failed fetch is not kept.
pub struct BundleReads<'s> {
    store: &'s ImageStore,
    subject: Digest,
    listed: Option<Referrers>,
    manifests: HashMap<Digest, FetchedManifest>,
    blobs: HashMap<Digest, Vec<u8>>,
}

impl<'s> BundleReads<'s> {
    /// Nothing read yet for `subject` in `store`.
    pub fn new(store: &'s ImageStore, subject: &Digest) -> BundleReads<'s> {
        BundleReads {
            store,
            subject: subject.clone(),
            listed: None,
            manifests: HashMap::new(),
            blobs: HashMap::new(),
        }
    }

    /// The image digest whose referrers these are.
    pub fn subject(&self) -> &Digest {
        &self.subject
    }

    /// The bundle referrers as listed (descriptors: unverified until fetched by digest).
    pub async fn listed(&mut self) -> Result<&Referrers, Error> {
        let listed = match self.listed.take() {
            Some(listed) => listed,
            None => {
                self.store
                    .referrers(&self.subject, Some(BUNDLE_V03_MEDIA_TYPE))
                    .await?
            }
        };
        Ok(self.listed.insert(listed))
    }

    /// The referrer manifest `descriptor` names, fetched by digest and checked.
    pub async fn manifest(
        &mut self,
        descriptor: &Descriptor,
    ) -> Result<FetchedManifest, signet_oci::Error> {
        if let Some(kept) = self.manifests.get(&descriptor.digest) {
            if kept.bytes.len() as u64 == descriptor.size {
                return Ok(kept.clone());
            }
        }
        let fetched = self.store.manifest(descriptor).await?;
        self.manifests
            .insert(descriptor.digest.clone(), fetched.clone());
        Ok(fetched)
    }

    /// The blob `descriptor` names, at most `limit` bytes, checked against its digest.
    pub async fn blob(
        &mut self,
        descriptor: &Descriptor,
        limit: u64,
    ) -> Result<Vec<u8>, signet_oci::Error> {
        if let Some(kept) = self.blobs.get(&descriptor.digest) {
            if kept.len() as u64 == descriptor.size && descriptor.size <= limit {
                return Ok(kept.clone());
            }
        }
        let bytes = self.store.blob_bytes(descriptor, limit).await?;
        self.blobs.insert(descriptor.digest.clone(), bytes.clone());
        Ok(bytes)
    }
}

/// What a candidate carries to verify its signature with.
enum Material {
    /// A managed key (a bundle names it by its hint).
    Key { hint: Option<String> },
    /// An `.att` layer's cosign certificate annotations (`certificate`, `chain`, `bundle`).
    LayerCertificate(Box<Descriptor>),
    /// A bundle with a certificate.
    BundleCertificate(Box<signet_keyless::Bundle>),
}

/// A candidate as read (the fetches done), before any signature check.
struct ReadCandidate {
    source: AttestationSource,
    /// The envelope with its description, the predicate type its container claims and the
    /// signing material; or the failed envelope check.
    read: Result<(String, Envelope, Option<String>, Material), CheckResult>,
}

/// A blob of at most `limit` bytes; a bad blob is a failed check, a registry error an error.
async fn fetch_bounded(
    store: &ImageStore,
    layer: &Descriptor,
    limit: u64,
    what: &str,
) -> Result<Result<Vec<u8>, CheckResult>, Error> {
    if layer.size > limit {
        return Ok(Err(CheckResult::Failed(format!(
            "the {what} is {} bytes, over the {limit}-byte limit",
            layer.size
        ))));
    }
    match store.blob_bytes(layer, limit).await {
        Ok(bytes) => Ok(Ok(bytes)),
        Err(e @ signet_oci::Error::Registry { .. }) => Err(e.into()),
        Err(e) => Ok(Err(CheckResult::Failed(e.to_string()))),
    }
}

async fn read_legacy(store: &ImageStore, digest: &Digest) -> Result<Vec<ReadCandidate>, Error> {
    let tag = attestation_tag(digest);
    let Some((_, manifest)) = read_tagged_manifest(store, &tag).await? else {
        return Ok(Vec::new());
    };
    let layers: Vec<(usize, &Descriptor)> = manifest
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.media_type == DSSE_ENVELOPE_MEDIA_TYPE)
        .collect();
    if layers.len() > DEFAULT_MAX_SIGNATURES {
        return Err(Error::LimitExceeded {
            what: format!("attestation manifest {tag} with {} envelopes", layers.len()),
            limit: format!("{DEFAULT_MAX_SIGNATURES} attestations"),
        });
    }
    let mut out = Vec::with_capacity(layers.len());
    for (index, layer) in layers {
        let source = AttestationSource::Legacy {
            index,
            layer_digest: layer.digest.clone(),
        };
        let bytes = fetch_bounded(store, layer, MAX_ENVELOPE_BYTES as u64, "envelope").await?;
        let read = bytes.and_then(|bytes| {
            let envelope =
                Envelope::parse(&bytes).map_err(|e| CheckResult::Failed(e.to_string()))?;
            let material = if layer.annotation(CERTIFICATE_ANNOTATION).is_some() {
                Material::LayerCertificate(Box::new(layer.clone()))
            } else {
                Material::Key { hint: None }
            };
            Ok((
                format!("{tag} layer {index}: blob matches its digest; DSSE envelope parsed"),
                envelope,
                layer
                    .annotation(PREDICATE_TYPE_LAYER_ANNOTATION)
                    .map(str::to_string),
                material,
            ))
        });
        out.push(ReadCandidate { source, read });
    }
    Ok(out)
}

/// The bundle referrers of the digest `reads` is about: each manifest fetched by digest and
/// checked (an image manifest naming the subject, with exactly one bundle layer); more than
/// [`MAX_BUNDLES`] is an error (as more than 100 `.sig` layers is). With `only_type`, those
/// whose manifest announces another predicate type are left out unread.
async fn read_bundles(
    reads: &mut BundleReads<'_>,
    only_type: Option<&str>,
) -> Result<Vec<ReadCandidate>, Error> {
    let digest = reads.subject().clone();
    let listed = reads.listed().await?.descriptors.clone();
    if listed.len() > MAX_BUNDLES {
        return Err(Error::LimitExceeded {
            what: format!("{} bundle referrers of {digest}", listed.len()),
            limit: format!("{MAX_BUNDLES} bundles"),
        });
    }
    let mut out = Vec::new();
    for descriptor in listed {
        let source = AttestationSource::Bundle {
            manifest_digest: descriptor.digest.clone(),
        };
        let checked = match reads.manifest(&descriptor).await {
            Ok(fetched) => check_bundle_manifest(&fetched, &digest),
            Err(e @ signet_oci::Error::Registry { .. }) => return Err(e.into()),
            Err(e) => Err(e.to_string()),
        };
        let (manifest, layer) = match checked {
            Ok(found) => found,
            Err(reason) => {
                out.push(ReadCandidate {
                    source,
                    read: Err(CheckResult::Failed(reason)),
                });
                continue;
            }
        };
        let annotated = manifest
            .annotations
            .as_ref()
            .and_then(|a| a.get(PREDICATE_TYPE_ANNOTATION))
            .cloned();
        if let (Some(wanted), Some(announced)) = (only_type, &annotated) {
            if announced != wanted {
                continue;
            }
        }
        let bytes = if layer.size > MAX_BUNDLE_BYTES {
            Err(CheckResult::Failed(format!(
                "the bundle is {} bytes, over the {MAX_BUNDLE_BYTES}-byte limit",
                layer.size
            )))
        } else {
            match reads.blob(&layer, MAX_BUNDLE_BYTES).await {
                Ok(bytes) => Ok(bytes),
                Err(e @ signet_oci::Error::Registry { .. }) => return Err(e.into()),
                Err(e) => Err(CheckResult::Failed(e.to_string())),
            }
        };
        let read = bytes.and_then(|bytes| {
            let content = parse_bundle(&bytes).map_err(CheckResult::Failed)?;
            let version = content.bundle.version().as_str();
            let (detail, material) = if content.bundle.has_certificate() {
                (
                    format!(
                        "bundle referrer {}: bundle {version} with a DSSE envelope, signed with a certificate",
                        descriptor.digest
                    ),
                    Material::BundleCertificate(Box::new(content.bundle)),
                )
            } else {
                (
                    format!(
                        "bundle referrer {}: bundle {version} with a DSSE envelope{}",
                        descriptor.digest,
                        content
                            .hint
                            .as_ref()
                            .map(|h| format!(", key hint {h}"))
                            .unwrap_or_default()
                    ),
                    Material::Key { hint: content.hint },
                )
            };
            Ok((detail, content.envelope, annotated, material))
        });
        out.push(ReadCandidate { source, read });
    }
    Ok(out)
}

/// Every check on one candidate as read (pure apart from the certificate verifier).
fn assess(
    candidate: &ReadCandidate,
    digest: &Digest,
    options: &VerifyAttestationOptions,
) -> AttestationChecks {
    let source = candidate.source.clone();
    let (detail, envelope, annotated, material) = match &candidate.read {
        Ok(read) => read,
        Err(failed) => return AttestationChecks::failed_at(source, failed.clone()),
    };
    let annotated = annotated.as_deref();
    let (signature, certificate) = match material {
        Material::Key { hint } => {
            return check_key_signed(
                source,
                detail.clone(),
                envelope,
                digest,
                options,
                annotated,
                hint.clone(),
            )
        }
        Material::BundleCertificate(bundle) => {
            certificate_signature(CertificateSource::Bundle(bundle), envelope, digest, options)
        }
        Material::LayerCertificate(layer) => {
            certificate_signature(CertificateSource::Layer(layer), envelope, digest, options)
        }
    };
    let mut checks = checks_after_signature(
        source,
        detail.clone(),
        envelope,
        digest,
        options,
        annotated,
        signature,
    );
    checks.certificate = certificate;
    checks
}

/// A certificate that verified a candidate's signature, and when.
#[derive(Debug, Clone)]
struct VerifiedCertificate {
    claims: signet_keyless::CertificateClaims,
    hostnames: Vec<String>,
    /// When the certificate was checked to be valid (log or timestamp time; "now" for a PKI).
    verified_time: i64,
    /// The Rekor entry's integrated time, when a log entry verified.
    integrated_time: Option<i64>,
}

/// The Sigstore bundle a keyless `.att` layer spells: the certificate annotations as for a
/// `.sig` layer (`crate::keyless::legacy_bundle_json`), carrying the layer's DSSE envelope
/// instead of a message signature (the Rekor entry is an `intoto` or `dsse` entry over it).
fn legacy_attestation_bundle(
    layer: &Descriptor,
    envelope: &Envelope,
) -> Result<signet_keyless::Bundle, String> {
    let mut layer = layer.clone();
    // cosign's `.att` layers carry an empty signature annotation: the signature is the
    // envelope's.
    layer
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(SIGNATURE_ANNOTATION.to_string(), String::new());
    let mut bundle = crate::keyless::legacy_bundle_json(&layer)?;
    let object = bundle
        .as_object_mut()
        .ok_or("the legacy bundle is not an object")?;
    object.remove("messageSignature");
    object.insert("dsseEnvelope".to_string(), envelope.to_value());
    let bytes = serde_json::to_vec(&bundle).map_err(|e| e.to_string())?;
    signet_keyless::Bundle::from_json(&bytes).map_err(|e| e.to_string())
}

/// Where a certificate-signed candidate's certificate is.
enum CertificateSource<'a> {
    /// A bundle referrer's own material.
    Bundle(&'a signet_keyless::Bundle),
    /// A keyless `.att` layer's cosign annotations.
    Layer(&'a Descriptor),
}

/// Verify a certificate-signed envelope under the options' certificate trust. Sigstore: the
/// bundle (a referrer's, or the one an `.att` layer's annotations spell) through signet-keyless
/// — chain at the log or timestamp time, the Rekor entry over the envelope, the DSSE signature,
/// the in-toto subject against the image digest — then the certificate's identity. A private
/// PKI (`.att` layers): the chain to its CA roots at its `now`, and the DSSE signature by the
/// certificate's key over the PAE.
fn certificate_signature(
    source: CertificateSource<'_>,
    envelope: &Envelope,
    image_digest: &Digest,
    options: &VerifyAttestationOptions,
) -> (CheckResult, Option<VerifiedCertificate>) {
    let refused = |why: String| (CheckResult::Failed(why), None);
    let Some(trust) = &options.certificates else {
        return refused(
            "signed with a certificate, but no certificate identity or CA was given".into(),
        );
    };
    match trust {
        CertificateTrust::Sigstore { verifier, identity } => {
            let bundle = match source {
                CertificateSource::Bundle(bundle) => bundle.clone(),
                CertificateSource::Layer(layer) => {
                    match legacy_attestation_bundle(layer, envelope) {
                        Ok(bundle) => bundle,
                        Err(why) => return refused(format!("material: {why}")),
                    }
                }
            };
            let Ok(digest) = image_digest
                .to_string()
                .parse::<signet_keyless::Sha256Digest>()
            else {
                return refused(format!(
                    "{image_digest}: only SHA-256 image digests can be verified against a bundle"
                ));
            };
            let verified = match verifier.verify(
                signet_keyless::Artifact::Digest(digest),
                &bundle,
                signet_keyless::Signer::Certificate,
            ) {
                Ok(verified) => verified,
                Err(e) => {
                    return refused(format!(
                        "{}: {e}",
                        e.check().map_or("not-verified", |c| c.code())
                    ))
                }
            };
            let Some(claims) = verified.certificate.clone() else {
                return refused("the bundle carries no certificate".into());
            };
            let Some(verified_time) = verified.verified_times.first().copied() else {
                return refused("no verified time for the certificate".into());
            };
            let integrated_time = verified.log_entries.iter().find_map(|e| e.integrated_time);
            match identity.matches(&crate::keyless::policy_claims(&claims)) {
                Ok(()) => (
                    CheckResult::Passed(format!(
                        "certificate chain, log and timestamp evidence verified; certificate names {} (issuer {})",
                        claims.subjects.first().map_or("?", |s| s.as_str()),
                        claims.issuer.as_deref().unwrap_or("?")
                    )),
                    Some(VerifiedCertificate {
                        claims,
                        hostnames: Vec::new(),
                        verified_time,
                        integrated_time,
                    }),
                ),
                Err(mismatch) => refused(format!("{}: {mismatch}", mismatch.code())),
            }
        }
        CertificateTrust::Pki {
            trust,
            email,
            hostname,
            now,
        } => {
            let CertificateSource::Layer(layer) = source else {
                return refused(
                    "a private PKI verifies .att layers only (a bundle's certificate is Fulcio's)"
                        .into(),
                );
            };
            let (leaf, chain) = match layer_certificates(layer) {
                Ok(found) => found,
                Err(why) => return refused(format!("material: {why}")),
            };
            let message = signet_sign::dsse::pae(&envelope.payload_type, &envelope.payload);
            let mut last = None;
            let mut verified = None;
            for signature in envelope.signatures.iter().take(MAX_ENVELOPE_SIGNATURES) {
                let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(&signature.sig)
                else {
                    continue;
                };
                match trust.verify(&leaf, &chain, *now, &message, &raw) {
                    Ok(found) => {
                        verified = Some(found);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            let Some(found) = verified else {
                return refused(match last {
                    Some(e) => format!("{}: {e}", e.check().map_or("not-verified", |c| c.code())),
                    None => "no envelope signature is base64".into(),
                });
            };
            let mut missing = Vec::new();
            if let Some(email) = email {
                if !found.emails.contains(email) {
                    missing.push(format!("email {email} (has {:?})", found.emails));
                }
            }
            if let Some(hostname) = hostname {
                if !found.hostnames.contains(hostname) {
                    missing.push(format!("hostname {hostname} (has {:?})", found.hostnames));
                }
            }
            if !missing.is_empty() {
                return refused(format!(
                    "certificate-identity: the certificate lacks {}",
                    missing.join(", ")
                ));
            }
            (
                CheckResult::Passed(format!(
                    "certificate chains to a configured CA root at {}; its key verifies the DSSE signature",
                    signet_keyless::rfc3339(*now)
                )),
                Some(VerifiedCertificate {
                    claims: signet_keyless::CertificateClaims {
                        subjects: found
                            .emails
                            .iter()
                            .map(|e| signet_keyless::SubjectName::Email(e.clone()))
                            .collect(),
                        issuer: None,
                        github: Default::default(),
                        ci: Default::default(),
                        not_before: found.not_before,
                        not_after: found.not_after,
                    },
                    hostnames: found.hostnames,
                    verified_time: *now,
                    integrated_time: None,
                }),
            )
        }
    }
}

/// The leaf certificate and chain intermediates (DER) of an `.att` layer's cosign annotations;
/// the chain's last certificate (its root) is dropped: trust anchors come from the CA roots.
fn layer_certificates(layer: &Descriptor) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    let bounded = |key: &str| -> Result<Option<&str>, String> {
        match layer.annotation(key) {
            Some(v) if v.len() > MAX_CERTIFICATE_ANNOTATION_BYTES => Err(format!(
                "annotation {key} of {} bytes exceeds {MAX_CERTIFICATE_ANNOTATION_BYTES}",
                v.len()
            )),
            other => Ok(other),
        }
    };
    let leaf = bounded(CERTIFICATE_ANNOTATION)?
        .ok_or_else(|| format!("no {CERTIFICATE_ANNOTATION} annotation"))?;
    let leaf = crate::keyless::pem_certificates(leaf, 1)
        .map_err(|e| format!("{CERTIFICATE_ANNOTATION}: {e}"))?
        .remove(0);
    let mut chain = match bounded(CHAIN_ANNOTATION)? {
        Some(pem) => crate::keyless::pem_certificates(pem, MAX_CHAIN_CERTIFICATES)
            .map_err(|e| format!("{CHAIN_ANNOTATION}: {e}"))?,
        None => Vec::new(),
    };
    chain.pop();
    Ok((leaf, chain))
}

/// The Rekor log evidence a Sigstore-verified certificate candidate gives under `trust`.
fn tlog_evidence(
    trust: &signet_policy::trust::TrustSource,
    integrated_time: Option<i64>,
) -> Option<signet_policy::verdict::TlogEvidence> {
    match (trust, integrated_time) {
        (signet_policy::trust::TrustSource::Sigstore(root), Some(integrated_time)) => {
            Some(signet_policy::verdict::TlogEvidence {
                log: signet_policy::trust::LogSource::Sigstore(root.clone()),
                integrated_time,
            })
        }
        _ => None,
    }
}

impl AttestationChecks {
    /// The policy's attestation evidence from this candidate: one entry per key that verified
    /// it, or one for the certificate that did (verified under `trust`); none unless every
    /// check passed.
    pub fn policy_evidence(
        &self,
        trust: Option<&signet_policy::trust::TrustSource>,
    ) -> Result<Vec<AttestationEvidence>, Error> {
        use signet_policy::verdict::{CertificateEvidence, Signer};
        let Some(statement) = self.verified_statement() else {
            return Ok(Vec::new());
        };
        let format = match self.source {
            AttestationSource::Legacy { .. } => signet_policy::verdict::SignatureFormat::Legacy,
            AttestationSource::Bundle { .. } => signet_policy::verdict::SignatureFormat::Bundle,
        };
        let subject = serde_json::to_value(&statement.subjects)
            .map_err(|e| Error::Invalid(format!("attestation subject: {e}")))?;
        let evidence = |signer: Signer, tlog| AttestationEvidence {
            signer,
            format,
            predicate_type: statement.predicate_type.as_str().to_string(),
            subject: subject.clone(),
            predicate: statement.predicate.clone(),
            tlog,
        };
        Ok(match (&self.certificate, trust) {
            (Some(certificate), Some(trust)) => vec![evidence(
                Signer::Certificate(Box::new(CertificateEvidence {
                    claims: crate::keyless::policy_claims(&certificate.claims),
                    emails: certificate
                        .claims
                        .subjects
                        .iter()
                        .filter_map(|s| match s {
                            signet_keyless::SubjectName::Email(e) => Some(e.clone()),
                            _ => None,
                        })
                        .collect(),
                    hostnames: certificate.hostnames.clone(),
                    trust: trust.clone(),
                    verified_time: certificate.verified_time,
                })),
                tlog_evidence(trust, certificate.integrated_time),
            )],
            (Some(_), None) => Vec::new(),
            (None, _) => self
                .verified_by
                .iter()
                .map(|key| evidence(Signer::Key(key.clone()), None))
                .collect(),
        })
    }
}

/// Verified attestations of the digest `reads` is about as policy evidence, and every candidate
/// with its checks for the report: in the `formats` an attestation signer of the scope accepts
/// (a format none accepts cannot change the verdict and is not read), read once, checked with
/// the policy's keys, and the certificate-signed ones
/// again under each trust source the policy names (Sigstore roots: bundle referrers and
/// keyless `.att` layers; `pki` CA roots: `.att` layers). Who signed is the policy's to judge.
pub async fn policy_attestations(
    reads: &mut BundleReads<'_>,
    formats: &[signet_policy::verdict::SignatureFormat],
    policy: &crate::enforce::PolicyFile,
    now: i64,
) -> Result<(Vec<AttestationEvidence>, Vec<AttestationChecks>), Error> {
    use signet_policy::verdict::SignatureFormat as Stored;
    let digest = &reads.subject().clone();
    let mut read = Vec::new();
    if formats.contains(&Stored::Legacy) {
        read.extend(read_legacy(reads.store, digest).await?);
    }
    if formats.contains(&Stored::Bundle) {
        read.extend(read_bundles(reads, None).await?);
    }
    let keyed = VerifyAttestationOptions {
        keys: policy.keys.clone(),
        ..VerifyAttestationOptions::default()
    };
    let mut evidence = Vec::new();
    let mut candidates = Vec::new();
    let mut untrusted = Vec::new();
    for candidate in &read {
        let checks = assess(candidate, digest, &keyed);
        evidence.extend(checks.policy_evidence(None)?);
        // Certificate-signed candidates are reported under each trust source below, or as
        // refused when the policy names none.
        if checks.signed_with == SignedWith::Certificate {
            untrusted.push(checks);
        } else {
            candidates.push(checks);
        }
    }
    let certified: Vec<&ReadCandidate> = read
        .iter()
        .filter(|c| {
            matches!(
                &c.read,
                Ok((
                    _,
                    _,
                    _,
                    Material::LayerCertificate(_) | Material::BundleCertificate(_)
                ))
            )
        })
        .collect();
    if certified.is_empty() {
        return Ok((evidence, candidates));
    }
    let mut checked_under_a_source = false;
    for source in policy.policy().trust_sources() {
        // A Fulcio CA named without a Sigstore root verifies only legacy `.sig` layers.
        let crate::keyless::PolicyTrust::Certificate(trust) =
            crate::keyless::policy_trust(source, policy, now)?
        else {
            continue;
        };
        checked_under_a_source = true;
        let options = VerifyAttestationOptions {
            certificates: Some(trust),
            ..VerifyAttestationOptions::default()
        };
        for candidate in &certified {
            let checks = assess(candidate, digest, &options);
            evidence.extend(checks.policy_evidence(Some(source))?);
            candidates.push(checks);
        }
    }
    if !checked_under_a_source {
        candidates.extend(untrusted);
    }
    Ok((evidence, candidates))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn options(key: &SigningKey, wanted: Option<&str>) -> VerifyAttestationOptions {
        VerifyAttestationOptions {
            keys: vec![key.public_key()],
            certificates: None,
            predicate_type: wanted.map(|w| PredicateType::from_name(w).unwrap()),
        }
    }

    fn source() -> AttestationSource {
        AttestationSource::Bundle {
            manifest_digest: Digest::sha256(b"m"),
        }
    }

    fn envelope(key: &SigningKey, digest: &Digest, kind: &str) -> Envelope {
        let s = Statement::for_image(
            Some("reg.io/app"),
            digest,
            PredicateType::from_name(kind).unwrap(),
            json!({"k": 1}),
        );
        Envelope::sign(key, INTOTO_PAYLOAD_TYPE, s.to_bytes().unwrap())
    }

    fn failed(c: &AttestationChecks) -> Vec<&'static str> {
        c.checks()
            .iter()
            .filter(|(_, r)| r.failed())
            .map(|(n, _)| *n)
            .collect()
    }

    #[test]
    fn each_refusal_names_its_check() {
        let key = SigningKey::generate();
        let other = SigningKey::generate();
        let image = Digest::sha256(b"image");
        let check = |envelope: &Envelope, options: &VerifyAttestationOptions, annotated| {
            check_key_signed(
                source(),
                "ok".into(),
                envelope,
                &image,
                options,
                annotated,
                None,
            )
        };
        let good = envelope(&key, &image, "vuln");
        let c = check(
            &good,
            &options(&key, Some("vuln")),
            Some("https://cosign.sigstore.dev/attestation/vuln/v1"),
        );
        assert!(c.passed(), "{c:?}");
        assert_eq!(
            c.verified_statement().unwrap().predicate_type.as_str(),
            "https://cosign.sigstore.dev/attestation/vuln/v1"
        );

        // Another image's digest.
        let elsewhere = envelope(&key, &Digest::sha256(b"other"), "vuln");
        let c = check(&elsewhere, &options(&key, None), None);
        assert_eq!(failed(&c), ["subject"]);
        assert!(c.verified_statement().is_none());
        // Wrong key.
        let c = check(&good, &options(&other, None), None);
        assert_eq!(failed(&c), ["signature"]);
        // Wrong payload type (validly signed as such).
        let retyped = Envelope::sign(&key, "application/json", good.payload.clone());
        let c = check(&retyped, &options(&key, None), None);
        assert_eq!(failed(&c), ["payload-type"]);
        // Tampered predicate.
        let text = String::from_utf8(good.payload.clone())
            .unwrap()
            .replace("\"k\":1", "\"k\":2");
        let mut tampered = good.clone();
        tampered.payload = text.into_bytes();
        let c = check(&tampered, &options(&key, None), None);
        assert_eq!(failed(&c), ["signature"]);
        // Another predicate type than asked for, and an annotation that lies.
        let c = check(&good, &options(&key, Some("slsaprovenance1")), None);
        assert_eq!(failed(&c), ["predicate-type"]);
        let c = check(
            &good,
            &options(&key, None),
            Some("https://slsa.dev/provenance/v1"),
        );
        assert_eq!(failed(&c), ["predicate-type"]);
        // Not a statement at all: later checks are skipped, never passed.
        let junk = Envelope::sign(&key, INTOTO_PAYLOAD_TYPE, b"{}".to_vec());
        let c = check(&junk, &options(&key, None), None);
        assert_eq!(failed(&c), ["statement"]);
        assert!(!c.passed());
    }

    /// A keyless `.att` layer as cosign writes it, made from a real Sigstore bundle (the
    /// `dsse-rekor1-conda` case of testdata/sigstore-bundles: a Fulcio certificate, a DSSE
    /// in-toto statement and a Rekor v1 `dsse` entry with its SET): the envelope is the blob,
    /// the certificate and the Rekor SET are the `dev.sigstore.cosign/*` annotations. The
    /// statement's subject (a conda package) stands in for the image digest.
    mod keyless_att {
        use super::*;
        use signet_keyless::{Instance, TrustSource, TrustedRoot};
        use signet_policy::certificate::{CertificateIdentity, Match};

        const CASE: &str = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/sigstore-bundles/dsse-rekor1-conda"
        );

        fn read(name: &str) -> String {
            std::fs::read_to_string(format!("{CASE}/{name}"))
                .unwrap()
                .trim()
                .to_string()
        }

        fn pem(der_b64: &str) -> String {
            let body: Vec<String> = der_b64
                .as_bytes()
                .chunks(64)
                .map(|c| String::from_utf8(c.to_vec()).unwrap())
                .collect();
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                body.join("\n")
            )
        }

        /// The layer, its envelope and the statement's subject digest.
        fn layer() -> (Descriptor, Envelope, Digest) {
            let bundle: Value = serde_json::from_str(&read("bundle.sigstore.json")).unwrap();
            let envelope = Envelope::from_value(&bundle["dsseEnvelope"]).unwrap();
            let entry = &bundle["verificationMaterial"]["tlogEntries"][0];
            let log_id = base64::engine::general_purpose::STANDARD
                .decode(entry["logId"]["keyId"].as_str().unwrap())
                .unwrap();
            let set = serde_json::json!({
                "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
                "Payload": {
                    "body": entry["canonicalizedBody"],
                    "integratedTime": entry["integratedTime"].as_str().unwrap().parse::<i64>().unwrap(),
                    "logIndex": entry["logIndex"].as_str().unwrap().parse::<i64>().unwrap(),
                    "logID": hex::encode(log_id),
                }
            });
            let statement = Statement::parse(&envelope.payload).unwrap();
            let subject = &statement.subjects[0].digest["sha256"];
            let bytes = envelope.to_json();
            let mut layer = Descriptor::of(DSSE_ENVELOPE_MEDIA_TYPE, &bytes);
            layer.annotations = Some(BTreeMap::from([
                (SIGNATURE_ANNOTATION.to_string(), String::new()),
                (
                    PREDICATE_TYPE_LAYER_ANNOTATION.to_string(),
                    statement.predicate_type.as_str().to_string(),
                ),
                (
                    CERTIFICATE_ANNOTATION.to_string(),
                    pem(bundle["verificationMaterial"]["certificate"]["rawBytes"]
                        .as_str()
                        .unwrap()),
                ),
                (
                    crate::keyless::REKOR_BUNDLE_ANNOTATION.to_string(),
                    set.to_string(),
                ),
            ]));
            (
                layer,
                envelope,
                format!("sha256:{subject}").parse().unwrap(),
            )
        }

        fn candidate(layer: Descriptor, envelope: Envelope) -> ReadCandidate {
            ReadCandidate {
                source: AttestationSource::Legacy {
                    index: 0,
                    layer_digest: layer.digest.clone(),
                },
                read: Ok((
                    "layer 0".into(),
                    envelope,
                    layer
                        .annotation(PREDICATE_TYPE_LAYER_ANNOTATION)
                        .map(str::to_string),
                    Material::LayerCertificate(Box::new(layer)),
                )),
            }
        }

        fn sigstore(root: &TrustedRoot, identity: &str) -> VerifyAttestationOptions {
            VerifyAttestationOptions {
                certificates: Some(CertificateTrust::Sigstore {
                    verifier: signet_keyless::Verifier::new(root).unwrap(),
                    identity: CertificateIdentity {
                        subject: Match::Exact(identity.to_string()),
                        issuer: Match::Exact(read("issuer")),
                        github: Default::default(),
                    },
                }),
                ..VerifyAttestationOptions::default()
            }
        }

        fn public_good() -> TrustedRoot {
            TrustedRoot::from_json(
                Instance::PublicGood.embedded_json().as_bytes(),
                TrustSource::File("embedded".into()),
            )
            .unwrap()
        }

        fn signature_detail(c: &AttestationChecks) -> String {
            c.checks()[1].1.detail().to_string()
        }

        #[test]
        fn a_real_keyless_att_layer_verifies_and_gives_certificate_evidence() {
            let (layer, envelope, digest) = layer();
            let checks = assess(
                &candidate(layer, envelope),
                &digest,
                &sigstore(&public_good(), &read("identity")),
            );
            assert!(checks.passed(), "{checks:?}");
            assert_eq!(checks.signed_with(), &SignedWith::Certificate);
            let source = signet_policy::trust::TrustSource::Sigstore(
                signet_policy::SigstoreRoot::PublicGood,
            );
            let evidence = checks.policy_evidence(Some(&source)).unwrap();
            let [one] = evidence.as_slice() else {
                panic!("{evidence:?}")
            };
            let signet_policy::verdict::Signer::Certificate(cert) = &one.signer else {
                panic!("{one:?}")
            };
            assert!(cert.claims.subjects.contains(&read("identity")));
            assert_eq!(
                cert.verified_time, 1_756_728_839,
                "the SET's integrated time"
            );
            assert_eq!(one.tlog.as_ref().unwrap().integrated_time, 1_756_728_839);
            // Without a trust source the certificate gives no evidence.
            assert!(checks.policy_evidence(None).unwrap().is_empty());
        }

        #[test]
        fn keyless_att_refusals_name_the_failed_check() {
            let (layer, envelope, digest) = layer();
            // Another identity.
            let c = assess(
                &candidate(layer.clone(), envelope.clone()),
                &digest,
                &sigstore(
                    &public_good(),
                    "https://github.com/other/repo/.github/workflows/x.yml@refs/heads/main",
                ),
            );
            assert_eq!(failed(&c), ["signature"]);
            assert!(
                signature_detail(&c).starts_with("certificate-subject-mismatch"),
                "{c:?}"
            );
            // Another CA: the root's Fulcio CAs replaced by another (cosign-real's fulcio_v1).
            let mut root: Value =
                serde_json::from_str(Instance::PublicGood.embedded_json()).unwrap();
            let other_ca = std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../testdata/cosign-real/fulcio_v1.crt.pem"
            ))
            .unwrap();
            let der = crate::keyless::pem_certificates(&other_ca, 1)
                .unwrap()
                .remove(0);
            root["certificateAuthorities"] = serde_json::json!([{
                "subject": {"organization": "sigstore.dev", "commonName": "sigstore"},
                "uri": "https://fulcio.sigstore.dev",
                "certChain": {"certificates": [{
                    "rawBytes": base64::engine::general_purpose::STANDARD.encode(der)
                }]},
                "validFor": {"start": "2021-03-07T03:20:29Z"},
            }]);
            let other_root = TrustedRoot::from_json(
                &serde_json::to_vec(&root).unwrap(),
                TrustSource::File("test".into()),
            )
            .unwrap();
            let c = assess(
                &candidate(layer.clone(), envelope.clone()),
                &digest,
                &sigstore(&other_root, &read("identity")),
            );
            assert_eq!(failed(&c), ["signature"]);
            assert!(signature_detail(&c).starts_with("certificate"), "{c:?}");
            // A tampered envelope: the statement changed after signing.
            let mut tampered = envelope.clone();
            tampered.payload = String::from_utf8(tampered.payload)
                .unwrap()
                .replacen("\"predicate\":{", "\"predicate\":{\"x\":1,", 1)
                .into_bytes();
            let c = assess(
                &candidate(layer.clone(), tampered),
                &digest,
                &sigstore(&public_good(), &read("identity")),
            );
            assert!(failed(&c).contains(&"signature"), "{c:?}");
            assert!(!c.passed());
            // Another image: the statement's subject is not this digest.
            let c = assess(
                &candidate(layer.clone(), envelope.clone()),
                &Digest::sha256(b"another image"),
                &sigstore(&public_good(), &read("identity")),
            );
            assert!(failed(&c).contains(&"subject"), "{c:?}");
            // No Rekor SET: the material is refused.
            let mut no_set = layer.clone();
            no_set
                .annotations
                .as_mut()
                .unwrap()
                .remove(crate::keyless::REKOR_BUNDLE_ANNOTATION);
            let c = assess(
                &candidate(no_set, envelope.clone()),
                &digest,
                &sigstore(&public_good(), &read("identity")),
            );
            assert_eq!(failed(&c), ["signature"]);
            assert!(
                signature_detail(&c).starts_with("material: no dev.sigstore.cosign/bundle"),
                "{c:?}"
            );
            // Keys only: a certificate-signed layer is refused, naming why.
            let c = assess(
                &candidate(layer, envelope),
                &digest,
                &VerifyAttestationOptions::default(),
            );
            assert_eq!(failed(&c), ["signature"]);
            assert!(signature_detail(&c).contains("no certificate identity or CA"));
        }
    }
}
