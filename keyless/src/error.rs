//! The one error type of signet-keyless.

/// Why a keyless verification could not be carried out or did not verify.
#[derive(Debug, thiserror::Error)]
pub enum KeylessError {
    /// The input (bundle, trusted root, key, digest) is malformed: exit 2.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was malformed ("bundle", "trusted root", ...).
        what: &'static str,
        /// Why, in one line.
        reason: String,
    },
    /// The bundle is well formed but does not verify: exit 12.
    #[error("not verified: {0}")]
    NotVerified(String),
}
