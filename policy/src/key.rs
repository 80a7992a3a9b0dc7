//! Trusted public keys: ECDSA P-256 keys parsed from PEM, named in the policy, identified by the
//! SHA-256 of their SubjectPublicKeyInfo DER, and optionally retired at a `notAfter` instant.

use std::fmt;

pub use signet_sign::keys::KeyId;

/// Largest PEM public key accepted; a P-256 SPKI PEM is under 200 bytes.
pub const MAX_KEY_PEM_LEN: usize = 16 * 1024;

/// A validated ECDSA P-256 public key (parsed by `signet-sign`, the one place key formats live).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: signet_sign::keys::PublicKey,
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
    /// line endings are both accepted (sigstore-rs writes CRLF); compressed points are refused, as
    /// Go's x509 (behind containers/image and cosign) refuses them.
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, String> {
        if pem.len() > MAX_KEY_PEM_LEN {
            return Err(format!(
                "PEM is {} bytes, over the {MAX_KEY_PEM_LEN}-byte limit",
                pem.len()
            ));
        }
        let key =
            signet_sign::keys::PublicKey::from_pem(pem, "public key").map_err(|e| e.to_string())?;
        let spki_der = key.to_der();
        let id = key.key_id();
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

    /// The key for signature checks.
    pub fn signing_public_key(&self) -> &signet_sign::keys::PublicKey {
        &self.key
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
        assert!(err.contains("not a PEM"), "{err}");
        let err =
            PublicKey::from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .unwrap_err();
        assert!(err.contains("not a DER SubjectPublicKeyInfo"), "{err}");
        // keyA.pub re-encoded by `openssl ec -conv_form compressed`: Go's x509 refuses it.
        let compressed = "-----BEGIN PUBLIC KEY-----\nMDkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDIgACSW5YxCgfSZgY+TA32VrUjQPJlCXV\nQtAUM8oT34o+q+I=\n-----END PUBLIC KEY-----\n";
        let err = PublicKey::from_pem(compressed.as_bytes()).unwrap_err();
        assert!(err.contains("not an uncompressed P-256 point"), "{err}");
    }
}
