//! Keyless verification throughput, in process, on whatever cores the caller allows (run it
//! under `taskset -c 0` — `bench/keyless.sh` does). Two cases from `testdata/sigstore-bundles/`
//! (public-good root, embedded): `cosign-v3-blob` (v0.3 hashedrekord) and `dsse-rekor1-conda`
//! (v0.3 DSSE). Each is verified by Signet (`signet_keyless::Verifier`) and by `sigstore-verify`
//! called directly with the same root and an any-identity policy (what Signet hands it; identity
//! is policy's job in both), each root parsed once up front.
//!
//! Two figures per verifier: `full` parses the bundle JSON on every iteration (what `signet
//! verify-blob` pays per bundle), `verify` reuses a parsed bundle. Each is measured twice, with the
//! crypto provider signet-keyless installs (which sigstore-verify uses too: it ships no backend
//! without aws-lc) `accelerated` — precomputed tables for trusted-root P-384 keys, remembered
//! trusted-root certificate links, one check per distinct signature within a verification — and
//! `plain` (ring + RustCrypto only, the provider before those). Nothing persists across
//! verifications except what depends on the trusted root alone, so a stream of distinct bundles
//! gets the same speed-up as this one bundle verified over and over. Usage:
//! `keyless_bench [--secs <per run, default 1>] [--runs <default 5>]`; prints one line per
//! measurement (median verifications/s over the runs, by the wall clock and per second of this
//! thread's CPU time) and a final `RESULT <json>` line.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a program's output, not a library's

use std::error::Error;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use signet_keyless::{Artifact, Bundle, Instance, Signer, TrustSource, TrustedRoot, Verifier};

type Res<T> = Result<T, Box<dyn Error>>;

struct Case {
    name: &'static str,
    bundle_json: String,
    artifact: Vec<u8>,
}

fn load(name: &'static str) -> Res<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/sigstore-bundles")
        .join(name);
    Ok(Case {
        name,
        bundle_json: std::fs::read_to_string(dir.join("bundle.sigstore.json"))?,
        artifact: std::fs::read(dir.join("artifact"))?,
    })
}

/// This thread's time on a CPU so far, in seconds (`/proc/thread-self/schedstat`, first field,
/// nanoseconds): on a shared machine the wall-clock rate undercounts what one core can do.
fn cpu_seconds() -> Res<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let ns: u64 = stat
        .split_whitespace()
        .next()
        .ok_or("empty schedstat")?
        .parse()?;
    Ok(ns as f64 / 1e9)
}

/// Median (wall-clock, CPU-time) verifications/s of `runs` timed runs of `secs` each, after a
/// warm-up run.
fn measure(secs: f64, runs: usize, mut op: impl FnMut() -> bool) -> Res<(f64, f64)> {
    let run = |op: &mut dyn FnMut() -> bool, d: Duration| -> Res<(f64, f64)> {
        let cpu_start = cpu_seconds()?;
        let start = Instant::now();
        let mut n: u64 = 0;
        while start.elapsed() < d {
            // Fail loudly: a benchmark of failing verifications measures nothing.
            if !op() {
                return Err("a verification failed during the benchmark".into());
            }
            n += 1;
        }
        let wall = start.elapsed().as_secs_f64();
        Ok((n as f64 / wall, n as f64 / (cpu_seconds()? - cpu_start)))
    };
    run(&mut op, Duration::from_secs_f64(secs.min(0.5)))?; // warm-up (caches, allocator)
    let rates = (0..runs)
        .map(|_| run(&mut op, Duration::from_secs_f64(secs)))
        .collect::<Res<Vec<(f64, f64)>>>()?;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok((
        median(rates.iter().map(|r| r.0).collect()),
        median(rates.iter().map(|r| r.1).collect()),
    ))
}

fn main() -> Res<()> {
    let mut secs = 1.0_f64;
    let mut runs = 5_usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--secs" => secs = args.next().ok_or("--secs needs a value")?.parse()?,
            "--runs" => runs = args.next().ok_or("--runs needs a value")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if runs == 0 {
        return Err("--runs must be at least 1".into());
    }

    // Signet first: building its root installs the crypto provider sigstore-crypto needs.
    let json = Instance::PublicGood.embedded_json();
    let root =
        TrustedRoot::from_json(json.as_bytes(), TrustSource::Embedded(Instance::PublicGood))?;
    let signet = Verifier::new(&root)?;
    let direct_root = sigstore_trust_root::TrustedRoot::from_json(json)?;
    let direct = sigstore_verify::Verifier::new(&direct_root)?;
    let policy = sigstore_verify::VerificationPolicy::any_identity();

    let mut results = Vec::new();
    for case in [load("cosign-v3-blob")?, load("dsse-rekor1-conda")?] {
        let art = case.artifact.as_slice();
        let sb = Bundle::from_json(case.bundle_json.as_bytes())?;
        let db = sigstore_types::Bundle::from_json(&case.bundle_json)?;
        // Both must accept the bundle before anything is timed.
        signet.verify(Artifact::Bytes(art), &sb, Signer::Certificate)?;
        direct.verify(art, &db, &policy)?;
        eprintln!(
            "{}: {:?} {:?}, {} bytes of bundle",
            case.name,
            sb.version(),
            sb.content_kind(),
            case.bundle_json.len()
        );

        for provider in ["accelerated", "plain"] {
            signet_keyless::__bench_set_accelerated(provider == "accelerated");
            let signet_full = measure(secs, runs, || {
                Bundle::from_json(black_box(case.bundle_json.as_bytes()))
                    .and_then(|b| signet.verify(Artifact::Bytes(art), &b, Signer::Certificate))
                    .is_ok()
            })?;
            let signet_verify = measure(secs, runs, || {
                signet
                    .verify(Artifact::Bytes(black_box(art)), &sb, Signer::Certificate)
                    .is_ok()
            })?;
            let direct_full = measure(secs, runs, || {
                sigstore_types::Bundle::from_json(black_box(&case.bundle_json))
                    .map_err(|e| e.to_string())
                    .and_then(|b| direct.verify(art, &b, &policy).map_err(|e| e.to_string()))
                    .is_ok()
            })?;
            let direct_verify = measure(secs, runs, || {
                direct.verify(black_box(art), &db, &policy).is_ok()
            })?;
            for (who, what, (wall, cpu)) in [
                ("signet", "full", signet_full),
                ("signet", "verify", signet_verify),
                ("sigstore-verify", "full", direct_full),
                ("sigstore-verify", "verify", direct_verify),
            ] {
                println!(
                    "{:<18} {:<16} {:<12} {:<7} {:>7.0}/s wall-clock {:>7.0}/s per CPU-second",
                    case.name, who, provider, what, wall, cpu
                );
                results.push(serde_json::json!({
                    "case": case.name, "verifier": who, "provider": provider, "measure": what,
                    "per_second_wall": wall.round(), "per_cpu_second": cpu.round(),
                }));
            }
        }
        signet_keyless::__bench_set_accelerated(true);
    }
    println!("RESULT {}", serde_json::Value::Array(results));
    Ok(())
}
