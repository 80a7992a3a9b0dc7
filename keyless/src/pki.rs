//! Private-PKI ("bring your own PKI") certificate signatures, as containers/image's `pki`
//! requirement checks them: the signing certificate chains, through the configured or supplied
//! intermediates, to one of the configured CA roots at the given time, has the code-signing EKU (or, as Go's x509 and so containers/image
//! allow, no EKU extension at all),
//! and its public key verifies the signature over the exact message. No transparency log and
//! no Fulcio: whom the certificate names (email, DNS name) is for the caller to match.
//!
//! Path building and signature checks are rustls-webpki's (the one sigstore-verify uses, with
//! sigstore-crypto's algorithm list); this file only supplies inputs and reads the SANs.

use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_cert::der::Decode as _;
use x509_cert::ext::pkix::name::GeneralName;

use crate::error::{Check, Input, KeylessError};

/// `id-kp-codeSigning` (1.3.6.1.5.5.7.3.3), DER content octets.
const ID_KP_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
/// Most certificates in a roots or intermediates file.
pub const MAX_PKI_CERTIFICATES: usize = 32;

/// The trust of a private PKI: CA roots and (optionally) intermediates.
#[derive(Debug, Clone)]
pub struct PkiTrust {
    roots: Vec<Vec<u8>>,
    intermediates: Vec<Vec<u8>>,
}

/// What a verified private-PKI certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiCertificate {
    /// The `rfc822Name` SANs.
    pub emails: Vec<String>,
    /// The `dNSName` SANs.
    pub hostnames: Vec<String>,
    /// `notBefore`, Unix seconds.
    pub not_before: i64,
    /// `notAfter`, Unix seconds.
    pub not_after: i64,
}

impl PkiTrust {
    /// Trust the DER certificates `roots` (at least one) with `intermediates` as untrusted
    /// path material. Each must parse as an X.509 certificate.
    pub fn new(roots: Vec<Vec<u8>>, intermediates: Vec<Vec<u8>>) -> Result<Self, KeylessError> {
        if roots.is_empty() {
            return Err(KeylessError::malformed(Input::TrustedRoot, "no CA root"));
        }
        if roots.len() + intermediates.len() > MAX_PKI_CERTIFICATES {
            return Err(KeylessError::malformed(
                Input::TrustedRoot,
                format!("more than {MAX_PKI_CERTIFICATES} CA certificates"),
            ));
        }
        for der in roots.iter().chain(&intermediates) {
            x509_cert::Certificate::from_der(der).map_err(|e| {
                KeylessError::malformed(Input::TrustedRoot, format!("CA certificate: {e}"))
            })?;
            webpki::anchor_from_trusted_cert(&CertificateDer::from(der.as_slice())).map_err(
                |e| KeylessError::malformed(Input::TrustedRoot, format!("CA certificate: {e:?}")),
            )?;
        }
        Ok(PkiTrust {
            roots,
            intermediates,
        })
    }

    /// Verify `signature` (DER ECDSA or PKCS#1 v1.5, SHA-256) over `message` by the certificate
    /// `leaf` (DER), whose path to a root may use `chain` (untrusted intermediates) and the
    /// configured intermediates, all valid at `at` (Unix seconds).
    pub fn verify(
        &self,
        leaf: &[u8],
        chain: &[Vec<u8>],
        at: i64,
        message: &[u8],
        signature: &[u8],
    ) -> Result<PkiCertificate, KeylessError> {
        crate::crypto::ensure_provider();
        let anchors = self
            .roots
            .iter()
            .map(|der| {
                webpki::anchor_from_trusted_cert(&CertificateDer::from(der.as_slice()))
                    .map(|a| a.to_owned())
                    .map_err(|e| {
                        KeylessError::malformed(Input::TrustedRoot, format!("CA root: {e:?}"))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let intermediates: Vec<CertificateDer<'_>> = chain
            .iter()
            .chain(&self.intermediates)
            .map(|d| CertificateDer::from(d.as_slice()))
            .collect();
        let leaf_der = CertificateDer::from(leaf);
        let end_entity = EndEntityCert::try_from(&leaf_der).map_err(|e| {
            KeylessError::refused(Check::Certificate, format!("leaf certificate: {e:?}"))
        })?;
        let time =
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(u64::try_from(at).map_err(
                |_| KeylessError::refused(Check::Certificate, "verification time before 1970"),
            )?));
        end_entity
            .verify_for_usage(
                sigstore_crypto::WEBPKI_VERIFICATION_ALGS,
                &anchors,
                &intermediates,
                time,
                // Go's x509 rule, which containers/image applies: a certificate without an
                // EKU extension may be used for any purpose; one with it must list code signing.
                KeyUsage::required_if_present(ID_KP_CODE_SIGNING),
                None,
                None,
            )
            .map_err(|e| {
                KeylessError::refused(
                    Check::Certificate,
                    format!("certificate does not chain to a configured CA root: {e:?}"),
                )
            })?;
        // cosign signs with SHA-256: accept exactly the SHA-256 algorithms.
        let sha256 = [
            rustls_pki_types::alg_id::ECDSA_SHA256,
            rustls_pki_types::alg_id::RSA_PKCS1_SHA256,
        ];
        let verified = sigstore_crypto::WEBPKI_VERIFICATION_ALGS
            .iter()
            .filter(|alg| sha256.contains(&alg.signature_alg_id()))
            .any(|alg| {
                end_entity
                    .verify_signature(*alg, message, signature)
                    .is_ok()
            });
        if !verified {
            return Err(KeylessError::refused(
                Check::Signature,
                "the certificate's key does not verify the signature",
            ));
        }
        names(leaf)
    }
}

fn names(leaf: &[u8]) -> Result<PkiCertificate, KeylessError> {
    let cert = x509_cert::Certificate::from_der(leaf)
        .map_err(|e| KeylessError::refused(Check::Certificate, format!("leaf certificate: {e}")))?;
    let san: Option<(bool, x509_cert::ext::pkix::SubjectAltName)> =
        cert.tbs_certificate.get().map_err(|e| {
            KeylessError::refused(
                Check::Certificate,
                format!("subject alternative names: {e}"),
            )
        })?;
    let mut out = PkiCertificate {
        emails: Vec::new(),
        hostnames: Vec::new(),
        not_before: cert
            .tbs_certificate
            .validity
            .not_before
            .to_unix_duration()
            .as_secs() as i64,
        not_after: cert
            .tbs_certificate
            .validity
            .not_after
            .to_unix_duration()
            .as_secs() as i64,
    };
    for name in san.map(|(_, san)| san.0).unwrap_or_default() {
        match name {
            GeneralName::Rfc822Name(v) => out.emails.push(v.to_string()),
            GeneralName::DnsName(v) => out.hostnames.push(v.to_string()),
            _ => {}
        }
    }
    Ok(out)
}

/// Fulcio's OIDC issuer extension as Fulcio first wrote it: the issuer's raw bytes.
const FULCIO_ISSUER_V1: x509_cert::der::asn1::ObjectIdentifier =
    x509_cert::der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Fulcio's OIDC issuer extension since v2: a DER `UTF8String`.
const FULCIO_ISSUER_V2: x509_cert::der::asn1::ObjectIdentifier =
    x509_cert::der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
/// Largest Rekor SET annotation read (real ones are about 2 KiB plus the certificate).
pub const MAX_REKOR_SET_BYTES: usize = 64 * 1024;

/// A Fulcio certificate authority named by file, without a Sigstore trusted root
/// (containers/image's `fulcio`): the certificate must chain to one of the CA certificates at
/// the Rekor entry's integrated time and carry Fulcio's OIDC issuer extension.
#[derive(Debug, Clone)]
pub struct FulcioTrust {
    ca: PkiTrust,
}

/// What a verified Fulcio certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FulcioCertificate {
    /// The `rfc822Name` SANs.
    pub emails: Vec<String>,
    /// The OIDC issuer (extension `.1.1` and/or `.1.8`; both present must agree).
    pub issuer: String,
    /// `notBefore`, Unix seconds.
    pub not_before: i64,
    /// `notAfter`, Unix seconds.
    pub not_after: i64,
}

impl FulcioTrust {
    /// Trust the DER CA certificates `cas` (at least one) as chain anchors.
    pub fn new(cas: Vec<Vec<u8>>) -> Result<Self, KeylessError> {
        Ok(FulcioTrust {
            ca: PkiTrust::new(cas, Vec::new())?,
        })
    }

    /// Verify `signature` over `message` by the certificate `leaf` (DER), whose path to a CA may
    /// use `chain` (untrusted intermediates), every certificate valid at `at` (the Rekor entry's
    /// integrated time), with the code-signing EKU (or none, as Go's x509 allows), and read its
    /// OIDC issuer and email SANs.
    pub fn verify(
        &self,
        leaf: &[u8],
        chain: &[Vec<u8>],
        at: i64,
        message: &[u8],
        signature: &[u8],
    ) -> Result<FulcioCertificate, KeylessError> {
        let names = self
            .ca
            .verify(leaf, chain, at, message, signature)
            .map_err(|e| match e {
                KeylessError::NotVerified {
                    check: Check::Certificate,
                    detail,
                } => KeylessError::refused(
                    Check::Certificate,
                    detail.replace("a configured CA root", "the Fulcio CA"),
                ),
                other => other,
            })?;
        Ok(FulcioCertificate {
            emails: names.emails,
            issuer: fulcio_issuer(leaf)?,
            not_before: names.not_before,
            not_after: names.not_after,
        })
    }
}

/// The OIDC issuer Fulcio recorded in `leaf`: extension `.1.1` (raw bytes) and/or `.1.8` (a DER
/// UTF8String); when both are present they must agree, and neither may appear twice.
pub fn fulcio_issuer(leaf: &[u8]) -> Result<String, KeylessError> {
    let cert = x509_cert::Certificate::from_der(leaf)
        .map_err(|e| KeylessError::refused(Check::Certificate, format!("leaf certificate: {e}")))?;
    let mut v1: Option<String> = None;
    let mut v2: Option<String> = None;
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let value = ext.extn_value.as_bytes();
        let (slot, text) = if ext.extn_id == FULCIO_ISSUER_V1 {
            let text = std::str::from_utf8(value).map_err(|_| {
                KeylessError::refused(Check::Certificate, "OIDC issuer extension is not UTF-8")
            })?;
            (&mut v1, text.to_string())
        } else if ext.extn_id == FULCIO_ISSUER_V2 {
            let text = x509_cert::der::asn1::Utf8StringRef::from_der(value).map_err(|e| {
                KeylessError::refused(
                    Check::Certificate,
                    format!("OIDC issuer v2 extension is not a DER UTF8String: {e}"),
                )
            })?;
            (&mut v2, text.as_str().to_string())
        } else {
            continue;
        };
        if slot.replace(text).is_some() {
            return Err(KeylessError::refused(
                Check::Certificate,
                "duplicate OIDC issuer extension",
            ));
        }
    }
    match (v1, v2) {
        (Some(a), Some(b)) if a != b => Err(KeylessError::refused(
            Check::Certificate,
            format!("inconsistent OIDC issuer extensions: {a:?} and {b:?}"),
        )),
        (Some(issuer), _) | (None, Some(issuer)) => Ok(issuer),
        (None, None) => Err(KeylessError::refused(
            Check::Certificate,
            "the certificate has no Fulcio OIDC issuer extension",
        )),
    }
}

/// A Rekor log's public key named by a policy (containers/image `rekorPublicKey…`): an ECDSA
/// P-256 key, which verifies signed entry timestamps (SETs).
#[derive(Clone)]
pub struct RekorKey {
    key: p256::ecdsa::VerifyingKey,
}

impl std::fmt::Debug for RekorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RekorKey(ecdsa-p256)")
    }
}

impl RekorKey {
    /// Parse a PEM `PUBLIC KEY`. Anything but ECDSA P-256 is refused (containers/image requires
    /// an ECDSA key; the Rekor logs in use are P-256).
    pub fn from_pem(pem: &str) -> Result<Self, KeylessError> {
        use p256::pkcs8::DecodePublicKey as _;
        let malformed = |why: String| KeylessError::malformed(Input::PublicKey, why);
        let der = single_pem_block(pem.as_bytes(), "PUBLIC KEY")
            .map_err(|why| malformed(format!("Rekor key: {why}")))?;
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(&der).map_err(|e| {
            malformed(format!(
                "Rekor key: not an ECDSA P-256 public key (containers/image requires ECDSA): {e}"
            ))
        })?;
        Ok(RekorKey { key })
    }
}

/// A Rekor SET that verified, and what its entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedSet {
    /// When the log integrated the entry (Unix seconds): the time certificates are checked at.
    pub integrated_time: i64,
    /// The entry's index in the log.
    pub log_index: i64,
}

fn set_refused(detail: impl std::fmt::Display) -> KeylessError {
    KeylessError::refused(Check::TransparencyLog, detail)
}

/// Verify a cosign legacy `dev.sigstore.cosign/bundle` annotation as containers/image does: the
/// SET (ECDSA over the SHA-256 of the RFC 8785 form of `Payload`) verifies with `key`, and the
/// entry it signs is a `hashedrekord` 0.0.1 whose public key (PEM) holds exactly the DER
/// `signer_der` (the trusted public key's SPKI, or the leaf certificate), whose signature is
/// `signature` and whose data hash is the SHA-256 of `payload`. Only the canonical form that was
/// signed is read after the signature check.
pub fn verify_rekor_set(
    key: &RekorKey,
    set_json: &str,
    signer_der: &[u8],
    signature: &[u8],
    payload: &[u8],
) -> Result<VerifiedSet, KeylessError> {
    use base64::Engine as _;
    use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
    use serde_json::Value;
    use sha2::Digest as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    if set_json.len() > MAX_REKOR_SET_BYTES {
        return Err(set_refused(format!(
            "Rekor SET of {} bytes exceeds {MAX_REKOR_SET_BYTES}",
            set_json.len()
        )));
    }
    crate::json::check_depth(set_json.as_bytes(), Input::Bundle)
        .map_err(|e| set_refused(format!("Rekor SET: {e}")))?;
    let set: Value = serde_json::from_str(set_json)
        .map_err(|e| set_refused(format!("Rekor SET is not JSON: {e}")))?;
    let members = exact_members(&set, &["SignedEntryTimestamp", "Payload"], "Rekor SET")?;
    let promise = members[0]
        .as_str()
        .and_then(|s| b64.decode(s).ok())
        .ok_or_else(|| set_refused("Rekor SET: SignedEntryTimestamp is not base64"))?;
    let canonical = serde_json_canonicalizer::to_vec(members[1])
        .map_err(|e| set_refused(format!("canonicalizing the Rekor SET payload: {e}")))?;
    let digest = sha2::Sha256::digest(&canonical);
    let sig = p256::ecdsa::Signature::from_der(&promise)
        .map_err(|_| set_refused("Rekor SET: SignedEntryTimestamp is not a DER ECDSA signature"))?;
    key.key
        .verify_prehash(&digest, &sig)
        .map_err(|_| set_refused("the Rekor SET does not verify with the Rekor key"))?;

    let signed: Value = serde_json::from_slice(&canonical)
        .map_err(|e| set_refused(format!("Rekor SET payload: {e}")))?;
    let entry = exact_members(
        &signed,
        &["body", "integratedTime", "logIndex", "logID"],
        "Rekor SET payload",
    )?;
    let body = entry[0]
        .as_str()
        .and_then(|s| b64.decode(s).ok())
        .ok_or_else(|| set_refused("Rekor SET payload: body is not base64"))?;
    let integer = |v: &Value, name: &str| {
        v.as_i64()
            .ok_or_else(|| set_refused(format!("Rekor SET payload: {name} is not an integer")))
    };
    let integrated_time = integer(entry[1], "integratedTime")?;
    let log_index = integer(entry[2], "logIndex")?;
    if !entry[3].is_string() {
        return Err(set_refused("Rekor SET payload: logID is not a string"));
    }
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| set_refused(format!("Rekor entry body is not JSON: {e}")))?;
    let at = |path: &[&str]| -> Result<&Value, KeylessError> {
        path.iter()
            .try_fold(&body, |v, k| v.get(k))
            .ok_or_else(|| set_refused(format!("Rekor entry has no {}", path.join("."))))
    };
    let text = |path: &[&str]| -> Result<&str, KeylessError> {
        at(path)?
            .as_str()
            .ok_or_else(|| set_refused(format!("Rekor entry: {} is not a string", path.join("."))))
    };
    if text(&["kind"])? != "hashedrekord" {
        return Err(set_refused("Rekor entry is not a hashedrekord"));
    }
    if text(&["apiVersion"])? != "0.0.1" {
        return Err(set_refused(
            "Rekor entry: hashedrekord version is not 0.0.1",
        ));
    }
    let logged_key_pem = b64
        .decode(text(&["spec", "signature", "publicKey", "content"])?)
        .map_err(|_| set_refused("Rekor entry: publicKey is not base64"))?;
    let logged_der = any_single_pem_block(&logged_key_pem)
        .map_err(|why| set_refused(format!("Rekor entry publicKey: {why}")))?;
    if logged_der != signer_der {
        return Err(set_refused(
            "the Rekor entry names another public key or certificate",
        ));
    }
    let logged_signature = b64
        .decode(text(&["spec", "signature", "content"])?)
        .map_err(|_| set_refused("Rekor entry: signature is not base64"))?;
    if logged_signature != signature {
        return Err(set_refused("the Rekor entry names another signature"));
    }
    if text(&["spec", "data", "hash", "algorithm"])? != "sha256" {
        return Err(set_refused(
            "Rekor entry: data hash algorithm is not sha256",
        ));
    }
    let logged_hash = hex::decode(text(&["spec", "data", "hash", "value"])?)
        .map_err(|_| set_refused("Rekor entry: data hash is not hex"))?;
    if logged_hash.as_slice() != sha2::Sha256::digest(payload).as_slice() {
        return Err(set_refused("the Rekor entry names another payload"));
    }
    Ok(VerifiedSet {
        integrated_time,
        log_index,
    })
}

/// The members `names` of the JSON object `value`, in that order; any other member, or a
/// missing one, is refused.
fn exact_members<'v>(
    value: &'v serde_json::Value,
    names: &[&str],
    what: &str,
) -> Result<Vec<&'v serde_json::Value>, KeylessError> {
    let object = value
        .as_object()
        .ok_or_else(|| set_refused(format!("{what} is not a JSON object")))?;
    if let Some(extra) = object.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(set_refused(format!("{what}: unexpected member {extra:?}")));
    }
    names
        .iter()
        .map(|n| {
            object
                .get(*n)
                .ok_or_else(|| set_refused(format!("{what}: no {n}")))
        })
        .collect()
}

/// The DER of the one PEM block of `pem` labelled `label` (whitespace around it only).
fn single_pem_block(pem: &[u8], label: &str) -> Result<Vec<u8>, String> {
    let (found, der) = pem_block(pem)?;
    if found != label {
        return Err(format!("a PEM {found} block, not {label}"));
    }
    Ok(der)
}

/// The DER of the one PEM block of `pem`, whatever its label (containers/image compares the
/// logged block's bytes, not its type).
fn any_single_pem_block(pem: &[u8]) -> Result<Vec<u8>, String> {
    pem_block(pem).map(|(_, der)| der)
}

fn pem_block(pem: &[u8]) -> Result<(String, Vec<u8>), String> {
    use base64::Engine as _;
    let text = std::str::from_utf8(pem).map_err(|_| "not PEM text".to_string())?;
    let text = text.trim();
    let rest = text.strip_prefix("-----BEGIN ").ok_or("not a PEM block")?;
    let (label, rest) = rest.split_once("-----").ok_or("not a PEM block")?;
    let end = format!("-----END {label}-----");
    let (body, after) = rest
        .split_once(&end)
        .ok_or("PEM block without its END line")?;
    if !after.trim().is_empty() {
        return Err("data after the PEM block".into());
    }
    let b64: String = body.split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| "PEM block is not valid base64".to_string())?;
    Ok((label.to_string(), der))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use base64::Engine as _;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/cosign-real");
    /// rekor-set's integrated time, 2022-12-12T18:48:19Z.
    const SET_TIME: i64 = 1670870899;

    fn read(name: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
    }

    fn certs(name: &str) -> Vec<Vec<u8>> {
        let text = read(name);
        text.split("-----END CERTIFICATE-----")
            .filter(|b| b.contains("BEGIN"))
            .map(|b| {
                single_pem_block(
                    format!("{b}-----END CERTIFICATE-----").as_bytes(),
                    "CERTIFICATE",
                )
                .unwrap()
            })
            .collect()
    }

    fn triple() -> (String, Vec<u8>, Vec<u8>, Vec<u8>) {
        let set = read("rekor-set");
        let signature = base64::engine::general_purpose::STANDARD
            .decode(read("rekor-sig").trim())
            .unwrap();
        let payload = std::fs::read(format!("{FIXTURES}/rekor-payload")).unwrap();
        let leaf = certs("fulcio-cert").remove(0);
        (set, signature, payload, leaf)
    }

    fn tlog_detail(e: KeylessError) -> String {
        match e {
            KeylessError::NotVerified {
                check: Check::TransparencyLog,
                detail,
            } => detail,
            other => panic!("a transparency-log refusal, not {other}"),
        }
    }

    #[test]
    fn the_real_set_verifies_and_binds_signature_certificate_and_payload() {
        let (set, signature, payload, leaf) = triple();
        let rekor = RekorKey::from_pem(&read("rekor.pub")).unwrap();
        let verified = verify_rekor_set(&rekor, &set, &leaf, &signature, &payload).unwrap();
        assert_eq!(verified.integrated_time, SET_TIME);
        assert_eq!(verified.log_index, 8949589);

        let other_key = RekorKey::from_pem(&read("cosign.pub")).unwrap();
        let why = tlog_detail(
            verify_rekor_set(&other_key, &set, &leaf, &signature, &payload).unwrap_err(),
        );
        assert!(why.contains("does not verify with the Rekor key"), "{why}");

        let why =
            tlog_detail(verify_rekor_set(&rekor, &set, &leaf, &signature, b"other").unwrap_err());
        assert!(why.contains("another payload"), "{why}");
        let mut other_sig = signature.clone();
        other_sig[10] ^= 1;
        let why =
            tlog_detail(verify_rekor_set(&rekor, &set, &leaf, &other_sig, &payload).unwrap_err());
        assert!(why.contains("another signature"), "{why}");
        let other_cert = certs("fulcio-chain").remove(0);
        let why = tlog_detail(
            verify_rekor_set(&rekor, &set, &other_cert, &signature, &payload).unwrap_err(),
        );
        assert!(why.contains("another public key or certificate"), "{why}");

        // The signed payload altered (another integrated time) no longer verifies.
        let altered = set.replace(&SET_TIME.to_string(), &(SET_TIME + 1).to_string());
        assert_ne!(altered, set);
        let why = tlog_detail(
            verify_rekor_set(&rekor, &altered, &leaf, &signature, &payload).unwrap_err(),
        );
        assert!(why.contains("does not verify"), "{why}");
        // An extra member is refused before anything else is read.
        let extra = set.replacen('{', "{\"x\":1,", 1);
        let why =
            tlog_detail(verify_rekor_set(&rekor, &extra, &leaf, &signature, &payload).unwrap_err());
        assert!(why.contains("unexpected member"), "{why}");
    }

    #[test]
    fn rekor_keys_must_be_ecdsa_p256() {
        let e = RekorKey::from_pem(&read("some-rsa-key.pub")).unwrap_err();
        assert!(e.is_malformed_input(), "{e}");
        assert!(e.to_string().contains("ECDSA"), "{e}");
        assert!(RekorKey::from_pem(&read("fulcio_v1.crt.pem")).is_err());
    }

    #[test]
    fn fulcio_certificates_are_checked_at_the_set_time_against_the_named_ca() {
        let (_, signature, payload, leaf) = triple();
        let chain = certs("fulcio-chain");
        let intermediates = &chain[..chain.len() - 1];
        let trust = FulcioTrust::new(certs("fulcio_v1.crt.pem")).unwrap();
        let cert = trust
            .verify(&leaf, intermediates, SET_TIME, &payload, &signature)
            .unwrap();
        assert_eq!(cert.emails, ["mitr@redhat.com"]);
        assert_eq!(cert.issuer, "https://github.com/login/oauth");
        // Outside the certificate's validity (18:48:17 and 18:58:19 that day), and now.
        for at in [SET_TIME - 2, SET_TIME + 600, 1_800_000_000] {
            let e = trust
                .verify(&leaf, intermediates, at, &payload, &signature)
                .unwrap_err();
            assert_eq!(e.check(), Some(Check::Certificate), "{e}");
        }
        // Another CA (the private-PKI root), or no intermediate.
        let other = FulcioTrust::new(certs("pki_root_crts.pem")).unwrap();
        let e = other
            .verify(&leaf, intermediates, SET_TIME, &payload, &signature)
            .unwrap_err();
        assert!(
            e.to_string().contains("does not chain to the Fulcio CA"),
            "{e}"
        );
        let e = trust
            .verify(&leaf, &[], SET_TIME, &payload, &signature)
            .unwrap_err();
        assert_eq!(e.check(), Some(Check::Certificate), "{e}");
        // A signature over other bytes.
        let e = trust
            .verify(&leaf, intermediates, SET_TIME, b"other", &signature)
            .unwrap_err();
        assert_eq!(e.check(), Some(Check::Signature), "{e}");
        // A certificate without the issuer extension (the CA itself).
        let e = fulcio_issuer(&certs("fulcio_v1.crt.pem")[0]).unwrap_err();
        assert!(e.to_string().contains("no Fulcio OIDC issuer"), "{e}");
    }
}
