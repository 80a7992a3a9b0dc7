//! Diagnostics (lint findings with stable codes and source positions) and the policy source text
//! they point into.

use std::fmt;

use serde::Serialize;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The policy cannot be used.
    Error,
    /// The policy works but probably does not do what its author meant.
    Warning,
}

/// One problem found in a policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable kebab-case code (`unknown-key`, `tied-scopes`, ...).
    pub code: &'static str,
    /// Human-readable message; never contains key material or secrets.
    pub message: String,
    /// The policy file's display name.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Field path inside the document (`scopes."reg/app".signed.keys`), when known.
    pub path: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, ": {severity}[{}]: {}", self.code, self.message)?;
        if !self.path.is_empty() {
            write!(f, " (at {})", self.path)?;
        }
        Ok(())
    }
}

/// A policy document's text plus its display name, used to turn field paths into positions.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    /// Display name for diagnostics (usually the path given on the command line).
    pub name: &'a str,
    /// The whole document.
    pub text: &'a str,
}

/// Collects diagnostics for one source.
#[derive(Debug)]
pub(crate) struct Sink<'a> {
    pub(crate) source: Source<'a>,
    pub(crate) items: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(source: Source<'a>) -> Sink<'a> {
        Sink {
            source,
            items: Vec::new(),
        }
    }

    /// Record a diagnostic located at the field path `path` (segments as written in the file).
    pub(crate) fn at(
        &mut self,
        severity: Severity,
        code: &'static str,
        path: &[&str],
        message: impl Into<String>,
    ) {
        let (line, column) = match locate(self.source.text, path) {
            Some((l, c)) => (Some(l), Some(c)),
            None => (None, None),
        };
        self.items.push(Diagnostic {
            severity,
            code,
            message: message.into(),
            file: self.source.name.to_string(),
            line,
            column,
            path: render_path(path),
        });
    }

    pub(crate) fn error(&mut self, code: &'static str, path: &[&str], message: impl Into<String>) {
        self.at(Severity::Error, code, path, message);
    }

    /// Record an error about the value `value` of the field at `path`: the path is reported, the
    /// position is that of the value as written (for example an unknown rule name).
    pub(crate) fn error_at_value(
        &mut self,
        code: &'static str,
        path: &[&str],
        value: &str,
        message: impl Into<String>,
    ) {
        let mut to_value = path.to_vec();
        to_value.push(value);
        let (line, column) = match locate(self.source.text, &to_value) {
            Some((l, c)) => (Some(l), Some(c)),
            None => (None, None),
        };
        self.items.push(Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            file: self.source.name.to_string(),
            line,
            column,
            path: render_path(path),
        });
    }

    pub(crate) fn warn(&mut self, code: &'static str, path: &[&str], message: impl Into<String>) {
        self.at(Severity::Warning, code, path, message);
    }

    /// Record a diagnostic with a position the parser gave.
    pub(crate) fn positioned(
        &mut self,
        code: &'static str,
        line: Option<usize>,
        column: Option<usize>,
        message: impl Into<String>,
    ) {
        self.items.push(Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            file: self.source.name.to_string(),
            line,
            column,
            path: String::new(),
        });
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Diagnostics in source order (unpositioned ones last), then by code, for stable output.
    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        self.items.sort_by(|a, b| {
            (a.line.unwrap_or(usize::MAX), a.column, a.code, &a.message).cmp(&(
                b.line.unwrap_or(usize::MAX),
                b.column,
                b.code,
                &b.message,
            ))
        });
        self.items.dedup();
        self.items
    }
}

pub(crate) fn render_path(path: &[&str]) -> String {
    let mut out = String::new();
    for (i, seg) in path.iter().enumerate() {
        if seg.starts_with('[') {
            out.push_str(seg);
            continue;
        }
        if i > 0 {
            out.push('.');
        }
        let plain = !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if plain {
            out.push_str(seg);
        } else {
            out.push_str(&format!("{seg:?}"));
        }
    }
    out
}

/// Find the position of a field path in the text: each segment is searched as a whole token after
/// the previous one. Neither YAML nor JSON parsers here expose spans for values, and a best-effort
/// position is far more useful to a policy author than a bare field path.
pub(crate) fn locate(text: &str, path: &[&str]) -> Option<(usize, usize)> {
    let mut pos = 0usize;
    let mut found = None;
    for seg in path {
        if seg.starts_with('[') || seg.is_empty() {
            continue;
        }
        match find_token(text, seg, pos) {
            Some(at) => {
                found = Some(at);
                pos = at + seg.len();
            }
            None => break,
        }
    }
    found.map(|offset| line_col(text, offset))
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b'*' | b'@')
}

fn find_token(text: &str, token: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut start = from;
    while start <= text.len() {
        let rel = text.get(start..)?.find(token)?;
        let at = start + rel;
        let end = at + token.len();
        let before_ok = at == 0 || !is_token_byte(bytes[at - 1]);
        let after_ok = end >= bytes.len() || !is_token_byte(bytes[end]);
        if before_ok && after_ok {
            return Some(at);
        }
        start = at + 1;
        while start < text.len() && !text.is_char_boundary(start) {
            start += 1;
        }
    }
    None
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_walks_segments_in_order() {
        let text =
            "keys:\n  a:\n    path: x\nscopes:\n  reg.io/app:\n    signed:\n      keys: [a, b]\n";
        assert_eq!(
            locate(text, &["scopes", "reg.io/app", "signed", "keys", "b"]),
            Some((7, 17))
        );
        assert_eq!(locate(text, &["keys", "a"]), Some((2, 3)));
        // `reg.io` alone must not match inside `reg.io/app`.
        assert_eq!(locate(text, &["scopes", "reg.io"]), Some((4, 1)));
    }

    #[test]
    fn paths_render_with_quotes_where_needed() {
        assert_eq!(
            render_path(&["scopes", "reg.io/app", "signed", "[0]", "keys"]),
            "scopes.\"reg.io/app\".signed[0].keys"
        );
    }
}
