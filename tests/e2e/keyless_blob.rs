//! `signet verify-blob` against Sigstore bundles, offline (inside `unshare -n`: no network at
//! all). Conformance-style cases: every directory under testdata/sigstore-bundles/ (from crates.io,
//! see its README) and, when `SIGNET_CONFORMANCE_DIR` names it, the public sigstore-conformance
//! suite's `test/assets/bundle-verify`. Each case is verified once with the artifact file and once
//! with its `sha256:` digest. Then every happy bundle is mutated one bound field at a time: every
//! mutation must be refused (exit 12 or 2, never 0, never a crash).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine as _;
use serde_json::Value;
use sha2::Digest as _;

use crate::support::signet;

const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// Conformance cases Signet refuses as malformed input (exit 2) rather than "not verified" (12):
/// the bundle, key or trusted root does not parse. Every other `_fail` case must exit 12.
const CONFORMANCE_MALFORMED: &[&str] = &[
    "bundle-invalid-base64-signature_fail",
    "bundle-malformed-json_fail",
    "bundle-negative-log-index_fail",
    "bundle-unknown-version_fail",
    "managed-key-wrong-key_fail",
    "rekor2-checkpoint-missing-log-signature_fail",
    "rekor2-checkpoint-missing-origin_fail",
    "rekor2-checkpoint-missing-root-hash_fail",
    "rekor2-checkpoint-missing-size_fail",
    // Its TSA token is base64 with line breaks (Go's decoder skips them; the protobuf JSON
    // mapping does not allow them): refused while parsing, before the time check it targets.
    "rekor2-timestamp-with-incorrect-time_fail",
    "trust-root-tlog-missing-validity-start_fail",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    Verified,
    /// Exit 12, with this check code when known.
    Refused(Option<String>),
    Malformed,
}

#[derive(Debug, Clone)]
struct Case {
    name: String,
    dir: PathBuf,
    artifact: Option<PathBuf>,
    digest: String,
    key: Option<PathBuf>,
    root: Option<PathBuf>,
    identity: String,
    issuer: String,
    expected: Expected,
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn load_cases(suite: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(suite)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("bundle.sigstore.json").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let artifact = [dir.join("artifact"), suite.join("a.txt")]
            .into_iter()
            .find(|p| p.is_file());
        let digest = match (&artifact, read_trimmed(&dir.join("digest"))) {
            (_, Some(digest)) => digest,
            (Some(artifact), None) => format!(
                "sha256:{}",
                hex::encode(sha2::Sha256::digest(std::fs::read(artifact).unwrap()))
            ),
            (None, None) => panic!("case {name} has neither an artifact nor a digest"),
        };
        let expected = match read_trimmed(&dir.join("expected")) {
            Some(text) => match text.split_once(' ') {
                _ if text == "0" => Expected::Verified,
                _ if text == "2" => Expected::Malformed,
                Some(("12", code)) => Expected::Refused(Some(code.to_string())),
                _ => panic!("case {name}: bad expected file {text:?}"),
            },
            None if !name.ends_with("_fail") => Expected::Verified,
            None if CONFORMANCE_MALFORMED.contains(&name.as_str()) => Expected::Malformed,
            None => Expected::Refused(None),
        };
        assert!(
            !(name.ends_with("_fail") && expected == Expected::Verified),
            "case {name}: a _fail case cannot be expected to verify"
        );
        cases.push(Case {
            artifact: artifact.filter(|_| !dir.join("digest").is_file()),
            digest,
            key: Some(dir.join("key.pub")).filter(|p| p.is_file()),
            root: Some(dir.join("trusted_root.json")).filter(|p| p.is_file()),
            identity: read_trimmed(&dir.join("identity")).unwrap_or(DEFAULT_IDENTITY.into()),
            issuer: read_trimmed(&dir.join("issuer")).unwrap_or(DEFAULT_ISSUER.into()),
            name,
            dir,
            expected,
        });
    }
    cases
}

/// `signet verify-blob …` for `case` over `target` (a path or a digest), with `bundle` (default:
/// the case's own), inside a network namespace without any interface but a down loopback.
fn verify(case: &Case, bundle: &Path, target: &str) -> Output {
    verify_reading(case, bundle, target, None)
}

/// [`verify`], with `stdin` (a file) as the command's standard input.
fn verify_reading(case: &Case, bundle: &Path, target: &str, stdin: Option<&Path>) -> Output {
    let base = signet();
    let mut cmd = std::process::Command::new("unshare");
    cmd.env_clear();
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.arg("-n")
        .arg(base.get_program())
        .arg("verify-blob")
        .arg("--output")
        .arg("json")
        .arg("--bundle")
        .arg(bundle);
    match &case.key {
        Some(key) => cmd.arg("--key").arg(key),
        None => cmd
            .arg("--certificate-identity")
            .arg(&case.identity)
            .arg("--certificate-oidc-issuer")
            .arg(&case.issuer),
    };
    if let Some(root) = &case.root {
        cmd.arg("--trusted-root").arg(root);
    }
    if let Some(stdin) = stdin {
        cmd.stdin(std::fs::File::open(stdin).unwrap());
    }
    cmd.arg(target).output().unwrap()
}

/// The problem with `out` given `expected`, or `None` when it matches.
fn judge(expected: &Expected, out: &Output) -> Option<String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    if stderr.contains("panicked") || code.is_none() {
        return Some(format!("crashed: {code:?} {stderr}"));
    }
    let json = || serde_json::from_str::<Value>(stdout.trim()).ok();
    let ok = match expected {
        Expected::Verified => {
            code == Some(0) && json().is_some_and(|v| v["verified"] == Value::Bool(true))
        }
        Expected::Malformed => {
            code == Some(2) && stdout.is_empty() && stderr.trim().lines().count() == 1
        }
        Expected::Refused(wanted) => {
            code == Some(12)
                && json().is_some_and(|v| {
                    v["verified"] == Value::Bool(false)
                        && wanted
                            .as_ref()
                            .is_none_or(|w| v["code"].as_str() == Some(w.as_str()))
                })
        }
    };
    (!ok).then(|| format!("expected {expected:?}, got exit {code:?}: {stdout} {stderr}"))
}

/// Run every case with its artifact and its digest; the failures (empty: all passed) and the
/// number of runs.
fn run_suite(cases: &[Case]) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    let mut runs = 0;
    for case in cases {
        let bundle = case.dir.join("bundle.sigstore.json");
        let mut targets = vec![case.digest.clone()];
        if let Some(artifact) = &case.artifact {
            targets.push(artifact.to_str().unwrap().to_string());
        }
        for target in targets {
            runs += 1;
            if let Some(problem) = judge(&case.expected, &verify(case, &bundle, &target)) {
                failures.push(format!("{} ({target}): {problem}", case.name));
            }
        }
    }
    (failures, runs)
}

fn committed_suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/sigstore-bundles")
}

#[test]
fn committed_bundle_cases_get_their_verdict_offline() {
    let cases = load_cases(&committed_suite());
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    let (failures, runs) = run_suite(&cases);
    eprintln!(
        "testdata/sigstore-bundles: {runs} runs, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn conformance_suite_when_provided() {
    let Some(dir) = std::env::var_os("SIGNET_CONFORMANCE_DIR") else {
        eprintln!("SIGNET_CONFORMANCE_DIR not set: the public conformance suite is not run");
        return;
    };
    let dir = PathBuf::from(dir);
    if !dir.is_dir() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "SIGNET_CONFORMANCE_DIR={} does not exist (under CI this fails)",
            dir.display()
        );
        eprintln!(
            "SIGNET_CONFORMANCE_DIR={} does not exist: skipped",
            dir.display()
        );
        return;
    }
    let cases = load_cases(&dir);
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    let (failures, runs) = run_suite(&cases);
    eprintln!(
        "conformance: {} cases, {runs} runs, {} failed",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---- mutations ---------------------------------------------------------------------------------

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Flip one bit of the base64 string at `value`, `at` bytes from the start (negative: from the
/// end). False when there is no such field.
fn flip(value: Option<&mut Value>, at: isize) -> bool {
    let Some(value) = value else { return false };
    let Some(text) = value.as_str() else {
        return false;
    };
    let Ok(mut bytes) = b64().decode(text) else {
        return false;
    };
    if bytes.is_empty() {
        return false;
    }
    let len = bytes.len() as isize;
    let index = if at < 0 { len + at } else { at.min(len - 1) }.clamp(0, len - 1) as usize;
    bytes[index] ^= 0x01;
    *value = Value::String(b64().encode(bytes));
    true
}

fn middle(value: Option<&mut Value>) -> bool {
    let Some(value) = value else { return false };
    let len = value
        .as_str()
        .and_then(|t| b64().decode(t).ok())
        .map_or(0, |b| b.len());
    flip(Some(value), (len / 2) as isize)
}

/// Add one to the (string or number) integer at `value`.
fn bump(value: Option<&mut Value>) -> bool {
    let Some(value) = value else { return false };
    let next = match &*value {
        Value::String(s) => s
            .parse::<u64>()
            .ok()
            .map(|n| Value::String((n + 1).to_string())),
        Value::Number(n) => n.as_u64().map(|n| Value::from(n + 1)),
        _ => None,
    };
    match next {
        Some(next) => {
            *value = next;
            true
        }
        None => false,
    }
}

fn leaf(b: &mut Value) -> Option<&mut Value> {
    let material = b.get_mut("verificationMaterial")?;
    if material.get("certificate").is_some() {
        return material.get_mut("certificate")?.get_mut("rawBytes");
    }
    material
        .get_mut("x509CertificateChain")?
        .get_mut("certificates")?
        .get_mut(0)?
        .get_mut("rawBytes")
}

fn entry(b: &mut Value, i: usize) -> Option<&mut Value> {
    b.get_mut("verificationMaterial")?
        .get_mut("tlogEntries")?
        .get_mut(i)
}

fn timestamp(b: &mut Value, i: usize) -> Option<&mut Value> {
    b.get_mut("verificationMaterial")?
        .get_mut("timestampVerificationData")?
        .get_mut("rfc3161Timestamps")?
        .get_mut(i)?
        .get_mut("signedTimestamp")
}

fn signature(b: &mut Value) -> Option<&mut Value> {
    if b.get("messageSignature").is_some() {
        return b.get_mut("messageSignature")?.get_mut("signature");
    }
    b.get_mut("dsseEnvelope")?
        .get_mut("signatures")?
        .get_mut(0)?
        .get_mut("sig")
}

/// Rewrite the checkpoint note of entry `i` with `edit` (over its lines).
fn checkpoint(b: &mut Value, i: usize, edit: impl Fn(&mut Vec<String>) -> bool) -> bool {
    let Some(envelope) = entry(b, i)
        .and_then(|e| e.get_mut("inclusionProof"))
        .and_then(|p| p.get_mut("checkpoint"))
        .and_then(|c| c.get_mut("envelope"))
    else {
        return false;
    };
    let Some(text) = envelope.as_str() else {
        return false;
    };
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    if !edit(&mut lines) {
        return false;
    }
    *envelope = Value::String(lines.join("\n"));
    true
}

/// Flip a bit in the signature bytes of every signature line of a note (after the 4-byte hint).
fn flip_note_signatures(lines: &mut [String]) -> bool {
    let mut changed = false;
    for line in lines.iter_mut().filter(|l| l.starts_with('\u{2014}')) {
        let Some((head, sig)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(mut bytes) = b64().decode(sig) else {
            continue;
        };
        if bytes.len() > 8 {
            bytes[8] ^= 1;
            *line = format!("{head} {}", b64().encode(bytes));
            changed = true;
        }
    }
    changed
}

type Mutation = (&'static str, fn(&mut Value) -> bool);

/// One bound field each. A mutation that finds no such field in a bundle is not applied.
fn mutations() -> Vec<Mutation> {
    let mut all: Vec<Mutation> = vec![
        ("signature", |b| flip(signature(b), -3)),
        ("message-digest", |b| {
            middle(
                b.get_mut("messageSignature")
                    .and_then(|m| m.get_mut("messageDigest"))
                    .and_then(|d| d.get_mut("digest")),
            )
        }),
        ("dsse-payload", |b| {
            middle(b.get_mut("dsseEnvelope").and_then(|d| d.get_mut("payload")))
        }),
        ("dsse-payload-type", |b| {
            match b
                .get_mut("dsseEnvelope")
                .and_then(|d| d.get_mut("payloadType"))
            {
                Some(t) => {
                    *t = Value::String("application/vnd.in-toto+jsoN".into());
                    true
                }
                None => false,
            }
        }),
        ("leaf-certificate-tbs", |b| middle(leaf(b))),
        ("leaf-certificate-signature", |b| flip(leaf(b), -2)),
    ];
    // Entries and timestamps by position (bundles carry one or two).
    macro_rules! per_entry {
        ($i:literal) => {
            all.extend_from_slice(&[
                (concat!("tlog", $i, "-body"), |b| {
                    middle(entry(b, $i).and_then(|e| e.get_mut("canonicalizedBody")))
                }),
                (concat!("tlog", $i, "-log-id"), |b| {
                    middle(
                        entry(b, $i)
                            .and_then(|e| e.get_mut("logId"))
                            .and_then(|l| l.get_mut("keyId")),
                    )
                }),
                (concat!("tlog", $i, "-log-index"), |b| {
                    bump(entry(b, $i).and_then(|e| e.get_mut("logIndex")))
                }),
                (concat!("tlog", $i, "-integrated-time"), |b| {
                    bump(entry(b, $i).and_then(|e| e.get_mut("integratedTime")))
                }),
                (concat!("tlog", $i, "-set"), |b| {
                    middle(
                        entry(b, $i)
                            .and_then(|e| e.get_mut("inclusionPromise"))
                            .and_then(|p| p.get_mut("signedEntryTimestamp")),
                    )
                }),
                (concat!("tlog", $i, "-proof-hash"), |b| {
                    middle(
                        entry(b, $i)
                            .and_then(|e| e.get_mut("inclusionProof"))
                            .and_then(|p| p.get_mut("hashes"))
                            .and_then(|h| h.get_mut(0)),
                    )
                }),
                (concat!("tlog", $i, "-root-hash"), |b| {
                    middle(
                        entry(b, $i)
                            .and_then(|e| e.get_mut("inclusionProof"))
                            .and_then(|p| p.get_mut("rootHash")),
                    )
                }),
                (concat!("tlog", $i, "-proof-log-index"), |b| {
                    bump(
                        entry(b, $i)
                            .and_then(|e| e.get_mut("inclusionProof"))
                            .and_then(|p| p.get_mut("logIndex")),
                    )
                }),
                (concat!("tlog", $i, "-tree-size"), |b| {
                    bump(
                        entry(b, $i)
                            .and_then(|e| e.get_mut("inclusionProof"))
                            .and_then(|p| p.get_mut("treeSize")),
                    )
                }),
                (concat!("tlog", $i, "-checkpoint-size"), |b| {
                    checkpoint(b, $i, |lines| {
                        match lines.get(1).and_then(|l| l.parse::<u64>().ok()) {
                            Some(n) => {
                                lines[1] = (n + 1).to_string();
                                true
                            }
                            None => false,
                        }
                    })
                }),
                (concat!("tlog", $i, "-checkpoint-signature"), |b| {
                    checkpoint(b, $i, |lines| flip_note_signatures(lines))
                }),
                (concat!("timestamp", $i, "-token-signature"), |b| {
                    flip(timestamp(b, $i), -3)
                }),
                (concat!("timestamp", $i, "-token-content"), |b| {
                    flip(timestamp(b, $i), 60)
                }),
            ]);
        };
    }
    per_entry!(0);
    per_entry!(1);
    all
}

fn happy_cases() -> Vec<Case> {
    let mut cases = load_cases(&committed_suite());
    if let Some(dir) = std::env::var_os("SIGNET_CONFORMANCE_DIR") {
        if Path::new(&dir).is_dir() {
            cases.extend(load_cases(Path::new(&dir)));
        }
    }
    cases.retain(|c| c.expected == Expected::Verified);
    cases
}

#[test]
fn every_single_field_mutation_of_a_happy_bundle_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let mut applied = 0;
    let mut failures = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for case in happy_cases() {
        let original: Value =
            serde_json::from_slice(&std::fs::read(case.dir.join("bundle.sigstore.json")).unwrap())
                .unwrap();
        for (name, mutate) in mutations() {
            let mut bundle = original.clone();
            if !mutate(&mut bundle) {
                continue;
            }
            assert_ne!(
                bundle, original,
                "{} {name}: mutation changed nothing",
                case.name
            );
            applied += 1;
            kinds.insert(name);
            let path = scratch.path().join(format!("{}-{name}.json", case.name));
            std::fs::write(&path, serde_json::to_vec(&bundle).unwrap()).unwrap();
            let out = verify(&case, &path, &case.digest);
            let refused = matches!(out.status.code(), Some(2) | Some(12))
                && !String::from_utf8_lossy(&out.stderr).contains("panicked");
            if !refused {
                failures.push(format!(
                    "{} / {name}: exit {:?} {} {}",
                    case.name,
                    out.status.code(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    eprintln!("{applied} mutations applied over kinds {kinds:?}");
    for wanted in [
        "signature",
        "message-digest",
        "dsse-payload",
        "dsse-payload-type",
        "leaf-certificate-tbs",
        "tlog0-body",
        "tlog0-proof-hash",
        "tlog0-root-hash",
        "tlog0-checkpoint-signature",
        "tlog0-set",
        "timestamp0-token-signature",
    ] {
        assert!(kinds.contains(wanted), "no happy bundle exercised {wanted}");
    }
    assert!(
        failures.is_empty(),
        "accepted mutations:\n{}",
        failures.join("\n")
    );
}

// ---- stricter than the reference clients ----------------------------------------------------------

fn case(name: &str) -> Case {
    load_cases(&committed_suite())
        .into_iter()
        .find(|c| c.name == name)
        .unwrap()
}

fn refusal_code(case: &Case, bundle: &Value) -> (Option<i32>, String) {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("bundle.json");
    std::fs::write(&path, serde_json::to_vec(bundle).unwrap()).unwrap();
    let out = verify(case, &path, &case.digest);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code(),
        json["code"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn a_bad_log_signature_beside_a_good_one_refuses_the_checkpoint() {
    // sigstore-verify accepts this (its own test
    // rekor_v2_accepts_a_valid_log_signature_after_an_invalid_matching_signature); Signet refuses.
    let case = case("dsse-rekor2-conda-staging");
    let mut bundle: Value =
        serde_json::from_slice(&std::fs::read(case.dir.join("bundle.sigstore.json")).unwrap())
            .unwrap();
    assert!(checkpoint(&mut bundle, 0, |lines| {
        let Some(good) = lines.iter().position(|l| l.starts_with('\u{2014}')) else {
            return false;
        };
        let mut bad = vec![lines[good].clone()];
        flip_note_signatures(&mut bad);
        lines.insert(good, bad.remove(0));
        true
    }));
    assert_eq!(
        refusal_code(&case, &bundle),
        (Some(12), "tlog-invalid".to_string())
    );
}

#[test]
fn extra_evidence_that_does_not_verify_refuses_the_bundle() {
    let case = case("cosign-v3-blob");
    let original: Value =
        serde_json::from_slice(&std::fs::read(case.dir.join("bundle.sigstore.json")).unwrap())
            .unwrap();
    // A second timestamp token, broken: the first alone would suffice.
    let mut bundle = original.clone();
    let tokens = bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
        .as_array_mut()
        .unwrap();
    let mut bad = tokens[0].clone();
    assert!(flip(bad.get_mut("signedTimestamp"), -3));
    tokens.push(bad);
    assert_eq!(
        refusal_code(&case, &bundle),
        (Some(12), "timestamp-invalid".to_string())
    );
    // A second log entry, its SET broken.
    let mut bundle = original.clone();
    let entries = bundle["verificationMaterial"]["tlogEntries"]
        .as_array_mut()
        .unwrap();
    let mut bad = entries[0].clone();
    assert!(middle(
        bad.get_mut("inclusionPromise")
            .and_then(|p| p.get_mut("signedEntryTimestamp"))
    ));
    entries.push(bad);
    assert_eq!(
        refusal_code(&case, &bundle),
        (Some(12), "tlog-invalid".to_string())
    );
}

// ---- malformed input -------------------------------------------------------------------------------

#[test]
fn malformed_input_is_one_line_and_exit_2_never_a_panic() {
    let case = case("cosign-v3-blob");
    let original = std::fs::read_to_string(case.dir.join("bundle.sigstore.json")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut chain: Value = serde_json::from_str(&original).unwrap();
    let cert = chain["verificationMaterial"]["certificate"].clone();
    chain["verificationMaterial"]
        .as_object_mut()
        .unwrap()
        .remove("certificate");
    chain["verificationMaterial"]["x509CertificateChain"] =
        serde_json::json!({"certificates": vec![cert; 9]});
    chain["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.2".into();
    let oversized = {
        let mut text = original.clone();
        text.insert_str(
            1,
            &format!("\"pad\": \"{}\",", "a".repeat(16 * 1024 * 1024)),
        );
        text
    };
    let inputs: Vec<(&str, String, &str)> = vec![
        ("oversized", oversized, "larger than 16777216 bytes"),
        (
            "deep",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
            "nested deeper than 32",
        ),
        (
            "junk-base64",
            original.replacen("\"signature\":\"", "\"signature\":\"!!!", 1),
            "base64",
        ),
        (
            "unknown-version",
            original.replace("bundle.v0.3+json", "bundle.v0.9+json"),
            "media type",
        ),
        (
            "wrong-type",
            original.replacen("\"tlogEntries\":[", "\"tlogEntries\":7, \"x\":[", 1),
            "malformed bundle",
        ),
        ("long-chain", chain.to_string(), "9 chain certificates"),
        ("not-json", "\u{0}\u{1}".into(), "malformed bundle"),
    ];
    for (name, text, wanted) in inputs {
        let path = scratch.path().join(format!("{name}.json"));
        std::fs::write(&path, &text).unwrap();
        let out = verify(&case, &path, &case.digest);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(wanted), "{name}: {stderr} lacks {wanted:?}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
    // Junk PEM for --key, and a junk trusted root.
    let junk = scratch.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let mut keyed = case.clone();
    keyed.key = Some(junk.clone());
    let out = verify(&keyed, &case.dir.join("bundle.sigstore.json"), &case.digest);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("malformed public key"));
    let mut rooted = case.clone();
    rooted.root = Some(junk);
    let out = verify(
        &rooted,
        &case.dir.join("bundle.sigstore.json"),
        &case.digest,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("malformed trusted root"));
}

// ---- flags ---------------------------------------------------------------------------------------

#[test]
fn identity_patterns_match_whole_values_and_flag_misuse_exits_2() {
    let case = case("cosign-v3-blob");
    let bundle = case.dir.join("bundle.sigstore.json");
    let artifact = case.artifact.clone().unwrap();
    let run = |flags: &[&str]| {
        let out = signet()
            .arg("verify-blob")
            .arg("--bundle")
            .arg(&bundle)
            .args(flags)
            .arg(&artifact)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let issuer_re = [
        "--certificate-oidc-issuer-regexp",
        r"https://github\.com/login/.*",
    ];
    let (code, text) = run(&[
        &["--certificate-identity-regexp", r".*@gmail\.com"],
        &issuer_re[..],
    ]
    .concat());
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Verified OK"), "{text}");
    // cosign (Go regexp, match anywhere) accepts this; Signet anchors it.
    let (code, text) = run(&[
        &["--certificate-identity-regexp", "vollprecht"],
        &issuer_re[..],
    ]
    .concat());
    assert_eq!(code, Some(12), "{text}");
    assert!(text.contains("does not match /vollprecht/"), "{text}");
    // Usage: an issuer is required, exact and pattern exclude each other, a key excludes both,
    // and a pattern that does not compile is refused before anything is read.
    for (flags, wanted) in [
        (
            vec!["--certificate-identity", "x"],
            "--certificate-oidc-issuer",
        ),
        (
            vec![
                "--certificate-identity",
                "x",
                "--certificate-identity-regexp",
                "y",
                "--certificate-oidc-issuer",
                "z",
            ],
            "cannot be used with",
        ),
        (
            vec![
                "--key",
                "k.pub",
                "--certificate-identity",
                "x",
                "--certificate-oidc-issuer",
                "z",
            ],
            "cannot be used with",
        ),
        (
            vec![
                "--certificate-identity-regexp",
                "(",
                "--certificate-oidc-issuer",
                "z",
            ],
            "invalid certificate identity pattern",
        ),
    ] {
        let (code, text) = run(&flags);
        assert_eq!(code, Some(2), "{flags:?}: {text}");
        assert!(text.contains(wanted), "{flags:?}: {text}");
    }
}

#[test]
fn the_artifact_can_come_from_stdin() {
    let happy = happy_cases()
        .into_iter()
        .find(|c| c.artifact.is_some() && c.expected == Expected::Verified)
        .expect("a committed happy case with an artifact file");
    let artifact = happy.artifact.clone().unwrap();
    let bundle = happy.dir.join("bundle.sigstore.json");
    let out = verify_reading(&happy, &bundle, "-", Some(&artifact));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}: {}",
        happy.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let other = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(other.path(), b"not the signed artifact").unwrap();
    let refused = verify_reading(&happy, &bundle, "-", Some(other.path()));
    assert_eq!(
        refused.status.code(),
        Some(12),
        "other bytes on stdin are not the artifact: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
