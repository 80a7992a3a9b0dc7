//! A small PEM codec that behaves like Go's `encoding/pem`, the one cosign uses: 64-character
//! lines and `\n` on output; CRLF, surrounding text and any base64 line width accepted on input.

use base64::Engine as _;
use zeroize::Zeroizing;

/// One decoded PEM block.
pub(crate) struct PemBlock {
    /// The label between `-----BEGIN ` and `-----`.
    pub label: String,
    /// The decoded body; zeroized on drop because it may be a private key.
    pub der: Zeroizing<Vec<u8>>,
}

/// Encode `der` as a PEM block exactly as Go's `pem.Encode` does.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // Base64 output is ASCII, so slicing by bytes never splits a character.
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let n = rest.len().min(64);
        out.push_str(&rest[..n]);
        out.push('\n');
        rest = &rest[n..];
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Decode the first PEM block in `input`. Text before the block and after it is ignored, as Go does;
/// PEM headers (`Proc-Type: …`) are refused because no format Signet reads uses them.
pub(crate) fn decode(input: &[u8]) -> Result<PemBlock, String> {
    let text = std::str::from_utf8(input).map_err(|_| "not a PEM file (not UTF-8)".to_string())?;
    let begin = text
        .find("-----BEGIN ")
        .ok_or_else(|| "not a PEM file (no -----BEGIN line)".to_string())?;
    let after_begin = &text[begin + "-----BEGIN ".len()..];
    let (first_line, body) = after_begin.split_once('\n').unwrap_or((after_begin, ""));
    let first_line = first_line.strip_suffix('\r').unwrap_or(first_line);
    let label = first_line
        .strip_suffix("-----")
        .ok_or_else(|| "malformed PEM BEGIN line".to_string())?;
    if label.is_empty() || label.len() > 64 || label.contains("-----") {
        return Err("malformed PEM label".to_string());
    }
    let end_marker = format!("-----END {label}-----");
    let mut b64 = Zeroizing::new(String::with_capacity(body.len()));
    let mut found_end = false;
    for line in body.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.trim_end() == end_marker {
            found_end = true;
            break;
        }
        if line.contains(':') {
            return Err(format!("PEM headers are not supported in a {label} block"));
        }
        b64.extend(line.chars().filter(|c| !matches!(c, ' ' | '\t' | '\r')));
    }
    if !found_end {
        return Err(format!("PEM block {label} has no {end_marker} line"));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| format!("PEM block {label} is not valid base64: {e}"))?;
    Ok(PemBlock {
        label: label.to_string(),
        der: Zeroizing::new(der),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn round_trip_wraps_at_64() {
        let der: Vec<u8> = (0..=200u8).collect();
        let pem = encode("TEST", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(pem.lines().nth(1).unwrap().len(), 64);
        let block = decode(pem.as_bytes()).unwrap();
        assert_eq!(block.label, "TEST");
        assert_eq!(*block.der, der);
        let crlf = pem.replace('\n', "\r\n");
        assert_eq!(*decode(crlf.as_bytes()).unwrap().der, der);
    }

    #[test]
    fn refuses_garbage() {
        assert!(decode(b"hello").is_err());
        assert!(decode(b"-----BEGIN X-----\nAAAA\n").is_err());
        assert!(decode(b"-----BEGIN X-----\n!!!!\n-----END X-----\n").is_err());
        assert!(decode(b"-----BEGIN X-----\nProc-Type: 4\nAAAA\n-----END X-----\n").is_err());
        assert!(decode(&[0xff, 0xfe]).is_err());
    }
}
