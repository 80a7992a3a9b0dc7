//! A bounded, digest-checking client for the OCI distribution API (pull and push), with docker and
//! containers auth files, basic and bearer-token auth, and plain HTTP only for loopback hosts or
//! hosts named explicitly.

#[cfg(test)]
mod access_tests;
mod auth;
mod credentials;
mod helpers;
mod manifests;
mod network;
mod proxy;
mod referrers;
mod revalidate;
mod transport;
mod uploads;

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::{Method, StatusCode, Url};

use crate::{Descriptor, Digest, Error, Manifest, Reference};

pub use helpers::CredentialHelper;
pub use proxy::{ProxyConfig, ProxySettings};

use auth::AuthCache;
use network::{http_allowed, scheme_for};
use transport::{
    api_host, header_length, transfer_budget, transport_message, url_host, verified_stream, Access,
};

/// A manifest as fetched: its exact bytes, the digest computed over them, and the parsed form.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The exact bytes received or stored.
    pub bytes: Vec<u8>,
    /// SHA-256 (or the algorithm asked for) of `bytes`, computed locally.
    pub digest: Digest,
    /// The media type declared by the source, or stated in the document.
    pub media_type: String,
    /// The parsed manifest.
    pub manifest: Manifest,
}

/// A stream of blob bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>;

/// Credentials for one registry.
#[derive(Clone, Default)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or identity token.
    pub password: String,
}

/// The user name that marks [`Credentials::password`] as an identity token (an OAuth2 refresh
/// token), as the credential-helper protocol and docker's `identitytoken` entries do.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

impl Credentials {
    /// Whether the secret is an identity token, exchanged at the registry's token service by the
    /// refresh-token grant rather than sent as a password.
    pub fn is_identity_token(&self) -> bool {
        self.username == IDENTITY_TOKEN_USER
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Hosts (`host[:port]`) to reach over plain HTTP (besides loopback hosts, when
    /// `loopback_http`).
    pub allow_http_registries: Vec<String>,
    /// Whether loopback hosts (`localhost`, `127.0.0.0/8`, `::1`) are reached over plain HTTP
    /// without being listed in `allow_http_registries`: the CLI's default (a local registry
    /// rarely has a certificate); the gate turns it off.
    pub loopback_http: bool,
    /// `None`: any destination (the CLI). `Some(hosts)`: loopback, private-range (10/8,
    /// 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16, fe80::/10) and unspecified
    /// addresses are reached only for these hosts (`host` or `host:port`). Any other host written
    /// as such an address is refused before a connection is made, and any other name resolving
    /// to such addresses is refused too (the gate: no relay into the network it runs in, no
    /// cloud metadata service).
    pub internal_hosts: Option<Vec<String>>,
    /// `None`: follow a bearer challenge to a token realm on any host (over https, or plain HTTP
    /// only where the client would itself speak it). `Some(hosts)`: only a realm on the
    /// registry's own host (any port; `auth.docker.io` for Docker Hub) or on one of these hosts.
    pub token_realm_hosts: Option<Vec<String>>,
    /// Whether errors repeat the text of a registry's error answer (its OCI error messages, or
    /// the start of the body; sanitised, at most 300 characters): on for the CLI, whose user
    /// chose the registry; off for the gate, whose errors reach its callers, and then only the
    /// HTTP status and the spec's error codes are kept.
    pub registry_messages: bool,
    /// Extra PEM CA certificates to trust, besides the platform's trust store (which honours
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR`) and the bundled web roots.
    pub ca_files: Vec<PathBuf>,
    /// Credentials given explicitly (flags, stdin), by registry host; these win over auth files.
    pub credentials: Vec<(String, Credentials)>,
    /// Credential helpers named explicitly, by registry host (after `credentials`, before auth
    /// files): the gate's way to use one, as it reads no auth files.
    pub credential_helpers: Vec<(String, CredentialHelper)>,
    /// Whether to read `~/.docker/config.json`, `$REGISTRY_AUTH_FILE` and
    /// `$XDG_RUNTIME_DIR/containers/auth.json` (and run the credential helpers they name).
    pub use_auth_files: bool,
    /// Which HTTP proxies to go through: the environment's (the default), none, or given ones.
    pub proxy: ProxySettings,
    /// Largest manifest accepted.
    pub max_manifest_bytes: u64,
    /// Time-out for connecting and for each request without a body stream.
    pub timeout: Duration,
    /// Retries for idempotent requests on 5xx and connection errors.
    pub retries: u32,
    /// Fixed addresses for registry host names, bypassing DNS (like `curl --resolve`; the port
    /// still comes from the reference). TLS is still checked against the name.
    pub resolve: Vec<(String, std::net::IpAddr)>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            allow_http_registries: Vec::new(),
            loopback_http: true,
            internal_hosts: None,
            token_realm_hosts: None,
            registry_messages: true,
            ca_files: Vec::new(),
            credentials: Vec::new(),
            credential_helpers: Vec::new(),
            use_auth_files: true,
            proxy: ProxySettings::Environment,
            max_manifest_bytes: crate::manifest::DEFAULT_MAX_MANIFEST_BYTES,
            timeout: Duration::from_secs(30),
            retries: 3,
            resolve: Vec::new(),
        }
    }
}

/// Default size of the chunks `put_blob_stream` sends in each `PATCH`.
pub const DEFAULT_UPLOAD_CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Redirects followed per request (blob GETs are often redirected to storage).
const MAX_REDIRECTS: usize = 5;
/// Error bodies, token answers and tag-list pages are read up to this many bytes.
const MAX_SMALL_BODY_BYTES: u64 = 4 * 1024 * 1024;
/// Registry error messages are cut to this many characters in our errors.
const MAX_MESSAGE_CHARS: usize = 300;
/// Tag-list pages followed before giving up.
const MAX_TAG_PAGES: usize = 100;
/// Tags accepted in total.
const MAX_TAGS: usize = 100_000;
/// Token lifetime assumed when the token service does not state one (the spec's default).
const DEFAULT_TOKEN_SECONDS: u64 = 60;
/// Longest token lifetime we believe.
const MAX_TOKEN_SECONDS: u64 = 3600;
/// Slowest transfer rate tolerated, in bytes per second: uploads get `timeout` plus their size at
/// this rate per request, and a blob download must finish within `timeout` plus its size at this
/// rate (the idle read time-out alone lets a server send one byte per second for ever).
const MIN_BYTES_PER_SECOND: u64 = 64 * 1024;
/// First back-off delay between retries; doubled each time, plus jitter.
const BACKOFF_BASE: Duration = Duration::from_millis(200);

/// A client for any number of registries; cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct RegistryClient {
    options: Arc<RegistryOptions>,
    http: reqwest::Client,
    auth: Arc<AuthCache>,
    auth_files: Arc<Vec<PathBuf>>,
    proxy: Arc<proxy::ProxyRules>,
    chunk_bytes: usize,
    /// Set by [`RegistryClient::with_revalidation`].
    revalidation: Option<Arc<revalidate::Revalidation>>,
    /// Registries whose referrers API answered 404, and since when (shared by clones).
    referrers_api: Arc<referrers::ReferrersApiMemory>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client with `options`. Extra CA files are read now; auth-file locations are taken from
    /// the environment now, and the files are read when a registry asks for credentials.
    pub fn new(options: RegistryOptions) -> Result<RegistryClient, Error> {
        let redirect_options = options.clone();
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else if attempt.url().scheme() != "https"
                && !http_allowed(&url_host(attempt.url()), &redirect_options)
            {
                // A redirect must not downgrade us to plain HTTP where we would not go ourselves.
                attempt.error("redirect to plain HTTP refused")
            } else if let Some(why) = network::destination_refused(attempt.url(), &redirect_options)
            {
                attempt.error(format!("redirect refused: {why}"))
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(options.timeout)
            .read_timeout(options.timeout)
            .redirect(redirect)
            .user_agent(concat!("signet/", env!("CARGO_PKG_VERSION")));
        for path in &options.ca_files {
            let pem = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
                )
            })?;
            if certs.is_empty() {
                return Err(Error::io(
                    path,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "no PEM certificate in CA file",
                    ),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(allowed) = &options.internal_hosts {
            builder = builder.dns_resolver(Arc::new(network::GuardedResolver {
                allowed: allowed.clone(),
            }));
        }
        // Our rules, not reqwest's own reading of the environment: Go's loopback exception, and
        // the gate's choice (its config, never the environment).
        let proxy_rules = proxy::ProxyRules::new(&options.proxy, &|name| std::env::var_os(name))?;
        builder = builder.no_proxy();
        if proxy_rules.any() {
            let rules = proxy_rules.clone();
            builder = builder.proxy(reqwest::Proxy::custom(move |url| {
                rules.proxy_for(url).cloned()
            }));
        }
        for (name, ip) in &options.resolve {
            builder = builder.resolve(name, std::net::SocketAddr::new(*ip, 0));
        }
        let http = builder.build().map_err(|e| Error::Registry {
            registry: "(client)".into(),
            message: format!("cannot set up HTTP client: {}", transport_message(&e)),
        })?;
        let auth_files = if options.use_auth_files {
            credentials::auth_file_paths(&|name| std::env::var_os(name))
        } else {
            Vec::new()
        };
        Ok(RegistryClient {
            options: Arc::new(options),
            http,
            auth: Arc::new(AuthCache::default()),
            auth_files: Arc::new(auth_files),
            proxy: Arc::new(proxy_rules),
            chunk_bytes: DEFAULT_UPLOAD_CHUNK_BYTES,
            revalidation: None,
            referrers_api: Arc::new(referrers::ReferrersApiMemory::default()),
        })
    }

    /// The same client keeping up to `entries` manifests and small blobs it fetched, and
    /// afterwards only asking whether they still hold (`revalidate.rs`): a manifest by digest
    /// with a `HEAD`, one by tag with a conditional `GET` (`If-None-Match`), a small blob by
    /// digest not at all. For callers that ask about the same images again and again (the
    /// gate's continuous verification). Clones share what is kept.
    pub fn with_revalidation(mut self, entries: usize) -> RegistryClient {
        self.revalidation = Some(Arc::new(revalidate::Revalidation::new(entries)));
        self
    }

    /// The same client sending `put_blob_stream` uploads in chunks of `bytes` (at least 1).
    pub fn with_upload_chunk_bytes(mut self, bytes: usize) -> RegistryClient {
        self.chunk_bytes = bytes.max(1);
        self
    }

    /// The options this client was made with.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// `scheme://host/v2/<repository>/<tail>` for `reference`.
    pub(super) fn url(&self, reference: &Reference, tail: &str) -> Result<Url, Error> {
        let registry = reference.registry();
        let text = format!(
            "{}://{}/v2/{}/{}",
            scheme_for(registry, &self.options),
            api_host(registry),
            reference.repository(),
            tail
        );
        Url::parse(&text).map_err(|e| Error::InvalidReference {
            input: reference.to_string(),
            reason: format!("cannot form a registry URL: {e}"),
        })
    }

    /// GET a blob of `reference`'s repository as a stream. The stream ends in an error if the bytes
    /// do not match `descriptor`'s digest or size (the caller never sees a completed bad blob).
    pub async fn get_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
    ) -> Result<ByteStream, Error> {
        let what = format!("blob {} in {reference}", descriptor.digest);
        let url = self.url(reference, &format!("blobs/{}", descriptor.digest))?;
        let mut call = Self::call(reference, &what, Access::Pull, Method::GET, url);
        call.whole_timeout = false;
        let started = tokio::time::Instant::now();
        let response = self.send(&call).await?;
        if response.status() != StatusCode::OK {
            return Err(self.status_error(&call, response).await);
        }
        if let Some(length) = header_length(response.headers()) {
            if length != descriptor.size {
                return Err(Error::SizeMismatch {
                    what,
                    expected: descriptor.size,
                    actual: length,
                });
            }
        }
        // The deadline counts from the request, so a slow start eats into the same budget.
        let deadline = started + transfer_budget(self.options.timeout, descriptor.size);
        Ok(verified_stream(
            response.bytes_stream(),
            descriptor,
            what,
            reference.registry().to_string(),
            deadline,
        ))
    }

    /// GET a small blob whole (at most `max_bytes`), checked against `descriptor`.
    pub async fn get_blob_bytes(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        max_bytes: u64,
    ) -> Result<Vec<u8>, Error> {
        if descriptor.size > max_bytes {
            return Err(Error::LimitExceeded {
                what: format!("blob {} in {reference}", descriptor.digest),
                limit: format!("{max_bytes} bytes"),
            });
        }
        let kept_url = match &self.revalidation {
            Some(r) => {
                let url = self
                    .url(reference, &format!("blobs/{}", descriptor.digest))?
                    .to_string();
                if let Some(bytes) = r.blob(&url) {
                    return Ok(bytes);
                }
                Some(url)
            }
            None => None,
        };
        let mut stream = self.get_blob(reference, descriptor).await?;
        // The stream already stops at descriptor.size, which is within max_bytes.
        let mut out = Vec::with_capacity(usize::try_from(descriptor.size).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        if let (Some(r), Some(url)) = (&self.revalidation, kept_url) {
            r.keep_blob(url, &out);
        }
        Ok(out)
    }

    /// Whether the blob `digest` exists in `reference`'s repository.
    pub async fn has_blob(&self, reference: &Reference, digest: &Digest) -> Result<bool, Error> {
        self.blob_exists(reference, digest, Access::Pull).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Instant;

    use reqwest::header::{HeaderMap, HeaderValue};

    use super::transport::{backoff, next_link, registry_codes, registry_text};
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_named_hosts() {
        let mut allow = RegistryOptions {
            allow_http_registries: vec!["reg.internal:5000".to_string()],
            ..RegistryOptions::default()
        };
        for (host, scheme) in [
            ("127.0.0.1:5000", "http"),
            ("localhost:1234", "http"),
            ("[::1]:5000", "http"),
            ("reg.internal:5000", "http"),
            ("reg.internal", "https"),
            ("ghcr.io", "https"),
            ("docker.io", "https"),
            ("127.example.com", "https"),
        ] {
            assert_eq!(scheme_for(host, &allow), scheme, "{host}");
        }
        // The gate's setting: loopback hosts too only when named.
        allow.loopback_http = false;
        assert_eq!(scheme_for("127.0.0.1:5000", &allow), "https");
        assert_eq!(scheme_for("reg.internal:5000", &allow), "http");
    }

    #[test]
    fn builds_urls() {
        let client = RegistryClient::new(RegistryOptions::default()).unwrap();
        let check = |r: &str, tail: &str, expected: &str| {
            let reference: Reference = r.parse().unwrap();
            assert_eq!(client.url(&reference, tail).unwrap().as_str(), expected);
        };
        check(
            "busybox",
            "manifests/latest",
            "https://registry-1.docker.io/v2/library/busybox/manifests/latest",
        );
        check(
            "127.0.0.1:5000/a/b:t",
            "tags/list",
            "http://127.0.0.1:5000/v2/a/b/tags/list",
        );
        check(
            "ghcr.io/o/r:t",
            "blobs/uploads/",
            "https://ghcr.io/v2/o/r/blobs/uploads/",
        );
        let digest = Digest::sha256(b"x");
        let by_digest: Reference = format!("ghcr.io/o/r:t@{digest}").parse().unwrap();
        assert_eq!(
            RegistryClient::manifest_tail(&by_digest),
            format!("manifests/{digest}")
        );
    }

    #[test]
    fn registry_codes_keep_only_spec_error_codes() {
        assert_eq!(
            registry_codes(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#),
            "MANIFEST_UNKNOWN"
        );
        assert_eq!(
            registry_codes(br#"{"errors":[{"code":"DENIED","message":"a"},{"code":"root:x:0:0","message":"b"},{"code":"DENIED"}]}"#),
            "DENIED"
        );
        assert_eq!(registry_codes(b"root:x:0:0:root:/root:/bin/bash"), "");
    }

    #[test]
    fn registry_text_is_parsed_and_bounded() {
        assert_eq!(
            registry_text(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        let long = "x\n".repeat(1000);
        let message = registry_text(long.as_bytes());
        assert!(message.chars().count() <= MAX_MESSAGE_CHARS + 1);
        assert!(!message.contains('\n'));
    }

    #[test]
    fn follows_next_links_only() {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::LINK,
            HeaderValue::from_static("</v2/a/tags/list?last=b&n=2>; rel=\"next\""),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        headers.insert(
            reqwest::header::LINK,
            HeaderValue::from_static("</x>; rel=\"prev\""),
        );
        assert_eq!(next_link(&headers), None);
    }

    #[test]
    fn backoff_grows_with_jitter_bounded() {
        for attempt in 1..5 {
            let d = backoff(attempt);
            let base = BACKOFF_BASE * (1 << (attempt - 1));
            assert!(d >= base && d < base * 2, "{attempt}: {d:?}");
        }
    }

    #[test]
    fn credentials_debug_is_redacted() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    /// A loopback HTTP server answering each connection with the next scripted response (the
    /// last one repeats), counting requests. It stands in for registries that misbehave in ways
    /// the real one cannot be made to (lying headers, 5xx).
    fn scripted_server(answers: Vec<Vec<u8>>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let i = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = &answers[i.min(answers.len() - 1)];
                let _ = stream.write_all(answer);
            }
        });
        (host, count)
    }

    fn answer(status: &str, headers: &[(&str, String)], body: &[u8], length: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        for (name, value) in headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if length {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(body);
        out
    }

    const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

    fn oci_type() -> (&'static str, String) {
        ("Content-Type", crate::manifest::OCI_MANIFEST.to_string())
    }

    fn quick_client(retries: u32, max_manifest_bytes: u64) -> RegistryClient {
        RegistryClient::new(RegistryOptions {
            use_auth_files: false,
            timeout: Duration::from_secs(5),
            retries,
            max_manifest_bytes,
            ..RegistryOptions::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn retries_5xx_but_never_4xx() {
        let unavailable = answer("503 Service Unavailable", &[], b"", true);
        let ok = answer("200 OK", &[oci_type()], MANIFEST, true);
        let (host, count) = scripted_server(vec![unavailable.clone(), unavailable, ok]);
        let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
        let fetched = quick_client(2, 4096)
            .get_manifest(&reference)
            .await
            .unwrap();
        assert_eq!(fetched.bytes, MANIFEST);
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);

        let bad = answer(
            "400 Bad Request",
            &[],
            br#"{"errors":[{"code":"DENIED","message":"internal-secret"}]}"#,
            true,
        );
        let (host, count) = scripted_server(vec![bad]);
        let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
        let err = quick_client(3, 4096)
            .get_manifest(&reference)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Registry { .. }), "{err}");
        assert!(
            err.to_string()
                .ends_with("HTTP 400 Bad Request: DENIED: internal-secret"),
            "{err}"
        );
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_registry_that_lies_about_the_digest_is_refused() {
        let lie = (
            "Docker-Content-Digest",
            Digest::sha256(b"other").to_string(),
        );
        let (host, _) = scripted_server(vec![answer("200 OK", &[oci_type(), lie], MANIFEST, true)]);
        let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
        let err = quick_client(0, 4096)
            .get_manifest(&reference)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");

        let truth = (
            "Docker-Content-Digest",
            Digest::sha256(MANIFEST).to_string(),
        );
        let (host, _) =
            scripted_server(vec![answer("200 OK", &[oci_type(), truth], MANIFEST, true)]);
        let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
        let fetched = quick_client(0, 4096)
            .get_manifest(&reference)
            .await
            .unwrap();
        assert_eq!(fetched.digest, Digest::sha256(MANIFEST));
    }

    #[tokio::test]
    async fn manifest_size_is_counted_not_taken_from_headers() {
        // No Content-Length: the body runs to the end of the connection.
        let (host, _) = scripted_server(vec![answer("200 OK", &[oci_type()], MANIFEST, false)]);
        let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
        let err = quick_client(0, 100)
            .get_manifest(&reference)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
        let fetched = quick_client(0, 4096)
            .get_manifest(&reference)
            .await
            .unwrap();
        assert_eq!(fetched.bytes, MANIFEST);
    }

    #[tokio::test]
    async fn tag_lists_follow_pagination_on_the_same_host_only() {
        let page1 = answer(
            "200 OK",
            &[(
                "Link",
                "</v2/a/b/tags/list?last=t2&n=2>; rel=\"next\"".to_string(),
            )],
            br#"{"name":"a/b","tags":["t1","t2"]}"#,
            true,
        );
        let page2 = answer("200 OK", &[], br#"{"name":"a/b","tags":["t3"]}"#, true);
        let (host, count) = scripted_server(vec![page1, page2]);
        let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
        let tags = quick_client(0, 4096).list_tags(&reference).await.unwrap();
        assert_eq!(tags, vec!["t1", "t2", "t3"]);
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);

        let elsewhere = answer(
            "200 OK",
            &[(
                "Link",
                "<http://127.0.0.2:1/v2/a/b/tags/list?last=t1>; rel=\"next\"".to_string(),
            )],
            br#"{"name":"a/b","tags":["t1"]}"#,
            true,
        );
        let (host, _) = scripted_server(vec![elsewhere]);
        let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
        let err = quick_client(0, 4096)
            .list_tags(&reference)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("another host"), "{err}");
    }

    #[tokio::test]
    async fn credentials_and_redirects_never_go_to_plain_http_elsewhere() {
        let challenge = answer(
            "401 Unauthorized",
            &[(
                "WWW-Authenticate",
                r#"Bearer realm="http://token.example/token",service="x""#.to_string(),
            )],
            b"",
            true,
        );
        let (host, _) = scripted_server(vec![challenge]);
        let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
        let mut options = RegistryOptions {
            use_auth_files: false,
            retries: 0,
            ..RegistryOptions::default()
        };
        options.credentials = vec![(
            host.clone(),
            Credentials {
                username: "u".into(),
                password: "p".into(),
            },
        )];
        let client = RegistryClient::new(options).unwrap();
        let err = client.get_manifest(&reference).await.unwrap_err();
        assert!(err.to_string().contains("is not https"), "{err}");

        let redirect = answer(
            "307 Temporary Redirect",
            &[("Location", "http://storage.example/blob".to_string())],
            b"",
            true,
        );
        let (host, _) = scripted_server(vec![redirect]);
        let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
        let blob = Descriptor::of("application/octet-stream", b"x");
        let err = quick_client(0, 4096)
            .get_blob(&reference, &blob)
            .await
            .err()
            .unwrap();
        assert!(matches!(err, Error::Registry { .. }), "{err}");
        assert!(err.to_string().contains("plain HTTP"), "{err}");
    }

    #[test]
    fn extra_ca_files_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let with_ca = |path: PathBuf| {
            RegistryClient::new(RegistryOptions {
                ca_files: vec![path],
                ..RegistryOptions::default()
            })
        };
        assert!(matches!(
            with_ca(dir.path().join("absent.pem")),
            Err(Error::Io { .. })
        ));
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        assert!(matches!(with_ca(junk), Err(Error::Io { .. })));
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        let status = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .arg("ec_paramgen_curve:P-256")
            .args(["-nodes", "-subj", "/CN=signet-test-ca", "-days", "1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(status.status.success(), "{status:?}");
        with_ca(cert).unwrap();
    }

    #[tokio::test]
    async fn blob_stream_ends_at_its_deadline_however_the_bytes_trickle() {
        // A server that sends a little and then trickles (or stalls) never trips an idle read
        // time-out; the stream's own deadline must end it (found by tests/e2e/hostile.rs).
        let good = Bytes::from_static(b"hello world");
        let descriptor = Descriptor::of("application/octet-stream", &good);
        let inner =
            futures_util::stream::iter([Ok::<_, reqwest::Error>(Bytes::from_static(b"hello "))])
                .chain(futures_util::stream::pending());
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        let mut s = verified_stream(inner, &descriptor, "blob x".into(), "r".into(), deadline);
        assert!(matches!(s.next().await, Some(Ok(_))));
        let started = Instant::now();
        let err = s.next().await.unwrap().unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            err.to_string().contains("timed out after 6 of 11 bytes"),
            "{err}"
        );
        assert!(s.next().await.is_none(), "nothing after the error");
        assert_eq!(
            transfer_budget(Duration::from_secs(2), 10 * MIN_BYTES_PER_SECOND),
            Duration::from_secs(12)
        );
    }

    #[tokio::test]
    async fn blob_stream_refuses_wrong_bytes() {
        let good = Bytes::from_static(b"hello world");
        let descriptor = Descriptor::of("application/octet-stream", &good);
        let run = |chunks: Vec<&'static [u8]>| {
            let descriptor = descriptor.clone();
            async move {
                let inner = futures_util::stream::iter(
                    chunks
                        .into_iter()
                        .map(|c| Ok::<_, reqwest::Error>(Bytes::from_static(c))),
                );
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                let mut s =
                    verified_stream(inner, &descriptor, "blob".into(), "r".into(), deadline);
                let mut items = Vec::new();
                while let Some(item) = s.next().await {
                    items.push(item);
                }
                items
            }
        };
        let ok = run(vec![b"hello ", b"world"]).await;
        assert!(ok.iter().all(Result::is_ok) && ok.len() == 2);
        let flipped = run(vec![b"hello ", b"worle"]).await;
        assert!(matches!(
            flipped.last(),
            Some(Err(Error::DigestMismatch { .. }))
        ));
        let short = run(vec![b"hello "]).await;
        assert!(matches!(
            short.last(),
            Some(Err(Error::SizeMismatch { actual: 6, .. }))
        ));
        let long = run(vec![b"hello ", b"world", b"!", b"more"]).await;
        assert_eq!(long.len(), 3, "stops at the first byte too many");
        assert!(matches!(
            long.last(),
            Some(Err(Error::SizeMismatch { actual: 12, .. }))
        ));
    }

    #[tokio::test]
    async fn answer_bodies_are_not_repeated_when_registry_messages_are_off() {
        for (status, body) in [
            (
                "500 Internal Server Error",
                &b"ami-id: secret-metadata-value"[..],
            ),
            (
                "403 Forbidden",
                &b"{\"errors\":[{\"code\":\"secret-metadata-value\"}]}"[..],
            ),
            (
                "418 I'm a teapot",
                &b"<html>secret-metadata-value</html>"[..],
            ),
        ] {
            let (host, _) = scripted_server(vec![answer(status, &[], body, true)]);
            let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
            let quiet = RegistryClient::new(RegistryOptions {
                registry_messages: false,
                ..quick_client(0, 4096).options().clone()
            })
            .unwrap();
            let err = quiet.get_manifest(&reference).await.unwrap_err();
            let text = err.to_string();
            assert!(text.contains(&format!("HTTP {status}")), "{text}");
            assert!(!text.contains("secret-metadata-value"), "{text}");
            // The CLI's client shows the text to the user who chose the registry.
            let err = quick_client(0, 4096)
                .get_manifest(&reference)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("secret-metadata-value"), "{err}");
        }
    }

    /// A listener that counts the connections it accepts and answers none.
    fn counting_listener() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(stream);
            }
        });
        (port, count)
    }

    #[tokio::test]
    async fn token_realms_only_on_the_registry_host_or_listed_hosts() {
        let (realm_port, realm_hits) = counting_listener();
        let challenge = answer(
            "401 Unauthorized",
            &[(
                "WWW-Authenticate",
                format!(r#"Bearer realm="http://localhost:{realm_port}/token",service="x""#),
            )],
            b"",
            true,
        );
        let (host, _) = scripted_server(vec![challenge]);
        let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
        let restricted = RegistryClient::new(RegistryOptions {
            use_auth_files: false,
            retries: 0,
            token_realm_hosts: Some(Vec::new()),
            ..RegistryOptions::default()
        })
        .unwrap();
        let err = restricted.get_manifest(&reference).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("neither the registry's host nor a configured token realm"),
            "{err}"
        );
        assert_eq!(realm_hits.load(std::sync::atomic::Ordering::SeqCst), 0);
        // Listed, the realm is asked (the control: this listener does count requests).
        let listed = RegistryClient::new(RegistryOptions {
            use_auth_files: false,
            retries: 0,
            token_realm_hosts: Some(vec![format!("localhost:{realm_port}")]),
            ..RegistryOptions::default()
        })
        .unwrap();
        let err = listed.get_manifest(&reference).await.unwrap_err();
        assert!(err.to_string().contains("token service"), "{err}");
        assert_eq!(realm_hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn internal_destinations_only_when_listed() {
        let (port, hits) = counting_listener();
        let restricted = |listed: Vec<String>| {
            RegistryClient::new(RegistryOptions {
                use_auth_files: false,
                retries: 0,
                loopback_http: false,
                internal_hosts: Some(listed),
                ..RegistryOptions::default()
            })
            .unwrap()
        };
        for image in [
            format!("127.0.0.1:{port}/a:t"),
            format!("localhost:{port}/a:t"),
            format!("[::ffff:127.0.0.1]:{port}/a:t"),
        ] {
            let reference: Reference = image.parse().unwrap();
            let err = restricted(vec!["127.0.0.1:1".into()])
                .get_manifest(&reference)
                .await
                .unwrap_err();
            assert!(
                err.to_string().contains("not a configured registry"),
                "{image}: {err}"
            );
        }
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
        // Listed, it is reached (over https, as loopback plain HTTP is off).
        let reference: Reference = format!("127.0.0.1:{port}/a:t").parse().unwrap();
        let _ = restricted(vec![format!("127.0.0.1:{port}")])
            .get_manifest(&reference)
            .await;
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
