//! Transport: the HTTP client's requests, authentication, retries with back-off, bounded reads
//! and the verifying, deadline-bounded blob body stream.

use std::pin::Pin;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use crate::bounded::{limit_exceeded, BoundedBytes};
use crate::reference::DOCKER_HUB;
use crate::{Descriptor, Error, Reference};

use super::auth::{self, Challenge};
use super::credentials;
use super::network::{destination_refused, host_part, http_allowed, realm_allowed, scheme_for};
use super::{
    ByteStream, Credentials, RegistryClient, BACKOFF_BASE, DEFAULT_TOKEN_SECONDS,
    MAX_MESSAGE_CHARS, MAX_SMALL_BODY_BYTES, MAX_TOKEN_SECONDS, MIN_BYTES_PER_SECOND,
};

/// What a request needs to be allowed to do in its repository.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Pull,
    Push,
}

/// One request to a registry, rebuilt on every retry or after authentication.
pub(super) struct Call<'a> {
    pub(super) reference: &'a Reference,
    /// What the request is about, for errors (`manifest 127.0.0.1:5000/a:b`).
    pub(super) what: &'a str,
    pub(super) access: Access,
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) headers: HeaderMap,
    pub(super) body: Option<Bytes>,
    /// Retried on 5xx and connection errors (GET, HEAD, PUT manifest).
    pub(super) idempotent: bool,
    /// Bound the whole exchange by the request time-out; off for blob streams, which rely on the
    /// client's idle read time-out instead.
    pub(super) whole_timeout: bool,
}

/// The host that serves a registry's API (Docker Hub's differs from its name).
pub(super) fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// `host[:port]` of a URL, as registries are named.
pub(super) fn url_host(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Control characters out, length bounded: registry text is shown to users but not trusted.
pub(super) fn sanitize(text: &str) -> String {
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

/// The error codes of the distribution spec (and Docker's few extra): the only part of an error
/// answer repeated in our errors unless `registry_messages` is on. The gate turns it off: the
/// answering server may not be a registry at all, and the gate's errors reach its callers.
const OCI_ERROR_CODES: &[&str] = &[
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "MANIFEST_UNVERIFIED",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "TAG_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
    "PAGINATION_NUMBER_INVALID",
    "RANGE_INVALID",
    "UNKNOWN",
];

/// The spec error codes of an error answer (`{"errors":[{"code": …}]}`), comma-separated; empty
/// when it holds none. Everything else in the body is dropped.
pub(super) fn registry_codes(body: &[u8]) -> String {
    let Ok(errors) = serde_json::from_slice::<OciErrors>(body) else {
        return String::new();
    };
    let mut codes: Vec<&str> = Vec::new();
    for error in &errors.errors {
        if let Some(code) = OCI_ERROR_CODES.iter().find(|c| **c == error.code) {
            if !codes.contains(code) {
                codes.push(code);
            }
        }
    }
    codes.join(", ")
}

#[derive(serde::Deserialize)]
struct OciErrors {
    errors: Vec<OciError>,
}

#[derive(serde::Deserialize)]
struct OciError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The registry's OCI error messages (`code: message`), or the start of its text; control
/// characters out, at most [`MAX_MESSAGE_CHARS`]. Only for the CLI, whose user chose the
/// registry and is the one reading it ([`super::RegistryOptions::registry_messages`]).
pub(super) fn registry_text(body: &[u8]) -> String {
    if let Ok(errors) = serde_json::from_slice::<OciErrors>(body) {
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
pub(super) fn transport_message(err: &reqwest::Error) -> String {
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
pub(super) fn header_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(reqwest::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The media type of a `Content-Type` header, without parameters.
pub(super) fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(reqwest::header::CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next()?.trim();
    (!media.is_empty()).then(|| media.to_string())
}

/// The `rel="next"` target of a `Link` header.
pub(super) fn next_link(headers: &HeaderMap) -> Option<String> {
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

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP date (RFC 9110 10.2.3),
/// counted from `now`; a date in the past is no wait.
pub(super) fn retry_after(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A delay of `BACKOFF_BASE * 2^(attempt-1)` plus up to as much again of jitter.
pub(super) fn backoff(attempt: u32) -> Duration {
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
    pub(super) fn transport_error(call: &Call<'_>, err: &reqwest::Error) -> Error {
        Error::Registry {
            registry: call.reference.registry().to_string(),
            message: format!("{}: {}", call.what, transport_message(err)),
        }
    }

    /// Turn an unexpected answer into an error naming `what`, with the registry's message.
    pub(super) async fn status_error(&self, call: &Call<'_>, response: reqwest::Response) -> Error {
        let status = response.status();
        let mut body = Vec::new();
        let mut response = response;
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > 64 * 1024 {
                break;
            }
        }
        let message = if self.options.registry_messages {
            let text = registry_text(&body);
            if text.is_empty() {
                format!("{}: HTTP {status}", call.what)
            } else {
                format!("{}: HTTP {status}: {text}", call.what)
            }
        } else {
            // The status and the spec's error codes only: never the answer's text.
            let codes = registry_codes(&body);
            if codes.is_empty() {
                format!("{}: HTTP {status}", call.what)
            } else {
                format!("{}: HTTP {status} ({codes})", call.what)
            }
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

    pub(super) fn scope(call: &Call<'_>) -> String {
        match call.access {
            Access::Pull => format!("repository:{}:pull", call.reference.repository()),
            Access::Push => format!("repository:{}:pull,push", call.reference.repository()),
        }
    }

    /// The credentials for `reference`'s repository (looked up once per few minutes: a
    /// credential helper is a process run).
    pub(super) async fn credentials(
        &self,
        reference: &Reference,
    ) -> Result<Option<Credentials>, Error> {
        let (registry, repository) = (reference.registry(), reference.repository());
        if let Some(cached) = self.auth.credentials(registry, repository) {
            return Ok(cached);
        }
        let sources = credentials::Sources {
            explicit: &self.options.credentials,
            helpers: &self.options.credential_helpers,
            files: &self.auth_files,
            timeout: self.options.timeout,
        };
        let found = credentials::lookup(&sources, registry, repository).await?;
        self.auth
            .set_credentials(registry, repository, found.clone());
        Ok(found)
    }

    pub(super) fn basic_header(creds: &Credentials) -> Result<HeaderValue, Error> {
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
    pub(super) async fn authorization(
        &self,
        call: &Call<'_>,
        challenge: &Challenge,
    ) -> Result<Option<HeaderValue>, Error> {
        let registry = call.reference.registry();
        match challenge {
            Challenge::Basic => match self.credentials(call.reference).await? {
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
    pub(super) async fn fetch_token(
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
        // A realm on the registry's own host is as reachable as the registry, which just
        // answered; any other host must pass the internal-address rule itself.
        let same_host =
            host_part(&url_host(&url)).eq_ignore_ascii_case(host_part(api_host(&registry)));
        let registry_plain = scheme_for(&registry, &self.options) == "http";
        if url.scheme() != "https"
            && !(url.scheme() == "http"
                && (http_allowed(&url_host(&url), &self.options) || (same_host && registry_plain)))
        {
            // Credentials go to the realm: never over plain HTTP to a host we would not speak
            // plain HTTP to ourselves (a plain-HTTP registry's own host is no downgrade).
            return Err(fail(format!("realm {} is not https", sanitize(realm))));
        }
        if !realm_allowed(&url_host(&url), &registry, &self.options) {
            // The registry names where we go next: without this, any registry (or anything
            // answering like one) could send the client to an arbitrary host.
            return Err(fail(format!(
                "realm host {} is neither the registry's host nor a configured token realm",
                sanitize(&url_host(&url))
            )));
        }
        if !same_host {
            if let Some(why) = destination_refused(&url, &self.options) {
                return Err(fail(why));
            }
        }
        let mut scopes = vec![scope];
        if let Some(extra) = challenge_scope.filter(|s| *s != scope) {
            scopes.push(extra);
        }
        let creds = self.credentials(call.reference).await?;
        if creds.is_some() {
            self.refuse_credentials_via_proxy(&registry, call.what, &url)?;
        }
        let mut response = None;
        if let Some(creds) = creds.as_ref().filter(|c| c.is_identity_token()) {
            // An identity token is an OAuth2 refresh token: exchanged by POST (distribution
            // token spec, "OAuth2 Token Authentication"); only a service without that endpoint
            // (404, 405) gets the GET flow instead.
            let mut form = vec![
                ("grant_type", "refresh_token".to_string()),
                ("refresh_token", creds.password.clone()),
                ("client_id", "signet".to_string()),
                ("scope", scopes.join(" ")),
            ];
            if let Some(service) = service {
                form.push(("service", service.to_string()));
            }
            let post = self
                .token_request(call, Method::POST, url.clone(), &registry, |r| {
                    r.form(&form)
                })
                .await?;
            if post.status() != StatusCode::NOT_FOUND
                && post.status() != StatusCode::METHOD_NOT_ALLOWED
            {
                response = Some(post);
            }
        }
        let mut response = match response {
            Some(response) => response,
            None => {
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    for scope in &scopes {
                        query.append_pair("scope", scope);
                    }
                }
                let basic = match &creds {
                    Some(creds) => Some(Self::basic_header(creds)?),
                    None => None,
                };
                self.token_request(call, Method::GET, url, &registry, |r| match &basic {
                    Some(value) => r.header(reqwest::header::AUTHORIZATION, value.clone()),
                    None => r,
                })
                .await?
            }
        };
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

    /// Credentials are never sent where a proxy could read them: a plain-HTTP destination
    /// reached through a proxy (https goes through a `CONNECT` tunnel the proxy cannot read).
    fn refuse_credentials_via_proxy(
        &self,
        registry: &str,
        what: &str,
        url: &Url,
    ) -> Result<(), Error> {
        if url.scheme() != "http" {
            return Ok(());
        }
        match self.proxy.proxy_for(url) {
            None => Ok(()),
            Some(proxy) => Err(Error::Unauthorized {
                registry: registry.to_string(),
                message: format!(
                    "{what}: credentials are not sent over plain HTTP through proxy {}; \
                     list {} in NO_PROXY or reach the registry over https",
                    super::proxy::ProxyRules::shown(proxy),
                    url_host(url)
                ),
            }),
        }
    }

    /// One request to a token service, waiting out `429` answers as [`Self::send`] does.
    async fn token_request(
        &self,
        call: &Call<'_>,
        method: Method,
        url: Url,
        registry: &str,
        decorate: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let attempts = self.options.retries.saturating_add(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = self
                .http
                .request(method.clone(), url.clone())
                .timeout(self.options.timeout)
                .header(reqwest::header::ACCEPT, "application/json");
            let response = decorate(request)
                .send()
                .await
                .map_err(|e| Error::Registry {
                    registry: registry.to_string(),
                    message: format!("{}: token service: {}", call.what, transport_message(&e)),
                })?;
            if response.status() != StatusCode::TOO_MANY_REQUESTS {
                return Ok(response);
            }
            let what = format!("{}: token service", call.what);
            let wait =
                self.rate_limit_wait(registry, &what, response.headers(), attempt, attempts)?;
            tokio::time::sleep(wait).await;
        }
    }

    /// How long to wait before retrying a `429` answer (its `Retry-After`, else the back-off),
    /// or the error that ends the request: the wait asked for is longer than the client's
    /// time-out, or the retries are used up.
    pub(super) fn rate_limit_wait(
        &self,
        registry: &str,
        what: &str,
        headers: &HeaderMap,
        attempt: u32,
        attempts: u32,
    ) -> Result<Duration, Error> {
        let cap = self.options.timeout;
        let asked = retry_after(headers, std::time::SystemTime::now());
        let error = |why: String| Error::Registry {
            registry: registry.to_string(),
            message: format!("{what}: rate limited (HTTP 429 Too Many Requests): {why}"),
        };
        if let Some(asked) = asked.filter(|a| *a > cap) {
            return Err(error(format!(
                "the registry asks to wait {} s, longer than the {} s limit (--timeout)",
                asked.as_secs(),
                cap.as_secs()
            )));
        }
        if attempt >= attempts {
            return Err(error(format!(
                "still limited after {} retries",
                attempts.saturating_sub(1)
            )));
        }
        tracing::debug!(what, attempt, ?asked, "rate limited; waiting");
        Ok(asked.unwrap_or_else(|| backoff(attempt)))
    }

    /// Send `call` once, authenticating up front when the registry's challenge is known and
    /// answering one fresh 401 challenge. `Ok(Err(_))` is a transport failure (retryable).
    pub(super) async fn send_once(
        &self,
        call: &Call<'_>,
    ) -> Result<Result<reqwest::Response, reqwest::Error>, Error> {
        let registry = call.reference.registry();
        if let Some(why) = destination_refused(&call.url, &self.options) {
            return Err(Error::Registry {
                registry: registry.to_string(),
                message: format!("{}: {why}", call.what),
            });
        }
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
                self.refuse_credentials_via_proxy(registry, call.what, &call.url)?;
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
    pub(super) async fn send(&self, call: &Call<'_>) -> Result<reqwest::Response, Error> {
        let attempts = if call.idempotent {
            self.options.retries.saturating_add(1)
        } else {
            1
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.send_once(call).await?;
            if let Ok(response) = &outcome {
                if response.status() == StatusCode::TOO_MANY_REQUESTS {
                    // Not processed: safe to repeat whatever the method.
                    let attempts = self.options.retries.saturating_add(1);
                    let wait = self.rate_limit_wait(
                        call.reference.registry(),
                        call.what,
                        response.headers(),
                        attempt,
                        attempts,
                    )?;
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
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

    pub(super) fn call<'a>(
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
}

/// Read a whole body of at most `limit` bytes, checking the stated length first and then counting
/// (the header may lie).
pub(super) async fn read_bounded(
    response: &mut reqwest::Response,
    limit: u64,
    call: &Call<'_>,
) -> Result<Vec<u8>, Error> {
    if header_length(response.headers()).is_some_and(|n| n > limit) {
        return Err(limit_exceeded(call.what.to_string(), limit));
    }
    let mut out = BoundedBytes::new(limit);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => out.extend(&chunk, || call.what.to_string())?,
            Ok(None) => return Ok(out.into_inner()),
            Err(e) => return Err(RegistryClient::transport_error(call, &e)),
        }
    }
}

/// How long a transfer of `size` bytes may take: the request time-out plus the size at
/// [`MIN_BYTES_PER_SECOND`].
pub(super) fn transfer_budget(timeout: Duration, size: u64) -> Duration {
    timeout.saturating_add(Duration::from_secs(size / MIN_BYTES_PER_SECOND))
}

/// Wrap a body stream so it yields an error instead of its end when the bytes do not hash to
/// `descriptor.digest` or do not number `descriptor.size` ([`crate::stream::verified_stream`]), as
/// soon as there are too many, and when they have not all arrived by `deadline`.
pub(super) fn verified_stream(
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
pub(super) fn body_stream(
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
