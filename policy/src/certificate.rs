//! Keyless signer identities: does a verified certificate name the signer a policy (or
//! `verify-blob`'s flags) asks for? Pure: the claims come from the verifier (signet-keyless reads
//! them off a certificate whose chain and transparency evidence already verified), this only
//! compares.
//!
//! **Patterns are anchored.** cosign's `--certificate-identity-regexp` is a Go regexp matched
//! *anywhere* in the value, so `https://github.com/acme/` also accepts
//! `https://evil.example/?https://github.com/acme/`. Signet compiles every pattern as
//! `^(?:PATTERN)$`: it must match the whole value. A pattern meant as a prefix says so with `.*`.
//! The syntax is the `regex` crate's (RE2-like, as Go's), so cosign patterns carry over; only
//! the implicit "anywhere" does not.

use crate::error::Error;

/// The longest pattern accepted (characters).
pub const MAX_PATTERN_LEN: usize = 1024;
/// Compiled-program size bound for one pattern (the `regex` crate's size limit).
const MAX_COMPILED_SIZE: usize = 1 << 20;

/// A value a claim must have: exactly, or matching an anchored pattern.
#[derive(Debug, Clone)]
pub enum Match {
    /// Byte-for-byte equal.
    Exact(String),
    /// Matches the whole value (see the module documentation).
    Pattern(Pattern),
}

impl Match {
    /// An anchored pattern match; a pattern that does not compile is [`Error::InvalidPattern`].
    pub fn pattern(source: &str) -> Result<Self, Error> {
        Pattern::new(source).map(Match::Pattern)
    }

    /// Whether `value` satisfies this match.
    pub fn is_match(&self, value: &str) -> bool {
        match self {
            Match::Exact(wanted) => wanted == value,
            Match::Pattern(pattern) => pattern.regex.is_match(value),
        }
    }
}

impl std::fmt::Display for Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Match::Exact(value) => write!(f, "{value:?}"),
            Match::Pattern(pattern) => write!(f, "/{}/", pattern.source),
        }
    }
}

/// A compiled, fully anchored pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// Compile `source` as `^(?:source)$`.
    pub fn new(source: &str) -> Result<Self, Error> {
        let refuse = |reason: String| Error::InvalidPattern {
            pattern: source.chars().take(100).collect(),
            reason,
        };
        if source.chars().count() > MAX_PATTERN_LEN {
            return Err(refuse(format!("longer than {MAX_PATTERN_LEN} characters")));
        }
        let regex = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(MAX_COMPILED_SIZE)
            .build()
            .map_err(|e| {
                refuse(
                    e.to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            })?;
        Ok(Pattern {
            source: source.to_string(),
            regex,
        })
    }

    /// The pattern as written (without the anchors Signet adds).
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// GitHub workflow claims of a certificate (Fulcio's deprecated extensions
/// `1.3.6.1.4.1.57264.1.2`–`.6`, the ones cosign's `--certificate-github-workflow-*` flags read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitHubClaims {
    /// `.1.2` triggering event (`push`).
    pub trigger: Option<String>,
    /// `.1.3` commit SHA.
    pub sha: Option<String>,
    /// `.1.4` workflow name.
    pub name: Option<String>,
    /// `.1.5` repository (`owner/repo`).
    pub repository: Option<String>,
    /// `.1.6` git ref (`refs/heads/main`).
    pub git_ref: Option<String>,
}

/// What a verified signing certificate claims, as the policy sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateClaims {
    /// Every subject alternative name (email, URI, Fulcio username), in certificate order.
    pub subjects: Vec<String>,
    /// The OIDC issuer (Fulcio extension `.1.8`, else `.1.1`).
    pub issuer: Option<String>,
    /// The GitHub workflow claims.
    pub github: GitHubClaims,
}

/// Exact values the GitHub workflow claims must have (each `None` is "any").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitHubRequirements {
    /// `--certificate-github-workflow-trigger`.
    pub trigger: Option<String>,
    /// `--certificate-github-workflow-sha`.
    pub sha: Option<String>,
    /// `--certificate-github-workflow-name`.
    pub name: Option<String>,
    /// `--certificate-github-workflow-repository`.
    pub repository: Option<String>,
    /// `--certificate-github-workflow-ref`.
    pub git_ref: Option<String>,
}

/// One keyless signer: who (subject) and vouched for by whom (issuer), and optionally which
/// GitHub workflow.
#[derive(Debug, Clone)]
pub struct CertificateIdentity {
    /// The subject: one of the certificate's SANs must match.
    pub subject: Match,
    /// The OIDC issuer.
    pub issuer: Match,
    /// GitHub workflow claims that must hold too.
    pub github: GitHubRequirements,
}

/// Why a certificate is not the wanted signer. Claim values come from a verified certificate,
/// but are still bounded when printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// No SAN matches the wanted subject.
    Subject {
        /// The wanted subject as displayed.
        wanted: String,
        /// The certificate's SANs.
        actual: Vec<String>,
    },
    /// The issuer differs (or is absent).
    Issuer {
        /// The wanted issuer as displayed.
        wanted: String,
        /// The certificate's issuer.
        actual: Option<String>,
    },
    /// A GitHub workflow claim differs (or is absent).
    GitHub {
        /// Which claim (`repository`, `ref`, `sha`, `trigger`, `name`).
        claim: &'static str,
        /// The wanted value.
        wanted: String,
        /// The certificate's value.
        actual: Option<String>,
    },
}

impl Mismatch {
    /// Stable kebab-case code.
    pub fn code(&self) -> &'static str {
        match self {
            Mismatch::Subject { .. } => "certificate-subject-mismatch",
            Mismatch::Issuer { .. } => "certificate-issuer-mismatch",
            Mismatch::GitHub { .. } => "certificate-github-claim-mismatch",
        }
    }
}

fn shown(value: &str) -> String {
    let short: String = value.chars().take(200).collect();
    format!("{short:?}")
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Subject { wanted, actual } => {
                let actual: Vec<String> = actual.iter().take(8).map(|s| shown(s)).collect();
                write!(
                    f,
                    "certificate subject [{}] does not match {wanted}",
                    actual.join(", ")
                )
            }
            Mismatch::Issuer { wanted, actual } => match actual {
                Some(actual) => write!(
                    f,
                    "certificate issuer {} does not match {wanted}",
                    shown(actual)
                ),
                None => write!(f, "certificate names no OIDC issuer (wanted {wanted})"),
            },
            Mismatch::GitHub {
                claim,
                wanted,
                actual,
            } => match actual {
                Some(actual) => write!(
                    f,
                    "certificate GitHub workflow {claim} {} is not {}",
                    shown(actual),
                    shown(wanted)
                ),
                None => write!(
                    f,
                    "certificate has no GitHub workflow {claim} (wanted {})",
                    shown(wanted)
                ),
            },
        }
    }
}

impl CertificateIdentity {
    /// `Ok` when the claims name this signer: some SAN matches the subject, the issuer matches,
    /// and every required GitHub claim is present and equal. The first failing part is reported.
    pub fn matches(&self, claims: &CertificateClaims) -> Result<(), Mismatch> {
        if !claims.subjects.iter().any(|s| self.subject.is_match(s)) {
            return Err(Mismatch::Subject {
                wanted: self.subject.to_string(),
                actual: claims.subjects.clone(),
            });
        }
        if !claims
            .issuer
            .as_deref()
            .is_some_and(|issuer| self.issuer.is_match(issuer))
        {
            return Err(Mismatch::Issuer {
                wanted: self.issuer.to_string(),
                actual: claims.issuer.clone(),
            });
        }
        let wanted = &self.github;
        let have = &claims.github;
        for (claim, wanted, actual) in [
            ("repository", &wanted.repository, &have.repository),
            ("ref", &wanted.git_ref, &have.git_ref),
            ("sha", &wanted.sha, &have.sha),
            ("trigger", &wanted.trigger, &have.trigger),
            ("name", &wanted.name, &have.name),
        ] {
            if let Some(wanted) = wanted {
                if actual.as_deref() != Some(wanted.as_str()) {
                    return Err(Mismatch::GitHub {
                        claim,
                        wanted: wanted.clone(),
                        actual: actual.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const WORKFLOW: &str =
        "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
    const ACTIONS: &str = "https://token.actions.githubusercontent.com";

    fn claims() -> CertificateClaims {
        CertificateClaims {
            subjects: vec!["ops@acme.example".into(), WORKFLOW.into()],
            issuer: Some(ACTIONS.into()),
            github: GitHubClaims {
                repository: Some("acme/app".into()),
                git_ref: Some("refs/heads/main".into()),
                ..GitHubClaims::default()
            },
        }
    }

    fn identity(subject: Match, issuer: Match) -> CertificateIdentity {
        CertificateIdentity {
            subject,
            issuer,
            github: GitHubRequirements::default(),
        }
    }

    #[test]
    fn exact_subject_may_be_any_san() {
        let id = identity(Match::Exact(WORKFLOW.into()), Match::Exact(ACTIONS.into()));
        assert_eq!(id.matches(&claims()), Ok(()));
        let id = identity(
            Match::Exact("ops@acme.example".into()),
            Match::Exact(ACTIONS.into()),
        );
        assert_eq!(id.matches(&claims()), Ok(()));
    }

    #[test]
    fn patterns_are_anchored_unlike_cosign() {
        // cosign (Go regexp, unanchored) would accept this prefix-looking pattern anywhere.
        let id = identity(
            Match::pattern("https://github.com/acme/").unwrap(),
            Match::Exact(ACTIONS.into()),
        );
        let err = id.matches(&claims()).unwrap_err();
        assert_eq!(err.code(), "certificate-subject-mismatch");
        let id = identity(
            Match::pattern("https://github.com/acme/.*").unwrap(),
            Match::pattern(r"https://token\.actions\.githubusercontent\.com").unwrap(),
        );
        assert_eq!(id.matches(&claims()), Ok(()));
        // An alternation must not escape the anchors: ^(?:a|b)$, not ^a|b$.
        let id = identity(
            Match::pattern("nobody|.*release").unwrap(),
            Match::Exact(ACTIONS.into()),
        );
        assert_eq!(
            id.matches(&claims()).unwrap_err().code(),
            "certificate-subject-mismatch"
        );
    }

    #[test]
    fn issuer_absent_or_different_is_named() {
        let id = identity(
            Match::Exact(WORKFLOW.into()),
            Match::Exact("https://accounts.google.com".into()),
        );
        let err = id.matches(&claims()).unwrap_err();
        assert_eq!(err.code(), "certificate-issuer-mismatch");
        assert!(err.to_string().contains("token.actions"), "{err}");
        let mut no_issuer = claims();
        no_issuer.issuer = None;
        let id = identity(Match::Exact(WORKFLOW.into()), Match::Exact(ACTIONS.into()));
        assert!(id
            .matches(&no_issuer)
            .unwrap_err()
            .to_string()
            .contains("no OIDC issuer"));
    }

    #[test]
    fn github_claims_must_be_present_and_equal() {
        let mut id = identity(Match::Exact(WORKFLOW.into()), Match::Exact(ACTIONS.into()));
        id.github.repository = Some("acme/app".into());
        assert_eq!(id.matches(&claims()), Ok(()));
        id.github.git_ref = Some("refs/tags/v1".into());
        assert_eq!(
            id.matches(&claims()),
            Err(Mismatch::GitHub {
                claim: "ref",
                wanted: "refs/tags/v1".into(),
                actual: Some("refs/heads/main".into()),
            })
        );
        id.github.git_ref = None;
        id.github.sha = Some("abc".into());
        let err = id.matches(&claims()).unwrap_err();
        assert_eq!(err.code(), "certificate-github-claim-mismatch");
        assert!(err.to_string().contains("no GitHub workflow sha"), "{err}");
    }

    #[test]
    fn bad_and_huge_patterns_are_refused() {
        let err = Match::pattern("(").unwrap_err();
        assert!(matches!(err, Error::InvalidPattern { .. }), "{err}");
        let err = Match::pattern(&"a".repeat(MAX_PATTERN_LEN + 1)).unwrap_err();
        assert!(err.to_string().contains("longer than 1024"), "{err}");
        let err = Match::pattern("(a{1000}){1000}").unwrap_err();
        assert!(matches!(err, Error::InvalidPattern { .. }), "{err}");
    }
}
