//! A running `signet serve` follows `signet trust update`, end to end: a real `docker-registry`
//! holds the cosign-real `fulcio-rekor-valid` keyless image, a python-tuf repository on loopback
//! publishes public-good's trusted root, and the gate's policy names a native `keyless` signer
//! with no `trustedRoot` (so the public-good root from the TUF cache, else the embedded one).
//! Without a restart or `SIGHUP` the gate re-judges when the cache changes: a root the fixture
//! does not verify under denies it (no allow made under the old root is served), the good root
//! allows it again, and a cache that no longer loads denies every image
//! `[trust-material-invalid]`, although the embedded root would allow it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use signet_oci::manifest::OCI_MANIFEST;
use signet_oci::Digest;

use crate::keyless_image::{fixture, root_file, sig_manifest, EMAIL, FULCIO, FULCIO_IDENTITY};
use crate::support::{self, code, s, serve_http as http, signet, SignetServe, TestRegistry};
use crate::tuf::{Fixture, GITHUB_ROOT};

const REPOSITORY: &str = "cosign-signed/fulcio-rekor-1";
const ISSUER: &str = "https://github.com/login/oauth";
/// How long the gate may take to notice a cache change (it polls every 2 s).
const RELOAD_WITHIN: Duration = Duration::from_secs(30);

/// Copy the fixture image and its `.sig` into `reg` under [`REPOSITORY`]:`latest`; returns the
/// image reference.
///
/// The fixture's manifest names a config and a layer that are not at hand, and the registry
/// refuses a manifest whose blobs it does not hold. Those two are written straight into its
/// storage (placeholder bytes under the real digests, linked into the repository); nothing here
/// reads them, the signature covers only the manifest, which goes in byte for byte.
fn push_fixture(reg: &TestRegistry) -> String {
    let (manifest, payload, layer) = fixture(FULCIO, &[]);
    let parsed: Value = serde_json::from_slice(&manifest).unwrap();
    let media_type = parsed["mediaType"].as_str().unwrap().to_string();
    let v2 = reg.storage_dir().join("docker/registry/v2");
    let referenced = std::iter::once(&parsed["config"]).chain(parsed["layers"].as_array().unwrap());
    for descriptor in referenced {
        let digest: Digest = descriptor["digest"].as_str().unwrap().parse().unwrap();
        let data = reg.blob_data_path(&digest);
        std::fs::create_dir_all(data.parent().unwrap()).unwrap();
        std::fs::write(&data, b"placeholder: the fixture does not carry this blob").unwrap();
        let link = v2
            .join("repositories")
            .join(REPOSITORY)
            .join("_layers/sha256")
            .join(digest.hex());
        std::fs::create_dir_all(&link).unwrap();
        std::fs::write(link.join("link"), digest.to_string()).unwrap();
    }
    let client = support::client();
    let image = reg.reference(&format!("{REPOSITORY}:latest"));
    let (sig, config) = sig_manifest(&layer);
    support::runtime().block_on(async {
        let digest = client
            .put_manifest(&image, &manifest, &media_type)
            .await
            .unwrap();
        assert_eq!(digest, Digest::sha256(&manifest));
        let sig_ref = reg.reference(&format!("{REPOSITORY}:{}.sig", digest.tag_form()));
        for blob in [payload, config] {
            client
                .put_blob(&sig_ref, bytes::Bytes::from(blob))
                .await
                .unwrap();
        }
        client
            .put_manifest(&sig_ref, &sig, OCI_MANIFEST)
            .await
            .unwrap();
    });
    format!("{}/{REPOSITORY}:latest", reg.host())
}

/// A registry with the fixture, a TUF repository, a policy with a native `keyless` signer for
/// the fixture (public-good by default) and T_good: the embedded public-good root written out
/// again (other bytes, same content), so its hash tells the cached copy from the embedded one.
struct Lab {
    reg: TestRegistry,
    image: String,
    tuf: Fixture,
    _dir: tempfile::TempDir,
    policy: PathBuf,
    good_root: String,
}

fn lab() -> Lab {
    let reg = TestRegistry::start();
    let image = push_fixture(&reg);
    let tuf = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let good_root = root_file(dir.path(), "t-good.json", |_| {});
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            r#"keys:
  fixture:
    keyless:
      subject: {EMAIL}
      issuer: {ISSUER}
default:
  reject: "not the fixture"
scopes:
  "{host}/cosign-signed":
    signed:
      keys: [fixture]
      identity: {{exactRepository: {{repository: "{signed}"}}}}
"#,
            host = reg.host(),
            signed = FULCIO_IDENTITY,
        ),
    )
    .unwrap();
    Lab {
        reg,
        image,
        tuf,
        _dir: dir,
        policy,
        good_root,
    }
}

impl Lab {
    /// `signet serve` with this lab's policy and the TUF fixture's cache root as
    /// `XDG_CACHE_HOME`.
    fn serve(&self) -> SignetServe {
        SignetServe::start(
            &[
                "--policy",
                s(&self.policy),
                "--upstream",
                &format!("http://{}", self.reg.host()),
            ],
            |command| {
                command.env("XDG_CACHE_HOME", &self.tuf.cache_root);
            },
        )
    }

    /// Publish `root` as public-good's trusted root and `signet trust update` to it.
    fn publish_and_update(&self, root: &str) {
        self.tuf.make(&["publish", "--trusted-root", root]);
        let out = self.tuf.update();
        assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("public-good trusted root updated"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    fn cache_file(&self) -> PathBuf {
        self.tuf.cache_root.join("signet/trust/public-good.json")
    }
}

/// `POST /v1/verify` for `image`: the decision as the API returns it.
fn verify(gate: &SignetServe, image: &str) -> Value {
    let (status, answer) = gate.verify(image, None);
    assert_eq!(status, 200, "{answer}");
    eprintln!("verify {image}: {answer}");
    answer
}

/// `POST /validate` of a pod running `image`: the admission response.
fn admit(gate: &SignetServe, image: &str) -> Value {
    let review = support::pod_review("5f0b8d5e-0000-4000-8000-000000000001", image);
    let answer: Value = http()
        .post(gate.url("/validate"))
        .json(&review)
        .send()
        .unwrap()
        .json()
        .unwrap();
    answer["response"].clone()
}

/// The hash of the policy in force (`GET /v1/policy`).
fn policy_hash(gate: &SignetServe) -> String {
    let answer: Value = http()
        .get(gate.url("/v1/policy"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    answer["hash"].as_str().unwrap().to_string()
}

/// `signet_gate_policy_reloads_total` from `/metrics`.
fn reloads(gate: &SignetServe) -> u64 {
    let text = http()
        .get(gate.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("signet_gate_policy_reloads_total "))
        .unwrap_or_else(|| panic!("no reload counter in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Poll (every 100 ms, at most [`RELOAD_WITHIN`]) until `done` says so.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + RELOAD_WITHIN;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "the gate did not reload within {RELOAD_WITHIN:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wait until the policy hash is no longer `old`; returns the new one.
fn wait_for_new_hash(gate: &SignetServe, old: &str, what: &str) -> String {
    let mut now = old.to_string();
    wait_for(what, || {
        now = policy_hash(gate);
        now != old
    });
    now
}

/// The finding codes of a decision's verdict.
fn codes(decision: &Value) -> Vec<String> {
    decision["report"]["verdict"]["findings"]
        .as_array()
        .map(|findings| {
            findings
                .iter()
                .map(|f| f["code"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The `signature` check of the fixture's certificate signature in a decision's report: why
/// the keyless signature did or did not verify.
fn signature_check(decision: &Value) -> String {
    let candidates = decision["report"]["certificate_signatures"].as_array();
    let check = candidates
        .and_then(|c| c.first())
        .and_then(|c| c["checks"].as_array())
        .and_then(|checks| checks.iter().find(|c| c["name"] == "signature"));
    match check {
        Some(check) => check["detail"].as_str().unwrap_or_default().to_string(),
        None => panic!("no certificate signature check: {decision}"),
    }
}

/// Denied by the policy hash `hash` because the fixture's keyless signature does not verify
/// under GitHub's root (it has no CT log for the certificate's SCT), a verdict, not an error.
/// Whether it came from the verdict cache or not, it was made under `hash`: the gate re-judges
/// what it admitted after a reload, and caches that under the new hash.
fn assert_denied_under_github_root(decision: &Value, hash: &str) {
    assert_eq!(decision["allowed"], false, "{decision}");
    assert_eq!(
        decision["error"], false,
        "a verdict, not a failure: {decision}"
    );
    assert_eq!(decision["policy_hash"], hash, "{decision}");
    assert_eq!(codes(decision), ["no-valid-signature"], "{decision}");
    let why = signature_check(decision);
    assert!(
        why.contains("sct-invalid") && why.contains("lists no CT log"),
        "{why}"
    );
}

/// Allowed, by the policy hash `hash`.
fn assert_allowed(decision: &Value, hash: &str) {
    assert_eq!(decision["allowed"], true, "{decision}");
    assert_eq!(decision["error"], false, "{decision}");
    assert_eq!(decision["policy_hash"], hash, "{decision}");
}

/// `signet verify --policy` of the image with a fresh HOME and no TUF cache: the embedded
/// public-good root. Exit code.
fn verify_with_embedded_root(lab: &Lab) -> i32 {
    let out = signet()
        .args(["verify", &lab.image, "--policy", s(&lab.policy)])
        .output()
        .unwrap();
    eprintln!(
        "signet verify with the embedded root -> {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    code(&out)
}

#[test]
fn a_running_gate_follows_trust_update_and_fails_closed_on_a_broken_cache() {
    let lab = lab();
    // The embedded public-good root verifies the fixture: what a fall back would allow.
    assert_eq!(verify_with_embedded_root(&lab), 0);

    // T_good published and cached before the gate starts: allowed, under the cached root.
    lab.publish_and_update(&lab.good_root);
    let gate = lab.serve();
    let good_hash = policy_hash(&gate);
    let first = verify(&gate, &lab.image);
    assert_allowed(&first, &good_hash);
    assert_eq!(first["cached"], false, "{first}");
    let admission = admit(&gate, &lab.image);
    assert_eq!(admission["allowed"], true, "{admission}");
    // The allow is in the verdict cache now.
    assert_eq!(verify(&gate, &lab.image)["cached"], true);
    let reloads_before = reloads(&gate);

    // GitHub's root published as public-good's and fetched: the running gate reloads by itself
    // and its first answer after the reload is a denial made under the new root, not the cached
    // allow.
    lab.publish_and_update(GITHUB_ROOT);
    let github_hash = wait_for_new_hash(&gate, &good_hash, "GitHub's root as public-good's");
    assert!(reloads(&gate) > reloads_before);
    assert_denied_under_github_root(&verify(&gate, &lab.image), &github_hash);
    let admission = admit(&gate, &lab.image);
    assert_eq!(admission["allowed"], false, "{admission}");

    // T_good again: allowed again, under the same hash as before.
    lab.publish_and_update(&lab.good_root);
    let back = wait_for_new_hash(&gate, &github_hash, "T_good published again");
    assert_eq!(back, good_hash);
    assert_allowed(&verify(&gate, &lab.image), &good_hash);

    // The cached trusted root swapped for another valid one, without its TUF metadata: the cache
    // no longer loads. Every image is denied `trust-material-invalid`, although the embedded
    // root (a fall back) would allow the fixture.
    let path = lab.cache_file();
    let mut state: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    state["targets"]["trusted_root.json"] =
        Value::String(std::fs::read_to_string(GITHUB_ROOT).unwrap());
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    let withdrawn = wait_for_new_hash(&gate, &good_hash, "the altered cache");
    assert_eq!(withdrawn, format!("{good_hash}+withdrawn"));
    let other = format!("{}/{REPOSITORY}:other", lab.reg.host());
    for image in [&lab.image, &other] {
        let decision = verify(&gate, image);
        assert_eq!(decision["allowed"], false, "{decision}");
        assert_eq!(codes(&decision), ["trust-material-invalid"], "{decision}");
        let message = decision["message"].as_str().unwrap();
        assert!(
            message.contains("[trust-material-invalid]")
                && message.contains("trusted_root.json does not match the hash targets.json pins"),
            "{message}"
        );
        let admission = admit(&gate, image);
        assert_eq!(admission["allowed"], false, "{admission}");
        assert!(
            admission["status"]["message"]
                .as_str()
                .unwrap()
                .contains("trust-material-invalid"),
            "{admission}"
        );
    }
    assert_eq!(
        verify_with_embedded_root(&lab),
        0,
        "the embedded root allows"
    );

    // Junk in its place: still denied, now for that reason.
    std::fs::write(&path, b"not json").unwrap();
    wait_for("junk in the cache file", || {
        let decision = verify(&gate, &lab.image);
        decision["allowed"] == false
            && decision["message"].as_str().is_some_and(|m| {
                m.contains("[trust-material-invalid]") && m.contains("not a signet trust cache")
            })
    });

    // Recovery as `trust update` says: remove the file and update.
    std::fs::remove_file(&path).unwrap();
    let out = lab.tuf.update();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    // (Between the two the file is absent, and a gate that looks then loads the embedded root:
    // wait for T_good's hash itself.)
    wait_for("the cache written again", || {
        policy_hash(&gate) == good_hash
    });
    assert_allowed(&verify(&gate, &lab.image), &good_hash);
}

#[test]
fn a_gate_started_before_any_trust_update_picks_up_the_first_cache() {
    let lab = lab();
    assert!(!lab.cache_file().exists());
    let gate = lab.serve();
    // No cache yet: the embedded public-good root, which verifies the fixture.
    let embedded_hash = policy_hash(&gate);
    let decision = verify(&gate, &lab.image);
    assert_allowed(&decision, &embedded_hash);
    assert_eq!(verify(&gate, &lab.image)["cached"], true);

    // The first `trust update` creates the cache file (and its folders) with GitHub's root as
    // public-good's: the gate, watching the path since it started, reloads and denies.
    lab.publish_and_update(GITHUB_ROOT);
    let github_hash = wait_for_new_hash(&gate, &embedded_hash, "the first trust update");
    let denied = verify(&gate, &lab.image);
    assert_denied_under_github_root(&denied, &github_hash);
    // Only asked through the verify API, the image is not among those continuous verification
    // re-judges after a reload: this denial was judged afresh, the cached allow not served.
    assert_eq!(denied["cached"], false, "{denied}");

    // T_good from the cache: allowed again, under another hash than the embedded root's (the same
    // trust, other bytes), so it is the cached copy that is in force.
    lab.publish_and_update(&lab.good_root);
    let cached_hash = wait_for_new_hash(&gate, &github_hash, "T_good published");
    assert_ne!(cached_hash, embedded_hash);
    assert_allowed(&verify(&gate, &lab.image), &cached_hash);
}

/// The trusted roots in force, as `GET /v1/policy` reports them.
fn trusted_roots(gate: &SignetServe) -> Vec<Value> {
    let answer: Value = http()
        .get(gate.url("/v1/policy"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    answer["trusted_roots"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn the_gate_reports_its_trusted_roots_and_warns_when_the_cache_goes() {
    let lab = lab();
    lab.publish_and_update(&lab.good_root);
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("gate.log");
    let gate = SignetServe::start(
        &[
            "--policy",
            s(&lab.policy),
            "--upstream",
            &format!("http://{}", lab.reg.host()),
        ],
        |command| {
            command
                .env("XDG_CACHE_HOME", &lab.tuf.cache_root)
                .stderr(std::fs::File::create(&log).unwrap());
        },
    );
    let good_sha256 = crate::tuf::sha256_of_file(&lab.good_root);
    let roots = trusted_roots(&gate);
    assert_eq!(roots.len(), 1, "{roots:?}");
    assert_eq!(roots[0]["root"], "Sigstore public-good root");
    assert_eq!(roots[0]["sha256"], good_sha256.as_str());
    let source = roots[0]["source"].as_str().unwrap();
    assert!(
        source.starts_with("public-good root from the TUF cache"),
        "{source}"
    );
    let cached_hash = policy_hash(&gate);

    // The cache file removed: the gate reloads with the embedded snapshot, says so in
    // `/v1/policy`, and warns (that snapshot may be older than the root it replaces).
    std::fs::remove_file(lab.cache_file()).unwrap();
    wait_for_new_hash(&gate, &cached_hash, "the cache file removed");
    let roots = trusted_roots(&gate);
    assert_eq!(roots[0]["source"], "embedded public-good root", "{roots:?}");
    assert_ne!(roots[0]["sha256"], good_sha256.as_str());
    let text = std::fs::read_to_string(&log).unwrap();
    let warning = text
        .lines()
        .find(|line| line.contains("trusted root falls back to the embedded snapshot"))
        .unwrap_or_else(|| panic!("no fall-back warning in the gate's log:\n{text}"));
    assert!(
        warning.contains("WARN") && warning.contains("root=Sigstore public-good root"),
        "{warning}"
    );

    // A cache that no longer loads: the judge is withdrawn, and `/v1/policy` lists no root
    // (nothing is verified with one).
    std::fs::create_dir_all(lab.cache_file().parent().unwrap()).unwrap();
    let embedded_hash = policy_hash(&gate);
    std::fs::write(lab.cache_file(), b"not json").unwrap();
    wait_for_new_hash(&gate, &embedded_hash, "junk in the cache file");
    assert!(policy_hash(&gate).ends_with("+withdrawn"));
    assert_eq!(trusted_roots(&gate), Vec::<Value>::new());
}
