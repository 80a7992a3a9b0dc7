//! Verdicts never outlive their truth, and time never fails open: the verdict cache on an
//! injected clock (time moves, nothing sleeps) with a judge that evaluates a real policy, and
//! judgements that race a policy reload.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use signet_oci::{Digest, Reference};
use signet_policy::{Evidence, Policy, SignatureEvidence};

use super::*;

const KEY_A: &str = include_str!("../../testdata/policies/keys/keyA.pub");
/// 2026-11-29T00:00:00Z
const T: u64 = 1_795_910_400;

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

/// Evaluates `policy` with the real policy engine, on evidence of one valid signature by key A,
/// at the time its clock reads (as `PolicyJudge` does, without a registry).
struct ClockJudge {
    policy: Policy,
    clock: Arc<dyn Clock>,
    calls: Arc<AtomicUsize>,
    hash: String,
    /// Moved forward this much after the policy is evaluated (a slow judgement).
    takes: Option<(ManualClock, Duration)>,
}

impl ClockJudge {
    fn new(policy_yaml: &str, clock: Arc<dyn Clock>) -> (ClockJudge, Arc<AtomicUsize>) {
        let loader = |path: &str| match path {
            "a.pub" => Ok(KEY_A.as_bytes().to_vec()),
            other => Err(format!("no key {other}")),
        };
        let policy = match Policy::load("t.yaml", policy_yaml, &loader) {
            Ok(l) => l.policy,
            Err(e) => panic!("{e}"),
        };
        let calls = Arc::new(AtomicUsize::new(0));
        let judge = ClockJudge {
            policy,
            clock,
            calls: calls.clone(),
            hash: format!("policy-{}", Digest::sha256(policy_yaml.as_bytes())),
            takes: None,
        };
        (judge, calls)
    }
}

impl Judge for ClockJudge {
    async fn judge(
        &self,
        reference: Reference,
        digest: Option<Digest>,
    ) -> Result<Judgement, GateError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.clock.unix_now()?;
        let digest = digest.ok_or_else(|| GateError::Judge("no digest".into()))?;
        let key = signet_policy::PublicKey::from_pem(KEY_A.as_bytes()).unwrap();
        let evidence = Evidence {
            reference: reference.clone(),
            digest: digest.clone(),
            reference_had_digest: true,
            signatures: vec![SignatureEvidence::legacy_key(
                key.id().clone(),
                reference.name(),
                true,
                BTreeMap::new(),
            )],
            configs: Vec::new(),
        };
        let verdict = signet_policy::evaluate(&self.policy, &evidence, now);
        let codes: Vec<&str> = verdict.findings.iter().map(|f| f.code).collect();
        if let Some((clock, by)) = &self.takes {
            clock.advance(*by);
        }
        Ok(Judgement {
            digest,
            allowed: verdict.decision == signet_policy::Decision::Allow,
            mode: Mode::Enforce,
            message: format!("{} {codes:?}", verdict.scope),
            report: Arc::new(serde_json::Value::Null),
            cacheable: true,
            valid_until: verdict.valid_until,
        })
    }

    fn policy_hash(&self) -> String {
        self.hash.clone()
    }

    fn screen(&self, reference: &Reference) -> Screening {
        match self.policy.prejudge(reference) {
            signet_policy::Prejudgement::NeedsEvidence => Screening::Judge,
            signet_policy::Prejudgement::Rejected { message, .. } => Screening::Refuse {
                mode: Mode::Enforce,
                message,
                report: serde_json::Value::Null,
            },
        }
    }
}

fn config() -> GateConfig {
    let mut c = GateConfig::simple(
        "policy.yaml".into(),
        "127.0.0.1:0".parse().unwrap(),
        "http://127.0.0.1:9",
    )
    .unwrap();
    c.timeouts.judge_seconds = 5;
    c
}

fn pinned(repo: &str) -> String {
    format!("127.0.0.1:9/{repo}@{}", Digest::sha256(repo.as_bytes()))
}

const NOT_AFTER_T_PLUS_10: &str = "keys:\n  a: {path: a.pub, notAfter: \"2026-11-29T00:00:10Z\"}\nscopes:\n  \"127.0.0.1:9/app\":\n    signed: {keys: [a]}\n";

#[tokio::test]
async fn an_allow_is_not_served_from_the_cache_past_the_keys_not_after() {
    let clock = ManualClock::new(at(T));
    let (judge, calls) = ClockJudge::new(NOT_AFTER_T_PLUS_10, Arc::new(clock.clone()));
    let mut config = config();
    config.cache.ttl_seconds = 300;
    let gate = Gate::with_clock(config, judge, Arc::new(clock.clone())).unwrap();
    let image = pinned("app");

    let first = gate.decide(&image, Source::Api).await;
    assert!(first.allowed && !first.cached && !first.error, "{first:?}");
    clock.advance(Duration::from_secs(9));
    let hit = gate.decide(&image, Source::Api).await;
    assert!(
        hit.allowed && hit.cached,
        "within notAfter, from the cache: {hit:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // T + 11 s: the key is retired. The cache (TTL 300 s) must not answer; the gate judges
    // again and denies.
    clock.advance(Duration::from_secs(2));
    let after = gate.decide(&image, Source::Api).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "re-judged: {after:?}");
    assert!(!after.allowed && !after.cached && !after.error, "{after:?}");
    assert!(after.message.contains("key-expired"), "{}", after.message);
    // The denial has no time bound: it is cached for the TTL.
    clock.advance(Duration::from_secs(250));
    let cached_deny = gate.decide(&image, Source::Api).await;
    assert!(
        !cached_deny.allowed && cached_deny.cached,
        "{cached_deny:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_gate_ttl_still_caps_a_verdict_with_a_far_time_bound() {
    let clock = ManualClock::new(at(T - 86_400));
    let (judge, calls) = ClockJudge::new(NOT_AFTER_T_PLUS_10, Arc::new(clock.clone()));
    let mut config = config();
    config.cache.ttl_seconds = 60;
    let gate = Gate::with_clock(config, judge, Arc::new(clock.clone())).unwrap();
    let image = pinned("app");
    assert!(gate.decide(&image, Source::Api).await.allowed);
    clock.advance(Duration::from_secs(59));
    assert!(gate.decide(&image, Source::Api).await.cached);
    clock.advance(Duration::from_secs(1));
    let d = gate.decide(&image, Source::Api).await;
    assert!(d.allowed && !d.cached, "{d:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_scope_cache_ttl_shortens_the_gate_ttl() {
    let clock = ManualClock::new(at(T));
    let policy = "keys:\n  a: {path: a.pub}\nscopes:\n  \"127.0.0.1:9/app\":\n    signed: {keys: [a]}\n    cacheTtl: 30s\n";
    let (judge, calls) = ClockJudge::new(policy, Arc::new(clock.clone()));
    let gate = Gate::with_clock(config(), judge, Arc::new(clock.clone())).unwrap();
    let image = pinned("app");
    assert!(gate.decide(&image, Source::Api).await.allowed);
    clock.advance(Duration::from_millis(29_999));
    assert!(gate.decide(&image, Source::Api).await.cached);
    clock.advance(Duration::from_millis(1));
    let d = gate.decide(&image, Source::Api).await;
    assert!(d.allowed && !d.cached, "{d:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_clock_before_1970_could_not_check_and_is_not_cached() {
    let clock = ManualClock::new(UNIX_EPOCH - Duration::from_secs(3600));
    assert!(matches!(clock.unix_now(), Err(GateError::Clock(_))));
    let (judge, calls) = ClockJudge::new(NOT_AFTER_T_PLUS_10, Arc::new(clock.clone()));
    let gate = Gate::with_clock(config(), judge, Arc::new(clock.clone())).unwrap();
    let image = pinned("app");
    for _ in 0..2 {
        let d = gate.decide(&image, Source::Api).await;
        assert!(d.error && !d.allowed && !d.admitted(), "{d:?}");
        assert!(
            d.message
                .contains("could not check: the system clock reads 3600 s before 1970"),
            "{}",
            d.message
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2, "errors are never cached");
}

#[tokio::test]
async fn the_policy_judge_refuses_to_judge_on_a_clock_before_1970() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, "default:\n  accept: true\n").unwrap();
    let file = signet_verifier::enforce::load_policy_file(&path).unwrap();
    let client = signet_oci::RegistryClient::new(signet_oci::RegistryOptions::default()).unwrap();
    let clock = ManualClock::new(UNIX_EPOCH - Duration::from_secs(1));
    let judge = judge::PolicyJudge::new(file, client).with_clock(Arc::new(clock));
    // The upstream (port 9) is never asked: the clock is read first.
    let reference: Reference = "127.0.0.1:9/app:1".parse().unwrap();
    let err = judge
        .judge(reference, Some(Digest::sha256(b"app")))
        .await
        .unwrap_err();
    assert!(matches!(err, GateError::Clock(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "could not check: the system clock reads 1 s before 1970"
    );
}

/// Answers `allowed` under its hash; the first call waits for `release` (a judgement under way
/// while the policy is replaced).
struct GatedJudge {
    hash: &'static str,
    allowed: bool,
    release: Arc<tokio::sync::Notify>,
    entered: Arc<tokio::sync::Notify>,
    calls: Arc<AtomicUsize>,
}

impl GatedJudge {
    fn new(hash: &'static str, allowed: bool) -> GatedJudge {
        GatedJudge {
            hash,
            allowed,
            release: Arc::new(tokio::sync::Notify::new()),
            entered: Arc::new(tokio::sync::Notify::new()),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Judge for GatedJudge {
    async fn judge(
        &self,
        _reference: Reference,
        digest: Option<Digest>,
    ) -> Result<Judgement, GateError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            self.entered.notify_one();
            self.release.notified().await;
        }
        Ok(Judgement {
            digest: digest.ok_or_else(|| GateError::Judge("no digest".into()))?,
            allowed: self.allowed,
            mode: Mode::Enforce,
            message: format!("judged under {}", self.hash),
            report: Arc::new(serde_json::Value::Null),
            cacheable: true,
            valid_until: None,
        })
    }

    fn policy_hash(&self) -> String {
        self.hash.into()
    }
}

#[tokio::test]
async fn a_judgement_that_races_a_reload_is_not_served_under_the_new_policy() {
    let old = GatedJudge::new("policy-old", true);
    let (release, entered, old_calls) =
        (old.release.clone(), old.entered.clone(), old.calls.clone());
    let gate = Gate::new(config(), old).unwrap();
    let image = pinned("app");
    let under_way = {
        let gate = gate.clone();
        let image = image.clone();
        tokio::spawn(async move { gate.decide(&image, Source::Api).await })
    };
    entered.notified().await;

    // The policy changes while the old one is still judging; the new one denies.
    let new = GatedJudge::new("policy-new", false);
    let new_calls = new.calls.clone();
    new.calls.store(1, Ordering::SeqCst); // no waiting
    gate.reload(new);
    release.notify_one();

    let raced = under_way.await.unwrap();
    assert!(
        raced.allowed,
        "answers the request made before the reload: {raced:?}"
    );
    assert_eq!(raced.policy_hash.as_deref(), Some("policy-old"));
    assert_eq!(raced.to_json()["policy_hash"], "policy-old");
    assert!(
        gate.metrics_text()
            .contains("signet_gate_cache_entries 0\n"),
        "the old policy's verdict is not stored: {}",
        gate.metrics_text()
    );

    let now = gate.decide(&image, Source::Api).await;
    assert!(
        !now.allowed && !now.cached,
        "judged by the new policy: {now:?}"
    );
    assert_eq!(now.policy_hash.as_deref(), Some("policy-new"));
    assert_eq!(new_calls.load(Ordering::SeqCst), 2);
    let again = gate.decide(&image, Source::Api).await;
    assert!(!again.allowed && again.cached, "{again:?}");
    assert_eq!(again.policy_hash.as_deref(), Some("policy-new"));
    assert_eq!(old_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_allow_that_runs_out_while_it_is_made_is_no_allow() {
    let clock = ManualClock::new(at(T + 8));
    let (mut judge, calls) = ClockJudge::new(NOT_AFTER_T_PLUS_10, Arc::new(clock.clone()));
    // Evaluated at T + 8 (the key still counts), answered at T + 11 (it no longer does).
    judge.takes = Some((clock.clone(), Duration::from_secs(3)));
    let gate = Gate::with_clock(config(), judge, Arc::new(clock.clone())).unwrap();
    let d = gate.decide(&pinned("app"), Source::Api).await;
    assert!(d.error && !d.allowed && !d.admitted(), "{d:?}");
    assert!(
        d.message
            .contains("the verdict ran out while it was being made (valid until 1795910410)"),
        "{}",
        d.message
    );
    // Not cached: asked again (now past notAfter), the image is judged anew and denied.
    let again = gate.decide(&pinned("app"), Source::Api).await;
    assert!(!again.allowed && !again.error && !again.cached, "{again:?}");
    assert!(again.message.contains("key-expired"), "{}", again.message);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_decision_made_from_the_name_alone_names_its_policy_too() {
    let clock = ManualClock::new(at(T));
    let policy = format!("{NOT_AFTER_T_PLUS_10}default:\n  reject: only listed images\n");
    let (judge, calls) = ClockJudge::new(&policy, Arc::new(clock.clone()));
    let hash = judge.policy_hash();
    let gate = Gate::with_clock(config(), judge, Arc::new(clock.clone())).unwrap();
    let d = gate.decide(&pinned("elsewhere"), Source::Api).await;
    assert!(!d.allowed && !d.error, "{d:?}");
    assert_eq!(d.message, "only listed images");
    assert_eq!(d.policy_hash.as_deref(), Some(hash.as_str()));
    assert_eq!(d.to_json()["policy_hash"], serde_json::json!(hash));
    assert_eq!(calls.load(Ordering::SeqCst), 0, "screened, not judged");
}
