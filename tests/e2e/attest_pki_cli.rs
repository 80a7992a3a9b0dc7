//! `signet verify-attestation --ca-roots` (issue 12 with a private PKI, as cosign's
//! `verify-attestation --ca-roots`): an `.att` layer written by `signet attest --certificate
//! --certificate-chain` with a CA made by the `openssl` CLI verifies on the real registry under
//! that CA and the certificate's email SAN; another CA, another email, a missing CA file and
//! contradictory flags are each refused with the failure named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::attest::private_ca;
use crate::support::{self, code, keypair, run, s, TestRegistry};

const EMAIL: &str = "ci@corp.example";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `signet verify-attestation IMAGE --ca-roots ROOTS EXTRA…`.
fn verify_pki(image: &str, roots: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["verify-attestation", image, "--ca-roots", s(roots)];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn verify_attestation_with_ca_roots_checks_the_chain_and_the_email_san() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (builder, builder_public) = keypair(d, "builder");
    let (ca, leaf) = private_ca(d, "corp", &builder_public, EMAIL);
    let (other_ca, _) = private_ca(d, "other", &builder_public, EMAIL);
    let predicate = d.join("p.json");
    std::fs::write(&predicate, br#"{"built":"yes"}"#).unwrap();
    let digest = support::push_sample_image(&reg, "pki-cli/app:v1");
    let image = format!("{}/pki-cli/app:v1", reg.host());
    let attested = run(&[
        "attest",
        "--key",
        s(&builder),
        "--predicate",
        s(&predicate),
        "--certificate",
        s(&leaf),
        "--certificate-chain",
        s(&ca),
        &image,
    ]);
    assert_eq!(code(&attested), 0, "{}", stderr(&attested));

    // The right CA and email: exit 0, the verified statement on stdout.
    let ok = verify_pki(&image, &ca, &["--certificate-email", EMAIL]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    let statement: Value = serde_json::from_str(stdout(&ok).trim()).unwrap();
    assert_eq!(statement["predicate"]["built"], "yes", "{statement}");
    assert!(
        stderr(&ok).contains("the certificate chains to the given CA roots at the current time"),
        "{}",
        stderr(&ok)
    );
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        digest.to_string().trim_start_matches("sha256:"),
        "{statement}"
    );
    // With the predicate type asked for, too.
    let typed = verify_pki(
        &image,
        &ca,
        &["--certificate-email", EMAIL, "--type", "custom"],
    );
    assert_eq!(code(&typed), 0, "{}", stderr(&typed));

    // Another CA: the chain check fails, and says so.
    let other = verify_pki(&image, &other_ca, &["--certificate-email", EMAIL]);
    assert_eq!(code(&other), 12, "{}", stderr(&other));
    assert!(stdout(&other).is_empty(), "{}", stdout(&other));
    assert!(
        stderr(&other).contains("does not chain to a configured CA root"),
        "{}",
        stderr(&other)
    );

    // The right CA, another email: the identity check fails, naming the email wanted.
    let wrong = verify_pki(
        &image,
        &ca,
        &["--certificate-email", "someone@corp.example"],
    );
    assert_eq!(code(&wrong), 12, "{}", stderr(&wrong));
    assert!(stdout(&wrong).is_empty(), "{}", stdout(&wrong));
    assert!(
        stderr(&wrong)
            .contains("certificate-identity: the certificate lacks email someone@corp.example"),
        "{}",
        stderr(&wrong)
    );

    // The JSON report names the failed check of the candidate.
    let report = verify_pki(
        &image,
        &other_ca,
        &["--certificate-email", EMAIL, "--output", "json"],
    );
    assert_eq!(code(&report), 12, "{}", stderr(&report));
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["outcome"], "none-verified", "{report}");
    let failed: Vec<&str> = report["candidates"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false && c["skipped"] != true)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["signature"], "{report}");

    // A CA file that does not exist: exit 2 naming the file, before the registry is asked.
    let missing = d.join("no-such-ca.pem");
    let out = verify_pki(&image, &missing, &["--certificate-email", EMAIL]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains(s(&missing)), "{}", stderr(&out));

    // A CA file that is not PEM certificates: exit 2 naming the file.
    let out = verify_pki(&image, &predicate, &["--certificate-email", EMAIL]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains(s(&predicate)), "{}", stderr(&out));
}

#[test]
fn ca_roots_flags_are_usage_errors_where_they_contradict() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = d.join("ca.pem");
    std::fs::write(&ca, "unused").unwrap();
    let image = "127.0.0.1:1/never/asked:v1";
    // Each of these is refused by the argument parser (exit 2) naming the clash, so no file
    // is read and no registry asked.
    for (extra, clash) in [
        (vec!["--key", s(&ca), "--certificate-email", EMAIL], "--key"),
        (
            vec![
                "--certificate-identity",
                EMAIL,
                "--certificate-oidc-issuer",
                "https://issuer.example",
                "--certificate-email",
                EMAIL,
            ],
            "--certificate-identity",
        ),
        (vec![], "--certificate-email"),
    ] {
        let out = verify_pki(image, &ca, &extra);
        assert_eq!(code(&out), 2, "{extra:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(clash), "{extra:?}: {}", stderr(&out));
    }
    // Intermediates and SANs need the roots.
    let out = run(&[
        "verify-attestation",
        image,
        "--ca-intermediates",
        s(&ca),
        "--certificate-email",
        EMAIL,
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--ca-roots"), "{}", stderr(&out));
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl CLI");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A root CA, an intermediate CA under it and a code-signing leaf under the intermediate for the
/// public key `public` with the email SAN [`EMAIL`], all made with the `openssl` CLI; returns
/// (root, intermediate, leaf) PEM files.
fn two_level_ca(dir: &Path, public: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ec = [
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
    ];
    openssl(dir, &[&ec[..], &["root.key"]].concat());
    openssl(dir, &[&ec[..], &["inter.key"]].concat());
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "root.key",
            "-subj",
            "/CN=root CA",
            "-days",
            "30",
            "-out",
            "root.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    std::fs::write(
        dir.join("inter.cnf"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "inter.key",
            "-subj",
            "/CN=intermediate CA",
            "-out",
            "inter.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "inter.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "20",
            "-extfile",
            "inter.cnf",
            "-out",
            "inter.pem",
        ],
    );
    std::fs::write(
        dir.join("leaf.cnf"),
        format!("subjectAltName=email:{EMAIL}\nextendedKeyUsage=codeSigning\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-new",
            "-subj",
            "/CN=builder",
            "-force_pubkey",
            s(public),
            "-CA",
            "inter.pem",
            "-CAkey",
            "inter.key",
            "-days",
            "7",
            "-out",
            "leaf.pem",
            "-extfile",
            "leaf.cnf",
        ],
    );
    (
        dir.join("root.pem"),
        dir.join("inter.pem"),
        dir.join("leaf.pem"),
    )
}

/// An `.att` layer whose certificate comes without its chain verifies only when
/// `--ca-intermediates` supplies the intermediate CA.
#[test]
fn ca_intermediates_complete_a_chain_the_layer_does_not_carry() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (builder, builder_public) = keypair(d, "builder");
    let (root, intermediate, leaf) = two_level_ca(d, &builder_public);
    let predicate = d.join("p.json");
    std::fs::write(&predicate, br#"{"built":"yes"}"#).unwrap();
    support::push_sample_image(&reg, "pki-cli/inter:v1");
    let image = format!("{}/pki-cli/inter:v1", reg.host());
    let attested = run(&[
        "attest",
        "--key",
        s(&builder),
        "--predicate",
        s(&predicate),
        "--certificate",
        s(&leaf),
        &image,
    ]);
    assert_eq!(code(&attested), 0, "{}", stderr(&attested));

    let without = verify_pki(&image, &root, &["--certificate-email", EMAIL]);
    assert_eq!(code(&without), 12, "{}", stderr(&without));
    assert!(
        stderr(&without).contains("does not chain to a configured CA root"),
        "{}",
        stderr(&without)
    );
    let with = verify_pki(
        &image,
        &root,
        &[
            "--ca-intermediates",
            s(&intermediate),
            "--certificate-email",
            EMAIL,
        ],
    );
    assert_eq!(code(&with), 0, "{}", stderr(&with));
    let statement: Value = serde_json::from_str(stdout(&with).trim()).unwrap();
    assert_eq!(statement["predicate"]["built"], "yes", "{statement}");
}
