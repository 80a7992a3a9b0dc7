//! CLI output that is a contract, snapshot-tested against files in `testdata/golden/`
//! (`UPDATE_GOLDEN=1` rewrites them, never under CI; see `tests/golden_switch.rs`): the
//! cosign-compatible payload array on stdout, the `--output json` verification report, and
//! `digest --output json`.
//!
//! Deterministic because the key is a committed fixture and ECDSA signing uses RFC 6979 nonces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use crate::support::{code, run, s};

const GOLDEN_PASSWORD: &str = "golden-fixture";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/golden")
}

/// The one golden switch of the workspace (`UPDATE_GOLDEN=1`, refused under CI).
#[path = "../golden_switch.rs"]
mod golden_switch;

fn check_golden(name: &str, actual: &str) {
    golden_switch::check_golden(
        &golden_dir().join(name),
        actual,
        "cargo test -p signet-cli --test e2e -- golden::",
    );
}

fn signet_golden(args: &[&str]) -> std::process::Output {
    crate::support::signet()
        .env("SIGNET_PASSWORD", GOLDEN_PASSWORD)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn verify_outputs_are_stable() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    crate::support::copy_dir(&golden_dir().join("../images/single"), &layout);
    let key = dir.path().join("golden.key");
    std::fs::copy(golden_dir().join("golden.key"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let public = golden_dir().join("golden.pub");
    let image = format!("oci:{}:v1", layout.display());
    let identity = "registry.example.com/signet/sample:v1";
    let out = signet_golden(&[
        "sign",
        "--key",
        s(&key),
        "--identity",
        identity,
        "-a",
        "build=golden",
        &image,
    ]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let placeholder = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes).replace(&layout.display().to_string(), "<LAYOUT>")
    };

    let out = run(&[
        "verify",
        "--key",
        s(&public),
        "--identity",
        identity,
        &image,
    ]);
    assert_eq!(code(&out), 0);
    check_golden("verify-stdout.json", &placeholder(&out.stdout));

    let out = run(&[
        "verify",
        "--key",
        s(&public),
        "--identity",
        identity,
        "--output",
        "json",
        &image,
    ]);
    assert_eq!(code(&out), 0);
    check_golden("verify-report.json", &placeholder(&out.stdout));

    let out = run(&[
        "verify",
        "--key",
        s(&public),
        "--identity",
        "registry.example.com/other/sample:v1",
        "-a",
        "build=release",
        "--output",
        "json",
        &image,
    ]);
    assert_eq!(code(&out), 12);
    check_golden("verify-report-refused.json", &placeholder(&out.stdout));
}

#[test]
fn digest_json_is_stable() {
    let multi = golden_dir().join("../images/multi");
    let out = run(&[
        "digest",
        "--output",
        "json",
        &format!("oci:{}:v1", multi.display()),
    ]);
    assert_eq!(code(&out), 0);
    let text =
        String::from_utf8_lossy(&out.stdout).replace(&multi.display().to_string(), "<LAYOUT>");
    check_golden("digest-multi.json", &text);
}
