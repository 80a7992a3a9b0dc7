//! The verify API: `POST /v1/verify` with `{"image": "…"}` or `{"images": […]}` returns the
//! verdict(s); `GET /v1/policy` returns the active policy's hash and load time. Both require the
//! configured client authentication (`api.token_file`, `tls.client_ca`). Also the bounded body
//! reading shared with the admission webhook.

// Handlers' helpers fail with the HTTP answer to give; it is large, and that is fine here.
#![allow(clippy::result_large_err)]

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::engine::{Decision, DecisionView, Source};
use super::server::Gate;
use super::{GateError, Judge};

/// The SHA-256 of the configured bearer token, read from `path` (trailing newline ignored).
pub(crate) fn load_token(path: &std::path::Path) -> Result<signet_oci::Digest, GateError> {
    let text = std::fs::read_to_string(path).map_err(|e| GateError::io(path, e))?;
    let token = text.trim_end_matches(['\r', '\n']);
    if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(GateError::Config(format!(
            "api.token_file {}: the token must be at least 16 characters, without spaces",
            path.display()
        )));
    }
    Ok(signet_oci::Digest::sha256(token.as_bytes()))
}

/// Whether `headers` carry the bearer token whose SHA-256 is `expected`. The digests are
/// compared in constant time, so the time taken says nothing about how much of a guess matched.
pub(crate) fn bearer_matches(headers: &HeaderMap, expected: &signet_oci::Digest) -> bool {
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let presented = signet_oci::Digest::sha256(presented.trim().as_bytes());
    let (a, b) = (presented.to_string(), expected.to_string());
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

/// `401` unless the request passes the configured client authentication (the client
/// certificate, when required, was checked during the handshake: see `server.rs`).
fn authenticate<J: Judge>(gate: &Gate<J>, headers: &HeaderMap) -> Result<(), Response> {
    match &gate.inner.api_token {
        Some(expected) if !bearer_matches(headers, expected) => Err(unauthorized(
            "this endpoint requires `Authorization: Bearer <token>`",
        )),
        _ => Ok(()),
    }
}

/// A `401` answer for `/v1/*`.
pub(crate) fn unauthorized(message: &str) -> Response {
    let mut response = bad_request(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer realm=\"signet\""),
    );
    response
}

/// `/v1/*` on a connection without the client certificate `tls.client_ca` requires.
pub(crate) async fn certificate_required() -> Response {
    unauthorized("this endpoint requires a client certificate")
}

/// A plain-text error answer.
pub(crate) fn bad_request(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

/// The request body, at most `limit` bytes (checked against `Content-Length` first, then while
/// reading, since the header may lie or be absent).
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, Response> {
    let too_large = || {
        bad_request(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    images: Option<Vec<String>>,
}

/// The verify API's answer to `{"images": […]}`.
#[derive(serde::Serialize)]
struct ListAnswer<'a> {
    admitted: bool,
    results: Vec<DecisionView<'a>>,
}

/// `POST /v1/verify`.
pub(crate) async fn verify<J: Judge>(
    State(gate): State<Gate<J>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(response) = authenticate(&gate, &headers) {
        return response;
    }
    let limits = &gate.inner.config.limits;
    let bytes = match read_body(&headers, body, limits.max_body_bytes).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let request: VerifyRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return bad_request(StatusCode::BAD_REQUEST, &format!("malformed request: {e}")),
    };
    match (request.image, request.images) {
        (Some(image), None) => {
            let decision = gate.decide(&image, Source::Api).await;
            axum::Json(decision.view()).into_response()
        }
        (None, Some(images)) => {
            if images.len() > limits.max_images {
                return bad_request(
                    StatusCode::BAD_REQUEST,
                    &format!("more than {} images in one request", limits.max_images),
                );
            }
            let decisions = gate.decide_all(&images, Source::Api).await;
            let answer = ListAnswer {
                admitted: decisions.iter().all(|d| d.admitted()),
                results: decisions.iter().map(Decision::view).collect(),
            };
            axum::Json(answer).into_response()
        }
        _ => bad_request(
            StatusCode::BAD_REQUEST,
            "give exactly one of \"image\" or \"images\"",
        ),
    }
}

/// `GET /v1/policy`.
pub(crate) async fn policy<J: Judge>(State(gate): State<Gate<J>>, headers: HeaderMap) -> Response {
    if let Err(response) = authenticate(&gate, &headers) {
        return response;
    }
    let active = gate.active();
    let trusted_roots: Vec<Value> = active
        .judge
        .trust_roots()
        .into_iter()
        .map(|root| json!({"root": root.name, "source": root.source, "sha256": root.sha256}))
        .collect();
    axum::Json(json!({
        "hash": active.hash,
        "loaded_at": active.loaded_at,
        "trusted_roots": trusted_roots,
    }))
    .into_response()
}

/// `GET /v1/audit`: every image continuous verification remembers, its verdict now, when it
/// last changed and why.
pub(crate) async fn audit<J: Judge>(State(gate): State<Gate<J>>, headers: HeaderMap) -> Response {
    if let Err(response) = authenticate(&gate, &headers) {
        return response;
    }
    axum::Json(gate.audit_json()).into_response()
}

#[cfg(test)]
mod tests {
    //! The verify API cannot be used to make the gate fetch what it should not (issue 10, item 1):
    //! each vector is sent at a loopback listener that counts the connections it accepts.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use serde_json::Value;
    use signet_verifier::enforce::load_policy_file;

    use crate::judge::PolicyJudge;
    use crate::{Gate, GateConfig, Source};

    /// A loopback listener that counts accepted connections and answers each with `answer`
    /// (or closes it at once when there is none).
    fn listener(answer: Option<Vec<u8>>) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                seen.fetch_add(1, Ordering::SeqCst);
                if let Some(answer) = &answer {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = stream.write_all(answer);
                }
            }
        });
        (port, count)
    }

    fn http_answer(status: &str, headers: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    struct Setup {
        _dir: tempfile::TempDir,
        gate: Gate<PolicyJudge>,
    }

    /// A gate whose upstream is `upstream` (a loopback port), `policy` as its policy, and
    /// `edit` applied to the configuration.
    fn setup(policy: &str, upstream: u16, edit: impl FnOnce(&mut GateConfig)) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, policy).unwrap();
        let mut config = GateConfig::simple(
            path.clone(),
            "127.0.0.1:0".parse().unwrap(),
            &format!("http://127.0.0.1:{upstream}"),
        )
        .unwrap();
        config.timeouts.upstream_seconds = 2;
        edit(&mut config);
        let client = signet_oci::RegistryClient::new(config.registry_options().unwrap()).unwrap();
        let judge = PolicyJudge::new(load_policy_file(&path).unwrap(), client);
        Setup {
            gate: Gate::new(config, judge).unwrap(),
            _dir: dir,
        }
    }

    fn accept_only(host: &str) -> String {
        format!("default:\n  reject: only listed registries\nscopes:\n  \"{host}\":\n    accept: true\n")
    }

    #[tokio::test]
    async fn names_the_policy_rejects_cost_no_request() {
        let (target, hits) = listener(None);
        let s = setup(&accept_only("registry.example.com"), 9, |_| {});
        for image in [
            format!("127.0.0.1:{target}/secret:latest"),
            format!(
                "127.0.0.1:{target}/secret@{}",
                signet_oci::Digest::sha256(b"x")
            ),
        ] {
            let d = s.gate.decide(&image, Source::Api).await;
            assert!(!d.allowed && !d.admitted() && !d.error, "{d:?}");
            assert!(d.message.contains("[rejected-by-policy]"), "{}", d.message);
            assert_eq!(d.digest, None);
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "no request for a rejected name"
        );
        // The control: a name the policy can allow, at a configured internal registry, is
        // resolved (this listener does count).
        let s = setup(&accept_only(&format!("127.0.0.1:{target}")), 9, |c| {
            c.network.internal_registries = vec![format!("127.0.0.1:{target}")];
            c.network.plain_http_registries = vec![format!("127.0.0.1:{target}")];
        });
        let d = s
            .gate
            .decide(&format!("127.0.0.1:{target}/app:v1"), Source::Api)
            .await;
        assert!(d.error, "{d:?}");
        assert!(hits.load(Ordering::SeqCst) >= 1);
    }

    #[tokio::test]
    async fn internal_addresses_only_for_configured_registries() {
        let (target, hits) = listener(None);
        // The policy allows the name; the gate's configuration does not list it.
        let s = setup(&accept_only(&format!("127.0.0.1:{target}")), 9, |_| {});
        let d = s
            .gate
            .decide(&format!("127.0.0.1:{target}/app:v1"), Source::Api)
            .await;
        assert!(d.error && !d.admitted(), "{d:?}");
        assert!(
            d.message.contains("not a configured registry"),
            "{}",
            d.message
        );
        let s = setup("default:\n  accept: true\n", 9, |_| {});
        for image in [
            "169.254.169.254/latest/meta-data:v1",
            "[fd00::1]:5000/app:v1",
            "10.0.0.1/app:v1",
            "localhost:9/app:v1",
        ] {
            let d = s.gate.decide(image, Source::Api).await;
            assert!(d.error && !d.admitted(), "{image}: {d:?}");
            assert!(
                d.message.contains("not a configured registry"),
                "{image}: {}",
                d.message
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_foreign_token_realm_is_never_asked() {
        let (realm, realm_hits) = listener(None);
        let challenge = http_answer(
            "401 Unauthorized",
            &format!("WWW-Authenticate: Bearer realm=\"https://localhost:{realm}/token\",service=\"x\"\r\n"),
            "",
        );
        let (upstream, upstream_hits) = listener(Some(challenge));
        let s = setup(
            &accept_only(&format!("127.0.0.1:{upstream}")),
            upstream,
            |_| {},
        );
        let d = s
            .gate
            .decide(&format!("127.0.0.1:{upstream}/app:v1"), Source::Api)
            .await;
        assert!(d.error, "{d:?}");
        assert!(
            d.message
                .contains("neither the registry's host nor a configured token realm"),
            "{}",
            d.message
        );
        assert!(upstream_hits.load(Ordering::SeqCst) >= 1);
        assert_eq!(realm_hits.load(Ordering::SeqCst), 0);
    }

    /// Serve `gate` on a free loopback port; dropping the sender stops it.
    async fn serve(gate: &Gate<PolicyJudge>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let bound = gate.bind().await.unwrap();
        let addr = bound.local_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(bound.run(async {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    #[tokio::test]
    async fn upstream_answers_never_reach_the_caller() {
        let secret = "root:x:0:0:secret-upstream-text";
        let answer = http_answer(
            "500 Internal Server Error",
            "Content-Type: text/plain\r\n",
            secret,
        );
        let (upstream, hits) = listener(Some(answer));
        let s = setup(
            &accept_only(&format!("127.0.0.1:{upstream}")),
            upstream,
            |_| {},
        );
        let (addr, _stop) = serve(&s.gate).await;
        let text = reqwest::Client::new()
            .post(format!("http://{addr}/v1/verify"))
            .body(serde_json::json!({"image": format!("127.0.0.1:{upstream}/app:v1")}).to_string())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(hits.load(Ordering::SeqCst) >= 1);
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["error"], true, "{text}");
        assert!(
            answer["message"].as_str().unwrap().contains("HTTP 500"),
            "{text}"
        );
        assert!(!text.contains("secret-upstream-text"), "{text}");
    }

    #[tokio::test]
    async fn the_verify_api_can_require_a_bearer_token() {
        let (target, hits) = listener(None);
        let token = "0123456789abcdef-token";
        let mut token_file = None;
        let s = setup(&accept_only("registry.example.com"), 9, |c| {
            let path = std::env::temp_dir().join(format!("signet-api-token-{target}"));
            std::fs::write(&path, format!("{token}\n")).unwrap();
            c.api.token_file = Some(path.clone());
            token_file = Some(path);
        });
        let (addr, _stop) = serve(&s.gate).await;
        let http = reqwest::Client::new();
        let body = serde_json::json!({"image": format!("127.0.0.1:{target}/a:b")});
        for auth in [
            None,
            Some("Bearer wrong-token-0123456"),
            Some("Basic Zm9vOmJhcg=="),
        ] {
            let mut request = http
                .post(format!("http://{addr}/v1/verify"))
                .body(body.to_string());
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{auth:?}");
            assert!(response.headers().contains_key("www-authenticate"));
            let response = http
                .get(format!("http://{addr}/v1/policy"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401);
        }
        let ok = http
            .post(format!("http://{addr}/v1/verify"))
            .header("Authorization", format!("Bearer {token}"))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        // Health and admission are not behind the token.
        let health = http
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        let admission = http
            .post(format!("http://{addr}/validate"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_ne!(admission.status(), 401);
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        let _ = std::fs::remove_file(token_file.unwrap());
        // A short token is refused at start.
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("t");
        std::fs::write(&short, "abc\n").unwrap();
        assert!(super::load_token(&short)
            .unwrap_err()
            .to_string()
            .contains("at least 16 characters"));
    }

    #[test]
    fn bearer_comparison() {
        let expected = signet_oci::Digest::sha256(b"0123456789abcdef");
        let with = |v: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert("authorization", v.parse().unwrap());
            super::bearer_matches(&h, &expected)
        };
        assert!(with("Bearer 0123456789abcdef"));
        assert!(!with("Bearer 0123456789abcdeg"));
        assert!(!with("bearer0123456789abcdef"));
        assert!(!super::bearer_matches(
            &axum::http::HeaderMap::new(),
            &expected
        ));
    }

    fn openssl(args: &[&str]) {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    }

    /// A CA in `dir` named `name`, and a certificate it issued for `cn` (with `ext` extensions):
    /// (CA certificate, certificate, key) paths.
    fn issue(dir: &std::path::Path, name: &str, cn: &str, ext: &str) -> [std::path::PathBuf; 3] {
        let p = |f: &str| dir.join(format!("{name}-{f}"));
        let s = |f: &str| p(f).to_str().unwrap().to_string();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-subj",
                    &format!("/CN={name}-ca"),
                    "-days",
                    "1",
                    "-keyout",
                    &s("ca.key"),
                    "-out",
                    &s("ca.pem"),
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req", "-new"][..],
                &ec,
                &[
                    "-subj",
                    &format!("/CN={cn}"),
                    "-keyout",
                    &s("key.pem"),
                    "-out",
                    &s("csr"),
                ],
            ]
            .concat(),
        );
        std::fs::write(p("ext"), ext).unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &s("csr"),
            "-CA",
            &s("ca.pem"),
            "-CAkey",
            &s("ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &s("ext"),
            "-out",
            &s("cert.pem"),
        ]);
        [p("ca.pem"), p("cert.pem"), p("key.pem")]
    }

    #[tokio::test]
    async fn the_verify_api_can_require_a_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let [server_ca, server_cert, server_key] = issue(
            dir.path(),
            "server",
            "gate",
            "subjectAltName=IP:127.0.0.1\n",
        );
        let [client_ca, client_cert, client_key] = issue(
            dir.path(),
            "client",
            "verifier",
            "extendedKeyUsage=clientAuth\n",
        );
        let [_, stranger_cert, stranger_key] = issue(
            dir.path(),
            "stranger",
            "verifier",
            "extendedKeyUsage=clientAuth\n",
        );
        let s = setup(&accept_only("registry.example.com"), 9, |c| {
            c.tls = Some(crate::TlsConfig {
                cert: server_cert,
                key: server_key,
                client_ca: Some(client_ca),
            });
        });
        let (addr, _stop) = serve(&s.gate).await;
        let client = |identity: Option<(&std::path::Path, &std::path::Path)>| {
            let ca = std::fs::read(&server_ca).unwrap();
            let mut b = reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
            if let Some((cert, key)) = identity {
                let mut pem = std::fs::read(cert).unwrap();
                pem.extend(std::fs::read(key).unwrap());
                b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
            }
            b.build().unwrap()
        };
        let url = |path: &str| format!("https://127.0.0.1:{}{path}", addr.port());
        let anonymous = client(None);
        let r = anonymous.get(url("/v1/policy")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.text().await.unwrap().contains("client certificate"));
        // Health, admission and the proxy need no client certificate.
        let r = anonymous.get(url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r = anonymous
            .post(url("/validate"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 401);
        let known = client(Some((&client_cert, &client_key)));
        let r = known.get(url("/v1/policy")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        // A certificate from another CA fails the handshake.
        let stranger = client(Some((&stranger_cert, &stranger_key)));
        let err = stranger.get(url("/v1/policy")).send().await.unwrap_err();
        let chain = format!("{:?}", std::error::Error::source(&err));
        assert!(
            chain.contains("UnknownCA")
                || chain.contains("BadCertificate")
                || chain.contains("UnknownIssuer"),
            "{chain}"
        );
    }
}
