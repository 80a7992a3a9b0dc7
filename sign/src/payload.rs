//! The simple-signing payload cosign signs (formats.md §3): byte-exact output, and a strict parser
//! that applies containers/image's checks in its order.

use serde_json::{Map, Value};
use signet_oci::Digest;

use crate::json::{self, StrictValue};
use crate::PayloadError;

/// The only accepted `critical.type`.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// Largest payload Signet parses; real payloads are a few hundred bytes.
pub const MAX_PAYLOAD_SIZE: usize = 64 * 1024;

/// A simple-signing payload: which manifest digest is signed, under which Docker reference, plus
/// the free-form `optional` object (`null` when absent).
///
/// Serialisation choice: [`SimpleSigningPayload::to_bytes`] writes what cosign (Go) writes. Go's
/// `encoding/json` escapes `<`, `>`, `&`, U+2028 and U+2029 as `\u003c`-style escapes and marshals
/// the `optional` map with its keys sorted by byte value, so Signet does the same; for every payload
/// cosign, skopeo or sigstore-rs emit in practice (sorted string annotations, an integer
/// timestamp) the bytes are identical.
#[derive(Debug, Clone, PartialEq)]
pub struct SimpleSigningPayload {
    /// `critical.identity.docker-reference`: cosign writes the repository, skopeo the full
    /// reference with tag.
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`.
    pub manifest_digest: Digest,
    /// `optional`: `None` is JSON `null`.
    pub optional: Option<Map<String, Value>>,
}

/// Check that `members` holds exactly `allowed` keys, once each; return them in `allowed` order.
fn exact_fields<'a, const N: usize>(
    members: &'a [(String, StrictValue)],
    object: &'static str,
    allowed: [&'static str; N],
) -> Result<[&'a StrictValue; N], PayloadError> {
    let mut found: [Option<&StrictValue>; N] = [None; N];
    for (i, (key, value)) in members.iter().enumerate() {
        if members[..i].iter().any(|(k, _)| k == key) {
            return Err(PayloadError::DuplicateKey {
                object: object.to_string(),
                key: truncate(key),
            });
        }
        match allowed.iter().position(|a| a == key) {
            Some(slot) => found[slot] = Some(value),
            None => {
                return Err(PayloadError::UnknownKey {
                    object,
                    key: truncate(key),
                })
            }
        }
    }
    let mut out: [&StrictValue; N] = [&StrictValue::Null; N];
    for (slot, key) in allowed.iter().enumerate() {
        out[slot] = found[slot].ok_or(PayloadError::MissingKey { object, key })?;
    }
    Ok(out)
}

fn as_object<'a>(
    value: &'a StrictValue,
    field: &'static str,
) -> Result<&'a [(String, StrictValue)], PayloadError> {
    match value {
        StrictValue::Object(members) => Ok(members),
        _ => Err(PayloadError::NotAnObject { field }),
    }
}

fn as_string<'a>(value: &'a StrictValue, field: &'static str) -> Result<&'a str, PayloadError> {
    match value {
        StrictValue::String(s) => Ok(s),
        _ => Err(PayloadError::NotAString { field }),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

/// containers/image reads the timestamp as a float64 and requires `int64(t) == t`, so `1.0e9` is
/// accepted and `1.5` or a string is not.
fn integral(value: &StrictValue) -> Option<i64> {
    let StrictValue::Number(n) = value else {
        return None;
    };
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // Casting is exact here: the range check keeps `f` inside i64 and fract() == 0.
    #[allow(clippy::cast_possible_truncation)]
    ((-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) && f.fract() == 0.0)
        .then_some(f as i64)
}

impl SimpleSigningPayload {
    /// A payload for `manifest_digest` under `docker_reference`, with `optional` null.
    pub fn new(docker_reference: impl Into<String>, manifest_digest: Digest) -> Self {
        SimpleSigningPayload {
            docker_reference: docker_reference.into(),
            manifest_digest,
            optional: None,
        }
    }

    /// The exact bytes cosign signs: compact, keys in cosign's order, no trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(256);
        out.push_str(r#"{"critical":{"identity":{"docker-reference":"#);
        json::write_go_string(&mut out, &self.docker_reference);
        out.push_str(r#"},"image":{"docker-manifest-digest":"#);
        json::write_go_string(&mut out, &self.manifest_digest.to_string());
        out.push_str(r#"},"type":"#);
        json::write_go_string(&mut out, SIGNATURE_TYPE);
        out.push_str(r#"},"optional":"#);
        match &self.optional {
            None => out.push_str("null"),
            Some(map) => json::write_go_object(&mut out, map),
        }
        out.push('}');
        out.into_bytes()
    }

    /// Parse `bytes` as containers/image does (`signature/internal/sigstore_payload.go`): exact
    /// member sets at every level of `critical`, case-sensitive keys, no duplicates, the exact
    /// type string, a valid digest, and an integral `optional.timestamp` if present.
    pub fn parse_strict(bytes: &[u8]) -> Result<SimpleSigningPayload, PayloadError> {
        if bytes.len() > MAX_PAYLOAD_SIZE {
            return Err(PayloadError::TooLarge {
                size: bytes.len(),
                limit: MAX_PAYLOAD_SIZE,
            });
        }
        let value = json::parse(bytes).map_err(|e| PayloadError::Json(e.to_string()))?;
        let top = as_object(&value, "top level")?;
        let [critical, optional] = exact_fields(top, "top level", ["critical", "optional"])?;

        let optional = match optional {
            StrictValue::Null => None,
            StrictValue::Object(members) => {
                if let Some((object, key)) = optional.first_duplicate("optional") {
                    return Err(PayloadError::DuplicateKey { object, key });
                }
                for (key, value) in members {
                    match key.as_str() {
                        "creator" => {
                            as_string(value, "optional.creator")?;
                        }
                        "timestamp" => {
                            integral(value).ok_or(PayloadError::TimestampNotInteger)?;
                        }
                        _ => {}
                    }
                }
                match optional.clone().into_value() {
                    Value::Object(map) => Some(map),
                    _ => None,
                }
            }
            _ => return Err(PayloadError::NotAnObject { field: "optional" }),
        };

        let critical = as_object(critical, "critical")?;
        let [kind, image, identity] =
            exact_fields(critical, "critical", ["type", "image", "identity"])?;
        let kind = as_string(kind, "critical.type")?;
        if kind != SIGNATURE_TYPE {
            return Err(PayloadError::WrongType {
                found: truncate(kind),
            });
        }

        let image = as_object(image, "critical.image")?;
        let [digest] = exact_fields(image, "critical.image", ["docker-manifest-digest"])?;
        let digest = as_string(digest, "critical.image.docker-manifest-digest")?;
        let manifest_digest: Digest =
            digest
                .parse()
                .map_err(|e: signet_oci::Error| PayloadError::InvalidDigest {
                    value: truncate(digest),
                    reason: e.to_string(),
                })?;

        let identity = as_object(identity, "critical.identity")?;
        let [reference] = exact_fields(identity, "critical.identity", ["docker-reference"])?;
        let docker_reference =
            as_string(reference, "critical.identity.docker-reference")?.to_string();

        Ok(SimpleSigningPayload {
            docker_reference,
            manifest_digest,
            optional,
        })
    }

    /// `optional.creator`, when present.
    pub fn creator(&self) -> Option<&str> {
        self.optional.as_ref()?.get("creator")?.as_str()
    }

    /// `optional.timestamp` (Unix seconds), when present; integral by [`Self::parse_strict`].
    pub fn timestamp(&self) -> Option<i64> {
        let n = self.optional.as_ref()?.get("timestamp")?;
        integral(&StrictValue::Number(n.as_number()?.clone()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::keys::tests::fixture;
    use crate::sigstore_json::SigstoreJson;

    #[test]
    fn rebuilds_sigstore_rs_payload_byte_for_byte() {
        let golden = fixture("skopeo-1.13/artifacts/sigstore-rs-sig-payload.raw.json");
        let built = SimpleSigningPayload::new(
            "127.0.0.1:5000/test/rssigned:v1",
            "sha256:d23af51a9a072f70f2cf03d143c386e0af924a0bee310ebdd9366b954acbcac2"
                .parse()
                .unwrap(),
        );
        assert_eq!(built.to_bytes(), golden);
        assert_eq!(SimpleSigningPayload::parse_strict(&golden).unwrap(), built);
    }

    #[test]
    fn rebuilds_cosign_payload_byte_for_byte() {
        let sig =
            SigstoreJson::parse(&fixture("cosign-real/dir-img-cosign-valid/signature-1")).unwrap();
        let built = SimpleSigningPayload::new(
            "192.168.64.2:5000/cosign-signed-single-sample",
            "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
                .parse()
                .unwrap(),
        );
        assert_eq!(built.to_bytes(), sig.payload);
    }

    #[test]
    fn skopeo_payloads_with_creator_and_timestamp() {
        let golden = fixture("skopeo-1.13/artifacts/sig-payload.raw.json");
        let parsed = SimpleSigningPayload::parse_strict(&golden).unwrap();
        assert_eq!(parsed.docker_reference, "127.0.0.1:5000/test/app:v1");
        assert_eq!(
            parsed.manifest_digest.to_string(),
            "sha256:8c60e41c50b8e88f4260816a551db9f5a409729368197a61cc08789a9f14ce8b"
        );
        assert_eq!(parsed.creator(), Some("containers/image 5.26.2"));
        assert_eq!(parsed.timestamp(), Some(1_795_935_232));
        assert_eq!(parsed.to_bytes(), golden, "re-encoding is byte-identical");

        let tagged = SigstoreJson::parse(&fixture(
            "cosign-real/dir-img-cosign-valid-with-tag/signature-1",
        ))
        .unwrap();
        let parsed = SimpleSigningPayload::parse_strict(&tagged.payload).unwrap();
        assert_eq!(
            parsed.docker_reference,
            "192.168.64.2:5000/skopeo-signed:tag"
        );
        assert_eq!(parsed.timestamp(), Some(1_657_296_609));
        assert_eq!(parsed.to_bytes(), tagged.payload);
    }

    #[test]
    fn optional_annotations_are_written_as_go_does() {
        let mut p = SimpleSigningPayload::new(
            "example.com/a<b>",
            "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
                .parse()
                .unwrap(),
        );
        let mut map = Map::new();
        map.insert("z".into(), "last".into());
        map.insert("a".into(), "x&y".into());
        p.optional = Some(map);
        let text = String::from_utf8(p.to_bytes()).unwrap();
        assert!(text.contains(r#""docker-reference":"example.com/a\u003cb\u003e""#));
        assert!(
            text.ends_with(r#""optional":{"a":"x\u0026y","z":"last"}}"#),
            "{text}"
        );
        assert_eq!(
            SimpleSigningPayload::parse_strict(text.as_bytes()).unwrap(),
            p
        );
    }

    const GOOD: &str = r#"{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"},"type":"cosign container image signature"},"optional":null}"#;

    fn check(input: &str, expected: PayloadError) {
        assert_eq!(
            SimpleSigningPayload::parse_strict(input.as_bytes()).unwrap_err(),
            expected,
            "{input}"
        );
    }

    #[test]
    fn strict_parser_refusals() {
        use PayloadError as P;
        assert!(SimpleSigningPayload::parse_strict(GOOD.as_bytes()).is_ok());
        let sub = |from: &str, to: &str| GOOD.replacen(from, to, 1);
        check(
            &sub(r#""optional":null}"#, r#""optional":null,"extra":1}"#),
            P::UnknownKey {
                object: "top level",
                key: "extra".into(),
            },
        );
        check(
            &sub(r#","type""#, r#","extra":1,"type""#),
            P::UnknownKey {
                object: "critical",
                key: "extra".into(),
            },
        );
        check(
            &sub(r#"a00"}"#, r#"a00","extra":1}"#),
            P::UnknownKey {
                object: "critical.image",
                key: "extra".into(),
            },
        );
        check(
            &sub(r#""r"}"#, r#""r","extra":1}"#),
            P::UnknownKey {
                object: "critical.identity",
                key: "extra".into(),
            },
        );
        check(
            &sub("docker-manifest-digest", "Docker-manifest-digest"),
            P::UnknownKey {
                object: "critical.image",
                key: "Docker-manifest-digest".into(),
            },
        );
        check(
            &sub(r#""critical""#, r#""Critical""#),
            P::UnknownKey {
                object: "top level",
                key: "Critical".into(),
            },
        );
        check(
            &sub(r#","optional":null"#, ""),
            P::MissingKey {
                object: "top level",
                key: "optional",
            },
        );
        check(
            &sub(
                "cosign container image signature",
                "atomic container signature",
            ),
            P::WrongType {
                found: "atomic container signature".into(),
            },
        );
        check(
            &sub("sha256:634a", "sha256:634A"),
            P::InvalidDigest {
                value: "sha256:634A8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
                    .into(),
                reason: "invalid digest \"sha256:634A8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00\": the hash must be lowercase hex".into(),
            },
        );
        check(
            &sub(r#""optional":null"#, r#""optional":{"timestamp":1.5}"#),
            P::TimestampNotInteger,
        );
        check(
            &sub(
                r#""optional":null"#,
                r#""optional":{"timestamp":"1657296609"}"#,
            ),
            P::TimestampNotInteger,
        );
        check(
            &sub(r#""optional":null"#, r#""optional":{"creator":7}"#),
            P::NotAString {
                field: "optional.creator",
            },
        );
        check(
            &sub(r#""optional":null"#, r#""optional":[]"#),
            P::NotAnObject { field: "optional" },
        );
        check(
            &sub(r#""r"}"#, r#""r","docker-reference":"evil"}"#),
            P::DuplicateKey {
                object: "critical.identity".into(),
                key: "docker-reference".into(),
            },
        );
        check(
            &sub(r#""optional":null"#, r#""optional":null,"optional":{}"#),
            P::DuplicateKey {
                object: "top level".into(),
                key: "optional".into(),
            },
        );
        check(
            &sub(r#""optional":null"#, r#""optional":{"a":1,"a":2}"#),
            P::DuplicateKey {
                object: "optional".into(),
                key: "a".into(),
            },
        );
        check(
            &sub(r#"{"docker-reference":"r"}"#, r#""r""#),
            P::NotAnObject {
                field: "critical.identity",
            },
        );
        check(
            &sub(r#""r""#, "null"),
            P::NotAString {
                field: "critical.identity.docker-reference",
            },
        );
        check("[]", P::NotAnObject { field: "top level" });
        check("\"x\"", P::NotAnObject { field: "top level" });
        assert!(matches!(
            SimpleSigningPayload::parse_strict(format!("{GOOD} x").as_bytes()),
            Err(P::Json(_))
        ));
        assert!(matches!(
            SimpleSigningPayload::parse_strict(b"{"),
            Err(P::Json(_))
        ));
        let big = format!("{GOOD}{}", " ".repeat(MAX_PAYLOAD_SIZE));
        assert_eq!(
            SimpleSigningPayload::parse_strict(big.as_bytes())
                .unwrap_err()
                .code(),
            "payload-too-large"
        );
        // Integral floats pass, as in containers/image (float64 then int64 round trip).
        let float_ts = sub(r#""optional":null"#, r#""optional":{"timestamp":1.0e9}"#);
        let parsed = SimpleSigningPayload::parse_strict(float_ts.as_bytes()).unwrap();
        assert_eq!(parsed.timestamp(), Some(1_000_000_000));
        // Trailing whitespace is fine (the README's hand-made files end with a newline).
        assert!(SimpleSigningPayload::parse_strict(format!("{GOOD}\n").as_bytes()).is_ok());
    }
}
