//! The one error type of `signet-oci`: everything that can stop an image from being read or written.

use std::path::PathBuf;

use crate::Digest;

/// Why an image operation could not be carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A digest string is malformed.
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest {
        /// The text given (truncated).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An image reference is malformed.
    #[error("invalid image reference {input:?}: {reason}")]
    InvalidReference {
        /// The text given (truncated).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Content does not hash to the digest that names it.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked (a blob, a manifest, with its location).
        what: String,
        /// The digest that named it.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// Content does not have the size its descriptor states.
    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was checked.
        what: String,
        /// The size the descriptor states.
        expected: u64,
        /// The size received (or read so far, if longer).
        actual: u64,
    },
    /// Input from outside is larger or more numerous than Signet accepts.
    #[error("{what} exceeds the limit of {limit}")]
    LimitExceeded {
        /// What was too large.
        what: String,
        /// The limit, with its unit.
        limit: String,
    },
    /// A manifest, index or layout file is not what the specs allow.
    #[error("invalid {what}: {reason}")]
    InvalidManifest {
        /// Which document.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The image, tag, manifest or blob does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The operation is not possible on this kind of image location.
    #[error("{0}")]
    Unsupported(String),
    /// The registry could not be reached or answered with an error.
    #[error("registry {registry}: {message}")]
    Registry {
        /// The registry host.
        registry: String,
        /// What happened, including the HTTP status where there was one.
        message: String,
    },
    /// The registry refused our credentials or demanded some we do not have.
    #[error("registry {registry}: authentication failed: {message}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// What the registry said.
        message: String,
    },
    /// The system clock reads a time Signet cannot use (before 1970): nothing that depends on
    /// the current time (key expiry, image age) can be checked.
    #[error("could not check: the system clock reads {seconds_before_epoch} s before 1970")]
    Clock {
        /// How far before the Unix epoch the clock reads.
        seconds_before_epoch: u64,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether this error means "the thing asked for does not exist" (as opposed to "could not look").
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}
