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
#   COUNT=1 bench/keyless.sh         # instead: instructions per verification (callgrind,
#                                    # keyless/examples/keyless_count.rs), immune to machine load
#
# Results: bench/README.md, "Keyless verification".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
CORE="${CORE:-0}"

if [[ -z ${NO_BUILD:-} ]]; then
    (cd "$ROOT" && cargo build --release --locked -p signet-keyless \
        --example keyless_bench --example keyless_count >&2)
fi
if [[ -n ${COUNT:-} ]]; then
    # Instructions of N=60 minus N=20 verifications, over 40: start-up and table builds cancel.
    count() {
        valgrind --tool=callgrind --callgrind-out-file=/dev/null \
            "$TARGET/release/examples/keyless_count" "$@" 2>&1 | sed -n 's/.*Collected : //p'
    }
    for case in cosign-v3-blob dsse-rekor1-conda; do
        for who in signet sigstore-verify; do
            for provider in accelerated plain; do
                few=$(count "$case" "$who" "$provider" 20)
                many=$(count "$case" "$who" "$provider" 60)
                printf '%-18s %-16s %-12s %12d instructions per verification\n' \
                    "$case" "$who" "$provider" $(((many - few) / 40))
            done
        done
    done
    exit 0
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); pinned to core $CORE" >&2
exec taskset -c "$CORE" "$TARGET/release/examples/keyless_bench" \
    --runs "${RUNS:-5}" --secs "${SECS:-1}"
