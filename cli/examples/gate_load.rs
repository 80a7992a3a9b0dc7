//! Load generator for `signet serve` (not a test; run by `bench/gate.sh` and `bench/soak.sh`):
//! many concurrent keep-alive HTTP/1.1 clients send the requests of a scenario file to the gate,
//! check every answer against the verdict the scenario expects, and report decisions per second,
//! latency percentiles, status counts and mismatches. Optionally it polls `/healthz` from a
//! separate connection every few milliseconds and samples the gate's resident memory.
//!
//! Usage:
//!
//! ```text
//! gate_load --target http://127.0.0.1:PORT --scenario FILE
//!           [--concurrency 64] [--requests N] [--seconds S]
//!           [--health-ms 50] [--rss-pid PID] [--rss-ms 100] [--label NAME]
//!           [--threads N]
//! ```
//!
//! `--threads` is how many threads drive the clients (default: one per CPU); on a machine the
//! gate shares, one leaves it the other CPUs.
//!
//! The scenario is JSON: `{"requests": [{"name", "method", "path", "body", "status",
//! "checks": [[JSON_POINTER, VALUE], …]}, …]}`. Request `i` (counting from 0 across all clients)
//! is entry `i % len`, so a list of N distinct entries sent N times asks for each exactly once.
//! An answer is wrong when its status differs from `status` or a check's JSON pointer does not
//! hold `VALUE`. The run stops after `--requests` requests or `--seconds` seconds, whichever comes
//! first (at least one of them must be given). The last line printed is
//! `RESULT {json}` for scripts; the exit status is 1 if any answer was wrong, any 5xx came back,
//! a request failed, or `/healthz` failed.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a program's output, not a library's

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Deserialize;
use serde_json::{json, Value};

/// Each request must be answered within this (a stuck gate counts as failed requests, not a hang).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A `/healthz` answer slower than this counts as a failure.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Mismatch descriptions kept for the report.
const MAX_EXAMPLES: usize = 10;

#[derive(Deserialize)]
struct Scenario {
    requests: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    #[serde(default = "post")]
    method: String,
    path: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    checks: Vec<(String, Value)>,
}

fn post() -> String {
    "POST".into()
}

fn ok() -> u16 {
    200
}

struct Args {
    target: String,
    scenario: PathBuf,
    concurrency: usize,
    requests: Option<u64>,
    seconds: Option<f64>,
    health_ms: Option<u64>,
    rss_pid: Option<u32>,
    rss_ms: u64,
    label: String,
    threads: Option<usize>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        target: String::new(),
        scenario: PathBuf::new(),
        concurrency: 64,
        requests: None,
        seconds: None,
        health_ms: None,
        rss_pid: None,
        rss_ms: 100,
        label: "load".into(),
        threads: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--target" => args.target = value()?.trim_end_matches('/').to_string(),
            "--scenario" => args.scenario = value()?.into(),
            "--concurrency" => args.concurrency = value()?.parse()?,
            "--requests" => args.requests = Some(value()?.parse()?),
            "--seconds" => args.seconds = Some(value()?.parse()?),
            "--health-ms" => args.health_ms = Some(value()?.parse()?),
            "--rss-pid" => args.rss_pid = Some(value()?.parse()?),
            "--rss-ms" => args.rss_ms = value()?.parse()?,
            "--label" => args.label = value()?,
            "--threads" => args.threads = Some(value()?.parse()?),
            other => bail!("unexpected argument {other:?}"),
        }
    }
    if args.target.is_empty() || args.scenario.as_os_str().is_empty() {
        bail!("--target URL and --scenario FILE are required");
    }
    if args.requests.is_none() && args.seconds.is_none() {
        bail!("give --requests N or --seconds S (or both)");
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if args.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    Ok(args)
}

/// What every client adds up.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    statuses: std::collections::BTreeMap<u16, u64>,
    per_entry: std::collections::BTreeMap<String, u64>,
    wrong: u64,
    failed: u64,
    examples: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.per_entry {
            *self.per_entry.entry(k).or_default() += v;
        }
        self.wrong += other.wrong;
        self.failed += other.failed;
        for e in other.examples {
            if self.examples.len() < MAX_EXAMPLES {
                self.examples.push(e);
            }
        }
    }
}

/// Why `entry`'s answer is wrong, if it is.
fn check(entry: &Entry, status: u16, body: &[u8]) -> Option<String> {
    if status != entry.status {
        return Some(format!(
            "{}: status {status}, expected {}: {}",
            entry.name,
            entry.status,
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ));
    }
    if entry.checks.is_empty() {
        return None;
    }
    let doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Some(format!("{}: answer is not JSON: {e}", entry.name)),
    };
    for (pointer, want) in &entry.checks {
        let got = doc.pointer(pointer);
        if got != Some(want) {
            return Some(format!(
                "{}: {pointer} is {}, expected {want}",
                entry.name,
                got.map_or_else(|| "missing".to_string(), ToString::to_string)
            ));
        }
    }
    None
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Default)]
struct Health {
    polls: u64,
    failures: u64,
    max_us: u64,
}

async fn poll_health(target: String, every: Duration, stop: Arc<AtomicBool>) -> Health {
    let mut health = Health::default();
    // Its own client: its own connection, so it does not queue behind the load's connections.
    let Ok(client) = reqwest::Client::builder().timeout(HEALTH_TIMEOUT).build() else {
        health.failures = 1;
        return health;
    };
    let url = format!("{target}/healthz");
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let started = Instant::now();
        let ok = match client.get(&url).send().await {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        };
        let took = started.elapsed().as_micros() as u64;
        health.polls += 1;
        health.max_us = health.max_us.max(took);
        if !ok {
            health.failures += 1;
        }
    }
    health
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let text = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("reading {}", args.scenario.display()))?;
    let scenario: Scenario = serde_json::from_str(&text).context("parsing the scenario")?;
    if scenario.requests.is_empty() {
        bail!("the scenario has no requests");
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        builder.worker_threads(n);
    }
    let runtime = builder.enable_all().build()?;
    let summary = runtime.block_on(run(&args, Arc::new(scenario)))?;
    let bad = summary["wrong"].as_u64() != Some(0)
        || summary["status_5xx"].as_u64() != Some(0)
        || summary["failed"].as_u64() != Some(0)
        || summary["health_failures"].as_u64().unwrap_or(0) != 0;
    println!("RESULT {summary}");
    if bad {
        std::process::exit(1);
    }
    Ok(())
}

async fn run(args: &Args, scenario: Arc<Scenario>) -> anyhow::Result<Value> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(args.concurrency)
        .http1_only()
        .tcp_nodelay(true)
        .build()?;
    let next = Arc::new(AtomicU64::new(0));
    let limit = args.requests.unwrap_or(u64::MAX);
    let deadline = args
        .seconds
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let stop = Arc::new(AtomicBool::new(false));

    // Resident memory sampler (a plain thread: it must not depend on the runtime being idle).
    let rss_peak = Arc::new(AtomicU64::new(0));
    let rss_samples = Arc::new(AtomicUsize::new(0));
    let rss_first = Arc::new(Mutex::new(None::<u64>));
    let rss_thread = args.rss_pid.map(|pid| {
        let (stop, peak, samples, first) = (
            stop.clone(),
            rss_peak.clone(),
            rss_samples.clone(),
            rss_first.clone(),
        );
        let every = Duration::from_millis(args.rss_ms);
        std::thread::spawn(move || {
            let mut last = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = vm_rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                    samples.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut f) = first.lock() {
                        f.get_or_insert(kib);
                    }
                    last = kib;
                }
                std::thread::sleep(every);
            }
            last
        })
    });
    let health = args.health_ms.map(|ms| {
        tokio::spawn(poll_health(
            args.target.clone(),
            Duration::from_millis(ms),
            stop.clone(),
        ))
    });

    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, next, scenario, target) = (
            client.clone(),
            next.clone(),
            scenario.clone(),
            args.target.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                let entry = &scenario.requests[(i % scenario.requests.len() as u64) as usize];
                let url = format!("{target}{}", entry.path);
                let method = reqwest::Method::from_bytes(entry.method.as_bytes())
                    .unwrap_or(reqwest::Method::POST);
                let mut request = client.request(method, &url);
                if let Some(body) = &entry.body {
                    request = request
                        .header("content-type", "application/json")
                        .body(body.clone());
                }
                let t0 = Instant::now();
                let answer = match request.send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        r.bytes().await.map(|b| (status, b))
                    }
                    Err(e) => Err(e),
                };
                let took = t0.elapsed();
                *tally.per_entry.entry(entry.name.clone()).or_default() += 1;
                match answer {
                    Ok((status, body)) => {
                        tally
                            .latencies_us
                            .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                        *tally.statuses.entry(status).or_default() += 1;
                        if let Some(why) = check(entry, status, &body) {
                            tally.wrong += 1;
                            if tally.examples.len() < MAX_EXAMPLES {
                                tally.examples.push(why);
                            }
                        }
                    }
                    Err(e) => {
                        tally.failed += 1;
                        if tally.examples.len() < MAX_EXAMPLES {
                            tally
                                .examples
                                .push(format!("{}: request failed: {e}", entry.name));
                        }
                    }
                }
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for w in workers {
        tally.merge(w.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let health = match health {
        Some(h) => Some(h.await?),
        None => None,
    };
    let rss_last = rss_thread.and_then(|t| t.join().ok());

    tally.latencies_us.sort_unstable();
    let answered = tally.latencies_us.len() as u64;
    let status_5xx: u64 = tally.statuses.range(500..600).map(|(_, n)| n).sum();
    let rate = answered as f64 / elapsed;
    let (p50, p90, p99, max) = (
        percentile(&tally.latencies_us, 50.0),
        percentile(&tally.latencies_us, 90.0),
        percentile(&tally.latencies_us, 99.0),
        percentile(&tally.latencies_us, 100.0),
    );
    println!(
        "{}: {answered} answers in {elapsed:.2} s = {rate:.0}/s; latency ms p50 {p50:.3} p90 {p90:.3} p99 {p99:.3} max {max:.3}",
        args.label
    );
    println!(
        "  statuses {:?}; wrong verdicts {}; failed requests {}; 5xx {status_5xx}",
        tally.statuses, tally.wrong, tally.failed
    );
    println!("  per request kind {:?}", tally.per_entry);
    for e in &tally.examples {
        println!("  example: {e}");
    }
    let mut summary = json!({
        "label": args.label,
        "concurrency": args.concurrency,
        "requests": answered + tally.failed,
        "answered": answered,
        "seconds": elapsed,
        "per_second": rate,
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "max_ms": max,
        "wrong": tally.wrong,
        "failed": tally.failed,
        "status_5xx": status_5xx,
        "statuses": tally.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "per_kind": tally.per_entry,
        "examples": tally.examples,
    });
    if let Some(h) = health {
        println!(
            "  healthz: {} polls, {} failures, max {:.3} ms",
            h.polls,
            h.failures,
            h.max_us as f64 / 1000.0
        );
        summary["health_polls"] = json!(h.polls);
        summary["health_failures"] = json!(h.failures);
        summary["health_max_ms"] = json!(h.max_us as f64 / 1000.0);
    }
    if args.rss_pid.is_some() {
        let peak = rss_peak.load(Ordering::Relaxed);
        let first = rss_first.lock().ok().and_then(|f| *f).unwrap_or(0);
        println!(
            "  gate VmRSS: first {first} KiB, peak {peak} KiB, last {} KiB ({} samples)",
            rss_last.unwrap_or(0),
            rss_samples.load(Ordering::Relaxed)
        );
        summary["rss_first_kib"] = json!(first);
        summary["rss_peak_kib"] = json!(peak);
        summary["rss_last_kib"] = json!(rss_last.unwrap_or(0));
        summary["rss_samples"] = json!(rss_samples.load(Ordering::Relaxed));
    }
    Ok(summary)
}
