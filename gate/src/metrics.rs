//! Prometheus metrics in the text exposition format (version 0.0.4), written by hand: a few
//! counters and one histogram do not need a metrics crate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the decision latency histogram.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The gate's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// (source, result, mode) → count.
    decisions: Mutex<BTreeMap<(&'static str, &'static str, &'static str), u64>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    pub(crate) shared_judgements: AtomicU64,
    pub(crate) upstream_errors: AtomicU64,
    pub(crate) blobs_cut_off: AtomicU64,
    pub(crate) blob_streams_refused: AtomicU64,
    pub(crate) passthrough: AtomicU64,
    pub(crate) policy_reloads: AtomicU64,
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
        if let Ok(mut map) = self.decisions.lock() {
            *map.entry((source, result, mode)).or_insert(0) += 1;
        }
        let seconds = took.as_secs_f64();
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Add one to `counter`.
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub(crate) fn render(&self, cache_entries: usize, blob_streams: usize) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP signet_gate_decisions_total Image decisions by source, result and mode.\n",
        );
        out.push_str("# TYPE signet_gate_decisions_total counter\n");
        if let Ok(map) = self.decisions.lock() {
            for ((source, result, mode), count) in map.iter() {
                let _ = writeln!(
                    out,
                    "signet_gate_decisions_total{{source=\"{source}\",result=\"{result}\",mode=\"{mode}\"}} {count}"
                );
            }
        }
        out.push_str(
            "# HELP signet_gate_decision_seconds Time to reach a decision, cache hits included.\n",
        );
        out.push_str("# TYPE signet_gate_decision_seconds histogram\n");
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "signet_gate_decision_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "signet_gate_decision_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "signet_gate_decision_seconds_sum {sum}");
        let _ = writeln!(out, "signet_gate_decision_seconds_count {count}");
        for (name, help, counter) in [
            (
                "signet_gate_cache_hits_total",
                "Verdicts served from the cache.",
                &self.cache_hits,
            ),
            (
                "signet_gate_cache_misses_total",
                "Verdicts not in the cache.",
                &self.cache_misses,
            ),
            (
                "signet_gate_shared_judgements_total",
                "Requests that waited for a judgement already under way (single flight).",
                &self.shared_judgements,
            ),
            (
                "signet_gate_upstream_errors_total",
                "Upstream registry requests that failed.",
                &self.upstream_errors,
            ),
            (
                "signet_gate_blobs_cut_off_total",
                "Proxied blobs aborted because their bytes did not match their digest or size.",
                &self.blobs_cut_off,
            ),
            (
                "signet_gate_blob_streams_refused_total",
                "Blob downloads refused with 429 because limits.max_blob_streams were under way.",
                &self.blob_streams_refused,
            ),
            (
                "signet_gate_passthrough_total",
                "Signature manifests passed through unjudged.",
                &self.passthrough,
            ),
            (
                "signet_gate_policy_reloads_total",
                "Policies swapped in.",
                &self.policy_reloads,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
        }
        out.push_str("# HELP signet_gate_cache_entries Verdicts held in the cache.\n");
        out.push_str("# TYPE signet_gate_cache_entries gauge\n");
        let _ = writeln!(out, "signet_gate_cache_entries {cache_entries}");
        out.push_str("# HELP signet_gate_blob_streams Blobs streaming through the proxy now.\n");
        out.push_str("# TYPE signet_gate_blob_streams gauge\n");
        let _ = writeln!(out, "signet_gate_blob_streams {blob_streams}");
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
        Metrics::inc(&m.cache_hits);
        Metrics::inc(&m.blob_streams_refused);
        let text = m.render(4, 2);
        for line in [
            "signet_gate_decisions_total{source=\"proxy\",result=\"allow\",mode=\"enforce\"} 2",
            "signet_gate_decisions_total{source=\"admission\",result=\"deny\",mode=\"warn\"} 1",
            "signet_gate_decision_seconds_bucket{le=\"0.001\"} 0",
            "signet_gate_decision_seconds_bucket{le=\"0.005\"} 1",
            "signet_gate_decision_seconds_bucket{le=\"0.05\"} 2",
            "signet_gate_decision_seconds_bucket{le=\"10\"} 2",
            "signet_gate_decision_seconds_bucket{le=\"+Inf\"} 3",
            "signet_gate_decision_seconds_count 3",
            "signet_gate_cache_hits_total 1",
            "signet_gate_cache_entries 4",
            "signet_gate_blob_streams 2",
            "signet_gate_blob_streams_refused_total 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample line belongs to a declared metric.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {base} ")), "{line}");
        }
    }
}
