//! `signet-oci`: what an image *is* and where it lives. Validated [`Digest`]s and [`Reference`]s,
//! manifests and descriptors parsed from their exact bytes, OCI image layouts on disk, `docker save`
//! archives, and a bounded, digest-checking client for the OCI distribution API.
//!
//! ```
//! use signet_oci::{Digest, Reference};
//! let r: Reference = "busybox".parse().unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
//! let d = Digest::sha256(b"{}");
//! assert_eq!(d.signature_tag().len(), 64 + 11);
//! ```

pub mod bounded;
pub mod clock;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod reference;

pub use bounded::{read_at_most, read_file_bounded};
pub use digest::{Algorithm, Digest, DigestHasher};
pub use error::Error;
pub use manifest::{Descriptor, ImageIndex, ImageManifest, Manifest, Platform};
pub use reference::{ImageLocation, LayoutSelector, Reference};
pub mod registry;
pub use registry::{FetchedManifest, RegistryClient, RegistryOptions};
pub mod archive;
pub mod layout;
pub mod referrers;
pub mod store;
pub mod stream;
pub mod validate;
pub use archive::DockerArchive;
pub use layout::OciLayout;
pub use store::ImageStore;
pub use validate::{validate, ValidateOptions, ValidateProgress, ValidationReport};
