//! Trust material a policy *names* for certificate signers: Sigstore trusted roots, fixed CA
//! certificates, Rekor public keys. The policy crate never reads or parses it (no I/O, no X.509):
//! the verifier loads each [`TrustSource`] and [`Material`] the policy lists (bounded, paths
//! relative to the policy file), verifies signatures with it, and reports back in the evidence
//! *which* source and log key verified each signature, by the same value. The policy then decides
//! whether that is the source the signer it evaluates names.
//!
//! Values compare by what the policy wrote (a path as written, inline PEM as text), so two signers
//! naming the same file share one source and the verifier checks each signature once per source.

use std::fmt;

/// Where a piece of trust material comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Material {
    /// A file, the path exactly as the policy wrote it (relative paths resolve against the policy
    /// file's folder; the verifier does that).
    Path(String),
    /// The material inline: PEM text (Signet policies write it as is; containers-policy.json's
    /// base64 `…Data` fields are decoded to it when converted).
    Pem(String),
}

impl fmt::Display for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Material::Path(path) => write!(f, "file {path:?}"),
            Material::Pem(_) => f.write_str("inline PEM"),
        }
    }
}

/// Which Sigstore trusted root (`trusted_root.json`: Fulcio CAs, Rekor logs, CT logs, timestamp
/// authorities, each with validity windows).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SigstoreRoot {
    /// Sigstore's public-good instance (the embedded snapshot, or the `signet trust update`
    /// cache when newer). The default of a keyless signer.
    PublicGood,
    /// GitHub's instance (GitHub Actions artifact attestations for private repositories).
    GitHub,
    /// A `trusted_root.json` file.
    File(String),
}

impl fmt::Display for SigstoreRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigstoreRoot::PublicGood => f.write_str("Sigstore public-good root"),
            SigstoreRoot::GitHub => f.write_str("GitHub's Sigstore root"),
            SigstoreRoot::File(path) => write!(f, "trusted root file {path:?}"),
        }
    }
}

/// Fixed certificate authorities: containers-policy.json's `fulcio` (`caPath`/`caData`) and
/// `pki` (`caRoots…`, `caIntermediates…`), Signet's `pki` signers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CertificateAuthority {
    /// PEM certificates accepted as chain anchors.
    pub roots: Material,
    /// PEM intermediates the chain may use besides those the signature carries.
    pub intermediates: Option<Material>,
    /// Fulcio semantics (containers-policy.json `fulcio`): the leaf must carry Fulcio's OIDC
    /// issuer extension, and a Rekor entry is required. Without it: private PKI (`pki`).
    pub fulcio: bool,
}

/// What a certificate chain was verified against: one source the policy names. A signature
/// "verified under" a source means every check that source demands held — for a Sigstore root:
/// chain to one of its Fulcio CAs, SCT, transparency log entry and/or timestamps as Sigstore
/// requires, certificate valid at the verified time; for a [`CertificateAuthority`]: chain to its
/// roots (through its intermediates and the signature's own chain), code-signing usage,
/// certificate valid at the verified time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrustSource {
    /// A Sigstore trusted root.
    Sigstore(SigstoreRoot),
    /// Fixed certificate authorities.
    Authority(CertificateAuthority),
}

impl fmt::Display for TrustSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustSource::Sigstore(root) => root.fmt(f),
            TrustSource::Authority(ca) => {
                let kind = if ca.fulcio { "Fulcio CA" } else { "CA roots" };
                write!(f, "{kind} {}", ca.roots)?;
                if let Some(intermediates) = &ca.intermediates {
                    write!(f, " with intermediates {intermediates}")?;
                }
                Ok(())
            }
        }
    }
}

/// Which transparency log verified an entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogSource {
    /// One of the Rekor logs (v1 or v2) of a Sigstore trusted root.
    Sigstore(SigstoreRoot),
    /// A Rekor public key the policy names (containers-policy.json `rekorPublicKey…`; Signet
    /// `rekorKeys`): the entry's signed entry timestamp (SET) verified with it.
    RekorKey(Material),
}

impl fmt::Display for LogSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogSource::Sigstore(root) => write!(f, "a Rekor log of the {root}"),
            LogSource::RekorKey(material) => write!(f, "Rekor key {material}"),
        }
    }
}
