//! Keyless verification for Signet: Sigstore bundles (v0.1–v0.3), Fulcio certificates, Rekor v1
//! and v2 entries, RFC 3161 timestamps, SCTs and trusted roots — offline and fail closed.
//!
//! The security code lives in the sigstore-rust crates (`sigstore-verify` and friends); this crate
//! wraps them behind Signet's own types and the one [`KeylessError`] enum, and adds the strictness
//! they lack (ARCHITECTURE.md, "keyless", says which check is done where). No third-party type
//! appears in this API.
//!
//! ```no_run
//! use signet_keyless::{Artifact, Bundle, Instance, Signer, Verifier, load_trusted_root};
//! # fn main() -> Result<(), signet_keyless::KeylessError> {
//! let root = load_trusted_root(None, Instance::PublicGood, None)?; // parse once
//! let verifier = Verifier::new(&root)?;
//! let bundle = Bundle::from_file("a.txt.sigstore.json".as_ref())?;
//! let verified = verifier.verify(Artifact::File("a.txt".as_ref()), &bundle, Signer::Certificate)?;
//! // Cryptographically verified; *who* signed is for policy to judge:
//! let claims = verified.certificate.expect("keyless bundles carry a certificate");
//! # let _ = claims; Ok(()) }
//! ```

mod bundle;
pub mod cache;
mod claims;
mod crypto;
mod error;
mod fixed_key;
mod json;
pub mod pki;
mod trust;
pub mod tuf;
mod verify;

pub use bundle::{
    Bundle, BundleVersion, ContentKind, LogEntry, MAX_BUNDLE_BYTES, MAX_BUNDLE_ITEMS,
};
pub use claims::{CertificateClaims, CiClaims, GitHubWorkflowClaims, SubjectName};
#[doc(hidden)]
pub use crypto::set_accelerated as __bench_set_accelerated;
pub use error::{Check, Input, KeylessError};
pub use trust::{
    load_trusted_root, Instance, TrustSource, TrustedRoot, TrustedRootCache, MAX_TRUSTED_ROOT_BYTES,
};
pub use verify::{rfc3339, Artifact, PublicKey, Sha256Digest, Signer, VerifiedBundle, Verifier};
