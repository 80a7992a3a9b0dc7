//! Verification of an image's cosign signatures with given keys: resolve the digest, read the
//! `.sig` manifest, check every candidate layer, and judge identity and required annotations with
//! the policy engine — the flags become an in-memory policy ([`Policy::for_keys`]), so
//! `verify --key` and `verify --policy` cannot disagree. cosign 3 bundle referrers signed with a
//! key (`sign --format bundle`) count too, unless the formats are restricted to legacy; they bind
//! only the digest (finding `repository-not-signed` when only they verified). Fail closed: a
//! bundle that claims one of the given keys (its hint names it, or it has none, or it cannot be
//! read that far) and does not pass every check refuses the whole verification, even beside a
//! good `.sig` layer. The result is a report with an [`Outcome`]; errors mean "could not check".

use std::collections::BTreeMap;

use serde::Serialize;
use signet_oci::store::ImageStore;
use signet_oci::{Digest, Reference};
use signet_policy::{Decision, Evidence, Policy};
use signet_sign::keys::PublicKey;

use crate::attest::{signature_bundle_candidates, AttestationChecks};
use crate::identity::IdentityRule;
use crate::keyless::{FormatRequirement, KeylessFinding};
use crate::signatures::{
    check_layers, read_signature_manifest, CheckedSignature, LayerChecks, DEFAULT_MAX_SIGNATURES,
};
use crate::Error;

/// What a signature must satisfy.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Trusted public keys; a signature verified by any of them counts.
    pub keys: Vec<PublicKey>,
    /// How the signed `docker-reference` must relate to `identity`.
    pub identity_rule: IdentityRule,
    /// Annotations every accepted payload must carry in `optional`, with these values.
    pub required_annotations: BTreeMap<String, String>,
    /// Most signature layers examined.
    pub max_signatures: usize,
    /// Which formats count: `Any` reads key-signed bundle referrers too; `Legacy` does not.
    pub formats: FormatRequirement,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            keys: Vec::new(),
            identity_rule: IdentityRule::MatchRepository,
            required_annotations: BTreeMap::new(),
            max_signatures: DEFAULT_MAX_SIGNATURES,
            formats: FormatRequirement::Any,
        }
    }
}

/// The outcome of a verification (exit codes 0, 10 and 12 of `signet verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// At least one signature passed every check.
    Verified,
    /// The image has no signatures at all.
    NoSignatures,
    /// Signatures exist but none passed every check.
    NoneVerified,
}

/// Everything found while verifying one image.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The image as named.
    pub image: String,
    /// The identity signatures were checked against.
    pub identity: String,
    /// The manifest digest verified.
    pub digest: Digest,
    /// Where signatures were looked for.
    pub signature_tag: String,
    /// The identity rule in force.
    pub identity_rule: String,
    /// The outcome.
    pub outcome: Outcome,
    /// Every candidate signature with its checks.
    pub signatures: Vec<CheckedSignature>,
    /// Every cosign bundle signature referrer (key-signed, `sign --format bundle`) with its
    /// checks (not read with `--signature-format legacy`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bundles: Vec<AttestationChecks>,
    /// Bundles that claim one of the given keys and failed a check: each refuses the image.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<String>,
    /// Image-level findings (`repository-not-signed` when only bundles verified;
    /// `bundle-refused` for each refusal).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<KeylessFinding>,
}

impl VerifyReport {
    /// The candidates that passed every check.
    pub fn verified(&self) -> impl Iterator<Item = &CheckedSignature> {
        self.signatures.iter().filter(|c| c.passed())
    }

    /// The bundle signatures that passed every check.
    pub fn verified_bundles(&self) -> impl Iterator<Item = &AttestationChecks> {
        self.bundles.iter().filter(|c| c.passed())
    }
}

/// Verify the signatures of the image in `image`, read from `signatures` (the same store unless
/// they live in another repository), against `identity` (the registry reference the image is
/// known by; its tag or digest matters to some identity rules).
pub async fn verify_image(
    image: &ImageStore,
    signatures: &ImageStore,
    identity: &Reference,
    options: &VerifyOptions,
) -> Result<VerifyReport, Error> {
    let resolved = image.resolve().await?;
    let digest = resolved.digest.clone();
    verify_digest(image.display_name(), signatures, identity, &digest, options).await
}

/// Verify the signatures stored for `digest` (already resolved and digest-checked by the caller).
pub async fn verify_digest(
    image_name: String,
    signatures: &ImageStore,
    identity: &Reference,
    digest: &Digest,
    options: &VerifyOptions,
) -> Result<VerifyReport, Error> {
    let layers = match read_signature_manifest(signatures, digest).await? {
        None => Vec::new(),
        Some((_, manifest)) => {
            check_layers(
                signatures,
                &manifest,
                digest,
                &options.keys,
                options.max_signatures,
            )
            .await?
        }
    };
    let bundles = match options.formats {
        FormatRequirement::Any => {
            signature_bundle_candidates(signatures, digest, &options.keys).await?
        }
        FormatRequirement::Legacy => Vec::new(),
    };
    judge(image_name, identity, digest, layers, bundles, options)
}

/// Judge checked layers and bundles under the options (pure): every candidate gets its
/// identity and annotation checks, and the outcome is the verdict of the in-memory policy the
/// options describe, evaluated on the same evidence a policy file would see. Bundles sign no
/// repository, so they are judged by a policy with the same keys and annotations but no
/// identity rule (what a policy file's `signed` entry without `identity` does).
pub fn judge(
    image_name: String,
    identity: &Reference,
    digest: &Digest,
    layers: Vec<LayerChecks>,
    bundles: Vec<AttestationChecks>,
    options: &VerifyOptions,
) -> Result<VerifyReport, Error> {
    let policy = Policy::for_keys(
        &options.keys,
        options.identity_rule.clone(),
        options.required_annotations.clone(),
    )?;
    let evidence = |signatures| Evidence {
        reference: identity.clone(),
        digest: digest.clone(),
        reference_had_digest: identity.digest().is_some(),
        signatures,
        configs: Vec::new(),
    };
    // This policy has no rule that depends on time (keys without notAfter, no config checks).
    let verdict = signet_policy::evaluate(
        &policy,
        &evidence(layers.iter().flat_map(LayerChecks::evidence).collect()),
        0,
    );
    let candidates: Vec<CheckedSignature> = layers
        .into_iter()
        .map(|layer| {
            CheckedSignature::judge(
                layer,
                &options.identity_rule,
                &options.required_annotations,
                identity,
            )
        })
        .collect();
    let allowed = verdict.decision == Decision::Allow && !verdict.would_deny;
    // Both views come from the same engine and agree; requiring both keeps a future divergence
    // on the closed side.
    let legacy_verified = allowed && candidates.iter().any(CheckedSignature::passed);

    let mut findings = Vec::new();
    let bundles_verified = if bundles.iter().any(AttestationChecks::passed) {
        let policy = bundle_policy(&options.keys, &options.required_annotations)?;
        let verdict = signet_policy::evaluate(
            &policy,
            &evidence(
                bundles
                    .iter()
                    .flat_map(|b| b.signature_evidence(digest))
                    .collect(),
            ),
            0,
        );
        let allowed = verdict.decision == Decision::Allow && !verdict.would_deny;
        if !allowed {
            for finding in &verdict.findings {
                findings.push(KeylessFinding {
                    code: finding.code,
                    message: format!("bundle signatures: {}", finding.message),
                });
            }
        }
        allowed
    } else {
        false
    };
    let refusals: Vec<String> = bundles
        .iter()
        .filter(|b| !b.passed() && b.claims_one_of(&options.keys))
        .map(|b| {
            let failed = crate::signatures::failed_checks(&b.checks());
            format!("{}: {}", bundle_name(b), failed)
        })
        .collect();
    for refusal in &refusals {
        findings.push(KeylessFinding {
            code: "bundle-refused",
            message: format!(
                "a bundle signature that claims a given key does not verify, so the image is not trusted: {refusal}"
            ),
        });
    }
    if refusals.is_empty() && bundles_verified && !legacy_verified {
        findings.push(KeylessFinding {
            code: "repository-not-signed",
            message: format!(
                "only cosign bundle signatures verified: they bind the digest {digest}, not the repository {}",
                identity.name()
            ),
        });
    }
    let outcome = if candidates.is_empty() && bundles.is_empty() {
        Outcome::NoSignatures
    } else if refusals.is_empty() && (legacy_verified || bundles_verified) {
        Outcome::Verified
    } else {
        Outcome::NoneVerified
    };
    Ok(VerifyReport {
        image: image_name,
        identity: identity.to_string(),
        signature_tag: digest.signature_tag(),
        digest: digest.clone(),
        identity_rule: options.identity_rule.describe(),
        outcome,
        signatures: candidates,
        bundles,
        refusals,
        findings,
    })
}

/// How a bundle candidate is named in messages.
pub fn bundle_name(bundle: &AttestationChecks) -> String {
    match bundle.source() {
        crate::attest::AttestationSource::Bundle { manifest_digest } => {
            format!("bundle referrer {manifest_digest}")
        }
        crate::attest::AttestationSource::Legacy { layer_digest, .. } => {
            format!(".att layer {layer_digest}")
        }
    }
}

/// The in-memory policy for bundle signatures: the keys, the required annotations, bundle
/// format only and no identity rule (a bundle signs no repository).
fn bundle_policy(
    keys: &[PublicKey],
    annotations: &BTreeMap<String, String>,
) -> Result<Policy, Error> {
    let named: BTreeMap<String, serde_json::Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            (
                format!("key-{}", i + 1),
                serde_json::json!({ "pem": k.to_pem() }),
            )
        })
        .collect();
    let document = serde_json::json!({
        "keys": named,
        "default": {
            "signed": {
                "keys": named.keys().collect::<Vec<_>>(),
                "formats": ["bundle"],
                "annotations": annotations,
            }
        }
    });
    let loaded = Policy::load("--key", &document.to_string(), &|_| {
        Err("no files".to_string())
    })
    .map_err(|e| Error::Invalid(format!("the bundle policy for --key: {e}")))?;
    Ok(loaded.policy)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::identity::parse_identity_rule;
    use crate::signatures::{assess_layer, Fetched};
    use signet_oci::manifest::SIMPLE_SIGNING;
    use signet_oci::Descriptor;
    use signet_sign::keys::SigningKey;
    use signet_sign::payload::SimpleSigningPayload;

    struct Case {
        rule: &'static str,
        image: &'static str,
        signed: &'static str,
        required: &'static [(&'static str, &'static str)],
        present: &'static [(&'static str, &'static str)],
        digest_matches: bool,
    }

    const fn case(
        rule: &'static str,
        image: &'static str,
        signed: &'static str,
        required: &'static [(&'static str, &'static str)],
        present: &'static [(&'static str, &'static str)],
    ) -> Case {
        Case {
            rule,
            image,
            signed,
            required,
            present,
            digest_matches: true,
        }
    }

    const B: &[(&str, &str)] = &[("build", "ci")];
    const B2: &[(&str, &str)] = &[("build", "ci"), ("team", "x")];
    const BAD: &[(&str, &str)] = &[("build", "laptop")];
    const NONE: &[(&str, &str)] = &[];

    const CASES: &[Case] = &[
        case("matchRepository", "reg.io/app:v1", "reg.io/app", NONE, NONE),
        case(
            "matchRepository",
            "reg.io/app:v1",
            "reg.io/app:v9",
            NONE,
            NONE,
        ),
        case(
            "matchRepository",
            "reg.io/app:v1",
            "reg.io/other",
            NONE,
            NONE,
        ),
        case(
            "matchRepository",
            "reg.io/app:v1",
            "not a reference",
            NONE,
            NONE,
        ),
        case(
            "matchRepoDigestOrExact",
            "reg.io/app:v1",
            "reg.io/app:v1",
            NONE,
            NONE,
        ),
        case(
            "matchRepoDigestOrExact",
            "reg.io/app:v1",
            "reg.io/app",
            NONE,
            NONE,
        ),
        case(
            "matchRepoDigestOrExact",
            "reg.io/app:v1",
            "reg.io/app:v2",
            NONE,
            NONE,
        ),
        case("matchExact", "reg.io/app:v1", "reg.io/app:v1", NONE, NONE),
        case("matchExact", "reg.io/app:latest", "reg.io/app", NONE, NONE),
        case(
            "matchExact",
            "busybox",
            "docker.io/library/busybox:latest",
            NONE,
            NONE,
        ),
        case("matchRepository", "reg.io/app:v1", "reg.io/app", B, B),
        case("matchRepository", "reg.io/app:v1", "reg.io/app", B, B2),
        case("matchRepository", "reg.io/app:v1", "reg.io/app", B2, B),
        case("matchRepository", "reg.io/app:v1", "reg.io/app", B, BAD),
        case("matchRepository", "reg.io/app:v1", "reg.io/app", B, NONE),
        case("matchRepository", "reg.io/app:v1", "reg.io/other", B, BAD),
        case("matchExact", "reg.io/app:v1", "reg.io/app:v1", B, BAD),
        Case {
            digest_matches: false,
            ..case("matchRepository", "reg.io/app:v1", "reg.io/app", NONE, NONE)
        },
    ];

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Finding 4: `verify --key` and a policy file with the same rule reach the same verdict on
    /// the same signature, because both are decided by the policy crate.
    #[test]
    fn verify_with_keys_and_policy_agree() {
        let key = SigningKey::generate();
        let public = key.public_key();
        let digest = Digest::sha256(b"the image");
        // [verified, identity, annotations] × [seen passing, seen failing].
        let mut seen = [[false; 2]; 3];
        for (i, c) in CASES.iter().enumerate() {
            let image: Reference = c.image.parse().unwrap();
            let claimed = if c.digest_matches {
                digest.clone()
            } else {
                Digest::sha256(b"another image")
            };
            let mut payload = SimpleSigningPayload::new(c.signed, claimed);
            if !c.present.is_empty() {
                payload.optional = Some(
                    c.present
                        .iter()
                        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
                        .collect(),
                );
            }
            let bytes = payload.to_bytes();
            let mut layer = Descriptor::of(SIMPLE_SIGNING, &bytes);
            layer.annotations = Some(BTreeMap::from([(
                signet_sign::SIGNATURE_ANNOTATION.to_string(),
                signet_sign::signature::sign(&key, &bytes),
            )]));
            let checks = assess_layer(
                0,
                &layer,
                Fetched::Bytes(bytes),
                &digest,
                std::slice::from_ref(&public),
            );

            // The policy file's view.
            let mut yaml = format!(
                "keys:\n  k:\n    pem: |\n{}default:\n  signed:\n    keys: [k]\n    identity: {}\n",
                public
                    .to_pem()
                    .lines()
                    .map(|l| format!("      {l}\n"))
                    .collect::<String>(),
                c.rule
            );
            if !c.required.is_empty() {
                yaml.push_str("    annotations:\n");
                for (k, v) in c.required {
                    yaml.push_str(&format!("      {k}: {v}\n"));
                }
            }
            let policy = Policy::load("p.yaml", &yaml, &|_| Err("no files".into()))
                .unwrap()
                .policy;
            let evidence = Evidence {
                reference: image.clone(),
                digest: digest.clone(),
                reference_had_digest: false,
                signatures: checks.evidence(),
                configs: Vec::new(),
            };
            let verdict = signet_policy::evaluate(&policy, &evidence, 1_800_000_000);
            let codes: Vec<&str> = verdict.findings.iter().map(|f| f.code).collect();

            // The command line's view.
            let options = VerifyOptions {
                keys: vec![public.clone()],
                identity_rule: parse_identity_rule(c.rule).unwrap(),
                required_annotations: map(c.required),
                max_signatures: 10,
                formats: FormatRequirement::Any,
            };
            let report = judge(
                "img".into(),
                &image,
                &digest,
                vec![checks],
                Vec::new(),
                &options,
            )
            .unwrap();
            let candidate = &report.signatures[0];
            let check = |name: &str| {
                candidate
                    .checks()
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, r)| r.passed())
                    .unwrap()
            };

            for (slot, passed) in [
                report.outcome == Outcome::Verified,
                check("identity"),
                check("annotations"),
            ]
            .into_iter()
            .enumerate()
            {
                seen[slot][usize::from(!passed)] = true;
            }
            let what = format!("case {i}: {} {} signed {}", c.rule, c.image, c.signed);
            assert_eq!(
                report.outcome == Outcome::Verified,
                verdict.decision == Decision::Allow,
                "{what}: {codes:?}"
            );
            assert_eq!(
                candidate.passed(),
                report.outcome == Outcome::Verified,
                "{what}"
            );
            if c.digest_matches {
                assert_eq!(
                    !check("identity"),
                    codes.contains(&"identity-mismatch"),
                    "{what}: {codes:?}"
                );
                // The policy names a missing annotation only once the identity holds.
                assert_eq!(
                    check("identity") && !check("annotations"),
                    codes.contains(&"annotation-missing"),
                    "{what}: {codes:?}"
                );
            } else {
                assert!(!check("manifest-digest"), "{what}");
                assert!(codes.contains(&"no-valid-signature"), "{what}: {codes:?}");
            }
        }
        // The table exercises both answers of each check and of the outcome.
        assert_eq!(seen, [[true, true]; 3], "verified, identity, annotations");
    }
}
