//! The `vulnerabilities` shortcut over cosign's vuln predicate
//! (`https://cosign.sigstore.dev/attestation/vuln/v1`, what `trivy --format cosign-vuln`
//! writes): `scanner.result` is Trivy's JSON report (`Results[].Vulnerabilities[]` with
//! `VulnerabilityID`, `PkgName`, `InstalledVersion`, `Severity`), `metadata.scanFinishedOn`
//! when the predicate was written.
//!
//! Trivy stamps `scanFinishedOn` with the time it *writes* the predicate: for `trivy image
//! --format cosign-vuln` that is the end of the scan, but `trivy convert --format cosign-vuln`
//! of an older JSON report stamps the conversion time (checked with Trivy 0.76). The report's
//! own `CreatedAt` keeps the scan time, so a scan's age is taken from the earlier of the two.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::CREATED_SKEW_SECONDS;

/// The predicate type the shortcut reads.
pub const VULN_PREDICATE_TYPE: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";

/// Most vulnerability findings named one by one; the rest are counted.
const MAX_NAMED: usize = 20;
/// Most vulnerabilities examined in one report.
const MAX_VULNERABILITIES: usize = 100_000;

/// A severity as scanners rate it, lowest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// No vulnerability at all is allowed (only as `maxSeverity`).
    None,
    /// Not rated by the scanner (`UNKNOWN`).
    Unknown,
    /// `LOW`.
    Low,
    /// `MEDIUM`.
    Medium,
    /// `HIGH`.
    High,
    /// `CRITICAL`, and any rating the scanner writes that is none of the above (fail closed).
    Critical,
}

impl Severity {
    fn from_scanner(text: &str) -> Severity {
        match text.to_ascii_uppercase().as_str() {
            "UNKNOWN" => Severity::Unknown,
            "LOW" | "NEGLIGIBLE" => Severity::Low,
            "MEDIUM" | "MODERATE" => Severity::Medium,
            "HIGH" => Severity::High,
            _ => Severity::Critical,
        }
    }

    /// The name as scanners write it.
    pub fn as_upper(self) -> &'static str {
        match self {
            Severity::None => "NONE",
            Severity::Unknown => "UNKNOWN",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// `vulnerabilities:` as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VulnerabilitySpec {
    /// The highest severity allowed (`none`, `unknown`, `low`, `medium`, `high`, `critical`).
    /// A rating the scanner writes that Signet does not know counts as `critical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_severity: Option<Severity>,
    /// The scan (`metadata.scanFinishedOn`) must be no older than this (`24h`, `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_scan_age: Option<String>,
    /// Vulnerabilities allowed whatever their severity, each until its expiry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<AllowSpec>,
}

/// One allow-list entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AllowSpec {
    /// The vulnerability id as the scanner writes it (`CVE-2024-3094`, `GHSA-…`).
    pub id: String,
    /// RFC 3339 instant at which the entry stops applying (required: exceptions expire).
    pub until: String,
    /// Why it is allowed (for reviewers; not evaluated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The validated shortcut.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VulnRule {
    pub(crate) max_severity: Option<Severity>,
    pub(crate) max_scan_age: Option<(u64, String)>,
    /// (id, until)
    pub(crate) allow: Vec<(String, i64)>,
}

/// A failed check: stable code and message.
pub(crate) type Failure = (&'static str, String);

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Go's zero `time.Time` (`0001-01-01T00:00:00Z`), which a Go writer emits for a time never set.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// `scanner.result.CreatedAt`, Trivy's own time of the scan, when the report states one.
fn report_created_at(predicate: &Value) -> Result<Option<i64>, Failure> {
    let created = predicate
        .get("scanner")
        .and_then(|s| s.get("result"))
        .and_then(|r| r.get("CreatedAt"));
    let invalid = |why: String| ("vulnerability-report-invalid", why);
    match created {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => match crate::config::parse_rfc3339(text) {
            Ok(t) if t <= GO_ZERO_TIME => Ok(None),
            Ok(t) => Ok(Some(t)),
            Err(reason) => Err(invalid(format!(
                "scanner.result.CreatedAt is not a time: {reason}"
            ))),
        },
        Some(_) => Err(invalid(
            "scanner.result.CreatedAt is not a string".to_string(),
        )),
    }
}

/// When the scan was made, as `maxScanAge` and an attestation rule's `maxAge` both count it: the
/// earlier of `metadata.scanFinishedOn` and the report's `CreatedAt`. `None` when the first is
/// missing or either is not a time, so an age bound fails closed.
pub(crate) fn scan_time(predicate: &Value) -> Option<i64> {
    let finished = predicate
        .get("metadata")
        .and_then(|m| text(m, "scanFinishedOn"))
        .map(crate::config::parse_rfc3339)?
        .ok()?;
    match report_created_at(predicate).ok()? {
        Some(created) if created < finished => Some(created),
        _ => Some(finished),
    }
}

/// Judge one verified vuln predicate at `now`: failures, and the instants after `now` at which
/// the answer could change (an allow-list entry expiring, the scan growing too old).
pub(crate) fn check(rule: &VulnRule, predicate: &Value, now: i64) -> (Vec<Failure>, Vec<i64>) {
    let mut failures = Vec::new();
    let mut bounds = Vec::new();
    if let Some((limit, written)) = &rule.max_scan_age {
        let finished = predicate
            .get("metadata")
            .and_then(|m| text(m, "scanFinishedOn"));
        let report_created = match report_created_at(predicate) {
            Ok(created) => created,
            Err(failure) => {
                failures.push(failure);
                return (failures, bounds);
            }
        };
        match finished.map(crate::config::parse_rfc3339) {
            None => failures.push((
                "vulnerability-scan-time-missing",
                format!("the scan has no metadata.scanFinishedOn, so its age ({written} allowed) cannot be checked"),
            )),
            Some(Err(reason)) => failures.push((
                "vulnerability-scan-time-missing",
                format!("the scan's metadata.scanFinishedOn is not a time: {reason}"),
            )),
            Some(Ok(t)) if t > now.saturating_add(CREATED_SKEW_SECONDS) => {
                bounds.push(t.saturating_sub(CREATED_SKEW_SECONDS));
                failures.push((
                    "vulnerability-scan-in-future",
                    format!("the scan claims to have finished at {}, in the future", crate::verdict::format_time(t)),
                ));
            }
            Some(Ok(finished)) => {
                let (t, what) = match report_created {
                    Some(created) if created < finished => (created, "its report was created"),
                    _ => (finished, "the scan finished"),
                };
                let limit_i = i64::try_from(*limit).unwrap_or(i64::MAX);
                let expires = t.saturating_add(limit_i).saturating_add(1);
                if now >= expires {
                    failures.push((
                        "vulnerability-scan-too-old",
                        format!(
                            "{what} at {} ({} hours ago), older than {written}",
                            crate::verdict::format_time(t),
                            now.saturating_sub(t) / 3600
                        ),
                    ));
                } else {
                    bounds.push(expires);
                }
            }
        }
    }
    let Some(max) = rule.max_severity else {
        return (failures, bounds);
    };
    let Some(result) = predicate.get("scanner").and_then(|s| s.get("result")) else {
        failures.push((
            "vulnerability-report-invalid",
            "the predicate has no scanner.result (Trivy's JSON report)".to_string(),
        ));
        return (failures, bounds);
    };
    if !result.is_object() {
        failures.push((
            "vulnerability-report-invalid",
            "scanner.result is not a JSON object".to_string(),
        ));
        return (failures, bounds);
    }
    let results = match result.get("Results") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list.iter().collect(),
        Some(_) => {
            failures.push((
                "vulnerability-report-invalid",
                "scanner.result.Results is not a list".to_string(),
            ));
            return (failures, bounds);
        }
    };
    let mut too_severe: Vec<String> = Vec::new();
    let mut seen = 0usize;
    for (i, r) in results.iter().enumerate() {
        let vulns = match r.get("Vulnerabilities") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(list)) => list,
            Some(_) => {
                failures.push((
                    "vulnerability-report-invalid",
                    format!("scanner.result.Results[{i}].Vulnerabilities is not a list"),
                ));
                return (failures, bounds);
            }
        };
        for v in vulns {
            seen += 1;
            if seen > MAX_VULNERABILITIES {
                failures.push((
                    "vulnerability-report-invalid",
                    format!("the report lists more than {MAX_VULNERABILITIES} vulnerabilities"),
                ));
                return (failures, bounds);
            }
            let (Some(id), Some(severity)) = (text(v, "VulnerabilityID"), text(v, "Severity"))
            else {
                failures.push((
                    "vulnerability-report-invalid",
                    format!("a vulnerability in scanner.result.Results[{i}] lacks VulnerabilityID or Severity"),
                ));
                return (failures, bounds);
            };
            let rated = Severity::from_scanner(severity);
            if rated <= max {
                continue;
            }
            let show = |s: &str| s.chars().take(120).collect::<String>();
            let what = format!(
                "{} {} in {} {}",
                show(id),
                rated.as_upper(),
                show(text(v, "PkgName").unwrap_or("(unnamed package)")),
                show(text(v, "InstalledVersion").unwrap_or("(unknown version)"))
            );
            match rule.allow.iter().find(|(a, _)| a == id) {
                Some((_, until)) if *until > now => {
                    bounds.push(*until);
                }
                Some((_, until)) => too_severe.push(format!(
                    "{what} (its allow-list entry expired at {})",
                    crate::verdict::format_time(*until)
                )),
                None => too_severe.push(what),
            }
        }
    }
    too_severe.sort();
    too_severe.dedup();
    let extra = too_severe.len().saturating_sub(MAX_NAMED);
    for what in too_severe.iter().take(MAX_NAMED) {
        failures.push((
            "vulnerability-too-severe",
            format!("{what}; the highest severity allowed is {}", max.as_upper()),
        ));
    }
    if extra > 0 {
        failures.push((
            "vulnerability-too-severe",
            format!("and {extra} more vulnerabilities above {}", max.as_upper()),
        ));
    }
    (failures, bounds)
}
