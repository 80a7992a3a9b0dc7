//! The Kubernetes admission webhook (`admission.k8s.io/v1` `AdmissionReview`): every container,
//! init container and ephemeral container image of a Pod or of a pod template (Deployment,
//! ReplicaSet, StatefulSet, DaemonSet, Job, ReplicationController, PodTemplate, CronJob) is judged;
//! `/validate` allows or denies, `/mutate` does the same and pins admitted images to their digest
//! with a JSONPatch.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Map, Value};

use super::api::{bad_request, read_body};
use super::engine::{Decision, Source};
use super::server::Gate;
use super::{one_line, Judge, Mode};

/// Lists of containers in a pod spec.
const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];
/// Containers looked at in one object.
const MAX_CONTAINERS: usize = 1000;
/// The denial message is cut to this many characters.
const MAX_STATUS_CHARS: usize = 4000;
/// Each warning is cut to this many characters.
const MAX_WARNING_CHARS: usize = 256;

/// One image of a pod spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodImage {
    /// JSON pointer to the `image` field in the object (`/spec/template/spec/containers/0/image`).
    pub pointer: String,
    /// The image as written.
    pub image: String,
    /// Which container, for messages (`initContainers[0] "setup"`).
    pub container: String,
}

/// The kinds whose images the webhook reads, in the order its messages list them.
const KINDS: [&str; 9] = [
    "Pod",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "ReplicationController",
    "PodTemplate",
    "CronJob",
];

/// Where the pod spec lives in an object of `kind`; `None` for kinds the webhook does not know.
fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("/spec"),
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => Some("/spec/template/spec"),
        "PodTemplate" => Some("/template/spec"),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// The images of `object`, an object of `kind`. Fails closed: a kind the webhook does not know
/// (it cannot tell where such an object keeps its images, so it cannot say it has none), an
/// object without its pod spec, and a container without a string `image` are errors, and the
/// review is denied with the error as the reason.
pub fn extract_images(kind: &str, object: &Value) -> Result<Vec<PodImage>, String> {
    let Some(spec_pointer) = pod_spec_pointer(kind) else {
        return Err(format!(
            "kind {kind:?} is not one the webhook reads images from ({}); \
             it is denied rather than admitted unread: check the webhook's rules",
            KINDS.join(", ")
        ));
    };
    let spec = match object.pointer(spec_pointer) {
        Some(spec @ Value::Object(_)) => spec,
        Some(_) => return Err(format!("{kind}: {spec_pointer} is not an object")),
        None => return Err(format!("{kind} has no pod spec: {spec_pointer} is missing")),
    };
    let mut images = Vec::new();
    for list in CONTAINER_LISTS {
        let Some(containers) = spec.get(list) else {
            continue;
        };
        let containers = match containers {
            Value::Array(a) => a,
            Value::Null => continue,
            _ => return Err(format!("{spec_pointer}/{list} is not a list")),
        };
        for (i, container) in containers.iter().enumerate() {
            if images.len() >= MAX_CONTAINERS {
                return Err(format!("more than {MAX_CONTAINERS} containers"));
            }
            let name = container.get("name").and_then(Value::as_str).unwrap_or("");
            let label = format!("{list}[{i}] {name:?}");
            let image = container
                .get("image")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{label} has no image"))?;
            images.push(PodImage {
                pointer: format!("{spec_pointer}/{list}/{i}/image"),
                image: image.to_string(),
                container: label,
            });
        }
    }
    Ok(images)
}

/// The JSONPatch (RFC 6902) pinning each admitted image of `images` to the digest judged
/// (`name:tag@sha256:…`), leaving images already pinned (`@` present) alone. `decisions` are
/// looked up by image string.
pub fn pin_patch(images: &[PodImage], decisions: &[Decision]) -> Vec<Value> {
    images
        .iter()
        .filter(|slot| !slot.image.contains('@'))
        .filter_map(|slot| {
            let decision = decisions.iter().find(|d| d.image == slot.image)?;
            let digest = decision.digest.as_ref().filter(|_| decision.admitted())?;
            Some(json!({"op": "replace", "path": slot.pointer, "value": format!("{}@{digest}", slot.image)}))
        })
        .collect()
}

/// A parsed review request.
struct ReviewRequest<'a> {
    api_version: &'a str,
    uid: &'a str,
    kind: &'a str,
    operation: &'a str,
    object: &'a Value,
    old_object: &'a Value,
}

fn parse_review(review: &Value) -> Result<ReviewRequest<'_>, String> {
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|v| *v == "admission.k8s.io/v1" || *v == "admission.k8s.io/v1beta1")
        .ok_or("apiVersion must be admission.k8s.io/v1")?;
    if review.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
        return Err("kind must be AdmissionReview".into());
    }
    let request = review.get("request").ok_or("no request")?;
    let uid = request
        .get("uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty() && u.len() <= 256)
        .ok_or("request.uid missing")?;
    let kind = request
        .pointer("/kind/kind")
        .and_then(Value::as_str)
        .ok_or("request.kind.kind missing")?;
    Ok(ReviewRequest {
        api_version,
        uid,
        kind,
        operation: request
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or(""),
        object: request.get("object").unwrap_or(&Value::Null),
        old_object: request.get("oldObject").unwrap_or(&Value::Null),
    })
}

/// `POST /validate`.
pub(crate) async fn validate<J: Judge>(
    State(gate): State<Gate<J>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    review(gate, headers, body, false).await
}

/// `POST /mutate`.
pub(crate) async fn mutate<J: Judge>(
    State(gate): State<Gate<J>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    review(gate, headers, body, true).await
}

async fn review<J: Judge>(gate: Gate<J>, headers: HeaderMap, body: Body, mutate: bool) -> Response {
    let bytes = match read_body(&headers, body, gate.inner.config.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return bad_request(StatusCode::BAD_REQUEST, &format!("malformed JSON: {e}")),
    };
    let request = match parse_review(&value) {
        Ok(r) => r,
        Err(e) => {
            return bad_request(
                StatusCode::BAD_REQUEST,
                &format!("not an AdmissionReview: {e}"),
            )
        }
    };
    let response = answer(&gate, &request, mutate).await;
    axum::Json(json!({
        "apiVersion": request.api_version,
        "kind": "AdmissionReview",
        "response": response,
    }))
    .into_response()
}

fn deny(uid: &str, message: &str) -> Value {
    json!({
        "uid": uid,
        "allowed": false,
        "status": {"code": 403, "reason": "Forbidden", "message": one_line(message, MAX_STATUS_CHARS)},
    })
}

/// The images of a review to judge: those of `object`, less (on UPDATE) those `oldObject`
/// already had — they were admitted before, and re-judging them would block unrelated changes
/// (labels, scaling) whenever a policy tightens.
///
/// `DELETE` and `CONNECT` (`pods/exec`, `pods/attach`, …) are allowed without reading the object,
/// whatever the kind: nothing starts running from them, and a `DELETE` review carries no object.
/// Every other operation (`CREATE`, `UPDATE`, and any the API adds) reads the images; a
/// subresource review is read as the object it carries (`pods/ephemeralcontainers` carries the
/// Pod), and one whose kind the webhook does not know (`deployments/scale` carries a `Scale`) is
/// denied like any unknown kind — the shipped webhook rules send neither.
fn images_to_judge(request: &ReviewRequest<'_>) -> Result<Vec<PodImage>, String> {
    if matches!(request.operation, "DELETE" | "CONNECT") {
        return Ok(Vec::new());
    }
    let images = extract_images(request.kind, request.object)?;
    if request.operation != "UPDATE" {
        return Ok(images);
    }
    let old: BTreeSet<String> = extract_images(request.kind, request.old_object)
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.image)
        .collect();
    Ok(images
        .into_iter()
        .filter(|i| !old.contains(&i.image))
        .collect())
}

/// The `response` of an AdmissionReview.
async fn answer<J: Judge>(gate: &Gate<J>, request: &ReviewRequest<'_>, mutate: bool) -> Value {
    let uid = request.uid;
    let images = match images_to_judge(request) {
        Ok(i) => i,
        Err(e) => {
            return deny(
                uid,
                &format!(
                    "signet: cannot read the images of this {}: {e}",
                    request.kind
                ),
            )
        }
    };
    let distinct: Vec<String> = images
        .iter()
        .map(|i| i.image.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let max = gate.inner.config.limits.max_images;
    if distinct.len() > max {
        return deny(uid, &format!("signet: more than {max} distinct images"));
    }
    let decisions = gate.decide_all(&distinct, Source::Admission).await;

    let mut denied = String::new();
    let mut warnings = Vec::new();
    let mut audit = Vec::new();
    for slot in &images {
        let Some(d) = decisions.iter().find(|d| d.image == slot.image) else {
            continue;
        };
        if !d.admitted() {
            let _ = write!(
                denied,
                "{}{} image {}: {}",
                if denied.is_empty() { "" } else { "; " },
                slot.container,
                slot.image,
                d.message
            );
        } else if !d.allowed && d.mode == Mode::Warn {
            warnings.push(Value::String(one_line(
                &format!(
                    "signet (warn): {} image {} is not trusted: {}",
                    slot.container, slot.image, d.message
                ),
                MAX_WARNING_CHARS,
            )));
        } else if !d.allowed && d.mode == Mode::Audit {
            audit.push(format!("{}: {}", slot.image, d.message));
        }
    }
    if !denied.is_empty() {
        return deny(uid, &format!("signet: image not trusted: {denied}"));
    }
    let mut response = Map::new();
    response.insert("uid".into(), json!(uid));
    response.insert("allowed".into(), json!(true));
    if !warnings.is_empty() {
        response.insert("warnings".into(), Value::Array(warnings));
    }
    if !audit.is_empty() {
        response.insert(
            "auditAnnotations".into(),
            json!({"untrusted-images": one_line(&audit.join("; "), MAX_STATUS_CHARS)}),
        );
    }
    if mutate {
        let patch = pin_patch(&images, &decisions);
        if !patch.is_empty() {
            let encoded = base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(&patch).unwrap_or_default());
            response.insert("patchType".into(), json!("JSONPatch"));
            response.insert("patch".into(), json!(encoded));
        }
    }
    Value::Object(response)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use signet_oci::Digest;

    fn pod_spec() -> Value {
        json!({
            "containers": [{"name": "app", "image": "127.0.0.1:5000/team/app:v1"},
                           {"name": "side", "image": "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}],
            "initContainers": [{"name": "setup", "image": "ghcr.io/org/setup:2"}],
            "ephemeralContainers": [{"name": "debug", "image": "debian"}]
        })
    }

    fn wrap(kind: &str) -> Value {
        let spec = pod_spec();
        match kind {
            "Pod" => json!({"kind": "Pod", "spec": spec}),
            "PodTemplate" => json!({"kind": kind, "template": {"spec": spec}}),
            "CronJob" => {
                json!({"kind": kind, "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": spec}}}}})
            }
            _ => {
                json!({"kind": kind, "spec": {"replicas": 2, "template": {"metadata": {}, "spec": spec}}})
            }
        }
    }

    #[test]
    fn images_of_every_kind() {
        for (kind, spec) in [
            ("Pod", "/spec"),
            ("Deployment", "/spec/template/spec"),
            ("ReplicaSet", "/spec/template/spec"),
            ("StatefulSet", "/spec/template/spec"),
            ("DaemonSet", "/spec/template/spec"),
            ("Job", "/spec/template/spec"),
            ("ReplicationController", "/spec/template/spec"),
            ("PodTemplate", "/template/spec"),
            ("CronJob", "/spec/jobTemplate/spec/template/spec"),
        ] {
            let object = wrap(kind);
            let images = extract_images(kind, &object).unwrap();
            let got: Vec<(&str, &str)> = images
                .iter()
                .map(|i| (i.pointer.as_str(), i.image.as_str()))
                .collect();
            let want = [
                (format!("{spec}/containers/0/image"), "127.0.0.1:5000/team/app:v1"),
                (format!("{spec}/containers/1/image"), "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
                (format!("{spec}/initContainers/0/image"), "ghcr.io/org/setup:2"),
                (format!("{spec}/ephemeralContainers/0/image"), "debian"),
            ];
            let want: Vec<(&str, &str)> = want.iter().map(|(p, i)| (p.as_str(), *i)).collect();
            assert_eq!(got, want, "{kind}");
            // Every pointer leads to the image it names.
            for i in &images {
                assert_eq!(
                    object.pointer(&i.pointer).and_then(Value::as_str),
                    Some(i.image.as_str())
                );
            }
            assert_eq!(images[2].container, "initContainers[0] \"setup\"");
        }
    }

    #[test]
    fn unknown_kinds_and_missing_specs_are_errors() {
        let err = extract_images("ConfigMap", &json!({"data": {}})).unwrap_err();
        assert!(
            err.starts_with(
                "kind \"ConfigMap\" is not one the webhook reads images from (Pod, Deployment,"
            ),
            "{err}"
        );
        // A pod-template kind of a CRD is unknown too, although its images sit where a
        // Deployment's do.
        let rollout = wrap("Deployment");
        assert!(extract_images("Rollout", &rollout)
            .unwrap_err()
            .contains("\"Rollout\" is not one the webhook reads images from"));
        assert_eq!(
            extract_images("Pod", &Value::Null).unwrap_err(),
            "Pod has no pod spec: /spec is missing"
        );
        assert_eq!(
            extract_images("Deployment", &json!({"spec": {}})).unwrap_err(),
            "Deployment has no pod spec: /spec/template/spec is missing"
        );
        assert_eq!(
            extract_images(
                "CronJob",
                &json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": []}}}}})
            )
            .unwrap_err(),
            "CronJob: /spec/jobTemplate/spec/template/spec is not an object"
        );
        // A spec without containers has no images (the API server rejects such a Pod anyway).
        assert!(extract_images("Pod", &json!({"spec": {}}))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn malformed_containers_are_errors() {
        let err =
            extract_images("Pod", &json!({"spec": {"containers": [{"name": "x"}]}})).unwrap_err();
        assert_eq!(err, "containers[0] \"x\" has no image");
        let err = extract_images(
            "Pod",
            &json!({"spec": {"containers": [{"name": "x", "image": 3}]}}),
        )
        .unwrap_err();
        assert!(err.contains("has no image"));
        let err = extract_images("Pod", &json!({"spec": {"containers": {"a": 1}}})).unwrap_err();
        assert!(err.contains("is not a list"));
    }

    fn decision(image: &str, digest: Option<Digest>, allowed: bool, mode: Mode) -> Decision {
        Decision {
            image: image.into(),
            reference: image.parse().ok(),
            digest,
            policy_hash: Some("test-policy".into()),
            allowed,
            mode,
            message: "m".into(),
            report: std::sync::Arc::new(Value::Null),
            cached: false,
            error: false,
        }
    }

    /// Apply `replace` operations (all `pin_patch` makes) as RFC 6902 says.
    fn apply(mut object: Value, patch: &[Value]) -> Value {
        for op in patch {
            assert_eq!(op["op"], "replace");
            let target = object
                .pointer_mut(op["path"].as_str().unwrap())
                .expect("path exists");
            *target = op["value"].clone();
        }
        object
    }

    #[test]
    fn patch_pins_admitted_images_only() {
        for kind in ["Pod", "Deployment", "CronJob"] {
            let object = wrap(kind);
            let images = extract_images(kind, &object).unwrap();
            let d1 = Digest::sha256(b"app");
            let d2 = Digest::sha256(b"setup");
            let d3 = Digest::sha256(b"debian");
            let decisions = vec![
                decision(
                    "127.0.0.1:5000/team/app:v1",
                    Some(d1.clone()),
                    true,
                    Mode::Enforce,
                ),
                decision("ghcr.io/org/setup:2", Some(d2.clone()), false, Mode::Warn),
                decision("debian", Some(d3), false, Mode::Enforce),
            ];
            let patch = pin_patch(&images, &decisions);
            assert_eq!(patch.len(), 2, "{kind}: {patch:?}");
            let patched = apply(object, &patch);
            let now: Vec<String> = extract_images(kind, &patched)
                .unwrap()
                .into_iter()
                .map(|i| i.image)
                .collect();
            assert_eq!(
                now,
                vec![
                    format!("127.0.0.1:5000/team/app:v1@{d1}"),
                    "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_string(),
                    format!("ghcr.io/org/setup:2@{d2}"),
                    "debian".to_string(),
                ],
                "{kind}"
            );
            // A pinned image parses to the digest it was pinned to.
            let pinned: signet_oci::Reference = now[0].parse().unwrap();
            assert_eq!(pinned.digest(), Some(&d1));
        }
    }

    #[test]
    fn reviews_are_checked() {
        let ok = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE", "object": {}}});
        let r = parse_review(&ok).unwrap();
        assert_eq!((r.uid, r.kind, r.operation), ("u1", "Pod", "CREATE"));
        for (mutation, wanted) in [
            (json!({"apiVersion": "v1"}), "apiVersion"),
            (json!({"kind": "Pod"}), "kind must be"),
            (json!({"request": null}), "uid"),
        ] {
            let mut bad = ok.clone();
            for (k, v) in mutation.as_object().unwrap() {
                bad[k] = v.clone();
            }
            let err = parse_review(&bad).err().unwrap();
            assert!(err.contains(wanted), "{err}");
        }
    }
    #[test]
    fn fixtures_yield_the_images_to_judge() {
        const H: &str = "registry.example.com";
        let pinned = format!("{H}/team/migrate@sha256:{}", "ab".repeat(32));
        let web = format!("{H}/team/web:1.4.2");
        let two = vec![web.clone(), "nginx:1.27".to_string()];
        let cases: Vec<(&str, &str, Vec<String>)> = vec![
            (
                "pod-create",
                include_str!("../../testdata/admission/pod-create.json"),
                vec![web.clone(), "nginx:1.27".into(), pinned],
            ),
            (
                "deployment-create",
                include_str!("../../testdata/admission/deployment-create.json"),
                two.clone(),
            ),
            (
                "replicaset-create",
                include_str!("../../testdata/admission/replicaset-create.json"),
                two.clone(),
            ),
            (
                "statefulset-create",
                include_str!("../../testdata/admission/statefulset-create.json"),
                two.clone(),
            ),
            (
                "daemonset-create",
                include_str!("../../testdata/admission/daemonset-create.json"),
                two,
            ),
            (
                "job-create",
                include_str!("../../testdata/admission/job-create.json"),
                vec![format!("{H}/team/batch:7")],
            ),
            (
                "cronjob-create",
                include_str!("../../testdata/admission/cronjob-create.json"),
                vec![format!("{H}/team/report:2024.1")],
            ),
            (
                "pod-ephemeral-update",
                include_str!("../../testdata/admission/pod-ephemeral-update.json"),
                vec!["busybox:1.36".into()],
            ),
            (
                "deployment-scale-update",
                include_str!("../../testdata/admission/deployment-scale-update.json"),
                vec![],
            ),
            (
                "deployment-delete",
                include_str!("../../testdata/admission/deployment-delete.json"),
                vec![],
            ),
        ];
        for (name, text, wanted) in cases {
            let review: Value = serde_json::from_str(text).unwrap();
            let request = parse_review(&review).unwrap();
            assert!(request.uid.starts_with("6a5c4b1e-"), "{name}");
            let got: Vec<String> = images_to_judge(&request)
                .unwrap()
                .into_iter()
                .map(|i| i.image)
                .collect();
            assert_eq!(got, wanted, "{name}");
        }
    }

    /// Judges nothing: the reviews below must be denied before any image is judged.
    struct NoJudge;

    impl Judge for NoJudge {
        async fn judge(
            &self,
            _reference: signet_oci::Reference,
            _digest: Option<Digest>,
        ) -> Result<crate::Judgement, crate::GateError> {
            Err(crate::GateError::Judge("not to be asked".into()))
        }

        fn policy_hash(&self) -> String {
            "none".into()
        }
    }

    #[tokio::test]
    async fn fixtures_the_webhook_cannot_read_are_denied() {
        let config = crate::GateConfig::simple(
            "policy.yaml".into(),
            "127.0.0.1:0".parse().unwrap(),
            "http://127.0.0.1:9",
        )
        .unwrap();
        let gate = Gate::new(config, NoJudge).unwrap();
        for (name, text, wanted) in [
            (
                "configmap-create",
                include_str!("../../testdata/admission/configmap-create.json"),
                "signet: cannot read the images of this ConfigMap: kind \"ConfigMap\" is not one the webhook reads images from (Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, ReplicationController, PodTemplate, CronJob)",
            ),
            (
                "rollout-create",
                include_str!("../../testdata/admission/rollout-create.json"),
                "signet: cannot read the images of this Rollout: kind \"Rollout\" is not one the webhook reads images from",
            ),
            (
                "deployment-no-pod-spec-create",
                include_str!("../../testdata/admission/deployment-no-pod-spec-create.json"),
                "signet: cannot read the images of this Deployment: Deployment has no pod spec: /spec/template/spec is missing",
            ),
        ] {
            let review: Value = serde_json::from_str(text).unwrap();
            let request = parse_review(&review).unwrap();
            for mutate in [false, true] {
                let response = answer(&gate, &request, mutate).await;
                assert_eq!(response["allowed"], false, "{name}");
                assert_eq!(response["status"]["code"], 403, "{name}");
                assert_eq!(response["uid"], request.uid, "{name}");
                let message = response["status"]["message"].as_str().unwrap();
                assert!(message.starts_with(wanted), "{name}: {message}");
                assert!(response.get("patch").is_none(), "{name}");
            }
        }
        // DELETE carries no object and starts nothing: allowed without reading, whatever the kind.
        let review: Value = serde_json::from_str(include_str!(
            "../../testdata/admission/deployment-delete.json"
        ))
        .unwrap();
        let request = parse_review(&review).unwrap();
        assert_eq!(request.operation, "DELETE");
        assert_eq!(answer(&gate, &request, false).await["allowed"], true);
        let mut unknown = review.clone();
        unknown["request"]["kind"]["kind"] = json!("ConfigMap");
        let request = parse_review(&unknown).unwrap();
        assert_eq!(answer(&gate, &request, false).await["allowed"], true);
    }
}
