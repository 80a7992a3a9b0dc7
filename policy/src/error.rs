//! The crate's one error type: a policy that could not be loaded, or input that could not be parsed.

use crate::diagnostic::Diagnostic;

/// Why a policy could not be loaded or a piece of evidence could not be parsed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The policy has at least one error-level diagnostic; `diagnostics` holds every diagnostic found
    /// (errors and warnings), in source order.
    #[error("policy {file} is invalid: {}", summary(.diagnostics))]
    InvalidPolicy {
        /// The policy file's display name.
        file: String,
        /// Every problem found, not just the first.
        diagnostics: Vec<Diagnostic>,
    },
    /// An image configuration blob is not a usable OCI/Docker image config.
    #[error("image config is invalid: {reason}")]
    InvalidConfig {
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate identity pattern (`--certificate-identity-regexp`, `subjectRegExp`) does not
    /// compile, or is longer than accepted.
    #[error("invalid certificate identity pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as written (truncated to 100 characters).
        pattern: String,
        /// Why it was refused.
        reason: String,
    },
    /// Input is larger than this crate accepts.
    #[error("{what} exceeds the {limit}-byte limit")]
    LimitExceeded {
        /// What was too large.
        what: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
}

fn summary(diagnostics: &[Diagnostic]) -> String {
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.severity == crate::diagnostic::Severity::Error)
        .map(|d| d.to_string())
        .collect();
    match errors.len() {
        0 => "no errors".to_string(),
        1 => errors[0].clone(),
        n => format!("{n} errors: {}", errors.join("; ")),
    }
}
