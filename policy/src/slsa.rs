//! The `slsa` shortcut over SLSA provenance v0.2 (`https://slsa.dev/provenance/v0.2`) and v1
//! (`https://slsa.dev/provenance/v1`): builder id, build type, source repository and ref.
//!
//! Where each fact is read:
//! - v0.2: `builder.id`, `buildType`, the source from `invocation.configSource.uri`
//!   (`git+https://github.com/o/r@refs/heads/main`);
//! - v1: `runDetails.builder.id`, `buildDefinition.buildType`, the source from
//!   `buildDefinition.externalParameters.workflow.{repository,ref}` (GitHub's generators), else
//!   the first `git+` URI among `buildDefinition.resolvedDependencies`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::vuln::Failure;

/// SLSA provenance v0.2.
pub const SLSA_V02: &str = "https://slsa.dev/provenance/v0.2";
/// SLSA provenance v1.
pub const SLSA_V1: &str = "https://slsa.dev/provenance/v1";

/// `slsa:` as written; every field given must match exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SlsaSpec {
    /// The builder id (`https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.0.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder_id: Option<String>,
    /// The build type URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_type: Option<String>,
    /// The source repository (`https://github.com/org/repo`; a `git+` prefix and a `.git`
    /// suffix are ignored on both sides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_repository: Option<String>,
    /// The source ref (`refs/heads/main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<String>,
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn normalize_repo(repo: &str) -> &str {
    let r = repo.strip_prefix("git+").unwrap_or(repo);
    let r = r.strip_suffix('/').unwrap_or(r);
    r.strip_suffix(".git").unwrap_or(r)
}

/// `git+https://host/o/r@refs/heads/main` → (`https://host/o/r`, `refs/heads/main`).
fn split_git_uri(uri: &str) -> (String, Option<String>) {
    let u = uri.strip_prefix("git+").unwrap_or(uri);
    // The ref follows the last `@` after the host part (a user@host would come before it).
    let after_scheme = u.find("://").map(|i| i + 3).unwrap_or(0);
    match u[after_scheme..].rfind('@') {
        Some(i) => {
            let at = after_scheme + i;
            (u[..at].to_string(), Some(u[at + 1..].to_string()))
        }
        None => (u.to_string(), None),
    }
}

struct Facts {
    builder: Option<String>,
    build_type: Option<String>,
    repository: Option<String>,
    git_ref: Option<String>,
}

fn facts(predicate_type: &str, p: &Value) -> Facts {
    if predicate_type == SLSA_V1 {
        let def = p.get("buildDefinition");
        let workflow = def
            .and_then(|d| d.get("externalParameters"))
            .and_then(|e| e.get("workflow"));
        let (mut repository, mut git_ref) = (
            workflow
                .and_then(|w| at(w, &["repository"]))
                .map(str::to_string),
            workflow.and_then(|w| at(w, &["ref"])).map(str::to_string),
        );
        if repository.is_none() {
            let deps = def
                .and_then(|d| d.get("resolvedDependencies"))
                .and_then(Value::as_array);
            if let Some(uri) = deps.and_then(|list| {
                list.iter()
                    .filter_map(|d| at(d, &["uri"]))
                    .find(|u| u.starts_with("git+"))
            }) {
                let (r, g) = split_git_uri(uri);
                repository = Some(r);
                git_ref = git_ref.or(g);
            }
        }
        Facts {
            builder: at(p, &["runDetails", "builder", "id"]).map(str::to_string),
            build_type: at(p, &["buildDefinition", "buildType"]).map(str::to_string),
            repository,
            git_ref,
        }
    } else {
        let (repository, git_ref) = match at(p, &["invocation", "configSource", "uri"]) {
            Some(uri) => {
                let (r, g) = split_git_uri(uri);
                (Some(r), g)
            }
            None => (None, None),
        };
        Facts {
            builder: at(p, &["builder", "id"]).map(str::to_string),
            build_type: at(p, &["buildType"]).map(str::to_string),
            repository,
            git_ref,
        }
    }
}

/// Judge one verified provenance predicate of type `predicate_type` (v0.2 or v1).
pub(crate) fn check(spec: &SlsaSpec, predicate_type: &str, predicate: &Value) -> Vec<Failure> {
    let f = facts(predicate_type, predicate);
    let show = |v: &Option<String>| match v {
        Some(s) => format!("{:?}", s.chars().take(300).collect::<String>()),
        None => "none".to_string(),
    };
    let mut out = Vec::new();
    let mut compare = |code: &'static str,
                       what: &str,
                       want: &Option<String>,
                       have: &Option<String>,
                       eq: &dyn Fn(&str, &str) -> bool| {
        if let Some(want) = want {
            if !have.as_deref().is_some_and(|h| eq(h, want)) {
                out.push((
                    code,
                    format!("provenance {what} is {}, not {want:?}", show(have)),
                ));
            }
        }
    };
    let exact = |a: &str, b: &str| a == b;
    compare(
        "slsa-builder-mismatch",
        "builder id",
        &spec.builder_id,
        &f.builder,
        &exact,
    );
    compare(
        "slsa-build-type-mismatch",
        "build type",
        &spec.build_type,
        &f.build_type,
        &exact,
    );
    compare(
        "slsa-source-mismatch",
        "source repository",
        &spec.source_repository,
        &f.repository,
        &|a, b| normalize_repo(a) == normalize_repo(b),
    );
    compare(
        "slsa-ref-mismatch",
        "source ref",
        &spec.source_ref,
        &f.git_ref,
        &exact,
    );
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn real(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/attestations")
            .join(name);
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn facts_of_real_v02_provenance_from_github_actions() {
        let f = facts(SLSA_V02, &real("slsa-v0.2-npm-slsa-provenance-0.0.7.json"));
        assert_eq!(
            f.builder.as_deref(),
            Some("https://github.com/npm/slsa-provenance@0.0.1")
        );
        assert_eq!(
            f.build_type.as_deref(),
            Some("https://github.com/npm/slsa-provenance/gha@v0")
        );
        assert_eq!(
            f.repository.as_deref(),
            Some("https://github.com/github/slsa-provenance")
        );
        assert_eq!(f.git_ref.as_deref(), Some("refs/heads/demo"));
    }

    #[test]
    fn facts_of_real_v1_provenance_from_github_actions() {
        let p = real("slsa-v1-npm-sigstore-2.0.0.json");
        let f = facts(SLSA_V1, &p);
        assert_eq!(
            f.builder.as_deref(),
            Some("https://github.com/actions/runner/github-hosted")
        );
        assert_eq!(
            f.build_type.as_deref(),
            Some("https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1")
        );
        assert_eq!(
            f.repository.as_deref(),
            Some("https://github.com/sigstore/sigstore-js")
        );
        assert_eq!(f.git_ref.as_deref(), Some("refs/heads/main"));

        // Without the workflow parameters the source comes from the resolved git dependency.
        let mut bare = p;
        bare["buildDefinition"]["externalParameters"] = serde_json::json!({});
        let f = facts(SLSA_V1, &bare);
        assert_eq!(
            f.repository.as_deref(),
            Some("https://github.com/sigstore/sigstore-js")
        );
        assert_eq!(f.git_ref.as_deref(), Some("refs/heads/main"));
    }

    #[test]
    fn git_uris_split_at_the_last_at_after_the_host() {
        assert_eq!(
            split_git_uri("git+https://github.com/o/r@refs/heads/main"),
            (
                "https://github.com/o/r".to_string(),
                Some("refs/heads/main".to_string())
            )
        );
    }
}
