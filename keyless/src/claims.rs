//! What a verified Fulcio certificate says about its subject. These are claims, not decisions:
//! matching them against a wanted identity is policy (`signet_policy::certificate`).

use x509_cert::der::Decode as _;
use x509_cert::ext::pkix::name::GeneralName;

use crate::error::{Check, KeylessError};

/// Fulcio's `otherName` SAN type for usernames (`1.3.6.1.4.1.57264.1.7`).
const FULCIO_USERNAME_OID: x509_cert::der::asn1::ObjectIdentifier =
    x509_cert::der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.7");
/// RFC 6962 embedded SCT list extension.
pub(crate) const SCT_LIST_OID: x509_cert::der::asn1::ObjectIdentifier =
    x509_cert::der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// One subject alternative name of the signing certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectName {
    /// `rfc822Name`: an email identity (`user@example.com`).
    Email(String),
    /// `uniformResourceIdentifier`: a workload identity (a GitHub workflow URL, a SPIFFE id).
    Uri(String),
    /// Fulcio's `otherName` username (`1.3.6.1.4.1.57264.1.7`).
    OtherName(String),
}

impl SubjectName {
    /// The value, whatever its kind.
    pub fn as_str(&self) -> &str {
        match self {
            SubjectName::Email(v) | SubjectName::Uri(v) | SubjectName::OtherName(v) => v,
        }
    }
}

/// The deprecated GitHub workflow extensions (`1.3.6.1.4.1.57264.1.2`–`.6`), which cosign's
/// `--certificate-github-workflow-*` flags match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitHubWorkflowClaims {
    /// `.1.2` the event that triggered the workflow (`push`).
    pub trigger: Option<String>,
    /// `.1.3` the commit SHA.
    pub sha: Option<String>,
    /// `.1.4` the workflow name.
    pub name: Option<String>,
    /// `.1.5` the repository (`owner/repo`).
    pub repository: Option<String>,
    /// `.1.6` the git ref (`refs/heads/main`).
    pub git_ref: Option<String>,
}

/// Fulcio's provider-neutral CI claims (`1.3.6.1.4.1.57264.1.9` onwards).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiClaims {
    /// `.1.9` build signer URI (the workflow file at a ref).
    pub build_signer_uri: Option<String>,
    /// `.1.10` build signer digest.
    pub build_signer_digest: Option<String>,
    /// `.1.11` runner environment (`github-hosted`).
    pub runner_environment: Option<String>,
    /// `.1.12` source repository URI.
    pub source_repository_uri: Option<String>,
    /// `.1.13` source repository digest (commit).
    pub source_repository_digest: Option<String>,
    /// `.1.14` source repository ref.
    pub source_repository_ref: Option<String>,
    /// `.1.18` build config URI.
    pub build_config_uri: Option<String>,
    /// `.1.20` build trigger.
    pub build_trigger: Option<String>,
    /// `.1.21` run invocation URI.
    pub run_invocation_uri: Option<String>,
}

/// The claims of a signing certificate whose chain, validity and transparency evidence verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateClaims {
    /// Every email, URI and Fulcio-username SAN, in certificate order.
    pub subjects: Vec<SubjectName>,
    /// The OIDC issuer: extension `.1.8` when present, else the legacy `.1.1`.
    pub issuer: Option<String>,
    /// The deprecated GitHub workflow extensions.
    pub github: GitHubWorkflowClaims,
    /// The provider-neutral CI extensions.
    pub ci: CiClaims,
    /// The certificate's `notBefore`, Unix seconds.
    pub not_before: i64,
    /// The certificate's `notAfter`, Unix seconds.
    pub not_after: i64,
}

/// Every SAN of the leaf (sigstore-crypto reports only the first email or URI).
pub(crate) fn subject_names(leaf_der: &[u8]) -> Result<Vec<SubjectName>, KeylessError> {
    let cert = x509_cert::Certificate::from_der(leaf_der)
        .map_err(|e| KeylessError::refused(Check::Certificate, format!("leaf certificate: {e}")))?;
    let san: Option<(bool, x509_cert::ext::pkix::SubjectAltName)> =
        cert.tbs_certificate.get().map_err(|e| {
            KeylessError::refused(
                Check::Certificate,
                format!("subject alternative names: {e}"),
            )
        })?;
    let mut names = Vec::new();
    for name in san.map(|(_, san)| san.0).unwrap_or_default() {
        match name {
            GeneralName::Rfc822Name(v) => names.push(SubjectName::Email(v.to_string())),
            GeneralName::UniformResourceIdentifier(v) => {
                names.push(SubjectName::Uri(v.to_string()))
            }
            GeneralName::OtherName(other) if other.type_id == FULCIO_USERNAME_OID => {
                let text =
                    x509_cert::der::asn1::Utf8StringRef::try_from(&other.value).map_err(|e| {
                        KeylessError::refused(Check::Certificate, format!("otherName SAN: {e}"))
                    })?;
                names.push(SubjectName::OtherName(text.as_str().to_string()));
            }
            _ => {}
        }
    }
    Ok(names)
}

/// Whether the certificate carries an embedded SCT list.
pub(crate) fn has_sct(leaf_der: &[u8]) -> Result<bool, KeylessError> {
    let cert = x509_cert::Certificate::from_der(leaf_der)
        .map_err(|e| KeylessError::refused(Check::Certificate, format!("leaf certificate: {e}")))?;
    Ok(cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .any(|ext| ext.extn_id == SCT_LIST_OID))
}

/// Whether the certificate names itself as issuer (a root). Bundles must not carry roots: trust
/// anchors come from the trusted root only.
pub(crate) fn is_self_issued(der: &[u8]) -> Result<bool, KeylessError> {
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| {
        KeylessError::refused(Check::Certificate, format!("chain certificate: {e}"))
    })?;
    Ok(cert.tbs_certificate.subject == cert.tbs_certificate.issuer)
}

pub(crate) fn from_info(
    info: &sigstore_crypto::CertificateInfo,
    subjects: Vec<SubjectName>,
) -> CertificateClaims {
    let ci = &info.ci_claims;
    let gh = &ci.deprecated_github;
    CertificateClaims {
        subjects,
        issuer: info.issuer.clone(),
        github: GitHubWorkflowClaims {
            trigger: gh.workflow_trigger.clone(),
            sha: gh.workflow_sha.clone(),
            name: gh.workflow_name.clone(),
            repository: gh.workflow_repository.clone(),
            git_ref: gh.workflow_ref.clone(),
        },
        ci: CiClaims {
            build_signer_uri: ci.build_signer_uri.clone(),
            build_signer_digest: ci.build_signer_digest.clone(),
            runner_environment: ci.runner_environment.clone(),
            source_repository_uri: ci.source_repository_uri.clone(),
            source_repository_digest: ci.source_repository_digest.clone(),
            source_repository_ref: ci.source_repository_ref.clone(),
            build_config_uri: ci.build_config_uri.clone(),
            build_trigger: ci.build_trigger.clone(),
            run_invocation_uri: ci.run_invocation_uri.clone(),
        },
        not_before: info.not_before.as_second(),
        not_after: info.not_after.as_second(),
    }
}
