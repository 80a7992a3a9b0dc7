//! `signet copy`: copy an image with its signatures between registries and OCI layouts.

use signet_oci::store::ImageStore;
use signet_oci::ImageLocation;
use signet_verifier::copy::copy_image;

use crate::exit::ExitCode;
use crate::options::{GlobalOptions, OutputFormat};

/// Arguments of `signet copy`.
#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// Copy the image only, without its signatures.
    #[arg(long)]
    no_signatures: bool,
    /// Where the image is.
    source: String,
    /// Where it goes (`HOST/REPO[:TAG]` or `oci:DIR[:TAG]`).
    destination: String,
    /// `text`: a summary on stderr and the digest on stdout; `json`: one document on stdout.
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
}

/// Run `signet copy`.
pub async fn run(args: CopyArgs, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
    let source: ImageLocation = args.source.parse()?;
    let destination: ImageLocation = args.destination.parse()?;
    let client = &global.registry_client(&source)?;
    let src = ImageStore::open(&source, client)?;
    let dst = ImageStore::open_for_write(&destination, client)?;
    let report = copy_image(&src, &dst, !args.no_signatures).await?;
    if args.output == OutputFormat::Json {
        let doc = serde_json::json!({
            "source": source.to_string(),
            "destination": destination.to_string(),
            "digest": report.digest.as_ref().map(ToString::to_string),
            "manifests": report.manifests,
            "blobsCopied": report.blobs_copied,
            "blobsPresent": report.blobs_present,
            "signaturesCopied": report.signatures_copied,
            "attestationsCopied": report.attestations_copied,
            "referrersCopied": report.referrers_copied,
        });
        println!("{doc}");
        return Ok(ExitCode::Success);
    }
    eprintln!(
        "Copied {} to {}: {} blob(s) copied, {} already present, {} manifest(s) written, {} signature(s), {} attestation(s) and {} referrer(s) added",
        source,
        destination,
        report.blobs_copied,
        report.blobs_present,
        report.manifests,
        report.signatures_copied,
        report.attestations_copied,
        report.referrers_copied
    );
    if let Some(digest) = report.digest {
        print!("{}", &format!("{digest}\n"));
    }
    Ok(ExitCode::Success)
}
