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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use signet_gate::judge::PolicyJudge;
use signet_gate::{Clock, Gate, GateConfig, ManualClock, Source, WebhookConfig};
use signet_oci::{Digest, RegistryClient};

use crate::support::{self, code, keypair, push_sample_image, run, s, TestRegistry};

/// A loopback webhook receiver: records each request body; answers 200, or never (`hang`).
struct Webhook {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    fn start(hang: bool) -> Webhook {
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

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// Wait (up to 10 s) until `n` bodies have come.
    fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.bodies().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.bodies()
    }
}

/// Whole seconds now, so `notAfter` (seconds) falls exactly where the test advances to.
fn whole_second_now() -> (SystemTime, u64) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (UNIX_EPOCH + Duration::from_secs(secs), secs)
}

/// `unix` as RFC 3339 UTC.
fn rfc3339(unix: u64) -> String {
    let (days, secs) = ((unix / 86_400) as i64, unix % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A registry with `app:v1` signed by key `release` and `keep:v1` signed by key `other`, a
/// gate (injected clock, webhook) whose policy file the test rewrites with [`Setup::policy`].
struct Setup {
    reg: Option<TestRegistry>,
    host: String,
    dir: tempfile::TempDir,
    policy: PathBuf,
    release_pub: PathBuf,
    other_pub: PathBuf,
    app: Digest,
    keep: Digest,
    clock: ManualClock,
    gate: Gate<PolicyJudge>,
    client: RegistryClient,
}

fn setup(webhook: &str, edit: impl FnOnce(&mut GateConfig)) -> Setup {
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
    fn judge(&self) -> PolicyJudge {
        let file = signet_verifier::enforce::load_policy_file(&self.policy).unwrap();
        PolicyJudge::new(file, self.client.clone()).with_clock(Arc::new(self.clock.clone()))
    }

    fn app(&self) -> String {
        format!("{}/app@{}", self.host, self.app)
    }

    fn keep(&self) -> String {
        format!("{}/keep@{}", self.host, self.keep)
    }

    /// Admit both images through admission (so the gate remembers them).
    fn admit_both(&self, rt: &tokio::runtime::Runtime) {
        for image in [self.app(), self.keep()] {
            let d = rt.block_on(self.gate.decide(&image, Source::Admission));
            assert!(d.admitted(), "{d:?}");
        }
        assert_eq!(self.gate.remembered(), 2);
    }

    /// The audit entry for `image` (as asked, by digest).
    fn audit_entry(&self, image: &str) -> Value {
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
    fn metric(&self, sample: &str) -> Option<f64> {
        self.gate
            .metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The one change the webhook must have received: about `image`, from `from` to `to`, naming
/// `reason`.
fn assert_one_change(bodies: &[Value], image: &str, from: &str, to: &str, reason: &str) {
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
