//! The `signet` command-line tool: a thin clap layer over the library crates. Each command lives in
//! `commands/`; flags every command shares are in `options.rs`; exit codes and the error line are in
//! `exit.rs`.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a program's output, not a library's

mod commands;
mod exit;
mod logfmt;
mod logsink;
mod options;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

// mimalloc, not glibc's malloc: streaming a blob through the gate allocates a fresh ~400 KiB read
// buffer per chunk, and glibc's per-thread arenas hand those pages back to the kernel and fault
// them in again each time; measured on a 100 MiB proxied pull, the gate's CPU fell from 117 ms to
// 90 ms (bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use crate::exit::ExitCode;
use crate::options::GlobalOptions;

/// `signet --version`: the package version and the commit it was built from (`cli/build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SIGNET_COMMIT"),
    ")"
);

/// Sign container images and verify their signatures and digests (cosign-compatible).
#[derive(Debug, Parser)]
#[command(name = "signet", version = VERSION, about, propagate_version = true)]
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
    /// Generate a key pair: PREFIX.key (cosign's encrypted format, 0600) and PREFIX.pub.
    GenerateKeyPair(commands::keys::GenerateArgs),
    /// Encrypt an existing PKCS#8 or SEC1 PEM private key into cosign's key file format.
    ImportKeyPair(commands::keys::ImportArgs),
    /// Print the public key of an encrypted private key file.
    PublicKey(commands::keys::PublicKeyArgs),
    /// Sign an image, appending the signature to its sha256-<hex>.sig manifest.
    Sign(commands::sign::SignArgs),
    /// Attest an image: an in-toto statement in a DSSE envelope (.att tag and/or bundle referrer).
    Attest(commands::attest::AttestArgs),
    /// Verify an image's attestations (exit 10: none, 11: image not found, 12: none verifies).
    VerifyAttestation(commands::attest::VerifyAttestationArgs),
    /// Verify an image's signatures (exit 10: none, 11: image not found, 12: none verifies).
    Verify(commands::verify::VerifyArgs),
    /// Verify a Sigstore bundle over a file or digest (exit 12: not verified, 2: malformed input).
    VerifyBlob(commands::verify_blob::VerifyBlobArgs),
    /// Copy an image with its signatures between registries and OCI layouts.
    Copy(commands::copy::CopyArgs),
    /// Lint, explain and convert trust policies.
    Policy(commands::policy::PolicyArgs),
    /// Run the gate: verifying registry proxy, Kubernetes admission webhook and verify API.
    Serve(commands::serve::ServeArgs),
    /// containerd's image-verifier hook (bindir protocol): exit 0 allows the pull.
    ContainerdVerifier(commands::serve::ContainerdArgs),
    /// Judge the images Docker, containerd or podman use (exit 0: all pass, 13: some do not).
    Audit(commands::audit::AuditArgs),
    /// Refresh (through TUF) and show the cached Sigstore trusted roots keyless verification uses.
    Trust(commands::trust::TrustArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell).
    Completion(commands::completion::CompletionArgs),
    /// Write the man pages (signet.1 and one per command).
    Man(commands::completion::ManArgs),
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
        Command::GenerateKeyPair(args) => commands::keys::generate(args),
        Command::ImportKeyPair(args) => commands::keys::import(args),
        Command::PublicKey(args) => commands::keys::public_key(args),
        Command::Sign(args) => commands::runtime()?.block_on(commands::sign::run(args, &global)),
        Command::Attest(args) => {
            commands::runtime()?.block_on(commands::attest::attest(args, &global))
        }
        Command::VerifyAttestation(args) => {
            commands::runtime()?.block_on(commands::attest::verify_attestation(args, &global))
        }
        Command::Verify(args) => {
            commands::runtime()?.block_on(commands::verify::run(args, &global))
        }
        Command::VerifyBlob(args) => commands::verify_blob::run(args, &global),
        Command::Copy(args) => commands::runtime()?.block_on(commands::copy::run(args, &global)),
        Command::Policy(args) => commands::policy::run(args, &global),
        Command::Serve(args) => commands::runtime_with_workers(args.workers)?
            .block_on(commands::serve::run(args, &global)),
        Command::ContainerdVerifier(args) => {
            commands::runtime()?.block_on(commands::serve::containerd(args, &global))
        }
        Command::Audit(args) => commands::runtime()?.block_on(commands::audit::run(args, &global)),
        Command::Trust(args) => commands::trust::run(args, &global),
        Command::Completion(args) => commands::completion::completion(&args, Cli::command()),
        Command::Man(args) => commands::completion::man(&args, Cli::command()),
    }
}

/// containerd runs every executable in its verifier `bin_dir` as
/// `NAME -name REF -digest DIGEST -stdin-media-type TYPE [-operation OP]`: when signet is
/// installed there (directly or via a link named `*containerd-verifier*`), rewrite those
/// Go-style single-dash flags into the `containerd-verifier` subcommand.
fn containerd_arguments(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let invoked_as_hook = args.first().is_some_and(|a| {
        std::path::Path::new(a)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("containerd-verifier"))
    });
    let go_flags = args.get(1).is_some_and(|a| a == "-name");
    if !invoked_as_hook && !go_flags {
        return args;
    }
    let mut rewritten = vec![args.remove(0), "containerd-verifier".into()];
    for arg in args {
        let text = arg.to_string_lossy();
        if text.starts_with('-') && !text.starts_with("--") && text.len() > 2 {
            rewritten.push(format!("-{text}").into());
        } else {
            rewritten.push(arg);
        }
    }
    rewritten
}

fn main() -> std::process::ExitCode {
    // clap prints usage errors itself and exits 2; --help and --version exit 0. Its own output
    // (help, usage errors) follows --color and NO_COLOR too, so they are looked at first.
    let args = containerd_arguments(std::env::args_os().collect());
    let color = options::color_choice(&args, std::env::var_os("NO_COLOR").as_deref());
    let matches = Cli::command().color(color).get_matches_from(args.clone());
    // `-` for a file read from stdin: saved to a private file that lives while the command runs.
    let (matches, _stdin_file) = match options::stdin_file_args(&matches, args) {
        Ok(None) => (matches, None),
        Ok(Some((args, file))) => (
            Cli::command().color(color).get_matches_from(args),
            Some(file),
        ),
        Err(error) => return exit::report_error(&error).into(),
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let serving = matches!(cli.command, Command::Serve(_));
    let quiet_level = if serving { "info" } else { "warn" };
    let log_guard = cli.global.init_logging(quiet_level, serving);
    let outcome = run(cli);
    // Every queued log line is out before the last line the command prints.
    drop(log_guard);
    match outcome {
        Ok(code) => code.into(),
        Err(error) => exit::report_error(&error).into(),
    }
}
