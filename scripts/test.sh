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
# sigstore-js, the independent keyless signer of tests/e2e/sigstore_js.rs, runs on Node.js (>= 20.17,
# checked below); `ip` brings up loopback inside that test's network namespace.
command -v node >/dev/null || missing+=(nodejs npm)
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || missing+=(iproute2)
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
# sigstore-js from npm (tests/peers/sigstore-js: exact versions and hashes in its package-lock.json),
# reinstalled only when the lock file changed. Its packages need Node.js >= 20.17 (Debian 12 ships 18):
# fail here rather than let the tests find no peer.
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 17) ? 0 : 1)' \
  || { echo "tests/e2e/sigstore_js.rs needs Node.js >= 20.17, found $(node --version)" >&2; exit 1; }
peer=tests/peers/sigstore-js
cmp -s "$peer/package-lock.json" "$peer/node_modules/.signet-installed-lock" \
  || { (cd "$peer" && npm ci --no-audit --no-fund --loglevel=error) && cp "$peer/package-lock.json" "$peer/node_modules/.signet-installed-lock"; }

cargo test --workspace --locked
