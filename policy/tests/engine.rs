//! Table-driven tests of the policy engine through `load`, `explain` and `evaluate`, on the sample
//! policies in testdata/policies and on inline ones.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a program's output, not a library's
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use signet_oci::Reference;
use signet_policy::{
    evaluate, explain, lint, ConfigFacts, Decision, Diagnostic, Evidence, KeyId, Mode, Policy,
    PublicKey, Severity, SignatureEvidence,
};

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/policies")
}

fn loader(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(testdata().join(path)).map_err(|e| e.to_string())
}

fn load(text: &str) -> Policy {
    match Policy::load("test.yaml", text, &loader) {
        Ok(l) => l.policy,
        Err(e) => panic!("{e}"),
    }
}

fn load_file(name: &str) -> Policy {
    let text = std::fs::read_to_string(testdata().join(name)).unwrap();
    match Policy::load(name, &text, &loader) {
        Ok(l) => l.policy,
        Err(e) => panic!("{e}"),
    }
}

fn key_id(file: &str) -> KeyId {
    PublicKey::from_pem(&loader(&format!("keys/{file}")).unwrap())
        .unwrap()
        .id()
        .clone()
}

fn r(s: &str) -> Reference {
    s.parse().unwrap()
}

const D8C: &str = "sha256:8c60e41c50b8e88f4260816a551db9f5a409729368197a61cc08789a9f14ce8b";
/// 2026-11-29T00:00:00Z
const NOW: i64 = 1_795_910_400;

/// A signature by `key` (file in testdata/policies/keys) for `identity`.
fn sig(key: &str, identity: &str) -> SignatureEvidence {
    SignatureEvidence::legacy_key(key_id(key), identity.to_string(), true, BTreeMap::new())
}

fn evidence(reference: &str, sigs: Vec<SignatureEvidence>) -> Evidence {
    let reference = r(reference);
    Evidence {
        reference_had_digest: reference.digest().is_some(),
        digest: reference
            .digest()
            .cloned()
            .unwrap_or_else(|| D8C.parse().unwrap()),
        reference,
        signatures: sigs,
        configs: vec![],
    }
}

/// Evaluate and compare decision, scope and the finding codes (sorted).
fn check(
    policy: &Policy,
    ev: &Evidence,
    now: i64,
    decision: Decision,
    scope: &str,
    codes: &[&str],
) {
    let v = evaluate(policy, ev, now);
    let mut got: Vec<&str> = v.findings.iter().map(|f| f.code).collect();
    got.sort_unstable();
    got.dedup();
    let mut want = codes.to_vec();
    want.sort_unstable();
    assert_eq!(
        (v.decision, v.scope.as_str(), got),
        (decision, scope, want),
        "{} with {} signature(s): {:#?}",
        ev.reference,
        ev.signatures.len(),
        v.findings
    );
}

#[test]
fn skopeo_fixture_verdicts_match_skopeo() {
    let p = load_file("skopeo-fixture.json");
    let app_v1 = "127.0.0.1:5000/test/app:v1";
    let good = || vec![sig("keyA.pub", app_v1)];
    // ACCEPT: tagged image, exact identity.
    check(
        &p,
        &evidence(app_v1, good()),
        NOW,
        Decision::Allow,
        "127.0.0.1:5000",
        &[],
    );
    // ACCEPT: by digest, same repository.
    let by_digest = format!("127.0.0.1:5000/test/app@{D8C}");
    check(
        &p,
        &evidence(&by_digest, good()),
        NOW,
        Decision::Allow,
        "127.0.0.1:5000",
        &[],
    );
    // REJECT: keyB does not verify the signature, so the verifier reports no signatures.
    check(
        &p,
        &evidence(app_v1, vec![]),
        NOW,
        Decision::Deny,
        "127.0.0.1:5000",
        &["no-valid-signature"],
    );
    // REJECT: signature copied to another repository.
    check(
        &p,
        &evidence("127.0.0.1:5000/test/moved:v1", good()),
        NOW,
        Decision::Deny,
        "127.0.0.1:5000",
        &["identity-mismatch", "no-valid-signature"],
    );
    // REJECT: signature attached to a different image (digest mismatch).
    let mut mismatch = good();
    mismatch[0].manifest_digest_matches = false;
    check(
        &p,
        &evidence("127.0.0.1:5000/test/mismatch:v1", mismatch),
        NOW,
        Decision::Deny,
        "127.0.0.1:5000",
        &["no-valid-signature"],
    );
    // sigstore-rs signature of test/rssigned.
    let rs = "127.0.0.1:5000/test/rssigned:v1";
    check(
        &p,
        &evidence(rs, vec![sig("keyA.pub", rs)]),
        NOW,
        Decision::Allow,
        "127.0.0.1:5000",
        &[],
    );
    // Default reject for other registries.
    check(
        &p,
        &evidence("quay.io/x/y:1", vec![]),
        NOW,
        Decision::Deny,
        "default",
        &["rejected-by-policy"],
    );

    // ACCEPT with remapIdentity.
    let remap = load_file("skopeo-fixture-remap.json");
    check(
        &remap,
        &evidence("127.0.0.1:5000/test/moved:v1", good()),
        NOW,
        Decision::Allow,
        "127.0.0.1:5000",
        &[],
    );
}

#[test]
fn cosign_real_identity_table() {
    let p = load_file("cosign-real.json");
    let single = "192.168.64.2:5000/cosign-signed-single-sample";
    let valid = || vec![sig("cosign.pub", single)];
    check(
        &p,
        &evidence(single, valid()),
        NOW,
        Decision::Allow,
        "192.168.64.2:5000",
        &[],
    );
    // valid-2: two valid signatures by the same key.
    let two = vec![sig("cosign.pub", single), sig("cosign.pub", single)];
    check(
        &p,
        &evidence(single, two),
        NOW,
        Decision::Allow,
        "192.168.64.2:5000",
        &[],
    );
    // Wrong image ref: other scope (default reject) and, in-scope, identity mismatch.
    check(
        &p,
        &evidence("testing/manifest:notlatest", valid()),
        NOW,
        Decision::Deny,
        "default",
        &["rejected-by-policy"],
    );
    check(
        &p,
        &evidence("192.168.64.2:5000/this/does-not:match", valid()),
        NOW,
        Decision::Deny,
        "192.168.64.2:5000",
        &["identity-mismatch", "no-valid-signature"],
    );
    // mixed: the unknown-key signature never verifies, so only the valid one is evidence.
    check(
        &p,
        &evidence(single, valid()),
        NOW,
        Decision::Allow,
        "192.168.64.2:5000",
        &[],
    );
    // other-attachment: no signatures at all.
    check(
        &p,
        &evidence(single, vec![]),
        NOW,
        Decision::Deny,
        "192.168.64.2:5000",
        &["no-valid-signature"],
    );

    let exact = |rule: &str| {
        load(&format!(
            "keys: {{c: {{path: keys/cosign.pub}}}}\nscopes:\n  \"192.168.64.2:5000\":\n    signed: {{keys: [c], identity: {rule}}}\n"
        ))
    };
    // The signed identity has no tag: matchExact never matches it.
    check(
        &exact("matchExact"),
        &evidence(single, valid()),
        NOW,
        Decision::Deny,
        "192.168.64.2:5000",
        &["identity-mismatch", "no-valid-signature"],
    );
    let er = exact("{exactReference: {reference: \"this/does-not:match\"}}");
    check(
        &er,
        &evidence(single, valid()),
        NOW,
        Decision::Deny,
        "192.168.64.2:5000",
        &["identity-mismatch", "no-valid-signature"],
    );
    // valid-with-tag under matchExact.
    let tagged = "192.168.64.2:5000/skopeo-signed:tag";
    let me = exact("matchExact");
    check(
        &me,
        &evidence(tagged, vec![sig("cosign.pub", tagged)]),
        NOW,
        Decision::Allow,
        "192.168.64.2:5000",
        &[],
    );
    check(
        &me,
        &evidence(
            "192.168.64.2:5000/skopeo-signed:othertag",
            vec![sig("cosign.pub", tagged)],
        ),
        NOW,
        Decision::Deny,
        "192.168.64.2:5000",
        &["identity-mismatch", "no-valid-signature"],
    );
}

const SPECIFICITY: &str = r#"
default: {reject: "default"}
scopes:
  "reg.io": {reject: host}
  "reg.io/team": {reject: namespace}
  "reg.io/team/app": {reject: repository}
  "reg.io/team/app:v1": {reject: full}
  "reg.io/team/*": {reject: glob-one}
  "reg.io/**": {reject: glob-any}
  "*.io": {reject: domain}
  "*.reg.io": {reject: subdomain}
"#;

#[test]
fn most_specific_scope_wins() {
    let p = load(SPECIFICITY);
    let cases = [
        ("reg.io/team/app:v1", "reg.io/team/app:v1", 7),
        ("reg.io/team/app:v2", "reg.io/team/app", 6),
        ("reg.io/team/app/sub:v2", "reg.io/team/app", 5),
        ("reg.io/team/other:1", "reg.io/team/*", 5),
        ("reg.io/team/other/deep:1", "reg.io/team", 4),
        // `reg.io/**` has one more literal character than `reg.io`.
        ("reg.io/x/y:1", "reg.io/**", 3),
        // `*.domain` ignores the port, as containers/image does.
        ("reg.io:5000/x:1", "*.io", 1),
        ("a.reg.io/x:1", "*.reg.io", 2),
        ("quay.io/x:1", "*.io", 1),
        ("quay.com/x:1", "default", 0),
    ];
    for (reference, scope, candidates) in cases {
        let e = explain(&p, &r(reference));
        assert_eq!(e.scope, scope, "{reference}: {e:#?}");
        assert_eq!(e.candidates.len(), candidates, "{reference}: {e:#?}");
        assert!(e
            .candidates
            .first()
            .is_none_or(|c| c.selected && c.pattern == scope));
        let idx = p.select(&r(reference));
        assert_eq!(
            idx.and_then(|i| p.scope_pattern(i)).unwrap_or("default"),
            scope
        );
    }
    let e = explain(&p, &r("reg.io/team/app:v2"));
    assert_eq!(e.requirements, vec!["reject: repository"]);
    assert!(e.reason.contains("most specific of 6"), "{}", e.reason);
}

fn diagnostics(
    name: &str,
    text: &str,
) -> Vec<(Severity, &'static str, Option<usize>, Option<usize>)> {
    lint(name, text, &loader)
        .into_iter()
        .map(|d: Diagnostic| (d.severity, d.code, d.line, d.column))
        .collect()
}

#[test]
fn tied_scopes_are_errors() {
    let text = "scopes:\n  \"reg.io/a*/x\": {accept: true}\n  \"reg.io/*b/x\": {accept: true}\n";
    let d = diagnostics("tie.yaml", text);
    assert!(
        d.contains(&(Severity::Error, "tied-scopes", Some(2), Some(4))),
        "{d:?}"
    );
    // Equal specificity but disjoint: fine.
    let ok = "scopes:\n  \"reg.io/a*/x\": {accept: true}\n  \"reg.io/*b/y\": {accept: true}\n";
    assert!(!diagnostics("ok.yaml", ok)
        .iter()
        .any(|d| d.1 == "tied-scopes"));
}

fn policy_with(signed: &str) -> Policy {
    load(&format!(
        "keys:\n  a: {{path: keys/keyA.pub}}\n  b: {{path: keys/keyB.pub}}\n  c: {{path: keys/keyR.pub}}\n  old: {{path: keys/cosign.pub, notAfter: \"2026-06-01T00:00:00Z\"}}\nscopes:\n  reg.io/app:\n    signed: {signed}\n"
    ))
}

#[test]
fn thresholds_and_required_signers() {
    let p = policy_with("{keys: [a, b, c], threshold: 2, required: [a]}");
    let id = "reg.io/app:1";
    let cases: Vec<(Vec<&str>, Decision, Vec<&str>)> = vec![
        (vec!["keyA.pub", "keyB.pub"], Decision::Allow, vec![]),
        (vec!["keyA.pub", "keyR.pub"], Decision::Allow, vec![]),
        (
            vec!["keyA.pub", "keyB.pub", "keyR.pub"],
            Decision::Allow,
            vec![],
        ),
        (vec!["keyA.pub"], Decision::Deny, vec!["threshold-not-met"]),
        // Two signatures by one key are one signer.
        (
            vec!["keyA.pub", "keyA.pub"],
            Decision::Deny,
            vec!["threshold-not-met"],
        ),
        (
            vec!["keyB.pub", "keyR.pub"],
            Decision::Deny,
            vec!["required-signer-missing"],
        ),
        (
            vec![],
            Decision::Deny,
            vec!["no-valid-signature", "required-signer-missing"],
        ),
        // A key this rule does not list is ignored.
        (
            vec!["cosign2.pub", "keyA.pub"],
            Decision::Deny,
            vec!["threshold-not-met"],
        ),
    ];
    for (keys, decision, codes) in cases {
        let sigs = keys.iter().map(|k| sig(k, id)).collect();
        check(&p, &evidence(id, sigs), NOW, decision, "reg.io/app", &codes);
    }
}

#[test]
fn key_rotation_uses_the_injected_clock() {
    let p = policy_with("{keys: [old, a]}");
    let id = "reg.io/app:1";
    let before = 1_780_000_000; // 2026-05-28
    let after = 1_781_000_000; // 2026-06-09
    check(
        &p,
        &evidence(id, vec![sig("cosign.pub", id)]),
        before,
        Decision::Allow,
        "reg.io/app",
        &[],
    );
    check(
        &p,
        &evidence(id, vec![sig("cosign.pub", id)]),
        after,
        Decision::Deny,
        "reg.io/app",
        &["key-expired", "no-valid-signature"],
    );
    // The rotated-in key keeps working.
    check(
        &p,
        &evidence(id, vec![sig("cosign.pub", id), sig("keyA.pub", id)]),
        after,
        Decision::Allow,
        "reg.io/app",
        &[],
    );
}

#[test]
fn every_identity_rule() {
    let img = "reg.io/app:1";
    let cases: Vec<(&str, &str, &str, bool)> = vec![
        ("matchRepository", img, "reg.io/app:other", true),
        ("matchRepository", img, "reg.io/app", true),
        ("matchRepository", img, "reg.io/other:1", false),
        ("matchRepoDigestOrExact", img, "reg.io/app:1", true),
        ("matchRepoDigestOrExact", img, "reg.io/app:2", false),
        ("matchRepoDigestOrExact", img, "reg.io/app", false),
        ("matchExact", img, "reg.io/app:1", true),
        ("matchExact", img, "reg.io/app", false),
        (
            "{exactReference: {reference: \"reg.io/golden:1\"}}",
            img,
            "reg.io/golden:1",
            true,
        ),
        (
            "{exactReference: {reference: \"reg.io/golden:1\"}}",
            img,
            "reg.io/app:1",
            false,
        ),
        (
            "{exactRepository: {repository: reg.io/golden}}",
            img,
            "reg.io/golden:7",
            true,
        ),
        (
            "{exactRepository: {repository: reg.io/golden}}",
            img,
            "reg.io/app:1",
            false,
        ),
        (
            "{remapIdentity: {prefix: reg.io, signedPrefix: src.io/ns}}",
            img,
            "src.io/ns/app:1",
            true,
        ),
        (
            "{remapIdentity: {prefix: reg.io, signedPrefix: src.io/ns}}",
            img,
            "reg.io/app:1",
            false,
        ),
    ];
    for (identity, image, signed, accepted) in cases {
        let p = policy_with(&format!("{{keys: [a], identity: {identity}}}"));
        let v = evaluate(&p, &evidence(image, vec![sig("keyA.pub", signed)]), NOW);
        assert_eq!(
            v.decision == Decision::Allow,
            accepted,
            "{identity} {image} {signed}: {v:#?}"
        );
        if !accepted {
            assert!(v.findings.iter().any(|f| f.code == "identity-mismatch"));
        }
    }
}

#[test]
fn annotations_digest_pinning_and_modes() {
    let p = load(
        "keys: {a: {path: keys/keyA.pub}}\nscopes:\n  reg.io/app:\n    signed: {keys: [a], annotations: {pipeline: release}}\n    digest: pinned\n  reg.io/warn:\n    mode: warn\n    reject: no\n  reg.io/audit:\n    mode: audit\n    signed: {keys: [a]}\n",
    );
    let mut s = sig("keyA.pub", "reg.io/app:1");
    check(
        &p,
        &evidence("reg.io/app:1", vec![s.clone()]),
        NOW,
        Decision::Deny,
        "reg.io/app",
        &[
            "annotation-missing",
            "digest-not-pinned",
            "no-valid-signature",
        ],
    );
    s.annotations.insert("pipeline".into(), "release".into());
    check(
        &p,
        &evidence("reg.io/app:1", vec![s.clone()]),
        NOW,
        Decision::Deny,
        "reg.io/app",
        &["digest-not-pinned"],
    );
    let pinned = format!("reg.io/app@{D8C}");
    s.docker_reference = Some(pinned.clone());
    check(
        &p,
        &evidence(&pinned, vec![s]),
        NOW,
        Decision::Allow,
        "reg.io/app",
        &[],
    );

    let v = evaluate(&p, &evidence("reg.io/warn:1", vec![]), NOW);
    assert_eq!(
        (v.decision, v.mode, v.would_deny),
        (Decision::Allow, Mode::Warn, true)
    );
    assert_eq!(v.findings[0].code, "rejected-by-policy");
    assert_eq!(v.findings[0].rule, "scopes.\"reg.io/warn\".reject");
    let v = evaluate(&p, &evidence("reg.io/audit:1", vec![]), NOW);
    assert_eq!(
        (v.decision, v.mode, v.would_deny),
        (Decision::Allow, Mode::Audit, true)
    );
    let v = evaluate(
        &p,
        &evidence("reg.io/audit:1", vec![sig("keyA.pub", "reg.io/audit:1")]),
        NOW,
    );
    assert_eq!((v.decision, v.would_deny), (Decision::Allow, false));

    // A global mode applies to scopes without their own.
    let g = load("mode: warn\ndefault: {reject: nope}\n");
    let v = evaluate(&g, &evidence("reg.io/x:1", vec![]), NOW);
    assert_eq!(
        (v.decision, v.mode, v.would_deny),
        (Decision::Allow, Mode::Warn, true)
    );
    // No default at all: Signet's own default rejects.
    let none = load("scopes: {reg.io/x: {accept: true}}\n");
    check(
        &none,
        &evidence("reg.io/y:1", vec![]),
        NOW,
        Decision::Deny,
        "default (built-in reject)",
        &["rejected-by-policy"],
    );
}

fn config(json: &str) -> ConfigFacts {
    ConfigFacts::from_config_json(json.as_bytes()).unwrap()
}

#[test]
fn config_checks() {
    let p = load(
        "scopes:\n  reg.io/app:\n    accept: true\n    config: {forbidRootUser: true, forbidSecrets: true, maxAge: 90d, platforms: [linux/amd64, linux/arm64/v8]}\n  reg.io/plain:\n    accept: true\n",
    );
    assert!(p.needs_config(&r("reg.io/app:1")));
    assert!(!p.needs_config(&r("reg.io/plain:1")));
    let recent = "2026-11-01T00:00:00Z";
    let good = format!(
        r#"{{"created":"{recent}","os":"linux","architecture":"amd64","config":{{"User":"1000","Env":["PATH=/bin"]}}}}"#
    );
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (vec![good.clone()], vec![]),
        (
            vec![good.replace("\"1000\"", "\"root:root\"")],
            vec!["root-user"],
        ),
        (
            vec![good
                .replace(",\"Env\":[\"PATH=/bin\"]", "")
                .replace("\"User\":\"1000\"", "")],
            vec!["root-user"],
        ),
        (
            vec![good.replace("PATH=/bin", "DB_PASSWORD=hunter2")],
            vec!["secret-in-config"],
        ),
        (vec![good.replace("PATH=/bin", "DB_PASSWORD=")], vec![]),
        (
            vec![good.replace(recent, "2026-01-01T00:00:00Z")],
            vec!["image-too-old"],
        ),
        (
            vec![good.replace("\"created\":\"2026-11-01T00:00:00Z\",", "")],
            vec!["image-too-old"],
        ),
        (
            vec![good.replace("amd64", "s390x")],
            vec!["platform-not-allowed"],
        ),
        (
            vec![good.replace("amd64", "arm64\",\"variant\":\"v8")],
            vec![],
        ),
        (
            vec![good.replace("amd64", "arm64\",\"variant\":\"v7")],
            vec!["platform-not-allowed"],
        ),
        // Index: every child must pass.
        (
            vec![good.clone(), good.replace("\"1000\"", "\"0\"")],
            vec!["root-user"],
        ),
        (vec![], vec!["config-unavailable"]),
    ];
    for (configs, codes) in cases {
        let mut ev = evidence("reg.io/app:1", vec![]);
        ev.configs = configs.iter().map(|c| config(c)).collect();
        let decision = if codes.is_empty() {
            Decision::Allow
        } else {
            Decision::Deny
        };
        check(&p, &ev, NOW, decision, "reg.io/app", &codes);
    }
    // The secret value never appears in findings.
    let mut ev = evidence("reg.io/app:1", vec![]);
    ev.configs = vec![config(&good.replace("PATH=/bin", "DB_PASSWORD=hunter2"))];
    let text = serde_json::to_string(&evaluate(&p, &ev, NOW)).unwrap();
    assert!(
        text.contains("DB_PASSWORD") && !text.contains("hunter2"),
        "{text}"
    );
}

#[test]
fn malformed_policies_report_codes_and_positions() {
    let read = |f: &str| std::fs::read_to_string(testdata().join("malformed").join(f)).unwrap();
    let d = diagnostics("unknown-field.yaml", &read("unknown-field.yaml"));
    assert_eq!(
        d,
        vec![(Severity::Error, "unknown-field", Some(8), Some(7))]
    );
    let d = diagnostics("unknown-identity.yaml", &read("unknown-identity.yaml"));
    assert_eq!(
        d,
        vec![(Severity::Error, "unknown-identity-rule", Some(8), Some(17))]
    );
    let d = diagnostics("many-errors.yaml", &read("many-errors.yaml"));
    let want = vec![
        (Severity::Warning, "unused-key", Some(4), Some(3)),
        (Severity::Error, "key-unreadable", Some(5), Some(5)),
        (Severity::Warning, "unused-key", Some(6), Some(3)),
        (Severity::Error, "key-invalid-pem", Some(7), Some(5)),
        (Severity::Warning, "unused-key", Some(8), Some(3)),
        (Severity::Error, "key-invalid-pem", Some(9), Some(5)),
        (Severity::Error, "tied-scopes", Some(11), Some(4)),
        (Severity::Error, "unknown-key", Some(13), Some(23)),
        (Severity::Error, "threshold-invalid", Some(14), Some(7)),
        (Severity::Warning, "accept-anything", Some(16), Some(5)),
        (Severity::Error, "invalid-pattern", Some(17), Some(4)),
    ];
    assert_eq!(d, want);
    let err = Policy::load("many-errors.yaml", &read("many-errors.yaml"), &loader).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("many-errors.yaml:5:5: error[key-unreadable]"),
        "{text}"
    );

    let d = lint("not-supported.json", &read("not-supported.json"), &loader);
    let got: Vec<(&str, Option<usize>, &str)> = d
        .iter()
        .map(|d| (d.code, d.line, d.message.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "not-supported",
                Some(6),
                "not supported yet: signedBy (GPG signatures)"
            ),
            // fulcio with rekorPublicKeyPath (line 9) is supported now: no diagnostic.
            (
                "unknown-identity-rule",
                Some(12),
                "unknown signedIdentity type \"matchAnything\""
            ),
            (
                "unknown-field",
                Some(15),
                "unknown field \"extra\" in insecureAcceptAnything"
            ),
        ]
    );
}

#[test]
fn all_unknown_fields_and_semantic_errors_in_one_pass() {
    let text = "keys:\n  a:\n    path: keys/keyA.pub\n    colour: red\nscopes:\n  reg.io/x:\n    signed:\n      keys: [a, nope]\n      treshold: 1\n    confg: {}\n";
    let d = diagnostics("u.yaml", text);
    assert_eq!(
        d,
        vec![
            (Severity::Error, "unknown-field", Some(4), Some(5)),
            (Severity::Error, "unknown-key", Some(8), Some(17)),
            (Severity::Error, "unknown-field", Some(9), Some(7)),
            (Severity::Error, "unknown-field", Some(10), Some(5)),
        ]
    );
    let json = "{\"scopes\": {\"reg.io/x\": {\"accept\": true, \"bogus\": 1}}, \"extra\": 2}";
    let codes: Vec<&str> = lint("u.json", json, &loader)
        .iter()
        .map(|d| d.code)
        .collect();
    assert_eq!(
        codes,
        vec!["accept-anything", "unknown-field", "unknown-field"]
    );
}

#[test]
fn inline_semantic_errors() {
    let cases: &[(&str, &str)] = &[
        ("keys: {a: {path: keys/keyA.pub, pem: x}}\n", "key-source-invalid"),
        ("keys: {a: {path: keys/keyA.pub, notAfter: tomorrow}}\n", "invalid-date"),
        ("version: 2\n", "unsupported-version"),
        ("scopes: {reg.io/x: {}}\n", "missing-signature-rule"),
        ("scopes: {reg.io/x: {accept: true, reject: no}}\n", "conflicting-requirements"),
        ("keys: {a: {path: keys/keyA.pub}}\nscopes: {reg.io/x: {signed: {keys: [a], required: [b]}}}\n", "required-key-not-listed"),
        ("keys: {a: {path: keys/keyA.pub}}\nscopes: {reg.io/x: {signed: {keys: [a], threshold: 0}}}\n", "threshold-invalid"),
        ("keys: {a: {path: keys/keyA.pub}}\nscopes: {reg.io/x: {signed: {keys: [a], identity: {exactReference: {reference: busybox}}}}}\n", "invalid-identity"),
        ("scopes: {reg.io/x: {accept: true, config: {maxAge: soon}}}\n", "invalid-duration"),
        ("scopes: {reg.io/x: {accept: true, config: {platforms: [linux]}}}\n", "invalid-platform"),
        ("scopes: {reg.io/x: {accept: true, mode: loud}}\n", "unknown-variant"),
        ("scopes:\n  reg.io/x: {accept: true}\n  reg.io/x: {reject: no}\n", "duplicate-key"),
        // An unclosed flow sequence is a syntax error. (Reading the typed document straight from
        // the text used to report the type of the half-read value first, `invalid-value`.)
        ("scopes: [\n", "syntax"),
        ("scopes: []\n", "invalid-value"),
        ("version: -1\n", "invalid-value"),
        ("scopes: {reg.io/x: {signed: {threshold: 1}}}\n", "missing-field"),
        ("scopes: {reg.io/x: {signed: {keys: [a], identity: matchAll}}}\n", "unknown-identity-rule"),
        ("scopes: {reg.io/x: {signed: {keys: [a], identity: exactReference}}}\n", "invalid-value"),
        ("scopes: {reg.io/x: {accept: true, digest: loose}}\n", "unknown-variant"),
        ("{\"mode\": \"warn\", \"mode\": \"audit\"}", "duplicate-key"),
        ("keys: {a: {path: x}, a: {path: y}}\n", "duplicate-key"),
        ("scopes: {1: {accept: true}}\n", "invalid-value"),
        ("@reserved\n", "syntax"),
        ("{\"scopes\": {\"reg.io/x\": {\"accept\": true, \"bogus\": 1}}}", "unknown-field"),
        ("{\"scopes\": ", "syntax"),
    ];
    for (text, code) in cases {
        let d = lint("inline.yaml", text, &loader);
        assert!(
            d.iter()
                .any(|d| d.code == *code && d.severity == Severity::Error),
            "{text:?} should give {code}: {d:#?}"
        );
    }
    let warn = lint("w.yaml", "keys: {a: {path: keys/keyA.pub}, b: {path: keys/keyA.pub}}\nscopes: {busybox: {signed: {keys: [a]}}}\n", &loader);
    let codes: Vec<&str> = warn.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        vec![
            "unused-key",
            "duplicate-key-material",
            "pattern-not-normalized"
        ]
    );
}

#[test]
fn sample_policies_load_and_evaluate() {
    let p = load_file("signet-example.yaml");
    assert_eq!(p.trusted_keys().count(), 3);
    let e = explain(&p, &r("registry.example.com/prod/tools/debug:latest"));
    assert_eq!(e.scope, "registry.example.com/prod/tools/debug:latest");
    assert_eq!(e.candidates.len(), 2);
    let e = explain(&p, &r("eu.mirror.example.com/prod/api:1"));
    assert_eq!(e.scope, "*.mirror.example.com");
    let v = evaluate(
        &p,
        &evidence(
            "eu.mirror.example.com/prod/api:1",
            vec![sig("keyA.pub", "registry.example.com/prod/api:1")],
        ),
        NOW,
    );
    assert_eq!(v.decision, Decision::Allow, "{v:#?}");
    let json = load_file("signet-example.json");
    check(
        &json,
        &evidence(
            "127.0.0.1:5000/test/app:v1",
            vec![sig("keyA.pub", "127.0.0.1:5000/test/app:v1")],
        ),
        NOW,
        Decision::Allow,
        "127.0.0.1:5000/test",
        &[],
    );

    let podman = Policy::load(
        "podman-default.json",
        &std::fs::read_to_string(testdata().join("podman-default.json")).unwrap(),
        &loader,
    )
    .unwrap();
    let codes: Vec<&str> = podman.warnings.iter().map(|d| d.code).collect();
    assert_eq!(codes, vec!["accept-anything", "transport-ignored"]);
    check(
        &podman.policy,
        &evidence("quay.io/a/b:1", vec![]),
        NOW,
        Decision::Allow,
        "default",
        &[],
    );
}

#[test]
fn realistic_containers_policy() {
    let p = load_file("containers-realistic.json");
    assert_eq!(p.format(), signet_policy::Format::ContainersPolicy);
    let a = |id: &str| sig("keyA.pub", id);
    let b = |id: &str| sig("keyB.pub", id);
    // The docker "" scope overrides the global default.
    check(
        &p,
        &evidence("quay.io/x:1", vec![]),
        NOW,
        Decision::Deny,
        "default",
        &["rejected-by-policy"],
    );
    // keyPaths: either key.
    let img = "registry.example.com/other:1";
    check(
        &p,
        &evidence(img, vec![b(img)]),
        NOW,
        Decision::Allow,
        "registry.example.com",
        &[],
    );
    // Default identity is matchRepoDigestOrExact.
    check(
        &p,
        &evidence(img, vec![b("registry.example.com/other:2")]),
        NOW,
        Decision::Deny,
        "registry.example.com",
        &["identity-mismatch", "no-valid-signature"],
    );
    // Two requirements: both must hold (matchRepository by keyA and matchExact by keyA's keyData).
    let team = "registry.example.com/team/app:1";
    check(
        &p,
        &evidence(team, vec![a(team)]),
        NOW,
        Decision::Allow,
        "registry.example.com/team",
        &[],
    );
    check(
        &p,
        &evidence(team, vec![a("registry.example.com/team/app:0")]),
        NOW,
        Decision::Deny,
        "registry.example.com/team",
        &["identity-mismatch", "no-valid-signature"],
    );
    check(
        &p,
        &evidence(team, vec![b(team)]),
        NOW,
        Decision::Deny,
        "registry.example.com/team",
        &["no-valid-signature"],
    );
    // Full reference scope.
    check(
        &p,
        &evidence("registry.example.com/team/app:pinned", vec![]),
        NOW,
        Decision::Allow,
        "registry.example.com/team/app:pinned",
        &[],
    );
    // Domain wildcards, longest first; exactRepository / exactReference ignore the image name.
    let m = "eu.mirror.example.com/anything:1";
    check(
        &p,
        &evidence(m, vec![b("registry.example.com/base:stable")]),
        NOW,
        Decision::Allow,
        "*.mirror.example.com",
        &[],
    );
    check(
        &p,
        &evidence(m, vec![b("registry.example.com/base:other")]),
        NOW,
        Decision::Deny,
        "*.mirror.example.com",
        &["identity-mismatch", "no-valid-signature"],
    );
    let o = "other.example.com:5000/x:1";
    check(
        &p,
        &evidence(o, vec![b("registry.example.com/base:any")]),
        NOW,
        Decision::Allow,
        "*.example.com",
        &[],
    );

    // Converting and re-loading the Signet form gives the same verdicts.
    let text = std::fs::read_to_string(testdata().join("containers-realistic.json")).unwrap();
    let conv = signet_policy::containers::convert("containers-realistic.json", &text).unwrap();
    let yaml = serde_yaml_ng::to_string(&conv.document).unwrap();
    let again = Policy::load("converted.yaml", &yaml, &loader)
        .unwrap()
        .policy;
    for (reference, sigs) in [
        (team, vec![a(team)]),
        (team, vec![b(team)]),
        (img, vec![b(img)]),
        (m, vec![b("registry.example.com/base:stable")]),
        ("quay.io/x:1", vec![]),
    ] {
        let ev = evidence(reference, sigs);
        assert_eq!(
            evaluate(&p, &ev, NOW),
            evaluate(&again, &ev, NOW),
            "{reference}\n{yaml}"
        );
    }
}

#[test]
fn containers_policy_strictness() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"default": [{"type": "reject"}], "extra": 1}"#,
            "unknown-field",
        ),
        (r#"{"default": []}"#, "empty-requirements"),
        (r#"{"transports": {}}"#, "missing-field"),
        (r#"{"default": [{"type": "nope"}]}"#, "unknown-requirement"),
        (
            r#"{"default": [{"type": "sigstoreSigned"}]}"#,
            "missing-field",
        ),
        (
            r#"{"default": [{"type": "sigstoreSigned", "keyPath": "keys/keyA.pub", "keyData": "eA=="}]}"#,
            "ambiguous-key-source",
        ),
        (
            r#"{"default": [{"type": "sigstoreSigned", "keyPath": "keys/nope.pub"}]}"#,
            "key-unreadable",
        ),
        (
            r#"{"default": [{"type": "sigstoreSigned", "keyPath": "keys/some-rsa-key.pub"}]}"#,
            "key-invalid-pem",
        ),
        (
            r#"{"default": [{"type": "sigstoreSigned", "keyData": "!!!"}]}"#,
            "key-invalid-pem",
        ),
        (
            r#"{"default": [{"type": "sigstoreSigned", "keyPaths": []}]}"#,
            "invalid-value",
        ),
        (
            r#"{"default": [{"type": "sigstoreSigned", "keyPath": "keys/keyA.pub", "signedIdentity": {"type": "exactReference", "dockerReference": "busybox"}}]}"#,
            "invalid-identity",
        ),
        (
            r#"{"default": [{"type": "sigstoreSigned", "keyPath": "keys/keyA.pub", "signedIdentity": {"type": "remapIdentity", "prefix": "x"}}]}"#,
            "missing-field",
        ),
        (
            r#"{"default": [{"type": "reject"}], "default": [{"type": "reject"}]}"#,
            "duplicate-key",
        ),
        (
            r#"{"default": [{"type": "pki"}], "transports": {"docker": {"reg.io": [{"type": "signedBaseLayer"}]}}}"#,
            "not-supported",
        ),
    ];
    for (text, code) in cases {
        let d = lint("policy.json", text, &loader);
        assert!(
            d.iter()
                .any(|d| d.code == *code && d.severity == Severity::Error),
            "{text} should give {code}: {d:#?}"
        );
    }
    // A glob-looking docker scope is literal in containers/image, never matching: dropped with a warning.
    let p = Policy::load(
        "p.json",
        r#"{"default": [{"type": "reject"}], "transports": {"docker": {"reg.io/*": [{"type": "insecureAcceptAnything"}]}}}"#,
        &loader,
    )
    .unwrap();
    assert!(p.warnings.iter().any(|d| d.code == "scope-never-matches"));
    check(
        &p.policy,
        &evidence("reg.io/x:1", vec![]),
        NOW,
        Decision::Deny,
        "default",
        &["rejected-by-policy"],
    );
}

#[test]
fn format_detection() {
    use signet_policy::{detect_format, Format};
    assert_eq!(detect_format("{\"default\": []}"), Format::ContainersPolicy);
    assert_eq!(
        detect_format("{\"transports\": {}}"),
        Format::ContainersPolicy
    );
    assert_eq!(
        detect_format("{\"default\": {\"reject\": \"x\"}}"),
        Format::SignetJson
    );
    assert_eq!(detect_format("default:\n  reject: x\n"), Format::SignetYaml);
}

#[test]
fn verdicts_serialize_in_a_stable_shape() {
    let p = policy_with("{keys: [a, b], threshold: 2}");
    let v = evaluate(
        &p,
        &evidence("reg.io/app:1", vec![sig("keyA.pub", "reg.io/other:1")]),
        NOW,
    );
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "decision": "deny",
            "mode": "enforce",
            "scope": "reg.io/app",
            "would_deny": true,
            "findings": [
                {"code": "identity-mismatch", "message": "signature by key a for identity \"reg.io/other:1\" is not accepted for reg.io/app:1 under matchRepository", "rule": "scopes.\"reg.io/app\".signed[0]"},
                {"code": "no-valid-signature", "message": "no valid signature for reg.io/app:1 by any of the keys [a, b]", "rule": "scopes.\"reg.io/app\".signed[0]"}
            ]
        })
    );
}

/// The one golden switch of the workspace (`UPDATE_GOLDEN=1`, refused under CI).
#[path = "../../tests/golden_switch.rs"]
mod golden_switch;

#[test]
fn json_schema_is_golden() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/policy.schema.json");
    golden_switch::check_golden(
        &path,
        &signet_policy::json_schema(),
        "cargo test -p signet-policy --test engine json_schema_is_golden",
    );
}

#[test]
fn convert_produces_the_documented_signet_policy() {
    let text = std::fs::read_to_string(testdata().join("skopeo-fixture.json")).unwrap();
    let conv = signet_policy::containers::convert("skopeo-fixture.json", &text).unwrap();
    assert!(conv.warnings.is_empty());
    let yaml = serde_yaml_ng::to_string(&conv.document).unwrap();
    assert_eq!(
        yaml,
        "version: 1\nkeys:\n  key-1:\n    path: keys/keyA.pub\ndefault:\n  reject: rejected by the containers-policy.json default\nscopes:\n  127.0.0.1:5000:\n    signed:\n      keys:\n      - key-1\n      identity: matchRepoDigestOrExact\n      formats:\n      - legacy\n"
    );
}

#[test]
fn indexed_selection_equals_brute_force() {
    use signet_policy::pattern::Pattern;
    let hosts = [
        "reg.io",
        "a.reg.io",
        "b.a.reg.io:5000",
        "localhost:5000",
        "docker.io",
    ];
    let parts = ["team", "app", "x", "team-a", "lib", "ab"];
    let mut seed: u64 = 42;
    let mut next = |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n
    };
    let mut patterns = std::collections::BTreeSet::new();
    for _ in 0..300 {
        let host = hosts[next(hosts.len())];
        let depth = next(4);
        let mut text = host.to_string();
        for _ in 0..depth {
            text.push('/');
            text.push_str(match next(8) {
                0 => "*",
                1 => "**",
                2 => "te*",
                _ => parts[next(parts.len())],
            });
        }
        match next(10) {
            0 if depth > 0 && !text.contains('*') => text.push_str(":v1"),
            1 => {
                text = format!(
                    "*.{}",
                    host.split(':')
                        .next()
                        .unwrap()
                        .splitn(2, '.')
                        .last()
                        .unwrap()
                )
            }
            _ => {}
        }
        if Pattern::parse(&text).is_ok() {
            patterns.insert(text);
        }
    }
    // Drop patterns that tie with an earlier one, as lint would refuse them.
    let mut kept: Vec<Pattern> = Vec::new();
    for text in &patterns {
        let p = Pattern::parse(text).unwrap();
        if kept
            .iter()
            .all(|k| k.specificity() != p.specificity() || !k.overlaps(&p))
        {
            kept.push(p);
        }
    }
    let mut yaml = String::from("default: {reject: none}\nscopes:\n");
    for p in &kept {
        yaml.push_str(&format!("  \"{}\": {{reject: x}}\n", p.as_str()));
    }
    let policy = load(&yaml);
    assert_eq!(policy.scope_count(), kept.len());
    assert!(kept.len() > 50, "{}", kept.len());
    let mut hits = 0;
    for _ in 0..2000 {
        let host = hosts[next(hosts.len())];
        let mut text = host.to_string();
        for _ in 0..1 + next(4) {
            text.push('/');
            text.push_str(parts[next(parts.len())]);
        }
        text.push_str(if next(2) == 0 { ":v1" } else { ":v2" });
        let reference = r(&text);
        let brute = kept
            .iter()
            .filter(|p| p.matches(&reference))
            .max_by(|a, b| {
                a.specificity()
                    .cmp(&b.specificity())
                    .then(b.as_str().cmp(a.as_str()))
            })
            .map(|p| p.as_str().to_string());
        let indexed = policy
            .select(&reference)
            .and_then(|i| policy.scope_pattern(i))
            .map(str::to_string);
        hits += usize::from(brute.is_some());
        assert_eq!(indexed, brute, "{reference}");
    }
    assert!(hits > 1000, "{hits}");
}

#[test]
fn oversized_inputs_are_refused() {
    let big = format!("# {}\n", "x".repeat(signet_policy::policy::MAX_POLICY_LEN));
    let d = lint("big.yaml", &big, &loader);
    assert_eq!(
        d.iter().map(|d| d.code).collect::<Vec<_>>(),
        vec!["too-large"]
    );
    let config = vec![b' '; signet_policy::config::MAX_CONFIG_LEN + 1];
    assert!(matches!(
        ConfigFacts::from_config_json(&config),
        Err(signet_policy::Error::LimitExceeded { .. })
    ));
    let pem = vec![b'A'; signet_policy::key::MAX_KEY_PEM_LEN + 1];
    assert!(PublicKey::from_pem(&pem).unwrap_err().contains("limit"));
}

#[test]
fn containers_key_diagnostics_point_into_the_containers_file() {
    let text = std::fs::read_to_string(testdata().join("skopeo-fixture.json"))
        .unwrap()
        .replace("keys/keyA.pub", "keys/nope.pub");
    let d = lint("policy.json", &text, &loader);
    let got: Vec<(&str, Option<usize>, Option<usize>)> =
        d.iter().map(|d| (d.code, d.line, d.column)).collect();
    assert_eq!(got, vec![("key-unreadable", Some(8), Some(23))]);
    assert!(d[0].message.contains("keys/nope.pub"), "{}", d[0].message);
}
