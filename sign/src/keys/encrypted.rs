//! cosign's encrypted private key file: PEM whose body is base64 of JSON naming scrypt and NaCl
//! secretbox, wrapping the PKCS#8 DER key (formats.md §4; sigstore/sigstore `pkg/cryptoutils`
//! and `secure-systems-lab/go-securesystemslib/encrypted`).

use base64::Engine as _;
use crypto_secretbox::aead::{Aead as _, KeyInit as _};
use crypto_secretbox::XSalsa20Poly1305;
use rand_core::RngCore as _;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{SigningKey, MAX_KEY_FILE_SIZE};
use crate::{pem, Error};

/// The PEM label current cosign writes (and Signet writes).
pub const SIGSTORE_PEM_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The PEM label older cosign and skopeo 1.13 write; read, never written.
pub const COSIGN_PEM_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// scrypt log2(N) Signet writes: N = 65536, cosign's value.
const WRITE_LOG_N: u8 = 16;
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// A PKCS#8 P-256 key is 138 bytes; leave room for other encodings but refuse anything absurd.
const MAX_CIPHERTEXT_LEN: usize = 4096;

/// Marker type grouping the encrypted key file operations.
#[derive(Debug, Clone, Copy)]
pub struct EncryptedKeyFile;

#[derive(Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Deserialize)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u64,
    p: u64,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn derive_key(password: &[u8], salt: &[u8], log_n: u8) -> Result<Zeroizing<[u8; 32]>, String> {
    let params = scrypt::Params::new(log_n, 8, 1, 32).map_err(|e| e.to_string())?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, salt, &params, key.as_mut()).map_err(|e| e.to_string())?;
    Ok(key)
}

impl EncryptedKeyFile {
    /// Encrypt `key` under `password` (may be empty) as cosign does: scrypt N=65536, r=8, p=1 with a
    /// random 32-byte salt, then NaCl secretbox with a random 24-byte nonce over the PKCS#8 DER.
    /// Returns the PEM text (`ENCRYPTED SIGSTORE PRIVATE KEY`, 64-column lines, trailing `\n`).
    pub fn encrypt(key: &SigningKey, password: &[u8]) -> Result<String, Error> {
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        rand_core::OsRng
            .try_fill_bytes(&mut salt)
            .and_then(|()| rand_core::OsRng.try_fill_bytes(&mut nonce))
            .map_err(|e| Error::Random(e.to_string()))?;
        EncryptedKeyFile::encrypt_with(key, password, &salt, &nonce, WRITE_LOG_N)
    }

    /// [`EncryptedKeyFile::encrypt`] with caller-chosen salt, nonce and log2(N), for tests that need
    /// reproducible output or other cost parameters. Never reuse a nonce with the same password.
    #[doc(hidden)]
    pub fn encrypt_with(
        key: &SigningKey,
        password: &[u8],
        salt: &[u8],
        nonce: &[u8; NONCE_LEN],
        log_n: u8,
    ) -> Result<String, Error> {
        if !(15..=17).contains(&log_n) {
            // Never write a file that `decrypt` (and cosign's N bounds) would refuse.
            return Err(Error::UnsupportedKdfParams {
                file: "signing key".to_string(),
                n: 1u64 << log_n.min(63),
                r: 8,
                p: 1,
            });
        }
        let plaintext = key.to_pkcs8_der()?;
        let secret = derive_key(password, salt, log_n).map_err(|reason| Error::InvalidKey {
            file: "signing key".to_string(),
            reason: format!("scrypt failed: {reason}"),
        })?;
        let cipher = XSalsa20Poly1305::new(secret.as_ref().into());
        let ciphertext = cipher
            .encrypt(nonce.into(), plaintext.as_slice())
            .map_err(|_| Error::InvalidKey {
                file: "signing key".to_string(),
                reason: "secretbox encryption failed".to_string(),
            })?;
        // Built by hand so the key order is exactly cosign's (Go marshals struct fields in
        // declaration order); base64 never needs JSON escaping.
        let json = format!(
            r#"{{"kdf":{{"name":"scrypt","params":{{"N":{},"r":8,"p":1}},"salt":"{}"}},"cipher":{{"name":"nacl/secretbox","nonce":"{}"}},"ciphertext":"{}"}}"#,
            1u64 << log_n,
            b64().encode(salt),
            b64().encode(nonce),
            b64().encode(&ciphertext),
        );
        Ok(pem::encode(SIGSTORE_PEM_LABEL, json.as_bytes()))
    }

    /// Decrypt a cosign key file (either PEM label, LF or CRLF). `source` names the file in errors.
    /// The scrypt parameters are checked before any work is done; a secretbox that does not open
    /// is [`Error::WrongPassword`].
    pub fn decrypt(pem_bytes: &[u8], password: &[u8], source: &str) -> Result<SigningKey, Error> {
        let invalid = |reason: String| Error::InvalidEncryptedKey {
            file: source.to_string(),
            reason,
        };
        if pem_bytes.len() as u64 > MAX_KEY_FILE_SIZE {
            return Err(Error::LimitExceeded {
                what: format!("encrypted private key {source}"),
                size: pem_bytes.len() as u64,
                limit: MAX_KEY_FILE_SIZE,
            });
        }
        let block = pem::decode(pem_bytes).map_err(|reason| Error::Pem {
            file: source.to_string(),
            reason,
        })?;
        if block.label != SIGSTORE_PEM_LABEL && block.label != COSIGN_PEM_LABEL {
            return Err(Error::Pem {
                file: source.to_string(),
                reason: format!(
                    "expected a PEM {SIGSTORE_PEM_LABEL} or {COSIGN_PEM_LABEL} block, found {}",
                    block.label
                ),
            });
        }
        let envelope: Envelope = serde_json::from_slice(&block.der)
            .map_err(|e| invalid(format!("not cosign's key JSON: {e}")))?;
        if envelope.kdf.name != "scrypt" {
            return Err(invalid(format!(
                "unsupported key derivation {:?} (only scrypt)",
                envelope.kdf.name
            )));
        }
        if envelope.cipher.name != "nacl/secretbox" {
            return Err(invalid(format!(
                "unsupported cipher {:?} (only nacl/secretbox)",
                envelope.cipher.name
            )));
        }
        let KdfParams { n, r, p } = envelope.kdf.params;
        let log_n = match (n, r, p) {
            (32768, 8, 1) => 15,
            (65536, 8, 1) => 16,
            (131072, 8, 1) => 17,
            _ => {
                return Err(Error::UnsupportedKdfParams {
                    file: source.to_string(),
                    n,
                    r,
                    p,
                })
            }
        };
        let salt = b64()
            .decode(&envelope.kdf.salt)
            .map_err(|e| invalid(format!("salt is not base64: {e}")))?;
        if salt.is_empty() || salt.len() > 1024 {
            return Err(invalid(format!("salt of {} bytes", salt.len())));
        }
        let nonce = b64()
            .decode(&envelope.cipher.nonce)
            .map_err(|e| invalid(format!("nonce is not base64: {e}")))?;
        let nonce: [u8; NONCE_LEN] = nonce
            .as_slice()
            .try_into()
            .map_err(|_| invalid(format!("nonce of {} bytes, expected 24", nonce.len())))?;
        let ciphertext = b64()
            .decode(&envelope.ciphertext)
            .map_err(|e| invalid(format!("ciphertext is not base64: {e}")))?;
        if ciphertext.len() < 16 || ciphertext.len() > MAX_CIPHERTEXT_LEN {
            return Err(invalid(format!("ciphertext of {} bytes", ciphertext.len())));
        }
        let secret = derive_key(password, &salt, log_n)
            .map_err(|reason| invalid(format!("scrypt failed: {reason}")))?;
        let cipher = XSalsa20Poly1305::new(secret.as_ref().into());
        let plaintext = Zeroizing::new(
            cipher
                .decrypt((&nonce).into(), ciphertext.as_slice())
                .map_err(|_| Error::WrongPassword {
                    file: source.to_string(),
                })?,
        );
        SigningKey::from_pkcs8_der(&plaintext, source)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::keys::tests::fixture;
    use crate::keys::PublicKey;

    /// Decode a key file's JSON, let `edit` change it, and re-encode it under `label`.
    fn reencode(
        pem_bytes: &[u8],
        label: &str,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> String {
        let block = pem::decode(pem_bytes).unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(&block.der).unwrap();
        edit(&mut json);
        pem::encode(label, serde_json::to_string(&json).unwrap().as_bytes())
    }

    #[test]
    fn every_fixture_key_decrypts_to_its_public_key() {
        for (key, pass, public, label, crlf) in [
            (
                "keyA.private",
                "keyA.pass",
                "keyA.pub",
                COSIGN_PEM_LABEL,
                false,
            ),
            (
                "keyB.private",
                "keyB.pass",
                "keyB.pub",
                COSIGN_PEM_LABEL,
                false,
            ),
            (
                "keyR.key",
                "keyR.pass",
                "keyR.pub",
                SIGSTORE_PEM_LABEL,
                true,
            ),
        ] {
            let bytes = fixture(&format!("skopeo-1.13/keys/{key}"));
            assert!(std::str::from_utf8(&bytes).unwrap().contains(label));
            assert_eq!(bytes.windows(2).any(|w| w == b"\r\n"), crlf, "{key}");
            let password = fixture(&format!("skopeo-1.13/keys/{pass}"));
            let signing = EncryptedKeyFile::decrypt(&bytes, &password, key).unwrap();
            let expected =
                PublicKey::from_pem(&fixture(&format!("skopeo-1.13/keys/{public}")), public)
                    .unwrap();
            assert_eq!(signing.public_key(), expected, "{key}");

            // Our PKCS#8 encoding is byte-identical to what Go's x509 wrote inside the file.
            let block = pem::decode(&bytes).unwrap();
            let env: Envelope = serde_json::from_slice(&block.der).unwrap();
            assert_eq!(env.kdf.params.n, 32768);
            let secret = derive_key(&password, &b64().decode(&env.kdf.salt).unwrap(), 15).unwrap();
            let nonce: [u8; 24] = b64().decode(&env.cipher.nonce).unwrap().try_into().unwrap();
            let plain = XSalsa20Poly1305::new(secret.as_ref().into())
                .decrypt((&nonce).into(), &b64().decode(&env.ciphertext).unwrap()[..])
                .unwrap();
            assert_eq!(plain.len(), 138);
            assert_eq!(&plain[..], &signing.to_pkcs8_der().unwrap()[..], "{key}");
        }
    }

    #[test]
    fn wrong_password_is_reported_as_such_naming_the_file() {
        let bytes = fixture("skopeo-1.13/keys/keyA.private");
        let wrong = fixture("skopeo-1.13/keys/keyB.pass");
        let err = EncryptedKeyFile::decrypt(&bytes, &wrong, "keys/keyA.private").unwrap_err();
        assert!(matches!(&err, Error::WrongPassword { file } if file == "keys/keyA.private"));
        assert_eq!(err.to_string(), "wrong password for keys/keyA.private");
    }

    #[test]
    fn costly_or_odd_scrypt_parameters_are_refused_before_scrypt() {
        let bytes = fixture("skopeo-1.13/keys/keyA.private");
        let password = fixture("skopeo-1.13/keys/keyA.pass");
        for (n, r, p) in [
            (1u64 << 20, 8u64, 1u64),
            (32768, 16, 1),
            (32768, 8, 2),
            (1024, 8, 1),
        ] {
            let crafted = reencode(&bytes, COSIGN_PEM_LABEL, |j| {
                j["kdf"]["params"] = serde_json::json!({"N": n, "r": r, "p": p});
            });
            // N=2^20 with r=16 would take about a gigabyte; refusing it must be instant.
            let started = std::time::Instant::now();
            let err = EncryptedKeyFile::decrypt(crafted.as_bytes(), &password, "crafted.key")
                .unwrap_err();
            assert!(started.elapsed() < std::time::Duration::from_millis(20));
            assert!(
                matches!(err, Error::UnsupportedKdfParams { n: en, r: er, p: ep, .. }
                    if (en, er, ep) == (n, r, p)),
                "{err:?}"
            );
            assert!(err
                .to_string()
                .starts_with("crafted.key: unsupported scrypt parameters"));
        }
        // The unedited re-encoding still decrypts, so the refusals above are about the params.
        let same = reencode(&bytes, SIGSTORE_PEM_LABEL, |_| {});
        EncryptedKeyFile::decrypt(same.as_bytes(), &password, "same.key").unwrap();
    }

    #[test]
    fn malformed_files_are_parse_errors_not_wrong_password() {
        let bytes = fixture("skopeo-1.13/keys/keyA.private");
        let password = fixture("skopeo-1.13/keys/keyA.pass");
        let cases: Vec<(String, &str)> = vec![
            (
                reencode(&bytes, COSIGN_PEM_LABEL, |j| {
                    j["kdf"]["name"] = "argon2".into()
                }),
                "argon2",
            ),
            (
                reencode(&bytes, COSIGN_PEM_LABEL, |j| {
                    j["cipher"]["name"] = "aes".into()
                }),
                "aes",
            ),
            (
                reencode(&bytes, COSIGN_PEM_LABEL, |j| {
                    j["cipher"]["nonce"] = "AAAA".into()
                }),
                "nonce",
            ),
            (
                reencode(&bytes, COSIGN_PEM_LABEL, |j| j["ciphertext"] = "!".into()),
                "base64",
            ),
            (reencode(&bytes, "PUBLIC KEY", |_| {}), "found PUBLIC KEY"),
            (pem::encode(COSIGN_PEM_LABEL, b"{}"), "JSON"),
        ];
        for (pem_text, needle) in cases {
            let err =
                EncryptedKeyFile::decrypt(pem_text.as_bytes(), &password, "bad.key").unwrap_err();
            assert!(!matches!(err, Error::WrongPassword { .. }), "{err:?}");
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
        let huge = vec![b'A'; (MAX_KEY_FILE_SIZE + 1) as usize];
        assert!(matches!(
            EncryptedKeyFile::decrypt(&huge, b"", "huge.key"),
            Err(Error::LimitExceeded { .. })
        ));
    }

    #[test]
    fn round_trip_with_exact_cosign_layout() {
        let key = SigningKey::generate();
        for password in [&b"correct horse"[..], b""] {
            let pem_text = EncryptedKeyFile::encrypt(&key, password).unwrap();
            assert!(pem_text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
            assert!(pem_text.ends_with("\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
            let lines: Vec<&str> = pem_text.lines().collect();
            for body_line in &lines[1..lines.len() - 2] {
                assert_eq!(body_line.len(), 64);
            }
            let json =
                String::from_utf8(pem::decode(pem_text.as_bytes()).unwrap().der.to_vec()).unwrap();
            let prefix = r#"{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":""#;
            assert!(json.starts_with(prefix), "{json}");
            let rest = &json[prefix.len()..];
            let (salt, rest) = rest
                .split_once(r#""},"cipher":{"name":"nacl/secretbox","nonce":""#)
                .unwrap();
            let (nonce, rest) = rest.split_once(r#""},"ciphertext":""#).unwrap();
            let ciphertext = rest.strip_suffix(r#""}"#).unwrap();
            assert_eq!(b64().decode(salt).unwrap().len(), 32);
            assert_eq!(b64().decode(nonce).unwrap().len(), 24);
            assert_eq!(b64().decode(ciphertext).unwrap().len(), 138 + 16);

            let back = EncryptedKeyFile::decrypt(pem_text.as_bytes(), password, "rt.key").unwrap();
            assert_eq!(back.public_key(), key.public_key());
            let crlf = pem_text.replace('\n', "\r\n");
            EncryptedKeyFile::decrypt(crlf.as_bytes(), password, "rt.key").unwrap();
        }
        // Empty and non-empty passwords are not interchangeable.
        let pem_text = EncryptedKeyFile::encrypt(&key, b"").unwrap();
        assert!(matches!(
            EncryptedKeyFile::decrypt(pem_text.as_bytes(), b"x", "e.key"),
            Err(Error::WrongPassword { .. })
        ));
    }

    #[test]
    fn accepts_n_2_15_and_2_17() {
        let key = SigningKey::generate();
        for log_n in [15u8, 17] {
            let pem_text =
                EncryptedKeyFile::encrypt_with(&key, b"pw", &[7u8; 32], &[9u8; 24], log_n).unwrap();
            let back = EncryptedKeyFile::decrypt(pem_text.as_bytes(), b"pw", "n.key").unwrap();
            assert_eq!(back.public_key(), key.public_key());
        }
    }
}
