//! A bounded, digest-checking client for the OCI distribution API (pull and push), with docker and
//! containers auth files, basic and bearer-token auth, and plain HTTP only for loopback hosts or
//! hosts named explicitly.

mod auth;
mod credentials;

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use crate::manifest::ACCEPT_MANIFESTS;
use crate::reference::{is_loopback_host, DOCKER_HUB};
use crate::{Descriptor, Digest, DigestHasher, Error, Manifest, Reference};

use auth::{AuthCache, Challenge};

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

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Hosts (`host[:port]`) to reach over plain HTTP even though they are not loopback.
    pub allow_http_registries: Vec<String>,
    /// Extra PEM CA certificates to trust.
    pub ca_files: Vec<PathBuf>,
    /// Credentials given explicitly (flags, stdin), by registry host; these win over auth files.
    pub credentials: Vec<(String, Credentials)>,
    /// Whether to read `~/.docker/config.json`, `$REGISTRY_AUTH_FILE` and
    /// `$XDG_RUNTIME_DIR/containers/auth.json`.
    pub use_auth_files: bool,
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
            ca_files: Vec::new(),
            credentials: Vec::new(),
            use_auth_files: true,
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

/// What a request needs to be allowed to do in its repository.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Pull,
    Push,
}

/// One request to a registry, rebuilt on every retry or after authentication.
struct Call<'a> {
    reference: &'a Reference,
    /// What the request is about, for errors (`manifest 127.0.0.1:5000/a:b`).
    what: &'a str,
    access: Access,
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Bytes>,
    /// Retried on 5xx and connection errors (GET, HEAD, PUT manifest).
    idempotent: bool,
    /// Bound the whole exchange by the request time-out; off for blob streams, which rely on the
    /// client's idle read time-out instead.
    whole_timeout: bool,
}

/// A client for any number of registries; cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct RegistryClient {
    options: Arc<RegistryOptions>,
    http: reqwest::Client,
    auth: Arc<AuthCache>,
    auth_files: Arc<Vec<PathBuf>>,
    chunk_bytes: usize,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The host that serves a registry's API (Docker Hub's differs from its name).
fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// Whether `host[:port]` may be spoken to over plain HTTP.
fn http_allowed(host: &str, allow_http: &[String]) -> bool {
    is_loopback_host(host) || allow_http.iter().any(|h| h == host)
}

/// `https`, or `http` for loopback hosts and hosts explicitly allowed; never a fallback.
fn scheme_for(registry: &str, allow_http: &[String]) -> &'static str {
    if http_allowed(registry, allow_http) {
        "http"
    } else {
        "https"
    }
}

/// `host[:port]` of a URL, as registries are named.
fn url_host(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Control characters out, length bounded: registry text is shown to users but not trusted.
fn sanitize(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect();
    if text.chars().count() > MAX_MESSAGE_CHARS {
        out.push('…');
    }
    out
}

/// The registry's OCI error (`{"errors":[{"code","message"}]}`) or the start of its text.
fn registry_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<OciError>,
    }
    #[derive(serde::Deserialize)]
    struct OciError {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(errors) = serde_json::from_slice::<Errors>(body) {
        let parts: Vec<String> = errors
            .errors
            .iter()
            .take(5)
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect();
        return sanitize(&parts.join("; "));
    }
    sanitize(String::from_utf8_lossy(body).trim())
}

/// A transport error with its causes (reqwest's top-level message alone says little).
fn transport_message(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "timed out".to_string()
    } else {
        err.to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    sanitize(&text)
}

/// The `Content-Length` header (reqwest's `content_length` is 0 for HEAD answers).
fn header_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(reqwest::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The media type of a `Content-Type` header, without parameters.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(reqwest::header::CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next()?.trim();
    (!media.is_empty()).then(|| media.to_string())
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    value.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_string())
    })
}

/// A delay of `BACKOFF_BASE * 2^(attempt-1)` plus up to as much again of jitter.
fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_BASE.saturating_mul(1 << attempt.saturating_sub(1).min(6));
    // Jitter only spreads retries of concurrent clients; clock nanoseconds suffice.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter_ms = u64::from(nanos) % (base.as_millis() as u64).max(1);
    base + Duration::from_millis(jitter_ms)
}

impl RegistryClient {
    /// A client with `options`. Extra CA files are read now; auth-file locations are taken from
    /// the environment now, and the files are read when a registry asks for credentials.
    pub fn new(options: RegistryOptions) -> Result<RegistryClient, Error> {
        let allow_http = options.allow_http_registries.clone();
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else if attempt.url().scheme() != "https"
                && !http_allowed(&url_host(attempt.url()), &allow_http)
            {
                // A redirect must not downgrade us to plain HTTP where we would not go ourselves.
                attempt.error("redirect to plain HTTP refused")
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
            chunk_bytes: DEFAULT_UPLOAD_CHUNK_BYTES,
        })
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
    fn url(&self, reference: &Reference, tail: &str) -> Result<Url, Error> {
        let registry = reference.registry();
        let text = format!(
            "{}://{}/v2/{}/{}",
            scheme_for(registry, &self.options.allow_http_registries),
            api_host(registry),
            reference.repository(),
            tail
        );
        Url::parse(&text).map_err(|e| Error::InvalidReference {
            input: reference.to_string(),
            reason: format!("cannot form a registry URL: {e}"),
        })
    }

    fn transport_error(call: &Call<'_>, err: &reqwest::Error) -> Error {
        Error::Registry {
            registry: call.reference.registry().to_string(),
            message: format!("{}: {}", call.what, transport_message(err)),
        }
    }

    /// Turn an unexpected answer into an error naming `what`, with the registry's message.
    async fn status_error(call: &Call<'_>, response: reqwest::Response) -> Error {
        let status = response.status();
        let mut body = Vec::new();
        let mut response = response;
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > 64 * 1024 {
                break;
            }
        }
        let detail = registry_message(&body);
        let message = if detail.is_empty() {
            format!("{}: HTTP {status}", call.what)
        } else {
            format!("{}: HTTP {status}: {detail}", call.what)
        };
        let registry = call.reference.registry().to_string();
        match status {
            StatusCode::NOT_FOUND => Error::NotFound {
                what: call.what.to_string(),
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Error::Unauthorized { registry, message }
            }
            _ => Error::Registry { registry, message },
        }
    }

    fn scope(call: &Call<'_>) -> String {
        match call.access {
            Access::Pull => format!("repository:{}:pull", call.reference.repository()),
            Access::Push => format!("repository:{}:pull,push", call.reference.repository()),
        }
    }

    fn credentials(&self, reference: &Reference) -> Result<Option<Credentials>, Error> {
        credentials::lookup(
            &self.options.credentials,
            &self.auth_files,
            reference.registry(),
            reference.repository(),
        )
    }

    fn basic_header(creds: &Credentials) -> Result<HeaderValue, Error> {
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.username, creds.password));
        let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| {
            Error::Unauthorized {
                registry: String::new(),
                message: "credentials cannot be sent in an HTTP header".into(),
            }
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// The `Authorization` header `challenge` calls for, fetching a token if needed.
    async fn authorization(
        &self,
        call: &Call<'_>,
        challenge: &Challenge,
    ) -> Result<Option<HeaderValue>, Error> {
        let registry = call.reference.registry();
        match challenge {
            Challenge::Basic => match self.credentials(call.reference)? {
                Some(creds) => Self::basic_header(&creds).map(Some),
                None => Ok(None),
            },
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let ours = Self::scope(call);
                // A push token also covers pulling from the same repository.
                let cached = self.auth.token(registry, &ours).or_else(|| {
                    (call.access == Access::Pull).then(|| {
                        let push = format!("repository:{}:pull,push", call.reference.repository());
                        self.auth.token(registry, &push)
                    })?
                });
                let token = match cached {
                    Some(token) => token,
                    None => {
                        let (token, lifetime) = self
                            .fetch_token(call, realm, service.as_deref(), &ours, scope.as_deref())
                            .await?;
                        self.auth
                            .set_token(registry, &ours, token.clone(), lifetime);
                        token
                    }
                };
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        Error::Unauthorized {
                            registry: registry.to_string(),
                            message: format!("{}: token service sent an unusable token", call.what),
                        }
                    })?;
                value.set_sensitive(true);
                Ok(Some(value))
            }
        }
    }

    /// GET a token from `realm` for `scope` (and the challenge's own scope if it differs), with
    /// basic credentials if we have some (distribution token spec, "Requesting a Token").
    async fn fetch_token(
        &self,
        call: &Call<'_>,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        challenge_scope: Option<&str>,
    ) -> Result<(String, Duration), Error> {
        let registry = call.reference.registry().to_string();
        let fail = |message: String| Error::Registry {
            registry: registry.clone(),
            message: format!("{}: token service: {message}", call.what),
        };
        let mut url = Url::parse(realm).map_err(|_| fail("realm is not a URL".into()))?;
        if url.scheme() != "https"
            && !(url.scheme() == "http"
                && http_allowed(&url_host(&url), &self.options.allow_http_registries))
        {
            // Credentials go to the realm: never over plain HTTP to a host we would not speak
            // plain HTTP to ourselves.
            return Err(fail(format!("realm {} is not https", sanitize(realm))));
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
            if let Some(extra) = challenge_scope.filter(|s| *s != scope) {
                query.append_pair("scope", extra);
            }
        }
        let mut request = self
            .http
            .get(url)
            .timeout(self.options.timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(creds) = self.credentials(call.reference)? {
            request = request.header(reqwest::header::AUTHORIZATION, Self::basic_header(&creds)?);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| fail(transport_message(&e)))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::Unauthorized {
                registry,
                message: format!("{}: token service refused (HTTP {status})", call.what),
            });
        }
        if !status.is_success() {
            return Err(fail(format!("HTTP {status}")));
        }
        let body = read_bounded(&mut response, MAX_SMALL_BODY_BYTES, call)
            .await
            .map_err(|e| fail(e.to_string()))?;
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|_| fail("answer is not token JSON".into()))?;
        let token = answer
            .token
            .filter(|t| !t.is_empty())
            .or(answer.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| fail("answer holds no token".into()))?;
        let seconds = answer
            .expires_in
            .unwrap_or(DEFAULT_TOKEN_SECONDS)
            .clamp(1, MAX_TOKEN_SECONDS);
        Ok((token, Duration::from_secs(seconds)))
    }

    /// Send `call` once, authenticating up front when the registry's challenge is known and
    /// answering one fresh 401 challenge. `Ok(Err(_))` is a transport failure (retryable).
    async fn send_once(
        &self,
        call: &Call<'_>,
    ) -> Result<Result<reqwest::Response, reqwest::Error>, Error> {
        let registry = call.reference.registry();
        // Only our registry gets our credentials (upload locations may point elsewhere).
        let same_host = url_host(&call.url) == api_host(registry);
        let mut auth = match (same_host, self.auth.challenge(registry)) {
            (true, Some(challenge)) => self.authorization(call, &challenge).await?,
            _ => None,
        };
        let mut answered_challenge = false;
        loop {
            let mut request = self
                .http
                .request(call.method.clone(), call.url.clone())
                .headers(call.headers.clone());
            if call.whole_timeout {
                // Upload bodies get extra time for their size (at a floor of 64 KiB/s): a
                // fixed bound would fail large chunks on slow links.
                let body_len = call.body.as_ref().map_or(0, |b| b.len() as u64);
                let extra = Duration::from_secs(body_len / MIN_BYTES_PER_SECOND);
                request = request.timeout(self.options.timeout + extra);
            }
            if let Some(value) = &auth {
                request = request.header(reqwest::header::AUTHORIZATION, value.clone());
            }
            if let Some(body) = &call.body {
                request = request.body(body.clone());
            }
            tracing::debug!(method = %call.method, url = %call.url, "registry request");
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => return Ok(Err(e)),
            };
            if response.status() != StatusCode::UNAUTHORIZED || answered_challenge || !same_host {
                return Ok(Ok(response));
            }
            let Some(challenge) = response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(auth::parse_challenge)
            else {
                return Ok(Ok(response));
            };
            answered_challenge = true;
            // A token we sent was refused: it may have expired early or lack the scope.
            self.auth.drop_token(registry, &Self::scope(call));
            self.auth.set_challenge(registry, challenge.clone());
            let fresh = self.authorization(call, &challenge).await?;
            if fresh.is_none() {
                return Ok(Ok(response));
            }
            auth = fresh;
        }
    }

    /// Send `call`, retrying idempotent requests on 5xx answers and transport failures with
    /// exponential back-off and jitter. Never retries 4xx.
    async fn send(&self, call: &Call<'_>) -> Result<reqwest::Response, Error> {
        let attempts = if call.idempotent {
            self.options.retries.saturating_add(1)
        } else {
            1
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.send_once(call).await?;
            let retry = match &outcome {
                Ok(response) => response.status().is_server_error(),
                Err(_) => true,
            };
            if retry && attempt < attempts {
                tracing::debug!(what = call.what, attempt, "retrying registry request");
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
            return outcome.map_err(|e| Self::transport_error(call, &e));
        }
    }

    fn call<'a>(
        reference: &'a Reference,
        what: &'a str,
        access: Access,
        method: Method,
        url: Url,
    ) -> Call<'a> {
        let idempotent = method == Method::GET || method == Method::HEAD;
        Call {
            reference,
            what,
            access,
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            idempotent,
            whole_timeout: true,
        }
    }

    /// The tag or digest a manifest URL ends in.
    fn manifest_tail(reference: &Reference) -> String {
        match (reference.digest(), reference.tag()) {
            (Some(digest), _) => format!("manifests/{digest}"),
            (None, Some(tag)) => format!("manifests/{tag}"),
            (None, None) => "manifests/latest".to_string(),
        }
    }

    /// GET the manifest `reference` names (by digest if it has one, else by tag). The bytes are
    /// size-bounded and, when the reference has a digest, checked against it.
    pub async fn get_manifest(&self, reference: &Reference) -> Result<FetchedManifest, Error> {
        let what = format!("manifest {reference}");
        let url = self.url(reference, &Self::manifest_tail(reference))?;
        let mut call = Self::call(reference, &what, Access::Pull, Method::GET, url);
        call.headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static(ACCEPT_MANIFESTS),
        );
        let mut response = self.send(&call).await?;
        if response.status() != StatusCode::OK {
            return Err(Self::status_error(&call, response).await);
        }
        let declared_type = content_type(response.headers());
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .map(|v| v.to_str().map(str::trim).map(str::to_string));
        let bytes = read_bounded(&mut response, self.options.max_manifest_bytes, &call).await?;
        let digest = match reference.digest() {
            Some(expected) => {
                expected.verify(&what, &bytes)?;
                expected.clone()
            }
            None => {
                let digest = Digest::sha256(&bytes);
                // We never rely on Docker-Content-Digest, but a registry that states a digest
                // its own bytes do not have is not to be believed about anything else either.
                if let Some(header) = header_digest {
                    let claimed: Digest =
                        header.ok().and_then(|h| h.parse().ok()).ok_or_else(|| {
                            Error::Registry {
                                registry: reference.registry().to_string(),
                                message: format!("{what}: malformed Docker-Content-Digest header"),
                            }
                        })?;
                    claimed.verify(&format!("{what} (Docker-Content-Digest)"), &bytes)?;
                }
                digest
            }
        };
        let manifest = Manifest::parse(&bytes, declared_type.as_deref(), &what)?;
        let media_type = match declared_type {
            Some(t) if is_manifest_type(&t) => t,
            _ => manifest.media_type().to_string(),
        };
        Ok(FetchedManifest {
            bytes,
            digest,
            media_type,
            manifest,
        })
    }

    /// HEAD the manifest `reference` names: its descriptor, or `None` if it does not exist.
    ///
    /// A HEAD answer has no body to hash, so the descriptor is only as good as the registry's
    /// `Docker-Content-Digest` header; when the registry sends none, this falls back to a GET.
    /// When `reference` has a digest, a header disagreeing with it is an error.
    pub async fn head_manifest(&self, reference: &Reference) -> Result<Option<Descriptor>, Error> {
        let what = format!("manifest {reference}");
        let url = self.url(reference, &Self::manifest_tail(reference))?;
        let mut call = Self::call(reference, &what, Access::Pull, Method::HEAD, url);
        call.headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static(ACCEPT_MANIFESTS),
        );
        let response = self.send(&call).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(Self::status_error(&call, response).await),
        }
        let headers = response.headers();
        let claimed = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<Digest>().ok());
        let (Some(claimed), Some(size), Some(media_type)) = (
            claimed,
            header_length(headers),
            content_type(headers).filter(|t| is_manifest_type(t)),
        ) else {
            let fetched = self.get_manifest(reference).await?;
            let mut descriptor = Descriptor::of(&fetched.media_type, &fetched.bytes);
            descriptor.digest = fetched.digest;
            return Ok(Some(descriptor));
        };
        if let Some(expected) = reference.digest() {
            if &claimed != expected {
                return Err(Error::DigestMismatch {
                    what: format!("{what} (Docker-Content-Digest)"),
                    expected: expected.clone(),
                    actual: claimed,
                });
            }
        }
        if size > self.options.max_manifest_bytes {
            return Err(Error::LimitExceeded {
                what,
                limit: format!("{} bytes", self.options.max_manifest_bytes),
            });
        }
        let mut descriptor = Descriptor::of(&media_type, &[]);
        descriptor.digest = claimed;
        descriptor.size = size;
        Ok(Some(descriptor))
    }

    /// PUT `bytes` as a manifest of `media_type` in `reference`'s repository under `reference`'s
    /// tag (or digest). Returns the digest of `bytes`.
    pub async fn put_manifest(
        &self,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, Error> {
        let what = format!("manifest {reference}");
        let digest = match reference.digest() {
            Some(expected) => {
                expected.verify(&what, bytes)?;
                expected.clone()
            }
            None => Digest::sha256(bytes),
        };
        // With both, the digest has been checked above and the tag is what the caller wants set.
        let tail = match reference.tag() {
            Some(tag) => format!("manifests/{tag}"),
            None => format!("manifests/{digest}"),
        };
        let url = self.url(reference, &tail)?;
        let mut call = Self::call(reference, &what, Access::Push, Method::PUT, url);
        call.idempotent = true;
        call.headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| Error::InvalidManifest {
                what: what.clone(),
                reason: "media type is not a valid header value".into(),
            })?,
        );
        call.body = Some(Bytes::copy_from_slice(bytes));
        let response = self.send(&call).await?;
        if !response.status().is_success() {
            return Err(Self::status_error(&call, response).await);
        }
        if let Some(claimed) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<Digest>().ok())
        {
            if claimed.algorithm() == digest.algorithm() && claimed != digest {
                return Err(Error::DigestMismatch {
                    what: format!("{what} (stored by the registry as)"),
                    expected: digest,
                    actual: claimed,
                });
            }
        }
        Ok(digest)
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
            return Err(Self::status_error(&call, response).await);
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
        let mut stream = self.get_blob(reference, descriptor).await?;
        // The stream already stops at descriptor.size, which is within max_bytes.
        let mut out = Vec::with_capacity(usize::try_from(descriptor.size).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// Whether the blob `digest` exists in `reference`'s repository.
    pub async fn has_blob(&self, reference: &Reference, digest: &Digest) -> Result<bool, Error> {
        self.blob_exists(reference, digest, Access::Pull).await
    }

    async fn blob_exists(
        &self,
        reference: &Reference,
        digest: &Digest,
        access: Access,
    ) -> Result<bool, Error> {
        let what = format!("blob {digest} in {reference}");
        let url = self.url(reference, &format!("blobs/{digest}"))?;
        let call = Self::call(reference, &what, access, Method::HEAD, url);
        let response = self.send(&call).await?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(Self::status_error(&call, response).await),
        }
    }

    /// Start an upload session: the URL to PATCH or PUT to.
    async fn start_upload(&self, reference: &Reference, what: &str) -> Result<Url, Error> {
        let url = self.url(reference, "blobs/uploads/")?;
        let call = Self::call(reference, what, Access::Push, Method::POST, url);
        let response = self.send(&call).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(Self::status_error(&call, response).await);
        }
        Self::location(&call, &response)
    }

    /// The `Location` of an upload answer, resolved against the request URL.
    fn location(call: &Call<'_>, response: &reqwest::Response) -> Result<Url, Error> {
        response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| call.url.join(v).ok())
            .ok_or_else(|| Error::Registry {
                registry: call.reference.registry().to_string(),
                message: format!("{}: upload answer without a usable Location", call.what),
            })
    }

    /// Finish an upload at `location` with `body` (possibly empty) as the last bytes.
    async fn finish_upload(
        &self,
        reference: &Reference,
        what: &str,
        mut location: Url,
        digest: &Digest,
        body: Bytes,
    ) -> Result<(), Error> {
        location
            .query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let mut call = Self::call(reference, what, Access::Push, Method::PUT, location);
        call.headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        call.body = Some(body);
        let response = self.send(&call).await?;
        if response.status() != StatusCode::CREATED {
            return Err(Self::status_error(&call, response).await);
        }
        Ok(())
    }

    /// Upload `bytes` as a blob to `reference`'s repository in one request (skipped if present).
    pub async fn put_blob(&self, reference: &Reference, bytes: Bytes) -> Result<Digest, Error> {
        let digest = Digest::sha256(&bytes);
        if self.blob_exists(reference, &digest, Access::Push).await? {
            return Ok(digest);
        }
        let what = format!("blob {digest} upload to {reference}");
        let location = self.start_upload(reference, &what).await?;
        self.finish_upload(reference, &what, location, &digest, bytes)
            .await?;
        Ok(digest)
    }

    /// Upload a blob of known digest and size from a stream, in chunks (skipped if present).
    ///
    /// The bytes are hashed and counted as they pass; if they do not match `descriptor` the upload
    /// is abandoned before the registry is asked to commit it.
    pub async fn put_blob_stream(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        stream: ByteStream,
    ) -> Result<(), Error> {
        if self
            .blob_exists(reference, &descriptor.digest, Access::Push)
            .await?
        {
            return Ok(());
        }
        let what = format!("blob {} upload to {reference}", descriptor.digest);
        let location = self.start_upload(reference, &what).await?;
        let result = self
            .upload_chunks(reference, descriptor, stream, &what, location.clone())
            .await;
        if result.is_err() {
            // Best effort: let the registry free the half-done session.
            let call = Self::call(reference, &what, Access::Push, Method::DELETE, location);
            let _ = self.send(&call).await;
        }
        result
    }

    async fn upload_chunks(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        mut stream: ByteStream,
        what: &str,
        mut location: Url,
    ) -> Result<(), Error> {
        let mut hasher = DigestHasher::new(descriptor.digest.algorithm());
        let mut sent: u64 = 0;
        let mut buffer = BytesMut::new();
        // Once the stream has said None it must not be polled again.
        let mut exhausted = false;
        loop {
            while !exhausted && buffer.len() < self.chunk_bytes {
                match stream.next().await {
                    Some(chunk) => {
                        let chunk = chunk?;
                        hasher.update(&chunk);
                        buffer.extend_from_slice(&chunk);
                        let total = sent + buffer.len() as u64;
                        if total > descriptor.size {
                            return Err(Error::SizeMismatch {
                                what: what.to_string(),
                                expected: descriptor.size,
                                actual: total,
                            });
                        }
                    }
                    None => exhausted = true,
                }
            }
            if buffer.is_empty() {
                break;
            }
            let take = buffer.len().min(self.chunk_bytes);
            let chunk = buffer.split_to(take).freeze();
            let start = sent;
            let end = sent + chunk.len() as u64 - 1;
            let mut call = Self::call(reference, what, Access::Push, Method::PATCH, location);
            call.headers.insert(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            call.headers.insert(
                HeaderName::from_static("content-range"),
                HeaderValue::from_str(&format!("{start}-{end}")).map_err(|_| Error::Registry {
                    registry: reference.registry().to_string(),
                    message: format!("{what}: bad content range"),
                })?,
            );
            call.body = Some(chunk.clone());
            let response = self.send(&call).await?;
            if response.status() != StatusCode::ACCEPTED {
                return Err(Self::status_error(&call, response).await);
            }
            location = Self::location(&call, &response)?;
            sent += chunk.len() as u64;
        }
        if sent != descriptor.size {
            return Err(Error::SizeMismatch {
                what: what.to_string(),
                expected: descriptor.size,
                actual: sent,
            });
        }
        let actual = hasher.finish();
        if actual != descriptor.digest {
            return Err(Error::DigestMismatch {
                what: what.to_string(),
                expected: descriptor.digest.clone(),
                actual,
            });
        }
        self.finish_upload(reference, what, location, &descriptor.digest, Bytes::new())
            .await
    }

    /// Delete the manifest `reference` names (by digest; registries refuse tags here).
    pub async fn delete_manifest(&self, reference: &Reference) -> Result<(), Error> {
        let what = format!("manifest {reference}");
        let digest = reference.digest().ok_or_else(|| {
            Error::Unsupported(format!("delete {what}: manifests are deleted by digest"))
        })?;
        let url = self.url(reference, &format!("manifests/{digest}"))?;
        let call = Self::call(reference, &what, Access::Push, Method::DELETE, url);
        let response = self.send(&call).await?;
        if !response.status().is_success() {
            return Err(Self::status_error(&call, response).await);
        }
        Ok(())
    }

    /// The tags of `reference`'s repository (following `Link` pagination, bounded).
    pub async fn list_tags(&self, reference: &Reference) -> Result<Vec<String>, Error> {
        #[derive(serde::Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let what = format!("tag list of {}", reference.name());
        let first = self.url(reference, "tags/list")?;
        let mut url = first.clone();
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let call = Self::call(reference, &what, Access::Pull, Method::GET, url);
            let mut response = self.send(&call).await?;
            if response.status() != StatusCode::OK {
                return Err(Self::status_error(&call, response).await);
            }
            let next = next_link(response.headers());
            let body = read_bounded(&mut response, MAX_SMALL_BODY_BYTES, &call).await?;
            let page: TagList = serde_json::from_slice(&body).map_err(|e| Error::Registry {
                registry: reference.registry().to_string(),
                message: format!("{what}: not a tag list: {e}"),
            })?;
            tags.extend(page.tags.unwrap_or_default());
            if tags.len() > MAX_TAGS {
                return Err(Error::LimitExceeded {
                    what,
                    limit: format!("{MAX_TAGS} tags"),
                });
            }
            let Some(next) = next else {
                return Ok(tags);
            };
            url = call.url.join(&next).map_err(|_| Error::Registry {
                registry: reference.registry().to_string(),
                message: format!("{what}: unusable Link header"),
            })?;
            if url_host(&url) != url_host(&first) || url.scheme() != first.scheme() {
                return Err(Error::Registry {
                    registry: reference.registry().to_string(),
                    message: format!("{what}: Link header points to another host"),
                });
            }
        }
        Err(Error::LimitExceeded {
            what,
            limit: format!("{MAX_TAG_PAGES} pages"),
        })
    }
}

/// Whether `media_type` is one of the four manifest types.
fn is_manifest_type(media_type: &str) -> bool {
    ACCEPT_MANIFESTS.split(", ").any(|t| t == media_type)
}

/// Read a whole body of at most `limit` bytes, checking the stated length first and then counting
/// (the header may lie).
async fn read_bounded(
    response: &mut reqwest::Response,
    limit: u64,
    call: &Call<'_>,
) -> Result<Vec<u8>, Error> {
    let too_big = || Error::LimitExceeded {
        what: call.what.to_string(),
        limit: format!("{limit} bytes"),
    };
    if header_length(response.headers()).is_some_and(|n| n > limit) {
        return Err(too_big());
    }
    let mut out = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if (out.len() + chunk.len()) as u64 > limit {
                    return Err(too_big());
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(RegistryClient::transport_error(call, &e)),
        }
    }
}

/// How long a transfer of `size` bytes may take: the request time-out plus the size at
/// [`MIN_BYTES_PER_SECOND`].
fn transfer_budget(timeout: Duration, size: u64) -> Duration {
    timeout.saturating_add(Duration::from_secs(size / MIN_BYTES_PER_SECOND))
}

/// Wrap a body stream so it yields an error instead of its end when the bytes do not hash to
/// `descriptor.digest` or do not number `descriptor.size` ([`crate::stream::verified_stream`]), as
/// soon as there are too many, and when they have not all arrived by `deadline`.
fn verified_stream(
    inner: impl Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static,
    descriptor: &Descriptor,
    what: String,
    registry: String,
    deadline: tokio::time::Instant,
) -> ByteStream {
    let body = body_stream(inner, descriptor.size, what.clone(), registry, deadline);
    crate::stream::verified_stream(body, descriptor, what)
}

/// A response body as a [`ByteStream`]: transport errors become [`Error::Registry`] saying how
/// far the transfer got, and the stream ends in an error at `deadline` however slowly bytes
/// trickle (an idle-read time-out alone never fires for a server sending one byte a second).
fn body_stream(
    inner: impl Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static,
    size: u64,
    what: String,
    registry: String,
    deadline: tokio::time::Instant,
) -> ByteStream {
    struct State<S> {
        inner: Pin<Box<S>>,
        count: u64,
        size: u64,
        what: String,
        registry: String,
        started: Instant,
        deadline: tokio::time::Instant,
        done: bool,
    }
    let state = State {
        inner: Box::pin(inner),
        count: 0,
        size,
        what,
        registry,
        started: Instant::now(),
        deadline,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        let Ok(next) = tokio::time::timeout_at(s.deadline, s.inner.next()).await else {
            s.done = true;
            let err = Error::Registry {
                registry: s.registry.clone(),
                message: format!(
                    "{}: timed out after {} of {} bytes in {:?} (slower than {} KiB/s)",
                    s.what,
                    s.count,
                    s.size,
                    s.started.elapsed(),
                    MIN_BYTES_PER_SECOND / 1024
                ),
            };
            return Some((Err(err), s));
        };
        match next {
            Some(Ok(chunk)) => {
                s.count += chunk.len() as u64;
                Some((Ok(chunk), s))
            }
            Some(Err(e)) => {
                s.done = true;
                let err = Error::Registry {
                    registry: s.registry.clone(),
                    message: format!(
                        "{}: reading failed after {} bytes ({:?}): {}",
                        s.what,
                        s.count,
                        s.started.elapsed(),
                        transport_message(&e)
                    ),
                };
                Some((Err(err), s))
            }
            None => None,
        }
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_named_hosts() {
        let allow = vec!["reg.internal:5000".to_string()];
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
    fn registry_messages_are_parsed_and_bounded() {
        assert_eq!(
            registry_message(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        let long = "x\n".repeat(1000);
        let message = registry_message(long.as_bytes());
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
            br#"{"errors":[{"code":"X","message":"no"}]}"#,
            true,
        );
        let (host, count) = scripted_server(vec![bad]);
        let reference: Reference = format!("{host}/a/b:t").parse().unwrap();
        let err = quick_client(3, 4096)
            .get_manifest(&reference)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Registry { .. }), "{err}");
        assert!(err.to_string().contains("X: no"), "{err}");
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
}
