//! `signet verify --policy` and `signet policy …` against the real registry: images signed by
//! 0, 1, 2 and 3 keys under a k-of-n policy, required signers, modes, config checks and
//! containers-policy.json.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use crate::support::{self, code, keypair, run, s, TestRegistry};

struct Lab {
    reg: TestRegistry,
    dir: tempfile::TempDir,
    keys: Vec<(PathBuf, PathBuf)>,
}

fn lab() -> Lab {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let keys = ["alpha", "beta", "gamma"]
        .iter()
        .map(|n| keypair(dir.path(), n))
        .collect();
    Lab { reg, dir, keys }
}

impl Lab {
    /// Push `repo:v1` and sign it with the first `signers` keys; returns the image reference.
    fn image_signed_by(&self, repo: &str, signers: &[usize]) -> String {
        support::push_sample_image(&self.reg, &format!("{repo}:v1"));
        let image = format!("{}/{repo}:v1", self.reg.host());
        for &i in signers {
            assert_eq!(
                code(&run(&["sign", "--key", s(&self.keys[i].0), &image])),
                0
            );
        }
        image
    }

    fn policy(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        path
    }
}

#[test]
fn threshold_and_required_signers_over_zero_to_three_signatures() {
    let lab = lab();
    let host = lab.reg.host();
    let images = [
        lab.image_signed_by("t/zero", &[]),
        lab.image_signed_by("t/one", &[0]),
        lab.image_signed_by("t/two", &[0, 1]),
        lab.image_signed_by("t/three", &[0, 1, 2]),
        lab.image_signed_by("t/two-without-alpha", &[1, 2]),
    ];
    let policy = lab.policy(
        "policy.yaml",
        &format!(
            r#"
keys:
  alpha: {{path: alpha.pub}}
  beta: {{path: beta.pub}}
  gamma: {{path: gamma.pub}}
default:
  reject: "unlisted"
scopes:
  "{host}/t":
    signed:
      keys: [alpha, beta, gamma]
      threshold: 2
      required: [alpha]
"#
        ),
    );
    assert_eq!(code(&run(&["policy", "lint", s(&policy)])), 0);
    let expected = [12, 12, 0, 0, 12];
    for (image, want) in images.iter().zip(expected) {
        let out = run(&["verify", "--policy", s(&policy), image]);
        assert_eq!(code(&out), want, "{image}");
    }
    let err = String::from_utf8_lossy(&run(&["verify", "--policy", s(&policy), &images[1]]).stderr)
        .into_owned();
    assert!(err.contains("threshold-not-met"), "{err}");
    let err = String::from_utf8_lossy(&run(&["verify", "--policy", s(&policy), &images[4]]).stderr)
        .into_owned();
    assert!(err.contains("required-signer-missing"), "{err}");
    // Several images at once, one JSON verdict each; exit 0 only when all are allowed.
    let out = run(&[
        "verify",
        "--policy",
        s(&policy),
        "--output",
        "json",
        &images[2],
        &images[3],
    ]);
    assert_eq!(code(&out), 0);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|v| v["verdict"]["decision"] == "allow"));
    let out = run(&["verify", "--policy", s(&policy), &images[2], &images[0]]);
    assert_eq!(code(&out), 12);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains(&format!("{}: ALLOW", images[2]))
            && err.contains(&format!("{}: DENY", images[0]))
            && err.contains("[no-valid-signature]"),
        "one denial fails the run, and it is the unsigned image's: {err}"
    );
    // An image outside every scope hits the default reject.
    let other = format!("{host}/elsewhere/app:v1");
    support::push_sample_image(&lab.reg, "elsewhere/app:v1");
    let out = run(&["verify", "--policy", s(&policy), &other]);
    assert_eq!(code(&out), 12);
    assert!(String::from_utf8_lossy(&out.stderr).contains("rejected-by-policy"));
}

#[test]
fn modes_pinning_and_config_checks() {
    let lab = lab();
    let host = lab.reg.host();
    let image = lab.image_signed_by("m/app", &[0]);
    let warn = lab.policy(
        "warn.yaml",
        &format!(
            r#"
keys: {{alpha: {{path: alpha.pub}}, beta: {{path: beta.pub}}}}
scopes:
  "{host}/m":
    mode: warn
    signed: {{keys: [beta]}}
"#
        ),
    );
    let out = run(&["verify", "--policy", s(&warn), &image]);
    assert_eq!(code(&out), 0, "warn mode allows");
    assert!(String::from_utf8_lossy(&out.stderr).contains("would be denied"));

    let pinned = lab.policy(
        "pinned.yaml",
        &format!(
            r#"
keys: {{alpha: {{path: alpha.pub}}}}
scopes:
  "{host}/m":
    signed: {{keys: [alpha]}}
    digest: pinned
"#
        ),
    );
    let out = run(&["verify", "--policy", s(&pinned), &image]);
    assert_eq!(code(&out), 12);
    assert!(String::from_utf8_lossy(&out.stderr).contains("digest-not-pinned"));
    let digest = String::from_utf8(run(&["digest", &image]).stdout).unwrap();
    let by_digest = format!("{host}/m/app@{}", digest.trim());
    assert_eq!(
        code(&run(&["verify", "--policy", s(&pinned), &by_digest])),
        0
    );

    // The sample image's config sets no User: it runs as root.
    let config = lab.policy(
        "config.yaml",
        &format!(
            r#"
keys: {{alpha: {{path: alpha.pub}}}}
scopes:
  "{host}/m":
    signed: {{keys: [alpha]}}
    config: {{forbidRootUser: true, platforms: [linux/amd64]}}
"#
        ),
    );
    let out = run(&["verify", "--policy", s(&config), &image]);
    assert_eq!(code(&out), 12);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("root-user"), "{err}");
    assert!(!err.contains("platform-not-allowed"), "{err}");

    let out = run(&["policy", "explain", "--policy", s(&config), &image]);
    assert_eq!(code(&out), 0);
    let explanation: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(explanation["scope"], format!("{host}/m"));
    let out = run(&[
        "policy",
        "explain",
        "--evaluate",
        "--policy",
        s(&config),
        &image,
    ]);
    assert_eq!(code(&out), 12);
    let both: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(both["evaluation"]["verdict"]["decision"], "deny");
}

#[test]
fn containers_policy_json_is_honoured_and_converted() {
    let lab = lab();
    let host = lab.reg.host();
    // podman's default identity rule (matchRepoDigestOrExact) needs a signed reference with tag.
    support::push_sample_image(&lab.reg, "c/app:v1");
    let image = format!("{host}/c/app:v1");
    assert_eq!(
        code(&run(&[
            "sign",
            "--key",
            s(&lab.keys[0].0),
            "--signed-identity",
            "reference",
            &image
        ])),
        0
    );
    let cosign_style = lab.image_signed_by("c/cosign", &[0]);
    let policy = lab.policy(
        "policy.json",
        &format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"{host}":[{{"type":"sigstoreSigned","keyPath":"alpha.pub"}}]}}}}}}"#
        ),
    );
    assert_eq!(code(&run(&["verify", "--policy", s(&policy), &image])), 0);
    assert_eq!(
        code(&run(&["verify", "--policy", s(&policy), &cosign_style])),
        12,
        "a repository-only identity fails matchRepoDigestOrExact for a tagged reference"
    );
    let out = run(&["policy", "convert", s(&policy)]);
    assert_eq!(code(&out), 0);
    let converted = lab.policy("converted.yaml", &String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        code(&run(&["verify", "--policy", s(&converted), &image])),
        0
    );
    assert_eq!(
        code(&run(&["verify", "--policy", s(&converted), &cosign_style])),
        12
    );

    let gpg = lab.policy(
        "gpg.json",
        r#"{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/nonexistent"}]}"#,
    );
    let out = run(&["verify", "--policy", s(&gpg), &image]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not supported yet"));
}

#[test]
fn malformed_policies_are_reported_all_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "keys:\n  a: {path: missing.pub}\nscopes:\n  \"reg.io/app\":\n    signed: {keys: [a], identity: matchSomething}\n    colour: blue\n",
    )
    .unwrap();
    let out = run(&["policy", "lint", s(&path)]);
    assert_eq!(code(&out), 1);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    // Both defects, each at its place with its code (counting lines with "error" in them also
    // counted the summary line, and passed with one diagnostic).
    assert!(
        err.contains("bad.yaml:5:35: error[unknown-identity-rule]")
            && err.contains("bad.yaml:6:5: error[unknown-field]: unknown field `colour`")
            && err.contains("bad.yaml: 2 error(s)"),
        "{err}"
    );
    let out = run(&["verify", "--policy", s(&path), "reg.io/app:v1"]);
    assert_eq!(code(&out), 2);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("is invalid") && err.contains("error[unknown-identity-rule]"),
        "{err}"
    );
}
