//! `signet policy lint|explain|convert|schema`: work with trust policy files.

use std::path::PathBuf;

use anyhow::Context as _;
use signet_policy::{Decision, Severity};
use signet_verifier::enforce::{evaluate_image, key_loader, load_policy_file, read_policy_text};

use crate::exit::ExitCode;
use crate::options::{GlobalOptions, OutputFormat};

/// Arguments of `signet policy`.
#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PolicyCommand {
    /// Check a policy file; exit 0 only when it has no errors and no warnings.
    Lint {
        /// The policy (Signet YAML/JSON or containers-policy.json).
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// Which scope applies to an image and why; with --evaluate, the full verdict.
    Explain {
        /// The policy file.
        #[arg(long)]
        policy: PathBuf,
        /// Also verify the image and print the verdict with its findings.
        #[arg(long)]
        evaluate: bool,
        /// The registry reference an oci:/docker-archive: image is known by.
        #[arg(long, value_name = "REF")]
        identity: Option<String>,
        /// The image.
        image: String,
    },
    /// Convert a containers-policy.json into the equivalent Signet policy (YAML on stdout).
    Convert {
        /// The containers-policy.json.
        file: PathBuf,
    },
    /// Print the JSON Schema of Signet policy files.
    Schema,
}

/// Run `signet policy …`.
pub fn run(args: PolicyArgs, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
    match args.command {
        PolicyCommand::Lint { file, output } => lint(&file, output),
        PolicyCommand::Explain {
            policy,
            evaluate,
            identity,
            image,
        } => super::runtime()?.block_on(explain(
            &policy,
            evaluate,
            identity.as_deref(),
            &image,
            global,
        )),
        PolicyCommand::Convert { file } => {
            let text = read_policy_text(&file)?;
            let conversion =
                signet_policy::containers::convert(&file.display().to_string(), &text)?;
            for warning in &conversion.warnings {
                eprintln!("{warning}");
            }
            let yaml = serde_yaml_ng::to_string(&conversion.document).context("writing YAML")?;
            print!("{yaml}");
            Ok(ExitCode::Success)
        }
        PolicyCommand::Schema => {
            print!("{}", signet_policy::json_schema());
            Ok(ExitCode::Success)
        }
    }
}

fn lint(file: &std::path::Path, output: OutputFormat) -> anyhow::Result<ExitCode> {
    let text = read_policy_text(file)?;
    let loader = key_loader(file);
    let diagnostics = signet_policy::lint(&file.display().to_string(), &text, &loader);
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&diagnostics)?),
        OutputFormat::Text => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
        }
    }
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diagnostics.len() - errors;
    if diagnostics.is_empty() {
        eprintln!("{}: clean", file.display());
        Ok(ExitCode::Success)
    } else {
        eprintln!(
            "{}: {errors} error(s), {warnings} warning(s)",
            file.display()
        );
        Ok(ExitCode::Mismatch)
    }
}

async fn explain(
    policy_path: &std::path::Path,
    evaluate: bool,
    identity: Option<&str>,
    image: &str,
    global: &GlobalOptions,
) -> anyhow::Result<ExitCode> {
    let policy = load_policy_file(policy_path)?;
    for warning in &policy.loaded.warnings {
        eprintln!("{warning}");
    }
    let location: signet_oci::ImageLocation = image.parse()?;
    let reference = super::sign::identity_of(&location, identity)?;
    let explanation = signet_policy::explain(policy.policy(), &reference);
    if !evaluate {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
        return Ok(ExitCode::Success);
    }
    let client = global.registry_client(&location)?;
    let store = signet_oci::ImageStore::open(&location, &client)?;
    let report = evaluate_image(&store, &store, &reference, &policy, super::verify::now()?).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "explanation": explanation,
            "evaluation": report,
        }))?
    );
    Ok(match report.verdict.decision {
        Decision::Allow => ExitCode::Success,
        Decision::Deny => ExitCode::NoValidSignature,
    })
}
