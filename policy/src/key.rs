//! Trusted public keys: ECDSA P-256 keys parsed from PEM, named in the policy, identified by the
//! SHA-256 of their SubjectPublicKeyInfo DER, and optionally retired at a `notAfter` instant.

use std::fmt;

use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// Largest PEM public key accepted; a P-256 SPKI PEM is under 200 bytes.
pub const MAX_KEY_PEM_LEN: usize = 16 * 1024;

/// Identifies a public key: lowercase hex SHA-256 of its SubjectPublicKeyInfo DER.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// The id of a key given as SubjectPublicKeyInfo DER bytes.
    pub fn of_spki_der(der: &[u8]) -> KeyId {
        KeyId(hex::encode(Sha256::digest(der)))
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", &self.0)
    }
}

impl std::str::FromStr for KeyId {
    type Err = String;

    fn from_str(s: &str) -> Result<KeyId, String> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(KeyId(s.to_string()))
        } else {
            Err(format!("key id must be 64 lowercase hex digits: {s:?}"))
        }
    }
}

/// A validated ECDSA P-256 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: p256::PublicKey,
    spki_der: Vec<u8>,
    id: KeyId,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

impl PublicKey {
    /// Parse a PEM `PUBLIC KEY` (PKIX SubjectPublicKeyInfo) holding an ECDSA P-256 key. LF and CRLF
    /// line endings are both accepted (sigstore-rs writes CRLF).
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, String> {
        if pem.len() > MAX_KEY_PEM_LEN {
            return Err(format!(
                "PEM is {} bytes, over the {MAX_KEY_PEM_LEN}-byte limit",
                pem.len()
            ));
        }
        let text = std::str::from_utf8(pem).map_err(|_| "PEM is not UTF-8 text".to_string())?;
        let normalized = text.replace("\r\n", "\n");
        let trimmed = normalized.trim();
        if !trimmed.starts_with("-----BEGIN PUBLIC KEY-----") {
            let label = trimmed
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(60)
                .collect::<String>();
            return Err(format!(
                "expected a PEM \"PUBLIC KEY\" block, found {label:?}"
            ));
        }
        let key = p256::PublicKey::from_public_key_pem(trimmed)
            .map_err(|e| format!("not an ECDSA P-256 public key: {e}"))?;
        let spki_der = key
            .to_public_key_der()
            .map_err(|e| format!("cannot encode the public key: {e}"))?
            .as_bytes()
            .to_vec();
        // Go's x509 (behind containers/image and cosign) accepts only uncompressed points; a key
        // they cannot load must not be trusted here either.
        let (_, written) = p256::pkcs8::der::Document::from_pem(trimmed)
            .map_err(|e| format!("not an ECDSA P-256 public key: {e}"))?;
        if written.as_bytes() != spki_der.as_slice() {
            return Err("the public key is not in uncompressed SubjectPublicKeyInfo form".into());
        }
        let id = KeyId::of_spki_der(&spki_der);
        Ok(PublicKey { key, spki_der, id })
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The key as a `p256` ECDSA verifying key, for the verifier's signature checks.
    pub fn verifying_key(&self) -> p256::ecdsa::VerifyingKey {
        p256::ecdsa::VerifyingKey::from(&self.key)
    }
}

/// A key the policy trusts, under its policy name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// The name the policy gives it (`release`, `key-1`).
    pub name: String,
    /// The key itself.
    pub key: PublicKey,
    /// Signatures by this key count only while `now < not_after` (unix seconds).
    pub not_after: Option<i64>,
}

impl TrustedKey {
    /// Whether the key may vouch for an image at `now` (unix seconds).
    pub fn is_valid_at(&self, now: i64) -> bool {
        self.not_after.is_none_or(|end| now < end)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const KEY_A: &str = include_str!("../../testdata/policies/keys/keyA.pub");
    const KEY_R_CRLF: &str = include_str!("../../testdata/policies/keys/keyR.pub");

    #[test]
    fn parses_lf_and_crlf_keys_and_ids_are_spki_hashes() {
        let a = PublicKey::from_pem(KEY_A.as_bytes()).unwrap();
        let r = PublicKey::from_pem(KEY_R_CRLF.as_bytes()).unwrap();
        assert_ne!(a.id(), r.id());
        assert_eq!(a.id(), &KeyId::of_spki_der(a.spki_der()));
        assert_eq!(a.id().as_str().len(), 64);
        assert_eq!(a.spki_der().len(), 91);
        // `openssl pkey -pubin -in keyA.pub -outform DER | sha256sum`
        assert_eq!(
            a.id().as_str(),
            "62a82031f98cb62324e0d6cb3a8f5e8a0c59ebc89f9bc84f92166dd7c6814db3"
        );
    }

    #[test]
    fn rejects_non_keys() {
        let err = PublicKey::from_pem(b"hello").unwrap_err();
        assert!(err.contains("expected a PEM"), "{err}");
        let err =
            PublicKey::from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .unwrap_err();
        assert!(err.contains("not an ECDSA P-256"), "{err}");
        // keyA.pub re-encoded by `openssl ec -conv_form compressed`: Go's x509 refuses it.
        let compressed = "-----BEGIN PUBLIC KEY-----\nMDkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDIgACSW5YxCgfSZgY+TA32VrUjQPJlCXV\nQtAUM8oT34o+q+I=\n-----END PUBLIC KEY-----\n";
        let err = PublicKey::from_pem(compressed.as_bytes()).unwrap_err();
        assert!(err.contains("uncompressed"), "{err}");
    }
}
