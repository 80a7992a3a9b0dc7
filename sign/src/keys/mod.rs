//! Keys: ECDSA P-256 public keys (PEM `PUBLIC KEY`), signing keys, their key ids, cosign's encrypted
//! private key files, and reading and writing key pairs on disk (formats.md §4).

mod encrypted;
mod files;

use std::fmt;
use std::str::FromStr;

use p256::pkcs8::ObjectIdentifier;
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _};
use sha2::Digest as _;
use zeroize::Zeroizing;

use crate::{pem, Error};

pub use encrypted::EncryptedKeyFile;
pub use files::{
    read_private_key_file, read_public_key_file, write_key_pair, PrivateKeyFile, MAX_KEY_FILE_SIZE,
};

/// PEM label of a public key (SubjectPublicKeyInfo).
pub const PUBLIC_KEY_PEM_LABEL: &str = "PUBLIC KEY";

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_SECP256K1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Refuse anything but ECDSA on P-256, naming what the key is so the message is useful.
fn require_p256(
    alg: &p256::pkcs8::spki::AlgorithmIdentifierRef<'_>,
    file: &str,
) -> Result<(), Error> {
    let unsupported = |kind: &str| Error::UnsupportedKeyType {
        file: file.to_string(),
        kind: kind.to_string(),
    };
    if alg.oid == OID_EC_PUBLIC_KEY {
        return match alg.parameters_oid() {
            Ok(curve) if curve == OID_P256 => Ok(()),
            Ok(curve) if curve == OID_P384 => Err(unsupported("ECDSA P-384")),
            Ok(curve) if curve == OID_P521 => Err(unsupported("ECDSA P-521")),
            Ok(curve) if curve == OID_SECP256K1 => Err(unsupported("ECDSA secp256k1")),
            Ok(curve) => Err(unsupported(&format!("ECDSA on curve {curve}"))),
            Err(_) => Err(unsupported(
                "ECDSA with explicit or missing curve parameters",
            )),
        };
    }
    if alg.oid == OID_RSA || alg.oid == OID_RSA_PSS {
        return Err(unsupported("RSA"));
    }
    if alg.oid == OID_ED25519 {
        return Err(unsupported("Ed25519"));
    }
    Err(unsupported(&format!("algorithm {}", alg.oid)))
}

/// DER prefix of a P-256 SubjectPublicKeyInfo: SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 },
/// BIT STRING (66 bytes) }, followed by the 65-byte uncompressed point. This is the exact encoding
/// Go's `x509.MarshalPKIXPublicKey` produces, so the key id matches cosign's.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

fn spki_der_of(key: &p256::PublicKey) -> Vec<u8> {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    let point = key.to_encoded_point(false);
    let mut der = Vec::with_capacity(P256_SPKI_PREFIX.len() + point.len());
    der.extend_from_slice(&P256_SPKI_PREFIX);
    der.extend_from_slice(point.as_bytes());
    der
}

/// A key id: lowercase hex of SHA-256 over the public key's DER SubjectPublicKeyInfo. The same
/// value Rekor uses as a log id for its own key, and what `signet` prints to name a key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// The key id of a DER SubjectPublicKeyInfo.
    pub fn of_spki_der(spki_der: &[u8]) -> KeyId {
        let hash = sha2::Sha256::digest(spki_der);
        let mut hex = String::with_capacity(64);
        for b in hash {
            hex.push_str(&format!("{b:02x}"));
        }
        KeyId(hex)
    }

    /// The 64 hex digits.
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
        write!(f, "KeyId({})", self.0)
    }
}

impl FromStr for KeyId {
    type Err = Error;

    fn from_str(s: &str) -> Result<KeyId, Error> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(KeyId(s.to_string()))
        } else {
            Err(Error::InvalidKeyId {
                input: s.chars().take(100).collect(),
            })
        }
    }
}

/// Serialised as the bare hex string.
impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Deserialised through [`KeyId::from_str`], so only valid key ids load.
impl<'de> serde::Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An ECDSA P-256 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: p256::PublicKey,
    spki_der: Vec<u8>,
}

impl PublicKey {
    /// Parse a PEM `PUBLIC KEY` (LF or CRLF). `source` names where the bytes came from, for errors.
    /// RSA, Ed25519 and other curves are refused with [`Error::UnsupportedKeyType`].
    pub fn from_pem(bytes: &[u8], source: &str) -> Result<PublicKey, Error> {
        if bytes.len() as u64 > MAX_KEY_FILE_SIZE {
            return Err(Error::LimitExceeded {
                what: format!("public key {source}"),
                size: bytes.len() as u64,
                limit: MAX_KEY_FILE_SIZE,
            });
        }
        let block = pem::decode(bytes).map_err(|reason| Error::Pem {
            file: source.to_string(),
            reason,
        })?;
        if block.label != PUBLIC_KEY_PEM_LABEL {
            return Err(Error::Pem {
                file: source.to_string(),
                reason: format!(
                    "expected a PEM {PUBLIC_KEY_PEM_LABEL} block, found {}",
                    block.label
                ),
            });
        }
        PublicKey::from_der(&block.der, source)
    }

    /// Parse a DER SubjectPublicKeyInfo.
    pub fn from_der(der: &[u8], source: &str) -> Result<PublicKey, Error> {
        let invalid = |reason: String| Error::InvalidKey {
            file: source.to_string(),
            reason,
        };
        let spki = p256::pkcs8::spki::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|e| invalid(format!("not a DER SubjectPublicKeyInfo: {e}")))?;
        require_p256(&spki.algorithm, source)?;
        // Go's x509 (and so cosign) only reads uncompressed points; refusing others keeps key ids
        // equal to the SHA-256 of the bytes cosign would hash.
        match spki.subject_public_key.as_bytes() {
            Some(point) if point.len() == 65 && point[0] == 4 => {}
            _ => return Err(invalid("not an uncompressed P-256 point".to_string())),
        }
        let inner = p256::PublicKey::from_public_key_der(der)
            .map_err(|e| invalid(format!("not a valid P-256 public key: {e}")))?;
        Ok(PublicKey::from_inner(inner))
    }

    fn from_inner(inner: p256::PublicKey) -> PublicKey {
        // Re-encode rather than keep the input so that key ids are canonical (uncompressed point).
        let spki_der = spki_der_of(&inner);
        PublicKey { inner, spki_der }
    }

    /// The PEM form cosign writes: `-----BEGIN PUBLIC KEY-----\n`, 64-column base64, `-----END
    /// PUBLIC KEY-----\n`.
    pub fn to_pem(&self) -> String {
        pem::encode(PUBLIC_KEY_PEM_LABEL, &self.spki_der)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn to_der(&self) -> Vec<u8> {
        self.spki_der.clone()
    }

    /// The key id (hex SHA-256 of [`PublicKey::to_der`]).
    pub fn key_id(&self) -> KeyId {
        KeyId::of_spki_der(&self.spki_der)
    }

    pub(crate) fn verifying_key(&self) -> p256::ecdsa::VerifyingKey {
        p256::ecdsa::VerifyingKey::from(&self.inner)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(ecdsa-p256 {})", self.key_id())
    }
}

/// An ECDSA P-256 private key. Zeroized on drop (the inner key implements `ZeroizeOnDrop`);
/// its `Debug` shows only the public key id.
pub struct SigningKey {
    inner: p256::ecdsa::SigningKey,
}

impl SigningKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> SigningKey {
        SigningKey {
            inner: p256::ecdsa::SigningKey::random(&mut rand_core::OsRng),
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_inner(p256::PublicKey::from(self.inner.verifying_key()))
    }

    /// Import an unencrypted private key: PEM `PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY` (SEC1),
    /// LF or CRLF. Keys other than ECDSA P-256 are refused with [`Error::UnsupportedKeyType`].
    pub fn from_pkcs8_or_sec1_pem(bytes: &[u8], source: &str) -> Result<SigningKey, Error> {
        if bytes.len() as u64 > MAX_KEY_FILE_SIZE {
            return Err(Error::LimitExceeded {
                what: format!("private key {source}"),
                size: bytes.len() as u64,
                limit: MAX_KEY_FILE_SIZE,
            });
        }
        let block = pem::decode(bytes).map_err(|reason| Error::Pem {
            file: source.to_string(),
            reason,
        })?;
        match block.label.as_str() {
            "PRIVATE KEY" => SigningKey::from_pkcs8_der(&block.der, source),
            "EC PRIVATE KEY" => {
                let secret =
                    p256::SecretKey::from_sec1_der(&block.der).map_err(|_| Error::InvalidKey {
                        file: source.to_string(),
                        reason: "not a SEC1 ECDSA P-256 private key".to_string(),
                    })?;
                Ok(SigningKey {
                    inner: p256::ecdsa::SigningKey::from(&secret),
                })
            }
            "RSA PRIVATE KEY" => Err(Error::UnsupportedKeyType {
                file: source.to_string(),
                kind: "RSA".to_string(),
            }),
            other => Err(Error::Pem {
                file: source.to_string(),
                reason: format!(
                    "expected a PEM PRIVATE KEY or EC PRIVATE KEY block, found {other}"
                ),
            }),
        }
    }

    /// Parse a PKCS#8 DER private key (the plaintext inside cosign's encrypted key files).
    pub(crate) fn from_pkcs8_der(der: &[u8], source: &str) -> Result<SigningKey, Error> {
        let invalid = |reason: &str| Error::InvalidKey {
            file: source.to_string(),
            reason: reason.to_string(),
        };
        let info = p256::pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|_| invalid("not a DER PKCS#8 private key"))?;
        require_p256(&info.algorithm, source)?;
        let secret = p256::SecretKey::from_pkcs8_der(der)
            .map_err(|_| invalid("not a valid PKCS#8 ECDSA P-256 private key"))?;
        Ok(SigningKey {
            inner: p256::ecdsa::SigningKey::from(&secret),
        })
    }

    /// The PKCS#8 DER encoding (what cosign encrypts), zeroized on drop.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let secret = p256::SecretKey::from(&self.inner);
        let doc = secret.to_pkcs8_der().map_err(|e| Error::InvalidKey {
            file: "signing key".to_string(),
            reason: format!("cannot encode as PKCS#8: {e}"),
        })?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    pub(crate) fn ecdsa(&self) -> &p256::ecdsa::SigningKey {
        &self.inner
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey(ecdsa-p256, public key {})",
            self.public_key().key_id()
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    pub(crate) fn fixture(path: &str) -> Vec<u8> {
        let full = format!("{}/../testdata/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&full).unwrap_or_else(|e| panic!("reading {full}: {e}"))
    }

    #[test]
    fn public_keys_round_trip_to_identical_pem() {
        for path in [
            "cosign-real/cosign.pub",
            "cosign-real/cosign2.pub",
            "cosign-real/rekor.pub",
            "skopeo-1.13/keys/keyA.pub",
            "skopeo-1.13/keys/keyB.pub",
        ] {
            let bytes = fixture(path);
            let key = PublicKey::from_pem(&bytes, path).unwrap();
            assert_eq!(key.to_pem().as_bytes(), &bytes[..], "{path}");
        }
        // keyR.pub uses CRLF; our output is cosign's LF form of the same key.
        let crlf = fixture("skopeo-1.13/keys/keyR.pub");
        assert!(crlf.windows(2).any(|w| w == b"\r\n"));
        let key = PublicKey::from_pem(&crlf, "keyR.pub").unwrap();
        let lf = String::from_utf8(crlf).unwrap().replace("\r\n", "\n");
        assert_eq!(key.to_pem(), lf);
    }

    #[test]
    fn key_id_is_sha256_of_spki() {
        // formats: rekor.pub's log id, from the cosign-real README.
        let rekor = PublicKey::from_pem(&fixture("cosign-real/rekor.pub"), "rekor.pub").unwrap();
        assert_eq!(
            rekor.key_id().to_string(),
            "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d"
        );
        let parsed: KeyId = rekor.key_id().as_str().parse().unwrap();
        assert_eq!(parsed, rekor.key_id());
        assert!("C0D2".parse::<KeyId>().is_err());
        let json = serde_json::to_string(&rekor.key_id()).unwrap();
        assert_eq!(json, format!("\"{}\"", rekor.key_id()));
        assert_eq!(
            serde_json::from_str::<KeyId>(&json).unwrap(),
            rekor.key_id()
        );
        assert!(serde_json::from_str::<KeyId>("\"abc\"").is_err());
        assert!("g".repeat(64).parse::<KeyId>().is_err());
    }

    #[test]
    fn rsa_public_key_is_unsupported_and_names_the_file() {
        let err = PublicKey::from_pem(&fixture("cosign-real/some-rsa-key.pub"), "some-rsa-key.pub")
            .unwrap_err();
        assert!(
            matches!(&err, Error::UnsupportedKeyType { kind, .. } if kind == "RSA"),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("some-rsa-key.pub") && msg.contains("unsupported key type"));
    }

    #[test]
    fn other_curves_are_unsupported() {
        // A P-384 SPKI (id-ecPublicKey + secp384r1) built by hand: only the algorithm matters.
        let p384 = p256::pkcs8::spki::SubjectPublicKeyInfoRef {
            algorithm: p256::pkcs8::spki::AlgorithmIdentifierRef {
                oid: OID_EC_PUBLIC_KEY,
                parameters: Some((&OID_P384).into()),
            },
            subject_public_key: p256::pkcs8::der::asn1::BitStringRef::from_bytes(&[4u8; 97])
                .unwrap(),
        };
        let der = p256::pkcs8::der::Encode::to_der(&p384).unwrap();
        let pem = pem::encode("PUBLIC KEY", &der);
        let err = PublicKey::from_pem(pem.as_bytes(), "p384.pub").unwrap_err();
        assert!(err
            .to_string()
            .contains("unsupported key type: ECDSA P-384"));
    }

    #[test]
    fn certificates_and_garbage_are_refused() {
        let err =
            PublicKey::from_pem(&fixture("cosign-real/fulcio-cert"), "fulcio-cert").unwrap_err();
        assert!(err.to_string().contains("found CERTIFICATE"), "{err}");
        // A compressed point is valid SEC1 but Go's x509 refuses it, so Signet does too.
        let key = SigningKey::generate().public_key();
        let compressed = {
            use p256::elliptic_curve::sec1::ToEncodedPoint as _;
            key.inner.to_encoded_point(true)
        };
        let mut der = P256_SPKI_PREFIX.to_vec();
        der[1] -= 32;
        der[25 - 1] -= 32;
        der.extend_from_slice(compressed.as_bytes());
        let err = PublicKey::from_der(&der, "compressed.pub").unwrap_err();
        assert!(err.to_string().contains("uncompressed"), "{err}");
        assert!(PublicKey::from_pem(b"nothing", "x").is_err());
        let huge = vec![b'A'; (MAX_KEY_FILE_SIZE + 1) as usize];
        assert!(matches!(
            PublicKey::from_pem(&huge, "x"),
            Err(Error::LimitExceeded { .. })
        ));
    }

    #[test]
    fn import_pkcs8_and_sec1() {
        use p256::pkcs8::LineEnding;
        let key = SigningKey::generate();
        let secret = p256::SecretKey::from(key.ecdsa());
        let pkcs8 = secret.to_pkcs8_pem(LineEnding::CRLF).unwrap();
        let sec1 = secret.to_sec1_pem(LineEnding::LF).unwrap();
        for pem in [pkcs8.as_bytes(), sec1.as_bytes()] {
            let imported = SigningKey::from_pkcs8_or_sec1_pem(pem, "import").unwrap();
            assert_eq!(imported.public_key(), key.public_key());
        }
        let err = SigningKey::from_pkcs8_or_sec1_pem(
            b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
            "rsa.key",
        )
        .unwrap_err();
        assert!(err
            .to_string()
            .contains("rsa.key: unsupported key type: RSA"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = SigningKey::generate();
        let der = key.to_pkcs8_der().unwrap();
        let dbg = format!("{key:?}");
        assert!(dbg.contains(key.public_key().key_id().as_str()));
        let scalar_hex: String = p256::SecretKey::from(key.ecdsa())
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!dbg.contains(&scalar_hex));
        assert_eq!(der.len(), 138, "Go's x509.MarshalPKCS8PrivateKey size");
    }
}
