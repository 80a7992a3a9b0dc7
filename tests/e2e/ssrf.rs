//! The gate is no request-forgery relay, and it reaches private registries (issue 10, items 1
//! and 6), end to end with the `signet` binary: names the policy rejects cost no request, internal
//! addresses and the verify API's client authentication are configured, and a CA installed only
//! in a throwaway `SSL_CERT_FILE` (or given with `--ca-file`) lets `signet digest` and
//! `signet serve` reach a TLS registry whose certificate it issued.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use signet_oci::{Reference, RegistryClient};

use crate::support::{self, free_port, s, signet, TestRegistry, TLS_NAME};

/// A loopback listener counting the connections it accepts (and closing them unanswered).
fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, count)
}

/// `signet serve` on a loopback port.
type Gate = support::SignetServe;

fn write_policy(dir: &Path, accepted: &str) -> std::path::PathBuf {
    let path = dir.join("policy.yaml");
    std::fs::write(
        &path,
        format!("default:\n  reject: only listed registries\nscopes:\n  \"{accepted}\":\n    accept: true\n"),
    )
    .unwrap();
    path
}

#[test]
fn the_verify_api_is_no_relay_and_can_require_a_token() {
    let reg = TestRegistry::start();
    let (target, hits) = counting_listener();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), &format!("127.0.0.1:{target}/allowed"));
    let token = "e2e-token-0123456789abcdef";
    std::fs::write(dir.path().join("token"), format!("{token}\n")).unwrap();
    let config = dir.path().join("gate.yaml");
    let port = free_port();
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\npolicy: {}\nupstreams: [{{url: 'http://{}'}}]\napi: {{token_file: {}}}\n",
            s(&policy),
            reg.host(),
            s(&dir.path().join("token"))
        ),
    )
    .unwrap();
    let gate = Gate::start_on(port, &["--config", s(&config)], |_| {});

    // No token, a wrong one: 401, and nothing fetched.
    for wrong in [None, Some("e2e-token-0123456789abcdeX")] {
        let (status, answer) = gate.verify(&format!("127.0.0.1:{target}/x:1"), wrong);
        assert_eq!(status, 401, "{answer}");
    }
    // A name the policy rejects whatever its signatures: denied without a request.
    let (status, answer) = gate.verify(&format!("127.0.0.1:{target}/secret:1"), Some(token));
    assert_eq!(status, 200);
    assert_eq!(answer["admitted"], false, "{answer}");
    assert_eq!(answer["error"], false, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("[rejected-by-policy]"),
        "{answer}"
    );
    // A name the policy could allow, at an internal address the gate's configuration does not
    // name: refused before a connection is made.
    let (_, answer) = gate.verify(&format!("127.0.0.1:{target}/allowed/x:1"), Some(token));
    assert_eq!(answer["error"], true, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("not a configured registry"),
        "{answer}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the gate never reached the listener"
    );
}

/// Push a sample image to the TLS registry (trusting its CA explicitly); its digest.
fn push_tls_image(reg: &TestRegistry) -> signet_oci::Digest {
    let reference: Reference = format!("{}/tls/app:v1", reg.tls_host()).parse().unwrap();
    let client = RegistryClient::new(reg.tls_options()).unwrap();
    support::push_sample_image_at(&client, &reference, "tls/app:v1")
}

#[test]
fn signet_digest_trusts_a_ca_installed_only_in_ssl_cert_file() {
    let reg = TestRegistry::start_with_tls();
    let digest = push_tls_image(&reg);
    let image = format!("{}/tls/app:v1", reg.tls_host());
    let resolve = format!("{TLS_NAME}=127.0.0.1");
    let digest_with = |edit: &dyn Fn(&mut Command)| {
        let mut command = signet();
        command.args(["digest", &image, "--resolve", &resolve]);
        edit(&mut command);
        command.output().unwrap()
    };
    let out = digest_with(&|c| {
        c.env("SSL_CERT_FILE", reg.ca_file());
    });
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&digest.to_string()),
        "{out:?}"
    );
    // Without it the certificate is refused, and the error says so.
    let out = digest_with(&|_| {});
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("certificate") && err.contains("UnknownIssuer"),
        "{err}"
    );
}

#[test]
fn signet_serve_trusts_a_ca_from_ssl_cert_file_or_ca_file() {
    let reg = TestRegistry::start_with_tls();
    let digest = push_tls_image(&reg);
    let dir = tempfile::tempdir().unwrap();
    let host = reg.host();
    let policy = write_policy(dir.path(), &host);
    let upstream = format!("https://{host}");
    let args = ["--policy", s(&policy), "--upstream", &upstream];
    let image = format!("{host}/tls/app:v1");

    let trusting = Gate::start(&args, |c| {
        c.env("SSL_CERT_FILE", reg.ca_file());
    });
    let (_, answer) = trusting.verify(&image, None);
    assert_eq!(answer["admitted"], true, "{answer}");
    assert_eq!(answer["digest"], digest.to_string(), "{answer}");
    drop(trusting);

    let ca_file = reg.ca_file().to_str().unwrap().to_string();
    let with_flag = Gate::start(&[&args[..], &["--ca-file", &ca_file]].concat(), |_| {});
    let (_, answer) = with_flag.verify(&image, None);
    assert_eq!(answer["admitted"], true, "{answer}");
    drop(with_flag);

    let untrusting = Gate::start(&args, |_| {});
    let (_, answer) = untrusting.verify(&image, None);
    assert_eq!(answer["error"], true, "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("certificate") && message.contains("UnknownIssuer"),
        "{message}"
    );
}

#[test]
fn a_token_auth_upstream_still_works_through_the_gate() {
    // The realm is plain HTTP on the registry's own (loopback) host, another port: no downgrade
    // (the registry itself is plain HTTP), and as reachable as the registry.
    let reg = TestRegistry::start_with_token_auth("puller", "pull-pw");
    let digest = support::push_sample_image_with(
        &reg,
        "team/app:v1",
        &support::client_with_credentials(&reg, "puller", "pull-pw"),
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), &reg.host());
    std::fs::write(dir.path().join("pw"), "pull-pw\n").unwrap();
    let config = dir.path().join("gate.yaml");
    let port = free_port();
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\npolicy: {}\nupstreams:\n  - url: http://{}\n    credentials: {{username: puller, password_file: {}}}\n",
            s(&policy),
            reg.host(),
            s(&dir.path().join("pw"))
        ),
    )
    .unwrap();
    let gate = Gate::start_on(port, &["--config", s(&config)], |_| {});
    let (_, answer) = gate.verify(&format!("{}/team/app:v1", reg.host()), None);
    assert_eq!(answer["admitted"], true, "{answer}");
    assert_eq!(answer["digest"], digest.to_string(), "{answer}");
    assert!(reg.token_requests() >= 1);
}
