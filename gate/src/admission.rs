//! The Kubernetes admission webhook (`admission.k8s.io/v1` `AdmissionReview`): every container,
//! init container and ephemeral container image of a Pod or of a pod template (Deployment,
//! ReplicaSet, StatefulSet, DaemonSet, Job, ReplicationController, PodTemplate, CronJob) is judged;
//! `/validate` allows or denies, `/mutate` does the same and pins admitted images to their digest
//! with a JSONPatch.
//!
//! Reviews are read into the typed model of [`model`] and answered with the typed
//! [`AdmissionResponse`]: the admission path runs for every Pod created, and a `serde_json::Value`
//! (an ordered, hashed map per object) costs far more than the few fields the webhook reads.

mod model;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::model::{text, Field, List, Node, Review};
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
    // A `Value` holds no duplicate keys, the only thing the model refuses.
    let object = Field::<Node<'_>>::deserialize(object).map_err(|e| e.to_string())?;
    images_of(kind, object.0.as_ref())
}

/// [`extract_images`] of an object read into the model (`None`: absent or not an object).
fn images_of(kind: &str, object: Option<&Node<'_>>) -> Result<Vec<PodImage>, String> {
    let Some(spec_pointer) = pod_spec_pointer(kind) else {
        return Err(format!(
            "kind {kind:?} is not one the webhook reads images from ({}); \
             it is denied rather than admitted unread: check the webhook's rules",
            KINDS.join(", ")
        ));
    };
    // As `Value::pointer` walks: a step missing or not an object ends the walk.
    let mut node = object;
    let mut last = None;
    for step in spec_pointer.split('/').skip(1) {
        last = node.and_then(|n| n.child(step));
        node = last.and_then(|field| field.0.as_deref());
    }
    let spec = match last {
        Some(Field(Some(spec))) => spec,
        Some(Field(None)) => return Err(format!("{kind}: {spec_pointer} is not an object")),
        None => return Err(format!("{kind} has no pod spec: {spec_pointer} is missing")),
    };
    let mut images = Vec::new();
    for list in CONTAINER_LISTS {
        let containers = match spec.list(list) {
            None | Some(Field(Some(List::Null))) => continue,
            Some(Field(Some(List::Items(items)))) => items,
            Some(Field(None)) => return Err(format!("{spec_pointer}/{list} is not a list")),
        };
        for (i, container) in containers.iter().enumerate() {
            if images.len() >= MAX_CONTAINERS {
                return Err(format!("more than {MAX_CONTAINERS} containers"));
            }
            let container = container.0.as_ref();
            let name = container.and_then(|c| text(&c.name)).unwrap_or("");
            let label = container_label(list, i, name);
            let image = container
                .and_then(|c| text(&c.image))
                .ok_or_else(|| format!("{label} has no image"))?;
            images.push(PodImage {
                pointer: image_pointer(spec_pointer, list, i),
                image: image.to_owned(),
                container: label,
            });
        }
    }
    Ok(images)
}

/// `{list}[{i}] {name:?}`, the container in messages; written out rather than formatted, as
/// it is built for every container of every review.
fn container_label(list: &str, i: usize, name: &str) -> String {
    let mut label = String::with_capacity(list.len() + name.len() + 10);
    label.push_str(list);
    label.push('[');
    push_index(&mut label, i);
    label.push_str("] ");
    // `Debug` of a string leaves printable ASCII other than `"` and `\` as it is.
    if name
        .bytes()
        .all(|b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
    {
        label.push('"');
        label.push_str(name);
        label.push('"');
    } else {
        let _ = write!(label, "{name:?}");
    }
    label
}

/// `{spec_pointer}/{list}/{i}/image`, the JSON pointer to a container's image.
fn image_pointer(spec_pointer: &str, list: &str, i: usize) -> String {
    let mut pointer = String::with_capacity(spec_pointer.len() + list.len() + 12);
    pointer.push_str(spec_pointer);
    pointer.push('/');
    pointer.push_str(list);
    pointer.push('/');
    push_index(&mut pointer, i);
    pointer.push_str("/image");
    pointer
}

/// `i` in decimal.
fn push_index(out: &mut String, i: usize) {
    if i < 10 {
        out.push(char::from(b'0' + i as u8));
    } else {
        let _ = write!(out, "{i}");
    }
}

/// One operation of the pinning JSONPatch.
#[derive(Serialize)]
struct PatchOp<'a> {
    op: &'static str,
    path: &'a str,
    value: String,
}

/// The operations of [`pin_patch`].
fn pin_ops<'a>(images: &'a [PodImage], decisions: &[Decision]) -> Vec<PatchOp<'a>> {
    images
        .iter()
        .filter(|slot| !slot.image.contains('@'))
        .filter_map(|slot| {
            let decision = decisions.iter().find(|d| d.image == slot.image)?;
            let digest = decision.digest.as_ref().filter(|_| decision.admitted())?;
            Some(PatchOp {
                op: "replace",
                path: &slot.pointer,
                value: format!("{}@{digest}", slot.image),
            })
        })
        .collect()
}

/// The JSONPatch (RFC 6902) pinning each admitted image of `images` to the digest judged
/// (`name:tag@sha256:…`), leaving images already pinned (`@` present) alone. `decisions` are
/// looked up by image string.
pub fn pin_patch(images: &[PodImage], decisions: &[Decision]) -> Vec<Value> {
    pin_ops(images, decisions)
        .iter()
        .filter_map(|op| serde_json::to_value(op).ok())
        .collect()
}

/// The images the webhook judges for the AdmissionReview in `body`, read as `/validate` and
/// `/mutate` read it: none for `DELETE` and `CONNECT`, on `UPDATE` only those `oldObject` did not
/// have. `Err`: why the body is not a review the webhook can read (its 400 answer or the reason
/// it denies).
pub fn review_images(body: &[u8]) -> Result<Vec<PodImage>, String> {
    images_to_judge(&parse_review(body)?)
}

/// A parsed review request.
struct ReviewRequest<'a> {
    api_version: &'static str,
    uid: Cow<'a, str>,
    kind: Cow<'a, str>,
    operation: Cow<'a, str>,
    /// `None`: absent or not an object.
    object: Option<Node<'a>>,
    old_object: Option<Node<'a>>,
}

/// The request of the review in `body`, or the message of the 400 answer.
fn parse_review(body: &[u8]) -> Result<ReviewRequest<'_>, String> {
    // A body that is UTF-8 throughout (every review a Kubernetes API server sends) is checked
    // once, not string by string; any other is read as bytes, so that its error is the one the
    // byte reader gives.
    let review: Field<Review<'_>> = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
    .map_err(|e| format!("malformed JSON: {e}"))?;
    check_review(review.0.unwrap_or_default()).map_err(|e| format!("not an AdmissionReview: {e}"))
}

fn check_review(review: Review<'_>) -> Result<ReviewRequest<'_>, &'static str> {
    let api_version = match text(&review.api_version) {
        Some("admission.k8s.io/v1") => "admission.k8s.io/v1",
        Some("admission.k8s.io/v1beta1") => "admission.k8s.io/v1beta1",
        _ => return Err("apiVersion must be admission.k8s.io/v1"),
    };
    if text(&review.kind) != Some("AdmissionReview") {
        return Err("kind must be AdmissionReview");
    }
    // A `request` that is not an object reads as one without any field.
    let request = review.request.ok_or("no request")?.0.unwrap_or_default();
    let uid = request
        .uid
        .and_then(|f| f.0)
        .filter(|u| !u.is_empty() && u.len() <= 256)
        .ok_or("request.uid missing")?;
    let kind = request
        .kind
        .and_then(|f| f.0)
        .and_then(|k| k.kind)
        .and_then(|f| f.0)
        .ok_or("request.kind.kind missing")?;
    Ok(ReviewRequest {
        api_version,
        uid,
        kind,
        operation: request
            .operation
            .and_then(|f| f.0)
            .unwrap_or(Cow::Borrowed("")),
        object: request.object.and_then(|f| f.0),
        old_object: request.old_object.and_then(|f| f.0),
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

/// The answer to a review sent to `/validate` (or `/mutate`, with `mutate`).
pub(crate) async fn review<J: Judge>(
    gate: Gate<J>,
    headers: HeaderMap,
    body: Body,
    mutate: bool,
) -> Response {
    let bytes = match read_body(&headers, body, gate.inner.config.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let request = match parse_review(&bytes) {
        Ok(r) => r,
        Err(e) => return bad_request(StatusCode::BAD_REQUEST, &e),
    };
    let response = answer(&gate, &request, mutate).await;
    envelope(request.api_version, response)
}

/// The answer: an `AdmissionReview` of `response`.
#[derive(Serialize)]
struct AnswerReview<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'static str,
    response: AdmissionResponse<'a>,
}

/// The `response` of an AdmissionReview; the optional fields are left out when absent.
#[derive(Serialize)]
struct AdmissionResponse<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(rename = "auditAnnotations", skip_serializing_if = "Option::is_none")]
    audit_annotations: Option<AuditAnnotations>,
    #[serde(rename = "patchType", skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
}

impl<'a> AdmissionResponse<'a> {
    fn allow(uid: &'a str) -> Self {
        AdmissionResponse {
            uid,
            allowed: true,
            status: None,
            warnings: Vec::new(),
            audit_annotations: None,
            patch_type: None,
            patch: None,
        }
    }
}

/// The `status` of a denial.
#[derive(Serialize)]
struct Status {
    code: u16,
    reason: &'static str,
    message: String,
}

#[derive(Serialize)]
struct AuditAnnotations {
    #[serde(rename = "untrusted-images")]
    untrusted_images: String,
}

/// The answer as `axum::Json` gives it (the same body and `content-type`), written into one
/// buffer sized for the common answers.
fn envelope(api_version: &str, response: AdmissionResponse<'_>) -> Response {
    let answer = AnswerReview {
        api_version,
        kind: "AdmissionReview",
        response,
    };
    let mut body = Vec::with_capacity(256);
    match answer_json(&mut body, &answer) {
        Ok(()) => (
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            Bytes::from(body),
        )
            .into_response(),
        Err(_) => axum::Json(answer).into_response(),
    }
}

/// Writes the JSON of `answer` to `out`. A bare allow (most answers) is written piece by piece,
/// with the bytes its serialisation gives; every other answer is serialised.
fn answer_json(out: &mut Vec<u8>, answer: &AnswerReview<'_>) -> serde_json::Result<()> {
    let AnswerReview {
        api_version,
        kind,
        response,
    } = answer;
    // Every field named, so that a new one cannot be left out of the bare answer unnoticed.
    let AdmissionResponse {
        uid,
        allowed,
        status,
        warnings,
        audit_annotations,
        patch_type,
        patch,
    } = response;
    let bare = *allowed
        && status.is_none()
        && warnings.is_empty()
        && audit_annotations.is_none()
        && patch_type.is_none()
        && patch.is_none();
    if !bare {
        return serde_json::to_writer(out, answer);
    }
    out.extend_from_slice(br#"{"apiVersion":"#);
    serde_json::to_writer(&mut *out, api_version)?;
    out.extend_from_slice(br#","kind":"#);
    serde_json::to_writer(&mut *out, kind)?;
    out.extend_from_slice(br#","response":{"uid":"#);
    serde_json::to_writer(&mut *out, uid)?;
    out.extend_from_slice(br#","allowed":true}}"#);
    Ok(())
}

fn deny<'a>(uid: &'a str, message: &str) -> AdmissionResponse<'a> {
    AdmissionResponse {
        allowed: false,
        status: Some(Status {
            code: 403,
            reason: "Forbidden",
            message: one_line(message, MAX_STATUS_CHARS),
        }),
        ..AdmissionResponse::allow(uid)
    }
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
    if matches!(&*request.operation, "DELETE" | "CONNECT") {
        return Ok(Vec::new());
    }
    let images = images_of(&request.kind, request.object.as_ref())?;
    if request.operation != "UPDATE" {
        return Ok(images);
    }
    let old: BTreeSet<String> = images_of(&request.kind, request.old_object.as_ref())
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
async fn answer<'a, J: Judge>(
    gate: &Gate<J>,
    request: &'a ReviewRequest<'_>,
    mutate: bool,
) -> AdmissionResponse<'a> {
    let uid = &*request.uid;
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
    // In order, once each (what a `BTreeSet` gives, without a node per image).
    let mut distinct: Vec<String> = images.iter().map(|i| i.image.clone()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let max = gate.inner.config.limits.max_images;
    if distinct.len() > max {
        return deny(uid, &format!("signet: more than {max} distinct images"));
    }
    let decisions = gate.decide_all(&distinct, Source::Admission).await;
    verdict(uid, &images, &decisions, mutate)
}

fn verdict<'a>(
    uid: &'a str,
    images: &[PodImage],
    decisions: &[Decision],
    mutate: bool,
) -> AdmissionResponse<'a> {
    let mut denied = String::new();
    let mut warnings = Vec::new();
    let mut audit = Vec::new();
    for slot in images {
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
            warnings.push(one_line(
                &format!(
                    "signet (warn): {} image {} is not trusted: {}",
                    slot.container, slot.image, d.message
                ),
                MAX_WARNING_CHARS,
            ));
        } else if !d.allowed && d.mode == Mode::Audit {
            audit.push(format!("{}: {}", slot.image, d.message));
        }
    }
    if !denied.is_empty() {
        return deny(uid, &format!("signet: image not trusted: {denied}"));
    }
    let mut response = AdmissionResponse::allow(uid);
    response.warnings = warnings;
    if !audit.is_empty() {
        response.audit_annotations = Some(AuditAnnotations {
            untrusted_images: one_line(&audit.join("; "), MAX_STATUS_CHARS),
        });
    }
    if mutate {
        let patch = pin_ops(images, decisions);
        if !patch.is_empty() {
            let encoded = base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(&patch).unwrap_or_default());
            response.patch_type = Some("JSONPatch");
            response.patch = Some(encoded);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;
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
        let ok_bytes = serde_json::to_vec(&ok).unwrap();
        let r = parse_review(&ok_bytes).unwrap();
        assert_eq!((&*r.uid, &*r.kind, &*r.operation), ("u1", "Pod", "CREATE"));
        for (mutation, wanted) in [
            (json!({"apiVersion": "v1"}), "apiVersion"),
            (json!({"kind": "Pod"}), "kind must be"),
            (json!({"request": null}), "uid"),
        ] {
            let mut bad = ok.clone();
            for (k, v) in mutation.as_object().unwrap() {
                bad[k] = v.clone();
            }
            let err = parse_review(&serde_json::to_vec(&bad).unwrap())
                .err()
                .unwrap();
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
            let request = parse_review(text.as_bytes()).unwrap();
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

    /// A gate whose judge must never be asked (its upstream is a closed port).
    fn no_judge_gate() -> Gate<NoJudge> {
        let config = crate::GateConfig::simple(
            "policy.yaml".into(),
            "127.0.0.1:0".parse().unwrap(),
            "http://127.0.0.1:9",
        )
        .unwrap();
        Gate::new(config, NoJudge).unwrap()
    }

    #[tokio::test]
    async fn fixtures_the_webhook_cannot_read_are_denied() {
        let gate = no_judge_gate();
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
            let request = parse_review(text.as_bytes()).unwrap();
            for mutate in [false, true] {
                let response = serde_json::to_value(answer(&gate, &request, mutate).await).unwrap();
                assert_eq!(response["allowed"], false, "{name}");
                assert_eq!(response["status"]["code"], 403, "{name}");
                assert_eq!(response["uid"], &*request.uid, "{name}");
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
        let bytes = serde_json::to_vec(&review).unwrap();
        let request = parse_review(&bytes).unwrap();
        assert_eq!(request.operation, "DELETE");
        let response = serde_json::to_value(answer(&gate, &request, false).await).unwrap();
        assert_eq!(response["allowed"], true);
        let mut unknown = review.clone();
        unknown["request"]["kind"]["kind"] = json!("ConfigMap");
        let bytes = serde_json::to_vec(&unknown).unwrap();
        let request = parse_review(&bytes).unwrap();
        let response = serde_json::to_value(answer(&gate, &request, false).await).unwrap();
        assert_eq!(response["allowed"], true);
    }

    /// The body of an HTTP answer, as text.
    async fn body_text(response: Response) -> (u16, String) {
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn judged(
        image: &str,
        digest: Option<Digest>,
        allowed: bool,
        mode: Mode,
        message: &str,
    ) -> Decision {
        Decision {
            message: message.into(),
            ..decision(image, digest, allowed, mode)
        }
    }

    /// The exact bytes of each kind of answer, pinned on the `Value`-built answers the typed ones
    /// replaced: clients compare neither key order nor spacing, but a change here would be a
    /// change of the wire format all the same.
    #[tokio::test]
    async fn answers_are_byte_exact() {
        let d1 = Digest::sha256(b"app");
        let images = extract_images(
            "Pod",
            &json!({"spec": {
                "initContainers": [{"name": "setup", "image": "ghcr.io/org/setup:2"}],
                "containers": [{"name": "app", "image": "127.0.0.1:5000/team/app:v1"},
                               {"name": "aud\"it", "image": "audit:1"},
                               {"name": "side", "image": format!("busybox@{d1}")}],
            }}),
        )
        .unwrap();
        let allow = |image: &str| judged(image, Some(d1.clone()), true, Mode::Enforce, "ok");
        let all_allowed = vec![
            allow("ghcr.io/org/setup:2"),
            allow("127.0.0.1:5000/team/app:v1"),
            allow("audit:1"),
            allow(&format!("busybox@{d1}")),
        ];
        let mixed = vec![
            judged(
                "ghcr.io/org/setup:2",
                Some(d1.clone()),
                false,
                Mode::Warn,
                "no signature\nfound",
            ),
            allow("127.0.0.1:5000/team/app:v1"),
            judged("audit:1", None, false, Mode::Audit, "unsigned"),
            allow(&format!("busybox@{d1}")),
        ];
        let denied = vec![
            judged(
                "ghcr.io/org/setup:2",
                None,
                false,
                Mode::Enforce,
                "no signature",
            ),
            allow("127.0.0.1:5000/team/app:v1"),
            judged("audit:1", None, false, Mode::Enforce, "bad \"sig\"\t"),
            allow(&format!("busybox@{d1}")),
        ];
        let v1 = "admission.k8s.io/v1";
        let beta = "admission.k8s.io/v1beta1";
        let cases = [
            (v1, "u1", &all_allowed, false,
             r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u1","allowed":true}}"#.to_string()),
            (beta, "u\"2", &all_allowed, true,
             format!(r#"{{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","response":{{"uid":"u\"2","allowed":true,"patchType":"JSONPatch","patch":"{}"}}}}"#,
                 base64::engine::general_purpose::STANDARD.encode(format!(
                     r#"[{{"op":"replace","path":"/spec/containers/0/image","value":"127.0.0.1:5000/team/app:v1@{d1}"}},{{"op":"replace","path":"/spec/containers/1/image","value":"audit:1@{d1}"}},{{"op":"replace","path":"/spec/initContainers/0/image","value":"ghcr.io/org/setup:2@{d1}"}}]"#)))),
            (v1, "u3", &mixed, false,
             r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u3","allowed":true,"warnings":["signet (warn): initContainers[0] \"setup\" image ghcr.io/org/setup:2 is not trusted: no signature found"],"auditAnnotations":{"untrusted-images":"audit:1: unsigned"}}}"#.to_string()),
            (v1, "u4", &mixed, true,
             format!(r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":"u4","allowed":true,"warnings":["signet (warn): initContainers[0] \"setup\" image ghcr.io/org/setup:2 is not trusted: no signature found"],"auditAnnotations":{{"untrusted-images":"audit:1: unsigned"}},"patchType":"JSONPatch","patch":"{}"}}}}"#,
                 base64::engine::general_purpose::STANDARD.encode(format!(
                     r#"[{{"op":"replace","path":"/spec/containers/0/image","value":"127.0.0.1:5000/team/app:v1@{d1}"}},{{"op":"replace","path":"/spec/initContainers/0/image","value":"ghcr.io/org/setup:2@{d1}"}}]"#)))),
            (v1, "u5", &denied, true,
             r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u5","allowed":false,"status":{"code":403,"reason":"Forbidden","message":"signet: image not trusted: containers[1] \"aud\\\"it\" image audit:1: bad \"sig\" ; initContainers[0] \"setup\" image ghcr.io/org/setup:2: no signature"}}}"#.to_string()),
        ];
        for (api_version, uid, decisions, mutate, wanted) in cases {
            let (status, body) = body_text(envelope(
                api_version,
                verdict(uid, &images, decisions, mutate),
            ))
            .await;
            assert_eq!((status, body.as_str()), (200, wanted.as_str()), "{uid}");
        }
        // A long denial is cut, on characters.
        let long = vec![judged(
            "127.0.0.1:5000/team/app:v1",
            None,
            false,
            Mode::Enforce,
            &"é".repeat(5000),
        )];
        let (_, body) = body_text(envelope(v1, verdict("u6", &images[..1], &long, false))).await;
        let prefix =
            "signet: image not trusted: containers[0] \"app\" image 127.0.0.1:5000/team/app:v1: ";
        let message = format!("{prefix}{}…", "é".repeat(4000 - prefix.len()));
        assert_eq!(
            body,
            format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":"u6","allowed":false,"status":{{"code":403,"reason":"Forbidden","message":{}}}}}}}"#,
                serde_json::to_string(&message).unwrap()
            )
        );
    }

    /// Whole reviews through the handler, where no image has to be judged: exact status and body.
    #[tokio::test]
    async fn reviews_are_answered_byte_exact() {
        let gate = no_judge_gate();
        let cases: [(&[u8], u16, &str); 8] = [
            (b"", 400, r#"{"error":"malformed JSON: EOF while parsing a value at line 1 column 0"}"#),
            (b"{\"apiVersion\": \"admission.k8s.io/v1\"} {}", 400, r#"{"error":"malformed JSON: trailing characters at line 1 column 39"}"#),
            (b"[]", 400, r#"{"error":"not an AdmissionReview: apiVersion must be admission.k8s.io/v1"}"#),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"","kind":{"kind":"Pod"}}}"#,
             400, r#"{"error":"not an AdmissionReview: request.uid missing"}"#),
            (br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"a\u003ab","kind":{"kind":"ConfigMap"},"operation":"CREATE","object":{}}}"#,
             200, r#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","response":{"uid":"a:b","allowed":false,"status":{"code":403,"reason":"Forbidden","message":"signet: cannot read the images of this ConfigMap: kind \"ConfigMap\" is not one the webhook reads images from (Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, ReplicationController, PodTemplate, CronJob); it is denied rather than admitted unread: check the webhook's rules"}}}"#),
            (br#"{"request":{"object":{"spec":[]},"operation":"CREATE","kind":{"kind":"Pod"},"uid":"u"},"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#,
             200, r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u","allowed":false,"status":{"code":403,"reason":"Forbidden","message":"signet: cannot read the images of this Pod: Pod: /spec is not an object"}}}"#),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u\n","kind":{"kind":"Deployment"},"operation":"DELETE","object":null}}"#,
             200, r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u\n","allowed":true}}"#),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":null}}}}"#,
             200, r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u","allowed":true}}"#),
        ];
        for (body, status, wanted) in cases {
            for mutate in [false, true] {
                let response = review(
                    gate.clone(),
                    HeaderMap::new(),
                    Body::from(body.to_vec()),
                    mutate,
                )
                .await;
                let got = body_text(response).await;
                assert_eq!(
                    (got.0, got.1.as_str()),
                    (status, wanted),
                    "{}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }

    /// What the webhook makes of a review body: the 400 message, or the request's fields and
    /// the images to judge (or why they cannot be read).
    fn outcome(body: &[u8]) -> String {
        let request = match parse_review(body) {
            Ok(r) => r,
            Err(e) => return e,
        };
        let head = format!(
            "{} uid={:?} kind={:?} op={:?}",
            request.api_version, request.uid, request.kind, request.operation
        );
        match images_to_judge(&request) {
            Ok(images) => {
                let images: Vec<String> = images
                    .iter()
                    .map(|i| format!("{}={} ({})", i.pointer, i.image, i.container))
                    .collect();
                format!("{head}: {}", images.join(", "))
            }
            Err(e) => format!("{head} error: {e}"),
        }
    }

    const V1: &str = r#""apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview""#;

    /// A review of `request`.
    fn rv(request: &str) -> Vec<u8> {
        format!(r#"{{{V1},"request":{request}}}"#).into_bytes()
    }

    /// A CREATE review of `object`, an object of `kind`.
    fn create(kind: &str, object: &str) -> Vec<u8> {
        rv(&format!(
            r#"{{"uid":"u","kind":{{"kind":"{kind}"}},"operation":"CREATE","object":{object}}}"#
        ))
    }

    /// Bodies the old `Value` walk read in ways a typed model could easily read otherwise.
    #[test]
    fn tricky_reviews() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let app = r#"{"name":"a","image":"app:1"}"#;
        let many = |n: usize| vec![app; n].join(",");
        let head = r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE": "#;
        let thousand = format!(
            "{head}{}",
            (0..1000)
                .map(|i| format!(r#"/spec/containers/{i}/image=app:1 (containers[{i}] "a")"#))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let uid256 = format!(
            r#"admission.k8s.io/v1 uid="{}" kind="Pod" op="DELETE": "#,
            "u".repeat(256)
        );
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", b"".to_vec(), r#"malformed JSON: EOF while parsing a value at line 1 column 0"#),
            ("whitespace", b" \n ".to_vec(), r#"malformed JSON: EOF while parsing a value at line 2 column 1"#),
            ("trailing garbage", [create("Pod", r#"{"spec":{}}"#), b"x".to_vec()].concat(), r#"malformed JSON: trailing characters at line 1 column 148"#),
            ("two documents", [create("Pod", r#"{"spec":{}}"#), b"{}".to_vec()].concat(), r#"malformed JSON: trailing characters at line 1 column 148"#),
            ("not an object", b"[1,2]".to_vec(), r#"not an AdmissionReview: apiVersion must be admission.k8s.io/v1"#),
            ("null", b"null".to_vec(), r#"not an AdmissionReview: apiVersion must be admission.k8s.io/v1"#),
            ("string", br#""AdmissionReview""#.to_vec(), r#"not an AdmissionReview: apiVersion must be admission.k8s.io/v1"#),
            ("apiVersion a number", br#"{"apiVersion":5,"kind":"AdmissionReview","request":{}}"#.to_vec(), r#"not an AdmissionReview: apiVersion must be admission.k8s.io/v1"#),
            ("apiVersion v1beta1", br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"object":{"spec":{}}}}"#.to_vec(), r#"admission.k8s.io/v1beta1 uid="u" kind="Pod" op="": "#),
            ("apiVersion v2", br#"{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview","request":{}}"#.to_vec(), r#"not an AdmissionReview: apiVersion must be admission.k8s.io/v1"#),
            ("kind a list", br#"{"apiVersion":"admission.k8s.io/v1","kind":["AdmissionReview"],"request":{}}"#.to_vec(), r#"not an AdmissionReview: kind must be AdmissionReview"#),
            ("kind missing", br#"{"apiVersion":"admission.k8s.io/v1","request":{}}"#.to_vec(), r#"not an AdmissionReview: kind must be AdmissionReview"#),
            ("no request", format!("{{{V1}}}").into_bytes(), r#"not an AdmissionReview: no request"#),
            ("request null", rv("null"), r#"not an AdmissionReview: request.uid missing"#),
            ("request a list", rv(r#"[{"uid":"u"}]"#), r#"not an AdmissionReview: request.uid missing"#),
            ("uid a number", rv(r#"{"uid":5,"kind":{"kind":"Pod"}}"#), r#"not an AdmissionReview: request.uid missing"#),
            ("uid empty", rv(r#"{"uid":"","kind":{"kind":"Pod"}}"#), r#"not an AdmissionReview: request.uid missing"#),
            ("uid 256", rv(&format!(r#"{{"uid":"{}","kind":{{"kind":"Pod"}},"operation":"DELETE"}}"#, "u".repeat(256))), &uid256),
            ("uid 257", rv(&format!(r#"{{"uid":"{}","kind":{{"kind":"Pod"}}}}"#, "u".repeat(257))), r#"not an AdmissionReview: request.uid missing"#),
            ("uid escaped", rv(r#"{"uid":"u\u003a1\"\n","kind":{"kind":"Pod"},"operation":"DELETE"}"#), r#"admission.k8s.io/v1 uid="u:1\"\n" kind="Pod" op="DELETE": "#),
            ("request.kind missing", rv(r#"{"uid":"u"}"#), r#"not an AdmissionReview: request.kind.kind missing"#),
            ("request.kind a string", rv(r#"{"uid":"u","kind":"Pod"}"#), r#"not an AdmissionReview: request.kind.kind missing"#),
            ("request.kind.kind a number", rv(r#"{"uid":"u","kind":{"kind":3}}"#), r#"not an AdmissionReview: request.kind.kind missing"#),
            ("request.kind.kind escaped", rv(r#"{"uid":"u","kind":{"kind":"P\u006fd"},"object":{"spec":{}}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="": "#),
            ("operation a number", rv(r#"{"uid":"u","kind":{"kind":"Pod"},"operation":7,"object":{"spec":{"containers":[{"image":"x"}]}}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="": /spec/containers/0/image=x (containers[0] "")"#),
            ("operation missing, no object", rv(r#"{"uid":"u","kind":{"kind":"Pod"}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="" error: Pod has no pod spec: /spec is missing"#),
            ("object a number", create("Pod", "5"), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE" error: Pod has no pod spec: /spec is missing"#),
            ("object null", create("Pod", "null"), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE" error: Pod has no pod spec: /spec is missing"#),
            ("pod spec null", create("Pod", r#"{"spec":null}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE" error: Pod: /spec is not an object"#),
            ("pod spec a list", create("Pod", r#"{"spec":[{"containers":[]}]}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE" error: Pod: /spec is not an object"#),
            ("deployment spec a list", create("Deployment", r#"{"spec":[]}"#), r#"admission.k8s.io/v1 uid="u" kind="Deployment" op="CREATE" error: Deployment has no pod spec: /spec/template/spec is missing"#),
            ("deployment template a string", create("Deployment", r#"{"spec":{"template":"x"}}"#), r#"admission.k8s.io/v1 uid="u" kind="Deployment" op="CREATE" error: Deployment has no pod spec: /spec/template/spec is missing"#),
            ("deployment template null", create("Deployment", r#"{"spec":{"template":null}}"#), r#"admission.k8s.io/v1 uid="u" kind="Deployment" op="CREATE" error: Deployment has no pod spec: /spec/template/spec is missing"#),
            ("deployment template.spec null", create("Deployment", r#"{"spec":{"template":{"spec":null}}}"#), r#"admission.k8s.io/v1 uid="u" kind="Deployment" op="CREATE" error: Deployment: /spec/template/spec is not an object"#),
            ("deployment template.spec a number", create("Deployment", r#"{"spec":{"template":{"spec":1}}}"#), r#"admission.k8s.io/v1 uid="u" kind="Deployment" op="CREATE" error: Deployment: /spec/template/spec is not an object"#),
            ("cronjob jobTemplate a list", create("CronJob", r#"{"spec":{"jobTemplate":[]}}"#), r#"admission.k8s.io/v1 uid="u" kind="CronJob" op="CREATE" error: CronJob has no pod spec: /spec/jobTemplate/spec/template/spec is missing"#),
            ("cronjob jobTemplate.spec missing", create("CronJob", r#"{"spec":{"jobTemplate":{}}}"#), r#"admission.k8s.io/v1 uid="u" kind="CronJob" op="CREATE" error: CronJob has no pod spec: /spec/jobTemplate/spec/template/spec is missing"#),
            ("cronjob spec.template ignored", create("CronJob", &format!(r#"{{"spec":{{"template":{{"spec":{{"containers":[{app}]}}}},"jobTemplate":{{"spec":{{"template":{{"spec":{{"initContainers":[{app}]}}}}}}}}}}}}"#)), r#"admission.k8s.io/v1 uid="u" kind="CronJob" op="CREATE": /spec/jobTemplate/spec/template/spec/initContainers/0/image=app:1 (initContainers[0] "a")"#),
            ("podtemplate template.spec", create("PodTemplate", &format!(r#"{{"spec":{{"containers":[{{"image":"no"}}]}},"template":{{"spec":{{"containers":[{app}]}}}}}}"#)), r#"admission.k8s.io/v1 uid="u" kind="PodTemplate" op="CREATE": /template/spec/containers/0/image=app:1 (containers[0] "a")"#),
            ("podtemplate template a list", create("PodTemplate", r#"{"template":[]}"#), r#"admission.k8s.io/v1 uid="u" kind="PodTemplate" op="CREATE" error: PodTemplate has no pod spec: /template/spec is missing"#),
            ("containers null", create("Pod", r#"{"spec":{"containers":null,"initContainers":[{"image":"i"}]}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE": /spec/initContainers/0/image=i (initContainers[0] "")"#),
            ("containers an object", create("Pod", r#"{"spec":{"containers":{"0":{"image":"x"}}}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE" error: /spec/containers is not a list"#),
            ("containers a string", create("Pod", r#"{"spec":{"containers":"x"}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE" error: /spec/containers is not a list"#),
            ("initContainers a number", create("Deployment", r#"{"spec":{"template":{"spec":{"containers":[],"initContainers":1}}}}"#), r#"admission.k8s.io/v1 uid="u" kind="Deployment" op="CREATE" error: /spec/template/spec/initContainers is not a list"#),
            ("ephemeralContainers true", create("Pod", r#"{"spec":{"ephemeralContainers":true}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE" error: /spec/ephemeralContainers is not a list"#),
            ("container a number", create("Pod", r#"{"spec":{"containers":[5]}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE" error: containers[0] "" has no image"#),
            ("container a list", create("Pod", r#"{"spec":{"containers":[["image","x"]]}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE" error: containers[0] "" has no image"#),
            ("container null", create("Pod", r#"{"spec":{"containers":[null]}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE" error: containers[0] "" has no image"#),
            ("container name a number", create("Pod", r#"{"spec":{"containers":[{"name":3,"image":"x"}]}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE": /spec/containers/0/image=x (containers[0] "")"#),
            ("container name missing", create("Pod", r#"{"spec":{"containers":[{"image":"x"}]}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE": /spec/containers/0/image=x (containers[0] "")"#),
            ("container image a number", create("Pod", r#"{"spec":{"containers":[{"name":"n","image":3}]}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE" error: containers[0] "n" has no image"#),
            ("container image null", create("Pod", r#"{"spec":{"containers":[{"name":"n","image":null}]}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE" error: containers[0] "n" has no image"#),
            ("container image an object", create("Pod", r#"{"spec":{"containers":[{"name":"n","image":{"ref":"x"}}]}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE" error: containers[0] "n" has no image"#),
            ("escaped strings", create("Pod", r#"{"spec":{"containers":[{"name":"a\"b\u00e9\n","image":"app\u003av1"}]}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE": /spec/containers/0/image=app:v1 (containers[0] "a\"bé\n")"#),
            ("escaped keys", create("Pod", r#"{"\u0073pec":{"c\u006fntainers":[{"n\u0061me":"n","\u0069mage":"x"}]}}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE": /spec/containers/0/image=x (containers[0] "n")"#),
            ("object before kind", rv(&format!(r#"{{"object":{{"spec":{{"template":{{"spec":{{"containers":[{app}]}}}}}}}},"operation":"CREATE","kind":{{"kind":"Deployment"}},"uid":"u"}}"#)), r#"admission.k8s.io/v1 uid="u" kind="Deployment" op="CREATE": /spec/template/spec/containers/0/image=app:1 (containers[0] "a")"#),
            ("request before apiVersion", format!(r#"{{"request":{{"object":{{"spec":{{"containers":[{app}]}}}},"kind":{{"kind":"Pod"}},"uid":"u"}},"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}}"#).into_bytes(), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="": /spec/containers/0/image=app:1 (containers[0] "a")"#),
            ("unknown fields, nested", rv(&format!(r#"{{"x":{{"a":[1,{{"b":null}},[[["c"]]]]}},"uid":"u","kind":{{"kind":"Pod","y":[{{}}]}},"dryRun":false,"object":{{"metadata":{{"labels":{{"a":"b"}}}},"spec":{{"containers":[{{"env":[{{"name":"E","value":"1"}}],"name":"a","image":"app:1","ports":[{{"containerPort":80}}]}}],"volumes":[{{"x":{deep}}}]}},"status":{{}}}},"z":-1.5e-3}}"#, deep = deep(100))), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="": /spec/containers/0/image=app:1 (containers[0] "a")"#),
            ("nesting at the limit", rv(&format!(r#"{{"uid":"u","kind":{{"kind":"Pod"}},"x":{},"object":{{"spec":{{}}}}}}"#, deep(125))), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="": "#),
            ("nesting over the limit", rv(&format!(r#"{{"uid":"u","kind":{{"kind":"Pod"}},"x":{},"object":{{"spec":{{}}}}}}"#, deep(126))), r#"malformed JSON: recursion limit exceeded at line 1 column 234"#),
            ("spec in spec, at the limit", create("Pod", &format!("{}{{}}{}", r#"{"spec":"#.repeat(124), "}".repeat(124))), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE": "#),
            ("spec in spec, over the limit", create("Pod", &format!("{}{{}}{}", r#"{"spec":"#.repeat(125), "}".repeat(125))), r#"malformed JSON: recursion limit exceeded at line 1 column 1135"#),
            ("number out of range, unread", rv(r#"{"uid":"u","kind":{"kind":"Pod"},"x":1e400,"object":{"spec":{}}}"#), r#"malformed JSON: number out of range at line 1 column 113"#),
            ("invalid number, unread", rv(r#"{"uid":"u","kind":{"kind":"Pod"},"x":01,"object":{"spec":{}}}"#), r#"malformed JSON: invalid number at line 1 column 110"#),
            ("lone surrogate, unread", rv(r#"{"uid":"u","kind":{"kind":"Pod"},"x":"\ud800","object":{"spec":{}}}"#), r#"malformed JSON: unexpected end of hex escape at line 1 column 116"#),
            ("invalid UTF-8, unread", [rv(r#"{"uid":"u","kind":{"kind":"Pod"},"x":""#), vec![0xff, b'"', b'}', b'}']].concat(), r#"malformed JSON: invalid unicode code point at line 1 column 111"#),
            ("invalid UTF-8 key, unread", [rv(r#"{"uid":"u","kind":{"kind":"Pod"},""#), vec![0xc3, b'"', b':', b'1', b'}', b'}']].concat(), r#"malformed JSON: invalid unicode code point at line 1 column 107"#),
            ("control character, unread", rv("{\"uid\":\"u\",\"kind\":{\"kind\":\"Pod\"},\"x\":\"\t\",\"object\":{\"spec\":{}}}"), r#"malformed JSON: control character (\u0000-\u001F) found while parsing a string at line 1 column 110"#),
            ("unterminated", create("Pod", r#"{"spec":{"containers":[{"image":"x"}"#), r#"malformed JSON: expected `,` or `]` at line 1 column 171"#),
            ("1000 containers", create("Pod", &format!(r#"{{"spec":{{"containers":[{}]}}}}"#, many(1000))), &thousand),
            ("1001 containers", create("Pod", &format!(r#"{{"spec":{{"containers":[{}],"initContainers":[{app}]}}}}"#, many(1000))), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE" error: more than 1000 containers"#),
            ("unknown kind", create("ConfigMap", r#"{"data":{}}"#), r#"admission.k8s.io/v1 uid="u" kind="ConfigMap" op="CREATE" error: kind "ConfigMap" is not one the webhook reads images from (Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, ReplicationController, PodTemplate, CronJob); it is denied rather than admitted unread: check the webhook's rules"#),
            ("delete, junk object", rv(r#"{"uid":"u","kind":{"kind":"Pod"},"operation":"DELETE","object":[1]}"#), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="DELETE": "#),
            ("connect, unknown kind", rv(r#"{"uid":"u","kind":{"kind":"PodExecOptions"},"operation":"CONNECT"}"#), r#"admission.k8s.io/v1 uid="u" kind="PodExecOptions" op="CONNECT": "#),
            ("update", rv(&format!(r#"{{"uid":"u","kind":{{"kind":"Pod"}},"operation":"UPDATE","object":{{"spec":{{"containers":[{app},{{"name":"b","image":"new:1"}}]}}}},"oldObject":{{"spec":{{"containers":[{app}]}}}}}}"#)), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="UPDATE": /spec/containers/1/image=new:1 (containers[1] "b")"#),
            ("update, oldObject unreadable", rv(&format!(r#"{{"uid":"u","kind":{{"kind":"Pod"}},"operation":"UPDATE","object":{{"spec":{{"containers":[{app}]}}}},"oldObject":{{"spec":{{"containers":[{{"name":"b"}}]}}}}}}"#)), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="UPDATE": /spec/containers/0/image=app:1 (containers[0] "a")"#),
            ("update, oldObject a number", rv(&format!(r#"{{"uid":"u","kind":{{"kind":"Pod"}},"operation":"UPDATE","object":{{"spec":{{"containers":[{app}]}}}},"oldObject":5}}"#)), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="UPDATE": /spec/containers/0/image=app:1 (containers[0] "a")"#),
            ("update, object unreadable", rv(&format!(r#"{{"uid":"u","kind":{{"kind":"Pod"}},"operation":"UPDATE","object":{{"spec":[]}},"oldObject":{{"spec":{{"containers":[{app}]}}}}}}"#)), r#"admission.k8s.io/v1 uid="u" kind="Pod" op="UPDATE" error: Pod: /spec is not an object"#),
        ];
        let mut wrong = Vec::new();
        for (name, body, wanted) in &cases {
            let got = outcome(body);
            if got != *wanted {
                wrong.push(format!("{name:?}: {got:?}"));
            }
        }
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }

    /// A key the webhook reads, given twice in one object, is refused (the `Value` parser kept
    /// the last): JSON parsers disagree on which of the two counts, so the API server may store
    /// another image than the one judged.
    #[tokio::test]
    async fn duplicate_fields_are_refused() {
        let app = r#"{"name":"a","image":"app:1"}"#;
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "image twice",
                create(
                    "Pod",
                    r#"{"spec":{"containers":[{"name":"a","image":"app:1","image":"evil:1"}]}}"#,
                ),
                r#"malformed JSON: duplicate field `image` at line 1 column 192"#,
            ),
            (
                "image twice, escaped",
                create(
                    "Pod",
                    r#"{"spec":{"containers":[{"image":"app:1","\u0069mage":"evil:1"}]}}"#,
                ),
                r#"malformed JSON: duplicate field `image` at line 1 column 186"#,
            ),
            (
                "containers twice",
                create(
                    "Deployment",
                    &format!(
                        r#"{{"spec":{{"template":{{"spec":{{"containers":[{app}],"containers":[]}}}}}}}}"#
                    ),
                ),
                r#"malformed JSON: duplicate field `containers` at line 1 column 226"#,
            ),
            (
                "spec twice",
                create(
                    "Pod",
                    &format!(r#"{{"spec":{{"containers":[{app}]}},"spec":{{}}}}"#),
                ),
                r#"malformed JSON: duplicate field `spec` at line 1 column 194"#,
            ),
            (
                "object twice",
                rv(&format!(
                    r#"{{"uid":"u","kind":{{"kind":"Pod"}},"object":{{"spec":{{}}}},"object":{{"spec":{{"containers":[{app}]}}}}}}"#
                )),
                r#"malformed JSON: duplicate field `object` at line 1 column 133"#,
            ),
            (
                "request.kind.kind twice",
                rv(r#"{"uid":"u","kind":{"kind":"ConfigMap","kind":"Pod"},"object":{"spec":{}}}"#),
                r#"malformed JSON: duplicate field `kind` at line 1 column 115"#,
            ),
            (
                "uid twice",
                rv(r#"{"uid":"u","uid":"v","kind":{"kind":"Pod"},"object":{"spec":{}}}"#),
                r#"malformed JSON: duplicate field `uid` at line 1 column 87"#,
            ),
            (
                "oldObject image twice",
                rv(&format!(
                    r#"{{"uid":"u","kind":{{"kind":"Pod"}},"operation":"UPDATE","object":{{"spec":{{"containers":[{app}]}}}},"oldObject":{{"spec":{{"containers":[{{"image":"app:1","image":"x"}}]}}}}}}"#
                )),
                r#"malformed JSON: duplicate field `image` at line 1 column 248"#,
            ),
        ];
        for (name, body, wanted) in &cases {
            assert_eq!(outcome(body), *wanted, "{name}");
        }
        // Keys the webhook does not read may repeat.
        assert_eq!(
            outcome(&create(
                "Pod",
                r#"{"metadata":{"name":"a","name":"b"},"spec":{"containers":[{"name":"a","image":"app:1","env":[],"env":{}}]},"status":1,"status":2}"#
            )),
            r#"admission.k8s.io/v1 uid="u" kind="Pod" op="CREATE": /spec/containers/0/image=app:1 (containers[0] "a")"#
        );
        // Through the handler: a 400 naming the field.
        let gate = no_judge_gate();
        let response = review(gate, HeaderMap::new(), Body::from(cases[0].1.clone()), true).await;
        let (status, body) = body_text(response).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body.starts_with(
                r#"{"error":"malformed JSON: duplicate field `image` at line 1 column "#
            ),
            "{body}"
        );
    }

    #[test]
    fn labels_and_pointers_read_as_formatted() {
        // The message text and pointer of every container, whatever its index and name, are
        // what `format!` made of them.
        let names = [
            "",
            "app",
            "a b",
            "with\"quote",
            "back\\slash",
            "tab\there",
            "new\nline",
            "nul\0",
            "del\u{7f}",
            "it's",
            "café",
            "\u{301}mark",
            "🚀",
            "~!@#$%^&*()_+{}|:<>?",
        ];
        for list in CONTAINER_LISTS {
            for i in [0, 1, 9, 10, 11, 99, 100, 999, 1000, 123_456] {
                for name in names {
                    assert_eq!(
                        container_label(list, i, name),
                        format!("{list}[{i}] {name:?}"),
                        "{list} {i} {name:?}"
                    );
                }
                for spec in ["/spec", "/spec/template/spec"] {
                    assert_eq!(
                        image_pointer(spec, list, i),
                        format!("{spec}/{list}/{i}/image")
                    );
                }
            }
        }
        // Through a review: a pod of many containers, names needing escapes among them.
        let containers: Vec<Value> = (0..12)
            .map(|i| json!({"name": names[i % names.len()], "image": format!("app:{i}")}))
            .collect();
        let body = create(
            "Deployment",
            &json!({"spec": {"template": {"spec": {"containers": containers, "initContainers": [{"name": "in\"it", "image": "init:1"}]}}}})
                .to_string(),
        );
        let images = review_images(&body).unwrap();
        assert_eq!(images.len(), 13);
        for (i, image) in images.iter().take(12).enumerate() {
            let name = names[i % names.len()];
            assert_eq!(image.container, format!("containers[{i}] {name:?}"));
            assert_eq!(
                image.pointer,
                format!("/spec/template/spec/containers/{i}/image")
            );
            assert_eq!(image.image, format!("app:{i}"));
        }
        assert_eq!(images[12].container, r#"initContainers[0] "in\"it""#);
        assert_eq!(
            images[12].pointer,
            "/spec/template/spec/initContainers/0/image"
        );
        // The error naming a container without an image.
        let body = create(
            "Pod",
            r#"{"spec":{"containers":[{"name":"a","image":"x"}],"ephemeralContainers":[{"name":"d\u00e9\tbug"}]}}"#,
        );
        assert_eq!(
            review_images(&body).unwrap_err(),
            r#"ephemeralContainers[0] "dé\tbug" has no image"#
        );
    }

    #[test]
    fn bare_allows_are_written_as_serialised() {
        let uids = [
            "705ab4f5-6393-11e8-b7cc-42010a800002",
            "u",
            "quote\"back\\slash/solidus",
            "ctl\u{1}\u{1f}\t\n\r\u{7f}",
            "é🚀\u{2028}\u{2029}",
        ];
        for api_version in ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"] {
            for uid in uids {
                let answer = AnswerReview {
                    api_version,
                    kind: "AdmissionReview",
                    response: AdmissionResponse::allow(uid),
                };
                let mut written = Vec::new();
                answer_json(&mut written, &answer).unwrap();
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    serde_json::to_string(&answer).unwrap(),
                    "{uid:?}"
                );
            }
        }
        // Any other answer is serialised as it is.
        let mut warned = AdmissionResponse::allow("u");
        warned.warnings.push("w".into());
        let mut patched = AdmissionResponse::allow("u");
        patched.patch_type = Some("JSONPatch");
        patched.patch = Some("W10=".into());
        for response in [deny("u", "no"), warned, patched] {
            let answer = AnswerReview {
                api_version: "admission.k8s.io/v1",
                kind: "AdmissionReview",
                response,
            };
            let mut written = Vec::new();
            answer_json(&mut written, &answer).unwrap();
            assert_eq!(written, serde_json::to_vec(&answer).unwrap());
        }
    }

    #[test]
    fn bodies_read_as_the_byte_reader_reads_them() {
        // A UTF-8 body is read as text, any other as bytes; either way the outcome, and the
        // error with its position, is the byte reader's.
        let by_bytes = |body: &[u8]| -> String {
            match serde_json::from_slice::<Field<Review<'_>>>(body) {
                Ok(review) => match check_review(review.0.unwrap_or_default()) {
                    Ok(r) => format!("ok {} {:?}", r.uid, images_to_judge(&r)),
                    Err(e) => format!("not an AdmissionReview: {e}"),
                },
                Err(e) => format!("malformed JSON: {e}"),
            }
        };
        let by_reader = |body: &[u8]| -> String {
            match parse_review(body) {
                Ok(r) => format!("ok {} {:?}", r.uid, images_to_judge(&r)),
                Err(e) => e,
            }
        };
        let pod = r#"{"spec":{"containers":[{"name":"a","image":"app:1"}]}}"#;
        let mut bodies: Vec<Vec<u8>> = vec![
            create("Pod", pod),
            create(
                "Pod",
                r#"{"spec":{"containers":[{"name":"\u00e9","image":"app:\u0031"}]}}"#,
            ),
            create("Pod", r#"{"metadata":{"name":"\ud800"},"spec":{}}"#),
            create("Pod", r#"{"metadata":{"name":"\ud83d\ude80"},"spec":{}}"#),
            create("Pod", r#"{"metadata":{"name":"\x"},"spec":{}}"#),
            create("Pod", "{\"metadata\":{\"name\":\"a\tb\"},\"spec\":{}}"),
            create("Pod", r#"{"metadata":{"n":1e400},"spec":{}}"#),
            create("Pod", r#"{"metadata":{"n":-0.5e-400},"spec":{}}"#),
            create("Pod", r#"{"spec":{"containers":[{"image":"é🚀"}]}}"#),
            create(
                "Pod",
                &format!(r#"{{"metadata":{}1{}}}"#, "[".repeat(200), "]".repeat(200)),
            ),
            create("Pod", pod)[..60].to_vec(),
            b"".to_vec(),
            b"\xef\xbb\xbf{}".to_vec(),
            b"{\"apiVersion\":\"admission.k8s.io/v1\"\xff".to_vec(),
            b"\xff".to_vec(),
        ];
        let valid = create("Pod", pod);
        // Invalid UTF-8 at every place of a review: in strings, keys, between tokens.
        for at in (0..valid.len()).step_by(7) {
            for bad in [
                &[0xff_u8][..],
                &[0xc3],
                &[0xed, 0xa0, 0x80],
                &[0xf4, 0x90, 0x80, 0x80],
            ] {
                bodies.push([&valid[..at], bad, &valid[at..]].concat());
            }
        }
        for body in &bodies {
            assert_eq!(
                by_reader(body),
                by_bytes(body),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
