//! Cosign signature storage: reading the `sha256-<hex>.sig` manifest of an image and checking each
//! of its layers, and building the manifest that appends a new signature to the existing ones.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use signet_oci::manifest::{OCI_CONFIG, OCI_MANIFEST, SIMPLE_SIGNING};
use signet_oci::store::ImageStore;
use signet_oci::{Descriptor, Digest, FetchedManifest, ImageManifest, Manifest, Reference};
use signet_policy::{IdentityRule, SignatureEvidence};
use signet_sign::keys::{KeyId, PublicKey};
use signet_sign::payload::SimpleSigningPayload;
use signet_sign::SIGNATURE_ANNOTATION;

use crate::Error;

/// How many signature layers are examined at most by default (cosign's own cap).
pub const DEFAULT_MAX_SIGNATURES: usize = 100;
/// Largest payload blob read; real payloads are a few hundred bytes.
pub const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;

/// The outcome of one mandatory check on a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// The check ran and held; what was found.
    Passed(String),
    /// The check ran and failed; why.
    Failed(String),
    /// The check could not run because one it depends on failed; never counts as passed.
    Skipped(String),
}

impl CheckResult {
    /// Whether the check ran and held.
    pub fn passed(&self) -> bool {
        matches!(self, CheckResult::Passed(_))
    }

    /// Whether the check ran and failed (a skipped check did not run).
    pub fn failed(&self) -> bool {
        matches!(self, CheckResult::Failed(_))
    }

    /// What was found, or why it failed or was skipped.
    pub fn detail(&self) -> &str {
        match self {
            CheckResult::Passed(d) | CheckResult::Failed(d) | CheckResult::Skipped(d) => d,
        }
    }

    fn after(name: &str) -> CheckResult {
        CheckResult::Skipped(format!("not checked: {name} failed"))
    }
}

/// The checks of `checks` that failed, as `name: detail` joined by `; `, for a one-line refusal.
/// Skipped checks are left out: they follow from a failed one, and naming that one is enough.
pub fn failed_checks(checks: &[(&'static str, &CheckResult)]) -> String {
    checks
        .iter()
        .filter(|(_, check)| check.failed())
        .map(|(name, check)| format!("{name}: {}", check.detail()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a strictly parsed simple-signing payload claims.
#[derive(Debug, Clone, PartialEq)]
pub struct PayloadClaims {
    /// The signed `critical.identity.docker-reference`.
    pub docker_reference: String,
    /// The payload's `optional` section.
    pub optional: Option<Map<String, Value>>,
}

impl PayloadClaims {
    /// The `optional` values that are strings (annotations given with `-a`).
    pub fn string_annotations(&self) -> BTreeMap<String, String> {
        self.optional
            .iter()
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect()
    }
}

/// The checks made on one signature layer itself, the same whichever rule judges it: payload
/// size, payload blob digest, strict parse, the manifest-digest claim and the signature. Every
/// check is a field, so none can be forgotten; the fields are private, so only [`check_layers`]
/// builds one, and a check it could not run is [`CheckResult::Skipped`], which never passes.
#[derive(Debug, Clone)]
pub struct LayerChecks {
    index: usize,
    layer_digest: Digest,
    payload_size: CheckResult,
    payload_digest: CheckResult,
    strict_parse: CheckResult,
    manifest_digest: CheckResult,
    crypto: CheckResult,
    claims: Option<PayloadClaims>,
    verified_by: Vec<KeyId>,
    payload_bytes: Option<Vec<u8>>,
}

/// A signature whose payload was read whole, matched its digest, parsed strictly and verified
/// with at least one given key: what a policy may weigh. Only [`LayerChecks::verified_payload`]
/// hands one out.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedPayload<'a> {
    /// What the payload claims.
    pub claims: &'a PayloadClaims,
    /// The given keys that verified it (at least one).
    pub verified_by: &'a [KeyId],
    /// Whether the payload names the image's manifest digest.
    pub manifest_digest_matches: bool,
}

impl LayerChecks {
    /// Position of the layer in the signature manifest.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Digest of the payload blob.
    pub fn layer_digest(&self) -> &Digest {
        &self.layer_digest
    }

    /// Every check with its stable kebab-case name, in the order they are made.
    pub fn checks(&self) -> [(&'static str, &CheckResult); 5] {
        [
            ("payload-size", &self.payload_size),
            ("blob-digest", &self.payload_digest),
            ("payload", &self.strict_parse),
            ("manifest-digest", &self.manifest_digest),
            ("signature", &self.crypto),
        ]
    }

    /// What the payload claims, when it parsed strictly.
    pub fn claims(&self) -> Option<&PayloadClaims> {
        self.claims.as_ref()
    }

    /// Key ids of the given keys whose signature check passed.
    pub fn verified_by(&self) -> &[KeyId] {
        &self.verified_by
    }

    /// The exact payload bytes, when they were read and matched their digest.
    pub fn payload_bytes(&self) -> Option<&[u8]> {
        self.payload_bytes.as_deref()
    }

    /// The payload, if its size, digest, strict parse and signature all passed. The digest claim
    /// is reported, not required: policies turn a mismatch into their own finding.
    pub fn verified_payload(&self) -> Option<VerifiedPayload<'_>> {
        let sound = self.payload_size.passed()
            && self.payload_digest.passed()
            && self.strict_parse.passed()
            && self.crypto.passed();
        match (&self.claims, sound && !self.verified_by.is_empty()) {
            (Some(claims), true) => Some(VerifiedPayload {
                claims,
                verified_by: &self.verified_by,
                manifest_digest_matches: self.manifest_digest.passed(),
            }),
            _ => None,
        }
    }

    /// The policy's evidence from this layer: one entry per key that verified it, none unless
    /// [`LayerChecks::verified_payload`] vouches for it.
    pub fn evidence(&self) -> Vec<SignatureEvidence> {
        let Some(payload) = self.verified_payload() else {
            return Vec::new();
        };
        let annotations = payload.claims.string_annotations();
        payload
            .verified_by
            .iter()
            .map(|key_id| {
                SignatureEvidence::legacy_key(
                    key_id.clone(),
                    payload.claims.docker_reference.clone(),
                    payload.manifest_digest_matches,
                    annotations.clone(),
                )
            })
            .collect()
    }
}

impl LayerChecks {
    /// [`LayerChecks::evidence`], and for each key that verified the payload, the policy's
    /// `rekor_keys` that verify the layer's Rekor SET (`dev.sigstore.cosign/bundle`) over a
    /// `hashedrekord` entry naming that key, this signature and this payload (containers/image's
    /// `rekorPublicKey…` with keys): one evidence per such Rekor key, saying which. A key whose
    /// signature has no such SET gives the evidence without a log entry (signers that need one
    /// refuse it: `tlog-entry-missing`).
    pub fn evidence_with_rekor(
        &self,
        layer: &Descriptor,
        keys: &[PublicKey],
        rekor_keys: &[(signet_policy::Material, signet_keyless::pki::RekorKey)],
    ) -> Vec<SignatureEvidence> {
        let plain = self.evidence();
        let (Some(set), Some(signature), Some(payload)) = (
            layer.annotation(crate::keyless::REKOR_BUNDLE_ANNOTATION),
            layer.annotation(SIGNATURE_ANNOTATION),
            self.payload_bytes.as_deref(),
        ) else {
            return plain;
        };
        if rekor_keys.is_empty() {
            return plain;
        }
        use base64::Engine as _;
        let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature) else {
            return plain;
        };
        let mut out = Vec::with_capacity(plain.len());
        for evidence in plain {
            let Some(key) = evidence
                .key_id()
                .and_then(|id| keys.iter().find(|k| &k.key_id() == id))
            else {
                out.push(evidence);
                continue;
            };
            let logged =
                crate::keyless::rekor_sets(rekor_keys, set, &key.to_der(), &signature, payload);
            if logged.verified.is_empty() {
                out.push(evidence);
                continue;
            }
            for (material, integrated_time) in logged.verified {
                let mut with_log = evidence.clone();
                with_log.tlog = Some(signet_policy::verdict::TlogEvidence {
                    log: signet_policy::trust::LogSource::RekorKey(material),
                    integrated_time,
                });
                out.push(with_log);
            }
        }
        out
    }
}

/// A signature with every mandatory check: the layer's own ([`LayerChecks`]) plus the signed
/// identity and the required annotations, judged by the policy crate's one engine
/// ([`signet_policy::judge_claims`]). Built only by [`CheckedSignature::judge`].
#[derive(Debug, Clone)]
pub struct CheckedSignature {
    layer: LayerChecks,
    identity: CheckResult,
    annotations: CheckResult,
}

impl CheckedSignature {
    /// Judge the claims of `layer` for the image known as `image`: its signed identity under
    /// `rule`, and the `required` annotations. Without a parsed payload both are skipped.
    pub fn judge(
        layer: LayerChecks,
        rule: &IdentityRule,
        required: &BTreeMap<String, String>,
        image: &Reference,
    ) -> CheckedSignature {
        let (identity, annotations) = match &layer.claims {
            None => (CheckResult::after("payload"), CheckResult::after("payload")),
            Some(claims) => {
                let verdict = signet_policy::judge_claims(
                    rule,
                    required,
                    image,
                    &claims.docker_reference,
                    &claims.string_annotations(),
                );
                let signed = &claims.docker_reference;
                let rule = rule.describe();
                let identity = if verdict.identity_accepted {
                    CheckResult::Passed(format!("{signed} accepted for {image} by {rule}"))
                } else {
                    CheckResult::Failed(format!("{signed} not accepted for {image} by {rule}"))
                };
                let annotations = if !verdict.missing_annotations.is_empty() {
                    CheckResult::Failed(format!(
                        "missing or different: {}",
                        verdict.missing_annotations.join(", ")
                    ))
                } else if required.is_empty() {
                    CheckResult::Passed("no annotations required".into())
                } else {
                    CheckResult::Passed("required annotations present".into())
                };
                (identity, annotations)
            }
        };
        CheckedSignature {
            layer,
            identity,
            annotations,
        }
    }

    /// Whether every mandatory check ran and passed.
    pub fn passed(&self) -> bool {
        self.checks().iter().all(|(_, c)| c.passed()) && !self.layer.verified_by.is_empty()
    }

    /// Every check with its stable kebab-case name, in the order they are made.
    pub fn checks(&self) -> [(&'static str, &CheckResult); 7] {
        let [a, b, c, d, e] = self.layer.checks();
        [
            a,
            b,
            c,
            d,
            e,
            ("identity", &self.identity),
            ("annotations", &self.annotations),
        ]
    }

    /// The layer's own checks and data.
    pub fn layer(&self) -> &LayerChecks {
        &self.layer
    }
}

/// One check as the JSON report shows it (the names are stable).
#[derive(Serialize)]
struct CheckView<'a> {
    name: &'static str,
    passed: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    skipped: bool,
    detail: &'a str,
}

/// A candidate signature as the JSON report shows it.
#[derive(Serialize)]
struct CandidateView<'a> {
    index: usize,
    layer_digest: &'a Digest,
    checks: Vec<CheckView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    docker_reference: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    optional: Option<&'a Map<String, Value>>,
    verified_by: &'a [KeyId],
}

fn view<'a>(
    layer: &'a LayerChecks,
    checks: &[(&'static str, &'a CheckResult)],
) -> CandidateView<'a> {
    CandidateView {
        index: layer.index,
        layer_digest: &layer.layer_digest,
        checks: checks
            .iter()
            .map(|(name, check)| CheckView {
                name,
                passed: check.passed(),
                skipped: matches!(check, CheckResult::Skipped(_)),
                detail: check.detail(),
            })
            .collect(),
        docker_reference: layer.claims.as_ref().map(|c| c.docker_reference.as_str()),
        optional: layer.claims.as_ref().and_then(|c| c.optional.as_ref()),
        verified_by: &layer.verified_by,
    }
}

impl Serialize for LayerChecks {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        view(self, &self.checks()).serialize(serializer)
    }
}

impl Serialize for CheckedSignature {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        view(&self.layer, &self.checks()).serialize(serializer)
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
) -> Result<Vec<LayerChecks>, Error> {
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
) -> Result<LayerChecks, Error> {
    let fetched = if layer.size > MAX_PAYLOAD_BYTES {
        Fetched::TooLarge
    } else {
        match store.blob_bytes(layer, MAX_PAYLOAD_BYTES).await {
            Ok(bytes) => Fetched::Bytes(bytes),
            Err(
                e @ (signet_oci::Error::DigestMismatch { .. }
                | signet_oci::Error::SizeMismatch { .. }),
            ) => Fetched::Mismatch(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    };
    Ok(assess_layer(index, layer, fetched, image_digest, keys))
}

/// What reading a payload blob gave.
pub(crate) enum Fetched {
    /// Its descriptor declares more than [`MAX_PAYLOAD_BYTES`]; not read.
    TooLarge,
    /// Its bytes do not match its digest or size.
    Mismatch(String),
    /// Its bytes, digest-checked.
    Bytes(Vec<u8>),
}

/// Every layer check on a fetched payload (pure; the fetch is the caller's).
pub(crate) fn assess_layer(
    index: usize,
    layer: &Descriptor,
    fetched: Fetched,
    image_digest: &Digest,
    keys: &[PublicKey],
) -> LayerChecks {
    let mut checks = LayerChecks {
        index,
        layer_digest: layer.digest.clone(),
        payload_size: CheckResult::Passed(format!(
            "payload of {} bytes, within {MAX_PAYLOAD_BYTES}",
            layer.size
        )),
        payload_digest: CheckResult::after("payload-size"),
        strict_parse: CheckResult::after("payload-size"),
        manifest_digest: CheckResult::after("payload-size"),
        crypto: CheckResult::after("payload-size"),
        claims: None,
        verified_by: Vec::new(),
        payload_bytes: None,
    };
    let payload = match fetched {
        Fetched::TooLarge => {
            checks.payload_size = CheckResult::Failed(format!(
                "payload of {} bytes exceeds {MAX_PAYLOAD_BYTES}",
                layer.size
            ));
            return checks;
        }
        Fetched::Mismatch(reason) => {
            checks.payload_digest = CheckResult::Failed(reason);
            for later in [
                &mut checks.strict_parse,
                &mut checks.manifest_digest,
                &mut checks.crypto,
            ] {
                *later = CheckResult::after("blob-digest");
            }
            return checks;
        }
        Fetched::Bytes(bytes) => bytes,
    };
    checks.payload_digest = CheckResult::Passed(format!("payload blob matches {}", layer.digest));
    match SimpleSigningPayload::parse_strict(&payload) {
        Ok(parsed) => {
            checks.strict_parse = CheckResult::Passed(
                "simple-signing payload, cosign container image signature".into(),
            );
            checks.manifest_digest = if &parsed.manifest_digest == image_digest {
                CheckResult::Passed(format!("payload names {image_digest}"))
            } else {
                CheckResult::Failed(format!(
                    "payload names {}, not the image's {image_digest}",
                    parsed.manifest_digest
                ))
            };
            checks.claims = Some(PayloadClaims {
                docker_reference: parsed.docker_reference,
                optional: parsed.optional,
            });
        }
        Err(e) => {
            checks.strict_parse = CheckResult::Failed(e.to_string());
            checks.manifest_digest = CheckResult::after("payload");
        }
    }
    // The signature is checked even when the payload did not parse: the report then says
    // whether a trusted key signed the malformed payload.
    checks.crypto = match layer.annotation(SIGNATURE_ANNOTATION) {
        None => CheckResult::Failed(format!("no {SIGNATURE_ANNOTATION} annotation")),
        Some(signature) => {
            // Every key's reason, once each (a malformed signature fails the same way for all).
            let mut errors: Vec<String> = Vec::new();
            for key in keys {
                match signet_sign::signature::verify(key, &payload, signature) {
                    Ok(()) => checks.verified_by.push(key.key_id()),
                    Err(e) => {
                        let text = e.to_string();
                        if !errors.contains(&text) {
                            errors.push(text);
                        }
                    }
                }
            }
            if checks.verified_by.is_empty() {
                let why = if errors.is_empty() {
                    "no key given".to_string()
                } else {
                    errors.join("; ")
                };
                CheckResult::Failed(format!("no given key verifies it: {why}"))
            } else {
                let ids: Vec<String> = checks.verified_by.iter().map(|k| k.to_string()).collect();
                CheckResult::Passed(format!("verified by key {}", ids.join(", ")))
            }
        }
    };
    checks.payload_bytes = Some(payload);
    checks
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use signet_sign::keys::SigningKey;

    fn image() -> Digest {
        Digest::sha256(b"the image manifest")
    }

    /// A signature layer over `payload` by `key`, as a `.sig` manifest lists it.
    fn layer(payload: &[u8], key: &SigningKey) -> Descriptor {
        let mut d = Descriptor::of(SIMPLE_SIGNING, payload);
        d.annotations = Some(BTreeMap::from([(
            SIGNATURE_ANNOTATION.to_string(),
            signet_sign::signature::sign(key, payload),
        )]));
        d
    }

    fn good_payload() -> Vec<u8> {
        SimpleSigningPayload::new("reg.io/app", image()).to_bytes()
    }

    fn judged(checks: LayerChecks) -> CheckedSignature {
        CheckedSignature::judge(
            checks,
            &IdentityRule::MatchRepository,
            &BTreeMap::new(),
            &"reg.io/app:v1".parse().unwrap(),
        )
    }

    fn names_failed(c: &CheckedSignature) -> Vec<&'static str> {
        c.checks()
            .iter()
            .filter(|(_, r)| r.failed())
            .map(|(n, _)| *n)
            .collect()
    }

    fn names_skipped(c: &CheckedSignature) -> Vec<&'static str> {
        c.checks()
            .iter()
            .filter(|(_, r)| matches!(r, CheckResult::Skipped(_)))
            .map(|(n, _)| *n)
            .collect()
    }

    #[test]
    fn a_sound_signature_passes_every_check() {
        let key = SigningKey::generate();
        let payload = good_payload();
        let d = layer(&payload, &key);
        let checks = assess_layer(
            0,
            &d,
            Fetched::Bytes(payload),
            &image(),
            &[key.public_key()],
        );
        assert!(checks.verified_payload().is_some());
        assert_eq!(checks.evidence().len(), 1);
        let c = judged(checks);
        assert!(c.passed());
        assert_eq!(
            c.checks().map(|(n, _)| n),
            [
                "payload-size",
                "blob-digest",
                "payload",
                "manifest-digest",
                "signature",
                "identity",
                "annotations"
            ]
        );
    }

    /// Finding 4: a signature whose layer stops before the signature check (too large, bytes
    /// that do not match the digest) never reaches "verified" nor gives the policy evidence;
    /// the checks it could not run are skipped, never passed.
    #[test]
    fn a_layer_stopped_before_crypto_never_verifies() {
        let key = SigningKey::generate();
        let payload = good_payload();
        let d = layer(&payload, &key);
        let keys = [key.public_key()];

        let big = assess_layer(0, &d, Fetched::TooLarge, &image(), &keys);
        assert!(big.verified_payload().is_none());
        assert!(big.evidence().is_empty());
        assert!(big.payload_bytes().is_none());
        let big = judged(big);
        assert!(!big.passed());
        assert_eq!(names_failed(&big), ["payload-size"]);
        assert_eq!(
            names_skipped(&big),
            [
                "blob-digest",
                "payload",
                "manifest-digest",
                "signature",
                "identity",
                "annotations"
            ]
        );

        let lied = assess_layer(
            0,
            &d,
            Fetched::Mismatch("digest mismatch".into()),
            &image(),
            &keys,
        );
        assert!(lied.evidence().is_empty());
        let lied = judged(lied);
        assert!(!lied.passed());
        assert_eq!(names_failed(&lied), ["blob-digest"]);
        assert_eq!(
            names_skipped(&lied),
            [
                "payload",
                "manifest-digest",
                "signature",
                "identity",
                "annotations"
            ]
        );
    }

    #[test]
    fn a_signed_but_malformed_payload_gives_no_evidence() {
        let key = SigningKey::generate();
        let payload = String::from_utf8(good_payload())
            .unwrap()
            .replace(r#""optional":null"#, r#""optional":null,"extra":1"#)
            .into_bytes();
        let d = layer(&payload, &key);
        let checks = assess_layer(
            0,
            &d,
            Fetched::Bytes(payload),
            &image(),
            &[key.public_key()],
        );
        // The signature itself verifies, but the payload is not one Signet accepts.
        assert_eq!(checks.verified_by().len(), 1);
        assert!(checks.verified_payload().is_none());
        assert!(checks.evidence().is_empty());
        let c = judged(checks);
        assert!(!c.passed());
        assert_eq!(names_failed(&c), ["payload"]);
        assert_eq!(
            names_skipped(&c),
            ["manifest-digest", "identity", "annotations"]
        );
    }

    #[test]
    fn an_unknown_key_gives_no_evidence() {
        let key = SigningKey::generate();
        let payload = good_payload();
        let d = layer(&payload, &key);
        let other = SigningKey::generate().public_key();
        let checks = assess_layer(0, &d, Fetched::Bytes(payload), &image(), &[other]);
        assert!(checks.evidence().is_empty());
        let c = judged(checks);
        assert!(!c.passed());
        assert_eq!(names_failed(&c), ["signature"]);
    }

    #[test]
    fn the_report_names_every_check_and_marks_skipped_ones() {
        let key = SigningKey::generate();
        let d = layer(&good_payload(), &key);
        let c = judged(assess_layer(
            3,
            &d,
            Fetched::TooLarge,
            &image(),
            &[key.public_key()],
        ));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["index"], 3);
        let checks = json["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 7);
        assert_eq!(checks[0]["name"], "payload-size");
        assert_eq!(checks[0]["passed"], false);
        assert!(checks[0].get("skipped").is_none());
        assert_eq!(checks[4]["name"], "signature");
        assert_eq!(checks[4]["passed"], false);
        assert_eq!(checks[4]["skipped"], true);
        assert_eq!(checks[4]["detail"], "not checked: payload-size failed");
    }
}
