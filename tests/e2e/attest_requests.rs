//! What an attestation requirement costs a cold decision at the registry (issue 12 item 8): the
//! gate (`signet serve`, real engine) judges the same image, signed with a key and attested with a
//! clean vulnerability scan, once under a signature-only policy and once under the same policy
//! plus a `vuln` attestation requirement, each on a fresh gate (nothing cached). A recording relay
//! in front of the real `docker-registry` counts every HTTP request each decision makes. The
//! attestation requirement may add at most two: the attestation's manifest and its envelope or
//! bundle — for cosign's legacy `.att` format and for a bundle referrer alike. Not met yet: those
//! two tests are ignored with the measured excess, and a third guards today's counts.

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
/// required too.
fn write_policy(dir: &Path, name: &str, host: &str, attested: bool) -> PathBuf {
    let requirement = if attested {
        "    attestations:\n      - type: vuln\n        keys: [scanner]\n        vulnerabilities: {maxSeverity: high}\n"
    } else {
        ""
    };
    let text = format!(
        "keys:\n  release: {{path: release.pub}}\n  scanner: {{path: scanner.pub}}\n\
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
/// cold signature-only decision with those of a cold decision that also requires the scan.
fn compare(format: &str, repo: &str, max_extra: usize) {
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
    let signature_only = write_policy(dir.path(), "signature-only.yaml", &relay.host, false);
    let with_scan = write_policy(dir.path(), "with-scan.yaml", &relay.host, true);

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
}

// Not met yet (measured 2026-12-02): +4 — the verifier also asks for bundle referrers the image
// does not have (the referrers API, 404 on distribution 2.8, then the `sha256-<hex>` tag, 404).
// See bench/README.md, "Attestation requirements". Run with `--ignored`.
#[test]
#[ignore = "issue 12 item 8 not met: +4 requests (verifier/src/attest.rs also probes bundle referrers)"]
fn a_legacy_att_requirement_adds_at_most_two_requests_to_a_cold_decision() {
    compare("legacy", "legacy", MAX_EXTRA_REQUESTS);
}

// Not met yet (measured 2026-12-02): +5 — the `.att` tag (404), the referrers API (404 on
// distribution 2.8), the referrers tag index, the bundle manifest, the bundle blob.
#[test]
#[ignore = "issue 12 item 8 not met: +5 requests (verifier/src/attest.rs: .att probe, referrers API then tag)"]
fn a_bundle_referrer_requirement_adds_at_most_two_requests_to_a_cold_decision() {
    compare("bundle", "bundle", MAX_EXTRA_REQUESTS);
}

/// Until the target holds: a cold decision costs no more than measured when this test was
/// written (+4 legacy, +5 bundle), so a regression (a second fetch of the same manifest, a retry)
/// shows at once.
#[test]
fn cold_attestation_requests_do_not_grow_past_the_measured_count() {
    compare("legacy", "legacy", 4);
    compare("bundle", "bundle", 5);
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
