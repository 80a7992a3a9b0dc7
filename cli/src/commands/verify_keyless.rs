//! `signet verify IMAGE --certificate-identity … --certificate-oidc-issuer …`: keyless image
//! signatures (cosign's legacy `.sig` layers with certificates, and cosign 3 bundles attached as
//! OCI 1.1 referrers), or signed with certificates from a private CA (`--ca-roots`). The work
//! is `signet_verifier::keyless`; this is output.

use anyhow::Context as _;
use signet_keyless::TrustedRoot;
use signet_oci::store::ImageStore;
use signet_oci::ImageLocation;
use signet_verifier::identity::IdentityRule;
use signet_verifier::keyless::{
    verify_keyless_image, CertificateTrust, FormatRequirement, KeylessOptions, SignatureFormat,
};
use signet_verifier::verify::Outcome;

use crate::exit::ExitCode;
use crate::options::{GlobalOptions, OutputFormat};

/// What a certificate verification of `signet verify` takes besides the trust.
#[derive(Debug)]
pub struct KeylessArgs {
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

/// Run keyless `signet verify` on one image.
pub async fn run(
    args: &KeylessArgs,
    trust: CertificateTrust,
    root: Option<TrustedRoot>,
    image: &str,
    global: &GlobalOptions,
) -> anyhow::Result<ExitCode> {
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
                let failed = signet_verifier::signatures::failed_checks(&candidate.checks());
                eprintln!(
                    "  {} signature {}: {}",
                    match candidate.format() {
                        SignatureFormat::Legacy => "legacy",
                        SignatureFormat::Bundle => "bundle",
                    },
                    candidate.index(),
                    failed
                );
            }
            Ok(ExitCode::NoValidSignature)
        }
    }
}
