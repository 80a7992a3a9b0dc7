//! The `signet` command-line tool: a thin clap layer over the library crates. Each command lives in
//! `commands/`; flags every command shares are in `options.rs`; exit codes and the error line are in
//! `exit.rs`.

mod commands;
mod exit;
mod options;

use clap::{Parser, Subcommand};

use crate::exit::ExitCode;
use crate::options::GlobalOptions;

/// Sign container images and verify their signatures and digests (cosign-compatible).
#[derive(Debug, Parser)]
#[command(name = "signet", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the manifest digest of an image.
    Digest(commands::digest::DigestArgs),
    /// Re-hash every blob of an image and compare with its manifest (exit 1 on any mismatch).
    Validate(commands::validate::ValidateArgs),
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Digest(args) => {
            commands::runtime()?.block_on(commands::digest::run(args, &global))
        }
        Command::Validate(args) => {
            commands::runtime()?.block_on(commands::validate::run(args, &global))
        }
    }
}

fn main() -> std::process::ExitCode {
    // clap prints usage errors itself and exits 2; --help and --version exit 0.
    let cli = Cli::parse();
    cli.global.init_logging();
    match run(cli) {
        Ok(code) => code.into(),
        Err(error) => exit::report_error(&error).into(),
    }
}
