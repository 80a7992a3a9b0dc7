//! The gate's configuration: the YAML file (`signet serve --config`, strict: unknown fields are
//! errors) or the simple form `--policy FILE --listen ADDR --upstream URL`, validated into routes
//! from proxy repository names to upstream registries.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use signet_oci::reference::{is_loopback_host, DOCKER_HUB};

use super::GateError;

/// Everything `signet serve` needs besides the policy itself.
///
/// ```yaml
/// listen: 0.0.0.0:8443
/// policy: /etc/signet/policy.yaml      # read by the CLI, not by the gate
/// upstreams:
///   - prefix: ""                        # every repository…
///     url: https://registry.example.com # …comes from here
///     credentials: { username: puller, password_file: /run/secrets/upstream-password }
/// tls: { cert: /tls/tls.crt, key: /tls/tls.key, client_ca: /tls/clients-ca.crt }
/// api: { token_file: /run/secrets/api-token }   # clients of /v1/* send `Authorization: Bearer …`
/// network:                             # what /v1/verify and admission may reach besides upstreams
///   internal_registries: [registry.corp:5000]   # at loopback, private or link-local addresses
///   plain_http_registries: []
///   token_realms: [auth.corp]          # token services besides each registry's own host
/// cache: { size: 10000, ttl_seconds: 300 }
/// timeouts: { upstream_seconds: 30, judge_seconds: 60, shutdown_seconds: 30 }
/// limits: { max_body_bytes: 4194304, parallel_images: 8, max_images: 100, max_connections: 1024,
///           max_blob_streams: 32 }
/// continuous:                          # re-judge the images the gate allowed
///   interval_seconds: 300
///   max_images: 10000
///   forget_after_seconds: 604800
///   parallel: 8
///   per_upstream_per_second: 50
///   webhook: { url: https://alerts.corp/signet, timeout_seconds: 5, retries: 5, queue: 1000 }
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The policy file; the gate does not read it (the CLI builds the [`super::Judge`] from it).
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// Where proxied repositories come from; the longest matching prefix wins.
    pub upstreams: Vec<Upstream>,
    /// Serve HTTPS with this certificate (reloaded when the files change); plain HTTP without.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The verdict cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Time limits.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Bounds on requests.
    #[serde(default)]
    pub limits: Limits,
    /// Client authentication for the verify API (`/v1/*`).
    #[serde(default)]
    pub api: ApiConfig,
    /// Which registries the gate may reach besides its upstreams, and how.
    #[serde(default)]
    pub network: NetworkConfig,
    /// PEM files of CA certificates trusted for every registry, besides the platform's trust
    /// store (which honours `SSL_CERT_FILE` and `SSL_CERT_DIR`) and the bundled web roots.
    /// `signet serve --ca-file` adds to these.
    #[serde(default)]
    pub ca_files: Vec<PathBuf>,
    /// Continuous verification: re-judging the images the gate allowed.
    #[serde(default)]
    pub continuous: ContinuousConfig,
}

/// Continuous verification: the gate remembers the images it allowed (in memory: a restart
/// forgets them) and judges them again on a schedule and on every policy reload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContinuousConfig {
    /// Seconds between two re-judgements of every remembered image (0: only on policy reload).
    pub interval_seconds: u64,
    /// Most images remembered; when full, the one seen longest ago is forgotten.
    pub max_images: usize,
    /// An image not asked about for this long is forgotten.
    pub forget_after_seconds: u64,
    /// Re-judgements under way at once.
    pub parallel: usize,
    /// Re-judgements started per second and upstream registry, at most (each is a few requests).
    pub per_upstream_per_second: u32,
    /// Where changes of verdict are sent (`POST`, JSON).
    pub webhook: Option<WebhookConfig>,
}

impl Default for ContinuousConfig {
    fn default() -> Self {
        ContinuousConfig {
            interval_seconds: 300,
            max_images: 10_000,
            forget_after_seconds: 7 * 24 * 3600,
            parallel: 8,
            per_upstream_per_second: 50,
            webhook: None,
        }
    }
}

/// A webhook that receives every change of verdict.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `https://…` (or `http://` to a loopback host).
    pub url: String,
    /// One attempt's time limit.
    #[serde(default = "default_webhook_timeout")]
    pub timeout_seconds: u64,
    /// Attempts after the first, with doubling back-off from 1 s (at most 60 s apart).
    #[serde(default = "default_webhook_retries")]
    pub retries: u32,
    /// Changes waiting to be sent, at most; more are dropped (and counted).
    #[serde(default = "default_webhook_queue")]
    pub queue: usize,
}

fn default_webhook_timeout() -> u64 {
    5
}
fn default_webhook_retries() -> u32 {
    5
}
fn default_webhook_queue() -> usize {
    1000
}

/// Client authentication for `/v1/*` (recommended whenever the gate listens beyond loopback:
/// the verify API makes the gate fetch from registries). Admission (`/validate`, `/mutate`) and
/// the proxy (`/v2/`) are not affected: admission is reached by the Kubernetes API server over
/// the gate's TLS, and the proxy serves only what the policy allows.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// A file holding the bearer token clients must send (`Authorization: Bearer <token>`;
    /// trailing newline ignored; compared in constant time). Read at start.
    pub token_file: Option<PathBuf>,
}

/// What the gate's registry client may reach besides the upstreams, which are always allowed
/// (with their scheme). The verify API and admission resolve images of any registry a policy
/// scope can allow; these lists say which of those may be inside the gate's own network.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Registries (`host` or `host:port`) that may be reached at loopback, private-range
    /// (10/8, 172.16/12, 192.168/16, fc00::/7) or link-local (169.254/16, fe80::/10) addresses.
    /// Any other registry written as, or resolving only to, such an address is refused before a
    /// connection is made (so the gate cannot be used to probe its network or a cloud metadata
    /// service).
    pub internal_registries: Vec<String>,
    /// Registries (`host:port`) spoken to over plain HTTP besides upstreams with an `http://`
    /// URL. Loopback registries get no exception.
    pub plain_http_registries: Vec<String>,
    /// Token services (`host` or `host:port`) a registry's bearer challenge may send the gate
    /// to, besides the registry's own host (any port) and `auth.docker.io` for Docker Hub.
    pub token_realms: Vec<String>,
    /// An HTTP proxy for every upstream request. The gate never takes one from its environment
    /// (`HTTPS_PROXY` etc. are ignored): only this. Loopback destinations are never proxied.
    /// Through a proxy, host names are resolved by the proxy: the gate still refuses internal
    /// addresses written as such, but which addresses a name leads to is then the proxy's rule.
    pub proxy: Option<UpstreamProxy>,
}

/// The proxy the gate's upstream requests go through.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamProxy {
    /// Proxy for https upstreams (`http://host:port`): requests go through a `CONNECT` tunnel,
    /// so the proxy sees host names, never credentials or content.
    pub https: Option<String>,
    /// Proxy for plain-HTTP upstreams; credentials are never sent through it (the gate refuses
    /// such a request instead).
    pub http: Option<String>,
    /// Hosts reached directly (`NO_PROXY` syntax: `host`, `.domain`, `host:port`, IP, CIDR).
    pub no_proxy: Vec<String>,
}

/// One upstream registry and the proxy repository names it serves.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Repository-name prefix, matched on whole path components (`team` matches `team/app`, not
    /// `teamwork/app`); empty matches every repository.
    #[serde(default)]
    pub prefix: String,
    /// `https://host[:port]` (or `http://` for loopback hosts, or with `allow_http`); no path.
    pub url: String,
    /// Remove `prefix` from the name before asking upstream (`mirror/app` → `app`).
    #[serde(default)]
    pub strip_prefix: bool,
    /// Credentials for pulling from the upstream.
    #[serde(default)]
    pub credentials: Option<UpstreamCredentials>,
    /// Speak plain HTTP to a non-loopback upstream. Insecure: anyone on the path can change
    /// tags (though never the bytes of a verified digest).
    #[serde(default)]
    pub allow_http: bool,
    /// A PEM file of CA certificates to trust for TLS, besides the platform's trust store (and
    /// `SSL_CERT_FILE`) and the bundled web roots. The gate has one TLS client: a CA given for
    /// one upstream is trusted for every registry the gate reaches.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A docker credential helper to ask for this upstream's credentials (`ecr-login` runs
    /// `docker-credential-ecr-login` from `PATH`), when `credentials` are not given. The gate
    /// runs no helper that its configuration does not name (it reads no docker config).
    #[serde(default)]
    pub credential_helper: Option<String>,
}

/// Pull credentials; the password is read from a file (a mounted Secret), never from the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamCredentials {
    /// User name.
    pub username: String,
    /// File holding the password or token (trailing newline ignored).
    pub password_file: PathBuf,
}

/// Certificate and key files (PEM).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) for client certificates. When set, `/v1/*` requires a client
    /// certificate issued by one of them (mutual TLS); other paths accept connections without
    /// one, as the Kubernetes API server and container engines present none.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// Verdict cache bounds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Most verdicts kept (0 disables caching).
    pub size: usize,
    /// How long a verdict is reused.
    pub ttl_seconds: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            size: 10_000,
            ttl_seconds: 300,
        }
    }
}

/// Time limits, in seconds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Connecting to the upstream and each request to it (blob streams: each read).
    pub upstream_seconds: u64,
    /// One judgement.
    pub judge_seconds: u64,
    /// Waiting for open connections to finish on shutdown.
    pub shutdown_seconds: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            upstream_seconds: 30,
            judge_seconds: 60,
            shutdown_seconds: 30,
        }
    }
}

/// Bounds on what one request may ask.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body (admission reviews, verify requests).
    pub max_body_bytes: usize,
    /// Images of one request judged at the same time.
    pub parallel_images: usize,
    /// Distinct images in one request.
    pub max_images: usize,
    /// Connections served at the same time; more wait to be accepted.
    pub max_connections: usize,
    /// Blobs streamed through the proxy at the same time (each holds up to ~3 MiB of buffers);
    /// more wait up to `timeouts.upstream_seconds`, then get `429 TOOMANYREQUESTS`.
    pub max_blob_streams: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 * 1024 * 1024,
            parallel_images: 8,
            max_images: 100,
            max_connections: 1024,
            max_blob_streams: 32,
        }
    }
}

/// An upstream, validated: where names matching `prefix` are fetched from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Route {
    pub prefix: String,
    pub strip_prefix: bool,
    /// `host[:port]` as references name it (`docker.io` for Docker Hub).
    pub registry: String,
}

impl GateConfig {
    /// Parse and check a YAML configuration. Unknown fields are errors (a misspelt option must
    /// not silently fall back to a default).
    pub fn from_yaml(text: &str) -> Result<GateConfig, GateError> {
        let config: GateConfig =
            serde_yaml_ng::from_str(text).map_err(|e| GateError::Config(e.to_string()))?;
        config.routes()?;
        Ok(config)
    }

    /// The simple form: `--policy FILE --listen ADDR --upstream URL`, every repository from
    /// that upstream, defaults for everything else. Plain `http://` is accepted for loopback
    /// upstreams only; set `upstreams[0].allow_http` for others.
    pub fn simple(
        policy: PathBuf,
        listen: SocketAddr,
        upstream_url: &str,
    ) -> Result<GateConfig, GateError> {
        let config = GateConfig {
            listen,
            policy: Some(policy),
            upstreams: vec![Upstream {
                prefix: String::new(),
                url: upstream_url.to_string(),
                strip_prefix: false,
                credentials: None,
                allow_http: false,
                ca_file: None,
                credential_helper: None,
            }],
            tls: None,
            cache: CacheConfig::default(),
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            api: ApiConfig::default(),
            network: NetworkConfig::default(),
            ca_files: Vec::new(),
            continuous: ContinuousConfig::default(),
        };
        config.routes()?;
        Ok(config)
    }

    /// Check everything that can be checked without I/O; the routes, in configuration order.
    pub(crate) fn routes(&self) -> Result<Vec<Route>, GateError> {
        let bad = |m: String| GateError::Config(m);
        if self.upstreams.is_empty() {
            return Err(bad("at least one upstream is needed".into()));
        }
        if self.upstreams.len() > 1000 {
            return Err(bad("more than 1000 upstreams".into()));
        }
        let mut routes: Vec<Route> = Vec::new();
        for upstream in &self.upstreams {
            let prefix = upstream.prefix.trim_end_matches('/').to_string();
            if prefix.starts_with('/') || prefix.contains("//") {
                return Err(bad(format!(
                    "upstream prefix {:?} is not a repository path",
                    upstream.prefix
                )));
            }
            if routes.iter().any(|r| r.prefix == prefix) {
                return Err(bad(format!("two upstreams for prefix {prefix:?}")));
            }
            if upstream.strip_prefix && prefix.is_empty() {
                return Err(bad("strip_prefix needs a non-empty prefix".into()));
            }
            let registry = registry_of(&upstream.url, upstream.allow_http).map_err(bad)?;
            if let Some(c) = &upstream.credentials {
                if c.username.is_empty() || c.username.contains(':') {
                    return Err(bad(format!("upstream {}: invalid username", upstream.url)));
                }
            }
            if let Some(name) = &upstream.credential_helper {
                signet_oci::registry::CredentialHelper::new(name).map_err(|why| {
                    bad(format!(
                        "upstream {}: credential_helper: {why}",
                        upstream.url
                    ))
                })?;
            }
            routes.push(Route {
                prefix,
                strip_prefix: upstream.strip_prefix,
                registry,
            });
        }
        let n = &self.network;
        for host in n
            .internal_registries
            .iter()
            .chain(&n.plain_http_registries)
            .chain(&n.token_realms)
        {
            if host.is_empty()
                || !host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
            {
                return Err(bad(format!("network: {host:?} is not a host or host:port")));
            }
        }
        if self.cache.size > 1_000_000 {
            return Err(bad("cache.size above 1000000".into()));
        }
        let t = &self.timeouts;
        for (name, value) in [
            ("upstream_seconds", t.upstream_seconds),
            ("judge_seconds", t.judge_seconds),
            ("shutdown_seconds", t.shutdown_seconds),
        ] {
            if value == 0 || value > 3600 {
                return Err(bad(format!("timeouts.{name} must be between 1 and 3600")));
            }
        }
        let l = &self.limits;
        if l.max_body_bytes == 0 || l.max_body_bytes > 64 * 1024 * 1024 {
            return Err(bad(
                "limits.max_body_bytes must be between 1 and 64 MiB".into()
            ));
        }
        if l.parallel_images == 0 || l.parallel_images > 256 {
            return Err(bad(
                "limits.parallel_images must be between 1 and 256".into()
            ));
        }
        if l.max_images == 0 || l.max_images > 10_000 {
            return Err(bad("limits.max_images must be between 1 and 10000".into()));
        }
        if l.max_connections == 0 || l.max_connections > 100_000 {
            return Err(bad(
                "limits.max_connections must be between 1 and 100000".into()
            ));
        }
        if l.max_blob_streams == 0 || l.max_blob_streams > 10_000 {
            return Err(bad(
                "limits.max_blob_streams must be between 1 and 10000".into()
            ));
        }
        let c = &self.continuous;
        if c.interval_seconds > 7 * 24 * 3600 {
            return Err(bad("continuous.interval_seconds above one week".into()));
        }
        if c.max_images > 1_000_000 {
            return Err(bad("continuous.max_images above 1000000".into()));
        }
        if c.parallel == 0 || c.parallel > 256 {
            return Err(bad("continuous.parallel must be between 1 and 256".into()));
        }
        if c.per_upstream_per_second == 0 {
            return Err(bad(
                "continuous.per_upstream_per_second must be at least 1".into()
            ));
        }
        if let Some(w) = &c.webhook {
            let scheme_ok = match w.url.split_once("://") {
                Some(("https", rest)) => !rest.is_empty(),
                Some(("http", rest)) => {
                    is_loopback_host(rest.split('/').next().unwrap_or_default())
                }
                _ => false,
            };
            if !scheme_ok {
                return Err(bad(format!(
                    "continuous.webhook.url {:?} must be https:// (http:// only to loopback)",
                    w.url
                )));
            }
            if w.timeout_seconds == 0 || w.timeout_seconds > 300 {
                return Err(bad(
                    "continuous.webhook.timeout_seconds must be between 1 and 300".into(),
                ));
            }
            if w.retries > 20 {
                return Err(bad("continuous.webhook.retries above 20".into()));
            }
            if w.queue == 0 || w.queue > 100_000 {
                return Err(bad(
                    "continuous.webhook.queue must be between 1 and 100000".into()
                ));
            }
        }
        Ok(routes)
    }
}

/// The registry name (`host[:port]`) an upstream URL designates, checking its scheme.
fn registry_of(url: &str, allow_http: bool) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("upstream URL {url:?} has no scheme (https:// or http://)"))?;
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.is_empty()
        || host.contains(['/', '?', '#', '@', ' '])
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    {
        return Err(format!(
            "upstream URL {url:?} must be scheme://host[:port] with no path or user"
        ));
    }
    let host = host.to_ascii_lowercase();
    let loopback = is_loopback_host(&host);
    match scheme {
        "https" => {}
        "http" if loopback || allow_http => {}
        "http" => {
            return Err(format!(
                "upstream {url:?} is plain HTTP on a non-loopback host; set allow_http: true to accept that"
            ))
        }
        _ => return Err(format!("upstream URL {url:?}: scheme must be https or http")),
    }
    Ok(match host.as_str() {
        "registry-1.docker.io" | "index.docker.io" => DOCKER_HUB.to_string(),
        _ => host,
    })
}

impl Route {
    /// The upstream repository for proxy name `name`, if this route serves it.
    pub(crate) fn upstream_repository(&self, name: &str) -> Option<String> {
        if self.prefix.is_empty() {
            return Some(name.to_string());
        }
        let rest = name.strip_prefix(&self.prefix)?;
        if rest.is_empty() {
            return (!self.strip_prefix).then(|| name.to_string());
        }
        let rest = rest.strip_prefix('/')?;
        Some(if self.strip_prefix {
            rest.to_string()
        } else {
            name.to_string()
        })
    }
}

/// The route for proxy name `name` (longest prefix wins) and the upstream repository, among
/// the upstreams of registry `ns` only, when given: containerd, using the gate
/// as a mirror (`hosts.toml`), names the registry it mirrors in the `ns` query parameter, so one
/// gate can front several registries without prefixes.
pub(crate) fn route_in<'a>(
    routes: &'a [Route],
    name: &str,
    ns: Option<&str>,
) -> Option<(&'a Route, String)> {
    routes
        .iter()
        .filter(|r| ns.is_none_or(|ns| r.registry == ns))
        .filter_map(|r| r.upstream_repository(name).map(|repo| (r, repo)))
        .max_by_key(|(r, _)| r.prefix.len())
}

impl GateConfig {
    /// Registry options for the gate (credentials read from their password files, the upstream
    /// time-out; no user auth files are consulted). Plain HTTP only to upstreams with an
    /// `http://` URL and `network.plain_http_registries` (loopback gets no exception);
    /// loopback, private and link-local addresses only for upstreams and
    /// `network.internal_registries` (and token realms named there); bearer token realms only
    /// on the registry's own host or `network.token_realms`; CA files of the upstreams trusted
    /// besides the platform's store.
    pub fn registry_options(&self) -> Result<signet_oci::RegistryOptions, GateError> {
        let routes = self.routes()?;
        let network = &self.network;
        let mut internal: Vec<String> = network.internal_registries.clone();
        internal.extend(network.token_realms.iter().cloned());
        internal.extend(routes.iter().map(|r| r.registry.clone()));
        let mut options = signet_oci::RegistryOptions {
            use_auth_files: false,
            timeout: std::time::Duration::from_secs(self.timeouts.upstream_seconds),
            retries: 2,
            loopback_http: false,
            registry_messages: false,
            allow_http_registries: network.plain_http_registries.clone(),
            ca_files: self.ca_files.clone(),
            internal_hosts: Some(internal),
            token_realm_hosts: Some(network.token_realms.clone()),
            proxy: match &network.proxy {
                None => signet_oci::registry::ProxySettings::Direct,
                Some(p) => signet_oci::registry::ProxySettings::Explicit(
                    signet_oci::registry::ProxyConfig {
                        https: p.https.clone(),
                        http: p.http.clone(),
                        no_proxy: p.no_proxy.clone(),
                    },
                ),
            },
            ..signet_oci::RegistryOptions::default()
        };
        for (upstream, route) in self.upstreams.iter().zip(&routes) {
            // `routes` has checked the scheme: http only for loopback hosts or with allow_http.
            if upstream.url.starts_with("http://") {
                options.allow_http_registries.push(route.registry.clone());
            }
            if let Some(ca) = &upstream.ca_file {
                options.ca_files.push(ca.clone());
            }
            if let Some(name) = &upstream.credential_helper {
                let helper = signet_oci::registry::CredentialHelper::new(name)
                    .map_err(|why| GateError::Config(format!("credential_helper: {why}")))?;
                options
                    .credential_helpers
                    .push((route.registry.clone(), helper));
            }
            if let Some(c) = &upstream.credentials {
                let password = std::fs::read_to_string(&c.password_file)
                    .map_err(|e| GateError::io(&c.password_file, e))?;
                options.credentials.push((
                    route.registry.clone(),
                    signet_oci::registry::Credentials {
                        username: c.username.clone(),
                        password: password.trim_end_matches(['\r', '\n']).to_string(),
                    },
                ));
            }
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const FULL: &str = r#"
listen: 0.0.0.0:8443
policy: /etc/signet/policy.yaml
upstreams:
  - url: https://registry.example.com
  - prefix: mirror/hub
    url: https://registry-1.docker.io
    strip_prefix: true
  - prefix: local
    url: http://127.0.0.1:5000/
    credentials: { username: bot, password_file: /run/pw }
tls: { cert: /tls/tls.crt, key: /tls/tls.key }
cache: { size: 50, ttl_seconds: 10 }
timeouts: { upstream_seconds: 5, judge_seconds: 20, shutdown_seconds: 3 }
limits: { max_body_bytes: 1000, parallel_images: 2, max_images: 7, max_connections: 9 }
"#;

    #[test]
    fn full_config_parses() {
        let c = GateConfig::from_yaml(FULL).unwrap();
        assert_eq!(c.listen, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(c.policy, Some(PathBuf::from("/etc/signet/policy.yaml")));
        assert_eq!(c.upstreams.len(), 3);
        assert_eq!(c.tls.as_ref().unwrap().key, PathBuf::from("/tls/tls.key"));
        assert_eq!(
            c.cache,
            CacheConfig {
                size: 50,
                ttl_seconds: 10
            }
        );
        assert_eq!(c.timeouts.judge_seconds, 20);
        assert_eq!(c.limits.max_images, 7);
        let creds = c.upstreams[2].credentials.as_ref().unwrap();
        assert_eq!(creds.username, "bot");
        let routes = c.routes().unwrap();
        assert_eq!(routes[1].registry, "docker.io");
        assert_eq!(routes[2].registry, "127.0.0.1:5000");
        // Longest prefix wins; prefixes match whole components; strip_prefix removes it.
        let check = |name: &str, registry: &str, repo: &str| {
            let (r, got) = route_in(&routes, name, None).unwrap();
            assert_eq!(
                (r.registry.as_str(), got.as_str()),
                (registry, repo),
                "{name}"
            );
        };
        check("team/app", "registry.example.com", "team/app");
        check("mirror/hub/library/nginx", "docker.io", "library/nginx");
        check("mirror/hubble", "registry.example.com", "mirror/hubble");
        check("local/app", "127.0.0.1:5000", "local/app");
        check("localx/app", "registry.example.com", "localx/app");
        // containerd's ?ns= picks among the upstreams of that registry only.
        let (r, repo) = route_in(&routes, "mirror/hub/library/nginx", Some("docker.io")).unwrap();
        assert_eq!(
            (r.registry.as_str(), repo.as_str()),
            ("docker.io", "library/nginx")
        );
        assert!(route_in(&routes, "library/nginx", Some("docker.io")).is_none());
        assert!(route_in(&routes, "team/app", Some("quay.io")).is_none());
    }

    #[test]
    fn defaults_apply() {
        let c = GateConfig::from_yaml(
            "listen: 127.0.0.1:0\nupstreams: [{url: 'http://localhost:5000'}]\n",
        )
        .unwrap();
        assert_eq!(c.cache, CacheConfig::default());
        assert_eq!(c.timeouts, Timeouts::default());
        assert_eq!(c.limits, Limits::default());
        assert!(c.tls.is_none());
    }

    #[test]
    fn strict_and_checked() {
        for (yaml, wanted) in [
            ("listen: 127.0.0.1:0\nupstreams: [{url: 'http://127.0.0.1:5000'}]\nlisten_port: 3\n", "unknown field"),
            ("listen: 127.0.0.1:0\nupstreams: [{url: 'http://127.0.0.1:5000', prefx: a}]\n", "unknown field"),
            ("listen: 127.0.0.1:0\nupstreams: [{url: 'http://127.0.0.1:5000'}]\ncache: {size: 1, ttl: 3}\n", "unknown field"),
            ("listen: 127.0.0.1:0\nupstreams: []\n", "at least one upstream"),
            ("listen: 127.0.0.1:0\nupstreams: [{url: 'http://reg.example.com'}]\n", "allow_http"),
            ("listen: 127.0.0.1:0\nupstreams: [{url: 'https://reg.example.com/v2'}]\n", "no path"),
            ("listen: 127.0.0.1:0\nupstreams: [{url: 'reg.example.com'}]\n", "no scheme"),
            ("listen: 127.0.0.1:0\nupstreams: [{url: 'https://a.io'}, {url: 'https://b.io'}]\n", "two upstreams"),
            ("listen: 127.0.0.1:0\nupstreams: [{url: 'https://a.io', strip_prefix: true}]\n", "strip_prefix"),
            ("listen: 127.0.0.1:0\nupstreams: [{url: 'https://a.io'}]\ntimeouts: {judge_seconds: 0}\n", "judge_seconds"),
            ("listen: nowhere\nupstreams: [{url: 'https://a.io'}]\n", "invalid"),
        ] {
            let err = GateConfig::from_yaml(yaml).unwrap_err().to_string();
            assert!(err.contains(wanted), "{yaml}: {err}");
        }
        let ok = GateConfig::from_yaml(
            "listen: 127.0.0.1:0\nupstreams: [{url: 'http://reg.example.com', allow_http: true}]\n",
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn continuous_is_checked() {
        let base = "listen: 127.0.0.1:0\nupstreams: [{url: 'http://127.0.0.1:5000'}]\n";
        let c = GateConfig::from_yaml(base).unwrap();
        assert_eq!(c.continuous, ContinuousConfig::default());
        let c = GateConfig::from_yaml(&format!(
            "{base}continuous: {{interval_seconds: 60, webhook: {{url: 'http://127.0.0.1:9/hook'}}}}\n"
        ))
        .unwrap();
        let w = c.continuous.webhook.unwrap();
        assert_eq!((w.timeout_seconds, w.retries, w.queue), (5, 5, 1000));
        for (extra, wanted) in [
            ("continuous: {parallel: 0}", "continuous.parallel"),
            (
                "continuous: {per_upstream_per_second: 0}",
                "per_upstream_per_second",
            ),
            ("continuous: {interval: 3}", "unknown field"),
            (
                "continuous: {webhook: {url: 'http://alerts.example.com/x'}}",
                "http:// only to loopback",
            ),
            (
                "continuous: {webhook: {url: 'ftp://x'}}",
                "must be https://",
            ),
            (
                "continuous: {webhook: {url: 'https://a.example', queue: 0}}",
                "webhook.queue",
            ),
        ] {
            let err = GateConfig::from_yaml(&format!("{base}{extra}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(wanted), "{extra}: {err}");
        }
    }

    #[test]
    fn simple_form() {
        let c = GateConfig::simple(
            "p.yaml".into(),
            "127.0.0.1:0".parse().unwrap(),
            "http://127.0.0.1:5000",
        )
        .unwrap();
        let routes = c.routes().unwrap();
        assert_eq!(route_in(&routes, "any/thing", None).unwrap().1, "any/thing");
        assert_eq!(routes[0].registry, "127.0.0.1:5000");
        assert!(GateConfig::simple(
            "p".into(),
            "127.0.0.1:0".parse().unwrap(),
            "http://example.com"
        )
        .is_err());
    }
    #[test]
    fn the_kubernetes_deployment_config_is_valid() {
        let configmap: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(include_str!("../../deploy/kubernetes/configmap.yaml"))
                .unwrap();
        let text = configmap["data"]["gate.yaml"].as_str().unwrap();
        let c = GateConfig::from_yaml(text).unwrap();
        assert_eq!(c.listen, "0.0.0.0:8443".parse().unwrap());
        assert!(c.tls.is_some());
        assert!(
            c.timeouts.judge_seconds < 15,
            "below the webhooks' timeoutSeconds"
        );
        assert_eq!(c.limits.max_blob_streams, 32);
    }

    #[test]
    fn the_gates_client_reaches_only_what_the_configuration_names() {
        let c = GateConfig::from_yaml(
            "listen: 127.0.0.1:0
upstreams:
  - url: http://127.0.0.1:5000
  - prefix: tls
    url: https://127.0.0.1:5443
    ca_file: /etc/signet/upstream-ca.pem
network:
  internal_registries: [registry.corp]
  plain_http_registries: ['registry.corp:5000']
  token_realms: [auth.corp]
ca_files: [/etc/signet/corp-ca.pem]
",
        )
        .unwrap();
        let o = c.registry_options().unwrap();
        assert!(!o.loopback_http, "no plain HTTP to loopback unless named");
        assert!(!o.registry_messages, "upstream answers never repeated");
        assert_eq!(
            o.allow_http_registries,
            vec![
                "registry.corp:5000".to_string(),
                "127.0.0.1:5000".to_string()
            ]
        );
        let internal = o.internal_hosts.unwrap();
        for host in [
            "registry.corp",
            "auth.corp",
            "127.0.0.1:5000",
            "127.0.0.1:5443",
        ] {
            assert!(internal.iter().any(|h| h == host), "{host}: {internal:?}");
        }
        assert_eq!(o.token_realm_hosts, Some(vec!["auth.corp".to_string()]));
        assert_eq!(
            o.ca_files,
            vec![
                PathBuf::from("/etc/signet/corp-ca.pem"),
                PathBuf::from("/etc/signet/upstream-ca.pem")
            ]
        );
        let err = GateConfig::from_yaml(
            "listen: 127.0.0.1:0\nupstreams: [{url: 'http://127.0.0.1:5000'}]\nnetwork: {token_realms: ['http://x/']}\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("is not a host"), "{err}");
    }
}
