//! Continuous verification: the gate remembers the images it admitted (proxy and admission; in
//! memory, bounded, with first- and last-seen times — a restart forgets them) and judges them
//! again on a schedule (`continuous.interval_seconds`) and at once after every policy or
//! trust-material reload, asking the judge directly (the verdict cache is bypassed, and
//! refreshed with what the re-judgement found).
//!
//! Each remembered image has a verdict now — `pass`, `warn` (denied in a mode that does not
//! block), `deny` or `unknown` (could not check: a registry down, a time-out; never `pass`, and
//! the last known verdict is kept beside it) — and the time it last changed. A change is logged
//! (one structured line, target `signet::gate::continuous`), counted in the metrics
//! (`signet_running_images{verdict}`, `signet_running_image_reasons{reason}`), shown by
//! `GET /v1/audit` and sent to the webhook (`notify.rs`). An image whose verdict stays the same
//! sends nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use signet_oci::{Digest, Reference};
use tokio::sync::Notify;

use super::config::ContinuousConfig;
use super::engine::{deadline, verdict_key, Decision, Source, MAX_MESSAGE_CHARS};
use super::metrics::Metrics;
use super::notify::{Change, Notifier};
use super::server::Gate;
use super::{one_line, GateError, Judge, Judgement, Mode, Screening};

/// Most finding codes kept per image (a judge's findings are bounded, but this is what we keep).
const MAX_REASONS: usize = 16;

/// The verdict on a remembered image now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Standing {
    /// The policy allows it.
    Pass,
    /// The policy denies it, in a mode that does not block (warn, audit): it would still be let in.
    Warn,
    /// The policy denies it and would block it.
    Deny,
    /// It could not be checked (registry down, time-out, clock): never a pass.
    Unknown,
}

impl Standing {
    /// `pass`, `warn`, `deny` or `unknown` (the metrics label and the JSON value).
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Pass => "pass",
            Standing::Warn => "warn",
            Standing::Deny => "deny",
            Standing::Unknown => "unknown",
        }
    }

    /// Every value, in the order the metrics list them.
    pub const ALL: [Standing; 4] = [
        Standing::Pass,
        Standing::Warn,
        Standing::Deny,
        Standing::Unknown,
    ];
}

/// One verdict on a remembered image: what, how it is applied, why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// The verdict.
    pub verdict: Standing,
    /// How a denial is applied.
    pub mode: Mode,
    /// The finding codes (`key-expired`, `no-valid-signature`, …; `could-not-check` when unknown).
    pub reasons: Vec<String>,
    /// Why, in one line.
    pub message: String,
    /// The hash of the policy that judged (none when no judge answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_hash: Option<String>,
}

impl Assessment {
    fn from_judgement(j: &Judgement, policy_hash: &str) -> Assessment {
        let verdict = match (j.allowed, j.mode) {
            (true, _) => Standing::Pass,
            (false, Mode::Enforce) => Standing::Deny,
            (false, _) => Standing::Warn,
        };
        Assessment {
            verdict,
            mode: j.mode,
            reasons: finding_codes(&j.report),
            message: one_line(&j.message, MAX_MESSAGE_CHARS),
            policy_hash: Some(policy_hash.to_string()),
        }
    }

    fn from_decision(d: &Decision) -> Assessment {
        let verdict = match (d.error, d.allowed, d.mode) {
            (true, _, _) => Standing::Unknown,
            (false, true, _) => Standing::Pass,
            (false, false, Mode::Enforce) => Standing::Deny,
            (false, false, _) => Standing::Warn,
        };
        Assessment {
            verdict,
            mode: d.mode,
            reasons: finding_codes(&d.report),
            message: d.message.clone(),
            policy_hash: d.policy_hash.clone(),
        }
    }

    fn unknown(why: &str, policy_hash: &str) -> Assessment {
        Assessment {
            verdict: Standing::Unknown,
            mode: Mode::Enforce,
            reasons: vec!["could-not-check".into()],
            message: one_line(&format!("could not check: {why}"), MAX_MESSAGE_CHARS),
            policy_hash: Some(policy_hash.to_string()),
        }
    }

    /// Whether `other` says something else (verdict, mode or reasons; not the wording).
    fn differs(&self, other: &Assessment) -> bool {
        self.verdict != other.verdict || self.mode != other.mode || self.reasons != other.reasons
    }
}

/// The stable finding codes of a judge's report (`verdict.findings[].code`), sorted, bounded.
pub(crate) fn finding_codes(report: &Value) -> Vec<String> {
    let mut codes: Vec<String> = report
        .pointer("/verdict/findings")
        .and_then(Value::as_array)
        .map(|findings| {
            findings
                .iter()
                .filter_map(|f| f.get("code").and_then(Value::as_str))
                .filter(|c| c.len() <= 64 && c.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    codes.sort();
    codes.dedup();
    codes.truncate(MAX_REASONS);
    codes
}

/// One remembered image.
#[derive(Debug, Clone)]
struct Entry {
    reference: Reference,
    source: Source,
    first_seen: i64,
    last_seen: i64,
    now: Assessment,
    /// The last verdict that was not `unknown`, kept while the image cannot be checked.
    last_known: Option<Assessment>,
    changed_at: i64,
    checked_at: i64,
}

/// What a re-judgement cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleSummary {
    /// Images judged again.
    pub judged: usize,
    /// Images whose verdict changed.
    pub changed: usize,
    /// Images that could not be checked.
    pub unknown: usize,
    /// Images forgotten because nobody asked for them within `forget_after_seconds`.
    pub forgotten: usize,
}

/// Images per verdict, and non-passing images per reason.
pub(crate) type Tally = (Vec<(Standing, i64)>, Vec<(String, i64)>);

/// One re-judgement: the image's key, its verdict now, and the judgement to cache.
type Rejudged = ((String, Digest), Assessment, Option<Arc<Judgement>>);

/// The remembered images and what wakes the re-judging loop.
pub(crate) struct Continuous {
    config: ContinuousConfig,
    images: Mutex<HashMap<(String, Digest), Entry>>,
    /// Notified by a policy reload: re-judge now.
    pub(crate) reloaded: Notify,
    /// One cycle at a time (the loop, a reload and a caller of `rejudge_all`).
    cycle: tokio::sync::Mutex<()>,
    pub(crate) notifier: Option<Notifier>,
}

impl Continuous {
    pub(crate) fn new(config: &ContinuousConfig) -> Result<Continuous, GateError> {
        let notifier = match &config.webhook {
            Some(w) => Some(Notifier::new(w)?),
            None => None,
        };
        Ok(Continuous {
            config: config.clone(),
            images: Mutex::new(HashMap::new()),
            reloaded: Notify::new(),
            cycle: tokio::sync::Mutex::new(()),
            notifier,
        })
    }

    fn images(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Digest), Entry>> {
        match self.images.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Counts per verdict and per reason (non-passing images only), for the metrics.
    pub(crate) fn tally(&self) -> Tally {
        let images = self.images();
        let mut verdicts: HashMap<Standing, i64> = HashMap::new();
        let mut reasons: HashMap<String, i64> = HashMap::new();
        for e in images.values() {
            *verdicts.entry(e.now.verdict).or_default() += 1;
            if e.now.verdict != Standing::Pass {
                for r in &e.now.reasons {
                    *reasons.entry(r.clone()).or_default() += 1;
                }
            }
        }
        let verdicts = Standing::ALL
            .iter()
            .map(|s| (*s, verdicts.get(s).copied().unwrap_or(0)))
            .collect();
        let mut reasons: Vec<(String, i64)> = reasons.into_iter().collect();
        reasons.sort();
        (verdicts, reasons)
    }
}

/// `unix` seconds as RFC 3339 (UTC).
fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// One image as `GET /v1/audit` shows it.
#[derive(Debug, Serialize)]
struct AuditImage<'a> {
    image: String,
    digest: String,
    source: &'static str,
    verdict: Standing,
    mode: Mode,
    reasons: &'a [String],
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_hash: Option<&'a str>,
    changed_at: String,
    checked_at: String,
    first_seen: String,
    last_seen: String,
    /// While `unknown`: the last verdict that could be had.
    last_known: Option<&'a Assessment>,
}

impl<J: Judge> Gate<J> {
    /// Remember an image the gate just admitted through the proxy or admission (the verify API
    /// only answers questions: what it is asked about need not run). Known images get a new
    /// last-seen time; their verdict is the re-judgements' business. When full, the image seen
    /// longest ago is forgotten.
    pub(crate) fn remember(&self, d: &Decision, source: Source) {
        if !matches!(source, Source::Proxy | Source::Admission) || !d.admitted() {
            return;
        }
        let (Some(reference), Some(digest)) = (&d.reference, &d.digest) else {
            return;
        };
        let c = &self.inner.continuous;
        if c.config.max_images == 0 {
            return;
        }
        let Ok(now) = self.inner.clock.unix_now() else {
            return;
        };
        let key = (reference.text(), digest.clone());
        let mut images = c.images();
        if let Some(e) = images.get_mut(&key) {
            e.last_seen = now;
            return;
        }
        if images.len() >= c.config.max_images {
            // O(n), only when a new image arrives at a full memory.
            if let Some(oldest) = images
                .iter()
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(k, _)| k.clone())
            {
                images.remove(&oldest);
            }
        }
        images.insert(
            key,
            Entry {
                reference: reference.clone(),
                source,
                first_seen: now,
                last_seen: now,
                now: Assessment::from_decision(d),
                last_known: None,
                changed_at: now,
                checked_at: now,
            },
        );
    }

    /// How many images are remembered.
    pub fn remembered(&self) -> usize {
        self.inner.continuous.images().len()
    }

    /// Remember `reference` at `digest` as if the proxy had admitted it now with verdict `pass`
    /// (benchmarks and tools that fill the memory without pulling).
    pub fn remember_admitted(&self, reference: Reference, digest: Digest) {
        let d = Decision {
            image: reference.to_string(),
            reference: Some(reference),
            digest: Some(digest),
            policy_hash: Some(self.policy_hash()),
            allowed: true,
            mode: Mode::Enforce,
            message: "remembered".into(),
            report: Arc::new(Value::Null),
            cached: false,
            error: false,
        };
        self.remember(&d, Source::Proxy);
    }

    /// Judge every remembered image again now, with the active policy, bypassing the verdict
    /// cache; record, log and send every change. One cycle at a time: a call while one runs
    /// waits for it and then runs its own.
    pub async fn rejudge_all(&self) -> CycleSummary {
        let c = &self.inner.continuous;
        let _one_at_a_time = c.cycle.lock().await;
        let mut summary = CycleSummary::default();
        // A clock that cannot be read forgets nothing (every judgement will say why).
        let now = self.inner.clock.unix_now().unwrap_or(i64::MIN);
        let forget = i64::try_from(c.config.forget_after_seconds).unwrap_or(i64::MAX);
        let work: Vec<(String, Digest, Reference)> = {
            let mut images = c.images();
            let before = images.len();
            images.retain(|_, e| now.saturating_sub(e.last_seen) < forget);
            summary.forgotten = before - images.len();
            images
                .iter()
                .map(|((name, digest), e)| (name.clone(), digest.clone(), e.reference.clone()))
                .collect()
        };
        let limiter = Arc::new(RateLimiter::new(c.config.per_upstream_per_second));
        let results: Vec<Rejudged> = futures_util::stream::iter(work)
            .map(|(name, digest, reference)| {
                let gate = self.clone();
                let limiter = limiter.clone();
                async move {
                    limiter.wait(reference.registry()).await;
                    let (assessment, judgement) = gate.rejudge_one(reference, digest.clone()).await;
                    ((name, digest), assessment, judgement)
                }
            })
            .buffer_unordered(c.config.parallel)
            .collect()
            .await;
        let checked_at = self.inner.clock.unix_now().unwrap_or(now);
        for (key, assessment, judgement) in results {
            summary.judged += 1;
            if assessment.verdict == Standing::Unknown {
                summary.unknown += 1;
            }
            Metrics::inc(&self.inner.metrics.rejudgements);
            if let Some(j) = judgement {
                if let Some(hash) = assessment.policy_hash.clone() {
                    self.refresh_cache(&key, j, &hash);
                }
            }
            if self.apply(&key, assessment, checked_at) {
                summary.changed += 1;
            }
        }
        Metrics::inc(&self.inner.metrics.rejudge_cycles);
        tracing::info!(
            target: "signet::gate::continuous",
            judged = summary.judged, changed = summary.changed, unknown = summary.unknown,
            forgotten = summary.forgotten, "re-judged the remembered images"
        );
        summary
    }

    /// Judge one image with the active judge, under the judgement time limit.
    async fn rejudge_one(
        &self,
        reference: Reference,
        digest: Digest,
    ) -> (Assessment, Option<Arc<Judgement>>) {
        let active = self.active();
        // A name the policy now rejects whatever its signatures is decided without a request,
        // as at admission (the gate reaches only registries a scope can allow).
        if let Screening::Refuse {
            mode,
            message,
            report,
        } = active.judge.screen(&reference)
        {
            let assessment = Assessment {
                verdict: if mode == Mode::Enforce {
                    Standing::Deny
                } else {
                    Standing::Warn
                },
                mode,
                reasons: finding_codes(&report),
                message: one_line(&message, MAX_MESSAGE_CHARS),
                policy_hash: Some(active.hash.clone()),
            };
            return (assessment, None);
        }
        let seconds = self.inner.config.timeouts.judge_seconds;
        let outcome = tokio::time::timeout(
            Duration::from_secs(seconds),
            active.judge.judge(reference, Some(digest.clone())),
        )
        .await;
        match outcome {
            Ok(Ok(j)) if j.digest != digest => (
                Assessment::unknown(
                    &format!("the judge answered about {}, not {digest}", j.digest),
                    &active.hash,
                ),
                None,
            ),
            Ok(Ok(j)) => (
                Assessment::from_judgement(&j, &active.hash),
                Some(Arc::new(j)),
            ),
            Ok(Err(e)) => (Assessment::unknown(&e.to_string(), &active.hash), None),
            Err(_) => (
                Assessment::unknown(
                    &GateError::Timeout {
                        what: "judgement".into(),
                        seconds,
                    }
                    .to_string(),
                    &active.hash,
                ),
                None,
            ),
        }
    }

    /// Put a fresh judgement (made under the policy hashed `hash`) in the verdict cache,
    /// replacing a stale allow, unless that policy has been replaced since (a reload cleared
    /// the cache; an old policy's verdict must not come back).
    fn refresh_cache(&self, key: &(String, Digest), j: Arc<Judgement>, hash: &str) {
        if !j.cacheable || self.active().hash != hash {
            return;
        }
        let Ok(reference) = key.0.parse::<Reference>() else {
            return;
        };
        if let Ok(mut state) = self.inner.verdicts.lock() {
            let clock = self.inner.clock.as_ref();
            let now = clock.monotonic();
            let until = deadline(clock, j.valid_until, now);
            if until.is_some_and(|u| u <= now) {
                return;
            }
            let cache_key = verdict_key(&reference, &key.1, hash);
            state.cache.insert_until(cache_key, j, now, until);
        }
    }

    /// Record `assessment` for the image at `key`; log and send a change. Whether it changed.
    fn apply(&self, key: &(String, Digest), assessment: Assessment, checked_at: i64) -> bool {
        let c = &self.inner.continuous;
        let change = {
            let mut images = c.images();
            let Some(e) = images.get_mut(key) else {
                return false; // forgotten meanwhile
            };
            e.checked_at = checked_at;
            if !e.now.differs(&assessment) {
                e.now.message = assessment.message;
                e.now.policy_hash = assessment.policy_hash;
                return false;
            }
            let before = e.now.clone();
            if assessment.verdict == Standing::Unknown {
                if before.verdict != Standing::Unknown {
                    e.last_known = Some(before.clone());
                }
            } else {
                e.last_known = None;
            }
            e.now = assessment;
            e.changed_at = checked_at;
            Change {
                image: key.0.clone(),
                digest: key.1.to_string(),
                from: before.verdict,
                to: e.now.verdict,
                mode: e.now.mode,
                reasons: e.now.reasons.clone(),
                message: e.now.message.clone(),
                policy_hash: e.now.policy_hash.clone(),
                changed_at: rfc3339(checked_at),
                last_known: e.last_known.as_ref().map(|k| k.verdict),
            }
        };
        let log = |level_warn: bool| {
            let reasons = change.reasons.join(",");
            if level_warn {
                tracing::warn!(
                    target: "signet::gate::continuous",
                    image = %change.image, digest = %change.digest, from = change.from.as_str(),
                    to = change.to.as_str(), mode = change.mode.as_str(), reasons = %reasons,
                    message = %change.message, "verdict changed"
                );
            } else {
                tracing::info!(
                    target: "signet::gate::continuous",
                    image = %change.image, digest = %change.digest, from = change.from.as_str(),
                    to = change.to.as_str(), mode = change.mode.as_str(), reasons = %reasons,
                    message = %change.message, "verdict changed"
                );
            }
        };
        log(change.to != Standing::Pass);
        Metrics::inc(&self.inner.metrics.verdict_changes);
        if let Some(notifier) = &c.notifier {
            notifier.send(change, &self.inner.metrics);
        }
        true
    }

    /// Re-judge on the configured schedule and after every policy reload, until `stop`
    /// completes. The CLI spawns this next to [`super::BoundGate::run`]. A cycle that is under
    /// way when `stop` completes is abandoned.
    pub async fn keep_judging(&self, stop: impl std::future::Future<Output = ()> + Send) {
        let every = self.inner.continuous.config.interval_seconds;
        tokio::pin!(stop);
        let mut ticker = (every > 0).then(|| {
            let mut t = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(every),
                Duration::from_secs(every),
            );
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            let tick = async {
                match ticker.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = &mut stop => return,
                () = tick => {}
                () = self.inner.continuous.reloaded.notified() => {}
            }
            tokio::select! {
                () = &mut stop => return,
                _ = self.rejudge_all() => {}
            }
        }
    }

    /// `GET /v1/audit`'s answer: every remembered image, its verdict now, since when, why.
    pub(crate) fn audit_json(&self) -> Value {
        let images = self.inner.continuous.images();
        let mut list: Vec<AuditImage<'_>> = images
            .iter()
            .map(|((name, digest), e)| AuditImage {
                image: name.clone(),
                digest: digest.to_string(),
                source: e.source.as_str(),
                verdict: e.now.verdict,
                mode: e.now.mode,
                reasons: &e.now.reasons,
                message: &e.now.message,
                policy_hash: e.now.policy_hash.as_deref(),
                changed_at: rfc3339(e.changed_at),
                checked_at: rfc3339(e.checked_at),
                first_seen: rfc3339(e.first_seen),
                last_seen: rfc3339(e.last_seen),
                last_known: e.last_known.as_ref(),
            })
            .collect();
        list.sort_by(|a, b| (&a.image, &a.digest).cmp(&(&b.image, &b.digest)));
        let passing = list.iter().all(|i| i.verdict == Standing::Pass);
        let _ = &images;
        serde_json::json!({
            "policy_hash": self.policy_hash(),
            "all_pass": passing,
            "count": list.len(),
            "images": list,
        })
    }
}

/// At most `per_second` re-judgements started per second and upstream registry, in real time
/// (a throughput bound, not a policy time).
struct RateLimiter {
    interval: Duration,
    next: Mutex<HashMap<String, tokio::time::Instant>>,
}

impl RateLimiter {
    fn new(per_second: u32) -> RateLimiter {
        RateLimiter {
            interval: Duration::from_secs(1) / per_second.max(1),
            next: Mutex::new(HashMap::new()),
        }
    }

    /// Wait for this registry's next slot.
    async fn wait(&self, registry: &str) {
        let slot = {
            let mut next = match self.next.lock() {
                Ok(n) => n,
                Err(poisoned) => poisoned.into_inner(),
            };
            let now = tokio::time::Instant::now();
            let slot = next.get(registry).copied().map_or(now, |n| n.max(now));
            next.insert(registry.to_string(), slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn finding_codes_are_sorted_bounded_and_clean() {
        let report = serde_json::json!({"verdict": {"findings": [
            {"code": "key-expired"}, {"code": "no-valid-signature"}, {"code": "key-expired"},
            {"code": "Bad Code\n"}, {"message": "no code"}
        ]}});
        assert_eq!(
            finding_codes(&report),
            vec!["key-expired".to_string(), "no-valid-signature".to_string()]
        );
        assert!(finding_codes(&Value::Null).is_empty());
    }

    #[tokio::test]
    async fn the_rate_limit_spaces_each_registry_on_its_own() {
        let limiter = RateLimiter::new(20);
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            limiter.wait("a.example").await;
        }
        // Five slots 50 ms apart: the fifth starts at 200 ms.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_millis(400),
            "{took:?}"
        );
        let other = tokio::time::Instant::now();
        limiter.wait("b.example").await;
        assert!(
            other.elapsed() < Duration::from_millis(20),
            "another registry waits for nobody"
        );
    }
}
