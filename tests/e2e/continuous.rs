//! Continuous verification end to end: the gate with the real engine (`PolicyJudge`) in front of
//! a real `docker-registry`, images signed by `signet sign` and admitted through admission, then
//! the world changes — a key leaves the policy, a key's `notAfter` passes (injected clock), the
//! signature manifest is deleted, a scope goes from warn to enforce, the registry goes down — and
//! one re-judgement cycle must show it: the verdict in `GET /v1/audit`, the
//! `signet_running_images` / `signet_running_image_reasons` gauges, and one webhook POST per
//! change, recorded by a loopback listener; an image that still passes sends nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde_json::Value;
use signet_gate::judge::PolicyJudge;
use signet_gate::{Clock, Gate, GateConfig, ManualClock, Source, WebhookConfig};
use signet_oci::{Digest, RegistryClient};

use crate::support::{
    self, code, keypair, push_sample_image, rfc3339, run, s, whole_second_now, Containerd,
    DockerEngine, TestRegistry,
};

/// A loopback webhook receiver: records each request body; answers 200, or never (`hang`).
pub(crate) struct Webhook {
    pub(crate) url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    pub(crate) fn start(hang: bool) -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if hang {
                    // Keep the connection open, say nothing.
                    held.push(stream);
                    continue;
                }
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                let body = loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break None,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map(|v| v.trim().parse().unwrap())
                        .unwrap_or(0);
                    if data.len() >= end + 4 + length {
                        break Some(data[end + 4..end + 4 + length].to_vec());
                    }
                };
                if let Some(body) = body {
                    seen.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Webhook { url, bodies }
    }

    pub(crate) fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// Wait (up to 10 s) until `n` bodies have come.
    pub(crate) fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.bodies().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.bodies()
    }
}

/// A registry with `app:v1` signed by key `release` and `keep:v1` signed by key `other`, a
/// gate (injected clock, webhook) whose policy file the test rewrites with [`Setup::policy`].
pub(crate) struct Setup {
    reg: Option<TestRegistry>,
    pub(crate) host: String,
    dir: tempfile::TempDir,
    pub(crate) policy: PathBuf,
    pub(crate) release_pub: PathBuf,
    pub(crate) other_pub: PathBuf,
    app: Digest,
    keep: Digest,
    pub(crate) clock: ManualClock,
    pub(crate) gate: Gate<PolicyJudge>,
    client: RegistryClient,
}

pub(crate) fn setup(webhook: &str, edit: impl FnOnce(&mut GateConfig)) -> Setup {
    let reg = TestRegistry::start();
    let host = reg.host();
    let app = push_sample_image(&reg, "app:v1");
    let keep = push_sample_image(&reg, "keep:v1");
    let dir = tempfile::tempdir().unwrap();
    let (release, release_pub) = keypair(dir.path(), "release");
    let (other, other_pub) = keypair(dir.path(), "other");
    for (key, image) in [(&release, "app:v1"), (&other, "keep:v1")] {
        let image = format!("{host}/{image}");
        assert_eq!(code(&run(&["sign", "--key", s(key), &image])), 0);
    }
    let policy = dir.path().join("policy.yaml");
    let (start, _) = whole_second_now();
    let clock = ManualClock::new(start);
    let mut config = GateConfig::simple(
        policy.clone(),
        "127.0.0.1:0".parse().unwrap(),
        &format!("http://{host}"),
    )
    .unwrap();
    config.timeouts.upstream_seconds = 3;
    config.timeouts.judge_seconds = 10;
    config.continuous.interval_seconds = 0;
    config.continuous.webhook = Some(WebhookConfig {
        url: webhook.to_string(),
        timeout_seconds: 2,
        retries: 2,
        queue: 100,
    });
    edit(&mut config);
    let client = RegistryClient::new(config.registry_options().unwrap()).unwrap();
    std::fs::write(
        &policy,
        policy_text(&host, &release_pub, &other_pub, "", "enforce"),
    )
    .unwrap();
    let file = signet_verifier::enforce::load_policy_file(&policy).unwrap();
    let judge = PolicyJudge::new(file, client.clone()).with_clock(Arc::new(clock.clone()));
    let gate = Gate::with_clock(config, judge, Arc::new(clock.clone())).unwrap();
    Setup {
        reg: Some(reg),
        host,
        policy,
        release_pub,
        other_pub,
        app,
        keep,
        clock,
        gate,
        client,
        dir,
    }
}

/// The policy: `app` trusts `release` (with `release_extra` in its key entry), `keep` trusts
/// `other`; `app`'s scope in `app_mode`.
fn policy_text(
    host: &str,
    release_pub: &Path,
    other_pub: &Path,
    release_extra: &str,
    app_mode: &str,
) -> String {
    format!(
        "keys:\n  release: {{path: {}{release_extra}}}\n  other: {{path: {}}}\nscopes:\n  \"{host}/app\":\n    mode: {app_mode}\n    signed: {{keys: [release]}}\n  \"{host}/keep\":\n    signed: {{keys: [other]}}\n",
        s(release_pub),
        s(other_pub),
    )
}

impl Setup {
    /// Rewrite the policy file (see [`policy_text`]).
    fn write_policy(&self, release_extra: &str, app_mode: &str) {
        let text = policy_text(
            &self.host,
            &self.release_pub,
            &self.other_pub,
            release_extra,
            app_mode,
        );
        std::fs::write(&self.policy, text).unwrap();
    }

    /// A judge for the policy file as it is now.
    pub(crate) fn judge(&self) -> PolicyJudge {
        let file = signet_verifier::enforce::load_policy_file(&self.policy).unwrap();
        PolicyJudge::new(file, self.client.clone()).with_clock(Arc::new(self.clock.clone()))
    }

    pub(crate) fn app(&self) -> String {
        format!("{}/app@{}", self.host, self.app)
    }

    pub(crate) fn keep(&self) -> String {
        format!("{}/keep@{}", self.host, self.keep)
    }

    /// Admit both images through admission (so the gate remembers them).
    pub(crate) fn admit_both(&self, rt: &tokio::runtime::Runtime) {
        for image in [self.app(), self.keep()] {
            let d = rt.block_on(self.gate.decide(&image, Source::Admission));
            assert!(d.admitted(), "{d:?}");
        }
        assert_eq!(self.gate.remembered(), 2);
    }

    /// The audit entry for `image` (as asked, by digest).
    pub(crate) fn audit_entry(&self, image: &str) -> Value {
        let audit = self.gate_audit();
        audit["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["image"] == image)
            .unwrap_or_else(|| panic!("{image} not in {audit}"))
            .clone()
    }

    fn gate_audit(&self) -> Value {
        // Through the real endpoint: served on a free port for the length of one request.
        let rt = support::runtime();
        rt.block_on(async {
            let bound = self.gate.bind().await.unwrap();
            let addr = bound.local_addr();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(bound.run(async {
                let _ = rx.await;
            }));
            let answer: Value = reqwest::get(format!("http://{addr}/v1/audit"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let _ = tx.send(());
            let _ = server.await;
            answer
        })
    }

    /// The value of the metric sample `line` (name and labels), if present.
    pub(crate) fn metric(&self, sample: &str) -> Option<f64> {
        self.gate
            .metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The one change the webhook must have received: about `image`, from `from` to `to`, naming
/// `reason`.
pub(crate) fn assert_one_change(bodies: &[Value], image: &str, from: &str, to: &str, reason: &str) {
    assert_eq!(bodies.len(), 1, "exactly one notification: {bodies:#?}");
    let change = &bodies[0];
    assert_eq!(change["image"], image, "{change}");
    assert_eq!(change["from"], from, "{change}");
    assert_eq!(change["to"], to, "{change}");
    assert!(
        change["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == reason),
        "{change}"
    );
}

#[test]
fn a_key_removed_from_the_policy_flips_the_verdict_at_once_on_reload() {
    let hook = Webhook::start(false);
    let setup = setup(&hook.url, |_| {});
    let rt = support::runtime();
    setup.admit_both(&rt);
    assert_eq!(
        setup.metric("signet_running_images{verdict=\"pass\"}"),
        Some(2.0)
    );

    // The loop runs with no schedule (interval 0): only the reload can wake it.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let judging = setup.gate.clone();
    let task = rt.spawn(async move {
        judging
            .keep_judging(async {
                let _ = stop_rx.await;
            })
            .await;
    });
    // `release` leaves the policy: app's scope trusts `other` only.
    std::fs::write(
        &setup.policy,
        format!(
            "keys:\n  other: {{path: {}}}\nscopes:\n  \"{host}/app\":\n    signed: {{keys: [other]}}\n  \"{host}/keep\":\n    signed: {{keys: [other]}}\n",
            s(&setup.other_pub),
            host = setup.host
        ),
    )
    .unwrap();
    setup.gate.reload(setup.judge());
    let bodies = hook.wait_for(1);
    assert_one_change(&bodies, &setup.app(), "pass", "deny", "no-valid-signature");
    let _ = stop_tx.send(());
    rt.block_on(task).unwrap();

    let app = setup.audit_entry(&setup.app());
    assert_eq!(app["verdict"], "deny", "{app}");
    assert_eq!(app["source"], "admission", "{app}");
    assert!(
        app["message"]
            .as_str()
            .unwrap()
            .contains("[no-valid-signature]"),
        "{app}"
    );
    assert_eq!(app["policy_hash"], setup.gate.policy_hash(), "{app}");
    assert_eq!(setup.audit_entry(&setup.keep())["verdict"], "pass");
    assert_eq!(
        setup.metric("signet_running_images{verdict=\"pass\"}"),
        Some(1.0)
    );
    assert_eq!(
        setup.metric("signet_running_images{verdict=\"deny\"}"),
        Some(1.0)
    );
    assert_eq!(
        setup.metric("signet_running_image_reasons{reason=\"no-valid-signature\"}"),
        Some(1.0)
    );
    assert_eq!(
        setup.metric("signet_gate_notifications_total{outcome=\"sent\"}"),
        Some(1.0)
    );
    // A second cycle with nothing changed sends nothing more.
    let again = rt.block_on(setup.gate.rejudge_all());
    assert_eq!((again.judged, again.changed), (2, 0));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(hook.bodies().len(), 1);
}

#[test]
fn a_keys_not_after_passing_flips_the_verdict_within_one_cycle() {
    let hook = Webhook::start(false);
    let setup = setup(&hook.url, |_| {});
    let now = setup
        .clock
        .wall()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    setup.write_policy(&format!(", notAfter: \"{}\"", rfc3339(now + 30)), "enforce");
    setup.gate.reload(setup.judge());
    let rt = support::runtime();
    setup.admit_both(&rt);

    let first = rt.block_on(setup.gate.rejudge_all());
    assert_eq!((first.judged, first.changed), (2, 0), "still valid");
    setup.clock.advance(Duration::from_secs(31));
    let cycle = rt.block_on(setup.gate.rejudge_all());
    assert_eq!((cycle.judged, cycle.changed, cycle.unknown), (2, 1, 0));
    let bodies = hook.wait_for(1);
    assert_one_change(&bodies, &setup.app(), "pass", "deny", "key-expired");
    let app = setup.audit_entry(&setup.app());
    assert_eq!(app["verdict"], "deny", "{app}");
    assert_eq!(app["changed_at"], rfc3339(now + 31), "{app}");
    assert_eq!(
        setup.metric("signet_running_image_reasons{reason=\"key-expired\"}"),
        Some(1.0)
    );
    // The re-judgement refreshed the verdict cache: admission now denies too.
    let d = rt.block_on(setup.gate.decide(&setup.app(), Source::Admission));
    assert!(
        !d.admitted() && d.message.contains("[key-expired]"),
        "{d:?}"
    );
}

#[test]
fn a_deleted_signature_manifest_flips_the_verdict_within_one_cycle() {
    let hook = Webhook::start(false);
    let setup = setup(&hook.url, |c| c.cache.ttl_seconds = 3600);
    let rt = support::runtime();
    setup.admit_both(&rt);
    let reg = setup.reg.as_ref().unwrap();
    let client = support::client();
    rt.block_on(async {
        let sig = reg.reference(&format!("app:{}", setup.app.signature_tag()));
        let fetched = client.get_manifest(&sig).await.unwrap();
        client
            .delete_manifest(&sig.with_digest(fetched.digest))
            .await
            .unwrap();
    });
    // The verdict cache (an hour) still holds the allow; the cycle bypasses it.
    let cached = rt.block_on(setup.gate.decide(&setup.app(), Source::Api));
    assert!(cached.allowed && cached.cached, "{cached:?}");
    let cycle = rt.block_on(setup.gate.rejudge_all());
    assert_eq!((cycle.judged, cycle.changed), (2, 1));
    let bodies = hook.wait_for(1);
    assert_one_change(&bodies, &setup.app(), "pass", "deny", "no-valid-signature");
    assert_eq!(setup.audit_entry(&setup.app())["verdict"], "deny");
    assert_eq!(setup.audit_entry(&setup.keep())["verdict"], "pass");
    assert_eq!(
        setup.metric("signet_running_images{verdict=\"deny\"}"),
        Some(1.0)
    );
    let after = rt.block_on(setup.gate.decide(&setup.app(), Source::Api));
    assert!(!after.allowed, "the stale allow was replaced: {after:?}");
}

#[test]
fn a_scope_switched_from_warn_to_enforce_flips_the_verdict_within_one_cycle() {
    let hook = Webhook::start(false);
    let setup = setup(&hook.url, |_| {});
    // app's scope trusts `other`, which did not sign app: denied, but in warn mode admitted.
    let warn_policy = |mode: &str| {
        format!(
            "keys:\n  other: {{path: {}}}\nscopes:\n  \"{host}/app\":\n    mode: {mode}\n    signed: {{keys: [other]}}\n  \"{host}/keep\":\n    signed: {{keys: [other]}}\n",
            s(&setup.other_pub),
            host = setup.host
        )
    };
    std::fs::write(&setup.policy, warn_policy("warn")).unwrap();
    setup.gate.reload(setup.judge());
    let rt = support::runtime();
    setup.admit_both(&rt);
    assert_eq!(setup.audit_entry(&setup.app())["verdict"], "warn");
    assert_eq!(
        setup.metric("signet_running_images{verdict=\"warn\"}"),
        Some(1.0)
    );

    std::fs::write(&setup.policy, warn_policy("enforce")).unwrap();
    setup.gate.reload(setup.judge());
    let cycle = rt.block_on(setup.gate.rejudge_all());
    assert_eq!((cycle.judged, cycle.changed), (2, 1));
    let bodies = hook.wait_for(1);
    assert_one_change(&bodies, &setup.app(), "warn", "deny", "no-valid-signature");
    assert_eq!(bodies[0]["mode"], "enforce");
    let app = setup.audit_entry(&setup.app());
    assert_eq!(
        (app["verdict"].as_str(), app["mode"].as_str()),
        (Some("deny"), Some("enforce"))
    );
    assert_eq!(
        setup.metric("signet_running_images{verdict=\"warn\"}"),
        Some(0.0)
    );
    assert_eq!(
        setup.metric("signet_running_images{verdict=\"deny\"}"),
        Some(1.0)
    );
}

#[test]
fn a_registry_down_makes_the_verdict_unknown_and_keeps_the_last_one() {
    let hook = Webhook::start(false);
    let mut setup = setup(&hook.url, |_| {});
    let rt = support::runtime();
    setup.admit_both(&rt);
    drop(setup.reg.take()); // the registry stops
    let cycle = rt.block_on(setup.gate.rejudge_all());
    assert_eq!((cycle.judged, cycle.changed, cycle.unknown), (2, 2, 2));
    for image in [setup.app(), setup.keep()] {
        let entry = setup.audit_entry(&image);
        assert_eq!(entry["verdict"], "unknown", "never pass: {entry}");
        assert_eq!(
            entry["reasons"],
            serde_json::json!(["could-not-check"]),
            "{entry}"
        );
        assert!(
            entry["message"]
                .as_str()
                .unwrap()
                .starts_with("could not check:"),
            "{entry}"
        );
        assert_eq!(
            entry["last_known"]["verdict"], "pass",
            "kept and shown: {entry}"
        );
    }
    assert_eq!(
        setup.metric("signet_running_images{verdict=\"unknown\"}"),
        Some(2.0)
    );
    assert_eq!(
        setup.metric("signet_running_images{verdict=\"pass\"}"),
        Some(0.0)
    );
    assert_eq!(
        setup.metric("signet_running_image_reasons{reason=\"could-not-check\"}"),
        Some(2.0)
    );
    let bodies = hook.wait_for(2);
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    for b in &bodies {
        assert_eq!(
            (b["from"].as_str(), b["to"].as_str()),
            (Some("pass"), Some("unknown"))
        );
        assert_eq!(b["last_known"], "pass", "{b}");
    }
    let _ = setup.dir();
}

#[test]
fn a_hanging_notification_endpoint_blocks_nothing() {
    let hook = Webhook::start(true);
    let setup = setup(&hook.url, |c| {
        let w = c.continuous.webhook.as_mut().unwrap();
        w.timeout_seconds = 1;
        w.retries = 1;
        w.queue = 1;
    });
    let rt = support::runtime();
    setup.admit_both(&rt);
    // Both images flip (every key gone): two changes for a worker stuck on a silent endpoint
    // and a queue of one.
    std::fs::write(
        &setup.policy,
        "default:\n  reject: nothing is trusted now\n",
    )
    .unwrap();
    setup.gate.reload(setup.judge());
    let started = Instant::now();
    let cycle = rt.block_on(setup.gate.rejudge_all());
    assert_eq!(cycle.changed, 2);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A third and fourth change (reload back) while the worker still hangs: some are dropped.
    setup.write_policy("", "enforce");
    setup.gate.reload(setup.judge());
    let started = Instant::now();
    let cycle = rt.block_on(setup.gate.rejudge_all());
    assert_eq!(cycle.changed, 2);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        setup
            .metric("signet_gate_notifications_total{outcome=\"dropped\"}")
            .unwrap_or(0.0)
            >= 1.0,
        "{}",
        setup.gate.metrics_text()
    );
    // The gate still answers, and says what it knows.
    let audit = setup.gate_audit();
    assert_eq!(audit["count"], 2, "{audit}");
    // Each attempt times out (1 s, one retry after 1 s): the first change fails, counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    while setup
        .metric("signet_gate_notifications_total{outcome=\"failed\"}")
        .is_none()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        setup
            .metric("signet_gate_notifications_total{outcome=\"failed\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
    drop(rt);
}

// ---- `signet audit` against real engines, and its faults ----

/// Whether the engines can run here (root); under CI their absence is a failure.
fn as_root(test: &str) -> bool {
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    if uid.stdout == b"0\n" {
        return true;
    }
    let ci = std::env::var("CI")
        .is_ok_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "" | "0" | "false"));
    assert!(!ci, "{test}: container engines need root, and CI is set");
    eprintln!("{test}: SKIPPED, container engines need root (under CI this fails)");
    false
}

fn ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A registry with `team/signed:v1` (signed) and `team/unsigned:v1`, and a policy trusting
/// the key for `team/`.
struct AuditLab {
    reg: TestRegistry,
    dir: tempfile::TempDir,
    policy: PathBuf,
}

fn audit_lab() -> AuditLab {
    let reg = TestRegistry::start();
    push_sample_image(&reg, "team/signed:v1");
    push_sample_image(&reg, "team/unsigned:v1");
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "release");
    let signed = format!("{}/team/signed:v1", reg.host());
    assert_eq!(code(&run(&["sign", "--key", s(&key), &signed])), 0);
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "keys:\n  release: {{path: {}}}\nscopes:\n  \"{}/team\":\n    signed: {{keys: [release]}}\n",
            s(&public),
            reg.host()
        ),
    )
    .unwrap();
    AuditLab { reg, dir, policy }
}

/// `signet audit --policy … --output json ARGS`: exit code and the report.
fn audit_json(lab: &AuditLab, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["audit", "--policy", s(&lab.policy), "--output", "json"];
    all.extend_from_slice(args);
    let out = run(&all);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code(&out), report)
}

/// The row whose `name` ends with `suffix`: its verdict and reasons.
fn row(report: &Value, suffix: &str) -> (String, Vec<String>) {
    let r = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"].as_str().unwrap().ends_with(suffix))
        .unwrap_or_else(|| panic!("no {suffix} in {report:#}"));
    (
        r["verdict"].as_str().unwrap().to_string(),
        r["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect(),
    )
}

#[test]
fn audit_judges_what_docker_runs_and_stores() {
    if !as_root("audit_judges_what_docker_runs_and_stores") {
        return;
    }
    let lab = audit_lab();
    let engine = DockerEngine::start("signet-audit");
    let docker = |args: &[&str]| engine.docker(args);
    let host = lab.reg.host();
    for image in ["team/signed:v1", "team/unsigned:v1"] {
        ok(
            &docker(&["pull", &format!("{host}/{image}")]),
            "docker pull",
        );
    }
    ok(
        &docker(&[
            "create",
            "--name",
            "good",
            &format!("{host}/team/signed:v1"),
            "x",
        ]),
        "create",
    );
    // Built locally: no registry digest.
    let tar = lab.dir.path().join("rootfs.tar");
    std::fs::write(&tar, support::tar_of("hello", b"hi")).unwrap();
    ok(
        &docker(&["import", s(&tar), "local/built:v1"]),
        "docker import",
    );
    let socket = engine.socket();

    // Only the signed image in a container: everything passes, exit 0.
    let (code, report) = audit_json(&lab, &["--docker", s(&socket)]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["images"].as_array().unwrap().len(), 1, "{report:#}");
    assert_eq!(row(&report, "team/signed:v1").0, "pass");
    assert_eq!(
        report["images"][0]["containers"],
        serde_json::json!(["good"])
    );

    ok(
        &docker(&[
            "create",
            "--name",
            "bad",
            &format!("{host}/team/unsigned:v1"),
            "x",
        ]),
        "create",
    );
    ok(
        &docker(&["create", "--name", "local", "local/built:v1", "x"]),
        "create",
    );
    let (code, report) = audit_json(&lab, &["--docker", s(&socket)]);
    assert_eq!(code, 13, "{report:#}");
    assert_eq!(row(&report, "team/signed:v1").0, "pass");
    assert_eq!(
        row(&report, "team/unsigned:v1"),
        ("deny".to_string(), vec!["no-valid-signature".to_string()])
    );
    assert_eq!(
        row(&report, "local/built:v1"),
        (
            "unverifiable".to_string(),
            vec!["no-registry-digest".to_string()]
        )
    );
    // The digest judged is the registry's manifest digest.
    let signed_digest = support::runtime()
        .block_on(support::client().get_manifest(&lab.reg.reference("team/signed:v1")))
        .unwrap()
        .digest;
    let signed_row = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"].as_str().unwrap().ends_with("team/signed:v1"))
        .unwrap();
    assert_eq!(signed_row["digest"], signed_digest.to_string());

    // --stored lists what is stored, used or not, the same way; the text table says it too.
    let (code, report) = audit_json(&lab, &["--docker", s(&socket), "--stored"]);
    assert_eq!(code, 13);
    assert_eq!(report["images"].as_array().unwrap().len(), 3, "{report:#}");
    let out = run(&["audit", "--policy", s(&lab.policy), "--docker", s(&socket)]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("3 images: 1 pass, 0 warn, 1 deny, 0 unknown, 1 unverifiable"),
        "{table}"
    );
}

#[test]
fn audit_judges_what_containerd_and_podman_hold() {
    if !as_root("audit_judges_what_containerd_and_podman_hold") {
        return;
    }
    let lab = audit_lab();
    let host = lab.reg.host();
    let containerd = Containerd::start();
    let socket = containerd.socket();
    let ctr = |args: &[&str]| containerd.ctr(args);
    for (ns, image, name) in [
        ("good", "team/signed:v1", "c-good"),
        ("mixed", "team/signed:v1", "c-signed"),
        ("mixed", "team/unsigned:v1", "c-unsigned"),
    ] {
        let reference = format!("{host}/{image}");
        ok(
            &ctr(&[
                "-n",
                ns,
                "images",
                "pull",
                "--plain-http",
                "--snapshotter",
                "native",
                &reference,
            ]),
            "ctr pull",
        );
        ok(
            &ctr(&[
                "-n",
                ns,
                "containers",
                "create",
                "--snapshotter",
                "native",
                &reference,
                name,
            ]),
            "ctr create",
        );
    }
    let (code, report) = audit_json(&lab, &["--containerd", s(&socket), "--namespace", "good"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(row(&report, "team/signed:v1").0, "pass");
    assert_eq!(report["images"][0]["namespace"], "good");
    let (code, report) = audit_json(&lab, &["--containerd", s(&socket), "--namespace", "mixed"]);
    assert_eq!(code, 13, "{report:#}");
    assert_eq!(row(&report, "team/signed:v1").0, "pass");
    assert_eq!(
        row(&report, "team/unsigned:v1"),
        ("deny".to_string(), vec!["no-valid-signature".to_string()])
    );
    // Every namespace when none is named.
    let (_, report) = audit_json(&lab, &["--containerd", s(&socket)]);
    assert_eq!(report["images"].as_array().unwrap().len(), 3, "{report:#}");

    // podman: its API service over a socket of the test's own, images stored.
    let podman_dir = tempfile::tempdir().unwrap();
    let podman = |args: &[&str]| {
        let mut cmd = std::process::Command::new("podman");
        cmd.arg("--root")
            .arg(podman_dir.path().join("root"))
            .arg("--runroot")
            .arg(podman_dir.path().join("run"))
            .args(["--storage-driver", "vfs", "--events-backend", "file"])
            .args(args);
        cmd
    };
    for image in ["team/signed:v1", "team/unsigned:v1"] {
        let out = podman(&["pull", "--tls-verify=false", &format!("{host}/{image}")])
            .output()
            .unwrap();
        ok(&out, "podman pull");
    }
    let podman_socket = podman_dir.path().join("podman.sock");
    let mut service = podman(&[
        "system",
        "service",
        "--time=0",
        &format!("unix://{}", podman_socket.display()),
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !podman_socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, report) = audit_json(&lab, &["--podman", s(&podman_socket), "--stored"]);
    let _ = service.kill();
    let _ = service.wait();
    assert_eq!(code, 13, "{report:#}");
    assert_eq!(row(&report, "team/signed:v1").0, "pass");
    assert_eq!(
        row(&report, "team/unsigned:v1"),
        ("deny".to_string(), vec!["no-valid-signature".to_string()])
    );
}

/// A unix socket that answers every connection with `answer` and closes.
fn fake_engine(dir: &Path, answer: &'static [u8]) -> PathBuf {
    let path = dir.join("engine.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(answer);
        }
    });
    path
}

#[test]
fn audit_faults_are_reported_not_passed() {
    let lab = audit_lab();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing.sock");
    let audit = |args: &[&str]| {
        let mut all = vec!["audit", "--policy", s(&lab.policy)];
        all.extend_from_slice(args);
        let out = run(&all);
        (
            code(&out),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (c, err) = audit(&["--docker", s(&missing)]);
    assert_eq!(c, 2, "{err}");
    assert!(
        err.contains("docker at") && err.contains("cannot connect"),
        "{err}"
    );
    let (c, err) = audit(&["--containerd", s(&missing)]);
    assert_eq!(c, 2, "{err}");
    assert!(
        err.contains("containerd at") && err.contains("cannot use the socket"),
        "{err}"
    );

    let sub = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        d
    };
    let not_http = fake_engine(&sub("a"), b"\x00\x01\x02 garbage\r\n\r\n");
    let (c, err) = audit(&["--podman", s(&not_http)]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("not an HTTP answer"), "{err}");
    let not_json = fake_engine(
        &sub("b"),
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n<html>hi!",
    );
    let (c, err) = audit(&["--docker", s(&not_json)]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("not the answer expected (not JSON"), "{err}");
    let wrong_shape = fake_engine(
        &sub("c"),
        b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n[{\"Id\": \"abc\"}]\n",
    );
    let (c, err) = audit(&["--docker", s(&wrong_shape)]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("unexpected JSON"), "{err}");
    // No engine named.
    let (c, err) = audit(&[]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("say which engines"), "{err}");
}

#[test]
fn audit_with_the_registry_down_is_unknown_not_pass() {
    let lab = audit_lab();
    let dir = tempfile::tempdir().unwrap();
    let digest = support::runtime()
        .block_on(support::client().get_manifest(&lab.reg.reference("team/signed:v1")))
        .unwrap()
        .digest;
    // An engine that reports one container of the signed image (canned answers, as Docker's).
    let path = dir.path().join("docker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let host = lab.reg.host();
    let containers = format!(
        "[{{\"Id\":\"c1\",\"Names\":[\"/web\"],\"Image\":\"{host}/team/signed:v1\",\"ImageID\":\"sha256:{}\"}}]",
        "cd".repeat(32)
    );
    let image = format!(
        "{{\"Id\":\"sha256:{}\",\"RepoTags\":[\"{host}/team/signed:v1\"],\"RepoDigests\":[\"{host}/team/signed@{digest}\"]}}",
        "cd".repeat(32)
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let body = if head.starts_with("GET /containers/json") {
                &containers
            } else {
                &image
            };
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    let (code, report) = audit_json(&lab, &["--docker", s(&path)]);
    assert_eq!(code, 0, "the registry is up: {report:#}");
    assert_eq!(row(&report, "team/signed:v1").0, "pass");
    let AuditLab {
        reg,
        dir: keep,
        policy,
    } = lab;
    drop(reg);
    let lab = AuditLab {
        reg: TestRegistry::start(),
        dir: keep,
        policy,
    };
    let (code, report) = audit_json(&lab, &["--docker", s(&path)]);
    assert_eq!(code, 13, "{report:#}");
    let (verdict, reasons) = row(&report, "team/signed:v1");
    assert_eq!(
        (verdict.as_str(), reasons),
        ("unknown", vec!["could-not-check".to_string()])
    );
}

/// A loopback TCP relay in front of `upstream` that records each request line (`GET /v2/…`)
/// and each answer's status, in order.
struct Relay {
    host: String,
    requests: Arc<Mutex<Vec<String>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
}

impl Relay {
    fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let (req, st) = (requests.clone(), statuses.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                let (req, st) = (req.clone(), st.clone());
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    pump(client, server, |text| {
                        for line in text.split("\r\n") {
                            let method = line.split(' ').next().unwrap_or_default();
                            if matches!(
                                method,
                                "GET" | "HEAD" | "PUT" | "POST" | "PATCH" | "DELETE"
                            ) && line.ends_with(" HTTP/1.1")
                            {
                                req.lock()
                                    .unwrap()
                                    .push(line.trim_end_matches(" HTTP/1.1").to_string());
                            }
                        }
                    })
                });
                std::thread::spawn(move || {
                    pump(s2, c2, |text| {
                        for part in text.split("HTTP/1.1 ").skip(1) {
                            if let Ok(code) = part.get(..3).unwrap_or_default().parse() {
                                st.lock().unwrap().push(code);
                            }
                        }
                    })
                });
            }
        });
        Relay {
            host,
            requests,
            statuses,
        }
    }

    /// Requests and statuses recorded so far, then forget them.
    fn take(&self) -> (Vec<String>, Vec<u16>) {
        std::thread::sleep(Duration::from_millis(100));
        (
            std::mem::take(&mut *self.requests.lock().unwrap()),
            std::mem::take(&mut *self.statuses.lock().unwrap()),
        )
    }
}

/// Copy `from` → `to`, showing each chunk (as text) to `see`.
fn pump(mut from: std::net::TcpStream, mut to: std::net::TcpStream, see: impl Fn(&str)) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                see(&String::from_utf8_lossy(&buf[..n]));
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

#[test]
fn re_judging_an_unchanged_upstream_asks_only_whether_it_changed() {
    let reg = TestRegistry::start();
    let relay = Relay::start(reg.host());
    let host = relay.host.clone();
    let direct = push_sample_image(&reg, "app:v1");
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "release");
    assert_eq!(
        code(&run(&["sign", "--key", s(&key), &format!("{host}/app:v1")])),
        0
    );
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!("keys:\n  release: {{path: {}}}\nscopes:\n  \"{host}/app\":\n    signed: {{keys: [release]}}\n", s(&public)),
    )
    .unwrap();
    let config = GateConfig::simple(
        policy.clone(),
        "127.0.0.1:0".parse().unwrap(),
        &format!("http://{host}"),
    )
    .unwrap();
    let client = RegistryClient::new(config.registry_options().unwrap())
        .unwrap()
        .with_revalidation(100);
    let judge = PolicyJudge::new(
        signet_verifier::enforce::load_policy_file(&policy).unwrap(),
        client,
    );
    let gate = Gate::new(config, judge).unwrap();
    let rt = support::runtime();
    let image = format!("{host}/app@{direct}");
    assert!(rt.block_on(gate.decide(&image, Source::Admission)).allowed);
    let (first, _) = relay.take();
    assert!(
        first
            .iter()
            .any(|r| r.starts_with("GET ") && r.contains("/blobs/")),
        "the first judgement fetches the payload: {first:?}"
    );

    // Unchanged upstream: a HEAD of the manifest by digest, a conditional GET of the
    // signature tag answered 304, and the referrers tag index (404: still no bundle; the scope
    // counts bundle signatures, so a bundle added since must be seen). The referrers API is not
    // asked again: the first judgement's 404 is remembered. No blob.
    let cycle = rt.block_on(gate.rejudge_all());
    assert_eq!((cycle.judged, cycle.changed), (1, 0));
    let (requests, statuses) = relay.take();
    let sig = format!("/v2/app/manifests/{}", direct.signature_tag());
    assert_eq!(
        requests,
        vec![
            format!("HEAD /v2/app/manifests/{direct}"),
            format!("GET {sig}"),
            format!("GET /v2/app/manifests/{}", direct.tag_form()),
        ],
        "{statuses:?}"
    );
    assert_eq!(statuses, vec![200, 304, 404]);

    // The signature manifest deleted: the conditional GET finds nothing, the verdict flips.
    rt.block_on(async {
        let c = support::client();
        let sig = reg.reference(&format!("app:{}", direct.signature_tag()));
        let d = c.get_manifest(&sig).await.unwrap().digest;
        c.delete_manifest(&sig.with_digest(d)).await.unwrap();
    });
    let cycle = rt.block_on(gate.rejudge_all());
    assert_eq!((cycle.judged, cycle.changed), (1, 1));
    let audit = gate.metrics_text();
    assert!(
        audit.contains("signet_running_images{verdict=\"deny\"} 1"),
        "{audit}"
    );
}

/// `signet serve` itself: what admission lets in is re-judged when the policy file changes
/// (the reload wakes the loop), and the change reaches `/v1/audit`, `/metrics` and the webhook.
#[test]
fn signet_serve_re_judges_on_a_policy_file_change() {
    let hook = Webhook::start(false);
    let reg = TestRegistry::start();
    let digest = push_sample_image(&reg, "app:v1");
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "release");
    let host = reg.host();
    assert_eq!(
        code(&run(&["sign", "--key", s(&key), &format!("{host}/app:v1")])),
        0
    );
    let policy = dir.path().join("policy.yaml");
    let (_, other) = keypair(dir.path(), "other");
    let trusting = |keys: &str| {
        format!(
            "keys:\n  release: {{path: {}}}\n  other: {{path: {}}}\nscopes:\n  \"{host}/app\":\n    signed: {{keys: [{keys}]}}\n",
            s(&public),
            s(&other)
        )
    };
    std::fs::write(&policy, trusting("release")).unwrap();
    let port = support::free_port();
    let config = dir.path().join("gate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\npolicy: {}\nupstreams: [{{url: 'http://{host}'}}]\ncontinuous:\n  interval_seconds: 3600\n  webhook: {{url: '{}', timeout_seconds: 2, retries: 1}}\n",
            s(&policy),
            hook.url
        ),
    )
    .unwrap();
    let mut child = support::signet()
        .args(["serve", "--config", s(&config)])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/readyz")).send().is_err() {
        assert!(Instant::now() < deadline, "signet serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let image = format!("{host}/app@{digest}");
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE", "namespace": "default",
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": image}]}}}
    });
    let answer: Value = http
        .post(format!("{base}/validate"))
        .json(&review)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let audit = |http: &reqwest::blocking::Client| -> Value {
        http.get(format!("{base}/v1/audit"))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(audit(&http)["images"][0]["verdict"], "pass");

    // The key leaves the scope: the file watcher reloads, the reload wakes the re-judging.
    std::thread::sleep(Duration::from_millis(1100)); // a new modification time
    std::fs::write(&policy, trusting("other")).unwrap();
    let bodies = hook.wait_for(1);
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert_eq!(bodies.len(), 1, "{bodies:#?}\n{log}");
    assert_eq!(bodies[0]["image"], image);
    assert_eq!(
        (bodies[0]["from"].as_str(), bodies[0]["to"].as_str()),
        (Some("pass"), Some("deny"))
    );
}
