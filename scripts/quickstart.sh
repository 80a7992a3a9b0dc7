#!/usr/bin/env bash
# The main job on a fresh machine, no registry needed: build signet, then digest, validate, sign
# and verify the sample image in testdata/ (on a copy, so the repository is not modified).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin signet
signet=${CARGO_TARGET_DIR:-$PWD/target}/release/signet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r testdata/images/single "$work/layout"
image="oci:$work/layout:v1"
identity=registry.example.com/signet/sample:v1

echo "== digest";   "$signet" digest "$image"
echo "== validate"; "$signet" validate --quiet "$image"
echo "== key pair (password from SIGNET_PASSWORD)"
export SIGNET_PASSWORD=${SIGNET_PASSWORD:-quickstart-demo}
"$signet" generate-key-pair --output-key-prefix "$work/signet"
echo "== sign";     "$signet" sign --key "$work/signet.key" --identity "$identity" "$image"
echo "== verify";   "$signet" verify --key "$work/signet.pub" --identity "$identity" "$image"
echo "quickstart: signed and verified $image as $identity"
