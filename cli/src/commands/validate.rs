//! `signet validate IMAGE`: re-hash every blob and child manifest and compare each with its
//! descriptor (exit 0 all match, 1 any mismatch, 2 could not check).

use std::io::IsTerminal as _;

use serde_json::json;
use signet_oci::validate::{CheckStatus, ItemCheck, NoProgress, ValidateProgress};
use signet_oci::{validate, ImageStore, ValidateOptions};

use crate::exit::ExitCode;
use crate::options::{parse_image, GlobalOptions, OutputFormat};

/// Arguments of `signet validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The image: HOST/REPO[:TAG][@DIGEST], oci:DIR[:TAG], oci:DIR@DIGEST or docker-archive:FILE.
    image: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
    /// Blobs hashed at once (default: the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: Option<u16>,
}

/// An indicatif bar on stderr.
struct Bar(indicatif::ProgressBar);

impl ValidateProgress for Bar {
    fn start(&self, _blobs: usize, total_bytes: u64) {
        self.0.set_length(total_bytes);
    }
    fn hashed(&self, done: u64, _total_bytes: u64) {
        self.0.set_position(done);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn bar() -> Bar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} hashing [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Bar(bar)
}

fn describe(check: &ItemCheck) -> String {
    let expected = format!(
        "expected {} ({} bytes)",
        check.expected_digest, check.expected_size
    );
    match (check.status, &check.actual_digest, check.actual_size) {
        (CheckStatus::Missing, _, _) => format!("missing: {}: {expected}, not found", check.what),
        (_, Some(digest), Some(size)) => {
            format!(
                "mismatch: {}: {expected}, actual {digest} ({size} bytes)",
                check.what
            )
        }
        (_, Some(digest), None) => {
            format!("mismatch: {}: {expected}, actual {digest}", check.what)
        }
        (_, None, Some(size)) => {
            format!(
                "mismatch: {}: {expected}, actual size {size} bytes",
                check.what
            )
        }
        (_, None, None) => format!("mismatch: {}: {expected}", check.what),
    }
}

/// Run `signet validate`.
pub async fn run(args: ValidateArgs, global: &GlobalOptions) -> anyhow::Result<ExitCode> {
    let location = parse_image(&args.image)?;
    let client = global.registry_client(&location)?;
    let store = ImageStore::open(&location, &client)?;
    let mut options = ValidateOptions::default();
    if let Some(jobs) = args.jobs {
        options.jobs = usize::from(jobs);
    }
    let report = if !global.quiet && std::io::stderr().is_terminal() {
        validate(&store, &options, &bar()).await?
    } else {
        validate(&store, &options, &NoProgress).await?
    };
    let problems: Vec<&ItemCheck> = report.problems().collect();
    // `oci:DIR@DIGEST` and `REPO@DIGEST` already carry the digest.
    let subject = if report.image.ends_with(&format!("@{}", report.digest)) {
        report.image.clone()
    } else {
        format!("{}@{}", report.image, report.digest)
    };
    match args.output {
        OutputFormat::Json => {
            let doc = json!({
                "ok": report.is_ok(),
                "image": report.image,
                "digest": report.digest,
                "mediaType": report.media_type,
                "bytesHashed": report.bytes_hashed,
                "checks": report.checks,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        OutputFormat::Text => {
            for problem in &problems {
                println!("{}", describe(problem));
            }
            if !problems.is_empty() {
                println!(
                    "{subject}: {} of {} items do not match",
                    problems.len(),
                    report.checks.len()
                );
            } else if !global.quiet {
                println!(
                    "{subject}: ok, {} items match ({} bytes hashed)",
                    report.checks.len(),
                    report.bytes_hashed
                );
            }
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::Success
    } else {
        ExitCode::Mismatch
    })
}
