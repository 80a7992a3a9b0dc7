//! Unit tests of registry access as users have it: identity tokens exchanged by the refresh-token
//! grant, `429` answers with `Retry-After` (recorded shapes of real registries' answers), proxies
//! that hang or answer garbage, and credentials never sent in clear through a proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue};

use super::transport::retry_after;
use super::*;

/// A request as the scripted server saw it.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    head: String,
    body: String,
}

/// A server answering each connection with the next scripted answer (the last one repeated),
/// recording what it was asked.
fn server(answers: Vec<Vec<u8>>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    server_with(|_| answers)
}

/// [`server`] with answers that may name the server's own `host:port`.
fn server_with(make: impl FnOnce(&str) -> Vec<Vec<u8>>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let answers = make(&host);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            let head_end = loop {
                if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break data.len(),
                    Ok(n) => data.extend_from_slice(&buf[..n]),
                }
            };
            let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while data.len() < head_end + length {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => data.extend_from_slice(&buf[..n]),
                }
            }
            let body = String::from_utf8_lossy(&data[head_end..]).into_owned();
            let mut log = log.lock().unwrap();
            let answer = answers[log.len().min(answers.len() - 1)].clone();
            log.push(Seen {
                line: head.lines().next().unwrap_or_default().to_string(),
                head,
                body,
            });
            drop(log);
            let _ = stream.write_all(&answer);
        }
    });
    (host, seen)
}

fn answer(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

fn manifest_ok() -> Vec<u8> {
    answer(
        "200 OK",
        &[("Content-Type", crate::manifest::OCI_MANIFEST)],
        MANIFEST,
    )
}

/// Docker Hub's rate-limit answer, as recorded (headers trimmed to those that matter), with the
/// `Retry-After` a registry may add.
fn docker_hub_429(retry_after: Option<&str>) -> Vec<u8> {
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("RateLimit-Limit", "100;w=21600"),
        ("RateLimit-Remaining", "0;w=21600"),
        ("Docker-RateLimit-Source", "203.0.113.9"),
    ];
    if let Some(value) = retry_after {
        headers.push(("Retry-After", value));
    }
    answer(
        "429 Too Many Requests",
        &headers,
        br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit"}]}"#,
    )
}

fn client(options: RegistryOptions) -> RegistryClient {
    RegistryClient::new(RegistryOptions {
        use_auth_files: false,
        proxy: ProxySettings::Direct,
        ..options
    })
    .unwrap()
}

fn quick(retries: u32, timeout_secs: u64) -> RegistryClient {
    client(RegistryOptions {
        retries,
        timeout: Duration::from_secs(timeout_secs),
        ..RegistryOptions::default()
    })
}

fn identity_token_client(host: &str) -> RegistryClient {
    client(RegistryOptions {
        retries: 0,
        timeout: Duration::from_secs(5),
        credentials: vec![(
            host.to_string(),
            Credentials {
                username: IDENTITY_TOKEN_USER.into(),
                password: "refresh-secret".into(),
            },
        )],
        ..RegistryOptions::default()
    })
}

#[test]
fn retry_after_reads_seconds_and_dates() {
    let now = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut headers = HeaderMap::new();
    assert_eq!(retry_after(&headers, now), None);
    headers.insert("retry-after", HeaderValue::from_static("7"));
    assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
    let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
    headers.insert("retry-after", HeaderValue::from_str(&later).unwrap());
    assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(90)));
    let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
    headers.insert("retry-after", HeaderValue::from_str(&past).unwrap());
    assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
    headers.insert("retry-after", HeaderValue::from_static("soon"));
    assert_eq!(retry_after(&headers, now), None);
}

#[tokio::test]
async fn a_429_is_waited_out_as_retry_after_says() {
    let (host, seen) = server(vec![docker_hub_429(Some("1")), manifest_ok()]);
    let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
    let started = Instant::now();
    let fetched = quick(2, 5).get_manifest(&reference).await.unwrap();
    assert_eq!(fetched.bytes, MANIFEST);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_429_asking_longer_than_the_limit_ends_at_once_naming_it() {
    let (host, seen) = server(vec![docker_hub_429(Some("21600"))]);
    let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
    let started = Instant::now();
    let err = quick(3, 5).get_manifest(&reference).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, Error::Registry { .. }), "{err}");
    assert!(
        err.to_string().contains(
            "rate limited (HTTP 429 Too Many Requests): the registry asks to wait 21600 s, \
             longer than the 5 s limit (--timeout)"
        ),
        "{err}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_429_without_retry_after_backs_off_then_names_the_retries() {
    let (host, seen) = server(vec![docker_hub_429(None)]);
    let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
    let err = quick(2, 5).get_manifest(&reference).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("rate limited (HTTP 429 Too Many Requests): still limited after 2 retries"),
        "{err}"
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_429_on_an_upload_is_retried_too() {
    // POST is not idempotent, but a 429 means the request was not processed.
    let accepted = answer(
        "202 Accepted",
        &[("Location", "/v2/a/b/blobs/uploads/1"), ("Range", "0-0")],
        b"",
    );
    let absent = answer("404 Not Found", &[], b"");
    let (host, seen) = server(vec![absent, docker_hub_429(Some("0")), accepted]);
    let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
    let _ = quick(1, 5)
        .put_blob(&reference, bytes::Bytes::from_static(b"x"))
        .await;
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(seen[0].line.starts_with("HEAD "), "{seen:?}");
    assert!(seen[1].line.starts_with("POST "), "{seen:?}");
    assert!(seen[2].line.starts_with("POST "), "{seen:?}");
}

fn challenge(host: &str) -> Vec<u8> {
    answer(
        "401 Unauthorized",
        &[(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="http://{host}/token",service="reg.test""#),
        )],
        b"",
    )
}

fn token(field: &str) -> Vec<u8> {
    answer(
        "200 OK",
        &[("Content-Type", "application/json")],
        format!(r#"{{"{field}":"bearer-xyz","expires_in":300}}"#).as_bytes(),
    )
}

#[tokio::test]
async fn a_429_from_the_token_service_is_waited_out() {
    let (host, seen) = server_with(|host| {
        vec![
            challenge(host),
            docker_hub_429(Some("1")),
            token("token"),
            manifest_ok(),
        ]
    });
    let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
    let fetched = quick(1, 5).get_manifest(&reference).await.unwrap();
    assert_eq!(fetched.bytes, MANIFEST);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen[1].line.starts_with("GET /token?"), "{seen:?}");
    assert!(seen[2].line.starts_with("GET /token?"), "{seen:?}");
    assert!(
        seen[3].head.contains("authorization: Bearer bearer-xyz"),
        "{seen:?}"
    );

    let (host, _) = server_with(|host| vec![challenge(host), docker_hub_429(Some("600"))]);
    let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
    let err = quick(1, 5).get_manifest(&reference).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("token service: rate limited (HTTP 429 Too Many Requests): the registry asks to wait 600 s"),
        "{err}"
    );
}

#[tokio::test]
async fn identity_tokens_are_exchanged_by_the_refresh_token_grant() {
    let (host, seen) =
        server_with(|host| vec![challenge(host), token("access_token"), manifest_ok()]);
    let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
    let fetched = identity_token_client(&host)
        .get_manifest(&reference)
        .await
        .unwrap();
    assert_eq!(fetched.bytes, MANIFEST);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[1].line, "POST /token HTTP/1.1");
    assert!(
        seen[1]
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/x-www-form-urlencoded"),
        "{seen:?}"
    );
    let form: Vec<(String, String)> = Url::parse(&format!("http://x/?{}", seen[1].body))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(get("grant_type"), "refresh_token");
    assert_eq!(get("refresh_token"), "refresh-secret");
    assert_eq!(get("service"), "reg.test");
    assert_eq!(get("scope"), "repository:a/b:pull");
    assert_eq!(get("client_id"), "signet");
    // The refresh token never travels as a password.
    assert!(
        !seen[1].head.to_ascii_lowercase().contains("authorization"),
        "{seen:?}"
    );
    assert!(
        seen[2].head.contains("authorization: Bearer bearer-xyz"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_token_service_without_the_oauth_endpoint_gets_the_get_flow() {
    let not_found = answer("404 Not Found", &[], b"404 page not found");
    let (host, seen) =
        server_with(|host| vec![challenge(host), not_found, token("token"), manifest_ok()]);
    let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
    identity_token_client(&host)
        .get_manifest(&reference)
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[1].line, "POST /token HTTP/1.1");
    assert!(seen[2].line.starts_with("GET /token?"), "{seen:?}");
    let basic = base64::engine::general_purpose::STANDARD.encode("<token>:refresh-secret");
    assert!(
        seen[2]
            .head
            .contains(&format!("authorization: Basic {basic}")),
        "{seen:?}"
    );

    // Any other refusal of the grant is the answer: no second try with GET.
    let refused = answer("401 Unauthorized", &[], br#"{"error":"invalid_grant"}"#);
    let (host, seen) = server_with(|host| vec![challenge(host), refused]);
    let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
    let err = identity_token_client(&host)
        .get_manifest(&reference)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(
        err.to_string().contains("token service refused (HTTP 401"),
        "{err}"
    );
    assert!(!err.to_string().contains("refresh-secret"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

/// A listener that accepts and then says nothing, or answers `garbage`.
fn bad_proxy(garbage: Option<&'static [u8]>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            if let Some(bytes) = garbage {
                let _ = stream.write_all(bytes);
            }
            held.push(stream);
        }
    });
    addr
}

fn via_proxy(proxy: &str, timeout_secs: u64) -> RegistryClient {
    RegistryClient::new(RegistryOptions {
        use_auth_files: false,
        retries: 0,
        timeout: Duration::from_secs(timeout_secs),
        allow_http_registries: vec!["reg.test:5000".into()],
        proxy: ProxySettings::Explicit(ProxyConfig {
            https: Some(proxy.to_string()),
            http: Some(proxy.to_string()),
            no_proxy: Vec::new(),
        }),
        ..RegistryOptions::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_proxy_that_hangs_or_answers_garbage_ends_within_the_time_out() {
    for garbage in [
        None,
        Some(&b"\x16\x03\x01 not http at all\r\n\r\n"[..]),
        Some(&b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n{"[..]),
    ] {
        let proxy = bad_proxy(garbage);
        for image in ["ghcr.io/a/b:t", "reg.test:5000/a/b:t"] {
            let reference: Reference = image.parse().unwrap();
            let started = Instant::now();
            let err = via_proxy(&proxy, 2)
                .get_manifest(&reference)
                .await
                .unwrap_err();
            assert!(
                started.elapsed() < Duration::from_secs(6),
                "{image} via {garbage:?}: {:?}",
                started.elapsed()
            );
            // Through a proxy, a plain-HTTP answer is the proxy's: its garbage is refused as
            // any registry's would be.
            assert!(
                matches!(err, Error::Registry { .. } | Error::LimitExceeded { .. }),
                "{image}: {err}"
            );
        }
    }
}

#[tokio::test]
async fn credentials_never_cross_a_proxy_in_clear() {
    // The plain-HTTP registry is reached through the proxy (which is this recording server);
    // its basic challenge must not be answered through it.
    let basic = answer(
        "401 Unauthorized",
        &[("WWW-Authenticate", r#"Basic realm="r""#)],
        b"",
    );
    let (proxy_host, proxy_seen) = server(vec![basic]);
    let client = RegistryClient::new(RegistryOptions {
        credentials: vec![(
            "reg.test:5000".into(),
            Credentials {
                username: "u".into(),
                password: "clear-secret".into(),
            },
        )],
        ..via_proxy(&format!("http://{proxy_host}"), 5)
            .options()
            .clone()
    })
    .unwrap();
    let reference: Reference = "reg.test:5000/a/b:t".parse().unwrap();
    let err = client.get_manifest(&reference).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "credentials are not sent over plain HTTP through proxy http://{proxy_host}; \
             list reg.test:5000 in NO_PROXY"
        )),
        "{err}"
    );
    let seen = proxy_seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0]
            .line
            .starts_with("GET http://reg.test:5000/v2/a/b/manifests/t"),
        "{seen:?}"
    );
    assert!(seen.iter().all(|s| !s.head.contains("clear-secret")
        && !s.head.to_ascii_lowercase().contains("authorization")));
}
