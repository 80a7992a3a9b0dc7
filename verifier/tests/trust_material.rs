//! The trust material a policy names (CA certificates, Rekor keys, trusted roots) is read with the
//! policy, bounded, and is part of the policy's hash: the gate caches verdicts by that hash, so a
//! changed CA file must be a changed policy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use signet_policy::{Material, SigstoreRoot};
use signet_verifier::enforce::load_policy_file;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/cosign-real")
        .join(name)
}

const PKI_POLICY: &str = r#"
keys:
  build:
    pki:
      caRoots: {path: ca/roots.pem}
      caIntermediates: {path: ca/intermediates.pem}
      subjectEmail: qiwan@redhat.com
    rekorKeys: [{path: rekor.pub}]
scopes:
  "reg.example/app":
    signed: {keys: [build]}
"#;

fn pki_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ca")).unwrap();
    std::fs::copy(
        fixture("pki_root_crts.pem"),
        dir.path().join("ca/roots.pem"),
    )
    .unwrap();
    std::fs::copy(
        fixture("pki_intermediate_crts.pem"),
        dir.path().join("ca/intermediates.pem"),
    )
    .unwrap();
    std::fs::copy(fixture("rekor.pub"), dir.path().join("rekor.pub")).unwrap();
    std::fs::write(dir.path().join("policy.yaml"), PKI_POLICY).unwrap();
    dir
}

#[test]
fn ca_and_rekor_files_are_read_relative_to_the_policy_and_hashed() {
    let dir = pki_dir();
    let policy_path = dir.path().join("policy.yaml");
    let first = load_policy_file(&policy_path).unwrap();
    let roots = std::fs::read(fixture("pki_root_crts.pem")).unwrap();
    assert_eq!(
        first.material(&Material::Path("ca/roots.pem".into())),
        Some(roots.as_slice())
    );
    assert!(first
        .material(&Material::Path("rekor.pub".into()))
        .is_some_and(|b| b.starts_with(b"-----BEGIN PUBLIC KEY-----")));
    assert_eq!(first.material(&Material::Path("other.pem".into())), None);
    // The reload watcher sees the CA files.
    assert!(first
        .key_paths()
        .contains(&dir.path().join("ca/intermediates.pem")));

    // Same text, same files: same hash. Another CA file under the same name: another hash.
    assert_eq!(load_policy_file(&policy_path).unwrap().hash, first.hash);
    std::fs::copy(
        fixture("fulcio_v1.crt.pem"),
        dir.path().join("ca/roots.pem"),
    )
    .unwrap();
    let changed = load_policy_file(&policy_path).unwrap();
    assert_ne!(changed.hash, first.hash);
    // Another Rekor key under the same name: another hash.
    std::fs::copy(fixture("cosign2.pub"), dir.path().join("rekor.pub")).unwrap();
    assert_ne!(load_policy_file(&policy_path).unwrap().hash, changed.hash);
    // A Rekor key that is not a key fails the load (keys are parsed when the policy loads).
    std::fs::write(
        dir.path().join("rekor.pub"),
        b"-----BEGIN PUBLIC KEY-----\n",
    )
    .unwrap();
    let err = load_policy_file(&policy_path).unwrap_err().to_string();
    assert!(err.contains("rekor.pub"), "{err}");
}

#[test]
fn missing_or_oversized_trust_material_fails_the_policy_load() {
    let dir = pki_dir();
    let policy_path = dir.path().join("policy.yaml");
    std::fs::remove_file(dir.path().join("ca/intermediates.pem")).unwrap();
    let err = load_policy_file(&policy_path).unwrap_err().to_string();
    // Found by the policy's own check, through the verifier's bounded loader, with its position.
    assert!(
        err.contains("policy.yaml:6:31: error[trust-material-unreadable]: key \"build\" pki.caIntermediates: cannot read \"ca/intermediates.pem\""),
        "{err}"
    );
    std::fs::write(
        dir.path().join("ca/intermediates.pem"),
        vec![b'A'; 1024 * 1024 + 1],
    )
    .unwrap();
    let err = load_policy_file(&policy_path).unwrap_err().to_string();
    assert!(
        err.contains("error[trust-material-unreadable]")
            && err.contains("larger than 1048576 bytes"),
        "{err}"
    );
}

#[test]
fn keyless_signers_get_their_trusted_root_parsed_once() {
    let dir = tempfile::tempdir().unwrap();
    let policy = r#"
keys:
  release:
    keyless:
      issuer: https://token.actions.githubusercontent.com
      subjectPattern: "https://github\\.com/acme/app/\\.github/workflows/release\\.yml@refs/tags/v.*"
scopes:
  "reg.example/app":
    signed: {keys: [release]}
"#;
    std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
    let loaded = load_policy_file(&dir.path().join("policy.yaml")).unwrap();
    let root = loaded.trusted_root(&SigstoreRoot::PublicGood).unwrap();
    assert!(root.has_tlogs());
    assert!(loaded.trusted_root(&SigstoreRoot::GitHub).is_none());

    // A trusted-root file that is not one is refused with the policy, naming it.
    let bad = policy.replace(
        "      subjectPattern",
        "      trustedRoot: root.json\n      subjectPattern",
    );
    std::fs::write(dir.path().join("root.json"), b"{\"mediaType\": 1}").unwrap();
    std::fs::write(dir.path().join("policy.yaml"), bad).unwrap();
    let err = load_policy_file(&dir.path().join("policy.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("trusted root file \"root.json\" cannot be loaded"),
        "{err}"
    );
}
