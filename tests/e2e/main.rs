//! End-to-end tests of the `signet` binary against a real `docker-registry`.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a program's output, not a library's

mod attest;
mod attest_bounds;
mod attest_pki_cli;
mod attest_policy;
mod attest_requests;
mod cache_time;
mod cli_conventions;
mod continuous;
mod continuous_vuln;
mod credentials;
mod deploy;
mod gate;
mod gate_referrers;
mod gate_trust_reload;
mod golden;
mod hostile;
mod hostile_server;
mod image;
mod interop;
mod keyless_blob;
mod keyless_image;
mod keys;
mod policy;
mod policy_bundle_fail_closed;
mod proxy_edges;
mod proxy_env;
mod rate_limit;
mod referrers;
mod registry;
mod robustness;
mod serve;
mod signing;
mod sigstore_js;
mod soak;
mod ssrf;
mod support;
mod tuf;
