//! One module per `signet` command; each exposes its clap arguments and a `run` function returning
//! an [`ExitCode`](crate::exit::ExitCode).

pub mod attest;
pub mod audit;
pub mod completion;
pub mod copy;
pub mod digest;
pub mod identity_args;
pub mod keys;
pub mod policy;
pub mod serve;
pub mod sign;
pub mod trust;
pub mod validate;
pub mod verify;
pub mod verify_blob;
pub mod verify_keyless;
pub mod verify_policy;

/// A runtime for commands that talk to registries or hash in parallel.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    runtime_with_workers(None)
}

/// [`runtime`] with `workers` threads (`None`: one per CPU the process may use).
pub fn runtime_with_workers(workers: Option<u16>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(usize::from(n));
    }
    Ok(builder.enable_all().build()?)
}
