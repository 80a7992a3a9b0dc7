//! Attestations and cosign 3 bundles end to end: `signet attest` / `verify-attestation`,
//! `sign --format bundle|both`, concurrent bundle signers, `copy` carrying `.att` and referrers,
//! and independent peers (securesystemslib verifies the DSSE envelopes, in-toto-attestation
//! validates the statements; Signet verifies an envelope securesystemslib signed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

use serde_json::Value;
use signet_oci::store::ImageStore;
use signet_oci::{Descriptor, Digest, ImageLocation, Manifest};
use signet_sign::dsse::{Envelope, DSSE_ENVELOPE_MEDIA_TYPE, INTOTO_PAYLOAD_TYPE};
use signet_sign::intoto::{PredicateType, Statement};
use signet_verifier::bundle_sign::{BUNDLE_V03_MEDIA_TYPE, EMPTY_MEDIA_TYPE};

use crate::support::{
    self, client, code, keypair, run, runtime, s, signet, TestRegistry, KEY_PASSWORD,
};

const VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
const SIGN_V1: &str = "https://sigstore.dev/cosign/sign/v1";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn store(location: &str) -> ImageStore {
    let location: ImageLocation = location.parse().unwrap();
    ImageStore::open(&location, &client()).unwrap()
}

/// The `.att` manifest's layers and their blobs.
fn att_layers(image: &str, digest: &Digest) -> Vec<(Descriptor, Vec<u8>)> {
    let st = store(image);
    runtime().block_on(async {
        let tag = signet_verifier::sign::attestation_tag(digest);
        let (_, m) = signet_verifier::sign::read_tagged_manifest(&st, &tag)
            .await
            .unwrap()
            .expect(".att manifest");
        let mut out = Vec::new();
        for l in m.layers {
            let b = st.blob_bytes(&l, 8 << 20).await.unwrap();
            out.push((l, b));
        }
        out
    })
}

/// The bundle referrers of `digest`: (referrer manifest JSON, bundle JSON).
fn bundles(image: &str, digest: &Digest) -> Vec<(Value, Value)> {
    let st = store(image);
    runtime().block_on(async {
        let listed = st
            .referrers(digest, Some(BUNDLE_V03_MEDIA_TYPE))
            .await
            .unwrap();
        let mut out = Vec::new();
        for d in listed.descriptors {
            let fetched = st.manifest(&d).await.unwrap();
            let Manifest::Image(m) = &fetched.manifest else {
                panic!("bundle referrer is an index")
            };
            let bundle = st.blob_bytes(&m.layers[0], 8 << 20).await.unwrap();
            out.push((
                serde_json::from_slice(&fetched.bytes).unwrap(),
                serde_json::from_slice(&bundle).unwrap(),
            ));
        }
        out
    })
}

/// Check a DSSE envelope (JSON) with securesystemslib and its statement with in-toto-attestation;
/// prints `predicateType subject-name sha256-hex`.
const PYTHON_PEER: &str = r#"
import json, sys
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.signer import SSlibKey
from securesystemslib.dsse import Envelope
from google.protobuf import json_format
import in_toto_attestation.v1.statement_pb2 as spb
from in_toto_attestation.v1.statement import Statement
d = json.load(open(sys.argv[1]))
# A bundle's envelope is protobuf JSON, which omits an empty keyid (DSSE makes it optional, and
# it is not signed); securesystemslib requires the member.
for sig in d["signatures"]:
    sig.setdefault("keyid", "")
env = Envelope.from_dict(d)
k = SSlibKey.from_crypto(load_pem_public_key(open(sys.argv[2], 'rb').read()))
# cosign (and Signet) write an empty keyid; securesystemslib matches keys by keyid.
key = SSlibKey(list(env.signatures)[0], k.keytype, k.scheme, k.keyval)
env.verify([key], 1)
assert env.payload_type == "application/vnd.in-toto+json", env.payload_type
st = Statement.copy_from_pb(json_format.Parse(env.payload, spb.Statement()))
st.validate()
print(st.pb.predicate_type, st.pb.subject[0].name, st.pb.subject[0].digest["sha256"])
"#;

fn python_peer(envelope: &Value, public: &Path, dir: &Path) -> Output {
    let file = dir.join("envelope.json");
    std::fs::write(&file, serde_json::to_vec(envelope).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-c", PYTHON_PEER, s(&file), s(public)])
        .output()
        .expect(
            "python3 with securesystemslib and in-toto-attestation (scripts/test.sh installs them)",
        );
    eprintln!(
        "python peer -> {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn attest_in_both_formats_verifies_and_python_peers_accept_what_signet_wrote() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "att");
    let digest = support::push_sample_image(&reg, "team/app:v1");
    let image = format!("{}/team/app:v1", reg.host());
    let predicate = dir.path().join("scan.json");
    std::fs::write(
        &predicate,
        br#"{"scanner":{"uri":"pkg:github/aquasecurity/trivy","version":"0.50.0","result":{"Results":[]}},"metadata":{"scanStartedOn":"2026-01-01T00:00:00Z","scanFinishedOn":"2026-01-01T00:01:00Z"}}"#,
    )
    .unwrap();

    let none = run(&["verify-attestation", "--key", s(&public), &image]);
    assert_eq!(code(&none), 10, "no attestations yet");
    assert!(stderr(&none).contains("no attestations found"));

    let out = run(&[
        "attest",
        "--key",
        s(&key),
        "--predicate",
        s(&predicate),
        "--type",
        "vuln",
        "--format",
        "both",
        &image,
    ]);
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains(&format!(
        "in {}",
        signet_verifier::sign::attestation_tag(&digest)
    )));
    assert!(stderr(&out).contains("as bundle referrer"));

    // The legacy .att layer: cosign's media type and annotations.
    let layers = att_layers(&image, &digest);
    assert_eq!(layers.len(), 1);
    let (layer, envelope_bytes) = &layers[0];
    assert_eq!(layer.media_type, DSSE_ENVELOPE_MEDIA_TYPE);
    assert_eq!(layer.annotation("predicateType"), Some(VULN));
    assert_eq!(
        layer.annotation("dev.cosignproject.cosign/signature"),
        Some("")
    );
    let envelope: Value = serde_json::from_slice(envelope_bytes).unwrap();

    // The bundle referrer: cosign's BUNDLE_SPEC shape.
    let found = bundles(&image, &digest);
    assert_eq!(found.len(), 1);
    let (manifest, bundle) = &found[0];
    assert_eq!(manifest["artifactType"], BUNDLE_V03_MEDIA_TYPE);
    assert_eq!(manifest["config"]["mediaType"], EMPTY_MEDIA_TYPE);
    assert_eq!(manifest["subject"]["digest"], digest.to_string());
    assert_eq!(
        manifest["annotations"]["dev.sigstore.bundle.content"],
        "dsse-envelope"
    );
    assert_eq!(
        manifest["annotations"]["dev.sigstore.bundle.predicateType"],
        VULN
    );
    assert!(manifest["annotations"]["org.opencontainers.image.created"].is_string());
    assert_eq!(bundle["mediaType"], BUNDLE_V03_MEDIA_TYPE);
    assert!(bundle["verificationMaterial"]["publicKey"]["hint"].is_string());

    // Independent peers: securesystemslib verifies both envelopes with the public key,
    // in-toto-attestation validates both statements.
    for env in [&envelope, &bundle["dsseEnvelope"]] {
        let peer = python_peer(env, &public, dir.path());
        assert_eq!(code(&peer), 0, "{}", stderr(&peer));
        let line = String::from_utf8_lossy(&peer.stdout).trim().to_string();
        assert_eq!(
            line,
            format!("{VULN} {}/team/app {}", reg.host(), digest.hex())
        );
    }
    // The peer is not a rubber stamp: another key fails there too.
    let (_, other_public) = keypair(dir.path(), "other");
    let refused = python_peer(&envelope, &other_public, dir.path());
    assert_ne!(code(&refused), 0);
    assert!(
        stderr(&refused).contains("VerificationError"),
        "{}",
        stderr(&refused)
    );

    // verify-attestation: both candidates verify; text prints the statements.
    let ok = run(&[
        "verify-attestation",
        "--key",
        s(&public),
        "--type",
        "vuln",
        &image,
    ]);
    assert_eq!(code(&ok), 0);
    let lines: Vec<&str> = std::str::from_utf8(&ok.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 2);
    for line in lines {
        let st = Statement::parse(line.as_bytes()).unwrap();
        assert!(st.names_digest(&digest));
        assert_eq!(st.predicate_type.as_str(), VULN);
        assert_eq!(st.predicate["scanner"]["version"], "0.50.0");
    }
    assert!(stderr(&ok).contains("2 of 2 attestation(s) of type"));
    let json = run(&[
        "verify-attestation",
        "--key",
        s(&public),
        "--output",
        "json",
        &image,
    ]);
    assert_eq!(code(&json), 0);
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["outcome"], "verified");
    let candidates = report["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2);
    let kinds: Vec<&str> = candidates
        .iter()
        .map(|c| c["source"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["legacy", "bundle"]);
    for c in candidates {
        let names: Vec<&str> = c["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "envelope",
                "signature",
                "payload-type",
                "statement",
                "subject",
                "predicate-type"
            ]
        );
        assert!(c["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["passed"] == true));
    }

    // Attesting the same statement again adds nothing in either format.
    let again = run(&[
        "attest",
        "--key",
        s(&key),
        "--predicate",
        s(&predicate),
        "--type",
        "vuln",
        "--format",
        "both",
        &image,
    ]);
    assert_eq!(code(&again), 0);
    assert!(
        stderr(&again).contains("Already attested"),
        "{}",
        stderr(&again)
    );
    assert_eq!(att_layers(&image, &digest).len(), 1);
    assert_eq!(bundles(&image, &digest).len(), 1);
}

/// Push a hand-made `.att` layer holding `envelope` for `digest`.
fn push_envelope(image: &str, digest: &Digest, envelope: &Envelope, annotated: &str) {
    let st = store(image);
    let bytes = envelope.to_json();
    let mut layer = Descriptor::of(DSSE_ENVELOPE_MEDIA_TYPE, &bytes);
    layer.annotations = Some(BTreeMap::from([
        (
            "dev.cosignproject.cosign/signature".to_string(),
            String::new(),
        ),
        ("predicateType".to_string(), annotated.to_string()),
    ]));
    runtime()
        .block_on(signet_verifier::sign::append_attestation_layer(
            &st, digest, layer, bytes, 12,
        ))
        .unwrap();
}

fn decrypt(path: &Path) -> signet_sign::SigningKey {
    signet_sign::keys::read_private_key_file(path, KEY_PASSWORD.as_bytes())
        .unwrap()
        .key
}

fn statement(name: &str, digest: &Digest, kind: &str, predicate: Value) -> Vec<u8> {
    Statement::for_image(
        Some(name),
        digest,
        PredicateType::from_name(kind).unwrap(),
        predicate,
    )
    .to_bytes()
    .unwrap()
}

#[test]
fn refused_attestations_name_the_failed_check() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "att");
    let (_, other_public) = keypair(dir.path(), "other");
    let signing = decrypt(&key);
    let name = format!("{}/neg/app", reg.host());
    let refuse = |tag: &str, extra: &[&str], check: &str, detail: &str| {
        let image = format!("{name}:{tag}");
        let mut args = vec!["verify-attestation", "--key", s(&public)];
        args.extend_from_slice(extra);
        args.push(&image);
        let out = run(&args);
        assert_eq!(code(&out), 12, "{tag}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.contains(&format!("{check}: ")) && text.contains(detail),
            "{tag}: {text}"
        );
        // The JSON report names exactly that check as failed.
        args.splice(1..1, ["--output", "json"]);
        let json = run(&args);
        let report: Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(report["outcome"], "none-verified");
        let failed: Vec<&str> = report["candidates"][0]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["passed"] == false && c.get("skipped").is_none())
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(failed, [check], "{tag}");
    };

    // An attestation about another image's digest, stored under this image's .att tag.
    let this = support::push_sample_image(&reg, "neg/app:other-digest");
    let other = Digest::sha256(b"another image");
    let env = Envelope::sign(
        &signing,
        INTOTO_PAYLOAD_TYPE,
        statement(&name, &other, "vuln", serde_json::json!({"a": 1})),
    );
    push_envelope(&format!("{name}:other-digest"), &this, &env, VULN);
    refuse("other-digest", &[], "subject", "no subject names");

    // Signed by another key than the one given.
    let d = support::push_sample_image(&reg, "neg/app:wrong-key");
    let out = run(&[
        "attest",
        "--key",
        s(&key),
        "--predicate",
        "-",
        "--type",
        "vuln",
        &format!("{name}:wrong-key"),
    ]);
    assert_eq!(code(&out), 2, "stdin is empty: not JSON");
    let predicate = dir.path().join("p.json");
    std::fs::write(&predicate, br#"{"a":1}"#).unwrap();
    let out = run(&[
        "attest",
        "--key",
        s(&key),
        "--predicate",
        s(&predicate),
        "--type",
        "vuln",
        &format!("{name}:wrong-key"),
    ]);
    assert_eq!(code(&out), 0);
    let image = format!("{name}:wrong-key");
    let wrong = run(&["verify-attestation", "--key", s(&other_public), &image]);
    assert_eq!(code(&wrong), 12);
    assert!(
        stderr(&wrong).contains("signature: the DSSE signature does not verify"),
        "{}",
        stderr(&wrong)
    );
    assert_eq!(att_layers(&image, &d).len(), 1);

    // A validly signed envelope whose payload type is not in-toto.
    let d = support::push_sample_image(&reg, "neg/app:payload-type");
    let env = Envelope::sign(
        &signing,
        "application/json",
        statement(&name, &d, "vuln", serde_json::json!({"a": 1})),
    );
    push_envelope(&format!("{name}:payload-type"), &d, &env, VULN);
    refuse(
        "payload-type",
        &[],
        "payload-type",
        "not \"application/vnd.in-toto+json\"",
    );

    // A predicate changed after signing.
    let d = support::push_sample_image(&reg, "neg/app:tampered");
    let mut env = Envelope::sign(
        &signing,
        INTOTO_PAYLOAD_TYPE,
        statement(
            &name,
            &d,
            "vuln",
            serde_json::json!({"severity": "CRITICAL"}),
        ),
    );
    env.payload = String::from_utf8(env.payload)
        .unwrap()
        .replace("CRITICAL", "LOW")
        .into_bytes();
    push_envelope(&format!("{name}:tampered"), &d, &env, VULN);
    refuse("tampered", &[], "signature", "does not verify");

    // Another predicate type than asked for; and an annotation that disagrees with the statement.
    let d = support::push_sample_image(&reg, "neg/app:type");
    let env = Envelope::sign(
        &signing,
        INTOTO_PAYLOAD_TYPE,
        statement(&name, &d, "vuln", serde_json::json!({"a": 1})),
    );
    push_envelope(&format!("{name}:type"), &d, &env, VULN);
    refuse(
        "type",
        &["--type", "slsaprovenance1"],
        "predicate-type",
        "not the https://slsa.dev/provenance/v1 asked for",
    );
    let d = support::push_sample_image(&reg, "neg/app:annotation");
    let env = Envelope::sign(
        &signing,
        INTOTO_PAYLOAD_TYPE,
        statement(&name, &d, "vuln", serde_json::json!({"a": 1})),
    );
    push_envelope(
        &format!("{name}:annotation"),
        &d,
        &env,
        "https://slsa.dev/provenance/v1",
    );
    refuse(
        "annotation",
        &[],
        "predicate-type",
        "differs from the annotation",
    );

    // Not an in-toto statement at all (wrong _type).
    let d = support::push_sample_image(&reg, "neg/app:statement");
    let text = String::from_utf8(statement(&name, &d, "vuln", serde_json::json!({"a": 1})))
        .unwrap()
        .replace("Statement/v1", "Statement/v9");
    let env = Envelope::sign(&signing, INTOTO_PAYLOAD_TYPE, text.into_bytes());
    push_envelope(&format!("{name}:statement"), &d, &env, VULN);
    refuse("statement", &[], "statement", "is not an in-toto statement");

    // Unknown --type names are a usage error naming cosign's.
    let out = run(&[
        "verify-attestation",
        "--key",
        s(&public),
        "--type",
        "sbom",
        &image,
    ]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("slsaprovenance1"), "{}", stderr(&out));
}

#[test]
fn an_envelope_securesystemslib_signed_verifies_in_signet() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let digest = support::push_sample_image(&reg, "peer/app:v1");
    let image = format!("{}/peer/app:v1", reg.host());
    let statement_bytes = statement(
        &format!("{}/peer/app", reg.host()),
        &digest,
        "slsaprovenance1",
        serde_json::json!({"buildDefinition": {"buildType": "https://example.com/b"}}),
    );
    let statement_file = dir.path().join("statement.json");
    std::fs::write(&statement_file, &statement_bytes).unwrap();
    let public = dir.path().join("py.pub");
    let envelope_file = dir.path().join("py-envelope.json");
    let script = r#"
import json, sys
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import serialization
from securesystemslib.signer import CryptoSigner, SSlibKey
from securesystemslib.dsse import Envelope
priv = ec.generate_private_key(ec.SECP256R1())
pub = SSlibKey.from_crypto(priv.public_key())
signer = CryptoSigner(priv, SSlibKey("", pub.keytype, pub.scheme, pub.keyval))
env = Envelope(open(sys.argv[1], 'rb').read(), "application/vnd.in-toto+json", {})
env.sign(signer)
open(sys.argv[2], 'w').write(json.dumps(env.to_dict()))
open(sys.argv[3], 'wb').write(priv.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            s(&statement_file),
            s(&envelope_file),
            s(&public),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let envelope = Envelope::parse(&std::fs::read(&envelope_file).unwrap()).unwrap();
    push_envelope(&image, &digest, &envelope, "https://slsa.dev/provenance/v1");
    let ok = run(&[
        "verify-attestation",
        "--key",
        s(&public),
        "--type",
        "slsaprovenance1",
        &image,
    ]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    let st = Statement::parse(String::from_utf8_lossy(&ok.stdout).trim().as_bytes()).unwrap();
    assert_eq!(
        st.predicate["buildDefinition"]["buildType"],
        "https://example.com/b"
    );
}

#[test]
fn sign_format_both_writes_sig_and_bundle_and_copy_carries_them() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "k");
    let digest = support::push_sample_image(&reg, "both/app:v1");
    let image = format!("{}/both/app:v1", reg.host());
    let out = run(&[
        "sign",
        "--key",
        s(&key),
        "--format",
        "both",
        "-a",
        "team=blue",
        &image,
    ]);
    assert_eq!(code(&out), 0);
    assert!(stderr(&out).contains("as bundle referrer"));
    // Old verifiers: the .sig tag verifies.
    assert_eq!(code(&run(&["verify", "--key", s(&public), &image])), 0);
    // New: a bundle with cosign's sign/v1 statement about the digest.
    let found = bundles(&image, &digest);
    assert_eq!(found.len(), 1);
    let (manifest, bundle) = &found[0];
    assert_eq!(
        manifest["annotations"]["dev.sigstore.bundle.predicateType"],
        SIGN_V1
    );
    let env = Envelope::from_value(&bundle["dsseEnvelope"]).unwrap();
    let st = Statement::parse(&env.payload).unwrap();
    assert_eq!(st.predicate_type.as_str(), SIGN_V1);
    assert!(st.names_digest(&digest));
    assert_eq!(
        st.subjects[0].name, None,
        "cosign's sign statement names only the digest"
    );
    assert_eq!(st.subjects[0].annotations.as_ref().unwrap()["team"], "blue");
    let ok = run(&[
        "verify-attestation",
        "--key",
        s(&public),
        "--type",
        SIGN_V1,
        &image,
    ]);
    assert_eq!(code(&ok), 0);
    // Signing again adds nothing.
    let again = run(&[
        "sign",
        "--key",
        s(&key),
        "--format",
        "both",
        "-a",
        "team=blue",
        &image,
    ]);
    assert_eq!(code(&again), 0);
    assert!(
        stderr(&again).contains("Already signed"),
        "{}",
        stderr(&again)
    );
    assert_eq!(bundles(&image, &digest).len(), 1);
    // --format bundle cannot go to another repository.
    let refused = run(&[
        "sign",
        "--key",
        s(&key),
        "--format",
        "bundle",
        "--signature-repo",
        &format!("{}/sigs", reg.host()),
        &image,
    ]);
    assert_eq!(code(&refused), 2);
    assert!(stderr(&refused).contains("cannot go to --signature-repo"));

    // Attest too, then copy registry -> layout -> another registry repository.
    let predicate = dir.path().join("p.json");
    std::fs::write(&predicate, br#"{"x":1}"#).unwrap();
    assert_eq!(
        code(&run(&[
            "attest",
            "--key",
            s(&key),
            "--predicate",
            s(&predicate),
            "--format",
            "both",
            &image
        ])),
        0
    );
    let layout = format!("oci:{}:v1", dir.path().join("layout").display());
    let copied = run(&["copy", &image, &layout]);
    assert_eq!(code(&copied), 0);
    assert!(
        stderr(&copied).contains("1 signature(s), 1 attestation(s) and 2 referrer(s) added"),
        "{}",
        stderr(&copied)
    );
    let back = format!("{}/copied/app:v1", reg.host());
    let copied = run(&["copy", &layout, &back]);
    assert_eq!(code(&copied), 0);
    assert!(
        stderr(&copied).contains("1 signature(s), 1 attestation(s) and 2 referrer(s) added"),
        "{}",
        stderr(&copied)
    );
    for place in [&layout, &back] {
        assert_eq!(bundles(place, &digest).len(), 2, "{place}");
        let ok = run(&[
            "verify-attestation",
            "--key",
            s(&public),
            "--output",
            "json",
            place,
        ]);
        assert_eq!(code(&ok), 0, "{place}");
        let report: Value = serde_json::from_slice(&ok.stdout).unwrap();
        // .att layer + attestation bundle + signature bundle.
        assert_eq!(report["candidates"].as_array().unwrap().len(), 3, "{place}");
        assert!(report["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true));
    }
    let identity = format!("{}/both/app:v1", reg.host());
    assert_eq!(
        code(&run(&[
            "verify",
            "--key",
            s(&public),
            "--identity",
            &identity,
            &layout
        ])),
        0
    );
    // Copying again adds nothing.
    let again = run(&["copy", &image, &layout]);
    assert!(
        stderr(&again).contains("0 signature(s), 0 attestation(s) and 0 referrer(s) added"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn eight_concurrent_bundle_signers_keep_eight_referrers() {
    const SIGNERS: usize = 8;
    const ROUNDS: usize = 3;
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<_> = (0..SIGNERS)
        .map(|i| keypair(dir.path(), &format!("s{i}")))
        .collect();
    for round in 0..ROUNDS {
        let digest = support::push_sample_image(&reg, &format!("many/app:r{round}"));
        let image = format!("{}/many/app@{digest}", reg.host());
        let children: Vec<Child> = keys
            .iter()
            .map(|(key, _)| {
                signet()
                    .env("SIGNET_PASSWORD", KEY_PASSWORD)
                    .args(["sign", "--key", s(key), "--format", "both", &image])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert_eq!(code(&out), 0, "{}", stderr(&out));
        }
        let found = bundles(&image, &digest);
        println!("round {round}: {} bundle referrers", found.len());
        assert_eq!(
            found.len(),
            SIGNERS,
            "round {round}: every signer's bundle listed"
        );
        for (_, public) in &keys {
            assert_eq!(
                code(&run(&["verify", "--key", s(public), &image])),
                0,
                "round {round}: .sig"
            );
            let att = run(&[
                "verify-attestation",
                "--key",
                s(public),
                "--type",
                SIGN_V1,
                &image,
            ]);
            assert_eq!(code(&att), 0, "round {round}: bundle");
            assert!(
                stderr(&att).contains("1 of 8 attestation(s)"),
                "{}",
                stderr(&att)
            );
        }
    }
}

/// A keyless (certificate-signed) bundle referrer goes through signet-keyless: a real
/// public-good DSSE bundle (testdata/sigstore-bundles/dsse-rekor1-conda) attached to an image it
/// is not about is refused, with the signature check (sigstore-verify binds the in-toto subject
/// to the image digest) and the subject check named; with only a key, it is refused as keyless.
#[test]
fn a_keyless_bundle_about_another_artifact_is_refused_through_the_keyless_checks() {
    use crate::referrers::{artifact_manifest, Api, RefServer};
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/sigstore-bundles/dsse-rekor1-conda"
    );
    let server = RefServer::start(Api::Pages(10));
    let image_manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": signet_oci::manifest::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::sha256(b"cfg").to_string(), "size": 3},
        "layers": [],
    }))
    .unwrap();
    let digest = server.manifest(
        Some("v1"),
        &image_manifest,
        signet_oci::manifest::OCI_MANIFEST,
    );
    let bundle = std::fs::read(format!("{fixture}/bundle.sigstore.json")).unwrap();
    server.blob(&bundle);
    server.blob(b"{}");
    let referrer = artifact_manifest(
        &digest,
        image_manifest.len(),
        BUNDLE_V03_MEDIA_TYPE,
        &bundle,
    );
    server.manifest(None, &referrer, signet_oci::manifest::OCI_MANIFEST);
    let image = format!("{}/app:v1", server.host());
    let identity = std::fs::read_to_string(format!("{fixture}/identity")).unwrap();
    let issuer = std::fs::read_to_string(format!("{fixture}/issuer")).unwrap();

    let out = run(&[
        "verify-attestation",
        "--certificate-identity",
        identity.trim(),
        "--certificate-oidc-issuer",
        issuer.trim(),
        "--output",
        "json",
        &image,
    ]);
    assert_eq!(code(&out), 12, "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = report["candidates"][0]["checks"].as_array().unwrap();
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["signature", "subject"], "{checks:?}");
    assert!(checks[0]["detail"]
        .as_str()
        .unwrap()
        .contains("signed with a certificate"));

    // With a key only, the keyless bundle is not accepted as a key signature.
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = keypair(dir.path(), "k");
    let out = run(&["verify-attestation", "--key", s(&public), &image]);
    assert_eq!(code(&out), 12);
    assert!(
        stderr(&out).contains(
            "signature: signed with a certificate, but no certificate identity or CA was given"
        ),
        "{}",
        stderr(&out)
    );
}

/// Bounds: an `.att` manifest with more envelopes than verifiers examine, and a predicate over
/// the statement bound, are one-line errors (exit 2), never a verdict.
#[test]
fn oversized_attestations_are_refused_in_one_line() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "k");
    let digest = support::push_sample_image(&reg, "bounds/app:v1");
    let image = format!("{}/bounds/app:v1", reg.host());

    let huge = dir.path().join("huge.json");
    let mut text = String::from("{\"pad\":\"");
    text.push_str(&"x".repeat(4 * 1024 * 1024));
    text.push_str("\"}");
    std::fs::write(&huge, text).unwrap();
    let out = run(&["attest", "--key", s(&key), "--predicate", s(&huge), &image]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("over the 4194304-byte limit"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1);

    // 101 envelope layers (one blob, listed 101 times) under the .att tag.
    let reference = reg.reference(&format!(
        "bounds/app:{}",
        signet_verifier::sign::attestation_tag(&digest)
    ));
    let c = client();
    runtime().block_on(async {
        let env = Envelope::sign(&decrypt(&key), INTOTO_PAYLOAD_TYPE, b"{}".to_vec()).to_json();
        c.put_blob(&reference, bytes::Bytes::from(env.clone()))
            .await
            .unwrap();
        let layers = vec![Descriptor::of(DSSE_ENVELOPE_MEDIA_TYPE, &env); 101];
        let (manifest, config) =
            signet_verifier::signatures::signature_manifest(None, layers).unwrap();
        c.put_blob(&reference, bytes::Bytes::from(config))
            .await
            .unwrap();
        c.put_manifest(&reference, &manifest, signet_oci::manifest::OCI_MANIFEST)
            .await
            .unwrap();
    });
    let out = run(&["verify-attestation", "--key", s(&public), &image]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("with 101 envelopes exceeds the limit of 100 attestations"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1);
    // Attesting refuses to extend it.
    let predicate = dir.path().join("p.json");
    std::fs::write(&predicate, b"{\"a\":1}").unwrap();
    let out = run(&[
        "attest",
        "--key",
        s(&key),
        "--predicate",
        s(&predicate),
        &image,
    ]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("101 layers"), "{}", stderr(&out));
}

#[test]
fn attest_output_json_names_what_was_written() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keypair(dir.path(), "json");
    let digest = support::push_sample_image(&reg, "team/json:v1");
    let image = format!("{}/team/json:v1", reg.host());
    let predicate = dir.path().join("custom.json");
    std::fs::write(&predicate, br#"{"checked":true}"#).unwrap();
    let out = run(&[
        "attest",
        "--key",
        s(&key),
        "--predicate",
        s(&predicate),
        "--type",
        "vuln",
        "--format",
        "both",
        "--output",
        "json",
        &image,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "json mode writes nothing else");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["digest"], digest.to_string());
    assert_eq!(doc["predicateType"], VULN);
    let tag = signet_verifier::sign::attestation_tag(&digest);
    assert_eq!(doc["attestations"][0]["attestationTag"], tag.to_string());
    assert_eq!(doc["attestations"][0]["added"], true);
    assert_eq!(doc["bundles"][0]["subject"], digest.to_string());
    assert_eq!(doc["bundles"][0]["added"], true);
    let referrer: Digest = doc["bundles"][0]["referrer"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let listed = runtime()
        .block_on(store(&image).referrers(&digest, Some(BUNDLE_V03_MEDIA_TYPE)))
        .unwrap();
    assert_eq!(
        listed
            .descriptors
            .iter()
            .map(|d| d.digest.clone())
            .collect::<Vec<_>>(),
        vec![referrer],
        "the referrer the document names is the one the registry lists"
    );
}

/// A loopback relay in front of `upstream` that records each request line (`GET /v2/…`).
struct CountingRelay {
    host: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl CountingRelay {
    fn start(upstream: String) -> CountingRelay {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let Ok(mut server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = client.read(&mut buf) {
                        for line in String::from_utf8_lossy(&buf[..n]).split("\r\n") {
                            if line.ends_with(" HTTP/1.1") && line.contains(" /v2/") {
                                seen.lock().unwrap().push(line.to_string());
                            }
                        }
                        if server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = s2.read(&mut buf) {
                        if c2.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        CountingRelay { host, requests }
    }

    /// The registry requests made so far, then forget them.
    fn take(&self) -> Vec<String> {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

/// Push a bundle referrer of `digest` holding `envelope`, with `signer`'s key hint.
fn push_signature_bundle(image: &str, envelope: &Envelope, signer: &signet_sign::keys::PublicKey) {
    let st = store(image);
    runtime().block_on(async {
        let subject = st.resolve().await.unwrap();
        signet_verifier::bundle_sign::push_bundle(
            &st,
            &subject,
            envelope,
            signer,
            &PredicateType::uri(SIGN_V1).unwrap(),
            "2026-01-01T00:00:00Z",
        )
        .await
        .unwrap();
    });
}

/// Issue 12 item 1: `verify --key` accepts what `sign --format bundle` wrote (a bundle-only
/// image), refuses it under another key naming the check, reads no referrers with
/// `--signature-format legacy`, and fails closed: a bundle that claims the given key and does
/// not verify refuses the image even beside a good `.sig` layer. A bundle by another signer
/// (its hint names another key) is another signer's evidence, as a `.sig` layer by another key is.
#[test]
fn verify_with_a_key_reads_bundle_signatures_and_fails_closed_on_a_bad_one() {
    let reg = TestRegistry::start();
    let relay = CountingRelay::start(reg.host());
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "k");
    let (other_key, other_public) = keypair(dir.path(), "other");

    // A bundle-only image.
    support::push_sample_image(&reg, "bundled/app:v1");
    let image = format!("{}/bundled/app:v1", relay.host);
    let signed = run(&[
        "sign",
        "--key",
        s(&key),
        "--format",
        "bundle",
        "-a",
        "team=blue",
        &image,
    ]);
    assert_eq!(code(&signed), 0, "{}", stderr(&signed));
    relay.take();
    let ok = run(&["verify", "--key", s(&public), &image]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    let bundle_requests = relay.take();
    assert!(
        stderr(&ok).contains("1 of 1 cosign bundle signature(s) verified"),
        "{}",
        stderr(&ok)
    );
    assert!(
        stderr(&ok).contains("repository-not-signed"),
        "{}",
        stderr(&ok)
    );
    let printed: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(printed[0]["predicateType"], SIGN_V1, "{printed}");
    // A required annotation is read from the statement's subject.
    let annotated = run(&["verify", "--key", s(&public), "-a", "team=blue", &image]);
    assert_eq!(code(&annotated), 0, "{}", stderr(&annotated));
    let missing = run(&["verify", "--key", s(&public), "-a", "team=red", &image]);
    assert_eq!(code(&missing), 12, "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("annotation-missing"),
        "{}",
        stderr(&missing)
    );

    let wrong = run(&["verify", "--key", s(&other_public), &image]);
    assert_eq!(code(&wrong), 12, "{}", stderr(&wrong));
    assert!(
        stderr(&wrong)
            .contains("signature: the DSSE signature does not verify with the given key(s)"),
        "{}",
        stderr(&wrong)
    );
    relay.take();
    let legacy_only = run(&[
        "verify",
        "--key",
        s(&public),
        "--signature-format",
        "legacy",
        &image,
    ]);
    assert_eq!(code(&legacy_only), 10, "{}", stderr(&legacy_only));
    let legacy_requests = relay.take();
    assert!(
        legacy_requests
            .iter()
            .all(|r| !r.contains("referrers") && !r.contains(":sha256-")),
        "{legacy_requests:?}"
    );

    // --format both: legacy and bundle both verify; the request count with bundles read.
    support::push_sample_image(&reg, "both/app:v1");
    let both = format!("{}/both/app:v1", relay.host);
    assert_eq!(
        code(&run(&["sign", "--key", s(&key), "--format", "both", &both])),
        0
    );
    relay.take();
    let ok = run(&["verify", "--key", s(&public), "--output", "json", &both]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    let both_requests = relay.take();
    let report: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["signatures"].as_array().unwrap().len(), 1);
    assert_eq!(report["bundles"][0]["passed"], true, "{report}");
    assert!(!stderr(&ok).contains("repository-not-signed"));
    assert_eq!(
        code(&run(&[
            "verify",
            "--key",
            s(&public),
            "--signature-format",
            "legacy",
            &both
        ])),
        0
    );
    let legacy_requests = relay.take();
    eprintln!(
        "requests: bundle-only {} {bundle_requests:?}\nboth {} {both_requests:?}\nboth, legacy only {} {legacy_requests:?}",
        bundle_requests.len(),
        both_requests.len(),
        legacy_requests.len()
    );
    // Reading bundles costs the referrers listing (API, then the tag schema on a registry
    // without it), the referrer manifest and the bundle blob: at most 4 more.
    assert!(
        both_requests.len() <= legacy_requests.len() + 4,
        "{both_requests:?} vs {legacy_requests:?}"
    );

    // A good .sig beside a tampered bundle that claims the same key: refused.
    let digest = support::push_sample_image(&reg, "tampered/app:v1");
    let tampered = format!("{}/tampered/app:v1", relay.host);
    assert_eq!(code(&run(&["sign", "--key", s(&key), &tampered])), 0);
    assert_eq!(code(&run(&["verify", "--key", s(&public), &tampered])), 0);
    let signing = decrypt(&key);
    let statement = Statement::for_image(
        None,
        &digest,
        PredicateType::uri(SIGN_V1).unwrap(),
        serde_json::json!({}),
    );
    let mut envelope = Envelope::sign(&signing, INTOTO_PAYLOAD_TYPE, statement.to_bytes().unwrap());
    envelope.payload = String::from_utf8(envelope.payload)
        .unwrap()
        .replace("\"predicate\":{}", "\"predicate\":{\"x\":1}")
        .into_bytes();
    push_signature_bundle(&tampered, &envelope, &signing.public_key());
    let refused = run(&["verify", "--key", s(&public), &tampered]);
    assert_eq!(code(&refused), 12, "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("bundle signature(s) claiming a given key do not verify")
            && stderr(&refused).contains("signature: the DSSE signature does not verify"),
        "{}",
        stderr(&refused)
    );
    // The user may restrict the formats to the legacy one.
    assert_eq!(
        code(&run(&[
            "verify",
            "--key",
            s(&public),
            "--signature-format",
            "legacy",
            &tampered
        ])),
        0
    );

    // A good .sig beside a valid bundle by another signer: that signer's, not evidence against.
    support::push_sample_image(&reg, "cosigned/app:v1");
    let cosigned = format!("{}/cosigned/app:v1", relay.host);
    assert_eq!(code(&run(&["sign", "--key", s(&key), &cosigned])), 0);
    assert_eq!(
        code(&run(&[
            "sign",
            "--key",
            s(&other_key),
            "--format",
            "bundle",
            &cosigned
        ])),
        0
    );
    let ok = run(&["verify", "--key", s(&public), &cosigned]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    assert!(
        stderr(&ok).contains("0 of 1 cosign bundle signature(s) verified"),
        "{}",
        stderr(&ok)
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl CLI");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA made with the `openssl` CLI (`<name>-ca.pem`) and a code-signing certificate
/// (`<name>-leaf.pem`) for the public key `public`, with the email SAN `email`.
pub(crate) fn private_ca(dir: &Path, name: &str, public: &Path, email: &str) -> (PathBuf, PathBuf) {
    let (key, ca, leaf, ext) = (
        format!("{name}-ca.key"),
        format!("{name}-ca.pem"),
        format!("{name}-leaf.pem"),
        format!("{name}-ext.cnf"),
    );
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &key,
            "-subj",
            &format!("/CN={name} CA"),
            "-days",
            "30",
            "-out",
            &ca,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    std::fs::write(
        dir.join(&ext),
        format!("subjectAltName=email:{email}\nextendedKeyUsage=codeSigning\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n"),
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
            &ca,
            "-CAkey",
            &key,
            "-days",
            "7",
            "-out",
            &leaf,
            "-extfile",
            &ext,
        ],
    );
    (dir.join(ca), dir.join(leaf))
}

/// Issue 12 item 2 with a private PKI: `attest --certificate --certificate-chain` writes cosign's
/// certificate annotations into the `.att` layer, and a policy's `pki` signer counts it for an
/// attestation requirement; another CA, another identity and a tampered envelope are each
/// denied, and the report names the failed check.
#[test]
fn a_pki_signed_att_layer_counts_for_a_pki_attestation_requirement() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (release, release_public) = keypair(d, "release");
    let (builder, builder_public) = keypair(d, "builder");
    let (ca, leaf) = private_ca(d, "corp", &builder_public, "ci@corp.example");
    let (other_ca, _) = private_ca(d, "other", &builder_public, "ci@corp.example");
    let predicate = d.join("p.json");
    std::fs::write(&predicate, br#"{"built":"yes"}"#).unwrap();

    let digest = support::push_sample_image(&reg, "pki/app:v1");
    let image = format!("{}/pki/app:v1", reg.host());
    assert_eq!(code(&run(&["sign", "--key", s(&release), &image])), 0);
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
    let layers = att_layers(&image, &digest);
    let annotations = layers[0].0.annotations.clone().unwrap();
    assert!(annotations["dev.sigstore.cosign/certificate"].contains("BEGIN CERTIFICATE"));
    assert!(annotations["dev.sigstore.cosign/chain"].contains("BEGIN CERTIFICATE"));
    // A certificate cannot go into a bundle (its certificate is Fulcio's).
    let refused = run(&[
        "attest",
        "--key",
        s(&builder),
        "--predicate",
        s(&predicate),
        "--certificate",
        s(&leaf),
        "--format",
        "bundle",
        &image,
    ]);
    assert_eq!(code(&refused), 2, "{}", stderr(&refused));

    let policy = |name: &str, roots: &Path, email: &str| {
        let path = d.join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            format!(
                "keys:\n  release: {{path: {}}}\n  build:\n    pki:\n      caRoots: {{path: {}}}\n      subjectEmail: {email}\nscopes:\n  \"{}/pki\":\n    signed: {{keys: [release]}}\n    attestations:\n      - type: custom\n        keys: [build]\n",
                s(&release_public),
                s(roots),
                reg.host()
            ),
        )
        .unwrap();
        path
    };
    let verify = |policy: &Path, image: &str| {
        let out = run(&["verify", "--policy", s(policy), "--output", "json", image]);
        eprintln!("{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        out
    };
    let good = policy("good", &ca, "ci@corp.example");
    let ok = verify(&good, &image);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));

    // Another CA: no attestation verifies at all; another identity: it verifies under the CA,
    // but the signer the entry trusts is not the one that signed.
    for (name, roots, email, finding) in [
        (
            "other-ca",
            &other_ca,
            "ci@corp.example",
            "attestation-missing",
        ),
        (
            "other-email",
            &ca,
            "someone@corp.example",
            "attestation-untrusted",
        ),
    ] {
        let denied = verify(&policy(name, roots, email), &image);
        assert_eq!(code(&denied), 12, "{name}: {}", stderr(&denied));
        let report: Value = serde_json::from_slice(&denied.stdout).unwrap();
        assert_eq!(report["verdict"]["decision"], "deny", "{name}");
        assert_eq!(
            report["verdict"]["findings"][0]["code"], finding,
            "{name}: {report}"
        );
    }
    // Another CA: the report names the signature check and why it failed.
    let out = verify(&policy("other-ca-2", &other_ca, "ci@corp.example"), &image);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        failed_attestation_checks(&report),
        ["signature"],
        "{report}"
    );

    // A tampered envelope beside the certificate annotations: denied, the signature check fails.
    let digest2 = support::push_sample_image(&reg, "pki/tampered:v1");
    let tampered_image = format!("{}/pki/tampered:v1", reg.host());
    assert_eq!(
        code(&run(&["sign", "--key", s(&release), &tampered_image])),
        0
    );
    let signing = decrypt(&builder);
    let mut envelope = Envelope::sign(
        &signing,
        INTOTO_PAYLOAD_TYPE,
        statement(
            &format!("{}/pki/tampered", reg.host()),
            &digest2,
            "custom",
            serde_json::json!({"built": "yes"}),
        ),
    );
    envelope.payload = String::from_utf8(envelope.payload)
        .unwrap()
        .replace("\"yes\"", "\"no\"")
        .into_bytes();
    let st = store(&tampered_image);
    let bytes = envelope.to_json();
    let mut layer = Descriptor::of(DSSE_ENVELOPE_MEDIA_TYPE, &bytes);
    layer.annotations = Some(BTreeMap::from([
        (
            "dev.cosignproject.cosign/signature".to_string(),
            String::new(),
        ),
        (
            "predicateType".to_string(),
            PredicateType::from_name("custom")
                .unwrap()
                .as_str()
                .to_string(),
        ),
        (
            "dev.sigstore.cosign/certificate".to_string(),
            std::fs::read_to_string(&leaf).unwrap(),
        ),
    ]));
    runtime()
        .block_on(signet_verifier::sign::append_attestation_layer(
            &st, &digest2, layer, bytes, 12,
        ))
        .unwrap();
    let denied = verify(&good, &tampered_image);
    assert_eq!(code(&denied), 12, "{}", stderr(&denied));
    let report: Value = serde_json::from_slice(&denied.stdout).unwrap();
    assert_eq!(
        report["verdict"]["findings"][0]["code"], "attestation-missing",
        "{report}"
    );
    assert_eq!(
        failed_attestation_checks(&report),
        ["signature"],
        "{report}"
    );
}

/// The names of the failed checks of the policy report's only attestation candidate.
fn failed_attestation_checks(report: &Value) -> Vec<String> {
    let candidates = report["attestations"].as_array().expect("attestations");
    assert_eq!(candidates.len(), 1, "{report}");
    candidates[0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false && c["skipped"] != true)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// `verify --policy` with key signers judges a bundle-only image (what `sign --format bundle`
/// wrote): a `signed` entry without an identity rule allows it, one with an identity rule
/// denies it (a bundle signs no repository), and a tampered bundle claiming the key gives no
/// evidence and refuses the image (`bundle-refused`, as `verify --key`).
#[test]
fn verify_policy_with_key_signers_judges_a_bundle_only_image() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "k");
    let digest = support::push_sample_image(&reg, "pol/app:v1");
    let image = format!("{}/pol/app:v1", reg.host());
    assert_eq!(
        code(&run(&[
            "sign",
            "--key",
            s(&key),
            "--format",
            "bundle",
            &image
        ])),
        0
    );
    let policy = |name: &str, extra: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "keys:\n  k: {{path: {}}}\ndefault:\n  signed: {{keys: [k]{extra}}}\n",
                s(&public)
            ),
        )
        .unwrap();
        path
    };
    let judge = |policy: &Path, image: &str| {
        let out = run(&["verify", "--policy", s(policy), "--output", "json", image]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (code(&out), report, stderr(&out))
    };
    let (rc, report, err) = judge(&policy("any.yaml", ""), &image);
    assert_eq!(rc, 0, "{report} {err}");
    let (rc, report, _) = judge(
        &policy("identity.yaml", ", identity: matchRepository"),
        &image,
    );
    assert_eq!(rc, 12);
    assert_eq!(
        report["verdict"]["findings"][0]["code"], "identity-not-signed",
        "{report}"
    );

    // A tampered bundle claiming the key: no evidence, and refused.
    let digest2 = support::push_sample_image(&reg, "pol/tampered:v1");
    let tampered = format!("{}/pol/tampered:v1", reg.host());
    let signing = decrypt(&key);
    let statement = Statement::for_image(
        None,
        &digest2,
        PredicateType::uri(SIGN_V1).unwrap(),
        serde_json::json!({}),
    );
    let mut envelope = Envelope::sign(&signing, INTOTO_PAYLOAD_TYPE, statement.to_bytes().unwrap());
    envelope.payload = String::from_utf8(envelope.payload)
        .unwrap()
        .replace("\"predicate\":{}", "\"predicate\":{\"x\":1}")
        .into_bytes();
    push_signature_bundle(&tampered, &envelope, &signing.public_key());
    let (rc, report, _) = judge(&policy("any.yaml", ""), &tampered);
    assert_eq!(rc, 12);
    let codes: Vec<&str> = report["verdict"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["bundle-refused", "no-valid-signature"], "{report}");
    let _ = digest;
}
