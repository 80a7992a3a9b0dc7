//! `signet serve` end to end with the real engine: skopeo pulls through the verifying proxy, the
//! admission webhook and verify API answer with the policy's verdicts, a bad policy reload keeps
//! the old policy, and the containerd hook allows and denies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::support::{self, free_port, run, s, signet, TestRegistry};

struct Gate {
    child: Child,
    port: u16,
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gate {
    fn start(policy: &Path, upstream: &str) -> Gate {
        let port = free_port();
        let child = signet()
            .args([
                "serve",
                "--policy",
                s(policy),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--upstream",
                upstream,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let gate = Gate { child, port };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(r) = http().get(gate.url("/readyz")).send() {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "signet serve did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        gate
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

struct Lab {
    reg: TestRegistry,
    dir: tempfile::TempDir,
    key: PathBuf,
    policy: PathBuf,
}

fn lab() -> Lab {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("release");
    assert_eq!(
        run(&["generate-key-pair", "--output-key-prefix", s(&prefix)])
            .status
            .code(),
        Some(0)
    );
    support::push_sample_image(&reg, "team/signed:v1");
    support::push_sample_image(&reg, "team/unsigned:v1");
    support::push_sample_image(&reg, "team/warned:v1");
    let key = prefix.with_extension("key");
    let signed = format!("{}/team/signed:v1", reg.host());
    assert_eq!(
        run(&["sign", "--key", s(&key), &signed]).status.code(),
        Some(0)
    );
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            r#"
keys:
  release: {{path: release.pub}}
default:
  reject: "not from our registry"
scopes:
  "{host}/team":
    signed: {{keys: [release]}}
  "{host}/team/warned":
    mode: warn
    signed: {{keys: [release]}}
"#,
            host = reg.host()
        ),
    )
    .unwrap();
    Lab {
        reg,
        dir,
        key,
        policy,
    }
}

#[test]
fn skopeo_pulls_signed_images_through_the_proxy_and_is_refused_unsigned_ones() {
    let lab = lab();
    let gate = Gate::start(&lab.policy, &format!("http://{}", lab.reg.host()));
    let dest = lab.dir.path().join("pulled");
    let copy = |repo: &str| {
        std::process::Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--src-tls-verify=false",
                &format!("docker://{}/{repo}:v1", gate.host()),
                &format!("oci:{}:{}", dest.display(), repo.replace('/', "-")),
            ])
            .output()
            .expect("run skopeo (apt-get install -y skopeo)")
    };
    let ok = copy("team/signed");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = copy("team/unsigned");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("denied") || err.contains("DENIED"), "{err}");
    assert!(
        err.contains("no-valid-signature") || err.contains("signature"),
        "{err}"
    );

    // Through the proxy the manifest is byte-identical to the upstream one, and every blob
    // re-hashes to its descriptor.
    let upstream = run(&["digest", &format!("{}/team/signed:v1", lab.reg.host())]);
    let proxied = run(&["digest", &format!("{}/team/signed:v1", gate.host())]);
    assert_eq!(upstream.stdout, proxied.stdout);
    assert_eq!(
        run(&["validate", &format!("{}/team/signed:v1", gate.host())])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        run(&["validate", &format!("oci:{}:team-signed", dest.display())])
            .status
            .code(),
        Some(0)
    );
    // signet itself is refused the unsigned image through the proxy, with the reason.
    let out = run(&["digest", &format!("{}/team/unsigned:v1", gate.host())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-valid-signature"));
}

fn review(kind: &str, object: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "default",
            "object": object,
        }
    })
}

#[test]
fn admission_webhook_and_verify_api_use_the_policy() {
    let lab = lab();
    let host = lab.reg.host();
    let gate = Gate::start(&lab.policy, &format!("http://{host}"));
    let pod = |images: &[&str]| {
        let containers: Vec<serde_json::Value> = images
            .iter()
            .enumerate()
            .map(|(i, image)| serde_json::json!({"name": format!("c{i}"), "image": image}))
            .collect();
        review(
            "Pod",
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}}),
        )
    };
    // Pods name images by their real registry; the webhook verifies them there.
    let signed = format!("{host}/team/signed:v1");
    let unsigned = format!("{host}/team/unsigned:v1");
    let warned = format!("{host}/team/warned:v1");
    let answer: serde_json::Value = http()
        .post(gate.url("/validate"))
        .json(&pod(&[&signed]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        answer["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    let answer: serde_json::Value = http()
        .post(gate.url("/validate"))
        .json(&pod(&[&signed, &unsigned]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("team/unsigned"), "{message}");
    assert!(
        !message.contains("team/signed:"),
        "only the failing image is named: {message}"
    );

    let answer: serde_json::Value = http()
        .post(gate.url("/validate"))
        .json(&pod(&[&warned]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert!(
        answer["response"]["warnings"]
            .as_array()
            .is_some_and(|w| !w.is_empty()),
        "{answer}"
    );

    // Mutation pins the allowed image to its digest.
    let answer: serde_json::Value = http()
        .post(gate.url("/mutate"))
        .json(&pod(&[&signed]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let patch = base64::engine::general_purpose::STANDARD
        .decode(answer["response"]["patch"].as_str().unwrap())
        .unwrap();
    let patch: serde_json::Value = serde_json::from_slice(&patch).unwrap();
    let digest =
        String::from_utf8(run(&["digest", &format!("{host}/team/signed:v1")]).stdout).unwrap();
    assert_eq!(
        patch[0]["value"],
        format!("{signed}@{}", digest.trim()),
        "{patch}"
    );

    // Verify API.
    let verdict: serde_json::Value = http()
        .post(gate.url("/v1/verify"))
        .json(&serde_json::json!({"image": signed}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(verdict.to_string().contains("allow"), "{verdict}");
    let policy: serde_json::Value = http()
        .get(gate.url("/v1/policy"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let hash = policy["hash"].as_str().unwrap().to_string();
    assert!(hash.starts_with("sha256:"), "{policy}");

    // A broken policy is refused on reload and the old one stays in force.
    std::fs::write(&lab.policy, "keys: [this is not a policy").unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let after: serde_json::Value = http()
        .get(gate.url("/v1/policy"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(after["hash"], hash.as_str());
    let answer: serde_json::Value = http()
        .post(gate.url("/validate"))
        .json(&pod(&[&unsigned]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        answer["response"]["allowed"], false,
        "old policy still denies"
    );
    // A valid new policy is picked up.
    std::fs::write(&lab.policy, "default:\n  accept: true\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now: serde_json::Value = http()
            .get(gate.url("/v1/policy"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if now["hash"] != hash.as_str() {
            break;
        }
        assert!(Instant::now() < deadline, "new policy not loaded");
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = &lab.key;
}

#[test]
fn containerd_hook_allows_and_denies() {
    let lab = lab();
    let host = lab.reg.host();
    let hook = |repo: &str| {
        let digest =
            String::from_utf8(run(&["digest", &format!("{host}/{repo}:v1")]).stdout).unwrap();
        let digest = digest.trim().to_string();
        let descriptor = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": 1,
        });
        let mut child = signet()
            .env("SIGNET_POLICY", s(&lab.policy))
            .args([
                "-name",
                &format!("{host}/{repo}:v1"),
                "-digest",
                &digest,
                "-stdin-media-type",
                "application/vnd.oci.descriptor.v1+json",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(descriptor.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let allowed = hook("team/signed");
    assert_eq!(
        allowed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&allowed.stdout)
    );
    let denied = hook("team/unsigned");
    assert_ne!(denied.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&denied.stdout).contains("denied"));
}
