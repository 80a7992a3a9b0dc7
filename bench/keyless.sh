#!/usr/bin/env bash
# Keyless verification throughput on ONE core, in process (keyless/examples/keyless_bench.rs):
# a v0.3 hashedrekord bundle (testdata/sigstore-bundles/cosign-v3-blob) and a v0.3 DSSE bundle
# (dsse-rekor1-conda), both against the embedded public-good root (parsed once), verified by
# Signet and by the sigstore-verify crate called directly, in the same run. Figures are the
# median verifications/s of RUNS timed runs of SECS seconds each, after a warm-up. Not a test.
#
#   bench/keyless.sh                 # 5 runs of 1 s per measurement, core 0
#   RUNS=9 SECS=2 CORE=1 bench/keyless.sh
#   NO_BUILD=1 bench/keyless.sh      # reuse target/release/examples/keyless_bench
#
# Results: bench/README.md, "Keyless verification".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
CORE="${CORE:-0}"

if [[ -z ${NO_BUILD:-} ]]; then
    (cd "$ROOT" && cargo build --release --locked -p signet-keyless --example keyless_bench >&2)
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); pinned to core $CORE" >&2
exec taskset -c "$CORE" "$TARGET/release/examples/keyless_bench" \
    --runs "${RUNS:-5}" --secs "${SECS:-1}"
