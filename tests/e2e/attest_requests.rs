//! What an attestation requirement costs a cold decision at the registry (issue 12 item 8): the
//! gate (`signet serve`, real engine) judges the same image, signed with a key and attested with a
//! clean vulnerability scan, once under a signature-only policy and once under the same policy
//! plus a `vuln` attestation requirement, each on a fresh gate (nothing cached). A recording relay
//! in front of the real `docker-registry` counts every HTTP request each decision makes. The
//! attestation requirement may add at most two: the attestation's manifest and its envelope or
//! bundle — for cosign's legacy `.att` format and for a bundle referrer alike.
//!
//! The signature-only decision already lists the image's bundle referrers (a key-signed bundle
//! that claims a policy key and fails denies the image, so the policy reads them: on this
//! registry, without the referrers API, the API's 404 and the `sha256-<hex>` tag) and fetches
//! each bundle manifest to see whether it is a signature; one judgement reads them once for
//! every reader. So a legacy `.att` adds its manifest and envelope, and a bundle attestation its
//! blob and the `.att` 404 (a scope whose attestation signers accept both formats must look for
//! both: one failing trusted scan denies beside passing ones, so none may go unread). A scanner
//! with `formats: [bundle]` saves that 404.
//!
//! A fresh gate asks the referrers API once per registry; the answer (404: no API) is then
//! remembered by the gate's client for an hour, so later decisions go straight to the tag schema
//! (`a_warm_gate_does_not_ask_again_for_a_missing_referrers_api`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::support::{self, code, keypair, run, s, SignetServe, TestRegistry};

/// Requests an attestation requirement may add to a cold decision.
const MAX_EXTRA_REQUESTS: usize = 2;

/// A TCP relay to `target` that records the request line of every HTTP request it passes, before
/// forwarding it (so a request is on record before its answer can reach the client). Unlike
/// `gate_referrers.rs`'s recorder it keeps every method, not only `GET`/`HEAD`: a count of all
/// requests is the point here. Request bodies are skipped by their `Content-Length` (the gate
/// sends none while judging; a `PUT` with a body would otherwise be misread).
struct RecordingRelay {
    host: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl RecordingRelay {
    fn start(target: String) -> RecordingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let (mut from_client, mut to_server) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut from_server, mut to_client) = (server, client);
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 << 10];
                    let mut parser = RequestLines::default();
                    while let Ok(n) = from_client.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        for line in parser.feed(&buf[..n]) {
                            seen.lock().unwrap().push(line);
                        }
                        if to_server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to_server.shutdown(std::net::Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                    let _ = to_client.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        RecordingRelay { host, lines }
    }

    fn count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    fn lines_since(&self, start: usize) -> Vec<String> {
        self.lines.lock().unwrap()[start..].to_vec()
    }
}

/// Splits a client's byte stream into HTTP/1.1 requests and yields each request line.
#[derive(Default)]
struct RequestLines {
    pending: Vec<u8>,
    /// Body bytes of the current request still to skip.
    body_left: usize,
}

impl RequestLines {
    fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        loop {
            if self.body_left > 0 {
                let skip = self.body_left.min(self.pending.len());
                self.pending.drain(..skip);
                self.body_left -= skip;
                if self.body_left > 0 {
                    return lines;
                }
            }
            let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                return lines;
            };
            let head = String::from_utf8_lossy(&self.pending[..end]).to_string();
            self.pending.drain(..end + 4);
            let mut head_lines = head.split("\r\n");
            lines.push(head_lines.next().unwrap_or_default().to_string());
            self.body_left = head_lines
                .filter_map(|l| l.split_once(':'))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
        }
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/attestations")
        .join(name)
}

/// The policy for `host/team`: `release` signs; with `attested`, a clean scan by `scanner` is
/// required too. `scanner_formats`: the scanner signer's `formats` list, if any.
fn write_policy(
    dir: &Path,
    name: &str,
    host: &str,
    attested: bool,
    scanner_formats: Option<&str>,
) -> PathBuf {
    let requirement = if attested {
        "    attestations:\n      - type: vuln\n        keys: [scanner]\n        vulnerabilities: {maxSeverity: high}\n"
    } else {
        ""
    };
    let formats = scanner_formats
        .map(|f| format!(", formats: [{f}]"))
        .unwrap_or_default();
    let text = format!(
        "keys:\n  release: {{path: release.pub}}\n  scanner: {{path: scanner.pub{formats}}}\n\
         default:\n  reject: not from our registry\n\
         scopes:\n  \"{host}/team\":\n    signed: {{keys: [release]}}\n{requirement}"
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// One decision by the verify API of a fresh gate with `policy`: its answer and the requests it
/// made through `relay`.
fn cold_decision(
    relay: &RecordingRelay,
    policy: &Path,
    upstream: &str,
    image: &str,
) -> (Value, Vec<String>) {
    let gate = SignetServe::start(&["--policy", s(policy), "--upstream", upstream], |_| {});
    let before = relay.count();
    let (status, answer) = gate.verify(image, None);
    assert_eq!(status, 200, "{answer}");
    (answer, relay.lines_since(before))
}

/// Signs and attests `team/<repo>:v1` (attestation in `format`), then compares the requests of a
/// cold signature-only decision with those of a cold decision that also requires the scan (by
/// a scanner signer with `scanner_formats`, if given). Returns how many more it made.
fn compare(format: &str, repo: &str, scanner_formats: Option<&str>, max_extra: usize) -> usize {
    let reg = TestRegistry::start();
    let relay = RecordingRelay::start(reg.host());
    let dir = tempfile::tempdir().unwrap();
    let (release, _) = keypair(dir.path(), "release");
    let (scanner, _) = keypair(dir.path(), "scanner");
    let digest = support::push_sample_image(&reg, &format!("team/{repo}:v1"));
    // Signed under the name the gate will see (the signed identity names the registry).
    let at_registry = format!("{}/team/{repo}@{digest}", relay.host);
    let signed = run(&["sign", "--key", s(&release), &at_registry]);
    assert_eq!(code(&signed), 0, "sign");
    let attested = run(&[
        "attest",
        "--key",
        s(&scanner),
        "--predicate",
        s(&fixture("trivy-vuln-clean.json")),
        "--type",
        "vuln",
        "--format",
        format,
        &at_registry,
    ]);
    assert_eq!(
        code(&attested),
        0,
        "attest: {}",
        String::from_utf8_lossy(&attested.stderr)
    );

    // The gate reaches the registry through the relay: images are named by the relay's address,
    // the gate's upstream (the one loopback registry it may reach).
    let image = format!("{}/team/{repo}@{digest}", relay.host);
    let upstream = format!("http://{}", relay.host);
    let signature_only = write_policy(
        dir.path(),
        "signature-only.yaml",
        &relay.host,
        false,
        scanner_formats,
    );
    let with_scan = write_policy(
        dir.path(),
        "with-scan.yaml",
        &relay.host,
        true,
        scanner_formats,
    );

    let (answer, baseline) = cold_decision(&relay, &signature_only, &upstream, &image);
    assert_eq!(answer["allowed"], true, "signature-only: {answer}");
    assert_eq!(answer["cached"], false, "{answer}");
    let (answer, attested_lines) = cold_decision(&relay, &with_scan, &upstream, &image);
    assert_eq!(answer["allowed"], true, "with the scan required: {answer}");
    assert_eq!(answer["cached"], false, "{answer}");
    let passed: Vec<&Value> = answer["report"]["attestations"]
        .as_array()
        .map(|a| a.iter().filter(|c| c["passed"] == true).collect())
        .unwrap_or_default();
    assert_eq!(
        passed.len(),
        1,
        "exactly the one {format} attestation verified: {answer}"
    );

    eprintln!(
        "{format}: signature-only decision, {} requests: {baseline:#?}\n\
         {format}: with the vuln attestation required, {} requests: {attested_lines:#?}",
        baseline.len(),
        attested_lines.len()
    );
    assert!(
        !baseline.is_empty(),
        "the relay saw the signature-only decision's requests"
    );
    assert!(
        attested_lines.len() <= baseline.len() + max_extra,
        "{format}: {} requests with the attestation requirement, {} without; at most \
         {max_extra} more allowed.\nwithout: {baseline:#?}\nwith: {attested_lines:#?}",
        attested_lines.len(),
        baseline.len()
    );
    attested_lines.len() - baseline.len()
}

#[test]
fn a_legacy_att_requirement_adds_at_most_two_requests_to_a_cold_decision() {
    compare("legacy", "legacy", None, MAX_EXTRA_REQUESTS);
}

#[test]
fn a_bundle_referrer_requirement_adds_at_most_two_requests_to_a_cold_decision() {
    compare("bundle", "bundle", None, MAX_EXTRA_REQUESTS);
}

/// The counts measured when the two tests above were made to pass, so that a regression (a
/// second fetch of the same manifest, a retry, a second referrers listing) shows at once:
/// +2 for a legacy `.att` (its manifest, its envelope), +2 for a bundle referrer (the `.att`
/// 404, the bundle blob), +1 for a bundle referrer by a scanner with `formats: [bundle]` (no
/// `.att` is looked for).
#[test]
fn cold_attestation_requests_do_not_grow_past_the_measured_count() {
    assert_eq!(compare("legacy", "legacy", None, 2), 2);
    assert_eq!(compare("bundle", "bundle", None, 2), 2);
    assert_eq!(compare("bundle", "bundle-only", Some("bundle"), 1), 1);
}

/// The first decision of a fresh gate asks the referrers API (404 on distribution 2.8) before
/// reading the `sha256-<hex>` tag; the gate's client remembers the registry lacks it, so the
/// next decision (another image, not cached) reads the tag at once: one request fewer.
#[test]
fn a_warm_gate_does_not_ask_again_for_a_missing_referrers_api() {
    let reg = TestRegistry::start();
    let relay = RecordingRelay::start(reg.host());
    let dir = tempfile::tempdir().unwrap();
    let (release, _) = keypair(dir.path(), "release");
    keypair(dir.path(), "scanner");
    let mut images = Vec::new();
    for repo in ["first", "second"] {
        let digest = support::push_sample_image(&reg, &format!("team/{repo}:v1"));
        let image = format!("{}/team/{repo}@{digest}", relay.host);
        assert_eq!(code(&run(&["sign", "--key", s(&release), &image])), 0);
        images.push(image);
    }
    let policy = write_policy(dir.path(), "policy.yaml", &relay.host, false, None);
    let upstream = format!("http://{}", relay.host);
    let gate = SignetServe::start(&["--policy", s(&policy), "--upstream", &upstream], |_| {});
    let mut decisions = Vec::new();
    for image in &images {
        let before = relay.count();
        let (status, answer) = gate.verify(image, None);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["allowed"], true, "{answer}");
        assert_eq!(answer["cached"], false, "{answer}");
        decisions.push(relay.lines_since(before));
    }
    let asks_api = |lines: &[String]| lines.iter().any(|l| l.contains("/referrers/"));
    let reads_tag = |lines: &[String]| {
        lines
            .iter()
            .any(|l| l.contains("/manifests/sha256-") && !l.contains(".sig HTTP"))
    };
    assert!(
        asks_api(&decisions[0]) && reads_tag(&decisions[0]),
        "the first decision asks the API, then reads the tag: {:#?}",
        decisions[0]
    );
    assert!(
        !asks_api(&decisions[1]) && reads_tag(&decisions[1]),
        "the second goes straight to the tag: {:#?}",
        decisions[1]
    );
    assert_eq!(decisions[1].len() + 1, decisions[0].len(), "{decisions:#?}");
}

#[test]
fn the_relay_counts_pipelined_requests_and_skips_bodies() {
    let mut parser = RequestLines::default();
    let mut lines = parser.feed(b"GET /v2/ HTTP/1.1\r\nHost: a\r\n\r\nPUT /v2/x HTTP/1.1\r\n");
    lines.extend(parser.feed(b"Content-Length: 25\r\n\r\nGET /v2/not-a-request\r\n\r\n"));
    lines.extend(parser.feed(b"HEAD /v2/y HTTP/1.1\r\n\r\n"));
    assert_eq!(
        lines,
        [
            "GET /v2/ HTTP/1.1",
            "PUT /v2/x HTTP/1.1",
            "HEAD /v2/y HTTP/1.1"
        ]
    );
}
