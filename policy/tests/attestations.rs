//! Attestation requirements: vulnerability scans, SLSA provenance, CEL conditions, signers,
//! time bounds and lint positions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::{json, Value};
use signet_oci::Reference;
use signet_policy::{
    evaluate, evaluate_with_attestations, explain, lint, AttestationEvidence, AttestationInput,
    Decision, Evidence, KeyId, Policy, PublicKey, Severity, SignatureFormat, Signer, Verdict,
};

const VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
const V02: &str = "https://slsa.dev/provenance/v0.2";
const V1: &str = "https://slsa.dev/provenance/v1";
/// Real `trivy convert --format cosign-vuln` output (testdata/attestations/README.md): Grafana
/// 12.2.0, two CRITICAL CVEs among its findings.
const CRITICAL_SCAN: &str = "trivy-grafana-12.2.0.cosign-vuln.json";
/// Real Trivy output for OpenSearch 2.19.4: nothing above HIGH.
const PASSING_SCAN: &str = "trivy-opensearch-2.19.4.cosign-vuln.json";
/// Real SLSA v0.2 provenance (GitHub Actions, npm's slsa-provenance 0.0.7).
const SLSA_V02_NPM: &str = "slsa-v0.2-npm-slsa-provenance-0.0.7.json";
/// Real SLSA v1 provenance (GitHub Actions, npm's sigstore 2.0.0).
const SLSA_V1_NPM: &str = "slsa-v1-npm-sigstore-2.0.0.json";
/// When the scans were converted (their `scanFinishedOn`, 2026-12-02T18:39:02Z to the second);
/// `scan_at` moves every time a scan states to another instant.
const SCANNED: i64 = 1_796_236_742;
const SCANNED_TEXT: &str = "2026-12-02T18:39:02Z";
/// 2026-12-03T00:00:00Z: hours after the scans.
const NOW: i64 = 1_796_256_000;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

fn loader(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(testdata().join("policies").join(path)).map_err(|e| e.to_string())
}

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(testdata().join("attestations").join(name)).unwrap())
        .unwrap()
}

/// A scan fixture with every time it states (`metadata.scanStartedOn`/`scanFinishedOn`, the
/// report's `CreatedAt` where it has one) moved to `finished`.
fn scan_at(name: &str, finished: &str) -> Value {
    let mut p = fixture(name);
    p["metadata"]["scanStartedOn"] = json!(finished);
    p["metadata"]["scanFinishedOn"] = json!(finished);
    if p["scanner"]["result"].get("CreatedAt").is_some() {
        p["scanner"]["result"]["CreatedAt"] = json!(finished);
    }
    p
}

fn critical() -> Value {
    scan_at(CRITICAL_SCAN, SCANNED_TEXT)
}

fn passing() -> Value {
    scan_at(PASSING_SCAN, SCANNED_TEXT)
}

fn key_id(file: &str) -> KeyId {
    PublicKey::from_pem(&loader(&format!("keys/{file}")).unwrap())
        .unwrap()
        .id()
        .clone()
}

fn load(scope: &str) -> Policy {
    let text = format!(
        "keys:\n  scanner:\n    path: keys/keyA.pub\n  builder:\n    path: keys/keyB.pub\nscopes:\n  \"registry.example.com/app\":\n    accept: true\n{scope}"
    );
    match Policy::load("test.yaml", &text, &loader) {
        Ok(l) => l.policy,
        Err(e) => panic!("{e}\n{text}"),
    }
}

fn evidence() -> Evidence {
    let reference: Reference = "registry.example.com/app:1".parse().unwrap();
    Evidence {
        reference,
        digest: signet_oci::Digest::sha256(b"image"),
        reference_had_digest: false,
        signatures: vec![],
        configs: vec![],
    }
}

fn att(key: &str, predicate_type: &str, predicate: Value) -> AttestationEvidence {
    AttestationEvidence {
        signer: Signer::Key(key_id(key)),
        format: SignatureFormat::Legacy,
        predicate_type: predicate_type.to_string(),
        subject: json!([{"name": "registry.example.com/app", "digest": {"sha256": "00"}}]),
        predicate,
        tlog: None,
    }
}

fn judge(policy: &Policy, atts: Vec<AttestationEvidence>, now: i64) -> Verdict {
    evaluate_with_attestations(
        policy,
        &evidence(),
        &AttestationInput {
            attestations: atts,
            configs: vec![json!({"config": {"User": "1000"}})],
        },
        now,
    )
}

fn codes(v: &Verdict) -> Vec<&'static str> {
    v.findings.iter().map(|f| f.code).collect()
}

const VULN_SCOPE: &str = r#"    attestations:
      - type: vuln
        keys: [scanner]
        vulnerabilities:
          maxSeverity: high
          maxScanAge: 7d
          allow:
            - id: CVE-2023-0001
              until: "2030-01-01T00:00:00Z"
"#;

#[test]
fn vulnerability_gate_denies_naming_the_cve_and_allows_a_clean_scan() {
    let policy = load(VULN_SCOPE);
    let deny = judge(&policy, vec![att("keyA.pub", VULN, critical())], NOW);
    assert_eq!(deny.decision, Decision::Deny, "{deny:?}");
    // CVE-2025-68121 is listed once per Go binary (three targets): named once.
    assert_eq!(
        codes(&deny),
        ["vulnerability-too-severe", "vulnerability-too-severe"]
    );
    let messages: Vec<&str> = deny.findings.iter().map(|f| f.message.as_str()).collect();
    assert!(
        messages.iter().any(|m| m
            .contains("CVE-2025-41115 CRITICAL in github.com/grafana/grafana 12.2.0; the highest severity allowed is HIGH")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("CVE-2025-68121 CRITICAL in stdlib v1.24.6")),
        "{messages:?}"
    );
    assert_eq!(
        deny.findings[0].rule,
        "scopes.\"registry.example.com/app\".attestations[0]"
    );

    let allow = judge(&policy, vec![att("keyA.pub", VULN, passing())], NOW);
    assert_eq!(allow.decision, Decision::Allow, "{allow:?}");
    // The scan grows too old 7 days after it finished.
    assert_eq!(allow.valid_until, Some(SCANNED + 7 * 86_400 + 1));

    // No attestation at all, or only the plain evaluate: denied as missing.
    let none = judge(&policy, vec![], NOW);
    assert_eq!(codes(&none), ["attestation-missing"]);
    assert_eq!(
        codes(&evaluate(&policy, &evidence(), NOW)),
        ["attestation-missing"]
    );
}

#[test]
fn a_lower_ceiling_names_the_passing_scans_high_findings() {
    let policy = load(&VULN_SCOPE.replace("maxSeverity: high", "maxSeverity: medium"));
    let v = judge(&policy, vec![att("keyA.pub", VULN, passing())], NOW);
    assert_eq!(
        codes(&v),
        ["vulnerability-too-severe", "vulnerability-too-severe"]
    );
    let messages: Vec<&str> = v.findings.iter().map(|f| f.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("CVE-2025-12183 HIGH in org.lz4:lz4-java 1.8.0")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("CVE-2025-66566 HIGH in org.lz4:lz4-java 1.8.0")),
        "{messages:?}"
    );
}

/// The fixtures exactly as `trivy convert` wrote them: `scanFinishedOn` is the conversion time,
/// and the OpenSearch report's own `CreatedAt` (2026-02-06T23:54:26Z) is when it was scanned.
#[test]
fn a_converted_report_is_as_old_as_its_scan_not_its_conversion() {
    let policy = load(VULN_SCOPE);
    let an_hour_later = SCANNED + 3600;
    let v = judge(
        &policy,
        vec![att("keyA.pub", VULN, fixture(PASSING_SCAN))],
        an_hour_later,
    );
    assert_eq!(codes(&v), ["vulnerability-scan-too-old"], "{v:?}");
    assert!(
        v.findings[0]
            .message
            .contains("its report was created at 2026-02-06T23:54:26Z"),
        "{:?}",
        v.findings
    );
    let within_a_year = load(&VULN_SCOPE.replace("maxScanAge: 7d", "maxScanAge: 365d"));
    let v = judge(
        &within_a_year,
        vec![att("keyA.pub", VULN, fixture(PASSING_SCAN))],
        an_hour_later,
    );
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
    // 2026-02-06T23:54:26Z + 365 days, and one second.
    assert_eq!(v.valid_until, Some(1_770_422_066 + 365 * 86_400 + 1));

    // The Grafana report (trimmed upstream) has no CreatedAt: scanFinishedOn is all there is.
    let v = judge(
        &policy,
        vec![att("keyA.pub", VULN, fixture(CRITICAL_SCAN))],
        an_hour_later,
    );
    assert!(
        codes(&v).iter().all(|c| *c == "vulnerability-too-severe"),
        "{v:?}"
    );

    // Go's zero time means "never set"; any other CreatedAt that is not a time is refused.
    let mut zero = passing();
    zero["scanner"]["result"]["CreatedAt"] = json!("0001-01-01T00:00:00Z");
    let v = judge(&policy, vec![att("keyA.pub", VULN, zero)], NOW);
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
    for bad in [json!("yesterday"), json!(1_770_422_066)] {
        let mut p = passing();
        p["scanner"]["result"]["CreatedAt"] = bad;
        let v = judge(&policy, vec![att("keyA.pub", VULN, p)], NOW);
        assert_eq!(codes(&v), ["vulnerability-report-invalid"], "{v:?}");
        assert!(v.findings[0].message.contains("CreatedAt"), "{v:?}");
    }
}

#[test]
fn allow_list_entries_expire() {
    let scope = r#"    attestations:
      - type: vuln
        keys: [scanner]
        vulnerabilities:
          maxSeverity: high
          allow:
            - id: CVE-2025-41115
              until: "2026-12-05T00:00:00Z"
              reason: "SCIM provisioning is off; 12.2.2 rolls out this week"
            - id: CVE-2025-68121
              until: "2026-12-05T00:00:00Z"
"#;
    let policy = load(scope);
    let atts = || vec![att("keyA.pub", VULN, critical())];
    let allowed = judge(&policy, atts(), NOW);
    assert_eq!(allowed.decision, Decision::Allow, "{allowed:?}");
    // The verdict must not outlive the allow-list entries.
    let until = 1_796_428_800;
    assert_eq!(allowed.valid_until, Some(until));

    let expired = judge(&policy, atts(), until);
    assert_eq!(expired.decision, Decision::Deny);
    assert_eq!(
        codes(&expired),
        ["vulnerability-too-severe", "vulnerability-too-severe"]
    );
    assert!(
        expired.findings[0]
            .message
            .contains("its allow-list entry expired at 2026-12-05T00:00:00Z"),
        "{:?}",
        expired.findings
    );

    // An entry covers its own CVE only: the other CRITICAL one still denies.
    let one = load(&scope.replace("- id: CVE-2025-68121", "- id: CVE-2099-0001"));
    let v = judge(&one, atts(), NOW);
    assert_eq!(codes(&v), ["vulnerability-too-severe"], "{v:?}");
    assert!(
        v.findings[0]
            .message
            .contains("CVE-2025-68121 CRITICAL in stdlib v1.24.6"),
        "{:?}",
        v.findings
    );
}

#[test]
fn a_scan_too_old_or_without_a_time_is_denied() {
    let policy = load(VULN_SCOPE);
    let later = NOW + 8 * 86_400;
    let old = judge(&policy, vec![att("keyA.pub", VULN, passing())], later);
    assert_eq!(codes(&old), ["vulnerability-scan-too-old"]);
    assert!(old.findings[0].message.contains("older than 7d"));
    assert!(old.findings[0]
        .message
        .contains("the scan finished at 2026-12-02T18:39:02Z"));

    let mut timeless = passing();
    timeless["metadata"] = json!({});
    let v = judge(&policy, vec![att("keyA.pub", VULN, timeless)], NOW);
    assert_eq!(codes(&v), ["vulnerability-scan-time-missing"]);
}

#[test]
fn a_scan_by_an_untrusted_signer_is_not_judged() {
    let policy = load(VULN_SCOPE);
    // keyB is the builder, not the scanner: its clean scan does not count.
    let v = judge(&policy, vec![att("keyB.pub", VULN, passing())], NOW);
    assert_eq!(v.decision, Decision::Deny);
    assert_eq!(codes(&v), ["attestation-untrusted"]);
    // A trusted clean scan beside an untrusted critical one allows.
    let v = judge(
        &policy,
        vec![
            att("keyB.pub", VULN, critical()),
            att("keyA.pub", VULN, passing()),
        ],
        NOW,
    );
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
}

#[test]
fn unknown_scanner_severities_count_as_critical() {
    let policy = load(VULN_SCOPE);
    let mut p = passing();
    p["scanner"]["result"]["Results"][0]["Vulnerabilities"][0]["Severity"] = json!("SEVERE");
    let v = judge(&policy, vec![att("keyA.pub", VULN, p)], NOW);
    assert_eq!(codes(&v), ["vulnerability-too-severe"]);
    assert!(
        v.findings[0]
            .message
            .contains("CVE-2025-8732 CRITICAL in libxml2"),
        "{:?}",
        v.findings
    );

    let mut broken = passing();
    broken["scanner"]["result"]["Results"] = json!("nope");
    let v = judge(&policy, vec![att("keyA.pub", VULN, broken)], NOW);
    assert_eq!(codes(&v), ["vulnerability-report-invalid"]);
}

/// What the real v0.2 provenance states (GitHub Actions via npm's slsa-provenance action).
const V02_SCOPE: &str = r#"    attestations:
      - type: slsaprovenance02
        keys: [builder]
        slsa:
          builderId: https://github.com/npm/slsa-provenance@0.0.1
          buildType: https://github.com/npm/slsa-provenance/gha@v0
          sourceRepository: https://github.com/github/slsa-provenance
          sourceRef: refs/heads/demo
"#;

#[test]
fn slsa_v02_real_provenance_matches_builder_type_source_and_ref() {
    let v = judge(
        &load(V02_SCOPE),
        vec![att("keyB.pub", V02, fixture(SLSA_V02_NPM))],
        NOW,
    );
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
    // `cosign attest --type slsaprovenance` names the same predicate type.
    let v = judge(
        &load(&V02_SCOPE.replace("slsaprovenance02", "slsaprovenance")),
        vec![att("keyB.pub", V02, fixture(SLSA_V02_NPM))],
        NOW,
    );
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
}

#[test]
fn slsa_v02_each_mismatch_is_denied_naming_what_failed() {
    let cases = [
        (
            "github/slsa-provenance\n",
            "attacker/slsa-provenance\n",
            "slsa-source-mismatch",
            "provenance source repository is \"https://github.com/github/slsa-provenance\", not \"https://github.com/attacker/slsa-provenance\"",
        ),
        (
            "sourceRef: refs/heads/demo",
            "sourceRef: refs/heads/main",
            "slsa-ref-mismatch",
            "provenance source ref is \"refs/heads/demo\", not \"refs/heads/main\"",
        ),
        (
            "slsa-provenance@0.0.1",
            "slsa-provenance@0.0.2",
            "slsa-builder-mismatch",
            "provenance builder id is \"https://github.com/npm/slsa-provenance@0.0.1\", not \"https://github.com/npm/slsa-provenance@0.0.2\"",
        ),
        (
            "gha@v0",
            "gha@v1",
            "slsa-build-type-mismatch",
            "provenance build type is \"https://github.com/npm/slsa-provenance/gha@v0\", not \"https://github.com/npm/slsa-provenance/gha@v1\"",
        ),
    ];
    for (from, to, code, message) in cases {
        let scope = V02_SCOPE.replace(from, to);
        assert_ne!(scope, V02_SCOPE, "{from}");
        let v = judge(
            &load(&scope),
            vec![att("keyB.pub", V02, fixture(SLSA_V02_NPM))],
            NOW,
        );
        assert_eq!(v.decision, Decision::Deny, "{code}");
        assert_eq!(codes(&v), [code], "{v:?}");
        assert!(
            v.findings[0].message.contains(message),
            "{code}: {:?}",
            v.findings
        );
    }
}

/// What the real v1 provenance states (GitHub-hosted runner, npm's sigstore 2.0.0).
const V1_SCOPE: &str = r#"    attestations:
      - type: slsaprovenance1
        keys: [builder]
        slsa:
          builderId: https://github.com/actions/runner/github-hosted
          buildType: https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1
          sourceRepository: git+https://github.com/sigstore/sigstore-js.git
          sourceRef: refs/heads/main
"#;

#[test]
fn slsa_v1_real_provenance_matches_builder_type_source_and_ref() {
    let real = || vec![att("keyB.pub", V1, fixture(SLSA_V1_NPM))];
    let v = judge(&load(V1_SCOPE), real(), NOW);
    assert_eq!(v.decision, Decision::Allow, "{v:?}");

    let v = judge(
        &load(&V1_SCOPE.replace("sigstore/sigstore-js", "sigstore/sigstore-go")),
        real(),
        NOW,
    );
    assert_eq!(codes(&v), ["slsa-source-mismatch"]);
    assert!(v.findings[0].message.contains(
        "source repository is \"https://github.com/sigstore/sigstore-js\", not \"git+https://github.com/sigstore/sigstore-go.git\""
    ));
    let v = judge(
        &load(&V1_SCOPE.replace("refs/heads/main", "refs/tags/v2.0.0")),
        real(),
        NOW,
    );
    assert_eq!(codes(&v), ["slsa-ref-mismatch"]);
    let v = judge(
        &load(&V1_SCOPE.replace("github-hosted", "self-hosted")),
        real(),
        NOW,
    );
    assert_eq!(codes(&v), ["slsa-builder-mismatch"]);
    assert!(v.findings[0]
        .message
        .contains("builder id is \"https://github.com/actions/runner/github-hosted\""));

    // A v0.2 statement does not satisfy a v1 requirement.
    let v = judge(
        &load(V1_SCOPE),
        vec![att("keyB.pub", V02, fixture(SLSA_V02_NPM))],
        NOW,
    );
    assert_eq!(codes(&v), ["attestation-missing"]);
}

/// npm's provenance states no finish time (its time is the transparency log's), so a
/// key-signed copy cannot satisfy `maxAge`; with `runDetails.metadata.finishedOn` added (the
/// field SLSA v1 defines) the bound applies.
#[test]
fn slsa_v1_max_age_needs_a_stated_time() {
    let scope = V1_SCOPE.replace("        slsa:\n", "        maxAge: 30d\n        slsa:\n");
    let v = judge(
        &load(&scope),
        vec![att("keyB.pub", V1, fixture(SLSA_V1_NPM))],
        NOW,
    );
    assert_eq!(v.decision, Decision::Deny, "{v:?}");
    assert_eq!(codes(&v)[0], "attestation-time-unknown", "{v:?}");

    let mut timed = fixture(SLSA_V1_NPM);
    timed["runDetails"]["metadata"]["finishedOn"] = json!("2026-12-01T00:00:00Z");
    let v = judge(&load(&scope), vec![att("keyB.pub", V1, timed.clone())], NOW);
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
    let v = judge(
        &load(&scope),
        vec![att("keyB.pub", V1, timed)],
        NOW + 40 * 86_400,
    );
    assert_eq!(codes(&v), ["attestation-too-old"]);
}

/// A key-signed scan's `maxAge` counts from the same instant as `maxScanAge`: the earlier of
/// `scanFinishedOn` (after `trivy convert`, the conversion time) and the report's `CreatedAt`.
#[test]
fn max_age_of_a_converted_scan_counts_from_its_report() {
    let scope =
        "    attestations:\n      - type: vuln\n        keys: [scanner]\n        maxAge: 7d\n";
    let fresh = judge(&load(scope), vec![att("keyA.pub", VULN, passing())], NOW);
    assert_eq!(fresh.decision, Decision::Allow, "{fresh:?}");

    let mut converted = passing();
    converted["scanner"]["result"]["CreatedAt"] = json!("2026-11-01T00:00:00Z");
    let v = judge(&load(scope), vec![att("keyA.pub", VULN, converted)], NOW);
    assert_eq!(codes(&v), ["attestation-too-old"], "{v:?}");

    let mut broken = passing();
    broken["scanner"]["result"]["CreatedAt"] = json!("yesterday");
    let v = judge(&load(scope), vec![att("keyA.pub", VULN, broken)], NOW);
    assert_eq!(codes(&v)[0], "attestation-time-unknown", "{v:?}");
}

fn cel_scope(expression: &str) -> String {
    format!(
        "    attestations:\n      - type: vuln\n        keys: [scanner]\n        conditions:\n          - expression: '{expression}'\n            message: scanned by trivy\n"
    )
}

#[test]
fn cel_conditions_true_false_and_errors() {
    let atts = || vec![att("keyA.pub", VULN, critical())];
    let ok = load(&cel_scope(
        "predicate.scanner.uri.startsWith(\"pkg:github/aquasecurity/trivy@\") && subject.exists(s, s.name == \"registry.example.com/app\") && config.config.User != \"root\"",
    ));
    assert_eq!(judge(&ok, atts(), NOW).decision, Decision::Allow);

    let no_critical = load(&cel_scope(
        "predicate.scanner.result.Results.all(r, r.Vulnerabilities.all(v, v.Severity != \"CRITICAL\"))",
    ));
    let v = judge(&no_critical, atts(), NOW);
    assert_eq!(codes(&v), ["attestation-condition-failed"]);
    assert!(v.findings[0].message.starts_with(VULN), "{:?}", v.findings);
    assert!(v.findings[0].message.contains("scanned by trivy"));

    // An evaluation error (a missing field) denies: fail closed.
    let error = load(&cel_scope("predicate.scanner.nothing == 1"));
    let v = judge(&error, atts(), NOW);
    assert_eq!(v.decision, Decision::Deny);
    assert_eq!(codes(&v), ["attestation-condition-error"]);
    assert!(
        v.findings[0].message.contains("nothing"),
        "{:?}",
        v.findings
    );

    // A non-boolean result is an error too.
    let v = judge(&load(&cel_scope("predicate.scanner.uri")), atts(), NOW);
    assert_eq!(codes(&v), ["attestation-condition-error"]);
}

#[test]
fn cel_cost_bounds() {
    // Two independent comprehensions over a long list: the estimate refuses to run it.
    let policy = load(&cel_scope(
        "predicate.l.all(x, predicate.l.exists(y, x == y))",
    ));
    let long: Vec<i64> = (0..20_000).collect();
    let v = judge(
        &policy,
        vec![att("keyA.pub", VULN, json!({"l": long}))],
        NOW,
    );
    assert_eq!(codes(&v), ["attestation-condition-too-costly"]);
    assert!(v.findings[0].message.contains("cost limit"));
    // The same over a short list runs.
    let v = judge(
        &policy,
        vec![att("keyA.pub", VULN, json!({"l": [1, 2, 3]}))],
        NOW,
    );
    assert_eq!(v.decision, Decision::Allow, "{v:?}");

    // Three independent levels are refused at load.
    let text = format!(
        "keys:\n  scanner:\n    path: keys/keyA.pub\nscopes:\n  \"r.io/a\":\n    accept: true\n{}",
        cel_scope("predicate.l.all(x, predicate.l.all(y, predicate.l.all(z, x == z)))")
    );
    let d = lint("p.yaml", &text, &loader);
    assert!(
        d.iter().any(|d| d.code == "cel-too-costly"
            && d.severity == Severity::Error
            && d.message.contains("nested more than 2")),
        "{d:?}"
    );
    let long_expr = format!("predicate.a == \"{}\"", "x".repeat(3000));
    let d = lint(
        "p.yaml",
        &text.replace(
            "predicate.l.all(x, predicate.l.all(y, predicate.l.all(z, x == z)))",
            &long_expr,
        ),
        &loader,
    );
    assert!(
        d.iter()
            .any(|d| d.code == "cel-too-costly" && d.message.contains("bytes")),
        "{d:?}"
    );
}

#[test]
fn a_bad_expression_is_a_lint_error_with_its_position() {
    let text = "keys:\n  scanner:\n    path: keys/keyA.pub\nscopes:\n  \"r.io/a\":\n    accept: true\n    attestations:\n      - type: vuln\n        keys: [scanner]\n        conditions:\n          - expression: 'predicate.a == && true'\n";
    let d = lint("p.yaml", text, &loader);
    let e = d
        .iter()
        .find(|d| d.code == "cel-syntax-error")
        .unwrap_or_else(|| panic!("{d:?}"));
    assert_eq!(e.severity, Severity::Error);
    assert_eq!(e.line, Some(11));
    // The expression starts at column 26; the parser points inside it.
    let col = e.column.unwrap();
    assert!(col > 26 && col <= 26 + 22, "column {col}: {e}");
    assert!(e.message.contains("of the expression"), "{e}");
    assert_eq!(
        e.path,
        "scopes.\"r.io/a\".attestations[0].conditions[0].expression"
    );

    let unknown = text.replace("predicate.a == && true", "pred.a == 1");
    let d = lint("p.yaml", &unknown, &loader);
    assert!(
        d.iter()
            .any(|d| d.code == "cel-unknown-variable" && d.message.contains("\"pred\"")),
        "{d:?}"
    );
}

#[test]
fn lint_checks_types_shortcuts_and_signers() {
    let base = "keys:\n  scanner:\n    path: keys/keyA.pub\nscopes:\n  \"r.io/a\":\n    accept: true\n    attestations:\n";
    let cases = [
        ("      - type: nonsense\n        keys: [scanner]\n", "invalid-attestation-type"),
        (
            "      - type: cyclonedx\n        keys: [scanner]\n        vulnerabilities: {maxSeverity: high}\n",
            "shortcut-type-mismatch",
        ),
        (
            "      - type: vuln\n        keys: [scanner]\n        slsa: {builderId: x}\n",
            "shortcut-type-mismatch",
        ),
        ("      - type: vuln\n        keys: [nobody]\n", "unknown-key"),
        (
            "      - type: vuln\n        keys: [scanner]\n        threshold: 2\n",
            "threshold-invalid",
        ),
        (
            "      - type: vuln\n        keys: [scanner]\n        vulnerabilities:\n          maxSeverity: low\n          allow: [{id: CVE-1, until: tomorrow}]\n",
            "invalid-date",
        ),
        (
            "      - type: vuln\n        keys: [scanner]\n        maxAge: forever\n",
            "invalid-duration",
        ),
    ];
    for (entry, code) in cases {
        let d = lint("p.yaml", &format!("{base}{entry}"), &loader);
        assert!(
            d.iter()
                .any(|d| d.code == code && d.severity == Severity::Error),
            "{code}: {d:?}"
        );
    }
    // An allow-list entry must say when it expires.
    let d = lint(
        "p.yaml",
        &format!("{base}      - type: vuln\n        keys: [scanner]\n        vulnerabilities:\n          maxSeverity: low\n          allow: [{{id: CVE-1}}]\n"),
        &loader,
    );
    assert!(d.iter().any(|d| d.message.contains("until")), "{d:?}");
}

#[test]
fn explain_lists_attestation_requirements() {
    let policy = load(VULN_SCOPE);
    let e = explain(&policy, &"registry.example.com/app:1".parse().unwrap());
    let text = e.requirements.join("\n");
    assert!(
        text.contains(
            "attestation https://cosign.sigstore.dev/attestation/vuln/v1 signed by 1 of [scanner]"
        ),
        "{text}"
    );
    assert!(text.contains("vulnerabilities: none above HIGH"), "{text}");
    assert!(
        text.contains("CVE-2023-0001 allowed until 2030-01-01T00:00:00Z"),
        "{text}"
    );
    assert!(policy.needs_attestations(&"registry.example.com/app:1".parse().unwrap()));
    assert!(!policy.needs_config_json(&"registry.example.com/app:1".parse().unwrap()));
    assert!(!policy.needs_attestations(&"other.io/x:1".parse().unwrap()));
}

#[test]
fn the_schema_describes_attestations() {
    let schema = signet_policy::json_schema();
    for word in [
        "attestations",
        "vulnerabilities",
        "maxSeverity",
        "sourceRepository",
        "expression",
    ] {
        assert!(schema.contains(word), "{word}");
    }
    let on_disk = std::fs::read_to_string(testdata().join("../docs/policy.schema.json")).unwrap();
    assert_eq!(on_disk, schema, "docs/policy.schema.json is stale");
}

#[test]
fn attestation_thresholds_count_distinct_signers() {
    let scope = r#"    attestations:
      - type: vuln
        keys: [scanner, builder]
        threshold: 2
        vulnerabilities:
          maxSeverity: high
"#;
    let policy = load(scope);
    let one = judge(&policy, vec![att("keyA.pub", VULN, passing())], NOW);
    assert_eq!(codes(&one), ["threshold-not-met"], "{one:?}");
    // The second signer's scan finds the CVE: it does not count, and the CVE is named.
    let v = judge(
        &policy,
        vec![
            att("keyA.pub", VULN, passing()),
            att("keyB.pub", VULN, critical()),
        ],
        NOW,
    );
    assert!(codes(&v).contains(&"threshold-not-met"), "{v:?}");
    assert!(codes(&v).contains(&"vulnerability-too-severe"), "{v:?}");
    let both = judge(
        &policy,
        vec![
            att("keyA.pub", VULN, passing()),
            att("keyB.pub", VULN, passing()),
        ],
        NOW,
    );
    assert_eq!(both.decision, Decision::Allow, "{both:?}");
}

#[test]
fn a_newer_critical_scan_denies_beside_an_older_clean_one() {
    let policy = load(VULN_SCOPE);
    // Both within maxScanAge (7d) at NOW (2026-12-03T00:00:00Z).
    let older_clean = att(
        "keyA.pub",
        VULN,
        scan_at(PASSING_SCAN, "2026-11-30T00:00:00Z"),
    );
    let newer_critical = att(
        "keyA.pub",
        VULN,
        scan_at(CRITICAL_SCAN, "2026-12-02T12:00:00Z"),
    );
    for atts in [
        vec![older_clean.clone(), newer_critical.clone()],
        vec![newer_critical.clone(), older_clean.clone()],
    ] {
        let v = judge(&policy, atts, NOW);
        assert_eq!(v.decision, Decision::Deny, "{v:?}");
        assert!(
            codes(&v).iter().all(|c| *c == "vulnerability-too-severe"),
            "{v:?}"
        );
        assert!(
            v.findings
                .iter()
                .any(|f| f.message.contains("CVE-2025-41115 CRITICAL")),
            "{v:?}"
        );
    }

    // Two clean scans: allowed, valid until the older one grows too old.
    let two_clean = judge(
        &policy,
        vec![
            older_clean.clone(),
            att(
                "keyA.pub",
                VULN,
                scan_at(PASSING_SCAN, "2026-12-02T12:00:00Z"),
            ),
        ],
        NOW,
    );
    assert_eq!(two_clean.decision, Decision::Allow, "{two_clean:?}");

    // A critical scan too old to count is set aside, not judged: the current clean one holds.
    let stale_critical = att(
        "keyA.pub",
        VULN,
        scan_at(CRITICAL_SCAN, "2026-11-01T00:00:00Z"),
    );
    let v = judge(&policy, vec![stale_critical.clone(), older_clean], NOW);
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
    // Alone, it denies as too old (its other failures are reported beside).
    let v = judge(&policy, vec![stale_critical], NOW);
    assert_eq!(v.decision, Decision::Deny, "{v:?}");
    assert_eq!(codes(&v)[0], "vulnerability-scan-too-old", "{v:?}");

    // An untrusted signer's critical scan is never judged: the trusted clean scan holds.
    let untrusted_scope = r#"    attestations:
      - type: vuln
        keys: [builder]
        vulnerabilities:
          maxSeverity: high
"#;
    let policy = load(untrusted_scope);
    let v = judge(
        &policy,
        vec![
            att("keyB.pub", VULN, passing()),
            att("keyA.pub", VULN, critical()),
        ],
        NOW,
    );
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
}

#[test]
fn a_failing_attestation_by_one_trusted_signer_denies_even_above_the_threshold() {
    let scope = r#"    attestations:
      - type: vuln
        keys: [scanner, builder]
        threshold: 1
        vulnerabilities:
          maxSeverity: high
"#;
    let policy = load(scope);
    let v = judge(
        &policy,
        vec![
            att("keyA.pub", VULN, passing()),
            att("keyB.pub", VULN, critical()),
        ],
        NOW,
    );
    assert_eq!(v.decision, Decision::Deny, "{v:?}");
    assert!(
        codes(&v).iter().all(|c| *c == "vulnerability-too-severe"),
        "{v:?}"
    );
    assert!(v.findings[0].message.contains("CVE-2025-41115"), "{v:?}");
}
