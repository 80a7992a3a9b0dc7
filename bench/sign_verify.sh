#!/usr/bin/env bash
# Benchmark `signet sign` and `signet verify` against a real registry, with sigstore-rs (the
# `sigstore` crate 0.15, an independent cosign implementation) verifying the same image in the
# same run. Not a test.
#
#   bench/sign_verify.sh              # N=15 runs per command
#   N=31 bench/sign_verify.sh
#
# 1. Builds the release binary and two small example programs (cli/examples/): sigstore_verify
#    (sigstore-rs) and verify_loop (signet_verifier::verify::verify_image in a loop).
# 2. Starts Debian's docker-registry on a free 127.0.0.1 port (generated config, temp storage,
#    access log on), pushes testdata/images/single, signs it once.
# 3. Median wall time per command (hyperfine if installed, else a date +%s%N loop): signet sign
#    on a second image (its signature manifest deleted before each run, so each run writes a first
#    signature; and once more without deleting), signet verify, sigstore-rs verify. Each run is a
#    new process: key decryption (scrypt) and process start are included.
# 4. In-process verifications per second (verify_loop) against the registry and an OCI layout.
# 5. HTTP requests per verify of a tagged image with one signature, counted from the registry's
#    access log, for signet and sigstore-rs; the request lines are printed.
# Everything is removed afterwards; the registry is stopped.
set -euo pipefail

N="${N:-15}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
REGISTRY_BIN=/usr/bin/docker-registry
[[ -x $REGISTRY_BIN ]] || { echo "install Debian's docker-registry" >&2; exit 2; }

(cd "$ROOT" && cargo build --release --locked -p signet-cli --bin signet \
    --example sigstore_verify --example verify_loop >&2)
SIGNET="$TARGET/release/signet"
RS_VERIFY="$TARGET/release/examples/sigstore_verify"
VERIFY_LOOP="$TARGET/release/examples/verify_loop"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/signet-bench.XXXXXX")"
REGISTRY_PID=""
cleanup() {
    if [[ -n $REGISTRY_PID ]]; then kill "$REGISTRY_PID" 2>/dev/null || true; wait "$REGISTRY_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# A clean environment for signet: no user auth files, the password from the environment.
export HOME="$WORK/home" SIGNET_PASSWORD="bench-password"
mkdir -p "$HOME"

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
HOST="127.0.0.1:$PORT"
mkdir -p "$WORK/storage"
cat > "$WORK/config.yml" <<EOF
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
# The access log (combined format, one line per request) goes to stdout; the rest to stderr.
"$REGISTRY_BIN" serve "$WORK/config.yml" > "$WORK/access.log" 2> "$WORK/registry.log" &
REGISTRY_PID=$!
for _ in $(seq 100); do
    curl -fsS "http://$HOST/v2/" > /dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://$HOST/v2/" > /dev/null

"$SIGNET" generate-key-pair --output-key-prefix "$WORK/bench" >&2
IMAGE="$HOST/bench/app:v1"
SIGN_IMAGE="$HOST/bench/sign:v1"
"$SIGNET" copy "oci:$ROOT/testdata/images/single:v1" "$IMAGE" >&2
"$SIGNET" copy "oci:$ROOT/testdata/images/single:v1" "$SIGN_IMAGE" >&2
"$SIGNET" sign --key "$WORK/bench.key" "$IMAGE" >&2
"$SIGNET" verify --key "$WORK/bench.pub" "$IMAGE" > /dev/null 2>&1
"$RS_VERIFY" "$IMAGE" "$WORK/bench.pub" >&2
"$SIGNET" copy "$IMAGE" "oci:$WORK/layout:v1" >&2

# median_ms NAME COMMAND [PREPARE]: median wall time of N runs of COMMAND, in milliseconds;
# PREPARE (not timed) runs before each.
median_ms() {
    local name=$1 cmd=$2 prepare=${3:-true}
    if command -v hyperfine > /dev/null; then
        hyperfine --style none --warmup 2 --runs "$N" -N --prepare "$prepare" \
            --export-json "$WORK/$name.json" "$cmd" > /dev/null
        python3 -c 'import json,sys; print("%.1f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$WORK/$name.json"
    else
        local times=() start end
        for _ in $(seq "$N"); do
            bash -c "$prepare" > /dev/null 2>&1
            start=$(date +%s%N)
            bash -c "$cmd" > /dev/null 2>&1
            end=$(date +%s%N)
            times+=($(( (end - start) / 1000 )))
        done
        printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f\n", a[int((NR+1)/2)]/1000}'
    fi
}

# unsign.sh: delete the signature manifest of $SIGN_IMAGE (registry delete is enabled), so that
# each timed `signet sign` writes a first signature instead of finding its own and stopping.
SIGN_DIGEST=$("$SIGNET" digest "$SIGN_IMAGE")
SIG_TAG="sha256-${SIGN_DIGEST#sha256:}.sig"
cat > "$WORK/unsign.sh" <<EOF
d=\$(curl -fsSI -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$HOST/v2/bench/sign/manifests/$SIG_TAG" | tr -d '\r' | awk -F': ' 'tolower(\$1)=="docker-content-digest" {print \$2}')
if [ -n "\$d" ]; then curl -fsS -X DELETE "http://$HOST/v2/bench/sign/manifests/\$d" > /dev/null; fi
EOF

SIGN_MS=$(median_ms sign "$SIGNET sign --key $WORK/bench.key $SIGN_IMAGE" "bash $WORK/unsign.sh")
# Signing again with the same key: Signet finds its own signature and writes nothing.
RESIGN_MS=$(median_ms resign "$SIGNET sign --key $WORK/bench.key $SIGN_IMAGE")
VERIFY_MS=$(median_ms verify "$SIGNET verify --key $WORK/bench.pub $IMAGE")
VERIFY_DIGEST_MS=$(median_ms verify-digest "$SIGNET verify --key $WORK/bench.pub $HOST/bench/app@$("$SIGNET" digest "$IMAGE")")
RS_MS=$(median_ms sigstore "$RS_VERIFY $IMAGE $WORK/bench.pub")

LOOP_REGISTRY=$("$VERIFY_LOOP" --key "$WORK/bench.pub" --seconds 5 "$IMAGE" | awk '{print $4}')
LOOP_LAYOUT=$("$VERIFY_LOOP" --key "$WORK/bench.pub" --identity "$IMAGE" --seconds 5 "oci:$WORK/layout:v1" | awk '{print $4}')

# requests TAG COMMAND: run once, print the number of registry requests it made; the request
# lines go to $WORK/TAG.requests.
requests() {
    local tag=$1 cmd=$2 before
    sleep 0.2
    before=$(wc -l < "$WORK/access.log")
    bash -c "$cmd" > /dev/null 2>&1
    sleep 0.5 # the access log is written after the response
    tail -n +"$((before + 1))" "$WORK/access.log" | grep -o '"[A-Z]* /v2/[^"]*"' > "$WORK/$tag.requests" || true
    wc -l < "$WORK/$tag.requests"
}
SIGNET_REQ=$(requests signet "$SIGNET verify --key $WORK/bench.pub $IMAGE")
bash "$WORK/unsign.sh"
SIGN_REQ=$(requests sign "$SIGNET sign --key $WORK/bench.key $SIGN_IMAGE")
RESIGN_REQ=$(requests resign "$SIGNET sign --key $WORK/bench.key $SIGN_IMAGE")
RS_REQ=$(requests sigstore "$RS_VERIFY $IMAGE $WORK/bench.pub")

echo
echo "$("$SIGNET" --version 2>/dev/null || echo 'signet ?'), sigstore crate 0.15, docker-registry $("$REGISTRY_BIN" --version 2>/dev/null | awk '{print $3}'), $(nproc) cores, N=$N"
printf '| %-52s | %12s | %12s |\n' "measure" "signet" "sigstore-rs"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' $(seq 54))" "$(printf -- '-%.0s' $(seq 14))" "$(printf -- '-%.0s' $(seq 14))"
printf '| %-52s | %12s | %12s |\n' "sign (first signature), median wall ms" "$SIGN_MS" "-"
printf '| %-52s | %12s | %12s |\n' "sign again, same key (finds it, writes nothing), ms" "$RESIGN_MS" "-"
printf '| %-52s | %12s | %12s |\n' "verify by tag, median wall ms (one process per run)" "$VERIFY_MS" "$RS_MS"
printf '| %-52s | %12s | %12s |\n' "verify by digest, median wall ms" "$VERIFY_DIGEST_MS" "-"
printf '| %-52s | %12s | %12s |\n' "in-process verifications/s, registry" "$LOOP_REGISTRY" "-"
printf '| %-52s | %12s | %12s |\n' "in-process verifications/s, OCI layout" "$LOOP_LAYOUT" "-"
printf '| %-52s | %12s | %12s |\n' "HTTP requests per verify (tag, 1 signature)" "$SIGNET_REQ" "$RS_REQ"
printf '| %-52s | %12s | %12s |\n' "HTTP requests per sign (first signature)" "$SIGN_REQ" "-"
printf '| %-52s | %12s | %12s |\n' "HTTP requests per sign again (same key)" "$RESIGN_REQ" "-"
echo
echo "signet verify requests:"; sed 's/^/  /' "$WORK/signet.requests"
echo "sigstore-rs verify requests:"; sed 's/^/  /' "$WORK/sigstore.requests"
echo "signet sign (first signature) requests:"; sed 's/^/  /' "$WORK/sign.requests"
if (( SIGNET_REQ > 4 )); then
    echo "NOTE: signet made $SIGNET_REQ requests (target: at most 4)"
fi
