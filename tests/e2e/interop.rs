//! Interop with real implementations: upstream cosign / containers/image signatures
//! (testdata/cosign-real), skopeo 1.13.3 and sigstore-rs signatures (testdata/skopeo-1.13) run
//! through `signet verify` with the verdicts their READMEs give, and the `sigstore` crate (0.15)
//! as an independent peer: it verifies what `signet sign` pushed, Signet verifies what it signed,
//! and each reads the other's key files.
//!
//! Where the fixtures hold an image manifest whose config and layer blobs are not part of the
//! fixture, the image lives in an OCI layout (distribution refuses a manifest whose blobs are
//! missing; verification needs only the manifest). Signature manifests whose blobs are all in the
//! fixture are also pushed byte for byte to the real registry and read from there with
//! `--signature-repo`.
//!
//! Not supported yet by Signet: certificates (Fulcio, private PKI) and Rekor bundles. Signatures
//! that carry them are checked in key mode only: they must fail closed when no given key verifies
//! them (exit 12); the certificate and bundle annotations are not looked at.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use p256::pkcs8::DecodePublicKey as _;
use serde_json::{json, Value};
use signet_oci::layout::OciLayout;
use signet_oci::manifest::{OCI_CONFIG, OCI_MANIFEST, SIMPLE_SIGNING};
use signet_oci::{Descriptor, Digest};
use signet_sign::SigstoreJson;
use sigstore::cosign::constraint::PrivateKeySigner;
use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{
    verify_constraints, ClientBuilder, Constraint, CosignCapabilities, SignatureLayer,
};
use sigstore::crypto::signing_key::SigStoreKeyPair;
use sigstore::crypto::SigningScheme;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};

use crate::support::{
    self, client, code, run, runtime, s, signet, TestRegistry, KEY_PASSWORD as PASSWORD,
};
/// The Docker schema-2 manifest of dir-img-cosign-valid (and most other cosign-real folders).
const COSIGN_DIGEST: &str =
    "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00";
/// app-manifest.raw.json of skopeo-1.13.
const APP_DIGEST: &str = "sha256:8c60e41c50b8e88f4260816a551db9f5a409729368197a61cc08789a9f14ce8b";
/// rssigned-manifest.raw.json of skopeo-1.13.
const RSSIGNED_DIGEST: &str =
    "sha256:d23af51a9a072f70f2cf03d143c386e0af924a0bee310ebdd9366b954acbcac2";
const SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

fn testdata(rel: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata")).join(rel)
}

fn cosign_real(rel: &str) -> PathBuf {
    testdata(&format!("cosign-real/{rel}"))
}

fn skopeo(rel: &str) -> PathBuf {
    testdata(&format!("skopeo-1.13/{rel}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What one `signet verify --output json` run found.
struct Verdict {
    code: i32,
    stderr: String,
    /// The JSON report (absent when verify stopped with an error).
    report: Option<Value>,
}

impl Verdict {
    fn candidates(&self) -> Vec<Value> {
        self.report.as_ref().unwrap()["signatures"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Names of the failed checks of candidate `i`.
    fn failed(&self, i: usize) -> Vec<String> {
        self.candidates()[i]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["passed"] == json!(false))
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    }

    fn passed(&self, i: usize) -> bool {
        self.failed(i).is_empty()
    }

    fn outcome(&self) -> String {
        self.report.as_ref().unwrap()["outcome"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// ACCEPT: exit 0 and `verified` candidates passing every check.
    fn assert_accepted(&self, verified: usize) {
        assert_eq!(self.code, 0, "{}", self.stderr);
        assert_eq!(self.outcome(), "verified");
        let passing = (0..self.candidates().len())
            .filter(|&i| self.passed(i))
            .count();
        assert_eq!(passing, verified);
    }

    /// REJECT with exit 12, every candidate failing exactly the checks `failed[i]`.
    fn assert_rejected(&self, failed: &[&[&str]]) {
        assert_eq!(self.code, 12, "{}", self.stderr);
        assert_eq!(self.outcome(), "none-verified");
        assert_eq!(self.candidates().len(), failed.len());
        for (i, expected) in failed.iter().enumerate() {
            assert_eq!(self.failed(i), *expected, "candidate {i}");
            for name in *expected {
                assert!(self.stderr.contains(name), "stderr names {name}");
            }
        }
    }
}

/// `signet verify --output json --key K… --identity-rule RULE [--identity ID] [extra…] IMAGE`.
fn verify(
    keys: &[&Path],
    rule: &str,
    identity: Option<&str>,
    extra: &[&str],
    image: &str,
) -> Verdict {
    let mut args: Vec<String> = vec!["verify".into(), "--output".into(), "json".into()];
    for key in keys {
        args.extend(["--key".to_string(), s(key).to_string()]);
    }
    args.extend(["--identity-rule".to_string(), rule.to_string()]);
    if let Some(identity) = identity {
        args.extend(["--identity".to_string(), identity.to_string()]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    args.push(image.to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&refs);
    let report = serde_json::from_slice::<Value>(&out.stdout).ok();
    Verdict {
        code: code(&out),
        stderr: stderr(&out),
        report,
    }
}

/// The media type an image manifest declares, or the one its shape implies.
fn manifest_media_type(bytes: &[u8]) -> String {
    let value: Value = serde_json::from_slice(bytes).unwrap();
    match (value["mediaType"].as_str(), value["schemaVersion"].as_u64()) {
        (Some(media_type), _) => media_type.to_string(),
        (None, Some(1)) => SCHEMA1.to_string(),
        (None, _) => OCI_MANIFEST.to_string(),
    }
}

/// A cosign `.sig` manifest (written here, independently of Signet's own builder) whose layers
/// are `entries`: layer mediaType = mimeType, blob = payload, annotations as given. Returns the
/// manifest bytes and the blobs it names (config first).
fn cosign_signature_manifest(entries: &[SigstoreJson]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let layers: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "mediaType": e.mime_type,
                "size": e.payload.len(),
                "digest": Digest::sha256(&e.payload).to_string(),
                "annotations": e.annotations,
            })
        })
        .collect();
    let diff_ids: Vec<String> = entries
        .iter()
        .map(|e| Digest::sha256(&e.payload).to_string())
        .collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "", "os": "", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": config.len(), "digest": Digest::sha256(&config).to_string()},
        "layers": layers,
    }))
    .unwrap();
    let mut blobs = vec![config];
    blobs.extend(entries.iter().map(|e| e.payload.clone()));
    (manifest, blobs)
}

/// The `signature-N` files of a cosign-real folder, parsed (1, 2, … up to the first missing).
fn fixture_signatures(folder: &str) -> Vec<SigstoreJson> {
    (1..)
        .map(|n| cosign_real(&format!("{folder}/signature-{n}")))
        .take_while(|p| p.exists())
        .map(|p| SigstoreJson::parse(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// An OCI layout in `dir` holding `manifest` (exact bytes, tagged `v1`) when given, and the
/// signature manifest `signatures` (exact bytes) with its blobs at the cosign tag of
/// `attached_to` (the digest whose signatures these are, as a registry would store them).
fn layout_with(
    dir: &Path,
    manifest: Option<&[u8]>,
    attached_to: &Digest,
    signatures: Option<(&[u8], &[Vec<u8>])>,
) -> String {
    let layout = OciLayout::create_or_open(dir).unwrap();
    if let Some(bytes) = manifest {
        let digest = layout.write_blob(bytes).unwrap();
        let desc = Descriptor::of(&manifest_media_type(bytes), bytes);
        assert_eq!(desc.digest, digest);
        layout.set_tag("v1", &desc).unwrap();
    }
    if let Some((sig_manifest, blobs)) = signatures {
        for blob in blobs {
            layout.write_blob(blob).unwrap();
        }
        layout.write_blob(sig_manifest).unwrap();
        layout
            .set_tag(
                &attached_to.signature_tag(),
                &Descriptor::of(OCI_MANIFEST, sig_manifest),
            )
            .unwrap();
    }
    s(dir).to_string()
}

/// A cosign-real folder as a store would hold it.
struct Fixture {
    /// The OCI layout directory (the image is tagged `v1`).
    dir: String,
    /// `--signature-repo HOST/REPO` when the signatures are in the registry.
    signature_repo: Vec<String>,
}

impl Fixture {
    fn extra(&self) -> Vec<&str> {
        self.signature_repo.iter().map(String::as_str).collect()
    }
}

/// A layout for cosign-real `folder`: its manifest.json (if any) tagged `v1`, and its
/// signature-N files as a `.sig` manifest attached to that manifest's digest (or, without a
/// manifest, to the digest the signatures name). With `reg`, the `.sig` manifest and its blobs
/// are pushed to repository `cosign-real/<folder>` there instead.
fn cosign_fixture(dir: &Path, folder: &str, reg: Option<&TestRegistry>) -> Fixture {
    let manifest = std::fs::read(cosign_real(&format!("{folder}/manifest.json"))).ok();
    let attached_to = match &manifest {
        Some(bytes) => Digest::sha256(bytes),
        None => COSIGN_DIGEST.parse().unwrap(),
    };
    let (sig_manifest, blobs) = cosign_signature_manifest(&fixture_signatures(folder));
    // Signatures in the layout only when they are not read from the registry, so that each
    // run proves where it read them from.
    let in_layout = reg.is_none().then_some((&sig_manifest[..], &blobs[..]));
    let dir = layout_with(dir, manifest.as_deref(), &attached_to, in_layout);
    let signature_repo = match reg {
        None => Vec::new(),
        Some(reg) => {
            let repo = format!("cosign-real/{folder}");
            push_signature_manifest(reg, &repo, &attached_to, &sig_manifest, &blobs);
            vec![
                "--signature-repo".to_string(),
                format!("{}/{repo}", reg.host()),
            ]
        }
    };
    Fixture {
        dir,
        signature_repo,
    }
}

/// Push `sig_manifest` (exact bytes) with its `blobs` to `repo` at the cosign tag of
/// `attached_to`, and check the registry serves the same bytes back.
fn push_signature_manifest(
    reg: &TestRegistry,
    repo: &str,
    attached_to: &Digest,
    sig_manifest: &[u8],
    blobs: &[Vec<u8>],
) {
    let reference = reg.reference(&format!("{repo}:{}", attached_to.signature_tag()));
    let c = client();
    runtime().block_on(async {
        for blob in blobs {
            c.put_blob(&reference, bytes::Bytes::from(blob.clone()))
                .await
                .unwrap();
        }
        c.put_manifest(&reference, sig_manifest, OCI_MANIFEST)
            .await
            .unwrap();
        let back = c.get_manifest(&reference).await.unwrap();
        assert_eq!(
            back.bytes, sig_manifest,
            "the registry serves the exact bytes"
        );
    });
}

const SINGLE: &str = "192.168.64.2:5000/cosign-signed-single-sample";

#[test]
fn cosign_real_key_fixtures_get_upstream_verdicts_from_a_layout() {
    check_cosign_real_key_fixtures(None);
}

#[test]
fn cosign_real_key_fixtures_get_upstream_verdicts_with_signatures_in_the_registry() {
    let reg = TestRegistry::start();
    check_cosign_real_key_fixtures(Some(&reg));
}

/// Every key-based cosign-real folder with the verdict of its README. With `reg`, the `.sig`
/// manifests are read from the registry (`--signature-repo`), else from the layout.
fn check_cosign_real_key_fixtures(reg: Option<&TestRegistry>) {
    let tmp = tempfile::tempdir().unwrap();
    let key = cosign_real("cosign.pub");
    let key2 = cosign_real("cosign2.pub");
    let layout = |folder: &str| cosign_fixture(&tmp.path().join(folder), folder, reg);
    let image = |dir: &str| format!("oci:{dir}:v1");

    // dir-img-cosign-valid: ACCEPT with matchRepository for the signed repository.
    let valid = layout("dir-img-cosign-valid");
    verify(
        &[&key],
        "matchRepository",
        Some(SINGLE),
        &valid.extra(),
        &image(&valid.dir),
    )
    .assert_accepted(1);
    let by_digest = format!("oci:{}@{COSIGN_DIGEST}", valid.dir);
    verify(
        &[&key],
        "matchRepository",
        Some(&format!("{SINGLE}@{COSIGN_DIGEST}")),
        &valid.extra(),
        &by_digest,
    )
    .assert_accepted(1);
    // REJECT with matchExact (the signed identity has no tag), for another repository, and for
    // an exact reference elsewhere; the signature itself verifies each time.
    for (rule, identity) in [
        ("matchExact", SINGLE),
        ("matchExact", &format!("{SINGLE}:latest")),
        ("matchRepository", "testing/manifest:notlatest"),
        ("matchExact", "this/does-not:match"),
    ] {
        verify(
            &[&key],
            rule,
            Some(identity),
            &valid.extra(),
            &image(&valid.dir),
        )
        .assert_rejected(&[&["identity"]]);
    }
    // Without a key that verifies it: the signature check fails (identity still matches).
    verify(
        &[&key2],
        "matchRepository",
        Some(SINGLE),
        &valid.extra(),
        &image(&valid.dir),
    )
    .assert_rejected(&[&["signature"]]);

    // dir-img-cosign-valid-2: both signatures verify; both fail identity for another reference.
    let valid2 = layout("dir-img-cosign-valid-2");
    verify(
        &[&key],
        "matchRepository",
        Some(SINGLE),
        &valid2.extra(),
        &image(&valid2.dir),
    )
    .assert_accepted(2);
    verify(
        &[&key],
        "matchRepository",
        Some("this/does-not:match"),
        &valid2.extra(),
        &image(&valid2.dir),
    )
    .assert_rejected(&[&["identity"], &["identity"]]);

    // dir-img-cosign-valid-with-tag (made by containers/image, with `optional`): matchExact.
    let tagged = layout("dir-img-cosign-valid-with-tag");
    let skopeo_signed = "192.168.64.2:5000/skopeo-signed";
    verify(
        &[&key],
        "matchExact",
        Some(&format!("{skopeo_signed}:tag")),
        &tagged.extra(),
        &image(&tagged.dir),
    )
    .assert_accepted(1);
    verify(
        &[&key],
        "matchExact",
        Some(&format!("{skopeo_signed}:othertag")),
        &tagged.extra(),
        &image(&tagged.dir),
    )
    .assert_rejected(&[&["identity"]]);

    // dir-img-cosign-mixed: an unknown key's signature first, then the valid one: ACCEPT.
    let mixed = layout("dir-img-cosign-mixed");
    let verdict = verify(
        &[&key],
        "matchRepository",
        Some(SINGLE),
        &mixed.extra(),
        &image(&mixed.dir),
    );
    verdict.assert_accepted(1);
    assert_eq!(verdict.failed(0), ["signature"]);
    assert!(verdict.passed(1));

    // dir-img-cosign-modified-manifest: the signature verifies but names 634a8f35, not d9dcafdb.
    let modified = layout("dir-img-cosign-modified-manifest");
    let verdict = verify(
        &[&key],
        "matchRepository",
        Some(SINGLE),
        &modified.extra(),
        &image(&modified.dir),
    );
    verdict.assert_rejected(&[&["manifest-digest"]]);
    assert!(verdict.stderr.contains(COSIGN_DIGEST));

    // dir-img-cosign-manifest-digest-error: a schema-1 manifest with a broken `signatures`
    // member. Upstream cannot compute its digest and rejects; Signet does not read schema 1 at
    // all and stops with an error (exit 2) before looking at signatures: fail closed.
    let schema1 = layout("dir-img-cosign-manifest-digest-error");
    let verdict = verify(
        &[&key],
        "matchRepository",
        Some(SINGLE),
        &schema1.extra(),
        &image(&schema1.dir),
    );
    assert_eq!(verdict.code, 2, "{}", verdict.stderr);
    assert!(verdict.report.is_none());
    assert!(verdict.stderr.contains("schema 1"), "{}", verdict.stderr);

    // dir-img-cosign-no-manifest: only the signature is there: the image is not found (exit 11),
    // by digest and by tag.
    let no_manifest = layout("dir-img-cosign-no-manifest");
    for missing in [
        format!("oci:{}@{COSIGN_DIGEST}", no_manifest.dir),
        image(&no_manifest.dir),
    ] {
        let verdict = verify(
            &[&key],
            "matchRepository",
            Some(SINGLE),
            &no_manifest.extra(),
            &missing,
        );
        assert_eq!(verdict.code, 11, "{}", verdict.stderr);
        assert!(verdict.report.is_none());
        assert!(
            verdict.stderr.contains("signet: error: not found: ")
                && verdict.stderr.contains("dir-img-cosign-no-manifest"),
            "{}",
            verdict.stderr
        );
    }

    // dir-img-cosign-other-attachment: a text/plain layer is not a signature: no signatures (10).
    let other = layout("dir-img-cosign-other-attachment");
    let verdict = verify(
        &[&key],
        "matchRepository",
        Some(SINGLE),
        &other.extra(),
        &image(&other.dir),
    );
    assert_eq!(verdict.code, 10, "{}", verdict.stderr);
    assert_eq!(verdict.outcome(), "no-signatures");
    assert!(verdict.candidates().is_empty());

    // dir-img-cosign-key-rekor-valid, key part only (the Rekor bundle is not checked yet):
    // ACCEPT with cosign2.pub, or with both keys; REJECT with cosign.pub alone.
    let rekor = layout("dir-img-cosign-key-rekor-valid");
    let key1 = "192.168.64.2:5000/cosign-signed/key-1";
    verify(
        &[&key2],
        "matchRepository",
        Some(key1),
        &rekor.extra(),
        &image(&rekor.dir),
    )
    .assert_accepted(1);
    verify(
        &[&key, &key2],
        "matchRepository",
        Some(key1),
        &rekor.extra(),
        &image(&rekor.dir),
    )
    .assert_accepted(1);
    verify(
        &[&key],
        "matchRepository",
        Some(key1),
        &rekor.extra(),
        &image(&rekor.dir),
    )
    .assert_rejected(&[&["signature"]]);
}

/// Not supported yet: certificate-based signatures (Fulcio + Rekor, private PKI). With the
/// fixture keys they fail closed; the certificate is never used as a key.
#[test]
fn certificate_signatures_fail_closed_without_certificate_support() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = |folder: &str| cosign_fixture(&tmp.path().join(folder), folder, None).dir;
    let keys = [cosign_real("cosign.pub"), cosign_real("cosign2.pub")];

    let fulcio = layout("dir-img-cosign-fulcio-rekor-valid");
    let fulcio_id = "192.168.64.2:5000/cosign-signed/fulcio-rekor-1";
    for key in &keys {
        verify(
            &[key],
            "matchRepository",
            Some(fulcio_id),
            &[],
            &format!("oci:{fulcio}:v1"),
        )
        .assert_rejected(&[&["signature"]]);
    }
    verify(
        &[&keys[0], &keys[1]],
        "matchRepository",
        Some(fulcio_id),
        &[],
        &format!("oci:{fulcio}:v1"),
    )
    .assert_rejected(&[&["signature"]]);

    let pki = layout("dir-img-cosign-pki-valid");
    for key in &keys {
        verify(
            &[key],
            "matchRepository",
            Some("localhost:5000/test"),
            &[],
            &format!("oci:{pki}:v1"),
        )
        .assert_rejected(&[&["signature"]]);
    }

    // The certificates' own public keys, given as plain keys (key mode, as containers/image's
    // keyPath: certificate annotations are ignored, the key alone decides).
    let fulcio_key = certificate_public_key(
        tmp.path(),
        "fulcio",
        &fixture_signatures("dir-img-cosign-fulcio-rekor-valid")[0],
    );
    let verdict = verify(
        &[&fulcio_key],
        "matchRepository",
        Some(fulcio_id),
        &[],
        &format!("oci:{fulcio}:v1"),
    );
    // The leaf's EC P-256 key does verify the payload: key mode accepts, exactly as upstream
    // key mode would; the certificate's validity, chain and identity are NOT checked.
    verdict.assert_accepted(1);
    let pki_key = certificate_public_key(
        tmp.path(),
        "pki",
        &fixture_signatures("dir-img-cosign-pki-valid")[0],
    );
    // RSA keys are not supported: the key file is refused (exit 2), nothing is accepted.
    let verdict = verify(
        &[&pki_key],
        "matchRepository",
        Some("localhost:5000/test"),
        &[],
        &format!("oci:{pki}:v1"),
    );
    assert_eq!(verdict.code, 2, "{}", verdict.stderr);
    assert!(verdict.report.is_none());
    assert!(
        verdict
            .stderr
            .contains("unsupported key type: RSA (Signet supports ECDSA P-256 keys only)"),
        "{}",
        verdict.stderr
    );
}

/// The public key of the `dev.sigstore.cosign/certificate` annotation, as a PEM file written by
/// the `openssl` CLI.
fn certificate_public_key(dir: &Path, name: &str, signature: &SigstoreJson) -> PathBuf {
    let cert = dir.join(format!("{name}.crt"));
    std::fs::write(
        &cert,
        &signature.annotations["dev.sigstore.cosign/certificate"],
    )
    .unwrap();
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in", s(&cert)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let key = dir.join(format!("{name}.pub"));
    std::fs::write(&key, &out.stdout).unwrap();
    key
}

/// The skopeo-1.13 artifacts: an image manifest in a layout (its blobs are not in the fixture),
/// a `.sig` manifest and its blobs, byte-exact, both in the layout and pushed to the registry.
struct SkopeoCase {
    /// `oci:DIR` of the layout holding image and signatures.
    layout: String,
    /// A layout holding only the image (its signatures are read from the registry).
    bare: String,
}

fn skopeo_case(
    dir: &Path,
    reg: &TestRegistry,
    repo: &str,
    image: &str,
    sig: &str,
    payload: &str,
    config: &str,
) -> SkopeoCase {
    let read = |name: &str| std::fs::read(skopeo(&format!("artifacts/{name}"))).unwrap();
    let manifest = read(image);
    let sig_manifest = read(sig);
    let blobs = vec![read(config), read(payload)];
    let attached_to = Digest::sha256(&manifest);
    let layout = layout_with(
        dir,
        Some(&manifest),
        &attached_to,
        Some((&sig_manifest, &blobs)),
    );
    // The same signature bytes at the cosign tag in the registry (their blobs exist, so
    // distribution accepts the manifest).
    push_signature_manifest(reg, repo, &attached_to, &sig_manifest, &blobs);
    let bare = layout_with(
        &dir.with_extension("bare"),
        Some(&manifest),
        &attached_to,
        None,
    );
    SkopeoCase { layout, bare }
}

#[test]
fn skopeo_and_sigstore_rs_signatures_get_the_lab_verdicts() {
    let reg = TestRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let key_a = skopeo("keys/keyA.pub");
    let key_b = skopeo("keys/keyB.pub");
    let key_r = skopeo("keys/keyR.pub");
    let exact = "matchRepoDigestOrExact";
    let host = reg.host();

    // Each row is checked twice: signatures from the layout, and from the registry.
    let app = skopeo_case(
        &tmp.path().join("app"),
        &reg,
        "test/app",
        "app-manifest.raw.json",
        "sig-manifest.raw.json",
        "sig-payload.raw.json",
        "sig-config.raw.json",
    );
    let from_registry = ["--signature-repo".to_string(), format!("{host}/test/app")];
    for (layout, extra) in [(&app.layout, &[][..]), (&app.bare, &from_registry[..])] {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let by_tag = format!("oci:{}:v1", layout);
        let by_digest = format!("oci:{}@{APP_DIGEST}", layout);
        verify(
            &[&key_a],
            exact,
            Some("127.0.0.1:5000/test/app:v1"),
            &extra,
            &by_tag,
        )
        .assert_accepted(1);
        verify(
            &[&key_a],
            exact,
            Some(&format!("127.0.0.1:5000/test/app@{APP_DIGEST}")),
            &extra,
            &by_digest,
        )
        .assert_accepted(1);
        for key in [&key_b, &key_r] {
            verify(
                &[key],
                exact,
                Some("127.0.0.1:5000/test/app:v1"),
                &extra,
                &by_tag,
            )
            .assert_rejected(&[&["signature"]]);
        }
        // The signature copied along to another repository: its identity is not accepted.
        for rule in [exact, "matchRepository"] {
            verify(
                &[&key_a],
                rule,
                Some("127.0.0.1:5000/test/moved:v1"),
                &extra,
                &by_tag,
            )
            .assert_rejected(&[&["identity"]]);
        }
    }

    // The same signature attached to a different image (rssigned's manifest, d23af51a…).
    let mismatch = skopeo_case(
        &tmp.path().join("mismatch"),
        &reg,
        "test/mismatch",
        "rssigned-manifest.raw.json",
        "sig-manifest.raw.json",
        "sig-payload.raw.json",
        "sig-config.raw.json",
    );
    let from_registry = [
        "--signature-repo".to_string(),
        format!("{host}/test/mismatch"),
    ];
    for (layout, extra) in [
        (&mismatch.layout, &[][..]),
        (&mismatch.bare, &from_registry[..]),
    ] {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let verdict = verify(
            &[&key_a],
            exact,
            Some("127.0.0.1:5000/test/mismatch:v1"),
            &extra,
            &format!("oci:{}:v1", layout),
        );
        // Both the digest claim and (with this rule) the identity fail; the signature verifies.
        verdict.assert_rejected(&[&["manifest-digest", "identity"]]);
        assert!(verdict.stderr.contains(APP_DIGEST));
        // Under the name it was signed for, the digest claim alone refuses it.
        verify(
            &[&key_a],
            exact,
            Some("127.0.0.1:5000/test/app:v1"),
            &extra,
            &format!("oci:{}:v1", layout),
        )
        .assert_rejected(&[&["manifest-digest"]]);
    }

    // The sigstore-rs 0.15.0 signature (keys sorted, config `{}`, optional null).
    assert_eq!(
        Digest::sha256(&std::fs::read(skopeo("artifacts/rssigned-manifest.raw.json")).unwrap())
            .to_string(),
        RSSIGNED_DIGEST
    );
    let rs = skopeo_case(
        &tmp.path().join("rs"),
        &reg,
        "test/rssigned",
        "rssigned-manifest.raw.json",
        "sigstore-rs-sig-manifest.raw.json",
        "sigstore-rs-sig-payload.raw.json",
        "sigstore-rs-sig-config.raw.json",
    );
    let from_registry = [
        "--signature-repo".to_string(),
        format!("{host}/test/rssigned"),
    ];
    for (layout, extra) in [(&rs.layout, &[][..]), (&rs.bare, &from_registry[..])] {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let image = format!("oci:{}:v1", layout);
        verify(
            &[&key_a],
            exact,
            Some("127.0.0.1:5000/test/rssigned:v1"),
            &extra,
            &image,
        )
        .assert_accepted(1);
        verify(
            &[&key_r],
            exact,
            Some("127.0.0.1:5000/test/rssigned:v1"),
            &extra,
            &image,
        )
        .assert_rejected(&[&["signature"]]);
    }
}

// ---- the sigstore crate as a peer, against the real registry ----

/// A sigstore-rs client speaking plain HTTP to `host` (a test registry or a gate in front of one).
fn sigstore_client(host: &str) -> sigstore::cosign::Client {
    ClientBuilder::default()
        .with_oci_client_config(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(vec![host.to_string()]),
            ..Default::default()
        })
        .build()
        .unwrap()
}

/// Why sigstore-rs did not verify an image: a negative check must name which it means, since
/// "any error" also covers a registry or gate that is down.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SigstoreRefusal {
    /// sigstore-rs could not resolve the image or fetch its signatures (its error message).
    Fetch(String),
    /// sigstore-rs fetched `layers` signature layers and the key verified none of them;
    /// `unsatisfied` is its list of unsatisfied constraints.
    Unverified { layers: usize, unsatisfied: String },
}

impl SigstoreRefusal {
    /// Assert that sigstore-rs fetched exactly `layers` signature layers and refused them for
    /// the key (its `PublicKeyVerifier` constraint unsatisfied), not for any other reason.
    #[track_caller]
    pub(crate) fn assert_key_refused(result: &Result<usize, SigstoreRefusal>, layers: usize) {
        match result {
            Err(SigstoreRefusal::Unverified {
                layers: got,
                unsatisfied,
            }) => {
                assert_eq!(*got, layers, "signature layers sigstore-rs fetched");
                assert!(
                    unsatisfied.contains("PublicKeyVerifier"),
                    "the key constraint is what failed: {unsatisfied}"
                );
            }
            other => panic!("expected the key to verify none of {layers} layers, got {other:?}"),
        }
    }
}

/// sigstore-rs: the signature layers of `image` (on the plain-HTTP registry `host`) that
/// `public_key_pem` verifies, or why it verified none.
pub(crate) fn sigstore_verify(
    host: &str,
    image: &str,
    public_key_pem: &[u8],
) -> Result<usize, SigstoreRefusal> {
    let image: OciReference = image.parse().unwrap();
    runtime().block_on(async {
        let mut client = sigstore_client(host);
        let layers = client
            .trusted_signature_layers(&Auth::Anonymous, &image)
            .await
            .map_err(|e| SigstoreRefusal::Fetch(e.to_string()))?;
        let verifier =
            PublicKeyVerifier::new(public_key_pem, &SigningScheme::ECDSA_P256_SHA256_ASN1).unwrap();
        let verified = layers
            .iter()
            .filter(|l| {
                use sigstore::cosign::verification_constraint::VerificationConstraint;
                verifier.verify(l).unwrap_or(false)
            })
            .count();
        let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
        verify_constraints(&layers, constraints.iter()).map_err(|e| {
            SigstoreRefusal::Unverified {
                layers: layers.len(),
                unsatisfied: format!("{:?}", e.unsatisfied_constraints),
            }
        })?;
        Ok(verified)
    })
}

/// sigstore-rs signs `image` with the (encrypted) key file `key` and pushes the signature with
/// its own `push_signature`, which replaces whatever the `.sig` tag held.
fn sigstore_sign(reg: &TestRegistry, image: &str, key: &Path, password: &str) {
    let image: OciReference = image.parse().unwrap();
    let pem = std::fs::read(key).unwrap();
    let pair = SigStoreKeyPair::from_encrypted_pem(&pem, password.as_bytes()).unwrap();
    let signer = pair
        .to_sigstore_signer(&SigningScheme::ECDSA_P256_SHA256_ASN1)
        .unwrap();
    runtime().block_on(async {
        let mut client = sigstore_client(&reg.host());
        let (sig_image, digest) = client.triangulate(&image, &Auth::Anonymous).await.unwrap();
        let mut layer = SignatureLayer::new_unsigned(&image, &digest).unwrap();
        assert!(PrivateKeySigner::new_with_signer(signer)
            .add_constraint(&mut layer)
            .unwrap());
        client
            .push_signature(None, &Auth::Anonymous, &sig_image, vec![layer])
            .await
            .unwrap();
    });
}

fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    let out = run(&["generate-key-pair", "--output-key-prefix", s(&prefix)]);
    assert_eq!(code(&out), 0);
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

fn signature_layer_count(reg: &TestRegistry, repo: &str, digest: &Digest) -> usize {
    let reference = reg.reference(&format!("{repo}:{}", digest.signature_tag()));
    match runtime()
        .block_on(client().get_manifest(&reference))
        .unwrap()
        .manifest
    {
        signet_oci::Manifest::Image(m) => m
            .layers
            .iter()
            .filter(|l| l.media_type == SIMPLE_SIGNING)
            .count(),
        other => panic!("not an image manifest: {other:?}"),
    }
}

#[test]
fn sigstore_rs_verifies_what_signet_signed() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "a");
    let (key_b, public_b) = keypair(dir.path(), "b");
    let image = format!("{}/interop/app:v1", reg.host());
    let digest = support::push_sample_image(&reg, "interop/app:v1");
    let pem = std::fs::read(&public).unwrap();
    // Nothing signed yet: sigstore-rs resolves the image and finds no signature layer (it logs
    // and drops a failed `.sig` fetch, so the tag's absence is checked here too).
    SigstoreRefusal::assert_key_refused(&sigstore_verify(&reg.host(), &image, &pem), 0);
    let sig_tag = reg.reference(&format!("interop/app:{}", digest.signature_tag()));
    let err = runtime()
        .block_on(client().get_manifest(&sig_tag))
        .unwrap_err();
    assert!(matches!(err, signet_oci::Error::NotFound { .. }), "{err}");
    assert_eq!(code(&run(&["sign", "--key", s(&key), &image])), 0);
    assert_eq!(sigstore_verify(&reg.host(), &image, &pem), Ok(1));
    // By digest too, and a second Signet signature (appended) is seen by sigstore-rs as well.
    let by_digest = format!("{}/interop/app@{digest}", reg.host());
    assert_eq!(sigstore_verify(&reg.host(), &by_digest, &pem), Ok(1));
    // Another key: the one layer is fetched and refused for the key.
    SigstoreRefusal::assert_key_refused(
        &sigstore_verify(&reg.host(), &image, &std::fs::read(&public_b).unwrap()),
        1,
    );
    assert_eq!(code(&run(&["sign", "--key", s(&key_b), &image])), 0);
    assert_eq!(signature_layer_count(&reg, "interop/app", &digest), 2);
    assert_eq!(sigstore_verify(&reg.host(), &image, &pem), Ok(1));
    assert_eq!(
        sigstore_verify(&reg.host(), &image, &std::fs::read(&public_b).unwrap()),
        Ok(1)
    );
}

#[test]
fn signet_verifies_what_sigstore_rs_signed_with_a_signet_key_file() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "k");
    let (other_key, _) = keypair(dir.path(), "other");
    let image = format!("{}/interop/rs:v1", reg.host());
    let digest = support::push_sample_image(&reg, "interop/rs:v1");
    // sigstore-rs opens Signet's encrypted key file and signs.
    sigstore_sign(&reg, &image, &key, PASSWORD);
    let out = run(&[
        "verify",
        "--key",
        s(&public),
        "--identity-rule",
        "matchRepoDigestOrExact",
        &image,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let payloads: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        payloads[0]["critical"]["identity"]["docker-reference"],
        json!(image)
    );
    assert_eq!(
        payloads[0]["critical"]["image"]["docker-manifest-digest"],
        json!(digest.to_string())
    );
    // Signet appends to the manifest sigstore-rs wrote; both signatures then verify.
    assert_eq!(code(&run(&["sign", "--key", s(&other_key), &image])), 0);
    assert_eq!(signature_layer_count(&reg, "interop/rs", &digest), 2);
    assert_eq!(code(&run(&["verify", "--key", s(&public), &image])), 0);
    assert_eq!(
        sigstore_verify(&reg.host(), &image, &std::fs::read(&public).unwrap()),
        Ok(1)
    );
    // sigstore-rs's push_signature replaces the manifest (it does not merge): Signet's second
    // signature is gone afterwards. Recorded here so the difference stays visible.
    sigstore_sign(&reg, &image, &key, PASSWORD);
    assert_eq!(signature_layer_count(&reg, "interop/rs", &digest), 1);
}

#[test]
fn signet_signs_with_a_key_file_written_by_sigstore_rs() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .unwrap();
    let pair = signer.to_sigstore_keypair().unwrap();
    let key = dir.path().join("rs.key");
    let public = dir.path().join("rs.pub");
    std::fs::write(
        &key,
        pair.private_key_to_encrypted_pem(PASSWORD.as_bytes())
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    std::fs::write(&public, pair.public_key_to_pem().unwrap()).unwrap();
    // Signet prints the same public key from the private key file.
    let printed = run(&["public-key", "--key", s(&key)]);
    assert_eq!(code(&printed), 0);
    assert_eq!(
        p256::PublicKey::from_public_key_pem(std::str::from_utf8(&printed.stdout).unwrap())
            .unwrap(),
        p256::PublicKey::from_public_key_pem(&std::fs::read_to_string(&public).unwrap()).unwrap()
    );
    let image = format!("{}/interop/rskey:v1", reg.host());
    support::push_sample_image(&reg, "interop/rskey:v1");
    assert_eq!(code(&run(&["sign", "--key", s(&key), &image])), 0);
    assert_eq!(code(&run(&["verify", "--key", s(&public), &image])), 0);
    assert_eq!(
        sigstore_verify(&reg.host(), &image, &std::fs::read(&public).unwrap()),
        Ok(1)
    );
    // The wrong password is refused, nothing is signed with it.
    let wrong = signet()
        .env("SIGNET_PASSWORD", "not-it")
        .args(["sign", "--key", s(&key), &image])
        .output()
        .unwrap();
    assert_eq!(code(&wrong), 2);
    assert!(
        stderr(&wrong).contains(&format!("wrong password for {}", key.display())),
        "{}",
        stderr(&wrong)
    );
}

#[test]
fn signet_signs_with_the_lab_keys_of_skopeo_and_sigstore_rs() {
    let reg = TestRegistry::start();
    // keyA: skopeo 1.13.3 (`ENCRYPTED COSIGN PRIVATE KEY`); keyR: sigstore-rs 0.15.0
    // (`ENCRYPTED SIGSTORE PRIVATE KEY`, CRLF line endings).
    for (name, private) in [("keyA", "keyA.private"), ("keyR", "keyR.key")] {
        let repo = format!("interop/lab-{}", name.to_lowercase());
        let image = format!("{}/{repo}:v1", reg.host());
        support::push_sample_image(&reg, &format!("{repo}:v1"));
        let password = std::fs::read_to_string(skopeo(&format!("keys/{name}.pass"))).unwrap();
        let key = skopeo(&format!("keys/{private}"));
        let public = skopeo(&format!("keys/{name}.pub"));
        let out = signet()
            .env("SIGNET_PASSWORD", &password)
            .args(["sign", "--key", s(&key), &image])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{name}: {}", stderr(&out));
        let verdict = verify(&[&public], "matchRepository", None, &[], &image);
        verdict.assert_accepted(1);
        assert_eq!(
            sigstore_verify(&reg.host(), &image, &std::fs::read(&public).unwrap()),
            Ok(1),
            "{name}"
        );
    }
}
