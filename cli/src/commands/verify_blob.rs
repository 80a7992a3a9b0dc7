//! `signet verify-blob`: verify a Sigstore bundle over a file or a digest (cosign's flags, the
//! Sigstore conformance CLI protocol). Exit 0 verified, 12 not verified, 2 malformed input or
//! usage. Verification is signet-keyless; who signed is judged by signet-policy's matcher.

use std::path::{Path, PathBuf};

use signet_keyless::{
    load_trusted_root, Artifact, Bundle, CertificateClaims, Instance, KeylessError, PublicKey,
    Sha256Digest, Signer, SubjectName, TrustedRoot, VerifiedBundle, Verifier,
};
use signet_policy::certificate::{
    CertificateClaims as PolicyClaims, CertificateIdentity, GitHubClaims, GitHubRequirements, Match,
};

use crate::exit::ExitCode;
use crate::options::{GlobalOptions, OutputFormat};

/// Arguments of `signet verify-blob`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("subject").args(["certificate_identity", "certificate_identity_regexp"])))]
#[command(group(clap::ArgGroup::new("issuer").args(["certificate_oidc_issuer", "certificate_oidc_issuer_regexp"])))]
pub struct VerifyBlobArgs {
    /// The Sigstore bundle (v0.1, v0.2 or v0.3 JSON; at most 16 MiB).
    #[arg(long, value_name = "FILE")]
    bundle: PathBuf,
    /// Verify a managed-key bundle with this PEM public key instead of a certificate identity.
    #[arg(long, value_name = "PUB", conflicts_with_all = ["subject", "issuer"])]
    key: Option<PathBuf>,
    /// The signer's identity: one of the certificate's SANs must equal it.
    #[arg(long, value_name = "ID", required_unless_present_any = ["key", "certificate_identity_regexp"])]
    certificate_identity: Option<String>,
    /// The signer's identity as a pattern matching a whole SAN (anchored, unlike cosign).
    #[arg(long, value_name = "RE")]
    certificate_identity_regexp: Option<String>,
    /// The OIDC issuer the certificate must name.
    #[arg(long, value_name = "URL", required_unless_present_any = ["key", "certificate_oidc_issuer_regexp"])]
    certificate_oidc_issuer: Option<String>,
    /// The OIDC issuer as a pattern matching the whole issuer (anchored).
    #[arg(long, value_name = "RE")]
    certificate_oidc_issuer_regexp: Option<String>,
    /// The GitHub workflow repository (`owner/repo`) the certificate must name.
    #[arg(long, value_name = "REPO", conflicts_with = "key")]
    certificate_github_workflow_repository: Option<String>,
    /// The GitHub workflow ref (`refs/heads/main`) the certificate must name.
    #[arg(long, value_name = "REF", conflicts_with = "key")]
    certificate_github_workflow_ref: Option<String>,
    /// The GitHub workflow commit SHA the certificate must name.
    #[arg(long, value_name = "SHA", conflicts_with = "key")]
    certificate_github_workflow_sha: Option<String>,
    /// The GitHub workflow trigger (`push`) the certificate must name.
    #[arg(long, value_name = "EVENT", conflicts_with = "key")]
    certificate_github_workflow_trigger: Option<String>,
    /// The GitHub workflow name the certificate must name.
    #[arg(long, value_name = "NAME", conflicts_with = "key")]
    certificate_github_workflow_name: Option<String>,
    /// Trust this `trusted_root.json` instead of the cached or embedded root.
    #[arg(long, value_name = "FILE")]
    trusted_root: Option<PathBuf>,
    /// Which Sigstore instance's root to use without --trusted-root: `public-good` or `github`
    /// (the TUF cache of `signet trust update` if present, else the embedded snapshot).
    #[arg(long, default_value = "public-good", value_name = "INSTANCE")]
    instance: Instance,
    /// `text` or `json` (one document on stdout, also when not verified).
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
    /// The artifact: a file (`-` for stdin), or `sha256:<64 hex>` when no such file exists (for
    /// DSSE bundles, a subject of the in-toto statement).
    #[arg(value_name = "FILE_OR_DIGEST")]
    artifact: String,
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

fn identity_of(args: &VerifyBlobArgs) -> anyhow::Result<CertificateIdentity> {
    let pick = |exact: &Option<String>, pattern: &Option<String>| -> anyhow::Result<Match> {
        match (exact, pattern) {
            (Some(value), _) => Ok(Match::Exact(value.clone())),
            (None, Some(pattern)) => Ok(Match::pattern(pattern)?),
            (None, None) => anyhow::bail!("a certificate identity and OIDC issuer are required"),
        }
    };
    Ok(CertificateIdentity {
        subject: pick(
            &args.certificate_identity,
            &args.certificate_identity_regexp,
        )?,
        issuer: pick(
            &args.certificate_oidc_issuer,
            &args.certificate_oidc_issuer_regexp,
        )?,
        github: GitHubRequirements {
            trigger: args.certificate_github_workflow_trigger.clone(),
            sha: args.certificate_github_workflow_sha.clone(),
            name: args.certificate_github_workflow_name.clone(),
            repository: args.certificate_github_workflow_repository.clone(),
            git_ref: args.certificate_github_workflow_ref.clone(),
        },
    })
}

/// The verifier's claims in the policy's terms.
fn policy_claims(claims: &CertificateClaims) -> PolicyClaims {
    PolicyClaims {
        subjects: claims
            .subjects
            .iter()
            .map(|s| SubjectName::as_str(s).to_string())
            .collect(),
        issuer: claims.issuer.clone(),
        github: GitHubClaims {
            trigger: claims.github.trigger.clone(),
            sha: claims.github.sha.clone(),
            name: claims.github.name.clone(),
            repository: claims.github.repository.clone(),
            git_ref: claims.github.git_ref.clone(),
        },
    }
}

fn root_of(args: &VerifyBlobArgs) -> Result<TrustedRoot, KeylessError> {
    // No usable cache location (no HOME, no XDG_CACHE_HOME) means no cache, not an error; an
    // entry that exists but fails its checks is an error (the loader fails closed).
    let cache = signet_keyless::cache::TufCache::default_location().ok();
    load_trusted_root(
        args.trusted_root.as_deref(),
        args.instance,
        cache
            .as_ref()
            .map(|c| c as &dyn signet_keyless::TrustedRootCache),
    )
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
    let identity = match args.key {
        Some(_) => None,
        None => Some(identity_of(&args)?),
    };
    let key = args.key.as_deref().map(PublicKey::from_file).transpose()?;
    let root = root_of(&args)?;
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
        if let Err(mismatch) = identity.matches(&policy_claims(claims)) {
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
