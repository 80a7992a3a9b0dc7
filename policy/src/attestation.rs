//! Attestation requirements: a scope's `attestations:` entries, the verified attestations the
//! verifier hands in ([`AttestationEvidence`]), and their judgement.
//!
//! An entry holds when `threshold` distinct signers of its `keys` (the same signer specs and
//! the same counting as `signed`: keys, keyless, PKI, `required`, one identity counts once)
//! each signed an attestation of its predicate type that passes every check of the entry: age,
//! CEL conditions, and the `vulnerabilities` / `slsa` shortcuts — and no other trusted
//! attestation of that type, still within `maxAge` / `maxScanAge`, fails one. A deploy gate
//! fails closed: evidence that says "no" is not outvoted by older evidence that says "yes".
//! Attestations too old to count are set aside. Attestations by signers the entry does not
//! trust are never judged on their content, so they can neither allow nor name a reason.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use signet_sign::intoto::PredicateType;

use crate::cel::{CompileError, Expression, Outcome};
use crate::config::{parse_duration, parse_rfc3339, CREATED_SKEW_SECONDS};
use crate::diagnostic::{line_col, locate, Severity as DiagSeverity, Sink};
use crate::identity::IdentityRule;
use crate::key::TrustedKey;
use crate::policy::{Policy, SignedRule};
use crate::slsa::{SlsaSpec, SLSA_V02, SLSA_V1};
use crate::verdict::{
    format_time, Evidence, Finding, SignatureEvidence, SignatureFormat, Signer, TlogEvidence,
};
use crate::vuln::{VulnRule, VulnerabilitySpec, VULN_PREDICATE_TYPE};

/// One `attestations:` entry as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AttestationSpec {
    /// The predicate type: a cosign `--type` name (`vuln`, `slsaprovenance02`,
    /// `slsaprovenance1`, `spdxjson`, `cyclonedx`, `openvex`, …) or a URI.
    #[serde(rename = "type")]
    pub predicate_type: String,
    /// Names of signers (from `keys`) whose attestations count.
    pub keys: Vec<String>,
    /// How many distinct signers must each have a passing attestation (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// Signers that must always be among them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    /// The attestation must be no older than this (`7d`, `24h`). Its time is the verified
    /// signing time for certificate signers, else the time the signed predicate states
    /// (vuln: the earlier of `metadata.scanFinishedOn` and the report's `CreatedAt`; SLSA v1
    /// `runDetails.metadata.finishedOn`, v0.2 `metadata.buildFinishedOn`); without one the
    /// attestation does not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// CEL conditions over `predicate`, `subject` (the statement's subject list) and `config`
    /// (the image config); every one must be true.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionSpec>,
    /// The vulnerability-scan shortcut (type `vuln` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vulnerabilities: Option<VulnerabilitySpec>,
    /// The SLSA provenance shortcut (types `slsaprovenance02` and `slsaprovenance1` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slsa: Option<SlsaSpec>,
}

/// One CEL condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConditionSpec {
    /// A CEL expression that must evaluate to `true`.
    pub expression: String,
    /// What a denial says when it is false (default: the expression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A verified attestation, as the verifier hands it to the policy: every cryptographic check
/// passed (envelope signature, payload type, statement, subject naming the image digest,
/// predicate type); the policy decides whether its signer is trusted and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct AttestationEvidence {
    /// Who signed the envelope.
    pub signer: Signer,
    /// `.att` layer (legacy) or bundle referrer.
    pub format: SignatureFormat,
    /// The statement's predicate type.
    pub predicate_type: String,
    /// The statement's subjects as JSON (`[{"name": …, "digest": {…}}]`).
    pub subject: Value,
    /// The predicate.
    pub predicate: Value,
    /// A transparency log entry that verified, if any.
    pub tlog: Option<TlogEvidence>,
}

/// What the verifier gathered for attestation requirements: verified attestations and, when a
/// condition reads `config`, the image configs (one per platform) as JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttestationInput {
    /// Verified attestations.
    pub attestations: Vec<AttestationEvidence>,
    /// Image configs (JSON), when asked for ([`Policy::needs_config_json`]).
    pub configs: Vec<Value>,
}

/// A validated condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub(crate) expression: Expression,
    pub(crate) message: Option<String>,
}

/// A validated attestation requirement.
#[derive(Debug, Clone, PartialEq)]
pub struct AttestationRule {
    pub(crate) predicate_type: PredicateType,
    pub(crate) signed: SignedRule,
    pub(crate) max_age: Option<(u64, String)>,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) vulnerabilities: Option<VulnRule>,
    pub(crate) slsa: Option<SlsaSpec>,
}

impl AttestationRule {
    /// Whether a condition reads the image config.
    pub fn uses_config(&self) -> bool {
        self.conditions.iter().any(|c| c.expression.uses_config())
    }

    /// The requirement in words (for `policy explain`).
    pub fn describe(&self) -> Vec<String> {
        let mut s = format!(
            "attestation {} signed by {} of [{}]",
            self.predicate_type.as_str(),
            self.signed.threshold,
            self.signed.keys.join(", ")
        );
        if !self.signed.required.is_empty() {
            s.push_str(&format!(" (required: {})", self.signed.required.join(", ")));
        }
        if let Some((_, t)) = &self.max_age {
            s.push_str(&format!(", no older than {t}"));
        }
        let mut out = vec![s];
        for c in &self.conditions {
            out.push(format!("  condition: {}", c.expression.source()));
        }
        if let Some(v) = &self.vulnerabilities {
            if let Some(m) = v.max_severity {
                out.push(format!("  vulnerabilities: none above {}", m.as_upper()));
            }
            if let Some((_, t)) = &v.max_scan_age {
                out.push(format!("  vulnerabilities: scan no older than {t}"));
            }
            for (id, until) in &v.allow {
                out.push(format!(
                    "  vulnerabilities: {id} allowed until {}",
                    format_time(*until)
                ));
            }
        }
        if let Some(s) = &self.slsa {
            let mut parts = Vec::new();
            for (k, v) in [
                ("builder", &s.builder_id),
                ("build type", &s.build_type),
                ("source", &s.source_repository),
                ("ref", &s.source_ref),
            ] {
                if let Some(v) = v {
                    parts.push(format!("{k} {v}"));
                }
            }
            out.push(format!("  provenance: {}", parts.join(", ")));
        }
        out
    }
}

/// Validate the `attestations:` entries of one requirement. `base` is its path.
pub(crate) fn rules(
    specs: &[AttestationSpec],
    base: &[&str],
    sink: &mut Sink<'_>,
    keys: &BTreeMap<String, TrustedKey>,
    key_names: &BTreeSet<&str>,
    used: &mut BTreeSet<String>,
) -> Option<Vec<AttestationRule>> {
    let mut ok = true;
    let mut out = Vec::new();
    fn p(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    for (i, spec) in specs.iter().enumerate() {
        let idx = format!("[{i}]");
        let path = |extra: &[&str]| -> Vec<String> {
            base.iter()
                .copied()
                .chain(["attestations", idx.as_str()])
                .chain(extra.iter().copied())
                .map(str::to_string)
                .collect()
        };
        let mut rule_ok = true;
        let predicate_type = match PredicateType::from_name(&spec.predicate_type) {
            Ok(t) => Some(t),
            Err(e) => {
                sink.error(
                    "invalid-attestation-type",
                    &p(&path(&["type"])),
                    e.to_string(),
                );
                rule_ok = false;
                None
            }
        };
        if spec.keys.is_empty() {
            sink.error("no-keys", &p(&path(&["keys"])), "`keys` lists no signers");
            rule_ok = false;
        }
        let mut distinct = BTreeSet::new();
        for name in &spec.keys {
            used.insert(name.clone());
            if !key_names.contains(name.as_str()) {
                sink.error(
                    "unknown-key",
                    &p(&path(&["keys", name])),
                    format!("key {name:?} is not defined under `keys`"),
                );
                rule_ok = false;
            } else if let Some(k) = keys.get(name) {
                distinct.insert(format!("key {}", k.key.id()));
            } else {
                distinct.insert(format!("name {name}"));
            }
        }
        for name in &spec.required {
            if !spec.keys.contains(name) {
                sink.error(
                    "required-key-not-listed",
                    &p(&path(&["required", name])),
                    format!("required key {name:?} must also be listed in `keys`"),
                );
                rule_ok = false;
            }
        }
        let threshold = spec.threshold.unwrap_or(1) as usize;
        if threshold == 0 || threshold > distinct.len().max(1) {
            sink.error(
                "threshold-invalid",
                &p(&path(&["threshold"])),
                format!(
                    "threshold {threshold} must be between 1 and the number of distinct signers ({})",
                    distinct.len()
                ),
            );
            rule_ok = false;
        }
        let max_age = match &spec.max_age {
            None => None,
            Some(text) => match parse_duration(text) {
                Ok(secs) => Some((secs, text.clone())),
                Err(reason) => {
                    sink.error("invalid-duration", &p(&path(&["maxAge"])), reason);
                    rule_ok = false;
                    None
                }
            },
        };
        let mut conditions = Vec::new();
        for (j, c) in spec.conditions.iter().enumerate() {
            let jdx = format!("[{j}]");
            let cpath = path(&["conditions", &jdx, "expression"]);
            match Expression::compile(&c.expression) {
                Ok(expression) => conditions.push(Condition {
                    expression,
                    message: c.message.clone(),
                }),
                Err(e) => {
                    cel_error(sink, &p(&cpath), &c.expression, &e);
                    rule_ok = false;
                }
            }
        }
        let type_uri = predicate_type.as_ref().map(|t| t.as_str()).unwrap_or("");
        let vulnerabilities = match &spec.vulnerabilities {
            None => None,
            Some(v) => {
                if predicate_type.is_some() && type_uri != VULN_PREDICATE_TYPE {
                    sink.error(
                        "shortcut-type-mismatch",
                        &p(&path(&["vulnerabilities"])),
                        format!("`vulnerabilities` reads cosign's vuln predicate; set `type: vuln`, not {type_uri:?}"),
                    );
                    rule_ok = false;
                }
                let max_scan_age = match &v.max_scan_age {
                    None => None,
                    Some(text) => match parse_duration(text) {
                        Ok(secs) => Some((secs, text.clone())),
                        Err(reason) => {
                            sink.error(
                                "invalid-duration",
                                &p(&path(&["vulnerabilities", "maxScanAge"])),
                                reason,
                            );
                            rule_ok = false;
                            None
                        }
                    },
                };
                let mut allow = Vec::new();
                for a in &v.allow {
                    if a.id.trim().is_empty() {
                        sink.error(
                            "invalid-value",
                            &p(&path(&["vulnerabilities", "allow"])),
                            "an allow-list entry has an empty id",
                        );
                        rule_ok = false;
                    }
                    match parse_rfc3339(&a.until) {
                        Ok(t) => allow.push((a.id.clone(), t)),
                        Err(reason) => {
                            sink.error(
                                "invalid-date",
                                &p(&path(&["vulnerabilities", "allow", &a.id, "until"])),
                                format!("allow-list entry {:?} until: {reason}", a.id),
                            );
                            rule_ok = false;
                        }
                    }
                }
                if v.max_severity.is_none() && max_scan_age.is_none() {
                    sink.warn(
                        "vulnerabilities-check-nothing",
                        &p(&path(&["vulnerabilities"])),
                        "`vulnerabilities` sets neither `maxSeverity` nor `maxScanAge`, so it checks nothing",
                    );
                }
                if v.max_severity.is_none() && !allow.is_empty() {
                    sink.warn(
                        "allow-list-unused",
                        &p(&path(&["vulnerabilities", "allow"])),
                        "the allow-list has no effect without `maxSeverity`",
                    );
                }
                Some(VulnRule {
                    max_severity: v.max_severity,
                    max_scan_age,
                    allow,
                })
            }
        };
        if let Some(s) = &spec.slsa {
            if predicate_type.is_some() && type_uri != SLSA_V02 && type_uri != SLSA_V1 {
                sink.error(
                    "shortcut-type-mismatch",
                    &p(&path(&["slsa"])),
                    format!("`slsa` reads SLSA provenance; set `type: slsaprovenance02` or `slsaprovenance1`, not {type_uri:?}"),
                );
                rule_ok = false;
            }
            if *s == SlsaSpec::default() {
                sink.warn(
                    "slsa-check-nothing",
                    &p(&path(&["slsa"])),
                    "`slsa` sets no field, so it checks nothing",
                );
            }
        }
        match predicate_type {
            Some(predicate_type) if rule_ok => out.push(AttestationRule {
                predicate_type,
                signed: SignedRule {
                    keys: spec.keys.clone(),
                    threshold,
                    required: spec.required.clone(),
                    identity: IdentityRule::MatchRepository,
                    identity_explicit: false,
                    annotations: BTreeMap::new(),
                    formats: None,
                },
                max_age,
                conditions,
                vulnerabilities,
                slsa: spec.slsa.clone(),
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// A CEL compile error, positioned at the expression in the file, plus the column inside it.
fn cel_error(sink: &mut Sink<'_>, path: &[&str], source: &str, error: &CompileError) {
    let code = match error {
        CompileError::Syntax { .. } => "cel-syntax-error",
        CompileError::TooCostly(_) => "cel-too-costly",
        CompileError::UnknownVariable(_) => "cel-unknown-variable",
    };
    let text = sink.source.text;
    // The expression as written, searched after the `conditions` key of this entry: found
    // verbatim for plain and quoted one-line scalars; else the key's position.
    let anchor = locate(text, &path[..path.len().saturating_sub(2)]);
    let from = anchor.map_or(0, |(line, _)| {
        text.split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum::<usize>()
    });
    let found = (!source.is_empty())
        .then(|| text.get(from..).and_then(|t| t.find(source)))
        .flatten()
        .map(|rel| from + rel);
    let (line, column) = match found {
        Some(offset) => {
            let (l, c) = line_col(text, offset);
            match error {
                CompileError::Syntax {
                    line: Some(el),
                    column: Some(ec),
                    ..
                } => {
                    if *el == 1 {
                        (Some(l), Some(c + ec - 1))
                    } else {
                        // The expression's own later line: columns count from that line.
                        let inner = source.split('\n').nth(el - 1).map(|_| *ec);
                        (Some(l + el - 1), inner)
                    }
                }
                _ => (Some(l), Some(c)),
            }
        }
        None => match locate(text, path) {
            Some((l, c)) => (Some(l), Some(c)),
            None => (None, None),
        },
    };
    let mut message = error.to_string();
    if let CompileError::Syntax {
        line: Some(l),
        column: Some(c),
        ..
    } = error
    {
        message = format!("{message} (line {l}, column {c} of the expression)");
    }
    sink.items.push(crate::diagnostic::Diagnostic {
        severity: DiagSeverity::Error,
        code,
        message,
        file: sink.source.name.to_string(),
        line,
        column,
        path: crate::diagnostic::render_path(path),
    });
}

/// The instant an attestation was made, from verified evidence only.
fn attestation_time(att: &AttestationEvidence) -> Option<i64> {
    if let Signer::Certificate(cert) = &att.signer {
        return Some(cert.verified_time);
    }
    if let Some(t) = &att.tlog {
        return Some(t.integrated_time);
    }
    let p = &att.predicate;
    let text = match att.predicate_type.as_str() {
        VULN_PREDICATE_TYPE => return crate::vuln::scan_time(p),
        SLSA_V1 => p.pointer("/runDetails/metadata/finishedOn"),
        SLSA_V02 => p.pointer("/metadata/buildFinishedOn"),
        _ => None,
    }?;
    parse_rfc3339(text.as_str()?).ok()
}

fn as_signature(att: &AttestationEvidence) -> SignatureEvidence {
    SignatureEvidence {
        signer: att.signer.clone(),
        format: att.format,
        docker_reference: None,
        // The verifier accepted only statements whose subject names the image digest.
        manifest_digest_matches: true,
        annotations: BTreeMap::new(),
        tlog: att.tlog.clone(),
    }
}

/// Judge one attestation's content under `rule`: failures and time bounds.
fn content(
    rule: &AttestationRule,
    att: &AttestationEvidence,
    configs: &[Value],
    now: i64,
) -> (Vec<(&'static str, String)>, Vec<i64>) {
    let mut failures = Vec::new();
    let mut bounds = Vec::new();
    if let Some((limit, written)) = &rule.max_age {
        match attestation_time(att) {
            None => failures.push((
                "attestation-time-unknown",
                format!(
                    "it carries no verified time, so its age ({written} allowed) cannot be checked"
                ),
            )),
            Some(t) if t > now.saturating_add(CREATED_SKEW_SECONDS) => {
                bounds.push(t.saturating_sub(CREATED_SKEW_SECONDS));
                failures.push((
                    "attestation-in-future",
                    format!("it claims to be made at {}, in the future", format_time(t)),
                ));
            }
            Some(t) => {
                let expires = t
                    .saturating_add(i64::try_from(*limit).unwrap_or(i64::MAX))
                    .saturating_add(1);
                if now >= expires {
                    failures.push((
                        "attestation-too-old",
                        format!("it was made at {}, older than {written}", format_time(t)),
                    ));
                } else {
                    bounds.push(expires);
                }
            }
        }
    }
    if let Some(v) = &rule.vulnerabilities {
        let (f, b) = crate::vuln::check(v, &att.predicate, now);
        failures.extend(f);
        bounds.extend(b);
    }
    if let Some(s) = &rule.slsa {
        failures.extend(crate::slsa::check(s, &att.predicate_type, &att.predicate));
    }
    for c in &rule.conditions {
        let null = Value::Null;
        let config_list: Vec<&Value> = if c.expression.uses_config() {
            if configs.is_empty() {
                failures.push((
                    "config-unavailable",
                    format!(
                        "condition {:?} reads config but no image config was provided",
                        c.expression.source()
                    ),
                ));
                continue;
            }
            configs.iter().collect()
        } else {
            vec![&null]
        };
        for config in config_list {
            match c.expression.evaluate(&att.predicate, &att.subject, config) {
                Outcome::True => {}
                Outcome::False => failures.push((
                    "attestation-condition-failed",
                    match &c.message {
                        Some(m) => format!("{m} (condition {:?} is false)", c.expression.source()),
                        None => format!("condition {:?} is false", c.expression.source()),
                    },
                )),
                Outcome::Error(why) => failures.push((
                    "attestation-condition-error",
                    format!(
                        "condition {:?} could not be evaluated: {why}",
                        c.expression.source()
                    ),
                )),
                Outcome::TooCostly(why) => failures.push((
                    "attestation-condition-too-costly",
                    format!("condition {:?} was not run: {why}", c.expression.source()),
                )),
            }
        }
    }
    (failures, bounds)
}

/// Failure codes that mean "too old to count": such an attestation is set aside rather than
/// judged, so an expired scan neither allows nor denies beside a current one.
const STALE_CODES: [&str; 2] = ["attestation-too-old", "vulnerability-scan-too-old"];

/// Judge the attestation requirements of `rules` (at `base`): findings, and the instants after
/// `now` at which the answer could change.
pub(crate) fn judge(
    policy: &Policy,
    rules: &[AttestationRule],
    evidence: &Evidence,
    input: &AttestationInput,
    now: i64,
    base: &str,
) -> (Vec<Finding>, Vec<i64>) {
    let mut findings = Vec::new();
    let mut bounds = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let rule_name = format!("{base}.attestations[{i}]");
        let finding = |code: &'static str, message: String| Finding {
            code,
            message,
            rule: rule_name.clone(),
        };
        let wanted = rule.predicate_type.as_str();
        let typed: Vec<&AttestationEvidence> = input
            .attestations
            .iter()
            .filter(|a| a.predicate_type == wanted)
            .collect();
        if typed.is_empty() {
            findings.push(finding(
                "attestation-missing",
                format!(
                    "no verified {wanted} attestation for {}",
                    evidence.reference
                ),
            ));
            continue;
        }
        let with = |atts: &[&AttestationEvidence], threshold: usize, required: bool| {
            let mut r = rule.signed.clone();
            r.threshold = threshold;
            if !required {
                r.required.clear();
            }
            let e = Evidence {
                reference: evidence.reference.clone(),
                digest: evidence.digest.clone(),
                reference_had_digest: evidence.reference_had_digest,
                signatures: atts.iter().map(|a| as_signature(a)).collect(),
                configs: Vec::new(),
            };
            let mut out = Vec::new();
            crate::verdict::signed(policy, &r, &e, now, &rule_name, &mut out);
            for f in &mut out {
                f.message = f.message.replace("signature by", "attestation by");
                f.message = f
                    .message
                    .replace("no valid signature", "no trusted attestation");
            }
            out
        };
        let trusted: Vec<&AttestationEvidence> = typed
            .iter()
            .copied()
            .filter(|a| with(&[*a], 1, false).is_empty())
            .collect();
        // A signer's retirement (`notAfter`) changes the answer too.
        for name in &rule.signed.keys {
            let retires = policy
                .keys
                .get(name)
                .and_then(|k| k.not_after)
                .or_else(|| policy.certificates.get(name).and_then(|c| c.not_after));
            bounds.extend(retires);
        }
        if trusted.is_empty() {
            findings.push(finding(
                "attestation-untrusted",
                format!(
                    "{} verified {wanted} attestation(s) for {}, none signed by a signer of [{}]",
                    typed.len(),
                    evidence.reference,
                    rule.signed.keys.join(", ")
                ),
            ));
            findings.extend(
                with(&typed, 1, false)
                    .into_iter()
                    .filter(|f| f.code != "no-valid-signature"),
            );
            continue;
        }
        // Fail closed: every trusted attestation still in age is judged, and one that fails
        // denies even beside passing ones (a newer scan that finds a CVE outweighs an older
        // clean one). Only an attestation too old to count is set aside; its failures are
        // reported when nothing else decides.
        let mut passing = Vec::new();
        let mut failures = Vec::new();
        let mut stale = Vec::new();
        let mut rule_bounds = Vec::new();
        for a in &trusted {
            let (f, b) = content(rule, a, &input.configs, now);
            rule_bounds.extend(b);
            if f.is_empty() {
                passing.push(*a);
            } else if f.iter().any(|(code, _)| STALE_CODES.contains(code)) {
                stale.extend(f);
            } else {
                failures.extend(f);
            }
        }
        bounds.extend(rule_bounds);
        let counted = with(&passing, rule.signed.threshold, true);
        if failures.is_empty() && !passing.is_empty() && counted.is_empty() {
            continue;
        }
        if failures.is_empty() {
            failures = stale;
        }
        for (code, message) in failures {
            findings.push(finding(code, format!("{wanted} attestation: {message}")));
        }
        if !passing.is_empty() {
            findings.extend(counted);
        }
    }
    (findings, bounds)
}
