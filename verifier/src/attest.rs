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

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use signet_oci::store::ImageStore;
use signet_oci::{Descriptor, Digest, Reference};
use signet_sign::dsse::{
    Envelope, DSSE_ENVELOPE_MEDIA_TYPE, INTOTO_PAYLOAD_TYPE, MAX_ENVELOPE_BYTES,
};
use signet_sign::intoto::{PredicateType, Statement};
use signet_sign::keys::{KeyId, PublicKey, SigningKey};
use signet_sign::SIGNATURE_ANNOTATION;

use crate::bundle_sign::{
    parse_bundle, push_bundle, read_bundle_manifests, BundleWritten, SignatureFormat,
    MAX_BUNDLE_BYTES, PREDICATE_TYPE_ANNOTATION,
};
use crate::sign::{append_attestation_layer, attestation_tag, read_tagged_manifest};
use crate::signatures::{CheckResult, DEFAULT_MAX_SIGNATURES};
use crate::Error;

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
        layer.annotations = Some(BTreeMap::from([
            (SIGNATURE_ANNOTATION.to_string(), String::new()),
            (
                PREDICATE_TYPE_LAYER_ANNOTATION.to_string(),
                options.predicate_type.as_str().to_string(),
            ),
        ]));
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
    /// Trusted keyless signers (bundle referrers signed with a Fulcio certificate).
    pub keyless: Option<KeylessSigner>,
    /// Only statements of this predicate type are accepted (`None`: any).
    pub predicate_type: Option<PredicateType>,
}

/// A keyless signer of attestations: a certificate under the verifier's trusted root (with its
/// log and timestamp evidence, checked by signet-keyless) naming `identity`.
#[derive(Debug)]
pub struct KeylessSigner {
    /// The verifier over the trusted root.
    pub verifier: signet_keyless::Verifier,
    /// Who must have signed.
    pub identity: signet_policy::certificate::CertificateIdentity,
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

/// Every mandatory check on one candidate attestation. Built only by this module; a candidate
/// is accepted only when every field passed.
#[derive(Debug, Clone)]
pub struct AttestationChecks {
    source: AttestationSource,
    envelope: CheckResult,
    signature: CheckResult,
    payload_type: CheckResult,
    statement: CheckResult,
    subject: CheckResult,
    predicate_type: CheckResult,
    verified_by: Vec<KeyId>,
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

    fn failed_at(source: AttestationSource, envelope: CheckResult) -> AttestationChecks {
        let skipped = || CheckResult::Skipped("not checked: envelope failed".to_string());
        AttestationChecks {
            source,
            envelope,
            signature: skipped(),
            payload_type: skipped(),
            statement: skipped(),
            subject: skipped(),
            predicate_type: skipped(),
            verified_by: Vec::new(),
            parsed: None,
        }
    }
}

/// Check one envelope (already read and parsed) against the image digest, keys and wanted type.
/// `annotated` is the predicate type the container (layer or manifest) claims, if it does.
fn check_envelope(
    source: AttestationSource,
    envelope_detail: String,
    envelope: &Envelope,
    image_digest: &Digest,
    options: &VerifyAttestationOptions,
    annotated: Option<&str>,
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
    checks_after_signature(
        source,
        envelope_detail,
        envelope,
        image_digest,
        options,
        annotated,
        (signature, verified_by),
    )
}

/// The checks after the signature (which the caller made, with a key or keylessly).
fn checks_after_signature(
    source: AttestationSource,
    envelope_detail: String,
    envelope: &Envelope,
    image_digest: &Digest,
    options: &VerifyAttestationOptions,
    annotated: Option<&str>,
    (signature, verified_by): (CheckResult, Vec<KeyId>),
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
        envelope: CheckResult::Passed(envelope_detail),
        signature,
        payload_type,
        statement,
        subject,
        predicate_type,
        verified_by,
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
/// referrers) with its checks; the same bounds as [`verify_attestations`]. Policy enforcement
/// calls it with the digest it already resolved.
pub async fn attestation_candidates(
    store: &ImageStore,
    digest: &Digest,
    options: &VerifyAttestationOptions,
) -> Result<Vec<AttestationChecks>, Error> {
    let mut candidates = legacy_candidates(store, digest, options).await?;
    candidates.extend(bundle_candidates(store, digest, options).await?);
    Ok(candidates)
}

async fn legacy_candidates(
    store: &ImageStore,
    digest: &Digest,
    options: &VerifyAttestationOptions,
) -> Result<Vec<AttestationChecks>, Error> {
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
        if layer.size > MAX_ENVELOPE_BYTES as u64 {
            out.push(AttestationChecks::failed_at(
                source,
                CheckResult::Failed(format!(
                    "the envelope is {} bytes, over the {MAX_ENVELOPE_BYTES}-byte limit",
                    layer.size
                )),
            ));
            continue;
        }
        let bytes = match store.blob_bytes(layer, MAX_ENVELOPE_BYTES as u64).await {
            Ok(b) => b,
            Err(e @ signet_oci::Error::Registry { .. }) => return Err(e.into()),
            Err(e) => {
                out.push(AttestationChecks::failed_at(
                    source,
                    CheckResult::Failed(e.to_string()),
                ));
                continue;
            }
        };
        let annotated = layer.annotation(PREDICATE_TYPE_LAYER_ANNOTATION);
        out.push(match Envelope::parse(&bytes) {
            Ok(envelope) => check_envelope(
                source,
                format!("{tag} layer {index}: blob matches its digest; DSSE envelope parsed"),
                &envelope,
                digest,
                options,
                annotated,
            ),
            Err(e) => AttestationChecks::failed_at(source, CheckResult::Failed(e.to_string())),
        });
    }
    Ok(out)
}

async fn bundle_candidates(
    store: &ImageStore,
    digest: &Digest,
    options: &VerifyAttestationOptions,
) -> Result<Vec<AttestationChecks>, Error> {
    let mut out = Vec::new();
    for referrer in read_bundle_manifests(store, digest).await? {
        let source = AttestationSource::Bundle {
            manifest_digest: referrer.descriptor.digest.clone(),
        };
        let (manifest, layer) = match referrer.manifest {
            Ok(found) => found,
            Err(reason) => {
                out.push(AttestationChecks::failed_at(
                    source,
                    CheckResult::Failed(reason),
                ));
                continue;
            }
        };
        let bytes = match store.blob_bytes(&layer, MAX_BUNDLE_BYTES).await {
            Ok(b) => b,
            Err(e @ signet_oci::Error::Registry { .. }) => return Err(e.into()),
            Err(e) => {
                out.push(AttestationChecks::failed_at(
                    source,
                    CheckResult::Failed(e.to_string()),
                ));
                continue;
            }
        };
        let annotated = manifest
            .annotations
            .as_ref()
            .and_then(|a| a.get(PREDICATE_TYPE_ANNOTATION))
            .map(String::as_str);
        out.push(match parse_bundle(&bytes) {
            Ok(content) if content.bundle.has_certificate() => {
                let detail = format!(
                    "bundle referrer {}: bundle {} with a DSSE envelope, signed with a certificate",
                    referrer.descriptor.digest,
                    content.bundle.version().as_str()
                );
                let signature = keyless_signature(&content.bundle, digest, options);
                checks_after_signature(
                    source,
                    detail,
                    &content.envelope,
                    digest,
                    options,
                    annotated,
                    (signature, Vec::new()),
                )
            }
            Ok(content) => check_envelope(
                source,
                format!(
                    "bundle referrer {}: bundle {} with a DSSE envelope{}",
                    referrer.descriptor.digest,
                    content.bundle.version().as_str(),
                    content
                        .hint
                        .map(|h| format!(", key hint {h}"))
                        .unwrap_or_default()
                ),
                &content.envelope,
                digest,
                options,
                annotated,
            ),
            Err(reason) => AttestationChecks::failed_at(source, CheckResult::Failed(reason)),
        });
    }
    Ok(out)
}

/// Verify a certificate-signed bundle keylessly (signet-keyless: chain, log and timestamp
/// evidence, the DSSE signature, the in-toto subject against the image digest) and match the
/// certificate against the trusted identity.
fn keyless_signature(
    bundle: &signet_keyless::Bundle,
    image_digest: &Digest,
    options: &VerifyAttestationOptions,
) -> CheckResult {
    let Some(signer) = &options.keyless else {
        return CheckResult::Failed(
            "signed with a certificate (keyless), but no certificate identity was given".into(),
        );
    };
    let Ok(digest) = image_digest
        .to_string()
        .parse::<signet_keyless::Sha256Digest>()
    else {
        return CheckResult::Failed(format!(
            "{image_digest}: only SHA-256 image digests can be verified against a bundle"
        ));
    };
    match signer.verifier.verify(
        signet_keyless::Artifact::Digest(digest),
        bundle,
        signet_keyless::Signer::Certificate,
    ) {
        Ok(verified) => match &verified.certificate {
            Some(claims) => match signer
                .identity
                .matches(&crate::keyless::policy_claims(claims))
            {
                Ok(()) => CheckResult::Passed(format!(
                    "certificate chain, log and timestamp evidence verified; certificate names {} (issuer {})",
                    claims.subjects.first().map_or("?", |s| s.as_str()),
                    claims.issuer.as_deref().unwrap_or("?")
                )),
                Err(mismatch) => CheckResult::Failed(format!("{}: {mismatch}", mismatch.code())),
            },
            None => CheckResult::Failed("the bundle carries no certificate".into()),
        },
        Err(e) => CheckResult::Failed(format!(
            "{}: {e}",
            e.check().map_or("not-verified", |c| c.code())
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn options(key: &SigningKey, wanted: Option<&str>) -> VerifyAttestationOptions {
        VerifyAttestationOptions {
            keys: vec![key.public_key()],
            keyless: None,
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
        let good = envelope(&key, &image, "vuln");
        let c = check_envelope(
            source(),
            "ok".into(),
            &good,
            &image,
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
        let c = check_envelope(
            source(),
            "ok".into(),
            &elsewhere,
            &image,
            &options(&key, None),
            None,
        );
        assert_eq!(failed(&c), ["subject"]);
        assert!(c.verified_statement().is_none());
        // Wrong key.
        let c = check_envelope(
            source(),
            "ok".into(),
            &good,
            &image,
            &options(&other, None),
            None,
        );
        assert_eq!(failed(&c), ["signature"]);
        // Wrong payload type (validly signed as such).
        let retyped = Envelope::sign(&key, "application/json", good.payload.clone());
        let c = check_envelope(
            source(),
            "ok".into(),
            &retyped,
            &image,
            &options(&key, None),
            None,
        );
        assert_eq!(failed(&c), ["payload-type"]);
        // Tampered predicate.
        let text = String::from_utf8(good.payload.clone())
            .unwrap()
            .replace("\"k\":1", "\"k\":2");
        let mut tampered = good.clone();
        tampered.payload = text.into_bytes();
        let c = check_envelope(
            source(),
            "ok".into(),
            &tampered,
            &image,
            &options(&key, None),
            None,
        );
        assert_eq!(failed(&c), ["signature"]);
        // Another predicate type than asked for, and an annotation that lies.
        let c = check_envelope(
            source(),
            "ok".into(),
            &good,
            &image,
            &options(&key, Some("slsaprovenance1")),
            None,
        );
        assert_eq!(failed(&c), ["predicate-type"]);
        let c = check_envelope(
            source(),
            "ok".into(),
            &good,
            &image,
            &options(&key, None),
            Some("https://slsa.dev/provenance/v1"),
        );
        assert_eq!(failed(&c), ["predicate-type"]);
        // Not a statement at all: later checks are skipped, never passed.
        let junk = Envelope::sign(&key, INTOTO_PAYLOAD_TYPE, b"{}".to_vec());
        let c = check_envelope(
            source(),
            "ok".into(),
            &junk,
            &image,
            &options(&key, None),
            None,
        );
        assert_eq!(failed(&c), ["statement"]);
        assert!(!c.passed());
    }
}
