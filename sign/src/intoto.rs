//! in-toto attestation statements (v1; v0.1 is read too, as cosign 2 wrote it): what an
//! attestation says about which artifact. Written for `signet attest` and cosign-3-style
//! signatures, parsed strictly for `verify-attestation`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use signet_oci::Digest;

use crate::json;
use crate::Error;

/// `_type` of an in-toto v1 statement.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// `_type` of an in-toto v0.1 statement (cosign 2's attestations); read, never written.
pub const STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";
/// The predicate type of cosign 3's image signatures in bundle form.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Largest statement read or written.
pub const MAX_STATEMENT_BYTES: usize = 4 * 1024 * 1024;
/// Most subjects a statement may list.
pub const MAX_SUBJECTS: usize = 1024;
/// Longest predicate type accepted.
const MAX_PREDICATE_TYPE_LEN: usize = 1024;

/// cosign's `--type` names and the predicate type URIs cosign maps them to: `PredicateTypeMap`
/// in cosign's `cmd/cosign/cli/options/predicate.go`, whose URIs are constants of cosign's
/// `pkg/cosign/attestation` (custom, vuln, openvex) and of in-toto-golang v0.11 (SLSA v0.2 and
/// v1, SPDX, CycloneDX, link). Checked against cosign v3's source (2026-07).
pub const COSIGN_PREDICATE_TYPES: &[(&str, &str)] = &[
    ("custom", "https://cosign.sigstore.dev/attestation/v1"),
    ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance02", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
    ("spdx", "https://spdx.dev/Document"),
    ("spdxjson", "https://spdx.dev/Document"),
    ("cyclonedx", "https://cyclonedx.org/bom"),
    ("link", "https://in-toto.io/Link/v1"),
    ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
    ("openvex", "https://openvex.dev/ns"),
];

/// A predicate type: an absolute URI (`scheme:` then no whitespace or control characters),
/// at most 1024 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PredicateType(String);

impl PredicateType {
    /// A cosign `--type` name (`slsaprovenance1`, `vuln`, …) or a URI.
    pub fn from_name(name: &str) -> Result<PredicateType, Error> {
        if let Some((_, uri)) = COSIGN_PREDICATE_TYPES.iter().find(|(n, _)| *n == name) {
            return Ok(PredicateType((*uri).to_string()));
        }
        if !name.contains(':') {
            return Err(invalid(format!(
                "predicate type {:?} is neither a cosign type name ({}) nor a URI",
                name.chars().take(80).collect::<String>(),
                COSIGN_PREDICATE_TYPES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        PredicateType::uri(name)
    }

    /// A predicate type URI as written in a statement.
    pub fn uri(uri: &str) -> Result<PredicateType, Error> {
        let bad = |why: &str| Error::Statement {
            reason: format!(
                "predicate type {:?} {why}",
                uri.chars().take(80).collect::<String>()
            ),
        };
        if uri.len() > MAX_PREDICATE_TYPE_LEN {
            return Err(bad("is too long"));
        }
        let Some((scheme, rest)) = uri.split_once(':') else {
            return Err(bad("is not a URI"));
        };
        let scheme_ok = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok || rest.is_empty() || uri.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad("is not a URI"));
        }
        Ok(PredicateType(uri.to_string()))
    }

    /// The URI.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PredicateType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One subject of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subject {
    /// The artifact's name (an image's repository), if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Algorithm → lowercase hex.
    pub digest: BTreeMap<String, String>,
    /// Annotations (cosign puts `sign -a` annotations here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Map<String, Value>>,
}

/// An in-toto statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// `_type` ([`STATEMENT_V1`] or [`STATEMENT_V01`]).
    pub statement_type: String,
    /// What the statement is about (at least one).
    pub subjects: Vec<Subject>,
    /// What kind of predicate it carries.
    pub predicate_type: PredicateType,
    /// The predicate (a JSON object).
    pub predicate: Value,
}

#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "_type")]
    statement_type: &'a str,
    subject: &'a [Subject],
    #[serde(rename = "predicateType")]
    predicate_type: &'a str,
    predicate: &'a Value,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::Statement {
        reason: reason.into(),
    }
}

impl Statement {
    /// An in-toto v1 statement about the image manifest `digest`, named `name` (its repository)
    /// when given.
    pub fn for_image(
        name: Option<&str>,
        digest: &Digest,
        predicate_type: PredicateType,
        predicate: Value,
    ) -> Statement {
        Statement {
            statement_type: STATEMENT_V1.to_string(),
            subjects: vec![Subject {
                name: name.map(str::to_string),
                digest: BTreeMap::from([(
                    digest.algorithm().as_str().to_string(),
                    digest.hex().to_string(),
                )]),
                annotations: None,
            }],
            predicate_type,
            predicate,
        }
    }

    /// The statement as JSON (`_type`, `subject`, `predicateType`, `predicate`). Refused when
    /// over [`MAX_STATEMENT_BYTES`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let bytes = serde_json::to_vec(&Wire {
            statement_type: &self.statement_type,
            subject: &self.subjects,
            predicate_type: self.predicate_type.as_str(),
            predicate: &self.predicate,
        })
        .map_err(|e| invalid(e.to_string()))?;
        if bytes.len() > MAX_STATEMENT_BYTES {
            return Err(Error::LimitExceeded {
                what: "in-toto statement".into(),
                size: bytes.len() as u64,
                limit: MAX_STATEMENT_BYTES as u64,
            });
        }
        Ok(bytes)
    }

    /// Parse a statement strictly: bounded, no duplicate keys, exactly the members `_type`
    /// (v1 or v0.1), `subject` (1 to [`MAX_SUBJECTS`], each with a non-empty digest map of
    /// strings), `predicateType` (a URI) and an optional object `predicate`.
    pub fn parse(bytes: &[u8]) -> Result<Statement, Error> {
        if bytes.len() > MAX_STATEMENT_BYTES {
            return Err(Error::LimitExceeded {
                what: "in-toto statement".into(),
                size: bytes.len() as u64,
                limit: MAX_STATEMENT_BYTES as u64,
            });
        }
        let tree = json::parse(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
        if let Some((object, key)) = tree.first_duplicate("statement") {
            return Err(invalid(format!("duplicate key {key:?} in {object}")));
        }
        let value = tree.into_value();
        let object = value
            .as_object()
            .ok_or_else(|| invalid("not a JSON object"))?;
        for key in object.keys() {
            if !matches!(
                key.as_str(),
                "_type" | "subject" | "predicateType" | "predicate"
            ) {
                return Err(invalid(format!("unknown key {key:?}")));
            }
        }
        let statement_type = object
            .get("_type")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("missing string \"_type\""))?;
        if statement_type != STATEMENT_V1 && statement_type != STATEMENT_V01 {
            return Err(invalid(format!(
                "_type {:?} is not an in-toto statement (v1 or v0.1)",
                statement_type.chars().take(80).collect::<String>()
            )));
        }
        let predicate_type = PredicateType::uri(
            object
                .get("predicateType")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("missing string \"predicateType\""))?,
        )?;
        let predicate = match object.get("predicate") {
            None => Value::Object(Map::new()),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => return Err(invalid("predicate is not a JSON object")),
        };
        let subjects = object
            .get("subject")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("missing list \"subject\""))?;
        if subjects.is_empty() || subjects.len() > MAX_SUBJECTS {
            return Err(invalid(format!(
                "{} subjects (1 to {MAX_SUBJECTS} allowed)",
                subjects.len()
            )));
        }
        let subjects = subjects
            .iter()
            .map(parse_subject)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Statement {
            statement_type: statement_type.to_string(),
            subjects,
            predicate_type,
            predicate,
        })
    }

    /// Whether some subject names `digest` (same algorithm, same hex).
    pub fn names_digest(&self, digest: &Digest) -> bool {
        self.subjects.iter().any(|s| {
            s.digest
                .get(digest.algorithm().as_str())
                .is_some_and(|hex| hex == digest.hex())
        })
    }
}

fn parse_subject(value: &Value) -> Result<Subject, Error> {
    let object = value
        .as_object()
        .ok_or_else(|| invalid("a subject is not a JSON object"))?;
    let name = match object.get("name") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid("a subject's name is not a string")),
    };
    let digest = object
        .get("digest")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("a subject has no digest object"))?;
    if digest.is_empty() {
        return Err(invalid("a subject's digest is empty"));
    }
    let digest = digest
        .iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|v| (k.clone(), v.to_string()))
                .ok_or_else(|| invalid(format!("subject digest {k:?} is not a string")))
        })
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    let annotations = match object.get("annotations") {
        None => None,
        Some(Value::Object(a)) => Some(a.clone()),
        Some(_) => return Err(invalid("a subject's annotations are not an object")),
    };
    Ok(Subject {
        name,
        digest,
        annotations,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// One test per cosign `--type` name; the expected URIs are copied from cosign's
    /// `PredicateTypeMap` and the constants it names, not from the table under test.
    macro_rules! cosign_type_name {
        ($($test:ident: $name:literal => $uri:literal;)*) => {$(
            #[test]
            fn $test() {
                assert_eq!(PredicateType::from_name($name).unwrap().as_str(), $uri);
            }
        )*};
    }

    cosign_type_name! {
        cosign_type_custom: "custom" => "https://cosign.sigstore.dev/attestation/v1";
        cosign_type_slsaprovenance: "slsaprovenance" => "https://slsa.dev/provenance/v0.2";
        cosign_type_slsaprovenance02: "slsaprovenance02" => "https://slsa.dev/provenance/v0.2";
        cosign_type_slsaprovenance1: "slsaprovenance1" => "https://slsa.dev/provenance/v1";
        cosign_type_spdx: "spdx" => "https://spdx.dev/Document";
        cosign_type_spdxjson: "spdxjson" => "https://spdx.dev/Document";
        cosign_type_cyclonedx: "cyclonedx" => "https://cyclonedx.org/bom";
        cosign_type_link: "link" => "https://in-toto.io/Link/v1";
        cosign_type_vuln: "vuln" => "https://cosign.sigstore.dev/attestation/vuln/v1";
        cosign_type_openvex: "openvex" => "https://openvex.dev/ns";
    }

    #[test]
    fn the_type_names_are_exactly_cosigns_ten() {
        let mut names: Vec<&str> = COSIGN_PREDICATE_TYPES.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "custom",
                "cyclonedx",
                "link",
                "openvex",
                "slsaprovenance",
                "slsaprovenance02",
                "slsaprovenance1",
                "spdx",
                "spdxjson",
                "vuln"
            ]
        );
    }

    #[test]
    fn a_uri_names_itself_and_anything_else_is_refused() {
        assert_eq!(
            PredicateType::from_name("https://example.com/p/v1")
                .unwrap()
                .as_str(),
            "https://example.com/p/v1"
        );
        for bad in ["sbom", "", "https://a b", ":x", "1x:y"] {
            let err = PredicateType::from_name(bad).unwrap_err();
            assert!(matches!(err, Error::Statement { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn statement_round_trips_and_names_its_digest() {
        let digest = Digest::sha256(b"image");
        let s = Statement::for_image(
            Some("reg.io/app"),
            &digest,
            PredicateType::from_name("vuln").unwrap(),
            serde_json::json!({"scanner": {"uri": "x"}}),
        );
        let bytes = s.to_bytes().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("{\"_type\":\"https://in-toto.io/Statement/v1\",\"subject\":[{\"name\":\"reg.io/app\",\"digest\":{\"sha256\":\""), "{text}");
        let parsed = Statement::parse(&bytes).unwrap();
        assert_eq!(parsed, s);
        assert!(parsed.names_digest(&digest));
        assert!(!parsed.names_digest(&Digest::sha256(b"other")));
    }

    #[test]
    fn malformed_statements_are_refused_with_the_reason() {
        let subject = r#"[{"digest":{"sha256":"ab"}}]"#;
        for (text, reason) in [
            (
                format!(
                    r#"{{"_type":"x","subject":{subject},"predicateType":"https://p","predicate":{{}}}}"#
                ),
                "is not an in-toto statement",
            ),
            (
                format!(r#"{{"_type":"{STATEMENT_V1}","subject":[],"predicateType":"https://p"}}"#),
                "0 subjects",
            ),
            (
                format!(
                    r#"{{"_type":"{STATEMENT_V1}","subject":[{{"digest":{{}}}}],"predicateType":"https://p"}}"#
                ),
                "digest is empty",
            ),
            (
                format!(
                    r#"{{"_type":"{STATEMENT_V1}","subject":{subject},"predicateType":"https://p","predicate":[]}}"#
                ),
                "predicate is not a JSON object",
            ),
            (
                format!(
                    r#"{{"_type":"{STATEMENT_V1}","subject":{subject},"predicateType":"https://p","x":1}}"#
                ),
                "unknown key",
            ),
            (
                format!(
                    r#"{{"_type":"{STATEMENT_V1}","_type":"{STATEMENT_V1}","subject":{subject},"predicateType":"https://p"}}"#
                ),
                "duplicate key",
            ),
            (
                format!(
                    r#"{{"_type":"{STATEMENT_V1}","subject":{subject},"predicateType":"no uri"}}"#
                ),
                "is not a URI",
            ),
        ] {
            let err = Statement::parse(text.as_bytes()).unwrap_err();
            assert!(matches!(err, Error::Statement { .. }), "{err}");
            assert!(err.to_string().contains(reason), "{err} lacks {reason}");
        }
        assert!(matches!(
            Statement::parse(&vec![b' '; MAX_STATEMENT_BYTES + 1]),
            Err(Error::LimitExceeded { .. })
        ));
    }
}
