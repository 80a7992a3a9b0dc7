//! OCI 1.1 referrers (oci/src/referrers.rs): the referrers API against [`RefServer`], a small
//! registry of our own (no registry packaged for the test machine implements the API; Debian's
//! distribution 2.8 answers 404), and the `sha256-<hex>` tag-schema fallback against the real
//! `docker-registry`. [`RefServer`] also counts requests for `keyless_image.rs`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::{json, Value};
use signet_oci::manifest::{OCI_INDEX, OCI_MANIFEST};
use signet_oci::referrers::{artifact_type, referrers_tag, ReferrersSource};
use signet_oci::store::ImageStore;
use signet_oci::{Digest, Error};

use crate::support::{client, push_sample_image, runtime, TestRegistry};

/// How [`RefServer`] answers the referrers API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Implemented, `page` descriptors per page (Link pagination), filter applied.
    Pages(usize),
    /// Not implemented: 404 (as distribution 2.8).
    Absent,
    /// Implemented, but the page carries a `Docker-Content-Digest` of other bytes.
    LyingDigest,
    /// Implemented, but the first page links to another host.
    ForeignLink,
}

#[derive(Default)]
struct State {
    /// Manifest bytes and media type by tag or digest.
    manifests: HashMap<String, (Vec<u8>, String)>,
    /// Blobs by digest.
    blobs: HashMap<String, Vec<u8>>,
    /// Every request line (`GET /v2/...`).
    requests: Vec<String>,
    /// Extra descriptors served by the referrers API for any subject (hostile answers).
    injected: Vec<Value>,
}

/// An in-memory registry with the referrers API, counting requests. Manifests are stored
/// without checking the blobs they name (so fixtures whose layers are not at hand can be served).
pub struct RefServer {
    port: u16,
    state: Arc<Mutex<State>>,
}

fn sha256(bytes: &[u8]) -> String {
    Digest::sha256(bytes).to_string()
}

impl RefServer {
    /// Start on a free loopback port.
    pub fn start(api: Api) -> RefServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let state = shared.clone();
                thread::spawn(move || serve(stream, &state, api, port));
            }
        });
        RefServer { port, state }
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Store a manifest under its digest and, if given, a tag; returns its digest.
    pub fn manifest(&self, tag: Option<&str>, bytes: &[u8], media_type: &str) -> String {
        let digest = sha256(bytes);
        let mut state = self.state.lock().unwrap();
        let entry = (bytes.to_vec(), media_type.to_string());
        state.manifests.insert(digest.clone(), entry.clone());
        if let Some(tag) = tag {
            state.manifests.insert(tag.to_string(), entry);
        }
        digest
    }

    /// Store a blob; returns its digest.
    pub fn blob(&self, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        self.state
            .lock()
            .unwrap()
            .blobs
            .insert(digest.clone(), bytes.to_vec());
        digest
    }

    /// Serve `descriptor` in every referrers answer as well.
    pub fn inject(&self, descriptor: Value) {
        self.state.lock().unwrap().injected.push(descriptor);
    }

    /// Whether a tag exists.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.state.lock().unwrap().manifests.contains_key(tag)
    }

    /// The request lines so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Forget the requests so far.
    pub fn reset_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

fn serve(stream: TcpStream, state: &Mutex<State>, api: Api, port: u16) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        state
            .lock()
            .unwrap()
            .requests
            .push(format!("{method} {target}"));
        answer(&mut stream, state, api, port, &method, &target, body);
    }
}

fn answer(
    stream: &mut TcpStream,
    state: &Mutex<State>,
    api: Api,
    port: u16,
    method: &str,
    target: &str,
    body: Vec<u8>,
) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path == "/v2/" {
        return respond(stream, "200 OK", &[], b"{}");
    }
    let not_found = |stream: &mut TcpStream| {
        respond(
            stream,
            "404 Not Found",
            &[("Content-Type", "application/json".into())],
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#,
        )
    };
    if let Some((_, tail)) = path.split_once("/manifests/") {
        let mut st = state.lock().unwrap();
        if method == "PUT" {
            let digest = sha256(&body);
            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let media_type = value["mediaType"]
                .as_str()
                .unwrap_or(OCI_MANIFEST)
                .to_string();
            let entry = (body, media_type);
            st.manifests.insert(digest.clone(), entry.clone());
            if !tail.starts_with("sha256:") {
                st.manifests.insert(tail.to_string(), entry);
            }
            let mut headers = vec![("Docker-Content-Digest", digest)];
            if let (Some(subject), true) = (
                value["subject"]["digest"].as_str(),
                matches!(api, Api::Pages(_)),
            ) {
                headers.push(("OCI-Subject", subject.to_string()));
            }
            return respond(stream, "201 Created", &headers, b"");
        }
        let Some((bytes, media_type)) = st.manifests.get(tail).cloned() else {
            drop(st);
            return not_found(stream);
        };
        drop(st);
        let headers = [
            ("Content-Type", media_type),
            ("Docker-Content-Digest", sha256(&bytes)),
        ];
        let shown: &[u8] = if method == "HEAD" { b"" } else { &bytes };
        if method == "HEAD" {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: {}\r\nDocker-Content-Digest: {}\r\n\r\n",
                bytes.len(),
                headers[0].1,
                headers[1].1
            );
            let _ = stream.write_all(head.as_bytes());
            return;
        }
        return respond(stream, "200 OK", &headers, shown);
    }
    if let Some((_, digest)) = path.split_once("/blobs/") {
        let blob = state.lock().unwrap().blobs.get(digest).cloned();
        return match blob {
            Some(bytes) => respond(
                stream,
                "200 OK",
                &[("Content-Type", "application/octet-stream".into())],
                &bytes,
            ),
            None => not_found(stream),
        };
    }
    if let Some((repo_path, subject)) = path.split_once("/referrers/") {
        if api == Api::Absent {
            return respond(stream, "404 Not Found", &[], b"404 page not found\n");
        }
        let params: HashMap<String, String> = query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), v.replace("%2B", "+").replace("%2F", "/")))
            .collect();
        let st = state.lock().unwrap();
        let mut all: Vec<Value> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (key, (bytes, media_type)) in &st.manifests {
            if !key.starts_with("sha256:") || !seen.insert(key.clone()) {
                continue;
            }
            let value: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
            if value["subject"]["digest"].as_str() != Some(subject) {
                continue;
            }
            let artifact = value["artifactType"]
                .as_str()
                .or(value["config"]["mediaType"].as_str())
                .unwrap_or("")
                .to_string();
            all.push(json!({
                "mediaType": media_type, "digest": key, "size": bytes.len(),
                "artifactType": artifact,
            }));
        }
        all.extend(st.injected.iter().cloned());
        drop(st);
        all.sort_by_key(|d| d["digest"].as_str().unwrap_or("").to_string());
        let mut headers = vec![("Content-Type", OCI_INDEX.to_string())];
        if let Some(wanted) = params.get("artifactType") {
            all.retain(|d| d["artifactType"].as_str() == Some(wanted.as_str()));
            headers.push(("OCI-Filters-Applied", "artifactType".into()));
        }
        let page = match api {
            Api::Pages(n) => n,
            _ => usize::MAX,
        };
        let start: usize = params.get("last").and_then(|l| l.parse().ok()).unwrap_or(0);
        let end = start.saturating_add(page).min(all.len());
        let index = json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": all[start..end],
        });
        let bytes = serde_json::to_vec(&index).unwrap();
        if end < all.len() {
            let filter = params
                .get("artifactType")
                .map(|t| format!("&artifactType={t}"))
                .unwrap_or_default();
            headers.push((
                "Link",
                format!("<{repo_path}/referrers/{subject}?last={end}{filter}>; rel=\"next\""),
            ));
        }
        match api {
            Api::LyingDigest => headers.push(("Docker-Content-Digest", sha256(b"other bytes"))),
            Api::ForeignLink => headers.push((
                "Link",
                format!(
                    "<http://127.0.0.2:{port}{repo_path}/referrers/{subject}?last=1>; rel=\"next\""
                ),
            )),
            _ => {}
        }
        return respond(stream, "200 OK", &headers, &bytes);
    }
    not_found(stream)
}

/// An OCI artifact manifest with `subject` and `artifactType` (empty config, one layer).
pub fn artifact_manifest(
    subject: &str,
    subject_size: usize,
    artifact: &str,
    layer: &[u8],
) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": sha256(b"{}"), "size": 2},
        "layers": [{"mediaType": artifact, "digest": sha256(layer), "size": layer.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
    }))
    .unwrap()
}

fn image_manifest(seed: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(seed.as_bytes()), "size": seed.len()},
        "layers": [],
    }))
    .unwrap()
}

fn store_at(host: &str, repo: &str) -> ImageStore {
    ImageStore::Registry {
        client: client(),
        reference: format!("{host}/{repo}:v1").parse().unwrap(),
    }
}

fn digests(found: &[signet_oci::Descriptor]) -> Vec<String> {
    let mut d: Vec<String> = found.iter().map(|d| d.digest.to_string()).collect();
    d.sort();
    d
}

#[test]
fn referrers_api_lists_filters_pages_and_is_acknowledged_on_push() {
    let server = RefServer::start(Api::Pages(2));
    let image = image_manifest("api");
    let subject = server.manifest(Some("v1"), &image, OCI_MANIFEST);
    let store = store_at(&server.host(), "app");
    let subject_digest: Digest = subject.parse().unwrap();
    let rt = runtime();
    let mut pushed = Vec::new();
    for (i, artifact) in ["application/x-a", "application/x-a", "application/x-b"]
        .iter()
        .enumerate()
    {
        let manifest =
            artifact_manifest(&subject, image.len(), artifact, format!("{i}").as_bytes());
        let d = rt
            .block_on(store.push_referrer(&subject_digest, &manifest, OCI_MANIFEST))
            .unwrap();
        assert_eq!(artifact_type(&d), Some(*artifact));
        pushed.push(d.digest.to_string());
    }
    // The registry acknowledged the subject (OCI-Subject): no tag index was written.
    assert!(!server.has_tag(&referrers_tag(&subject_digest)));

    server.reset_requests();
    let all = rt.block_on(store.referrers(&subject_digest, None)).unwrap();
    assert_eq!(all.source, ReferrersSource::Api);
    pushed.sort();
    assert_eq!(digests(&all.descriptors), pushed);
    // Three referrers in pages of two: two requests, the second through the Link header.
    let requests = server.requests();
    let pages: Vec<&String> = requests
        .iter()
        .filter(|r| r.contains("/referrers/"))
        .collect();
    assert_eq!(pages.len(), 2, "{requests:?}");
    assert!(pages[1].contains("last=2"), "{pages:?}");

    let only_a = rt
        .block_on(store.referrers(&subject_digest, Some("application/x-a")))
        .unwrap();
    assert_eq!(only_a.descriptors.len(), 2);
    assert!(only_a
        .descriptors
        .iter()
        .all(|d| artifact_type(d) == Some("application/x-a")));
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("artifactType=application%2Fx-a")),
        "the filter is sent: {requests:?}"
    );

    // A referrer whose subject is another image is refused before anything is sent.
    let other = artifact_manifest(&sha256(b"other"), 3, "application/x-a", b"x");
    let err = rt
        .block_on(store.push_referrer(&subject_digest, &other, OCI_MANIFEST))
        .unwrap_err();
    assert!(err.to_string().contains("its subject is not"), "{err}");
}

#[test]
fn hostile_referrers_answers_are_refused_with_their_reason() {
    let subject = sha256(b"any image");
    let subject_digest: Digest = subject.parse().unwrap();
    let rt = runtime();

    let lying = RefServer::start(Api::LyingDigest);
    let err = rt
        .block_on(store_at(&lying.host(), "app").referrers(&subject_digest, None))
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");

    let foreign = RefServer::start(Api::ForeignLink);
    let err = rt
        .block_on(store_at(&foreign.host(), "app").referrers(&subject_digest, None))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Link header points to another host"),
        "{err}"
    );

    let junk = RefServer::start(Api::Pages(100));
    junk.inject(
        json!({"mediaType": "application/octet-stream", "digest": sha256(b"x"), "size": 1}),
    );
    let err = rt
        .block_on(store_at(&junk.host(), "app").referrers(&subject_digest, None))
        .unwrap_err();
    assert!(err.to_string().contains("not an OCI manifest"), "{err}");

    let huge = RefServer::start(Api::Pages(100));
    huge.inject(json!({"mediaType": OCI_MANIFEST, "digest": sha256(b"x"), "size": 1u64 << 40}));
    let err = rt
        .block_on(store_at(&huge.host(), "app").referrers(&subject_digest, None))
        .unwrap_err();
    assert!(matches!(err, Error::LimitExceeded { .. }), "{err:?}");

    // More than the bound, over many pages: refused, not followed for ever.
    let many = RefServer::start(Api::Pages(100));
    for i in 0..1001 {
        many.inject(json!({"mediaType": OCI_MANIFEST, "digest": sha256(format!("{i}").as_bytes()), "size": 10}));
    }
    let err = rt
        .block_on(store_at(&many.host(), "app").referrers(&subject_digest, None))
        .unwrap_err();
    assert!(matches!(err, Error::LimitExceeded { .. }), "{err:?}");
}

#[test]
fn without_the_api_the_tag_schema_is_read_and_written_grow_only() {
    let reg = TestRegistry::start();
    let subject_digest = push_sample_image(&reg, "app:v1");
    let subject = subject_digest.to_string();
    let store = ImageStore::Registry {
        client: client(),
        reference: reg.reference("app:v1"),
    };
    let rt = runtime();
    // The empty config and layer blobs the artifact manifests name.
    rt.block_on(store.put_blob(
        bytes::Bytes::from_static(b"{}"),
        "application/vnd.oci.empty.v1+json",
    ))
    .unwrap();
    let mut manifests = Vec::new();
    for i in 0..4 {
        let layer = format!("bundle {i}").into_bytes();
        rt.block_on(store.put_blob(bytes::Bytes::from(layer.clone()), "application/x-a"))
            .unwrap();
        let artifact = if i == 3 {
            "application/x-b"
        } else {
            "application/x-a"
        };
        manifests.push(artifact_manifest(&subject, 100, artifact, &layer));
    }
    assert!(rt
        .block_on(store.referrers(&subject_digest, None))
        .unwrap()
        .descriptors
        .is_empty());

    // Four writers at once: the tag index keeps every one (grow-only merge, re-read to confirm).
    rt.block_on(async {
        let tasks: Vec<_> = manifests
            .iter()
            .cloned()
            .map(|m| {
                let store = ImageStore::Registry {
                    client: client(),
                    reference: reg.reference("app:v1"),
                };
                let subject_digest = subject_digest.clone();
                tokio::spawn(async move {
                    store
                        .push_referrer(&subject_digest, &m, OCI_MANIFEST)
                        .await
                        .unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let all = rt.block_on(store.referrers(&subject_digest, None)).unwrap();
    assert_eq!(all.source, ReferrersSource::TagSchema);
    let mut expected: Vec<String> = manifests.iter().map(|m| sha256(m)).collect();
    expected.sort();
    assert_eq!(digests(&all.descriptors), expected);
    let only_b = rt
        .block_on(store.referrers(&subject_digest, Some("application/x-b")))
        .unwrap();
    assert_eq!(digests(&only_b.descriptors), [sha256(&manifests[3])]);

    // Pushing one again adds nothing.
    rt.block_on(store.push_referrer(&subject_digest, &manifests[0], OCI_MANIFEST))
        .unwrap();
    let tag = rt
        .block_on(store.manifest_by_tag(&referrers_tag(&subject_digest)))
        .unwrap()
        .unwrap();
    match tag.manifest {
        signet_oci::Manifest::Index(index) => assert_eq!(index.manifests.len(), 4),
        other => panic!("the referrers tag must hold an index: {other:?}"),
    }
}
