//! Keyless (certificate-signed) image signatures, in the two forms cosign writes:
//!
//! - **legacy**: a layer of the `sha256-<hex>.sig` manifest whose blob is the simple-signing
//!   payload and whose annotations carry the signature, the Fulcio (or private-PKI) certificate
//!   (`dev.sigstore.cosign/certificate`), its chain (`/chain`, root last), the Rekor SET over a
//!   `hashedrekord` entry (`/bundle`) and optionally an RFC 3161 timestamp
//!   (`/rfc3161timestamp`). These annotations are exactly a Sigstore v0.1 bundle spelled
//!   differently, so they are rewritten into one ([`legacy_bundle_json`]) and verified by
//!   `signet-keyless` like any bundle: the certificate at the SET's integrated time (or the
//!   timestamp's time), never "now". The payload names the image digest *and* the repository.
//! - **bundle**: cosign 3 attaches a Sigstore bundle v0.3 as an OCI 1.1 referrer (artifactType
//!   [`BUNDLE_ARTIFACT_TYPE`]) holding a DSSE in-toto statement, predicateType
//!   [`COSIGN_SIGN_PREDICATE`], whose subject is the image digest. It binds **only the
//!   digest**, not the repository: whoever can push the same bytes elsewhere carries the
//!   signature along. Reports say so (`binds_repository: false`, finding
//!   `repository-not-signed`), and [`FormatRequirement::Legacy`] refuses such signatures where
//!   the signed repository matters.
//!
//! Every mandatory check is a private field of [`KeylessChecks`], built only here; a check that
//! could not run is [`CheckResult::Skipped`], which never passes.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};
use signet_keyless::pki::{verify_rekor_set, FulcioTrust, PkiTrust, RekorKey};
use signet_keyless::{
    Artifact, Bundle, CertificateClaims, Sha256Digest, Signer, SubjectName, Verifier,
};
use signet_oci::manifest::SIMPLE_SIGNING;
use signet_oci::store::ImageStore;
use signet_oci::{Descriptor, Digest, ImageManifest, Manifest, Reference};
use signet_policy::certificate::{
    CertificateClaims as PolicyClaims, CertificateIdentity, GitHubClaims,
};
use signet_policy::trust::Material;
use signet_policy::IdentityRule;
use signet_sign::payload::SimpleSigningPayload;
use signet_sign::SIGNATURE_ANNOTATION;

use crate::attest::BundleReads;
use crate::signatures::{read_signature_manifest, CheckResult, MAX_PAYLOAD_BYTES};
use crate::Error;

/// The artifactType of a cosign 3 signature bundle referrer.
pub const BUNDLE_ARTIFACT_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The predicateType of cosign 3's image-signature statement.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The legacy layer annotation holding the PEM signing certificate.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The legacy layer annotation holding the PEM chain (intermediates, root last).
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// The legacy layer annotation holding the Rekor SET and entry.
pub const REKOR_BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// The legacy layer annotation holding an RFC 3161 timestamp.
pub const RFC3161_ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";
/// Largest annotation value read (certificates, chains and SETs are a few KiB).
const MAX_ANNOTATION_BYTES: usize = 64 * 1024;
/// Most certificates in a chain annotation.
const MAX_CHAIN_CERTIFICATES: usize = 8;
/// Largest bundle blob read from a referrer (real ones are a few KiB).
pub const MAX_REFERRER_BUNDLE_BYTES: u64 = 1024 * 1024;

/// Which storage form a keyless signature came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureFormat {
    /// A `.sig` layer with certificate annotations (binds digest and repository).
    Legacy,
    /// A Sigstore bundle attached as an OCI 1.1 referrer (binds only the digest).
    Bundle,
}

/// Which formats are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormatRequirement {
    /// Either (a bundle then counts without a signed repository).
    #[default]
    Any,
    /// Only the legacy format, whose payload signs the repository too; referrers are not read.
    Legacy,
}

impl std::str::FromStr for FormatRequirement {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "any" => Ok(FormatRequirement::Any),
            "legacy" => Ok(FormatRequirement::Legacy),
            other => Err(format!("unknown signature format {other:?}: any or legacy")),
        }
    }
}

/// Whom signing certificates must chain to, and whom they must name.
// One per verification, never in collections: boxing the verifier would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum CertificateTrust {
    /// Sigstore: a Fulcio certificate under a trusted root, with transparency-log (and
    /// timestamp) evidence; the certificate is checked at the verified log or timestamp time.
    Sigstore {
        /// The verifier over the trusted root (parsed once).
        verifier: Verifier,
        /// Who must have signed (certificate subject, issuer, GitHub claims).
        identity: CertificateIdentity,
    },
    /// A private PKI (containers/image's `pki`): the certificate chains to a configured CA root
    /// at `now` (there is no log time to check it at); legacy `.sig` signatures only.
    Pki {
        /// The CA roots and intermediates.
        trust: PkiTrust,
        /// An `rfc822Name` SAN the certificate must carry (containers/image `subjectEmail`).
        email: Option<String>,
        /// A `dNSName` SAN the certificate must carry (`subjectHostname`).
        hostname: Option<String>,
        /// The time (Unix seconds) the certificate must be valid at.
        now: i64,
    },
}

/// What a keyless signature must satisfy.
#[derive(Debug)]
pub struct KeylessOptions {
    /// Whom certificates must chain to, and whom they must name.
    pub trust: CertificateTrust,
    /// How a legacy payload's signed `docker-reference` must relate to the image.
    pub identity_rule: IdentityRule,
    /// Which formats count.
    pub formats: FormatRequirement,
    /// Most candidates examined per format.
    pub max_signatures: usize,
}

/// The checks made on one keyless signature. Every mandatory check is a field; only this module
/// builds one.
#[derive(Debug, Clone)]
pub struct KeylessChecks {
    format: SignatureFormat,
    /// The `.sig` layer index, or the referrer's position.
    index: usize,
    /// The payload blob (legacy) or referrer manifest (bundle) digest.
    source_digest: Digest,
    material: CheckResult,
    payload: CheckResult,
    manifest_digest: CheckResult,
    signature: CheckResult,
    certificate_identity: CheckResult,
    docker_reference: CheckResult,
    claims: Option<CertificateClaims>,
    verified_times: Vec<i64>,
    payload_bytes: Option<Vec<u8>>,
    /// The legacy payload's signed `docker-reference` (a bundle signs none).
    signed_reference: Option<String>,
    /// String members of the legacy payload's `optional` section.
    annotations: BTreeMap<String, String>,
    /// The certificate's `dNSName` SANs (private PKI).
    hostnames: Vec<String>,
    /// The verified transparency-log entry's integrated time.
    integrated_time: Option<i64>,
    /// The policy's Rekor keys that verified the layer's SET over an entry binding this
    /// signature, certificate and payload.
    rekor_logs: Vec<Material>,
}

impl KeylessChecks {
    fn new(format: SignatureFormat, index: usize, source_digest: Digest) -> KeylessChecks {
        let pending = || CheckResult::Skipped("not checked".into());
        KeylessChecks {
            format,
            index,
            source_digest,
            material: pending(),
            payload: pending(),
            manifest_digest: pending(),
            signature: pending(),
            certificate_identity: pending(),
            docker_reference: pending(),
            claims: None,
            verified_times: Vec::new(),
            payload_bytes: None,
            signed_reference: None,
            annotations: BTreeMap::new(),
            hostnames: Vec::new(),
            integrated_time: None,
            rekor_logs: Vec::new(),
        }
    }

    /// Mark every check after `failed` as skipped because of it.
    /// The certificate did not verify the signature: say which check refused it.
    fn signature_refused(&mut self, e: &signet_keyless::KeylessError) {
        let code = e.check().map_or("not-verified", |c| c.code());
        self.signature = CheckResult::Failed(format!("{code}: {e}"));
        self.certificate_identity = CheckResult::Skipped("not checked: signature failed".into());
    }

    fn stop_after(&mut self, failed: &str) {
        let after = || CheckResult::Skipped(format!("not checked: {failed} failed"));
        let names = [
            "material",
            "payload",
            "manifest-digest",
            "signature",
            "certificate-identity",
            "docker-reference",
        ];
        let position = names.iter().position(|n| *n == failed).unwrap_or(0);
        let fields = [
            &mut self.material,
            &mut self.payload,
            &mut self.manifest_digest,
            &mut self.signature,
            &mut self.certificate_identity,
            &mut self.docker_reference,
        ];
        for (i, field) in fields.into_iter().enumerate() {
            if i > position {
                *field = after();
            }
        }
    }

    /// The storage form.
    pub fn format(&self) -> SignatureFormat {
        self.format
    }

    /// Position of the candidate (layer index or referrer position).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether this signature signs the repository as well as the digest.
    pub fn binds_repository(&self) -> bool {
        self.format == SignatureFormat::Legacy
    }

    /// Every check with its stable kebab-case name, in the order they are made.
    pub fn checks(&self) -> [(&'static str, &CheckResult); 6] {
        [
            ("material", &self.material),
            ("payload", &self.payload),
            ("manifest-digest", &self.manifest_digest),
            ("signature", &self.signature),
            ("certificate-identity", &self.certificate_identity),
            ("docker-reference", &self.docker_reference),
        ]
    }

    /// Whether every check ran and passed.
    pub fn passed(&self) -> bool {
        self.checks().iter().all(|(_, c)| c.passed()) && self.claims.is_some()
    }

    /// The verified certificate's claims (only once the signature check passed).
    pub fn claims(&self) -> Option<&CertificateClaims> {
        self.claims.as_ref()
    }

    /// The policy's evidence from this signature, verified under `trust`: none unless the
    /// material, payload and signature checks (certificate chain, log and timestamp evidence)
    /// all passed; one per Rekor key of the policy that verified its SET (a signature logged
    /// once, reported once per key as the policy names it). Who signed (certificate identity)
    /// and the signed repository are left to the policy, which weighs the claims.
    pub fn evidence(
        &self,
        trust: &signet_policy::trust::TrustSource,
    ) -> Vec<signet_policy::SignatureEvidence> {
        use signet_policy::trust::LogSource;
        use signet_policy::verdict::TlogEvidence;
        let tlogs: Vec<Option<TlogEvidence>> = match (trust, self.integrated_time) {
            (_, Some(integrated_time)) if !self.rekor_logs.is_empty() => self
                .rekor_logs
                .iter()
                .map(|m| {
                    Some(TlogEvidence {
                        log: LogSource::RekorKey(m.clone()),
                        integrated_time,
                    })
                })
                .collect(),
            (signet_policy::trust::TrustSource::Sigstore(root), Some(integrated_time)) => {
                vec![Some(TlogEvidence {
                    log: LogSource::Sigstore(root.clone()),
                    integrated_time,
                })]
            }
            _ => vec![None],
        };
        tlogs
            .into_iter()
            .filter_map(|tlog| self.evidence_with(trust, tlog))
            .collect()
    }

    fn evidence_with(
        &self,
        trust: &signet_policy::trust::TrustSource,
        tlog: Option<signet_policy::verdict::TlogEvidence>,
    ) -> Option<signet_policy::SignatureEvidence> {
        use signet_policy::verdict::{CertificateEvidence, Signer as PolicySigner};
        let sound = self.material.passed() && self.payload.passed() && self.signature.passed();
        let claims = self.claims.as_ref().filter(|_| sound)?;
        let verified_time = *self.verified_times.first()?;
        Some(signet_policy::SignatureEvidence {
            signer: PolicySigner::Certificate(Box::new(CertificateEvidence {
                claims: policy_claims(claims),
                emails: claims
                    .subjects
                    .iter()
                    .filter_map(|s| match s {
                        SubjectName::Email(e) => Some(e.clone()),
                        _ => None,
                    })
                    .collect(),
                hostnames: self.hostnames.clone(),
                trust: trust.clone(),
                verified_time,
            })),
            format: match self.format {
                SignatureFormat::Legacy => signet_policy::verdict::SignatureFormat::Legacy,
                SignatureFormat::Bundle => signet_policy::verdict::SignatureFormat::Bundle,
            },
            docker_reference: self.signed_reference.clone(),
            manifest_digest_matches: self.manifest_digest.passed(),
            annotations: self.annotations.clone(),
            tlog,
        })
    }

    /// The exact payload bytes (legacy) or in-toto statement (bundle), once digest-checked.
    pub fn payload_bytes(&self) -> Option<&[u8]> {
        self.payload_bytes.as_deref()
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

impl Serialize for KeylessChecks {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let subjects: Vec<Value> = self
            .claims
            .iter()
            .flat_map(|c| c.subjects.iter())
            .map(|s| match s {
                SubjectName::Email(v) => json!({"email": v}),
                SubjectName::Uri(v) => json!({"uri": v}),
                SubjectName::OtherName(v) => json!({"otherName": v}),
            })
            .collect();
        json!({
            "format": self.format,
            "index": self.index,
            "digest": self.source_digest,
            "binds_repository": self.binds_repository(),
            "checks": self.checks().iter().map(|(name, c)| CheckView {
                name,
                passed: c.passed(),
                skipped: matches!(c, CheckResult::Skipped(_)),
                detail: c.detail(),
            }).collect::<Vec<_>>(),
            "certificate": self.claims.as_ref().map(|c| json!({
                "subjects": subjects,
                "issuer": c.issuer,
                "github": {
                    "repository": c.github.repository, "ref": c.github.git_ref,
                    "sha": c.github.sha, "trigger": c.github.trigger, "name": c.github.name,
                },
            })),
            "verified_times": self.verified_times.iter().map(|t| signet_keyless::rfc3339(*t)).collect::<Vec<_>>(),
        })
        .serialize(serializer)
    }
}

/// A finding about the image as a whole (stable kebab-case code).
#[derive(Debug, Clone, Serialize)]
pub struct KeylessFinding {
    /// The code.
    pub code: &'static str,
    /// What it means.
    pub message: String,
}

/// Everything found while verifying one image's keyless signatures.
#[derive(Debug, Clone, Serialize)]
pub struct KeylessReport {
    /// The image as named.
    pub image: String,
    /// The identity legacy payloads were checked against.
    pub identity: String,
    /// The manifest digest verified.
    pub digest: Digest,
    /// The outcome.
    pub outcome: crate::verify::Outcome,
    /// Where referrers were read from, when they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrers_source: Option<signet_oci::referrers::ReferrersSource>,
    /// Image-level findings (`repository-not-signed` when only a bundle verified).
    pub findings: Vec<KeylessFinding>,
    /// Every candidate with its checks.
    pub signatures: Vec<KeylessChecks>,
}

impl KeylessReport {
    /// The candidates that passed every check.
    pub fn verified(&self) -> impl Iterator<Item = &KeylessChecks> {
        self.signatures.iter().filter(|c| c.passed())
    }
}

/// Verify the keyless signatures of the image `digest` (resolved and digest-checked by the
/// caller), read from `signatures`: the legacy `.sig` layers first; the referrer bundles only
/// when no legacy signature verified and the options accept bundles (so a legacy-signed image
/// costs no referrers request).
pub async fn verify_keyless_digest(
    image_name: String,
    signatures: &ImageStore,
    identity: &Reference,
    digest: &Digest,
    options: &KeylessOptions,
) -> Result<KeylessReport, Error> {
    let mut candidates = legacy_candidates(signatures, identity, digest, options).await?;
    let mut referrers_source = None;
    let legacy_verified = candidates.iter().any(KeylessChecks::passed);
    let bundles_possible = matches!(options.trust, CertificateTrust::Sigstore { .. });
    if !legacy_verified && options.formats == FormatRequirement::Any && bundles_possible {
        let (source, found) = bundle_candidates(signatures, digest, options).await?;
        referrers_source = Some(source);
        candidates.extend(found);
    }
    let mut findings = Vec::new();
    let verified: Vec<&KeylessChecks> = candidates.iter().filter(|c| c.passed()).collect();
    if !verified.is_empty() && verified.iter().all(|c| !c.binds_repository()) {
        findings.push(KeylessFinding {
            code: "repository-not-signed",
            message: format!(
                "only cosign bundle signatures verified: they bind the digest {digest}, not the repository {}",
                identity.name()
            ),
        });
    }
    let outcome = if candidates.is_empty() {
        crate::verify::Outcome::NoSignatures
    } else if !verified.is_empty() {
        crate::verify::Outcome::Verified
    } else {
        crate::verify::Outcome::NoneVerified
    };
    Ok(KeylessReport {
        image: image_name,
        identity: identity.to_string(),
        digest: digest.clone(),
        outcome,
        referrers_source,
        findings,
        signatures: candidates,
    })
}

/// [`verify_keyless_digest`] after resolving the image in `image`.
pub async fn verify_keyless_image(
    image: &ImageStore,
    signatures: &ImageStore,
    identity: &Reference,
    options: &KeylessOptions,
) -> Result<KeylessReport, Error> {
    let resolved = image.resolve().await?;
    verify_keyless_digest(
        image.display_name(),
        signatures,
        identity,
        &resolved.digest,
        options,
    )
    .await
}

async fn legacy_candidates(
    store: &ImageStore,
    identity: &Reference,
    digest: &Digest,
    options: &KeylessOptions,
) -> Result<Vec<KeylessChecks>, Error> {
    let Some((_, manifest)) = read_signature_manifest(store, digest).await? else {
        return Ok(Vec::new());
    };
    let layers: Vec<(usize, &Descriptor)> = manifest
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.media_type == SIMPLE_SIGNING)
        .filter(|(_, l)| l.annotation(CERTIFICATE_ANNOTATION).is_some())
        .collect();
    if layers.len() > options.max_signatures {
        return Err(Error::LimitExceeded {
            what: format!(
                "signature manifest {} with {} certificate signatures",
                digest.signature_tag(),
                layers.len()
            ),
            limit: format!("{} signatures", options.max_signatures),
        });
    }
    let mut out = Vec::with_capacity(layers.len());
    for (index, layer) in layers {
        let fetched = if layer.size > MAX_PAYLOAD_BYTES {
            Err(format!(
                "payload of {} bytes exceeds {MAX_PAYLOAD_BYTES}",
                layer.size
            ))
        } else {
            match store.blob_bytes(layer, MAX_PAYLOAD_BYTES).await {
                Ok(bytes) => Ok(bytes),
                Err(
                    e @ (signet_oci::Error::DigestMismatch { .. }
                    | signet_oci::Error::SizeMismatch { .. }),
                ) => Err(e.to_string()),
                Err(e) => return Err(e.into()),
            }
        };
        out.push(assess_legacy(
            index, layer, fetched, identity, digest, options,
        ));
        if out.last().is_some_and(KeylessChecks::passed) {
            // One verified signature decides; the rest cost requests and change nothing.
            break;
        }
    }
    Ok(out)
}

/// Every check on one legacy keyless layer (pure; the fetch is the caller's).
pub(crate) fn assess_legacy(
    index: usize,
    layer: &Descriptor,
    fetched: Result<Vec<u8>, String>,
    identity: &Reference,
    digest: &Digest,
    options: &KeylessOptions,
) -> KeylessChecks {
    assess_legacy_under(
        index,
        layer,
        fetched,
        identity,
        digest,
        &options.identity_rule,
        LegacyTrust::Certificate {
            trust: &options.trust,
            rekor_keys: &[],
        },
    )
}

/// What a legacy layer is verified under.
#[derive(Clone, Copy)]
enum LegacyTrust<'a> {
    /// A Sigstore root or a private PKI; with a private PKI, a SET that one of `rekor_keys`
    /// verifies is reported (optional: the signer's `rekorKeys` decide whether it is needed).
    Certificate {
        trust: &'a CertificateTrust,
        rekor_keys: &'a [(Material, RekorKey)],
    },
    /// containers/image's `fulcio`: a named Fulcio CA; a SET verified by one of `rekor_keys` is
    /// required and gives the time the certificate is checked at.
    Fulcio {
        trust: &'a FulcioTrust,
        rekor_keys: &'a [(Material, RekorKey)],
    },
}

/// [`assess_legacy`] under any [`LegacyTrust`].
fn assess_legacy_under(
    index: usize,
    layer: &Descriptor,
    fetched: Result<Vec<u8>, String>,
    identity: &Reference,
    digest: &Digest,
    identity_rule: &IdentityRule,
    legacy_trust: LegacyTrust<'_>,
) -> KeylessChecks {
    let mut checks = KeylessChecks::new(SignatureFormat::Legacy, index, layer.digest.clone());
    let material = match legacy_trust {
        LegacyTrust::Certificate {
            trust: CertificateTrust::Sigstore { .. },
            ..
        } => legacy_bundle(layer).map(LegacyMaterial::Bundle),
        LegacyTrust::Certificate {
            trust: CertificateTrust::Pki { .. },
            ..
        } => legacy_certificate(layer).map(LegacyMaterial::Pki),
        LegacyTrust::Fulcio { .. } => legacy_certificate(layer).and_then(|c| match c.set {
            Some(_) => Ok(LegacyMaterial::Pki(c)),
            None => Err(format!(
                "no {REKOR_BUNDLE_ANNOTATION} annotation (no Rekor entry)"
            )),
        }),
    };
    let material = match material {
        Ok(material) => {
            checks.material = CheckResult::Passed(match (&material, legacy_trust) {
                (LegacyMaterial::Bundle(_), _) => {
                    "certificate, chain and Rekor annotations form a Sigstore bundle".into()
                }
                (LegacyMaterial::Pki(_), LegacyTrust::Fulcio { .. }) => {
                    "certificate, chain and Rekor SET annotations read".into()
                }
                (LegacyMaterial::Pki(_), _) => "certificate and chain annotations read".into(),
            });
            material
        }
        Err(why) => {
            checks.material = CheckResult::Failed(why);
            checks.stop_after("material");
            return checks;
        }
    };
    let payload = match fetched {
        Ok(bytes) => bytes,
        Err(why) => {
            checks.payload = CheckResult::Failed(why);
            checks.stop_after("payload");
            return checks;
        }
    };
    let parsed = match SimpleSigningPayload::parse_strict(&payload) {
        Ok(parsed) => {
            checks.payload = CheckResult::Passed(format!(
                "payload blob matches {}; cosign simple-signing payload",
                layer.digest
            ));
            parsed
        }
        Err(e) => {
            checks.payload = CheckResult::Failed(e.to_string());
            checks.stop_after("payload");
            return checks;
        }
    };
    checks.signed_reference = Some(parsed.docker_reference.clone());
    checks.annotations = parsed
        .optional
        .iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect();
    checks.manifest_digest = if &parsed.manifest_digest == digest {
        CheckResult::Passed(format!("payload names {digest}"))
    } else {
        CheckResult::Failed(format!(
            "payload names {}, not the image's {digest}",
            parsed.manifest_digest
        ))
    };
    match (&material, legacy_trust) {
        (
            LegacyMaterial::Bundle(bundle),
            LegacyTrust::Certificate {
                trust: CertificateTrust::Sigstore { verifier, identity },
                ..
            },
        ) => verify_bundle(
            &mut checks,
            bundle,
            Artifact::Bytes(&payload),
            verifier,
            identity,
        ),
        (
            LegacyMaterial::Pki(certificate),
            LegacyTrust::Certificate {
                trust:
                    CertificateTrust::Pki {
                        trust,
                        email,
                        hostname,
                        now,
                    },
                rekor_keys,
            },
        ) => {
            verify_pki(
                &mut checks,
                certificate,
                &payload,
                trust,
                email,
                hostname,
                *now,
            );
            if checks.signature.passed() {
                if let Some(set) = &certificate.set {
                    let logged = rekor_sets(
                        rekor_keys,
                        set,
                        &certificate.leaf,
                        &certificate.signature,
                        &payload,
                    );
                    if let Some(first) = logged.verified.first() {
                        checks.integrated_time = Some(first.1);
                    }
                    checks.rekor_logs = logged.verified.into_iter().map(|(m, _)| m).collect();
                }
            }
        }
        (LegacyMaterial::Pki(certificate), LegacyTrust::Fulcio { trust, rekor_keys }) => {
            verify_fulcio(&mut checks, certificate, &payload, trust, rekor_keys)
        }
        _ => {
            checks.signature = CheckResult::Failed("material read for another trust".into());
            checks.stop_after("signature");
        }
    }
    checks.docker_reference = {
        let verdict = signet_policy::judge_claims(
            identity_rule,
            &BTreeMap::new(),
            identity,
            &parsed.docker_reference,
            &BTreeMap::new(),
        );
        let signed = &parsed.docker_reference;
        let rule = identity_rule.describe();
        if verdict.identity_accepted {
            CheckResult::Passed(format!("{signed} accepted for {identity} by {rule}"))
        } else {
            CheckResult::Failed(format!("{signed} not accepted for {identity} by {rule}"))
        }
    };
    checks.payload_bytes = Some(payload);
    checks
}

/// The signature and certificate-identity checks, shared by both formats.
fn verify_bundle(
    checks: &mut KeylessChecks,
    bundle: &Bundle,
    artifact: Artifact<'_>,
    verifier: &Verifier,
    identity: &CertificateIdentity,
) {
    match verifier.verify(artifact, bundle, Signer::Certificate) {
        Ok(verified) => {
            let times: Vec<String> = verified
                .verified_times
                .iter()
                .map(|t| signet_keyless::rfc3339(*t))
                .collect();
            checks.signature = CheckResult::Passed(format!(
                "certificate chain, transparency-log and timestamp evidence verified; certificate valid at {}",
                times.join(", ")
            ));
            checks.verified_times = verified.verified_times.clone();
            checks.integrated_time = verified.log_entries.iter().find_map(|e| e.integrated_time);
            match &verified.certificate {
                Some(claims) => {
                    checks.certificate_identity = match identity.matches(&policy_claims(claims)) {
                        Ok(()) => CheckResult::Passed(format!(
                            "certificate names {} (issuer {})",
                            claims.subjects.first().map_or("?", |s| s.as_str()),
                            claims.issuer.as_deref().unwrap_or("?")
                        )),
                        Err(mismatch) => {
                            CheckResult::Failed(format!("{}: {mismatch}", mismatch.code()))
                        }
                    };
                    checks.claims = Some(claims.clone());
                }
                None => {
                    checks.certificate_identity =
                        CheckResult::Failed("the bundle carries no certificate".into());
                }
            }
        }
        Err(e) => checks.signature_refused(&e),
    }
}

/// The verifier's claims in the policy's terms.
pub fn policy_claims(claims: &CertificateClaims) -> PolicyClaims {
    PolicyClaims {
        subjects: claims
            .subjects
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        issuer: claims.issuer.clone(),
        github: GitHubClaims {
            trigger: claims.github.trigger.clone(),
            sha: claims.github.sha.clone(),
            name: claims.github.name.clone(),
            repository: claims.github.repository.clone(),
            git_ref: claims.github.git_ref.clone(),
        },
    }
}

fn annotation<'a>(layer: &'a Descriptor, key: &str) -> Result<Option<&'a str>, String> {
    match layer.annotation(key) {
        Some(v) if v.len() > MAX_ANNOTATION_BYTES => Err(format!(
            "annotation {key} of {} bytes exceeds {MAX_ANNOTATION_BYTES}",
            v.len()
        )),
        other => Ok(other),
    }
}

/// The DER certificates of a PEM text (at most `max`), in order. Anything but `CERTIFICATE`
/// blocks and whitespace between them is refused.
pub fn pem_certificates(pem: &str, max: usize) -> Result<Vec<Vec<u8>>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut rest = pem.trim();
    let mut out = Vec::new();
    while !rest.is_empty() {
        let body = rest
            .strip_prefix(BEGIN)
            .ok_or("not a PEM CERTIFICATE block")?;
        let end = body.find(END).ok_or("PEM block without its END line")?;
        let b64: String = body[..end].split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| "PEM certificate is not valid base64".to_string())?;
        out.push(der);
        if out.len() > max {
            return Err(format!("more than {max} certificates"));
        }
        rest = body[end + END.len()..].trim_start();
    }
    if out.is_empty() {
        return Err("no certificate".into());
    }
    Ok(out)
}

/// The Sigstore v0.1 bundle (JSON) that a legacy cosign layer's annotations spell: message
/// signature over the payload, the certificate plus the chain's intermediates (all but the last,
/// the root, as containers/image does: trust anchors come from the trusted root only), the Rekor
/// entry with its SET, and the RFC 3161 timestamp when present.
pub fn legacy_bundle_json(layer: &Descriptor) -> Result<Value, String> {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let signature: String = annotation(layer, SIGNATURE_ANNOTATION)?
        .ok_or_else(|| format!("no {SIGNATURE_ANNOTATION} annotation"))?
        .split_whitespace()
        .collect();
    let leaf = annotation(layer, CERTIFICATE_ANNOTATION)?
        .ok_or_else(|| format!("no {CERTIFICATE_ANNOTATION} annotation"))?;
    let leaf = pem_certificates(leaf, 1).map_err(|e| format!("{CERTIFICATE_ANNOTATION}: {e}"))?;
    let mut certificates: Vec<Value> = leaf.iter().map(|d| json!({"rawBytes": b64(d)})).collect();
    if let Some(chain) = annotation(layer, CHAIN_ANNOTATION)? {
        let chain = pem_certificates(chain, MAX_CHAIN_CERTIFICATES)
            .map_err(|e| format!("{CHAIN_ANNOTATION}: {e}"))?;
        let intermediates = chain.len().saturating_sub(1);
        certificates.extend(
            chain[..intermediates]
                .iter()
                .map(|d| json!({"rawBytes": b64(d)})),
        );
    }
    let set = annotation(layer, REKOR_BUNDLE_ANNOTATION)?
        .ok_or_else(|| format!("no {REKOR_BUNDLE_ANNOTATION} annotation (no Rekor entry)"))?;
    let set: Value = serde_json::from_str(set)
        .map_err(|e| format!("{REKOR_BUNDLE_ANNOTATION}: not JSON: {e}"))?;
    let field = |v: &Value, name: &str| -> Result<Value, String> {
        v.get(name)
            .cloned()
            .ok_or_else(|| format!("{REKOR_BUNDLE_ANNOTATION}: no {name}"))
    };
    let promise = field(&set, "SignedEntryTimestamp")?;
    let entry = field(&set, "Payload")?;
    let body = field(&entry, "body")?;
    let body_text = body
        .as_str()
        .ok_or_else(|| format!("{REKOR_BUNDLE_ANNOTATION}: body is not a string"))?;
    let body_json: Value = base64::engine::general_purpose::STANDARD
        .decode(body_text)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| format!("{REKOR_BUNDLE_ANNOTATION}: body is not base64 JSON"))?;
    let kind = body_json.get("kind").and_then(Value::as_str);
    let version = body_json.get("apiVersion").and_then(Value::as_str);
    let (Some(kind), Some(version)) = (kind, version) else {
        return Err(format!(
            "{REKOR_BUNDLE_ANNOTATION}: body has no kind and apiVersion"
        ));
    };
    let integer = |name: &str| -> Result<String, String> {
        field(&entry, name)?
            .as_i64()
            .filter(|n| *n >= 0)
            .map(|n| n.to_string())
            .ok_or_else(|| format!("{REKOR_BUNDLE_ANNOTATION}: {name} is not a whole number"))
    };
    let log_id = field(&entry, "logID")?;
    let log_id = log_id
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .filter(|b| b.len() == 32)
        .ok_or_else(|| format!("{REKOR_BUNDLE_ANNOTATION}: logID is not 64 hex digits"))?;
    let mut timestamps = Vec::new();
    if let Some(ts) = annotation(layer, RFC3161_ANNOTATION)? {
        let ts: Value =
            serde_json::from_str(ts).map_err(|e| format!("{RFC3161_ANNOTATION}: not JSON: {e}"))?;
        let token = ts
            .get("SignedRFC3161Timestamp")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{RFC3161_ANNOTATION}: no SignedRFC3161Timestamp"))?;
        timestamps.push(json!({"signedTimestamp": token}));
    }
    // The payload blob's digest is the SHA-256 of the signed bytes (the blob is checked
    // against it when read).
    let payload_digest = match layer.digest.algorithm() {
        signet_oci::Algorithm::Sha256 => {
            hex::decode(layer.digest.hex()).map_err(|_| "payload digest is not hex".to_string())?
        }
        other => {
            return Err(format!(
                "payload blob digest {other:?}: cosign signs SHA-256 payload digests"
            ))
        }
    };
    let signature_bytes = base64::engine::general_purpose::STANDARD
        .decode(signature.as_bytes())
        .map_err(|_| format!("{SIGNATURE_ANNOTATION}: not base64"))?;
    Ok(json!({
        "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "verificationMaterial": {
            "x509CertificateChain": {"certificates": certificates},
            "tlogEntries": [{
                "logIndex": integer("logIndex")?,
                "logId": {"keyId": b64(&log_id)},
                "kindVersion": {"kind": kind, "version": version},
                "integratedTime": integer("integratedTime")?,
                "inclusionPromise": {"signedEntryTimestamp": promise},
                "canonicalizedBody": body,
            }],
            "timestampVerificationData": {"rfc3161Timestamps": timestamps},
        },
        "messageSignature": {
            "messageDigest": {
                "algorithm": "SHA2_256",
                "digest": b64(&payload_digest),
            },
            "signature": b64(&signature_bytes),
        }
    }))
}

/// What a legacy layer's annotations give, per trust.
enum LegacyMaterial {
    /// A Sigstore bundle (certificate, chain, Rekor SET).
    Bundle(Bundle),
    /// A certificate for a private PKI.
    Pki(LegacyCertificate),
}

/// A legacy layer's certificate, chain intermediates, signature and Rekor SET.
struct LegacyCertificate {
    leaf: Vec<u8>,
    intermediates: Vec<Vec<u8>>,
    signature: Vec<u8>,
    /// The `dev.sigstore.cosign/bundle` annotation, when present.
    set: Option<String>,
}

fn legacy_certificate(layer: &Descriptor) -> Result<LegacyCertificate, String> {
    let signature: String = annotation(layer, SIGNATURE_ANNOTATION)?
        .ok_or_else(|| format!("no {SIGNATURE_ANNOTATION} annotation"))?
        .split_whitespace()
        .collect();
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature.as_bytes())
        .map_err(|_| format!("{SIGNATURE_ANNOTATION}: not base64"))?;
    let leaf = annotation(layer, CERTIFICATE_ANNOTATION)?
        .ok_or_else(|| format!("no {CERTIFICATE_ANNOTATION} annotation"))?;
    let leaf = pem_certificates(leaf, 1)
        .map_err(|e| format!("{CERTIFICATE_ANNOTATION}: {e}"))?
        .remove(0);
    let mut intermediates = Vec::new();
    if let Some(chain) = annotation(layer, CHAIN_ANNOTATION)? {
        intermediates = pem_certificates(chain, MAX_CHAIN_CERTIFICATES)
            .map_err(|e| format!("{CHAIN_ANNOTATION}: {e}"))?;
        // The last is the root; trust anchors come from the configured roots only.
        intermediates.pop();
    }
    let set = annotation(layer, REKOR_BUNDLE_ANNOTATION)?.map(str::to_string);
    Ok(LegacyCertificate {
        leaf,
        intermediates,
        signature,
        set,
    })
}

/// Which of `rekor_keys` verify the SET `set` over an entry binding `signer_der` (a key's SPKI
/// or the leaf certificate), the signature and the payload, with the entry's integrated time;
/// and why each other key did not.
pub(crate) struct VerifiedSets {
    pub(crate) verified: Vec<(Material, i64)>,
    pub(crate) refused: Vec<String>,
}

pub(crate) fn rekor_sets(
    rekor_keys: &[(Material, RekorKey)],
    set: &str,
    signer_der: &[u8],
    signature: &[u8],
    payload: &[u8],
) -> VerifiedSets {
    let mut out = VerifiedSets {
        verified: Vec::new(),
        refused: Vec::new(),
    };
    for (material, key) in rekor_keys {
        match verify_rekor_set(key, set, signer_der, signature, payload) {
            Ok(v) => out.verified.push((material.clone(), v.integrated_time)),
            Err(e) => out.refused.push(format!("Rekor key {material}: {e}")),
        }
    }
    out
}

/// containers/image's `fulcio` check: the SET verifies with one of the policy's Rekor keys over
/// an entry binding this certificate, signature and payload; then the certificate chains to the
/// named CA at the entry's integrated time (code-signing EKU, Fulcio issuer extension) and its
/// key verifies the signature. Issuer and email are the policy's to match, on the claims.
fn verify_fulcio(
    checks: &mut KeylessChecks,
    certificate: &LegacyCertificate,
    payload: &[u8],
    trust: &FulcioTrust,
    rekor_keys: &[(Material, RekorKey)],
) {
    let Some(set) = &certificate.set else {
        checks.signature = CheckResult::Failed(format!("no {REKOR_BUNDLE_ANNOTATION} annotation"));
        checks.stop_after("signature");
        return;
    };
    let logged = rekor_sets(
        rekor_keys,
        set,
        &certificate.leaf,
        &certificate.signature,
        payload,
    );
    let Some(&(_, integrated_time)) = logged.verified.first() else {
        let why = if rekor_keys.is_empty() {
            "the policy names no Rekor key".to_string()
        } else {
            logged.refused.join("; ")
        };
        checks.signature = CheckResult::Failed(format!(
            "{}: no Rekor key of the policy verifies the SET: {why}",
            signet_keyless::Check::TransparencyLog.code()
        ));
        checks.certificate_identity = CheckResult::Skipped("not checked: signature failed".into());
        return;
    };
    match trust.verify(
        &certificate.leaf,
        &certificate.intermediates,
        integrated_time,
        payload,
        &certificate.signature,
    ) {
        Ok(verified) => {
            let keys: Vec<String> = logged.verified.iter().map(|(m, _)| m.to_string()).collect();
            checks.signature = CheckResult::Passed(format!(
                "Rekor SET verified by {}; certificate chains to the Fulcio CA at the integrated time {} (code-signing EKU or none); its key verifies the signature",
                keys.join(", "),
                signet_keyless::rfc3339(integrated_time)
            ));
            checks.verified_times = vec![integrated_time];
            checks.integrated_time = Some(integrated_time);
            checks.rekor_logs = logged.verified.into_iter().map(|(m, _)| m).collect();
            checks.certificate_identity = CheckResult::Passed(format!(
                "certificate names {:?} (issuer {}); the policy matches them",
                verified.emails, verified.issuer
            ));
            checks.claims = Some(email_claims(
                &verified.emails,
                Some(verified.issuer),
                verified.not_before,
                verified.not_after,
            ));
        }
        Err(e) => checks.signature_refused(&e),
    }
}

/// The claims of a certificate checked outside a Sigstore root (a named Fulcio CA or a private
/// PKI): its email SANs, the Fulcio issuer when there is one, and its validity.
fn email_claims(
    emails: &[String],
    issuer: Option<String>,
    not_before: i64,
    not_after: i64,
) -> CertificateClaims {
    CertificateClaims {
        subjects: emails.iter().cloned().map(SubjectName::Email).collect(),
        issuer,
        github: Default::default(),
        ci: Default::default(),
        not_before,
        not_after,
    }
}

/// The signature and certificate-identity checks for a private PKI.
fn verify_pki(
    checks: &mut KeylessChecks,
    certificate: &LegacyCertificate,
    payload: &[u8],
    trust: &PkiTrust,
    email: &Option<String>,
    hostname: &Option<String>,
    now: i64,
) {
    match trust.verify(
        &certificate.leaf,
        &certificate.intermediates,
        now,
        payload,
        &certificate.signature,
    ) {
        Ok(verified) => {
            checks.signature = CheckResult::Passed(format!(
                "certificate chains to a configured CA root at {} (code-signing EKU or none); its key verifies the signature",
                signet_keyless::rfc3339(now)
            ));
            checks.verified_times = vec![now];
            checks.hostnames = verified.hostnames.clone();
            let mut missing = Vec::new();
            if let Some(email) = email {
                if !verified.emails.contains(email) {
                    missing.push(format!("email {email} (has {:?})", verified.emails));
                }
            }
            if let Some(hostname) = hostname {
                if !verified.hostnames.contains(hostname) {
                    missing.push(format!(
                        "hostname {hostname} (has {:?})",
                        verified.hostnames
                    ));
                }
            }
            checks.certificate_identity = if email.is_none() && hostname.is_none() {
                CheckResult::Failed("no subject email or hostname required".into())
            } else if missing.is_empty() {
                CheckResult::Passed(format!(
                    "certificate names {}",
                    [email.as_deref(), hostname.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" and ")
                ))
            } else {
                CheckResult::Failed(format!("certificate lacks {}", missing.join(", ")))
            };
            checks.claims = Some(email_claims(
                &verified.emails,
                None,
                verified.not_before,
                verified.not_after,
            ));
        }
        Err(e) => checks.signature_refused(&e),
    }
}

fn legacy_bundle(layer: &Descriptor) -> Result<Bundle, String> {
    let json = legacy_bundle_json(layer)?;
    let bytes = serde_json::to_vec(&json).map_err(|e| e.to_string())?;
    Bundle::from_json(&bytes).map_err(|e| e.to_string())
}

async fn bundle_candidates(
    store: &ImageStore,
    digest: &Digest,
    options: &KeylessOptions,
) -> Result<(signet_oci::referrers::ReferrersSource, Vec<KeylessChecks>), Error> {
    let mut reads = BundleReads::new(store, digest);
    let referrers = reads.listed().await?.clone();
    if referrers.descriptors.len() > options.max_signatures {
        return Err(Error::LimitExceeded {
            what: format!(
                "{} signature bundle referrers of {digest}",
                referrers.descriptors.len()
            ),
            limit: format!("{} signatures", options.max_signatures),
        });
    }
    let mut out = Vec::new();
    for (index, descriptor) in referrers.descriptors.iter().enumerate() {
        let mut checks =
            KeylessChecks::new(SignatureFormat::Bundle, index, descriptor.digest.clone());
        let bundle_bytes = match referrer_bundle_bytes(&mut reads, descriptor).await {
            Ok(bytes) => bytes,
            Err(ReferrerProblem::Invalid(why)) => {
                checks.material = CheckResult::Failed(why);
                checks.stop_after("material");
                out.push(checks);
                continue;
            }
            Err(ReferrerProblem::Error(e)) => return Err(e),
        };
        assess_bundle(&mut checks, &bundle_bytes, digest, options);
        let passed = checks.passed();
        out.push(checks);
        if passed {
            break;
        }
    }
    Ok((referrers.source, out))
}

enum ReferrerProblem {
    /// The referrer is not a bundle Signet accepts (a finding, not an error).
    Invalid(String),
    /// It could not be read.
    Error(Error),
}

/// The bundle blob a referrer manifest holds: the manifest is fetched by digest (checked), must
/// name the digest `reads` is about as its subject and hold one layer of the bundle media type.
async fn referrer_bundle_bytes(
    reads: &mut BundleReads<'_>,
    descriptor: &Descriptor,
) -> Result<Vec<u8>, ReferrerProblem> {
    let digest = &reads.subject().clone();
    let fetched = reads
        .manifest(descriptor)
        .await
        .map_err(|e| ReferrerProblem::Error(e.into()))?;
    let subject = signet_oci::referrers::subject_of(&fetched.manifest)
        .map_err(|e| ReferrerProblem::Invalid(e.to_string()))?;
    if subject.as_ref() != Some(digest) {
        return Err(ReferrerProblem::Invalid(format!(
            "the referrer's subject is not {digest}"
        )));
    }
    let Manifest::Image(manifest) = &fetched.manifest else {
        return Err(ReferrerProblem::Invalid(
            "the referrer is an index, not a bundle manifest".into(),
        ));
    };
    let layers: Vec<&Descriptor> = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == BUNDLE_ARTIFACT_TYPE)
        .collect();
    let [layer] = layers.as_slice() else {
        return Err(ReferrerProblem::Invalid(format!(
            "the referrer holds {} bundle layers, not one",
            layers.len()
        )));
    };
    if layer.size > MAX_REFERRER_BUNDLE_BYTES {
        return Err(ReferrerProblem::Invalid(format!(
            "bundle of {} bytes exceeds {MAX_REFERRER_BUNDLE_BYTES}",
            layer.size
        )));
    }
    match reads.blob(layer, MAX_REFERRER_BUNDLE_BYTES).await {
        Ok(bytes) => Ok(bytes),
        Err(
            e @ (signet_oci::Error::DigestMismatch { .. } | signet_oci::Error::SizeMismatch { .. }),
        ) => Err(ReferrerProblem::Invalid(e.to_string())),
        Err(e) => Err(ReferrerProblem::Error(e.into())),
    }
}

/// Every check on one referrer bundle's bytes (pure apart from the verifier).
pub(crate) fn assess_bundle(
    checks: &mut KeylessChecks,
    bundle_bytes: &[u8],
    digest: &Digest,
    options: &KeylessOptions,
) {
    let bundle = match Bundle::from_json(bundle_bytes) {
        Ok(bundle) => bundle,
        Err(e) => {
            checks.material = CheckResult::Failed(format!("bundle: {e}"));
            checks.stop_after("material");
            return;
        }
    };
    checks.material =
        CheckResult::Passed(format!("Sigstore bundle v{}", bundle.version().as_str()));
    let statement = match bundle.dsse_payload() {
        Some((_, payload)) => payload.to_vec(),
        None => {
            checks.payload = CheckResult::Failed(
                "not a DSSE envelope (cosign signs images with an in-toto statement)".into(),
            );
            checks.stop_after("payload");
            return;
        }
    };
    match cosign_statement_subject(&statement, digest) {
        Ok(()) => {
            checks.payload = CheckResult::Passed(format!(
                "in-toto statement, predicateType {COSIGN_SIGN_PREDICATE}"
            ));
            checks.manifest_digest =
                CheckResult::Passed(format!("statement subject names {digest}"));
        }
        Err(StatementProblem::Shape(why)) => {
            checks.payload = CheckResult::Failed(why);
            checks.stop_after("payload");
            return;
        }
        Err(StatementProblem::Subject(why)) => {
            checks.payload = CheckResult::Passed(format!(
                "in-toto statement, predicateType {COSIGN_SIGN_PREDICATE}"
            ));
            checks.manifest_digest = CheckResult::Failed(why);
        }
    }
    let Ok(image_digest) = digest.to_string().parse::<Sha256Digest>() else {
        checks.signature = CheckResult::Failed(format!(
            "{digest}: only SHA-256 image digests can be verified against a bundle"
        ));
        checks.stop_after("signature");
        return;
    };
    let CertificateTrust::Sigstore { verifier, identity } = &options.trust else {
        checks.signature =
            CheckResult::Failed("a private PKI verifies legacy signatures only".into());
        checks.stop_after("signature");
        return;
    };
    verify_bundle(
        checks,
        &bundle,
        Artifact::Digest(image_digest),
        verifier,
        identity,
    );
    checks.docker_reference = match options.formats {
        FormatRequirement::Legacy => CheckResult::Failed(
            "a bundle binds only the digest; the policy requires the signed repository (legacy format)"
                .into(),
        ),
        FormatRequirement::Any => CheckResult::Passed(
            "not signed: a bundle binds only the digest, not the repository".into(),
        ),
    };
    checks.payload_bytes = Some(statement);
}

enum StatementProblem {
    /// Not a cosign image-signature statement.
    Shape(String),
    /// A statement, but not about this image.
    Subject(String),
}

/// Check that `statement` is an in-toto statement of predicateType [`COSIGN_SIGN_PREDICATE`]
/// whose subjects include `digest`.
fn cosign_statement_subject(statement: &[u8], digest: &Digest) -> Result<(), StatementProblem> {
    let value: Value = serde_json::from_slice(statement)
        .map_err(|e| StatementProblem::Shape(format!("statement is not JSON: {e}")))?;
    let predicate = value.get("predicateType").and_then(Value::as_str);
    if predicate != Some(COSIGN_SIGN_PREDICATE) {
        return Err(StatementProblem::Shape(format!(
            "predicateType {predicate:?} is not {COSIGN_SIGN_PREDICATE}"
        )));
    }
    let subjects = value
        .get("subject")
        .and_then(Value::as_array)
        .ok_or_else(|| StatementProblem::Shape("statement has no subject list".into()))?;
    let algorithm = digest.algorithm().as_str();
    let names_image = subjects.iter().any(|s| {
        s.get("digest")
            .and_then(|d| d.get(algorithm))
            .and_then(Value::as_str)
            == Some(digest.hex())
    });
    if names_image {
        Ok(())
    } else {
        Err(StatementProblem::Subject(format!(
            "no statement subject names {digest}"
        )))
    }
}

/// What a policy trust source verifies certificates under.
// One per trust source, never in collections: boxing the verifier would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum PolicyTrust {
    /// A Sigstore root (any certificate identity passes here: identity is the policy's to judge,
    /// on the claims) or a private PKI (`pki`) whose CA roots are checked at `now`.
    Certificate(CertificateTrust),
    /// A Fulcio CA named without a Sigstore root (containers/image `fulcio`): only legacy layers
    /// whose SET one of the policy's Rekor keys verifies, the certificate checked at the SET's
    /// integrated time.
    Fulcio(FulcioTrust),
}

/// The certificate trust `source` stands for, its material as loaded with `policy`; a private
/// PKI checks certificates at `now`. The one place a policy's trust source becomes a verifier,
/// for signatures ([`policy_evidence`]) and attestations alike.
pub(crate) fn policy_trust(
    source: &signet_policy::trust::TrustSource,
    policy: &crate::enforce::PolicyFile,
    now: i64,
) -> Result<PolicyTrust, Error> {
    use signet_policy::trust::TrustSource;
    let read_certificates = |m: &Material| -> Result<Vec<Vec<u8>>, Error> {
        let bytes = policy.material(m).ok_or_else(|| {
            Error::Invalid(format!("trust material {m} was not loaded with the policy"))
        })?;
        let text =
            std::str::from_utf8(bytes).map_err(|_| Error::Invalid(format!("{m}: not PEM text")))?;
        pem_certificates(text, signet_keyless::pki::MAX_PKI_CERTIFICATES)
            .map_err(|e| Error::Invalid(format!("{m}: {e}")))
    };
    Ok(match source {
        TrustSource::Sigstore(root) => {
            let root = policy.trusted_root(root).ok_or_else(|| {
                Error::Invalid(format!(
                    "trusted root {root} was not loaded with the policy"
                ))
            })?;
            let verifier =
                Verifier::new(root).map_err(|e| Error::Invalid(format!("trusted root: {e}")))?;
            // Identity is the policy's to judge, on the claims; this matcher only fills the
            // report's certificate-identity check.
            let any = signet_policy::certificate::Match::pattern(".*")
                .map_err(|e| Error::Invalid(e.to_string()))?;
            PolicyTrust::Certificate(CertificateTrust::Sigstore {
                verifier,
                identity: CertificateIdentity {
                    subject: any.clone(),
                    issuer: any,
                    github: Default::default(),
                },
            })
        }
        TrustSource::Authority(ca) if ca.fulcio => PolicyTrust::Fulcio(
            FulcioTrust::new(read_certificates(&ca.roots)?)
                .map_err(|e| Error::Invalid(format!("{}: {e}", ca.roots)))?,
        ),
        TrustSource::Authority(ca) => {
            let intermediates = match &ca.intermediates {
                Some(m) => read_certificates(m)?,
                None => Vec::new(),
            };
            PolicyTrust::Certificate(CertificateTrust::Pki {
                trust: PkiTrust::new(read_certificates(&ca.roots)?, intermediates)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", ca.roots)))?,
                email: None,
                hostname: None,
                now,
            })
        }
    })
}

/// Every certificate-signed candidate of the image `digest` checked under each trust source
/// `policy` names, and the evidence they give (what [`crate::enforce`] adds to key signatures).
/// Sigstore roots verify legacy layers and bundle referrers; a private PKI (`pki`) verifies
/// legacy layers at `now` (and reports which of the policy's Rekor keys verify a SET, when the
/// layer has one); a Fulcio CA named without a Sigstore root (containers/image `fulcio`)
/// verifies legacy layers whose SET one of the policy's Rekor keys verifies, the certificate
/// checked at the SET's integrated time.
///
/// `signature_manifest` is the image's `.sig` manifest as the caller read it (`None`: it has
/// none). Bundle referrers are read through `bundles`, the reads the whole judgement shares, and
/// only when given (`None`: the scope counts no bundle signature, so none is read).
pub async fn policy_evidence(
    store: &ImageStore,
    identity: &Reference,
    digest: &Digest,
    signature_manifest: Option<&ImageManifest>,
    bundles: Option<&mut BundleReads<'_>>,
    policy: &crate::enforce::PolicyFile,
    now: i64,
) -> Result<(Vec<signet_policy::SignatureEvidence>, Vec<KeylessChecks>), Error> {
    use signet_policy::trust::TrustSource;
    let sources = policy.policy().trust_sources();
    if sources.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // Fetch once, check under every source.
    let mut legacy = Vec::new();
    if let Some(manifest) = signature_manifest {
        let layers: Vec<(usize, &Descriptor)> = manifest
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| l.media_type == SIMPLE_SIGNING)
            .filter(|(_, l)| l.annotation(CERTIFICATE_ANNOTATION).is_some())
            .collect();
        if layers.len() > crate::signatures::DEFAULT_MAX_SIGNATURES {
            return Err(Error::LimitExceeded {
                what: format!("{} certificate signatures of {digest}", layers.len()),
                limit: format!("{} signatures", crate::signatures::DEFAULT_MAX_SIGNATURES),
            });
        }
        for (index, layer) in layers {
            let fetched = if layer.size > MAX_PAYLOAD_BYTES {
                Err(format!(
                    "payload of {} bytes exceeds {MAX_PAYLOAD_BYTES}",
                    layer.size
                ))
            } else {
                match store.blob_bytes(layer, MAX_PAYLOAD_BYTES).await {
                    Ok(bytes) => Ok(bytes),
                    Err(
                        e @ (signet_oci::Error::DigestMismatch { .. }
                        | signet_oci::Error::SizeMismatch { .. }),
                    ) => Err(e.to_string()),
                    Err(e) => return Err(e.into()),
                }
            };
            legacy.push((index, layer.clone(), fetched));
        }
    }
    let mut bundle_bytes: Vec<(usize, Digest, Result<Vec<u8>, String>)> = Vec::new();
    let sigstore = sources
        .iter()
        .any(|s| matches!(s, TrustSource::Sigstore(_)));
    if let (true, Some(reads)) = (sigstore, bundles) {
        let referrers = reads.listed().await?.clone();
        if referrers.descriptors.len() > crate::signatures::DEFAULT_MAX_SIGNATURES {
            return Err(Error::LimitExceeded {
                what: format!(
                    "{} bundle referrers of {digest}",
                    referrers.descriptors.len()
                ),
                limit: format!("{} signatures", crate::signatures::DEFAULT_MAX_SIGNATURES),
            });
        }
        for (index, descriptor) in referrers.descriptors.iter().enumerate() {
            let bytes = match referrer_bundle_bytes(reads, descriptor).await {
                Ok(bytes) => Ok(bytes),
                Err(ReferrerProblem::Invalid(why)) => Err(why),
                Err(ReferrerProblem::Error(e)) => return Err(e),
            };
            bundle_bytes.push((index, descriptor.digest.clone(), bytes));
        }
    }
    let mut evidence = Vec::new();
    let mut candidates = Vec::new();
    let rekor_keys = policy.rekor_keys();
    for source in sources {
        let trust = match policy_trust(source, policy, now)? {
            PolicyTrust::Certificate(trust) => trust,
            PolicyTrust::Fulcio(trust) => {
                for (index, layer, fetched) in &legacy {
                    let checks = assess_legacy_under(
                        *index,
                        layer,
                        fetched.clone(),
                        identity,
                        digest,
                        &IdentityRule::MatchRepository,
                        LegacyTrust::Fulcio {
                            trust: &trust,
                            rekor_keys,
                        },
                    );
                    evidence.extend(checks.evidence(source));
                    candidates.push(checks);
                }
                continue;
            }
        };
        let options = KeylessOptions {
            trust,
            identity_rule: IdentityRule::MatchRepository,
            formats: FormatRequirement::Any,
            max_signatures: crate::signatures::DEFAULT_MAX_SIGNATURES,
        };
        for (index, layer, fetched) in &legacy {
            let checks = assess_legacy_under(
                *index,
                layer,
                fetched.clone(),
                identity,
                digest,
                &options.identity_rule,
                LegacyTrust::Certificate {
                    trust: &options.trust,
                    rekor_keys,
                },
            );
            evidence.extend(checks.evidence(source));
            candidates.push(checks);
        }
        if matches!(options.trust, CertificateTrust::Sigstore { .. }) {
            for (index, referrer, bytes) in &bundle_bytes {
                let mut checks =
                    KeylessChecks::new(SignatureFormat::Bundle, *index, referrer.clone());
                match bytes {
                    Ok(bytes) => assess_bundle(&mut checks, bytes, digest, &options),
                    Err(why) => {
                        checks.material = CheckResult::Failed(why.clone());
                        checks.stop_after("material");
                    }
                }
                evidence.extend(checks.evidence(source));
                candidates.push(checks);
            }
        }
    }
    Ok((evidence, candidates))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pem_blocks_are_read_bounded_and_junk_refused() {
        let one = "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_certificates(one, 1).unwrap(), vec![vec![0u8, 1, 2]]);
        let two = format!("{one}{one}");
        assert_eq!(pem_certificates(&two, 2).unwrap().len(), 2);
        assert!(pem_certificates(&two, 1)
            .unwrap_err()
            .contains("more than 1"));
        assert!(pem_certificates("junk", 1)
            .unwrap_err()
            .contains("not a PEM"));
        assert!(pem_certificates(
            "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----",
            1
        )
        .unwrap_err()
        .contains("base64"));
        assert!(pem_certificates("-----BEGIN CERTIFICATE-----\nAAEC\n", 1)
            .unwrap_err()
            .contains("END"));
        assert_eq!(pem_certificates("", 1).unwrap_err(), "no certificate");
    }

    #[test]
    fn statements_must_be_cosign_signatures_naming_the_image() {
        let digest = Digest::sha256(b"image");
        let statement = |predicate: &str, hex: &str| {
            serde_json::to_vec(&json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "x", "digest": {"sha256": hex}}],
                "predicateType": predicate,
                "predicate": {},
            }))
            .unwrap()
        };
        assert!(
            cosign_statement_subject(&statement(COSIGN_SIGN_PREDICATE, digest.hex()), &digest)
                .is_ok()
        );
        match cosign_statement_subject(
            &statement("https://slsa.dev/provenance/v1", digest.hex()),
            &digest,
        ) {
            Err(StatementProblem::Shape(why)) => assert!(why.contains("predicateType"), "{why}"),
            _ => panic!("another predicate type must be refused"),
        }
        let other = Digest::sha256(b"other");
        match cosign_statement_subject(&statement(COSIGN_SIGN_PREDICATE, other.hex()), &digest) {
            Err(StatementProblem::Subject(why)) => {
                assert!(why.contains("no statement subject"), "{why}")
            }
            _ => panic!("another subject must be refused"),
        }
    }

    #[test]
    fn legacy_annotations_without_rekor_or_certificate_are_named() {
        let mut d = Descriptor::of(SIMPLE_SIGNING, b"{}");
        d.annotations = Some(BTreeMap::from([(
            SIGNATURE_ANNOTATION.to_string(),
            "AAAA".to_string(),
        )]));
        assert!(legacy_bundle_json(&d)
            .unwrap_err()
            .contains(CERTIFICATE_ANNOTATION));
    }

    /// The `cosign-real` fixtures (containers/image's, see testdata/cosign-real/README.md).
    mod cosign_real {
        use super::*;
        use signet_keyless::{Instance, TrustSource, TrustedRoot};
        use signet_policy::certificate::{GitHubRequirements, Match};

        const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/cosign-real");
        const FULCIO_REF: &str = "192.168.64.2:5000/cosign-signed/fulcio-rekor-1";
        const FULCIO_DIGEST: &str =
            "sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a";
        const GITHUB: &str = "https://github.com/login/oauth";

        /// A `signature-N` file (sigstore-json): the layer descriptor and the payload bytes.
        pub(crate) fn signature_file(dir: &str) -> (Descriptor, Vec<u8>) {
            let raw = std::fs::read(format!("{FIXTURES}/{dir}/signature-1")).unwrap();
            let json: Value = serde_json::from_slice(&raw[15..]).unwrap();
            let payload = base64::engine::general_purpose::STANDARD
                .decode(json["payload"].as_str().unwrap())
                .unwrap();
            let mut d = Descriptor::of(json["mimeType"].as_str().unwrap(), &payload);
            d.annotations = Some(serde_json::from_value(json["annotations"].clone()).unwrap());
            (d, payload)
        }

        fn pem_file_der(name: &str) -> Vec<u8> {
            let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap();
            if text.contains("PUBLIC KEY") {
                let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
                return base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap();
            }
            pem_certificates(&text, 8).unwrap().remove(0)
        }

        /// The public-good root, changed by `edit`.
        pub(crate) fn root_with(edit: impl FnOnce(&mut Value)) -> TrustedRoot {
            let mut root: Value =
                serde_json::from_str(Instance::PublicGood.embedded_json()).unwrap();
            edit(&mut root);
            TrustedRoot::from_json(
                &serde_json::to_vec(&root).unwrap(),
                TrustSource::File("test".into()),
            )
            .unwrap()
        }

        /// A root whose only Fulcio CA is fulcio_v1.crt.pem (containers/image's `caPath`).
        pub(crate) fn fulcio_v1_only(root: &mut Value) {
            let der = pem_file_der("fulcio_v1.crt.pem");
            root["certificateAuthorities"] = json!([{
                "subject": {"organization": "sigstore.dev", "commonName": "sigstore"},
                "uri": "https://fulcio.sigstore.dev",
                "certChain": {"certificates": [{
                    "rawBytes": base64::engine::general_purpose::STANDARD.encode(der)
                }]},
                "validFor": {"start": "2021-03-07T03:20:29Z"},
            }]);
        }

        /// The Rekor log's key replaced by another (cosign.pub), its log id kept.
        pub(crate) fn wrong_rekor_key(root: &mut Value) {
            let der = pem_file_der("cosign.pub");
            root["tlogs"][0]["publicKey"]["rawBytes"] =
                Value::from(base64::engine::general_purpose::STANDARD.encode(der));
        }

        fn options(root: &TrustedRoot, email: &str) -> KeylessOptions {
            KeylessOptions {
                trust: CertificateTrust::Sigstore {
                    verifier: Verifier::new(root).unwrap(),
                    identity: CertificateIdentity {
                        subject: Match::Exact(email.into()),
                        issuer: Match::Exact(GITHUB.into()),
                        github: GitHubRequirements::default(),
                    },
                },
                identity_rule: IdentityRule::MatchRepository,
                formats: FormatRequirement::Any,
                max_signatures: 10,
            }
        }

        fn judge(
            layer: &Descriptor,
            payload: &[u8],
            image: &str,
            options: &KeylessOptions,
        ) -> KeylessChecks {
            assess_legacy(
                0,
                layer,
                Ok(payload.to_vec()),
                &image.parse().unwrap(),
                &FULCIO_DIGEST.parse().unwrap(),
                options,
            )
        }

        fn failed(c: &KeylessChecks) -> Vec<(&'static str, String)> {
            c.checks()
                .iter()
                .filter(|(_, r)| r.failed())
                .map(|(n, r)| (*n, r.detail().to_string()))
                .collect()
        }

        fn without(layer: &Descriptor, key: &str) -> Descriptor {
            let mut d = layer.clone();
            d.annotations.as_mut().unwrap().remove(key);
            d
        }

        fn pki_options(intermediates: bool, email: &str, hostname: Option<&str>) -> KeylessOptions {
            let read = |name: &str| {
                pem_certificates(
                    &std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap(),
                    8,
                )
                .unwrap()
            };
            let intermediates = if intermediates {
                read("pki_intermediate_crts.pem")
            } else {
                Vec::new()
            };
            KeylessOptions {
                trust: CertificateTrust::Pki {
                    trust: PkiTrust::new(read("pki_root_crts.pem"), intermediates).unwrap(),
                    email: Some(email.into()),
                    hostname: hostname.map(str::to_string),
                    // The fixture's certificates are valid 2024-10-01 to 2052-02-16.
                    now: 1_800_000_000,
                },
                identity_rule: IdentityRule::MatchRepository,
                formats: FormatRequirement::Any,
                max_signatures: 10,
            }
        }

        /// A real v0.3 DSSE bundle (testdata/sigstore-bundles/dsse-rekor1-conda) whose payload
        /// is replaced by a cosign image-signature statement naming `digest`: it parses and
        /// names the image, but its signature no longer verifies; and a bundle never signs the
        /// repository, which `FormatRequirement::Legacy` refuses.
        #[test]
        fn a_rewritten_bundle_statement_is_refused_and_legacy_only_refuses_bundles() {
            let digest = Digest::sha256(b"the image");
            let mut bundle: Value = serde_json::from_slice(
                &std::fs::read(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../testdata/sigstore-bundles/dsse-rekor1-conda/bundle.sigstore.json"
                ))
                .unwrap(),
            )
            .unwrap();
            let statement = json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "image", "digest": {"sha256": digest.hex()}}],
                "predicateType": COSIGN_SIGN_PREDICATE,
                "predicate": {},
            });
            bundle["dsseEnvelope"]["payload"] = Value::from(
                base64::engine::general_purpose::STANDARD
                    .encode(serde_json::to_vec(&statement).unwrap()),
            );
            let bytes = serde_json::to_vec(&bundle).unwrap();
            let root = TrustedRoot::embedded(Instance::PublicGood).unwrap();
            for (formats, reference_passes) in [
                (FormatRequirement::Any, true),
                (FormatRequirement::Legacy, false),
            ] {
                let mut options = options(&root, "anyone@example.com");
                options.formats = formats;
                let mut checks = KeylessChecks::new(SignatureFormat::Bundle, 0, digest.clone());
                assess_bundle(&mut checks, &bytes, &digest, &options);
                let f = failed(&checks);
                assert!(checks.material.passed() && checks.payload.passed(), "{f:?}");
                assert!(checks.manifest_digest.passed(), "{f:?}");
                assert!(checks.signature.failed(), "{f:?}");
                assert!(!checks.binds_repository());
                assert_eq!(checks.docker_reference.passed(), reference_passes, "{f:?}");
                assert!(checks
                    .evidence(&signet_policy::trust::TrustSource::Sigstore(
                        signet_policy::trust::SigstoreRoot::PublicGood
                    ))
                    .is_empty());
                assert!(!checks.passed());
            }
        }

        fn rekor_key(name: &str) -> (Material, RekorKey) {
            let pem = std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap();
            (
                Material::Path(name.to_string()),
                RekorKey::from_pem(&pem).unwrap(),
            )
        }

        fn fulcio_ca(name: &str) -> FulcioTrust {
            let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap();
            FulcioTrust::new(pem_certificates(&text, 8).unwrap()).unwrap()
        }

        fn judge_fulcio(
            layer: &Descriptor,
            payload: &[u8],
            ca: &FulcioTrust,
            rekor_keys: &[(Material, RekorKey)],
        ) -> KeylessChecks {
            assess_legacy_under(
                0,
                layer,
                Ok(payload.to_vec()),
                &format!("{FULCIO_REF}:latest").parse().unwrap(),
                &FULCIO_DIGEST.parse().unwrap(),
                &IdentityRule::MatchRepository,
                LegacyTrust::Fulcio {
                    trust: ca,
                    rekor_keys,
                },
            )
        }

        fn fulcio_source(ca: &str) -> signet_policy::trust::TrustSource {
            signet_policy::trust::TrustSource::Authority(
                signet_policy::trust::CertificateAuthority {
                    roots: Material::Path(ca.into()),
                    intermediates: None,
                    fulcio: true,
                },
            )
        }

        /// A SET by `key` over a hashedrekord entry binding `layer`'s certificate, signature and
        /// `payload`, integrated at `integrated_time`: what a Rekor log with that key would sign.
        fn forged_set(
            key: &signet_sign::keys::SigningKey,
            layer: &Descriptor,
            payload: &[u8],
            integrated_time: i64,
        ) -> String {
            let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
            let signature: String = layer
                .annotation(SIGNATURE_ANNOTATION)
                .unwrap()
                .split_whitespace()
                .collect();
            let cert = layer.annotation(CERTIFICATE_ANNOTATION).unwrap();
            let body = json!({
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": Digest::sha256(payload).hex()}},
                    "signature": {
                        "content": signature,
                        "publicKey": {"content": b64(cert.as_bytes())},
                    },
                },
            });
            // Members in RFC 8785 order, compact: this is the canonical form the SET signs.
            let entry = format!(
                r#"{{"body":"{}","integratedTime":{integrated_time},"logID":"{}","logIndex":1}}"#,
                b64(&serde_json::to_vec(&body).unwrap()),
                "00".repeat(32)
            );
            let promise = signet_sign::signature::sign(key, entry.as_bytes());
            serde_json::to_string(&json!({
                "SignedEntryTimestamp": promise,
                "Payload": serde_json::from_str::<Value>(&entry).unwrap(),
            }))
            .unwrap()
        }

        /// containers/image's `fulcio` + `rekorPublicKeyPath` on dir-img-cosign-fulcio-rekor-valid:
        /// every README row, each refusal by the check that makes it.
        #[test]
        fn fulcio_ca_with_rekor_keys_gets_every_verdict_of_the_readme() {
            let (layer, payload) = signature_file("dir-img-cosign-fulcio-rekor-valid");
            let ca = fulcio_ca("fulcio_v1.crt.pem");
            let rekor = [rekor_key("rekor.pub")];

            // ACCEPT: chain to the named CA at the SET's integrated time; evidence names the CA
            // and the Rekor key.
            let c = judge_fulcio(&layer, &payload, &ca, &rekor);
            assert!(c.passed(), "{:?}", failed(&c));
            assert_eq!(c.verified_times, [1674247893]);
            let mut evidence = c.evidence(&fulcio_source("fulcio_v1.crt.pem"));
            assert_eq!(evidence.len(), 1);
            let evidence = evidence.remove(0);
            let tlog = evidence.tlog.as_ref().unwrap();
            assert_eq!(
                tlog.log,
                signet_policy::trust::LogSource::RekorKey(Material::Path("rekor.pub".into()))
            );
            assert_eq!(tlog.integrated_time, 1674247893);
            assert_eq!(evidence.docker_reference.as_deref(), Some(FULCIO_REF));
            match &evidence.signer {
                signet_policy::verdict::Signer::Certificate(cert) => {
                    assert_eq!(cert.emails, ["mitr@redhat.com"]);
                    assert_eq!(cert.claims.issuer.as_deref(), Some(GITHUB));
                    assert_eq!(cert.trust, fulcio_source("fulcio_v1.crt.pem"));
                    assert_eq!(cert.verified_time, 1674247893);
                }
                other => panic!("a certificate signer, not {other:?}"),
            }

            // REJECT without the SET or the certificate: the material check.
            for (key, named) in [
                (REKOR_BUNDLE_ANNOTATION, "no Rekor entry"),
                (CERTIFICATE_ANNOTATION, CERTIFICATE_ANNOTATION),
            ] {
                let c = judge_fulcio(&without(&layer, key), &payload, &ca, &rekor);
                let f = failed(&c);
                assert_eq!((f.len(), f[0].0), (1, "material"), "{f:?}");
                assert!(f[0].1.contains(named), "{f:?}");
                assert!(c.evidence(&fulcio_source("fulcio_v1.crt.pem")).is_empty());
            }

            // Without the chain: REJECT when the CA is only the root, ACCEPT when it is the
            // chain itself (fulcio-chain: intermediate and root).
            let no_chain = without(&layer, CHAIN_ANNOTATION);
            let c = judge_fulcio(&no_chain, &payload, &ca, &rekor);
            let f = failed(&c);
            assert_eq!((f.len(), f[0].0), (1, "signature"), "{f:?}");
            assert!(f[0].1.starts_with("certificate-invalid"), "{f:?}");
            let c = judge_fulcio(&no_chain, &payload, &fulcio_ca("fulcio-chain"), &rekor);
            assert!(c.passed(), "{:?}", failed(&c));

            // REJECT with the wrong Rekor key: the SET does not verify.
            let c = judge_fulcio(&layer, &payload, &ca, &[rekor_key("cosign.pub")]);
            let f = failed(&c);
            assert_eq!((f.len(), f[0].0), (1, "signature"), "{f:?}");
            assert!(f[0].1.starts_with("tlog-invalid"), "{f:?}");
            assert!(
                f[0].1.contains("does not verify with the Rekor key"),
                "{f:?}"
            );
            // ACCEPT when one of several Rekor keys verifies; the evidence names that one.
            let c = judge_fulcio(
                &layer,
                &payload,
                &ca,
                &[rekor_key("cosign.pub"), rekor[0].clone()],
            );
            assert!(c.passed(), "{:?}", failed(&c));
            assert_eq!(c.rekor_logs, [Material::Path("rekor.pub".into())]);

            // REJECT with another CA (the private-PKI root).
            let c = judge_fulcio(&layer, &payload, &fulcio_ca("pki_root_crts.pem"), &rekor);
            let f = failed(&c);
            assert_eq!((f.len(), f[0].0), (1, "signature"), "{f:?}");
            assert!(f[0].1.contains("does not chain to the Fulcio CA"), "{f:?}");

            // REJECT a SET over another entry (key-rekor-valid's: another key, signature and
            // payload), though rekor.pub signed it.
            let (other, _) = signature_file("dir-img-cosign-key-rekor-valid");
            let mut moved = layer.clone();
            moved.annotations.as_mut().unwrap().insert(
                REKOR_BUNDLE_ANNOTATION.into(),
                other.annotation(REKOR_BUNDLE_ANNOTATION).unwrap().into(),
            );
            let c = judge_fulcio(&moved, &payload, &ca, &rekor);
            let f = failed(&c);
            assert_eq!((f.len(), f[0].0), (1, "signature"), "{f:?}");
            assert!(
                f[0].1.contains("another public key or certificate"),
                "{f:?}"
            );

            // REJECT a signature over other bytes (the SET names the payload's hash).
            let c = judge_fulcio(&layer, b"{}", &ca, &rekor);
            assert_eq!(failed(&c)[0].0, "payload", "{:?}", failed(&c));

            // Another repository: the docker-reference check (matchRepository).
            let c = assess_legacy_under(
                0,
                &layer,
                Ok(payload.clone()),
                &"192.168.64.2:5000/other:latest".parse().unwrap(),
                &FULCIO_DIGEST.parse().unwrap(),
                &IdentityRule::MatchRepository,
                LegacyTrust::Fulcio {
                    trust: &ca,
                    rekor_keys: &rekor,
                },
            );
            let f = failed(&c);
            assert_eq!((f.len(), f[0].0), (1, "docker-reference"), "{f:?}");
        }

        /// The certificate (valid 2023-01-20 20:51:31–21:01:31 UTC) is checked at the SET's
        /// integrated time: a SET by a trusted Rekor key integrating the entry after the
        /// certificate expired (or before it began) is refused; inside the window it verifies.
        #[test]
        fn fulcio_certificates_must_be_valid_at_the_integrated_time() {
            let (layer, payload) = signature_file("dir-img-cosign-fulcio-rekor-valid");
            let ca = fulcio_ca("fulcio_v1.crt.pem");
            let log_key = signet_sign::keys::SigningKey::generate();
            let log_pem = log_key.public_key().to_pem();
            let rekor = [(
                Material::Pem(log_pem.clone()),
                RekorKey::from_pem(&log_pem).unwrap(),
            )];
            let with_set = |at: i64| {
                let mut d = layer.clone();
                d.annotations.as_mut().unwrap().insert(
                    REKOR_BUNDLE_ANNOTATION.into(),
                    forged_set(&log_key, &layer, &payload, at),
                );
                d
            };
            let c = judge_fulcio(&with_set(1674248000), &payload, &ca, &rekor);
            assert!(c.passed(), "{:?}", failed(&c));
            assert_eq!(c.verified_times, [1674248000]);
            for outside in [1674247890, 1674248492, 1_800_000_000] {
                let c = judge_fulcio(&with_set(outside), &payload, &ca, &rekor);
                let f = failed(&c);
                assert_eq!((f.len(), f[0].0), (1, "signature"), "{outside}: {f:?}");
                assert!(
                    f[0].1.starts_with("certificate-invalid"),
                    "{outside}: {f:?}"
                );
                assert!(c.evidence(&fulcio_source("fulcio_v1.crt.pem")).is_empty());
            }
        }

        /// A private-PKI signature whose layer carries a SET: the policy's Rekor keys that
        /// verify it are reported; without one, the evidence has no log entry.
        #[test]
        fn pki_signatures_report_the_rekor_keys_that_verify_their_set() {
            let (layer, payload) = signature_file("dir-img-cosign-pki-valid");
            let digest: Digest =
                "sha256:253c890b744fe3efa923b68e3a1be07bd007eb44ba29da1e7deb1d4c53b3e212"
                    .parse()
                    .unwrap();
            let options = pki_options(true, "qiwan@redhat.com", None);
            let log_key = signet_sign::keys::SigningKey::generate();
            let log_pem = log_key.public_key().to_pem();
            let rekor = [(
                Material::Pem(log_pem.clone()),
                RekorKey::from_pem(&log_pem).unwrap(),
            )];
            let judge = |layer: &Descriptor| {
                assess_legacy_under(
                    0,
                    layer,
                    Ok(payload.clone()),
                    &"localhost:5000/test:latest".parse().unwrap(),
                    &digest,
                    &IdentityRule::MatchRepository,
                    LegacyTrust::Certificate {
                        trust: &options.trust,
                        rekor_keys: &rekor,
                    },
                )
            };
            let source = signet_policy::trust::TrustSource::Authority(
                signet_policy::trust::CertificateAuthority {
                    roots: Material::Path("pki_root_crts.pem".into()),
                    intermediates: None,
                    fulcio: false,
                },
            );
            let c = judge(&layer);
            assert!(c.passed(), "{:?}", failed(&c));
            assert!(c.evidence(&source)[0].tlog.is_none());
            let mut logged = layer.clone();
            logged.annotations.as_mut().unwrap().insert(
                REKOR_BUNDLE_ANNOTATION.into(),
                forged_set(&log_key, &layer, &payload, 1_800_000_000),
            );
            let c = judge(&logged);
            assert!(c.passed(), "{:?}", failed(&c));
            let tlog = c.evidence(&source)[0].tlog.clone().unwrap();
            assert_eq!(
                tlog.log,
                signet_policy::trust::LogSource::RekorKey(Material::Pem(log_pem))
            );
        }

        #[test]
        fn pki_valid_gets_every_verdict_of_its_readme() {
            let (layer, payload) = signature_file("dir-img-cosign-pki-valid");
            let digest: Digest =
                "sha256:253c890b744fe3efa923b68e3a1be07bd007eb44ba29da1e7deb1d4c53b3e212"
                    .parse()
                    .unwrap();
            let judge = |layer: &Descriptor, options: &KeylessOptions| {
                assess_legacy(
                    0,
                    layer,
                    Ok(payload.clone()),
                    &"localhost:5000/test:latest".parse().unwrap(),
                    &digest,
                    options,
                )
            };
            let full = pki_options(true, "qiwan@redhat.com", Some("myhost.example.com"));
            // ACCEPT: chain, code-signing EKU, email and hostname (RSA, PKCS#1 v1.5).
            let c = judge(&layer, &full);
            assert!(c.passed(), "{:?}", failed(&c));
            // ACCEPT without the chain annotation when the intermediates are configured.
            let no_chain = without(&layer, CHAIN_ANNOTATION);
            let c = judge(&no_chain, &full);
            assert!(c.passed(), "{:?}", failed(&c));
            // ACCEPT with the chain annotation and no configured intermediates.
            let c = judge(&layer, &pki_options(false, "qiwan@redhat.com", None));
            assert!(c.passed(), "{:?}", failed(&c));
            // REJECT without both.
            let c = judge(&no_chain, &pki_options(false, "qiwan@redhat.com", None));
            let f = failed(&c);
            assert_eq!(f.len(), 1, "{f:?}");
            assert_eq!(f[0].0, "signature");
            assert!(
                f[0].1.contains("does not chain to a configured CA root"),
                "{f:?}"
            );
            // REJECT without the certificate.
            let c = judge(&without(&layer, CERTIFICATE_ANNOTATION), &full);
            let f = failed(&c);
            assert_eq!((f.len(), f[0].0), (1, "material"), "{f:?}");
            // REJECT with another email or hostname.
            let c = judge(&layer, &pki_options(true, "other@redhat.com", None));
            let f = failed(&c);
            assert_eq!(f.len(), 1, "{f:?}");
            assert_eq!(f[0].0, "certificate-identity");
            let c = judge(
                &layer,
                &pki_options(true, "qiwan@redhat.com", Some("other.example.com")),
            );
            assert_eq!(failed(&c)[0].0, "certificate-identity", "{:?}", failed(&c));
            // REJECT a signature over other bytes.
            let c = assess_legacy(
                0,
                &layer,
                Ok(payload.iter().rev().copied().collect()),
                &"localhost:5000/test:latest".parse().unwrap(),
                &digest,
                &full,
            );
            assert_eq!(failed(&c)[0].0, "payload", "{:?}", failed(&c));
            let mut tampered = layer.clone();
            let sig = tampered
                .annotations
                .as_mut()
                .unwrap()
                .get_mut(SIGNATURE_ANNOTATION)
                .unwrap();
            *sig = sig.replacen('A', "B", 1);
            let c = judge(&tampered, &full);
            let f = failed(&c);
            assert_eq!(f[0].0, "signature", "{f:?}");
            assert!(f[0].1.contains("does not verify the signature"), "{f:?}");
        }

        #[test]
        fn fulcio_rekor_valid_gets_every_verdict_of_its_readme() {
            let (layer, payload) = signature_file("dir-img-cosign-fulcio-rekor-valid");
            let image = format!("{FULCIO_REF}:latest");
            let public_good = TrustedRoot::embedded(Instance::PublicGood).unwrap();
            let good = options(&public_good, "mitr@redhat.com");

            // ACCEPT: checked at the SET's integrated time (the certificate expired in 2023).
            let accepted = judge(&layer, &payload, &image, &good);
            assert!(accepted.passed(), "{:?}", failed(&accepted));
            assert_eq!(accepted.verified_times, [1674247893]);
            assert!(accepted.binds_repository());
            let source = signet_policy::trust::TrustSource::Sigstore(
                signet_policy::trust::SigstoreRoot::PublicGood,
            );
            let mut evidence = accepted.evidence(&source);
            assert_eq!(evidence.len(), 1);
            let evidence = evidence.remove(0);
            assert_eq!(
                evidence.format,
                signet_policy::verdict::SignatureFormat::Legacy
            );
            assert_eq!(evidence.docker_reference.as_deref(), Some(FULCIO_REF));
            assert!(evidence.manifest_digest_matches);
            assert_eq!(evidence.tlog.as_ref().unwrap().integrated_time, 1674247893);
            match &evidence.signer {
                signet_policy::verdict::Signer::Certificate(c) => {
                    assert_eq!(c.emails, ["mitr@redhat.com"]);
                    assert_eq!(c.verified_time, 1674247893);
                    assert_eq!(c.trust, source);
                    assert_eq!(c.claims.issuer.as_deref(), Some(GITHUB));
                }
                other => panic!("a certificate signer, not {other:?}"),
            }

            // REJECT without the bundle (no Rekor evidence) or without the certificate.
            for (key, named) in [
                (REKOR_BUNDLE_ANNOTATION, "no Rekor entry"),
                (CERTIFICATE_ANNOTATION, CERTIFICATE_ANNOTATION),
            ] {
                let c = judge(&without(&layer, key), &payload, &image, &good);
                let f = failed(&c);
                assert_eq!(f.len(), 1, "{f:?}");
                assert_eq!(f[0].0, "material");
                assert!(f[0].1.contains(named), "{f:?}");
                assert!(!c.passed());
            }

            // Without the chain: REJECT when the CA is only the root (the intermediate is
            // missing), ACCEPT when the trusted CA is the chain itself (public-good lists it).
            let v1_only = options(&root_with(fulcio_v1_only), "mitr@redhat.com");
            let no_chain = without(&layer, CHAIN_ANNOTATION);
            let c = judge(&no_chain, &payload, &image, &v1_only);
            let f = failed(&c);
            assert_eq!(f.len(), 1, "{f:?}");
            assert_eq!(f[0].0, "signature");
            assert!(f[0].1.starts_with("certificate-invalid"), "{f:?}");
            let c = judge(&layer, &payload, &image, &v1_only);
            assert!(c.passed(), "with the chain annotation: {:?}", failed(&c));
            let c = judge(&no_chain, &payload, &image, &good);
            assert!(c.passed(), "{:?}", failed(&c));

            // REJECT with another email.
            let c = judge(
                &layer,
                &payload,
                &image,
                &options(&public_good, "other@redhat.com"),
            );
            let f = failed(&c);
            assert_eq!(f.len(), 1, "{f:?}");
            assert_eq!(f[0].0, "certificate-identity");

            // REJECT with the wrong Rekor key.
            let c = judge(
                &layer,
                &payload,
                &image,
                &options(&root_with(wrong_rekor_key), "mitr@redhat.com"),
            );
            let f = failed(&c);
            assert_eq!(f.len(), 1, "{f:?}");
            assert_eq!(f[0].0, "signature");
            assert!(f[0].1.starts_with("tlog-invalid"), "{f:?}");

            // REJECT for another repository (matchRepository).
            let c = judge(&layer, &payload, "192.168.64.2:5000/other:latest", &good);
            let f = failed(&c);
            assert_eq!(f.len(), 1, "{f:?}");
            assert_eq!(f[0].0, "docker-reference");

            // A SET whose entry was altered (another log index) is refused.
            let mut altered = layer.clone();
            let set = altered
                .annotations
                .as_mut()
                .unwrap()
                .get_mut(REKOR_BUNDLE_ANNOTATION)
                .unwrap();
            *set = set.replace("\"logIndex\":11605770", "\"logIndex\":11605771");
            let c = judge(&altered, &payload, &image, &good);
            assert_eq!(failed(&c)[0].0, "signature", "{:?}", failed(&c));
        }
    }
}
