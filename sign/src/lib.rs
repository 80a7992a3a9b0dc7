//! `signet-sign`: cosign's formats, byte for byte. Encrypted key files, simple-signing payloads,
//! and ECDSA P-256 / SHA-256 signatures over the raw payload bytes. No network, no clock.
//!
//! ```
//! use signet_sign::keys::{EncryptedKeyFile, SigningKey};
//! use signet_sign::payload::SimpleSigningPayload;
//! use signet_sign::signature;
//!
//! let key = SigningKey::generate();
//! let digest = signet_oci::Digest::sha256(b"manifest bytes");
//! let payload = SimpleSigningPayload::new("registry.example/app", digest.clone()).to_bytes();
//! let sig = signature::sign(&key, &payload);
//! signature::verify(&key.public_key(), &payload, &sig).unwrap();
//!
//! // cosign-compatible key file (scrypt N=2^16 + NaCl secretbox), and back.
//! let pem = EncryptedKeyFile::encrypt(&key, b"pw").unwrap();
//! let again = EncryptedKeyFile::decrypt(pem.as_bytes(), b"pw", "cosign.key").unwrap();
//! assert_eq!(again.public_key(), key.public_key());
//! assert_eq!(SimpleSigningPayload::parse_strict(&payload).unwrap().manifest_digest, digest);
//! ```

pub mod dsse;
pub mod error;
pub mod intoto;
mod json;
pub mod keys;
pub mod password;
pub mod payload;
mod pem;
pub mod signature;
pub mod sigstore_json;

pub use error::{Error, PayloadError};
pub use keys::{EncryptedKeyFile, KeyId, PublicKey, SigningKey};
pub use payload::SimpleSigningPayload;
pub use sigstore_json::SigstoreJson;

/// Layer annotation holding the base64 signature over the layer's payload bytes.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Layer annotation holding the PEM signing certificate (Fulcio or private PKI).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Layer annotation holding the PEM certificate chain (intermediates first, root last).
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// Layer annotation holding the Rekor bundle (SignedEntryTimestamp and entry) as JSON text.
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// Layer annotation holding an RFC 3161 timestamp as JSON text.
pub const RFC3161_TIMESTAMP_ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";
/// Media type of a cosign signature layer (whose blob is the simple-signing payload).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
