//! A short soak of `signet serve` (the long one is `bench/soak.sh`): concurrent clients send a mix
//! of verify-API and admission requests whose verdicts are known in advance (allow, deny, warn,
//! unknown image, malformed body, lists, Pods allowed and denied, mutation) while another thread
//! polls `/healthz`. Every answer must carry the expected verdict, nothing may answer 5xx, and
//! `/healthz` must answer every poll.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{self, free_port, signet, TestRegistry};

const PASSWORD: &str = "soak-e2e";
const CLIENTS: usize = 16;
const REQUESTS_PER_CLIENT: usize = 250;
/// `/healthz` is asked this often …
const HEALTH_EVERY: Duration = Duration::from_millis(50);
/// … and must answer within this (a debug build under load on a small machine).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

struct Gate {
    child: Child,
    port: u16,
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_ok(args: &[&str]) -> String {
    let out = signet()
        .env("SIGNET_PASSWORD", PASSWORD)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "signet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn start_gate(policy: &Path, upstream: &str) -> Gate {
    let port = free_port();
    let child = signet()
        .args([
            "serve",
            "--policy",
            policy.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--upstream",
            upstream,
        ])
        .stdout(Stdio::null())
        // One log line per decision: thousands here, so not into the test's output.
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let gate = Gate { child, port };
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "signet serve did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    gate
}

/// One kind of request and what its answer must say.
struct Kind {
    name: &'static str,
    path: &'static str,
    body: String,
    status: u16,
    checks: Vec<(&'static str, Value)>,
}

fn review(images: &[&str]) -> String {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "default",
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                       "spec": {"containers": containers}},
        }
    })
    .to_string()
}

fn kinds(host: &str, signed_digest: &str) -> Vec<Kind> {
    let signed = format!("{host}/team/signed:v1");
    let unsigned = format!("{host}/team/unsigned:v1");
    let warned = format!("{host}/team/warned:v1");
    let verify = |name, image: String, checks: Vec<(&'static str, Value)>| Kind {
        name,
        path: "/v1/verify",
        body: json!({ "image": image }).to_string(),
        status: 200,
        checks,
    };
    vec![
        verify(
            "api-allow-tag",
            signed.clone(),
            vec![("/admitted", json!(true)), ("/allowed", json!(true))],
        ),
        verify(
            "api-allow-digest",
            format!("{host}/team/signed@{signed_digest}"),
            vec![
                ("/admitted", json!(true)),
                ("/digest", json!(signed_digest)),
            ],
        ),
        verify(
            "api-deny",
            unsigned.clone(),
            vec![
                ("/admitted", json!(false)),
                ("/allowed", json!(false)),
                ("/error", json!(false)),
            ],
        ),
        verify(
            "api-warn",
            warned.clone(),
            vec![
                ("/admitted", json!(true)),
                ("/allowed", json!(false)),
                ("/mode", json!("warn")),
            ],
        ),
        verify(
            "api-unknown",
            format!("{host}/team/no-such-image:v1"),
            vec![("/admitted", json!(false)), ("/error", json!(true))],
        ),
        Kind {
            name: "api-list",
            path: "/v1/verify",
            body: json!({"images": [signed, unsigned]}).to_string(),
            status: 200,
            checks: vec![
                ("/admitted", json!(false)),
                ("/results/0/admitted", json!(true)),
                ("/results/1/admitted", json!(false)),
            ],
        },
        Kind {
            name: "api-malformed",
            path: "/v1/verify",
            body: "{\"image\": ".into(),
            status: 400,
            // Refused for the truncated JSON it is, not for any other reason.
            checks: vec![(
                "/error",
                json!("malformed request: EOF while parsing a value at line 1 column 10"),
            )],
        },
        Kind {
            name: "admission-allow",
            path: "/validate",
            body: review(&[&signed]),
            status: 200,
            checks: vec![("/response/allowed", json!(true))],
        },
        Kind {
            name: "admission-deny",
            path: "/validate",
            body: review(&[&signed, &unsigned]),
            status: 200,
            checks: vec![("/response/allowed", json!(false))],
        },
        Kind {
            name: "admission-warn",
            path: "/validate",
            body: review(&[&warned]),
            status: 200,
            checks: vec![("/response/allowed", json!(true))],
        },
        Kind {
            name: "mutate-allow",
            path: "/mutate",
            body: review(&[&signed]),
            status: 200,
            checks: vec![
                ("/response/allowed", json!(true)),
                ("/response/patchType", json!("JSONPatch")),
            ],
        },
    ]
}

/// Why the answer to `kind` is wrong, if it is.
fn wrong(kind: &Kind, status: u16, body: &[u8]) -> Option<String> {
    if status != kind.status {
        return Some(format!(
            "{}: status {status}, expected {}: {}",
            kind.name,
            kind.status,
            String::from_utf8_lossy(body)
        ));
    }
    if kind.checks.is_empty() {
        return None;
    }
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        return Some(format!("{}: answer is not JSON", kind.name));
    };
    kind.checks
        .iter()
        .find(|(pointer, want)| doc.pointer(pointer) != Some(want))
        .map(|(pointer, want)| {
            format!(
                "{}: {pointer} is {:?}, expected {want}",
                kind.name,
                doc.pointer(pointer)
            )
        })
}

#[test]
fn gate_gives_every_verdict_right_under_concurrent_mixed_load() {
    let reg = TestRegistry::start();
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("release");
    run_ok(&[
        "generate-key-pair",
        "--output-key-prefix",
        prefix.to_str().unwrap(),
    ]);
    let signed_digest = support::push_sample_image(&reg, "team/signed:v1").to_string();
    support::push_sample_image(&reg, "team/unsigned:v1");
    support::push_sample_image(&reg, "team/warned:v1");
    run_ok(&[
        "sign",
        "--key",
        prefix.with_extension("key").to_str().unwrap(),
        &format!("{host}/team/signed:v1"),
    ]);
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "keys:\n  release: {{path: release.pub}}\ndefault:\n  reject: \"not ours\"\nscopes:\n  \"{host}/team\":\n    signed: {{keys: [release]}}\n  \"{host}/team/warned\":\n    mode: warn\n    signed: {{keys: [release]}}\n"
        ),
    )
    .unwrap();
    let gate = start_gate(&policy, &format!("http://{host}"));
    let base = format!("http://127.0.0.1:{}", gate.port);
    let kinds = Arc::new(kinds(&host, &signed_digest));

    let stop = Arc::new(AtomicBool::new(false));
    let health = {
        let (stop, url) = (stop.clone(), format!("{base}/healthz"));
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(HEALTH_TIMEOUT)
                .build()
                .unwrap();
            let (mut polls, mut failures, mut slowest) = (0u64, 0u64, Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = client
                    .get(&url)
                    .send()
                    .is_ok_and(|r| r.status() == 200 && r.text().is_ok_and(|t| t == "ok\n"));
                slowest = slowest.max(started.elapsed());
                polls += 1;
                failures += u64::from(!ok);
                std::thread::sleep(HEALTH_EVERY);
            }
            (polls, failures, slowest)
        })
    };

    let started = Instant::now();
    let server_errors = Arc::new(AtomicU64::new(0));
    let mistakes = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (kinds, base, server_errors, mistakes) = (
                kinds.clone(),
                base.clone(),
                server_errors.clone(),
                mistakes.clone(),
            );
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                let mut counts = vec![0usize; kinds.len()];
                for i in 0..REQUESTS_PER_CLIENT {
                    let k = (c * 7 + i) % kinds.len();
                    let kind = &kinds[k];
                    counts[k] += 1;
                    let answer = client
                        .post(format!("{base}{}", kind.path))
                        .header("content-type", "application/json")
                        .body(kind.body.clone())
                        .send()
                        .and_then(|r| {
                            let status = r.status().as_u16();
                            r.bytes().map(|b| (status, b))
                        });
                    let why = match answer {
                        Ok((status, body)) => {
                            if status >= 500 {
                                server_errors.fetch_add(1, Ordering::Relaxed);
                            }
                            wrong(kind, status, &body)
                        }
                        Err(e) => Some(format!("{}: request failed: {e}", kind.name)),
                    };
                    if let Some(why) = why {
                        mistakes.lock().unwrap().push(why);
                    }
                }
                counts
            })
        })
        .collect();
    let mut per_kind = vec![0usize; kinds.len()];
    for client in clients {
        for (total, n) in per_kind.iter_mut().zip(client.join().unwrap()) {
            *total += n;
        }
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (polls, health_failures, slowest) = health.join().unwrap();
    eprintln!(
        "soak: {} requests from {CLIENTS} clients in {took:?}; healthz {polls} polls, {health_failures} failures, slowest {slowest:?}",
        CLIENTS * REQUESTS_PER_CLIENT
    );

    let mistakes = mistakes.lock().unwrap();
    assert!(
        mistakes.is_empty(),
        "{} wrong answers, e.g. {:?}",
        mistakes.len(),
        &mistakes[..mistakes.len().min(5)]
    );
    assert_eq!(server_errors.load(Ordering::Relaxed), 0, "5xx answers");
    assert!(
        per_kind.iter().all(|&n| n > 0),
        "every kind was sent: {per_kind:?}"
    );
    assert!(polls > 0, "healthz was polled");
    assert_eq!(health_failures, 0, "healthz failed under load");

    // The gate counted the decisions it made: at least one per image asked about.
    let metrics = reqwest::blocking::get(format!("{base}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let decisions: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("signet_gate_decisions_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    let malformed: u64 = kinds
        .iter()
        .zip(&per_kind)
        .filter(|(k, _)| k.status == 400)
        .map(|(_, &n)| n as u64)
        .sum();
    assert!(
        decisions >= (CLIENTS * REQUESTS_PER_CLIENT) as u64 - malformed,
        "{decisions} decisions counted\n{metrics}"
    );
}
