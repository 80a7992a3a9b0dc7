//! Rate limits as Docker Hub applies them (issue 13, item 4), against the real registry behind a
//! fault-injecting relay: the relay answers the first requests with Docker Hub's `429` (with a
//! `Retry-After`) and passes the rest through. The CLI and the gate's upstream calls wait as
//! asked and then succeed; a wait longer than the time-out ends at once with an error naming
//! the limit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{self, code, free_port, signet, TestRegistry};

/// A relay to a registry that answers the first `limited` connections' first request with
/// Docker Hub's rate-limit answer (`Retry-After: retry_after`) and closes them.
struct LimitingRelay {
    host: String,
    limited: Arc<AtomicUsize>,
}

impl LimitingRelay {
    fn start(target: &str, limit: usize, retry_after: &'static str) -> LimitingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let limited = Arc::new(AtomicUsize::new(0));
        let count = limited.clone();
        let target = target.to_string();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                if count.load(Ordering::SeqCst) < limit {
                    count.fetch_add(1, Ordering::SeqCst);
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match client.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}"#;
                    let _ = write!(
                        client,
                        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: {retry_after}\r\nRateLimit-Limit: 100;w=21600\r\nRateLimit-Remaining: 0;w=21600\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    continue;
                }
                let target = target.clone();
                std::thread::spawn(move || {
                    let Ok(server) = TcpStream::connect(&target) else {
                        return;
                    };
                    let (mut c2, mut s2) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let up = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c2, &mut s2);
                        let _ = s2.shutdown(std::net::Shutdown::Write);
                    });
                    let (mut s, mut c) = (server, client);
                    let _ = std::io::copy(&mut s, &mut c);
                    let _ = c.shutdown(std::net::Shutdown::Write);
                    let _ = up.join();
                });
            }
        });
        LimitingRelay { host, limited }
    }

    fn limited(&self) -> usize {
        self.limited.load(Ordering::SeqCst)
    }
}

fn digest(image: &str, extra: &[&str]) -> std::process::Output {
    let out = signet()
        .arg("digest")
        .arg(image)
        .args(extra)
        .output()
        .unwrap();
    eprintln!(
        "signet digest {image}: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_cli_waits_out_retry_after_and_names_a_limit_it_will_not_wait_for() {
    let reg = TestRegistry::start();
    let expected = support::push_sample_image(&reg, "library/app:v1");
    let relay = LimitingRelay::start(&reg.host(), 2, "1");
    let started = Instant::now();
    let out = digest(&format!("{}/library/app:v1", relay.host), &[]);
    assert_eq!(code(&out), 0);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        expected.to_string()
    );
    assert_eq!(relay.limited(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );

    let relay = LimitingRelay::start(&reg.host(), 100, "21600");
    let started = Instant::now();
    let out = digest(
        &format!("{}/library/app:v1", relay.host),
        &["--timeout", "20"],
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(code(&out), 2);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("rate limited (HTTP 429 Too Many Requests): the registry asks to wait 21600 s, longer than the 20 s limit (--timeout)"),
        "{text}"
    );
    assert_eq!(relay.limited(), 1, "no retry against a wait that long");
}

/// `signet serve --config` in front of `upstream`, accepting its `library/` repositories.
struct Serve {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(upstream: &str, timeout_seconds: u64) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            format!("default:\n  reject: only listed\nscopes:\n  \"{upstream}/library\":\n    accept: true\n"),
        )
        .unwrap();
        let config = dir.path().join("gate.yaml");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\npolicy: {}\nupstreams: [{{url: 'http://{upstream}'}}]\ntimeouts: {{upstream_seconds: {timeout_seconds}}}\n",
                policy.display()
            ),
        )
        .unwrap();
        let child = signet()
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let serve = Serve {
            child,
            port,
            _dir: dir,
        };
        wait_ready(serve.port, Path::new("/readyz"));
        serve
    }

    fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap_or_default())
    }
}

fn wait_ready(port: u16, path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::blocking::get(format!("http://127.0.0.1:{port}{}", path.display()))
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "signet serve did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_gates_upstream_calls_wait_out_retry_after_too() {
    let reg = TestRegistry::start();
    let expected = support::push_sample_image(&reg, "library/app:v1");
    let relay = LimitingRelay::start(&reg.host(), 2, "1");
    let gate = Serve::start(&relay.host, 30);
    let (status, _) = gate.get("/v2/library/app/manifests/v1");
    assert_eq!(status, 200);
    assert_eq!(relay.limited(), 2);
    let _ = expected;

    let relay = LimitingRelay::start(&reg.host(), 100, "21600");
    let gate = Serve::start(&relay.host, 5);
    let started = Instant::now();
    let (status, body) = gate.get("/v2/library/app/manifests/v1");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(status, 200);
    assert!(body.contains("rate limited"), "{status}: {body}");
    assert_eq!(relay.limited(), 1);
}
