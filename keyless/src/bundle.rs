//! Sigstore bundles (v0.1, v0.2, v0.3; both v0.3 media-type spellings), read with bounds.

use std::path::Path;

use sigstore_types::bundle::VerificationMaterialContent;
use sigstore_types::{KindVersion, SignatureContent};

use crate::error::{Input, KeylessError};

/// The most bytes read from a bundle file (real bundles are a few KiB; a DSSE payload may be
/// larger, but not this large).
pub const MAX_BUNDLE_BYTES: u64 = 16 * 1024 * 1024;
/// The most transparency-log entries, RFC 3161 timestamps and chain certificates in one bundle:
/// real bundles carry one or two of each; each more is work for an attacker to hand us.
pub const MAX_BUNDLE_ITEMS: usize = 8;

/// A parsed Sigstore bundle. Parsing checks the shape only; nothing here is verified yet.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub(crate) inner: sigstore_types::Bundle,
}

/// The bundle format version, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleVersion {
    /// `application/vnd.dev.sigstore.bundle+json;version=0.1`
    V0_1,
    /// `application/vnd.dev.sigstore.bundle+json;version=0.2`
    V0_2,
    /// `application/vnd.dev.sigstore.bundle.v0.3+json` (or `…+json;version=0.3`)
    V0_3,
}

impl BundleVersion {
    /// `0.1`, `0.2` or `0.3`.
    pub fn as_str(self) -> &'static str {
        match self {
            BundleVersion::V0_1 => "0.1",
            BundleVersion::V0_2 => "0.2",
            BundleVersion::V0_3 => "0.3",
        }
    }
}

/// What the bundle signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// A signature over the artifact's bytes (Rekor `hashedrekord`).
    MessageSignature,
    /// A DSSE envelope (an in-toto statement whose subject names the artifact).
    Dsse,
}

/// One transparency-log entry as the bundle describes it (unverified until
/// [`crate::Verifier::verify`] succeeds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// `hashedrekord`, `dsse` or `intoto`.
    pub kind: &'static str,
    /// The entry version (`0.0.1`, `0.0.2`).
    pub version: &'static str,
    /// Index of the entry in its log.
    pub log_index: u64,
    /// The log's key id (hex SHA-256 of its public key).
    pub log_id: String,
    /// Whether this is a Rekor v2 entry (no integrated time; needs an RFC 3161 timestamp).
    pub rekor_v2: bool,
    /// The SET-carried integrated time (Rekor v1), in Unix seconds.
    pub integrated_time: Option<i64>,
}

impl Bundle {
    /// Parse a bundle. Malformed JSON, unknown media types or entry kinds, junk base64 or DER,
    /// deeper nesting than 32 or more than [`MAX_BUNDLE_ITEMS`] entries, timestamps or chain
    /// certificates are [`KeylessError::Malformed`] (exit 2).
    pub fn from_json(json: &[u8]) -> Result<Self, KeylessError> {
        crate::crypto::ensure_provider();
        if json.len() as u64 > MAX_BUNDLE_BYTES {
            return Err(KeylessError::TooLarge {
                input: Input::Bundle,
                limit: MAX_BUNDLE_BYTES,
            });
        }
        crate::json::check_depth(json, Input::Bundle)?;
        let text = std::str::from_utf8(json)
            .map_err(|_| KeylessError::malformed(Input::Bundle, "not UTF-8"))?;
        let inner = sigstore_types::Bundle::from_json(text)
            .map_err(|e| KeylessError::malformed(Input::Bundle, e))?;
        let material = &inner.verification_material;
        let chain_len = match &material.content {
            VerificationMaterialContent::X509CertificateChain { certificates } => {
                certificates.len()
            }
            _ => 1,
        };
        for (what, count) in [
            ("transparency-log entries", material.tlog_entries.len()),
            (
                "RFC 3161 timestamps",
                material
                    .timestamp_verification_data
                    .rfc3161_timestamps
                    .len(),
            ),
            ("chain certificates", chain_len),
        ] {
            if count > MAX_BUNDLE_ITEMS {
                return Err(KeylessError::malformed(
                    Input::Bundle,
                    format!("{count} {what} (at most {MAX_BUNDLE_ITEMS})"),
                ));
            }
        }
        if !matches!(
            inner.content,
            SignatureContent::MessageSignature(_) | SignatureContent::DsseEnvelope(_)
        ) {
            return Err(KeylessError::malformed(
                Input::Bundle,
                "neither a message signature nor a DSSE envelope",
            ));
        }
        Ok(Bundle { inner })
    }

    /// Read and parse a bundle file (bounded to [`MAX_BUNDLE_BYTES`]).
    pub fn from_file(path: &Path) -> Result<Self, KeylessError> {
        let json = crate::json::read_bounded(path, MAX_BUNDLE_BYTES, Input::Bundle)?;
        Bundle::from_json(&json)
    }

    /// The bundle format version.
    pub fn version(&self) -> BundleVersion {
        match self.inner.media_type {
            sigstore_types::MediaType::Bundle0_1 => BundleVersion::V0_1,
            sigstore_types::MediaType::Bundle0_2 => BundleVersion::V0_2,
            _ => BundleVersion::V0_3,
        }
    }

    /// What the bundle signs.
    pub fn content_kind(&self) -> ContentKind {
        match self.inner.content {
            SignatureContent::DsseEnvelope(_) => ContentKind::Dsse,
            _ => ContentKind::MessageSignature,
        }
    }

    /// Whether the signer is a certificate (keyless) rather than a public-key hint (managed key).
    pub fn has_certificate(&self) -> bool {
        self.inner.signing_certificate().is_some()
    }

    /// The DSSE payload type and payload, for DSSE bundles (unverified until
    /// [`crate::Verifier::verify`] succeeds).
    pub fn dsse_payload(&self) -> Option<(&str, &[u8])> {
        match &self.inner.content {
            SignatureContent::DsseEnvelope(envelope) => {
                Some((envelope.payload_type.as_str(), envelope.payload.as_bytes()))
            }
            _ => None,
        }
    }

    /// The transparency-log entries the bundle carries.
    pub fn log_entries(&self) -> Vec<LogEntry> {
        self.inner
            .verification_material
            .tlog_entries
            .iter()
            .map(|entry| LogEntry {
                kind: entry.kind_version.kind(),
                version: entry.kind_version.version(),
                log_index: entry.log_index.get(),
                log_id: hex::encode(entry.log_id.key_id.as_bytes()),
                rekor_v2: entry.kind_version == KindVersion::HashedRekordV002,
                integrated_time: entry.integrated_time.map(|t| t.as_second()),
            })
            .collect()
    }

    /// How many RFC 3161 timestamps the bundle carries.
    pub fn timestamp_count(&self) -> usize {
        self.inner
            .verification_material
            .timestamp_verification_data
            .rfc3161_timestamps
            .len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn malformed_reason(json: &[u8]) -> String {
        match Bundle::from_json(json) {
            Err(KeylessError::Malformed {
                input: Input::Bundle,
                reason,
            }) => reason,
            other => panic!("expected a malformed bundle, got {other:?}"),
        }
    }

    #[test]
    fn junk_is_malformed_with_a_reason() {
        assert!(!malformed_reason(b"{").is_empty());
        assert!(malformed_reason(b"\xff\xfe").contains("UTF-8"));
        assert!(malformed_reason(
            br#"{"mediaType":"application/vnd.dev.sigstore.bundle+json;version=9.9"}"#
        )
        .contains("9.9"));
        let deep = format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        assert!(malformed_reason(deep.as_bytes()).contains("nested deeper"));
    }

    #[test]
    fn oversized_bundles_are_refused_before_parsing() {
        let big = vec![b' '; MAX_BUNDLE_BYTES as usize + 1];
        assert!(matches!(
            Bundle::from_json(&big),
            Err(KeylessError::TooLarge {
                input: Input::Bundle,
                ..
            })
        ));
    }
}
