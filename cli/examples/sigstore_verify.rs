//! Benchmark helper (not a test; run by `bench/sign_verify.sh`): sigstore-rs 0.15 (the `sigstore`
//! crate, an independent cosign implementation) verifying an image's key-based signatures in a
//! registry, as `cosign verify --key` does: fetch the `.sig` layers, keep those the key verifies.
//!
//! Usage: `sigstore_verify IMAGE PUB`. Plain HTTP is used for a `127.0.0.1` registry only.
//! Exits 0 and prints the number of verified layers when at least one verifies, 1 otherwise.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a program's output, not a library's

use anyhow::Context as _;
use sigstore::cosign::verification_constraint::{
    PublicKeyVerifier, VerificationConstraint, VerificationConstraintVec,
};
use sigstore::cosign::{verify_constraints, ClientBuilder, CosignCapabilities};
use sigstore::crypto::SigningScheme;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let mut args = std::env::args().skip(1);
    let image: OciReference = args.next().context("IMAGE is required")?.parse()?;
    let key = std::fs::read(args.next().context("PUB is required")?)?;
    let plain_http: Vec<String> = if image.registry().starts_with("127.0.0.1:") {
        vec![image.registry().to_string()]
    } else {
        Vec::new()
    };
    let mut client = ClientBuilder::default()
        .with_oci_client_config(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain_http),
            ..ClientConfig::default()
        })
        .build()?;
    let layers = client
        .trusted_signature_layers(&Auth::Anonymous, &image)
        .await?;
    let verifier = PublicKeyVerifier::new(&key, &SigningScheme::ECDSA_P256_SHA256_ASN1)?;
    let verified = layers
        .iter()
        .filter(|l| verifier.verify(l).unwrap_or(false))
        .count();
    let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
    match verify_constraints(&layers, constraints.iter()) {
        Ok(()) => {
            println!("{verified} of {} layer(s) verified", layers.len());
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(_) => {
            eprintln!("no layer verified ({} layer(s))", layers.len());
            Ok(std::process::ExitCode::FAILURE)
        }
    }
}
