//! The verifying registry proxy: the pull half of the OCI distribution API (`/v2/…`), served to
//! docker, podman, skopeo and containerd. A manifest is fetched from upstream, hashed here, judged
//! under its upstream name and served byte for byte only when admitted; blobs stream through,
//! digest-checked as they pass, and are cut off (the connection aborted before their last bytes)
//! when they do not match. Signature artifacts (cosign's `sha256-<hex>.sig` and `.att`, the
//! referrers tag `sha256-<hex>`) pass without a verdict of their own, so clients can verify for
//! themselves, but only when the image they belong to would be admitted and only in a shape no
//! container engine could run (see [`artifact_shape`]). Pushes and deletes are refused.

// Handlers' helpers fail with the HTTP answer to give; it is large, and that is fine here.
#![allow(clippy::result_large_err)]

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::json;
use signet_oci::manifest::{DOCKER_CONFIG, OCI_CONFIG, SIMPLE_SIGNING};
use signet_oci::registry::ByteStream;
use signet_oci::{Descriptor, Digest, FetchedManifest, ImageIndex, Manifest, Reference};

use super::config::route_in;
use super::engine::{verdict_key, Source, MAX_MESSAGE_CHARS};
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
    Referrers(&'a str, String),
    Upload,
}

fn parse_path(path: &str) -> Option<Target<'_>> {
    if let Some(name) = path.strip_suffix("/tags/list") {
        return Some(Target::Tags(name));
    }
    if let Some(i) = path.rfind("/manifests/") {
        let (name, rest) = (&path[..i], &path[i + "/manifests/".len()..]);
        return (!rest.is_empty() && !rest.contains('/'))
            .then(|| Target::Manifest(name, percent_decoded(rest)));
    }
    if let Some(i) = path.rfind("/referrers/") {
        let (name, rest) = (&path[..i], &path[i + "/referrers/".len()..]);
        return (!rest.is_empty() && !rest.contains('/'))
            .then(|| Target::Referrers(name, percent_decoded(rest)));
    }
    if let Some(i) = path.find("/blobs/uploads") {
        let _ = i;
        return Some(Target::Upload);
    }
    if let Some(i) = path.rfind("/blobs/") {
        let (name, rest) = (&path[..i], &path[i + "/blobs/".len()..]);
        return (!rest.is_empty() && !rest.contains('/'))
            .then(|| Target::Blob(name, percent_decoded(rest)));
    }
    None
}

/// Where a signature artifact tag points: cosign's signature and attestation manifests, or the
/// OCI referrers tag schema's index of artifacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArtifactTag {
    /// `sha256-<hex>.sig` or `sha256-<hex>.att`: one image manifest of artifact layers.
    Cosign,
    /// `sha256-<hex>`: an index of artifact manifests (OCI 1.1 referrers tag schema).
    Referrers,
}

/// The subject digest a signature artifact tag names (`sha256-<64 hex>` with `.sig`, `.att` or
/// nothing after it), and what the tag holds; `None` for any other tag.
fn artifact_tag(tag: &str) -> Option<(Digest, ArtifactTag)> {
    let rest = tag.strip_prefix("sha256-")?;
    let (hex, kind) = match rest
        .strip_suffix(".sig")
        .or_else(|| rest.strip_suffix(".att"))
    {
        Some(hex) => (hex, ArtifactTag::Cosign),
        None => (rest, ArtifactTag::Referrers),
    };
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Some((format!("sha256:{hex}").parse().ok()?, kind))
}

/// Layer media types a signature artifact may hold: cosign simple-signing payloads, DSSE and
/// in-toto attestations, sigstore bundles. No container engine unpacks these as a filesystem.
const ARTIFACT_LAYER_TYPES: [&str; 5] = [
    SIMPLE_SIGNING,
    "application/vnd.dsse.envelope.v1+json",
    "application/vnd.in-toto+json",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
];
/// The OCI 1.1 artifact convention's empty config.
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// A signature artifact holds at most this many layers (cosign's and Signet's cap on signatures
/// per image)…
const MAX_ARTIFACT_LAYERS: usize = 100;
/// … each at most this large (a simple-signing payload is under 64 KiB; attestations are larger).
const MAX_ARTIFACT_LAYER_BYTES: u64 = 4 << 20;
/// Its config is at most this large (it is read, to check that it is inert).
const MAX_ARTIFACT_CONFIG_BYTES: u64 = 64 << 10;
/// A referrers index names at most this many artifacts.
const MAX_REFERRERS: usize = 1000;

/// Why `manifest` is not a signature artifact in the shape `kind` holds, or `Ok` with the config
/// blob to read and check for inertness ([`inert_config`]) if it is typed as an image config.
///
/// A signature artifact is never something a container engine could run: every layer is one of
/// [`ARTIFACT_LAYER_TYPES`] (never an image layer type), bounded in number and size, and the config
/// is either the empty config or an image config that names no platform and no entrypoint — the
/// inert config cosign and Signet write into `.sig` manifests (so the config media type alone
/// cannot decide: cosign's own signatures carry `application/vnd.oci.image.config.v1+json`).
/// A referrers index lists only manifests, each of which is checked in turn when fetched.
fn artifact_shape(manifest: &Manifest, kind: ArtifactTag) -> Result<Option<Descriptor>, String> {
    match (manifest, kind) {
        (Manifest::Index(index), ArtifactTag::Referrers) => {
            if index.manifests.len() > MAX_REFERRERS {
                return Err(format!("more than {MAX_REFERRERS} referrers"));
            }
            if let Some(d) = index.manifests.iter().find(|d| !d.is_manifest()) {
                return Err(format!("the index names a {} ({})", d.media_type, d.digest));
            }
            Ok(None)
        }
        (Manifest::Image(m), ArtifactTag::Cosign) => {
            if m.layers.is_empty() {
                return Err("no layers".into());
            }
            if m.layers.len() > MAX_ARTIFACT_LAYERS {
                return Err(format!("more than {MAX_ARTIFACT_LAYERS} layers"));
            }
            for layer in &m.layers {
                if !ARTIFACT_LAYER_TYPES.contains(&layer.media_type.as_str()) {
                    return Err(format!(
                        "layer {} is a {}, not a signature or attestation",
                        layer.digest, layer.media_type
                    ));
                }
                if layer.size > MAX_ARTIFACT_LAYER_BYTES {
                    return Err(format!(
                        "layer {} is larger than {MAX_ARTIFACT_LAYER_BYTES} bytes",
                        layer.digest
                    ));
                }
            }
            if m.config.size > MAX_ARTIFACT_CONFIG_BYTES {
                return Err(format!(
                    "its config is larger than {MAX_ARTIFACT_CONFIG_BYTES} bytes"
                ));
            }
            match m.config.media_type.as_str() {
                EMPTY_CONFIG => Ok(None),
                OCI_CONFIG | DOCKER_CONFIG => Ok(Some(m.config.clone())),
                other => Err(format!("its config is a {other}")),
            }
        }
        (Manifest::Index(_), ArtifactTag::Cosign) => Err("an index under a cosign tag".into()),
        (Manifest::Image(_), ArtifactTag::Referrers) => {
            Err("an image manifest under a referrers tag".into())
        }
    }
}

/// Whether an image config blob is inert: no platform (engines refuse an image whose config
/// names no OS) and no entrypoint or command, as cosign and Signet write them.
fn inert_config(bytes: &[u8]) -> Result<(), String> {
    let config: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| "its config is not JSON".to_string())?;
    let blank =
        |v: Option<&serde_json::Value>| v.is_none_or(|v| v.is_null() || v.as_str() == Some(""));
    if !config.is_object() {
        return Err("its config is not a JSON object".into());
    }
    if !blank(config.get("os")) || !blank(config.get("architecture")) {
        return Err("its config names a platform".into());
    }
    if let Some(run) = config.get("config").filter(|c| !c.is_null()) {
        if !run.is_object()
            || ["Entrypoint", "Cmd"]
                .iter()
                .any(|k| run.get(k).is_some_and(|v| !v.is_null()))
        {
            return Err("its config names something to run".into());
        }
    }
    Ok(())
}

/// containerd's `ns` query parameter (the registry a mirror request is for), if any.
fn namespace(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("ns="))
        .map(|v| percent_decoded(v).to_ascii_lowercase())
        .filter(|v| !v.is_empty())
}

/// The value of query parameter `key`, percent-decoded (`+` is a space, as in forms), if present
/// and not empty.
fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        .map(|v| percent_decoded(&v.replace('+', " ")))
        .filter(|v| !v.is_empty())
}

/// The one percent-decoder of request paths and queries (clients write a digest's `:` and a
/// registry's port separator as `%3A`). What does not decode to UTF-8 is kept as sent, so it
/// then fails the reference grammar rather than being guessed at.
fn percent_decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map_or_else(|_| text.to_string(), |decoded| decoded.into_owned())
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
        Some(Target::Referrers(name, digest)) => {
            let artifact = query_value(uri.query(), "artifactType");
            referrers(&gate, ns, name, &digest, artifact.as_deref(), head).await
        }
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
    // A signature artifact: named by its tag, or (by digest) one served under such a tag before.
    let artifact = match tag {
        Some(tag) => artifact_tag(tag),
        None => gate
            .known_artifact(&repository, &fetched.digest)
            .map(|subject| {
                let kind = match fetched.manifest {
                    Manifest::Index(_) => ArtifactTag::Referrers,
                    Manifest::Image(_) => ArtifactTag::Cosign,
                };
                (subject, kind)
            }),
    };
    let mut not_artifact = None;
    if let Some((subject, kind)) = artifact {
        match check_artifact(gate, &upstream_ref, &fetched, kind).await {
            Ok(()) => return serve_artifact(gate, ns, name, fetched, subject, head).await,
            // Not inert: judged below like any image (a runnable image under a signature tag
            // is an image).
            Err(why) => not_artifact = Some(why),
        }
    }
    let decision = gate
        .decide_at(upstream_ref.clone(), fetched.digest.clone(), Source::Proxy)
        .await;
    if !decision.admitted() {
        return oci_error(
            StatusCode::FORBIDDEN,
            "DENIED",
            &format!(
                "image {upstream_ref} ({}) is not trusted: {}{}",
                fetched.digest,
                decision.message,
                not_artifact
                    .map(|why| format!(" (not served as a signature artifact: {why})"))
                    .unwrap_or_default()
            ),
        );
    }
    gate.remember_manifest(&repository, &fetched);
    if let Manifest::Index(index) = &fetched.manifest {
        gate.cover_platform_manifests(&upstream_ref, &fetched.digest, index);
    }
    serve_manifest(fetched, head)
}

/// Whether `fetched`, found where `kind` of artifact lives, is an inert signature artifact
/// ([`artifact_shape`]); reads and checks an image-typed config blob.
async fn check_artifact<J: Judge>(
    gate: &Gate<J>,
    reference: &Reference,
    fetched: &FetchedManifest,
    kind: ArtifactTag,
) -> Result<(), String> {
    let Some(config) = artifact_shape(&fetched.manifest, kind)? else {
        return Ok(());
    };
    let bytes = gate
        .inner
        .client
        .get_blob_bytes(reference, &config, MAX_ARTIFACT_CONFIG_BYTES)
        .await
        .map_err(|e| format!("its config could not be read: {e}"))?;
    inert_config(&bytes)
}

/// Serve a signature artifact of `subject` if the gate would admit `subject` itself: signatures
/// of an image that may not run help nobody, and the subject's verdict is what makes the
/// artifact's source one the policy vouches for.
async fn serve_artifact<J: Judge>(
    gate: &Gate<J>,
    ns: Option<&str>,
    name: &str,
    fetched: FetchedManifest,
    subject: Digest,
    head: bool,
) -> Response {
    let subject_ref = match upstream(gate, ns, name, None, Some(subject.clone())) {
        Ok(r) => r,
        Err(response) => return response,
    };
    let repository = subject_ref.name();
    let decision = gate
        .decide_at(subject_ref.clone(), subject.clone(), Source::Proxy)
        .await;
    if !decision.admitted() {
        return oci_error(
            StatusCode::FORBIDDEN,
            "DENIED",
            &format!(
                "signature artifact {} is not served: the image it belongs to, {subject_ref}, is not trusted: {}",
                fetched.digest, decision.message
            ),
        );
    }
    Metrics::inc(&gate.inner.metrics.passthrough);
    gate.remember_manifest(&repository, &fetched);
    gate.remember_artifact(&repository, &fetched.digest, &subject);
    if let Manifest::Index(index) = &fetched.manifest {
        for child in index.manifests.iter().take(MAX_REFERRERS) {
            gate.remember_artifact(&repository, &child.digest, &subject);
        }
    }
    tracing::debug!(target: "signet::gate", subject = %subject_ref, digest = %fetched.digest, "signature artifact passed through");
    serve_manifest(fetched, head)
}

/// Referrer manifests checked at once while building a referrers answer.
const REFERRER_CHECKS_AT_ONCE: usize = 8;

/// `GET /v2/<name>/referrers/<digest>`: the OCI 1.1 referrers API, served for any upstream (from
/// its referrers API, else its `sha256-<hex>` tag index, through [`ImageStore::referrers`]) but
/// only for a subject the gate would admit. An unknown subject has no referrers (an empty index).
/// Each listed referrer is fetched by digest and listed only if it is an inert signature artifact
/// ([`check_artifact`]) naming this subject; its descriptor is rebuilt from the checked bytes,
/// so the `artifactType` filter (applied again here) and annotations are the manifest's own, not
/// the upstream's claim. Listed digests are remembered so the client can fetch them next.
///
/// [`ImageStore::referrers`]: signet_oci::ImageStore::referrers
async fn referrers<J: Judge>(
    gate: &Gate<J>,
    ns: Option<&str>,
    name: &str,
    digest: &str,
    artifact_type: Option<&str>,
    head: bool,
) -> Response {
    let subject: Digest = match digest.parse() {
        Ok(d) => d,
        Err(e) => return oci_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", &e.to_string()),
    };
    let subject_ref = match upstream(gate, ns, name, None, Some(subject.clone())) {
        Ok(r) => r,
        Err(response) => return response,
    };
    let listed = match gate.inner.client.head_manifest(&subject_ref).await {
        Ok(None) => Vec::new(),
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return upstream_failure(gate, &e, "MANIFEST_UNKNOWN"),
        Ok(Some(_)) => {
            let decision = gate
                .decide_at(subject_ref.clone(), subject.clone(), Source::Proxy)
                .await;
            if !decision.admitted() {
                return oci_error(
                    StatusCode::FORBIDDEN,
                    "DENIED",
                    &format!(
                        "referrers of {subject_ref} are not served: the image is not trusted: {}",
                        decision.message
                    ),
                );
            }
            match checked_referrers(gate, &subject_ref, &subject, artifact_type).await {
                Ok(listed) => listed,
                Err(response) => return response,
            }
        }
    };
    let repository = subject_ref.name();
    for descriptor in &listed {
        gate.remember_artifact(&repository, &descriptor.digest, &subject);
    }
    if !listed.is_empty() {
        Metrics::inc(&gate.inner.metrics.passthrough);
    }
    let body = json!({
        "schemaVersion": 2,
        "mediaType": signet_oci::manifest::OCI_INDEX,
        "manifests": listed,
    });
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let length = bytes.len();
    let mut response = Response::new(if head {
        Body::empty()
    } else {
        Body::from(bytes)
    });
    let headers = response.headers_mut();
    headers.insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(signet_oci::manifest::OCI_INDEX),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if artifact_type.is_some() {
        headers.insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    response
}

/// The referrers of admitted `subject` that the proxy would pass through, as descriptors built
/// from their checked manifests, at most [`MAX_REFERRERS`].
async fn checked_referrers<J: Judge>(
    gate: &Gate<J>,
    subject_ref: &Reference,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> Result<Vec<Descriptor>, Response> {
    let store = signet_oci::ImageStore::Registry {
        client: gate.inner.client.clone(),
        reference: subject_ref.clone(),
    };
    let found = store
        .referrers(subject, artifact_type)
        .await
        .map_err(|e| upstream_failure(gate, &e, "MANIFEST_UNKNOWN"))?;
    let checks = found
        .descriptors
        .into_iter()
        .take(MAX_REFERRERS)
        .map(|listed| async move {
            let at = subject_ref.with_digest(listed.digest.clone());
            let fetched = match gate.inner.client.get_manifest(&at).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::debug!(target: "signet::gate", referrer = %listed.digest, error = %e, "referrer not listed: unreadable");
                    return None;
                }
            };
            match signet_oci::referrers::subject_of(&fetched.manifest) {
                Ok(Some(named)) if &named == subject => {}
                _ => return None,
            }
            let kind = match fetched.manifest {
                Manifest::Index(_) => ArtifactTag::Referrers,
                Manifest::Image(_) => ArtifactTag::Cosign,
            };
            if let Err(why) = check_artifact(gate, &at, &fetched, kind).await {
                tracing::debug!(target: "signet::gate", referrer = %listed.digest, why = %why, "referrer not listed: not a signature artifact");
                return None;
            }
            let descriptor =
                signet_oci::referrers::referrer_descriptor(&fetched.bytes, &fetched.media_type)
                    .ok()?;
            artifact_type
                .is_none_or(|t| signet_oci::referrers::artifact_type(&descriptor) == Some(t))
                .then_some(descriptor)
        });
    Ok(futures_util::stream::iter(checks)
        .buffered(REFERRER_CHECKS_AT_ONCE)
        .filter_map(std::future::ready)
        .collect()
        .await)
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
    // The probe opens an upstream GET: it takes a place among the blob streams first, so that
    // no request (HEAD included) opens upstream downloads beyond `limits.max_blob_streams`.
    let (size, permit) = match gate.known_blob_size(&repository, &digest) {
        Some(size) => (size, None),
        None => {
            let permit = match blob_stream_permit(gate).await {
                Ok(p) => p,
                Err(response) => return response,
            };
            match probe_size(gate, &reference, &digest).await {
                Ok(size) => (size, Some(permit)),
                Err(response) => return response,
            }
        }
    };
    let mut descriptor = Descriptor::of("application/octet-stream", &[]);
    descriptor.digest = digest.clone();
    descriptor.size = size;
    let mut response = if head {
        Response::new(Body::empty())
    } else {
        let permit = match permit {
            Some(p) => p,
            None => match blob_stream_permit(gate).await {
                Ok(p) => p,
                Err(response) => return response,
            },
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
                    Metrics::inc(&s.gate.inner.metrics.blobs_cut_off);
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
    /// Let the cached verdict on index `digest` cover the platform manifests it names by digest
    /// (their bytes are checked against those digests when fetched): clients fetch them next.
    /// Each is cached under the same policy hash and until the same instant as the index's own
    /// cached verdict (which its `valid_until` bounds); with no cached verdict on the index (not cacheable,
    /// or made under a policy replaced since) nothing is covered and each is judged itself.
    fn cover_platform_manifests(&self, parent: &Reference, digest: &Digest, index: &ImageIndex) {
        let Ok(mut state) = self.inner.verdicts.lock() else {
            return;
        };
        let now = self.inner.clock.monotonic();
        let hash = self.active().hash.clone();
        let key = verdict_key(parent, digest, &hash);
        let (Some(verdict), Some(until)) =
            (state.cache.get(&key, now), state.cache.expiry(&key, now))
        else {
            return;
        };
        for child in index
            .manifests
            .iter()
            .filter(|d| d.is_manifest())
            .take(1000)
        {
            let judgement = Judgement {
                digest: child.digest.clone(),
                message: format!("platform manifest of {digest}: {}", verdict.message),
                report: std::sync::Arc::new(json!({"covered_by": digest.to_string()})),
                ..verdict.as_ref().clone()
            };
            state.cache.insert_until(
                // As clients fetch them: by digest.
                verdict_key(
                    &parent.with_digest(child.digest.clone()),
                    &child.digest,
                    &hash,
                ),
                std::sync::Arc::new(judgement),
                now,
                Some(until),
            );
        }
    }

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

    /// Remember that `digest` was served as a signature artifact of `subject` (clients may fetch
    /// it again by digest; it is checked again then, and its subject judged again).
    fn remember_artifact(&self, repository: &str, digest: &Digest, subject: &Digest) {
        if let Ok(mut known) = self.inner.signatures.lock() {
            known.insert(
                (repository.to_string(), digest.clone()),
                subject.clone(),
                Instant::now(),
            );
        }
    }

    /// The subject of a signature artifact served here before.
    fn known_artifact(&self, repository: &str, digest: &Digest) -> Option<Digest> {
        self.inner
            .signatures
            .lock()
            .ok()?
            .get(&(repository.to_string(), digest.clone()), Instant::now())
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
            (
                "x/y/referrers/sha256%3Aab",
                Some(Target::Referrers("x/y", "sha256:ab".into())),
            ),
            ("x/referrers/", None),
            ("x/blobs/uploads/", Some(Target::Upload)),
            ("x/blobs/uploads/123", Some(Target::Upload)),
            ("x/manifests/", None),
            ("x/other", None),
        ] {
            assert_eq!(parse_path(path), wanted, "{path}");
        }
    }

    #[test]
    fn artifact_type_query() {
        let q = Some("n=1&artifactType=application%2Fvnd.dev.sigstore.bundle.v0.3%2Bjson");
        assert_eq!(
            query_value(q, "artifactType").as_deref(),
            Some("application/vnd.dev.sigstore.bundle.v0.3+json")
        );
        assert_eq!(query_value(Some("xartifactType=a"), "artifactType"), None);
        assert_eq!(query_value(Some("artifactType="), "artifactType"), None);
        assert_eq!(query_value(None, "artifactType"), None);
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
    fn artifact_tags_name_their_subject() {
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let subject: Digest = format!("sha256:{hex}").parse().unwrap();
        for (tag, kind) in [
            (format!("sha256-{hex}.sig"), ArtifactTag::Cosign),
            (format!("sha256-{hex}.att"), ArtifactTag::Cosign),
            (format!("sha256-{hex}"), ArtifactTag::Referrers),
        ] {
            assert_eq!(artifact_tag(&tag), Some((subject.clone(), kind)), "{tag}");
        }
        for tag in [
            format!("sha256-{}.sig", &hex[1..]),
            format!("sha256-{}.sig", hex.to_uppercase()),
            format!("sha256-{hex}.sbom"),
            format!("sha512-{hex}.sig"),
            "v1.sig".to_string(),
            "latest".to_string(),
        ] {
            assert_eq!(artifact_tag(&tag), None, "{tag}");
        }
    }

    fn image(config: (&str, &[u8]), layers: &[(&str, u64)]) -> Manifest {
        let layers: Vec<Value> = layers
            .iter()
            .enumerate()
            .map(|(i, (t, size))| {
                let mut d = Descriptor::of(t, format!("layer {i}").as_bytes());
                d.size = *size;
                serde_json::to_value(d).unwrap()
            })
            .collect();
        let bytes = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": signet_oci::manifest::OCI_MANIFEST,
            "config": Descriptor::of(config.0, config.1), "layers": layers,
        }))
        .unwrap();
        Manifest::parse(&bytes, None, "test").unwrap()
    }

    use serde_json::Value;

    #[test]
    fn only_inert_shapes_are_signature_artifacts() {
        let config =
            br#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let cosign = image((OCI_CONFIG, config), &[(SIMPLE_SIGNING, 300)]);
        let needs_config = artifact_shape(&cosign, ArtifactTag::Cosign).unwrap();
        assert_eq!(needs_config.unwrap().media_type, OCI_CONFIG);
        let bundle = image(
            (EMPTY_CONFIG, b"{}"),
            &[("application/vnd.dev.sigstore.bundle.v0.3+json", 3000)],
        );
        assert_eq!(artifact_shape(&bundle, ArtifactTag::Cosign), Ok(None));
        let why = |m: &Manifest, kind| artifact_shape(m, kind).unwrap_err();
        assert!(why(&cosign, ArtifactTag::Referrers).contains("under a referrers tag"));
        let tar = image(
            (OCI_CONFIG, config),
            &[
                (SIMPLE_SIGNING, 300),
                ("application/vnd.oci.image.layer.v1.tar+gzip", 300),
            ],
        );
        assert!(why(&tar, ArtifactTag::Cosign)
            .contains("is a application/vnd.oci.image.layer.v1.tar+gzip, not a signature"));
        let big = image((OCI_CONFIG, config), &[(SIMPLE_SIGNING, 5 << 20)]);
        assert!(why(&big, ArtifactTag::Cosign).contains("larger than 4194304 bytes"));
        let many = image((OCI_CONFIG, config), &[(SIMPLE_SIGNING, 300); 101]);
        assert!(why(&many, ArtifactTag::Cosign).contains("more than 100 layers"));
        let none = image((OCI_CONFIG, config), &[]);
        assert_eq!(why(&none, ArtifactTag::Cosign), "no layers");
        let plugin = image(
            ("application/vnd.docker.plugin.v1+json", b"{}"),
            &[(SIMPLE_SIGNING, 300)],
        );
        assert!(why(&plugin, ArtifactTag::Cosign)
            .contains("its config is a application/vnd.docker.plugin.v1+json"));
    }

    #[test]
    fn only_configs_without_platform_or_command_are_inert() {
        for ok in [
            r#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#,
            r#"{"rootfs":{"type":"layers","diff_ids":[]}}"#,
            r#"{"os":null,"config":{"Entrypoint":null,"Labels":{"a":"b"}}}"#,
        ] {
            assert_eq!(inert_config(ok.as_bytes()), Ok(()), "{ok}");
        }
        for (bad, wanted) in [
            (
                r#"{"architecture":"amd64","os":"linux","config":{}}"#,
                "names a platform",
            ),
            (r#"{"os":"","architecture":"arm64"}"#, "names a platform"),
            (
                r#"{"config":{"Entrypoint":["/bin/sh"]}}"#,
                "names something to run",
            ),
            (r#"{"config":{"Cmd":["sh"]}}"#, "names something to run"),
            (r#"{"config":"x"}"#, "names something to run"),
            ("[]", "not a JSON object"),
            ("{", "not JSON"),
        ] {
            let err = inert_config(bad.as_bytes()).unwrap_err();
            assert!(err.contains(wanted), "{bad}: {err}");
        }
    }
}
