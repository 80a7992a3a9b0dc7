//! CEL attestation conditions: the input is an expression, a NUL byte, then JSON (the
//! predicate; it is also passed as the image config). Compiling applies the load bounds;
//! evaluating applies the cost bound. Neither may panic, hang (libFuzzer's `-timeout`) or
//! exhaust memory (`-rss_limit_mb`), whatever the expression and the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_policy::cel::{Expression, Outcome};

fuzz_target!(|data: &[u8]| {
    let (source, json) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    let Ok(source) = std::str::from_utf8(source) else {
        return;
    };
    let Ok(expression) = Expression::compile(source) else {
        return;
    };
    let Ok(predicate) = serde_json::from_slice::<serde_json::Value>(json) else {
        return;
    };
    let subject = serde_json::json!([{"name": "registry.example/app", "digest": {"sha256": "00"}}]);
    let outcome = expression.evaluate(&predicate, &subject, &predicate);
    // The same input gives the same verdict (no hidden state between runs).
    let again = expression.evaluate(&predicate, &subject, &predicate);
    match (&outcome, &again) {
        (Outcome::True, Outcome::True) | (Outcome::False, Outcome::False) => {}
        (Outcome::Error(_), Outcome::Error(_)) | (Outcome::TooCostly(_), Outcome::TooCostly(_)) => {
        }
        _ => panic!("{source:?} gave {outcome:?}, then {again:?}"),
    }
});
