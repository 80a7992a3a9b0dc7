//! ECDSA P-256 / SHA-256 signatures over the raw payload bytes, as ASN.1 DER in standard padded
//! base64 (the `dev.cosignproject.cosign/signature` annotation, formats.md §2).

use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::Signature;

use crate::keys::{PublicKey, SigningKey};
use crate::Error;

/// Longest base64 signature accepted (an RSA-4096 signature is 684 characters; ECDSA about 96).
pub const MAX_SIGNATURE_B64_LEN: usize = 8 * 1024;

/// Decode standard padded base64, ignoring `\r` and `\n` as Go's decoder does (some fixtures wrap
/// signatures at 76 columns). Bounded by `limit` characters.
pub(crate) fn decode_base64_lenient(text: &str, limit: usize) -> Result<Vec<u8>, String> {
    if text.len() > limit {
        return Err(format!("{} characters, over the {limit} limit", text.len()));
    }
    let compact: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| format!("not standard base64: {e}"))
}

/// Sign `payload` with `key`: ECDSA P-256 over SHA-256, ASN.1 DER, standard padded base64.
/// Nonces are deterministic (RFC 6979), so signing never depends on the system's randomness.
pub fn sign(key: &SigningKey, payload: &[u8]) -> String {
    let signature: Signature = key.ecdsa().sign(payload);
    base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
}

/// Verify a base64 ASN.1 DER ECDSA signature over `payload` with `key`. High-S signatures are
/// accepted, as Go's `ecdsa.VerifyASN1` (and so cosign and containers/image) accepts them.
pub fn verify(key: &PublicKey, payload: &[u8], signature_b64: &str) -> Result<(), Error> {
    let der = decode_base64_lenient(signature_b64, MAX_SIGNATURE_B64_LEN)
        .map_err(|reason| Error::SignatureEncoding { reason })?;
    let signature = Signature::from_der(&der).map_err(|_| Error::SignatureEncoding {
        reason: "not an ASN.1 DER ECDSA P-256 signature".to_string(),
    })?;
    // (r, s) and (r, n - s) are equally valid ECDSA signatures; normalise so the verifier's own
    // low-S preference cannot refuse what Go accepts.
    let signature = signature.normalize_s().unwrap_or(signature);
    key.verifying_key()
        .verify(payload, &signature)
        .map_err(|_| Error::SignatureMismatch {
            key_id: key.key_id(),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::keys::tests::fixture;
    use crate::keys::EncryptedKeyFile;
    use crate::sigstore_json::SigstoreJson;
    use crate::SIGNATURE_ANNOTATION;

    fn key(path: &str) -> PublicKey {
        PublicKey::from_pem(&fixture(path), path).unwrap()
    }

    fn sig_file(path: &str) -> (Vec<u8>, String) {
        let s = SigstoreJson::parse(&fixture(path)).unwrap();
        let sig = s.annotations[SIGNATURE_ANNOTATION].clone();
        (s.payload, sig)
    }

    #[test]
    fn cosign_real_key_signatures() {
        let cosign = key("cosign-real/cosign.pub");
        let cosign2 = key("cosign-real/cosign2.pub");
        // (file, verifies with cosign.pub) from the fixture README.
        for (path, ok) in [
            ("dir-img-cosign-valid/signature-1", true),
            ("dir-img-cosign-valid-2/signature-1", true),
            ("dir-img-cosign-valid-2/signature-2", true),
            ("dir-img-cosign-valid-with-tag/signature-1", true),
            ("dir-img-cosign-mixed/signature-1", false),
            ("dir-img-cosign-mixed/signature-2", true),
            ("dir-img-cosign-modified-manifest/signature-1", true),
            ("dir-img-cosign-key-rekor-valid/signature-1", false),
            ("unknown-cosign-key.signature", false),
        ] {
            let (payload, sig) = sig_file(&format!("cosign-real/{path}"));
            let result = verify(&cosign, &payload, &sig);
            assert_eq!(result.is_ok(), ok, "{path}: {result:?}");
            if !ok {
                assert!(matches!(result, Err(Error::SignatureMismatch { .. })));
            }
        }
        let (payload, sig) = sig_file("cosign-real/dir-img-cosign-key-rekor-valid/signature-1");
        verify(&cosign2, &payload, &sig).unwrap();
        // Another key's signature over the same payload does not verify.
        let (valid_payload, valid_sig) = sig_file("cosign-real/dir-img-cosign-valid/signature-1");
        let mismatch = |r: Result<(), Error>| matches!(r, Err(Error::SignatureMismatch { .. }));
        assert!(mismatch(verify(&cosign2, &valid_payload, &valid_sig)));
        // One flipped payload byte breaks it.
        let mut tampered = valid_payload.clone();
        tampered[10] ^= 1;
        assert!(mismatch(verify(&cosign, &tampered, &valid_sig)));
    }

    #[test]
    fn skopeo_signature_verifies_only_with_key_a() {
        let payload = fixture("skopeo-1.13/artifacts/sig-payload.raw.json");
        let der = fixture("skopeo-1.13/artifacts/sig.der");
        let sig = base64::engine::general_purpose::STANDARD.encode(&der);
        verify(&key("skopeo-1.13/keys/keyA.pub"), &payload, &sig).unwrap();
        for other in ["skopeo-1.13/keys/keyB.pub", "skopeo-1.13/keys/keyR.pub"] {
            let result = verify(&key(other), &payload, &sig);
            assert!(
                matches!(result, Err(Error::SignatureMismatch { .. })),
                "{other}: {result:?}"
            );
        }
        // The annotation in the registry manifest is the same signature.
        let manifest: serde_json::Value =
            serde_json::from_slice(&fixture("skopeo-1.13/artifacts/sig-manifest.raw.json"))
                .unwrap();
        let annotation = manifest["layers"][0]["annotations"][SIGNATURE_ANNOTATION]
            .as_str()
            .unwrap();
        assert_eq!(annotation, sig);
    }

    #[test]
    fn sigstore_rs_signature_verifies_with_key_a() {
        let payload = fixture("skopeo-1.13/artifacts/sigstore-rs-sig-payload.raw.json");
        let manifest: serde_json::Value = serde_json::from_slice(&fixture(
            "skopeo-1.13/artifacts/sigstore-rs-sig-manifest.raw.json",
        ))
        .unwrap();
        let sig = manifest["layers"][0]["annotations"][SIGNATURE_ANNOTATION]
            .as_str()
            .unwrap();
        verify(&key("skopeo-1.13/keys/keyA.pub"), &payload, sig).unwrap();
        let result = verify(&key("skopeo-1.13/keys/keyR.pub"), &payload, sig);
        assert!(
            matches!(result, Err(Error::SignatureMismatch { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn signet_signatures_verify_and_high_s_is_accepted() {
        let signing = EncryptedKeyFile::decrypt(
            &fixture("skopeo-1.13/keys/keyR.key"),
            &fixture("skopeo-1.13/keys/keyR.pass"),
            "keyR.key",
        )
        .unwrap();
        let payload = fixture("skopeo-1.13/artifacts/sigstore-rs-sig-payload.raw.json");
        let sig = sign(&signing, &payload);
        verify(&signing.public_key(), &payload, &sig).unwrap();
        verify(&key("skopeo-1.13/keys/keyR.pub"), &payload, &sig).unwrap();
        let result = verify(&key("skopeo-1.13/keys/keyA.pub"), &payload, &sig);
        assert!(
            matches!(result, Err(Error::SignatureMismatch { .. })),
            "{result:?}"
        );

        // Flip s to n - s: still a valid ECDSA signature, and Go accepts it.
        let der = base64::engine::general_purpose::STANDARD
            .decode(&sig)
            .unwrap();
        let parsed = Signature::from_der(&der).unwrap();
        let (r, s) = parsed.split_scalars();
        let high = Signature::from_scalars(r, -s).unwrap();
        assert!(high.normalize_s().is_some() != parsed.normalize_s().is_some());
        let high_b64 = base64::engine::general_purpose::STANDARD.encode(high.to_der().as_bytes());
        verify(&signing.public_key(), &payload, &high_b64).unwrap();
    }

    #[test]
    fn wrapped_base64_is_accepted_and_garbage_refused() {
        let (payload, sig) = sig_file("cosign-real/dir-img-cosign-valid/signature-1");
        let cosign = key("cosign-real/cosign.pub");
        let wrapped = format!("{}\r\n{}\n", &sig[..40], &sig[40..]);
        verify(&cosign, &payload, &wrapped).unwrap();
        for bad in ["not base64!", "", &sig[..sig.len() - 1], "AAAA"] {
            let err = verify(&cosign, &payload, bad).unwrap_err();
            assert!(
                matches!(err, Error::SignatureEncoding { .. }),
                "{bad}: {err:?}"
            );
        }
        let long = "A".repeat(MAX_SIGNATURE_B64_LEN + 4);
        let result = verify(&cosign, &payload, &long);
        assert!(
            matches!(result, Err(Error::SignatureEncoding { .. })),
            "{result:?}"
        );
    }
}
