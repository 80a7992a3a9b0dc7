//! Signed-identity rules: whether a signature's `docker-reference` is acceptable for the image,
//! following containers/image `signature/policy_reference_match.go` exactly.

use serde::Serialize;
use signet_oci::Reference;

/// A reference as written in a signature or policy, remembering whether it was name-only (docker's
/// parser adds `:latest`, but containers/image treats name-only signature identities specially).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WrittenRef {
    parsed: Reference,
    name_only: bool,
}

impl WrittenRef {
    pub(crate) fn parse(text: &str) -> Result<WrittenRef, String> {
        let parsed: Reference = text.parse().map_err(|e: signet_oci::Error| e.to_string())?;
        let last = text.rsplit('/').next().unwrap_or(text);
        let name_only = !text.contains('@') && !last.contains(':');
        Ok(WrittenRef { parsed, name_only })
    }

    fn name(&self) -> String {
        self.parsed.name()
    }

    /// docker's `String()`: name plus whatever tag/digest was written.
    fn string(&self) -> String {
        if self.name_only {
            self.parsed.name()
        } else {
            self.parsed.to_string()
        }
    }
}

/// A validated identity rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum IdentityRule {
    /// Same repository.
    MatchRepository,
    /// Same reference when the image is tagged, same repository when it is by digest.
    MatchRepoDigestOrExact,
    /// Same reference; both must carry a tag or digest.
    MatchExact,
    /// The signature names exactly `reference`.
    ExactReference {
        /// Normalised reference (has a tag or digest).
        reference: String,
    },
    /// The signature names `repository`.
    ExactRepository {
        /// Normalised repository name.
        repository: String,
    },
    /// Rewrite `prefix` to `signed_prefix` in the image name, then `matchRepoDigestOrExact`.
    RemapIdentity {
        /// Prefix of the image name.
        prefix: String,
        /// Replacement.
        signed_prefix: String,
    },
}

impl IdentityRule {
    /// Validate a document identity.
    pub(crate) fn from_document(doc: &crate::document::Identity) -> Result<IdentityRule, String> {
        use crate::document::Identity as D;
        Ok(match doc {
            D::MatchRepository => IdentityRule::MatchRepository,
            D::MatchRepoDigestOrExact => IdentityRule::MatchRepoDigestOrExact,
            D::MatchExact => IdentityRule::MatchExact,
            D::ExactReference { reference } => {
                let r = WrittenRef::parse(reference)
                    .map_err(|e| format!("exactReference {reference:?}: {e}"))?;
                if r.name_only {
                    return Err(format!(
                        "exactReference {reference:?} has neither a tag nor a digest"
                    ));
                }
                IdentityRule::ExactReference {
                    reference: r.string(),
                }
            }
            D::ExactRepository { repository } => {
                let r = WrittenRef::parse(repository)
                    .map_err(|e| format!("exactRepository {repository:?}: {e}"))?;
                IdentityRule::ExactRepository {
                    repository: r.name(),
                }
            }
            D::RemapIdentity {
                prefix,
                signed_prefix,
            } => {
                validate_remap_prefix(prefix)?;
                validate_remap_prefix(signed_prefix)?;
                IdentityRule::RemapIdentity {
                    prefix: prefix.clone(),
                    signed_prefix: signed_prefix.clone(),
                }
            }
        })
    }

    /// Short description for explanations.
    pub fn describe(&self) -> String {
        match self {
            IdentityRule::MatchRepository => "matchRepository".into(),
            IdentityRule::MatchRepoDigestOrExact => "matchRepoDigestOrExact".into(),
            IdentityRule::MatchExact => "matchExact".into(),
            IdentityRule::ExactReference { reference } => format!("exactReference {reference}"),
            IdentityRule::ExactRepository { repository } => {
                format!("exactRepository {repository}")
            }
            IdentityRule::RemapIdentity {
                prefix,
                signed_prefix,
            } => format!("remapIdentity {prefix} -> {signed_prefix}"),
        }
    }

    /// Whether a signature claiming `signed` is acceptable for the image `image` (as requested,
    /// normalised; it always has a tag or a digest).
    pub fn matches(&self, image: &Reference, signed: &str) -> bool {
        let Ok(signature) = WrittenRef::parse(signed) else {
            return false;
        };
        match self {
            IdentityRule::MatchRepository => signature.name() == image.name(),
            IdentityRule::MatchRepoDigestOrExact => repo_digest_or_exact(image, &signature),
            IdentityRule::MatchExact => {
                !signature.name_only && signature.string() == image.to_string()
            }
            IdentityRule::ExactReference { reference } => {
                !signature.name_only && signature.string() == *reference
            }
            IdentityRule::ExactRepository { repository } => signature.name() == *repository,
            IdentityRule::RemapIdentity {
                prefix,
                signed_prefix,
            } => match remap(image, prefix, signed_prefix) {
                Some(remapped) => repo_digest_or_exact(&remapped, &signature),
                None => false,
            },
        }
    }
}

fn repo_digest_or_exact(image: &Reference, signature: &WrittenRef) -> bool {
    if signature.name_only {
        return false;
    }
    if image.tag().is_some() {
        // Includes an image with both a tag and a digest, as containers/image does.
        signature.string() == image.to_string()
    } else {
        signature.name() == image.name()
    }
}

/// containers/image `refMatchesPrefix` + `remapReferencePrefix`: rewrite only when the image name
/// equals the prefix or continues it at a `/`; the result must be a canonical reference.
fn remap(image: &Reference, prefix: &str, signed_prefix: &str) -> Option<Reference> {
    let name = image.name();
    let matches = match name.len().cmp(&prefix.len()) {
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => name == prefix,
        std::cmp::Ordering::Greater => {
            name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'/')
        }
    };
    if !matches {
        return Some(image.clone());
    }
    let text = image.to_string().replacen(prefix, signed_prefix, 1);
    let parsed: Reference = text.parse().ok()?;
    // docker's ParseNamed refuses names that are not already canonical (`busybox` for
    // `docker.io/library/busybox`); such a rewrite matches nothing.
    (parsed.to_string() == text).then_some(parsed)
}

/// containers/image `validateIdentityRemappingPrefix`: a `host[:port]` or a name starting with one.
fn validate_remap_prefix(s: &str) -> Result<(), String> {
    let bad = || format!("remapIdentity prefix {s:?} is not a host[:port] or host[:port]/path");
    if s.is_empty() || s.contains(['@', '*']) {
        return Err(bad());
    }
    let (host, path) = match s.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if !(host.contains(['.', ':']) || host == "localhost") {
        return Err(bad());
    }
    let probe = match path {
        Some(p) => format!("{host}/{p}"),
        None => format!("{host}/x"),
    };
    let last = probe.rsplit('/').next().unwrap_or_default();
    if last.contains(':') {
        return Err(bad());
    }
    probe.parse::<Reference>().map(|_| ()).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::document::Identity as D;

    fn rule(d: D) -> IdentityRule {
        IdentityRule::from_document(&d).unwrap()
    }

    fn check(rule: &IdentityRule, image: &str, signed: &str, expected: bool) {
        let image: Reference = image.parse().unwrap();
        assert_eq!(
            rule.matches(&image, signed),
            expected,
            "{} image {image} signed {signed}",
            rule.describe()
        );
    }

    const APP: &str = "127.0.0.1:5000/test/app";
    const D8C: &str = "sha256:8c60e41c50b8e88f4260816a551db9f5a409729368197a61cc08789a9f14ce8b";

    #[test]
    fn skopeo_fixture_identities() {
        let exact = rule(D::MatchRepoDigestOrExact);
        let signed = format!("{APP}:v1");
        check(&exact, &format!("{APP}:v1"), &signed, true);
        check(&exact, &format!("{APP}@{D8C}"), &signed, true);
        check(&exact, &format!("{APP}:v2"), &signed, false);
        check(&exact, "127.0.0.1:5000/test/moved:v1", &signed, false);
        check(
            &rule(D::MatchRepository),
            "127.0.0.1:5000/test/moved:v1",
            &signed,
            false,
        );
        let remap = rule(D::RemapIdentity {
            prefix: "127.0.0.1:5000/test/moved".into(),
            signed_prefix: APP.into(),
        });
        check(&remap, "127.0.0.1:5000/test/moved:v1", &signed, true);
        check(&remap, "127.0.0.1:5000/test/moved:v2", &signed, false);
        // Prefix must end at a component boundary.
        check(&remap, "127.0.0.1:5000/test/movedx:v1", &signed, false);
        // Images outside the prefix are compared unchanged.
        check(&remap, &format!("{APP}:v1"), &signed, true);
    }

    #[test]
    fn cosign_real_identities() {
        let single = "192.168.64.2:5000/cosign-signed-single-sample";
        let repo = rule(D::MatchRepository);
        check(&repo, single, single, true);
        check(&repo, "testing/manifest:notlatest", single, false);
        // The signed identity has no tag: matchExact never matches it.
        check(&rule(D::MatchExact), single, single, false);
        check(&rule(D::MatchRepoDigestOrExact), single, single, false);
        let exact_ref = rule(D::ExactReference {
            reference: "this/does-not:match".into(),
        });
        check(&exact_ref, single, single, false);
        let tagged = "192.168.64.2:5000/skopeo-signed:tag";
        check(&rule(D::MatchExact), tagged, tagged, true);
        check(
            &rule(D::MatchExact),
            "192.168.64.2:5000/skopeo-signed:othertag",
            tagged,
            false,
        );
    }

    #[test]
    fn exact_rules_ignore_the_image() {
        let r = rule(D::ExactReference {
            reference: "busybox:1".into(),
        });
        check(&r, "reg.io/other:9", "docker.io/library/busybox:1", true);
        check(&r, "reg.io/other:9", "busybox:1", true);
        check(&r, "reg.io/other:9", "busybox", false);
        let r = rule(D::ExactRepository {
            repository: "busybox".into(),
        });
        check(&r, "reg.io/other:9", "docker.io/library/busybox:7", true);
        check(&r, "reg.io/other:9", "docker.io/library/busybox", true);
        check(&r, "reg.io/other:9", "quay.io/busybox:7", false);
    }

    #[test]
    fn invalid_rules() {
        for d in [
            D::ExactReference {
                reference: "busybox".into(),
            },
            D::ExactRepository {
                repository: "Not Valid".into(),
            },
            D::RemapIdentity {
                prefix: "busybox".into(),
                signed_prefix: "reg.io/x".into(),
            },
            D::RemapIdentity {
                prefix: "reg.io/x:tag".into(),
                signed_prefix: "reg.io/x".into(),
            },
        ] {
            assert!(IdentityRule::from_document(&d).is_err(), "{d:?}");
        }
        assert!(IdentityRule::from_document(&D::RemapIdentity {
            prefix: "reg.io".into(),
            signed_prefix: "mirror.io:5000/ns".into()
        })
        .is_ok());
    }
}
