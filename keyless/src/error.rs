//! The one error type of signet-keyless.
//!
//! Two families, because the CLI exits differently for them: the input could not be read as what
//! it claims to be ([`KeylessError::is_malformed_input`]: exit 2), or it was read and does not
//! verify (exit 12). Messages are one line, bounded, and never carry key material.

/// What kind of input a malformed-input error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A Sigstore bundle.
    Bundle,
    /// A `trusted_root.json`.
    TrustedRoot,
    /// A PEM public key (`--key`).
    PublicKey,
    /// An artifact digest (`sha256:<hex>`).
    Digest,
    /// The artifact itself.
    Artifact,
    /// A TUF repository URL (`signet trust update --tuf-url`).
    TufUrl,
    /// A TUF initial root (`signet trust update --tuf-root`).
    TufRoot,
    /// A PEM file of CA certificates for HTTPS.
    CaFile,
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Input::Bundle => "bundle",
            Input::TrustedRoot => "trusted root",
            Input::PublicKey => "public key",
            Input::Digest => "artifact digest",
            Input::Artifact => "artifact",
            Input::TufUrl => "TUF URL",
            Input::TufRoot => "TUF initial root",
            Input::CaFile => "CA file",
        })
    }
}

/// Which part of a verification refused the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The bundle's structure (version rules, missing or surplus material).
    Bundle,
    /// The signature over the artifact or the DSSE envelope.
    Signature,
    /// The bundle (message digest, in-toto subject) does not describe the artifact.
    Artifact,
    /// The signing certificate: chain, validity at the verified time, EKU, profile.
    Certificate,
    /// The certificate's signed certificate timestamp.
    CertificateTransparency,
    /// A transparency-log entry: SET, inclusion proof, checkpoint, consistency with the bundle.
    TransparencyLog,
    /// An RFC 3161 timestamp, or no verified time at all.
    Timestamp,
    /// The bundle uses something Signet does not verify (refused, never skipped).
    Unsupported,
    /// The trust material cannot verify this bundle (empty or invalid for it).
    TrustMaterial,
}

impl Check {
    /// Stable kebab-case code for reports and JSON output.
    pub fn code(self) -> &'static str {
        match self {
            Check::Bundle => "bundle-invalid",
            Check::Signature => "signature-invalid",
            Check::Artifact => "artifact-mismatch",
            Check::Certificate => "certificate-invalid",
            Check::CertificateTransparency => "sct-invalid",
            Check::TransparencyLog => "tlog-invalid",
            Check::Timestamp => "timestamp-invalid",
            Check::Unsupported => "unsupported",
            Check::TrustMaterial => "trust-material-invalid",
        }
    }
}

/// Why a keyless verification could not be carried out or did not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeylessError {
    /// The input could not be read as what it claims to be.
    #[error("malformed {input}: {reason}")]
    Malformed {
        /// Which input.
        input: Input,
        /// Why, in one line.
        reason: String,
    },
    /// The input is larger than Signet reads.
    #[error("{input} larger than {limit} bytes")]
    TooLarge {
        /// Which input.
        input: Input,
        /// The bound.
        limit: u64,
    },
    /// A file could not be read.
    #[error("cannot read {input} {path}: {source}")]
    Read {
        /// Which input.
        input: Input,
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bundle was read and does not verify.
    #[error("not verified ({}): {detail}", check.code())]
    NotVerified {
        /// Which check refused it.
        check: Check,
        /// One line of detail.
        detail: String,
    },
    /// `signet trust update`: TUF metadata (or a target it pins) was refused; the cache is as it
    /// was.
    #[error("TUF update refused: {role} metadata ({file}): {reason}; the trust cache was left as it was")]
    TufRefused {
        /// The TUF role whose metadata failed ("root", "timestamp", "snapshot", "targets").
        role: String,
        /// The file being checked when it failed (e.g. `3.snapshot.json`).
        file: String,
        /// Why, in one line.
        reason: String,
    },
    /// `signet trust update`: the TUF repository could not be read (connection, status, size,
    /// time-out); the cache is as it was.
    #[error("TUF repository: {0}; the trust cache was left as it was")]
    TufFetch(String),
    /// The trust cache of `signet trust update` could not be read or written, or is not
    /// consistent (fail closed: never a silent fallback to the embedded root).
    #[error("trust cache {}: {reason}", path.display())]
    TrustCache {
        /// The cache file.
        path: std::path::PathBuf,
        /// Why, in one line.
        reason: String,
    },
}

impl KeylessError {
    /// True when the input itself is unusable (exit 2), false when it was read and refused
    /// (exit 12).
    pub fn is_malformed_input(&self) -> bool {
        !matches!(self, KeylessError::NotVerified { .. })
    }

    /// The check that refused the bundle, when it was refused.
    pub fn check(&self) -> Option<Check> {
        match self {
            KeylessError::NotVerified { check, .. } => Some(*check),
            _ => None,
        }
    }

    pub(crate) fn malformed(input: Input, reason: impl std::fmt::Display) -> Self {
        KeylessError::Malformed {
            input,
            reason: one_line(&reason.to_string()),
        }
    }

    pub(crate) fn refused(check: Check, detail: impl std::fmt::Display) -> Self {
        KeylessError::NotVerified {
            check,
            detail: one_line(&detail.to_string()),
        }
    }
}

/// Third-party messages may span lines or quote attacker-controlled text at length: one line,
/// at most 300 characters.
fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn details_are_one_bounded_line() {
        let e = KeylessError::refused(Check::Signature, format!("a\nb {}", "x".repeat(1000)));
        let text = e.to_string();
        assert!(!text.contains('\n'));
        assert!(text.starts_with("not verified (signature-invalid): a b x"));
        assert!(text.chars().count() < 360, "{}", text.len());
        assert!(!e.is_malformed_input());
        assert!(KeylessError::malformed(Input::Bundle, "junk").is_malformed_input());
    }
}
