//! `signet trust update` (refresh a Sigstore trusted root through TUF into the trust cache) and
//! `signet trust status` (what the cache holds). Verifying commands read the cache and never
//! touch the network; this is the one command that fetches trust material.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::json;
use signet_keyless::cache::{CachedTrust, TufCache};
use signet_keyless::tuf::{UpdateOptions, MAX_ROOT_BYTES};
use signet_keyless::Instance;

use crate::exit::ExitCode;
use crate::options::{GlobalOptions, OutputFormat};

/// Arguments of `signet trust`.
#[derive(Debug, clap::Args)]
pub struct TrustArgs {
    #[command(subcommand)]
    command: TrustCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TrustCommand {
    /// Refresh the instance's trusted root (and signing config) through a verified TUF client
    /// into the trust cache; on any refusal the cache stays as it was.
    Update(UpdateArgs),
    /// Show the trust cache of an instance: where it is, what it holds, the trusted root's hash.
    Status(StatusArgs),
}

/// Arguments of `signet trust update`.
#[derive(Debug, clap::Args)]
struct UpdateArgs {
    /// The TUF repository (default: the instance's own). https, or http to a loopback address.
    #[arg(long, value_name = "URL")]
    tuf_url: Option<String>,
    /// The initial TUF root.json to verify the repository's root chain from (default: the one
    /// embedded for the instance).
    #[arg(long, value_name = "FILE")]
    tuf_root: Option<PathBuf>,
    /// The Sigstore instance whose cache is updated.
    #[arg(long, value_name = "NAME", default_value = "public-good", value_parser = parse_instance)]
    instance: Instance,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
}

/// Arguments of `signet trust status`.
#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// The Sigstore instance.
    #[arg(long, value_name = "NAME", default_value = "public-good", value_parser = parse_instance)]
    instance: Instance,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
}

fn parse_instance(text: &str) -> Result<Instance, String> {
    text.parse()
}

/// Run `signet trust …`.
pub fn run(args: TrustArgs, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
    match args.command {
        TrustCommand::Update(args) => super::runtime()?.block_on(update(args, global)),
        TrustCommand::Status(args) => status(args),
    }
}

async fn update(args: UpdateArgs, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
    let cache = TufCache::default_location()?;
    let initial_root = match &args.tuf_root {
        Some(path) => Some(read_root(path)?),
        None => None,
    };
    let options = UpdateOptions {
        instance: args.instance,
        tuf_url: args.tuf_url,
        initial_root,
        cache_root: cache.root().to_path_buf(),
        ca_files: global.ca_file.clone(),
        timeout: Duration::from_secs(global.timeout),
    };
    let outcome = signet_keyless::tuf::update(&options)
        .await
        .with_context(|| format!("updating the {} trusted root", args.instance))?;
    let cached = &outcome.cached;
    match args.output {
        OutputFormat::Json => {
            let mut doc = describe(cached);
            doc["changed"] = json!(outcome.changed);
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        OutputFormat::Text if !global.quiet => {
            let verb = if outcome.changed {
                "updated"
            } else {
                "unchanged"
            };
            println!(
                "{} trusted root {verb}: sha256:{} from {} (TUF root v{}, timestamp v{}, snapshot v{}, targets v{})",
                cached.instance,
                cached.trusted_root_sha256(),
                cached.tuf_url,
                cached.versions.root,
                cached.versions.timestamp,
                cached.versions.snapshot,
                cached.versions.targets,
            );
            println!("cache: {}", cached.path.display());
        }
        OutputFormat::Text => {}
    }
    Ok(ExitCode::Success)
}

fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let cache = TufCache::default_location()?;
    let found = cache.read(args.instance)?;
    match (args.output, &found) {
        (OutputFormat::Json, Some(cached)) => {
            let mut doc = describe(cached);
            doc["cached"] = json!(true);
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        (OutputFormat::Json, None) => {
            let doc = json!({
                "instance": args.instance.name(),
                "cached": false,
                "cache_file": cache.file(args.instance),
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        (OutputFormat::Text, Some(cached)) => {
            println!("instance:            {}", cached.instance);
            println!("cache file:          {}", cached.path.display());
            println!("TUF repository:      {}", cached.tuf_url);
            println!("updated at:          {}", cached.updated_at);
            println!(
                "trusted root:        sha256:{}",
                cached.trusted_root_sha256()
            );
            println!(
                "signing config:      {}",
                if cached.signing_config.is_some() {
                    "cached"
                } else {
                    "none in the repository"
                }
            );
            println!(
                "TUF versions:        root {}, timestamp {}, snapshot {}, targets {}",
                cached.versions.root,
                cached.versions.timestamp,
                cached.versions.snapshot,
                cached.versions.targets
            );
            println!("timestamp expires:   {}", cached.timestamp_expires);
        }
        (OutputFormat::Text, None) => {
            println!(
                "no cached trusted root for {} ({}): verifying commands use the embedded one; `signet trust update` fetches the current one",
                args.instance,
                cache.file(args.instance).display()
            );
        }
    }
    Ok(ExitCode::Success)
}

fn describe(cached: &CachedTrust) -> serde_json::Value {
    json!({
        "instance": cached.instance.name(),
        "cache_file": cached.path,
        "tuf_url": cached.tuf_url,
        "updated_at": cached.updated_at,
        "trusted_root_sha256": cached.trusted_root_sha256(),
        "signing_config": cached.signing_config.is_some(),
        "versions": cached.versions,
        "timestamp_expires": cached.timestamp_expires,
    })
}

/// `--tuf-root FILE`, read up to the bound (a root file is a few KiB).
fn read_root(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_ROOT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_ROOT_BYTES {
        bail!(
            "{}: a TUF root larger than {MAX_ROOT_BYTES} bytes is not read",
            path.display()
        );
    }
    Ok(bytes)
}
