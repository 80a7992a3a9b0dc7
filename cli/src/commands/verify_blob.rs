//! `signet verify-blob`: verify a Sigstore bundle over a file or a digest (cosign's flags, the
//! Sigstore conformance CLI protocol). Exit 0 verified, 12 not verified, 2 malformed input or
//! usage. Verification is signet-keyless; who signed is judged by signet-policy's matcher.

use std::path::{Path, PathBuf};

use signet_keyless::{
    Artifact, Bundle, KeylessError, PublicKey, Sha256Digest, Signer, SubjectName, TrustedRoot,
    VerifiedBundle, Verifier,
};

use super::identity_args::{CertificateIdentityArgs, TrustedRootArgs};

use crate::exit::ExitCode;
use crate::options::{GlobalOptions, OutputFormat};

/// Arguments of `signet verify-blob`.
#[derive(Debug, clap::Args)]
pub struct VerifyBlobArgs {
    /// The Sigstore bundle (v0.1, v0.2 or v0.3 JSON; at most 16 MiB).
    #[arg(long, value_name = "FILE")]
    bundle: PathBuf,
    /// Verify a managed-key bundle with this PEM public key instead of a certificate identity.
    #[arg(long, value_name = "PUB", required_unless_present = "subject")]
    key: Option<PathBuf>,
    /// `text` or `json` (one document on stdout, also when not verified).
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
    /// The artifact: a file (`-` for stdin), or `sha256:<64 hex>` when no such file exists (for
    /// DSSE bundles, a subject of the in-toto statement).
    #[arg(value_name = "FILE_OR_DIGEST")]
    artifact: String,
    // Last: their help heading would hold every argument after them.
    #[command(flatten)]
    identity: CertificateIdentityArgs,
    /// The root also verifies a key-signed bundle's log entries and timestamps, so here
    /// `--trusted-root` goes with `--key` too.
    #[command(flatten)]
    root: TrustedRootArgs,
}

/// The conformance protocol's rule: a `sha256:` digest that is not an existing path is a digest.
/// `-` is standard input, streamed like a file (never held whole).
fn artifact_of(arg: &str) -> Result<Artifact<'_>, KeylessError> {
    if arg == "-" {
        return Ok(Artifact::File(Path::new("/dev/stdin")));
    }
    if !Path::new(arg).exists() {
        if let Ok(digest) = arg.parse::<Sha256Digest>() {
            return Ok(Artifact::Digest(digest));
        }
    }
    Ok(Artifact::File(Path::new(arg)))
}

fn time_text(seconds: i64) -> String {
    signet_keyless::rfc3339(seconds)
}

fn report(verified: &VerifiedBundle, root: &TrustedRoot, artifact: &str) -> serde_json::Value {
    let signer = match &verified.certificate {
        Some(c) => serde_json::json!({
            "kind": "certificate",
            "subjects": c.subjects.iter().map(|s| match s {
                SubjectName::Email(v) => serde_json::json!({"email": v}),
                SubjectName::Uri(v) => serde_json::json!({"uri": v}),
                SubjectName::OtherName(v) => serde_json::json!({"otherName": v}),
            }).collect::<Vec<_>>(),
            "issuer": c.issuer,
            "github": {
                "repository": c.github.repository, "ref": c.github.git_ref, "sha": c.github.sha,
                "trigger": c.github.trigger, "name": c.github.name,
            },
            "notBefore": time_text(c.not_before),
            "notAfter": time_text(c.not_after),
        }),
        None => serde_json::json!({"kind": "key"}),
    };
    serde_json::json!({
        "verified": true,
        "artifact": artifact,
        "bundle": {
            "version": verified.version.as_str(),
            "content": match verified.content {
                signet_keyless::ContentKind::MessageSignature => "message-signature",
                signet_keyless::ContentKind::Dsse => "dsse",
            },
        },
        "signer": signer,
        "verifiedTimes": verified.verified_times.iter().map(|t| time_text(*t)).collect::<Vec<_>>(),
        "tlogEntries": verified.log_entries.iter().map(|e| serde_json::json!({
            "kind": e.kind, "version": e.version, "logIndex": e.log_index, "logId": e.log_id,
            "rekorV2": e.rekor_v2,
            "integratedTime": e.integrated_time.map(time_text),
        })).collect::<Vec<_>>(),
        "rfc3161Timestamps": verified.timestamps,
        "sctVerified": verified.sct_verified,
        "trustedRoot": {"source": root.source().to_string(), "sha256": root.sha256()},
    })
}

/// One line on stdout; a closed pipe (`| head`) is not an error worth a panic.
fn out(line: &dyn std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn not_verified(output: OutputFormat, code: &str, message: &str) -> ExitCode {
    match output {
        OutputFormat::Json => {
            out(&serde_json::json!({"verified": false, "code": code, "error": message}))
        }
        OutputFormat::Text => eprintln!("signet: not verified: {message}"),
    }
    ExitCode::NoValidSignature
}

/// Run `signet verify-blob`.
pub fn run(args: VerifyBlobArgs, _global: &GlobalOptions) -> anyhow::Result<ExitCode> {
    // Usage problems (a pattern that does not compile) before any file is read.
    let identity = args.identity.identity()?;
    if identity.is_none() && args.key.is_none() {
        anyhow::bail!("verify-blob needs --key or a certificate identity");
    }
    let key = args.key.as_deref().map(PublicKey::from_file).transpose()?;
    let root = args.root.load()?;
    let bundle = Bundle::from_file(&args.bundle)?;
    let artifact = artifact_of(&args.artifact)?;
    let verifier = Verifier::new(&root)?;
    let signer = match &key {
        Some(key) => Signer::Key(key),
        None => Signer::Certificate,
    };
    let verified = match verifier.verify(artifact, &bundle, signer) {
        Ok(verified) => verified,
        Err(e) if e.is_malformed_input() => return Err(e.into()),
        Err(e) => {
            let code = e.check().map_or("not-verified", |c| c.code());
            return Ok(not_verified(args.output, code, &e.to_string()));
        }
    };
    if let (Some(identity), Some(claims)) = (&identity, &verified.certificate) {
        if let Err(mismatch) = identity.matches(&signet_verifier::keyless::policy_claims(claims)) {
            return Ok(not_verified(
                args.output,
                mismatch.code(),
                &mismatch.to_string(),
            ));
        }
    }
    let shown = match artifact {
        Artifact::Digest(digest) => digest.to_string(),
        _ => args.artifact.clone(),
    };
    match args.output {
        OutputFormat::Json => out(&report(&verified, &root, &shown)),
        OutputFormat::Text => {
            let who = match &verified.certificate {
                Some(c) => format!(
                    "{} (issuer {})",
                    c.subjects.first().map_or("?", |s| s.as_str()),
                    c.issuer.as_deref().unwrap_or("?")
                ),
                None => "the given key".to_string(),
            };
            out(&format!("Verified OK: {shown} signed by {who}"));
        }
    }
    Ok(ExitCode::Success)
}
