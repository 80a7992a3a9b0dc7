//! Attestation requirements end to end on the real registry, with real tool output
//! (testdata/attestations/README.md): images are signed, then attested with Trivy 0.76's
//! `cosign-vuln` predicates of real image scans and with SLSA v1 provenance made by GitHub
//! Actions. `signet verify --policy`, `policy explain --evaluate`, the admission webhook and
//! the verify API allow the image whose scan passes and deny the one whose scan lists a
//! CRITICAL CVE, naming it; a scan too old, a scan signed by a key the policy does not name,
//! and provenance from another repository are denied, each naming what failed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support::{
    self, code, keypair, rfc3339, run, s, serve_http, whole_second_now, SignetServe, TestRegistry,
};

/// Trivy's scan of grafana/grafana:12.2.0: CVE-2025-41115 and CVE-2025-68121 are CRITICAL.
const CRITICAL_SCAN: &str = "trivy-grafana-12.2.0.cosign-vuln.json";
/// Trivy's scan of opensearch 2.19.4: HIGH at worst.
const PASSING_SCAN: &str = "trivy-opensearch-2.19.4.cosign-vuln.json";
/// SLSA v1 provenance of npm's sigstore 2.0.0, built by GitHub Actions from sigstore/sigstore-js.
const PROVENANCE: &str = "slsa-v1-npm-sigstore-2.0.0.json";
const CRITICAL_CVE: &str = "CVE-2025-41115 CRITICAL in github.com/grafana/grafana 12.2.0";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/attestations")
        .join(name)
}

/// A copy of a real scan in `dir` with every time it states (`scanStartedOn`,
/// `scanFinishedOn`, the report's `CreatedAt`) moved to `finished`: the fixtures were
/// converted once, and the policy bounds a scan's age against the real clock.
fn scan_at(dir: &Path, name: &str, finished: u64) -> PathBuf {
    let mut predicate: Value =
        serde_json::from_slice(&std::fs::read(fixture(name)).unwrap()).unwrap();
    let when = Value::String(rfc3339(finished));
    predicate["metadata"]["scanStartedOn"] = when.clone();
    predicate["metadata"]["scanFinishedOn"] = when.clone();
    if predicate["scanner"]["result"].get("CreatedAt").is_some() {
        predicate["scanner"]["result"]["CreatedAt"] = when;
    }
    let path = dir.join(format!("{finished}-{name}"));
    std::fs::write(&path, serde_json::to_vec(&predicate).unwrap()).unwrap();
    path
}

fn sign(key: &Path, image: &str) {
    let out = run(&["sign", "--key", s(key), image]);
    assert_eq!(code(&out), 0, "sign {image}: {}", stderr(&out));
}

fn attest(key: &Path, predicate: &Path, kind: &str, image: &str) {
    let out = run(&[
        "attest",
        "--key",
        s(key),
        "--predicate",
        s(predicate),
        "--type",
        kind,
        "--format",
        "both",
        image,
    ]);
    assert_eq!(code(&out), 0, "attest {image}: {}", stderr(&out));
}

/// Keys, images and a policy: everything under `{host}/team` must be signed by `release`,
/// carry a Trivy scan by `scanner` (nothing above HIGH, at most 7 days old) and SLSA v1
/// provenance by `builder` from GitHub's hosted runners building sigstore/sigstore-js's main;
/// `{host}/example-org` requires provenance from github.com/example-org/app instead.
struct Lab {
    reg: TestRegistry,
    dir: tempfile::TempDir,
    release: PathBuf,
    scanner: PathBuf,
    builder: PathBuf,
    rogue: PathBuf,
    now: u64,
}

impl Lab {
    fn start() -> Lab {
        let reg = TestRegistry::start();
        let dir = tempfile::tempdir().unwrap();
        let (release, _) = keypair(dir.path(), "release");
        let (scanner, _) = keypair(dir.path(), "scanner");
        let (builder, _) = keypair(dir.path(), "builder");
        let (rogue, _) = keypair(dir.path(), "rogue");
        Lab {
            reg,
            dir,
            release,
            scanner,
            builder,
            rogue,
            now: whole_second_now().1,
        }
    }

    /// Push `repo:v1`, sign it, attest `scan` (by `scan_key`) and the real provenance.
    fn image(&self, repo: &str, scan: Option<(&Path, &Path)>) -> String {
        support::push_sample_image(&self.reg, &format!("{repo}:v1"));
        let image = format!("{}/{repo}:v1", self.reg.host());
        sign(&self.release, &image);
        if let Some((key, predicate)) = scan {
            attest(key, predicate, "vuln", &image);
        }
        attest(
            &self.builder,
            &fixture(PROVENANCE),
            "slsaprovenance1",
            &image,
        );
        image
    }

    fn scan(&self, name: &str, age_seconds: u64) -> PathBuf {
        scan_at(self.dir.path(), name, self.now - age_seconds)
    }

    fn policy(&self, allow: &str) -> PathBuf {
        let dir = self.dir.path();
        let text = format!(
            r#"keys:
  release: {{path: {release}}}
  scanner: {{path: {scanner}}}
  builder: {{path: {builder}}}
scopes:
  "{host}/team":
    signed: {{keys: [release]}}
    attestations:
      - type: vuln
        keys: [scanner]
        conditions:
          - expression: 'predicate.scanner.uri.startsWith("pkg:github/aquasecurity/trivy@")'
        vulnerabilities:
          maxSeverity: high
          maxScanAge: 7d
{allow}      - type: slsaprovenance1
        keys: [builder]
        slsa:
          builderId: https://github.com/actions/runner/github-hosted
          buildType: https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1
          sourceRepository: https://github.com/sigstore/sigstore-js
          sourceRef: refs/heads/main
  "{host}/example-org":
    signed: {{keys: [release]}}
    attestations:
      - type: slsaprovenance1
        keys: [builder]
        slsa:
          sourceRepository: https://github.com/example-org/app
"#,
            release = s(&dir.join("release.pub")),
            scanner = s(&dir.join("scanner.pub")),
            builder = s(&dir.join("builder.pub")),
            host = self.reg.host(),
        );
        let path = dir.join("policy.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn verify(policy: &Path, image: &str) -> Output {
    run(&["verify", "--policy", s(policy), image])
}

fn assert_denied(out: &Output, code_and_message: &[&str]) {
    let err = stderr(out);
    assert_eq!(code(out), 12, "{err}");
    assert!(err.contains(": DENY ("), "{err}");
    for part in code_and_message {
        assert!(err.contains(part), "{part:?} not in: {err}");
    }
}

#[test]
fn verify_policy_allows_the_passing_scan_and_denies_the_critical_one_naming_the_cve() {
    let lab = Lab::start();
    let path = lab.policy("");
    let hour = 3600;

    // Signed and with provenance, but no scan yet: denied as missing.
    let unscanned = lab.image("team/unscanned", None);
    assert_denied(&verify(&path, &unscanned), &["[attestation-missing]"]);

    let passing = lab.image(
        "team/passing",
        Some((&lab.scanner, &lab.scan(PASSING_SCAN, hour))),
    );
    let out = verify(&path, &passing);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains(": ALLOW ("), "{}", stderr(&out));

    let critical = lab.image(
        "team/critical",
        Some((&lab.scanner, &lab.scan(CRITICAL_SCAN, hour))),
    );
    assert_denied(
        &verify(&path, &critical),
        &[
            "[vulnerability-too-severe]",
            CRITICAL_CVE,
            "CVE-2025-68121 CRITICAL in stdlib v1.24.6",
        ],
    );

    // `policy explain --evaluate`: the same verdict, and the candidates with their checks.
    let out = run(&[
        "policy",
        "explain",
        "--policy",
        s(&path),
        "--evaluate",
        &critical,
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
        4,
        "the scan's and the provenance's .att layer and bundle referrer: {candidates:?}"
    );
    assert!(candidates.iter().all(|c| c["passed"] == true));

    // Allow-listed until 2099: allowed.
    let listed = lab.policy(
        "          allow:\n            - id: CVE-2025-41115\n              until: \"2099-01-01T00:00:00Z\"\n              reason: SCIM provisioning is off\n            - id: CVE-2025-68121\n              until: \"2099-01-01T00:00:00Z\"\n",
    );
    let out = verify(&listed, &critical);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains(": ALLOW ("));

    // An expired entry no longer helps.
    let expired = lab.policy(
        "          allow:\n            - id: CVE-2025-41115\n              until: \"2025-12-01T00:00:00Z\"\n            - id: CVE-2025-68121\n              until: \"2099-01-01T00:00:00Z\"\n",
    );
    assert_denied(
        &verify(&expired, &critical),
        &[
            CRITICAL_CVE,
            "its allow-list entry expired at 2025-12-01T00:00:00Z",
        ],
    );
}

#[test]
fn a_stale_scan_an_untrusted_scanner_and_foreign_provenance_are_denied() {
    let lab = Lab::start();
    let path = lab.policy("");

    // The real conversion, unmodified: `trivy convert` stamped scanFinishedOn when it ran, but
    // the report's CreatedAt says the image was scanned on 2026-02-06: older than 7 days.
    let stale = lab.image("team/stale", Some((&lab.scanner, &fixture(PASSING_SCAN))));
    assert_denied(
        &verify(&path, &stale),
        &[
            "[vulnerability-scan-too-old]",
            "its report was created at 2026-02-06T23:54:26Z",
            "older than 7d",
        ],
    );
    // The same scan, eight days old by every time it states.
    let week_old = lab.image(
        "team/week-old",
        Some((&lab.scanner, &lab.scan(PASSING_SCAN, 8 * 86_400))),
    );
    assert_denied(
        &verify(&path, &week_old),
        &["[vulnerability-scan-too-old]", "older than 7d"],
    );

    // A passing scan signed by a key the policy does not name is no evidence.
    let rogue = lab.image(
        "team/rogue-scan",
        Some((&lab.rogue, &lab.scan(PASSING_SCAN, 3600))),
    );
    let out = run(&["verify", "--policy", s(&path), "--output", "json", &rogue]);
    assert_denied(&out, &["[attestation-missing]", "vuln/v1"]);
    let report: Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    let scans: Vec<&Value> = report["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.to_string().contains("attestation/vuln/v1"))
        .collect();
    assert_eq!(scans.len(), 2, "the .att layer and the bundle referrer");
    for c in scans {
        assert_eq!(c["passed"], false);
        let signature = c["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == "signature")
            .unwrap();
        assert_eq!(signature["passed"], false, "{c}");
    }

    // Real provenance of sigstore/sigstore-js where example-org/app's is required.
    let foreign = lab.image("example-org/app", None);
    assert_denied(
        &verify(&path, &foreign),
        &[
            "[slsa-source-mismatch]",
            "provenance source repository is \"https://github.com/sigstore/sigstore-js\", not \"https://github.com/example-org/app\"",
        ],
    );
}

fn pod(image: &str) -> Value {
    support::pod_review("3c1d9a5e-1f0b-4c8e-9a57-7f3e2b1c0d4a", image)
}

fn admit(gate: &SignetServe, image: &str) -> Value {
    let answer: Value = serve_http()
        .post(gate.url("/validate"))
        .json(&pod(image))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        answer["response"]["uid"], "3c1d9a5e-1f0b-4c8e-9a57-7f3e2b1c0d4a",
        "{answer}"
    );
    answer["response"].clone()
}

/// The gate judges with the same engine: the admission webhook and the verify API allow the
/// passing image and deny the critical one naming the CVE, and deny foreign provenance.
#[test]
fn the_admission_webhook_and_verify_api_judge_the_real_attestations() {
    let lab = Lab::start();
    let passing = lab.image(
        "team/passing",
        Some((&lab.scanner, &lab.scan(PASSING_SCAN, 3600))),
    );
    let critical = lab.image(
        "team/critical",
        Some((&lab.scanner, &lab.scan(CRITICAL_SCAN, 3600))),
    );
    let foreign = lab.image("example-org/app", None);
    let path = lab.policy("");
    let gate = SignetServe::start(
        &[
            "--policy",
            s(&path),
            "--upstream",
            &format!("http://{}", lab.reg.host()),
        ],
        |_| {},
    );

    let allowed = admit(&gate, &passing);
    assert_eq!(allowed["allowed"], true, "{allowed}");

    let denied = admit(&gate, &critical);
    assert_eq!(denied["allowed"], false, "{denied}");
    assert_eq!(denied["status"]["code"], 403, "{denied}");
    let message = denied["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("team/critical")
            && message.contains("vulnerability-too-severe")
            && message.contains(CRITICAL_CVE),
        "{message}"
    );

    let denied = admit(&gate, &foreign);
    assert_eq!(denied["allowed"], false, "{denied}");
    let message = denied["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("slsa-source-mismatch") && message.contains("sigstore/sigstore-js"),
        "{message}"
    );

    let (status, verdict) = gate.verify(&critical, None);
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["allowed"], false, "{verdict}");
    assert_eq!(verdict["error"], false, "{verdict}");
    let text = verdict.to_string();
    assert!(
        text.contains("vulnerability-too-severe") && text.contains(CRITICAL_CVE),
        "{verdict}"
    );
    let (status, verdict) = gate.verify(&passing, None);
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["allowed"], true, "{verdict}");
}
