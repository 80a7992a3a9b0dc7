//! Identity rules: whether a signature's `docker-reference` is acceptable for the image being
//! verified, with the semantics of containers/image's `signedIdentity`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use signet_oci::Reference;

/// How a signed `docker-reference` must relate to the image reference being verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum IdentityRule {
    /// Same repository; tag and digest ignored (cosign-style signatures name the repository only).
    MatchRepository,
    /// By digest: same repository; by tag: the exact reference (podman's default).
    MatchRepoDigestOrExact,
    /// The exact reference, tag included; a repository-only identity never matches.
    MatchExact,
}

impl IdentityRule {
    /// Whether `signed` (the payload's `docker-reference`, as written) is accepted for `image`.
    pub fn accepts(&self, signed: &str, image: &Reference) -> bool {
        let Ok(signed) = Reference::parse_as_written(signed) else {
            return false;
        };
        match self {
            IdentityRule::MatchRepository => signed.name() == image.name(),
            IdentityRule::MatchRepoDigestOrExact => {
                if image.digest().is_some() {
                    signed.name() == image.name()
                } else {
                    exact(&signed, image)
                }
            }
            IdentityRule::MatchExact => exact(&signed, image),
        }
    }
}

fn exact(signed: &Reference, image: &Reference) -> bool {
    (signed.tag().is_some() || signed.digest().is_some()) && signed == image
}

impl fmt::Display for IdentityRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdentityRule::MatchRepository => "matchRepository",
            IdentityRule::MatchRepoDigestOrExact => "matchRepoDigestOrExact",
            IdentityRule::MatchExact => "matchExact",
        })
    }
}

impl FromStr for IdentityRule {
    type Err = String;

    fn from_str(s: &str) -> Result<IdentityRule, String> {
        match s {
            "matchRepository" => Ok(IdentityRule::MatchRepository),
            "matchRepoDigestOrExact" => Ok(IdentityRule::MatchRepoDigestOrExact),
            "matchExact" => Ok(IdentityRule::MatchExact),
            other => Err(format!(
                "unknown identity rule {other:?} (matchRepository, matchRepoDigestOrExact, matchExact)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn check(rule: IdentityRule, signed: &str, image: &str, expected: bool) {
        let image: Reference = image.parse().unwrap();
        assert_eq!(
            rule.accepts(signed, &image),
            expected,
            "{rule} {signed} vs {image}"
        );
    }

    #[test]
    fn rules_follow_containers_image() {
        let d = "sha256:8c60e41c50b8e88f4260816a551db9f5a409729368197a61cc08789a9f14ce8b";
        use IdentityRule::*;
        check(MatchRepository, "h:5/a", "h:5/a:v1", true);
        check(MatchRepository, "h:5/a:v2", "h:5/a:v1", true);
        check(MatchRepository, "h:5/b", "h:5/a:v1", false);
        check(MatchRepoDigestOrExact, "h:5/a:v1", "h:5/a:v1", true);
        check(MatchRepoDigestOrExact, "h:5/a", "h:5/a:v1", false);
        check(
            MatchRepoDigestOrExact,
            "h:5/a:v1",
            &format!("h:5/a@{d}"),
            true,
        );
        check(MatchRepoDigestOrExact, "h:5/a", &format!("h:5/a@{d}"), true);
        check(
            MatchRepoDigestOrExact,
            "h:5/b:v1",
            &format!("h:5/a@{d}"),
            false,
        );
        check(MatchExact, "h:5/a:v1", "h:5/a:v1", true);
        check(MatchExact, "h:5/a:v1", "h:5/a:v2", false);
        check(MatchExact, "h:5/a", "h:5/a:latest", false);
        check(MatchRepository, "not a reference", "h:5/a:v1", false);
        check(
            MatchRepository,
            "index.docker.io/library/busybox",
            "busybox",
            true,
        );
    }
}
