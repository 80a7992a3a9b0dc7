//! DSSE (Dead Simple Signing Envelope, v1): the envelope cosign's attestations and Sigstore
//! bundles carry. The signature is ECDSA P-256/SHA-256 over the *pre-authentication encoding*
//! (PAE) of payload type and payload, never over the payload alone, so a signature for one
//! payload type cannot be replayed as another.
//!
//! The envelope is JSON: `{"payloadType": T, "payload": base64(body), "signatures": [{"keyid":
//! "", "sig": base64(DER)}]}` — the shape cosign writes into `.att` layers and
//! securesystemslib reads.

use base64::Engine as _;
use serde::Serialize;

use crate::json;
use crate::keys::{PublicKey, SigningKey};
use crate::Error;

/// The payload type of an in-toto statement.
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Media type of a layer whose blob is a DSSE envelope (cosign's `.att` layers).
pub const DSSE_ENVELOPE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Largest envelope read: a 4 MiB statement in base64 plus signatures.
pub const MAX_ENVELOPE_BYTES: usize = 6 * 1024 * 1024;
/// Most signatures examined in one envelope.
pub const MAX_ENVELOPE_SIGNATURES: usize = 16;

/// The pre-authentication encoding: `"DSSEv1" SP len(type) SP type SP len(body) SP body`
/// (lengths in ASCII decimal).
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvelopeSignature {
    /// The key id hint (cosign writes an empty one; never trusted, only shown).
    pub keyid: String,
    /// Standard base64 of the ASN.1 DER ECDSA signature over the PAE.
    pub sig: String,
}

/// A DSSE envelope. `payload` holds the decoded bytes; nothing in it is trusted until
/// [`Envelope::verify`] succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// What the payload is (`application/vnd.in-toto+json` for attestations).
    pub payload_type: String,
    /// The payload bytes (decoded).
    pub payload: Vec<u8>,
    /// Its signatures.
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "payloadType")]
    payload_type: &'a str,
    payload: String,
    signatures: &'a [EnvelopeSignature],
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::Envelope {
        reason: reason.into(),
    }
}

impl Envelope {
    /// Sign `payload` of `payload_type` with `key` (one signature, empty key id, as cosign).
    pub fn sign(key: &SigningKey, payload_type: &str, payload: Vec<u8>) -> Envelope {
        let sig = crate::signature::sign(key, &pae(payload_type, &payload));
        Envelope {
            payload_type: payload_type.to_string(),
            payload,
            signatures: vec![EnvelopeSignature {
                keyid: String::new(),
                sig,
            }],
        }
    }

    /// The envelope as JSON (`payloadType`, `payload`, `signatures`, in that order).
    pub fn to_json(&self) -> Vec<u8> {
        let wire = Wire {
            payload_type: &self.payload_type,
            payload: base64::engine::general_purpose::STANDARD.encode(&self.payload),
            signatures: &self.signatures,
        };
        // Serialising strings and a list of plain structs cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// The envelope as the JSON value a Sigstore bundle's `dsseEnvelope` holds.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::json!({
            "payload": base64::engine::general_purpose::STANDARD.encode(&self.payload),
            "payloadType": self.payload_type,
            "signatures": self.signatures.iter().map(|s| {
                if s.keyid.is_empty() {
                    serde_json::json!({"sig": s.sig})
                } else {
                    serde_json::json!({"sig": s.sig, "keyid": s.keyid})
                }
            }).collect::<Vec<_>>(),
        })
    }

    /// Parse an envelope strictly: at most [`MAX_ENVELOPE_BYTES`], no duplicate keys, exactly
    /// `payloadType`, `payload` and `signatures` (1 to [`MAX_ENVELOPE_SIGNATURES`], each with a
    /// `sig` and an optional `keyid`), standard base64.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, Error> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(Error::LimitExceeded {
                what: "DSSE envelope".into(),
                size: bytes.len() as u64,
                limit: MAX_ENVELOPE_BYTES as u64,
            });
        }
        let tree = json::parse(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
        if let Some((object, key)) = tree.first_duplicate("envelope") {
            return Err(invalid(format!("duplicate key {key:?} in {object}")));
        }
        Envelope::from_value(&tree.into_value())
    }

    /// Read an envelope from a JSON value (a bundle's `dsseEnvelope`), with the checks of
    /// [`Envelope::parse`] except the byte bound and duplicate keys.
    pub fn from_value(value: &serde_json::Value) -> Result<Envelope, Error> {
        let object = value
            .as_object()
            .ok_or_else(|| invalid("not a JSON object"))?;
        for key in object.keys() {
            if !matches!(key.as_str(), "payloadType" | "payload" | "signatures") {
                return Err(invalid(format!("unknown key {key:?}")));
            }
        }
        let string = |key: &str| {
            object
                .get(key)
                .ok_or_else(|| invalid(format!("missing key {key:?}")))?
                .as_str()
                .ok_or_else(|| invalid(format!("{key} must be a string")))
        };
        let payload_type = string("payloadType")?.to_string();
        let payload =
            crate::signature::decode_base64_lenient(string("payload")?, MAX_ENVELOPE_BYTES)
                .map_err(|reason| invalid(format!("payload: {reason}")))?;
        let signatures = object
            .get("signatures")
            .ok_or_else(|| invalid("missing key \"signatures\""))?
            .as_array()
            .ok_or_else(|| invalid("signatures must be a list"))?;
        if signatures.is_empty() {
            return Err(invalid("no signatures"));
        }
        if signatures.len() > MAX_ENVELOPE_SIGNATURES {
            return Err(invalid(format!(
                "{} signatures, over the limit of {MAX_ENVELOPE_SIGNATURES}",
                signatures.len()
            )));
        }
        let signatures = signatures
            .iter()
            .map(|s| {
                let s = s
                    .as_object()
                    .ok_or_else(|| invalid("a signature is not a JSON object"))?;
                for key in s.keys() {
                    if !matches!(key.as_str(), "sig" | "keyid") {
                        return Err(invalid(format!("unknown key {key:?} in a signature")));
                    }
                }
                let sig = s
                    .get("sig")
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(|| invalid("a signature lacks a string \"sig\""))?;
                let keyid = match s.get("keyid") {
                    None => "",
                    Some(k) => k
                        .as_str()
                        .ok_or_else(|| invalid("a signature's keyid is not a string"))?,
                };
                Ok(EnvelopeSignature {
                    keyid: keyid.to_string(),
                    sig: sig.to_string(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Envelope {
            payload_type,
            payload,
            signatures,
        })
    }

    /// Verify that some signature of the envelope is `key`'s over the PAE of its payload type
    /// and payload; returns the index of the first that is. A malformed signature beside a good
    /// one does not matter (DSSE: any one suffices).
    pub fn verify(&self, key: &PublicKey) -> Result<usize, Error> {
        let message = pae(&self.payload_type, &self.payload);
        let mut last = None;
        for (i, s) in self.signatures.iter().enumerate() {
            match crate::signature::verify(key, &message, &s.sig) {
                Ok(()) => return Ok(i),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(Error::SignatureMismatch {
            key_id: key.key_id(),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pae_matches_the_specification_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn signed_envelope_round_trips_and_verifies_only_with_its_key() {
        let key = SigningKey::generate();
        let other = SigningKey::generate();
        let env = Envelope::sign(&key, INTOTO_PAYLOAD_TYPE, b"{\"a\":1}".to_vec());
        let parsed = Envelope::parse(&env.to_json()).unwrap();
        assert_eq!(parsed, env);
        assert_eq!(parsed.verify(&key.public_key()).unwrap(), 0);
        assert!(matches!(
            parsed.verify(&other.public_key()),
            Err(Error::SignatureMismatch { .. })
        ));
        // The payload type is signed: changing it breaks the signature.
        let mut retyped = parsed.clone();
        retyped.payload_type = "text/plain".into();
        assert!(matches!(
            retyped.verify(&key.public_key()),
            Err(Error::SignatureMismatch { .. })
        ));
        let mut tampered = parsed;
        tampered.payload[1] ^= 1;
        assert!(matches!(
            tampered.verify(&key.public_key()),
            Err(Error::SignatureMismatch { .. })
        ));
        assert_eq!(Envelope::from_value(&env.to_value()).unwrap(), env);
    }

    #[test]
    fn malformed_envelopes_are_refused_with_the_reason() {
        for (bytes, reason) in [
            (&b"[]"[..], "not a JSON object"),
            (
                b"{\"payloadType\":\"x\",\"payload\":\"\",\"signatures\":[]}",
                "no signatures",
            ),
            (
                b"{\"payloadType\":\"x\",\"payloadType\":\"y\",\"payload\":\"\",\"signatures\":[]}",
                "duplicate key",
            ),
            (
                b"{\"payloadType\":\"x\",\"payload\":\"!!\",\"signatures\":[{\"sig\":\"\"}]}",
                "payload: not standard base64",
            ),
            (
                b"{\"payloadType\":\"x\",\"payload\":\"\",\"signatures\":[{\"sig\":\"\"}],\"x\":1}",
                "unknown key",
            ),
            (
                b"{\"payload\":\"\",\"signatures\":[{\"sig\":\"\"}]}",
                "missing key",
            ),
        ] {
            let err = Envelope::parse(bytes).unwrap_err();
            assert!(matches!(err, Error::Envelope { .. }), "{err}");
            assert!(err.to_string().contains(reason), "{err} lacks {reason}");
        }
        let huge = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert!(matches!(
            Envelope::parse(&huge),
            Err(Error::LimitExceeded { .. })
        ));
    }
}
