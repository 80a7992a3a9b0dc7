//! `signet audit`: judge the images a host's container engines use against a policy
//! (`signet_gate::audit` does the work).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use signet_gate::audit::{audit, AuditReport, AuditVerdict, EngineKind, EngineSource, Scope};
use signet_gate::judge::PolicyJudge;
use signet_oci::RegistryClient;
use signet_verifier::enforce::load_policy_file;

use crate::exit::ExitCode;
use crate::options::{GlobalOptions, OutputFormat};

/// Arguments of `signet audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The trust policy to judge by.
    #[arg(long, value_name = "FILE", env = "SIGNET_POLICY")]
    policy: PathBuf,
    /// Docker Engine's API socket [default: /var/run/docker.sock].
    #[arg(long, value_name = "SOCK", num_args = 0..=1, default_missing_value = "/var/run/docker.sock")]
    docker: Option<PathBuf>,
    /// containerd's socket, read with `ctr` [default: /run/containerd/containerd.sock].
    #[arg(long, value_name = "SOCK", num_args = 0..=1, default_missing_value = "/run/containerd/containerd.sock")]
    containerd: Option<PathBuf>,
    /// containerd namespace (default: every namespace).
    #[arg(long, value_name = "NS", requires = "containerd")]
    namespace: Option<String>,
    /// podman's API socket (`podman system service`) [default: /run/podman/podman.sock].
    #[arg(long, value_name = "SOCK", num_args = 0..=1, default_missing_value = "/run/podman/podman.sock")]
    podman: Option<PathBuf>,
    /// Every engine whose default socket exists (those given explicitly keep their socket and
    /// must answer).
    #[arg(long)]
    all: bool,
    /// Every image the engines store, not only those their containers use.
    #[arg(long)]
    stored: bool,
    /// Images judged at the same time.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// `text`: a table; `json`: every image with its verdict and reasons.
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
}

fn sources(args: &AuditArgs) -> anyhow::Result<Vec<EngineSource>> {
    let mut out = Vec::new();
    for (kind, given) in [
        (EngineKind::Docker, &args.docker),
        (EngineKind::Podman, &args.podman),
        (EngineKind::Containerd, &args.containerd),
    ] {
        let socket = match (given, args.all) {
            (Some(socket), _) => socket.clone(),
            // --all: the engines this host has; one named explicitly must be there.
            (None, true) if kind.default_socket().exists() => kind.default_socket(),
            (None, true) => {
                eprintln!(
                    "signet audit: no {} here ({} does not exist); skipped",
                    kind.as_str(),
                    kind.default_socket().display()
                );
                continue;
            }
            (None, false) => continue,
        };
        out.push(EngineSource {
            kind,
            socket,
            namespace: (kind == EngineKind::Containerd)
                .then(|| args.namespace.clone())
                .flatten(),
        });
    }
    if out.is_empty() && args.all {
        bail!("--all: no Docker, podman or containerd socket at their default places");
    }
    if out.is_empty() {
        bail!("say which engines to audit: --docker, --containerd, --podman or --all");
    }
    Ok(out)
}

/// Run `signet audit`: exit 0 only if every image passes and every engine could be listed.
pub async fn run(args: AuditArgs, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
    let sources = sources(&args)?;
    let client = RegistryClient::new(global.registry_options(None)?)?;
    let judge = PolicyJudge::new(load_policy_file(&args.policy)?, client);
    let scope = if args.stored {
        Scope::Stored
    } else {
        Scope::Containers
    };
    let report = audit(
        &judge,
        &sources,
        scope,
        args.parallel.clamp(1, 64),
        Duration::from_secs(120),
    )
    .await;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => print_table(&report),
    }
    for failure in &report.failures {
        eprintln!("signet: error: {}", failure.error);
    }
    Ok(if !report.failures.is_empty() {
        ExitCode::Error
    } else if report.all_pass {
        ExitCode::Success
    } else {
        ExitCode::NotAllPass
    })
}

fn print_table(report: &AuditReport) {
    let mut rows: Vec<[String; 5]> = vec![[
        "ENGINE".into(),
        "IMAGE".into(),
        "DIGEST".into(),
        "VERDICT".into(),
        "WHY".into(),
    ]];
    for r in &report.images {
        let engine = match &r.image.namespace {
            Some(ns) => format!("{}/{ns}", r.image.engine.as_str()),
            None => r.image.engine.as_str().to_string(),
        };
        let digest = r
            .digest
            .as_deref()
            .map(|d| d.chars().take(19).collect())
            .unwrap_or_else(|| "-".into());
        let why = if r.verdict == AuditVerdict::Pass {
            String::new()
        } else {
            r.reasons.join(",")
        };
        rows.push([
            engine,
            r.image.name.clone(),
            digest,
            r.verdict.as_str().to_string(),
            why,
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    let count = |v: AuditVerdict| report.images.iter().filter(|r| r.verdict == v).count();
    println!(
        "\n{} images: {} pass, {} warn, {} deny, {} unknown, {} unverifiable",
        report.images.len(),
        count(AuditVerdict::Pass),
        count(AuditVerdict::Warn),
        count(AuditVerdict::Deny),
        count(AuditVerdict::Unknown),
        count(AuditVerdict::Unverifiable),
    );
}
