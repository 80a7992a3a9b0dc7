//! Keyless images signed by an independent writer: sigstore-js (npm, pinned in
//! tests/peers/sigstore-js/) keyless-signs an in-toto statement about an image pushed to the real
//! registry — a Fulcio certificate, a Rekor entry and an RFC 3161 timestamp from the sigstore-js
//! project's own mock services (@sigstore/mock) on loopback — and @sigstore/oci (what GitHub's
//! actions/attest uses) attaches the v0.3 bundle as an OCI 1.1 referrer; distribution 2.8 has no
//! referrers API, so it writes the `sha256-<hex>` tag index. Signet then verifies it with the
//! mock's keys written out as a `trusted_root.json`, offline: inside `unshare -n`, where the
//! only thing listening is a second registry serving the same storage at the same address.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use signet_oci::Digest;

use crate::support::{code, push_sample_image, signet, TestRegistry, REGISTRY_BIN};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/peers/sigstore-js");
const ATTESTATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/attestations");
const IDENTITY: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";
const SIGN_V1: &str = "https://sigstore.dev/cosign/sign/v1";
const VULN_V1: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// Whether sigstore-js is installed (`npm ci` in tests/peers/sigstore-js, as scripts/test.sh
/// does). Missing in CI (`CI=true`) is a failure, never a skip.
fn peer_installed() -> bool {
    let node = Command::new("node").arg("--version").output();
    let modules = Path::new(PEER).join("node_modules/@sigstore/sign/package.json");
    if node.is_ok_and(|o| o.status.success()) && modules.is_file() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "sigstore-js is missing: install Node.js >= 20.17 and run `npm ci` in {PEER} (scripts/test.sh does)"
    );
    eprintln!("skipped: sigstore-js is not installed (npm ci in {PEER})");
    false
}

/// What one sigstore-js run made.
struct Signed {
    root: PathBuf,
    /// The referrer manifest @sigstore/oci wrote, when attached.
    referrer: Option<String>,
}

/// `node sign.js`: a keyless bundle over a statement whose subject is `subject`, written to
/// `out` with the mock services' `trusted_root.json`; attached to `attach_to` (image, digest)
/// when given.
fn sign_with_sigstore_js(
    out: &Path,
    subject: &Digest,
    predicate_type: &str,
    predicate: Option<&str>,
    attach_to: Option<(&str, &Digest)>,
) -> Signed {
    std::fs::create_dir_all(out).unwrap();
    let mut cmd = Command::new("node");
    // No proxy settings or npm configuration leak in: the mock services and the registry are on
    // loopback.
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", out)
        .arg(Path::new(PEER).join("sign.js"))
        .args(["--out", out.to_str().unwrap()])
        .args(["--subject-digest", &subject.to_string()])
        .args(["--subject-name", "app"])
        .args(["--predicate-type", predicate_type])
        .args(["--identity", IDENTITY, "--issuer", ISSUER]);
    if let Some(predicate) = predicate {
        cmd.args(["--predicate", predicate]);
    }
    if let Some((image, digest)) = attach_to {
        cmd.args(["--image", image, "--image-digest", &digest.to_string()]);
    }
    let output = cmd.output().expect("run node");
    assert!(
        output.status.success(),
        "sign.js failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let referrer = attach_to.map(|_| {
        let descriptor: Value = serde_json::from_slice(&output.stdout).unwrap();
        descriptor["digest"].as_str().unwrap().to_string()
    });
    Signed {
        root: out.join("trusted_root.json"),
        referrer,
    }
}

/// `signet ARGS` inside a new network namespace (no route anywhere) in which a second
/// `docker-registry` serves `reg`'s storage at `reg`'s address, so the image is reachable and
/// nothing else is: verification must not need Fulcio, Rekor, a TSA or a TUF repository.
fn offline_signet(reg: &TestRegistry, args: &[&str]) -> Output {
    const SCRIPT: &str = r#"
        PATH="$PATH:/usr/sbin:/sbin"
        ip link set lo up || exit 97
        registry_bin=$0 config=$1 port=$2
        shift 2
        "$registry_bin" serve "$config" >/dev/null 2>&1 &
        registry=$!
        for _ in $(seq 200); do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.05
        done
        "$@"
        rc=$?
        kill "$registry"
        wait "$registry" 2>/dev/null
        exit $rc
    "#;
    let port = reg.host().rsplit_once(':').unwrap().1.to_string();
    let config = reg.storage_dir().with_file_name("offline-config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {}\n",
            reg.storage_dir().display(),
            reg.host()
        ),
    )
    .unwrap();
    let base = signet();
    let mut cmd = Command::new("unshare");
    cmd.env_clear();
    for (key, value) in base.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    let output = cmd
        .args(["-n", "bash", "-c", SCRIPT, REGISTRY_BIN])
        .arg(&config)
        .arg(&port)
        .arg(base.get_program())
        .args(args)
        .output()
        .expect("run unshare");
    assert_ne!(
        code(&output),
        97,
        "could not bring up loopback in the namespace"
    );
    output
}

fn text(output: &Output) -> (i32, String, String) {
    (
        code(output),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `signet verify IMAGE --certificate-identity … --certificate-oidc-issuer … --trusted-root
/// ROOT --output json`, offline.
fn verify(reg: &TestRegistry, image: &str, root: &Path, identity: &str, issuer: &str) -> Output {
    offline_signet(
        reg,
        &[
            "verify",
            image,
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            issuer,
            "--trusted-root",
            root.to_str().unwrap(),
            "--output",
            "json",
        ],
    )
}

/// The check named `name` of the report's first signature.
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["signatures"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

/// An image `repo:v1` in `reg`, keyless-signed by sigstore-js (cosign's sign predicate) and
/// attached by @sigstore/oci: (image reference, manifest digest, what sigstore-js made).
fn signed_image(reg: &TestRegistry, repo: &str, out: &Path) -> (String, Digest, Signed) {
    let digest = push_sample_image(reg, &format!("{repo}:v1"));
    let name = format!("{}/{repo}", reg.host());
    let signed = sign_with_sigstore_js(out, &digest, SIGN_V1, None, Some((&name, &digest)));
    (format!("{name}:v1"), digest, signed)
}

#[test]
fn a_sigstore_js_signed_image_verifies_offline_and_each_wrong_expectation_is_refused() {
    if !peer_installed() {
        return;
    }
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (image, digest, signed) = signed_image(&reg, "app", &tmp.path().join("app"));

    // @sigstore/oci fell back to the referrers tag schema (distribution 2.8 has no API) and
    // Signet found the referrer there.
    let index: Value = reqwest::blocking::Client::new()
        .get(format!(
            "http://{}/v2/app/manifests/{}",
            reg.host(),
            digest.tag_form()
        ))
        .header("Accept", "application/vnd.oci.image.index.v1+json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        index["manifests"][0]["artifactType"], BUNDLE_TYPE,
        "{index}"
    );
    assert_eq!(
        index["manifests"][0]["digest"],
        signed.referrer.clone().unwrap()
    );
    let (rc, out, err) = text(&verify(&reg, &image, &signed.root, IDENTITY, ISSUER));
    assert_eq!(rc, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["outcome"], "verified", "{out}");
    assert_eq!(report["digest"], digest.to_string());
    assert_eq!(report["referrers_source"], "tag-schema");
    let signature = &report["signatures"][0];
    assert_eq!(signature["format"], "bundle");
    assert_eq!(signature["digest"], signed.referrer.clone().unwrap());
    assert_eq!(signature["binds_repository"], false);
    assert_eq!(signature["certificate"]["subjects"][0]["uri"], IDENTITY);
    assert_eq!(signature["certificate"]["issuer"], ISSUER);
    // Both the Rekor entry's time and the TSA's time were verified.
    assert_eq!(
        signature["verified_times"].as_array().unwrap().len(),
        2,
        "{signature}"
    );
    for name in ["material", "payload", "manifest-digest", "signature"] {
        assert_eq!(check(&report, name)["passed"], true, "{name}: {out}");
    }
    assert_eq!(report["findings"][0]["code"], "repository-not-signed");
    assert!(
        err.contains("cosign bundle referrer (digest signed, repository not)"),
        "{err}"
    );

    // Another identity, another issuer: the certificate check names what it wanted.
    let other_identity = IDENTITY.replace("release.yml", "nightly.yml");
    let (rc, out, err) = text(&verify(&reg, &image, &signed.root, &other_identity, ISSUER));
    assert_eq!(rc, 12, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(check(&report, "signature")["passed"], true, "{out}");
    assert_eq!(check(&report, "certificate-identity")["passed"], false);
    assert!(err.contains("certificate-identity: "), "{err}");
    let (rc, out, err) = text(&verify(
        &reg,
        &image,
        &signed.root,
        IDENTITY,
        "https://accounts.google.com",
    ));
    assert_eq!(rc, 12, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let detail = check(&report, "certificate-identity")["detail"]
        .as_str()
        .unwrap();
    assert!(detail.contains(ISSUER), "{detail}");
    assert!(err.contains("certificate-identity: "), "{err}");

    // A bundle whose statement names another digest, attached to `other` by @sigstore/oci: the
    // statement is about `app`, so it does not sign `other`. Its run's mock services are another
    // trusted root, under which `app`'s bundle does not verify.
    let other_digest = push_sample_image(&reg, "other:v1");
    let other_name = format!("{}/other", reg.host());
    let misbound = sign_with_sigstore_js(
        &tmp.path().join("misbound"),
        &digest,
        SIGN_V1,
        None,
        Some((&other_name, &other_digest)),
    );
    let (rc, out, err) = text(&verify(
        &reg,
        &format!("{other_name}:v1"),
        &misbound.root,
        IDENTITY,
        ISSUER,
    ));
    assert_eq!(rc, 12, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(check(&report, "manifest-digest")["passed"], false, "{out}");
    assert!(err.contains("manifest-digest: "), "{err}");

    let (rc, out, err) = text(&verify(&reg, &image, &misbound.root, IDENTITY, ISSUER));
    assert_eq!(rc, 12, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let signature_check = check(&report, "signature");
    assert_eq!(signature_check["passed"], false, "{out}");
    assert!(
        signature_check["detail"]
            .as_str()
            .unwrap()
            .starts_with("tlog-invalid: "),
        "{signature_check}"
    );
    assert!(err.contains("signature: tlog-invalid"), "{err}");
}

/// A policy file `name` in `dir` whose only signer is keyless with `trusted_root`.
fn keyless_policy(dir: &Path, name: &str, trusted_root: &Path) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "keys:\n  release:\n    keyless:\n      subject: {IDENTITY}\n      issuer: {ISSUER}\n      trustedRoot: {}\ndefault:\n  signed:\n    keys: [release]\n",
            trusted_root.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_policy_with_a_keyless_signer_and_the_mock_trusted_root_admits_the_sigstore_js_signed_image() {
    if !peer_installed() {
        return;
    }
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (image, _, signed) = signed_image(&reg, "app", &tmp.path().join("app"));
    let run = |policy: &Path| {
        text(&offline_signet(
            &reg,
            &[
                "verify",
                &image,
                "--policy",
                policy.to_str().unwrap(),
                "--output",
                "json",
            ],
        ))
    };

    let (rc, out, err) = run(&keyless_policy(tmp.path(), "ok.yaml", &signed.root));
    assert_eq!(rc, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["verdict"]["decision"], "allow", "{out}");
    let evidence = &report["certificate_signatures"][0];
    assert_eq!(evidence["format"], "bundle");
    assert_eq!(evidence["digest"], signed.referrer.unwrap());
    assert_eq!(evidence["binds_repository"], false);

    // The same signer with another trusted root (another mock run's): denied.
    let other = sign_with_sigstore_js(
        &tmp.path().join("other"),
        &Digest::sha256(b"unrelated"),
        SIGN_V1,
        None,
        None,
    );
    let (rc, out, err) = run(&keyless_policy(tmp.path(), "other.yaml", &other.root));
    assert_eq!(rc, 12, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["verdict"]["decision"], "deny", "{out}");
    let codes: Vec<&str> = report["verdict"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["no-valid-signature"], "{out}");
    let evidence = &report["certificate_signatures"][0];
    let signature = evidence["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "signature")
        .unwrap();
    assert_eq!(signature["passed"], false, "{out}");
    assert!(
        signature["detail"]
            .as_str()
            .unwrap()
            .starts_with("tlog-invalid: "),
        "{signature}"
    );
}

#[test]
fn a_sigstore_js_vuln_attestation_on_an_image_passes_verify_attestation_offline() {
    if !peer_installed() {
        return;
    }
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let digest = push_sample_image(&reg, "app:v1");
    let name = format!("{}/app", reg.host());
    let predicate = format!("{ATTESTATIONS}/trivy-vuln-clean.json");
    let signed = sign_with_sigstore_js(
        tmp.path(),
        &digest,
        VULN_V1,
        Some(&predicate),
        Some((&name, &digest)),
    );
    let run = |identity: &str| {
        text(&offline_signet(
            &reg,
            &[
                "verify-attestation",
                &format!("{name}:v1"),
                "--type",
                "vuln",
                "--certificate-identity",
                identity,
                "--certificate-oidc-issuer",
                ISSUER,
                "--trusted-root",
                signed.root.to_str().unwrap(),
                "--output",
                "json",
            ],
        ))
    };

    let (rc, out, err) = run(IDENTITY);
    assert_eq!(rc, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["outcome"], "verified", "{out}");
    assert_eq!(report["predicate_type"], VULN_V1);
    let candidate = &report["candidates"][0];
    assert_eq!(candidate["passed"], true, "{out}");
    assert_eq!(candidate["source"]["kind"], "bundle");
    assert_eq!(
        candidate["source"]["manifest_digest"],
        signed.referrer.unwrap()
    );

    assert_eq!(candidate["signed_with"]["kind"], "certificate");

    let (rc, out, err) = run(&IDENTITY.replace("release.yml", "nightly.yml"));
    assert_eq!(rc, 12, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let candidate = &report["candidates"][0];
    assert_eq!(candidate["passed"], false, "{out}");
    let signature = candidate["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "signature")
        .unwrap();
    assert!(
        signature["detail"]
            .as_str()
            .unwrap()
            .starts_with("certificate-subject-mismatch: "),
        "{signature}"
    );
    assert!(err.contains("certificate-subject-mismatch"), "{err}");
}

#[test]
fn a_policy_judges_the_content_of_sigstore_js_vuln_attestations_by_a_keyless_signer() {
    if !peer_installed() {
        return;
    }
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    // One mock run per image, so one trusted root per image: the policy names both as signers.
    // Signatures are not the point here (`accept: true`); the attestations' content is.
    let attested = |repo: &str, scan: &str| {
        let digest = push_sample_image(&reg, &format!("{repo}:v1"));
        let name = format!("{}/{repo}", reg.host());
        let signed = sign_with_sigstore_js(
            &tmp.path().join(repo),
            &digest,
            VULN_V1,
            Some(&format!("{ATTESTATIONS}/{scan}")),
            Some((&name, &digest)),
        );
        (format!("{name}:v1"), signed.root)
    };
    let (clean, clean_root) = attested("clean", "trivy-vuln-clean.json");
    let (critical, critical_root) = attested("critical", "trivy-vuln-critical.json");
    let policy = tmp.path().join("policy.yaml");
    let signer = |root: &Path| {
        format!(
            "    keyless:\n      subject: {IDENTITY}\n      issuer: {ISSUER}\n      trustedRoot: {}\n",
            root.display()
        )
    };
    std::fs::write(
        &policy,
        format!(
            "keys:\n  ci-clean:\n{}  ci-critical:\n{}default:\n  accept: true\n  attestations:\n    - type: vuln\n      keys: [ci-clean, ci-critical]\n      vulnerabilities:\n        maxSeverity: high\n",
            signer(&clean_root),
            signer(&critical_root)
        ),
    )
    .unwrap();
    let run = |image: &str| {
        text(&offline_signet(
            &reg,
            &["verify", image, "--policy", policy.to_str().unwrap()],
        ))
    };

    let (rc, out, err) = run(&clean);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(err.contains(": ALLOW ("), "{err}");
    let (rc, out, err) = run(&critical);
    assert_eq!(rc, 12, "{out}{err}");
    assert!(err.contains(": DENY ("), "{err}");
    assert!(err.contains("[vulnerability-too-severe]"), "{err}");
    assert!(err.contains("CVE-2024-3094"), "{err}");
}
