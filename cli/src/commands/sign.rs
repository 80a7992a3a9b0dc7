//! `signet sign`: sign an image (registry or OCI layout), appending to its `.sig` manifest.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;
use signet_oci::store::ImageStore;
use signet_oci::{ImageLocation, Reference, RegistryClient};
use signet_verifier::bundle_sign::{sign_bundle, BundleWritten, SignatureFormat};
use signet_verifier::sign::{sign_image, SignOptions, SignedIdentity};

use crate::exit::ExitCode;
use crate::options::GlobalOptions;

/// Arguments of `signet sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The encrypted private key file (cosign format).
    #[arg(long)]
    key: PathBuf,
    /// An annotation written into the payload's `optional` section (repeatable).
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE", value_parser = parse_annotation)]
    annotations: Vec<(String, String)>,
    /// What the payload's `docker-reference` names: the repository (cosign) or the reference as given.
    #[arg(long, value_enum, default_value = "repository")]
    signed_identity: SignedIdentityArg,
    /// The registry reference the image is known by (required for oci: and docker-archive: images).
    #[arg(long, value_name = "REF")]
    identity: Option<String>,
    /// Store signatures in this repository (`HOST/REPO` or `oci:DIR`) instead of the image's own.
    #[arg(long, value_name = "REPO")]
    signature_repo: Option<String>,
    /// For an index, also sign every child manifest.
    #[arg(long)]
    recursive: bool,
    /// legacy: the `sha256-<hex>.sig` tag; bundle: a cosign 3 Sigstore bundle referrer; both.
    #[arg(long, value_enum, default_value = "legacy")]
    format: super::attest::FormatArg,
    /// `text`: what was signed, on stderr; `json`: one document on stdout.
    #[arg(long, value_enum, default_value = "text")]
    output: crate::options::OutputFormat,
    /// The image to sign.
    image: String,
}

/// `--signed-identity` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SignedIdentityArg {
    /// `docker-reference` is the repository only (cosign's style).
    Repository,
    /// `docker-reference` is the reference as given, tag included.
    Reference,
}

/// Parse `KEY=VALUE`.
pub fn parse_annotation(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("annotation {s:?} is not KEY=VALUE")),
    }
}

/// The registry reference an image is known by: `--identity` if given, else the registry
/// reference itself; layouts and archives have no name of their own.
pub fn identity_of(location: &ImageLocation, identity: Option<&str>) -> anyhow::Result<Reference> {
    match (identity, location) {
        (Some(identity), _) => Ok(identity.parse()?),
        (None, ImageLocation::Registry(reference)) => Ok(reference.clone()),
        (None, other) => bail!(
            "{other}: an OCI layout or archive has no registry name; give --identity REF (the reference it is published as)"
        ),
    }
}

/// The store holding signatures: the image's own, or `--signature-repo`.
pub fn signature_store(
    image: &ImageStore,
    location: &ImageLocation,
    signature_repo: Option<&str>,
    client: &RegistryClient,
    for_write: bool,
) -> anyhow::Result<Option<ImageStore>> {
    let Some(repo) = signature_repo else {
        return Ok(None);
    };
    let _ = image;
    let target: ImageLocation = if repo.starts_with("oci:") {
        repo.parse()?
    } else {
        let reference = match location {
            ImageLocation::Registry(r) => r.with_name(repo)?,
            _ => Reference::parse_as_written(repo)?,
        };
        ImageLocation::Registry(reference)
    };
    Ok(Some(if for_write {
        ImageStore::open_for_write(&target, client)?
    } else {
        ImageStore::open(&target, client)?
    }))
}

/// Run `signet sign`.
pub async fn run(args: SignArgs, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
    let location: ImageLocation = args.image.parse()?;
    let identity = identity_of(&location, args.identity.as_deref())?;
    let client = &global.registry_client(&location)?;
    let image = ImageStore::open(&location, client)?;
    if matches!(image, ImageStore::Archive(_)) && args.signature_repo.is_none() {
        bail!("{location}: a docker archive is read-only; give --signature-repo to store the signature elsewhere");
    }
    let separate = signature_store(
        &image,
        &location,
        args.signature_repo.as_deref(),
        client,
        true,
    )?;
    let key = super::keys::open_private_key(&args.key)?;
    let options = SignOptions {
        annotations: args.annotations.into_iter().collect::<BTreeMap<_, _>>(),
        signed_identity: match args.signed_identity {
            SignedIdentityArg::Repository => SignedIdentity::Repository,
            SignedIdentityArg::Reference => SignedIdentity::Reference,
        },
        recursive: args.recursive,
        ..SignOptions::default()
    };
    let by_digest = match &location {
        ImageLocation::Registry(r) => r.digest().is_some(),
        ImageLocation::Layout { selector, .. } => {
            matches!(selector, Some(signet_oci::LayoutSelector::Digest(_)))
        }
        ImageLocation::DockerArchive { .. } => false,
    };
    let format: SignatureFormat = args.format.into();
    if format.bundle() && separate.is_some() {
        bail!("--format bundle writes an OCI 1.1 referrer, which lives beside its image; it cannot go to --signature-repo");
    }
    if format.bundle() && matches!(image, ImageStore::Archive(_)) {
        bail!("{location}: a docker archive is read-only");
    }
    let signatures = separate.as_ref().unwrap_or(&image);
    let signed = if format.legacy() {
        sign_image(&image, signatures, &identity, &key, &options).await?
    } else {
        Vec::new()
    };
    let mut bundles = Vec::new();
    if format.bundle() {
        let created = signet_keyless::rfc3339(super::verify::now()?);
        bundles = sign_image_bundles(&image, &key, &options, &created).await?;
    }
    if args.output == crate::options::OutputFormat::Json {
        let doc = serde_json::json!({
            "image": location.to_string(),
            "signatures": signed.iter().map(|s| serde_json::json!({
                "digest": s.digest.to_string(),
                "dockerReference": s.docker_reference.to_string(),
                "signatureTag": s.signature_tag.to_string(),
                "added": s.added,
            })).collect::<Vec<_>>(),
            "bundles": bundles.iter().map(|b| serde_json::json!({
                "subject": b.subject.to_string(),
                "referrer": b.referrer.to_string(),
                "added": b.added,
            })).collect::<Vec<_>>(),
        });
        println!("{doc}");
        return Ok(ExitCode::Success);
    }
    {
        for written in &bundles {
            if !by_digest {
                eprintln!(
                    "signet: warning: {} was named by tag; signed its current digest {}",
                    args.image, written.subject
                );
            }
            if written.added {
                eprintln!(
                    "Signed {} as bundle referrer {}",
                    written.subject, written.referrer
                );
            } else {
                eprintln!(
                    "Already signed {} with this key as bundle referrer {}; nothing added",
                    written.subject, written.referrer
                );
            }
        }
    }
    for s in &signed {
        if !by_digest {
            eprintln!(
                "signet: warning: {} was named by tag; signed its current digest {}",
                args.image, s.digest
            );
        }
        if s.added {
            eprintln!(
                "Signed {} as {} (stored at {})",
                s.digest, s.docker_reference, s.signature_tag
            );
        } else {
            eprintln!(
                "Already signed {} as {} with this key; nothing added",
                s.digest, s.docker_reference
            );
        }
    }
    Ok(ExitCode::Success)
}

/// Sign the image (and with `--recursive`, each child manifest of an index) in bundle form.
async fn sign_image_bundles(
    image: &ImageStore,
    key: &signet_sign::SigningKey,
    options: &SignOptions,
    created: &str,
) -> anyhow::Result<Vec<BundleWritten>> {
    let top = image.resolve().await?;
    let mut subjects = Vec::new();
    if options.recursive {
        if let signet_oci::Manifest::Index(index) = &top.manifest {
            for child in index.manifests.iter().filter(|d| d.is_manifest()) {
                subjects.push(image.manifest(child).await?);
            }
        }
    }
    subjects.insert(0, top);
    let mut written = Vec::with_capacity(subjects.len());
    for subject in &subjects {
        written.push(sign_bundle(image, subject, key, &options.annotations, created).await?);
    }
    Ok(written)
}
