//! `docker save` tarballs (`docker-archive:FILE`), read-only: one pass over the tar builds an index of
//! member offsets, after which members are read by seeking, never by unpacking.
//!
//! A docker archive has no registry manifest, so Signet gives it one, deterministically:
//!
//! - If the tar also holds an OCI layout (`index.json`, written by docker 25 and later) with exactly
//!   one entry whose manifest agrees with `manifest.json` (same config digest, same number of
//!   layers) — or which is an index — that manifest is used exactly as stored. (Some docker 25
//!   releases write an OCI manifest listing only "foreign" layers; such a manifest disagrees with
//!   `manifest.json` and is ignored.)
//! - Otherwise the manifest is synthesised the way containers/image (`docker/internal/tarfile`,
//!   used by skopeo and podman) does, byte for byte, so the digest is the one
//!   `skopeo inspect docker-archive:FILE` prints: a Docker schema 2 manifest, compact JSON in the
//!   field order `schemaVersion, mediaType, config{mediaType,size,digest}, layers[…]`, whose config
//!   descriptor is the SHA-256 and length of the config file and whose layer descriptors are the
//!   config's `rootfs.diff_ids` with the layer files' sizes. Like containers/image, the layer media
//!   type is `application/vnd.docker.image.rootfs.diff.tar.gzip` even though `docker save` layers are
//!   uncompressed tar: changing it would change the digest. Compressed layer files (whose digest
//!   differs from their diff ID) are refused.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::manifest::{DOCKER_CONFIG, DOCKER_MANIFEST, OCI_INDEX, REF_NAME_ANNOTATION};
use crate::registry::{ByteStream, FetchedManifest};
use crate::{Descriptor, Digest, Error, ImageIndex, Manifest};

/// Largest `manifest.json`, `index.json` or image config accepted from an archive (containers/image
/// uses the same 4 MiB for configs).
pub const MAX_ARCHIVE_JSON_BYTES: u64 = 4 * 1024 * 1024;
/// Most tar members indexed.
pub const MAX_ARCHIVE_MEMBERS: usize = 100_000;
/// Media type containers/image gives layers of a synthesised docker-archive manifest.
pub const SYNTHESISED_LAYER_MEDIA_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const MAX_SYMLINK_HOPS: usize = 8;

#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Symlink { target: String },
}

/// One entry of `manifest.json`.
#[derive(Debug, Deserialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// A `docker save` archive opened for reading.
#[derive(Debug)]
pub struct DockerArchive {
    path: PathBuf,
    members: BTreeMap<String, Member>,
    blobs: BTreeMap<Digest, String>,
    manifest: FetchedManifest,
    repo_tags: Vec<String>,
    synthesised: bool,
}

impl DockerArchive {
    /// Open and index `path`, read `manifest.json` and the image config, and settle the manifest
    /// (see the module documentation). An archive holding more than one image is refused.
    pub fn open(path: impl AsRef<Path>) -> Result<DockerArchive, Error> {
        let path = path.as_ref().to_path_buf();
        let members = index_members(&path)?;
        let mut archive = DockerArchive {
            path,
            members,
            blobs: BTreeMap::new(),
            manifest: FetchedManifest {
                bytes: Vec::new(),
                digest: Digest::sha256(b""),
                media_type: String::new(),
                manifest: Manifest::Index(ImageIndex {
                    schema_version: 2,
                    media_type: None,
                    manifests: Vec::new(),
                    annotations: None,
                    extra: Default::default(),
                }),
            },
            repo_tags: Vec::new(),
            synthesised: true,
        };
        archive.load()?;
        Ok(archive)
    }

    fn load(&mut self) -> Result<(), Error> {
        let what = format!("docker archive {}", self.path.display());
        let invalid = |reason: String| Error::InvalidManifest {
            what: what.clone(),
            reason,
        };
        // Every blobs/<alg>/<hex> member is addressable by its digest.
        for name in self.members.keys() {
            if let Some(rest) = name.strip_prefix("blobs/") {
                if let Ok(digest) = rest.replacen('/', ":", 1).parse::<Digest>() {
                    self.blobs.insert(digest, name.clone());
                }
            }
        }
        let manifest_json = self
            .read_member("manifest.json", MAX_ARCHIVE_JSON_BYTES)
            .map_err(|e| match e {
                Error::NotFound { .. } => {
                    invalid("no manifest.json (not a docker save archive)".into())
                }
                other => other,
            })?;
        let items: Vec<ManifestItem> = serde_json::from_slice(&manifest_json)
            .map_err(|e| invalid(format!("manifest.json: {e}")))?;
        let item = match items.as_slice() {
            [one] => one,
            [] => return Err(invalid("manifest.json lists no image".into())),
            many => {
                return Err(Error::Unsupported(format!(
                    "{what} holds {} images; Signet reads archives of exactly one image",
                    many.len()
                )))
            }
        };
        self.repo_tags = item.repo_tags.clone().unwrap_or_default();

        let config_name = clean(&item.config);
        let config = self.read_member(&config_name, MAX_ARCHIVE_JSON_BYTES)?;
        let config_digest = Digest::sha256(&config);
        self.blobs
            .entry(config_digest.clone())
            .or_insert(config_name.clone());
        let config_value: Value = serde_json::from_slice(&config)
            .map_err(|e| invalid(format!("config {config_name}: {e}")))?;
        let diff_ids: Vec<Digest> = config_value
            .get("rootfs")
            .and_then(|r| r.get("diff_ids"))
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| invalid(format!("config {config_name}: rootfs.diff_ids: {e}")))?
            .ok_or_else(|| invalid(format!("config {config_name} has no rootfs.diff_ids")))?;
        if diff_ids.len() != item.layers.len() {
            return Err(invalid(format!(
                "{} layers in manifest.json but {} diff IDs in the config",
                item.layers.len(),
                diff_ids.len()
            )));
        }
        let mut layers = Vec::with_capacity(diff_ids.len());
        for (diff_id, layer) in diff_ids.iter().zip(&item.layers) {
            let name = self.resolve_name(&clean(layer))?;
            let size = match self.members.get(&name) {
                Some(Member::File { size, .. }) => *size,
                _ => return Err(invalid(format!("layer {layer} is missing"))),
            };
            let mut magic = [0u8; 2];
            let n = self
                .open_member(&name)?
                .read(&mut magic)
                .map_err(|e| Error::io(&self.path, e))?;
            if n == 2 && magic == [0x1f, 0x8b] {
                return Err(Error::Unsupported(format!(
                    "{what}: layer {layer} is gzip-compressed; only uncompressed docker save layers are supported"
                )));
            }
            self.blobs.entry(diff_id.clone()).or_insert(name);
            layers.push((diff_id.clone(), size));
        }

        if let Some(stored) = self.stored_oci_manifest(&config_digest, layers.len())? {
            self.manifest = stored;
            self.synthesised = false;
            return Ok(());
        }
        let bytes = synthesise_manifest(&config_digest, config.len() as u64, &layers);
        let manifest = Manifest::parse(&bytes, Some(DOCKER_MANIFEST), &what)?;
        self.manifest = FetchedManifest {
            digest: Digest::sha256(&bytes),
            media_type: DOCKER_MANIFEST.to_string(),
            bytes,
            manifest,
        };
        Ok(())
    }

    /// The manifest named by the archive's own `index.json`, if there is one Signet should prefer.
    fn stored_oci_manifest(
        &self,
        config_digest: &Digest,
        layer_count: usize,
    ) -> Result<Option<FetchedManifest>, Error> {
        if !self.members.contains_key("index.json") || !self.members.contains_key("oci-layout") {
            return Ok(None);
        }
        let what = format!("index.json in {}", self.path.display());
        let bytes = self.read_member("index.json", MAX_ARCHIVE_JSON_BYTES)?;
        let index = match Manifest::parse(&bytes, Some(OCI_INDEX), &what)? {
            Manifest::Index(index) => index,
            Manifest::Image(_) => return Ok(None),
        };
        let [entry] = index.manifests.as_slice() else {
            return Ok(None);
        };
        if !entry.is_manifest() || !self.blobs.contains_key(&entry.digest) {
            return Ok(None);
        }
        let fetched = self.read_manifest(entry, MAX_ARCHIVE_JSON_BYTES)?;
        let agrees = match &fetched.manifest {
            Manifest::Index(_) => true,
            Manifest::Image(m) => {
                &m.config.digest == config_digest && m.layers.len() == layer_count
            }
        };
        Ok(agrees.then_some(fetched))
    }

    /// The archive file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The image's manifest (synthesised or stored; see the module documentation).
    pub fn manifest(&self) -> &FetchedManifest {
        &self.manifest
    }

    /// Whether the manifest was synthesised (as opposed to read from the archive's `index.json`).
    pub fn is_synthesised(&self) -> bool {
        self.synthesised
    }

    /// The `RepoTags` of `manifest.json`.
    pub fn repo_tags(&self) -> &[String] {
        &self.repo_tags
    }

    /// The `org.opencontainers.image.ref.name` tags of the archive's `index.json`, if any.
    pub fn oci_tags(&self) -> Vec<String> {
        let Ok(bytes) = self.read_member("index.json", MAX_ARCHIVE_JSON_BYTES) else {
            return Vec::new();
        };
        serde_json::from_slice::<ImageIndex>(&bytes)
            .map(|index| {
                index
                    .manifests
                    .iter()
                    .filter_map(|d| d.annotation(REF_NAME_ANNOTATION).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the archive holds the blob (or manifest) `digest`.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        digest == &self.manifest.digest || self.blobs.contains_key(digest)
    }

    /// The stored size of the blob `digest`, if present.
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        let name = self.blobs.get(digest)?;
        match self.members.get(&self.resolve_name(name).ok()?) {
            Some(Member::File { size, .. }) => Some(*size),
            _ => None,
        }
    }

    /// A reader over the blob `digest`'s bytes (unchecked; see [`DockerArchive::read_blob`]);
    /// `NotFound` if the archive does not hold it.
    pub fn open_blob(&self, digest: &Digest) -> Result<std::io::Take<File>, Error> {
        let name = self.blobs.get(digest).ok_or_else(|| Error::NotFound {
            what: format!("blob {digest} in docker archive {}", self.path.display()),
        })?;
        self.open_member(name)
    }

    /// Read the blob `desc` names whole (at most `max` bytes), checked against its size and digest.
    pub fn read_blob(&self, desc: &Descriptor, max: u64) -> Result<Vec<u8>, Error> {
        let what = format!("blob {} in {}", desc.digest, self.path.display());
        if desc.digest == self.manifest.digest {
            return Ok(self.manifest.bytes.clone());
        }
        if desc.size > max {
            return Err(Error::LimitExceeded {
                what,
                limit: format!("{max} bytes"),
            });
        }
        let mut bytes = Vec::new();
        self.open_blob(&desc.digest)?
            .take(desc.size.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(&self.path, e))?;
        desc.verify(&what, &bytes)?;
        Ok(bytes)
    }

    /// Read the manifest `desc` names (the top manifest or one stored under `blobs/`), checked.
    pub fn read_manifest(&self, desc: &Descriptor, max: u64) -> Result<FetchedManifest, Error> {
        if desc.digest == self.manifest.digest {
            return Ok(self.manifest.clone());
        }
        let what = format!("manifest {} in {}", desc.digest, self.path.display());
        let bytes = self.read_blob(desc, max)?;
        let manifest = Manifest::parse(&bytes, Some(&desc.media_type), &what)?;
        Ok(FetchedManifest {
            digest: desc.digest.clone(),
            media_type: manifest.media_type().to_string(),
            bytes,
            manifest,
        })
    }

    /// Stream the blob `desc` names; the stream ends in an error on a digest or size mismatch.
    pub async fn blob_stream(&self, desc: &Descriptor) -> Result<ByteStream, Error> {
        let what = format!("blob {} in {}", desc.digest, self.path.display());
        if desc.digest == self.manifest.digest {
            let bytes = bytes::Bytes::from(self.manifest.bytes.clone());
            let raw: ByteStream = Box::pin(futures_util::stream::iter([Ok(bytes)]));
            return Ok(crate::store::verified_stream(raw, desc, what));
        }
        let reader = self.open_blob(&desc.digest)?;
        let limit = reader.limit();
        let file = reader.into_inner();
        let raw =
            crate::layout::file_stream(tokio::fs::File::from_std(file), self.path.clone(), limit);
        Ok(crate::store::verified_stream(raw, desc, what))
    }

    fn read_member(&self, name: &str, max: u64) -> Result<Vec<u8>, Error> {
        let reader = self.open_member(name)?;
        if reader.limit() > max {
            return Err(Error::LimitExceeded {
                what: format!("{name} in {}", self.path.display()),
                limit: format!("{max} bytes"),
            });
        }
        let mut bytes = Vec::new();
        let mut reader = reader;
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(bytes)
    }

    fn open_member(&self, name: &str) -> Result<std::io::Take<File>, Error> {
        let resolved = self.resolve_name(name)?;
        let Some(Member::File { offset, size }) = self.members.get(&resolved) else {
            return Err(Error::NotFound {
                what: format!("{name} in docker archive {}", self.path.display()),
            });
        };
        let mut file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        file.seek(SeekFrom::Start(*offset))
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(file.take(*size))
    }

    /// Follow symbolic links between members (`docker save` links duplicate layers).
    fn resolve_name(&self, name: &str) -> Result<String, Error> {
        let mut current = name.to_string();
        for _ in 0..MAX_SYMLINK_HOPS {
            match self.members.get(&current) {
                Some(Member::Symlink { target }) => {
                    let base = current.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
                    current = if target.starts_with('/') {
                        clean(target)
                    } else {
                        clean(&format!("{base}/{target}"))
                    };
                }
                _ => return Ok(current),
            }
        }
        Err(Error::InvalidManifest {
            what: format!("docker archive {}", self.path.display()),
            reason: format!("too many symbolic links resolving {name}"),
        })
    }
}

/// The manifest containers/image generates for a docker archive (Go `json.Marshal` of its
/// `manifest.Schema2`): compact, fields in struct order.
fn synthesise_manifest(config: &Digest, config_size: u64, layers: &[(Digest, u64)]) -> Vec<u8> {
    let layers: Vec<String> = layers
        .iter()
        .map(|(digest, size)| {
            format!(
                r#"{{"mediaType":"{SYNTHESISED_LAYER_MEDIA_TYPE}","size":{size},"digest":"{digest}"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","size":{config_size},"digest":"{config}"}},"layers":[{}]}}"#,
        layers.join(",")
    )
    .into_bytes()
}

/// Normalise a member path the way Go's `path.Clean` does for relative names (no `.`, no `..`
/// beyond the root, no duplicate or trailing slashes).
fn clean(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

fn index_members(path: &Path) -> Result<BTreeMap<String, Member>, Error> {
    let file = File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound {
                what: format!("docker archive {}", path.display()),
            }
        } else {
            Error::io(path, e)
        }
    })?;
    let invalid = |reason: String| Error::InvalidManifest {
        what: format!("docker archive {}", path.display()),
        reason,
    };
    let mut tar = tar::Archive::new(std::io::BufReader::new(file));
    let mut members = BTreeMap::new();
    let entries = tar
        .entries()
        .map_err(|e| invalid(format!("not a tar file: {e}")))?;
    for entry in entries {
        // The tar crate's messages can quote raw header bytes; say only where the damage is.
        let entry = entry.map_err(|_| {
            if members.is_empty() {
                invalid("not a tar file".into())
            } else {
                invalid(format!("corrupt tar file after {} members", members.len()))
            }
        })?;
        if members.len() >= MAX_ARCHIVE_MEMBERS {
            return Err(Error::LimitExceeded {
                what: format!("number of members of {}", path.display()),
                limit: MAX_ARCHIVE_MEMBERS.to_string(),
            });
        }
        let name = clean(&String::from_utf8_lossy(&entry.path_bytes()));
        let kind = entry.header().entry_type();
        if kind.is_file() || kind == tar::EntryType::Continuous {
            members.insert(
                name,
                Member::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
            );
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).to_string())
                .unwrap_or_default();
            // Hard link targets are archive-root relative; make them absolute for resolve_name.
            let target = if kind.is_hard_link() {
                format!("/{target}")
            } else {
                target
            };
            members.insert(name, Member::Symlink { target });
        }
    }
    if members.is_empty() {
        return Err(invalid("empty or not a tar file".into()));
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn add(builder: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, data).unwrap();
    }

    fn archive(files: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf) {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in files {
            add(&mut builder, name, data);
        }
        let bytes = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn synthesises_the_containers_image_manifest() {
        let layer = b"layer-bytes";
        let diff = Digest::sha256(layer);
        let config = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#);
        let cfg_digest = Digest::sha256(config.as_bytes());
        let manifest = format!(
            r#"[{{"Config":"{}.json","RepoTags":["app:v1"],"Layers":["abc/layer.tar"]}}]"#,
            cfg_digest.hex()
        );
        let (_d, path) = archive(&[
            (&format!("{}.json", cfg_digest.hex()), config.as_bytes()),
            ("abc/layer.tar", layer),
            ("manifest.json", manifest.as_bytes()),
        ]);
        let a = DockerArchive::open(&path).unwrap();
        assert!(a.is_synthesised());
        assert_eq!(a.repo_tags(), ["app:v1".to_string()]);
        let expected = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{cfg_digest}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":11,"digest":"{diff}"}}]}}"#,
            config.len()
        );
        assert_eq!(
            String::from_utf8(a.manifest().bytes.clone()).unwrap(),
            expected
        );
        assert_eq!(a.manifest().digest, Digest::sha256(expected.as_bytes()));
        let desc = Descriptor::of("x", layer);
        assert_eq!(a.read_blob(&desc, 100).unwrap(), layer.to_vec());
        assert_eq!(a.blob_size(&diff), Some(11));
    }

    /// docker 25+ archives: an `index.json` manifest agreeing with `manifest.json` is used as
    /// stored; one that disagrees (the moby "foreign layers only" bug) is ignored for synthesis.
    #[test]
    fn prefers_an_agreeing_stored_oci_manifest() {
        let layer = b"layer-bytes";
        let diff = Digest::sha256(layer);
        let config = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#);
        let cfg = Digest::sha256(config.as_bytes());
        let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        let manifest_json = format!(
            r#"[{{"Config":"{}","RepoTags":["app:v1"],"Layers":["{}"]}}]"#,
            blob(&cfg),
            blob(&diff)
        );
        for (layers, expect_stored) in [
            (
                format!(
                    r#"[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{diff}","size":11}}]"#
                ),
                true,
            ),
            ("[]".to_string(), false),
        ] {
            let oci = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cfg}","size":{}}},"layers":{layers}}}"#,
                config.len()
            );
            let oci_digest = Digest::sha256(oci.as_bytes());
            let index = format!(
                r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{oci_digest}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#,
                oci.len()
            );
            let (_d, path) = archive(&[
                (&blob(&cfg), config.as_bytes()),
                (&blob(&diff), layer),
                (&blob(&oci_digest), oci.as_bytes()),
                ("index.json", index.as_bytes()),
                ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
                ("manifest.json", manifest_json.as_bytes()),
            ]);
            let a = DockerArchive::open(&path).unwrap();
            assert_eq!(a.is_synthesised(), !expect_stored);
            assert_eq!(a.manifest().digest == oci_digest, expect_stored);
            assert_eq!(a.oci_tags(), ["v1".to_string()]);
        }
    }

    #[test]
    fn refuses_bad_archives_with_clear_errors() {
        let (_d, path) = archive(&[("other.txt", b"x")]);
        let e = DockerArchive::open(&path).unwrap_err().to_string();
        assert!(e.contains("no manifest.json"), "{e}");

        let (_d, path) = archive(&[
            (
                "manifest.json",
                b"[{\"Config\":\"c.json\",\"Layers\":[\"l.tar\"]}]",
            ),
            ("c.json", b"{\"rootfs\":{\"diff_ids\":[]}}"),
        ]);
        let e = DockerArchive::open(&path).unwrap_err().to_string();
        assert!(
            e.contains("1 layers in manifest.json but 0 diff IDs"),
            "{e}"
        );

        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.tar");
        std::fs::write(&junk, b"definitely not a tar file").unwrap();
        let e = DockerArchive::open(&junk).unwrap_err().to_string();
        assert!(e.contains("junk.tar: not a tar file"), "{e}");
        let e = DockerArchive::open(dir.path().join("missing.tar"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.tar"), "{e}");
    }

    #[test]
    fn clean_matches_go_path_clean() {
        assert_eq!(clean("./a//b/./c"), "a/b/c");
        assert_eq!(clean("a/../b"), "b");
        assert_eq!(clean("blobs/sha256/x/"), "blobs/sha256/x");
    }
}
