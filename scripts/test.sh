#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need (Debian's docker-registry,
# htpasswd, openssl, skopeo, containerd, podman, docker.io; PyNaCl for the independent key-file
# check; python-tuf for the TUF repositories), then runs every test. The Docker, containerd and
# podman tests need root (CI is root).
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
command -v openssl >/dev/null || missing+=(openssl)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v containerd >/dev/null || missing+=(containerd)
command -v podman >/dev/null || missing+=(podman)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v pkg-config >/dev/null || missing+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
# Credential helpers (docker-credential-pass over pass and gpg) and an HTTP proxy for the
# registry-access tests (tests/e2e/credentials.rs, tests/e2e/proxy_env.rs).
command -v docker-credential-pass >/dev/null || missing+=(golang-docker-credential-helpers)
command -v pass >/dev/null || missing+=(pass)
command -v gpg >/dev/null || missing+=(gnupg)
command -v tinyproxy >/dev/null || missing+=(tinyproxy)
# `unshare -n`: the keyless bundle tests run with no network at all (tests/e2e/keyless_blob.rs;
# set SIGNET_CONFORMANCE_DIR=<sigstore-conformance>/test/assets/bundle-verify to add that suite).
command -v unshare >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  sudo_if_needed apt-get update -q
  sudo_if_needed apt-get install -y -q "${missing[@]}"
fi
python3 -c 'import nacl.secret' 2>/dev/null || python3 -m pip install -q pynacl
# The Kubernetes schemas deploy/kubernetes/ is validated against in strict mode (tests/e2e/deploy.rs).
command -v kubernetes-validate >/dev/null || python3 -m pip install -q 'kubernetes-validate==1.37.0'
# python-tuf builds the TUF repositories the `signet trust update` tests run against (7.0.1 with
# securesystemslib 1.6.0 on Python 3.11).
python3 -c 'import tuf.api.metadata, securesystemslib.signer' 2>/dev/null || python3 -m pip install -q 'tuf==7.0.1'
# Independent peers of `signet attest` (tests/e2e/attest.rs): securesystemslib (installed with tuf
# above) verifies the DSSE envelopes, in-toto-attestation validates the statements.
python3 -c 'import in_toto_attestation.v1.statement' 2>/dev/null || python3 -m pip install -q 'in-toto-attestation==0.9.3'

cargo test --workspace --locked
