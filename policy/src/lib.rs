//! `signet-policy`: the trust policy. Turns a policy document (Signet YAML/JSON, or a
//! containers-policy.json) into a validated [`Policy`] and evaluates it against [`Evidence`]
//! gathered by the verifier. It does no I/O (key files come through a loader closure), is not
//! async, and never reads the clock (`now` is passed in).
//!
//! ```
//! use signet_policy::{evaluate, Decision, Evidence, Policy};
//! let text = r#"
//! default:
//!   reject: "only listed registries"
//! scopes:
//!   "registry.example.com/public":
//!     accept: true
//! "#;
//! let no_files = |path: &str| -> Result<Vec<u8>, String> { Err(format!("no file {path}")) };
//! let loaded = Policy::load("policy.yaml", text, &no_files).unwrap();
//! let evidence = Evidence {
//!     reference: "registry.example.com/public/app:1".parse().unwrap(),
//!     digest: signet_oci::Digest::sha256(b"{}"),
//!     reference_had_digest: false,
//!     signatures: vec![],
//!     configs: vec![],
//! };
//! let verdict = evaluate(&loaded.policy, &evidence, 1_800_000_000);
//! assert_eq!(verdict.decision, Decision::Allow);
//! assert_eq!(verdict.scope, "registry.example.com/public");
//! ```

pub mod attestation;
pub mod cel;
pub mod certificate;
pub mod config;
pub mod containers;
pub mod diagnostic;
pub mod document;
pub mod error;
pub mod identity;
pub mod key;
pub mod pattern;
pub mod policy;
pub mod signer;
pub mod slsa;
mod tree;
pub mod trust;
pub mod verdict;
pub mod vuln;

pub use attestation::{AttestationEvidence, AttestationInput};
pub use config::ConfigFacts;
pub use diagnostic::{Diagnostic, Severity, Source};
pub use document::{json_schema, Mode, PolicyDocument};
pub use error::Error;
pub use identity::IdentityRule;
pub use key::{KeyId, PublicKey, TrustedKey};
pub use pattern::{PatternKind, Specificity};
pub use policy::{
    detect_format, lint, parse_document, Format, KeyLoader, Loaded, Policy, Prejudgement,
};
pub use trust::{CertificateAuthority, LogSource, Material, SigstoreRoot, TrustSource};
pub use verdict::{
    evaluate, evaluate_with_attestations, explain, judge_claims, Candidate, CertificateEvidence,
    ClaimVerdict, Decision, Evidence, Explanation, Finding, SignatureEvidence, SignatureFormat,
    Signer, TlogEvidence, Verdict,
};
