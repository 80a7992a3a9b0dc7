//! `signet verify --policy FILE IMAGE...`: evaluate a trust policy for any number of images, in
//! parallel (bounded); exit 0 only when every image is allowed.

use std::path::Path;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt as _};
use signet_oci::{ImageLocation, ImageStore};
use signet_policy::{Decision, Mode};
use signet_verifier::enforce::{evaluate_image, load_policy_file, PolicyReport};

use crate::exit::ExitCode;
use crate::options::{GlobalOptions, OutputFormat};

/// Run the policy form of `signet verify`.
pub async fn run(
    images: Vec<String>,
    policy_path: &Path,
    identity: Option<&str>,
    jobs: u16,
    output: OutputFormat,
    global: &GlobalOptions,
) -> anyhow::Result<ExitCode> {
    if identity.is_some() && images.len() > 1 {
        anyhow::bail!("--identity names one image; give one image with it");
    }
    let policy = Arc::new(load_policy_file(policy_path)?);
    for warning in &policy.loaded.warnings {
        eprintln!("{warning}");
    }
    let now = super::verify::now()?;
    let results: Vec<(String, anyhow::Result<PolicyReport>)> = stream::iter(images)
        .map(|image| {
            let policy = Arc::clone(&policy);
            async move {
                let result = evaluate_one(&image, identity, &policy, now, global).await;
                (image, result)
            }
        })
        .buffered(usize::from(jobs))
        .collect()
        .await;
    let mut worst = ExitCode::Success;
    let mut json = Vec::new();
    for (image, result) in results {
        match result {
            Ok(report) => {
                let verdict = &report.verdict;
                let label = match (verdict.decision, verdict.would_deny, verdict.mode) {
                    (Decision::Deny, _, _) => "DENY",
                    (Decision::Allow, true, Mode::Warn) => "ALLOW (warn: would be denied)",
                    (Decision::Allow, true, _) => "ALLOW (audit: would be denied)",
                    (Decision::Allow, false, _) => "ALLOW",
                };
                eprintln!(
                    "{image}: {label} ({}, scope {})",
                    report.digest, verdict.scope
                );
                for finding in &verdict.findings {
                    eprintln!(
                        "  [{}] {} ({})",
                        finding.code, finding.message, finding.rule
                    );
                }
                if verdict.decision == Decision::Deny && worst == ExitCode::Success {
                    worst = ExitCode::NoValidSignature;
                }
                json.push(serde_json::to_value(&report)?);
            }
            Err(error) => {
                let line = crate::exit::error_line(&error);
                eprintln!("{image}: DENY (could not verify: {line})");
                worst = ExitCode::Error;
                json.push(serde_json::json!({"image": image, "error": line, "verdict": {"decision": "deny"}}));
            }
        }
    }
    if output == OutputFormat::Json {
        for value in json {
            println!("{}", serde_json::to_string(&value)?);
        }
    }
    Ok(worst)
}

async fn evaluate_one(
    image: &str,
    identity: Option<&str>,
    policy: &signet_verifier::enforce::PolicyFile,
    now: i64,
    global: &GlobalOptions,
) -> anyhow::Result<PolicyReport> {
    let location: ImageLocation = image.parse()?;
    let reference = super::sign::identity_of(&location, identity)?;
    let client = global.registry_client(&location)?;
    let store = ImageStore::open(&location, &client)?;
    Ok(evaluate_image(&store, &store, &reference, policy, now).await?)
}
