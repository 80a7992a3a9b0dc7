//! `signet digest IMAGE`: the SHA-256 of the image's manifest bytes as stored, optionally of one
//! platform's manifest in an index.

use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use signet_oci::registry::FetchedManifest;
use signet_oci::{ImageStore, Manifest};

use crate::exit::ExitCode;
use crate::options::{parse_image, GlobalOptions, OutputFormat};

/// Largest image config read to check a single-platform image's platform.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Arguments of `signet digest`.
#[derive(Debug, clap::Args)]
pub struct DigestArgs {
    /// The image: HOST/REPO[:TAG][@DIGEST], oci:DIR[:TAG], oci:DIR@DIGEST or docker-archive:FILE.
    image: String,
    /// Of a multi-platform index, the manifest for this platform.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = parse_platform)]
    platform: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
}

fn parse_platform(text: &str) -> Result<String, String> {
    let parts: Vec<&str> = text.split('/').collect();
    if (2..=3).contains(&parts.len()) && parts.iter().all(|p| !p.is_empty()) {
        Ok(text.to_string())
    } else {
        Err("expected OS/ARCH or OS/ARCH/VARIANT (e.g. linux/amd64, linux/arm64/v8)".into())
    }
}

/// Run `signet digest`.
pub async fn run(args: DigestArgs, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
    let location = parse_image(&args.image)?;
    let client = global.registry_client(&location)?;
    let store = ImageStore::open(&location, &client)?;
    let top = store
        .resolve()
        .await
        .with_context(|| format!("reading the manifest of {}", store.display_name()))?;
    let chosen = match &args.platform {
        Some(platform) => select_platform(&store, &top, platform).await?,
        None => top,
    };
    match args.output {
        OutputFormat::Text => println!("{}", chosen.digest),
        OutputFormat::Json => {
            let mut doc = json!({
                "reference": location.to_string(),
                "digest": chosen.digest,
                "mediaType": chosen.media_type,
                "size": chosen.bytes.len(),
            });
            if let Manifest::Index(index) = &chosen.manifest {
                let platforms: Vec<Value> = index
                    .manifests
                    .iter()
                    .filter_map(|d| {
                        d.platform
                            .as_ref()
                            .map(|p| json!({"platform": p.display(), "digest": d.digest}))
                    })
                    .collect();
                doc["platforms"] = Value::Array(platforms);
            }
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
    }
    Ok(ExitCode::Success)
}

/// The manifest for `platform`: a matching child of an index (the first, as docker picks), or the
/// image itself if it is a single-platform image of that platform.
async fn select_platform(
    store: &ImageStore,
    top: &FetchedManifest,
    platform: &str,
) -> anyhow::Result<FetchedManifest> {
    match &top.manifest {
        Manifest::Index(index) => {
            let Some(child) = index
                .manifests
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(|p| p.matches(platform)))
            else {
                let available: Vec<String> = index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(|p| p.display()))
                    .collect();
                bail!(
                    "{} has no manifest for platform {platform} (available: {})",
                    store.display_name(),
                    if available.is_empty() {
                        "none stated".to_string()
                    } else {
                        available.join(", ")
                    }
                );
            };
            Ok(store
                .manifest(child)
                .await
                .with_context(|| format!("reading the {platform} manifest {}", child.digest))?)
        }
        Manifest::Image(image) => {
            let config = store
                .blob_bytes(&image.config, MAX_CONFIG_BYTES)
                .await
                .context("reading the image config")?;
            let config: Value =
                serde_json::from_slice(&config).context("the image config is not JSON")?;
            let field = |name: &str| config.get(name).and_then(Value::as_str);
            let actual = match (field("os"), field("architecture"), field("variant")) {
                (Some(os), Some(arch), Some(variant)) => format!("{os}/{arch}/{variant}"),
                (Some(os), Some(arch), None) => format!("{os}/{arch}"),
                _ => bail!(
                    "{} is a single-platform image whose config states no platform",
                    store.display_name()
                ),
            };
            let wanted: Vec<&str> = platform.split('/').collect();
            let have: Vec<&str> = actual.split('/').collect();
            let matches = wanted.len() <= have.len() && wanted == have[..wanted.len()];
            if !matches {
                bail!(
                    "{} is a single-platform image for {actual}, not {platform}",
                    store.display_name()
                );
            }
            Ok(top.clone())
        }
    }
}
