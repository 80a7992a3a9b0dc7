#!/usr/bin/env bash
# Benchmark the gate's admission decisions for a policy with attestation requirements against the
# signature-only policy, in the same run, on loopback against Debian's docker-registry. Not a test.
#
#   bench/attest_gate.sh                          # 10 s per load phase, 3 rounds, 50 cold images
#   SECONDS_PER_PHASE=5 ROUNDS=2 COLD=20 bench/attest_gate.sh
#   NO_BUILD=1 bench/attest_gate.sh               # use the release binaries already built
#
# 1. Builds release `signet` and `cli/examples/gate_load.rs` (bench/gate.sh's `build`).
# 2. Starts docker-registry on a free 127.0.0.1 port (access log on: one line per request), and
#    three keys: release (signs images), scanner (vuln scans), builder (SLSA provenance). One
#    `signet serve` with one policy of two scopes:
#      HOST/bench/signed     signed by release                                   (signature only)
#      HOST/bench/attested   signed by release, a clean Trivy vuln scan by scanner
#                            (maxSeverity high) and SLSA v1 provenance by builder
#                            (builder id, source repository and ref)
#    bench/signed/app:v1 is signed; bench/attested/app:v1 is signed and attested with
#    `signet attest --format both` (both the legacy .att and the bundle referrer are read and
#    verified on a cold decision).
# 3. Warm: ROUNDS rounds, each alternating the two policies — admission /validate with a Pod by
#    digest (wrk, then gate_load, which checks every answer is allowed), CONNS connections,
#    SECONDS_PER_PHASE each — so machine load hits both alike; each round starts with a GET
#    /healthz control (a constant answer: what the machine allows at that moment).
# 4. Cold: COLD distinct images per kind, each judged once (64 at a time) through the verify API:
#    signature only; with both attestations as legacy .att; with both as bundle referrers.
#    Registry requests per decision counted from the registry's access log, listed by kind.
# Prints a table at the end, and for each round whether cached attested admission met the target
# (>= 50,000/s with p99 < 2 ms) beside that round's control. The load generator (wrk, gate_load)
# shares the machine's cores with the gate and the registry. Everything is loopback only, stops by
# itself and is removed after.
set -euo pipefail

# One CPU for the gate (`--workers 1`) and one for the load generator (one thread), 32
# connections. On two cores, a load generator with two threads and a gate with two workers keep
# three or four threads runnable at once, and the scheduler's time slices, not the gate, make the
# p99: the /healthz control then has a p99 of 3-4 ms. Set them to compare (bench/README.md).
GATE_WORKERS="${GATE_WORKERS:-1}"
LOAD_THREADS="${LOAD_THREADS:-1}"
CONNS="${CONNS:-32}"
GATE_BENCH_LIB=1
# shellcheck source=bench/gate.sh
source "$(dirname "${BASH_SOURCE[0]}")/gate.sh"

SECONDS_PER_PHASE="${SECONDS_PER_PHASE:-10}"
ROUNDS="${ROUNDS:-3}"
COLD="${COLD:-50}"
FIXTURES="$ROOT/testdata/attestations"

# attest KEY PREDICATE TYPE FORMAT IMAGE
attest() {
    "$SIGNET" attest --key "$1" --predicate "$2" --type "$3" --format "$4" "$5" > /dev/null
}

# setup_attest_policy: keys, the policy of the two scopes (written to $WORK/policy.yaml, which
# start_gate reads), bench/signed/app:v1 and bench/attested/app:v1. Sets SIGNED_DIGEST,
# ATTESTED_DIGEST.
setup_attest_policy() {
    local name
    for name in release scanner builder; do
        "$SIGNET" generate-key-pair --output-key-prefix "$WORK/$name" > /dev/null 2>&1
    done
    SIGNED_DIGEST="$("$SIGNET" copy "oci:$ROOT/testdata/images/single:v1" "$HOST/bench/signed/app:v1" 2> /dev/null)"
    ATTESTED_DIGEST="$("$SIGNET" copy "oci:$ROOT/testdata/images/single:v1" "$HOST/bench/attested/app:v1" 2> /dev/null)"
    "$SIGNET" sign --key "$WORK/release.key" "$HOST/bench/signed/app@$SIGNED_DIGEST" > /dev/null 2>&1
    sign_and_attest "$HOST/bench/attested/app@$ATTESTED_DIGEST" both
    cat > "$WORK/policy.yaml" <<EOF
keys:
  release: {path: release.pub}
  scanner: {path: scanner.pub}
  builder: {path: builder.pub}
default:
  reject: "not from our registry"
scopes:
  "$HOST/bench/signed":
    signed: {keys: [release]}
  "$HOST/bench/attested":
    signed: {keys: [release]}
    attestations:
      - type: vuln
        keys: [scanner]
        vulnerabilities:
          maxSeverity: high
      - type: slsaprovenance1
        keys: [builder]
        slsa:
          builderId: https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.0.0
          sourceRepository: https://github.com/example-org/app
          sourceRef: refs/tags/v1.4.2
EOF
    # The policy must allow both images before anything is measured.
    "$SIGNET" verify --policy "$WORK/policy.yaml" "$HOST/bench/signed/app@$SIGNED_DIGEST" > /dev/null
    "$SIGNET" verify --policy "$WORK/policy.yaml" "$HOST/bench/attested/app@$ATTESTED_DIGEST" > /dev/null
}

# sign_and_attest IMAGE FORMAT: signed by release; a clean vuln scan and SLSA v1 provenance in
# FORMAT (legacy, bundle or both).
sign_and_attest() {
    "$SIGNET" sign --key "$WORK/release.key" "$1" > /dev/null 2>&1
    attest "$WORK/scanner.key" "$FIXTURES/trivy-vuln-clean.json" vuln "$2" "$1"
    attest "$WORK/builder.key" "$FIXTURES/slsa-v1.json" slsaprovenance1 "$2" "$1"
}

# make_cold KIND N: N distinct images (one small layer, a config naming KIND and the index) pushed
# as bench/<scope>/KIND:cI and signed; for KIND attested-legacy and attested-bundle also attested
# in that format. Digests in $WORK/KIND.digests. Distinct digests per KIND: nothing one phase
# fetched can be remembered by the gate's client for another.
make_cold() {
    local kind=$1 n=$2 i digest scope
    case $kind in
        signed) scope=signed ;;
        *) scope=attested ;;
    esac
    python3 - "$WORK/layout-$kind" "$n" "$kind" <<'PY'
import hashlib, json, os, sys
root, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
blobs = os.path.join(root, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)
def put(data):
    h = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, h), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + h, "size": len(data)}
layer = put(f"attest-bench-layer {kind}\n".encode() * 64)
manifests = []
for i in range(n):
    config = put(json.dumps({"architecture": "amd64", "os": "linux",
                             "config": {"Labels": {"bench.kind": kind, "bench.index": str(i)}},
                             "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode())
    m = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}]}).encode())
    manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", **m,
                      "annotations": {"org.opencontainers.image.ref.name": f"c{i}"}})
with open(os.path.join(root, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(root, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": manifests}, f)
PY
    : > "$WORK/$kind.digests"
    for ((i = 0; i < n; i++)); do
        digest="$("$SIGNET" copy "oci:$WORK/layout-$kind:c$i" "$HOST/bench/$scope/$kind:c$i" 2> /dev/null)"
        case $kind in
            signed) "$SIGNET" sign --key "$WORK/release.key" "$HOST/bench/$scope/$kind@$digest" > /dev/null 2>&1 ;;
            attested-legacy) sign_and_attest "$HOST/bench/$scope/$kind@$digest" legacy ;;
            attested-bundle) sign_and_attest "$HOST/bench/$scope/$kind@$digest" bundle ;;
        esac
        echo "$digest" >> "$WORK/$kind.digests"
    done
}

# cold_phase KIND: each image of KIND judged once through the verify API (must be admitted, not
# cached); appends "KIND requests-per-decision" to $WORK/cold.results and the requests by kind to
# $WORK/cold.kinds.
cold_phase() {
    local kind=$1 scope
    case $kind in
        signed) scope=signed ;;
        *) scope=attested ;;
    esac
    python3 - "$WORK/$kind.digests" "$HOST/bench/$scope/$kind" "$WORK/cold-$kind.json" <<'EOF'
import json, sys
digests = open(sys.argv[1]).read().split()
json.dump({"requests": [{"name": "cold", "path": "/v1/verify",
                         "body": json.dumps({"image": f"{sys.argv[2]}@{d}"}),
                         "checks": [["/admitted", True], ["/cached", False]]} for d in digests]},
          open(sys.argv[3], "w"))
EOF
    local n before after
    n=$(wc -l < "$WORK/$kind.digests")
    before=$(access_lines)
    load "cold-$kind" "$WORK/cold-$kind.json" --concurrency 64 --requests "$n"
    sleep 0.5
    after=$(access_lines)
    echo "$kind $(awk -v a=$((after - before)) -v b="$n" 'BEGIN { printf "%.2f", a / b }')" >> "$WORK/cold.results"
    {
        echo "cold $kind: $((after - before)) registry requests for $n decisions, by kind:"
        grep -E '"(GET|HEAD|POST|PUT|PATCH|DELETE) /v2/' "$WORK/access.log" | tail -n +"$((before + 1))" \
            | sed -E 's/.*"(GET|HEAD|POST|PUT|PATCH|DELETE) (\/v2\/[^ ]*) HTTP[^"]*" ([0-9]+).*/\1 \2 \3/' \
            | sed -E 's/sha256[:-][0-9a-f]{64}/<digest>/g; s/\/cold:c[0-9]+/\/cold:cN/g' \
            | sort | uniq -c | sort -rn
    } >> "$WORK/cold.kinds"
}

# target_summary RESULTS: for each round, whether wrk's cached attested decisions met the target
# (>= 50,000/s with p99 < 2 ms), beside that round's /healthz control and steal.
target_summary() {
    awk '
        $1 ~ /^wrk-healthz-/ { r = substr($1, 13); control[r] = $4 }
        $1 ~ /^wrk-adm-attested-/ {
            r = substr($1, 18); n++
            ok = ($2 >= 50000 && $4 < 2)
            met += ok
            line[n] = sprintf("  round %s: %s/s, p99 %s ms: %s (control /healthz p99 %s ms, steal %s%%)",
                r, $2, $4, ok ? "met" : "missed", control[r], $10)
        }
        END {
            printf "target for cached attested admission (>= 50,000/s, p99 < 2 ms): met in %d of %d rounds\n", met, n
            for (i = 1; i <= n; i++) print line[i]
        }
    ' "$1"
}

main() {
    command -v wrk > /dev/null || { echo "install wrk (apt-get install -y wrk)" >&2; exit 2; }
    command -v jq > /dev/null || { echo "install jq" >&2; exit 2; }
    build
    setup_workdir
    start_registry
    setup_attest_policy
    echo "making 3 x $COLD cold images..." >&2
    make_cold signed "$COLD"
    make_cold attested-legacy "$COLD"
    make_cold attested-bundle "$COLD"
    start_gate
    : > "$WORK/results"
    : > "$WORK/histograms"
    : > "$WORK/cold.results"
    : > "$WORK/cold.kinds"
    echo "signet:  $SIGNET" >&2
    echo "cpus:    $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))" >&2
    echo "gate:    $GATE -> registry $HOST" >&2

    local signed="$HOST/bench/signed/app@$SIGNED_DIGEST" attested="$HOST/bench/attested/app@$ATTESTED_DIGEST"
    local kind image body
    for image in "$signed" "$attested"; do
        curl -fsS -X POST -H 'content-type: application/json' --data "{\"image\":\"$image\"}" \
            "http://$GATE/v1/verify" | jq -e '.admitted == true' > /dev/null
    done
    scenario "$WORK/adm-signed.json" adm-signed /validate "$(pod_review "$signed")" 200 /response/allowed true
    scenario "$WORK/adm-attested.json" adm-attested /validate "$(pod_review "$attested")" 200 /response/allowed true

    local r
    for ((r = 1; r <= ROUNDS; r++)); do
        # The control in every round: when a constant answer misses the p99 too, the machine did.
        echo "== round $r: control, GET /healthz" >&2
        wrk_post "healthz-$r" /healthz ""
        for kind in signed attested; do
            echo "== round $r: admission /validate, warm, Pod by digest, $kind" >&2
            image="$signed"
            [[ $kind == attested ]] && image="$attested"
            body="$(pod_review "$image")"
            wrk_post "adm-$kind-$r" /validate "$body"
            load "adm-$kind-$r" "$WORK/adm-$kind.json" --concurrency "$CONNS" --seconds "$SECONDS_PER_PHASE"
        done
    done

    for kind in signed attested-legacy attested-bundle; do
        echo "== cold: $COLD images, $kind" >&2
        cold_phase "$kind"
    done

    echo
    echo "signet serve on $(nproc) cores (--workers ${GATE_WORKERS:-default}), loopback; $CONNS connections;"
    echo "the load generator ($LOAD_THREADS threads) shares the cores"
    printf '%-26s %11s %8s %8s %7s %6s %9s %9s %6s %7s\n' "phase (tool-name)" "decisions/s" "p50 ms" "p99 ms" "errors" "wrong" "gate CPU" "reg. CPU" "load1" "steal%"
    while read -r name rate p50 p99 errors wrong cpu rcpu l steal; do
        printf '%-26s %11s %8s %8s %7s %6s %9s %9s %6s %7s\n' "$name" "$rate" "$p50" "$p99" "$errors" "$wrong" "$cpu" "$rcpu" "$l" "$steal"
    done < "$WORK/results"
    echo "(as bench/gate.sh: wrk errors = non-2xx, wrong = socket errors; gate_load errors = 5xx + failed,"
    echo " wrong = wrong verdicts; gate/reg. CPU = µs of CPU per decision; load1 when the phase started;"
    echo " steal% = share of the machine's CPU time the host took during the phase)"
    target_summary "$WORK/results"
    cat "$WORK/histograms"
    echo "registry requests per cold decision:"
    cat "$WORK/cold.results"
    cat "$WORK/cold.kinds"
    echo "gate VmRSS at the end: $(awk '/VmRSS/ { print $2 }' "/proc/$GATE_PID/status") KiB"
}

# ATTEST_BENCH_LIB=1: only define the functions (A/B scripts source this file).
if [[ -z ${ATTEST_BENCH_LIB:-} ]]; then
    main "$@"
fi
