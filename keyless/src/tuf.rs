//! `signet trust update`: refresh an instance's trusted root through a verified TUF client.
//!
//! The TUF checks are `sigstore-tuf`'s ([`sigstore_tuf::Updater`] over its
//! `TrustedMetadataSet`): the root chain walked one version at a time, each new root signed to
//! threshold by the old root's keys and its own; timestamp, snapshot and targets signed to
//! threshold by the keys the newest root names; versions never going back (against the cached
//! metadata too, which this module hands it as the starting state); the snapshot matching the
//! length, hashes and version the timestamp pins, the targets metadata those the snapshot pins,
//! the target files those the targets metadata pins; every role unexpired at the time of the
//! update. What this module adds: the transport (HTTPS, plain HTTP to loopback only, also after
//! a redirect; time-outs; a byte bound on each file before it is read in full), the embedded
//! initial roots, a check that `trusted_root.json` is a Sigstore trusted root, errors that name
//! the refused role, and the all-or-nothing cache write ([`crate::cache`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use sigstore_tuf::transport::FetchFuture;
use sigstore_tuf::{MetadataStore, Repository, Updater, UpdaterConfig};

use crate::cache::{
    cache_file, CacheLock, CacheState, CachedTrust, CACHE_FORMAT, SIGNING_CONFIG_TARGET,
    TRUSTED_ROOT_TARGET,
};
use crate::error::Input;
use crate::trust::{Instance, TrustSource, TrustedRoot};
use crate::KeylessError;

/// Public-good's TUF initial root (provenance in `keyless/tuf/README.md`).
const PUBLIC_GOOD_ROOT: &[u8] = include_bytes!("../tuf/public-good.root.json");
/// GitHub's TUF initial root (provenance in `keyless/tuf/README.md`).
const GITHUB_ROOT: &[u8] = include_bytes!("../tuf/github.root.json");

/// Largest initial root accepted from `--tuf-root` (the same bound as for a fetched root).
pub const MAX_ROOT_BYTES: u64 = 512 * 1024;
/// Largest `trusted_root.json` or signing configuration fetched, whatever the targets metadata
/// pins: public-good's trusted root is about 10 KiB.
const MAX_TARGET_BYTES: u64 = 4 * 1024 * 1024;
/// Redirects followed per request.
const MAX_REDIRECTS: usize = 5;

impl Instance {
    /// The instance's TUF repository.
    pub fn default_tuf_url(self) -> &'static str {
        match self {
            Instance::PublicGood => "https://tuf-repo-cdn.sigstore.dev",
            Instance::GitHub => "https://tuf-repo.github.com",
        }
    }

    /// The TUF root this crate embeds for the instance: the start of every root chain unless
    /// `--tuf-root` names another.
    pub fn embedded_tuf_root(self) -> &'static [u8] {
        match self {
            Instance::PublicGood => PUBLIC_GOOD_ROOT,
            Instance::GitHub => GITHUB_ROOT,
        }
    }
}

/// What to update and where from.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    /// The instance whose cache is updated.
    pub instance: Instance,
    /// The TUF repository; `None` for the instance's own.
    pub tuf_url: Option<String>,
    /// The initial TUF root; `None` for the embedded one of the instance.
    pub initial_root: Option<Vec<u8>>,
    /// The cache root (see [`crate::cache::default_cache_root`]).
    pub cache_root: PathBuf,
    /// PEM files of extra CA certificates to trust for HTTPS besides the platform's and the
    /// bundled web roots.
    pub ca_files: Vec<PathBuf>,
    /// Connect and idle-read time-out of each request; a request as a whole gets four times it.
    pub timeout: Duration,
}

/// What an update did.
#[derive(Debug, Clone)]
pub struct UpdateOutcome {
    /// The trust now in the cache.
    pub cached: CachedTrust,
    /// The trusted root (or signing configuration) differs from what was cached before.
    pub changed: bool,
}

/// Refresh `options.instance`'s trusted root through TUF and, only if every check passes, replace
/// its cache file in one atomic step. On any error the cache is exactly as it was.
pub async fn update(options: &UpdateOptions) -> Result<UpdateOutcome, KeylessError> {
    crate::crypto::ensure_provider();
    let url_text = options
        .tuf_url
        .as_deref()
        .unwrap_or(options.instance.default_tuf_url());
    let base = parse_tuf_url(url_text)?;
    let initial_root = options
        .initial_root
        .as_deref()
        .unwrap_or(options.instance.embedded_tuf_root());
    if initial_root.len() as u64 > MAX_ROOT_BYTES {
        return Err(KeylessError::TooLarge {
            input: Input::TufRoot,
            limit: MAX_ROOT_BYTES,
        });
    }

    let path = cache_file(&options.cache_root, options.instance);
    let _lock = CacheLock::acquire(&path)?;
    let previous = CacheState::load(&path)?;

    // Metadata verified earlier from the same repository is the floor the repository must meet
    // (rollback protection across runs); sigstore-tuf re-verifies all of it from the initial
    // root before relying on it. Metadata of another repository is not mixed in.
    let store = Arc::new(SnapshotStore::default());
    if let Some(previous) = previous
        .as_ref()
        .filter(|p| p.tuf_url == base.as_str() && p.instance == options.instance.name())
    {
        store.seed(previous);
    }

    let repository = HttpRepository::new(base.clone(), &options.ca_files, options.timeout)?;
    let fetched = repository.last_fetched.clone();
    let mut updater = Updater::new(repository, initial_root)
        .map_err(|e| KeylessError::malformed(Input::TufRoot, chain(&e)))?
        .with_config(limits())
        .with_store(store.clone());

    let now = jiff::Timestamp::now();
    let refused = |e: sigstore_tuf::Error| refusal(e, &fetched);
    updater.refresh(now).await.map_err(refused)?;
    let trusted_root = updater
        .get_target(TRUSTED_ROOT_TARGET, now)
        .await
        .map_err(refused)?;
    check_trusted_root(&trusted_root, options.instance, &path)?;
    let signing_config = match updater.get_target(SIGNING_CONFIG_TARGET, now).await {
        Ok(bytes) => Some(bytes),
        Err(sigstore_tuf::Error::TargetNotFound(_)) => None,
        Err(e) => return Err(refused(e)),
    };

    let mut targets = BTreeMap::new();
    targets.insert(
        TRUSTED_ROOT_TARGET.to_string(),
        utf8(TRUSTED_ROOT_TARGET, trusted_root)?,
    );
    if let Some(bytes) = signing_config {
        targets.insert(
            SIGNING_CONFIG_TARGET.to_string(),
            utf8(SIGNING_CONFIG_TARGET, bytes)?,
        );
    }
    let state = CacheState {
        format: CACHE_FORMAT,
        instance: options.instance.name().to_string(),
        tuf_url: base.to_string(),
        initial_root_sha256: hex::encode(Sha256::digest(initial_root)),
        updated_at: now.to_string(),
        metadata: store.kept_metadata()?,
        targets,
    };
    let cached = state.to_cached(&path, options.instance)?;
    let changed = previous.is_none_or(|p| p.targets != state.targets);
    state.store(&path)?;
    Ok(UpdateOutcome { cached, changed })
}

/// Download bounds: python-tuf's defaults, tighter where Sigstore's repositories are small.
fn limits() -> UpdaterConfig {
    let mut config = UpdaterConfig::default();
    config.root_max_length = MAX_ROOT_BYTES;
    config.timestamp_max_length = 16 * 1024;
    config.snapshot_max_length = 1024 * 1024;
    config.targets_max_length = 4 * 1024 * 1024;
    config.target_max_length = MAX_TARGET_BYTES;
    config.max_root_rotations = 32;
    config.max_delegations = 8;
    config
}

/// The TUF repository URL: HTTPS, or plain HTTP to a loopback address (a test repository); no
/// credentials, query or fragment.
pub fn parse_tuf_url(text: &str) -> Result<reqwest::Url, KeylessError> {
    let malformed = |reason: String| KeylessError::malformed(Input::TufUrl, reason);
    let with_slash = if text.ends_with('/') {
        text.to_string()
    } else {
        format!("{text}/")
    };
    let url = reqwest::Url::parse(&with_slash).map_err(|e| malformed(format!("{text:?}: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(malformed("credentials in the URL are not accepted".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(malformed(format!("{text:?} has a query or fragment")));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(malformed(format!(
            "{text:?}: plain HTTP only to a loopback address (127.0.0.1, [::1], localhost); use https"
        ))),
        other => Err(malformed(format!("{text:?}: scheme {other:?} is not https"))),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// `trusted_root.json` must at least be a Sigstore trusted root before it replaces a good one:
/// a repository serving a validly signed but unusable file would otherwise break every later
/// verification.
fn check_trusted_root(bytes: &[u8], instance: Instance, path: &Path) -> Result<(), KeylessError> {
    let source = TrustSource::Cache {
        instance,
        path: path.to_path_buf(),
    };
    TrustedRoot::from_json(bytes, source)
        .map(|_| ())
        .map_err(|e| KeylessError::TufRefused {
            role: "targets".into(),
            file: TRUSTED_ROOT_TARGET.into(),
            reason: format!("not a usable Sigstore trusted root: {e}"),
        })
}

fn utf8(name: &str, bytes: Vec<u8>) -> Result<String, KeylessError> {
    String::from_utf8(bytes).map_err(|_| KeylessError::TufRefused {
        role: "targets".into(),
        file: name.into(),
        reason: "not UTF-8 JSON".into(),
    })
}

/// A TUF error as Signet's: which role's metadata was refused and why.
fn refusal(error: sigstore_tuf::Error, fetched: &Mutex<String>) -> KeylessError {
    use sigstore_tuf::Error as E;
    let file = fetched.lock().map(|f| f.clone()).unwrap_or_default();
    let reason = chain(&error);
    let role = match &error {
        E::Transport { .. } => return KeylessError::TufFetch(reason),
        E::ThresholdNotMet { role, .. }
        | E::DuplicateSignature { role, .. }
        | E::Expired { role, .. }
        | E::Rollback { role, .. } => role.clone(),
        E::BadRootVersion { .. } => "root".to_string(),
        E::TargetNotFound(_) => "targets".to_string(),
        _ => role_of_file(&file),
    };
    let reason = match &error {
        E::ThresholdNotMet { .. } => format!("{reason} (a bad or missing signature)"),
        E::IntegrityMismatch(_) => format!(
            "{reason} (the file is not the one its parent role pins: a mix-and-match or altered file)"
        ),
        E::Rollback { .. } => format!("{reason} (an older version than already trusted)"),
        _ => reason,
    };
    KeylessError::TufRefused { role, file, reason }
}

/// The role a metadata file name belongs to: `3.snapshot.json` → `snapshot`; a target path →
/// `targets` (its hash is pinned there).
fn role_of_file(file: &str) -> String {
    let Some(stem) = file.strip_suffix(".json") else {
        return "targets".into();
    };
    if file.starts_with("targets/") {
        return "targets".into();
    }
    let name = match stem.split_once('.') {
        Some((version, rest)) if version.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => stem,
    };
    name.to_string()
}

/// An error and its causes on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The updater's metadata store: in memory, seeded from the cache file, and read back in full
/// only after the whole update verified. sigstore-tuf writes each file through as soon as it is
/// verified; writing those to disk directly would leave a half-updated cache when a later role
/// is refused.
#[derive(Debug, Default)]
struct SnapshotStore {
    files: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl SnapshotStore {
    fn seed(&self, state: &CacheState) {
        if let Ok(mut files) = self.files.lock() {
            for (name, text) in &state.metadata {
                files.insert(name.clone(), text.as_bytes().to_vec());
            }
            for (name, text) in &state.targets {
                files.insert(format!("targets/{name}"), text.as_bytes().to_vec());
            }
        }
    }

    /// The metadata worth keeping: the root chain and the newest timestamp, snapshot and
    /// targets (versioned copies are duplicates).
    fn kept_metadata(&self) -> Result<BTreeMap<String, String>, KeylessError> {
        let files = self
            .files
            .lock()
            .map_err(|_| KeylessError::TufFetch("the TUF store's lock was poisoned".into()))?;
        let mut kept = BTreeMap::new();
        for (name, bytes) in files.iter() {
            let keep = matches!(
                name.as_str(),
                "root.json" | "timestamp.json" | "snapshot.json" | "targets.json"
            ) || name.starts_with("root_history/");
            if keep {
                let text =
                    String::from_utf8(bytes.clone()).map_err(|_| KeylessError::TufRefused {
                        role: role_of_file(name.trim_start_matches("root_history/")),
                        file: name.clone(),
                        reason: "not UTF-8 JSON".into(),
                    })?;
                kept.insert(name.clone(), text);
            }
        }
        Ok(kept)
    }
}

impl MetadataStore for SnapshotStore {
    fn load(&self, name: &str) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        Ok(self
            .files
            .lock()
            .map_err(|_| sigstore_tuf::Error::transport("store lock poisoned"))?
            .get(name)
            .cloned())
    }

    fn store(&self, name: &str, bytes: &[u8]) -> sigstore_tuf::Result<()> {
        self.files
            .lock()
            .map_err(|_| sigstore_tuf::Error::transport("store lock poisoned"))?
            .insert(name.to_string(), bytes.to_vec());
        Ok(())
    }
}

/// The TUF repository over HTTP(S), with Signet's rules: see [`parse_tuf_url`]; every redirect
/// meets the same rule; each answer is read up to the bound the updater gives and no further.
struct HttpRepository {
    metadata_base: reqwest::Url,
    targets_base: reqwest::Url,
    client: reqwest::Client,
    /// The file the updater asked for last: the one a verification error is about.
    last_fetched: Arc<Mutex<String>>,
}

impl HttpRepository {
    fn new(
        base: reqwest::Url,
        ca_files: &[PathBuf],
        timeout: Duration,
    ) -> Result<HttpRepository, KeylessError> {
        let redirect = reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else if attempt.url().scheme() == "https"
                || (attempt.url().scheme() == "http" && is_loopback(attempt.url()))
            {
                attempt.follow()
            } else {
                attempt.error("redirect to plain HTTP (not loopback) refused")
            }
        });
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .timeout(timeout.saturating_mul(4))
            .redirect(redirect)
            .user_agent(concat!("signet/", env!("CARGO_PKG_VERSION")));
        for path in ca_files {
            builder = add_ca_file(builder, path)?;
        }
        let client = builder
            .build()
            .map_err(|e| KeylessError::TufFetch(format!("building the HTTP client: {e}")))?;
        let targets_base = base
            .join("targets/")
            .map_err(|e| KeylessError::malformed(Input::TufUrl, e))?;
        Ok(HttpRepository {
            metadata_base: base,
            targets_base,
            client,
            last_fetched: Arc::new(Mutex::new(String::new())),
        })
    }

    async fn bounded_get(
        &self,
        base: &reqwest::Url,
        name: &str,
        max_length: u64,
    ) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        if let Ok(mut last) = self.last_fetched.lock() {
            *last = name.to_string();
        }
        let url = base
            .join(name)
            .map_err(|e| sigstore_tuf::Error::transport(format!("{name}: {e}")))?;
        let mut response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| sigstore_tuf::Error::transport(format!("GET {url}: {}", chain(&e))))?;
        // 403 as well as 404 ends the root chain: object stores answer 403 for a missing object.
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(sigstore_tuf::Error::transport(format!(
                "GET {url}: status {status}"
            )));
        }
        let too_big =
            || sigstore_tuf::Error::transport(format!("GET {url}: larger than {max_length} bytes"));
        if response
            .content_length()
            .is_some_and(|len| len > max_length)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| sigstore_tuf::Error::transport(format!("GET {url}: {}", chain(&e))))?
        {
            if body.len() as u64 + chunk.len() as u64 > max_length {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    }
}

fn add_ca_file(
    builder: reqwest::ClientBuilder,
    path: &Path,
) -> Result<reqwest::ClientBuilder, KeylessError> {
    let unusable = |reason: String| {
        KeylessError::malformed(Input::CaFile, format!("{}: {reason}", path.display()))
    };
    let pem = std::fs::read(path).map_err(|e| unusable(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| unusable(e.to_string()))?;
    if certs.is_empty() {
        return Err(unusable("no PEM certificate".into()));
    }
    Ok(certs
        .into_iter()
        .fold(builder, |builder, cert| builder.add_root_certificate(cert)))
}

impl Repository for HttpRepository {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(self.bounded_get(&self.metadata_base, name, max_length))
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(async move {
            let bytes = self
                .bounded_get(&self.targets_base, path, max_length)
                .await?;
            if let Ok(mut last) = self.last_fetched.lock() {
                *last = format!("targets/{path}");
            }
            Ok(bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://tuf-repo-cdn.sigstore.dev",
            "http://127.0.0.1:8080/repo",
            "http://[::1]:80",
            "http://localhost:9/",
        ] {
            assert!(parse_tuf_url(ok).is_ok(), "{ok}");
        }
        let err = parse_tuf_url("http://tuf.example.com")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("plain HTTP only to a loopback address"),
            "{err}"
        );
        let err = parse_tuf_url("https://u:p@tuf.example.com")
            .unwrap_err()
            .to_string();
        assert!(err.contains("credentials"), "{err}");
        let err = parse_tuf_url("file:///etc").unwrap_err().to_string();
        assert!(err.contains("is not https"), "{err}");
    }

    #[test]
    fn role_of_a_file_name() {
        assert_eq!(role_of_file("3.snapshot.json"), "snapshot");
        assert_eq!(role_of_file("timestamp.json"), "timestamp");
        assert_eq!(role_of_file("12.root.json"), "root");
        assert_eq!(role_of_file("targets/abc.trusted_root.json"), "targets");
    }

    #[test]
    fn embedded_roots_are_self_signed_tuf_roots() {
        crate::crypto::ensure_provider();
        for instance in [Instance::PublicGood, Instance::GitHub] {
            let set = sigstore_tuf::TrustedMetadataSet::from_root(instance.embedded_tuf_root());
            assert!(set.is_ok(), "{instance}: {:?}", set.err());
        }
    }
}
