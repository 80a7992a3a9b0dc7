//! Evaluation: the evidence the verifier gathers, the verdict with its findings, and explanations
//! of which scope applies to a reference and why.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use signet_oci::{Digest, Reference};

use crate::attestation::AttestationInput;
use crate::certificate::CertificateClaims;
use crate::config::{find_secrets, runs_as_root, ConfigFacts, CREATED_SKEW_SECONDS};
use crate::document::Mode;
use crate::identity::IdentityRule;
use crate::key::KeyId;
use crate::pattern::PatternKind;
use crate::policy::{Policy, Requirements, SignatureRule, SignedRule};
use crate::signer::{CertificateRefusal, OptionRefusal};
use crate::trust::{LogSource, TrustSource};

/// What the verifier established about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The reference as requested, normalised.
    pub reference: Reference,
    /// The manifest digest that was verified.
    pub digest: Digest,
    /// Whether the requested reference named that digest.
    pub reference_had_digest: bool,
    /// Every signature whose cryptography verified with a trusted key; the policy decides about
    /// identity, annotations and thresholds.
    pub signatures: Vec<SignatureEvidence>,
    /// Facts from the image config (one per platform for an index). Needed only when
    /// [`Policy::needs_config`] says so.
    pub configs: Vec<ConfigFacts>,
}

/// One cryptographically verified signature: the verifier has done every cryptographic check
/// (signature, certificate chain, transparency log, timestamps) against trust material the policy
/// names; the policy decides whether the signer is one it trusts (identity, which trust source,
/// which log), how many distinct signers signed, and whether the signed claims fit the image.
///
/// One signature verified under two sources (or by two keys) is reported once per source (key);
/// the policy counts it as one signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureEvidence {
    /// Who signed: a trusted key, or a certificate whose chain verified.
    pub signer: Signer,
    /// How the signature is stored: cosign's legacy `.sig` layer (signs a docker reference) or a
    /// Sigstore bundle (signs only the digest).
    pub format: SignatureFormat,
    /// The signed `critical.identity.docker-reference`. `None` when the format signs no
    /// reference (a cosign 3 bundle's in-toto statement names only the digest): such a signature
    /// never satisfies an identity rule the policy writes out, and a signer or scope with
    /// `formats: [legacy]` refuses it.
    pub docker_reference: Option<String>,
    /// Whether the signed manifest digest (payload's `docker-manifest-digest`, or the bundle's
    /// in-toto subject) equals the image's manifest digest.
    pub manifest_digest_matches: bool,
    /// String members of the payload's `optional` section (empty for a bundle).
    pub annotations: BTreeMap<String, String>,
    /// The transparency log entry that verified for this signature, if any.
    pub tlog: Option<TlogEvidence>,
}

impl SignatureEvidence {
    /// A legacy-format (`.sig` layer) signature verified by the trusted key `key_id`, with no
    /// transparency log entry: the evidence Signet produced before keyless signers existed.
    pub fn legacy_key(
        key_id: KeyId,
        docker_reference: String,
        manifest_digest_matches: bool,
        annotations: BTreeMap<String, String>,
    ) -> SignatureEvidence {
        SignatureEvidence {
            signer: Signer::Key(key_id),
            format: SignatureFormat::Legacy,
            docker_reference: Some(docker_reference),
            manifest_digest_matches,
            annotations,
            tlog: None,
        }
    }

    /// The trusted key that verified the signature, for a key signer.
    pub fn key_id(&self) -> Option<&KeyId> {
        match &self.signer {
            Signer::Key(id) => Some(id),
            Signer::Certificate(_) => None,
        }
    }
}

/// Who produced a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// The trusted key with this id verified the signature (the policy names its keys).
    Key(KeyId),
    /// The signature verified with a certificate's public key, and the certificate chain verified
    /// under [`CertificateEvidence::trust`].
    Certificate(Box<CertificateEvidence>),
}

/// A signing certificate whose chain, validity and transparency evidence verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateEvidence {
    /// Keyless claims: every email, URI and Fulcio-username SAN, the OIDC issuer (Fulcio
    /// extension `.1.8`, else `.1.1`), the GitHub workflow claims.
    pub claims: CertificateClaims,
    /// The `rfc822Name` SANs alone (containers/image's `subjectEmail` matches these).
    pub emails: Vec<String>,
    /// The `dNSName` SANs (containers/image's `pki.subjectHostname` matches these).
    pub hostnames: Vec<String>,
    /// The trust source, as the policy names it ([`crate::Policy::trust_sources`]), under which
    /// the chain verified.
    pub trust: TrustSource,
    /// The instant (unix seconds) at which the certificate was checked to be valid: the log's
    /// integrated time or a timestamp authority's time, never "now" for Fulcio certificates.
    pub verified_time: i64,
}

/// A transparency log entry that verified for a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogEvidence {
    /// Which log (key) verified it, as the policy names it.
    pub log: LogSource,
    /// The entry's integrated time (unix seconds).
    pub integrated_time: i64,
}

/// How a signature is stored with the image.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SignatureFormat {
    /// cosign's `sha256-<hex>.sig` manifest: a simple-signing payload naming a docker reference
    /// and the manifest digest (plus `dev.sigstore.cosign/*` annotations when keyless).
    Legacy,
    /// A Sigstore bundle (cosign 3, an OCI 1.1 referrer): an in-toto statement whose subject is
    /// the manifest digest — it names no repository.
    Bundle,
}

impl SignatureFormat {
    /// The name policies use (`legacy`, `bundle`).
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureFormat::Legacy => "legacy",
            SignatureFormat::Bundle => "bundle",
        }
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The image may be used.
    Allow,
    /// The image must not be used.
    Deny,
}

/// One reason an image fails (or would fail) the policy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    /// Stable kebab-case code.
    pub code: &'static str,
    /// What is wrong, naming the subject; never a secret value.
    pub message: String,
    /// Which scope/requirement it came from (`scopes."reg.io/app".signed[0]`).
    pub rule: String,
}

/// The outcome of evaluating a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Allow or deny.
    pub decision: Decision,
    /// The mode of the requirements applied.
    pub mode: Mode,
    /// The scope that applied (pattern or `default`).
    pub scope: String,
    /// Whether the findings would deny the image under `enforce` (true with findings in
    /// `warn`/`audit` modes, where the decision is still allow).
    pub would_deny: bool,
    /// Every finding, sorted by rule, then code, then message.
    pub findings: Vec<Finding>,
    /// Reuse this verdict only while `now` (unix seconds) is before this instant: the earliest
    /// at which a time bound the policy evaluated (a trusted key's `notAfter`, the end of an
    /// image's `maxAge`, a future `created` coming within the skew) could change it, or `now`
    /// plus the scope's `cacheTtl` if sooner. Absent: nothing but new evidence or a new policy
    /// can change it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<i64>,
}

/// Why a scope applies to a reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The reference explained.
    pub reference: String,
    /// The scope chosen (pattern, or `default`).
    pub scope: String,
    /// Why it was chosen.
    pub reason: String,
    /// Every scope pattern that matched, most specific first.
    pub candidates: Vec<Candidate>,
    /// The requirements that apply, in words.
    pub requirements: Vec<String>,
    /// Their mode.
    pub mode: Mode,
    /// Whether config blobs are needed.
    pub needs_config: bool,
}

/// A scope pattern that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The pattern.
    pub pattern: String,
    /// Its kind.
    pub kind: PatternKind,
    /// Literal characters (greater is more specific; full references beat everything).
    pub literal: usize,
    /// Wildcards (fewer is more specific).
    pub wildcards: usize,
    /// Whether it was chosen.
    pub selected: bool,
}

fn rule_base(scope: Option<&str>) -> String {
    match scope {
        Some(p) => format!("scopes.{p:?}"),
        None => "default".to_string(),
    }
}

/// Explain which scope applies to `reference`.
pub fn explain(policy: &Policy, reference: &Reference) -> Explanation {
    let mut matched = Vec::new();
    policy
        .index
        .candidates(&policy.patterns, reference, |i| matched.push(i));
    matched.sort_by(|&a, &b| {
        if a == b {
            std::cmp::Ordering::Equal
        } else if policy.beats(a, b) {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Greater
        }
    });
    matched.dedup();
    let chosen = matched.first().copied();
    let candidates = matched
        .iter()
        .map(|&i| {
            let p = &policy.patterns[i];
            Candidate {
                pattern: p.as_str().to_string(),
                kind: p.kind(),
                literal: p.specificity().literal,
                wildcards: p.specificity().wildcards,
                selected: Some(i) == chosen,
            }
        })
        .collect::<Vec<_>>();
    let (scope, reason, req) = match chosen {
        Some(i) => {
            let p = &policy.patterns[i];
            let mut reason = format!("{} pattern {:?} matches", p.kind().describe(), p.as_str());
            if matched.len() > 1 {
                reason.push_str(&format!(
                    " and is the most specific of {} matching scopes",
                    matched.len()
                ));
            }
            (p.as_str().to_string(), reason, &policy.scopes[i])
        }
        None => (
            policy.default_label().to_string(),
            "no scope pattern matches".to_string(),
            &policy.default,
        ),
    };
    Explanation {
        reference: reference.to_string(),
        scope,
        reason,
        candidates,
        requirements: describe(policy, req),
        mode: req.mode,
        needs_config: req.config.any(),
    }
}

fn describe(policy: &Policy, req: &Requirements) -> Vec<String> {
    let mut out = Vec::new();
    match &req.signatures {
        SignatureRule::Reject(message) => out.push(format!("reject: {message}")),
        SignatureRule::Accept => out.push("accept any image (no signature check)".to_string()),
        SignatureRule::Signed(rules) => {
            for r in rules {
                let mut s = format!("signed by {} of [{}]", r.threshold, r.keys.join(", "));
                if !r.required.is_empty() {
                    s.push_str(&format!(" (required: {})", r.required.join(", ")));
                }
                s.push_str(&format!(", identity {}", r.identity.describe()));
                if let Some(formats) = &r.formats {
                    let list: Vec<&str> = formats.iter().map(|f| f.as_str()).collect();
                    s.push_str(&format!(", formats [{}]", list.join(", ")));
                }
                if !r.annotations.is_empty() {
                    let list: Vec<String> = r
                        .annotations
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    s.push_str(&format!(", annotations {}", list.join(", ")));
                }
                out.push(s);
                for name in &r.keys {
                    if let Some(signer) = policy.certificates.get(name) {
                        out.push(format!("signer {name}: {}", signer.describe()));
                    }
                    if let Some(o) = policy.options.get(name) {
                        if !o.rekor_keys.is_empty() {
                            let list: Vec<String> =
                                o.rekor_keys.iter().map(|m| m.to_string()).collect();
                            out.push(format!(
                                "signer {name}: needs a Rekor entry verified by one of [{}]",
                                list.join(", ")
                            ));
                        }
                        if let Some(formats) = &o.formats {
                            let list: Vec<&str> = formats.iter().map(|f| f.as_str()).collect();
                            out.push(format!("signer {name}: formats [{}]", list.join(", ")));
                        }
                    }
                }
            }
        }
    }
    if req.digest_pinned {
        out.push("reference must name a digest".to_string());
    }
    let c = &req.config;
    if c.forbid_root_user {
        out.push("config: must not run as root".to_string());
    }
    if c.forbid_secrets {
        out.push("config: no secrets in Env, Labels or history".to_string());
    }
    if let Some((_, text)) = &c.max_age {
        out.push(format!("config: created within {text}"));
    }
    if let Some((_, list)) = &c.platforms {
        out.push(format!("config: platform one of {}", list.join(", ")));
    }
    for rule in &req.attestations {
        out.extend(rule.describe());
    }
    out
}

/// Evaluate the policy against evidence at `now` (unix seconds), without attestations: a
/// scope that requires attestations denies.
pub fn evaluate(policy: &Policy, evidence: &Evidence, now: i64) -> Verdict {
    evaluate_with_attestations(policy, evidence, &AttestationInput::default(), now)
}

/// [`evaluate`] with the verified attestations (and image configs as JSON) the scope's
/// attestation requirements judge ([`Policy::needs_attestations`]).
pub fn evaluate_with_attestations(
    policy: &Policy,
    evidence: &Evidence,
    attestations: &AttestationInput,
    now: i64,
) -> Verdict {
    let selected = policy.select(&evidence.reference);
    let (scope, req, base) = match selected {
        Some(i) => (
            policy.patterns[i].as_str().to_string(),
            &policy.scopes[i],
            rule_base(Some(policy.patterns[i].as_str())),
        ),
        None => (
            policy.default_label().to_string(),
            &policy.default,
            rule_base(None),
        ),
    };
    let mut findings = Vec::new();
    match &req.signatures {
        SignatureRule::Reject(message) => findings.push(Finding {
            code: "rejected-by-policy",
            message: message.clone(),
            rule: format!("{base}.reject"),
        }),
        SignatureRule::Accept => {}
        SignatureRule::Signed(rules) => {
            for (i, rule) in rules.iter().enumerate() {
                signed(
                    policy,
                    rule,
                    evidence,
                    now,
                    &format!("{base}.signed[{i}]"),
                    &mut findings,
                );
            }
        }
    }
    if req.digest_pinned && !evidence.reference_had_digest {
        findings.push(Finding {
            code: "digest-not-pinned",
            message: format!(
                "{} does not name a digest; this scope requires @{}",
                evidence.reference, evidence.digest
            ),
            rule: format!("{base}.digest"),
        });
    }
    config_checks(req, evidence, now, &base, &mut findings);
    let (attestation_findings, attestation_bounds) = crate::attestation::judge(
        policy,
        &req.attestations,
        evidence,
        attestations,
        now,
        &base,
    );
    findings.extend(attestation_findings);
    findings.sort();
    findings.dedup();
    let would_deny = !findings.is_empty();
    let decision = if would_deny && req.mode == Mode::Enforce {
        Decision::Deny
    } else {
        Decision::Allow
    };
    Verdict {
        decision,
        mode: req.mode,
        scope,
        would_deny,
        findings,
        valid_until: valid_until(policy, req, evidence, now)
            .into_iter()
            .chain(attestation_bounds.into_iter().filter(|&t| t > now))
            .min(),
    }
}

/// What one signature's claims — its signed identity and its `optional` annotations — are worth
/// under one rule. The single engine for identity and annotations: policy evaluation and
/// `signet verify --key` both decide with it, so the two can never disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimVerdict {
    /// Whether the identity rule accepts the signed `docker-reference` for the image.
    pub identity_accepted: bool,
    /// Required annotations absent or different in the payload, as `key=value`, sorted.
    pub missing_annotations: Vec<String>,
}

impl ClaimVerdict {
    /// Whether both the identity and the annotations are acceptable.
    pub fn passed(&self) -> bool {
        self.identity_accepted && self.missing_annotations.is_empty()
    }
}

/// Judge a signature's claims: `signed_reference` (the payload's `docker-reference`) under
/// `identity` for the image `image`, and `present` (the payload's string annotations) against
/// `required`.
pub fn judge_claims(
    identity: &IdentityRule,
    required: &BTreeMap<String, String>,
    image: &Reference,
    signed_reference: &str,
    present: &BTreeMap<String, String>,
) -> ClaimVerdict {
    ClaimVerdict {
        identity_accepted: identity.matches(image, signed_reference),
        missing_annotations: required
            .iter()
            .filter(|(k, v)| present.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
    }
}

/// Whether signer `name` is live at `now` (its `notAfter` not passed), and when it retires.
fn signer_live(policy: &Policy, name: &str, now: i64) -> (bool, Option<i64>) {
    if let Some(k) = policy.keys.get(name) {
        return (k.is_valid_at(now), k.not_after);
    }
    if let Some(c) = policy.certificates.get(name) {
        return (c.is_valid_at(now), c.not_after);
    }
    (false, None)
}

/// Who made a signature, for messages: bounded, from verified claims.
fn signer_label(sig: &SignatureEvidence, names: &[&str]) -> String {
    match &sig.signer {
        Signer::Key(_) => format!("key {}", names.join("/")),
        Signer::Certificate(cert) => {
            let subject = cert
                .claims
                .subjects
                .first()
                .or(cert.emails.first())
                .or(cert.hostnames.first())
                .map(|s| s.chars().take(200).collect::<String>())
                .unwrap_or_default();
            if names.is_empty() {
                format!("certificate {subject:?}")
            } else {
                format!("certificate {subject:?} ({})", names.join("/"))
            }
        }
    }
}

/// What makes two signatures "the same signer": the key, or the certificate's identity (issuer
/// and subjects) — a second certificate for the same workflow is the same signer.
fn signer_identity(sig: &SignatureEvidence) -> String {
    match &sig.signer {
        Signer::Key(id) => format!("key {id}"),
        Signer::Certificate(cert) => {
            let mut subjects: Vec<&String> = cert
                .claims
                .subjects
                .iter()
                .chain(&cert.emails)
                .chain(&cert.hostnames)
                .collect();
            subjects.sort();
            subjects.dedup();
            format!("certificate {:?} {subjects:?}", cert.claims.issuer)
        }
    }
}

/// Kuhn's augmenting path: try to give identity `group` a signer name, moving others along.
fn augment(
    group: usize,
    adjacency: &[Vec<usize>],
    allowed: &dyn Fn(usize) -> bool,
    seen: &mut [bool],
    owner: &mut [Option<usize>],
) -> bool {
    for &name in &adjacency[group] {
        if !allowed(name) || seen[name] {
            continue;
        }
        seen[name] = true;
        let free = match owner[name] {
            None => true,
            Some(other) => augment(other, adjacency, allowed, seen, owner),
        };
        if free {
            owner[name] = Some(group);
            return true;
        }
    }
    false
}

pub(crate) fn signed(
    policy: &Policy,
    rule: &SignedRule,
    evidence: &Evidence,
    now: i64,
    rule_name: &str,
    findings: &mut Vec<Finding>,
) {
    // Distinct signer identities, each with the rule's names its signatures satisfy.
    let mut groups: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    let mut reasons = Vec::new();
    let finding = |code: &'static str, message: String| Finding {
        code,
        message,
        rule: rule_name.to_string(),
    };
    for sig in &evidence.signatures {
        let mut names: Vec<&str> = Vec::new();
        let mut identity_misses: Vec<String> = Vec::new();
        for name in &rule.keys {
            match &sig.signer {
                Signer::Key(id) => {
                    if policy.keys.get(name).is_some_and(|k| k.key.id() == id) {
                        names.push(name);
                    }
                }
                Signer::Certificate(cert) => {
                    if let Some(signer) = policy.certificates.get(name) {
                        match signer.matches(cert) {
                            Ok(()) => names.push(name),
                            Err(CertificateRefusal::Trust) => {}
                            Err(CertificateRefusal::Identity(why)) => {
                                identity_misses.push(format!("not {name}: {why}"))
                            }
                        }
                    }
                }
            }
        }
        names.dedup();
        if names.is_empty() {
            if !identity_misses.is_empty() {
                reasons.push(finding(
                    "certificate-identity-mismatch",
                    format!(
                        "signature by {} does not count: {}",
                        signer_label(sig, &[]),
                        identity_misses.join("; ")
                    ),
                ));
            }
            continue;
        }
        let who = signer_label(sig, &names);
        let live: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| signer_live(policy, n, now).0)
            .collect();
        if live.is_empty() {
            let until = names
                .iter()
                .filter_map(|n| signer_live(policy, n, now).1)
                .max()
                .map(format_time)
                .unwrap_or_default();
            let message = match sig.signer {
                Signer::Key(_) => {
                    format!("signature by {who} does not count: the key was retired at {until}")
                }
                Signer::Certificate(_) => {
                    format!("signature by {who} does not count: the signer was retired at {until}")
                }
            };
            reasons.push(finding("key-expired", message));
            continue;
        }
        let mut counted: Vec<&str> = Vec::new();
        let mut refusals: Vec<(&'static str, String)> = Vec::new();
        for name in live {
            let checked = policy
                .options
                .get(name)
                .map_or(Ok(()), |options| options.check(sig));
            match checked {
                Ok(()) => counted.push(name),
                Err(OptionRefusal::Format(format)) => refusals.push((
                    "signature-format-not-allowed",
                    format!(
                        "signature by {who} is in the {} format, which signer {name} does not accept",
                        format.as_str()
                    ),
                )),
                Err(OptionRefusal::Tlog) => refusals.push((
                    "tlog-entry-missing",
                    format!(
                        "signature by {who} has no transparency log entry verified by a Rekor key signer {name} names"
                    ),
                )),
            }
        }
        if counted.is_empty() {
            reasons.extend(refusals.into_iter().map(|(c, m)| finding(c, m)));
            continue;
        }
        if let Some(formats) = &rule.formats {
            if !formats.contains(&sig.format) {
                let allowed: Vec<&str> = formats.iter().map(|f| f.as_str()).collect();
                reasons.push(finding(
                    "signature-format-not-allowed",
                    format!(
                        "signature by {who} is in the {} format; this rule accepts only [{}]",
                        sig.format.as_str(),
                        allowed.join(", ")
                    ),
                ));
                continue;
            }
        }
        if !sig.manifest_digest_matches {
            reasons.push(finding(
                "no-valid-signature",
                format!(
                    "signature by {who} is for another manifest, not {}",
                    evidence.digest
                ),
            ));
            continue;
        }
        let claims = match sig.docker_reference.as_deref() {
            Some(signed_reference) => judge_claims(
                &rule.identity,
                &rule.annotations,
                &evidence.reference,
                signed_reference,
                &sig.annotations,
            ),
            None if rule.identity_explicit => {
                reasons.push(finding(
                    "identity-not-signed",
                    format!(
                        "signature by {who} ({} format) signs no image reference, so it cannot meet identity {}",
                        sig.format.as_str(),
                        rule.identity.describe()
                    ),
                ));
                continue;
            }
            // The default identity rule: a signature that signs only the digest is bound to
            // the image by the digest alone (docs/policy.md, "Signature formats").
            None => ClaimVerdict {
                identity_accepted: true,
                missing_annotations: rule
                    .annotations
                    .iter()
                    .filter(|(k, v)| sig.annotations.get(*k) != Some(*v))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            },
        };
        if !claims.identity_accepted {
            reasons.push(finding(
                "identity-mismatch",
                format!(
                    "signature by {who} for identity {:?} is not accepted for {} under {}",
                    sig.docker_reference.as_deref().unwrap_or_default(),
                    evidence.reference,
                    rule.identity.describe()
                ),
            ));
            continue;
        }
        if !claims.missing_annotations.is_empty() {
            reasons.push(finding(
                "annotation-missing",
                format!(
                    "signature by {who} lacks annotation(s) {}",
                    claims.missing_annotations.join(", ")
                ),
            ));
            continue;
        }
        groups
            .entry(signer_identity(sig))
            .or_default()
            .extend(counted);
    }
    // One signer identity counts once, and one name once: the count is a maximum matching
    // between identities and names. Required names are matched first; augmenting never unmatches
    // a name, so they stay matched while the rest is filled.
    let names: Vec<&str> = {
        let mut v: Vec<&str> = rule.keys.iter().map(String::as_str).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let index = |n: &str| names.iter().position(|m| *m == n);
    let adjacency: Vec<Vec<usize>> = groups
        .values()
        .map(|set| set.iter().filter_map(|n| index(n)).collect())
        .collect();
    let required: BTreeSet<usize> = rule.required.iter().filter_map(|n| index(n)).collect();
    let mut owner: Vec<Option<usize>> = vec![None; names.len()];
    for group in 0..adjacency.len() {
        let mut seen = vec![false; names.len()];
        augment(
            group,
            &adjacency,
            &|n| required.contains(&n),
            &mut seen,
            &mut owner,
        );
    }
    for group in 0..adjacency.len() {
        if owner.contains(&Some(group)) {
            continue;
        }
        let mut seen = vec![false; names.len()];
        augment(group, &adjacency, &|_| true, &mut seen, &mut owner);
    }
    let count = owner.iter().filter(|o| o.is_some()).count();
    let required_missing: Vec<&String> = rule
        .required
        .iter()
        .filter(|n| index(n).is_none_or(|i| owner[i].is_none()))
        .collect();
    if count >= rule.threshold && required_missing.is_empty() {
        return;
    }
    if count == 0 {
        findings.push(finding(
            "no-valid-signature",
            format!(
                "no valid signature for {} by any of the keys [{}]",
                evidence.reference,
                rule.keys.join(", ")
            ),
        ));
    } else if count < rule.threshold {
        findings.push(finding(
            "threshold-not-met",
            format!(
                "{count} distinct signer(s) of [{}] signed {}; {} required",
                rule.keys.join(", "),
                evidence.reference,
                rule.threshold
            ),
        ));
    }
    for name in required_missing {
        findings.push(finding(
            "required-signer-missing",
            format!("no valid signature by required signer {name} (one signer identity counts for one name)"),
        ));
    }
    findings.extend(reasons);
}

pub(crate) fn format_time(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

fn config_checks(
    req: &Requirements,
    evidence: &Evidence,
    now: i64,
    base: &str,
    findings: &mut Vec<Finding>,
) {
    let c = &req.config;
    if !c.any() {
        return;
    }
    if evidence.configs.is_empty() {
        findings.push(Finding {
            code: "config-unavailable",
            message: format!(
                "configuration checks apply to {} but no image config was provided",
                evidence.reference
            ),
            rule: format!("{base}.config"),
        });
        return;
    }
    let many = evidence.configs.len() > 1;
    for (i, facts) in evidence.configs.iter().enumerate() {
        let which = if many {
            format!(
                "config {} of {} ({})",
                i + 1,
                evidence.configs.len(),
                facts.platform()
            )
        } else {
            "image config".to_string()
        };
        if c.forbid_root_user && runs_as_root(facts.user.as_deref()) {
            let user = match facts.user.as_deref() {
                None | Some("") => "no user (root)".to_string(),
                Some(u) => format!("user {u:?}"),
            };
            findings.push(Finding {
                code: "root-user",
                message: format!("{which} runs as {user}"),
                rule: format!("{base}.config.forbidRootUser"),
            });
        }
        if c.forbid_secrets {
            for hit in find_secrets(facts) {
                findings.push(Finding {
                    code: "secret-in-config",
                    message: format!(
                        "{which} has a secret-shaped value in {} ({})",
                        hit.location, hit.name
                    ),
                    rule: format!("{base}.config.forbidSecrets"),
                });
            }
        }
        if let Some((limit, text)) = &c.max_age {
            match facts.created {
                None => findings.push(Finding {
                    code: "image-too-old",
                    message: format!("{which} has no created date, so its age ({text} allowed) cannot be checked"),
                    rule: format!("{base}.config.maxAge"),
                }),
                Some(created) if created > now.saturating_add(CREATED_SKEW_SECONDS) => {
                    findings.push(Finding {
                        code: "image-created-in-future",
                        message: format!(
                            "{which} claims to be created {}, in the future, so its age ({text} allowed) cannot be checked",
                            format_time(created)
                        ),
                        rule: format!("{base}.config.maxAge"),
                    });
                }
                Some(created) => {
                    let age = now.saturating_sub(created);
                    if age > 0 && age as u64 > *limit {
                        findings.push(Finding {
                            code: "image-too-old",
                            message: format!(
                                "{which} was created {} ({} days ago), older than {text}",
                                format_time(created),
                                age / 86_400
                            ),
                            rule: format!("{base}.config.maxAge"),
                        });
                    }
                }
            }
        }
        if let Some((specs, list)) = &c.platforms {
            if !specs.iter().any(|s| s.allows(facts)) {
                findings.push(Finding {
                    code: "platform-not-allowed",
                    message: format!(
                        "{which} is for {}, not one of {}",
                        facts.platform(),
                        list.join(", ")
                    ),
                    rule: format!("{base}.config.platforms"),
                });
            }
        }
    }
}

/// The instant from which `evaluate` could answer differently on the same evidence (see
/// [`Verdict::valid_until`]). Only instants after `now` count: a key already retired stays
/// retired, an image already too old stays too old. Every key a signature rule of the scope
/// names counts, signed or not, which can only make the verdict's life shorter.
fn valid_until(policy: &Policy, req: &Requirements, evidence: &Evidence, now: i64) -> Option<i64> {
    let mut bounds: Vec<i64> = Vec::new();
    if let SignatureRule::Signed(rules) = &req.signatures {
        for rule in rules {
            bounds.extend(
                rule.keys
                    .iter()
                    .filter_map(|name| signer_live(policy, name, now).1),
            );
        }
    }
    if let Some((limit, _)) = &req.config.max_age {
        for created in evidence.configs.iter().filter_map(|c| c.created) {
            // In the future beyond the skew: refused until it comes within it.
            bounds.push(created.saturating_sub(CREATED_SKEW_SECONDS));
            // Too old from the first second its age exceeds the limit.
            let limit = i64::try_from(*limit).unwrap_or(i64::MAX);
            bounds.push(created.saturating_add(limit).saturating_add(1));
        }
    }
    let changes = bounds.into_iter().filter(|&t| t > now).min();
    let reuse = req
        .cache_ttl
        .map(|ttl| now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)));
    match (changes, reuse) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
