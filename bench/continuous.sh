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
