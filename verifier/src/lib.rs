//! `signet-verifier`: the engine. It resolves an image wherever it lives, checks every digest,
//! verifies its cosign signatures, signs images (appending, never replacing, signatures) and copies
//! images together with their signatures.
//!
//! ```no_run
//! # async fn run() -> Result<(), signet_verifier::Error> {
//! use signet_oci::{store::ImageStore, ImageLocation, RegistryClient, RegistryOptions};
//! let client = RegistryClient::new(RegistryOptions::default())?;
//! let location: ImageLocation = "127.0.0.1:5000/app:v1".parse()?;
//! let store = ImageStore::open(&location, &client)?;
//! let identity = "127.0.0.1:5000/app:v1".parse()?;
//! let key = signet_sign::keys::read_public_key_file("cosign.pub".as_ref())?;
//! let options = signet_verifier::verify::VerifyOptions { keys: vec![key], ..Default::default() };
//! let report = signet_verifier::verify::verify_image(&store, &store, &identity, &options).await?;
//! println!("{:?}", report.outcome);
//! # Ok(()) }
//! ```

pub mod attest;
pub mod bundle_sign;
pub mod copy;
pub mod enforce;
pub mod error;
pub mod identity;
pub mod keyless;
pub mod pki_files;
pub mod sign;
pub mod signatures;
pub mod verify;

pub use error::Error;
