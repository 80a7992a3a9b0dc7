//! Benchmark helper (not a test; run by `bench/sign_verify.sh`): how many verifications per
//! second `signet_verifier::verify::verify_image` completes in one process, reusing one registry
//! client, against a registry image or an OCI layout.
//!
//! Usage: `verify_loop --key PUB [--identity REF] [--seconds S] IMAGE`. Prints one line:
//! `<image> <count> <seconds> <per-second>`; exits non-zero unless every run verified.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a program's output, not a library's

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use signet_oci::store::ImageStore;
use signet_oci::{ImageLocation, Reference, RegistryClient, RegistryOptions};
use signet_sign::keys::read_public_key_file;
use signet_verifier::verify::{verify_image, Outcome, VerifyOptions};

struct Args {
    key: PathBuf,
    identity: Option<String>,
    seconds: f64,
    image: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut key = None;
    let mut identity = None;
    let mut seconds = 3.0;
    let mut image = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--key" => key = args.next().map(PathBuf::from),
            "--identity" => identity = args.next(),
            "--seconds" => seconds = args.next().context("--seconds needs a value")?.parse()?,
            _ if image.is_none() && !arg.starts_with("--") => image = Some(arg),
            other => bail!("unexpected argument {other:?}"),
        }
    }
    Ok(Args {
        key: key.context("--key PUB is required")?,
        identity,
        seconds,
        image: image.context("IMAGE is required")?,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let location: ImageLocation = args.image.parse()?;
    let identity: Reference = match (&args.identity, &location) {
        (Some(identity), _) => identity.parse()?,
        (None, ImageLocation::Registry(reference)) => reference.clone(),
        (None, _) => bail!("--identity is required for layouts"),
    };
    let client = RegistryClient::new(RegistryOptions {
        use_auth_files: false,
        ..RegistryOptions::default()
    })?;
    let image = ImageStore::open(&location, &client)?;
    let options = VerifyOptions {
        keys: vec![read_public_key_file(&args.key)?],
        ..VerifyOptions::default()
    };
    let budget = Duration::from_secs_f64(args.seconds);
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < budget {
        let report = verify_image(&image, &image, &identity, &options).await?;
        if report.outcome != Outcome::Verified {
            bail!("{}: outcome {:?}", args.image, report.outcome);
        }
        count += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{} {count} {elapsed:.3} {:.1}",
        args.image,
        count as f64 / elapsed
    );
    Ok(())
}
