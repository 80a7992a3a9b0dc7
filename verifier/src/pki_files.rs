//! A private PKI named by files, as cosign's `--ca-roots` and `--ca-intermediates` name it: the
//! CA certificates read (bounded) and parsed into the [`CertificateTrust::Pki`] under which
//! [`crate::attest::verify_attestations`] checks `.att` layers and
//! [`crate::keyless::verify_keyless_image`] checks `.sig` layers. Only the reading lives here;
//! the path building and signature checks are signet-keyless's `pki.rs`, reached through those
//! two functions.

use std::path::Path;

use signet_keyless::pki::{PkiTrust, MAX_PKI_CERTIFICATES};

use crate::keyless::{pem_certificates, CertificateTrust};
use crate::Error;

/// Largest CA certificate file read.
pub const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// Who a private-PKI certificate must name: at least one of its SANs. A certificate from a
/// private CA names no OIDC issuer, so without a SAN to require, any certificate the CA ever
/// issued would be trusted; [`pki_trust_from_files`] refuses that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PkiIdentity {
    /// An `rfc822Name` SAN the certificate must carry.
    pub email: Option<String>,
    /// A `dNSName` SAN the certificate must carry.
    pub hostname: Option<String>,
}

/// The private-PKI trust of the CA roots in the PEM file `roots` and the intermediates in
/// `intermediates` (each at most [`MAX_CA_FILE_BYTES`], together at most
/// [`MAX_PKI_CERTIFICATES`] certificates, nothing but `CERTIFICATE` blocks), requiring the SANs
/// of `identity`, with certificates checked at `now` (Unix seconds; a private CA gives no log
/// time to check them at). Every error names the file it is about.
pub fn pki_trust_from_files(
    roots: &Path,
    intermediates: Option<&Path>,
    identity: PkiIdentity,
    now: i64,
) -> Result<CertificateTrust, Error> {
    if identity.email.is_none() && identity.hostname.is_none() {
        return Err(Error::Invalid(
            "a private-PKI signer needs an email or hostname SAN that its certificate must carry"
                .into(),
        ));
    }
    let intermediates = match intermediates {
        Some(path) => certificates_file(path)?,
        None => Vec::new(),
    };
    let trust = PkiTrust::new(certificates_file(roots)?, intermediates)
        .map_err(|e| Error::Invalid(format!("{}: {e}", roots.display())))?;
    Ok(CertificateTrust::Pki {
        trust,
        email: identity.email,
        hostname: identity.hostname,
        now,
    })
}

/// The DER certificates of the PEM file at `path`.
fn certificates_file(path: &Path) -> Result<Vec<Vec<u8>>, Error> {
    let bytes = signet_oci::read_file_bounded(path, MAX_CA_FILE_BYTES)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Invalid(format!("{}: not PEM text", path.display())))?;
    pem_certificates(&text, MAX_PKI_CERTIFICATES)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/cosign-real");

    fn email() -> PkiIdentity {
        PkiIdentity {
            email: Some("qiwan@redhat.com".into()),
            hostname: None,
        }
    }

    #[test]
    fn real_ca_files_become_a_pki_trust_with_the_identity() {
        let roots = Path::new(FIXTURES).join("pki_root_crts.pem");
        let intermediates = Path::new(FIXTURES).join("pki_intermediate_crts.pem");
        let trust = pki_trust_from_files(&roots, Some(&intermediates), email(), 7).unwrap();
        let CertificateTrust::Pki {
            email,
            hostname,
            now,
            ..
        } = trust
        else {
            panic!("not a PKI trust: {trust:?}");
        };
        assert_eq!(
            (email.as_deref(), hostname, now),
            (Some("qiwan@redhat.com"), None, 7)
        );
    }

    #[test]
    fn each_unusable_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let roots = Path::new(FIXTURES).join("pki_root_crts.pem");
        let missing = dir.path().join("missing.pem");
        let junk = dir.path().join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let binary = dir.path().join("binary.pem");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b' '; MAX_CA_FILE_BYTES as usize + 1]).unwrap();
        for (root, intermediate, named) in [
            (&missing, None, &missing),
            (&junk, None, &junk),
            (&binary, None, &binary),
            (&empty, None, &empty),
            (&big, None, &big),
            (&roots, Some(&missing), &missing),
            (&roots, Some(&junk), &junk),
        ] {
            let error = pki_trust_from_files(root, intermediate.map(|p| p.as_path()), email(), 0)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&named.display().to_string()),
                "{root:?} {intermediate:?}: {error}"
            );
        }
    }

    #[test]
    fn a_pki_trust_without_a_san_to_require_is_refused() {
        let roots = Path::new(FIXTURES).join("pki_root_crts.pem");
        let error = pki_trust_from_files(&roots, None, PkiIdentity::default(), 0).unwrap_err();
        assert!(
            matches!(&error, Error::Invalid(why) if why.contains("email or hostname SAN")),
            "{error}"
        );
    }
}
