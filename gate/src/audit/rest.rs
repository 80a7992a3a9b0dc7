//! Docker Engine and podman (`podman system service`) share a REST API over a unix socket:
//! `GET /containers/json?all=true`, `GET /images/{id}/json`, `GET /images/json`. One HTTP/1.1
//! connection per request (hyper's client half over a tokio `UnixStream`), the whole request
//! under [`ENGINE_TIMEOUT`], the body at most [`MAX_ANSWER_BYTES`], answers parsed into typed
//! structs (extra fields ignored, missing or mistyped ones an error).

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{
    registry_reference, repository_of, EngineImage, EngineKind, Scope, ENGINE_TIMEOUT,
    MAX_ANSWER_BYTES, MAX_ENTRIES,
};
use crate::GateError;

#[derive(Debug, Deserialize)]
struct Container {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Vec<String>,
    #[serde(rename = "Image")]
    image: String,
    #[serde(rename = "ImageID")]
    image_id: String,
}

#[derive(Debug, Deserialize)]
struct Image {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "RepoDigests", default)]
    repo_digests: Option<Vec<String>>,
}

fn engine_error(kind: EngineKind, socket: &Path, what: &str) -> GateError {
    GateError::Engine(format!("{} at {}: {what}", kind.as_str(), socket.display()))
}

/// `GET path` on the engine at `socket`, decoded as `T`.
async fn get<T: DeserializeOwned>(
    kind: EngineKind,
    socket: &Path,
    path: &str,
) -> Result<T, GateError> {
    let fail = |what: String| engine_error(kind, socket, &what);
    let exchange = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| fail(format!("cannot connect: {e}")))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| fail(format!("not an HTTP API: {e}")))?;
        let driver = tokio::spawn(connection);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, "localhost")
            .body(Empty::new())
            .map_err(|e| fail(format!("bad request: {e}")))?;
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| fail(format!("GET {path}: not an HTTP answer: {e}")))?;
        let status = answer.status();
        let body = Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| fail(format!("GET {path}: reading the answer: {e}")))?
            .to_bytes();
        driver.abort();
        if !status.is_success() {
            return Err(fail(format!("GET {path}: HTTP {}", status.as_u16())));
        }
        serde_json::from_slice::<T>(&body).map_err(|e| {
            fail(format!(
                "GET {path}: not the answer expected ({} at line {} column {})",
                classify(&e),
                e.line(),
                e.column()
            ))
        })
    };
    match tokio::time::timeout(ENGINE_TIMEOUT, exchange).await {
        Ok(result) => result,
        Err(_) => Err(fail(format!(
            "GET {path}: no answer within {} s",
            ENGINE_TIMEOUT.as_secs()
        ))),
    }
}

/// serde_json's error category (its message may quote the engine's bytes).
fn classify(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "unexpected JSON",
        serde_json::error::Category::Eof => "truncated JSON",
    }
}

/// The images `kind` at `socket` uses (`scope`).
pub(super) async fn list(
    kind: EngineKind,
    socket: &Path,
    scope: Scope,
) -> Result<Vec<EngineImage>, GateError> {
    match scope {
        Scope::Containers => containers(kind, socket).await,
        Scope::Stored => stored(kind, socket).await,
    }
}

async fn containers(kind: EngineKind, socket: &Path) -> Result<Vec<EngineImage>, GateError> {
    let list: Vec<Container> = get(kind, socket, "/containers/json?all=true").await?;
    if list.len() > MAX_ENTRIES {
        return Err(engine_error(
            kind,
            socket,
            &format!("more than {MAX_ENTRIES} containers"),
        ));
    }
    // (image as named, image ID) → containers.
    let mut groups: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for c in list {
        let name = c
            .names
            .first()
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_else(|| c.id.chars().take(12).collect());
        groups.entry((c.image, c.image_id)).or_default().push(name);
    }
    let mut inspected: BTreeMap<String, Image> = BTreeMap::new();
    let mut out = Vec::new();
    for ((name, image_id), containers) in groups {
        if !inspected.contains_key(&image_id) {
            if !valid_id(&image_id) {
                return Err(engine_error(
                    kind,
                    socket,
                    "a container's ImageID is not an image ID",
                ));
            }
            let image: Image = get(kind, socket, &format!("/images/{image_id}/json")).await?;
            inspected.insert(image_id.clone(), image);
        }
        let image = &inspected[&image_id];
        let digests = image.repo_digests.clone().unwrap_or_default();
        let wanted = repository_of(&name);
        let mut candidates: Vec<_> = digests
            .iter()
            .filter_map(|d| registry_reference(d))
            .collect();
        candidates.sort_by_key(ToString::to_string);
        let reference = match &wanted {
            Some(repo) => candidates.into_iter().find(|r| &r.name() == repo),
            // Created from an image ID: the first recorded registry digest names it.
            None => candidates.into_iter().next(),
        };
        out.push(EngineImage {
            engine: kind,
            namespace: None,
            containers,
            name,
            image_id: Some(image.id.clone()),
            reference,
        });
    }
    Ok(out)
}

async fn stored(kind: EngineKind, socket: &Path) -> Result<Vec<EngineImage>, GateError> {
    let list: Vec<Image> = get(kind, socket, "/images/json").await?;
    if list.len() > MAX_ENTRIES {
        return Err(engine_error(
            kind,
            socket,
            &format!("more than {MAX_ENTRIES} images"),
        ));
    }
    let mut out = Vec::new();
    for image in list {
        let tags: Vec<String> = image
            .repo_tags
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t != "<none>:<none>")
            .collect();
        let mut references: Vec<_> = image
            .repo_digests
            .unwrap_or_default()
            .iter()
            .filter_map(|d| registry_reference(d))
            .collect();
        references.sort_by_key(ToString::to_string);
        references.dedup();
        if references.is_empty() {
            out.push(EngineImage {
                engine: kind,
                namespace: None,
                containers: Vec::new(),
                name: tags.first().cloned().unwrap_or_else(|| image.id.clone()),
                image_id: Some(image.id.clone()),
                reference: None,
            });
            continue;
        }
        for reference in references {
            let name = tags
                .iter()
                .find(|t| repository_of(t).as_deref() == Some(reference.name().as_str()))
                .cloned()
                .unwrap_or_else(|| reference.to_string());
            out.push(EngineImage {
                engine: kind,
                namespace: None,
                containers: Vec::new(),
                name,
                image_id: Some(image.id.clone()),
                reference: Some(reference),
            });
        }
    }
    Ok(out)
}

/// An image ID as engines write it (`sha256:<hex>` or bare hex): safe in a URL path.
fn valid_id(id: &str) -> bool {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    !hex.is_empty() && hex.len() <= 128 && hex.chars().all(|c| c.is_ascii_hexdigit())
}
