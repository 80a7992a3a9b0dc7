//! Certificate signers in the policy: keyless (subject/issuer, GitHub claims, trusted root),
//! private PKI and Fulcio-with-fixed-CA signers, Rekor keys, signature formats; how they count
//! toward `threshold` and `required`; lint diagnostics; containers-policy.json conversion.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use signet_oci::Reference;
use signet_policy::certificate::{CertificateClaims, GitHubClaims};
use signet_policy::{
    evaluate, explain, lint, CertificateAuthority, CertificateEvidence, Decision, Evidence,
    LogSource, Material, Policy, Severity, SignatureEvidence, SignatureFormat, Signer,
    SigstoreRoot, TlogEvidence, TrustSource,
};

const D8C: &str = "sha256:8c60e41c50b8e88f4260816a551db9f5a409729368197a61cc08789a9f14ce8b";
/// 2026-11-29T00:00:00Z
const NOW: i64 = 1_795_910_400;
const ACTIONS: &str = "https://token.actions.githubusercontent.com";
const RELEASE: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0";
const NIGHTLY: &str = "https://github.com/acme/app/.github/workflows/nightly.yml@refs/heads/main";

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// Key files from testdata/policies; CA and Rekor files from testdata/cosign-real under the
/// names the policies here give them.
fn loader(path: &str) -> Result<Vec<u8>, String> {
    let real = |name: &str| testdata().join("cosign-real").join(name);
    let file = match path {
        "ca/roots.pem" => real("pki_root_crts.pem"),
        "ca/intermediates.pem" => real("pki_intermediate_crts.pem"),
        "rekor.pub" => real("rekor.pub"),
        "not-a-cert.pem" => real("rekor.pub"),
        other => match other.strip_prefix("/etc/pki/") {
            Some(name) => real(name),
            None => testdata().join("policies").join(other),
        },
    };
    std::fs::read(file).map_err(|e| e.to_string())
}

fn load(text: &str) -> Policy {
    match Policy::load("test.yaml", text, &loader) {
        Ok(l) => l.policy,
        Err(e) => panic!("{e}"),
    }
}

fn r(s: &str) -> Reference {
    s.parse().unwrap()
}

/// A certificate verified under `trust` for the SAN `subject` issued by `issuer`.
fn cert(trust: TrustSource, subject: &str, issuer: &str) -> CertificateEvidence {
    CertificateEvidence {
        claims: CertificateClaims {
            subjects: vec![subject.to_string()],
            issuer: Some(issuer.to_string()),
            github: GitHubClaims {
                repository: Some("acme/app".into()),
                git_ref: Some("refs/tags/v1.2.0".into()),
                trigger: Some("push".into()),
                ..GitHubClaims::default()
            },
        },
        emails: if subject.contains('@') && !subject.contains("://") {
            vec![subject.to_string()]
        } else {
            Vec::new()
        },
        hostnames: Vec::new(),
        trust,
        verified_time: NOW - 3600,
    }
}

fn public_good() -> TrustSource {
    TrustSource::Sigstore(SigstoreRoot::PublicGood)
}

/// A legacy-format signature by `cert` for `identity`.
fn sig(cert: CertificateEvidence, identity: &str) -> SignatureEvidence {
    SignatureEvidence {
        signer: Signer::Certificate(Box::new(cert)),
        format: SignatureFormat::Legacy,
        docker_reference: Some(identity.to_string()),
        manifest_digest_matches: true,
        annotations: BTreeMap::new(),
        tlog: Some(TlogEvidence {
            log: LogSource::Sigstore(SigstoreRoot::PublicGood),
            integrated_time: NOW - 3600,
        }),
    }
}

/// The same signature as a cosign 3 bundle: it signs the digest only.
fn bundle(mut s: SignatureEvidence) -> SignatureEvidence {
    s.format = SignatureFormat::Bundle;
    s.docker_reference = None;
    s
}

fn evidence(reference: &str, sigs: Vec<SignatureEvidence>) -> Evidence {
    Evidence {
        reference: r(reference),
        digest: D8C.parse().unwrap(),
        reference_had_digest: false,
        signatures: sigs,
        configs: vec![],
    }
}

fn codes(policy: &Policy, e: &Evidence) -> (Decision, Vec<&'static str>) {
    let v = evaluate(policy, e, NOW);
    (v.decision, v.findings.iter().map(|f| f.code).collect())
}

fn messages(policy: &Policy, e: &Evidence) -> String {
    let v = evaluate(policy, e, NOW);
    v.findings
        .iter()
        .map(|f| format!("{}: {}", f.code, f.message))
        .collect::<Vec<_>>()
        .join("\n")
}

const KEYLESS: &str = r#"
keys:
  release:
    keyless:
      issuer: https://token.actions.githubusercontent.com
      subjectPattern: 'https://github\.com/acme/app/\.github/workflows/release\.yml@refs/tags/v.*'
      github: {repository: acme/app, trigger: push}
  nightly:
    keyless:
      issuerPattern: 'https://token\.actions\.githubusercontent\.com'
      subject: https://github.com/acme/app/.github/workflows/nightly.yml@refs/heads/main
  ghes:
    keyless:
      instance: github
      issuer: https://token.actions.githubusercontent.com
      subject: https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0
scopes:
  "reg.io/app":
    signed: {keys: [release]}
  "reg.io/either":
    signed: {keys: [release, nightly]}
  "reg.io/both":
    signed: {keys: [release, nightly], threshold: 2}
  "reg.io/ghes":
    signed: {keys: [ghes]}
"#;

#[test]
fn keyless_identity_match_and_mismatch() {
    let p = load(KEYLESS);
    let good = sig(cert(public_good(), RELEASE, ACTIONS), "reg.io/app:1");
    assert_eq!(
        codes(&p, &evidence("reg.io/app:1", vec![good.clone()])),
        (Decision::Allow, vec![])
    );
    // Another workflow of the same repository is not the release signer.
    let other = sig(cert(public_good(), NIGHTLY, ACTIONS), "reg.io/app:1");
    let e = evidence("reg.io/app:1", vec![other]);
    assert_eq!(
        codes(&p, &e),
        (
            Decision::Deny,
            vec!["certificate-identity-mismatch", "no-valid-signature"]
        )
    );
    assert!(messages(&p, &e).contains("not release: certificate subject"));
    // The subject pattern is anchored: a URL that merely contains the workflow does not match.
    let smuggled = format!("https://evil.example/?{RELEASE}");
    let e = evidence(
        "reg.io/app:1",
        vec![sig(cert(public_good(), &smuggled, ACTIONS), "reg.io/app:1")],
    );
    assert_eq!(codes(&p, &e).0, Decision::Deny);
    // Wrong issuer.
    let e = evidence(
        "reg.io/app:1",
        vec![sig(
            cert(public_good(), RELEASE, "https://accounts.google.com"),
            "reg.io/app:1",
        )],
    );
    assert!(messages(&p, &e).contains("certificate issuer \"https://accounts.google.com\""));
    // The signed identity still applies to a keyless legacy signature.
    let e = evidence(
        "reg.io/app:1",
        vec![sig(cert(public_good(), RELEASE, ACTIONS), "reg.io/other:1")],
    );
    assert_eq!(
        codes(&p, &e),
        (
            Decision::Deny,
            vec!["identity-mismatch", "no-valid-signature"]
        )
    );
}

#[test]
fn issuer_pattern_is_anchored_and_github_claims_must_hold() {
    let p = load(KEYLESS);
    let nightly = sig(cert(public_good(), NIGHTLY, ACTIONS), "reg.io/either:1");
    assert_eq!(
        codes(&p, &evidence("reg.io/either:1", vec![nightly])),
        (Decision::Allow, vec![])
    );
    // `issuerPattern` matches the whole issuer: a longer issuer starting the same is refused.
    let longer = sig(
        cert(public_good(), NIGHTLY, &format!("{ACTIONS}.evil.example")),
        "reg.io/either:1",
    );
    assert_eq!(
        codes(&p, &evidence("reg.io/either:1", vec![longer])).0,
        Decision::Deny
    );
    // GitHub claims: the release signer wants trigger push.
    let mut c = cert(public_good(), RELEASE, ACTIONS);
    c.claims.github.trigger = Some("workflow_dispatch".into());
    let e = evidence("reg.io/app:1", vec![sig(c, "reg.io/app:1")]);
    let text = messages(&p, &e);
    assert!(
        text.contains("certificate GitHub workflow trigger \"workflow_dispatch\" is not \"push\""),
        "{text}"
    );
}

#[test]
fn the_trusted_root_is_part_of_the_signer() {
    let p = load(KEYLESS);
    // Verified under GitHub's root: not the public-good release signer...
    let github_root = TrustSource::Sigstore(SigstoreRoot::GitHub);
    let e = evidence(
        "reg.io/app:1",
        vec![sig(
            cert(github_root.clone(), RELEASE, ACTIONS),
            "reg.io/app:1",
        )],
    );
    assert_eq!(codes(&p, &e), (Decision::Deny, vec!["no-valid-signature"]));
    // ...but the signer that names `instance: github`.
    let e = evidence(
        "reg.io/ghes:1",
        vec![sig(cert(github_root, RELEASE, ACTIONS), "reg.io/ghes:1")],
    );
    assert_eq!(codes(&p, &e), (Decision::Allow, vec![]));
    let e = evidence(
        "reg.io/ghes:1",
        vec![sig(cert(public_good(), RELEASE, ACTIONS), "reg.io/ghes:1")],
    );
    assert_eq!(codes(&p, &e).0, Decision::Deny);
    let mut sources: Vec<String> = p.trust_sources().iter().map(|s| s.to_string()).collect();
    sources.sort();
    assert_eq!(
        sources,
        vec!["GitHub's Sigstore root", "Sigstore public-good root"]
    );
}

#[test]
fn one_identity_counts_once_toward_threshold_and_required() {
    let p = load(KEYLESS);
    // Two signatures by the same release workflow: one signer, threshold 2 not met.
    let a = sig(cert(public_good(), RELEASE, ACTIONS), "reg.io/both:1");
    let e = evidence("reg.io/both:1", vec![a.clone(), a.clone()]);
    assert_eq!(codes(&p, &e), (Decision::Deny, vec!["threshold-not-met"]));
    assert!(messages(&p, &e).contains("1 distinct signer(s) of [release, nightly]"));
    // Release and nightly: two signers.
    let b = sig(cert(public_good(), NIGHTLY, ACTIONS), "reg.io/both:1");
    assert_eq!(
        codes(&p, &evidence("reg.io/both:1", vec![a, b])),
        (Decision::Allow, vec![])
    );

    // One certificate matching two names counts for one of them only.
    let p = load(
        r#"
keys:
  any-acme:
    keyless:
      issuer: https://token.actions.githubusercontent.com
      subjectPattern: 'https://github\.com/acme/.*'
  release:
    keyless:
      issuer: https://token.actions.githubusercontent.com
      subject: https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0
scopes:
  "reg.io/two":
    signed: {keys: [any-acme, release], threshold: 2}
  "reg.io/required":
    signed: {keys: [any-acme, release], required: [any-acme, release]}
  "reg.io/one":
    signed: {keys: [any-acme, release], required: [release]}
"#,
    );
    let release = |id: &str| sig(cert(public_good(), RELEASE, ACTIONS), id);
    let nightly = |id: &str| sig(cert(public_good(), NIGHTLY, ACTIONS), id);
    assert_eq!(
        codes(&p, &evidence("reg.io/two:1", vec![release("reg.io/two:1")])),
        (Decision::Deny, vec!["threshold-not-met"])
    );
    let e = evidence("reg.io/required:1", vec![release("reg.io/required:1")]);
    assert_eq!(
        codes(&p, &e),
        (Decision::Deny, vec!["required-signer-missing"])
    );
    // A second identity fills the other name: the matching moves release to `release`.
    let e = evidence(
        "reg.io/required:1",
        vec![release("reg.io/required:1"), nightly("reg.io/required:1")],
    );
    assert_eq!(codes(&p, &e), (Decision::Allow, vec![]));
    let e = evidence(
        "reg.io/two:1",
        vec![nightly("reg.io/two:1"), release("reg.io/two:1")],
    );
    assert_eq!(codes(&p, &e), (Decision::Allow, vec![]));
    // Required `release` while only nightly signed.
    let e = evidence("reg.io/one:1", vec![nightly("reg.io/one:1")]);
    assert_eq!(
        codes(&p, &e),
        (Decision::Deny, vec!["required-signer-missing"])
    );
}

const PKI: &str = r#"
keys:
  build:
    pki:
      caRoots: {path: ca/roots.pem}
      caIntermediates: {path: ca/intermediates.pem}
      subjectEmail: qiwan@redhat.com
      subjectHostname: build.example.com
    notAfter: "2027-01-01T00:00:00Z"
scopes:
  "reg.io/app":
    signed: {keys: [build]}
"#;

fn pki_trust() -> TrustSource {
    TrustSource::Authority(CertificateAuthority {
        roots: Material::Path("ca/roots.pem".into()),
        intermediates: Some(Material::Path("ca/intermediates.pem".into())),
        fulcio: false,
    })
}

#[test]
fn pki_signer_matches_email_and_hostname_sans_under_its_ca() {
    let p = load(PKI);
    let mut c = cert(pki_trust(), "qiwan@redhat.com", "unused");
    c.claims.issuer = None;
    c.hostnames = vec!["build.example.com".into()];
    let e = evidence("reg.io/app:1", vec![sig(c.clone(), "reg.io/app:1")]);
    assert_eq!(codes(&p, &e), (Decision::Allow, vec![]));
    // The signer retires at notAfter: the verdict says so.
    assert_eq!(evaluate(&p, &e, NOW).valid_until, Some(1_798_761_600));
    let late = evaluate(&p, &e, 1_798_761_600);
    assert_eq!(late.findings[0].code, "key-expired");
    // Both SANs are required.
    let mut wrong_host = c.clone();
    wrong_host.hostnames = vec!["laptop.example.com".into()];
    let e = evidence("reg.io/app:1", vec![sig(wrong_host, "reg.io/app:1")]);
    let text = messages(&p, &e);
    assert!(
        text.contains(
            "certificate hostnames [\"laptop.example.com\"] do not include \"build.example.com\""
        ),
        "{text}"
    );
    // The same certificate chained to other roots is not this signer.
    let mut other_ca = c;
    other_ca.trust = TrustSource::Authority(CertificateAuthority {
        roots: Material::Path("other/roots.pem".into()),
        intermediates: Some(Material::Path("ca/intermediates.pem".into())),
        fulcio: false,
    });
    let e = evidence("reg.io/app:1", vec![sig(other_ca, "reg.io/app:1")]);
    assert_eq!(codes(&p, &e), (Decision::Deny, vec!["no-valid-signature"]));
    assert_eq!(
        p.trust_files(),
        vec!["ca/intermediates.pem", "ca/roots.pem"]
    );
}

#[test]
fn legacy_format_can_be_required_on_a_rule_or_a_signer() {
    let p = load(
        r#"
keys:
  release:
    keyless:
      issuer: https://token.actions.githubusercontent.com
      subject: https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0
  strict:
    keyless:
      issuer: https://token.actions.githubusercontent.com
      subject: https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0
    formats: [legacy]
scopes:
  "reg.io/any":
    signed: {keys: [release]}
  "reg.io/legacy":
    signed: {keys: [release], formats: [legacy]}
  "reg.io/strict":
    signed: {keys: [strict]}
  "reg.io/exact":
    signed: {keys: [release], identity: matchRepository}
"#,
    );
    let b = |id: &str| bundle(sig(cert(public_good(), RELEASE, ACTIONS), id));
    // Default: a bundle (digest only) counts under the default identity rule.
    assert_eq!(
        codes(&p, &evidence("reg.io/any:1", vec![b("reg.io/any:1")])),
        (Decision::Allow, vec![])
    );
    let e = evidence("reg.io/legacy:1", vec![b("reg.io/legacy:1")]);
    assert_eq!(
        codes(&p, &e),
        (
            Decision::Deny,
            vec!["no-valid-signature", "signature-format-not-allowed"]
        )
    );
    assert!(messages(&p, &e).contains("in the bundle format; this rule accepts only [legacy]"));
    let e = evidence("reg.io/strict:1", vec![b("reg.io/strict:1")]);
    assert!(messages(&p, &e).contains("which signer strict does not accept"));
    // An identity rule written out needs a signed reference.
    let e = evidence("reg.io/exact:1", vec![b("reg.io/exact:1")]);
    assert_eq!(
        codes(&p, &e),
        (
            Decision::Deny,
            vec!["identity-not-signed", "no-valid-signature"]
        )
    );
    // The legacy signature passes everywhere.
    for scope in [
        "reg.io/any",
        "reg.io/legacy",
        "reg.io/strict",
        "reg.io/exact",
    ] {
        let id = format!("{scope}:1");
        let e = evidence(&id, vec![sig(cert(public_good(), RELEASE, ACTIONS), &id)]);
        assert_eq!(codes(&p, &e), (Decision::Allow, vec![]), "{scope}");
    }
    let x = explain(&p, &r("reg.io/legacy:1"));
    assert!(
        x.requirements[0].contains("formats [legacy]"),
        "{:?}",
        x.requirements
    );
    let x = explain(&p, &r("reg.io/strict:1"));
    assert!(
        x.requirements
            .iter()
            .any(|l| l == "signer strict: formats [legacy]"),
        "{:?}",
        x.requirements
    );
}

#[test]
fn explain_names_the_signer_and_its_root() {
    let p = load(KEYLESS);
    let x = explain(&p, &r("reg.io/app:1"));
    assert_eq!(
        x.requirements[1],
        "signer release: keyless subject /https://github\\.com/acme/app/\\.github/workflows/release\\.yml@refs/tags/v.*/ issuer \"https://token.actions.githubusercontent.com\" github.repository \"acme/app\" github.trigger \"push\" under Sigstore public-good root"
    );
}

fn diagnostics(text: &str) -> Vec<(Severity, &'static str, Option<usize>, Option<usize>)> {
    lint("test.yaml", text, &loader)
        .iter()
        .map(|d| (d.severity, d.code, d.line, d.column))
        .collect()
}

#[test]
fn lint_reports_bad_signers_with_positions() {
    let text = r#"keys:
  bad-pattern:
    keyless:
      issuer: https://token.actions.githubusercontent.com
      subjectPattern: "https://github.com/(acme"
  both:
    keyless:
      issuer: https://x.example
      issuerPattern: "https://.*"
      subject: a@b.example
  root-and-instance:
    keyless:
      issuer: https://x.example
      subject: a@b.example
      instance: github
      trustedRoot: root.json
  logged:
    keyless:
      issuer: https://x.example
      subject: a@b.example
    rekorKeys: [{path: rekor.pub}]
  no-subject:
    pki:
      caRoots: {path: roots.pem}
  no-rekor:
    fulcio:
      ca: {pem: "-----BEGIN CERTIFICATE-----"}
      oidcIssuer: https://x.example
      subjectEmail: a@b.example
  two-kinds:
    path: keys/keyA.pub
    pki:
      caRoots: {path: roots.pem}
      subjectEmail: a@b.example
default:
  signed:
    keys: [bad-pattern, both, root-and-instance, logged, no-subject, no-rekor, two-kinds]
    formats: []
"#;
    let d = diagnostics(text);
    assert_eq!(
        d,
        vec![
            (
                Severity::Error,
                "invalid-certificate-pattern",
                Some(5),
                Some(7)
            ),
            (
                Severity::Error,
                "certificate-identity-invalid",
                Some(7),
                Some(5)
            ),
            (Severity::Error, "trusted-root-invalid", Some(16), Some(7)),
            (
                Severity::Error,
                "rekor-keys-with-trusted-root",
                Some(21),
                Some(5)
            ),
            (
                Severity::Error,
                "certificate-identity-invalid",
                Some(23),
                Some(5)
            ),
            // roots.pem does not exist: placed at the file name.
            (
                Severity::Error,
                "trust-material-unreadable",
                Some(24),
                Some(23)
            ),
            (Severity::Error, "rekor-keys-required", Some(26), Some(5)),
            (Severity::Error, "key-source-invalid", Some(30), Some(3)),
            (Severity::Error, "invalid-formats", Some(38), Some(5)),
        ]
    );
    let all = lint("test.yaml", text, &loader);
    let pattern = all
        .iter()
        .find(|d| d.code == "invalid-certificate-pattern")
        .unwrap();
    assert!(
        pattern.message.contains("keyless.subjectPattern")
            && pattern.message.contains("unclosed group"),
        "{}",
        pattern.message
    );
    // A good policy with no certificate signer in a scope still loads; unknown fields are named.
    let d = diagnostics("keys:\n  k:\n    keyless:\n      issuer: x\n      subject: y\n      audience: z\ndefault: {signed: {keys: [k]}}\n");
    assert_eq!(
        d,
        vec![(Severity::Error, "unknown-field", Some(6), Some(7))]
    );
}

fn fixture_b64(name: &str) -> String {
    let bytes = std::fs::read(testdata().join("cosign-real").join(name)).unwrap();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn containers_policy_fulcio_pki_and_rekor_convert_and_evaluate() {
    let text = format!(
        r#"{{
  "default": [{{"type": "reject"}}],
  "transports": {{
    "docker": {{
      "reg.io/fulcio": [
        {{"type": "sigstoreSigned",
          "fulcio": {{"caPath": "/etc/pki/fulcio_v1.crt.pem", "oidcIssuer": "https://github.com/login/oauth", "subjectEmail": "mitr@redhat.com"}},
          "rekorPublicKeyPath": "/etc/pki/rekor.pub",
          "signedIdentity": {{"type": "matchRepository"}}}}
      ],
      "reg.io/pki": [
        {{"type": "sigstoreSigned",
          "pki": {{"caRootsData": "{roots}", "caIntermediatesPath": "/etc/pki/pki_intermediate_crts.pem", "subjectEmail": "qiwan@redhat.com"}}}}
      ],
      "reg.io/keyrekor": [
        {{"type": "sigstoreSigned", "keyPath": "keys/cosign.pub",
          "rekorPublicKeyDatas": ["{rekor}"]}}
      ]
    }}
  }}
}}"#,
        roots = fixture_b64("pki_root_crts.pem"),
        rekor = fixture_b64("rekor.pub"),
    );
    let conv = signet_policy::containers::convert("policy.json", &text).unwrap();
    assert!(conv.warnings.is_empty(), "{:?}", conv.warnings);
    let yaml = serde_yaml_ng::to_string(&conv.document).unwrap();
    assert!(
        yaml.contains("  fulcio-1:\n    fulcio:\n      ca:\n        path: /etc/pki/fulcio_v1.crt.pem\n      oidcIssuer: https://github.com/login/oauth\n      subjectEmail: mitr@redhat.com\n    rekorKeys:\n    - path: /etc/pki/rekor.pub\n"),
        "{yaml}"
    );
    assert!(
        yaml.contains(
            "    pki:\n      caRoots:\n        pem: |\n          -----BEGIN CERTIFICATE-----"
        ),
        "{yaml}"
    );
    assert!(yaml.contains("      caIntermediates:\n        path: /etc/pki/pki_intermediate_crts.pem\n      subjectEmail: qiwan@redhat.com\n"), "{yaml}");
    assert!(yaml.contains("    path: keys/cosign.pub\n    rekorKeys:\n    - pem: |\n        -----BEGIN PUBLIC KEY-----"), "{yaml}");
    assert_eq!(
        yaml.matches("      formats:\n      - legacy\n").count(),
        3,
        "{yaml}"
    );

    // The converted policy evaluates Fulcio evidence: certificate under the fixed CA, Rekor
    // entry by the named key.
    let p = Policy::load("policy.json", &text, &loader).unwrap().policy;
    let fulcio_ca = TrustSource::Authority(CertificateAuthority {
        roots: Material::Path("/etc/pki/fulcio_v1.crt.pem".into()),
        intermediates: None,
        fulcio: true,
    });
    let mut s = sig(
        cert(
            fulcio_ca,
            "mitr@redhat.com",
            "https://github.com/login/oauth",
        ),
        "reg.io/fulcio/app:1",
    );
    s.tlog = Some(TlogEvidence {
        log: LogSource::RekorKey(Material::Path("/etc/pki/rekor.pub".into())),
        integrated_time: NOW - 10,
    });
    let e = evidence("reg.io/fulcio/app:1", vec![s.clone()]);
    assert_eq!(codes(&p, &e), (Decision::Allow, vec![]));
    // Without the Rekor entry, or with one from another log: refused.
    let mut unlogged = s.clone();
    unlogged.tlog = None;
    let e = evidence("reg.io/fulcio/app:1", vec![unlogged]);
    assert_eq!(
        codes(&p, &e),
        (
            Decision::Deny,
            vec!["no-valid-signature", "tlog-entry-missing"]
        )
    );
    // containers/image reads no bundles.
    let e = evidence("reg.io/fulcio/app:1", vec![bundle(s)]);
    assert_eq!(
        codes(&p, &e),
        (
            Decision::Deny,
            vec!["no-valid-signature", "signature-format-not-allowed"]
        )
    );
    assert_eq!(
        p.trust_files(),
        vec![
            "/etc/pki/fulcio_v1.crt.pem",
            "/etc/pki/pki_intermediate_crts.pem",
            "/etc/pki/rekor.pub"
        ]
    );
    assert_eq!(p.rekor_keys().len(), 2);
}

#[test]
fn containers_policy_certificate_errors_follow_containers_image() {
    let text = r#"{
  "default": [{"type": "reject"}],
  "transports": {"docker": {
    "reg.io/a": [{"type": "sigstoreSigned", "fulcio": {"caPath": "ca.pem", "oidcIssuer": "https://x", "subjectEmail": "a@b"}}],
    "reg.io/b": [{"type": "sigstoreSigned", "pki": {"caRootsPath": "r.pem", "caRootsData": "eA=="}}],
    "reg.io/c": [{"type": "sigstoreSigned", "pki": {"caRootsPath": "r.pem"}}],
    "reg.io/d": [{"type": "sigstoreSigned", "keyPath": "k.pub", "rekorPublicKeyPath": "r.pub", "rekorPublicKeyData": "eA=="}],
    "reg.io/e": [{"type": "sigstoreSigned", "fulcio": {"caPath": "ca.pem", "oidcIssuer": "https://x", "subjectEmail": "a@b", "extra": 1}, "rekorPublicKeyPath": "r.pub"}],
    "reg.io/f": [{"type": "sigstoreSigned", "pki": {"caRootsData": "***", "subjectEmail": "a@b"}}]
  }}
}"#;
    let d: Vec<(&str, Option<usize>, String)> = lint("policy.json", text, &loader)
        .into_iter()
        .map(|d| (d.code, d.line, d.message))
        .collect();
    let got: Vec<(&str, Option<usize>)> = d.iter().map(|(c, l, _)| (*c, *l)).collect();
    assert_eq!(
        got,
        vec![
            ("rekor-keys-required", Some(4)),
            ("ambiguous-key-source", Some(5)),
            ("missing-field", Some(6)),
            ("ambiguous-key-source", Some(7)),
            ("unknown-field", Some(8)),
            ("material-invalid", Some(9)),
        ],
        "{d:?}"
    );
    assert!(
        d[1].2.contains("both caRootsPath and caRootsData"),
        "{}",
        d[1].2
    );
    assert!(d[2]
        .2
        .contains("at least one of subjectEmail and subjectHostname"));
    assert!(d[5].2.contains("caRootsData is not base64 of a PEM text"));
}

#[test]
fn trust_material_is_read_through_the_loader_and_shape_checked() {
    let text = r#"keys:
  build:
    pki:
      caRoots: {path: not-a-cert.pem}
      caIntermediates: {pem: "-----BEGIN PUBLIC KEY-----"}
      subjectEmail: a@b.example
    rekorKeys:
    - path: ca/roots.pem
    - path: missing/rekor.pub
  release:
    keyless:
      issuer: https://x.example
      subject: a@b.example
      trustedRoot: ca/roots.pem
default:
  signed: {keys: [build, release], threshold: 2}
"#;
    let d = lint("test.yaml", text, &loader);
    let got: Vec<(&str, Option<usize>, &str)> = d
        .iter()
        .map(|d| (d.code, d.line, d.message.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "material-invalid",
                Some(4),
                "key \"build\" pki.caRoots: \"not-a-cert.pem\" holds no PEM CERTIFICATE block"
            ),
            (
                "material-invalid",
                Some(5),
                "key \"build\" pki.caIntermediates: inline PEM holds no PEM CERTIFICATE block"
            ),
            (
                "material-invalid",
                Some(8),
                "key \"build\" rekorKeys.[0]: \"ca/roots.pem\" holds no PEM PUBLIC KEY block"
            ),
            (
                "trust-material-unreadable",
                Some(9),
                "key \"build\" rekorKeys.[1]: cannot read \"missing/rekor.pub\": No such file or directory (os error 2)"
            ),
            (
                "material-invalid",
                Some(14),
                "key \"release\" keyless.trustedRoot: \"ca/roots.pem\" is not a JSON trusted root"
            ),
        ]
    );
}
