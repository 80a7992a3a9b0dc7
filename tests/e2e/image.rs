//! `signet digest` and `signet validate` on OCI layouts, docker archives and a real registry: digests
//! equal an independent SHA-256 of the stored manifest bytes, and every kind of tampering is caught.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use signet_oci::manifest::OCI_MANIFEST;
use signet_oci::{Descriptor, ImageLocation, ImageStore, Manifest};

use crate::support::{self, TestRegistry};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

fn signet() -> Command {
    crate::support::signet()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/images")
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn run(args: &[&str]) -> Output {
    signet().args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Exit 0 and the trimmed stdout.
fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

/// Exit 2 with exactly one `signet: error: …` line on stderr; returns that line.
fn fails_with_one_line(args: &[&str]) -> String {
    let out = run(args);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: stdout {} stderr {err}",
        stdout(&out)
    );
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("signet: error: "), "{args:?}: {err}");
    err
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap();
    layout.join("blobs").join(alg).join(hex)
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The manifest digest `index.json` of `layout` lists first, re-derived from the blob's bytes.
fn stored_top_manifest(layout: &Path) -> (String, Vec<u8>) {
    let index = json_file(&layout.join("index.json"));
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = std::fs::read(blob_path(layout, &digest)).unwrap();
    assert_eq!(sha256(&bytes), digest, "fixture is consistent");
    (digest, bytes)
}

fn loc(layout: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", layout.display())
}

#[test]
fn digest_of_a_layout_is_the_sha256_of_the_stored_manifest() {
    for name in ["single", "multi"] {
        let layout = fixtures().join(name);
        let (digest, bytes) = stored_top_manifest(&layout);
        assert_eq!(ok(&["digest", &loc(&layout, "v1")]), sha256(&bytes));
        assert_eq!(
            ok(&["digest", &format!("oci:{}", layout.display())]),
            digest
        );
        assert_eq!(
            ok(&["digest", &format!("oci:{}@{digest}", layout.display())]),
            digest
        );
    }
}

#[test]
fn digest_of_docker_archives() {
    // Legacy archive: the manifest containers/image synthesises, as computed by make.py.
    let expected = sha256(&std::fs::read(fixtures().join("docker-save.manifest.json")).unwrap());
    let archive = fixtures().join("docker-save.tar");
    assert_eq!(
        ok(&["digest", &format!("docker-archive:{}", archive.display())]),
        expected
    );

    // docker 25+ archive: the OCI manifest its index.json names, hashed from the tar member.
    let archive = fixtures().join("docker-save-oci.tar");
    let mut members = std::collections::BTreeMap::new();
    let mut tar = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        members.insert(name, data);
    }
    let index: Value = serde_json::from_slice(&members["index.json"]).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest = &members[&format!("blobs/sha256/{}", digest.split_once(':').unwrap().1)];
    assert_eq!(sha256(manifest), digest);
    assert_eq!(
        ok(&["digest", &format!("docker-archive:{}", archive.display())]),
        digest
    );
}

#[test]
fn platform_picks_the_right_child_and_lists_the_others() {
    let layout = fixtures().join("multi");
    let (_, index_bytes) = stored_top_manifest(&layout);
    let index: Value = serde_json::from_slice(&index_bytes).unwrap();
    let child = |arch: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let image = loc(&layout, "v1");
    assert_eq!(
        ok(&["digest", &image, "--platform", "linux/arm64"]),
        child("arm64")
    );
    assert_eq!(
        ok(&["digest", &image, "--platform", "linux/arm64/v8"]),
        child("arm64")
    );
    assert_eq!(
        ok(&["digest", &image, "--platform", "linux/amd64"]),
        child("amd64")
    );
    // A child named by digest (not listed in index.json itself) resolves too.
    let by_digest = format!("oci:{}@{}", layout.display(), child("arm64"));
    assert_eq!(ok(&["digest", &by_digest]), child("arm64"));
    let child_manifest: Value =
        serde_json::from_slice(&std::fs::read(blob_path(&layout, &child("arm64"))).unwrap())
            .unwrap();
    let blob_bytes: u64 = std::iter::once(&child_manifest["config"])
        .chain(child_manifest["layers"].as_array().unwrap())
        .map(|d| d["size"].as_u64().unwrap())
        .sum();
    assert_eq!(
        ok(&["validate", &by_digest]),
        format!("{by_digest}: ok, 3 items match ({blob_bytes} bytes hashed)")
    );
    // The child digest is the SHA-256 of the child's stored bytes.
    let child_bytes = std::fs::read(blob_path(&layout, &child("amd64"))).unwrap();
    assert_eq!(sha256(&child_bytes), child("amd64"));

    let err = fails_with_one_line(&["digest", &image, "--platform", "linux/s390x"]);
    assert!(
        err.contains("linux/amd64") && err.contains("linux/arm64/v8"),
        "{err}"
    );
    let err = fails_with_one_line(&["digest", &image, "--platform", "linux/arm64/v7"]);
    assert!(
        err.contains("no manifest for platform linux/arm64/v7"),
        "{err}"
    );

    // A single-platform image accepts its own platform and refuses others.
    let single = loc(&fixtures().join("single"), "v1");
    let (digest, _) = stored_top_manifest(&fixtures().join("single"));
    assert_eq!(
        ok(&["digest", &single, "--platform", "linux/amd64"]),
        digest
    );
    let err = fails_with_one_line(&["digest", &single, "--platform", "linux/arm64"]);
    assert!(err.contains("linux/amd64, not linux/arm64"), "{err}");

    // A malformed platform is a usage error.
    let out = run(&["digest", &image, "--platform", "linux"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value 'linux' for '--platform"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn digest_json_output() {
    let layout = fixtures().join("multi");
    let (digest, bytes) = stored_top_manifest(&layout);
    let image = loc(&layout, "v1");
    let doc: Value = serde_json::from_str(&ok(&["digest", &image, "--output", "json"])).unwrap();
    assert_eq!(doc["reference"], image);
    assert_eq!(doc["digest"], digest);
    assert_eq!(doc["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(doc["size"], bytes.len());
    let platforms = doc["platforms"].as_array().unwrap();
    let names: Vec<&str> = platforms
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["linux/amd64", "linux/arm64/v8"]);
    for p in platforms {
        let d = p["digest"].as_str().unwrap();
        assert_eq!(sha256(&std::fs::read(blob_path(&layout, d)).unwrap()), d);
    }

    let single = loc(&fixtures().join("single"), "v1");
    let doc: Value = serde_json::from_str(&ok(&["digest", &single, "--output", "json"])).unwrap();
    assert_eq!(
        doc["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert!(doc.get("platforms").is_none());
}

#[test]
fn validate_accepts_every_intact_fixture() {
    for image in [
        loc(&fixtures().join("single"), "v1"),
        loc(&fixtures().join("multi"), "v1"),
        format!(
            "docker-archive:{}",
            fixtures().join("docker-save.tar").display()
        ),
        format!(
            "docker-archive:{}",
            fixtures().join("docker-save-oci.tar").display()
        ),
    ] {
        let out = ok(&["validate", &image]);
        assert!(out.contains(": ok, "), "{image}: {out}");
        assert_eq!(ok(&["validate", "-q", &image]), "", "{image}");
    }
    let doc: Value = serde_json::from_str(&ok(&[
        "validate",
        &loc(&fixtures().join("multi"), "v1"),
        "--output",
        "json",
        "--jobs",
        "1",
    ]))
    .unwrap();
    assert_eq!(doc["ok"], true);
    // 2 child manifests, 2 configs, 4 layer references.
    assert_eq!(doc["checks"].as_array().unwrap().len(), 8);
}

/// A temporary copy of `single/`, with the manifest's layer descriptors.
fn single_copy() -> (tempfile::TempDir, PathBuf, Value) {
    let temp = tempfile::tempdir().unwrap();
    let layout = temp.path().join("single");
    crate::support::copy_dir(&fixtures().join("single"), &layout);
    let (_, bytes) = stored_top_manifest(&layout);
    (temp, layout, serde_json::from_slice(&bytes).unwrap())
}

fn validate_mismatch(image: &str) -> String {
    let out = run(&["validate", image]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout {} stderr {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn validate_catches_a_flipped_byte() {
    let (_t, layout, manifest) = single_copy();
    let layer = manifest["layers"][1]["digest"].as_str().unwrap();
    let path = blob_path(&layout, layer);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let out = validate_mismatch(&loc(&layout, "v1"));
    let line = out.lines().find(|l| l.starts_with("mismatch:")).unwrap();
    assert!(line.contains("layer 1 of manifest"), "{out}");
    assert!(
        line.contains(&format!("expected {layer} ({} bytes)", bytes.len())),
        "{out}"
    );
    assert!(
        line.contains(&format!(
            "actual {} ({} bytes)",
            sha256(&bytes),
            bytes.len()
        )),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("mismatch:")).count(),
        1,
        "{out}"
    );
}

#[test]
fn validate_catches_a_truncated_layer_and_a_missing_one() {
    let (_t, layout, manifest) = single_copy();
    let layer0 = manifest["layers"][0]["digest"].as_str().unwrap();
    let size0 = manifest["layers"][0]["size"].as_u64().unwrap();
    let path = blob_path(&layout, layer0);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..1000]).unwrap();
    let layer1 = manifest["layers"][1]["digest"].as_str().unwrap();
    std::fs::remove_file(blob_path(&layout, layer1)).unwrap();

    let out = validate_mismatch(&loc(&layout, "v1"));
    assert!(out.contains(&format!(
        "mismatch: layer 0 of manifest {}: expected {layer0} ({size0} bytes), actual {} (1000 bytes)",
        sha256(std::fs::read(blob_path(&layout, &stored_top_manifest(&layout).0)).unwrap().as_slice()),
        sha256(&bytes[..1000])
    )), "{out}");
    assert!(
        out.contains("missing: layer 1 of manifest") && out.contains(layer1),
        "{out}"
    );
    assert!(out.contains("2 of 3 items do not match"), "{out}");
}

#[test]
fn validate_catches_a_wrong_size_in_the_manifest() {
    let (_t, layout, mut manifest) = single_copy();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let real = manifest["layers"][0]["size"].as_u64().unwrap();
    manifest["layers"][0]["size"] = Value::from(real + 1);
    // Store the edited manifest and point the tag at it (its digest changes with its bytes).
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = sha256(&bytes);
    std::fs::write(blob_path(&layout, &digest), &bytes).unwrap();
    let mut index = json_file(&layout.join("index.json"));
    index["manifests"][0]["digest"] = Value::from(digest.clone());
    index["manifests"][0]["size"] = Value::from(bytes.len());
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();

    let out = validate_mismatch(&loc(&layout, "v1"));
    assert!(out.contains(&format!(
        "mismatch: layer 0 of manifest {digest}: expected {layer} ({} bytes), actual {layer} ({real} bytes)",
        real + 1
    )), "{out}");
}

#[test]
fn validate_catches_a_tampered_docker_archive_layer() {
    let temp = tempfile::tempdir().unwrap();
    let archive = temp.path().join("a.tar");
    std::fs::copy(fixtures().join("docker-save.tar"), &archive).unwrap();
    // Find the first layer.tar member's data and flip one byte in place.
    let offset = {
        let mut tar = tar::Archive::new(std::fs::File::open(&archive).unwrap());
        let entry = tar
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().ends_with("layer.tar"))
            .unwrap();
        entry.raw_file_position() as usize
    };
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes[offset + 10] ^= 0x20;
    std::fs::write(&archive, &bytes).unwrap();
    let out = validate_mismatch(&format!("docker-archive:{}", archive.display()));
    assert!(out.contains("mismatch: layer "), "{out}");
    assert!(out.contains("1 of 3 items do not match"), "{out}");
}

#[test]
fn validate_catches_a_tampered_child_manifest_in_an_index() {
    let temp = tempfile::tempdir().unwrap();
    let layout = temp.path().join("multi");
    crate::support::copy_dir(&fixtures().join("multi"), &layout);
    let (_, index_bytes) = stored_top_manifest(&layout);
    let index: Value = serde_json::from_slice(&index_bytes).unwrap();
    let child = index["manifests"][1]["digest"].as_str().unwrap();
    let path = blob_path(&layout, child);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.push(b' ');
    std::fs::write(&path, &bytes).unwrap();
    let out = validate_mismatch(&loc(&layout, "v1"));
    assert!(
        out.contains(&format!(
            "mismatch: manifest {child} (linux/arm64/v8) of index"
        )),
        "{out}"
    );
}

#[test]
fn errors_are_one_clear_line_and_exit_2() {
    let temp = tempfile::tempdir().unwrap();
    let not_a_tar = temp.path().join("junk.tar");
    std::fs::write(&not_a_tar, b"this is not a tar file at all").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["digest".into(), "Bad//Reference::".into()],
            "invalid image reference",
        ),
        (
            vec!["validate".into(), "oci:/nonexistent/signet-layout".into()],
            "/nonexistent/signet-layout",
        ),
        (
            vec!["digest".into(), format!("oci:{}", temp.path().display())],
            "not an OCI image layout",
        ),
        (
            vec![
                "digest".into(),
                loc(&fixtures().join("single"), "nosuchtag"),
            ],
            "nosuchtag",
        ),
        (
            vec![
                "validate".into(),
                "docker-archive:/nonexistent/a.tar".into(),
            ],
            "/nonexistent/a.tar",
        ),
        (
            vec![
                "digest".into(),
                format!("docker-archive:{}", not_a_tar.display()),
            ],
            "junk.tar",
        ),
        (
            vec![
                "digest".into(),
                "--timeout".into(),
                "5".into(),
                "127.0.0.1:1/signet/none:v1".into(),
            ],
            "127.0.0.1:1",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let line = fails_with_one_line(&args);
        assert!(line.contains(needle), "{args:?}: {line}");
    }
    // clap usage errors exit 2 as well.
    for (args, says) in [
        (&["digest"][..], "required arguments were not provided"),
        (
            &["no-such-command"][..],
            "unrecognized subcommand 'no-such-command'",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}

/// Copy the image `from` names into `to` (children of an index by digest, then the top manifest
/// under `tag`), through the stores' streaming API.
async fn copy_image(from: &ImageStore, to: &ImageStore, tag: &str) -> signet_oci::Digest {
    let top = from.resolve().await.unwrap();
    let mut manifests = vec![(top.clone(), Some(tag))];
    if let Manifest::Index(index) = &top.manifest {
        for child in &index.manifests {
            manifests.insert(0, (from.manifest(child).await.unwrap(), None));
        }
    }
    for (fetched, tag) in manifests {
        if let Manifest::Image(image) = &fetched.manifest {
            for blob in std::iter::once(&image.config).chain(&image.layers) {
                let stream = from.blob_stream(blob).await.unwrap();
                to.put_blob_stream(blob, stream).await.unwrap();
            }
        }
        to.put_manifest(&fetched.bytes, &fetched.media_type, tag)
            .await
            .unwrap();
    }
    top.digest
}

fn open(location: &str) -> ImageStore {
    let location: ImageLocation = location.parse().unwrap();
    ImageStore::open_for_write(&location, &support::client()).unwrap()
}

#[test]
fn registry_digest_and_validate_match_the_stored_bytes() {
    let reg = TestRegistry::start();
    let rt = support::runtime();
    for name in ["single", "multi"] {
        let layout = fixtures().join(name);
        let (layout_digest, _) = stored_top_manifest(&layout);
        let image = format!("{}/fixtures/{name}:v1", reg.host());
        let pushed = rt.block_on(copy_image(&open(&loc(&layout, "v1")), &open(&image), "v1"));
        assert_eq!(pushed.to_string(), layout_digest);

        // The registry's own stored bytes hash to what signet prints.
        let stored = std::fs::read(reg.blob_data_path(&pushed)).unwrap();
        assert_eq!(sha256(&stored), layout_digest);
        assert_eq!(ok(&["digest", &image]), layout_digest);
        let out = ok(&["validate", &image]);
        assert!(out.contains(": ok, "), "{out}");
    }
    let image = format!("{}/fixtures/multi:v1", reg.host());
    let arm = ok(&[
        "digest",
        &loc(&fixtures().join("multi"), "v1"),
        "--platform",
        "linux/arm64",
    ]);
    assert_eq!(ok(&["digest", &image, "--platform", "linux/arm64"]), arm);

    // And back: registry -> new layout gives the same digest and a valid image.
    let temp = tempfile::tempdir().unwrap();
    let target = loc(&temp.path().join("copy"), "again");
    rt.block_on(copy_image(&open(&image), &open(&target), "again"));
    assert_eq!(ok(&["digest", &target]), ok(&["digest", &image]));
    assert!(ok(&["validate", &target]).contains(": ok, "));

    // Unknown tag in a live registry: one line, exit 2.
    let line = fails_with_one_line(&["digest", &format!("{}/fixtures/single:nope", reg.host())]);
    assert!(line.contains("nope"), "{line}");
}

#[test]
fn registry_validate_catches_a_corrupted_stored_layer() {
    let reg = TestRegistry::start();
    let rt = support::runtime();
    let image = format!("{}/fixtures/single:v1", reg.host());
    rt.block_on(copy_image(
        &open(&loc(&fixtures().join("single"), "v1")),
        &open(&image),
        "v1",
    ));
    let (_, manifest) = stored_top_manifest(&fixtures().join("single"));
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let path = reg.blob_data_path(&layer.parse().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let out = validate_mismatch(&image);
    assert!(out.contains("mismatch: layer 0 of manifest"), "{out}");
    assert!(out.contains(&format!("expected {layer}")), "{out}");
    assert!(out.contains(&format!("actual {}", sha256(&bytes))), "{out}");
}

#[test]
fn layout_store_writes_tags_and_refuses_bad_blobs() {
    let temp = tempfile::tempdir().unwrap();
    let store = open(&loc(&temp.path().join("new"), "t"));
    let rt = support::runtime();
    rt.block_on(async {
        let config = store
            .put_blob(
                bytes::Bytes::from_static(b"{}"),
                signet_oci::manifest::OCI_CONFIG,
            )
            .await
            .unwrap();
        // A stream whose bytes do not match its descriptor is refused and leaves nothing behind.
        let wrong = Descriptor::of("application/octet-stream", b"right");
        let stream = Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from_static(
            b"wrong",
        ))]));
        let err = store.put_blob_stream(&wrong, stream).await.unwrap_err();
        assert!(
            matches!(err, signet_oci::Error::DigestMismatch { .. }),
            "{err}"
        );
        assert!(!store.has_blob(&wrong.digest).await.unwrap());
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": []
        }))
        .unwrap();
        let digest = store
            .put_manifest(&manifest, OCI_MANIFEST, Some("t"))
            .await
            .unwrap();
        assert_eq!(digest.to_string(), sha256(&manifest));
        assert_eq!(store.resolve().await.unwrap().bytes, manifest);
        assert!(store.manifest_by_tag("absent").await.unwrap().is_none());
    });
    assert!(ok(&["validate", &loc(&temp.path().join("new"), "t")]).contains(": ok, "));
}

#[test]
fn registry_credentials_come_from_the_flags_and_stdin() {
    use std::io::Write as _;
    let reg = TestRegistry::start_with_htpasswd("alice", "s3cret pass");
    let client = support::client_with_credentials(&reg, "alice", "s3cret pass");
    let digest = support::push_sample_image_with(&reg, "private/app:v1", &client);
    let image = format!("{}/private/app:v1", reg.host());

    let mut child = signet()
        .args([
            "digest",
            "--registry-username",
            "alice",
            "--registry-password-stdin",
            &image,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret pass\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), digest.to_string());

    // Without credentials: one line naming the registry's refusal, exit 2, no password echoed.
    let line = fails_with_one_line(&["digest", &image]);
    assert!(line.contains(&reg.host()), "{line}");
    // The username flag needs the password flag (a usage error).
    let out = run(&["digest", "--registry-username", "alice", &image]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("required arguments were not provided")
            && stderr(&out).contains("--registry-password-stdin"),
        "{}",
        stderr(&out)
    );
}
