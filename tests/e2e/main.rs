//! End-to-end tests of the `signet` binary against a real `docker-registry`.

mod support;
mod registry;
mod image;
mod keys;
