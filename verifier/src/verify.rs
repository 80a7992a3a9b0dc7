//! Verification of an image's cosign signatures with given keys: resolve the digest, read the
//! `.sig` manifest, check every candidate layer, and apply the identity rule and required
//! annotations. The result is a report with an [`Outcome`]; errors mean "could not check".

use std::collections::BTreeMap;

use serde::Serialize;
use signet_oci::store::ImageStore;
use signet_oci::{Digest, Reference};
use signet_sign::keys::PublicKey;

use crate::identity::IdentityRule;
use crate::signatures::{check_layers, read_signature_manifest, Candidate, DEFAULT_MAX_SIGNATURES};
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
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            keys: Vec::new(),
            identity_rule: IdentityRule::MatchRepository,
            required_annotations: BTreeMap::new(),
            max_signatures: DEFAULT_MAX_SIGNATURES,
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
    pub signatures: Vec<Candidate>,
}

impl VerifyReport {
    /// The candidates that passed every check.
    pub fn verified(&self) -> impl Iterator<Item = &Candidate> {
        self.signatures.iter().filter(|c| c.passed())
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
    let mut candidates = match read_signature_manifest(signatures, digest).await? {
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
    for candidate in &mut candidates {
        apply_rules(candidate, identity, options);
    }
    let outcome = if candidates.is_empty() {
        Outcome::NoSignatures
    } else if candidates.iter().any(Candidate::passed) {
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
    })
}

fn apply_rules(candidate: &mut Candidate, identity: &Reference, options: &VerifyOptions) {
    let Some(signed) = candidate.docker_reference.clone() else {
        return;
    };
    let accepted = options.identity_rule.matches(identity, &signed);
    let rule = options.identity_rule.describe();
    candidate.record(
        "identity",
        accepted,
        if accepted {
            format!("{signed} accepted for {identity} by {rule}",)
        } else {
            format!("{signed} not accepted for {identity} by {rule}",)
        },
    );
    if !options.required_annotations.is_empty() {
        let present = candidate.string_annotations();
        let missing: Vec<String> = options
            .required_annotations
            .iter()
            .filter(|(k, v)| present.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        candidate.record(
            "annotations",
            missing.is_empty(),
            if missing.is_empty() {
                "required annotations present".to_string()
            } else {
                format!("missing or different: {}", missing.join(", "))
            },
        );
    }
}
