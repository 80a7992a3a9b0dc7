//! Image manifests, indexes and descriptors (OCI image spec and Docker schema 2), parsed from the
//! exact bytes received so that digests are always over what was stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Digest, Error};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Media type of a cosign simple-signing layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The `Accept` header value naming all four manifest types.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
/// Annotation naming a manifest's tag in an OCI layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Default upper bound on the size of a manifest we read.
pub const DEFAULT_MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// A platform, as in an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: String,
    /// CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// Architecture variant (`v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Anything else the entry carries (`os.version`, `features`), kept so we never drop it.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Platform {
    /// `os/arch[/variant]`.
    pub fn display(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{}", self.os, self.architecture, v),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// Whether this platform matches `os/arch[/variant]` (a missing variant in the query matches any).
    pub fn matches(&self, wanted: &str) -> bool {
        let mut parts = wanted.split('/');
        let (os, arch, variant) = (parts.next(), parts.next(), parts.next());
        os == Some(self.os.as_str())
            && arch == Some(self.architecture.as_str())
            && (variant.is_none() || variant == self.variant.as_deref())
    }
}

/// A content descriptor: what a manifest says about a blob or child manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes of the referenced content.
    pub size: u64,
    /// Annotations (cosign keeps signatures here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Any other fields (`urls`, `artifactType`, `data`), kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Descriptor {
    /// A descriptor of `bytes` with `media_type` and no annotations.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: Digest::sha256(bytes),
            size: bytes.len() as u64,
            annotations: None,
            platform: None,
            extra: Map::new(),
        }
    }

    /// Whether this descriptor names a manifest or index rather than a blob.
    pub fn is_manifest(&self) -> bool {
        matches!(
            self.media_type.as_str(),
            OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_MANIFEST_LIST
        )
    }

    /// Check that `bytes` are what this descriptor names: its size first, then its digest.
    pub fn verify(&self, what: &str, bytes: &[u8]) -> Result<(), Error> {
        if bytes.len() as u64 != self.size {
            return Err(Error::SizeMismatch {
                what: what.to_string(),
                expected: self.size,
                actual: bytes.len() as u64,
            });
        }
        self.digest.verify(what, bytes)
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type, when it states one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, in order.
    pub layers: Vec<Descriptor>,
    /// Manifest annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Any other fields (`subject`, `artifactType`), kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type, when it states one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The child manifests.
    pub manifests: Vec<Descriptor>,
    /// Index annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Any other fields, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A parsed manifest of either kind.
// Both variants are short-lived (one per fetch); boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Manifest {
    /// A single-platform image.
    Image(ImageManifest),
    /// A multi-platform index.
    Index(ImageIndex),
}

impl Manifest {
    /// Parse manifest bytes. `content_type` is the media type the source declared (HTTP
    /// `Content-Type`, descriptor `mediaType`), used when the document does not state its own.
    pub fn parse(bytes: &[u8], content_type: Option<&str>, what: &str) -> Result<Manifest, Error> {
        let invalid = |reason: String| Error::InvalidManifest {
            what: what.to_string(),
            reason,
        };
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| invalid("not a JSON object".into()))?;
        match object.get("schemaVersion").and_then(Value::as_u64) {
            Some(2) => {}
            Some(1) => {
                return Err(invalid(
                    "Docker schema 1 manifests are not supported".into(),
                ))
            }
            _ => return Err(invalid("schemaVersion must be 2".into())),
        }
        let declared = object
            .get("mediaType")
            .and_then(Value::as_str)
            .or(content_type);
        let is_index = match declared {
            Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => true,
            Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
            _ => object.contains_key("manifests") && !object.contains_key("layers"),
        };
        if is_index {
            serde_json::from_value(value)
                .map(Manifest::Index)
                .map_err(|e| invalid(e.to_string()))
        } else {
            serde_json::from_value(value)
                .map(Manifest::Image)
                .map_err(|e| invalid(e.to_string()))
        }
    }

    /// The media type to declare when serving or storing these bytes.
    pub fn media_type(&self) -> &str {
        match self {
            Manifest::Image(m) => m.media_type.as_deref().unwrap_or(OCI_MANIFEST),
            Manifest::Index(i) => i.media_type.as_deref().unwrap_or(OCI_INDEX),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_an_oci_manifest_without_media_type() {
        let bytes = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
        match Manifest::parse(bytes, None, "m").unwrap() {
            Manifest::Image(m) => {
                assert_eq!(m.config.size, 2);
                assert!(m.layers.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_schema_one_and_garbage() {
        // Each refused as an invalid manifest, for its own defect.
        for (bytes, why) in [
            (
                &br#"{"schemaVersion":1}"#[..],
                "Docker schema 1 manifests are not supported",
            ),
            (&b"[]"[..], "invalid m: "),
            (&b"{"[..], "invalid m: "),
        ] {
            let err = Manifest::parse(bytes, None, "m").unwrap_err();
            assert!(
                matches!(err, Error::InvalidManifest { .. }) && err.to_string().contains(why),
                "{err}"
            );
        }
    }

    #[test]
    fn platform_matching() {
        let p = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
            extra: Map::new(),
        };
        assert!(p.matches("linux/arm64"));
        assert!(p.matches("linux/arm64/v8"));
        assert!(!p.matches("linux/arm64/v7"));
        assert!(!p.matches("linux/amd64"));
    }
}
