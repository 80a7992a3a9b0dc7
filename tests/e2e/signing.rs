//! Keys, sign, verify and copy through the `signet` binary against the real registry, and the
//! attacks `verify` must refuse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use signet_oci::manifest::{OCI_MANIFEST, SIMPLE_SIGNING};
use signet_oci::{Descriptor, Digest, Reference};
use signet_sign::keys::SigningKey;

use crate::support::{
    self, client, code, keypair, run, runtime, s, signet, TestRegistry, KEY_PASSWORD as PASSWORD,
};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The signature manifest's layers for `digest` in `repo` of `reg`.
fn signature_layers(reg: &TestRegistry, repo: &str, digest: &Digest) -> Vec<Descriptor> {
    let reference = reg.reference(&format!("{repo}:{}", digest.signature_tag()));
    let fetched = runtime()
        .block_on(client().get_manifest(&reference))
        .unwrap();
    match fetched.manifest {
        signet_oci::Manifest::Image(m) => m.layers,
        other => panic!("not an image manifest: {other:?}"),
    }
}

/// Push a hand-made signature manifest (payload blobs with signatures) for `digest`.
fn push_signatures(reg: &TestRegistry, repo: &str, digest: &Digest, layers: &[(Vec<u8>, String)]) {
    let reference = reg.reference(&format!("{repo}:{}", digest.signature_tag()));
    let c = client();
    runtime().block_on(async {
        let mut descriptors = Vec::new();
        for (payload, signature) in layers {
            c.put_blob(&reference, bytes::Bytes::from(payload.clone()))
                .await
                .unwrap();
            let mut d = Descriptor::of(SIMPLE_SIGNING, payload);
            d.annotations = Some(BTreeMap::from([(
                signet_sign::SIGNATURE_ANNOTATION.to_string(),
                signature.clone(),
            )]));
            descriptors.push(d);
        }
        let (manifest, config) =
            signet_verifier::signatures::signature_manifest(None, descriptors).unwrap();
        c.put_blob(&reference, bytes::Bytes::from(config))
            .await
            .unwrap();
        c.put_manifest(&reference, &manifest, OCI_MANIFEST)
            .await
            .unwrap();
    });
}

fn decrypt(path: &Path) -> SigningKey {
    signet_sign::keys::read_private_key_file(path, PASSWORD.as_bytes())
        .unwrap()
        .key
}

#[test]
fn generate_key_pair_writes_private_key_0600_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "k");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    assert!(!pem.contains(PASSWORD));
    let before = std::fs::read(&key).unwrap();
    let again = run(&[
        "generate-key-pair",
        "--output-key-prefix",
        s(&dir.path().join("k")),
    ]);
    assert_eq!(code(&again), 2);
    assert!(stderr(&again).contains("k.key"), "names the file");
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "existing key untouched"
    );
    let printed = run(&["public-key", "--key", s(&key)]);
    assert_eq!(code(&printed), 0);
    assert_eq!(printed.stdout, std::fs::read(&public).unwrap());
    let wrong = signet()
        .env("SIGNET_PASSWORD", "not-it")
        .args(["public-key", "--key", s(&key)])
        .output()
        .unwrap();
    assert_eq!(code(&wrong), 2);
    assert!(stderr(&wrong).contains(&format!("wrong password for {}", key.display())));
    let no_password = signet()
        .args(["public-key", "--key", s(&key)])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&no_password), 2);
    assert!(stderr(&no_password).contains("SIGNET_PASSWORD"));
}

#[test]
fn sign_then_verify_in_the_registry_appends_and_deduplicates() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key1, pub1) = keypair(dir.path(), "one");
    let (key2, pub2) = keypair(dir.path(), "two");
    let digest = support::push_sample_image(&reg, "team/app:v1");
    let image = format!("{}/team/app:v1", reg.host());

    let unsigned = run(&["verify", "--key", s(&pub1), &image]);
    assert_eq!(code(&unsigned), 10, "no signatures yet");
    assert!(
        stderr(&unsigned).contains("no signatures found for") && stderr(&unsigned).contains(".sig"),
        "{}",
        stderr(&unsigned)
    );

    let signed = run(&["sign", "--key", s(&key1), "-a", "build=42", &image]);
    assert_eq!(code(&signed), 0);
    assert!(
        stderr(&signed).contains(&digest.to_string()),
        "warns with the digest signed"
    );

    let verified = run(&["verify", "--key", s(&pub1), &image]);
    assert_eq!(code(&verified), 0);
    let payloads: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(
        payloads[0]["critical"]["identity"]["docker-reference"],
        format!("{}/team/app", reg.host())
    );
    assert_eq!(
        payloads[0]["critical"]["image"]["docker-manifest-digest"],
        digest.to_string()
    );
    assert_eq!(payloads[0]["optional"]["build"], "42");

    // Same key, same payload: nothing added. Another key: appended, the first kept.
    assert_eq!(
        code(&run(&["sign", "--key", s(&key1), "-a", "build=42", &image])),
        0
    );
    assert_eq!(signature_layers(&reg, "team/app", &digest).len(), 1);
    assert_eq!(code(&run(&["sign", "--key", s(&key2), &image])), 0);
    let layers = signature_layers(&reg, "team/app", &digest);
    assert_eq!(layers.len(), 2);
    assert_eq!(code(&run(&["verify", "--key", s(&pub1), &image])), 0);
    assert_eq!(code(&run(&["verify", "--key", s(&pub2), &image])), 0);

    // Required annotations and identity rules.
    assert_eq!(
        code(&run(&[
            "verify",
            "--key",
            s(&pub1),
            "-a",
            "build=42",
            &image
        ])),
        0
    );
    assert_eq!(
        code(&run(&[
            "verify",
            "--key",
            s(&pub2),
            "-a",
            "build=42",
            &image
        ])),
        12
    );
    assert_eq!(
        code(&run(&[
            "verify",
            "--key",
            s(&pub1),
            "--identity-rule",
            "matchExact",
            &image
        ])),
        12,
        "a repository-only identity never matches exactly"
    );

    // The raw signature checks out with openssl too.
    let payload = runtime()
        .block_on(client().get_blob_bytes(&reg.reference("team/app:x"), &layers[0], 1 << 16))
        .unwrap();
    let signature = layers[0]
        .annotation(signet_sign::SIGNATURE_ANNOTATION)
        .unwrap();
    let der = base64_decode(signature);
    std::fs::write(dir.path().join("payload"), &payload).unwrap();
    std::fs::write(dir.path().join("sig.der"), der).unwrap();
    let openssl = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-verify", s(&pub1), "-signature"])
        .arg(dir.path().join("sig.der"))
        .arg(dir.path().join("payload"))
        .output()
        .expect("run openssl");
    assert_eq!(
        String::from_utf8_lossy(&openssl.stdout).trim(),
        "Verified OK"
    );

    // A wrong key, a missing tag.
    let (_, pub3) = keypair(dir.path(), "three");
    let wrong = run(&["verify", "--key", s(&pub3), &image]);
    assert_eq!(code(&wrong), 12);
    assert!(
        stderr(&wrong).contains("none of the 2 signature(s)")
            && stderr(&wrong).contains("signature does not verify with key"),
        "{}",
        stderr(&wrong)
    );
    let missing = run(&[
        "verify",
        "--key",
        s(&pub1),
        &format!("{}/team/app:nope", reg.host()),
    ]);
    assert_eq!(code(&missing), 11);
    assert!(
        stderr(&missing).contains("not found: manifest") && stderr(&missing).contains(":nope"),
        "{}",
        stderr(&missing)
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn signed_identity_reference_is_accepted_by_match_repo_digest_or_exact() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "k");
    let digest = support::push_sample_image(&reg, "app:v1");
    let image = format!("{}/app:v1", reg.host());
    let out = run(&[
        "sign",
        "--key",
        s(&key),
        "--signed-identity",
        "reference",
        &image,
    ]);
    assert_eq!(code(&out), 0);
    for (rule, target, expected) in [
        ("matchRepoDigestOrExact", image.clone(), 0),
        ("matchExact", image.clone(), 0),
        (
            "matchRepoDigestOrExact",
            format!("{}/app@{digest}", reg.host()),
            0,
        ),
        ("matchRepository", image.clone(), 0),
    ] {
        let out = run(&[
            "verify",
            "--key",
            s(&public),
            "--identity-rule",
            rule,
            &target,
        ]);
        assert_eq!(code(&out), expected, "{rule} {target}");
    }
}

#[test]
fn attacks_are_refused() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "k");
    let signing_key = decrypt(&key);
    let host = reg.host();
    let victim = support::push_sample_image(&reg, "prod/app:v1");
    let other = support::push_sample_image(&reg, "prod/other:v1");
    let victim_ref = format!("{host}/prod/app:v1");

    // Another image's valid signature placed on this image's .sig tag.
    assert_eq!(
        code(&run(&[
            "sign",
            "--key",
            s(&key),
            &format!("{host}/prod/other:v1")
        ])),
        0
    );
    let other_layers = signature_layers(&reg, "prod/other", &other);
    let other_payload = runtime()
        .block_on(client().get_blob_bytes(
            &reg.reference("prod/other:v1"),
            &other_layers[0],
            1 << 16,
        ))
        .unwrap();
    let other_sig = other_layers[0]
        .annotation(signet_sign::SIGNATURE_ANNOTATION)
        .unwrap()
        .to_string();
    push_signatures(
        &reg,
        "prod/app",
        &victim,
        &[(other_payload.clone(), other_sig.clone())],
    );
    let out = run(&[
        "verify",
        "--key",
        s(&public),
        "--output",
        "json",
        &victim_ref,
    ]);
    assert_eq!(code(&out), 12);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&str> = report["signatures"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(failed.contains(&"manifest-digest"), "{report}");

    // Payloads that are signed but malformed: extra field, uppercase key, wrong type.
    let good = |d: &Digest| {
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{host}/prod/app"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
        )
    };
    // Each with what the strict parser must say about it.
    let variants = [
        (
            good(&victim).replace(r#""optional":null"#, r#""optional":null,"extra":1"#),
            r#"payload: unknown key "extra" in top level"#,
        ),
        (
            good(&victim).replace("docker-manifest-digest", "Docker-manifest-digest"),
            r#"payload: unknown key "Docker-manifest-digest" in critical.image"#,
        ),
        (
            good(&victim).replace("cosign container image signature", "something else"),
            r#"payload: unrecognized signature type "something else""#,
        ),
        (
            good(&victim).replace(r#""type""#, r#""extra":{},"type""#),
            r#"payload: unknown key "extra" in critical"#,
        ),
    ];
    for (payload, why) in &variants {
        let sig = signet_sign::signature::sign(&signing_key, payload.as_bytes());
        push_signatures(
            &reg,
            "prod/app",
            &victim,
            &[(payload.as_bytes().to_vec(), sig)],
        );
        let out = run(&["verify", "--key", s(&public), &victim_ref]);
        assert_eq!(code(&out), 12, "payload {payload} must be refused");
        assert!(stderr(&out).contains(why), "{payload}: {}", stderr(&out));
    }
    // The well-formed one passes, proving the variants failed for their defect alone.
    let payload = good(&victim);
    let sig = signet_sign::signature::sign(&signing_key, payload.as_bytes());
    push_signatures(
        &reg,
        "prod/app",
        &victim,
        &[(payload.as_bytes().to_vec(), sig.clone())],
    );
    assert_eq!(code(&run(&["verify", "--key", s(&public), &victim_ref])), 0);

    // Invalid base64 in the signature annotation.
    push_signatures(
        &reg,
        "prod/app",
        &victim,
        &[(payload.as_bytes().to_vec(), "%%%not base64".into())],
    );
    let out = run(&["verify", "--key", s(&public), &victim_ref]);
    assert_eq!(code(&out), 12);
    assert!(
        stderr(&out).contains("invalid signature encoding: not standard base64"),
        "{}",
        stderr(&out)
    );

    // An oversized payload blob is not read at all.
    let big = vec![b' '; 200 * 1024];
    push_signatures(&reg, "prod/app", &victim, &[(big, sig.clone())]);
    let out = run(&["verify", "--key", s(&public), &victim_ref]);
    assert_eq!(code(&out), 12);
    assert!(stderr(&out).contains("payload-size"), "{}", stderr(&out));

    // A .sig manifest with 1,000 layers: bounded, clear error, not trusted.
    let many: Vec<(Vec<u8>, String)> = (0..1000)
        .map(|i| (format!("{{\"n\":{i}}}").into_bytes(), sig.clone()))
        .collect();
    push_signatures(&reg, "prod/app", &victim, &many);
    let out = run(&["verify", "--key", s(&public), &victim_ref]);
    assert_eq!(code(&out), 2, "could not check (bounded), not a verdict");
    assert!(
        stderr(&out).contains("with 1000 signatures exceeds the limit of 100 signatures"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn copied_image_keeps_signatures_but_not_its_identity() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "k");
    let digest = support::push_sample_image(&reg, "origin/app:v1");
    let host = reg.host();
    assert_eq!(
        code(&run(&[
            "sign",
            "--key",
            s(&key),
            &format!("{host}/origin/app:v1")
        ])),
        0
    );
    let out = run(&[
        "copy",
        &format!("{host}/origin/app:v1"),
        &format!("{host}/mirror/app:v1"),
    ]);
    assert_eq!(code(&out), 0);
    assert_eq!(signature_layers(&reg, "mirror/app", &digest).len(), 1);
    // The signature names origin/app: refused for mirror/app under matchRepository ...
    let out = run(&[
        "verify",
        "--key",
        s(&public),
        &format!("{host}/mirror/app:v1"),
    ]);
    assert_eq!(code(&out), 12);
    assert!(
        stderr(&out).contains("signature 0: identity: ")
            && stderr(&out).contains("/origin/app not accepted for")
            && stderr(&out).contains("by matchRepository"),
        "{}",
        stderr(&out)
    );
    // ... and accepted only when the caller says which identity to expect.
    let out = run(&[
        "verify",
        "--key",
        s(&public),
        "--identity",
        &format!("{host}/origin/app:v1"),
        &format!("{host}/mirror/app:v1"),
    ]);
    assert_eq!(code(&out), 0);
}

#[test]
fn manifest_modified_after_signing_is_refused() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "k");
    let host = reg.host();
    let first = support::push_sample_image(&reg, "app:v1");
    assert_eq!(
        code(&run(&["sign", "--key", s(&key), &format!("{host}/app:v1")])),
        0
    );
    // Someone pushes different content under the same tag and copies the old signature along.
    let second = support::push_sample_image(&reg, "app:v1-modified");
    let layers = signature_layers(&reg, "app", &first);
    let payload = runtime()
        .block_on(client().get_blob_bytes(&reg.reference("app:v1"), &layers[0], 1 << 16))
        .unwrap();
    let sig = layers[0]
        .annotation(signet_sign::SIGNATURE_ANNOTATION)
        .unwrap()
        .to_string();
    push_signatures(&reg, "app", &second, &[(payload, sig)]);
    let out = run(&[
        "verify",
        "--key",
        s(&public),
        &format!("{host}/app:v1-modified"),
    ]);
    assert_eq!(code(&out), 12);
    assert!(
        stderr(&out).contains("signature 0: manifest-digest: payload names")
            && stderr(&out).contains("not the image's"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn sign_in_a_layout_then_publish_with_signatures() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "k");
    let layout = dir.path().join("layout");
    crate::support::copy_dir(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/images/single"
        )),
        &layout,
    );
    let image = format!("oci:{}:v1", layout.display());
    let identity = format!("{}/built/app:v1", reg.host());
    let missing_identity = run(&["sign", "--key", s(&key), &image]);
    assert_eq!(code(&missing_identity), 2);
    assert!(stderr(&missing_identity).contains("--identity"));
    assert_eq!(
        code(&run(&[
            "sign",
            "--key",
            s(&key),
            "--identity",
            &identity,
            &image
        ])),
        0
    );
    assert_eq!(
        code(&run(&[
            "verify",
            "--key",
            s(&public),
            "--identity",
            &identity,
            &image
        ])),
        0
    );
    // Publish image and signatures together, then verify in the registry.
    assert_eq!(code(&run(&["copy", &image, &identity])), 0);
    assert_eq!(code(&run(&["verify", "--key", s(&public), &identity])), 0);
    // And back into a fresh layout.
    let back = dir.path().join("back");
    assert_eq!(
        code(&run(&[
            "copy",
            &identity,
            &format!("oci:{}:v1", back.display())
        ])),
        0
    );
    assert_eq!(
        code(&run(&[
            "verify",
            "--key",
            s(&public),
            "--identity",
            &identity,
            &format!("oci:{}:v1", back.display())
        ])),
        0
    );
    let _ = Reference::parse_as_written(&identity).unwrap();
}

#[test]
fn recursive_signing_signs_every_child_of_an_index() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "k");
    let source = format!(
        "oci:{}:v1",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/images/multi")
    );
    let target = format!("{}/multi/app:v1", reg.host());
    assert_eq!(code(&run(&["copy", &source, &target])), 0);
    assert_eq!(
        code(&run(&["sign", "--key", s(&key), "--recursive", &target])),
        0
    );
    assert_eq!(code(&run(&["verify", "--key", s(&public), &target])), 0);
    for platform in ["linux/amd64", "linux/arm64"] {
        let out = run(&["digest", "--platform", platform, &target]);
        assert_eq!(code(&out), 0);
        let child = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let out = run(&[
            "verify",
            "--key",
            s(&public),
            &format!("{}/multi/app@{child}", reg.host()),
        ]);
        assert_eq!(code(&out), 0, "child {platform} signed");
    }
}

#[test]
fn signatures_can_live_in_another_repository() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "k");
    let host = reg.host();
    let digest = support::push_sample_image(&reg, "app/image:v1");
    let image = format!("{host}/app/image:v1");
    let sigs = format!("{host}/app/signatures");
    let out = run(&["sign", "--key", s(&key), "--signature-repo", &sigs, &image]);
    assert_eq!(code(&out), 0);
    assert_eq!(signature_layers(&reg, "app/signatures", &digest).len(), 1);
    // Not next to the image: a plain verify finds nothing, one told where to look verifies.
    let out = run(&["verify", "--key", s(&public), &image]);
    assert_eq!(code(&out), 10);
    assert!(
        stderr(&out).contains("no signatures found for") && stderr(&out).contains(&image),
        "{}",
        stderr(&out)
    );
    let out = run(&[
        "verify",
        "--key",
        s(&public),
        "--signature-repo",
        &sigs,
        &image,
    ]);
    assert_eq!(code(&out), 0);
}

#[test]
fn imported_keys_sign_like_generated_ones() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let pkcs8 = dir.path().join("plain.pem");
    let openssl = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&pkcs8)
        .output()
        .expect("run openssl");
    assert!(openssl.status.success());
    let prefix = dir.path().join("imported");
    let out = run(&[
        "import-key-pair",
        "--key",
        s(&pkcs8),
        "--output-key-prefix",
        s(&prefix),
    ]);
    assert_eq!(code(&out), 0);
    let key = prefix.with_extension("key");
    let public = prefix.with_extension("pub");
    let openssl_pub = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&pkcs8)
        .output()
        .unwrap();
    assert_eq!(
        std::fs::read(&public).unwrap(),
        openssl_pub.stdout,
        "same public key as openssl's"
    );
    support::push_sample_image(&reg, "imp:v1");
    let image = format!("{}/imp:v1", reg.host());
    assert_eq!(code(&run(&["sign", "--key", s(&key), &image])), 0);
    assert_eq!(code(&run(&["verify", "--key", s(&public), &image])), 0);
}
