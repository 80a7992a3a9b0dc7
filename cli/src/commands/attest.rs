//! `signet attest` and `signet verify-attestation`: in-toto statements about an image, signed in
//! DSSE envelopes, as cosign's `.att` and/or Sigstore bundle referrers.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use signet_oci::store::ImageStore;
use signet_oci::ImageLocation;
use signet_sign::intoto::{PredicateType, MAX_STATEMENT_BYTES};
use signet_sign::keys::read_public_key_file;
use signet_verifier::attest::{
    attest_image, verify_attestations, AttestOptions, AttestationOutcome, VerifyAttestationOptions,
};
use signet_verifier::bundle_sign::SignatureFormat;
use signet_verifier::keyless::CertificateTrust;
use signet_verifier::sign::DEFAULT_MAX_ATTEMPTS;

use super::identity_args::ImageCertificateArgs;
use crate::exit::ExitCode;
use crate::options::GlobalOptions;

/// `--format` of `sign` and `attest`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    /// cosign's legacy tags (`sha256-<hex>.sig` / `.att`).
    Legacy,
    /// A Sigstore bundle v0.3 as an OCI 1.1 referrer (cosign 3).
    Bundle,
    /// Both in one run.
    Both,
}

impl From<FormatArg> for SignatureFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Legacy => SignatureFormat::Legacy,
            FormatArg::Bundle => SignatureFormat::Bundle,
            FormatArg::Both => SignatureFormat::Both,
        }
    }
}

/// Arguments of `signet attest`.
#[derive(Debug, clap::Args)]
pub struct AttestArgs {
    /// The encrypted private key file (cosign format).
    #[arg(long)]
    key: PathBuf,
    /// The predicate: a JSON object file (`-` for stdin), at most 4 MiB.
    #[arg(long, value_name = "FILE")]
    predicate: PathBuf,
    /// cosign's type names (slsaprovenance, slsaprovenance02, slsaprovenance1, spdx, spdxjson,
    /// cyclonedx, link, vuln, openvex, custom) or a predicate type URI.
    #[arg(long = "type", default_value = "custom")]
    predicate_type: String,
    /// Where the attestation goes: the `.att` tag (legacy), a bundle referrer, or both.
    #[arg(long, value_enum, default_value = "legacy")]
    format: FormatArg,
    /// A certificate (PEM) for --key, from a private CA: written into the `.att` layer as
    /// cosign's `dev.sigstore.cosign/certificate` annotation (legacy format only).
    #[arg(long, value_name = "FILE")]
    certificate: Option<PathBuf>,
    /// The certificate's chain (PEM, root last), written as `dev.sigstore.cosign/chain`.
    #[arg(long, value_name = "FILE", requires = "certificate")]
    certificate_chain: Option<PathBuf>,
    /// The registry reference the image is known by (required for oci: images); its repository
    /// is the statement's subject name.
    #[arg(long, value_name = "REF")]
    identity: Option<String>,
    /// `text`: what was attested, on stderr; `json`: one document on stdout.
    #[arg(long, value_enum, default_value = "text")]
    output: crate::options::OutputFormat,
    /// The image to attest.
    image: String,
}

/// Arguments of `signet verify-attestation`.
#[derive(Debug, clap::Args)]
#[command(mut_arg("trusted_root", |arg| arg.requires("issuer")))]
pub struct VerifyAttestationArgs {
    /// A trusted public key (PEM); repeat for several (any one suffices).
    #[arg(long, required_unless_present_any = ["certificate_identity", "certificate_identity_regexp", "ca_roots"])]
    key: Vec<PathBuf>,
    /// Accept only this predicate type (cosign's type names or a URI).
    #[arg(long = "type")]
    predicate_type: Option<String>,
    /// `text`: each verified statement as one JSON line on stdout; `json`: every candidate and
    /// each of its checks.
    #[arg(long, value_enum, default_value = "text")]
    output: crate::options::OutputFormat,
    /// The image.
    image: String,
    /// Keyless and private-PKI flags; boxed (they would make every command's arguments large),
    /// and last (their help headings would hold every argument declared after them).
    #[command(flatten)]
    certificates: Box<ImageCertificateArgs>,
}

fn read_predicate(path: &PathBuf) -> anyhow::Result<serde_json::Value> {
    let limit = MAX_STATEMENT_BYTES as u64;
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .context("reading the predicate from stdin")?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
            .with_context(|| format!("reading {}", path.display()))?;
    }
    if bytes.len() as u64 > limit {
        bail!(
            "{}: the predicate is over the {limit}-byte limit",
            path.display()
        );
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: the predicate is not JSON", path.display()))?;
    if !value.is_object() {
        bail!("{}: the predicate is not a JSON object", path.display());
    }
    Ok(value)
}

/// Run `signet attest`.
pub async fn attest(args: AttestArgs, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
    let predicate_type = PredicateType::from_name(&args.predicate_type)?;
    let predicate = read_predicate(&args.predicate)?;
    let location: ImageLocation = args.image.parse()?;
    let identity = super::sign::identity_of(&location, args.identity.as_deref())?;
    let client = &global.registry_client(&location)?;
    let store = ImageStore::open(&location, client)?;
    if matches!(store, ImageStore::Archive(_)) {
        bail!("{location}: a docker archive is read-only");
    }
    let read_pem = |path: &PathBuf| -> anyhow::Result<String> {
        let bytes = signet_oci::read_file_bounded(path, 1024 * 1024)?;
        String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{}: not PEM text", path.display()))
    };
    let certificate = match &args.certificate {
        Some(path) => Some((
            read_pem(path)?,
            args.certificate_chain.as_ref().map(read_pem).transpose()?,
        )),
        None => None,
    };
    let key = super::keys::open_private_key(&args.key)?;
    let options = AttestOptions {
        certificate,
        predicate_type,
        predicate,
        format: args.format.into(),
        created: signet_keyless::rfc3339(super::verify::now()?),
        max_attempts: DEFAULT_MAX_ATTEMPTS,
    };
    let attested = attest_image(&store, &identity, &key, &options).await?;
    if args.output == crate::options::OutputFormat::Json {
        let doc = serde_json::json!({
            "image": location.to_string(),
            "digest": attested.digest.to_string(),
            "predicateType": attested.predicate_type.to_string(),
            "attestations": attested.legacy.iter().map(|(tag, added)| serde_json::json!({
                "attestationTag": tag,
                "added": added,
            })).collect::<Vec<_>>(),
            "bundles": attested.bundle.iter().map(|b| serde_json::json!({
                "subject": b.subject.to_string(),
                "referrer": b.referrer.to_string(),
                "added": b.added,
            })).collect::<Vec<_>>(),
        });
        println!("{doc}");
        return Ok(ExitCode::Success);
    }
    if let Some((tag, added)) = &attested.legacy {
        if *added {
            eprintln!(
                "Attested {} ({}) in {tag}",
                attested.digest, attested.predicate_type
            );
        } else {
            eprintln!(
                "Already attested {} with this statement and key in {tag}; nothing added",
                attested.digest
            );
        }
    }
    if let Some(bundle) = &attested.bundle {
        if bundle.added {
            eprintln!(
                "Attested {} ({}) as bundle referrer {}",
                attested.digest, attested.predicate_type, bundle.referrer
            );
        } else {
            eprintln!(
                "Already attested {} with this statement and key as bundle referrer {}; nothing added",
                attested.digest, bundle.referrer
            );
        }
    }
    Ok(ExitCode::Success)
}

/// Run `signet verify-attestation`: exit 0 (some verified), 10 (none), 11 (no such image),
/// 12 (none verifies), 2 (could not check).
pub async fn verify_attestation(
    args: VerifyAttestationArgs,
    global: &GlobalOptions,
) -> anyhow::Result<ExitCode> {
    let predicate_type = args
        .predicate_type
        .as_deref()
        .map(PredicateType::from_name)
        .transpose()?;
    let keys = args
        .key
        .iter()
        .map(|path| read_public_key_file(path))
        .collect::<Result<Vec<_>, _>>()?;
    // Usage and trust material first: no request is made with a flag or file that is wrong.
    let certificates = args.certificates.trust()?.map(|(trust, _root)| trust);
    let signature_check = match &certificates {
        None => "the DSSE signature was verified against the given public key(s)",
        Some(CertificateTrust::Sigstore { .. }) => {
            "the certificate chains to the trusted root at its verified log or timestamp time, its log and timestamp evidence verified, it names the required identity and issuer, and its key verified the DSSE signature"
        }
        Some(CertificateTrust::Pki { .. }) => {
            "the certificate chains to the given CA roots at the current time, carries the required SANs, and its key verified the DSSE signature"
        }
    };
    let location: ImageLocation = args.image.parse()?;
    let client = &global.registry_client(&location)?;
    let store = ImageStore::open(&location, client)?;
    let options = VerifyAttestationOptions {
        keys,
        certificates,
        predicate_type,
    };
    let report = match verify_attestations(&store, &options).await {
        Ok(report) => report,
        Err(e) if e.is_not_found() => {
            eprintln!("signet: error: {e}");
            return Ok(ExitCode::ImageNotFound);
        }
        Err(e) => return Err(e.into()),
    };
    match args.output {
        crate::options::OutputFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        crate::options::OutputFormat::Text => {
            let mut out = String::new();
            for candidate in report.verified() {
                if let Some(statement) = candidate.verified_statement() {
                    let bytes = statement.to_bytes()?;
                    out.push_str(&String::from_utf8_lossy(&bytes));
                    out.push('\n');
                }
            }
            print!("{out}");
        }
    }
    let wanted = report
        .predicate_type
        .as_ref()
        .map(|t| format!(" of type {t}"))
        .unwrap_or_default();
    match report.outcome {
        AttestationOutcome::Verified => {
            eprintln!(
                "\nVerification for {} ({}) --\nThe following checks were performed on each of these attestations:\n  - the envelope matched its digest and parsed strictly as DSSE\n  - {signature_check}\n  - the payload type is in-toto\n  - the payload parsed strictly as an in-toto statement\n  - a subject names the image's manifest digest\n  - the predicate type is the one asked for (and the one annotated)\n{} of {} attestation(s){wanted} verified.",
                report.image,
                report.digest,
                report.verified().count(),
                report.candidates.len()
            );
            Ok(ExitCode::Success)
        }
        AttestationOutcome::NoAttestations => {
            eprintln!(
                "signet: error: no attestations found for {} ({})",
                report.image, report.digest
            );
            Ok(ExitCode::NoSignatures)
        }
        AttestationOutcome::NoneVerified => {
            eprintln!(
                "signet: error: none of the {} attestation(s) of {} ({}){wanted} verifies:",
                report.candidates.len(),
                report.image,
                report.digest
            );
            for candidate in &report.candidates {
                let failed = signet_verifier::signatures::failed_checks(&candidate.checks());
                let source = match candidate.source() {
                    signet_verifier::attest::AttestationSource::Legacy { index, .. } => {
                        format!(".att layer {index}")
                    }
                    signet_verifier::attest::AttestationSource::Bundle { manifest_digest } => {
                        format!("bundle {manifest_digest}")
                    }
                };
                eprintln!("  {source}: {}", failed);
            }
            Ok(ExitCode::NoValidSignature)
        }
    }
}
