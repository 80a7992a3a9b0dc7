//! The trust cache that `signet trust update` fills and verifying commands read.
//!
//! One file per Sigstore instance, `<cache root>/trust/<instance>.json`, where the cache root is
//! `$XDG_CACHE_HOME/signet` (an absolute `XDG_CACHE_HOME` only, as the XDG spec says) or else
//! `~/.cache/signet`. The file holds the verified TUF metadata (the root chain, timestamp,
//! snapshot, targets: they are the rollback floors of the next update) and the verified targets
//! (`trusted_root.json`, and `signing_config.v0.2.json` when the repository has one), each as the
//! exact bytes that were verified.
//!
//! Why one file and not a directory of files: an update replaces the whole state with one
//! `rename`, so a reader sees either the old state or the new one, and an update that fails at any
//! step (verification, a full disk, a crash) leaves the cache byte for byte as it was. Reading the
//! cache never touches the network and never checks TUF expiry: the cached trusted root is what the
//! last successful update verified, and verification is offline by design.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::trust::{Instance, TrustedRootCache};
use crate::KeylessError;

/// The TUF target holding Sigstore's trusted root.
pub const TRUSTED_ROOT_TARGET: &str = "trusted_root.json";
/// The TUF target holding Sigstore's signing configuration (optional in a repository).
pub const SIGNING_CONFIG_TARGET: &str = "signing_config.v0.2.json";

/// Largest cache file read: the public-good state (root chain, metadata, trusted root) is about
/// 100 KiB; the bound is far above it and far below anything that hurts.
const MAX_CACHE_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// The cache file's format version; another number is refused, not guessed at.
pub(crate) const CACHE_FORMAT: u32 = 1;

/// The cache root: `$XDG_CACHE_HOME/signet` when `XDG_CACHE_HOME` is an absolute path, else
/// `$HOME/.cache/signet`.
pub fn default_cache_root() -> Result<PathBuf, KeylessError> {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
        let xdg = PathBuf::from(xdg);
        // The XDG spec: a relative path is invalid and is to be ignored.
        if xdg.is_absolute() {
            return Ok(xdg.join("signet"));
        }
    }
    match std::env::var_os("HOME") {
        Some(home) if Path::new(&home).is_absolute() => {
            Ok(PathBuf::from(home).join(".cache").join("signet"))
        }
        _ => Err(KeylessError::TrustCache {
            path: PathBuf::from("~/.cache/signet"),
            reason: "neither XDG_CACHE_HOME nor HOME is an absolute path".into(),
        }),
    }
}

/// The cache file of `instance` under `cache_root`.
pub fn cache_file(cache_root: &Path, instance: Instance) -> PathBuf {
    cache_root
        .join("trust")
        .join(format!("{}.json", instance.name()))
}

/// A trusted root (and signing configuration) that a verified TUF update left in the cache.
#[derive(Clone, PartialEq, Eq)]
pub struct CachedTrust {
    /// The cache file it was read from.
    pub path: PathBuf,
    /// The instance it belongs to.
    pub instance: Instance,
    /// The TUF repository it was fetched from.
    pub tuf_url: String,
    /// When the update that wrote it finished (RFC 3339, UTC).
    pub updated_at: String,
    /// The `trusted_root.json` target, the exact bytes TUF verified.
    pub trusted_root: Vec<u8>,
    /// The `signing_config.v0.2.json` target, when the repository has one.
    pub signing_config: Option<Vec<u8>>,
    /// Versions of the TUF metadata it was verified with.
    pub versions: TufVersions,
    /// When the TUF timestamp it was verified with expires (RFC 3339). Past that, an update
    /// needs fresher metadata; the cached trusted root stays usable offline.
    pub timestamp_expires: String,
}

impl fmt::Debug for CachedTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedTrust")
            .field("path", &self.path)
            .field("instance", &self.instance)
            .field("tuf_url", &self.tuf_url)
            .field("updated_at", &self.updated_at)
            .field("trusted_root_sha256", &self.trusted_root_sha256())
            .field("versions", &self.versions)
            .finish_non_exhaustive()
    }
}

impl CachedTrust {
    /// Hex SHA-256 of the cached `trusted_root.json`, as `signet trust status` shows it.
    pub fn trusted_root_sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.trusted_root))
    }
}

/// Versions of the four top-level TUF roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TufVersions {
    /// `root` version (after any rotation).
    pub root: u64,
    /// `timestamp` version.
    pub timestamp: u64,
    /// `snapshot` version.
    pub snapshot: u64,
    /// `targets` version.
    pub targets: u64,
}

/// The trust cache under one cache root: what verifying commands hand to
/// [`crate::trust::load_trusted_root`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TufCache {
    root: PathBuf,
}

impl TufCache {
    /// The cache under `root` (a directory like `~/.cache/signet`).
    pub fn new(root: impl Into<PathBuf>) -> TufCache {
        TufCache { root: root.into() }
    }

    /// The cache under [`default_cache_root`].
    pub fn default_location() -> Result<TufCache, KeylessError> {
        Ok(TufCache::new(default_cache_root()?))
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cache file of `instance`.
    pub fn file(&self, instance: Instance) -> PathBuf {
        cache_file(&self.root, instance)
    }

    /// What the last `signet trust update` of `instance` cached, or `None` when it never ran. A
    /// cache file that exists but cannot be read, is not in this format, or whose trusted root
    /// does not match the hash its own TUF targets metadata pins is an error, never a silent
    /// fallback to another root.
    pub fn read(&self, instance: Instance) -> Result<Option<CachedTrust>, KeylessError> {
        let path = self.file(instance);
        let Some(state) = CacheState::load(&path)? else {
            return Ok(None);
        };
        state.to_cached(&path, instance).map(Some)
    }
}

impl TrustedRootCache for TufCache {
    fn cached_trusted_root(
        &self,
        instance: Instance,
    ) -> Result<Option<(PathBuf, Vec<u8>)>, KeylessError> {
        Ok(self
            .read(instance)?
            .map(|cached| (cached.path, cached.trusted_root)))
    }
}

/// What the last `signet trust update` of `instance` cached under the default cache root (see
/// [`TufCache::read`]).
pub fn cached_trusted_root(instance: Instance) -> Result<Option<CachedTrust>, KeylessError> {
    TufCache::default_location()?.read(instance)
}

/// The cache file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CacheState {
    /// [`CACHE_FORMAT`].
    pub format: u32,
    /// The instance name.
    pub instance: String,
    /// The TUF repository URL the metadata came from; metadata of another URL is never used as
    /// a rollback floor.
    pub tuf_url: String,
    /// Hex SHA-256 of the initial root the chain was verified from.
    pub initial_root_sha256: String,
    /// RFC 3339 time the update finished.
    pub updated_at: String,
    /// Verified metadata by TUF store name (`root.json`, `root_history/N.root.json`,
    /// `timestamp.json`, `snapshot.json`, `targets.json`).
    pub metadata: BTreeMap<String, String>,
    /// Verified targets by target path.
    pub targets: BTreeMap<String, String>,
}

impl CacheState {
    /// Read the cache file at `path`; `None` when it does not exist.
    pub(crate) fn load(path: &Path) -> Result<Option<CacheState>, KeylessError> {
        let cache_error = |reason: String| KeylessError::TrustCache {
            path: path.to_path_buf(),
            reason,
        };
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(cache_error(e.to_string())),
        };
        let mut bytes = Vec::new();
        file.take(MAX_CACHE_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| cache_error(e.to_string()))?;
        if bytes.len() as u64 > MAX_CACHE_FILE_BYTES {
            return Err(cache_error(format!(
                "larger than {MAX_CACHE_FILE_BYTES} bytes; remove it and run `signet trust update`"
            )));
        }
        let state: CacheState = serde_json::from_slice(&bytes).map_err(|e| {
            cache_error(format!(
                "not a signet trust cache ({e}); remove it and run `signet trust update`"
            ))
        })?;
        if state.format != CACHE_FORMAT {
            return Err(cache_error(format!(
                "cache format {} is not {CACHE_FORMAT}; remove it and run `signet trust update`",
                state.format
            )));
        }
        Ok(Some(state))
    }

    /// Check the state against itself (the trusted root must be the one its targets metadata
    /// pins) and give the public view of it.
    pub(crate) fn to_cached(
        &self,
        path: &Path,
        instance: Instance,
    ) -> Result<CachedTrust, KeylessError> {
        let cache_error = |reason: String| KeylessError::TrustCache {
            path: path.to_path_buf(),
            reason,
        };
        if self.instance != instance.name() {
            return Err(cache_error(format!(
                "holds instance {:?}, not {instance}",
                self.instance
            )));
        }
        let metadata = |name: &str| {
            self.metadata
                .get(name)
                .ok_or_else(|| cache_error(format!("no {name}")))
        };
        let root = sigstore_tuf::Metadata::<sigstore_tuf::Root>::from_slice(
            metadata("root.json")?.as_bytes(),
        )
        .map_err(|e| cache_error(format!("root.json: {e}")))?;
        let timestamp = sigstore_tuf::Metadata::<sigstore_tuf::Timestamp>::from_slice(
            metadata("timestamp.json")?.as_bytes(),
        )
        .map_err(|e| cache_error(format!("timestamp.json: {e}")))?;
        let snapshot = sigstore_tuf::Metadata::<sigstore_tuf::Snapshot>::from_slice(
            metadata("snapshot.json")?.as_bytes(),
        )
        .map_err(|e| cache_error(format!("snapshot.json: {e}")))?;
        let targets = sigstore_tuf::Metadata::<sigstore_tuf::Targets>::from_slice(
            metadata("targets.json")?.as_bytes(),
        )
        .map_err(|e| cache_error(format!("targets.json: {e}")))?;

        // Not a security boundary (whoever can write the cache can write any file of the user's),
        // but a cache edited by hand or cut short is refused rather than half used.
        let pinned = |name: &str| -> Result<Option<Vec<u8>>, KeylessError> {
            let Some(text) = self.targets.get(name) else {
                return Ok(None);
            };
            let bytes = text.as_bytes();
            let entry = targets
                .signed()
                .targets
                .get(name)
                .ok_or_else(|| cache_error(format!("targets.json does not list {name}")))?;
            let sha256 = entry
                .hashes
                .get("sha256")
                .ok_or_else(|| cache_error(format!("targets.json pins no sha256 for {name}")))?;
            if entry.length != bytes.len() as u64
                || !hex::encode(Sha256::digest(bytes)).eq_ignore_ascii_case(sha256)
            {
                return Err(cache_error(format!(
                    "{name} does not match the hash targets.json pins; run `signet trust update`"
                )));
            }
            Ok(Some(bytes.to_vec()))
        };
        let trusted_root = pinned(TRUSTED_ROOT_TARGET)?
            .ok_or_else(|| cache_error(format!("no {TRUSTED_ROOT_TARGET}")))?;
        let signing_config = pinned(SIGNING_CONFIG_TARGET)?;

        Ok(CachedTrust {
            path: path.to_path_buf(),
            instance,
            tuf_url: self.tuf_url.clone(),
            updated_at: self.updated_at.clone(),
            trusted_root,
            signing_config,
            versions: TufVersions {
                root: root.signed().version,
                timestamp: timestamp.signed().version,
                snapshot: snapshot.signed().version,
                targets: targets.signed().version,
            },
            timestamp_expires: timestamp.signed().expires.to_string(),
        })
    }

    /// Replace the cache file at `path` with this state: a temporary file in the same directory,
    /// written and fsynced, renamed over `path`, and the directory fsynced so the rename itself
    /// is durable. Before the rename nothing at `path` has changed; a failure removes the
    /// temporary file.
    pub(crate) fn store(&self, path: &Path) -> Result<(), KeylessError> {
        let cache_error = |reason: String| KeylessError::TrustCache {
            path: path.to_path_buf(),
            reason,
        };
        let dir = path
            .parent()
            .ok_or_else(|| cache_error("has no parent directory".into()))?;
        create_private_dir(dir).map_err(|e| cache_error(format!("creating the directory: {e}")))?;
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| cache_error(e.to_string()))?;
        let mut temp = tempfile::Builder::new()
            .prefix(".signet-trust-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| cache_error(format!("creating a temporary file: {e}")))?;
        temp.write_all(&bytes)
            .and_then(|()| temp.as_file().sync_all())
            .map_err(|e| cache_error(format!("writing a temporary file: {e}")))?;
        temp.persist(path)
            .map_err(|e| cache_error(format!("renaming into place: {}", e.error)))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| cache_error(format!("syncing the directory: {e}")))?;
        Ok(())
    }
}

/// An exclusive lock on one instance's cache, held for the whole of an update so that two
/// concurrent updates cannot interleave (the later would otherwise overwrite the earlier's newer
/// state with what it verified first). Released on drop.
#[derive(Debug)]
pub(crate) struct CacheLock {
    _file: std::fs::File,
}

impl CacheLock {
    /// Wait for and take the lock of the cache file `path` (a `.lock` file beside it).
    pub(crate) fn acquire(path: &Path) -> Result<CacheLock, KeylessError> {
        let cache_error = |reason: String| KeylessError::TrustCache {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent() {
            create_private_dir(dir)
                .map_err(|e| cache_error(format!("creating the directory: {e}")))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.with_extension("lock"))
            .map_err(|e| cache_error(format!("opening the lock file: {e}")))?;
        file.lock()
            .map_err(|e| cache_error(format!("locking: {e}")))?;
        Ok(CacheLock { _file: file })
    }
}

/// Create `dir` and its parents; new directories are private to the user (0700) where the
/// platform has modes: the cache says which roots this user trusts.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn missing_cache_is_none_and_junk_cache_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TufCache::new(dir.path());
        let found = cache.read(Instance::PublicGood);
        assert!(matches!(found, Ok(None)), "{found:?}");

        let path = cache_file(dir.path(), Instance::PublicGood);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"{\"format\": 1}").unwrap();
        let err = cache.read(Instance::PublicGood).unwrap_err().to_string();
        assert!(
            err.contains("not a signet trust cache") && err.contains("trust/public-good.json"),
            "{err}"
        );
    }

    #[test]
    fn store_replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = cache_file(dir.path(), Instance::GitHub);
        let mut state = CacheState {
            format: CACHE_FORMAT,
            instance: "github".into(),
            tuf_url: "https://tuf-repo.github.com".into(),
            initial_root_sha256: "00".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
            metadata: BTreeMap::new(),
            targets: BTreeMap::new(),
        };
        state.store(&path).unwrap();
        state.updated_at = "2026-01-02T00:00:00Z".into();
        state.store(&path).unwrap();
        assert_eq!(CacheState::load(&path).unwrap(), Some(state));
        let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["github.json".to_string()]);
    }
}
