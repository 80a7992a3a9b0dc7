#!/usr/bin/env bash
# Soak the gate (`signet serve`): CONNS (64) concurrent clients send REQUESTS (100,000) mixed
# requests on loopback, each answer checked against the verdict it must have. Not a test (the
# short version is tests/e2e/soak.rs).
#
#   bench/soak.sh
#   REQUESTS=20000 CONNS=32 bench/soak.sh
#
# The mix (request i is entry i % 12 of the scenario, so every kind is spread over the run):
#   verify API: signed image by tag and by digest (allow), unsigned (deny), warn-mode scope
#   (denied, admitted with mode warn), unknown repository (404 upstream -> error, denied), a list
#   of two images one of them unsigned (not admitted), malformed JSON and unknown fields (400);
#   admission /validate: Pod with a signed image (allowed), Pod with a signed and an unsigned
#   image (denied), Pod with the warn-mode image (allowed); /mutate of a signed Pod (allowed).
# Meanwhile gate_load polls /healthz every 50 ms on its own connection (failures = non-200 or
# slower than 1 s) and samples the gate's VmRSS every 100 ms. Fails (exit 1) on any wrong verdict,
# any 5xx, any failed request or any /healthz failure. Stops after REQUESTS or MAX_SECONDS.
set -euo pipefail

GATE_BENCH_LIB=1
# shellcheck source=bench/gate.sh
source "$(dirname "${BASH_SOURCE[0]}")/gate.sh"

REQUESTS="${REQUESTS:-100000}"
MAX_SECONDS="${MAX_SECONDS:-600}"

build
setup_workdir
start_registry
setup_images
start_gate
echo "gate $GATE (pid $GATE_PID) -> registry $HOST; $CONNS clients x $REQUESTS requests" >&2

python3 - "$WORK/soak.json" "$HOST" "$APP_DIGEST" <<'EOF'
import json, sys
out, host, app_digest = sys.argv[1:]
def review(*images):
    containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
    return json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                    "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "operation": "CREATE", "namespace": "default",
                    "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                               "spec": {"containers": containers}}}})
app, unsigned, warned = f"{host}/bench/app:v1", f"{host}/bench/unsigned:v1", f"{host}/bench/warned:v1"
def verify(name, image, **checks):
    return {"name": name, "path": "/v1/verify", "body": json.dumps({"image": image}),
            "checks": [["/" + k, v] for k, v in checks.items()]}
requests = [
    verify("api-allow-tag", app, admitted=True, allowed=True, error=False),
    verify("api-allow-digest", f"{host}/bench/app@{app_digest}", admitted=True, allowed=True),
    verify("api-deny", unsigned, admitted=False, allowed=False, error=False, mode="enforce"),
    verify("api-warn", warned, admitted=True, allowed=False, mode="warn"),
    verify("api-unknown", f"{host}/bench/no-such-repo:v1", admitted=False, error=True),
    {"name": "api-list-deny", "path": "/v1/verify", "body": json.dumps({"images": [app, unsigned]}),
     "checks": [["/admitted", False], ["/results/0/admitted", True], ["/results/1/admitted", False]]},
    {"name": "api-malformed", "path": "/v1/verify", "body": '{"image": ', "status": 400},
    {"name": "api-unknown-field", "path": "/v1/verify", "body": '{"img": "x"}', "status": 400},
    {"name": "admission-allow", "path": "/validate", "body": review(app),
     "checks": [["/response/allowed", True]]},
    {"name": "admission-deny", "path": "/validate", "body": review(app, unsigned),
     "checks": [["/response/allowed", False]]},
    {"name": "admission-warn", "path": "/validate", "body": review(warned),
     "checks": [["/response/allowed", True]]},
    {"name": "mutate-allow", "path": "/mutate", "body": review(app),
     "checks": [["/response/allowed", True], ["/response/patchType", "JSONPatch"]]},
]
json.dump({"requests": requests}, open(out, "w"))
EOF

rc=0
"$GATE_LOAD" --target "http://$GATE" --scenario "$WORK/soak.json" --label soak \
    --concurrency "$CONNS" --requests "$REQUESTS" --seconds "$MAX_SECONDS" \
    --health-ms 50 --rss-pid "$GATE_PID" --rss-ms 100 | tee "$WORK/soak.out" || rc=$?
kill -0 "$GATE_PID" 2> /dev/null || { echo "the gate died" >&2; rc=1; }
echo "gate metrics after the soak:"
curl -fsS "http://$GATE/metrics" | grep -E '^signet_gate_(decisions_total|cache_|shared|upstream_errors)' || rc=1
echo "gate VmRSS now: $(awk '/VmRSS/ { print $2 }' "/proc/$GATE_PID/status") KiB; VmHWM: $(awk '/VmHWM/ { print $2 }' "/proc/$GATE_PID/status") KiB"
echo "decision log: $(wc -l < "$GATE_LOG") lines, $(du -k "$GATE_LOG" | cut -f1) KiB"
exit $rc
