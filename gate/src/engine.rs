//! The engine around the [`Judge`]: tag → digest resolution (always asked of the upstream: tags
//! move), the verdict cache keyed by what was asked (the reference as named, manifest digest,
//! policy hash), single flight for concurrent requests about the same key, time-outs, metrics and
//! one log line per decision. Every failure becomes a denial.
//!
//! A cached verdict lives the gate's `cache.ttl_seconds`, never past the judgement's
//! `valid_until` (a key's `notAfter`, the end of `maxAge`, the scope's `cacheTtl`), read on the
//! gate's [`Clock`](crate::Clock). A judgement made under a policy that was replaced while it ran
//! answers the requests that asked for it (with that policy's hash in the decision) and is not
//! cached.

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::StreamExt;
use serde_json::Value;
use signet_oci::{Digest, Reference};

use super::metrics::Metrics;
use super::server::Gate;
use super::{one_line, Clock, GateError, Judge, Judgement, Mode, Screening};

/// Which door a decision was asked at (a metrics label and a log field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The registry proxy.
    Proxy,
    /// The admission webhook.
    Admission,
    /// The verify API.
    Api,
}

impl Source {
    /// `proxy`, `admission` or `api`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Proxy => "proxy",
            Source::Admission => "admission",
            Source::Api => "api",
        }
    }
}

/// The gate's decision about one image: a judgement, or the reason none could be had.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The image as asked for.
    pub image: String,
    /// The image's normalised reference, when it parsed.
    pub reference: Option<Reference>,
    /// The digest judged, when it was resolved.
    pub digest: Option<Digest>,
    /// The hash of the policy that judged (see [`Judge::policy_hash`]), when a judge was asked:
    /// the policy this decision is about, even if another was loaded meanwhile.
    pub policy_hash: Option<String>,
    /// Whether the policy allows the image (false on every error).
    pub allowed: bool,
    /// How a denial is applied (`Enforce` on errors).
    pub mode: Mode,
    /// Why, in one line.
    pub message: String,
    /// The judge's full verdict (`null` on errors), shared with the cached judgement.
    pub report: Arc<Value>,
    /// Whether the verdict came from the cache.
    pub cached: bool,
    /// Whether no verdict could be had (the image is denied, whatever the mode).
    pub error: bool,
}

impl Decision {
    /// Whether the image may be used: allowed, or denied in warn or audit mode; never on error.
    pub fn admitted(&self) -> bool {
        !self.error && (self.allowed || self.mode != Mode::Enforce)
    }

    /// `allow`, `deny` or `error` (metrics and logs).
    pub fn result(&self) -> &'static str {
        match (self.error, self.allowed) {
            (true, _) => "error",
            (false, true) => "allow",
            (false, false) => "deny",
        }
    }

    /// The verdict as the verify API returns it.
    pub fn to_json(&self) -> Value {
        // Serialising this struct cannot fail: every map key is a string.
        serde_json::to_value(self.view()).unwrap_or(Value::Null)
    }

    /// The verdict as the verify API returns it, borrowing this decision. The API serialises it
    /// straight into the answer: going through [`Decision::to_json`] would deep-copy the report
    /// on every request, a sixth of the CPU of a cached decision (bench/README.md).
    pub(crate) fn view(&self) -> DecisionView<'_> {
        DecisionView {
            image: &self.image,
            reference: self.reference.as_ref().map(ToString::to_string),
            digest: self.digest.as_ref().map(ToString::to_string),
            policy_hash: self.policy_hash.as_deref(),
            allowed: self.allowed,
            admitted: self.admitted(),
            mode: self.mode,
            message: &self.message,
            cached: self.cached,
            error: self.error,
            report: self.report.as_ref(),
        }
    }

    fn failed(
        image: &str,
        reference: Option<Reference>,
        digest: Option<Digest>,
        why: &str,
    ) -> Self {
        Decision {
            image: image.to_string(),
            reference,
            digest,
            policy_hash: None,
            allowed: false,
            mode: Mode::Enforce,
            message: one_line(why, MAX_MESSAGE_CHARS),
            report: Arc::new(Value::Null),
            cached: false,
            error: true,
        }
    }
}

/// The verify API's JSON for one [`Decision`] (fields in this order).
#[derive(Debug, serde::Serialize)]
pub(crate) struct DecisionView<'a> {
    image: &'a str,
    reference: Option<String>,
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_hash: Option<&'a str>,
    allowed: bool,
    admitted: bool,
    mode: Mode,
    message: &'a str,
    cached: bool,
    error: bool,
    report: &'a Value,
}

/// The monotonic instant at which a judgement valid until `valid_until` (unix seconds) stops
/// holding, read on `clock` at `now`: `now` itself when that is already past (or the wall clock
/// cannot say), `None` when there is no bound (or none a monotonic clock can reach).
pub(crate) fn deadline(
    clock: &dyn Clock,
    valid_until: Option<i64>,
    now: Instant,
) -> Option<Instant> {
    let until = valid_until?;
    let Ok(until) = u64::try_from(until) else {
        return Some(now);
    };
    let end = UNIX_EPOCH.checked_add(Duration::from_secs(until))?;
    // Sub-second precision: the policy's seconds flip at the whole second.
    match end.duration_since(clock.wall()) {
        Ok(left) => now.checked_add(left),
        Err(_) => Some(now),
    }
}

/// Whether a verdict valid until `valid_until` (unix seconds) no longer holds on `clock`.
fn ran_out(clock: &dyn Clock, valid_until: Option<i64>) -> bool {
    let now = clock.monotonic();
    deadline(clock, valid_until, now).is_some_and(|end| end <= now)
}

/// The value, or nothing, in a log field.
struct OrEmpty<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for OrEmpty<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => Ok(()),
        }
    }
}

/// Messages are cut to this many characters.
pub(crate) const MAX_MESSAGE_CHARS: usize = 1000;

/// A verdict cache key: the image's reference as asked, manifest digest, policy hash. See
/// [`verdict_key`].
pub(crate) type Key = (String, Digest, String);

/// The cache key of a verdict on `reference` at `digest` under the policy hashed `hash`. The
/// reference is kept whole (registry, repository, tag, and whether a digest was named), not just
/// its name, because the verdict depends on all of it: an identity rule may accept a signature
/// for `app:v1` and not for `app:v2` of the same digest, `digest: pinned` allows `app@sha256:…`
/// and not `app:v1`, and policies and identities are per repository.
pub(crate) fn verdict_key(reference: &Reference, digest: &Digest, hash: &str) -> Key {
    (reference.text(), digest.clone(), hash.to_string())
}

/// What a judgement task yields to everyone waiting on it.
pub(crate) type Outcome = Result<Arc<Judgement>, String>;

/// The cache and the judgements under way, under one lock so that "not cached" and "not under
/// way" are decided together (no request can slip between a result's caching and its task's end).
pub(crate) struct VerdictState {
    pub(crate) cache: super::cache::TtlMap<Key, Arc<Judgement>>,
    pub(crate) inflight: std::collections::HashMap<Key, Shared<BoxFuture<'static, Outcome>>>,
}

impl<J: Judge> Gate<J> {
    /// Decide about `image` (`[host/]repo[:tag][@digest]`, as in a pod spec): parse it, resolve a
    /// tag to its digest at the image's registry (a `HEAD`, every time), then judge that digest
    /// (cached).
    pub async fn decide(&self, image: &str, source: Source) -> Decision {
        let started = Instant::now();
        let decision = self.decide_inner(image, source).await;
        self.record(&decision, source, started);
        decision
    }

    async fn decide_inner(&self, image: &str, source: Source) -> Decision {
        let reference: Reference = match image.parse() {
            Ok(r) => r,
            Err(e) => return Decision::failed(image, None, None, &e.to_string()),
        };
        // Before any request: a name the policy rejects whatever its signatures is decided
        // here, so nobody can make the gate reach a host the policy does not trust.
        let active = self.active();
        if let Screening::Refuse {
            mode,
            message,
            report,
        } = active.judge.screen(&reference)
        {
            return Decision {
                image: image.to_string(),
                reference: Some(reference),
                digest: None,
                policy_hash: Some(active.hash.clone()),
                allowed: false,
                mode,
                message: one_line(&message, MAX_MESSAGE_CHARS),
                report: Arc::new(report),
                cached: false,
                error: false,
            };
        }
        let digest = match reference.digest() {
            Some(d) => d.clone(),
            None => match self.resolve(&reference).await {
                Ok(d) => d,
                Err(why) => return Decision::failed(image, Some(reference), None, &why),
            },
        };
        self.judge_at(image, reference, digest, source).await
    }

    /// The digest a tag names now: one `GET` of the manifest, hashed here. A `HEAD` would be
    /// cheaper, but its `Docker-Content-Digest` is only the registry's word, and a registry that
    /// names a signed digest while serving other bytes must not get an image admitted.
    async fn resolve(&self, reference: &Reference) -> Result<Digest, String> {
        let timeout = Duration::from_secs(self.inner.config.timeouts.upstream_seconds);
        match tokio::time::timeout(timeout, self.inner.client.get_manifest(reference)).await {
            Ok(Ok(fetched)) => Ok(fetched.digest),
            Ok(Err(e)) if e.is_not_found() => Err(format!("{reference}: no such image")),
            Ok(Err(e)) => {
                Metrics::inc(&self.inner.metrics.upstream_errors);
                Err(format!("cannot resolve {reference}: {e}"))
            }
            Err(_) => {
                Metrics::inc(&self.inner.metrics.upstream_errors);
                Err(format!(
                    "cannot resolve {reference}: timed out after {} s",
                    timeout.as_secs()
                ))
            }
        }
    }

    /// Decide about `reference` at `digest` (already resolved) and record it.
    pub(crate) async fn decide_at(
        &self,
        reference: Reference,
        digest: Digest,
        source: Source,
    ) -> Decision {
        let started = Instant::now();
        let image = reference.text();
        let decision = self.judge_at(&image, reference, digest, source).await;
        self.record(&decision, source, started);
        decision
    }

    async fn judge_at(
        &self,
        image: &str,
        reference: Reference,
        digest: Digest,
        _source: Source,
    ) -> Decision {
        let (outcome, cached, policy_hash) = self.verdict(&reference, &digest).await;
        match outcome {
            Ok(j) => Decision {
                image: image.to_string(),
                reference: Some(reference),
                digest: Some(digest),
                policy_hash: Some(policy_hash),
                allowed: j.allowed,
                mode: j.mode,
                message: one_line(&j.message, MAX_MESSAGE_CHARS),
                report: j.report.clone(),
                cached,
                error: false,
            },
            Err(why) => Decision {
                policy_hash: Some(policy_hash),
                ..Decision::failed(image, Some(reference), Some(digest), &why)
            },
        }
    }

    /// The verdict on (`reference`'s name, `digest`) under the active policy: from the cache, from
    /// a judgement already under way, or from a new one. The bool says "from the cache"; the
    /// string is the hash of the policy the verdict is under.
    async fn verdict(&self, reference: &Reference, digest: &Digest) -> (Outcome, bool, String) {
        let active = self.active();
        let key = verdict_key(reference, digest, &active.hash);
        let shared = {
            let Ok(mut state) = self.inner.verdicts.lock() else {
                return (Err("verdict cache unavailable".into()), false, key.2);
            };
            if let Some(j) = state.cache.get(&key, self.inner.clock.monotonic()) {
                Metrics::inc(&self.inner.metrics.cache_hits);
                return (Ok(j), true, key.2);
            }
            Metrics::inc(&self.inner.metrics.cache_misses);
            if let Some(fut) = state.inflight.get(&key) {
                Metrics::inc(&self.inner.metrics.shared_judgements);
                fut.clone()
            } else {
                let fut = self.spawn_judgement(
                    key.clone(),
                    reference.clone(),
                    digest.clone(),
                    active.judge.clone(),
                );
                state.inflight.insert(key.clone(), fut.clone());
                fut
            }
        };
        (shared.await, false, key.2)
    }

    /// Run one judgement as its own task (so it finishes, and is cached, even if every request
    /// waiting for it goes away) and share its outcome.
    fn spawn_judgement(
        &self,
        key: Key,
        reference: Reference,
        digest: Digest,
        judge: Arc<J>,
    ) -> Shared<BoxFuture<'static, Outcome>> {
        let gate = self.clone();
        let cleanup = self.clone();
        let cleanup_key = key.clone();
        let seconds = self.inner.config.timeouts.judge_seconds;
        let task = tokio::spawn(async move {
            let outcome: Outcome = match tokio::time::timeout(
                Duration::from_secs(seconds),
                judge.judge(reference, Some(digest.clone())),
            )
            .await
            {
                Ok(Ok(j)) if j.digest != digest => Err(format!(
                    "the judge answered about {}, not {digest}",
                    j.digest
                )),
                // An allow that ran out while it was being made (a slow upstream while a key
                // retired) is no allow: fail closed; asked again, the image is judged anew.
                Ok(Ok(j)) if j.allowed && ran_out(gate.inner.clock.as_ref(), j.valid_until) => {
                    Err(format!(
                        "the verdict ran out while it was being made (valid until {})",
                        j.valid_until.unwrap_or_default()
                    ))
                }
                Ok(Ok(j)) => Ok(Arc::new(j)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(GateError::Timeout {
                    what: "judgement".into(),
                    seconds,
                }
                .to_string()),
            };
            if let Ok(mut state) = gate.inner.verdicts.lock() {
                if let Ok(j) = &outcome {
                    // Judged under a policy that has been replaced meanwhile: it answered the
                    // requests made before the reload, and nobody asks under its hash again.
                    // Checked under the cache lock, which `Gate::reload` takes to clear the
                    // cache after swapping the policy: either this entry is cleared, or it is
                    // never stored.
                    if j.cacheable && gate.active().hash == key.2 {
                        let clock = gate.inner.clock.as_ref();
                        let now = clock.monotonic();
                        let deadline = deadline(clock, j.valid_until, now);
                        state
                            .cache
                            .insert_until(key.clone(), j.clone(), now, deadline);
                    }
                }
                state.inflight.remove(&key);
            }
            outcome
        });
        async move {
            match task.await {
                Ok(outcome) => outcome,
                Err(e) => {
                    // The judge panicked: the task never reached its clean-up, so forget the
                    // judgement here, or every later request would get this outcome.
                    if let Ok(mut state) = cleanup.inner.verdicts.lock() {
                        state.inflight.remove(&cleanup_key);
                    }
                    Err(format!("judgement failed: {e}"))
                }
            }
        }
        .boxed()
        .shared()
    }

    /// Count and log one decision.
    fn record(&self, d: &Decision, source: Source, started: Instant) {
        let took = started.elapsed();
        self.inner
            .metrics
            .decision(source.as_str(), d.result(), d.mode.as_str(), took);
        self.remember(d, source);
        let digest = OrEmpty(d.digest.as_ref());
        let elapsed_ms = took.as_millis() as u64;
        if d.admitted() {
            tracing::info!(
                target: "signet::gate::decision",
                source = source.as_str(), image = %d.image, digest = %digest, result = d.result(),
                mode = d.mode.as_str(), admitted = true, cached = d.cached, elapsed_ms,
                message = %d.message, "image admitted"
            );
        } else {
            tracing::warn!(
                target: "signet::gate::decision",
                source = source.as_str(), image = %d.image, digest = %digest, result = d.result(),
                mode = d.mode.as_str(), admitted = false, cached = d.cached, elapsed_ms,
                message = %d.message, "image denied"
            );
        }
    }

    /// Decide about every image of `images` (distinct, at most `limits.max_images`), judging up
    /// to `limits.parallel_images` at a time; results in the order given.
    pub async fn decide_all(&self, images: &[String], source: Source) -> Vec<Decision> {
        // One image (most pods): no stream of tasks to set up.
        if let [image] = images {
            return vec![self.decide(image, source).await];
        }
        let parallel = self.inner.config.limits.parallel_images;
        // Owned strings and gate clones: borrowing closures here trip the compiler's
        // higher-ranked `Send` inference in axum handlers.
        let mut results: Vec<(usize, Decision)> =
            futures_util::stream::iter(images.iter().cloned().enumerate())
                .map(|(i, image)| {
                    let gate = self.clone();
                    async move { (i, gate.decide(&image, source).await) }
                })
                .buffer_unordered(parallel)
                .collect()
                .await;
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, d)| d).collect()
    }
}

#[cfg(test)]
mod view_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// The verify API's answer, written from a borrowing view, has the fields, values and order
    /// it had when built with `json!`.
    #[test]
    fn view_serialises_like_the_verify_api_answer() {
        let digest: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let reference: Reference = "example.com/team/app:v1".parse().unwrap();
        let decision = Decision {
            image: "example.com/team/app:v1".into(),
            reference: Some(reference.clone()),
            digest: Some(digest.clone()),
            policy_hash: Some("sha256:feed".into()),
            allowed: false,
            mode: Mode::Warn,
            message: "denied by example.com/team".into(),
            report: Arc::new(
                serde_json::json!({"verdict": {"decision": "deny"}, "z": 1, "a": [1, 2]}),
            ),
            cached: true,
            error: false,
        };
        let expected = serde_json::json!({
            "image": "example.com/team/app:v1",
            "reference": reference.to_string(),
            "digest": digest.to_string(),
            "policy_hash": "sha256:feed",
            "allowed": false,
            "admitted": true,
            "mode": "warn",
            "message": "denied by example.com/team",
            "cached": true,
            "error": false,
            "report": {"verdict": {"decision": "deny"}, "z": 1, "a": [1, 2]},
        });
        assert_eq!(decision.to_json(), expected);
        assert_eq!(
            serde_json::to_string(&decision.view()).unwrap(),
            serde_json::to_string(&expected).unwrap(),
            "same bytes, same field order"
        );
        let failed = Decision::failed("x", None, None, "no such image");
        let v = failed.to_json();
        assert_eq!(v["reference"], Value::Null);
        assert!(v.get("policy_hash").is_none(), "no judge asked: {v}");
        assert_eq!(v["report"], Value::Null);
        assert_eq!(v["admitted"], false);
    }
}
