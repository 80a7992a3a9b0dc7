//! Instruction counts per keyless verification (`bench/keyless.sh` runs it under
//! `valgrind --tool=callgrind` when `COUNT=1`): verifies one bundle of `testdata/sigstore-bundles/`
//! N times, by Signet or by sigstore-verify called directly, with the accelerated or the plain
//! crypto provider. Counting the same run at two N and dividing the difference by the difference
//! of N leaves out start-up and the one-off table builds. The load of a shared machine does not
//! change instruction counts, as it does timings.
//!
//! Usage: `keyless_count CASE signet|sigstore-verify accelerated|plain N`.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a program's output, not a library's

use std::error::Error;
use std::path::PathBuf;

use signet_keyless::{Artifact, Bundle, Instance, Signer, TrustSource, TrustedRoot, Verifier};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [case, who, provider, n] = args.as_slice() else {
        return Err("usage: keyless_count CASE signet|sigstore-verify accelerated|plain N".into());
    };
    let n: usize = n.parse()?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/sigstore-bundles")
        .join(case);
    let json = std::fs::read_to_string(dir.join("bundle.sigstore.json"))?;
    let artifact = std::fs::read(dir.join("artifact"))?;
    let root_json = Instance::PublicGood.embedded_json();
    let root = TrustedRoot::from_json(
        root_json.as_bytes(),
        TrustSource::Embedded(Instance::PublicGood),
    )?;
    let signet = Verifier::new(&root)?;
    let direct_root = sigstore_trust_root::TrustedRoot::from_json(root_json)?;
    let direct = sigstore_verify::Verifier::new(&direct_root)?;
    let policy = sigstore_verify::VerificationPolicy::any_identity();
    signet_keyless::__bench_set_accelerated(provider == "accelerated");
    for _ in 0..n {
        match who.as_str() {
            "signet" => {
                let bundle = Bundle::from_json(json.as_bytes())?;
                signet.verify(Artifact::Bytes(&artifact), &bundle, Signer::Certificate)?;
            }
            _ => {
                let bundle = sigstore_types::Bundle::from_json(&json)?;
                direct.verify(artifact.as_slice(), &bundle, &policy)?;
            }
        }
    }
    Ok(())
}
