//! End-to-end tests of the `signet` binary against a real `docker-registry`.

mod gate;
mod golden;
mod hostile;
mod hostile_server;
mod image;
mod interop;
mod keys;
mod policy;
mod registry;
mod robustness;
mod serve;
mod signing;
mod soak;
mod support;
