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
