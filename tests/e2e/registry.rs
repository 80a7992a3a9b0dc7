//! The registry client (`signet_oci::registry`) against a real `docker-registry`: round trips,
//! refusal of bytes that do not match their digest, limits, errors, and every way of
//! authenticating (htpasswd basic auth, auth files, the bearer token flow).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use signet_oci::registry::ByteStream;
use signet_oci::{Descriptor, Digest, Error, Reference, RegistryClient, RegistryOptions};

use crate::support::{self, TestRegistry};

/// Drain `get_blob` into one result: the error may come at the start (wrong Content-Length) or
/// instead of the stream's end.
async fn fetch_blob(
    client: &RegistryClient,
    reference: &Reference,
    descriptor: &Descriptor,
) -> Result<Vec<u8>, Error> {
    let mut stream = client.get_blob(reference, descriptor).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

fn chunked(bytes: &[u8], piece: usize) -> ByteStream {
    let pieces: Vec<Result<Bytes, Error>> = bytes
        .chunks(piece)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(pieces))
}

#[test]
fn push_then_pull_is_byte_identical() {
    let reg = TestRegistry::start();
    let reference = reg.reference("round/trip:v1");
    let (manifest, blobs) = support::sample_image("round/trip:v1");
    // Chunk size well below the big blob, so it takes several PATCHes.
    let client = support::client().with_upload_chunk_bytes(64 * 1024);
    let big = support::sample_bytes("big", 300 * 1024 + 7);
    let big_desc = Descriptor::of("application/octet-stream", &big);
    support::runtime().block_on(async {
        for (desc, bytes) in &blobs {
            assert!(!client.has_blob(&reference, &desc.digest).await.unwrap());
            let digest = client
                .put_blob(&reference, Bytes::from(bytes.clone()))
                .await
                .unwrap();
            assert_eq!(digest, desc.digest);
            assert!(client.has_blob(&reference, &desc.digest).await.unwrap());
            // A second upload is skipped, and harmless.
            client
                .put_blob(&reference, Bytes::from(bytes.clone()))
                .await
                .unwrap();
        }
        client
            .put_blob_stream(&reference, &big_desc, chunked(&big, 10_000))
            .await
            .unwrap();
        let pushed = client
            .put_manifest(&reference, &manifest, signet_oci::manifest::OCI_MANIFEST)
            .await
            .unwrap();
        assert_eq!(pushed, Digest::sha256(&manifest));

        let by_tag = client.get_manifest(&reference).await.unwrap();
        assert_eq!(by_tag.bytes, manifest);
        assert_eq!(by_tag.digest, pushed);
        assert_eq!(by_tag.media_type, signet_oci::manifest::OCI_MANIFEST);
        let by_digest = client
            .get_manifest(&reference.with_digest(pushed.clone()))
            .await
            .unwrap();
        assert_eq!(by_digest.bytes, manifest);
        let head = client.head_manifest(&reference).await.unwrap().unwrap();
        assert_eq!(head.digest, pushed);
        assert_eq!(head.size, manifest.len() as u64);

        for (desc, bytes) in &blobs {
            let got = client
                .get_blob_bytes(&reference, desc, 1024 * 1024)
                .await
                .unwrap();
            assert_eq!(&got, bytes);
        }
        let got = fetch_blob(&client, &reference, &big_desc).await.unwrap();
        assert!(got == big, "chunked upload came back different");
        let small_limit = client.get_blob_bytes(&reference, &big_desc, 1024).await;
        assert!(matches!(small_limit, Err(Error::LimitExceeded { .. })));

        assert_eq!(client.list_tags(&reference).await.unwrap(), vec!["v1"]);
    });
}

#[test]
fn streamed_upload_that_does_not_match_its_descriptor_is_abandoned() {
    let reg = TestRegistry::start();
    let reference = reg.reference("lying/upload:v1");
    let client = support::client().with_upload_chunk_bytes(1024);
    let bytes = support::sample_bytes("lie", 5000);
    let mut desc = Descriptor::of("application/octet-stream", &bytes);
    let mut other = bytes.clone();
    other[4000] ^= 1;
    support::runtime().block_on(async {
        // Stream pieces larger than the chunk size are split across PATCHes.
        let fine = support::sample_bytes("fine", 5000);
        let fine_desc = Descriptor::of("application/octet-stream", &fine);
        client
            .put_blob_stream(&reference, &fine_desc, chunked(&fine, 2500))
            .await
            .unwrap();
        assert_eq!(
            fetch_blob(&client, &reference, &fine_desc).await.unwrap(),
            fine
        );
        let err = client
            .put_blob_stream(&reference, &desc, chunked(&other, 700))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(!client.has_blob(&reference, &desc.digest).await.unwrap());
        desc.size = 4000;
        let err = client
            .put_blob_stream(&reference, &desc, chunked(&bytes, 700))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
        assert!(!client.has_blob(&reference, &desc.digest).await.unwrap());
    });
}

fn flip_byte(path: &Path, at: usize) {
    let mut data = std::fs::read(path).unwrap();
    data[at] ^= 0x01;
    std::fs::write(path, data).unwrap();
}

#[test]
fn stored_blob_bytes_that_do_not_match_are_refused() {
    let reg = TestRegistry::start();
    let reference = reg.reference("corrupt/blob:v1");
    support::push_sample_image(&reg, "corrupt/blob:v1");
    let (_, blobs) = support::sample_image("corrupt/blob:v1");
    let (desc, original) = &blobs[1];
    let data = reg.blob_data_path(&desc.digest);
    assert!(data.exists(), "registry layout changed: {}", data.display());
    let client = support::client();
    let rt = support::runtime();

    flip_byte(&data, original.len() / 2);
    let err = rt
        .block_on(fetch_blob(&client, &reference, desc))
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&reference.to_string()), "{err}");

    std::fs::write(&data, &original[..original.len() - 10]).unwrap();
    let err = rt
        .block_on(fetch_blob(&client, &reference, desc))
        .unwrap_err();
    assert!(
        matches!(err, Error::SizeMismatch { expected, .. } if expected == desc.size),
        "{err}"
    );

    let mut longer = original.clone();
    longer.extend_from_slice(b"extra");
    std::fs::write(&data, &longer).unwrap();
    let err = rt
        .block_on(fetch_blob(&client, &reference, desc))
        .unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");

    std::fs::write(&data, original).unwrap();
    let got = rt.block_on(fetch_blob(&client, &reference, desc)).unwrap();
    assert_eq!(&got, original);
}

#[test]
fn stored_manifest_bytes_that_do_not_match_are_refused() {
    let reg = TestRegistry::start();
    let reference = reg.reference("corrupt/manifest:v1");
    support::push_sample_image(&reg, "corrupt/manifest:v1");
    let (manifest, _) = support::sample_image("corrupt/manifest:v1");
    let digest = Digest::sha256(&manifest);
    let data = reg.blob_data_path(&digest);
    // Flip a hex digit of the config digest: the manifest still parses, so only the digest
    // check can catch it.
    let text = String::from_utf8(manifest.clone()).unwrap();
    let at = text.find("sha256:").unwrap() + "sha256:".len() + 3;
    let mut corrupted = manifest.clone();
    corrupted[at] = if corrupted[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&data, &corrupted).unwrap();
    let client = support::client();
    let rt = support::runtime();
    let err = rt
        .block_on(client.get_manifest(&reference.with_digest(digest.clone())))
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    // By tag the registry still claims the original digest, which the bytes do not have.
    let err = rt.block_on(client.get_manifest(&reference)).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
}

#[test]
fn missing_things_are_not_found_and_limits_hold() {
    let reg = TestRegistry::start();
    support::push_sample_image(&reg, "present/repo:v1");
    let client = support::client();
    let rt = support::runtime();
    let absent_tag = reg.reference("present/repo:absent");
    let err = rt.block_on(client.get_manifest(&absent_tag)).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains(&absent_tag.to_string()), "{err}");
    assert_eq!(
        rt.block_on(client.head_manifest(&absent_tag)).unwrap(),
        None
    );
    let absent_digest = absent_tag.with_digest(Digest::sha256(b"nothing"));
    let err = rt
        .block_on(client.get_manifest(&absent_digest))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let blob = Descriptor::of("application/octet-stream", b"nothing");
    let err = rt
        .block_on(fetch_blob(&client, &absent_tag, &blob))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(!rt
        .block_on(client.has_blob(&absent_tag, &blob.digest))
        .unwrap());
    let err = rt
        .block_on(client.list_tags(&reg.reference("no/such/repo:x")))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    let small = RegistryClient::new(RegistryOptions {
        max_manifest_bytes: 100,
        ..support::test_options()
    })
    .unwrap();
    let present = reg.reference("present/repo:v1");
    let err = rt.block_on(small.get_manifest(&present)).unwrap_err();
    assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
    let err = rt.block_on(small.head_manifest(&present)).unwrap_err();
    assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
}

#[test]
fn unreachable_registry_fails_quickly_and_clearly() {
    let port = support::free_port();
    let reference: Reference = format!("127.0.0.1:{port}/gone/repo:v1").parse().unwrap();
    let client = RegistryClient::new(RegistryOptions {
        timeout: Duration::from_secs(2),
        retries: 1,
        ..support::test_options()
    })
    .unwrap();
    let started = Instant::now();
    let err = support::runtime()
        .block_on(client.get_manifest(&reference))
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Registry { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains(&reference.to_string()), "{text}");
}

#[test]
fn basic_auth_needs_the_right_credentials() {
    let reg = TestRegistry::start_with_htpasswd("alice", "s3cret-pw");
    let rt = support::runtime();
    let good = support::client_with_credentials(&reg, "alice", "s3cret-pw");
    let digest = support::push_sample_image_with(&reg, "private/app:v1", &good);
    let reference = reg.reference("private/app:v1");
    let fetched = rt.block_on(good.get_manifest(&reference)).unwrap();
    assert_eq!(fetched.digest, digest);

    let anonymous = support::client();
    let err = rt.block_on(anonymous.get_manifest(&reference)).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    let wrong = support::client_with_credentials(&reg, "alice", "wrong-pw");
    let err = rt.block_on(wrong.get_manifest(&reference)).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(!err.to_string().contains("wrong-pw"), "{err}");
    let err = rt
        .block_on(wrong.put_blob(&reference, Bytes::from_static(b"x")))
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
}

/// Run this test binary again as a child with `env`, executing only
/// [`auth_file_child_process`], which pulls `reference` using the process environment's auth
/// files and checks the outcome named by `expect`.
fn run_child(reference: &Reference, expect: &str, env: &[(&str, &Path)]) {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    // The child test is #[ignore]d so a normal run never runs it (and never passes it vacuously);
    // `--ignored --exact` runs exactly it here.
    cmd.args([
        "--ignored",
        "--exact",
        "registry::auth_file_child_process",
        "--test-threads=1",
        "--nocapture",
    ])
    .env_remove("HOME")
    .env_remove("DOCKER_CONFIG")
    .env_remove("REGISTRY_AUTH_FILE")
    .env_remove("XDG_RUNTIME_DIR")
    .env("SIGNET_E2E_CHILD_REFERENCE", reference.to_string())
    .env("SIGNET_E2E_CHILD_EXPECT", expect);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child with {env:?} expecting {expect} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The child half of [`auth_files_in_the_environment_reach_the_registry`], which runs it with
/// `--ignored --exact` (auth files are found through process-wide environment variables, which a
/// test must not change in a multi-threaded test process). Ignored, so it never runs (and never
/// passes without checking anything) on its own.
#[test]
#[ignore = "run by auth_files_in_the_environment_reach_the_registry as a child process"]
fn auth_file_child_process() {
    let reference = std::env::var("SIGNET_E2E_CHILD_REFERENCE").expect(
        "SIGNET_E2E_CHILD_REFERENCE: this test is started by auth_files_in_the_environment_reach_the_registry",
    );
    let expect = std::env::var("SIGNET_E2E_CHILD_EXPECT").unwrap();
    let reference: Reference = reference.parse().unwrap();
    let client = RegistryClient::new(RegistryOptions {
        use_auth_files: true,
        ..support::test_options()
    })
    .unwrap();
    let result = support::runtime().block_on(client.get_manifest(&reference));
    match expect.as_str() {
        "ok" => {
            result.unwrap();
        }
        "unauthorized" => {
            let err = result.unwrap_err();
            assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
        }
        other => panic!("unknown expectation {other}"),
    }
}

#[test]
fn auth_files_in_the_environment_reach_the_registry() {
    let reg = TestRegistry::start_with_htpasswd("bob", "pa55:word");
    let good = support::client_with_credentials(&reg, "bob", "pa55:word");
    support::push_sample_image_with(&reg, "files/app:v1", &good);
    let reference = reg.reference("files/app:v1");
    let dir = tempfile::tempdir().unwrap();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let write = |path: &Path, text: String| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };

    // Docker's ~/.docker/config.json under HOME, `auth` form.
    let home = dir.path().join("home");
    write(
        &home.join(".docker/config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.host(),
            b64("bob:pa55:word")
        ),
    );
    run_child(&reference, "ok", &[("HOME", &home)]);

    // $DOCKER_CONFIG/config.json, legacy URL key, username/password form.
    let docker_config = dir.path().join("docker-config");
    write(
        &docker_config.join("config.json"),
        format!(
            r#"{{"auths":{{"http://{}/v1/":{{"username":"bob","password":"pa55:word"}}}}}}"#,
            reg.host()
        ),
    );
    run_child(&reference, "ok", &[("DOCKER_CONFIG", &docker_config)]);

    // $REGISTRY_AUTH_FILE wins over a docker config holding wrong credentials.
    let auth_file = dir.path().join("containers-auth.json");
    write(
        &auth_file,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.host(),
            b64("bob:pa55:word")
        ),
    );
    let wrong_home = dir.path().join("wrong-home");
    write(
        &wrong_home.join(".docker/config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.host(),
            b64("bob:nope")
        ),
    );
    run_child(
        &reference,
        "ok",
        &[("REGISTRY_AUTH_FILE", &auth_file), ("HOME", &wrong_home)],
    );
    run_child(&reference, "unauthorized", &[("HOME", &wrong_home)]);
    // No auth file at all.
    let empty_home = dir.path().join("empty-home");
    std::fs::create_dir_all(&empty_home).unwrap();
    run_child(&reference, "unauthorized", &[("HOME", &empty_home)]);
}

#[test]
fn token_flow_grants_what_the_credentials_allow() {
    let reg = TestRegistry::start_with_token_auth("carol", "t0ken-pw");
    let rt = support::runtime();
    let good =
        support::client_with_credentials(&reg, "carol", "t0ken-pw").with_upload_chunk_bytes(4096);
    let digest = support::push_sample_image_with(&reg, "tok/app:v1", &good);
    let reference = reg.reference("tok/app:v1");
    let before = reg.token_requests();
    assert!(before >= 1, "the push did not go through the token server");
    rt.block_on(async {
        let fetched = good.get_manifest(&reference).await.unwrap();
        assert_eq!(fetched.digest, digest);
        let big = support::sample_bytes("tok-big", 20_000);
        let desc = Descriptor::of("application/octet-stream", &big);
        good.put_blob_stream(&reference, &desc, chunked(&big, 3000))
            .await
            .unwrap();
        assert_eq!(fetch_blob(&good, &reference, &desc).await.unwrap(), big);
        assert_eq!(good.list_tags(&reference).await.unwrap(), vec!["v1"]);
    });
    // Tokens are cached per scope: the same client asks again for neither pull nor push.
    assert_eq!(reg.token_requests(), before, "tokens were not reused");

    // Anonymous callers get a token without access; the registry then refuses it.
    let anonymous = support::client();
    let err = rt.block_on(anonymous.get_manifest(&reference)).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    let wrong = support::client_with_credentials(&reg, "carol", "wrong");
    let err = rt.block_on(wrong.get_manifest(&reference)).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(!err.to_string().contains("wrong"), "{err}");
}

#[test]
fn https_registries_need_a_trusted_certificate() {
    let reg = TestRegistry::start_with_tls();
    let reference: Reference = format!("{}/tls/app:v1", reg.tls_host()).parse().unwrap();
    let (manifest, blobs) = support::sample_image("tls/app:v1");
    let trusting = RegistryClient::new(reg.tls_options()).unwrap();
    let rt = support::runtime();
    rt.block_on(async {
        for (_, bytes) in &blobs {
            trusting
                .put_blob(&reference, Bytes::from(bytes.clone()))
                .await
                .unwrap();
        }
        trusting
            .put_manifest(&reference, &manifest, signet_oci::manifest::OCI_MANIFEST)
            .await
            .unwrap();
        let fetched = trusting.get_manifest(&reference).await.unwrap();
        assert_eq!(fetched.bytes, manifest);
    });

    // The same registry without its CA: refused, and no plain-HTTP fallback is tried.
    let untrusting = RegistryClient::new(RegistryOptions {
        ca_files: Vec::new(),
        ..reg.tls_options()
    })
    .unwrap();
    let err = rt
        .block_on(untrusting.get_manifest(&reference))
        .unwrap_err();
    assert!(matches!(err, Error::Registry { .. }), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}
