//! containers/image's `signature-N` files (`dir:` transport): a `\0sigstore-json\n` header and a
//! JSON object `{mimeType, payload, annotations}` describing one cosign signature layer.

use std::collections::BTreeMap;

use crate::json::{self, StrictValue};
use crate::signature::decode_base64_lenient;
use crate::Error;

/// The 15-byte header every `signature-N` sigstore file starts with.
pub const SIGSTORE_JSON_HEADER: &[u8] = b"\x00sigstore-json\n";

/// Largest `signature-N` file parsed (payloads are under 64 KiB; certificates and bundles a few KiB).
pub const MAX_SIGSTORE_JSON_SIZE: usize = 1024 * 1024;

/// One signature as stored by containers/image: the layer's media type, its blob (the payload
/// bytes) and its annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigstoreJson {
    /// The layer media type; [`crate::SIMPLE_SIGNING_MEDIA_TYPE`] for a signature, anything else
    /// is a non-signature attachment that verifiers skip.
    pub mime_type: String,
    /// The payload bytes (decoded from base64).
    pub payload: Vec<u8>,
    /// The layer annotations, sorted.
    pub annotations: BTreeMap<String, String>,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::SigstoreJson {
        reason: reason.into(),
    }
}

impl SigstoreJson {
    /// Parse a `signature-N` file. The JSON must have exactly `mimeType`, `payload` and
    /// `annotations` (no duplicates); trailing whitespace is accepted.
    pub fn parse(bytes: &[u8]) -> Result<SigstoreJson, Error> {
        if bytes.len() > MAX_SIGSTORE_JSON_SIZE {
            return Err(Error::LimitExceeded {
                what: "sigstore-json signature".to_string(),
                size: bytes.len() as u64,
                limit: MAX_SIGSTORE_JSON_SIZE as u64,
            });
        }
        let body = bytes
            .strip_prefix(SIGSTORE_JSON_HEADER)
            .ok_or_else(|| bad("missing the \\0sigstore-json\\n header"))?;
        let value = json::parse(body).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        if let Some((object, key)) = value.first_duplicate("top level") {
            return Err(bad(format!("duplicate key {key:?} in {object}")));
        }
        let StrictValue::Object(members) = value else {
            return Err(bad("not a JSON object"));
        };
        let (mut mime_type, mut payload, mut annotations) = (None, None, None);
        for (key, value) in members {
            match (key.as_str(), value) {
                ("mimeType", StrictValue::String(s)) => mime_type = Some(s),
                ("payload", StrictValue::String(s)) => {
                    payload = Some(
                        decode_base64_lenient(&s, MAX_SIGSTORE_JSON_SIZE)
                            .map_err(|e| bad(format!("payload: {e}")))?,
                    );
                }
                ("annotations", StrictValue::Object(entries)) => {
                    let mut map = BTreeMap::new();
                    for (k, v) in entries {
                        let StrictValue::String(v) = v else {
                            return Err(bad(format!("annotation {k:?} is not a string")));
                        };
                        map.insert(k, v);
                    }
                    annotations = Some(map);
                }
                ("mimeType" | "payload", _) => {
                    return Err(bad(format!("{key} must be a string")));
                }
                ("annotations", _) => return Err(bad("annotations must be an object")),
                (other, _) => {
                    return Err(bad(format!(
                        "unknown key {:?}",
                        other.chars().take(100).collect::<String>()
                    )))
                }
            }
        }
        Ok(SigstoreJson {
            mime_type: mime_type.ok_or_else(|| bad("missing mimeType"))?,
            payload: payload.ok_or_else(|| bad("missing payload"))?,
            annotations: annotations.ok_or_else(|| bad("missing annotations"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::keys::tests::fixture;
    use crate::{BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION};
    use crate::{SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE};

    #[test]
    fn parses_every_fixture() {
        for (path, mime, extra) in [
            (
                "dir-img-cosign-valid/signature-1",
                SIMPLE_SIGNING_MEDIA_TYPE,
                None,
            ),
            (
                "dir-img-cosign-mixed/signature-1",
                SIMPLE_SIGNING_MEDIA_TYPE,
                None,
            ),
            (
                "dir-img-cosign-other-attachment/signature-1",
                "text/plain",
                None,
            ),
            (
                "dir-img-cosign-key-rekor-valid/signature-1",
                SIMPLE_SIGNING_MEDIA_TYPE,
                Some(BUNDLE_ANNOTATION),
            ),
            (
                "dir-img-cosign-fulcio-rekor-valid/signature-1",
                SIMPLE_SIGNING_MEDIA_TYPE,
                Some(CHAIN_ANNOTATION),
            ),
            (
                "dir-img-cosign-pki-valid/signature-1",
                SIMPLE_SIGNING_MEDIA_TYPE,
                Some(CERTIFICATE_ANNOTATION),
            ),
            (
                "unknown-cosign-key.signature",
                SIMPLE_SIGNING_MEDIA_TYPE,
                None,
            ),
        ] {
            let s = SigstoreJson::parse(&fixture(&format!("cosign-real/{path}"))).unwrap();
            assert_eq!(s.mime_type, mime, "{path}");
            assert!(s.annotations.contains_key(SIGNATURE_ANNOTATION), "{path}");
            if let Some(name) = extra {
                assert!(s.annotations.contains_key(name), "{path}");
            }
        }
        let other = SigstoreJson::parse(&fixture(
            "cosign-real/dir-img-cosign-other-attachment/signature-1",
        ))
        .unwrap();
        assert_eq!(
            other.payload,
            b"this is not a signature, regardless of the annotation"
        );
    }

    #[test]
    fn refuses_malformed_files() {
        let good = fixture("cosign-real/dir-img-cosign-valid/signature-1");
        let json = &good[SIGSTORE_JSON_HEADER.len()..];
        let with = |body: &str| [SIGSTORE_JSON_HEADER, body.as_bytes()].concat();
        assert!(SigstoreJson::parse(json).is_err(), "no header");
        for (body, needle) in [
            (
                r#"{"mimeType":"a","payload":"","annotations":{},"x":1}"#,
                "unknown key",
            ),
            (r#"{"mimeType":"a","payload":""}"#, "missing annotations"),
            (
                r#"{"mimeType":"a","mimeType":"b","payload":"","annotations":{}}"#,
                "duplicate",
            ),
            (
                r#"{"mimeType":"a","payload":"!!","annotations":{}}"#,
                "base64",
            ),
            (
                r#"{"mimeType":"a","payload":"","annotations":{"k":1}}"#,
                "not a string",
            ),
            (
                r#"{"mimeType":1,"payload":"","annotations":{}}"#,
                "must be a string",
            ),
            (
                r#"{"mimeType":"a","payload":"","annotations":{}} junk"#,
                "JSON",
            ),
            ("[]", "not a JSON object"),
        ] {
            let err = SigstoreJson::parse(&with(body)).unwrap_err();
            assert!(err.to_string().contains(needle), "{body}: {err}");
        }
        let ok = SigstoreJson::parse(&[&good[..], b"\n \n"].concat()).unwrap();
        assert_eq!(ok, SigstoreJson::parse(&good).unwrap());
        let huge = with(&" ".repeat(MAX_SIGSTORE_JSON_SIZE));
        assert!(matches!(
            SigstoreJson::parse(&huge),
            Err(Error::LimitExceeded { .. })
        ));
    }
}
