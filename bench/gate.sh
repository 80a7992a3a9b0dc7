#!/usr/bin/env bash
# Benchmark the gate (`signet serve`) on loopback against Debian's docker-registry. Not a test.
#
#   bench/gate.sh                      # 10 s per load phase, 200 cold images
#   SECONDS_PER_PHASE=5 COLD=100 bench/gate.sh
#
# 1. Builds release `signet` and the load generator `cli/examples/gate_load.rs`.
# 2. Starts docker-registry on a free 127.0.0.1 port (generated config, temp storage, access log
#    on: one line per upstream request), a key pair, a signed and an unsigned image
#    (testdata/images/single), COLD distinct signed images and one signed image with a 100 MiB
#    random layer; starts `signet serve` with a policy trusting the key for HOST/bench.
# 3. Warm cache (64 connections, SECONDS_PER_PHASE each, wrk and gate_load):
#    verify API by digest, verify API by tag (the gate HEADs the tag upstream every time, by
#    design: tags move), admission /validate with a Pod by digest and by tag.
# 4. Cold: COLD requests, each for a different signed image by digest (64 at a time); upstream
#    requests per cold verification counted from the registry's access log.
# 5. Proxy pull of the 100 MiB image with skopeo: directly, through the gate, and through peers
#    in the same run — a plain TCP relay (socat, if installed), nginx as a non-verifying reverse
#    proxy (if installed) and cli/examples/hashing_relay.rs (a TCP relay that SHA-256-hashes
#    every byte: the floor for any proxy that checks digests); round-robin, RUNS times each
#    (`PULL_ONLY=1` runs only this phase); medians and their ratios to the direct pull. Then, as
#    root with podman and Debian's dockerd installed, `podman pull` and `docker pull` directly and
#    through the gate: engines' pulls, which also unpack the layer into storage.
# Prints a table at the end. Everything is loopback only, stops by itself and is removed after.
#
# bench/soak.sh sources this file for its set-up functions (GATE_BENCH_LIB=1).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
REGISTRY_BIN=/usr/bin/docker-registry
SIGNET="$TARGET/release/signet"
GATE_LOAD="$TARGET/release/examples/gate_load"
HASHING_RELAY="$TARGET/release/examples/hashing_relay"
CONNS="${CONNS:-64}"
# Threads of the load generators (wrk -t, gate_load --threads) and the gate's --workers (empty:
# one per CPU). They share the machine's cores with the gate.
LOAD_THREADS="${LOAD_THREADS:-2}"
GATE_WORKERS="${GATE_WORKERS:-}"
# Where the gate's log goes: one line per decision, so tens of MB a second at full rate. In a
# container its stderr is a pipe; a file on tmpfs costs the gate about what a pipe does, while a
# file on a virtual machine's disk measures the disk (bench/README.md, "Where the log goes").
# Default: /dev/shm when it has GATE_LOG_MIN_FREE_KIB free, else the work directory.
GATE_LOG_DIR="${GATE_LOG_DIR:-}"
GATE_LOG_MIN_FREE_KIB="${GATE_LOG_MIN_FREE_KIB:-8388608}"
PIDS=()
WORK=""
GATE_LOG=""
GATE_LOG_OWN_DIR=""

build() {
    # NO_BUILD=1: use the binaries already in the target directory.
    if [[ -n ${NO_BUILD:-} ]]; then return 0; fi
    (cd "$ROOT" && cargo build --release --locked -p signet-cli --bin signet --example gate_load --example hashing_relay >&2)
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $WORK ]]; then rm -rf "$WORK"; fi
    if [[ -n $GATE_LOG_OWN_DIR ]]; then rm -rf "$GATE_LOG_OWN_DIR"; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# setup_workdir: WORK, GATE_LOG, HOME (no user auth files), SIGNET_PASSWORD.
setup_workdir() {
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/signet-gate-bench.XXXXXX")"
    trap cleanup EXIT
    export HOME="$WORK/home" SIGNET_PASSWORD="bench-password"
    mkdir -p "$HOME"
    local log_dir="$GATE_LOG_DIR" free_kib
    if [[ -z $log_dir && -d /dev/shm && -w /dev/shm ]]; then
        free_kib="$(df -Pk /dev/shm | awk 'NR == 2 { print $4 }')"
        if [[ $free_kib =~ ^[0-9]+$ ]] && (( free_kib >= GATE_LOG_MIN_FREE_KIB )); then
            log_dir=/dev/shm
        fi
    fi
    if [[ -n $log_dir ]]; then
        GATE_LOG_OWN_DIR="$(mktemp -d "$log_dir/signet-gate-log.XXXXXX")"
        GATE_LOG="$GATE_LOG_OWN_DIR/gate.log"
    else
        GATE_LOG="$WORK/gate.log"
    fi
    echo "gate log: $GATE_LOG ($(stat -f -c %T "$(dirname "$GATE_LOG")"))" >&2
}

# start_registry: REGISTRY_PID, HOST; the access log (combined format) is $WORK/access.log.
start_registry() {
    [[ -x $REGISTRY_BIN ]] || { echo "install Debian's docker-registry" >&2; exit 2; }
    local port
    port="$(free_port)"
    HOST="127.0.0.1:$port"
    mkdir -p "$WORK/storage"
    cat > "$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $WORK/storage
  delete:
    enabled: true
http:
  addr: $HOST
EOF
    "$REGISTRY_BIN" serve "$WORK/registry.yml" > "$WORK/access.log" 2> "$WORK/registry.log" &
    REGISTRY_PID=$!
    PIDS+=("$REGISTRY_PID")
    for _ in $(seq 100); do
        curl -fsS "http://$HOST/v2/" > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "docker-registry did not start:" >&2
    cat "$WORK/registry.log" >&2
    exit 1
}

# setup_images: keys, bench/app:v1 (signed), bench/unsigned:v1, bench/warned:v1 (unsigned,
# warn-mode scope) and the policy $WORK/policy.yaml. Sets APP_DIGEST, UNSIGNED_DIGEST,
# WARNED_DIGEST.
setup_images() {
    "$SIGNET" generate-key-pair --output-key-prefix "$WORK/release" >&2
    APP_DIGEST="$("$SIGNET" copy "oci:$ROOT/testdata/images/single:v1" "$HOST/bench/app:v1" 2> /dev/null)"
    UNSIGNED_DIGEST="$("$SIGNET" copy "oci:$ROOT/testdata/images/single:v1" "$HOST/bench/unsigned:v1" 2> /dev/null)"
    WARNED_DIGEST="$("$SIGNET" copy "oci:$ROOT/testdata/images/single:v1" "$HOST/bench/warned:v1" 2> /dev/null)"
    "$SIGNET" sign --key "$WORK/release.key" "$HOST/bench/app:v1" >&2
    cat > "$WORK/policy.yaml" <<EOF
keys:
  release: {path: release.pub}
default:
  reject: "not from our registry"
scopes:
  "$HOST/bench":
    signed: {keys: [release]}
  "$HOST/bench/warned":
    mode: warn
    signed: {keys: [release]}
EOF
}

# start_gate: GATE_PID, GATE (127.0.0.1:PORT); its log (one line per decision) is $GATE_LOG.
start_gate() {
    local port
    port="$(free_port)"
    GATE="127.0.0.1:$port"
    "$SIGNET" serve --policy "$WORK/policy.yaml" --listen "$GATE" --upstream "http://$HOST" \
        ${GATE_WORKERS:+--workers "$GATE_WORKERS"} > /dev/null 2> "$GATE_LOG" &
    GATE_PID=$!
    PIDS+=("$GATE_PID")
    for _ in $(seq 150); do
        curl -fsS "http://$GATE/readyz" > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "signet serve did not become ready:" >&2
    cat "$GATE_LOG" >&2
    exit 1
}

# pod_review IMAGE...: an AdmissionReview (v1) for a Pod with one container per image.
pod_review() {
    python3 - "$@" <<'EOF'
import json, sys
containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(sys.argv[1:])]
print(json.dumps({
    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
    "request": {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE", "namespace": "default",
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                   "spec": {"containers": containers}},
    },
}, separators=(",", ":")))
EOF
}

# scenario FILE NAME PATH BODY STATUS [POINTER VALUE]...: a one-request gate_load scenario.
scenario() {
    python3 - "$@" <<'EOF'
import json, sys
out, name, path, body, status, *checks = sys.argv[1:]
entry = {"name": name, "path": path, "body": body, "status": int(status),
         "checks": [[checks[i], json.loads(checks[i + 1])] for i in range(0, len(checks), 2)]}
json.dump({"requests": [entry]}, open(out, "w"))
EOF
}

# wrk_post NAME PATH BODY: wrk (GET when BODY is empty), CONNS connections, LOAD_THREADS threads, SECONDS_PER_PHASE; appends
# "NAME rate p50 p99 non2xx errors" to $WORK/results.
wrk_post() {
    local name=$1 path=$2 body=$3
    local lua="$WORK/$name.lua"
    # Lua long-bracket string: the body is used as is.
    local request='wrk.method = "GET"'
    if [[ -n $body ]]; then
        request="wrk.method = \"POST\"
wrk.headers[\"Content-Type\"] = \"application/json\"
wrk.body = [==[$body]==]"
    fi
    cat > "$lua" <<EOF
$request
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %.1f %.3f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
EOF
    local out t0 t1 l h0 h1 r0 r1 s0 s1
    l=$(load1)
    h0=$(decide_histogram)
    t0=$(gate_cpu_ticks)
    r0=$(registry_cpu_ticks)
    s0=$(steal_ticks)
    out="$(wrk -t"$LOAD_THREADS" -c"$CONNS" -d"${SECONDS_PER_PHASE}s" --latency -s "$lua" "http://$GATE$path")"
    t1=$(gate_cpu_ticks)
    r1=$(registry_cpu_ticks)
    s1=$(steal_ticks)
    h1=$(decide_histogram)
    echo "$out" | grep -v '^WRK' >&2
    # shellcheck disable=SC2086
    set -- $h0 $h1
    awk -v n="$name" -v c=$(($4 - $1)) -v a=$(($5 - $2)) -v b=$(($6 - $3)) 'BEGIN {
        if (c > 0) printf "%-18s in-gate decision time: %.2f%% <= 1 ms, %.2f%% <= 5 ms (%d decisions)\n", n, 100 * a / c, 100 * b / c, c
    }' >> "$WORK/histograms"
    local line n
    line="$(echo "$out" | grep '^WRK')"
    n=$(echo "$out" | awk '/requests in/ { print $1 }')
    echo "wrk-$name ${line#WRK } $(cpu_us_per_decision "$t0" "$t1" "$n") $(cpu_us_per_decision "$r0" "$r1" "$n") $l $(steal_percent "$s0" "$s1")" >> "$WORK/results"
}

# load NAME SCENARIO ARGS...: gate_load; appends "NAME rate p50 p99 5xx+failed wrong" to results.
load() {
    local name=$1 scenario_file=$2
    shift 2
    local out rc=0 t0 t1 l r0 r1 s0 s1
    l=$(load1)
    t0=$(gate_cpu_ticks)
    r0=$(registry_cpu_ticks)
    s0=$(steal_ticks)
    out="$("$GATE_LOAD" --target "http://$GATE" --scenario "$scenario_file" --label "$name" \
        --threads "$LOAD_THREADS" "$@")" || rc=$?
    t1=$(gate_cpu_ticks)
    r1=$(registry_cpu_ticks)
    s1=$(steal_ticks)
    echo "$out" | grep -v '^RESULT' >&2
    local json n
    json="$(echo "$out" | grep '^RESULT' | cut -d' ' -f2-)"
    echo "$json" > "$WORK/$name.json"
    n=$(echo "$json" | jq -r .answered)
    echo "$json" | jq -r --arg n "load-$name" --arg cpu "$(cpu_us_per_decision "$t0" "$t1" "$n")" \
        --arg rcpu "$(cpu_us_per_decision "$r0" "$r1" "$n")" --arg l "$l" \
        --arg steal "$(steal_percent "$s0" "$s1")" \
        '"\($n) \(.per_second*10|round/10) \(.p50_ms) \(.p99_ms) \(.status_5xx + .failed) \(.wrong) \($cpu) \($rcpu) \($l) \($steal)"' >> "$WORK/results"
    return $rc
}

# gate_cpu_ticks: user + system CPU time the gate has used, in clock ticks. Other processes on the
# machine (load average in the table) slow the wall-clock figures; CPU per decision moves less.
gate_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$GATE_PID/stat"; }
registry_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$REGISTRY_PID/stat"; }
TICKS_PER_SECOND="$(getconf CLK_TCK)"
# cpu_us_per_decision TICKS0 TICKS1 N
cpu_us_per_decision() {
    awk -v a="$1" -v b="$2" -v n="$3" -v hz="$TICKS_PER_SECOND" 'BEGIN { printf "%.1f", (n > 0 ? (b - a) / hz * 1e6 / n : 0) }'
}
load1() { cut -d' ' -f1 /proc/loadavg; }
# steal_ticks: "steal total" CPU ticks of the whole machine (/proc/stat): time a virtual
# machine's CPUs wanted to run while the host ran something else.
steal_ticks() { awk '/^cpu / { print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
# steal_percent "S0 T0" "S1 T1": stolen share of the CPU time between the two readings.
steal_percent() {
    # shellcheck disable=SC2086
    set -- $1 $2
    awk -v s="$(($3 - $1))" -v t="$(($4 - $2))" 'BEGIN { printf "%.1f", (t > 0 ? 100 * s / t : 0) }'
}
# decide_histogram: "count le_1ms le_5ms" of the gate's own decision-time histogram (/metrics:
# time inside the gate from parsed request to decision, without HTTP or the client's scheduling).
decide_histogram() {
    curl -fsS "http://$GATE/metrics" | awk '
        /^signet_gate_decision_seconds_count / { c = $2 }
        /^signet_gate_decision_seconds_bucket\{le="0.001"\}/ { a = $2 }
        /^signet_gate_decision_seconds_bucket\{le="0.005"\}/ { b = $2 }
        END { print c + 0, a + 0, b + 0 }'
}

access_lines() { grep -cE '"(GET|HEAD|POST|PUT|PATCH|DELETE) /v2/' "$WORK/access.log" || true; }

# make_cold_images N: N distinct images (same layer, distinct config) pushed as bench/cold:cI and
# signed; their digests in $WORK/cold.digests.
make_cold_images() {
    local n=$1
    python3 - "$WORK/cold-layout" "$n" <<'EOF'
import hashlib, json, os, sys
root, n = sys.argv[1], int(sys.argv[2])
blobs = os.path.join(root, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)
def put(data):
    h = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, h), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + h, "size": len(data)}
layer = put(b"cold-bench-layer\n" * 64)
manifests = []
for i in range(n):
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Labels": {"bench.index": str(i)}},
                         "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}},
                        separators=(",", ":")).encode()
    c = put(config)
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **c},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}]},
                   separators=(",", ":")).encode()
    d = put(m)
    manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", **d,
                      "annotations": {"org.opencontainers.image.ref.name": f"c{i}"}})
with open(os.path.join(root, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(root, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": manifests}, f)
EOF
    : > "$WORK/cold.digests"
    local i digest
    for ((i = 0; i < n; i++)); do
        digest="$("$SIGNET" copy "oci:$WORK/cold-layout:c$i" "$HOST/bench/cold:c$i" 2> /dev/null)"
        "$SIGNET" sign --key "$WORK/release.key" "$HOST/bench/cold@$digest" > /dev/null 2>&1
        echo "$digest" >> "$WORK/cold.digests"
    done
}

# make_big_image: a layout with one 100 MiB layer (a tar of random bytes), pushed as bench/big:v1
# and signed.
make_big_image() {
    python3 - "$WORK/big-layout" <<'EOF'
import hashlib, json, os, sys
root = sys.argv[1]
blobs = os.path.join(root, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)
def put(data):
    h = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, h), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + h, "size": len(data)}
# A tar with one 100 MiB file of random bytes: incompressible, and a real layer that engines
# (podman) can unpack.
import io, tarfile
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
    info = tarfile.TarInfo("random.bin")
    info.size = 100 * 1024 * 1024
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(os.urandom(info.size)))
layer = put(buf.getvalue())
config = put(json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/random.bin"]},
                         "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode())
m = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}]}).encode())
with open(os.path.join(root, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(root, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", **m,
               "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}, f)
EOF
    "$SIGNET" copy "oci:$WORK/big-layout:v1" "$HOST/bench/big:v1" > /dev/null 2>&1
    "$SIGNET" sign --key "$WORK/release.key" "$HOST/bench/big:v1" > /dev/null 2>&1
    rm -rf "$WORK/big-layout"
}

# pull_seconds FROM_HOST: seconds for skopeo to copy bench/big:v1 from FROM_HOST to a fresh layout.
pull_seconds() {
    local from=$1 dest="$WORK/pulled" t0 t1
    rm -rf "$dest"
    t0=$(date +%s%N)
    skopeo --insecure-policy copy --quiet --src-tls-verify=false \
        "docker://$from/bench/big:v1" "oci:$dest:v1" >&2
    t1=$(date +%s%N)
    rm -rf "$dest"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'
}

# start_pull_peers: the proxies the gate's pull is compared with, as "name host:port" lines in
# $WORK/peers. Each forwards to the registry; none verifies anything, and hashing_relay hashes
# every byte (and compares nothing).
start_pull_peers() {
    local port
    : > "$WORK/peers"
    if command -v socat > /dev/null; then
        port="$(free_port)"
        socat -b 1048576 "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" "TCP:$HOST" 2> /dev/null &
        PIDS+=($!)
        echo "socat-relay 127.0.0.1:$port" >> "$WORK/peers"
    fi
    if [[ -x /usr/sbin/nginx ]]; then
        port="$(free_port)"
        mkdir -p "$WORK/nginx"
        cat > "$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  server {
    listen 127.0.0.1:$port;
    location /v2/ {
      proxy_pass http://$HOST;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_buffering off;
    }
  }
}
EOF
        /usr/sbin/nginx -c "$WORK/nginx/nginx.conf" 2> /dev/null &
        PIDS+=($!)
        echo "nginx-proxy 127.0.0.1:$port" >> "$WORK/peers"
    fi
    port="$(free_port)"
    "$HASHING_RELAY" "127.0.0.1:$port" "$HOST" &
    PIDS+=($!)
    echo "hashing-relay 127.0.0.1:$port" >> "$WORK/peers"
    local name address
    while read -r name address; do
        for _ in $(seq 50); do
            curl -fsS "http://$address/v2/" > /dev/null 2>&1 && break
            sleep 0.1
        done
    done < "$WORK/peers"
}

# pull_phase: RUNS round-robin pulls of bench/big:v1 from the registry, the gate and each peer;
# writes the result table to $WORK/pull.table.
pull_phase() {
    start_pull_peers
    local targets=("direct $HOST" "signet-gate $GATE")
    local line
    while read -r line; do targets+=("$line"); done < "$WORK/peers"
    echo "== proxy pull of a 100 MiB image: ${#targets[@]} ways, $RUNS runs each, round-robin" >&2
    local target name address r g0 g1 pull_ticks=0
    # One unmeasured pull each: the gate judges the image on its first pull; caches warm.
    for target in "${targets[@]}"; do
        read -r name address <<< "$target"
        pull_seconds "$address" > /dev/null
        : > "$WORK/pull-$name.times"
    done
    for ((r = 0; r < RUNS; r++)); do
        for target in "${targets[@]}"; do
            read -r name address <<< "$target"
            g0=$(gate_cpu_ticks)
            pull_seconds "$address" >> "$WORK/pull-$name.times"
            echo >> "$WORK/pull-$name.times"
            g1=$(gate_cpu_ticks)
            if [[ $name == signet-gate ]]; then pull_ticks=$((pull_ticks + g1 - g0)); fi
        done
    done
    local direct median_s
    direct=$(median < "$WORK/pull-direct.times")
    {
        echo "100 MiB pull with skopeo (to an OCI layout), median of $RUNS, load1 now $(load1):"
        for target in "${targets[@]}"; do
            read -r name address <<< "$target"
            median_s=$(median < "$WORK/pull-$name.times")
            printf '  %-14s %6.3f s  %5.2fx   runs: %s\n' "$name" "$median_s" \
                "$(awk -v a="$median_s" -v b="$direct" 'BEGIN { print a / b }')" \
                "$(tr '\n' ' ' < "$WORK/pull-$name.times")"
        done
        echo "  the gate's CPU per proxied pull (SHA-256 of 100 MiB, two socket copies): $(awk -v t="$pull_ticks" -v n="$RUNS" -v hz="$TICKS_PER_SECOND" 'BEGIN { printf "%.0f", t / hz * 1000 / n }') ms"
    } > "$WORK/pull.table"
    cat "$WORK/pull.table" >&2
    podman_phase
    docker_phase
}

# podman_pull_seconds FROM_HOST: seconds for podman (rootful, vfs storage in a fresh directory)
# to pull bench/big:v1 from FROM_HOST: fetch, check and unpack into its storage, as engines do.
podman_pull_seconds() {
    local from=$1 root="$WORK/podman" t0 t1
    rm -rf "$root"
    t0=$(date +%s%N)
    podman --root "$root/root" --runroot "$root/run" --storage-driver vfs --events-backend file \
        pull --quiet --tls-verify=false "$from/bench/big:v1" > /dev/null
    t1=$(date +%s%N)
    rm -rf "$root"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'
}

# engine_pulls ENGINE PULL_FUNCTION: RUNS round-robin pulls with PULL_FUNCTION HOST (it prints
# seconds), directly and through the gate, after one unmeasured pull each; appends the medians
# and their ratio to $WORK/pull.table.
engine_pulls() {
    local engine=$1 pull=$2 r
    echo "== $engine pull of the 100 MiB image, directly and through the gate, $RUNS runs each" >&2
    "$pull" "$GATE" > /dev/null
    "$pull" "$HOST" > /dev/null
    : > "$WORK/$engine-direct.times"
    : > "$WORK/$engine-gate.times"
    for ((r = 0; r < RUNS; r++)); do
        "$pull" "$HOST" >> "$WORK/$engine-direct.times"; echo >> "$WORK/$engine-direct.times"
        "$pull" "$GATE" >> "$WORK/$engine-gate.times"; echo >> "$WORK/$engine-gate.times"
    done
    local direct gate
    direct=$(median < "$WORK/$engine-direct.times")
    gate=$(median < "$WORK/$engine-gate.times")
    {
        echo "100 MiB pull with $engine 'pull' (fetch, check, unpack into vfs storage), median of $RUNS:"
        printf '  %-14s %6.3f s  %5.2fx   runs: %s\n' direct "$direct" 1 "$(tr '\n' ' ' < "$WORK/$engine-direct.times")"
        printf '  %-14s %6.3f s  %5.2fx   runs: %s\n' signet-gate "$gate" \
            "$(awk -v a="$gate" -v b="$direct" 'BEGIN { print a / b }')" "$(tr '\n' ' ' < "$WORK/$engine-gate.times")"
    } >> "$WORK/pull.table"
    tail -3 "$WORK/pull.table" >&2
}

# podman_phase: podman pulls (rootful: root only), into fresh vfs storage each time.
podman_phase() {
    if ! command -v podman > /dev/null || [[ $(id -u) != 0 ]]; then
        echo "podman pull: skipped (needs podman and root)" >> "$WORK/pull.table"
        return 0
    fi
    engine_pulls podman podman_pull_seconds
}

# docker_pull_seconds FROM_HOST: seconds for the benchmark's Docker engine to pull bench/big:v1
# from FROM_HOST, both tags removed first so that every layer is fetched.
docker_pull_seconds() {
    local t0 t1
    docker rmi -f "$HOST/bench/big:v1" "$GATE/bench/big:v1" > /dev/null 2>&1 || true
    t0=$(date +%s%N)
    docker pull --quiet "$1/bench/big:v1" > /dev/null
    t1=$(date +%s%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'
}

# docker_phase: as root with Debian's dockerd, a Docker engine of the benchmark's own (data, run
# state and socket in $WORK, vfs storage, no networking set-up), stopped with SIGTERM after.
docker_phase() {
    if ! command -v dockerd > /dev/null || ! command -v docker > /dev/null || [[ $(id -u) != 0 ]]; then
        echo "docker pull: skipped (needs dockerd, docker and root)" >> "$WORK/pull.table"
        return 0
    fi
    local d="$WORK/docker"
    mkdir -p "$d"
    dockerd --host "unix://$d/d.sock" --data-root "$d/data" --exec-root "$d/x" --pidfile "$d/d.pid" \
        --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
        --containerd-namespace signet-bench --containerd-plugins-namespace signet-bench-plugins \
        > "$d/dockerd.log" 2>&1 &
    local dockerd_pid=$!
    local -x DOCKER_HOST="unix://$d/d.sock" DOCKER_CONFIG="$d/client"
    for _ in $(seq 100); do docker version > /dev/null 2>&1 && break; sleep 0.2; done
    engine_pulls docker docker_pull_seconds
    kill -TERM "$dockerd_pid" 2> /dev/null || true
    wait "$dockerd_pid" 2> /dev/null || true
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

main() {
    SECONDS_PER_PHASE="${SECONDS_PER_PHASE:-10}"
    COLD="${COLD:-200}"
    RUNS="${RUNS:-9}"
    if [[ -z ${PULL_ONLY:-} ]]; then
        command -v wrk > /dev/null || { echo "install wrk (apt-get install -y wrk)" >&2; exit 2; }
    fi
    command -v skopeo > /dev/null || { echo "install skopeo" >&2; exit 2; }
    build
    setup_workdir
    start_registry
    setup_images
    if [[ -n ${PULL_ONLY:-} ]]; then
        make_big_image
        start_gate
        pull_phase > /dev/null 2>&1
        echo
        cat "$WORK/pull.table"
        return 0
    fi
    echo "making $COLD cold images and the 100 MiB image..." >&2
    make_cold_images "$COLD"
    make_big_image
    start_gate
    : > "$WORK/results"
    : > "$WORK/histograms"
    echo "signet:  $SIGNET" >&2
    echo "cpus:    $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))" >&2
    echo "gate:    $GATE -> registry $HOST" >&2

    local by_digest="$HOST/bench/app@$APP_DIGEST" by_tag="$HOST/bench/app:v1"
    local body
    # Warm the cache for both names (the key is repository + digest + policy).
    curl -fsS -X POST -H 'content-type: application/json' --data "{\"image\":\"$by_digest\"}" "http://$GATE/v1/verify" > /dev/null
    curl -fsS -X POST -H 'content-type: application/json' --data "{\"image\":\"$by_tag\"}" "http://$GATE/v1/verify" > /dev/null

    echo "== control: GET /healthz (no decision; what HTTP alone costs on this machine now)" >&2
    wrk_post healthz /healthz ""
    echo "== verify API, warm, by digest" >&2
    body="{\"image\":\"$by_digest\"}"
    scenario "$WORK/api-digest.json" api-digest /v1/verify "$body" 200 /admitted true /cached true
    wrk_post api-digest /v1/verify "$body"
    load api-digest "$WORK/api-digest.json" --concurrency "$CONNS" --seconds "$SECONDS_PER_PHASE"

    echo "== verify API, warm, by tag (one upstream HEAD per request)" >&2
    body="{\"image\":\"$by_tag\"}"
    scenario "$WORK/api-tag.json" api-tag /v1/verify "$body" 200 /admitted true /cached true
    local before after
    before=$(access_lines)
    wrk_post api-tag /v1/verify "$body"
    after=$(access_lines)
    echo "   registry requests during wrk api-tag: $((after - before))" >&2
    load api-tag "$WORK/api-tag.json" --concurrency "$CONNS" --seconds "$SECONDS_PER_PHASE"

    echo "== admission /validate, warm, Pod by digest" >&2
    body="$(pod_review "$by_digest")"
    scenario "$WORK/adm-digest.json" admission-digest /validate "$body" 200 /response/allowed true
    wrk_post admission-digest /validate "$body"
    load admission-digest "$WORK/adm-digest.json" --concurrency "$CONNS" --seconds "$SECONDS_PER_PHASE"

    echo "== admission /validate, warm, Pod by tag" >&2
    body="$(pod_review "$by_tag")"
    scenario "$WORK/adm-tag.json" admission-tag /validate "$body" 200 /response/allowed true
    wrk_post admission-tag /validate "$body"
    load admission-tag "$WORK/adm-tag.json" --concurrency "$CONNS" --seconds "$SECONDS_PER_PHASE"

    echo "== cold: $COLD distinct signed images by digest" >&2
    python3 - "$WORK/cold.digests" "$HOST" "$WORK/cold.json" <<'EOF'
import json, sys
digests = open(sys.argv[1]).read().split()
host = sys.argv[2]
json.dump({"requests": [{"name": "cold", "path": "/v1/verify",
                         "body": json.dumps({"image": f"{host}/bench/cold@{d}"}),
                         "checks": [["/admitted", True], ["/cached", False]]} for d in digests]},
          open(sys.argv[3], "w"))
EOF
    before=$(access_lines)
    local cold_from=$((before + 1))
    load cold "$WORK/cold.json" --concurrency "$CONNS" --requests "$COLD"
    sleep 0.5
    after=$(access_lines)
    local upstream=$((after - before))
    local per_cold
    per_cold=$(awk -v a="$upstream" -v b="$COLD" 'BEGIN { printf "%.2f", a / b }')
    echo "   upstream requests: $upstream for $COLD cold verifications = $per_cold each; by kind:" >&2
    grep -E '"(GET|HEAD|POST|PUT|PATCH|DELETE) /v2/' "$WORK/access.log" | tail -n +"$cold_from" \
        | sed -E 's/.*"(GET|HEAD|POST|PUT|PATCH|DELETE) (\/v2\/[^ ]*) HTTP[^"]*" ([0-9]+).*/\1 \2 \3/' \
        | sed -E 's/sha256[:-][0-9a-f]{64}/<digest>/g' | sort | uniq -c | sort -rn >&2

    pull_phase
    local gate_rss
    gate_rss=$(awk '/VmRSS/ { print $2 }' "/proc/$GATE_PID/status")

    echo
    echo "signet serve on $(nproc) cores, loopback; $CONNS connections; load generator on the same cores"
    printf '%-24s %11s %8s %8s %7s %6s %9s %9s %6s %7s\n' "phase (tool-name)" "decisions/s" "p50 ms" "p99 ms" "errors" "wrong" "gate CPU" "reg. CPU" "load1" "steal%"
    while read -r name rate p50 p99 errors wrong cpu rcpu l steal; do
        printf '%-24s %11s %8s %8s %7s %6s %9s %9s %6s %7s\n' "$name" "$rate" "$p50" "$p99" "$errors" "$wrong" "$cpu" "$rcpu" "$l" "$steal"
    done < "$WORK/results"
    echo "(wrk: errors = non-2xx answers, wrong = socket errors; gate_load: errors = 5xx + failed, wrong = wrong"
    echo " verdicts; gate CPU, reg. CPU = microseconds of user+system CPU per decision used by the gate and"
    echo " by docker-registry (2 cores / gate CPU = the gate's CPU-bound ceiling); load1 = the machine's"
    echo " 1-minute load average when the phase started: other work on the machine slows the wall-clock columns)"
    cat "$WORK/histograms"
    echo "cold: $upstream upstream requests for $COLD verifications by digest = $per_cold per verification"
    cat "$WORK/pull.table"
    echo "gate VmRSS at the end: ${gate_rss} KiB; decision log lines: $(wc -l < "$GATE_LOG")"
}

if [[ -z ${GATE_BENCH_LIB:-} ]]; then
    main "$@"
fi
