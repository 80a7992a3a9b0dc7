//! The gate's Prometheus metrics, kept and written by `prometheus-client` in the OpenMetrics
//! text format (which Prometheus scrapes natively): counters, two gauges and the decision
//! latency histogram. Sample names are what they were when this was written by hand
//! (`signet_gate_decisions_total{source,result,mode}`, `signet_gate_decision_seconds_bucket{le}`,
//! …); dashboards, `bench/` and the tests read them.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of the exposition.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the decision latency histogram.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A decision's labels: source, result, mode (fixed vocabularies, so no cardinality to bound).
type DecisionLabels = [(&'static str, &'static str); 3];

/// The label values of `decisions` the gate uses (a value not listed still counts, looked up
/// in the family each time).
const SOURCES: [&str; 3] = ["proxy", "admission", "api"];
const RESULTS: [&str; 3] = ["allow", "deny", "error"];
const MODES: [&str; 3] = ["enforce", "warn", "audit"];
const DECISION_SLOTS: usize = SOURCES.len() * RESULTS.len() * MODES.len();

/// The index of a `decisions` series in `Metrics::decision_series`.
fn decision_slot(source: &str, result: &str, mode: &str) -> Option<usize> {
    let position = |names: &[&str], value: &str| names.iter().position(|n| *n == value);
    let (s, r, m) = (
        position(&SOURCES, source)?,
        position(&RESULTS, result)?,
        position(&MODES, mode)?,
    );
    Some((s * RESULTS.len() + r) * MODES.len() + m)
}

/// A notification's outcome: `sent`, `failed` (after every retry) or `dropped` (queue full).
pub(crate) type NotificationLabels = [(&'static str, &'static str); 1];

/// Continuous verification's per-verdict and per-reason gauges. Reasons are the policy's
/// finding codes (a fixed vocabulary) and `could-not-check`: bounded cardinality.
type RunningLabels = [(&'static str, String); 1];

/// The gate's metrics. Each is a handle shared with the registry that writes them.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    /// Each series of `decisions`, once looked up: the family's lookup hashes the labels and takes
    /// a lock, on every decision. Indexed by [`decision_slot`].
    decision_series: [OnceLock<Counter>; DECISION_SLOTS],
    decision_seconds: Histogram,
    pub(crate) cache_hits: Counter,
    pub(crate) cache_misses: Counter,
    pub(crate) shared_judgements: Counter,
    pub(crate) upstream_errors: Counter,
    pub(crate) blobs_cut_off: Counter,
    pub(crate) blob_streams_refused: Counter,
    pub(crate) passthrough: Counter,
    pub(crate) policy_reloads: Counter,
    cache_entries: Gauge,
    blob_streams: Gauge,
    pub(crate) rejudgements: Counter,
    pub(crate) rejudge_cycles: Counter,
    pub(crate) verdict_changes: Counter,
    pub(crate) notifications: Family<NotificationLabels, Counter>,
    running_images: Family<RunningLabels, Gauge>,
    running_reasons: Family<RunningLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        // Counter names go in without `_total`: the encoder adds it to the samples.
        registry.register(
            "signet_gate_decisions",
            "Image decisions by source, result and mode",
            decisions.clone(),
        );
        let decision_seconds = Histogram::new(BUCKETS);
        registry.register(
            "signet_gate_decision_seconds",
            "Time to reach a decision, cache hits included",
            decision_seconds.clone(),
        );
        let mut counter = |name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let cache_hits = counter("signet_gate_cache_hits", "Verdicts served from the cache");
        let cache_misses = counter("signet_gate_cache_misses", "Verdicts not in the cache");
        let shared_judgements = counter(
            "signet_gate_shared_judgements",
            "Requests that waited for a judgement already under way (single flight)",
        );
        let upstream_errors = counter(
            "signet_gate_upstream_errors",
            "Upstream registry requests that failed",
        );
        let blobs_cut_off = counter(
            "signet_gate_blobs_cut_off",
            "Proxied blobs aborted because their bytes did not match their digest or size",
        );
        let blob_streams_refused = counter(
            "signet_gate_blob_streams_refused",
            "Blob downloads refused with 429 because limits.max_blob_streams were under way",
        );
        let passthrough = counter(
            "signet_gate_passthrough",
            "Signature artifacts passed through (their subject judged, not they themselves)",
        );
        let policy_reloads = counter("signet_gate_policy_reloads", "Policies swapped in");
        let rejudgements = counter(
            "signet_gate_rejudgements",
            "Remembered images judged again (continuous verification)",
        );
        let rejudge_cycles = counter(
            "signet_gate_rejudge_cycles",
            "Re-judgement cycles over every remembered image",
        );
        let verdict_changes = counter(
            "signet_gate_verdict_changes",
            "Changes of verdict found by re-judging remembered images",
        );
        let cache_entries = Gauge::default();
        registry.register(
            "signet_gate_cache_entries",
            "Verdicts held in the cache",
            cache_entries.clone(),
        );
        let blob_streams = Gauge::default();
        registry.register(
            "signet_gate_blob_streams",
            "Blobs streaming through the proxy now",
            blob_streams.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "signet_gate_notifications",
            "Verdict-change notifications by outcome (sent, failed, dropped)",
            notifications.clone(),
        );
        let running_images = Family::<RunningLabels, Gauge>::default();
        registry.register(
            "signet_running_images",
            "Remembered (admitted) images by their verdict now: pass, warn, deny, unknown",
            running_images.clone(),
        );
        let running_reasons = Family::<RunningLabels, Gauge>::default();
        registry.register(
            "signet_running_image_reasons",
            "Remembered images that do not pass, by finding code (could-not-check when unknown)",
            running_reasons.clone(),
        );
        Metrics {
            rejudgements,
            rejudge_cycles,
            verdict_changes,
            notifications,
            running_images,
            running_reasons,
            registry,
            decisions,
            decision_series: std::array::from_fn(|_| OnceLock::new()),
            decision_seconds,
            cache_hits,
            cache_misses,
            shared_judgements,
            upstream_errors,
            blobs_cut_off,
            blob_streams_refused,
            passthrough,
            policy_reloads,
            cache_entries,
            blob_streams,
        }
    }
}

impl Metrics {
    /// Count one decision (`result`: allow, deny or error) and its latency.
    pub(crate) fn decision(
        &self,
        source: &'static str,
        result: &'static str,
        mode: &'static str,
        took: Duration,
    ) {
        let labels = [("source", source), ("result", result), ("mode", mode)];
        match decision_slot(source, result, mode) {
            Some(slot) => self.decision_series[slot]
                .get_or_init(|| self.decisions.get_or_create(&labels).clone())
                .inc(),
            None => self.decisions.get_or_create(&labels).inc(),
        };
        self.decision_seconds.observe(took.as_secs_f64());
    }

    /// Add one to `counter`.
    pub(crate) fn inc(counter: &Counter) {
        counter.inc();
    }

    /// Set the continuous-verification gauges: images per verdict and per reason, now.
    pub(crate) fn set_running(
        &self,
        verdicts: &[(crate::continuous::Standing, i64)],
        reasons: &[(String, i64)],
    ) {
        for (verdict, n) in verdicts {
            self.running_images
                .get_or_create(&[("verdict", verdict.as_str().to_string())])
                .set(*n);
        }
        // Reasons no image has any more go away rather than linger at 0.
        self.running_reasons.clear();
        for (reason, n) in reasons {
            self.running_reasons
                .get_or_create(&[("reason", reason.clone())])
                .set(*n);
        }
    }

    /// The exposition text, with the gauges read now.
    pub(crate) fn render(&self, cache_entries: usize, blob_streams: usize) -> String {
        self.cache_entries
            .set(i64::try_from(cache_entries).unwrap_or(i64::MAX));
        self.blob_streams
            .set(i64::try_from(blob_streams).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histogram() {
        let m = Metrics::default();
        m.decision("proxy", "allow", "enforce", Duration::from_millis(3));
        m.decision("proxy", "allow", "enforce", Duration::from_millis(30));
        m.decision("admission", "deny", "warn", Duration::from_secs(20));
        // A value outside the known ones is counted too, in its own series.
        m.decision("api", "deny", "dry-run", Duration::from_millis(2));
        Metrics::inc(&m.cache_hits);
        Metrics::inc(&m.blob_streams_refused);
        let text = m.render(4, 2);
        for line in [
            "signet_gate_decisions_total{source=\"proxy\",result=\"allow\",mode=\"enforce\"} 2",
            "signet_gate_decisions_total{source=\"admission\",result=\"deny\",mode=\"warn\"} 1",
            "signet_gate_decisions_total{source=\"api\",result=\"deny\",mode=\"dry-run\"} 1",
            "signet_gate_decision_seconds_bucket{le=\"0.001\"} 0",
            "signet_gate_decision_seconds_bucket{le=\"0.005\"} 2",
            "signet_gate_decision_seconds_bucket{le=\"0.05\"} 3",
            "signet_gate_decision_seconds_bucket{le=\"10.0\"} 3",
            "signet_gate_decision_seconds_bucket{le=\"+Inf\"} 4",
            "signet_gate_decision_seconds_count 4",
            "signet_gate_cache_hits_total 1",
            "signet_gate_cache_misses_total 0",
            "signet_gate_cache_entries 4",
            "signet_gate_blob_streams 2",
            "signet_gate_blob_streams_refused_total 1",
            "signet_gate_passthrough_total 0",
            "# TYPE signet_gate_decisions counter",
            "# TYPE signet_gate_decision_seconds histogram",
            "# TYPE signet_gate_blob_streams gauge",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // The sum is in seconds.
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("signet_gate_decision_seconds_sum "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 20.035).abs() < 1e-6, "{sum}");
        // Every sample line belongs to a declared metric.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let base = ["_bucket", "_sum", "_count", "_total"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            assert!(text.contains(&format!("# TYPE {base} ")), "{line}");
        }
    }
}
