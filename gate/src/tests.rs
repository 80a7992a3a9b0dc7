//! Tests of the engine (cache, single flight, fail closed) and of the HTTP endpoints that need no
//! upstream registry (admission with pinned images, verify API, health, metrics, TLS reload). The
//! proxy against a real registry is tested in `tests/e2e/gate.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use signet_oci::{Digest, Reference};

use super::*;

/// Allows repositories under `good/`, denies the rest; `warn/` and `audit/` deny in those modes;
/// `broken/` fails; `transient/` allows without being cacheable; `liar/` answers about another
/// digest; `slow/` takes 3 s. Every call is counted and takes `delay`.
struct TestJudge {
    calls: Arc<AtomicUsize>,
    delay: Duration,
    hash: String,
}

impl Judge for TestJudge {
    async fn judge(
        &self,
        reference: Reference,
        digest: Option<Digest>,
    ) -> Result<Judgement, GateError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let repo = reference.repository().to_string();
        let digest = digest.ok_or_else(|| GateError::Judge("no digest".into()))?;
        if repo.starts_with("broken/") {
            return Err(GateError::Judge("trust root unavailable".into()));
        }
        if repo.starts_with("panic/") && self.calls.load(Ordering::SeqCst) == 1 {
            panic!("judge bug");
        }
        if repo.starts_with("slow/") {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let mode = match repo.split('/').next() {
            Some("warn") => Mode::Warn,
            Some("audit") => Mode::Audit,
            _ => Mode::Enforce,
        };
        Ok(Judgement {
            digest: if repo.starts_with("liar/") {
                Digest::sha256(b"other")
            } else {
                digest
            },
            allowed: repo.starts_with("good/") || repo.starts_with("transient/"),
            mode,
            message: format!(
                "{repo}: {}",
                if repo.starts_with("good/") {
                    "signed by test key"
                } else {
                    "no valid signature"
                }
            ),
            report: std::sync::Arc::new(json!({"repository": repo, "policy": self.hash})),
            cacheable: !repo.starts_with("transient/"),
            valid_until: None,
        })
    }

    fn policy_hash(&self) -> String {
        self.hash.clone()
    }
}

fn judge(delay_ms: u64) -> (TestJudge, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    (
        TestJudge {
            calls: calls.clone(),
            delay: Duration::from_millis(delay_ms),
            hash: "policy-1".into(),
        },
        calls,
    )
}

/// A gate whose upstream is a loopback port where nothing listens.
fn config() -> GateConfig {
    let mut c = GateConfig::simple(
        "policy.yaml".into(),
        "127.0.0.1:0".parse().unwrap(),
        "http://127.0.0.1:9",
    )
    .unwrap();
    c.timeouts.judge_seconds = 1;
    c.timeouts.upstream_seconds = 2;
    c.timeouts.shutdown_seconds = 2;
    c
}

fn pinned(repo: &str) -> String {
    format!("127.0.0.1:9/{repo}@{}", Digest::sha256(repo.as_bytes()))
}

#[tokio::test]
async fn single_flight_then_cache() {
    let (j, calls) = judge(200);
    let gate = Gate::new(config(), j).unwrap();
    let image = pinned("good/app");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let gate = gate.clone();
            let image = image.clone();
            tokio::spawn(async move { gate.decide(&image, Source::Api).await })
        })
        .collect();
    for t in tasks {
        let d = t.await.unwrap();
        assert!(d.allowed && d.admitted() && !d.error, "{d:?}");
        assert_eq!(d.digest, Some(Digest::sha256(b"good/app")));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "20 concurrent requests, one judgement"
    );
    let again = gate.decide(&image, Source::Api).await;
    assert!(again.cached && again.allowed);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The same digest under another repository name is another question.
    let other = format!("127.0.0.1:9/bad/app@{}", Digest::sha256(b"good/app"));
    let d = gate.decide(&other, Source::Api).await;
    assert!(!d.allowed && !d.admitted() && !d.cached);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let metrics = gate.metrics_text();
    assert!(
        metrics.contains("signet_gate_cache_hits_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("signet_gate_shared_judgements_total 19\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "signet_gate_decisions_total{source=\"api\",result=\"allow\",mode=\"enforce\"} 21"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn errors_and_transient_verdicts_are_not_cached() {
    let (j, calls) = judge(0);
    let gate = Gate::new(config(), j).unwrap();
    for n in 1..=2 {
        let d = gate.decide(&pinned("broken/app"), Source::Api).await;
        assert!(d.error && !d.allowed && !d.admitted() && !d.cached);
        assert_eq!(d.message, "trust root unavailable");
        assert_eq!(calls.load(Ordering::SeqCst), n);
    }
    for n in 3..=4 {
        let d = gate.decide(&pinned("transient/app"), Source::Api).await;
        assert!(d.allowed && !d.cached);
        assert_eq!(calls.load(Ordering::SeqCst), n);
    }
    // Denials are verdicts: cached.
    gate.decide(&pinned("bad/app"), Source::Api).await;
    let d = gate.decide(&pinned("bad/app"), Source::Api).await;
    assert!(d.cached && !d.allowed && !d.error);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn fail_closed_on_bad_answers() {
    let (j, _) = judge(0);
    let gate = Gate::new(config(), j).unwrap();
    let d = gate.decide(&pinned("liar/app"), Source::Api).await;
    assert!(d.error && !d.admitted(), "{d:?}");
    assert!(
        d.message.contains("the judge answered about"),
        "{}",
        d.message
    );
    let d = gate.decide(&pinned("slow/app"), Source::Api).await;
    assert!(d.error && !d.admitted());
    assert_eq!(d.message, "judgement timed out after 1 s");
    let d = gate.decide("Not A Reference", Source::Api).await;
    assert!(d.error && d.reference.is_none());
    // A tag must be resolved at the upstream, which is down: denied.
    let d = gate.decide("127.0.0.1:9/good/app:v1", Source::Api).await;
    assert!(d.error && !d.admitted() && d.digest.is_none());
    assert!(
        d.message
            .starts_with("cannot resolve 127.0.0.1:9/good/app:v1"),
        "{}",
        d.message
    );
    assert!(gate
        .metrics_text()
        .contains("signet_gate_upstream_errors_total 1\n"));
}

#[tokio::test]
async fn a_panicking_judge_denies_once_and_is_asked_again() {
    let (j, calls) = judge(0);
    let gate = Gate::new(config(), j).unwrap();
    let d = gate.decide(&pinned("panic/app"), Source::Api).await;
    assert!(d.error && !d.admitted());
    assert!(d.message.starts_with("judgement failed"), "{}", d.message);
    // Not stuck on the failed judgement: the next request is judged anew (and this time allowed
    // to finish: a denial, since panic/ is not good/).
    let d = gate.decide(&pinned("panic/app"), Source::Api).await;
    assert!(!d.error && !d.allowed, "{d:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn warn_and_audit_admit_but_do_not_allow() {
    let (j, _) = judge(0);
    let gate = Gate::new(config(), j).unwrap();
    for (repo, mode) in [("warn/app", Mode::Warn), ("audit/app", Mode::Audit)] {
        let d = gate.decide(&pinned(repo), Source::Api).await;
        assert!(!d.allowed && d.admitted() && d.mode == mode);
    }
}

#[tokio::test]
async fn reload_swaps_policy_and_drops_verdicts() {
    let (j, calls) = judge(0);
    let gate = Gate::new(config(), j).unwrap();
    let image = pinned("good/app");
    gate.decide(&image, Source::Api).await;
    gate.decide(&image, Source::Api).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(gate.policy_hash(), "policy-1");
    let (mut j2, calls2) = judge(0);
    j2.hash = "policy-2".into();
    gate.reload(j2);
    assert_eq!(gate.policy_hash(), "policy-2");
    let d = gate.decide(&image, Source::Api).await;
    assert!(!d.cached);
    assert_eq!(d.report["policy"], "policy-2");
    assert_eq!(calls2.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cache_can_be_disabled_and_expires() {
    let (j, calls) = judge(0);
    let mut c = config();
    c.cache.size = 0;
    let gate = Gate::new(c, j).unwrap();
    gate.decide(&pinned("good/app"), Source::Api).await;
    gate.decide(&pinned("good/app"), Source::Api).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let (j, calls) = judge(0);
    let mut c = config();
    c.cache.ttl_seconds = 1;
    let gate = Gate::new(c, j).unwrap();
    gate.decide(&pinned("good/app"), Source::Api).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let d = gate.decide(&pinned("good/app"), Source::Api).await;
    assert!(!d.cached);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A running gate on a free port: its base URL, the gate, and the shutdown trigger.
struct Running {
    url: String,
    gate: Gate<TestJudge>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), GateError>>,
}

async fn start(config: GateConfig, scheme: &str) -> (Running, Arc<AtomicUsize>) {
    let (j, calls) = judge(0);
    let gate = Gate::new(config, j).unwrap();
    let bound = gate.bind().await.unwrap();
    let url = format!("{scheme}://localhost:{}", bound.local_addr().port());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.run(async move {
        let _ = rx.await;
    }));
    (
        Running {
            url,
            gate,
            stop: Some(tx),
            task,
        },
        calls,
    )
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
        assert!(!self.gate.is_ready());
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn review(uid: &str, kind: &str, object: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "apps", "version": "v1", "kind": kind},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "operation": "CREATE",
            "namespace": "default",
            "object": object,
        }
    })
}

fn deployment(images: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"template": {"spec": {"containers": containers}}}})
}

#[tokio::test]
async fn endpoints_over_http() {
    let (running, calls) = start(config(), "http").await;
    let client = http();
    let url = &running.url;
    assert_eq!(
        client
            .get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let v2 = client.get(format!("{url}/v2/")).send().await.unwrap();
    assert_eq!(v2.status(), 200);
    assert_eq!(
        v2.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );

    // Validate: allowed, denied (naming the image and why), warn (allowed with warnings).
    let good = pinned("good/app");
    let bad = pinned("bad/app");
    let warn = pinned("warn/app");
    let ask = |path: &'static str, body: Value| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let r = client
                .post(format!("{url}{path}"))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes()
                .await
                .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
                .unwrap()
        }
    };
    let answer = ask(
        "/validate",
        review("uid-1", "Deployment", deployment(&[&good])),
    )
    .await;
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], "uid-1");
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("warnings").is_none());

    let answer = ask(
        "/validate",
        review("uid-2", "Deployment", deployment(&[&good, &bad])),
    )
    .await;
    let response = &answer["response"];
    assert_eq!(response["uid"], "uid-2");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "containers[1] \"c1\" image {bad}: bad/app: no valid signature"
        )),
        "{message}"
    );
    assert!(!message.contains(&good), "{message}");

    let answer = ask(
        "/validate",
        review("uid-3", "Deployment", deployment(&[&warn])),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], true);
    let warnings = answer["response"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0]
        .as_str()
        .unwrap()
        .contains("warn/app: no valid signature"));

    // Mutate: already pinned images are left alone (no patch).
    let answer = ask(
        "/mutate",
        review("uid-4", "Deployment", deployment(&[&good])),
    )
    .await;
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("patch").is_none());

    // Same image three times: judged once (it was cached by uid-1 anyway: no new call).
    let before = calls.load(Ordering::SeqCst);
    ask("/validate", review("uid-5", "Pod", json!({"spec": {"containers": [
        {"name": "a", "image": good}, {"name": "b", "image": good}], "initContainers": [{"name": "c", "image": good}]}}))).await;
    assert_eq!(calls.load(Ordering::SeqCst), before);

    // Malformed JSON, not a review, oversized: 400, 400, 413.
    let r = client
        .post(format!("{url}/validate"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client
        .post(format!("{url}/validate"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&json!({"kind": "Pod"})).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client
        .post(format!("{url}/validate"))
        .body(vec![b' '; 5 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // Verify API.
    let r: Value = client
        .post(format!("{url}/v1/verify"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&json!({"image": good})).unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
        .unwrap();
    assert_eq!(r["allowed"], true);
    assert_eq!(r["digest"], Digest::sha256(b"good/app").to_string());
    assert_eq!(r["report"]["repository"], "good/app");
    let r: Value = client
        .post(format!("{url}/v1/verify"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&json!({"images": [good, bad]})).unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
        .unwrap();
    assert_eq!(r["admitted"], false);
    assert_eq!(r["results"][0]["allowed"], true);
    assert_eq!(r["results"][1]["allowed"], false);
    let r = client
        .post(format!("{url}/v1/verify"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&json!({"image": good, "images": []})).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r: Value = client
        .get(format!("{url}/v1/policy"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
        .unwrap();
    assert_eq!(r["hash"], "policy-1");
    let loaded = r["loaded_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(loaded, &time::format_description::well_known::Rfc3339).is_ok(),
        "{loaded}"
    );

    // Pushes are refused.
    for (method, path) in [
        ("POST", "/v2/good/app/blobs/uploads/"),
        ("PUT", "/v2/good/app/manifests/v1"),
        ("DELETE", "/v2/good/app/manifests/v1"),
    ] {
        let r = client
            .request(method.parse().unwrap(), format!("{url}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        let body: Value = r
            .bytes()
            .await
            .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
            .unwrap();
        assert_eq!(body["errors"][0]["code"], "UNSUPPORTED");
    }

    let metrics = client.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(
        metrics.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(
            "signet_gate_decisions_total{source=\"admission\",result=\"deny\",mode=\"enforce\"} 1"
        ),
        "{text}"
    );
    running.stop().await;
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl (install Debian's openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn self_signed(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
        "-days",
        "2",
        "-subj",
        &format!("/CN={name}"),
        "-addext",
        "subjectAltName=DNS:localhost",
        // A self-signed end-entity certificate: webpki refuses CA certificates as server certs.
        "-addext",
        "basicConstraints=critical,CA:FALSE",
    ]);
    (cert, key)
}

#[tokio::test]
async fn tls_certificate_is_reloaded_when_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let (cert1, key1) = self_signed(dir.path(), "one");
    let (cert2, key2) = self_signed(dir.path(), "two");
    let live_cert = dir.path().join("tls.crt");
    let live_key = dir.path().join("tls.key");
    std::fs::copy(&cert1, &live_cert).unwrap();
    std::fs::copy(&key1, &live_key).unwrap();
    let mut c = config();
    c.tls = Some(TlsConfig {
        cert: live_cert.clone(),
        key: live_key.clone(),
        client_ca: None,
    });
    let (running, _) = start(c, "https").await;
    let trusting = |cert: &std::path::Path| {
        let pem = std::fs::read(cert).unwrap();
        reqwest::Client::builder()
            .no_proxy()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap()
    };
    let healthz = format!("{}/healthz", running.url);
    assert_eq!(
        trusting(&cert1)
            .get(&healthz)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Refused for the certificate (not for a gate that is down): the client trusts only cert2.
    let untrusted = |err: reqwest::Error| {
        let chain = format!("{err:?}").to_lowercase();
        assert!(
            err.is_connect() && chain.contains("certificate"),
            "not a certificate refusal: {err:?}"
        );
    };
    untrusted(trusting(&cert2).get(&healthz).send().await.unwrap_err());

    // A half-written pair (key of another cert) is refused; the old one stays.
    std::fs::copy(&cert2, &live_cert).unwrap();
    assert_eq!(
        trusting(&cert1)
            .get(&healthz)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Completed: the new pair is served from the next handshake on.
    let tmp = dir.path().join("tls.key.tmp");
    std::fs::copy(&key2, &tmp).unwrap();
    std::fs::rename(&tmp, &live_key).unwrap();
    assert_eq!(
        trusting(&cert2)
            .get(&healthz)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    untrusted(trusting(&cert1).get(&healthz).send().await.unwrap_err());
    running.stop().await;

    // A gate whose certificate does not load does not start.
    let mut c = config();
    c.tls = Some(TlsConfig {
        cert: cert1,
        key: key2,
        client_ca: None,
    });
    let (j, _) = judge(0);
    let err = Gate::new(c, j).err().unwrap();
    assert!(matches!(err, GateError::Tls(_)), "{err}");
}

/// A judge loaded from a policy file: its hash is the file's content; "bad" does not load.
fn load_from(path: &std::path::Path) -> Result<TestJudge, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    if text.trim() == "bad" {
        return Err("policy does not parse".into());
    }
    let (mut j, _) = judge(0);
    j.hash = text.trim().to_string();
    Ok(j)
}

async fn wait_for_hash(gate: &Gate<TestJudge>, hash: &str) {
    for _ in 0..300 {
        if gate.policy_hash() == hash {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("policy hash is {}, not {hash}", gate.policy_hash());
}

#[tokio::test]
async fn policy_file_changes_are_picked_up_and_bad_policies_refused() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "p1").unwrap();
    let gate = Gate::new(config(), load_from(&policy).unwrap()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = {
        let gate = gate.clone();
        let policy = policy.clone();
        tokio::spawn(async move {
            gate.keep_policy_fresh(
                vec![policy.clone()],
                Duration::from_millis(20),
                || load_from(&policy),
                async {
                    let _ = rx.await;
                },
            )
            .await;
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    std::fs::write(&policy, "p2-longer").unwrap();
    wait_for_hash(&gate, "p2-longer").await;
    std::fs::write(&policy, "bad").unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        gate.policy_hash(),
        "p2-longer",
        "a policy that fails to load is refused"
    );
    std::fs::write(&policy, "p3").unwrap();
    wait_for_hash(&gate, "p3").await;
    assert!(gate
        .metrics_text()
        .contains("signet_gate_policy_reloads_total 2\n"));
    tx.send(()).unwrap();
    watcher.await.unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "h1").unwrap();
    let gate = Gate::new(config(), load_from(&policy).unwrap()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = {
        let gate = gate.clone();
        let policy = policy.clone();
        // Polling once an hour: only the signal can make it look.
        tokio::spawn(async move {
            gate.keep_policy_fresh(
                vec![policy.clone()],
                Duration::from_secs(3600),
                || load_from(&policy),
                async {
                    let _ = rx.await;
                },
            )
            .await;
        })
    };
    // Let the task install its SIGHUP handler before the signal is sent.
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(&policy, "h2").unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gate.policy_hash(), "h1");
    let status = Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for_hash(&gate, "h2").await;
    tx.send(()).unwrap();
    watcher.await.unwrap();
}

/// The gate runs a credential helper only when its configuration names one, reads no docker
/// config, takes no proxy from its environment, and refuses helper names that are paths.
#[test]
fn credential_helpers_and_proxies_only_from_the_gate_config() {
    let plain =
        GateConfig::from_yaml("listen: 127.0.0.1:0\nupstreams: [{url: 'https://reg.example'}]\n")
            .unwrap();
    let options = plain.registry_options().unwrap();
    assert!(!options.use_auth_files);
    assert!(options.credential_helpers.is_empty());
    assert_eq!(options.proxy, signet_oci::registry::ProxySettings::Direct);

    let named = GateConfig::from_yaml(
        "listen: 127.0.0.1:0\nupstreams:\n  - url: https://123.dkr.ecr.example\n    credential_helper: ecr-login\nnetwork:\n  proxy: {https: 'http://proxy.corp:3128', no_proxy: [.internal]}\n",
    )
    .unwrap();
    let options = named.registry_options().unwrap();
    assert_eq!(options.credential_helpers.len(), 1);
    assert_eq!(options.credential_helpers[0].0, "123.dkr.ecr.example");
    assert_eq!(
        options.credential_helpers[0].1.program(),
        "docker-credential-ecr-login"
    );
    assert_eq!(
        options.proxy,
        signet_oci::registry::ProxySettings::Explicit(signet_oci::registry::ProxyConfig {
            https: Some("http://proxy.corp:3128".into()),
            http: None,
            no_proxy: vec![".internal".into()],
        })
    );

    for bad in ["../../bin/sh", "/usr/bin/evil", "a/b", ".."] {
        let err = GateConfig::from_yaml(&format!(
            "listen: 127.0.0.1:0\nupstreams:\n  - url: https://reg.example\n    credential_helper: '{bad}'\n"
        ))
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("upstream https://reg.example: credential_helper:")
                && text.contains("refused"),
            "{bad}: {text}"
        );
    }
}

/// Continuous verification remembers what proxy and admission let in (not what the verify API
/// was asked about, not what was denied), bounded by `continuous.max_images` (the image seen
/// longest ago goes); `GET /v1/audit` lists them behind the API's bearer token.
#[tokio::test]
async fn continuous_remembers_admitted_images_bounded_and_audit_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "audit-token-0123456789\n").unwrap();
    let mut c = config();
    c.api.token_file = Some(token_file);
    c.continuous.max_images = 2;
    let (running, _) = start(c, "http").await;
    let gate = running.gate.clone();
    assert!(gate.decide(&pinned("good/a"), Source::Api).await.allowed);
    assert!(!gate
        .decide(&pinned("bad/x"), Source::Admission)
        .await
        .admitted());
    assert_eq!(
        gate.remembered(),
        0,
        "asked about and denied: not remembered"
    );
    assert!(
        gate.decide(&pinned("good/a"), Source::Admission)
            .await
            .allowed
    );
    assert!(gate
        .decide(&pinned("warn/b"), Source::Proxy)
        .await
        .admitted());
    assert_eq!(gate.remembered(), 2);

    let url = format!("{}/v1/audit", running.url);
    let refused = http().get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let audit: Value = serde_json::from_str(
        &http()
            .get(&url)
            .bearer_auth("audit-token-0123456789")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(audit["count"], 2, "{audit}");
    assert_eq!(audit["all_pass"], false, "{audit}");
    let verdicts: Vec<(&str, &str)> = audit["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["verdict"].as_str().unwrap(),
                i["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(verdicts, vec![("pass", "admission"), ("warn", "proxy")]);
    let metrics = gate.metrics_text();
    for line in [
        "signet_running_images{verdict=\"pass\"} 1",
        "signet_running_images{verdict=\"warn\"} 1",
        "signet_running_images{verdict=\"deny\"} 0",
        "signet_running_images{verdict=\"unknown\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }

    // Full: a third image pushes out the one seen longest ago (good/a, unless seen again).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(gate
        .decide(&pinned("warn/b"), Source::Proxy)
        .await
        .admitted());
    assert!(
        gate.decide(&pinned("good/c"), Source::Admission)
            .await
            .allowed
    );
    assert_eq!(gate.remembered(), 2);
    let audit = gate.audit_json();
    let names: Vec<&str> = audit["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.contains("/good/c@"))
            && names.iter().any(|n| n.contains("/warn/b@")),
        "{names:?}"
    );
    running.stop().await;
}

/// A cycle re-judges with the judge itself (the cache is bypassed): a judge that now fails
/// makes the verdict `unknown`, with the last one kept.
#[tokio::test]
async fn a_cycle_bypasses_the_cache_and_an_error_is_unknown() {
    let (j, calls) = judge(0);
    let gate = Gate::new(config(), j).unwrap();
    let image = pinned("good/app");
    assert!(gate.decide(&image, Source::Admission).await.allowed);
    assert!(gate.decide(&image, Source::Admission).await.cached);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let summary = gate.rejudge_all().await;
    assert_eq!((summary.judged, summary.changed), (1, 0));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the cycle asked the judge");

    // A judge that cannot judge any more (its registry went away): unknown, last kept.
    struct Failing;
    impl Judge for Failing {
        async fn judge(&self, _: Reference, _: Option<Digest>) -> Result<Judgement, GateError> {
            Err(GateError::Judge("registry unreachable".into()))
        }
        fn policy_hash(&self) -> String {
            "policy-1".into()
        }
    }
    let gate = Gate::new(config(), Failing).unwrap();
    gate.remember_admitted(
        pinned("good/app").parse().unwrap(),
        Digest::sha256(b"good/app"),
    );
    let summary = gate.rejudge_all().await;
    assert_eq!((summary.changed, summary.unknown), (1, 1));
    let entry = &gate.audit_json()["images"][0];
    assert_eq!(entry["verdict"], "unknown", "{entry}");
    assert_eq!(entry["last_known"]["verdict"], "pass", "{entry}");
    assert!(
        entry["message"]
            .as_str()
            .unwrap()
            .contains("could not check: registry unreachable"),
        "{entry}"
    );
    // Still down: no change, nothing new to say.
    assert_eq!(gate.rejudge_all().await.changed, 0);
}

/// Messages go into headers, bodies and log lines on one line and cut to a length, whichever
/// path (the copy of an already clean message, or the rewrite) makes them.
#[test]
fn one_line_replaces_controls_and_cuts_at_characters() {
    use crate::one_line;
    assert_eq!(
        one_line("denied by scope: [no-signature]", 100),
        "denied by scope: [no-signature]"
    );
    assert_eq!(one_line("a\nb\tc\u{1b}[31m", 100), "a b c [31m");
    assert_eq!(one_line("abcdef", 3), "abc…");
    assert_eq!(one_line("abc", 3), "abc");
    // Six characters in twelve bytes: within a limit of six characters, not cut.
    assert_eq!(one_line("éééééé", 6), "éééééé");
    assert_eq!(one_line("ééééééé", 6), "éééééé…");
    assert_eq!(one_line("", 0), "");
    assert_eq!(one_line("x", 0), "…");
}
