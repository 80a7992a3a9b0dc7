#!/usr/bin/env bash
# Run every fuzz target for SECONDS (default 60) each, one after another, seeding each corpus from
# testdata/ on first use. Needs nightly Rust and cargo-fuzz (`cargo install cargo-fuzz`).
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
# A crash ends that target's run with libFuzzer's report (the input is kept in
# fuzz/artifacts/TARGET/); the other targets still run, and the script exits 1 at the end.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(reference manifest payload key_files encrypted_key_json sigstore_json policy admission
    keyless_bundle trusted_root intoto_statement dsse_envelope cel_condition)
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: needs a nightly toolchain (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: needs cargo-fuzz (cargo install cargo-fuzz)" >&2
  exit 2
fi
testdata=../testdata

# seed TARGET FILE... : copy files into the target's corpus (named by content hash).
seed() {
  local target="$1"
  shift
  mkdir -p "corpus/$target"
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    cp "$f" "corpus/$target/seed-$(sha256sum "$f" | cut -c1-16)"
  done
}

# seed_text TARGET TEXT : one corpus entry holding TEXT.
seed_text() {
  mkdir -p "corpus/$1"
  printf '%s' "$2" >"corpus/$1/seed-$(printf '%s' "$2" | sha256sum | cut -c1-16)"
}

seed_all() {
  local t="$1"
  [ -d "corpus/$t" ] && [ -n "$(ls -A "corpus/$t")" ] && return 0
  case "$t" in
  reference)
    for r in busybox docker.io/library/busybox:latest "localhost:5000/a/b:v1" \
      "[::1]:5000/x@sha256:0000000000000000000000000000000000000000000000000000000000000000" \
      "registry.example.com/a/b:t@sha256:1111111111111111111111111111111111111111111111111111111111111111" \
      "oci:/tmp/layout:tag" "oci:dir@sha256:2222222222222222222222222222222222222222222222222222222222222222" \
      "docker-archive:/tmp/a.tar" "docker://quay.io/org/app:1.2"; do
      seed_text reference "$r"
    done
    ;;
  manifest)
    mkdir -p corpus/manifest
    local f
    for f in "$testdata"/cosign-real/*/manifest.json "$testdata"/images/*/index.json \
      $(find "$testdata"/images/*/blobs -type f -size -64k 2>/dev/null); do
      head -c1 "$f" | grep -q '{' || continue
      { printf '\000'; cat "$f"; } >"corpus/manifest/seed-$(sha256sum "$f" | cut -c1-16)"
    done
    ;;
  payload)
    seed_text payload '{"critical":{"identity":{"docker-reference":"registry.example/app"},"image":{"docker-manifest-digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},"type":"cosign container image signature"},"optional":{"creator":"x","timestamp":1}}'
    seed_text payload '{"critical":{"identity":{"docker-reference":"registry.example/app"},"image":{"docker-manifest-digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},"type":"cosign container image signature"},"optional":null}'
    ;;
  key_files)
    seed key_files $(find "$testdata" -name '*.pub' -o -name '*.key')
    ;;
  encrypted_key_json)
    seed_text encrypted_key_json '{"kdf":{"name":"scrypt","params":{"N":1024,"r":8,"p":1},"salt":"c2FsdA=="},"cipher":{"name":"nacl/secretbox","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},"ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}'
    ;;
  sigstore_json)
    seed sigstore_json $(find "$testdata" -name 'signature-*' -type f)
    ;;
  policy)
    seed policy $(find "$testdata"/policies -type f \( -name '*.json' -o -name '*.yaml' \))
    ;;
  admission)
    seed admission "$testdata"/admission/*.json
    ;;
  keyless_bundle)
    seed keyless_bundle "$testdata"/sigstore-bundles/*/bundle.sigstore.json
    ;;
  trusted_root)
    seed trusted_root "$testdata"/sigstore-bundles/*/trusted_root.json
    ;;
  intoto_statement)
    local f
    mkdir -p corpus/intoto_statement
    for f in "$testdata"/attestations/*.json; do
      jq -c '{_type: "https://in-toto.io/Statement/v1", subject: [{name: "registry.example/app",
        digest: {sha256: "0000000000000000000000000000000000000000000000000000000000000000"}}],
        predicateType: "https://example.com/p/v1", predicate: .}' "$f" \
        >"corpus/intoto_statement/seed-$(sha256sum "$f" | cut -c1-16)"
    done
    ;;
  dsse_envelope)
    local f
    mkdir -p corpus/dsse_envelope
    for f in "$testdata"/sigstore-bundles/*/bundle.sigstore.json; do
      jq -e -c '.dsseEnvelope // empty' "$f" >/dev/null 2>&1 || continue
      jq -c '.dsseEnvelope' "$f" >"corpus/dsse_envelope/seed-$(sha256sum "$f" | cut -c1-16)"
    done
    seed_text dsse_envelope '{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"","sig":"MEUCIQ=="}]}'
    ;;
  cel_condition)
    local f e i=0
    mkdir -p corpus/cel_condition
    for e in 'predicate.scanner.result.Results.all(r, !has(r.Vulnerabilities) || r.Vulnerabilities.all(v, v.Severity != "CRITICAL"))' \
      'predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/example-org/app"' \
      'subject.exists(s, s.name.startsWith("registry.example/")) && config != null' \
      'predicate.map(k, k).size() > 0' '[1, 2, 3].filter(x, x > 1).size() == 2'; do
      for f in "$testdata"/attestations/*.json; do
        i=$((i + 1))
        { printf '%s\000' "$e"; jq -c . "$f"; } >"corpus/cel_condition/seed-$i"
      done
    done
    ;;
  esac
}

failed=()
for t in "${targets[@]}"; do
  seed_all "$t"
  echo "== fuzz/$t for ${seconds}s"
  if ! cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1; then
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz/run.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz/run.sh: ${#targets[@]} target(s), ${seconds}s each, no crash"
