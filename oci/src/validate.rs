//! `validate`: re-hash every blob and child manifest an image references and compare each with its
//! descriptor's digest and size, streaming (constant memory), several blobs at once, and reporting
//! every mismatch rather than stopping at the first.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;

use crate::registry::FetchedManifest;
use crate::store::ImageStore;
use crate::{Descriptor, Digest, DigestHasher, Error, Manifest};

/// Size of each read when hashing local blobs: big reads keep hashing near `openssl dgst` speed.
const HASH_CHUNK: usize = 2 * 1024 * 1024;

/// How to validate.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// Blobs hashed at the same time (at least 1).
    pub jobs: usize,
    /// Deepest nesting of indexes followed (an index of indexes is depth 2).
    pub max_depth: usize,
    /// Most manifests and blobs examined in one image.
    pub max_items: usize,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            max_depth: 4,
            max_items: 10_000,
        }
    }
}

/// Receives progress while blobs are hashed (the CLI draws a bar with it).
pub trait ValidateProgress: Send + Sync {
    /// Hashing starts: `blobs` distinct blobs, `total_bytes` bytes as the descriptors state.
    fn start(&self, blobs: usize, total_bytes: u64) {
        let _ = (blobs, total_bytes);
    }
    /// `done` bytes of `total_bytes` hashed so far.
    fn hashed(&self, done: u64, total_bytes: u64) {
        let _ = (done, total_bytes);
    }
    /// Hashing has ended.
    fn finish(&self) {}
}

/// A progress receiver that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl ValidateProgress for NoProgress {}

/// What a checked item is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum ItemKind {
    /// A child manifest of an index.
    Manifest {
        /// Its platform, if the index states one.
        #[serde(skip_serializing_if = "Option::is_none")]
        platform: Option<String>,
    },
    /// An image's config blob.
    Config,
    /// Layer `index` (from 0) of an image.
    Layer {
        /// Position in the manifest's `layers`.
        index: usize,
    },
    /// A non-manifest entry of an index.
    Blob,
}

/// The outcome for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    /// Digest and size match.
    Ok,
    /// The content's digest or size differs from the descriptor.
    Mismatch,
    /// The content does not exist.
    Missing,
}

/// One checked item: what was expected, what was found.
#[derive(Debug, Clone, Serialize)]
pub struct ItemCheck {
    /// Human description (`layer 1 of manifest sha256:…`).
    pub what: String,
    /// What the item is.
    pub kind: ItemKind,
    /// The manifest or index whose descriptor names it.
    pub parent: Digest,
    /// The descriptor's media type.
    pub media_type: String,
    /// The descriptor's digest.
    pub expected_digest: Digest,
    /// The digest of the content found (`None` if missing).
    pub actual_digest: Option<Digest>,
    /// The descriptor's size.
    pub expected_size: u64,
    /// The size of the content found (`None` if missing).
    pub actual_size: Option<u64>,
    /// The verdict.
    pub status: CheckStatus,
}

/// The result of validating an image.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    /// The image, as the store names it.
    pub image: String,
    /// The top manifest's digest.
    pub digest: Digest,
    /// The top manifest's media type.
    pub media_type: String,
    /// Every item checked, in manifest order.
    pub checks: Vec<ItemCheck>,
    /// Bytes hashed (each distinct blob once).
    pub bytes_hashed: u64,
}

impl ValidationReport {
    /// Whether every item matched.
    pub fn is_ok(&self) -> bool {
        self.checks.iter().all(|c| c.status == CheckStatus::Ok)
    }

    /// The items that did not match or are missing.
    pub fn problems(&self) -> impl Iterator<Item = &ItemCheck> {
        self.checks.iter().filter(|c| c.status != CheckStatus::Ok)
    }
}

struct Job {
    descriptor: Descriptor,
    checks: Vec<usize>,
}

/// Validate the image `store` names. `Ok` carries the findings (mismatches included); `Err` means
/// the check could not be carried out (unreadable file, network failure, malformed manifest).
pub async fn validate(
    store: &ImageStore,
    options: &ValidateOptions,
    progress: &dyn ValidateProgress,
) -> Result<ValidationReport, Error> {
    let top = store.resolve().await?;
    let mut checks: Vec<ItemCheck> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    let mut job_by_blob: BTreeMap<(Digest, u64), usize> = BTreeMap::new();
    // (manifest, depth, ancestors) still to expand.
    let mut queue: Vec<(FetchedManifest, usize, Vec<Digest>)> = vec![(top.clone(), 1, Vec::new())];
    let mut seen_manifests: BTreeSet<Digest> = BTreeSet::new();

    while let Some((fetched, depth, mut ancestors)) = queue.pop() {
        if checks.len() > options.max_items {
            return Err(Error::LimitExceeded {
                what: format!("number of manifests and blobs in {}", store.display_name()),
                limit: options.max_items.to_string(),
            });
        }
        ancestors.push(fetched.digest.clone());
        match &fetched.manifest {
            Manifest::Index(index) => {
                let mut children = Vec::new();
                for desc in &index.manifests {
                    if !desc.is_manifest() {
                        let what = format!("blob {} of index {}", desc.digest, fetched.digest);
                        push_blob(
                            &mut checks,
                            &mut jobs,
                            &mut job_by_blob,
                            desc,
                            &fetched,
                            what,
                            ItemKind::Blob,
                        );
                        continue;
                    }
                    if ancestors.contains(&desc.digest) {
                        return Err(Error::InvalidManifest {
                            what: format!("index {}", fetched.digest),
                            reason: format!("cycle: it refers back to {}", desc.digest),
                        });
                    }
                    if depth >= options.max_depth {
                        return Err(Error::LimitExceeded {
                            what: format!("nesting of indexes under {}", top.digest),
                            limit: format!("{} levels", options.max_depth),
                        });
                    }
                    let platform = desc.platform.as_ref().map(|p| p.display());
                    let what = match &platform {
                        Some(p) => {
                            format!("manifest {} ({p}) of index {}", desc.digest, fetched.digest)
                        }
                        None => format!("manifest {} of index {}", desc.digest, fetched.digest),
                    };
                    let mut check = ItemCheck {
                        what,
                        kind: ItemKind::Manifest { platform },
                        parent: fetched.digest.clone(),
                        media_type: desc.media_type.clone(),
                        expected_digest: desc.digest.clone(),
                        actual_digest: None,
                        expected_size: desc.size,
                        actual_size: None,
                        status: CheckStatus::Missing,
                    };
                    match store.manifest(desc).await {
                        Ok(child) => {
                            check.actual_digest = Some(child.digest.clone());
                            check.actual_size = Some(child.bytes.len() as u64);
                            check.status = CheckStatus::Ok;
                            if seen_manifests.insert(child.digest.clone()) {
                                children.push((child, depth + 1, ancestors.clone()));
                            }
                        }
                        Err(Error::DigestMismatch { actual, .. }) => {
                            check.actual_digest = Some(actual);
                            check.status = CheckStatus::Mismatch;
                        }
                        Err(Error::SizeMismatch { actual, .. }) => {
                            check.actual_size = Some(actual);
                            check.status = CheckStatus::Mismatch;
                        }
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e),
                    }
                    checks.push(check);
                }
                // The queue is a stack: push in reverse so children are reported in index order.
                queue.extend(children.into_iter().rev());
            }
            Manifest::Image(image) => {
                let what = format!("config of manifest {}", fetched.digest);
                push_blob(
                    &mut checks,
                    &mut jobs,
                    &mut job_by_blob,
                    &image.config,
                    &fetched,
                    what,
                    ItemKind::Config,
                );
                for (index, layer) in image.layers.iter().enumerate() {
                    let what = format!("layer {index} of manifest {}", fetched.digest);
                    push_blob(
                        &mut checks,
                        &mut jobs,
                        &mut job_by_blob,
                        layer,
                        &fetched,
                        what,
                        ItemKind::Layer { index },
                    );
                }
            }
        }
    }

    let total: u64 = jobs.iter().map(|j| j.descriptor.size).sum();
    progress.start(jobs.len(), total);
    let counter = Arc::new(AtomicU64::new(0));
    let concurrency = options.jobs.max(1);
    let mut results = futures_util::stream::iter(jobs.iter().enumerate().map(|(i, job)| {
        let counter = counter.clone();
        async move { (i, hash_blob(store, &job.descriptor, counter).await) }
    }))
    .buffer_unordered(concurrency);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            next = results.next() => {
                let Some((i, result)) = next else { break };
                let found = result?;
                for &c in &jobs[i].checks {
                    let check = &mut checks[c];
                    match &found {
                        None => check.status = CheckStatus::Missing,
                        Some((digest, size)) => {
                            check.status = if digest == &check.expected_digest && *size == check.expected_size {
                                CheckStatus::Ok
                            } else {
                                CheckStatus::Mismatch
                            };
                            check.actual_digest = Some(digest.clone());
                            check.actual_size = Some(*size);
                        }
                    }
                }
            }
            _ = tick.tick() => progress.hashed(counter.load(Ordering::Relaxed), total),
        }
    }
    drop(results);
    let bytes_hashed = counter.load(Ordering::Relaxed);
    progress.hashed(bytes_hashed, total);
    progress.finish();
    Ok(ValidationReport {
        image: store.display_name(),
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        checks,
        bytes_hashed,
    })
}

fn push_blob(
    checks: &mut Vec<ItemCheck>,
    jobs: &mut Vec<Job>,
    job_by_blob: &mut BTreeMap<(Digest, u64), usize>,
    desc: &Descriptor,
    parent: &FetchedManifest,
    what: String,
    kind: ItemKind,
) {
    checks.push(ItemCheck {
        what,
        kind,
        parent: parent.digest.clone(),
        media_type: desc.media_type.clone(),
        expected_digest: desc.digest.clone(),
        actual_digest: None,
        expected_size: desc.size,
        actual_size: None,
        status: CheckStatus::Missing,
    });
    let check = checks.len() - 1;
    let key = (desc.digest.clone(), desc.size);
    match job_by_blob.get(&key) {
        Some(&job) => jobs[job].checks.push(check),
        None => {
            job_by_blob.insert(key, jobs.len());
            jobs.push(Job {
                descriptor: desc.clone(),
                checks: vec![check],
            });
        }
    }
}

/// Hash one blob: `Ok(None)` if it is missing, `Ok(Some((digest, size)))` of what was found.
async fn hash_blob(
    store: &ImageStore,
    desc: &Descriptor,
    counter: Arc<AtomicU64>,
) -> Result<Option<(Digest, u64)>, Error> {
    let reader: Box<dyn Read + Send> = match store {
        ImageStore::Layout { layout, .. } => match layout.open_blob(&desc.digest) {
            Ok(file) => Box::new(file),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        },
        ImageStore::Archive(archive) => match archive.open_blob(&desc.digest) {
            Ok(member) => Box::new(member),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        },
        ImageStore::Registry { .. } => return hash_remote(store, desc, counter).await,
    };
    let hasher = desc.digest.hasher();
    let what = format!("blob {}", desc.digest);
    tokio::task::spawn_blocking(move || hash_reader(reader, hasher, &counter))
        .await
        .map_err(|e| Error::Unsupported(format!("hashing {what}: {e}")))?
        .map(Some)
        .map_err(|e| Error::io(what, e))
}

fn hash_reader(
    mut reader: Box<dyn Read + Send>,
    mut hasher: DigestHasher,
    counter: &AtomicU64,
) -> std::io::Result<(Digest, u64)> {
    let mut buf = vec![0u8; HASH_CHUNK];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok((hasher.finish(), size))
}

/// Hash a registry blob as it streams. The client's stream itself refuses a mismatch (ending in an
/// error), so a digest or size error from the stream is a finding, with our own hash as "actual".
async fn hash_remote(
    store: &ImageStore,
    desc: &Descriptor,
    counter: Arc<AtomicU64>,
) -> Result<Option<(Digest, u64)>, Error> {
    let mut stream = match store.blob_stream(desc).await {
        Ok(stream) => stream,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hasher = desc.digest.hasher();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                hasher.update(&bytes);
                size += bytes.len() as u64;
                counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            Err(Error::DigestMismatch { .. }) | Err(Error::SizeMismatch { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(Some((hasher.finish(), size)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::manifest::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
    use crate::{ImageLocation, OciLayout, RegistryClient, RegistryOptions};

    fn image(layout: &OciLayout, layers: &[&[u8]]) -> Descriptor {
        let config = layout.write_blob(b"{}").unwrap();
        let layer_descs: Vec<String> = layers
            .iter()
            .map(|l| {
                let d = layout.write_blob(l).unwrap();
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{}}}"#,
                    l.len()
                )
            })
            .collect();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{config}","size":2}},"layers":[{}]}}"#,
            layer_descs.join(",")
        );
        layout.write_blob(manifest.as_bytes()).unwrap();
        Descriptor::of(OCI_MANIFEST, manifest.as_bytes())
    }

    async fn run(dir: &std::path::Path, tag: &str) -> ValidationReport {
        let location: ImageLocation = format!("oci:{}:{tag}", dir.display()).parse().unwrap();
        let client = RegistryClient::new(RegistryOptions::default()).unwrap();
        let store = ImageStore::open(&location, &client).unwrap();
        let options = ValidateOptions {
            jobs: 2,
            ..Default::default()
        };
        validate(&store, &options, &NoProgress).await.unwrap()
    }

    #[tokio::test]
    async fn finds_every_problem_in_an_index() {
        let t = tempfile::tempdir().unwrap();
        let layout = OciLayout::create_or_open(t.path()).unwrap();
        let a = image(&layout, &[b"layer-a", b"shared"]);
        let b = image(&layout, &[b"layer-b", b"shared"]);
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{},{}]}}"#,
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        layout.write_blob(index.as_bytes()).unwrap();
        layout
            .set_tag("v1", &Descriptor::of(OCI_INDEX, index.as_bytes()))
            .unwrap();

        let report = run(t.path(), "v1").await;
        assert!(report.is_ok(), "{report:#?}");
        // 2 manifests + 2 configs + 4 layers, but "{}" and "shared" are hashed once each.
        assert_eq!(report.checks.len(), 8);
        assert_eq!(report.bytes_hashed, (2 + 7 + 7 + 6) as u64);

        // Corrupt one layer and delete another: both reported, nothing else.
        std::fs::write(layout.blob_path(&Digest::sha256(b"layer-a")), b"layer-A").unwrap();
        std::fs::remove_file(layout.blob_path(&Digest::sha256(b"shared"))).unwrap();
        let report = run(t.path(), "v1").await;
        let problems: Vec<_> = report.problems().collect();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert_eq!(problems[0].status, CheckStatus::Mismatch);
        assert_eq!(problems[0].actual_digest, Some(Digest::sha256(b"layer-A")));
        assert_eq!(problems[0].kind, ItemKind::Layer { index: 0 });
        assert!(problems[1..]
            .iter()
            .all(|p| p.status == CheckStatus::Missing));
    }
}
