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
/// 2024-03-31T00:00:00Z: a day after the fixture scans finished.
const NOW: i64 = 1_711_843_200;

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
    let deny = judge(
        &policy,
        vec![att("keyA.pub", VULN, fixture("trivy-vuln-critical.json"))],
        NOW,
    );
    assert_eq!(deny.decision, Decision::Deny, "{deny:?}");
    assert_eq!(
        codes(&deny),
        ["vulnerability-too-severe", "vulnerability-too-severe"]
    );
    let messages: Vec<&str> = deny.findings.iter().map(|f| f.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("CVE-2024-3094 CRITICAL in xz-utils 5.6.0-0.2")),
        "{messages:?}"
    );
    assert!(messages
        .iter()
        .any(|m| m.contains("CVE-2024-3094 CRITICAL in liblzma5 5.6.0-0.2")));
    assert_eq!(
        deny.findings[0].rule,
        "scopes.\"registry.example.com/app\".attestations[0]"
    );

    let allow = judge(
        &policy,
        vec![att("keyA.pub", VULN, fixture("trivy-vuln-clean.json"))],
        NOW,
    );
    assert_eq!(allow.decision, Decision::Allow, "{allow:?}");
    // The scan (finished 2024-03-30T10:12:44Z) grows too old 7 days later.
    assert_eq!(allow.valid_until, Some(1_711_793_564 + 7 * 86_400 + 1));

    // No attestation at all, or only the plain evaluate: denied as missing.
    let none = judge(&policy, vec![], NOW);
    assert_eq!(codes(&none), ["attestation-missing"]);
    assert_eq!(
        codes(&evaluate(&policy, &evidence(), NOW)),
        ["attestation-missing"]
    );
}

#[test]
fn allow_list_entries_expire() {
    let scope = r#"    attestations:
      - type: vuln
        keys: [scanner]
        vulnerabilities:
          maxSeverity: high
          allow:
            - id: CVE-2024-3094
              until: "2024-04-01T00:00:00Z"
              reason: "backdoored build never deployed; rebuilding"
"#;
    let policy = load(scope);
    let atts = || vec![att("keyA.pub", VULN, fixture("trivy-vuln-critical.json"))];
    let allowed = judge(&policy, atts(), NOW);
    assert_eq!(allowed.decision, Decision::Allow, "{allowed:?}");
    // The verdict must not outlive the allow-list entry.
    assert_eq!(allowed.valid_until, Some(1_711_929_600));

    let expired = judge(&policy, atts(), 1_711_929_600);
    assert_eq!(expired.decision, Decision::Deny);
    assert!(expired
        .findings
        .iter()
        .all(|f| f.code == "vulnerability-too-severe"));
    assert!(
        expired.findings[0]
            .message
            .contains("its allow-list entry expired at 2024-04-01T00:00:00Z"),
        "{:?}",
        expired.findings
    );
}

#[test]
fn a_scan_too_old_or_without_a_time_is_denied() {
    let policy = load(VULN_SCOPE);
    let later = NOW + 8 * 86_400;
    let old = judge(
        &policy,
        vec![att("keyA.pub", VULN, fixture("trivy-vuln-clean.json"))],
        later,
    );
    assert_eq!(codes(&old), ["vulnerability-scan-too-old"]);
    assert!(old.findings[0].message.contains("older than 7d"));

    let mut timeless = fixture("trivy-vuln-clean.json");
    timeless["metadata"] = json!({});
    let v = judge(&policy, vec![att("keyA.pub", VULN, timeless)], NOW);
    assert_eq!(codes(&v), ["vulnerability-scan-time-missing"]);
}

#[test]
fn a_scan_by_an_untrusted_signer_is_not_judged() {
    let policy = load(VULN_SCOPE);
    // keyB is the builder, not the scanner: its clean scan does not count.
    let v = judge(
        &policy,
        vec![att("keyB.pub", VULN, fixture("trivy-vuln-clean.json"))],
        NOW,
    );
    assert_eq!(v.decision, Decision::Deny);
    assert_eq!(codes(&v), ["attestation-untrusted"]);
    // A trusted clean scan beside an untrusted critical one allows.
    let v = judge(
        &policy,
        vec![
            att("keyB.pub", VULN, fixture("trivy-vuln-critical.json")),
            att("keyA.pub", VULN, fixture("trivy-vuln-clean.json")),
        ],
        NOW,
    );
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
}

#[test]
fn unknown_scanner_severities_count_as_critical() {
    let policy = load(VULN_SCOPE);
    let mut p = fixture("trivy-vuln-clean.json");
    p["scanner"]["result"]["Results"][0]["Vulnerabilities"][0]["Severity"] = json!("SEVERE");
    let v = judge(&policy, vec![att("keyA.pub", VULN, p)], NOW);
    assert_eq!(codes(&v), ["vulnerability-too-severe"]);
    assert!(v.findings[0]
        .message
        .contains("CVE-2023-50495 CRITICAL in ncurses-base"));

    let mut broken = fixture("trivy-vuln-clean.json");
    broken["scanner"]["result"]["Results"] = json!("nope");
    let v = judge(&policy, vec![att("keyA.pub", VULN, broken)], NOW);
    assert_eq!(codes(&v), ["vulnerability-report-invalid"]);
}

#[test]
fn slsa_v02_builder_and_source() {
    let good = r#"    attestations:
      - type: slsaprovenance02
        keys: [builder]
        slsa:
          builderId: https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v1.10.0
          sourceRepository: https://github.com/example-org/app
          sourceRef: refs/heads/main
          buildType: https://github.com/slsa-framework/slsa-github-generator/container@v1
"#;
    let v = judge(
        &load(good),
        vec![att("keyB.pub", V02, fixture("slsa-v0.2.json"))],
        NOW,
    );
    assert_eq!(v.decision, Decision::Allow, "{v:?}");

    let other = good.replace("example-org/app", "attacker/app");
    let v = judge(
        &load(&other),
        vec![att("keyB.pub", V02, fixture("slsa-v0.2.json"))],
        NOW,
    );
    assert_eq!(codes(&v), ["slsa-source-mismatch"]);
    assert!(v.findings[0]
        .message
        .contains("source repository is \"https://github.com/example-org/app\", not \"https://github.com/attacker/app\""));

    let builder = good.replace("v1.10.0", "v1.9.0");
    let v = judge(
        &load(&builder),
        vec![att("keyB.pub", V02, fixture("slsa-v0.2.json"))],
        NOW,
    );
    assert_eq!(codes(&v), ["slsa-builder-mismatch"]);
}

#[test]
fn slsa_v1_builder_source_and_ref() {
    let scope = r#"    attestations:
      - type: slsaprovenance1
        keys: [builder]
        maxAge: 30d
        slsa:
          builderId: https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.0.0
          sourceRepository: git+https://github.com/example-org/app.git
          sourceRef: refs/tags/v1.4.2
"#;
    let v = judge(
        &load(scope),
        vec![att("keyB.pub", V1, fixture("slsa-v1.json"))],
        NOW + 3 * 86_400,
    );
    assert_eq!(v.decision, Decision::Allow, "{v:?}");
    let v = judge(
        &load(&scope.replace("refs/tags/v1.4.2", "refs/heads/main")),
        vec![att("keyB.pub", V1, fixture("slsa-v1.json"))],
        NOW + 3 * 86_400,
    );
    assert_eq!(codes(&v), ["slsa-ref-mismatch"]);
    // maxAge reads runDetails.metadata.finishedOn (2024-04-02T09:17:41Z).
    let v = judge(
        &load(scope),
        vec![att("keyB.pub", V1, fixture("slsa-v1.json"))],
        NOW + 3 * 86_400 + 40 * 86_400,
    );
    assert_eq!(codes(&v), ["attestation-too-old"]);
    // A v0.2 statement does not satisfy a v1 requirement.
    let v = judge(
        &load(scope),
        vec![att("keyB.pub", V02, fixture("slsa-v0.2.json"))],
        NOW + 3 * 86_400,
    );
    assert_eq!(codes(&v), ["attestation-missing"]);
}

fn cel_scope(expression: &str) -> String {
    format!(
        "    attestations:\n      - type: vuln\n        keys: [scanner]\n        conditions:\n          - expression: '{expression}'\n            message: scanned by trivy\n"
    )
}

#[test]
fn cel_conditions_true_false_and_errors() {
    let atts = || vec![att("keyA.pub", VULN, fixture("trivy-vuln-critical.json"))];
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
    let one = judge(
        &policy,
        vec![att("keyA.pub", VULN, fixture("trivy-vuln-clean.json"))],
        NOW,
    );
    assert_eq!(codes(&one), ["threshold-not-met"], "{one:?}");
    // The second signer's scan finds the CVE: it does not count, and the CVE is named.
    let v = judge(
        &policy,
        vec![
            att("keyA.pub", VULN, fixture("trivy-vuln-clean.json")),
            att("keyB.pub", VULN, fixture("trivy-vuln-critical.json")),
        ],
        NOW,
    );
    assert!(codes(&v).contains(&"threshold-not-met"), "{v:?}");
    assert!(codes(&v).contains(&"vulnerability-too-severe"), "{v:?}");
    let both = judge(
        &policy,
        vec![
            att("keyA.pub", VULN, fixture("trivy-vuln-clean.json")),
            att("keyB.pub", VULN, fixture("trivy-vuln-clean.json")),
        ],
        NOW,
    );
    assert_eq!(both.decision, Decision::Allow, "{both:?}");
}

/// A scan fixture whose `metadata.scanFinishedOn` is moved to `finished`.
fn scan_at(name: &str, finished: &str) -> Value {
    let mut p = fixture(name);
    p["metadata"]["scanFinishedOn"] = json!(finished);
    p
}

#[test]
fn a_newer_critical_scan_denies_beside_an_older_clean_one() {
    let policy = load(VULN_SCOPE);
    // Both within maxScanAge (7d) at NOW (2024-03-31T00:00:00Z).
    let older_clean = att(
        "keyA.pub",
        VULN,
        scan_at("trivy-vuln-clean.json", "2024-03-28T00:00:00Z"),
    );
    let newer_critical = att(
        "keyA.pub",
        VULN,
        scan_at("trivy-vuln-critical.json", "2024-03-30T12:00:00Z"),
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
                .any(|f| f.message.contains("CVE-2024-3094 CRITICAL")),
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
                scan_at("trivy-vuln-clean.json", "2024-03-30T12:00:00Z"),
            ),
        ],
        NOW,
    );
    assert_eq!(two_clean.decision, Decision::Allow, "{two_clean:?}");

    // A critical scan too old to count is set aside, not judged: the current clean one holds.
    let stale_critical = att(
        "keyA.pub",
        VULN,
        scan_at("trivy-vuln-critical.json", "2024-03-01T00:00:00Z"),
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
            att("keyB.pub", VULN, fixture("trivy-vuln-clean.json")),
            att("keyA.pub", VULN, fixture("trivy-vuln-critical.json")),
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
            att("keyA.pub", VULN, fixture("trivy-vuln-clean.json")),
            att("keyB.pub", VULN, fixture("trivy-vuln-critical.json")),
        ],
        NOW,
    );
    assert_eq!(v.decision, Decision::Deny, "{v:?}");
    assert!(
        codes(&v).iter().all(|c| *c == "vulnerability-too-severe"),
        "{v:?}"
    );
    assert!(v.findings[0].message.contains("CVE-2024-3094"), "{v:?}");
}
