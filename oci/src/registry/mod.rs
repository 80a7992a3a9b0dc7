//! A bounded, digest-checking client for the OCI distribution API (pull and push), with docker and
//! containers auth files, basic and bearer-token auth, and plain HTTP only for loopback hosts or
//! hosts named explicitly.

use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

use crate::{Descriptor, Digest, Error, Manifest, Reference};

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
        }
    }
}

/// A client for any number of registries; cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct RegistryClient {
    options: std::sync::Arc<RegistryOptions>,
}

impl RegistryClient {
    /// A client with `options`.
    pub fn new(options: RegistryOptions) -> Result<RegistryClient, Error> {
        Ok(RegistryClient {
            options: std::sync::Arc::new(options),
        })
    }

    /// The options this client was made with.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// GET the manifest `reference` names (by digest if it has one, else by tag). The bytes are
    /// size-bounded and, when the reference has a digest, checked against it.
    pub async fn get_manifest(&self, reference: &Reference) -> Result<FetchedManifest, Error> {
        Err(Error::Unsupported(format!(
            "get_manifest {reference}: not implemented yet"
        )))
    }

    /// HEAD the manifest `reference` names: its descriptor, or `None` if it does not exist.
    pub async fn head_manifest(&self, reference: &Reference) -> Result<Option<Descriptor>, Error> {
        Err(Error::Unsupported(format!(
            "head_manifest {reference}: not implemented yet"
        )))
    }

    /// PUT `bytes` as a manifest of `media_type` in `reference`'s repository under `reference`'s
    /// tag (or digest). Returns the digest of `bytes`.
    pub async fn put_manifest(
        &self,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, Error> {
        let _ = (bytes, media_type);
        Err(Error::Unsupported(format!(
            "put_manifest {reference}: not implemented yet"
        )))
    }

    /// GET a blob of `reference`'s repository as a stream. The stream ends in an error if the bytes
    /// do not match `descriptor`'s digest or size (the caller never sees a completed bad blob).
    pub async fn get_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
    ) -> Result<ByteStream, Error> {
        Err(Error::Unsupported(format!(
            "get_blob {reference} {}: not implemented yet",
            descriptor.digest
        )))
    }

    /// GET a small blob whole (at most `max_bytes`), checked against `descriptor`.
    pub async fn get_blob_bytes(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        max_bytes: u64,
    ) -> Result<Vec<u8>, Error> {
        let _ = max_bytes;
        Err(Error::Unsupported(format!(
            "get_blob_bytes {reference} {}: not implemented yet",
            descriptor.digest
        )))
    }

    /// Whether the blob `digest` exists in `reference`'s repository.
    pub async fn has_blob(&self, reference: &Reference, digest: &Digest) -> Result<bool, Error> {
        Err(Error::Unsupported(format!(
            "has_blob {reference} {digest}: not implemented yet"
        )))
    }

    /// Upload `bytes` as a blob to `reference`'s repository in one request (skipped if present).
    pub async fn put_blob(&self, reference: &Reference, bytes: Bytes) -> Result<Digest, Error> {
        let _ = bytes;
        Err(Error::Unsupported(format!(
            "put_blob {reference}: not implemented yet"
        )))
    }

    /// Upload a blob of known digest and size from a stream, in chunks (skipped if present).
    pub async fn put_blob_stream(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        stream: ByteStream,
    ) -> Result<(), Error> {
        let _ = stream;
        Err(Error::Unsupported(format!(
            "put_blob_stream {reference} {}: not implemented yet",
            descriptor.digest
        )))
    }

    /// The tags of `reference`'s repository.
    pub async fn list_tags(&self, reference: &Reference) -> Result<Vec<String>, Error> {
        Err(Error::Unsupported(format!(
            "list_tags {reference}: not implemented yet"
        )))
    }
}
