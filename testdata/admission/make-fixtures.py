#!/usr/bin/env python3
"""Regenerate the AdmissionReview fixtures in this folder: python3 make-fixtures.py"""
import copy
import json

H = "registry.example.com"
D = "sha256:" + "ab" * 32


def spec(images, init=(), eph=()):
    s = {
        "containers": [
            {"name": f"app{i}", "image": im, "ports": [{"containerPort": 8080, "protocol": "TCP"}],
             "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
             "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
             "imagePullPolicy": "IfNotPresent"}
            for i, im in enumerate(images)
        ],
        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
        "securityContext": {}, "schedulerName": "default-scheduler",
    }
    if init:
        s["initContainers"] = [{"name": f"init{i}", "image": im} for i, im in enumerate(init)]
    if eph:
        s["ephemeralContainers"] = [{"name": f"debugger-{i}", "image": im, "targetContainerName": "app0"}
                                    for i, im in enumerate(eph)]
    return s


def review(uid, group, version, kind, resource, op, obj, old=None, sub=None, name="web", ns="default"):
    options = {
        "CREATE": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl-client-side-apply"},
        "UPDATE": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"},
    }.get(op, {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"})
    req = {
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": name, "namespace": ns, "operation": op,
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
        "object": obj, "oldObject": old, "dryRun": False, "options": options,
    }
    if sub:
        req["subResource"] = sub
        req["resource"]["resource"] = "pods"
        req["requestSubResource"] = sub
    return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": req}


def meta(kind, api):
    return {"apiVersion": api, "kind": kind,
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}}}


def tmpl(s):
    return {"metadata": {"labels": {"app": "web"}}, "spec": s}


imgs = [f"{H}/team/web:1.4.2", "nginx:1.27"]
out = {}
pod = meta("Pod", "v1")
pod["spec"] = spec(imgs, init=[f"{H}/team/migrate@{D}"])
out["pod-create.json"] = review("6a5c4b1e-0000-4000-8000-000000000001", "", "v1", "Pod", "pods", "CREATE", pod)
for kind, res in [("Deployment", "deployments"), ("ReplicaSet", "replicasets"),
                  ("StatefulSet", "statefulsets"), ("DaemonSet", "daemonsets")]:
    o = meta(kind, "apps/v1")
    o["spec"] = {"selector": {"matchLabels": {"app": "web"}}, "template": tmpl(spec(imgs))}
    if kind != "DaemonSet":
        o["spec"]["replicas"] = 2
    out[f"{kind.lower()}-create.json"] = review(
        f"6a5c4b1e-0000-4000-8000-0000000000{len(out) + 1:02d}", "apps", "v1", kind, res, "CREATE", o)
job = meta("Job", "batch/v1")
job["spec"] = {"backoffLimit": 2, "template": tmpl({**spec([f"{H}/team/batch:7"]), "restartPolicy": "Never"})}
out["job-create.json"] = review("6a5c4b1e-0000-4000-8000-000000000010", "batch", "v1", "Job", "jobs", "CREATE", job)
cj = meta("CronJob", "batch/v1")
cj["spec"] = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": tmpl(
    {**spec([f"{H}/team/report:2024.1"]), "restartPolicy": "OnFailure"})}}}
out["cronjob-create.json"] = review("6a5c4b1e-0000-4000-8000-000000000011", "batch", "v1", "CronJob", "cronjobs", "CREATE", cj)
# kubectl debug: an UPDATE of the pods/ephemeralcontainers subresource; oldObject lacks the debugger.
old = meta("Pod", "v1")
old["spec"] = spec(imgs)
new = copy.deepcopy(old)
new["spec"]["ephemeralContainers"] = [{"name": "debugger-x7k2", "image": "busybox:1.36",
                                       "targetContainerName": "app0", "stdin": True, "tty": True}]
out["pod-ephemeral-update.json"] = review("6a5c4b1e-0000-4000-8000-000000000012", "", "v1", "Pod", "pods",
                                          "UPDATE", new, old, sub="ephemeralcontainers")
# Scaling a Deployment: images unchanged.
d_old = copy.deepcopy(out["deployment-create.json"]["request"]["object"])
d_new = copy.deepcopy(d_old)
d_new["spec"]["replicas"] = 5
out["deployment-scale-update.json"] = review("6a5c4b1e-0000-4000-8000-000000000013", "apps", "v1", "Deployment",
                                             "deployments", "UPDATE", d_new, d_old)
out["deployment-delete.json"] = review("6a5c4b1e-0000-4000-8000-000000000014", "apps", "v1", "Deployment",
                                       "deployments", "DELETE", None, d_old)
cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "default"},
      "data": {"image": "not/an-image:really"}}
out["configmap-create.json"] = review("6a5c4b1e-0000-4000-8000-000000000015", "", "v1", "ConfigMap", "configmaps",
                                      "CREATE", cm)
# A pod-template kind the webhook does not know (Argo Rollouts): denied, not admitted unread.
ro = meta("Rollout", "argoproj.io/v1alpha1")
ro["spec"] = {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": tmpl(spec(imgs)),
              "strategy": {"canary": {"steps": [{"setWeight": 20}]}}}
out["rollout-create.json"] = review("6a5c4b1e-0000-4000-8000-000000000016", "argoproj.io", "v1alpha1", "Rollout",
                                    "rollouts", "CREATE", ro)
# A Deployment whose template has no spec: denied (the images cannot be read).
d_bare = meta("Deployment", "apps/v1")
d_bare["spec"] = {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}}}
out["deployment-no-pod-spec-create.json"] = review("6a5c4b1e-0000-4000-8000-000000000017", "apps", "v1", "Deployment",
                                                  "deployments", "CREATE", d_bare)
for name, value in out.items():
    with open(name, "w") as f:
        f.write(json.dumps(value, indent=2) + "\n")
