//! Attestation requirements end to end: `signet attest --type vuln` attaches a Trivy-style scan,
//! `signet verify --policy` and `policy explain --evaluate` deny naming the CVE, and allow once
//! the allow-list names it; a clean scan signed by a key
//! the policy does not name is denied.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support::{self, code, keypair, run, s, TestRegistry};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/attestations")
        .join(name)
}

fn attest(key: &Path, predicate: &Path, image: &str) {
    let out = run(&[
        "attest",
        "--key",
        s(key),
        "--predicate",
        s(predicate),
        "--type",
        "vuln",
        "--format",
        "both",
        image,
    ]);
    assert_eq!(code(&out), 0, "attest {image}");
}

fn policy(dir: &Path, host: &str, allow: &str) -> PathBuf {
    let text = format!(
        r#"keys:
  scanner:
    path: scanner.pub
scopes:
  "{host}/team":
    accept: true
    attestations:
      - type: vuln
        keys: [scanner]
        conditions:
          - expression: 'predicate.scanner.uri.startsWith("pkg:github/aquasecurity/trivy")'
        vulnerabilities:
          maxSeverity: high
{allow}"#
    );
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn verify_policy_denies_a_critical_cve_until_it_is_allow_listed() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (scanner, scanner_pub) = keypair(dir.path(), "scanner");
    let (rogue, _) = keypair(dir.path(), "rogue");
    support::push_sample_image(&reg, "team/app:v1");
    support::push_sample_image(&reg, "team/other:v1");
    let image = format!("{}/team/app:v1", reg.host());
    let other = format!("{}/team/other:v1", reg.host());
    assert!(scanner_pub.ends_with("scanner.pub"));

    let path = policy(dir.path(), &reg.host(), "");
    // Nothing attached yet: denied as missing.
    let out = run(&["verify", "--policy", s(&path), &image]);
    assert_eq!(code(&out), 12);
    assert!(
        stderr(&out).contains("[attestation-missing]"),
        "{}",
        stderr(&out)
    );

    attest(&scanner, &fixture("trivy-vuln-critical.json"), &image);
    let out = run(&["verify", "--policy", s(&path), &image]);
    assert_eq!(code(&out), 12);
    let err = stderr(&out);
    assert!(err.contains(": DENY ("), "{err}");
    assert!(
        err.contains("[vulnerability-too-severe]")
            && err.contains("CVE-2024-3094 CRITICAL in xz-utils 5.6.0-0.2"),
        "{err}"
    );

    // `policy explain --evaluate`: the same verdict, and the candidates with their checks.
    let out = run(&[
        "policy",
        "explain",
        "--policy",
        s(&path),
        "--evaluate",
        &image,
    ]);
    assert_eq!(code(&out), 12);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["evaluation"]["verdict"]["decision"], "deny");
    let requirements = json["explanation"]["requirements"].to_string();
    assert!(
        requirements.contains("vulnerabilities: none above HIGH"),
        "{requirements}"
    );
    let candidates = json["evaluation"]["attestations"].as_array().unwrap();
    assert_eq!(
        candidates.len(),
        2,
        "the .att layer and the bundle referrer"
    );
    assert!(candidates.iter().all(|c| c["passed"] == true));

    // Allow-listed until 2099: allowed.
    let path = policy(
        dir.path(),
        &reg.host(),
        "          allow:\n            - id: CVE-2024-3094\n              until: \"2099-01-01T00:00:00Z\"\n              reason: rebuilt image rolls out next week\n",
    );
    let out = run(&["verify", "--policy", s(&path), &image]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains(": ALLOW ("));

    // An expired entry no longer helps.
    let expired = policy(
        dir.path(),
        &reg.host(),
        "          allow:\n            - id: CVE-2024-3094\n              until: \"2024-04-01T00:00:00Z\"\n",
    );
    let out = run(&["verify", "--policy", s(&expired), &image]);
    assert_eq!(code(&out), 12);
    assert!(stderr(&out).contains("its allow-list entry expired at 2024-04-01T00:00:00Z"));

    // A clean scan signed by a key the policy does not trust is not evidence.
    attest(&rogue, &fixture("trivy-vuln-clean.json"), &other);
    // Its envelopes verify under no policy key, so they are candidates, never evidence.
    let out = run(&["verify", "--policy", s(&path), "--output", "json", &other]);
    assert_eq!(code(&out), 12);
    assert!(
        stderr(&out).contains("[attestation-missing]"),
        "{}",
        stderr(&out)
    );
    let report: Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    let candidates = report["attestations"].as_array().unwrap();
    assert_eq!(candidates.len(), 2);
    for c in candidates {
        assert_eq!(c["passed"], false);
        let signature = c["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == "signature")
            .unwrap();
        assert_eq!(signature["passed"], false, "{c}");
    }
}
