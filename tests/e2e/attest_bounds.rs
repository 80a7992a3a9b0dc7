//! Attestations at their bounds, end to end: an `.att` manifest with 100,000 layers (served by a
//! registry that holds it as it is, since a real one refuses such a manifest on push), a signed
//! statement over the byte bound, and a CEL condition whose cost the input makes unbounded. Each
//! ends in one line with exit 2 or in a denial naming the bound — never a panic, never an allow —
//! and within bounded time and memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use signet_oci::{Descriptor, Digest};
use signet_sign::dsse::{Envelope, DSSE_ENVELOPE_MEDIA_TYPE, INTOTO_PAYLOAD_TYPE};
use signet_sign::intoto::{PredicateType, Statement, MAX_STATEMENT_BYTES};

use crate::hostile_server::{Content, HostileServer, Misbehaviour};
use crate::support::{self, code, keypair, run, runtime, s, TestRegistry, KEY_PASSWORD};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
/// Wall-clock bound for one command at a bound.
const TIME_BOUND: Duration = Duration::from_secs(30);
/// Peak resident memory bound for one command at a bound, in KiB.
const RSS_BOUND_KIB: u64 = 256 * 1024;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `signet ARGS…` (as [`support::signet`]: clean environment) under `/usr/bin/time`, which
/// writes the peak RSS to a file; returns the output, the wall time and the peak RSS in KiB.
fn measured(args: &[&str]) -> (Output, Duration, u64) {
    let home = tempfile::tempdir().unwrap();
    let rss_file = home.path().join("rss");
    let mut cmd = Command::new("/usr/bin/time");
    cmd.env_clear()
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .arg("-o")
        .arg(&rss_file)
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_signet"))
        .args(args);
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let elapsed = started.elapsed();
    let rss = std::fs::read_to_string(&rss_file).unwrap_or_default();
    // `time` notes a non-zero exit on a line of its own before the figure.
    let rss: u64 = rss
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS figure in {rss:?}"));
    (out, elapsed, rss)
}

fn within_bounds(what: &str, elapsed: Duration, rss_kib: u64) {
    println!("{what}: {elapsed:?}, peak RSS {rss_kib} KiB");
    assert!(elapsed < TIME_BOUND, "{what} took {elapsed:?}");
    assert!(rss_kib < RSS_BOUND_KIB, "{what} peaked at {rss_kib} KiB");
}

fn attestation_policy(dir: &Path, scope: &str, conditions: &str) -> PathBuf {
    let text = format!(
        "keys:\n  scanner:\n    path: scanner.pub\nscopes:\n  \"{scope}\":\n    accept: true\n    attestations:\n      - type: custom\n        keys: [scanner]\n{conditions}"
    );
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// An image whose `sha256-<hex>.att` manifest lists 100,000 envelope layers (13 MB of manifest):
/// `verify-attestation` ends with one line and exit 2, `verify --policy` requiring an
/// attestation with a DENY naming the manifest bound and exit 2, in bounded time and memory.
#[test]
fn an_att_manifest_with_100000_layers_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = keypair(dir.path(), "scanner");
    let mut content = Content::default();
    let (manifest, blobs) = support::sample_image("bounds/100k");
    for (_, bytes) in blobs {
        content.blob(bytes);
    }
    let digest = content.manifest(Some("v1"), manifest, OCI_MANIFEST);
    let envelope = br#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"MEUCIQ=="}]}"#.to_vec();
    let mut layer = Descriptor::of(DSSE_ENVELOPE_MEDIA_TYPE, &envelope);
    layer.annotations = Some(BTreeMap::from([(
        "predicateType".to_string(),
        "https://cosign.sigstore.dev/attestation/v1".to_string(),
    )]));
    content.blob(envelope);
    let config = b"{}".to_vec();
    let config_desc = Descriptor::of("application/vnd.oci.image.config.v1+json", &config);
    content.blob(config);
    let att = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": vec![layer; 100_000],
    }))
    .unwrap();
    assert!(att.len() > 10_000_000, "{} bytes", att.len());
    let att_tag = format!("{}.att", digest.replace(':', "-"));
    content.manifest(Some(&att_tag), att, OCI_MANIFEST);
    let server = HostileServer::start(content, Misbehaviour::Honest);
    let image = format!("{}/bounds/app:v1", server.host());

    let (out, elapsed, rss) = measured(&["verify-attestation", "--key", s(&public), &image]);
    within_bounds("verify-attestation, 100,000 layers", elapsed, rss);
    let text = stderr(&out);
    assert_eq!(code(&out), 2, "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("signet: error: ") && text.contains("4194304"),
        "{text}"
    );

    let policy = attestation_policy(dir.path(), &format!("{}/bounds", server.host()), "");
    let (out, elapsed, rss) = measured(&["verify", "--policy", s(&policy), &image]);
    within_bounds("verify --policy, 100,000 layers", elapsed, rss);
    let text = stderr(&out);
    assert_eq!(code(&out), 2, "{text}");
    // The policy's lint warning (the scope accepts unsigned images), then the verdict.
    let verdict = text.lines().last().unwrap_or_default();
    assert!(
        verdict.starts_with(&format!("{image}: DENY (could not verify: manifest "))
            && verdict.ends_with(".att exceeds the limit of 4194304 bytes)"),
        "{text}"
    );
    assert!(!text.contains("ALLOW"), "{text}");
}

fn signing_key(path: &Path) -> signet_sign::SigningKey {
    signet_sign::keys::read_private_key_file(path, KEY_PASSWORD.as_bytes())
        .unwrap()
        .key
}

/// A validly signed envelope whose statement is over the statement bound (the predicate is
/// one huge string): refused by the statement check, never parsed whole into a verdict.
#[test]
fn a_signed_statement_over_the_byte_bound_is_refused() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "scanner");
    let digest = support::push_sample_image(&reg, "bounds/huge:v1");
    let name = format!("{}/bounds/huge", reg.host());
    let statement = Statement::for_image(
        Some(&name),
        &digest,
        PredicateType::uri(VULN).unwrap(),
        serde_json::json!({"pad": "x".repeat(MAX_STATEMENT_BYTES)}),
    );
    // `to_bytes` refuses to write it; serialise by hand, as a hostile signer would.
    let bytes = serde_json::to_vec(&serde_json::json!({
        "_type": statement.statement_type,
        "subject": statement.subjects,
        "predicateType": statement.predicate_type,
        "predicate": statement.predicate,
    }))
    .unwrap();
    assert!(bytes.len() > MAX_STATEMENT_BYTES);
    let envelope = Envelope::sign(&signing_key(&key), INTOTO_PAYLOAD_TYPE, bytes);
    push_envelope(&format!("{name}:v1"), &digest, &envelope, VULN);

    let image = format!("{name}:v1");
    let (out, elapsed, rss) = measured(&["verify-attestation", "--key", s(&public), &image]);
    within_bounds("verify-attestation, 4 MiB + statement", elapsed, rss);
    let text = stderr(&out);
    assert_eq!(code(&out), 12, "{text}");
    assert!(
        text.contains("statement: ") && text.contains("over the 4194304-byte limit"),
        "{text}"
    );
}

fn push_envelope(image: &str, digest: &Digest, envelope: &Envelope, annotated: &str) {
    let store = signet_oci::store::ImageStore::open(
        &image.parse::<signet_oci::ImageLocation>().unwrap(),
        &support::client(),
    )
    .unwrap();
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
            &store, digest, layer, bytes, 12,
        ))
        .unwrap();
}

/// A CEL condition comparing every element of a list with every other, over a predicate whose
/// list has 20,000 entries: not run, and the image denied naming the cost limit. The same policy
/// allows an image whose list is short (the condition itself is sound).
#[test]
fn a_cel_condition_the_input_makes_too_costly_denies_naming_the_limit() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keypair(dir.path(), "scanner");
    let policy = attestation_policy(
        dir.path(),
        &format!("{}/cel", reg.host()),
        "        conditions:\n          - expression: 'predicate.l.all(x, predicate.l.exists(y, x == y))'\n            message: every element is in the list\n",
    );
    for (tag, len) in [("short", 50_u32), ("long", 20_000)] {
        support::push_sample_image(&reg, &format!("cel/app:{tag}"));
        let predicate = dir.path().join(format!("{tag}.json"));
        let list: Vec<u32> = (0..len).collect();
        std::fs::write(
            &predicate,
            serde_json::to_vec(&serde_json::json!({"l": list})).unwrap(),
        )
        .unwrap();
        let image = format!("{}/cel/app:{tag}", reg.host());
        let out = run(&[
            "attest",
            "--key",
            s(&key),
            "--predicate",
            s(&predicate),
            "--type",
            "custom",
            &image,
        ]);
        assert_eq!(code(&out), 0, "attest {tag}: {}", stderr(&out));
    }
    let short = format!("{}/cel/app:short", reg.host());
    let out = run(&["verify", "--policy", s(&policy), &short]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let long = format!("{}/cel/app:long", reg.host());
    let (out, elapsed, rss) = measured(&["verify", "--policy", s(&policy), &long]);
    within_bounds("verify --policy, costly CEL", elapsed, rss);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(code(&out), 12, "{all}");
    assert!(
        all.contains("attestation-condition-too-costly")
            && all.contains("would exceed the cost limit 20000000"),
        "{all}"
    );
}

/// Under a policy, an attestation that fails a check is not evidence: a wrong `_type`, a subject
/// naming another digest, and a statement whose predicate type differs from its layer's
/// annotation each leave the requirement unmet (exit 12, DENY), never allow.
#[test]
fn attestations_failing_a_check_do_not_satisfy_a_policy() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keypair(dir.path(), "scanner");
    let signing = signing_key(&key);
    let policy = attestation_policy(dir.path(), &format!("{}/checks", reg.host()), "");
    let name = format!("{}/checks/app", reg.host());
    let custom = PredicateType::from_name("custom").unwrap();
    let statement = |digest: &Digest| {
        Statement::for_image(
            Some(&name),
            digest,
            custom.clone(),
            serde_json::json!({"a": 1}),
        )
        .to_bytes()
        .unwrap()
    };
    let mut outputs = Vec::new();
    for case in ["good", "type", "subject", "annotation"] {
        let digest = support::push_sample_image(&reg, &format!("checks/app:{case}"));
        let bytes = match case {
            "type" => String::from_utf8(statement(&digest))
                .unwrap()
                .replace("Statement/v1", "Statement/v9")
                .into_bytes(),
            "subject" => statement(&Digest::sha256(b"another image")),
            _ => statement(&digest),
        };
        let annotated = if case == "annotation" {
            VULN
        } else {
            custom.as_str()
        };
        let envelope = Envelope::sign(&signing, INTOTO_PAYLOAD_TYPE, bytes);
        push_envelope(&format!("{name}:{case}"), &digest, &envelope, annotated);
        let out = run(&["verify", "--policy", s(&policy), &format!("{name}:{case}")]);
        outputs.push((case, out));
    }
    for (case, out) in outputs {
        let text = stderr(&out);
        if case == "good" {
            assert_eq!(code(&out), 0, "{case}: {text}");
            assert!(text.contains(": ALLOW ("), "{case}: {text}");
        } else {
            assert_eq!(code(&out), 12, "{case}: {text}");
            assert!(
                text.contains(": DENY (") && text.contains("attestation-missing"),
                "{case}: {text}"
            );
        }
    }
}
