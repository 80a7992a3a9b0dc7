//! The certificate flags every verifying command shares (`verify`, `verify-blob`,
//! `verify-attestation`), declared once: cosign's identity flags, the Sigstore root to trust, and
//! (for images) a private PKI. Each command flattens the groups it takes; the rules between
//! them are cosign's: `--certificate-identity` or `--certificate-identity-regexp` together with
//! `--certificate-oidc-issuer` or `--certificate-oidc-issuer-regexp`, and none of them with
//! `--key` (the one argument id every user of these groups must declare).

use std::path::PathBuf;

use signet_keyless::{load_trusted_root, Instance, TrustedRoot, Verifier};
use signet_policy::certificate::{CertificateIdentity, GitHubRequirements, Match};
use signet_verifier::keyless::CertificateTrust;
use signet_verifier::pki_files::{pki_trust_from_files, PkiIdentity};

/// Who must have signed: a Fulcio certificate's subject, OIDC issuer and GitHub claims.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Keyless (Sigstore certificate) signers")]
#[command(group(
    clap::ArgGroup::new("subject")
        .args(["certificate_identity", "certificate_identity_regexp"])
        .requires("issuer")
        .conflicts_with("key")
))]
#[command(group(
    clap::ArgGroup::new("issuer")
        .args(["certificate_oidc_issuer", "certificate_oidc_issuer_regexp"])
        .requires("subject")
        .conflicts_with("key")
))]
pub struct CertificateIdentityArgs {
    /// The signer's identity: one of the certificate's SANs (email, URI, otherName) must equal
    /// it.
    #[arg(long, value_name = "ID")]
    certificate_identity: Option<String>,
    /// The signer's identity as a pattern matching a whole SAN (anchored, unlike cosign).
    #[arg(long, value_name = "RE")]
    certificate_identity_regexp: Option<String>,
    /// The OIDC issuer the certificate must name.
    #[arg(long, value_name = "URL")]
    certificate_oidc_issuer: Option<String>,
    /// The OIDC issuer as a pattern matching the whole issuer (anchored).
    #[arg(long, value_name = "RE")]
    certificate_oidc_issuer_regexp: Option<String>,
    /// The GitHub workflow repository (`owner/repo`) the certificate must name.
    #[arg(long, value_name = "REPO", requires = "issuer")]
    certificate_github_workflow_repository: Option<String>,
    /// The GitHub workflow ref (`refs/heads/main`) the certificate must name.
    #[arg(long, value_name = "REF", requires = "issuer")]
    certificate_github_workflow_ref: Option<String>,
    /// The GitHub workflow commit SHA the certificate must name.
    #[arg(long, value_name = "SHA", requires = "issuer")]
    certificate_github_workflow_sha: Option<String>,
    /// The GitHub workflow trigger (`push`) the certificate must name.
    #[arg(long, value_name = "EVENT", requires = "issuer")]
    certificate_github_workflow_trigger: Option<String>,
    /// The GitHub workflow name the certificate must name.
    #[arg(long, value_name = "NAME", requires = "issuer")]
    certificate_github_workflow_name: Option<String>,
}

impl CertificateIdentityArgs {
    /// The identity the flags name (`None` without `--certificate-identity[-regexp]`); a pattern
    /// that does not compile is a usage error.
    pub fn identity(&self) -> anyhow::Result<Option<CertificateIdentity>> {
        let pick = |exact: &Option<String>, pattern: &Option<String>| match (exact, pattern) {
            (Some(value), _) => Ok(Some(Match::Exact(value.clone()))),
            (None, Some(pattern)) => Ok(Some(Match::pattern(pattern)?)),
            (None, None) => Ok::<_, anyhow::Error>(None),
        };
        let Some(subject) = pick(
            &self.certificate_identity,
            &self.certificate_identity_regexp,
        )?
        else {
            return Ok(None);
        };
        let Some(issuer) = pick(
            &self.certificate_oidc_issuer,
            &self.certificate_oidc_issuer_regexp,
        )?
        else {
            anyhow::bail!(
                "a certificate identity needs --certificate-oidc-issuer or --certificate-oidc-issuer-regexp"
            );
        };
        Ok(Some(CertificateIdentity {
            subject,
            issuer,
            github: GitHubRequirements {
                trigger: self.certificate_github_workflow_trigger.clone(),
                sha: self.certificate_github_workflow_sha.clone(),
                name: self.certificate_github_workflow_name.clone(),
                repository: self.certificate_github_workflow_repository.clone(),
                git_ref: self.certificate_github_workflow_ref.clone(),
            },
        }))
    }
}

/// Which Sigstore trusted root verifies certificates, log entries and timestamps.
/// `verify` and `verify-attestation` use a root only for certificate signers, so they make
/// `--trusted-root` require an issuer (`mut_arg` on their arguments: alone it would be
/// ignored); `verify-blob` needs it for key-signed bundles' log entries too.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Keyless (Sigstore certificate) signers")]
pub struct TrustedRootArgs {
    /// Trust this `trusted_root.json` instead of the cached or embedded root.
    #[arg(long, value_name = "FILE")]
    trusted_root: Option<PathBuf>,
    /// Which Sigstore instance's root to use without --trusted-root: `public-good` or `github`
    /// (the TUF cache of `signet trust update` if present, else the embedded snapshot).
    #[arg(long, default_value = "public-good", value_name = "INSTANCE")]
    instance: Instance,
}

impl TrustedRootArgs {
    /// The root: `--trusted-root`, else the TUF cache of `--instance`, else its embedded
    /// snapshot.
    pub fn load(&self) -> anyhow::Result<TrustedRoot> {
        // No usable cache location (no HOME, no XDG_CACHE_HOME) means no cache, not an error; an
        // entry that exists but fails its checks is an error (the loader fails closed).
        let cache = signet_keyless::cache::TufCache::default_location().ok();
        Ok(load_trusted_root(
            self.trusted_root.as_deref(),
            self.instance,
            cache
                .as_ref()
                .map(|c| c as &dyn signet_keyless::TrustedRootCache),
        )?)
    }
}

/// A private PKI (containers/image's `pki`): certificates from one's own CA, checked at the
/// current time, without Fulcio or Rekor.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Private-PKI signers")]
#[command(group(
    clap::ArgGroup::new("pki_san")
        .args(["certificate_email", "certificate_hostname"])
        .multiple(true)
))]
pub struct PkiArgs {
    /// The CA root certificates (PEM) a signing certificate must chain to, at the current time,
    /// without Fulcio or Rekor; needs --certificate-email and/or --certificate-hostname.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["key", "subject", "trusted_root"],
        requires = "pki_san"
    )]
    ca_roots: Option<PathBuf>,
    /// Intermediate CA certificates (PEM) used to build the path.
    #[arg(long, value_name = "FILE", requires = "ca_roots")]
    ca_intermediates: Option<PathBuf>,
    /// An email SAN the certificate must carry.
    #[arg(long, value_name = "EMAIL", requires = "ca_roots")]
    certificate_email: Option<String>,
    /// A DNS-name SAN the certificate must carry.
    #[arg(long, value_name = "HOST", requires = "ca_roots")]
    certificate_hostname: Option<String>,
}

impl PkiArgs {
    /// Whether `--ca-roots` was given.
    pub fn given(&self) -> bool {
        self.ca_roots.is_some()
    }

    /// The private-PKI trust the flags name, checked at `now` (`None` without `--ca-roots`).
    pub fn trust(&self, now: i64) -> anyhow::Result<Option<CertificateTrust>> {
        let Some(roots) = &self.ca_roots else {
            return Ok(None);
        };
        Ok(Some(pki_trust_from_files(
            roots,
            self.ca_intermediates.as_deref(),
            PkiIdentity {
                email: self.certificate_email.clone(),
                hostname: self.certificate_hostname.clone(),
            },
            now,
        )?))
    }
}

/// The certificate flags of the image commands (`verify`, `verify-attestation`): keyless and
/// private PKI. Boxed where flattened: they would make every command's arguments large.
#[derive(Debug, clap::Args)]
pub struct ImageCertificateArgs {
    #[command(flatten)]
    identity: CertificateIdentityArgs,
    #[command(flatten)]
    root: TrustedRootArgs,
    #[command(flatten)]
    pki: PkiArgs,
}

impl ImageCertificateArgs {
    /// The certificate trust these flags name ([`certificate_trust`]), `None` when none was given.
    pub fn trust(&self) -> anyhow::Result<Option<(CertificateTrust, Option<TrustedRoot>)>> {
        certificate_trust(&self.identity, &self.root, Some(&self.pki))
    }
}

/// The certificate trust a command's flags name: a private PKI (`--ca-roots`) or a Sigstore
/// root with an identity; `None` when neither was given. The root is returned for reports.
pub fn certificate_trust(
    identity: &CertificateIdentityArgs,
    root: &TrustedRootArgs,
    pki: Option<&PkiArgs>,
) -> anyhow::Result<Option<(CertificateTrust, Option<TrustedRoot>)>> {
    if let Some(pki) = pki.filter(|p| p.given()) {
        return Ok(pki
            .trust(signet_oci::clock::unix_now()?)?
            .map(|trust| (trust, None)));
    }
    let Some(identity) = identity.identity()? else {
        return Ok(None);
    };
    let root = root.load()?;
    let verifier = Verifier::new(&root)?;
    Ok(Some((
        CertificateTrust::Sigstore { verifier, identity },
        Some(root),
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use clap::error::ErrorKind;
    use clap::Parser as _;

    const ID: [&str; 2] = ["--certificate-identity", "ci@example.com"];
    const ISSUER: [&str; 2] = ["--certificate-oidc-issuer", "https://issuer.example"];
    const KEY: [&str; 2] = ["--key", "k.pub"];

    /// `signet COMMAND ARGS… TARGET` as parsed, with each command's own required arguments.
    fn parse(command: &str, args: &[&str]) -> Result<(), clap::Error> {
        let mut argv = vec!["signet", command];
        if command == "verify-blob" {
            argv.extend(["--bundle", "b.json"]);
        }
        argv.extend_from_slice(args);
        argv.push("target");
        crate::Cli::try_parse_from(argv).map(|_| ())
    }

    const COMMANDS: [&str; 3] = ["verify", "verify-blob", "verify-attestation"];

    #[test]
    fn every_verifying_command_takes_an_identity_with_an_issuer_or_a_key() {
        for command in COMMANDS {
            parse(command, &[&ID[..], &ISSUER[..]].concat()).unwrap();
            parse(command, &KEY).unwrap();
            let regexps = [
                "--certificate-identity-regexp",
                ".*@example.com",
                "--certificate-oidc-issuer-regexp",
                "https://.*",
                "--certificate-github-workflow-repository",
                "o/r",
                "--certificate-github-workflow-ref",
                "refs/heads/main",
                "--certificate-github-workflow-sha",
                "abc",
                "--certificate-github-workflow-trigger",
                "push",
                "--certificate-github-workflow-name",
                "release",
                "--trusted-root",
                "root.json",
                "--instance",
                "github",
            ];
            parse(command, &regexps).unwrap();
        }
    }

    #[test]
    fn every_verifying_command_refuses_the_same_clashes() {
        let cases: [(&[&str], ErrorKind); 7] = [
            (&ID, ErrorKind::MissingRequiredArgument),
            (&ISSUER, ErrorKind::MissingRequiredArgument),
            (
                &["--certificate-github-workflow-repository", "o/r"],
                ErrorKind::MissingRequiredArgument,
            ),
            (
                &[&KEY[..], &ID[..], &ISSUER[..]].concat(),
                ErrorKind::ArgumentConflict,
            ),
            (
                &[&KEY[..], &ISSUER[..]].concat(),
                ErrorKind::ArgumentConflict,
            ),
            (
                &[
                    &ID[..],
                    &["--certificate-identity-regexp", ".*"],
                    &ISSUER[..],
                ]
                .concat(),
                ErrorKind::ArgumentConflict,
            ),
            (
                &[
                    &ID[..],
                    &ISSUER[..],
                    &["--certificate-oidc-issuer-regexp", ".*"],
                ]
                .concat(),
                ErrorKind::ArgumentConflict,
            ),
        ];
        for command in COMMANDS {
            for (args, kind) in &cases {
                let error = parse(command, args).expect_err(&format!("{command} {args:?}"));
                assert_eq!(error.kind(), *kind, "{command} {args:?}: {error}");
            }
            // Nothing at all: a key or an identity is required.
            let error = parse(command, &[]).expect_err(command);
            assert_eq!(
                error.kind(),
                ErrorKind::MissingRequiredArgument,
                "{command}"
            );
        }
    }

    #[test]
    fn a_trusted_root_goes_with_a_key_only_where_it_verifies_the_key_bundle() {
        let with_key = [&KEY[..], &["--trusted-root", "root.json"]].concat();
        parse("verify-blob", &with_key).unwrap();
        for command in ["verify", "verify-attestation"] {
            let error = parse(command, &with_key).expect_err(command);
            assert_eq!(
                error.kind(),
                ErrorKind::MissingRequiredArgument,
                "{command}: {error}"
            );
        }
    }

    #[test]
    fn the_private_pki_flags_are_the_same_for_images_and_attestations() {
        let pki = [
            "--ca-roots",
            "ca.pem",
            "--certificate-email",
            "ci@example.com",
        ];
        for command in ["verify", "verify-attestation"] {
            parse(command, &pki).unwrap();
            parse(
                command,
                &[
                    "--ca-roots",
                    "ca.pem",
                    "--ca-intermediates",
                    "i.pem",
                    "--certificate-hostname",
                    "h.example",
                ],
            )
            .unwrap();
            for (args, kind) in [
                (
                    vec!["--ca-roots", "ca.pem"],
                    ErrorKind::MissingRequiredArgument,
                ),
                (
                    vec!["--certificate-email", "ci@example.com"],
                    ErrorKind::MissingRequiredArgument,
                ),
                ([&pki[..], &KEY[..]].concat(), ErrorKind::ArgumentConflict),
                (
                    [&pki[..], &ID[..], &ISSUER[..]].concat(),
                    ErrorKind::ArgumentConflict,
                ),
                (
                    [&pki[..], &["--trusted-root", "root.json"]].concat(),
                    ErrorKind::ArgumentConflict,
                ),
            ] {
                let error = parse(command, &args).expect_err(&format!("{command} {args:?}"));
                assert_eq!(error.kind(), kind, "{command} {args:?}: {error}");
            }
        }
        // verify-blob verifies Sigstore bundles only.
        let error = parse("verify-blob", &pki).expect_err("verify-blob --ca-roots");
        assert_eq!(error.kind(), ErrorKind::UnknownArgument, "{error}");
    }

    #[test]
    fn the_flags_become_one_identity_with_every_claim() {
        let args = super::CertificateIdentityArgs {
            certificate_identity: None,
            certificate_identity_regexp: Some(".*@example.com".into()),
            certificate_oidc_issuer: Some("https://issuer.example".into()),
            certificate_oidc_issuer_regexp: None,
            certificate_github_workflow_repository: Some("o/r".into()),
            certificate_github_workflow_ref: Some("refs/heads/main".into()),
            certificate_github_workflow_sha: Some("abc".into()),
            certificate_github_workflow_trigger: Some("push".into()),
            certificate_github_workflow_name: Some("release".into()),
        };
        let identity = args.identity().unwrap().unwrap();
        assert!(matches!(identity.subject, super::Match::Pattern(_)));
        assert!(
            matches!(&identity.issuer, super::Match::Exact(issuer) if issuer == "https://issuer.example")
        );
        let github = identity.github;
        assert_eq!(
            (
                github.repository.as_deref(),
                github.git_ref.as_deref(),
                github.sha.as_deref(),
                github.trigger.as_deref(),
                github.name.as_deref()
            ),
            (
                Some("o/r"),
                Some("refs/heads/main"),
                Some("abc"),
                Some("push"),
                Some("release")
            )
        );
        // A pattern that does not compile is an error, not a match-anything.
        let bad = super::CertificateIdentityArgs {
            certificate_identity_regexp: Some("(".into()),
            ..args
        };
        assert!(bad.identity().is_err());
    }
}
