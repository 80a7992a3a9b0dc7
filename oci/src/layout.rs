//! OCI image layouts on disk (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`): reading images by tag
//! or digest, and crash-safe writing of blobs and tags (temporary file, fsync, rename).
//!
//! Image layout spec: <https://github.com/opencontainers/image-spec/blob/main/image-layout.md>.
//! A tag is the `org.opencontainers.image.ref.name` annotation of an `index.json` entry.
//!
//! Writers in different processes coordinate through two lock files in the layout directory, held
//! with `flock`-style locks that the kernel releases when a process dies (so a crashed writer never
//! leaves a layout locked): `.signet-index.lock` guards each read-modify-write of `index.json`, and
//! `.signet-update.lock` is for callers' longer read-modify-write sequences such as appending a
//! signature ([`OciLayout::try_lock_updates`]). Holding the update lock never blocks an `index.json`
//! update, so the two cannot deadlock. A process killed mid-write leaves at most a `.tmp-…` file,
//! never a partial file under a final name; the next writer removes such files once they are
//! [`STALE_TEMP_AGE`] old.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

use crate::bounded::read_file_bounded;
use crate::manifest::{OCI_INDEX, REF_NAME_ANNOTATION};
use crate::registry::{ByteStream, FetchedManifest};
use crate::{Descriptor, Digest, Error, ImageIndex, LayoutSelector, Manifest};

/// The content of the `oci-layout` file Signet writes.
pub const OCI_LAYOUT_CONTENT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";
/// Largest `index.json` (and `oci-layout`) accepted.
pub const MAX_INDEX_BYTES: u64 = 16 * 1024 * 1024;
/// Size of each read when streaming or hashing blobs.
pub const READ_CHUNK: usize = 1024 * 1024;
/// The lock file guarding read-modify-write of `index.json` across processes.
pub const INDEX_LOCK_FILE: &str = ".signet-index.lock";
/// The lock file for callers' read-modify-write sequences ([`OciLayout::try_lock_updates`]).
pub const UPDATE_LOCK_FILE: &str = ".signet-update.lock";
/// How long an `index.json` update waits for another process's update before giving up (an update
/// holds the lock for milliseconds; only a stopped process holds it longer).
pub const INDEX_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a temporary file must have gone unmodified before a writer treats it as left behind
/// by a killed process and removes it (a live writer modifies its file as it writes).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// A cross-process lock on a layout, released when dropped (or when the process ends, however it
/// ends).
#[derive(Debug)]
pub struct LayoutLock {
    // Dropping the file closes it, which releases the lock.
    _file: File,
}

/// An OCI image layout directory.
#[derive(Debug)]
pub struct OciLayout {
    dir: PathBuf,
    /// Serialises read-modify-write of `index.json` within this process.
    index_lock: Mutex<()>,
    /// Whether this handle has swept stale temporary files (done once, on the first write).
    swept: std::sync::atomic::AtomicBool,
}

impl OciLayout {
    /// Open an existing layout; the error names `dir` and says what is missing or invalid.
    pub fn open(dir: impl AsRef<Path>) -> Result<OciLayout, Error> {
        let dir = dir.as_ref().to_path_buf();
        let not_layout = |reason: String| Error::InvalidManifest {
            what: format!("OCI layout {}", dir.display()),
            reason,
        };
        match std::fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(not_layout("not a directory".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    what: format!("OCI layout directory {}", dir.display()),
                })
            }
            Err(e) => return Err(Error::io(&dir, e)),
        }
        let marker_path = dir.join("oci-layout");
        let marker = match read_file_bounded(&marker_path, MAX_INDEX_BYTES) {
            Ok(bytes) => bytes,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(not_layout(
                    "no oci-layout file (not an OCI image layout)".into(),
                ))
            }
            Err(e) => return Err(e),
        };
        let version = serde_json::from_slice::<Value>(&marker)
            .ok()
            .and_then(|v| {
                v.get("imageLayoutVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .ok_or_else(|| {
                not_layout("oci-layout is not {\"imageLayoutVersion\": \"…\"}".into())
            })?;
        if !version.starts_with("1.") {
            return Err(not_layout(format!(
                "unsupported imageLayoutVersion {version:?}"
            )));
        }
        let layout = OciLayout {
            dir,
            index_lock: Mutex::new(()),
            swept: std::sync::atomic::AtomicBool::new(false),
        };
        // Fail at open, not later, when index.json is missing or broken.
        layout.index()?;
        Ok(layout)
    }

    /// Open the layout at `dir`, creating the directory, `oci-layout`, an empty `index.json` and
    /// `blobs/` as needed.
    pub fn create_or_open(dir: impl AsRef<Path>) -> Result<OciLayout, Error> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir.join("blobs").join("sha256")).map_err(|e| Error::io(dir, e))?;
        if !dir.join("oci-layout").exists() {
            write_atomically(dir, &dir.join("oci-layout"), OCI_LAYOUT_CONTENT.as_bytes())?;
        }
        if !dir.join("index.json").exists() {
            let empty = ImageIndex {
                schema_version: 2,
                media_type: Some(OCI_INDEX.to_string()),
                manifests: Vec::new(),
                annotations: None,
                extra: Map::new(),
            };
            write_atomically(dir, &dir.join("index.json"), &to_json(&empty)?)?;
        }
        OciLayout::open(dir)
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Read and parse `index.json` (size-bounded).
    pub fn index(&self) -> Result<ImageIndex, Error> {
        let path = self.dir.join("index.json");
        let bytes = match read_file_bounded(&path, MAX_INDEX_BYTES) {
            Ok(bytes) => bytes,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::InvalidManifest {
                    what: format!("OCI layout {}", self.dir.display()),
                    reason: "no index.json".into(),
                })
            }
            Err(e) => return Err(e),
        };
        match Manifest::parse(&bytes, Some(OCI_INDEX), &path.display().to_string())? {
            Manifest::Index(index) => Ok(index),
            Manifest::Image(_) => Err(Error::InvalidManifest {
                what: path.display().to_string(),
                reason: "index.json holds an image manifest, not an index".into(),
            }),
        }
    }

    /// The descriptor `selector` names: a tag, a digest listed in `index.json` (or a child of an
    /// index listed there), or with `None` the layout's only entry that is neither a cosign
    /// `sha256-….sig` tag nor an artifact (a referrer, listed with its `artifactType`).
    pub fn resolve(&self, selector: Option<&LayoutSelector>) -> Result<Descriptor, Error> {
        let index = self.index()?;
        match selector {
            Some(LayoutSelector::Tag(tag)) => {
                find_ref_name(&index, tag).ok_or_else(|| Error::NotFound {
                    what: format!(
                        "tag {tag:?} in OCI layout {} (tags: {})",
                        self.dir.display(),
                        tag_list(&index)
                    ),
                })
            }
            Some(LayoutSelector::Digest(digest)) => {
                if let Some(found) = index.manifests.iter().find(|d| &d.digest == digest) {
                    return Ok(found.clone());
                }
                for entry in index.manifests.iter().filter(|d| d.is_manifest()) {
                    let Ok(fetched) = self.read_manifest(entry, MAX_INDEX_BYTES) else {
                        continue;
                    };
                    if let Manifest::Index(child_index) = fetched.manifest {
                        if let Some(found) =
                            child_index.manifests.iter().find(|d| &d.digest == digest)
                        {
                            return Ok(found.clone());
                        }
                    }
                }
                Err(Error::NotFound {
                    what: format!("manifest {digest} in OCI layout {}", self.dir.display()),
                })
            }
            None => {
                let candidates: Vec<&Descriptor> = index
                    .manifests
                    .iter()
                    .filter(|d| !is_signature_tag(d) && !is_artifact(d))
                    .collect();
                match candidates.as_slice() {
                    [only] => Ok((*only).clone()),
                    [] => Err(Error::NotFound {
                        what: format!("any image in OCI layout {}", self.dir.display()),
                    }),
                    _ => Err(Error::InvalidReference {
                        input: format!("oci:{}", self.dir.display()),
                        reason: format!(
                            "the layout holds {} images; name one with oci:DIR:TAG or oci:DIR@DIGEST (tags: {})",
                            candidates.len(),
                            tag_list(&index)
                        ),
                    }),
                }
            }
        }
    }

    /// The entry of `index.json` tagged `tag`, if any.
    pub fn find_tag(&self, tag: &str) -> Result<Option<Descriptor>, Error> {
        Ok(find_ref_name(&self.index()?, tag))
    }

    /// Read the manifest `desc` names: at most `max` bytes, checked against the descriptor's size
    /// and digest before it is parsed.
    pub fn read_manifest(&self, desc: &Descriptor, max: u64) -> Result<FetchedManifest, Error> {
        let what = format!("manifest {} in {}", desc.digest, self.dir.display());
        if desc.size > max {
            return Err(Error::LimitExceeded {
                what,
                limit: format!("{max} bytes"),
            });
        }
        let path = self.blob_path(&desc.digest);
        let bytes = match read_file_bounded(&path, desc.size.saturating_add(1).min(max)) {
            Ok(bytes) => bytes,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound { what })
            }
            Err(Error::LimitExceeded { .. }) => {
                return Err(Error::SizeMismatch {
                    what,
                    expected: desc.size,
                    actual: std::fs::metadata(&path)
                        .map(|m| m.len())
                        .unwrap_or(u64::MAX),
                })
            }
            Err(e) => return Err(e),
        };
        desc.verify(&what, &bytes)?;
        let manifest = Manifest::parse(&bytes, Some(&desc.media_type), &what)?;
        Ok(FetchedManifest {
            digest: desc.digest.clone(),
            media_type: manifest.media_type().to_string(),
            bytes,
            manifest,
        })
    }

    /// Where the blob `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// Whether the blob `digest` exists.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Open the blob `digest` for reading; `NotFound` if it does not exist.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, Error> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound {
                    what: format!("blob {digest} in OCI layout {}", self.dir.display()),
                }
            } else {
                Error::io(&path, e)
            }
        })
    }

    /// Read a blob whole (at most `max` bytes), checked against `desc`'s size and digest.
    pub fn read_blob(&self, desc: &Descriptor, max: u64) -> Result<Vec<u8>, Error> {
        let what = format!("blob {} in {}", desc.digest, self.dir.display());
        if desc.size > max {
            return Err(Error::LimitExceeded {
                what,
                limit: format!("{max} bytes"),
            });
        }
        let mut file = self.open_blob(&desc.digest)?;
        let mut bytes = Vec::new();
        (&mut file)
            .take(desc.size.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(self.blob_path(&desc.digest), e))?;
        desc.verify(&what, &bytes)?;
        Ok(bytes)
    }

    /// Stream a blob in 1 MiB chunks; the stream ends in an error if the content does not match
    /// `desc`'s digest and size.
    pub async fn blob_stream(&self, desc: &Descriptor) -> Result<ByteStream, Error> {
        let path = self.blob_path(&desc.digest);
        let file = self.open_blob(&desc.digest)?;
        let raw = file_stream(tokio::fs::File::from_std(file), path, u64::MAX);
        Ok(crate::store::verified_stream(
            raw,
            desc,
            format!("blob {} in {}", desc.digest, self.dir.display()),
        ))
    }

    /// Store `bytes` as a blob (no-op if present); returns its SHA-256 digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest, Error> {
        let digest = Digest::sha256(bytes);
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let target = self.blob_path(&digest);
        let dir = self.blob_dir(&digest)?;
        write_atomically(&dir, &target, bytes)?;
        Ok(digest)
    }

    /// Store a blob read from `reader`, which must match `desc`'s digest and size; the content is
    /// written to a temporary file in the layout, checked, fsynced, and only then renamed into place.
    pub fn write_blob_from(&self, desc: &Descriptor, reader: &mut dyn Read) -> Result<(), Error> {
        if self.has_blob(&desc.digest) {
            return Ok(());
        }
        let dir = self.blob_dir(&desc.digest)?;
        let mut temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(&dir, e))?;
        let mut hasher = desc.digest.hasher();
        let mut size = 0u64;
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = reader.read(&mut buf).map_err(|e| Error::io(&dir, e))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > desc.size {
                return Err(Error::SizeMismatch {
                    what: format!("blob {}", desc.digest),
                    expected: desc.size,
                    actual: size,
                });
            }
            hasher.update(&buf[..n]);
            temp.write_all(&buf[..n])
                .map_err(|e| Error::io(temp.path(), e))?;
        }
        self.finish_temp_blob(temp, desc, hasher.finish(), size)
    }

    /// Store a blob from an async stream, which must match `desc`'s digest and size (same
    /// crash-safety as [`OciLayout::write_blob_from`]).
    pub async fn write_blob_stream(
        &self,
        desc: &Descriptor,
        mut stream: ByteStream,
    ) -> Result<(), Error> {
        if self.has_blob(&desc.digest) {
            return Ok(());
        }
        let dir = self.blob_dir(&desc.digest)?;
        let temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(&dir, e))?;
        let std_file = temp.reopen().map_err(|e| Error::io(temp.path(), e))?;
        let mut file = tokio::fs::File::from_std(std_file);
        let mut hasher = desc.digest.hasher();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            if size > desc.size {
                return Err(Error::SizeMismatch {
                    what: format!("blob {}", desc.digest),
                    expected: desc.size,
                    actual: size,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| Error::io(temp.path(), e))?;
        }
        file.flush().await.map_err(|e| Error::io(temp.path(), e))?;
        drop(file);
        self.finish_temp_blob(temp, desc, hasher.finish(), size)
    }

    /// Point `tag` at `desc` in `index.json`, replacing any entry with the same ref name and keeping
    /// all others; `index.json` is replaced atomically.
    pub fn set_tag(&self, tag: &str, desc: &Descriptor) -> Result<(), Error> {
        let mut entry = desc.clone();
        entry
            .annotations
            .get_or_insert_with(Default::default)
            .insert(REF_NAME_ANNOTATION.to_string(), tag.to_string());
        self.update_index(|index| {
            index
                .manifests
                .retain(|d| d.annotation(REF_NAME_ANNOTATION) != Some(tag));
            index.manifests.push(entry);
        })
    }

    /// List `desc` in `index.json` without a tag (no-op if an untagged entry with its digest exists).
    pub fn add_manifest(&self, desc: &Descriptor) -> Result<(), Error> {
        self.update_index(|index| {
            let present = index
                .manifests
                .iter()
                .any(|d| d.digest == desc.digest && d.annotation(REF_NAME_ANNOTATION).is_none());
            if !present {
                index.manifests.push(desc.clone());
            }
        })
    }

    /// Take the layout's update lock if no other process holds it: `Ok(None)` when one does.
    /// Callers that read the layout, decide, and write (such as appending a signature) hold it for
    /// the whole sequence, so concurrent writers in other processes cannot interleave.
    pub fn try_lock_updates(&self) -> Result<Option<LayoutLock>, Error> {
        try_lock_file(&self.dir.join(UPDATE_LOCK_FILE))
    }

    fn update_index(&self, change: impl FnOnce(&mut ImageIndex)) -> Result<(), Error> {
        let _guard = self
            .index_lock
            .lock()
            .map_err(|_| Error::Unsupported("index.json lock poisoned".into()))?;
        // Another process may be between its read and its write of index.json; without this lock
        // one of two concurrent tag updates would be lost.
        let _file_lock = lock_file(&self.dir.join(INDEX_LOCK_FILE), INDEX_LOCK_TIMEOUT)?;
        // Writers, not readers, clean up what killed writers left (readers may lack the right).
        if !self.swept.swap(true, std::sync::atomic::Ordering::Relaxed) {
            sweep_stale_temps(&self.dir);
        }
        let mut index = self.index()?;
        change(&mut index);
        write_atomically(&self.dir, &self.dir.join("index.json"), &to_json(&index)?)
    }

    fn blob_dir(&self, digest: &Digest) -> Result<PathBuf, Error> {
        let dir = self.dir.join("blobs").join(digest.algorithm().as_str());
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(dir)
    }

    fn finish_temp_blob(
        &self,
        temp: tempfile::NamedTempFile,
        desc: &Descriptor,
        actual: Digest,
        size: u64,
    ) -> Result<(), Error> {
        let what = format!("blob {}", desc.digest);
        if size != desc.size {
            return Err(Error::SizeMismatch {
                what,
                expected: desc.size,
                actual: size,
            });
        }
        if actual != desc.digest {
            return Err(Error::DigestMismatch {
                what,
                expected: desc.digest.clone(),
                actual,
            });
        }
        temp.as_file()
            .sync_all()
            .map_err(|e| Error::io(temp.path(), e))?;
        let target = self.blob_path(&desc.digest);
        temp.persist(&target)
            .map_err(|e| Error::io(&target, e.error))?;
        sync_dir(target.parent().unwrap_or(&self.dir));
        Ok(())
    }
}

/// Remove `.tmp-` files under `dir` and `dir/blobs/<alg>/` unmodified for [`STALE_TEMP_AGE`]: a
/// process killed between creating and renaming one leaves it behind. Best effort: a file that
/// cannot be inspected or removed is left alone.
fn sweep_stale_temps(dir: &Path) {
    let mut dirs = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir.join("blobs")) {
        dirs.extend(
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(".tmp-") {
                continue;
            }
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= STALE_TEMP_AGE);
            if stale && entry.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Open (creating if needed) the lock file at `path` and take an exclusive lock on it without
/// waiting: `Ok(None)` if another open file holds it.
fn try_lock_file(path: &Path) -> Result<Option<LayoutLock>, Error> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(LayoutLock { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
    }
}

/// Take the lock at `path`, polling for at most `timeout` (polling rather than a blocking wait, so
/// that a process stopped while holding the lock cannot hang this one for ever).
fn lock_file(path: &Path, timeout: Duration) -> Result<LayoutLock, Error> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(lock) = try_lock_file(path)? {
            return Ok(lock);
        }
        if Instant::now() >= deadline {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("held by another process for over {} s", timeout.as_secs()),
                ),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Whether an `index.json` entry is a cosign signature (or attestation, SBOM) tag.
fn is_signature_tag(desc: &Descriptor) -> bool {
    desc.annotation(REF_NAME_ANNOTATION).is_some_and(|name| {
        let name = name.rsplit(':').next().unwrap_or(name);
        name.starts_with("sha256-")
            && [".sig", ".att", ".sbom"]
                .iter()
                .any(|suffix| name.ends_with(suffix))
    })
}

/// Whether an `index.json` entry is an artifact (a referrer: signature bundle, attestation)
/// rather than an image: referrers are listed with their `artifactType`.
fn is_artifact(desc: &Descriptor) -> bool {
    desc.extra.contains_key("artifactType")
}

fn find_ref_name(index: &ImageIndex, tag: &str) -> Option<Descriptor> {
    // Later entries win: set_tag appends, and other tools may leave duplicates behind.
    index
        .manifests
        .iter()
        .rev()
        .find(|d| d.annotation(REF_NAME_ANNOTATION) == Some(tag))
        .cloned()
}

fn tag_list(index: &ImageIndex) -> String {
    let tags: Vec<&str> = index
        .manifests
        .iter()
        .filter_map(|d| d.annotation(REF_NAME_ANNOTATION))
        .collect();
    if tags.is_empty() {
        "none".into()
    } else {
        tags.join(", ")
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::InvalidManifest {
        what: "index.json".into(),
        reason: e.to_string(),
    })
}

/// Write `bytes` to `target` via a temporary file in `dir`, fsync, rename, fsync of the directory:
/// a crash leaves either the old file or the new one, never a partial one.
fn write_atomically(dir: &Path, target: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    temp.write_all(bytes)
        .map_err(|e| Error::io(temp.path(), e))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| Error::io(temp.path(), e))?;
    temp.persist(target)
        .map_err(|e| Error::io(target, e.error))?;
    sync_dir(dir);
    Ok(())
}

fn sync_dir(dir: &Path) {
    // Best effort: makes the rename durable; some filesystems refuse fsync on directories.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Stream at most `limit` bytes of `file` in 1 MiB chunks (errors name `path`).
pub(crate) fn file_stream(file: tokio::fs::File, path: PathBuf, limit: u64) -> ByteStream {
    use tokio::io::AsyncReadExt;
    let state = (file.take(limit), path);
    Box::pin(futures_util::stream::unfold(
        Some(state),
        |state| async move {
            let (mut reader, path) = state?;
            let mut buf = vec![0u8; READ_CHUNK];
            match reader.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some((reader, path))))
                }
                Err(e) => Some((Err(Error::io(&path, e)), None)),
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::manifest::OCI_MANIFEST;

    fn layout() -> (tempfile::TempDir, OciLayout) {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create_or_open(dir.path().join("lay")).unwrap();
        (dir, layout)
    }

    fn temp_names(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        for entry in walk(dir) {
            let name = entry.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with(".tmp-") {
                found.push(name);
            }
        }
        found
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn create_writes_a_valid_empty_layout() {
        let (_t, layout) = layout();
        assert_eq!(
            std::fs::read_to_string(layout.dir().join("oci-layout")).unwrap(),
            OCI_LAYOUT_CONTENT
        );
        assert!(layout.index().unwrap().manifests.is_empty());
        assert!(OciLayout::open(layout.dir()).is_ok());
    }

    #[test]
    fn open_names_what_is_wrong() {
        let t = tempfile::tempdir().unwrap();
        let missing = t.path().join("nope");
        let e = OciLayout::open(&missing).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("not found"), "{e}");
        let e = OciLayout::open(t.path()).unwrap_err().to_string();
        assert!(e.contains("no oci-layout"), "{e}");
        std::fs::write(t.path().join("oci-layout"), "garbage").unwrap();
        let e = OciLayout::open(t.path()).unwrap_err().to_string();
        assert!(e.contains("imageLayoutVersion"), "{e}");
        std::fs::write(t.path().join("oci-layout"), OCI_LAYOUT_CONTENT).unwrap();
        let e = OciLayout::open(t.path()).unwrap_err().to_string();
        assert!(e.contains("no index.json"), "{e}");
        std::fs::write(t.path().join("index.json"), "{").unwrap();
        let e = OciLayout::open(t.path()).unwrap_err().to_string();
        assert!(e.contains("index.json") && e.contains("not JSON"), "{e}");
    }

    #[test]
    fn blobs_are_written_atomically_and_verified() {
        let (_t, layout) = layout();
        let d = layout.write_blob(b"hello").unwrap();
        assert_eq!(d, Digest::sha256(b"hello"));
        assert_eq!(std::fs::read(layout.blob_path(&d)).unwrap(), b"hello");

        // A stream that does not match its descriptor never reaches the final name.
        let desc = Descriptor::of("application/octet-stream", b"expected");
        let err = layout
            .write_blob_from(&desc, &mut &b"tampered"[..])
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(!layout.has_blob(&desc.digest));
        let err = layout
            .write_blob_from(&desc, &mut &b"expected-and-more"[..])
            .unwrap_err();
        assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
        assert!(!layout.has_blob(&desc.digest));
        assert!(temp_names(layout.dir()).is_empty());

        layout
            .write_blob_from(&desc, &mut &b"expected"[..])
            .unwrap();
        assert_eq!(layout.read_blob(&desc, 100).unwrap(), b"expected".to_vec());
        assert!(temp_names(layout.dir()).is_empty());
    }

    #[tokio::test]
    async fn async_stream_write_and_read_back() {
        let (_t, layout) = layout();
        let content = vec![7u8; 3 * READ_CHUNK + 5];
        let desc = Descriptor::of("application/octet-stream", &content);
        let chunks: Vec<Result<Bytes, Error>> = content
            .chunks(100_000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        layout
            .write_blob_stream(&desc, Box::pin(futures_util::stream::iter(chunks)))
            .await
            .unwrap();
        let mut stream = layout.blob_stream(&desc).await.unwrap();
        let mut back = Vec::new();
        while let Some(chunk) = stream.next().await {
            back.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(back, content);

        // A corrupted blob makes the stream end in an error.
        std::fs::write(layout.blob_path(&desc.digest), b"short").unwrap();
        let mut stream = layout.blob_stream(&desc).await.unwrap();
        let mut saw_error = false;
        while let Some(chunk) = stream.next().await {
            saw_error |= chunk.is_err();
        }
        assert!(saw_error);
    }

    #[test]
    fn set_tag_replaces_only_its_own_entry() {
        let (_t, layout) = layout();
        let m1 = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
        let m2 = br#"{"schemaVersion":2,"config":{"mediaType":"b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
        let d1 = Descriptor::of(OCI_MANIFEST, m1);
        let d2 = Descriptor::of(OCI_MANIFEST, m2);
        layout.write_blob(m1).unwrap();
        layout.write_blob(m2).unwrap();
        layout.set_tag("v1", &d1).unwrap();
        layout.set_tag("other", &d1).unwrap();
        layout.set_tag("v1", &d2).unwrap();
        let index = layout.index().unwrap();
        assert_eq!(index.manifests.len(), 2);
        assert_eq!(layout.find_tag("v1").unwrap().unwrap().digest, d2.digest);
        assert_eq!(layout.find_tag("other").unwrap().unwrap().digest, d1.digest);
        assert!(layout.find_tag("missing").unwrap().is_none());
        assert!(temp_names(layout.dir()).is_empty());

        // Resolution: by tag, by digest, and "the only one" refusing ambiguity.
        let sel = LayoutSelector::Tag("v1".into());
        assert_eq!(layout.resolve(Some(&sel)).unwrap().digest, d2.digest);
        let sel = LayoutSelector::Digest(d1.digest.clone());
        assert_eq!(layout.resolve(Some(&sel)).unwrap().digest, d1.digest);
        let e = layout.resolve(None).unwrap_err().to_string();
        assert!(e.contains("v1") && e.contains("other"), "{e}");
        let fetched = layout.read_manifest(&d2, 1 << 20).unwrap();
        assert_eq!(fetched.bytes, m2.to_vec());
        assert_eq!(fetched.digest, d2.digest);
    }

    #[test]
    fn update_lock_is_exclusive_and_released_on_drop() {
        let (_t, layout) = layout();
        let other = OciLayout::open(layout.dir()).unwrap();
        let held = layout.try_lock_updates().unwrap().expect("free at first");
        assert!(
            other.try_lock_updates().unwrap().is_none(),
            "held elsewhere"
        );
        // The index lock is a different file: holding the update lock never blocks tag updates.
        let desc = Descriptor::of(OCI_MANIFEST, b"m");
        other.set_tag("while-held", &desc).unwrap();
        drop(held);
        assert!(other.try_lock_updates().unwrap().is_some());
    }

    #[test]
    fn concurrent_tag_updates_through_separate_handles_lose_nothing() {
        // Separate handles share no in-process mutex, exactly like separate processes: only the
        // lock file keeps their read-modify-write of index.json apart.
        let (_t, layout) = layout();
        let dir = layout.dir().to_path_buf();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let handle = OciLayout::open(&dir).unwrap();
                    for i in 0..25 {
                        let desc = Descriptor::of(OCI_MANIFEST, format!("{t}-{i}").as_bytes());
                        handle.set_tag(&format!("t{t}-{i}"), &desc).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(layout.index().unwrap().manifests.len(), 8 * 25);
        assert!(temp_names(layout.dir()).is_empty());
    }

    #[test]
    fn stale_temporary_files_are_swept_and_fresh_ones_kept() {
        let (_t, layout) = layout();
        let blobs = layout.dir().join("blobs").join("sha256");
        let old = std::time::SystemTime::now() - STALE_TEMP_AGE - Duration::from_secs(60);
        for path in [layout.dir().join(".tmp-old"), blobs.join(".tmp-old")] {
            std::fs::write(&path, b"partial").unwrap();
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        std::fs::write(blobs.join(".tmp-fresh"), b"being written").unwrap();
        let digest = layout.write_blob(b"kept").unwrap();
        // The first index.json update of a handle sweeps.
        layout
            .set_tag("v1", &Descriptor::of(OCI_MANIFEST, b"m"))
            .unwrap();
        assert_eq!(temp_names(layout.dir()), vec![".tmp-fresh".to_string()]);
        assert!(layout.has_blob(&digest));
    }

    #[test]
    fn only_image_ignores_signature_tags() {
        let (_t, layout) = layout();
        let img = Descriptor::of(OCI_MANIFEST, b"img");
        let sig = Descriptor::of(OCI_MANIFEST, b"sig");
        layout.set_tag("v1", &img).unwrap();
        layout.set_tag(&img.digest.signature_tag(), &sig).unwrap();
        assert_eq!(layout.resolve(None).unwrap().digest, img.digest);
    }

    #[test]
    fn read_manifest_checks_size_and_digest() {
        let (_t, layout) = layout();
        let bytes = br#"{"schemaVersion":2,"manifests":[]}"#;
        let good = Descriptor::of(crate::manifest::OCI_INDEX, bytes);
        layout.write_blob(bytes).unwrap();
        assert!(layout.read_manifest(&good, 1 << 20).is_ok());
        let mut wrong_size = good.clone();
        wrong_size.size -= 1;
        assert!(matches!(
            layout.read_manifest(&wrong_size, 1 << 20),
            Err(Error::SizeMismatch { .. })
        ));
        assert!(matches!(
            layout.read_manifest(&good, 3),
            Err(Error::LimitExceeded { .. })
        ));
        std::fs::write(
            layout.blob_path(&good.digest),
            br#"{"schemaVersion":2,"manifests":{}}"#,
        )
        .unwrap();
        assert!(matches!(
            layout.read_manifest(&good, 1 << 20),
            Err(Error::DigestMismatch { .. })
        ));
    }
}
