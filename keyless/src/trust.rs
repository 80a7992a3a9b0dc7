//! Trust material: Sigstore's `trusted_root.json` (Fulcio CAs, Rekor v1/v2 logs, CT logs,
//! timestamp authorities, each with its validity window).
//!
//! Where a root comes from, in order: an explicit file (`--trusted-root`), then the TUF-refreshed
//! cache of `signet trust update` (a [`TrustedRootCache`]), then the snapshot embedded in this
//! binary. [`load_trusted_root`] is the one place that order is decided. Loading never touches
//! the network.

use std::path::{Path, PathBuf};

use sha2::Digest as _;

use crate::error::{Input, KeylessError};

/// The most bytes read from a `trusted_root.json` (the public-good root is ~7 KiB).
pub const MAX_TRUSTED_ROOT_BYTES: u64 = 1024 * 1024;

/// A Sigstore instance whose root Signet ships and refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Instance {
    /// The public-good instance (fulcio.sigstore.dev, rekor.sigstore.dev).
    PublicGood,
    /// GitHub's instance (artifact attestations of private repositories).
    GitHub,
}

impl Instance {
    /// The name used on the command line and in cache paths: `public-good`, `github`.
    pub fn name(self) -> &'static str {
        match self {
            Instance::PublicGood => "public-good",
            Instance::GitHub => "github",
        }
    }

    /// The `trusted_root.json` snapshot embedded in Signet (see keyless/README.md for its
    /// provenance and hash).
    pub fn embedded_json(self) -> &'static str {
        match self {
            Instance::PublicGood => sigstore_trust_root::SIGSTORE_PRODUCTION_TRUSTED_ROOT,
            Instance::GitHub => sigstore_trust_root::SIGSTORE_GITHUB_TRUSTED_ROOT,
        }
    }
}

impl std::str::FromStr for Instance {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "public-good" => Ok(Instance::PublicGood),
            "github" => Ok(Instance::GitHub),
            other => Err(format!(
                "unknown Sigstore instance {other:?} (public-good or github)"
            )),
        }
    }
}

impl std::fmt::Display for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a [`TrustedRoot`] was read from (reported, and part of cache keys via its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustSource {
    /// An explicit file.
    File(PathBuf),
    /// The TUF-refreshed cache, for this instance.
    Cache {
        /// The instance the cache entry belongs to.
        instance: Instance,
        /// The cached file.
        path: PathBuf,
    },
    /// The snapshot embedded in the binary.
    Embedded(Instance),
}

impl std::fmt::Display for TrustSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrustSource::File(path) => write!(f, "file {}", path.display()),
            TrustSource::Cache { instance, path } => {
                write!(f, "{instance} root from the TUF cache {}", path.display())
            }
            TrustSource::Embedded(instance) => write!(f, "embedded {instance} root"),
        }
    }
}

/// A parsed, validated Sigstore trusted root.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    pub(crate) inner: sigstore_trust_root::TrustedRoot,
    source: TrustSource,
    sha256: String,
}

impl TrustedRoot {
    /// Parse a `trusted_root.json` document. Malformed JSON, missing validity starts, unknown
    /// key types and similar are [`KeylessError::Malformed`] with [`Input::TrustedRoot`].
    pub fn from_json(json: &[u8], source: TrustSource) -> Result<Self, KeylessError> {
        crate::crypto::ensure_provider();
        if json.len() as u64 > MAX_TRUSTED_ROOT_BYTES {
            return Err(KeylessError::TooLarge {
                input: Input::TrustedRoot,
                limit: MAX_TRUSTED_ROOT_BYTES,
            });
        }
        crate::json::check_depth(json, Input::TrustedRoot)?;
        let text = std::str::from_utf8(json)
            .map_err(|_| KeylessError::malformed(Input::TrustedRoot, "not UTF-8"))?;
        let inner = sigstore_trust_root::TrustedRoot::from_json(text)
            .map_err(|e| KeylessError::malformed(Input::TrustedRoot, e))?;
        // Building a verifier checks every key, certificate and validity window once; a root
        // that cannot make one is malformed, whatever bundle it is later used with.
        sigstore_verify::Verifier::new(&inner)
            .map_err(|e| KeylessError::malformed(Input::TrustedRoot, e))?;
        Ok(TrustedRoot {
            inner,
            source,
            sha256: hex::encode(sha2::Sha256::digest(json)),
        })
    }

    /// Read and parse a `trusted_root.json` file (bounded to [`MAX_TRUSTED_ROOT_BYTES`]).
    pub fn from_file(path: &Path) -> Result<Self, KeylessError> {
        let json = crate::json::read_bounded(path, MAX_TRUSTED_ROOT_BYTES, Input::TrustedRoot)?;
        TrustedRoot::from_json(&json, TrustSource::File(path.to_path_buf()))
    }

    /// The snapshot of `instance`'s root embedded in Signet.
    pub fn embedded(instance: Instance) -> Result<Self, KeylessError> {
        TrustedRoot::from_json(
            instance.embedded_json().as_bytes(),
            TrustSource::Embedded(instance),
        )
    }

    /// Where this root was read from.
    pub fn source(&self) -> &TrustSource {
        &self.source
    }

    /// SHA-256 (hex) of the document's bytes: identifies the trust material in cache keys and
    /// reports.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Whether the root lists any transparency log (GitHub's root lists none: its private
    /// attestations are timestamped by its TSAs instead of logged).
    pub fn has_tlogs(&self) -> bool {
        !self.inner.tlogs.is_empty()
    }

    /// Whether the root lists any certificate-transparency log. Without one, a certificate
    /// must carry no SCT at all (evidence Signet cannot check is refused, not ignored).
    pub fn has_ct_logs(&self) -> bool {
        !self.inner.ctlogs.is_empty()
    }
}

/// A source of TUF-refreshed roots (implemented by `signet trust update`'s cache). `Ok(None)`
/// means "nothing cached for this instance": the loader falls back to the embedded snapshot. An
/// `Err` (a cache entry that exists but fails its checks) is not a fallback: the loader fails
/// closed rather than silently using older trust material.
pub trait TrustedRootCache {
    /// The cached `trusted_root.json` bytes for `instance` and the file they came from.
    fn cached_trusted_root(
        &self,
        instance: Instance,
    ) -> Result<Option<(PathBuf, Vec<u8>)>, KeylessError>;
}

/// Load the trusted root to verify with: `file` if given, else the cache's copy for `instance`,
/// else the embedded snapshot of `instance`.
pub fn load_trusted_root(
    file: Option<&Path>,
    instance: Instance,
    cache: Option<&dyn TrustedRootCache>,
) -> Result<TrustedRoot, KeylessError> {
    if let Some(path) = file {
        return TrustedRoot::from_file(path);
    }
    if let Some(cache) = cache {
        if let Some((path, json)) = cache.cached_trusted_root(instance)? {
            return TrustedRoot::from_json(&json, TrustSource::Cache { instance, path });
        }
    }
    TrustedRoot::embedded(instance)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    struct FixedCache(Option<Vec<u8>>);

    impl TrustedRootCache for FixedCache {
        fn cached_trusted_root(
            &self,
            _instance: Instance,
        ) -> Result<Option<(PathBuf, Vec<u8>)>, KeylessError> {
            Ok(self
                .0
                .clone()
                .map(|json| (PathBuf::from("/cache/trusted_root.json"), json)))
        }
    }

    #[test]
    fn both_embedded_roots_parse_and_differ() {
        let good = TrustedRoot::embedded(Instance::PublicGood).unwrap();
        let github = TrustedRoot::embedded(Instance::GitHub).unwrap();
        assert_ne!(good.sha256(), github.sha256());
        assert!(good.has_ct_logs());
        assert_eq!(good.source(), &TrustSource::Embedded(Instance::PublicGood));
    }

    #[test]
    fn embedded_roots_match_the_recorded_hashes() {
        // keyless/README.md records these; a crate bump must update the provenance table.
        assert_eq!(
            TrustedRoot::embedded(Instance::PublicGood)
                .unwrap()
                .sha256(),
            "6494e21ea73fa7ee769f85f57d5a3e6a08725eae1e38c755fc3517c9e6bc0b66"
        );
        assert_eq!(
            TrustedRoot::embedded(Instance::GitHub).unwrap().sha256(),
            "484cdfe1a7c65479c5ba2a22193d1be90f0020db1997de696ab207434c62fbb7"
        );
    }

    #[test]
    fn cache_beats_embedded_and_file_beats_cache() {
        let github = Instance::GitHub.embedded_json().as_bytes().to_vec();
        let cache = FixedCache(Some(github));
        let root = load_trusted_root(None, Instance::PublicGood, Some(&cache)).unwrap();
        assert!(matches!(root.source(), TrustSource::Cache { .. }));
        assert_eq!(
            root.sha256(),
            TrustedRoot::embedded(Instance::GitHub).unwrap().sha256()
        );
        let empty = FixedCache(None);
        let root = load_trusted_root(None, Instance::PublicGood, Some(&empty)).unwrap();
        assert_eq!(root.source(), &TrustSource::Embedded(Instance::PublicGood));

        let dir = std::env::temp_dir().join(format!("signet-keyless-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("root.json");
        std::fs::write(&file, Instance::PublicGood.embedded_json()).unwrap();
        let root = load_trusted_root(Some(&file), Instance::GitHub, Some(&cache)).unwrap();
        assert_eq!(root.source(), &TrustSource::File(file.clone()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_broken_cache_entry_fails_closed() {
        let cache = FixedCache(Some(b"{\"mediaType\": 7}".to_vec()));
        let err = load_trusted_root(None, Instance::PublicGood, Some(&cache)).unwrap_err();
        assert!(
            matches!(
                err,
                KeylessError::Malformed {
                    input: Input::TrustedRoot,
                    ..
                }
            ),
            "{err}"
        );
    }
}
