//! Keyless verification for Signet: Sigstore bundles (v0.1–v0.3), Fulcio certificates, Rekor v1
//! and v2 entries, RFC 3161 timestamps, SCTs and trusted roots — offline and fail closed.
//!
//! The security code lives in the sigstore-rust crates (`sigstore-verify` and friends); this crate
//! wraps them behind Signet's own types and the one [`KeylessError`] enum, and adds the strictness
//! they lack (see ARCHITECTURE.md, "keyless").

mod error;

pub use error::KeylessError;
