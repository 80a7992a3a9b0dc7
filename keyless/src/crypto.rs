//! The cryptographic backend handed to sigstore-crypto.
//!
//! sigstore-crypto ships only an aws-lc-rs backend; building aws-lc on our two cores costs minutes,
//! and ring is already in the tree for rustls. ring verifies whole messages (ECDSA P-256/P-384,
//! Ed25519, RSA PKCS#1 v1.5 and PSS); it has no prehashed verification, which sigstore-verify uses
//! for every ECDSA/RSA message signature (the artifact may be given only by its digest), so that
//! part comes from RustCrypto (`p256`, `p384`, `rsa`). ML-DSA is not supported: such a signature is
//! refused (fail closed), never accepted.

use sha2::Digest as _;
use sigstore_crypto::{CryptoProvider, HashContext, SigningScheme};
use sigstore_types::HashAlgorithm;
use std::sync::Once;

/// Verification-only provider: ring + RustCrypto.
#[derive(Debug)]
struct RingProvider;

static PROVIDER: RingProvider = RingProvider;
static INSTALL: Once = Once::new();

/// Install our provider as sigstore-crypto's process-wide default (idempotent). Called by every
/// public entry point before any sigstore code can reach for a provider; without one,
/// sigstore-crypto would panic.
pub(crate) fn ensure_provider() {
    INSTALL.call_once(|| {
        // An `Err` means a provider is already installed (by the embedding program); keep it.
        let _ = sigstore_crypto::install_default_provider(&PROVIDER);
    });
}

fn failed(scheme: SigningScheme) -> sigstore_crypto::Error {
    sigstore_crypto::Error::Verification(format!("{} signature invalid", scheme.name()))
}

fn unsupported(scheme: SigningScheme) -> sigstore_crypto::Error {
    sigstore_crypto::Error::UnsupportedAlgorithm(format!(
        "{} is not supported by Signet's verifier",
        scheme.name()
    ))
}

enum Hasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl HashContext for Hasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(data),
            Self::Sha384(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
        }
    }

    fn finalize(self: Box<Self>) -> Vec<u8> {
        match *self {
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha384(h) => h.finalize().to_vec(),
            Self::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

impl CryptoProvider for RingProvider {
    fn hash(&self, algorithm: HashAlgorithm) -> sigstore_crypto::Result<Box<dyn HashContext>> {
        Ok(Box::new(match algorithm {
            HashAlgorithm::Sha2256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha2384 => Hasher::Sha384(sha2::Sha384::new()),
            HashAlgorithm::Sha2512 => Hasher::Sha512(sha2::Sha512::new()),
            other => {
                return Err(sigstore_crypto::Error::UnsupportedAlgorithm(format!(
                    "cannot compute {other} digests"
                )))
            }
        }))
    }

    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(data).into()
    }

    fn sha384(&self, data: &[u8]) -> [u8; 48] {
        sha2::Sha384::digest(data).into()
    }

    fn sha512(&self, data: &[u8]) -> [u8; 64] {
        sha2::Sha512::digest(data).into()
    }

    fn verify_raw(
        &self,
        scheme: SigningScheme,
        spki_pubkey_bytes: &[u8],
        data: &[u8],
        signature: &[u8],
    ) -> sigstore_crypto::Result<()> {
        use ring::signature as rs;
        let algorithm: &'static dyn rs::VerificationAlgorithm = match scheme {
            SigningScheme::EcdsaP256Sha256 => &rs::ECDSA_P256_SHA256_ASN1,
            SigningScheme::EcdsaP256Sha384 => &rs::ECDSA_P256_SHA384_ASN1,
            SigningScheme::EcdsaP384Sha256 => &rs::ECDSA_P384_SHA256_ASN1,
            SigningScheme::EcdsaP384Sha384 => &rs::ECDSA_P384_SHA384_ASN1,
            SigningScheme::Ed25519 => &rs::ED25519,
            SigningScheme::RsaPssSha256 => &rs::RSA_PSS_2048_8192_SHA256,
            SigningScheme::RsaPssSha384 => &rs::RSA_PSS_2048_8192_SHA384,
            SigningScheme::RsaPssSha512 => &rs::RSA_PSS_2048_8192_SHA512,
            SigningScheme::RsaPkcs1Sha256 => &rs::RSA_PKCS1_2048_8192_SHA256,
            SigningScheme::RsaPkcs1Sha384 => &rs::RSA_PKCS1_2048_8192_SHA384,
            SigningScheme::RsaPkcs1Sha512 => &rs::RSA_PKCS1_2048_8192_SHA512,
            _ => return Err(unsupported(scheme)),
        };
        rs::UnparsedPublicKey::new(algorithm, spki_pubkey_bytes)
            .verify(data, signature)
            .map_err(|_| failed(scheme))
    }

    fn verify_prehashed(
        &self,
        scheme: SigningScheme,
        spki_pubkey_bytes: &[u8],
        digest: &[u8],
        signature: &[u8],
    ) -> sigstore_crypto::Result<()> {
        // sigstore-crypto has already checked that `digest` has the scheme's hash length.
        match scheme {
            SigningScheme::EcdsaP256Sha256 | SigningScheme::EcdsaP256Sha384 => {
                use p256::ecdsa::signature::hazmat::PrehashVerifier;
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(spki_pubkey_bytes)
                    .map_err(|_| failed(scheme))?;
                let sig =
                    p256::ecdsa::Signature::from_der(signature).map_err(|_| failed(scheme))?;
                key.verify_prehash(digest, &sig).map_err(|_| failed(scheme))
            }
            SigningScheme::EcdsaP384Sha256 | SigningScheme::EcdsaP384Sha384 => {
                use p384::ecdsa::signature::hazmat::PrehashVerifier;
                let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(spki_pubkey_bytes)
                    .map_err(|_| failed(scheme))?;
                let sig =
                    p384::ecdsa::Signature::from_der(signature).map_err(|_| failed(scheme))?;
                key.verify_prehash(digest, &sig).map_err(|_| failed(scheme))
            }
            SigningScheme::RsaPkcs1Sha256
            | SigningScheme::RsaPkcs1Sha384
            | SigningScheme::RsaPkcs1Sha512
            | SigningScheme::RsaPssSha256
            | SigningScheme::RsaPssSha384
            | SigningScheme::RsaPssSha512 => {
                use rsa::pkcs1::DecodeRsaPublicKey;
                let key = rsa::RsaPublicKey::from_pkcs1_der(spki_pubkey_bytes)
                    .map_err(|_| failed(scheme))?;
                let verified = match scheme {
                    SigningScheme::RsaPkcs1Sha256 => {
                        key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), digest, signature)
                    }
                    SigningScheme::RsaPkcs1Sha384 => {
                        key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), digest, signature)
                    }
                    SigningScheme::RsaPkcs1Sha512 => {
                        key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha512>(), digest, signature)
                    }
                    SigningScheme::RsaPssSha256 => {
                        key.verify(rsa::Pss::new::<sha2::Sha256>(), digest, signature)
                    }
                    SigningScheme::RsaPssSha384 => {
                        key.verify(rsa::Pss::new::<sha2::Sha384>(), digest, signature)
                    }
                    _ => key.verify(rsa::Pss::new::<sha2::Sha512>(), digest, signature),
                };
                verified.map_err(|_| failed(scheme))
            }
            _ => Err(unsupported(scheme)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use p256::ecdsa::signature::Signer as _;

    #[test]
    fn p256_raw_and_prehashed_agree_and_refuse_a_flipped_bit() {
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let point = key.verifying_key().to_encoded_point(false);
        let msg = b"signet keyless";
        let sig: p256::ecdsa::Signature = key.sign(msg);
        let der = sig.to_der();
        let digest = sha2::Sha256::digest(msg);
        let s = SigningScheme::EcdsaP256Sha256;
        PROVIDER
            .verify_raw(s, point.as_bytes(), msg, der.as_bytes())
            .unwrap();
        PROVIDER
            .verify_prehashed(s, point.as_bytes(), &digest, der.as_bytes())
            .unwrap();
        let mut bad = digest;
        bad[0] ^= 1;
        let err = PROVIDER
            .verify_prehashed(s, point.as_bytes(), &bad, der.as_bytes())
            .unwrap_err();
        assert!(
            matches!(err, sigstore_crypto::Error::Verification(_)),
            "{err}"
        );
        let err = PROVIDER
            .verify_raw(s, point.as_bytes(), b"signet keyleSs", der.as_bytes())
            .unwrap_err();
        assert!(
            matches!(err, sigstore_crypto::Error::Verification(_)),
            "{err}"
        );
    }

    #[test]
    fn ml_dsa_is_refused_not_accepted() {
        let err = PROVIDER
            .verify_raw(SigningScheme::MlDsa44, &[0; 1312], b"x", &[0; 2420])
            .unwrap_err();
        assert!(
            matches!(err, sigstore_crypto::Error::UnsupportedAlgorithm(_)),
            "{err}"
        );
    }
}
