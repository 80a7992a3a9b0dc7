#!/usr/bin/env bash
# Benchmark `signet validate` against `openssl dgst -sha256` and `sha256sum` in the same run.
#
#   bench/validate.sh            # builds the release binary first
#   SIGNET=/path/to/signet bench/validate.sh   # use a given binary
#
# 1. One OCI layout with a 1 GiB random layer: signet validate vs openssl vs sha256sum of that file.
# 2. One image with four 256 MiB layers: signet validate (parallel) vs openssl of the four files
#    one after another.
# Files are read once beforehand so every tool hashes from the page cache. Temp files are removed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${SIGNET:-}" ]]; then
    (cd "$ROOT" && cargo build --release --locked -p signet-cli >&2)
    SIGNET="$ROOT/target/release/signet"
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/signet-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# make_layout DIR TAG FILE... : an OCI layout whose image has the given files as layers.
make_layout() {
    local dir=$1 tag=$2
    shift 2
    mkdir -p "$dir/blobs/sha256"
    printf '{"imageLayoutVersion":"1.0.0"}' > "$dir/oci-layout"
    local layers="" diff_ids="" sep="" f hex size
    for f in "$@"; do
        hex=$(sha256sum "$f" | cut -d' ' -f1)
        size=$(stat -c %s "$f")
        mv "$f" "$dir/blobs/sha256/$hex"
        layers+="$sep{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$hex\",\"size\":$size}"
        diff_ids+="$sep\"sha256:$hex\""
        sep=","
    done
    local config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$diff_ids]}}"
    local config_hex
    config_hex=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
    printf '%s' "$config" > "$dir/blobs/sha256/$config_hex"
    local manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$config_hex\",\"size\":${#config}},\"layers\":[$layers]}"
    local manifest_hex
    manifest_hex=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
    printf '%s' "$manifest" > "$dir/blobs/sha256/$manifest_hex"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
        "$manifest_hex" "${#manifest}" "$tag" > "$dir/index.json"
}

# seconds CMD... : wall-clock seconds of CMD (output discarded; failure aborts).
seconds() {
    local TIMEFORMAT=%R t
    t=$( { time "$@" > /dev/null 2>&1; } 2>&1 ) || { echo "failed: $*" >&2; exit 1; }
    echo "$t"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

echo "signet:  $SIGNET"
echo "cpus:    $(nproc)  ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
echo "openssl: $(openssl version)"
echo

echo "== 1 GiB single layer =="
head -c $((1024 * 1024 * 1024)) /dev/urandom > "$WORK/big"
make_layout "$WORK/one" bench "$WORK/big"
BIG=$(ls -S "$WORK/one/blobs/sha256" | head -1)
BIG="$WORK/one/blobs/sha256/$BIG"
cat "$BIG" > /dev/null
s=$(seconds "$SIGNET" validate -q "oci:$WORK/one:bench")
o=$(seconds openssl dgst -sha256 "$BIG")
h=$(seconds sha256sum "$BIG")
printf '%-34s %6ss\n' "signet validate" "$s" "openssl dgst -sha256" "$o" "sha256sum" "$h"
echo "signet / openssl:   $(ratio "$s" "$o")"
echo "signet / sha256sum: $(ratio "$s" "$h")"
rm -rf "$WORK/one"
echo

echo "== four 256 MiB layers =="
files=()
for i in 1 2 3 4; do
    head -c $((256 * 1024 * 1024)) /dev/urandom > "$WORK/l$i"
    files+=("$WORK/l$i")
done
make_layout "$WORK/four" bench "${files[@]}"
mapfile -t BLOBS < <(find "$WORK/four/blobs/sha256" -type f -size +1M)
cat "${BLOBS[@]}" > /dev/null
s=$(seconds "$SIGNET" validate -q "oci:$WORK/four:bench")
sj1=$(seconds "$SIGNET" validate -q --jobs 1 "oci:$WORK/four:bench")
o=$(seconds openssl dgst -sha256 "${BLOBS[@]}")
printf '%-34s %6ss\n' "signet validate (jobs=$(nproc))" "$s" "signet validate --jobs 1" "$sj1" "openssl dgst -sha256, sequential" "$o"
echo "signet / openssl:          $(ratio "$s" "$o")"
echo "signet --jobs 1 / openssl: $(ratio "$sj1" "$o")"
