//! OCI 1.1 referrers: the artifacts (signatures, attestations, Sigstore bundles) that name an
//! image manifest as their `subject`.
//!
//! Reading ([`ImageStore::referrers`]):
//! - a registry is asked through the referrers API (`GET /v2/<name>/referrers/<digest>`, with the
//!   `artifactType` filter, `Link` pagination, bounded pages and count, each descriptor
//!   validated). A registry without the API answers 404 (Debian's distribution 2.8 does); then
//!   the referrers tag schema is read: the image index tagged `sha256-<hex>` lists them. The
//!   client remembers the 404 per registry for an hour (`registry/referrers.rs`), so a
//!   long-lived client (the gate's) reads the tag at once meanwhile.
//! - an OCI layout lists referrers in `index.json` as untagged manifests whose `subject` names the
//!   digest (the image-layout spec's way); each listed manifest is read (bounded, digest-checked)
//!   to see its subject.
//! - a docker archive has none.
//!
//! The answer is a list of *descriptors*: nothing they say is trusted until the caller fetches
//! each manifest by its digest ([`ImageStore::manifest`], which checks it) and verifies what it
//! carries.
//!
//! Writing ([`ImageStore::push_referrer`]): the artifact manifest (which must name the subject) is
//! stored by digest. A registry that implements the API says so with an `OCI-Subject` header in
//! the answer; otherwise its descriptor is merged into the `sha256-<hex>` index exactly like a
//! signature into a `.sig` manifest: grow-only, remembering every descriptor seen, written,
//! re-read to confirm (ARCHITECTURE.md, "Concurrent signers"). In a layout the manifest is
//! listed in `index.json` (under the layout's lock).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::manifest::{OCI_INDEX, OCI_MANIFEST};
use crate::store::ImageStore;
use crate::{Descriptor, Digest, Error, ImageIndex, Manifest};

/// Most referrers accepted for one subject (all pages together).
pub const MAX_REFERRERS: usize = 1000;
/// Most read-merge-write rounds when adding to a referrers tag index.
const MAX_WRITE_ROUNDS: u32 = 12;
/// Pause before the confirming re-read of a referrers tag index we wrote.
const CONFIRM_PAUSE: Duration = Duration::from_millis(200);

/// Where a list of referrers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReferrersSource {
    /// The registry's referrers API.
    Api,
    /// The `sha256-<hex>` tag index (the registry lacks the API).
    TagSchema,
    /// An OCI layout's `index.json`.
    Layout,
    /// A store that cannot hold referrers (a docker archive).
    None,
}

/// The referrers of one subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Referrers {
    /// The subject's digest.
    pub subject: Digest,
    /// Their descriptors (validated, unverified: fetch each by digest before believing it).
    pub descriptors: Vec<Descriptor>,
    /// Where the list came from.
    pub source: ReferrersSource,
}

/// The tag of the referrers tag schema for `subject`: `sha256-<hex>`.
pub fn referrers_tag(subject: &Digest) -> String {
    subject.tag_form()
}

/// A descriptor's (or manifest's) `artifactType`, if it states one.
pub fn artifact_type(descriptor: &Descriptor) -> Option<&str> {
    descriptor.extra.get("artifactType").and_then(Value::as_str)
}

/// The `subject` digest a manifest names, if any (`Err` when it has a malformed `subject`).
pub fn subject_of(manifest: &Manifest) -> Result<Option<Digest>, Error> {
    let extra = match manifest {
        Manifest::Image(m) => &m.extra,
        Manifest::Index(i) => &i.extra,
    };
    let Some(subject) = extra.get("subject") else {
        return Ok(None);
    };
    let descriptor: Descriptor =
        serde_json::from_value(subject.clone()).map_err(|e| Error::InvalidManifest {
            what: "subject descriptor".into(),
            reason: e.to_string(),
        })?;
    Ok(Some(descriptor.digest))
}

/// Check a referrer descriptor from outside: it names a manifest (OCI image manifest or index)
/// of at most `max_manifest_bytes`, and its `artifactType`, when present, is a string.
pub fn validate_referrer(
    descriptor: &Descriptor,
    max_manifest_bytes: u64,
    what: &str,
) -> Result<(), Error> {
    let invalid = |reason: String| Error::InvalidManifest {
        what: what.to_string(),
        reason,
    };
    if !matches!(descriptor.media_type.as_str(), OCI_MANIFEST | OCI_INDEX) {
        return Err(invalid(format!(
            "referrer {} has media type {:?}, not an OCI manifest",
            descriptor.digest, descriptor.media_type
        )));
    }
    if descriptor.size > max_manifest_bytes {
        return Err(Error::LimitExceeded {
            what: format!("{what}: referrer {}", descriptor.digest),
            limit: format!("{max_manifest_bytes} bytes"),
        });
    }
    if descriptor
        .extra
        .get("artifactType")
        .is_some_and(|t| !t.is_string())
    {
        return Err(invalid(format!(
            "referrer {} has a non-string artifactType",
            descriptor.digest
        )));
    }
    Ok(())
}

/// The descriptor under which a referrer manifest is listed: its digest, size and media type,
/// its `artifactType` (the manifest's own, else its config's media type, as the spec says) and
/// its annotations.
pub fn referrer_descriptor(bytes: &[u8], media_type: &str) -> Result<Descriptor, Error> {
    let manifest = Manifest::parse(bytes, Some(media_type), "referrer manifest")?;
    let mut descriptor = Descriptor::of(media_type, bytes);
    let (artifact, annotations) = match &manifest {
        Manifest::Image(m) => (
            m.extra
                .get("artifactType")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| Some(m.config.media_type.clone())),
            m.annotations.clone(),
        ),
        Manifest::Index(i) => (
            i.extra
                .get("artifactType")
                .and_then(Value::as_str)
                .map(str::to_string),
            i.annotations.clone(),
        ),
    };
    if let Some(artifact) = artifact {
        descriptor
            .extra
            .insert("artifactType".into(), Value::String(artifact));
    }
    descriptor.annotations = annotations;
    Ok(descriptor)
}

fn max_manifest_bytes(store: &ImageStore) -> u64 {
    match store {
        ImageStore::Registry { client, .. } => client.options().max_manifest_bytes,
        _ => crate::manifest::DEFAULT_MAX_MANIFEST_BYTES,
    }
}

fn wanted(descriptor: &Descriptor, artifact: Option<&str>) -> bool {
    artifact.is_none_or(|t| artifact_type(descriptor) == Some(t))
}

impl ImageStore {
    /// The referrers of `subject` next to the named image (same repository or layout), only
    /// those of `artifact` type when given, at most [`MAX_REFERRERS`]. See the module docs for
    /// where each kind of store keeps them. An absent tag index means no referrers.
    pub async fn referrers(
        &self,
        subject: &Digest,
        artifact: Option<&str>,
    ) -> Result<Referrers, Error> {
        let max_bytes = max_manifest_bytes(self);
        let (descriptors, source) = match self {
            ImageStore::Registry { client, reference } => {
                match client
                    .get_referrers(reference, subject, artifact, MAX_REFERRERS)
                    .await?
                {
                    Some(found) => (found, ReferrersSource::Api),
                    None => (
                        self.tag_schema_referrers(subject, artifact, max_bytes)
                            .await?,
                        ReferrersSource::TagSchema,
                    ),
                }
            }
            ImageStore::Layout { layout, .. } => {
                let index = layout.index()?;
                let mut found = Vec::new();
                for entry in index.manifests.iter().filter(|d| {
                    matches!(d.media_type.as_str(), OCI_MANIFEST | OCI_INDEX)
                        && d.annotation(crate::manifest::REF_NAME_ANNOTATION).is_none()
                        && wanted(d, artifact)
                }) {
                    if found.len() >= MAX_REFERRERS {
                        return Err(Error::LimitExceeded {
                            what: format!("referrers of {subject} in {}", self.display_name()),
                            limit: format!("{MAX_REFERRERS} referrers"),
                        });
                    }
                    let fetched = layout.read_manifest(entry, max_bytes)?;
                    if subject_of(&fetched.manifest)?.as_ref() == Some(subject) {
                        found.push(entry.clone());
                    }
                }
                (found, ReferrersSource::Layout)
            }
            ImageStore::Archive(_) => (Vec::new(), ReferrersSource::None),
        };
        Ok(Referrers {
            subject: subject.clone(),
            descriptors,
            source,
        })
    }

    /// The descriptors the referrers tag index of `subject` lists (none when there is no tag).
    async fn tag_schema_referrers(
        &self,
        subject: &Digest,
        artifact: Option<&str>,
        max_bytes: u64,
    ) -> Result<Vec<Descriptor>, Error> {
        let Some(index) = self.referrers_index(subject).await? else {
            return Ok(Vec::new());
        };
        let what = format!("referrers tag {}", referrers_tag(subject));
        if index.manifests.len() > MAX_REFERRERS {
            return Err(Error::LimitExceeded {
                what,
                limit: format!("{MAX_REFERRERS} referrers"),
            });
        }
        let mut found = Vec::new();
        for descriptor in index.manifests {
            validate_referrer(&descriptor, max_bytes, &what)?;
            if wanted(&descriptor, artifact) {
                found.push(descriptor);
            }
        }
        Ok(found)
    }

    /// The image index tagged `sha256-<hex>` for `subject`, if the tag exists.
    async fn referrers_index(&self, subject: &Digest) -> Result<Option<ImageIndex>, Error> {
        let tag = referrers_tag(subject);
        match self.manifest_by_tag(&tag).await? {
            None => Ok(None),
            Some(fetched) => match fetched.manifest {
                Manifest::Index(index) => Ok(Some(index)),
                Manifest::Image(_) => Err(Error::InvalidManifest {
                    what: format!("referrers tag {tag}"),
                    reason: "is an image manifest, not an index".into(),
                }),
            },
        }
    }

    /// Store the referrer manifest `bytes` (of `media_type`, OCI manifest or index), whose
    /// `subject` must be `subject`, so that [`ImageStore::referrers`] lists it: by digest in a
    /// registry (plus the `sha256-<hex>` tag index when the registry does not index it itself),
    /// listed in `index.json` in a layout. Returns the descriptor it is listed under. Any blobs
    /// it names must already be stored.
    pub async fn push_referrer(
        &self,
        subject: &Digest,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Descriptor, Error> {
        let descriptor = referrer_descriptor(bytes, media_type)?;
        let manifest = Manifest::parse(bytes, Some(media_type), "referrer manifest")?;
        if subject_of(&manifest)?.as_ref() != Some(subject) {
            return Err(Error::InvalidManifest {
                what: format!("referrer manifest {}", descriptor.digest),
                reason: format!("its subject is not {subject}"),
            });
        }
        validate_referrer(&descriptor, max_manifest_bytes(self), "referrer manifest")?;
        match self {
            ImageStore::Registry { client, reference } => {
                let target = reference.with_digest(descriptor.digest.clone());
                let (_, indexed_under) = client
                    .put_manifest_answer(&target, bytes, media_type)
                    .await?;
                // The spec: a registry that processed the subject says so; without the header
                // the client maintains the tag index itself.
                if indexed_under.as_deref() != Some(subject.to_string().as_str()) {
                    self.merge_into_referrers_tag(subject, &descriptor).await?;
                }
            }
            ImageStore::Layout { layout, .. } => {
                layout.write_blob(bytes)?;
                layout.add_manifest(&descriptor)?;
            }
            ImageStore::Archive(_) => {
                return Err(Error::Unsupported(format!(
                    "{} is read-only",
                    self.display_name()
                )))
            }
        }
        Ok(descriptor)
    }

    /// Add `ours` to the `sha256-<hex>` index of `subject`, never dropping a descriptor seen in
    /// any read (the `.sig` protocol: read, merge the seen set, write, re-read to confirm).
    async fn merge_into_referrers_tag(
        &self,
        subject: &Digest,
        ours: &Descriptor,
    ) -> Result<(), Error> {
        let tag = referrers_tag(subject);
        let mut seen: BTreeMap<Digest, Descriptor> = BTreeMap::new();
        let mut wrote = false;
        for round in 0..MAX_WRITE_ROUNDS {
            let current = self.referrers_index(subject).await?;
            let listed: Vec<Descriptor> = current
                .as_ref()
                .map(|i| i.manifests.clone())
                .unwrap_or_default();
            for d in &listed {
                seen.entry(d.digest.clone()).or_insert_with(|| d.clone());
            }
            let complete = listed.iter().any(|d| d.digest == ours.digest)
                && seen
                    .keys()
                    .all(|digest| listed.iter().any(|d| &d.digest == digest));
            if complete {
                if !wrote {
                    return Ok(());
                }
                // Confirm once more after a pause: a concurrent writer's stale PUT may land.
                tokio::time::sleep(CONFIRM_PAUSE).await;
                let again = self.referrers_index(subject).await?;
                let still = again.as_ref().is_some_and(|i| {
                    i.manifests.iter().any(|d| d.digest == ours.digest)
                        && seen
                            .keys()
                            .all(|digest| i.manifests.iter().any(|d| &d.digest == digest))
                });
                if still {
                    return Ok(());
                }
                continue;
            }
            if listed.len() >= MAX_REFERRERS {
                return Err(Error::LimitExceeded {
                    what: format!("referrers tag {tag}"),
                    limit: format!("{MAX_REFERRERS} referrers"),
                });
            }
            let mut merged = listed.clone();
            for (digest, d) in &seen {
                if !merged.iter().any(|m| &m.digest == digest) {
                    merged.push(d.clone());
                }
            }
            if !merged.iter().any(|m| m.digest == ours.digest) {
                merged.push(ours.clone());
            }
            seen.entry(ours.digest.clone())
                .or_insert_with(|| ours.clone());
            let index = ImageIndex {
                schema_version: 2,
                media_type: Some(OCI_INDEX.to_string()),
                manifests: merged,
                annotations: current.as_ref().and_then(|i| i.annotations.clone()),
                extra: current.map(|i| i.extra).unwrap_or_default(),
            };
            let bytes = serde_json::to_vec(&index).map_err(|e| Error::InvalidManifest {
                what: format!("referrers tag {tag}"),
                reason: e.to_string(),
            })?;
            self.put_manifest(&bytes, OCI_INDEX, Some(&tag)).await?;
            wrote = true;
            let pause = 50u64.saturating_mul(1 << round.min(4)).min(800);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        Err(Error::Registry {
            registry: self.display_name(),
            message: format!(
                "referrers tag {tag}: could not confirm the referrer after {MAX_WRITE_ROUNDS} rounds (concurrent writers)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn artifact_manifest(subject: &Digest, artifact: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                       "digest": Digest::sha256(b"{}").to_string(), "size": 2},
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": 10},
        }))
        .unwrap()
    }

    #[test]
    fn descriptor_carries_the_artifact_type_and_subject_is_read() {
        let subject = Digest::sha256(b"image");
        let bytes = artifact_manifest(&subject, "application/x-test");
        let d = referrer_descriptor(&bytes, OCI_MANIFEST).unwrap();
        assert_eq!(artifact_type(&d), Some("application/x-test"));
        assert_eq!(d.digest, Digest::sha256(&bytes));
        let m = Manifest::parse(&bytes, Some(OCI_MANIFEST), "m").unwrap();
        assert_eq!(subject_of(&m).unwrap(), Some(subject));
    }

    #[test]
    fn descriptors_that_are_not_manifests_or_too_large_are_refused() {
        let mut d = Descriptor::of("application/octet-stream", b"x");
        let err = validate_referrer(&d, 100, "referrers").unwrap_err();
        assert!(err.to_string().contains("not an OCI manifest"), "{err}");
        d.media_type = OCI_MANIFEST.into();
        d.size = 101;
        assert!(matches!(
            validate_referrer(&d, 100, "referrers"),
            Err(Error::LimitExceeded { .. })
        ));
        d.size = 1;
        d.extra.insert("artifactType".into(), Value::from(7));
        let err = validate_referrer(&d, 100, "referrers").unwrap_err();
        assert!(err.to_string().contains("non-string artifactType"), "{err}");
    }

    #[tokio::test]
    async fn layout_referrers_are_untagged_manifests_naming_the_subject() {
        let dir = tempfile::tempdir().unwrap();
        let layout = crate::OciLayout::create_or_open(dir.path()).unwrap();
        let store = ImageStore::Layout {
            layout,
            selector: None,
        };
        let subject = Digest::sha256(b"image");
        let other = Digest::sha256(b"other image");
        let a = artifact_manifest(&subject, "application/x-a");
        let b = artifact_manifest(&subject, "application/x-b");
        let c = artifact_manifest(&other, "application/x-a");
        store
            .push_referrer(&subject, &a, OCI_MANIFEST)
            .await
            .unwrap();
        store
            .push_referrer(&subject, &b, OCI_MANIFEST)
            .await
            .unwrap();
        store.push_referrer(&other, &c, OCI_MANIFEST).await.unwrap();
        // A manifest whose subject is another image is refused, not stored.
        let err = store
            .push_referrer(&subject, &c, OCI_MANIFEST)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("its subject is not"), "{err}");

        let all = store.referrers(&subject, None).await.unwrap();
        assert_eq!(all.source, ReferrersSource::Layout);
        assert_eq!(
            all.descriptors
                .iter()
                .map(|d| d.digest.clone())
                .collect::<Vec<_>>(),
            [Digest::sha256(&a), Digest::sha256(&b)]
        );
        let only_a = store
            .referrers(&subject, Some("application/x-a"))
            .await
            .unwrap();
        assert_eq!(only_a.descriptors.len(), 1);
        assert_eq!(only_a.descriptors[0].digest, Digest::sha256(&a));
        assert!(store
            .referrers(&Digest::sha256(b"none"), None)
            .await
            .unwrap()
            .descriptors
            .is_empty());
    }
}
