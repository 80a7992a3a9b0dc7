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

/// `signet serve`, killed on drop.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn verify_api(port: u16, image: &str) -> Value {
    reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
        .post(format!("http://127.0.0.1:{port}/v1/verify"))
        .json(&serde_json::json!({ "image": image }))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// The gate judges with the same engine: its verify API denies the critical scan naming the CVE
/// and allows the clean one.
#[test]
fn the_gate_verify_api_judges_attestation_requirements() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (scanner, _) = keypair(dir.path(), "scanner");
    support::push_sample_image(&reg, "team/critical:v1");
    support::push_sample_image(&reg, "team/clean:v1");
    let critical = format!("{}/team/critical:v1", reg.host());
    let clean = format!("{}/team/clean:v1", reg.host());
    attest(&scanner, &fixture("trivy-vuln-critical.json"), &critical);
    attest(&scanner, &fixture("trivy-vuln-clean.json"), &clean);
    let path = policy(dir.path(), &reg.host(), "");

    let port = support::free_port();
    let child = support::signet()
        .args([
            "serve",
            "--policy",
            s(&path),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--upstream",
            &format!("http://{}", reg.host()),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _serve = Serve(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while reqwest::blocking::get(format!("http://127.0.0.1:{port}/readyz"))
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "signet serve not ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let denied = verify_api(port, &critical);
    assert_eq!(denied["allowed"], false, "{denied}");
    assert_eq!(denied["error"], false, "{denied}");
    let text = denied.to_string();
    assert!(
        text.contains("vulnerability-too-severe")
            && text.contains("CVE-2024-3094 CRITICAL in xz-utils 5.6.0-0.2"),
        "{denied}"
    );
    let allowed = verify_api(port, &clean);
    assert_eq!(allowed["allowed"], true, "{allowed}");
}
