//! `signet generate-key-pair`, `import-key-pair` and `public-key`: cosign-compatible key files.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use signet_sign::keys::{read_private_key_file, write_key_pair, SigningKey};
use zeroize::Zeroizing;

use crate::exit::ExitCode;

/// Arguments of `signet generate-key-pair`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Write PREFIX.key and PREFIX.pub.
    #[arg(long, default_value = "signet")]
    output_key_prefix: PathBuf,
    /// Replace existing key files.
    #[arg(long)]
    force: bool,
    /// `text`: where the files went, on stderr; `json`: one document on stdout.
    #[arg(long, value_enum, default_value = "text")]
    output: crate::options::OutputFormat,
}

/// Arguments of `signet import-key-pair`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// An unencrypted PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`) PEM file.
    #[arg(long)]
    key: PathBuf,
    /// Write PREFIX.key and PREFIX.pub.
    #[arg(long, default_value = "import-signet")]
    output_key_prefix: PathBuf,
    /// Replace existing key files.
    #[arg(long)]
    force: bool,
    /// `text`: where the files went, on stderr; `json`: one document on stdout.
    #[arg(long, value_enum, default_value = "text")]
    output: crate::options::OutputFormat,
}

/// Arguments of `signet public-key`.
#[derive(Debug, clap::Args)]
pub struct PublicKeyArgs {
    /// An encrypted private key file (cosign format).
    #[arg(long)]
    key: PathBuf,
}

/// The password for a new key: from the environment, else asked twice on the terminal.
fn new_password() -> anyhow::Result<Zeroizing<Vec<u8>>> {
    if let Some(password) = signet_sign::password::password_from_env() {
        return Ok(password);
    }
    Ok(signet_sign::password::prompt_password(
        "Enter password for private key: ",
        true,
    )?)
}

/// The password to open an existing key.
pub fn existing_password() -> anyhow::Result<Zeroizing<Vec<u8>>> {
    if let Some(password) = signet_sign::password::password_from_env() {
        return Ok(password);
    }
    Ok(signet_sign::password::prompt_password(
        "Enter password for private key: ",
        false,
    )?)
}

/// Read a private key file, warning when others can read it.
pub fn open_private_key(path: &std::path::Path) -> anyhow::Result<SigningKey> {
    let password = existing_password()?;
    let file = read_private_key_file(path, &password)?;
    if file.readable_by_others {
        eprintln!(
            "signet: warning: {} is readable by other users; run chmod 600 on it",
            path.display()
        );
    }
    Ok(file.key)
}

/// Run `signet generate-key-pair`.
pub fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    write_pair(
        &SigningKey::generate(),
        &args.output_key_prefix,
        args.force,
        args.output,
    )
}

/// Encrypt `key` under a new password and write the pair, saying where.
fn write_pair(
    key: &SigningKey,
    prefix: &std::path::Path,
    force: bool,
    output: crate::options::OutputFormat,
) -> anyhow::Result<ExitCode> {
    let password = new_password()?;
    let (private, public) = write_key_pair(prefix, key, &password, force)?;
    if output == crate::options::OutputFormat::Json {
        let doc = serde_json::json!({
            "privateKey": private.display().to_string(),
            "publicKey": public.display().to_string(),
        });
        println!("{doc}");
        return Ok(ExitCode::Success);
    }
    eprintln!(
        "Private key written to {}\nPublic key written to {}",
        private.display(),
        public.display()
    );
    Ok(ExitCode::Success)
}

/// Run `signet import-key-pair`.
pub fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let pem = Zeroizing::new(
        std::fs::read(&args.key).with_context(|| format!("reading {}", args.key.display()))?,
    );
    if pem.len() > 64 * 1024 {
        bail!("{}: not a key file (over 64 KiB)", args.key.display());
    }
    let key = SigningKey::from_pkcs8_or_sec1_pem(&pem, &args.key.display().to_string())?;
    write_pair(&key, &args.output_key_prefix, args.force, args.output)
}

/// Run `signet public-key`.
pub fn public_key(args: PublicKeyArgs) -> anyhow::Result<ExitCode> {
    let key = open_private_key(&args.key)?;
    print!("{}", &key.public_key().to_pem());
    Ok(ExitCode::Success)
}
