//! One view over every place an image can live (registry, OCI layout, docker archive): resolve the
//! named image, read manifests and blobs (always digest-checked), and write where writing makes sense.

use bytes::Bytes;

use crate::registry::{ByteStream, FetchedManifest, RegistryClient};
use crate::{
    Descriptor, Digest, DockerArchive, Error, ImageLocation, LayoutSelector, Manifest, OciLayout,
    Reference,
};

/// An image source or destination.
// The variants' shape is the crate's public API; a program holds one or two stores, so the size of
// the archive variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum ImageStore {
    /// A repository in a registry.
    Registry {
        /// The client used for every request.
        client: RegistryClient,
        /// The image as named (tag and/or digest).
        reference: Reference,
    },
    /// An OCI image layout directory.
    Layout {
        /// The layout.
        layout: OciLayout,
        /// Which of its images is meant.
        selector: Option<LayoutSelector>,
    },
    /// A `docker save` tarball (read-only).
    Archive(DockerArchive),
}

impl ImageStore {
    /// Open `location` for reading; a layout or archive must already exist.
    pub fn open(location: &ImageLocation, client: &RegistryClient) -> Result<ImageStore, Error> {
        Ok(match location {
            ImageLocation::Registry(reference) => ImageStore::Registry {
                client: client.clone(),
                reference: reference.clone(),
            },
            ImageLocation::Layout { dir, selector } => ImageStore::Layout {
                layout: OciLayout::open(dir)?,
                selector: selector.clone(),
            },
            ImageLocation::DockerArchive { path } => {
                ImageStore::Archive(DockerArchive::open(path)?)
            }
        })
    }

    /// Open `location` for writing: a layout is created if missing; archives are read-only.
    pub fn open_for_write(
        location: &ImageLocation,
        client: &RegistryClient,
    ) -> Result<ImageStore, Error> {
        Ok(match location {
            ImageLocation::Registry(reference) => ImageStore::Registry {
                client: client.clone(),
                reference: reference.clone(),
            },
            ImageLocation::Layout { dir, selector } => ImageStore::Layout {
                layout: OciLayout::create_or_open(dir)?,
                selector: selector.clone(),
            },
            ImageLocation::DockerArchive { path } => {
                return Err(Error::Unsupported(format!(
                    "docker-archive:{} is read-only; write to an OCI layout (oci:DIR:TAG) or a registry",
                    path.display()
                )))
            }
        })
    }

    fn max_manifest_bytes(&self) -> u64 {
        match self {
            ImageStore::Registry { client, .. } => client.options().max_manifest_bytes,
            _ => crate::manifest::DEFAULT_MAX_MANIFEST_BYTES,
        }
    }

    /// The named image's top manifest (an image manifest or an index), digest-checked.
    pub async fn resolve(&self) -> Result<FetchedManifest, Error> {
        match self {
            ImageStore::Registry { client, reference } => client.get_manifest(reference).await,
            ImageStore::Layout { layout, selector } => {
                let desc = layout.resolve(selector.as_ref())?;
                layout.read_manifest(&desc, self.max_manifest_bytes())
            }
            ImageStore::Archive(archive) => Ok(archive.manifest().clone()),
        }
    }

    /// A child manifest by its descriptor, checked against the descriptor's digest (and, where
    /// the source gives the bytes whole, its size).
    pub async fn manifest(&self, descriptor: &Descriptor) -> Result<FetchedManifest, Error> {
        let max = self.max_manifest_bytes();
        match self {
            ImageStore::Registry { client, reference } => {
                let fetched = client
                    .get_manifest(&reference.with_digest(descriptor.digest.clone()))
                    .await?;
                if fetched.digest != descriptor.digest {
                    return Err(Error::DigestMismatch {
                        what: format!("manifest {} in {reference}", descriptor.digest),
                        expected: descriptor.digest.clone(),
                        actual: fetched.digest,
                    });
                }
                if fetched.bytes.len() as u64 != descriptor.size {
                    return Err(Error::SizeMismatch {
                        what: format!("manifest {} in {reference}", descriptor.digest),
                        expected: descriptor.size,
                        actual: fetched.bytes.len() as u64,
                    });
                }
                Ok(fetched)
            }
            ImageStore::Layout { layout, .. } => layout.read_manifest(descriptor, max),
            ImageStore::Archive(archive) => archive.read_manifest(descriptor, max),
        }
    }

    /// The manifest tagged `tag` next to the named image (same repository, same layout), or
    /// `Ok(None)` if there is no such tag. Docker archives carry no tags of this kind: always `None`.
    pub async fn manifest_by_tag(&self, tag: &str) -> Result<Option<FetchedManifest>, Error> {
        match self {
            ImageStore::Registry { client, reference } => {
                match client.get_manifest(&reference.with_tag(tag)?).await {
                    Ok(fetched) => Ok(Some(fetched)),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            }
            ImageStore::Layout { layout, .. } => match layout.find_tag(tag)? {
                Some(desc) => Ok(Some(
                    layout.read_manifest(&desc, self.max_manifest_bytes())?,
                )),
                None => Ok(None),
            },
            ImageStore::Archive(_) => Ok(None),
        }
    }

    /// Stream a blob; the stream ends in an error if the bytes do not match the descriptor's digest
    /// and size.
    pub async fn blob_stream(&self, descriptor: &Descriptor) -> Result<ByteStream, Error> {
        match self {
            ImageStore::Registry { client, reference } => {
                client.get_blob(reference, descriptor).await
            }
            ImageStore::Layout { layout, .. } => layout.blob_stream(descriptor).await,
            ImageStore::Archive(archive) => archive.blob_stream(descriptor).await,
        }
    }

    /// Read a small blob whole (at most `max_bytes`), checked against the descriptor.
    pub async fn blob_bytes(
        &self,
        descriptor: &Descriptor,
        max_bytes: u64,
    ) -> Result<Vec<u8>, Error> {
        match self {
            ImageStore::Registry { client, reference } => {
                client
                    .get_blob_bytes(reference, descriptor, max_bytes)
                    .await
            }
            ImageStore::Layout { layout, .. } => layout.read_blob(descriptor, max_bytes),
            ImageStore::Archive(archive) => archive.read_blob(descriptor, max_bytes),
        }
    }

    /// Whether the blob `digest` exists here.
    pub async fn has_blob(&self, digest: &Digest) -> Result<bool, Error> {
        match self {
            ImageStore::Registry { client, reference } => client.has_blob(reference, digest).await,
            ImageStore::Layout { layout, .. } => Ok(layout.has_blob(digest)),
            ImageStore::Archive(archive) => Ok(archive.has_blob(digest)),
        }
    }

    /// Store `bytes` as a blob; returns its descriptor (SHA-256, size, `media_type`).
    pub async fn put_blob(&self, bytes: Bytes, media_type: &str) -> Result<Descriptor, Error> {
        let descriptor = Descriptor::of(media_type, &bytes);
        match self {
            ImageStore::Registry { client, reference } => {
                client.put_blob(reference, bytes).await?;
            }
            ImageStore::Layout { layout, .. } => {
                layout.write_blob(&bytes)?;
            }
            ImageStore::Archive(_) => return Err(self.read_only()),
        }
        Ok(descriptor)
    }

    /// Store a blob of known digest and size from a stream (checked before it becomes visible).
    pub async fn put_blob_stream(
        &self,
        descriptor: &Descriptor,
        stream: ByteStream,
    ) -> Result<(), Error> {
        match self {
            ImageStore::Registry { client, reference } => {
                client.put_blob_stream(reference, descriptor, stream).await
            }
            ImageStore::Layout { layout, .. } => layout.write_blob_stream(descriptor, stream).await,
            ImageStore::Archive(_) => Err(self.read_only()),
        }
    }

    /// Store manifest `bytes` of `media_type`, under `tag` or (with `None`) by digest only. In a
    /// layout an untagged manifest is only stored as a blob (it is reachable from the index that
    /// will name it). Returns the digest of `bytes`.
    pub async fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<Digest, Error> {
        let digest = Digest::sha256(bytes);
        match self {
            ImageStore::Registry { client, reference } => {
                let target = match tag {
                    Some(tag) => reference.with_tag(tag)?,
                    None => reference.with_digest(digest.clone()),
                };
                client.put_manifest(&target, bytes, media_type).await
            }
            ImageStore::Layout { layout, .. } => {
                // Refuse to store something that is not a manifest as one.
                Manifest::parse(bytes, Some(media_type), "manifest to store")?;
                layout.write_blob(bytes)?;
                if let Some(tag) = tag {
                    layout.set_tag(tag, &Descriptor::of(media_type, bytes))?;
                }
                Ok(digest)
            }
            ImageStore::Archive(_) => Err(self.read_only()),
        }
    }

    /// How to name this store in messages (`registry/repo:tag`, `oci:DIR:TAG`, `docker-archive:FILE`).
    pub fn display_name(&self) -> String {
        match self {
            ImageStore::Registry { reference, .. } => reference.to_string(),
            ImageStore::Layout { layout, selector } => ImageLocation::Layout {
                dir: layout.dir().to_path_buf(),
                selector: selector.clone(),
            }
            .to_string(),
            ImageStore::Archive(archive) => ImageLocation::DockerArchive {
                path: archive.path().to_path_buf(),
            }
            .to_string(),
        }
    }

    fn read_only(&self) -> Error {
        Error::Unsupported(format!("{} is read-only", self.display_name()))
    }
}

pub use crate::stream::verified_stream;
