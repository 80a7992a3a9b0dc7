//! Policy documents (Signet YAML/JSON and containers-policy.json): linting and loading must never
//! panic, and must agree on whether a document has errors. Every key file a policy names loads as
//! the same fixed public key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_policy::{lint, Policy, Severity};

const KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFNLqFhf4fiN6o/glAuYnq2jYUeL0
vRuLu/z39pmbVwS9ff5AYnlwaP9sxREajdLY9ynM6G1sy6AAmb7Z63TsLg==
-----END PUBLIC KEY-----
";

fn loader(path: &str) -> Result<Vec<u8>, String> {
    if path.contains("missing") {
        Err(format!("no such file {path}"))
    } else {
        Ok(KEY.as_bytes().to_vec())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let diagnostics = lint("fuzz.yaml", text, &loader);
    let has_errors = diagnostics.iter().any(|d| d.severity == Severity::Error);
    let loaded = Policy::load("fuzz.yaml", text, &loader);
    assert_eq!(
        loaded.is_ok(),
        !has_errors,
        "lint and load disagree on {text:?}: {diagnostics:?}"
    );
    if let Ok(loaded) = loaded {
        for reference in ["docker.io/library/busybox:latest", "registry.example.com/a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000"] {
            if let Ok(reference) = reference.parse() {
                let _ = loaded.policy.select(&reference);
            }
        }
    }
});
