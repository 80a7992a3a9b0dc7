//! `signet verify IMAGE --certificate-identity … --certificate-oidc-issuer …`: keyless images.
//! The cosign-real `fulcio-rekor-valid` fixture (testdata/cosign-real/README.md) gets each
//! ACCEPT and REJECT row of its README through the binary (from an OCI layout: the fixture's
//! manifest names blobs that are not at hand, which a registry would refuse); requests by tag
//! are counted against [`RefServer`] (legacy ≤ 4, referrers ≤ 5); cosign 3 bundle referrers are
//! found through the API and the `sha256-<hex>` tag fallback and refused for what they are.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};
use signet_oci::manifest::OCI_MANIFEST;
use signet_oci::Digest;

use crate::referrers::{artifact_manifest, Api, RefServer};
use crate::support::{code, signet};

pub(crate) const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/cosign-real");
pub(crate) const FULCIO: &str = "dir-img-cosign-fulcio-rekor-valid";
pub(crate) const FULCIO_IDENTITY: &str = "192.168.64.2:5000/cosign-signed/fulcio-rekor-1";
pub(crate) const EMAIL: &str = "mitr@redhat.com";
pub(crate) const GITHUB: &str = "https://github.com/login/oauth";
const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A fixture's manifest and its `signature-1` as a `.sig` layer: (manifest, payload, layer).
pub(crate) fn fixture(dir: &str, drop: &[&str]) -> (Vec<u8>, Vec<u8>, Value) {
    let manifest = std::fs::read(format!("{FIXTURES}/{dir}/manifest.json")).unwrap();
    let raw = std::fs::read(format!("{FIXTURES}/{dir}/signature-1")).unwrap();
    let sig: Value = serde_json::from_slice(&raw[15..]).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(sig["payload"].as_str().unwrap())
        .unwrap();
    let mut annotations: BTreeMap<String, String> =
        serde_json::from_value(sig["annotations"].clone()).unwrap();
    for key in drop {
        annotations.remove(*key);
    }
    let layer = json!({
        "mediaType": sig["mimeType"], "digest": Digest::sha256(&payload).to_string(),
        "size": payload.len(), "annotations": annotations,
    });
    (manifest, payload, layer)
}

/// The `.sig` manifest holding `layer`, and its config blob.
pub(crate) fn sig_manifest(layer: &Value) -> (Vec<u8>, Vec<u8>) {
    let config =
        br#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::sha256(&config).to_string(), "size": config.len()},
        "layers": [layer],
    }))
    .unwrap();
    (manifest, config)
}

fn write_blob(dir: &Path, bytes: &[u8]) -> Value {
    let digest = Digest::sha256(bytes);
    let path = dir.join("blobs/sha256").join(digest.hex());
    std::fs::write(path, bytes).unwrap();
    json!(digest.to_string())
}

/// An OCI layout holding the fixture's manifest (tag `latest`) and its `.sig` manifest.
fn layout(dir: &Path, fixture_dir: &str, drop: &[&str]) {
    let (manifest, payload, layer) = fixture(fixture_dir, drop);
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let image_type = serde_json::from_slice::<Value>(&manifest).unwrap()["mediaType"].clone();
    let image_digest = write_blob(dir, &manifest);
    write_blob(dir, &payload);
    let (sig, config) = sig_manifest(&layer);
    write_blob(dir, &config);
    let sig_digest = write_blob(dir, &sig);
    let tag = format!("{}.sig", Digest::sha256(&manifest).tag_form());
    let index = json!({"schemaVersion": 2, "manifests": [
        {"mediaType": image_type, "digest": image_digest, "size": manifest.len(),
         "annotations": {"org.opencontainers.image.ref.name": "latest"}},
        {"mediaType": OCI_MANIFEST, "digest": sig_digest, "size": sig.len(),
         "annotations": {"org.opencontainers.image.ref.name": tag}},
    ]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// A trusted root derived from the embedded public-good one.
pub(crate) fn root_file(dir: &Path, name: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut root: Value =
        serde_json::from_str(signet_keyless::Instance::PublicGood.embedded_json()).unwrap();
    edit(&mut root);
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(&root).unwrap()).unwrap();
    path.display().to_string()
}

fn pem_der(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

fn verify(image: &str, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "verify",
        image,
        "--certificate-identity",
        EMAIL,
        "--certificate-oidc-issuer",
        GITHUB,
    ];
    args.extend_from_slice(extra);
    let out = signet().args(&args).output().unwrap();
    (
        code(&out),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn fulcio_rekor_valid_gets_every_verdict_of_its_readme_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let with = |name: &str, drop: &[&str]| {
        let dir = tmp.path().join(name);
        layout(&dir, FULCIO, drop);
        format!("oci:{}:latest", dir.display())
    };
    let full = with("full", &[]);
    let identity = ["--identity", FULCIO_IDENTITY];

    // ACCEPT: checked at the SET's integrated time (the certificate expired in 2023).
    let (rc, out, err) = verify(&full, &[&identity[..], &["--output", "json"]].concat());
    assert_eq!(rc, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["outcome"], "verified");
    let sig = &report["signatures"][0];
    assert_eq!(sig["format"], "legacy");
    assert_eq!(sig["binds_repository"], true);
    assert_eq!(sig["verified_times"][0], "2023-01-20T20:51:33Z");
    assert_eq!(sig["certificate"]["subjects"][0]["email"], EMAIL);
    assert!(report["findings"].as_array().unwrap().is_empty());
    // Only the legacy format required: still accepted.
    let (rc, _, err) = verify(
        &full,
        &[&identity[..], &["--signature-format", "legacy"]].concat(),
    );
    assert_eq!(rc, 0, "{err}");

    // REJECT with another email, and for another repository.
    let out = signet()
        .args([
            "verify",
            &full,
            "--identity",
            FULCIO_IDENTITY,
            "--certificate-identity",
        ])
        .args(["other@redhat.com", "--certificate-oidc-issuer", GITHUB])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 12, "{err}");
    assert!(err.contains("certificate-identity: "), "{err}");
    let (rc, _, err) = verify(&full, &["--identity", "192.168.64.2:5000/other"]);
    assert_eq!(rc, 12, "{err}");
    assert!(err.contains("docker-reference: "), "{err}");

    // REJECT without the bundle (no Rekor entry), and without the certificate (then the layer
    // is no keyless signature at all).
    let no_bundle = with("no-bundle", &["dev.sigstore.cosign/bundle"]);
    let (rc, _, err) = verify(&no_bundle, &identity);
    assert_eq!(rc, 12, "{err}");
    assert!(
        err.contains("material: no dev.sigstore.cosign/bundle annotation"),
        "{err}"
    );
    let no_cert = with("no-cert", &["dev.sigstore.cosign/certificate"]);
    let (rc, _, err) = verify(&no_cert, &identity);
    assert_eq!(rc, 10, "{err}");
    assert!(err.contains("no keyless signatures found"), "{err}");

    // Without the chain: REJECT when the trusted CA is only the Fulcio root, ACCEPT when the
    // CA is the chain itself (the public-good root lists the intermediate).
    let v1_only = root_file(tmp.path(), "v1-only.json", |root| {
        root["certificateAuthorities"] = json!([{
            "subject": {"organization": "sigstore.dev", "commonName": "sigstore"},
            "uri": "https://fulcio.sigstore.dev",
            "certChain": {"certificates": [{"rawBytes": b64(&pem_der("fulcio_v1.crt.pem"))}]},
            "validFor": {"start": "2021-03-07T03:20:29Z"},
        }]);
    });
    let no_chain = with("no-chain", &["dev.sigstore.cosign/chain"]);
    let (rc, _, err) = verify(
        &no_chain,
        &[&identity[..], &["--trusted-root", &v1_only]].concat(),
    );
    assert_eq!(rc, 12, "{err}");
    assert!(err.contains("signature: certificate-invalid"), "{err}");
    let (rc, _, err) = verify(
        &full,
        &[&identity[..], &["--trusted-root", &v1_only]].concat(),
    );
    assert_eq!(rc, 0, "with the chain annotation: {err}");
    let (rc, _, err) = verify(&no_chain, &identity);
    assert_eq!(rc, 0, "{err}");

    // REJECT with the wrong Rekor key.
    let wrong_rekor = root_file(tmp.path(), "wrong-rekor.json", |root| {
        root["tlogs"][0]["publicKey"]["rawBytes"] = json!(b64(&pem_der("cosign.pub")));
    });
    let (rc, _, err) = verify(
        &full,
        &[&identity[..], &["--trusted-root", &wrong_rekor]].concat(),
    );
    assert_eq!(rc, 12, "{err}");
    assert!(err.contains("signature: tlog-invalid"), "{err}");
}

/// The fixture served by tag from [`RefServer`]: (server, image reference).
fn served_fixture(api: Api) -> (RefServer, String) {
    let server = RefServer::start(api);
    let (manifest, payload, layer) = fixture(FULCIO, &[]);
    let media_type = serde_json::from_slice::<Value>(&manifest).unwrap()["mediaType"]
        .as_str()
        .unwrap()
        .to_string();
    let digest = server.manifest(Some("latest"), &manifest, &media_type);
    server.blob(&payload);
    let (sig, config) = sig_manifest(&layer);
    server.blob(&config);
    let tag = format!("{}.sig", digest.replace(':', "-"));
    server.manifest(Some(&tag), &sig, OCI_MANIFEST);
    let image = format!("{}/cosign-signed/fulcio-rekor-1:latest", server.host());
    (server, image)
}

#[test]
fn a_legacy_keyless_image_by_tag_costs_at_most_four_requests() {
    let (server, image) = served_fixture(Api::Pages(10));
    let (rc, _, err) = verify(&image, &["--identity", FULCIO_IDENTITY]);
    assert_eq!(rc, 0, "{err}");
    let requests = server.requests();
    assert!(
        requests.len() <= 4,
        "{} requests: {requests:?}",
        requests.len()
    );
    // A verified legacy signature decides: no referrers request.
    assert!(
        !requests.iter().any(|r| r.contains("/referrers/")),
        "{requests:?}"
    );
    eprintln!(
        "legacy keyless verify by tag: {} requests: {requests:?}",
        requests.len()
    );
}

/// An image with no `.sig` and one bundle referrer holding a real cosign-format bundle (a
/// conda attestation from the sigstore-conformance data, testdata/sigstore-bundles), which is
/// not a cosign image signature.
fn bundle_referrer_image(api: Api, tag_index: bool) -> (RefServer, String) {
    let server = RefServer::start(api);
    let image_manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::sha256(b"cfg").to_string(), "size": 3},
        "layers": [],
    }))
    .unwrap();
    let digest = server.manifest(Some("v1"), &image_manifest, OCI_MANIFEST);
    let bundle = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/sigstore-bundles/dsse-rekor1-conda/bundle.sigstore.json"
    ))
    .unwrap();
    server.blob(&bundle);
    server.blob(b"{}");
    let referrer = artifact_manifest(&digest, image_manifest.len(), BUNDLE_TYPE, &bundle);
    let referrer_digest = server.manifest(None, &referrer, OCI_MANIFEST);
    if tag_index {
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": referrer_digest,
                           "size": referrer.len(), "artifactType": BUNDLE_TYPE}],
        }))
        .unwrap();
        server.manifest(
            Some(&digest.replace(':', "-")),
            &index,
            "application/vnd.oci.image.index.v1+json",
        );
    }
    let image = format!("{}/app:v1", server.host());
    (server, image)
}

#[test]
fn bundle_referrers_are_found_through_the_api_in_at_most_five_requests() {
    let (server, image) = bundle_referrer_image(Api::Pages(10), false);
    let (rc, out, err) = verify(&image, &["--output", "json"]);
    assert_eq!(rc, 12, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["referrers_source"], "api");
    let sig = &report["signatures"][0];
    assert_eq!(sig["format"], "bundle");
    assert_eq!(sig["binds_repository"], false);
    // The bundle parsed; it is an attestation of something else, not a cosign image signature.
    assert_eq!(sig["checks"][0]["passed"], true, "{sig}");
    assert_eq!(sig["checks"][1]["name"], "payload");
    let detail = sig["checks"][1]["detail"].as_str().unwrap();
    assert!(
        detail.contains("is not https://sigstore.dev/cosign/sign/v1"),
        "{detail}"
    );
    let requests = server.requests();
    assert!(
        requests.len() <= 5,
        "{} requests: {requests:?}",
        requests.len()
    );
    assert!(
        requests.iter().any(|r| r.contains("/referrers/")),
        "{requests:?}"
    );
    eprintln!(
        "bundle-referrer verify by tag: {} requests: {requests:?}",
        requests.len()
    );

    // Where the repository must be signed, referrers are not even read.
    server.reset_requests();
    let (rc, _, err) = verify(&image, &["--signature-format", "legacy"]);
    assert_eq!(rc, 10, "{err}");
    assert!(!server.requests().iter().any(|r| r.contains("/referrers/")));
}

#[test]
fn bundle_referrers_are_found_through_the_tag_schema_without_the_api() {
    let (server, image) = bundle_referrer_image(Api::Absent, true);
    let (rc, out, err) = verify(&image, &["--output", "json"]);
    assert_eq!(rc, 12, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["referrers_source"], "tag-schema");
    assert_eq!(report["signatures"][0]["format"], "bundle");
    assert!(server.requests().iter().any(|r| r.contains("/referrers/")));
}

#[test]
fn pki_valid_gets_every_verdict_of_its_readme_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let with = |name: &str, drop: &[&str]| {
        let dir = tmp.path().join(name);
        layout(&dir, "dir-img-cosign-pki-valid", drop);
        format!("oci:{}:latest", dir.display())
    };
    let roots = format!("{FIXTURES}/pki_root_crts.pem");
    let intermediates = format!("{FIXTURES}/pki_intermediate_crts.pem");
    let run = |image: &str, extra: &[&str]| {
        let out = signet()
            .args(["verify", image, "--identity", "localhost:5000/test"])
            .args([
                "--ca-roots",
                &roots,
                "--certificate-email",
                "qiwan@redhat.com",
            ])
            .args(extra)
            .output()
            .unwrap();
        (
            code(&out),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let full = with("full", &[]);
    let no_chain = with("no-chain", &["dev.sigstore.cosign/chain"]);
    let host = ["--certificate-hostname", "myhost.example.com"];
    let both = [&host[..], &["--ca-intermediates", &intermediates]].concat();
    // ACCEPT with roots, intermediates, email and hostname; also without the chain annotation
    // when the intermediates are configured.
    let (rc, err) = run(&full, &both);
    assert_eq!(rc, 0, "{err}");
    let (rc, err) = run(&no_chain, &both);
    assert_eq!(rc, 0, "{err}");
    // REJECT without both the chain annotation and configured intermediates.
    let (rc, err) = run(&no_chain, &host);
    assert_eq!(rc, 12, "{err}");
    assert!(
        err.contains("does not chain to a configured CA root"),
        "{err}"
    );
    // REJECT without the certificate: no certificate signature at all.
    let (rc, err) = run(
        &with("no-cert", &["dev.sigstore.cosign/certificate"]),
        &both,
    );
    assert_eq!(rc, 10, "{err}");
    // REJECT with another hostname.
    let (rc, err) = run(&full, &["--certificate-hostname", "other.example.com"]);
    assert_eq!(rc, 12, "{err}");
    assert!(
        err.contains("certificate-identity: certificate lacks hostname"),
        "{err}"
    );
}

#[test]
fn policies_with_keyless_and_pki_signers_get_certificate_evidence() {
    let tmp = tempfile::tempdir().unwrap();
    let fulcio = tmp.path().join("fulcio");
    layout(&fulcio, FULCIO, &[]);
    let pki = tmp.path().join("pki");
    layout(&pki, "dir-img-cosign-pki-valid", &[]);
    let policy = |name: &str, signer: &str| {
        let path = tmp.path().join(name);
        std::fs::write(
            &path,
            format!("keys:\n  signer:\n{signer}default:\n  signed:\n    keys: [signer]\n"),
        )
        .unwrap();
        path.display().to_string()
    };
    let run = |layout: &Path, identity: &str, policy: &str| {
        let image = format!("oci:{}:latest", layout.display());
        let out = signet()
            .args(["verify", &image, "--identity", identity, "--policy", policy])
            .args(["--output", "json"])
            .output()
            .unwrap();
        (
            code(&out),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let keyless =
        |subject: &str| format!("    keyless:\n      subject: {subject}\n      issuer: {GITHUB}\n");
    let (rc, out, err) = run(
        &fulcio,
        FULCIO_IDENTITY,
        &policy("ok.yaml", &keyless(EMAIL)),
    );
    assert_eq!(rc, 0, "{out}{err}");
    let (rc, out, err) = run(
        &fulcio,
        FULCIO_IDENTITY,
        &policy("other.yaml", &keyless("other@redhat.com")),
    );
    assert_ne!(rc, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["verdict"]["decision"], "deny", "{out}");
    let codes: Vec<&str> = report["verdict"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"certificate-identity-mismatch"),
        "{codes:?}"
    );

    let pki_signer = format!(
        "    pki:\n      caRoots: {{path: {FIXTURES}/pki_root_crts.pem}}\n      caIntermediates: {{path: {FIXTURES}/pki_intermediate_crts.pem}}\n      subjectEmail: qiwan@redhat.com\n      subjectHostname: myhost.example.com\n"
    );
    let (rc, out, err) = run(
        &pki,
        "localhost:5000/test",
        &policy("pki.yaml", &pki_signer),
    );
    assert_eq!(rc, 0, "{out}{err}");
    let wrong = pki_signer.replace("myhost.example.com", "other.example.com");
    let (rc, out, err) = run(
        &pki,
        "localhost:5000/test",
        &policy("pki-wrong.yaml", &wrong),
    );
    assert_ne!(rc, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["verdict"]["decision"], "deny", "{out}");
    let codes: Vec<&str> = report["verdict"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"certificate-identity-mismatch"),
        "{codes:?}"
    );
}

/// `signet verify --policy` for `layout` known as `identity`: exit code and the JSON report.
fn policy_verdict(layout: &Path, identity: &str, policy: &Path) -> (i32, Value, String) {
    let image = format!("oci:{}:latest", layout.display());
    let out = signet()
        .args(["verify", &image, "--identity", identity, "--policy"])
        .arg(policy)
        .args(["--output", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {stdout}{stderr}"));
    (code(&out), report, format!("{stdout}{stderr}"))
}

/// The verdict's decision and finding codes.
fn decision(report: &Value) -> (String, Vec<String>) {
    let verdict = &report["verdict"];
    (
        verdict["decision"].as_str().unwrap().to_string(),
        verdict["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_string())
            .collect(),
    )
}

/// The detail of check `name` of the report's only certificate-signed candidate.
fn certificate_check(report: &Value, name: &str) -> String {
    let candidates = report["certificate_signatures"].as_array().unwrap();
    assert_eq!(candidates.len(), 1, "{report}");
    let check = candidates[0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap();
    check["detail"].as_str().unwrap().to_string()
}

/// A Rekor SET by `key` over the hashedrekord entry binding `layer`'s certificate, signature and
/// `payload`, integrated at `integrated_time` (what a Rekor log holding that key would sign).
fn set_by(
    key: &signet_sign::keys::SigningKey,
    layer: &Value,
    payload: &[u8],
    integrated_time: i64,
) -> String {
    let annotations = &layer["annotations"];
    let body = json!({
        "apiVersion": "0.0.1", "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": Digest::sha256(payload).hex()}},
            "signature": {
                "content": annotations["dev.cosignproject.cosign/signature"],
                "publicKey": {"content": b64(annotations["dev.sigstore.cosign/certificate"].as_str().unwrap().as_bytes())},
            },
        },
    });
    // Members in RFC 8785 order, compact: the canonical form the SET signs.
    let entry = format!(
        r#"{{"body":"{}","integratedTime":{integrated_time},"logID":"{}","logIndex":1}}"#,
        b64(&serde_json::to_vec(&body).unwrap()),
        "00".repeat(32)
    );
    serde_json::to_string(&json!({
        "SignedEntryTimestamp": signet_sign::signature::sign(key, entry.as_bytes()),
        "Payload": serde_json::from_str::<Value>(&entry).unwrap(),
    }))
    .unwrap()
}

/// An OCI layout of `fixture_dir` whose layer annotation `key` is replaced by `value`.
fn layout_with(dir: &Path, fixture_dir: &str, key: &str, value: &str) {
    layout(dir, fixture_dir, &[]);
    let (manifest, _, mut layer) = fixture(fixture_dir, &[]);
    layer["annotations"][key] = Value::from(value);
    let (sig, config) = sig_manifest(&layer);
    write_blob(dir, &config);
    let sig_digest = write_blob(dir, &sig);
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let tag = format!("{}.sig", Digest::sha256(&manifest).tag_form());
    for entry in index["manifests"].as_array_mut().unwrap() {
        if entry["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str() {
            entry["digest"] = sig_digest.clone();
            entry["size"] = Value::from(sig.len());
        }
    }
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// containers-policy.json `sigstoreSigned` with `fulcio` + `rekorPublicKeyPath` (no Sigstore
/// trusted root), and the same as a native Signet `fulcio` signer with `rekorKeys`, on the
/// cosign-real `fulcio-rekor-valid` image: every README row, and each refusal by the finding
/// that makes it.
#[test]
fn fulcio_ca_and_rekor_key_policies_get_every_verdict_of_the_readme() {
    let tmp = tempfile::tempdir().unwrap();
    let image = |name: &str, drop: &[&str]| {
        let dir = tmp.path().join(name);
        layout(&dir, FULCIO, drop);
        dir
    };
    let full = image("full", &[]);
    let no_chain = image("no-chain", &["dev.sigstore.cosign/chain"]);
    let no_set = image("no-set", &["dev.sigstore.cosign/bundle"]);
    let no_cert = image("no-cert", &["dev.sigstore.cosign/certificate"]);
    // A SET rekor.pub signed, over another entry (key-rekor-valid's key, signature, payload).
    let (_, _, key_layer) = fixture("dir-img-cosign-key-rekor-valid", &[]);
    let moved = tmp.path().join("moved-set");
    layout_with(
        &moved,
        FULCIO,
        "dev.sigstore.cosign/bundle",
        key_layer["annotations"]["dev.sigstore.cosign/bundle"]
            .as_str()
            .unwrap(),
    );
    // SETs by a Rekor key of our own over this very entry: inside the certificate's validity
    // (2023-01-20 20:51:31–21:01:31 UTC) and after it.
    let log_key = signet_sign::keys::SigningKey::generate();
    let own_rekor = tmp.path().join("own-rekor.pub");
    std::fs::write(&own_rekor, log_key.public_key().to_pem()).unwrap();
    let (_, payload, layer) = fixture(FULCIO, &[]);
    let logged_at = |name: &str, at: i64| {
        let dir = tmp.path().join(name);
        layout_with(
            &dir,
            FULCIO,
            "dev.sigstore.cosign/bundle",
            &set_by(&log_key, &layer, &payload, at),
        );
        dir
    };
    let in_window = logged_at("in-window", 1674248000);
    let expired = logged_at("expired", 1674248492);

    let containers = |name: &str, ca: &str, issuer: &str, email: &str, rekor: &Path| {
        let path = tmp.path().join(format!("{name}.json"));
        let policy = json!({"default": [{"type": "sigstoreSigned",
            "fulcio": {"caPath": format!("{FIXTURES}/{ca}"), "oidcIssuer": issuer, "subjectEmail": email},
            "rekorPublicKeyPath": rekor,
            "signedIdentity": {"type": "matchRepository"}}]});
        std::fs::write(&path, serde_json::to_vec(&policy).unwrap()).unwrap();
        path
    };
    let native = |name: &str, ca: &str, issuer: &str, email: &str, rekor: &Path| {
        let path = tmp.path().join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            format!(
                "keys:\n  release:\n    fulcio:\n      ca: {{path: {FIXTURES}/{ca}}}\n      oidcIssuer: {issuer}\n      subjectEmail: {email}\n    rekorKeys: [{{path: {}}}]\ndefault:\n  signed:\n    keys: [release]\n",
                rekor.display()
            ),
        )
        .unwrap();
        path
    };
    let rekor = Path::new(FIXTURES).join("rekor.pub");
    let wrong_rekor = Path::new(FIXTURES).join("cosign.pub");
    type Make<'a> = &'a dyn Fn(&str, &str, &str, &str, &Path) -> std::path::PathBuf;
    for (form, make) in [
        ("containers", &containers as Make),
        ("native", &native as Make),
    ] {
        let policy = make(
            &format!("{form}-ok"),
            "fulcio_v1.crt.pem",
            GITHUB,
            EMAIL,
            &rekor,
        );
        let accept = |layout: &Path, policy: &Path| {
            let (rc, report, out) = policy_verdict(layout, FULCIO_IDENTITY, policy);
            assert_eq!(
                (rc, decision(&report).0.as_str()),
                (0, "allow"),
                "{form}: {out}"
            );
            report
        };
        let deny = |layout: &Path, policy: &Path, code: &str| {
            let (rc, report, out) = policy_verdict(layout, FULCIO_IDENTITY, policy);
            let (verdict, codes) = decision(&report);
            assert_eq!(verdict, "deny", "{form}: {out}");
            assert_ne!(rc, 0, "{form}: {out}");
            assert!(
                codes.iter().any(|c| c == code),
                "{form}: {code} not in {codes:?}: {out}"
            );
            report
        };
        // ACCEPT: the evidence names the Fulcio CA and the Rekor key, at the integrated time.
        let report = accept(&full, &policy);
        let text = report.to_string();
        assert!(text.contains("Rekor SET verified by file"), "{text}");
        assert!(text.contains("rekor.pub"), "{text}");
        assert!(text.contains("2023-01-20T20:51:33Z"), "{text}");
        // ACCEPT without the chain annotation when the CA file is the chain itself.
        accept(
            &no_chain,
            &make(
                &format!("{form}-chain"),
                "fulcio-chain",
                GITHUB,
                EMAIL,
                &rekor,
            ),
        );
        // REJECT without the chain (the CA is only the root), the SET or the certificate: no
        // signature gives evidence, each for the check named.
        let report = deny(&no_chain, &policy, "no-valid-signature");
        assert!(
            certificate_check(&report, "signature").contains("does not chain to the Fulcio CA"),
            "{report}"
        );
        let report = deny(&no_set, &policy, "no-valid-signature");
        assert!(
            certificate_check(&report, "material").contains("no Rekor entry"),
            "{report}"
        );
        let report = deny(&no_cert, &policy, "no-valid-signature");
        assert!(
            report.get("certificate_signatures").is_none(),
            "no certificate candidate: {report}"
        );
        // REJECT another email or issuer: the signature verifies, the identity does not match.
        deny(
            &full,
            &make(
                &format!("{form}-email"),
                "fulcio_v1.crt.pem",
                GITHUB,
                "other@redhat.com",
                &rekor,
            ),
            "certificate-identity-mismatch",
        );
        deny(
            &full,
            &make(
                &format!("{form}-issuer"),
                "fulcio_v1.crt.pem",
                "https://accounts.google.com",
                EMAIL,
                &rekor,
            ),
            "certificate-identity-mismatch",
        );
        // REJECT with the wrong Rekor key or another CA.
        let report = deny(
            &full,
            &make(
                &format!("{form}-rekor"),
                "fulcio_v1.crt.pem",
                GITHUB,
                EMAIL,
                &wrong_rekor,
            ),
            "no-valid-signature",
        );
        assert!(
            certificate_check(&report, "signature").starts_with("tlog-invalid"),
            "{report}"
        );
        let report = deny(
            &full,
            &make(
                &format!("{form}-ca"),
                "pki_root_crts.pem",
                GITHUB,
                EMAIL,
                &rekor,
            ),
            "no-valid-signature",
        );
        assert!(
            report
                .to_string()
                .contains("does not chain to the Fulcio CA"),
            "{report}"
        );
        // REJECT a SET over another entry.
        let report = deny(&moved, &policy, "no-valid-signature");
        assert!(
            report
                .to_string()
                .contains("another public key or certificate"),
            "{report}"
        );
        // The certificate is checked at the integrated time: ACCEPT inside its validity,
        // REJECT after it, under a Rekor key that signed both.
        let own = make(
            &format!("{form}-own"),
            "fulcio_v1.crt.pem",
            GITHUB,
            EMAIL,
            &own_rekor,
        );
        accept(&in_window, &own);
        let report = deny(&expired, &own, "no-valid-signature");
        assert!(
            report.to_string().contains("certificate-invalid"),
            "{report}"
        );
    }
}

/// containers-policy.json `keyPath(s)` + `rekorPublicKeyPath`, and a native key signer with
/// `rekorKeys`, on the cosign-real `key-rekor-valid` image.
#[test]
fn key_signers_with_rekor_keys_need_the_set_of_their_readme() {
    const KEY_IDENTITY: &str = "192.168.64.2:5000/cosign-signed/key-1";
    const KEY_REKOR: &str = "dir-img-cosign-key-rekor-valid";
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    layout(&full, KEY_REKOR, &[]);
    let no_set = tmp.path().join("no-set");
    layout(&no_set, KEY_REKOR, &["dev.sigstore.cosign/bundle"]);
    let (_, _, layer) = fixture(KEY_REKOR, &[]);
    let set = layer["annotations"]["dev.sigstore.cosign/bundle"]
        .as_str()
        .unwrap();
    let altered = tmp.path().join("altered");
    layout_with(
        &altered,
        KEY_REKOR,
        "dev.sigstore.cosign/bundle",
        &set.replace("\"logIndex\":11608800", "\"logIndex\":11608801"),
    );
    assert_ne!(
        set,
        set.replace("\"logIndex\":11608800", "\"logIndex\":11608801")
    );
    // rekor.pub signed fulcio-rekor-valid's SET too: an entry naming another signer.
    let (_, _, fulcio_layer) = fixture(FULCIO, &[]);
    let moved = tmp.path().join("moved");
    layout_with(
        &moved,
        KEY_REKOR,
        "dev.sigstore.cosign/bundle",
        fulcio_layer["annotations"]["dev.sigstore.cosign/bundle"]
            .as_str()
            .unwrap(),
    );
    let key = |name: &str| format!("{FIXTURES}/{name}");
    let containers = |name: &str, keys: &[&str], rekor: &str| {
        let path = tmp.path().join(format!("{name}.json"));
        let keys: Vec<String> = keys.iter().map(|k| key(k)).collect();
        let policy = json!({"default": [{"type": "sigstoreSigned", "keyPaths": keys,
            "rekorPublicKeyPath": key(rekor), "signedIdentity": {"type": "matchRepository"}}]});
        std::fs::write(&path, serde_json::to_vec(&policy).unwrap()).unwrap();
        path
    };
    let native = |name: &str, keys: &[&str], rekor: &str| {
        let path = tmp.path().join(format!("{name}.yaml"));
        let mut text = String::from("keys:\n");
        for (i, k) in keys.iter().enumerate() {
            text.push_str(&format!(
                "  k{i}:\n    path: {}\n    rekorKeys: [{{path: {}}}]\n",
                key(k),
                key(rekor)
            ));
        }
        let names: Vec<String> = (0..keys.len()).map(|i| format!("k{i}")).collect();
        text.push_str(&format!(
            "default:\n  signed:\n    keys: [{}]\n",
            names.join(", ")
        ));
        std::fs::write(&path, text).unwrap();
        path
    };
    type Make<'a> = &'a dyn Fn(&str, &[&str], &str) -> std::path::PathBuf;
    for (form, make) in [
        ("containers", &containers as Make),
        ("native", &native as Make),
    ] {
        let run = |layout: &Path, policy: &Path| {
            let (rc, report, out) = policy_verdict(layout, KEY_IDENTITY, policy);
            let (verdict, codes) = decision(&report);
            (rc, verdict, codes, out)
        };
        // ACCEPT with cosign2.pub, or both keys, and rekor.pub.
        for keys in [&["cosign2.pub"][..], &["cosign.pub", "cosign2.pub"]] {
            let policy = make(&format!("{form}-{}", keys.len()), keys, "rekor.pub");
            let (rc, verdict, _, out) = run(&full, &policy);
            assert_eq!(
                (rc, verdict.as_str()),
                (0, "allow"),
                "{form} {keys:?}: {out}"
            );
        }
        // REJECT with cosign.pub as the Rekor key, without the SET, with it altered or moved
        // from another entry: the signature verifies, its log entry does not.
        let wrong = make(
            &format!("{form}-wrong-rekor"),
            &["cosign2.pub"],
            "cosign.pub",
        );
        let good = make(&format!("{form}-good"), &["cosign2.pub"], "rekor.pub");
        for (layout, policy, what) in [
            (&full, &wrong, "wrong Rekor key"),
            (&no_set, &good, "no SET"),
            (&altered, &good, "altered SET"),
            (&moved, &good, "SET over another entry"),
        ] {
            let (rc, verdict, codes, out) = run(layout, policy);
            assert_eq!(verdict, "deny", "{form} {what}: {out}");
            assert_ne!(rc, 0, "{form} {what}: {out}");
            assert!(
                codes.iter().any(|c| c == "tlog-entry-missing"),
                "{form} {what}: {codes:?}"
            );
        }
    }
}
