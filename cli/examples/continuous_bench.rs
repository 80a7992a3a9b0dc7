//! Benchmark of continuous verification (not a test; run by `bench/continuous.sh`): N images
//! pushed to a real `docker-registry` and signed in-process, remembered by a gate, then
//! re-judged in whole cycles. Registry requests per cycle are counted from the registry's
//! access log (combined format, one line per request).
//!
//! ```text
//! continuous_bench HOST ACCESS_LOG N [PARALLEL] [PER_UPSTREAM_PER_SECOND]
//! ```
//!
//! Cycles: (a) a judge client without revalidation (every manifest and payload fetched);
//! (b) with revalidation, first cycle (fills what it keeps); (c) with revalidation against the
//! unchanged upstream (HEAD by digest, conditional GET answered 304, no blob). Prints one line
//! per cycle and `RESULT {json}` last.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use signet_gate::judge::PolicyJudge;
use signet_gate::{Gate, GateConfig};
use signet_oci::manifest::{Descriptor, OCI_CONFIG, OCI_MANIFEST};
use signet_oci::store::ImageStore;
use signet_oci::{Digest, Reference, RegistryClient, RegistryOptions};
use signet_sign::SigningKey;
use signet_verifier::sign::{sign_digest, SignOptions};

/// Requests, answers 304, and answer body bytes (the combined format's size field).
fn access_counts(log: &Path) -> (usize, usize, u64) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut requests = 0;
    let mut not_modified = 0;
    let mut bytes = 0u64;
    for line in text.lines() {
        let request = [
            "\"GET /v2/",
            "\"HEAD /v2/",
            "\"PUT /v2/",
            "\"POST /v2/",
            "\"PATCH /v2/",
        ]
        .iter()
        .any(|m| line.contains(m));
        if request {
            requests += 1;
            if line.contains("\" 304 ") {
                not_modified += 1;
            }
            // `"GET /v2/… HTTP/1.1" 200 1234 "referer" "agent"`
            if let Some(after) = line.split("HTTP/1.1\" ").nth(1) {
                bytes += after
                    .split(' ')
                    .nth(1)
                    .and_then(|b| b.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    (requests, not_modified, bytes)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let host = args[1].clone();
    let log = Path::new(&args[2]).to_path_buf();
    let n: usize = args[3].parse().unwrap();
    let parallel: usize = args.get(4).map_or(8, |p| p.parse().unwrap());
    let rate: u32 = args.get(5).map_or(100_000, |p| p.parse().unwrap());
    let options = RegistryOptions {
        use_auth_files: false,
        ..RegistryOptions::default()
    };
    let client = RegistryClient::new(options).unwrap();
    let key = SigningKey::generate();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bench.pub"), key.public_key().to_pem()).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!("keys:\n  bench: {{path: bench.pub}}\nscopes:\n  \"{host}/bench\":\n    signed: {{keys: [bench]}}\n"),
    )
    .unwrap();

    // N images: one shared layer, a config and manifest of their own; each signed.
    let started = Instant::now();
    let repo: Reference = format!("{host}/bench/app:base").parse().unwrap();
    let layer = vec![7u8; 512];
    client
        .put_blob(&repo, bytes::Bytes::from(layer.clone()))
        .await
        .unwrap();
    let layer_desc = Descriptor::of("application/vnd.oci.image.layer.v1.tar", &layer);
    let key = Arc::new(key);
    let images: Vec<(Reference, Digest)> = futures_util::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let repo = repo.clone();
            let layer_desc = layer_desc.clone();
            let key = key.clone();
            async move {
                let config = serde_json::to_vec(&serde_json::json!({
                    "architecture": "amd64", "os": "linux",
                    "config": {"Labels": {"bench.index": i.to_string()}},
                    "rootfs": {"type": "layers", "diff_ids": [layer_desc.digest.to_string()]},
                }))
                .unwrap();
                let config_desc = Descriptor::of(OCI_CONFIG, &config);
                client
                    .put_blob(&repo, bytes::Bytes::from(config))
                    .await
                    .unwrap();
                let manifest = serde_json::to_vec(&serde_json::json!({
                    "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": config_desc, "layers": [layer_desc],
                }))
                .unwrap();
                let tagged = repo.with_tag(&format!("v{i}")).unwrap();
                let digest = client
                    .put_manifest(&tagged, &manifest, OCI_MANIFEST)
                    .await
                    .unwrap();
                let store = ImageStore::Registry {
                    client: client.clone(),
                    reference: tagged.clone(),
                };
                sign_digest(&store, &tagged, &digest, &key, &SignOptions::default())
                    .await
                    .unwrap();
                (tagged.with_digest(digest.clone()), digest)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    eprintln!(
        "pushed and signed {n} images in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut results = Vec::new();
    for (label, revalidate) in [("no-revalidation", false), ("revalidation", true)] {
        let mut config = GateConfig::simple(
            policy.clone(),
            "127.0.0.1:0".parse().unwrap(),
            &format!("http://{host}"),
        )
        .unwrap();
        config.continuous.max_images = n.max(1);
        config.continuous.parallel = parallel;
        config.continuous.per_upstream_per_second = rate;
        config.timeouts.judge_seconds = 600;
        let mut judge_client = RegistryClient::new(config.registry_options().unwrap()).unwrap();
        if revalidate {
            judge_client = judge_client.with_revalidation(2 * n);
        }
        let file = signet_verifier::enforce::load_policy_file(&policy).unwrap();
        let gate = Gate::new(config, PolicyJudge::new(file, judge_client)).unwrap();
        for (reference, digest) in &images {
            gate.remember_admitted(reference.clone(), digest.clone());
        }
        let cycles = if revalidate { 2 } else { 1 };
        for cycle in 1..=cycles {
            let (before, before_304, before_bytes) = access_counts(&log);
            let t = Instant::now();
            let summary = gate.rejudge_all().await;
            let secs = t.elapsed().as_secs_f64();
            // The access log is written asynchronously; let it catch up.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let (after, after_304, after_bytes) = access_counts(&log);
            let requests = after - before;
            let body_bytes = after_bytes - before_bytes;
            let line = serde_json::json!({
                "client": label, "cycle": cycle, "images": summary.judged,
                "changed": summary.changed, "unknown": summary.unknown,
                "requests": requests, "not_modified": after_304 - before_304,
                "body_bytes": body_bytes,
                "requests_per_image": requests as f64 / n as f64,
                "seconds": secs, "images_per_second": n as f64 / secs,
                "rss_kib": rss_kib(),
            });
            println!(
                "{label:<16} cycle {cycle}: {} images, {requests} requests ({:.2}/image, {} answered 304, {body_bytes} body bytes), {secs:.2} s ({:.0} images/s), unknown {}, RSS {} MiB",
                summary.judged,
                requests as f64 / n as f64,
                after_304 - before_304,
                n as f64 / secs,
                summary.unknown,
                rss_kib() / 1024
            );
            results.push(line);
        }
    }
    println!("RESULT {}", serde_json::Value::Array(results));
}
