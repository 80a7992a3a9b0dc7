//! `signet verify`: verify an image's cosign signatures with given keys.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use signet_oci::store::ImageStore;
use signet_oci::ImageLocation;
use signet_sign::keys::read_public_key_file;
use signet_verifier::identity::{parse_identity_rule, IdentityRule};
use signet_verifier::verify::{verify_image, Outcome, VerifyOptions};

use super::identity_args::ImageCertificateArgs;
use crate::exit::ExitCode;
use crate::options::GlobalOptions;

/// Arguments of `signet verify`.
#[derive(Debug, clap::Args)]
#[command(mut_arg("trusted_root", |arg| arg.requires("issuer")))]
pub struct VerifyArgs {
    /// A trusted public key (PEM); repeat for several (any one suffices).
    #[arg(
        long,
        required_unless_present_any = ["policy", "certificate_identity", "certificate_identity_regexp", "ca_roots"],
        conflicts_with = "policy"
    )]
    key: Vec<PathBuf>,
    /// Evaluate a trust policy (Signet YAML/JSON or containers-policy.json) instead of --key.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["subject", "ca_roots"])]
    policy: Option<PathBuf>,
    /// With --policy, how many images are verified at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// An annotation every accepted payload must carry (repeatable).
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE", value_parser = super::sign::parse_annotation)]
    annotations: Vec<(String, String)>,
    /// How the signed identity must match: matchRepository, matchRepoDigestOrExact, matchExact.
    #[arg(long, default_value = "matchRepository", value_parser = parse_identity_rule)]
    identity_rule: IdentityRule,
    /// The registry reference the image is known by (required for oci: and docker-archive: images).
    #[arg(long, value_name = "REF")]
    identity: Option<String>,
    /// Read signatures from this repository (`HOST/REPO` or `oci:DIR`) instead of the image's own.
    #[arg(long, value_name = "REPO")]
    signature_repo: Option<String>,
    /// Most signature layers examined.
    #[arg(long, default_value_t = signet_verifier::signatures::DEFAULT_MAX_SIGNATURES)]
    max_signatures: usize,
    /// Which signature formats count (with --key and keyless): `any` (legacy `.sig` layers and
    /// cosign 3 bundles attached as referrers, which bind only the digest; with --key a bundle
    /// claiming a given key that does not verify refuses the image) or `legacy` (the signed
    /// payload must name the repository too; referrers are not read).
    #[arg(long, default_value = "any", value_name = "FORMAT")]
    signature_format: signet_verifier::keyless::FormatRequirement,
    /// `text`: verified payloads on stdout (cosign's format); `json`: a report of every candidate.
    #[arg(long, value_enum, default_value = "text")]
    output: crate::options::OutputFormat,
    /// The image(s) to verify (several only with --policy).
    #[arg(required = true)]
    images: Vec<String>,
    /// Keyless and private-PKI flags; boxed (they would make every command's arguments large),
    /// and last (their help headings would hold every argument declared after them).
    #[command(flatten)]
    certificates: Box<ImageCertificateArgs>,
}

impl VerifyArgs {
    /// The options of a certificate verification, for `verify_keyless`.
    fn keyless(&self) -> super::verify_keyless::KeylessArgs {
        super::verify_keyless::KeylessArgs {
            formats: self.signature_format,
            identity_rule: self.identity_rule.clone(),
            identity: self.identity.clone(),
            signature_repo: self.signature_repo.clone(),
            max_signatures: self.max_signatures,
            output: self.output,
        }
    }
}

/// Seconds since the Unix epoch (the policy is pure; the clock is read here). A clock before
/// 1970 is an error ("could not check"), never 0.
pub fn now() -> Result<i64, signet_oci::Error> {
    signet_oci::clock::unix_now()
}

/// Run `signet verify`.
pub async fn run(args: VerifyArgs, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
    if let Some(policy) = args.policy.clone() {
        return super::verify_policy::run(
            args.images,
            &policy,
            args.identity.as_deref(),
            args.jobs,
            args.output,
            global,
        )
        .await;
    }
    let [image] = args.images.as_slice() else {
        anyhow::bail!("verify with --key takes one image; use --policy to verify several");
    };
    // Usage and trust material first: no request is made with a flag or root that is wrong.
    if let Some((trust, root)) = args.certificates.trust()? {
        return super::verify_keyless::run(&args.keyless(), trust, root, image, global).await;
    }
    let location: ImageLocation = image.parse()?;
    let identity = super::sign::identity_of(&location, args.identity.as_deref())?;
    let keys = args
        .key
        .iter()
        .map(|path| read_public_key_file(path))
        .collect::<Result<Vec<_>, _>>()?;
    let client = &global.registry_client(&location)?;
    let image = ImageStore::open(&location, client)?;
    let separate = super::sign::signature_store(
        &image,
        &location,
        args.signature_repo.as_deref(),
        client,
        false,
    )?;
    let options = VerifyOptions {
        keys,
        identity_rule: args.identity_rule,
        required_annotations: args.annotations.into_iter().collect::<BTreeMap<_, _>>(),
        max_signatures: args.max_signatures,
        formats: args.signature_format,
    };
    let signatures = separate.as_ref().unwrap_or(&image);
    let report = match verify_image(&image, signatures, &identity, &options).await {
        Ok(report) => report,
        Err(e) if e.is_not_found() => {
            eprintln!("signet: error: {e}");
            return Ok(ExitCode::ImageNotFound);
        }
        Err(e) => return Err(e.into()),
    };
    match args.output {
        crate::options::OutputFormat::Json => {
            print!(
                "{}",
                &format!("{}\n", serde_json::to_string_pretty(&report)?)
            );
        }
        crate::options::OutputFormat::Text => {
            let mut payloads = report
                .verified()
                .filter_map(|c| c.layer().payload_bytes())
                .map(serde_json::from_slice::<serde_json::Value>)
                .collect::<Result<Vec<_>, _>>()
                .context("re-reading a verified payload")?;
            if report.outcome == Outcome::Verified {
                for bundle in report.verified_bundles() {
                    if let Some(statement) = bundle.verified_statement() {
                        payloads.push(serde_json::from_slice(&statement.to_bytes()?)?);
                    }
                }
            }
            if !payloads.is_empty() {
                print!("{}", &format!("{}\n", serde_json::to_string(&payloads)?));
            }
        }
    }
    let verified = report.verified().count();
    let bundles_verified = report.verified_bundles().count();
    for finding in &report.findings {
        eprintln!("signet: note: {}: {}", finding.code, finding.message);
    }
    match report.outcome {
        Outcome::Verified => {
            eprintln!(
                "\nVerification for {} ({}) --\nThe following checks were performed on each of these signatures:\n  - the payload blob matched its digest and parsed strictly as a cosign simple-signing payload\n  - the payload names the image's manifest digest\n  - the signed identity was accepted by {} for {}\n  - the payload carries every required annotation\n  - the signature was verified against the given public key(s)\n{verified} of {} signature(s) verified.",
                report.image,
                report.digest,
                report.identity_rule,
                report.identity,
                report.signatures.len()
            );
            if !report.bundles.is_empty() {
                eprintln!(
                    "{bundles_verified} of {} cosign bundle signature(s) verified (DSSE signature by a given key; an in-toto statement of type https://sigstore.dev/cosign/sign/v1 naming the digest; bundles bind only the digest, not the repository).",
                    report.bundles.len()
                );
            }
            Ok(ExitCode::Success)
        }
        Outcome::NoSignatures => {
            eprintln!(
                "signet: error: no signatures found for {} ({}) at tag {}",
                report.image, report.digest, report.signature_tag
            );
            Ok(ExitCode::NoSignatures)
        }
        Outcome::NoneVerified if !report.refusals.is_empty() => {
            eprintln!(
                "signet: error: {} ({}) is not trusted: {} bundle signature(s) claiming a given key do not verify:",
                report.image,
                report.digest,
                report.refusals.len()
            );
            for refusal in &report.refusals {
                eprintln!("  {refusal}");
            }
            Ok(ExitCode::NoValidSignature)
        }
        Outcome::NoneVerified => {
            eprintln!(
                "signet: error: none of the {} signature(s) of {} ({}) verifies:",
                report.signatures.len() + report.bundles.len(),
                report.image,
                report.digest
            );
            for candidate in &report.signatures {
                let failed = signet_verifier::signatures::failed_checks(&candidate.checks());
                eprintln!("  signature {}: {}", candidate.layer().index(), failed);
            }
            for bundle in &report.bundles {
                let failed = signet_verifier::signatures::failed_checks(&bundle.checks());
                if !failed.is_empty() {
                    eprintln!(
                        "  {}: {}",
                        signet_verifier::verify::bundle_name(bundle),
                        failed
                    );
                }
            }
            Ok(ExitCode::NoValidSignature)
        }
    }
}
