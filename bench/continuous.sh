#!/usr/bin/env bash
# Benchmark continuous verification: N (default 10,000) images pushed to Debian's docker-registry
# and signed, remembered by a gate, then re-judged in whole cycles (cli/examples/continuous_bench.rs).
# Not a test.
#
#   bench/continuous.sh                  # 10,000 images, 8 re-judgements at a time
#   N=1000 PARALLEL=16 bench/continuous.sh
#   RATE=50 N=500 bench/continuous.sh    # with the per-upstream rate limit (re-judgements/s)
#
# Registry requests per cycle come from the registry's access log (one line per request).
# Cycles: without revalidation (manifest, .sig manifest and payload fetched for every image),
# then with revalidation: first cycle (fills what it keeps) and again against the unchanged
# upstream (HEAD of the manifest by digest + conditional GET of the .sig tag, answered 304; no
# blob). Loopback only; everything stops and is removed afterwards.
#
# Measured (2026-12-02, 2-core machine shared with other builds, release build, docker-registry
# 2.8 on loopback, 10,000 signed images, 8 at a time, no rate limit):
#   without revalidation           30,000 requests (3.0/image), 11.9 MB of bodies, 81 s (123 images/s)
#   revalidation, first cycle      30,000 requests (3.0/image), 11.9 MB,           85 s (118 images/s)
#   revalidation, unchanged        20,000 requests (2.0/image: 10,000 HEAD + 10,000 304), no body
#                                  bytes (the access log shows HEAD's Content-Length), 34 s (293 images/s)
# What is kept costs ~6 KB per image (RSS of the benchmark process 96 → 152 MiB for 10,000).
# At the default per_upstream_per_second (50) a cycle of 10,000 images takes at least 200 s.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GATE_BENCH_LIB=1 source "$ROOT/bench/gate.sh"
N="${N:-10000}"
PARALLEL="${PARALLEL:-8}"
RATE="${RATE:-100000}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

if [[ -z ${NO_BUILD:-} ]]; then
    (cd "$ROOT" && cargo build --release --locked -p signet-cli --example continuous_bench >&2)
fi
setup_workdir
start_registry
echo "registry at $HOST; $N images, $PARALLEL at a time, at most $RATE re-judgements/s" >&2
"$TARGET/release/examples/continuous_bench" "$HOST" "$WORK/access.log" "$N" "$PARALLEL" "$RATE"
