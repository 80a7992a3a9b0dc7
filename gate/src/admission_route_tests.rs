//! `POST /validate` and `POST /mutate` are served past the router ([`Routes`]): every request to
//! them, and to the paths and methods next to them, is answered byte for byte as the router
//! alone answers it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use signet_oci::{Digest, Reference};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::{GateConfig, Judgement, Mode};

/// Allows repositories under `good/`, denies the rest.
struct Judges;

impl Judge for Judges {
    async fn judge(
        &self,
        reference: Reference,
        digest: Option<Digest>,
    ) -> Result<Judgement, GateError> {
        let repo = reference.repository().to_string();
        let allowed = repo.starts_with("good/");
        Ok(Judgement {
            digest: digest.ok_or_else(|| GateError::Judge("no digest".into()))?,
            allowed,
            mode: Mode::Enforce,
            message: format!("{repo}: {}", if allowed { "signed" } else { "unsigned" }),
            report: Arc::new(json!({ "repository": repo })),
            cacheable: true,
            valid_until: None,
        })
    }

    fn policy_hash(&self) -> String {
        "policy-1".into()
    }
}

fn gate() -> Gate<Judges> {
    let mut config = GateConfig::simple(
        "policy.yaml".into(),
        "127.0.0.1:0".parse().unwrap(),
        "http://127.0.0.1:9",
    )
    .unwrap();
    config.limits.max_body_bytes = 1000;
    Gate::new(config, Judges).unwrap()
}

/// Serves `gate` the way `BoundGate::run` did before the admission routes went past the
/// router: every request to `gate.router(false)`.
async fn serve_router_only(gate: Gate<Judges>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = TowerToHyperService::new(gate.router(false));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            let builder = builder.clone();
            let service = service.clone();
            tokio::spawn(async move {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

/// Sends `request` on a new connection and reads one response: its head (without the `date`
/// line) and its `content-length` bytes of body.
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0_u8; 4096];
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(got[..end].to_vec()).unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .expect("a content-length")
                    .parse()
                    .unwrap();
                let head_request = request.starts_with(b"HEAD ");
                if head_request || got.len() >= end + 4 + length {
                    let body = &got[end + 4..];
                    let head: Vec<&str> =
                        head.lines().filter(|l| !l.starts_with("date: ")).collect();
                    return format!("{}\n\n{}", head.join("\n"), String::from_utf8_lossy(body));
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed mid-answer: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s")
}

fn pinned(repo: &str) -> String {
    format!("127.0.0.1:9/{repo}@{}", Digest::sha256(repo.as_bytes()))
}

fn review(uid: &str, images: &[&str]) -> String {
    let containers: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "object": {"spec": {"containers": containers}},
        }
    })
    .to_string()
}

/// An HTTP/1.1 request with `content-length`.
fn post(target: &str, content_type: Option<&str>, body: &str) -> Vec<u8> {
    let content_type = content_type
        .map(|c| format!("content-type: {c}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {target} HTTP/1.1\r\nhost: localhost\r\n{content_type}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An HTTP/1.1 request with a chunked body (no `content-length`).
fn chunked(target: &str, body: &str) -> Vec<u8> {
    let mut request = format!(
        "POST {target} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    for chunk in body.as_bytes().chunks(300) {
        request.push_str(&format!("{:x}\r\n", chunk.len()));
        request.push_str(std::str::from_utf8(chunk).unwrap());
        request.push_str("\r\n");
    }
    request.push_str("0\r\n\r\n");
    request.into_bytes()
}

fn bare(method: &str, target: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nhost: localhost\r\ncontent-length: 0\r\n\r\n")
        .into_bytes()
}

#[test]
fn only_posts_to_the_two_paths_go_past_the_router() {
    let route = |method: Method, uri: &str| admission_route(&method, &uri.parse().unwrap());
    assert_eq!(route(Method::POST, "/validate"), Some(false));
    assert_eq!(route(Method::POST, "/validate?timeout=10s"), Some(false));
    assert_eq!(route(Method::POST, "/mutate"), Some(true));
    assert_eq!(route(Method::POST, "/mutate?timeout=10s"), Some(true));
    assert_eq!(route(Method::POST, "http://localhost/mutate"), Some(true));
    for (method, uri) in [
        (Method::GET, "/validate"),
        (Method::HEAD, "/validate"),
        (Method::PUT, "/mutate"),
        (Method::POST, "/validate/"),
        (Method::POST, "/Validate"),
        (Method::POST, "//validate"),
        (Method::POST, "/validate/x"),
        (Method::POST, "/%76alidate"),
        (Method::POST, "/v1/verify"),
        (Method::POST, "/"),
    ] {
        assert_eq!(route(method.clone(), uri), None, "{method} {uri}");
    }
}

#[tokio::test]
async fn admission_answers_are_the_routers() {
    let fast = gate();
    let bound = fast.bind().await.unwrap();
    let fast_addr = bound.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(bound.run(async move {
        let _ = stopped.await;
    }));
    let (router_addr, router_task) = serve_router_only(gate()).await;

    let good = pinned("good/app");
    let bad = pinned("bad/app");
    let json = Some("application/json");
    let allow = review("u-1", &[&good]);
    let deny = review("u-2", &[&good, &bad]);
    let big = review("u-3", &[good.as_str(); 20]);
    assert!(big.len() > 1000, "{}", big.len());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("allow", post("/validate", json, &allow)),
        ("allow, cached", post("/validate", json, &allow)),
        ("deny", post("/validate", json, &deny)),
        ("deny, cached", post("/validate", json, &deny)),
        (
            "query string",
            post("/validate?timeout=10s", json, &review("u-4", &[&good])),
        ),
        ("mutate", post("/mutate", json, &allow)),
        ("mutate, deny", post("/mutate?timeout=10s", json, &deny)),
        ("malformed JSON", post("/validate", json, "{not json")),
        ("not a review", post("/validate", json, r#"{"kind":"Pod"}"#)),
        ("text/plain", post("/validate", Some("text/plain"), &allow)),
        ("no content-type", post("/validate", None, &allow)),
        ("empty body", post("/mutate", json, "")),
        ("over the limit", post("/validate", json, &big)),
        ("chunked", chunked("/validate", &allow)),
        ("chunked, over the limit", chunked("/mutate", &big)),
        (
            "content-length over the limit, no body",
            b"POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-length: 1001\r\n\r\n".to_vec(),
        ),
        (
            "absolute form",
            post("http://localhost/validate", json, &allow),
        ),
        (
            "HTTP/1.0",
            format!(
                "POST /validate HTTP/1.0\r\ncontent-length: {}\r\n\r\n{allow}",
                allow.len()
            )
            .into_bytes(),
        ),
        ("GET /validate", bare("GET", "/validate")),
        ("HEAD /validate", bare("HEAD", "/validate")),
        ("PUT /mutate", bare("PUT", "/mutate")),
        ("/validate/", post("/validate/", json, &allow)),
        ("/Validate", post("/Validate", json, &allow)),
        ("//validate", post("//validate", json, &allow)),
        ("/mutate/x", post("/mutate/x", json, &allow)),
        ("healthz", bare("GET", "/healthz")),
    ];
    let mut differ = Vec::new();
    for (name, request) in &cases {
        let by_router = exchange(router_addr, request).await;
        let by_routes = exchange(fast_addr, request).await;
        if by_routes != by_router {
            differ.push(format!(
                "{name}:\n--- router\n{by_router}\n--- served\n{by_routes}"
            ));
        }
    }
    assert!(differ.is_empty(), "\n{}", differ.join("\n"));

    // The answers are the ones the webhook gives (not two equal wrong ones).
    let answer = exchange(fast_addr, &post("/validate", json, &allow)).await;
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\ncontent-type: application/json\ncontent-length: "),
        "{answer}"
    );
    assert!(
        answer.ends_with(r#""response":{"uid":"u-1","allowed":true}}"#),
        "{answer}"
    );
    let answer = exchange(fast_addr, &post("/validate?timeout=10s", json, &deny)).await;
    assert!(answer.contains(r#""allowed":false"#), "{answer}");
    assert!(answer.contains("bad/app: unsigned"), "{answer}");
    let answer = exchange(fast_addr, &post("/validate", json, &big)).await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(
        answer.ends_with(r#"{"error":"request body larger than 1000 bytes"}"#),
        "{answer}"
    );
    let answer = exchange(fast_addr, &post("/validate", json, "")).await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("malformed JSON: EOF"), "{answer}");
    let answer = exchange(fast_addr, &bare("GET", "/validate")).await;
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
    assert!(answer.contains("\nallow: POST\n"), "{answer}");
    let answer = exchange(fast_addr, &post("/validate/", json, &allow)).await;
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");

    // Over HTTP/2 as well.
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for (method, path, body) in [
        ("POST", "/validate", allow.clone()),
        ("POST", "/mutate?timeout=10s", deny.clone()),
        ("POST", "/validate", big.clone()),
        ("POST", "/validate", String::new()),
        ("GET", "/validate", String::new()),
        ("POST", "/validate/", allow.clone()),
    ] {
        let mut answers = Vec::new();
        for addr in [router_addr, fast_addr] {
            let r = h2
                .request(method.parse().unwrap(), format!("http://{addr}{path}"))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.version(), reqwest::Version::HTTP_2);
            let mut headers: Vec<String> = r
                .headers()
                .iter()
                .filter(|(name, _)| *name != header::DATE)
                .map(|(name, value)| format!("{name}: {value:?}"))
                .collect();
            headers.sort();
            answers.push((r.status(), headers, r.bytes().await.unwrap()));
        }
        assert_eq!(answers[0], answers[1], "{method} {path}");
    }

    let _ = stop.send(());
    running.await.unwrap().unwrap();
    router_task.abort();
}
