//! The verifying registry proxy: the pull half of the OCI distribution API (`/v2/…`), served to
//! docker, podman, skopeo and containerd. A manifest is fetched from upstream, hashed here, judged
//! under its upstream name and served byte for byte only when admitted; blobs stream through,
//! digest-checked as they pass, and are cut off (the connection aborted before their last bytes)
//! when they do not match. Cosign signature manifests (`sha256-<hex>.sig`) pass unjudged so
//! clients can verify for themselves. Pushes and deletes are refused.

// Handlers' helpers fail with the HTTP answer to give; it is large, and that is fine here.
#![allow(clippy::result_large_err)]

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::json;
use signet_oci::manifest::SIMPLE_SIGNING;
use signet_oci::registry::ByteStream;
use signet_oci::{Descriptor, Digest, FetchedManifest, Manifest, Reference};

use super::config::route_in;
use super::engine::{Source, MAX_MESSAGE_CHARS};
use super::metrics::Metrics;
use super::server::Gate;
use super::{one_line, Judge, Judgement};

/// `Docker-Distribution-API-Version`, sent on every `/v2` answer (clients check it on `/v2/`).
const API_VERSION: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");

/// An OCI error answer: `{"errors":[{"code","message"}]}`.
pub(crate) fn oci_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"code": code, "message": one_line(message, MAX_MESSAGE_CHARS), "detail": null}]});
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
    response
}

/// `GET /v2/`: the API version check.
pub(crate) async fn version(method: Method) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return refused();
    }
    let mut response = (StatusCode::OK, axum::Json(json!({}))).into_response();
    response
        .headers_mut()
        .insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
    response
}

fn refused() -> Response {
    oci_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        "this registry is a read-only verifying proxy: pushes and deletes are refused",
    )
}

/// What a `/v2/<name>/…` path asks for.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Manifest(&'a str, String),
    Blob(&'a str, String),
    Tags(&'a str),
    Upload,
}

fn parse_path(path: &str) -> Option<Target<'_>> {
    if let Some(name) = path.strip_suffix("/tags/list") {
        return Some(Target::Tags(name));
    }
    if let Some(i) = path.rfind("/manifests/") {
        let (name, rest) = (&path[..i], &path[i + "/manifests/".len()..]);
        return (!rest.is_empty() && !rest.contains('/'))
            .then(|| Target::Manifest(name, rest.replace("%3A", ":").replace("%3a", ":")));
    }
    if let Some(i) = path.find("/blobs/uploads") {
        let _ = i;
        return Some(Target::Upload);
    }
    if let Some(i) = path.rfind("/blobs/") {
        let (name, rest) = (&path[..i], &path[i + "/blobs/".len()..]);
        return (!rest.is_empty() && !rest.contains('/'))
            .then(|| Target::Blob(name, rest.replace("%3A", ":").replace("%3a", ":")));
    }
    None
}

/// Whether `tag` is a cosign signature tag: `sha256-<64 hex>.sig`.
pub(crate) fn is_signature_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .and_then(|t| t.strip_suffix(".sig"))
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Whether `manifest` is a cosign signature manifest (every layer a simple-signing payload), so
/// that a runnable image tagged like a signature is still judged.
fn is_signature_manifest(manifest: &Manifest) -> bool {
    matches!(manifest, Manifest::Image(m)
        if !m.layers.is_empty() && m.layers.iter().all(|l| l.media_type == SIMPLE_SIGNING))
}

/// containerd's `ns` query parameter (the registry a mirror request is for), if any. Registry
/// names hold no characters that need percent-decoding except `:` before a port.
fn namespace(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("ns="))
        .map(|v| {
            v.replace("%3A", ":")
                .replace("%3a", ":")
                .to_ascii_lowercase()
        })
        .filter(|v| !v.is_empty())
}

/// Every `/v2/<name>/…` request.
pub(crate) async fn dispatch<J: Judge>(
    State(gate): State<Gate<J>>,
    method: Method,
    uri: Uri,
) -> Response {
    let head = method == Method::HEAD;
    if method != Method::GET && !head {
        return refused();
    }
    let path = uri.path().strip_prefix("/v2/").unwrap_or_default();
    let ns = namespace(uri.query());
    let ns = ns.as_deref();
    match parse_path(path) {
        Some(Target::Manifest(name, reference)) => {
            manifest(&gate, ns, name, &reference, head).await
        }
        Some(Target::Blob(name, digest)) => blob(&gate, ns, name, &digest, head).await,
        Some(Target::Tags(name)) => tags(&gate, ns, name, head).await,
        Some(Target::Upload) => refused(),
        None => oci_error(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            "unknown registry API path",
        ),
    }
}

/// The upstream reference for proxy name `name` at `tag` or `digest`.
fn upstream<J: Judge>(
    gate: &Gate<J>,
    ns: Option<&str>,
    name: &str,
    tag: Option<&str>,
    digest: Option<Digest>,
) -> Result<Reference, Response> {
    let Some((route, repository)) = route_in(&gate.inner.routes, name, ns) else {
        let whose = ns
            .map(|ns| format!(" of registry {ns}"))
            .unwrap_or_default();
        return Err(oci_error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            &format!("no upstream{whose} serves repository {name}"),
        ));
    };
    Reference::new(&route.registry, &repository, tag, digest)
        .map_err(|e| oci_error(StatusCode::BAD_REQUEST, "NAME_INVALID", &e.to_string()))
}

/// Map an upstream failure: not found stays not found; anything else is a denial (nothing is
/// served without a verdict) with a clear message.
fn upstream_failure<J: Judge>(
    gate: &Gate<J>,
    e: &signet_oci::Error,
    unknown_code: &str,
) -> Response {
    if e.is_not_found() {
        return oci_error(StatusCode::NOT_FOUND, unknown_code, &e.to_string());
    }
    Metrics::inc(&gate.inner.metrics.upstream_errors);
    tracing::warn!(target: "signet::gate", error = %e, "upstream request failed");
    oci_error(
        StatusCode::BAD_GATEWAY,
        "DENIED",
        &format!("not verified: upstream failed: {e}"),
    )
}

async fn manifest<J: Judge>(
    gate: &Gate<J>,
    ns: Option<&str>,
    name: &str,
    reference: &str,
    head: bool,
) -> Response {
    let (tag, digest) = if reference.contains(':') {
        match reference.parse::<Digest>() {
            Ok(d) => (None, Some(d)),
            Err(e) => return oci_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", &e.to_string()),
        }
    } else {
        (Some(reference), None)
    };
    let upstream_ref = match upstream(gate, ns, name, tag, digest) {
        Ok(r) => r,
        Err(response) => return response,
    };
    // GET even for HEAD: the digest we answer with is then one we computed, not one the upstream
    // claimed, and manifests are small (bounded by the client).
    let fetched = match gate.inner.client.get_manifest(&upstream_ref).await {
        Ok(f) => f,
        Err(e) => return upstream_failure(gate, &e, "MANIFEST_UNKNOWN"),
    };
    let repository = upstream_ref.name();
    let signature =
        tag.is_some_and(is_signature_tag) || gate.is_known_signature(&repository, &fetched.digest);
    if signature && is_signature_manifest(&fetched.manifest) {
        Metrics::inc(&gate.inner.metrics.passthrough);
        gate.remember_manifest(&repository, &fetched);
        gate.remember_signature(&repository, &fetched.digest);
        tracing::debug!(target: "signet::gate", image = %upstream_ref, digest = %fetched.digest, "signature manifest passed through");
        return serve_manifest(fetched, head);
    }
    let decision = gate
        .decide_at(upstream_ref.clone(), fetched.digest.clone(), Source::Proxy)
        .await;
    if !decision.admitted() {
        return oci_error(
            StatusCode::FORBIDDEN,
            "DENIED",
            &format!(
                "image {upstream_ref} ({}) is not trusted: {}",
                fetched.digest, decision.message
            ),
        );
    }
    gate.remember_manifest(&repository, &fetched);
    if let (Manifest::Index(index), false) = (&fetched.manifest, decision.error) {
        // The index's verdict covers the platform manifests it names by digest (their bytes are
        // checked against those digests when fetched): clients fetch them next.
        let hash = gate.active().hash.clone();
        if let Ok(mut state) = gate.inner.verdicts.lock() {
            let now = Instant::now();
            for child in index
                .manifests
                .iter()
                .filter(|d| d.is_manifest())
                .take(1000)
            {
                let judgement = Judgement {
                    digest: child.digest.clone(),
                    allowed: decision.allowed,
                    mode: decision.mode,
                    message: format!(
                        "platform manifest of {}: {}",
                        fetched.digest, decision.message
                    ),
                    report: std::sync::Arc::new(json!({"covered_by": fetched.digest.to_string()})),
                    cacheable: true,
                };
                state.cache.insert(
                    (repository.clone(), child.digest.clone(), hash.clone()),
                    std::sync::Arc::new(judgement),
                    now,
                );
            }
        }
    }
    serve_manifest(fetched, head)
}

fn serve_manifest(fetched: FetchedManifest, head: bool) -> Response {
    let length = fetched.bytes.len();
    let body = if head {
        Body::empty()
    } else {
        Body::from(fetched.bytes)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
    if let Ok(v) = HeaderValue::from_str(&fetched.media_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&fetched.digest.to_string()) {
        headers.insert("docker-content-digest", v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

async fn blob<J: Judge>(
    gate: &Gate<J>,
    ns: Option<&str>,
    name: &str,
    digest: &str,
    head: bool,
) -> Response {
    let digest: Digest = match digest.parse() {
        Ok(d) => d,
        Err(e) => return oci_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", &e.to_string()),
    };
    let reference = match upstream(gate, ns, name, None, Some(digest.clone())) {
        Ok(r) => r,
        Err(response) => return response,
    };
    let repository = reference.name();
    let size = match gate.known_blob_size(&repository, &digest) {
        Some(size) => size,
        None => match probe_size(gate, &reference, &digest).await {
            Ok(size) => size,
            Err(response) => return response,
        },
    };
    let mut descriptor = Descriptor::of("application/octet-stream", &[]);
    descriptor.digest = digest.clone();
    descriptor.size = size;
    let mut response = if head {
        Response::new(Body::empty())
    } else {
        let permit = match blob_stream_permit(gate).await {
            Ok(p) => p,
            Err(response) => return response,
        };
        let stream = match gate.inner.client.get_blob(&reference, &descriptor).await {
            Ok(s) => s,
            Err(e) => return upstream_failure(gate, &e, "BLOB_UNKNOWN"),
        };
        Response::new(Body::from_stream(hold_back_last(
            stream,
            gate.clone(),
            reference.to_string(),
            permit,
        )))
    };
    let headers = response.headers_mut();
    headers.insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        headers.insert("docker-content-digest", v);
    }
    response
}

/// The size of a blob no manifest served here has named (a client that fetched the manifest from
/// another replica, or asks for a blob directly): the registry client checks `Content-Length`
/// against the size we state, so a GET stating 0 makes it report the real length, and the
/// response is dropped unread.
async fn probe_size<J: Judge>(
    gate: &Gate<J>,
    reference: &Reference,
    digest: &Digest,
) -> Result<u64, Response> {
    let mut probe = Descriptor::of("application/octet-stream", &[]);
    probe.digest = digest.clone();
    probe.size = 0;
    match gate.inner.client.get_blob(reference, &probe).await {
        Err(signet_oci::Error::SizeMismatch { actual, .. }) => Ok(actual),
        Err(e) => Err(upstream_failure(gate, &e, "BLOB_UNKNOWN")),
        // Content-Length 0 (or none): an empty blob verifies as such; anything else we cannot size.
        Ok(mut stream) => match stream.next().await {
            None => Ok(0),
            Some(_) => {
                Metrics::inc(&gate.inner.metrics.upstream_errors);
                Err(oci_error(
                    StatusCode::BAD_GATEWAY,
                    "DENIED",
                    &format!("upstream did not state the size of blob {digest}"),
                ))
            }
        },
    }
}

/// A place among the `limits.max_blob_streams` blobs streaming at once, waited for up to
/// `timeouts.upstream_seconds`; then `429 TOOMANYREQUESTS` with `Retry-After`, which registry
/// clients honour.
async fn blob_stream_permit<J: Judge>(
    gate: &Gate<J>,
) -> Result<tokio::sync::OwnedSemaphorePermit, Response> {
    let wait = std::time::Duration::from_secs(gate.inner.config.timeouts.upstream_seconds);
    match tokio::time::timeout(wait, gate.inner.blob_streams.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => {
            Metrics::inc(&gate.inner.metrics.blob_streams_refused);
            let limit = gate.inner.config.limits.max_blob_streams;
            let mut response = oci_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                &format!("{limit} blob downloads are under way (limits.max_blob_streams); try again shortly"),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Err(response)
        }
    }
}

/// Pass `inner` through one chunk behind, so the last bytes of a blob are released only once the
/// whole blob has matched its digest: a bad blob ends in an error (the connection is aborted)
/// and is never completed. `permit` (its place among the blobs streaming) is given back when the
/// stream ends or the client goes away.
fn hold_back_last<J: Judge>(
    inner: ByteStream,
    gate: Gate<J>,
    what: String,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    struct S<J: Judge> {
        inner: ByteStream,
        held: Option<Bytes>,
        done: bool,
        gate: Gate<J>,
        what: String,
        _permit: tokio::sync::OwnedSemaphorePermit,
    }
    let state = S {
        inner,
        held: None,
        done: false,
        gate,
        what,
        _permit: permit,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            match s.inner.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => match s.held.replace(chunk) {
                    Some(previous) => return Some((Ok(previous), s)),
                    None => continue,
                },
                Some(Err(e)) => {
                    s.held = None;
                    s.done = true;
                    s.gate
                        .inner
                        .metrics
                        .blobs_cut_off
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(target: "signet::gate", blob = %s.what, error = %e, "blob cut off");
                    return Some((Err(std::io::Error::other(e.to_string())), s));
                }
                None => {
                    s.done = true;
                    return s.held.take().map(|last| (Ok(last), s));
                }
            }
        }
    })
}

async fn tags<J: Judge>(gate: &Gate<J>, ns: Option<&str>, name: &str, head: bool) -> Response {
    let reference = match upstream(gate, ns, name, Some("latest"), None) {
        Ok(r) => r,
        Err(response) => return response,
    };
    match gate.inner.client.list_tags(&reference).await {
        Ok(tags) => {
            let body = json!({"name": name, "tags": tags});
            let mut response = if head {
                StatusCode::OK.into_response()
            } else {
                (StatusCode::OK, axum::Json(body)).into_response()
            };
            response
                .headers_mut()
                .insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
            response
        }
        Err(e) => upstream_failure(gate, &e, "NAME_UNKNOWN"),
    }
}

impl<J: Judge> Gate<J> {
    /// Remember the sizes of the blobs a served manifest names (blob requests need them).
    fn remember_manifest(&self, repository: &str, fetched: &FetchedManifest) {
        let Manifest::Image(m) = &fetched.manifest else {
            return;
        };
        if let Ok(mut known) = self.inner.blob_sizes.lock() {
            let now = Instant::now();
            for d in std::iter::once(&m.config)
                .chain(m.layers.iter())
                .take(10_000)
            {
                known.insert((repository.to_string(), d.digest.clone()), d.size, now);
            }
        }
    }

    fn known_blob_size(&self, repository: &str, digest: &Digest) -> Option<u64> {
        self.inner
            .blob_sizes
            .lock()
            .ok()?
            .get(&(repository.to_string(), digest.clone()), Instant::now())
    }

    fn remember_signature(&self, repository: &str, digest: &Digest) {
        if let Ok(mut known) = self.inner.signatures.lock() {
            known.insert((repository.to_string(), digest.clone()), (), Instant::now());
        }
    }

    fn is_known_signature(&self, repository: &str, digest: &Digest) -> bool {
        self.inner
            .signatures
            .lock()
            .ok()
            .and_then(|mut k| k.get(&(repository.to_string(), digest.clone()), Instant::now()))
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn paths_parse() {
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for (path, wanted) in [
            (
                "test/app/manifests/v1",
                Some(Target::Manifest("test/app", "v1".into())),
            ),
            (
                "a/manifests/manifests/v1",
                Some(Target::Manifest("a/manifests", "v1".into())),
            ),
            (
                &format!("app/manifests/{d}") as &str,
                Some(Target::Manifest("app", d.into())),
            ),
            (
                "app/manifests/sha256%3Aab",
                Some(Target::Manifest("app", "sha256:ab".into())),
            ),
            (
                &format!("x/y/blobs/{d}") as &str,
                Some(Target::Blob("x/y", d.into())),
            ),
            ("x/y/tags/list", Some(Target::Tags("x/y"))),
            ("x/blobs/uploads/", Some(Target::Upload)),
            ("x/blobs/uploads/123", Some(Target::Upload)),
            ("x/manifests/", None),
            ("x/other", None),
        ] {
            assert_eq!(parse_path(path), wanted, "{path}");
        }
    }

    #[test]
    fn containerd_namespace() {
        assert_eq!(
            namespace(Some("ns=docker.io")).as_deref(),
            Some("docker.io")
        );
        assert_eq!(
            namespace(Some("a=b&ns=127.0.0.1%3A5000")).as_deref(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(namespace(Some("n=3")), None);
        assert_eq!(namespace(Some("ns=")), None);
        assert_eq!(namespace(None), None);
    }

    #[test]
    fn signature_tags() {
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert!(is_signature_tag(&format!("sha256-{hex}.sig")));
        assert!(!is_signature_tag(&format!("sha256-{hex}.att")));
        assert!(!is_signature_tag(&format!("sha256-{}.sig", &hex[1..])));
        assert!(!is_signature_tag(&format!(
            "sha256-{}.sig",
            hex.to_uppercase()
        )));
        assert!(!is_signature_tag("v1.sig"));
    }
}
