//! End-to-end tests of the `signet` binary against a real `docker-registry`.

mod image;
mod keys;
mod registry;
mod support;
mod signing;
mod gate;
mod interop;
mod policy;
mod hostile;
mod hostile_server;
mod robustness;
mod serve;
mod soak;
mod golden;
