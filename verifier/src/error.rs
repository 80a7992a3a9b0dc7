//! The one error type of `signet-verifier`: why a sign, verify or copy could not be carried out
//! (as opposed to an outcome such as "no signature verifies", which is a report, not an error).

/// Why an operation could not be carried out. Every variant means "not trusted" to a caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing the image failed.
    #[error(transparent)]
    Image(#[from] signet_oci::Error),
    /// The policy could not be loaded (every diagnostic is inside).
    #[error(transparent)]
    Policy(#[from] signet_policy::Error),
    /// A key could not be read or used.
    #[error(transparent)]
    Key(#[from] signet_sign::Error),
    /// The signature manifest is not one Signet can read or extend without losing data.
    #[error("signature manifest {tag}: {reason}")]
    InvalidSignatureManifest {
        /// The `sha256-<hex>.sig` tag.
        tag: String,
        /// What is wrong with it.
        reason: String,
    },
    /// More signatures (or other items) than Signet examines.
    #[error("{what} exceeds the limit of {limit}")]
    LimitExceeded {
        /// What was too many or too large.
        what: String,
        /// The limit.
        limit: String,
    },
    /// The request cannot be carried out as asked (for example, signing an OCI layout without
    /// naming the identity to sign).
    #[error("{0}")]
    Invalid(String),
    /// Concurrent writers kept replacing the signature manifest; our signature could not be
    /// confirmed as stored.
    #[error("signature manifest {tag}: could not confirm our signature after {attempts} attempts (concurrent writers)")]
    Contended {
        /// The `sha256-<hex>.sig` tag.
        tag: String,
        /// How many read-merge-write rounds were tried.
        attempts: u32,
    },
}

impl Error {
    /// Whether the image (or tag) asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Image(e) if e.is_not_found())
    }
}
