//! Bounded reading of untrusted JSON: size before parsing, nesting depth before serde.

use std::io::Read as _;
use std::path::Path;

use crate::error::{Input, KeylessError};

/// Deepest nesting accepted. Sigstore documents nest about 6 deep; serde_json's own limit (128)
/// would also stop a 10,000-deep document, but this check answers first with a clear message.
pub(crate) const MAX_DEPTH: usize = 32;

/// Read at most `limit` bytes of `path`; more is [`KeylessError::TooLarge`], not a truncation.
pub(crate) fn read_bounded(path: &Path, limit: u64, input: Input) -> Result<Vec<u8>, KeylessError> {
    let read_error = |source| KeylessError::Read {
        input,
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > limit {
        return Err(KeylessError::TooLarge { input, limit });
    }
    Ok(bytes)
}

/// Refuse documents nested deeper than [`MAX_DEPTH`] (strings are skipped, escapes honoured).
pub(crate) fn check_depth(json: &[u8], input: Input) -> Result<(), KeylessError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in json {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(KeylessError::malformed(
                        input,
                        format!("JSON nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn ten_thousand_deep_is_refused_and_brackets_in_strings_do_not_count() {
        let deep = "[".repeat(10_000);
        let err = check_depth(deep.as_bytes(), Input::Bundle).unwrap_err();
        assert!(err.to_string().contains("nested deeper than 32"), "{err}");
        let quoted = format!("{{\"a\": \"{}\\\"\"}}", "[".repeat(100));
        check_depth(quoted.as_bytes(), Input::Bundle).unwrap();
    }
}
