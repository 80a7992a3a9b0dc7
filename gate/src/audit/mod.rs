//! `signet audit`: list the images a host's container engines use — Docker Engine and podman
//! through their REST API on a unix socket (`rest.rs`), containerd through `ctr` (`ctr.rs`) —
//! and judge each by the digest it runs, with the same [`Judge`] the gate uses.
//!
//! The identity judged is the repository name the engine recorded with the image's registry
//! digest (Docker's and podman's `RepoDigests`, containerd's image name) and the digest is that
//! registry manifest digest. An image with no registry digest (built or imported locally) is
//! `unverifiable`, never a pass. Everything an engine says is bounded (bytes, entries, time)
//! and parsed strictly: an answer that does not parse is an error for that engine, not an
//! empty list.

mod ctr;
mod rest;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use signet_oci::{Digest, Reference};

use super::continuous::finding_codes;
use super::{one_line, GateError, Judge, Mode, Screening};

/// Most images (or containers) taken from one engine.
pub const MAX_ENTRIES: usize = 10_000;
/// Most bytes read from one engine answer (or `ctr`'s output).
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// One engine request (or `ctr` run) must finish within this.
pub const ENGINE_TIMEOUT: Duration = Duration::from_secs(30);

/// A container engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Docker Engine (its API on a unix socket).
    Docker,
    /// podman (its Docker-compatible API: `podman system service`).
    Podman,
    /// containerd (through `ctr`).
    Containerd,
}

impl EngineKind {
    /// `docker`, `podman` or `containerd`.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
            EngineKind::Containerd => "containerd",
        }
    }

    /// The engine's usual socket.
    pub fn default_socket(self) -> PathBuf {
        PathBuf::from(match self {
            EngineKind::Docker => "/var/run/docker.sock",
            EngineKind::Podman => "/run/podman/podman.sock",
            EngineKind::Containerd => "/run/containerd/containerd.sock",
        })
    }
}

/// Where to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSource {
    /// Which engine.
    pub kind: EngineKind,
    /// Its API socket.
    pub socket: PathBuf,
    /// containerd only: the namespace (`None`: every namespace).
    pub namespace: Option<String>,
}

/// Which images of an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The images of the engine's containers (running or not: a stopped container may start).
    Containers,
    /// Every image the engine stores.
    Stored,
}

/// One image an engine uses, as it recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineImage {
    /// The engine.
    pub engine: EngineKind,
    /// containerd's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The containers using it (names or IDs; empty for stored images nobody uses).
    pub containers: Vec<String>,
    /// The image as the engine names it (what the container was created from, or a tag).
    pub name: String,
    /// The engine's image ID (Docker, podman: the config digest), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The repository and registry manifest digest to judge, if the engine recorded one.
    pub reference: Option<Reference>,
}

/// The verdict on one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditVerdict {
    /// The policy allows it.
    Pass,
    /// The policy denies it in a mode that does not block (warn, audit).
    Warn,
    /// The policy denies it.
    Deny,
    /// It could not be checked (registry down, time-out).
    Unknown,
    /// It has no registry digest (built or imported locally): nothing to check it against.
    Unverifiable,
}

impl AuditVerdict {
    /// `pass`, `warn`, `deny`, `unknown` or `unverifiable`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditVerdict::Pass => "pass",
            AuditVerdict::Warn => "warn",
            AuditVerdict::Deny => "deny",
            AuditVerdict::Unknown => "unknown",
            AuditVerdict::Unverifiable => "unverifiable",
        }
    }
}

/// One judged image.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    /// The image as the engine recorded it.
    #[serde(flatten)]
    pub image: EngineImage,
    /// The digest judged.
    pub digest: Option<String>,
    /// The verdict.
    pub verdict: AuditVerdict,
    /// How a denial is applied.
    pub mode: Mode,
    /// The finding codes (`could-not-check`, `no-registry-digest` for the two non-verdicts).
    pub reasons: Vec<String>,
    /// Why, in one line.
    pub message: String,
}

/// An engine that could not be listed.
#[derive(Debug, Clone, Serialize)]
pub struct EngineFailure {
    /// The engine.
    pub engine: EngineKind,
    /// Its socket.
    pub socket: PathBuf,
    /// Why.
    pub error: String,
}

/// What `signet audit` found.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    /// Every image judged, in engine, namespace, name order.
    pub images: Vec<AuditRow>,
    /// Engines that could not be listed.
    pub failures: Vec<EngineFailure>,
    /// Whether every image passes and every engine was listed.
    pub all_pass: bool,
}

/// The images `source` uses (per `scope`), deduplicated by (namespace, name, reference).
pub async fn list_images(
    source: &EngineSource,
    scope: Scope,
) -> Result<Vec<EngineImage>, GateError> {
    match source.kind {
        EngineKind::Docker | EngineKind::Podman => {
            rest::list(source.kind, &source.socket, scope).await
        }
        EngineKind::Containerd => {
            ctr::list(&source.socket, source.namespace.as_deref(), scope).await
        }
    }
}

/// List every source and judge every image with `judge` (each distinct reference once, at most
/// `parallel` at a time, each within `judge_timeout`).
pub async fn audit<J: Judge>(
    judge: &J,
    sources: &[EngineSource],
    scope: Scope,
    parallel: usize,
    judge_timeout: Duration,
) -> AuditReport {
    use futures_util::StreamExt;

    let mut images = Vec::new();
    let mut failures = Vec::new();
    for source in sources {
        match list_images(source, scope).await {
            Ok(found) => images.extend(found),
            Err(e) => failures.push(EngineFailure {
                engine: source.kind,
                socket: source.socket.clone(),
                error: one_line(&e.to_string(), 1000),
            }),
        }
    }
    let distinct: BTreeMap<String, Reference> = images
        .iter()
        .filter_map(|i| i.reference.clone())
        .map(|r| (r.to_string(), r))
        .collect();
    let verdicts: BTreeMap<String, Judged> =
        futures_util::stream::iter(distinct)
            .map(|(key, reference)| async move {
                (key, judge_one(judge, reference, judge_timeout).await)
            })
            .buffer_unordered(parallel.max(1))
            .collect()
            .await;
    let mut rows: Vec<AuditRow> = images
        .into_iter()
        .map(|image| {
            let judged = match &image.reference {
                Some(r) => verdicts
                    .get(&r.to_string())
                    .cloned()
                    .unwrap_or_else(|| Judged::unknown("not judged".into())),
                None => Judged {
                    verdict: AuditVerdict::Unverifiable,
                    mode: Mode::Enforce,
                    reasons: vec!["no-registry-digest".into()],
                    message: "no registry digest (built or imported locally): cannot be verified"
                        .into(),
                },
            };
            AuditRow {
                digest: image
                    .reference
                    .as_ref()
                    .and_then(|r| r.digest().map(ToString::to_string)),
                image,
                verdict: judged.verdict,
                mode: judged.mode,
                reasons: judged.reasons,
                message: judged.message,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.image.engine, &a.image.namespace, &a.image.name).cmp(&(
            b.image.engine,
            &b.image.namespace,
            &b.image.name,
        ))
    });
    let all_pass = failures.is_empty() && rows.iter().all(|r| r.verdict == AuditVerdict::Pass);
    AuditReport {
        images: rows,
        failures,
        all_pass,
    }
}

#[derive(Debug, Clone)]
struct Judged {
    verdict: AuditVerdict,
    mode: Mode,
    reasons: Vec<String>,
    message: String,
}

impl Judged {
    fn unknown(why: String) -> Judged {
        Judged {
            verdict: AuditVerdict::Unknown,
            mode: Mode::Enforce,
            reasons: vec!["could-not-check".into()],
            message: one_line(&format!("could not check: {why}"), 1000),
        }
    }
}

async fn judge_one<J: Judge>(judge: &J, reference: Reference, timeout: Duration) -> Judged {
    let Some(digest) = reference.digest().cloned() else {
        return Judged::unknown("no digest".into());
    };
    if let Screening::Refuse {
        mode,
        message,
        report,
    } = judge.screen(&reference)
    {
        return Judged {
            verdict: if mode == Mode::Enforce {
                AuditVerdict::Deny
            } else {
                AuditVerdict::Warn
            },
            mode,
            reasons: finding_codes(&report),
            message: one_line(&message, 1000),
        };
    }
    match tokio::time::timeout(timeout, judge.judge(reference, Some(digest.clone()))).await {
        Ok(Ok(j)) if j.digest != digest => {
            Judged::unknown(format!("the judge answered about {}", j.digest))
        }
        Ok(Ok(j)) => Judged {
            verdict: match (j.allowed, j.mode) {
                (true, _) => AuditVerdict::Pass,
                (false, Mode::Enforce) => AuditVerdict::Deny,
                (false, _) => AuditVerdict::Warn,
            },
            mode: j.mode,
            reasons: finding_codes(&j.report),
            message: one_line(&j.message, 1000),
        },
        Ok(Err(e)) => Judged::unknown(e.to_string()),
        Err(_) => Judged::unknown(format!("timed out after {} s", timeout.as_secs())),
    }
}

/// `repo@digest` (as Docker and podman record `RepoDigests`, and containerd names images) as
/// a reference: a repository without a tag at a valid digest, or `None`.
fn registry_reference(repo_digest: &str) -> Option<Reference> {
    let (name, digest) = repo_digest.split_once('@')?;
    let digest: Digest = digest.parse().ok()?;
    let name = Reference::parse_as_written(name).ok()?;
    if name.tag().is_some() || name.digest().is_some() {
        return None;
    }
    Some(name.with_digest(digest))
}

/// The repository of an image name as given to an engine (`host/repo:tag`, `repo@digest`),
/// normalised (`docker.io/library/…`), or `None` for an image ID.
fn repository_of(name: &str) -> Option<String> {
    if name.starts_with("sha256:")
        || (name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return None;
    }
    let reference: Reference = name.parse().ok()?;
    Some(reference.name())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn registry_references_are_repository_at_digest_only() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = registry_reference(&format!("127.0.0.1:5000/team/app@{d}")).unwrap();
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/team/app@{d}"));
        let hub = registry_reference(&format!("nginx@{d}")).unwrap();
        assert_eq!(hub.name(), "docker.io/library/nginx");
        for bad in [
            format!("127.0.0.1:5000/app:v1@{d}"),
            "127.0.0.1:5000/app@sha256:12".to_string(),
            "127.0.0.1:5000/app".to_string(),
            format!("<none>@{d}"),
        ] {
            assert!(registry_reference(&bad).is_none(), "{bad}");
        }
        assert_eq!(
            repository_of("127.0.0.1:5000/app:v1").unwrap(),
            "127.0.0.1:5000/app"
        );
        assert_eq!(
            repository_of("busybox").unwrap(),
            "docker.io/library/busybox"
        );
        assert!(repository_of(&d).is_none());
        assert!(repository_of(&"ab".repeat(32)).is_none());
    }
}
