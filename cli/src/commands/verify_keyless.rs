//! `signet verify IMAGE --certificate-identity … --certificate-oidc-issuer …`: keyless image
//! signatures (cosign's legacy `.sig` layers with certificates, and cosign 3 bundles attached as
//! OCI 1.1 referrers). The work is `signet_verifier::keyless`; this is flags and output.

use std::path::PathBuf;

use anyhow::Context as _;
use signet_keyless::pki::PkiTrust;
use signet_keyless::{load_trusted_root, Instance, TrustedRoot, Verifier};
use signet_oci::store::ImageStore;
use signet_oci::ImageLocation;
use signet_policy::certificate::{CertificateIdentity, GitHubRequirements, Match};
use signet_verifier::identity::IdentityRule;
use signet_verifier::keyless::{
    verify_keyless_image, CertificateTrust, FormatRequirement, KeylessOptions, SignatureFormat,
};
use signet_verifier::verify::Outcome;

use crate::exit::ExitCode;
use crate::options::{GlobalOptions, OutputFormat};

/// The keyless flags of `signet verify`.
#[derive(Debug)]
pub struct KeylessArgs {
    /// `--certificate-identity`.
    pub certificate_identity: Option<String>,
    /// `--certificate-identity-regexp`.
    pub certificate_identity_regexp: Option<String>,
    /// `--certificate-oidc-issuer`.
    pub certificate_oidc_issuer: Option<String>,
    /// `--certificate-oidc-issuer-regexp`.
    pub certificate_oidc_issuer_regexp: Option<String>,
    /// `--certificate-github-workflow-*`.
    pub github: GitHubRequirements,
    /// `--trusted-root`.
    pub trusted_root: Option<PathBuf>,
    /// `--ca-roots`.
    pub ca_roots: Option<PathBuf>,
    /// `--ca-intermediates`.
    pub ca_intermediates: Option<PathBuf>,
    /// `--certificate-email`.
    pub certificate_email: Option<String>,
    /// `--certificate-hostname`.
    pub certificate_hostname: Option<String>,
    /// `--instance`.
    pub instance: Instance,
    /// `--signature-format`.
    pub formats: FormatRequirement,
    /// `--identity-rule`.
    pub identity_rule: IdentityRule,
    /// `--identity`.
    pub identity: Option<String>,
    /// `--signature-repo`.
    pub signature_repo: Option<String>,
    /// `--max-signatures`.
    pub max_signatures: usize,
    /// `--output`.
    pub output: OutputFormat,
}

fn certificate_identity(args: &KeylessArgs) -> anyhow::Result<CertificateIdentity> {
    let pick = |exact: &Option<String>, pattern: &Option<String>, what: &str| match (exact, pattern)
    {
        (Some(value), _) => Ok(Match::Exact(value.clone())),
        (None, Some(pattern)) => Ok(Match::pattern(pattern)?),
        (None, None) => anyhow::bail!("keyless verification needs {what}"),
    };
    Ok(CertificateIdentity {
        subject: pick(
            &args.certificate_identity,
            &args.certificate_identity_regexp,
            "--certificate-identity or --certificate-identity-regexp",
        )?,
        issuer: pick(
            &args.certificate_oidc_issuer,
            &args.certificate_oidc_issuer_regexp,
            "--certificate-oidc-issuer or --certificate-oidc-issuer-regexp",
        )?,
        github: args.github.clone(),
    })
}

fn trusted_root(args: &KeylessArgs) -> anyhow::Result<TrustedRoot> {
    // No usable cache location means no cache; a cache entry failing its checks is an error.
    let cache = signet_keyless::cache::TufCache::default_location().ok();
    Ok(load_trusted_root(
        args.trusted_root.as_deref(),
        args.instance,
        cache
            .as_ref()
            .map(|c| c as &dyn signet_keyless::TrustedRootCache),
    )?)
}

/// Largest CA certificate file read.
const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

fn pem_file(path: &std::path::Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = signet_oci::read_file_bounded(path, MAX_CA_FILE_BYTES)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{}: not PEM text", path.display()))?;
    signet_verifier::keyless::pem_certificates(&text, signet_keyless::pki::MAX_PKI_CERTIFICATES)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn pki_trust(args: &KeylessArgs, roots: &std::path::Path) -> anyhow::Result<CertificateTrust> {
    if args.certificate_email.is_none() && args.certificate_hostname.is_none() {
        anyhow::bail!("--ca-roots needs --certificate-email and/or --certificate-hostname");
    }
    let intermediates = match &args.ca_intermediates {
        Some(path) => pem_file(path)?,
        None => Vec::new(),
    };
    Ok(CertificateTrust::Pki {
        trust: PkiTrust::new(pem_file(roots)?, intermediates)?,
        email: args.certificate_email.clone(),
        hostname: args.certificate_hostname.clone(),
        now: signet_oci::clock::unix_now()?,
    })
}

/// Run keyless `signet verify` on one image.
pub async fn run(
    args: &KeylessArgs,
    image: &str,
    global: &GlobalOptions,
) -> anyhow::Result<ExitCode> {
    // Usage and trust material first: no request is made with a flag or root that is wrong.
    let (trust, root) = match &args.ca_roots {
        Some(roots) => (pki_trust(args, roots)?, None),
        None => {
            let identity = certificate_identity(args)?;
            let root = trusted_root(args)?;
            let verifier = Verifier::new(&root)?;
            (
                CertificateTrust::Sigstore { verifier, identity },
                Some(root),
            )
        }
    };
    let options = KeylessOptions {
        trust,
        identity_rule: args.identity_rule.clone(),
        formats: args.formats,
        max_signatures: args.max_signatures,
    };
    let location: ImageLocation = image.parse()?;
    let identity = super::sign::identity_of(&location, args.identity.as_deref())?;
    let client = &global.registry_client(&location)?;
    let store = ImageStore::open(&location, client)?;
    let separate = super::sign::signature_store(
        &store,
        &location,
        args.signature_repo.as_deref(),
        client,
        false,
    )?;
    let signatures = separate.as_ref().unwrap_or(&store);
    let report = match verify_keyless_image(&store, signatures, &identity, &options).await {
        Ok(report) => report,
        Err(e) if e.is_not_found() => {
            eprintln!("signet: error: {e}");
            return Ok(ExitCode::ImageNotFound);
        }
        Err(e) => return Err(e.into()),
    };
    match args.output {
        OutputFormat::Json => {
            let mut value = serde_json::to_value(&report)?;
            if let Some(root) = &root {
                value["trusted_root"] = serde_json::json!({
                    "source": root.source().to_string(), "sha256": root.sha256(),
                });
            }
            print!(
                "{}",
                &format!("{}\n", serde_json::to_string_pretty(&value)?)
            );
        }
        OutputFormat::Text => {
            let payloads = report
                .verified()
                .filter_map(|c| c.payload_bytes())
                .map(serde_json::from_slice::<serde_json::Value>)
                .collect::<Result<Vec<_>, _>>()
                .context("re-reading a verified payload")?;
            if !payloads.is_empty() {
                print!("{}", &format!("{}\n", serde_json::to_string(&payloads)?));
            }
        }
    }
    for finding in &report.findings {
        eprintln!("signet: note: {}: {}", finding.code, finding.message);
    }
    match report.outcome {
        Outcome::Verified => {
            let formats: Vec<&str> = report
                .verified()
                .map(|c| match c.format() {
                    SignatureFormat::Legacy => "legacy .sig layer (digest and repository signed)",
                    SignatureFormat::Bundle => {
                        "cosign bundle referrer (digest signed, repository not)"
                    }
                })
                .collect();
            eprintln!(
                "\nVerification for {} ({}) --\nThe following checks were performed on each of these signatures:\n  - the certificate chains to the trusted root ({}), was valid at the verified log or timestamp time, and its transparency-log and timestamp evidence verified\n  - the certificate names the required identity and issuer\n  - the signed payload names the image's manifest digest\n{} verified: {}",
                report.image,
                report.digest,
                root.as_ref().map_or_else(
                    || "the given CA roots, at the current time".to_string(),
                    |r| r.source().to_string()
                ),
                formats.len(),
                formats.join("; ")
            );
            Ok(ExitCode::Success)
        }
        Outcome::NoSignatures => {
            eprintln!(
                "signet: error: no keyless signatures found for {} ({})",
                report.image, report.digest
            );
            Ok(ExitCode::NoSignatures)
        }
        Outcome::NoneVerified => {
            eprintln!(
                "signet: error: none of the {} keyless signature(s) of {} ({}) verifies:",
                report.signatures.len(),
                report.image,
                report.digest
            );
            for candidate in &report.signatures {
                let failed: Vec<String> = candidate
                    .checks()
                    .iter()
                    .filter(|(_, c)| c.failed())
                    .map(|(name, c)| format!("{name}: {}", c.detail()))
                    .collect();
                eprintln!(
                    "  {} signature {}: {}",
                    match candidate.format() {
                        SignatureFormat::Legacy => "legacy",
                        SignatureFormat::Bundle => "bundle",
                    },
                    candidate.index(),
                    failed.join("; ")
                );
            }
            Ok(ExitCode::NoValidSignature)
        }
    }
}
