//! Identity rules for `signet verify --identity-rule`: the policy crate's rules (containers/image
//! `signedIdentity` semantics), named on the command line.

pub use signet_policy::IdentityRule;

/// Parse an identity rule given by name: `matchRepository`, `matchRepoDigestOrExact`, `matchExact`
/// (the rules that need no argument; the others live in policy files).
pub fn parse_identity_rule(name: &str) -> Result<IdentityRule, String> {
    match name {
        "matchRepository" => Ok(IdentityRule::MatchRepository),
        "matchRepoDigestOrExact" => Ok(IdentityRule::MatchRepoDigestOrExact),
        "matchExact" => Ok(IdentityRule::MatchExact),
        other => Err(format!(
            "unknown identity rule {other:?} (matchRepository, matchRepoDigestOrExact, matchExact; others need a policy file)"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use signet_oci::Reference;

    fn check(rule: &str, signed: &str, image: &str, expected: bool) {
        let rule = parse_identity_rule(rule).unwrap();
        let image: Reference = image.parse().unwrap();
        assert_eq!(
            rule.matches(&image, signed),
            expected,
            "{rule:?} {signed} vs {image}"
        );
    }

    #[test]
    fn named_rules_follow_containers_image() {
        let d = "sha256:8c60e41c50b8e88f4260816a551db9f5a409729368197a61cc08789a9f14ce8b";
        check("matchRepository", "h:5/a", "h:5/a:v1", true);
        check("matchRepository", "h:5/b", "h:5/a:v1", false);
        check("matchRepoDigestOrExact", "h:5/a:v1", "h:5/a:v1", true);
        check("matchRepoDigestOrExact", "h:5/a", "h:5/a:v1", false);
        // containers/image refuses a name-only signed identity here even for a digest reference.
        check(
            "matchRepoDigestOrExact",
            "h:5/a",
            &format!("h:5/a@{d}"),
            false,
        );
        check(
            "matchRepoDigestOrExact",
            "h:5/a:v9",
            &format!("h:5/a@{d}"),
            true,
        );
        check("matchExact", "h:5/a:v1", "h:5/a:v1", true);
        check("matchExact", "h:5/a", "h:5/a:latest", false);
        check(
            "matchRepository",
            "index.docker.io/library/busybox",
            "busybox",
            true,
        );
        assert!(parse_identity_rule("matchSomething").is_err());
    }
}
