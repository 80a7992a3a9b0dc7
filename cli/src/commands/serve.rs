//! `signet serve` (the registry-side gate) and `signet containerd-verifier` (containerd's
//! image-verifier hook): both judge images with the same engine and policy.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use signet_gate::judge::PolicyJudge;
use signet_gate::{containerd_verify, Gate, GateConfig};
use signet_oci::RegistryClient;
use signet_verifier::enforce::load_policy_file;

use crate::exit::ExitCode;
use crate::options::GlobalOptions;

/// How often the policy and key files are checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(2);

/// Arguments of `signet serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Gate configuration (YAML): listen address, upstreams, TLS, cache, time-outs.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The trust policy (overrides `policy` in --config).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Address to listen on (with --upstream, instead of --config).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// The registry every repository is served from (with --listen, instead of --config).
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// Threads that serve requests and judge images (default: one per CPU the process may use).
    /// Fewer leave CPUs to other work on the same machine.
    #[arg(long, value_name = "N", env = "SIGNET_WORKERS",
          value_parser = clap::value_parser!(u16).range(1..=MAX_WORKERS))]
    pub workers: Option<u16>,
}

/// The most `--workers` accepted: more threads than this only add switching between them.
const MAX_WORKERS: i64 = 1024;

/// Arguments of `signet containerd-verifier` (containerd's bindir verifier protocol; single-dash
/// long flags as containerd passes them are accepted too).
#[derive(Debug, clap::Args)]
pub struct ContainerdArgs {
    /// The trust policy.
    #[arg(long, value_name = "FILE", env = "SIGNET_POLICY")]
    policy: PathBuf,
    /// The image name containerd is pulling.
    #[arg(long)]
    name: String,
    /// The manifest digest containerd resolved.
    #[arg(long)]
    digest: String,
    /// Media type of the JSON document on stdin.
    #[arg(long)]
    stdin_media_type: String,
    /// `pull` or `run` (newer containerd passes it).
    #[arg(long)]
    operation: Option<String>,
}

fn gate_config(args: &ServeArgs) -> anyhow::Result<(GateConfig, PathBuf)> {
    let mut config = match (&args.config, &args.listen, &args.upstream) {
        (Some(path), None, None) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            GateConfig::from_yaml(&text).with_context(|| path.display().to_string())?
        }
        (None, Some(listen), Some(upstream)) => {
            let Some(policy) = &args.policy else {
                bail!("--policy FILE is required with --listen and --upstream");
            };
            GateConfig::simple(policy.clone(), *listen, upstream)?
        }
        _ => bail!("give either --config FILE, or --policy FILE --listen ADDR --upstream URL"),
    };
    if let Some(policy) = &args.policy {
        config.policy = Some(policy.clone());
    }
    let Some(policy) = config.policy.clone() else {
        bail!("no policy: give --policy FILE or `policy:` in the gate configuration");
    };
    Ok((config, policy))
}

fn judge_for(policy: &Path, client: &RegistryClient) -> anyhow::Result<PolicyJudge> {
    let file = load_policy_file(policy)?;
    for warning in &file.loaded.warnings {
        tracing::warn!(target: "signet::gate", "{warning}");
    }
    Ok(PolicyJudge::new(file, client.clone()))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Run `signet serve`. `--ca-file` adds to the configuration's `ca_files`; the other registry
/// flags do not apply (the gate's network access is set in its configuration only).
pub async fn run(args: ServeArgs, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
    let (mut config, policy_path) = gate_config(&args)?;
    if !global.allow_http_registry.is_empty() || !global.resolve.is_empty() {
        bail!(
            "signet serve: --allow-http-registry and --resolve do not apply; set network.plain_http_registries in the gate configuration"
        );
    }
    config.ca_files.extend(global.ca_file.iter().cloned());
    // The judge's client keeps what it fetched and afterwards asks only whether it changed
    // (HEAD by digest, If-None-Match by tag): continuous verification re-judges every remembered
    // image on a schedule. Two manifests per image (the image's, its `.sig`), one payload.
    let client = RegistryClient::new(config.registry_options()?)?
        .with_revalidation(config.continuous.max_images.saturating_mul(2).max(1000));
    let judge = judge_for(&policy_path, &client)?;
    let mut watched = vec![policy_path.clone()];
    watched.extend(judge.policy().key_paths());
    let gate = Gate::new(config, judge)?;
    let bound = gate.bind().await?;
    eprintln!(
        "signet serve: listening on {}, {} workers",
        bound.local_addr(),
        tokio::runtime::Handle::current().metrics().num_workers()
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let reloader = gate.clone();
    let reload_client = client.clone();
    let reload_policy = policy_path.clone();
    let reload_task = tokio::spawn(async move {
        let mut stop_rx = stop_rx;
        reloader
            .keep_policy_fresh(
                watched,
                RELOAD_POLL,
                move || judge_for(&reload_policy, &reload_client),
                async move {
                    let _ = stop_rx.changed().await;
                },
            )
            .await;
    });
    // Continuous verification: re-judge what was admitted, on schedule and after each reload.
    let judging = gate.clone();
    let mut judge_stop = stop_tx.subscribe();
    let judging_task = tokio::spawn(async move {
        judging
            .keep_judging(async move {
                let _ = judge_stop.changed().await;
            })
            .await;
    });
    let result = bound.run(shutdown_signal()).await;
    let _ = stop_tx.send(true);
    let _ = reload_task.await;
    let _ = judging_task.await;
    result?;
    Ok(ExitCode::Success)
}

/// Largest stdin document accepted from containerd.
const MAX_STDIN: u64 = 1024 * 1024;

/// Run `signet containerd-verifier`: exit 0 allows the pull; the reason goes to stdout.
pub async fn containerd(args: ContainerdArgs, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
    let _ = &args.operation;
    let mut stdin = Vec::new();
    std::io::stdin()
        .take(MAX_STDIN + 1)
        .read_to_end(&mut stdin)
        .context("reading the descriptor on stdin")?;
    let options = global.registry_options(None)?;
    let client = RegistryClient::new(options)?;
    let judge = match judge_for(&args.policy, &client) {
        Ok(judge) => judge,
        Err(e) => {
            // Fail closed, and say why where containerd shows it.
            println!("signet: denied: {}", crate::exit::error_line(&e));
            return Ok(ExitCode::Mismatch);
        }
    };
    let (code, reason) = containerd_verify(
        &judge,
        &args.name,
        &args.digest,
        &args.stdin_media_type,
        &stdin,
    )
    .await;
    println!("{reason}");
    Ok(if code == 0 {
        ExitCode::Success
    } else {
        ExitCode::Mismatch
    })
}
