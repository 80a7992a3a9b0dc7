//! Verify a bundle against an artifact: sigstore-verify's checks, then Signet's stricter ones.

use std::path::Path;

use sigstore_types::bundle::VerificationMaterialContent;
use sigstore_types::SignatureContent;

use crate::bundle::{Bundle, BundleVersion, ContentKind, LogEntry};
use crate::claims::CertificateClaims;
use crate::error::{Check, Input, KeylessError};
use crate::trust::TrustedRoot;

/// A SHA-256 artifact digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Sha256Digest(sha2::Sha256::digest(bytes).into())
    }
}

impl std::str::FromStr for Sha256Digest {
    type Err = KeylessError;

    /// `sha256:` followed by exactly 64 hex digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64)
            .ok_or_else(|| KeylessError::malformed(Input::Digest, "expected sha256:<64 hex>"))?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes)
            .map_err(|_| KeylessError::malformed(Input::Digest, "expected sha256:<64 hex>"))?;
        Ok(Sha256Digest(bytes))
    }
}

impl std::fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

/// What was signed, as the verifier is given it.
#[derive(Debug, Clone, Copy)]
pub enum Artifact<'a> {
    /// The artifact's bytes.
    Bytes(&'a [u8]),
    /// A file, streamed in constant memory (an Ed25519 message signature needs the bytes
    /// themselves and is then refused as unsupported).
    File(&'a Path),
    /// Only the artifact's digest (cosign's and the conformance suite's `sha256:<hex>`).
    Digest(Sha256Digest),
}

/// A managed public key (`--key`), PEM SubjectPublicKeyInfo.
#[derive(Debug, Clone)]
pub struct PublicKey {
    der: sigstore_types::DerPublicKey,
}

impl PublicKey {
    /// Parse a PEM `PUBLIC KEY`. Junk PEM is [`KeylessError::Malformed`] with
    /// [`Input::PublicKey`].
    pub fn from_pem(pem: &str) -> Result<Self, KeylessError> {
        crate::crypto::ensure_provider();
        let der = sigstore_types::DerPublicKey::from_pem(pem)
            .map_err(|e| KeylessError::malformed(Input::PublicKey, e))?;
        sigstore_crypto::KeyAlgorithm::from_spki(&der)
            .map_err(|e| KeylessError::malformed(Input::PublicKey, e))?;
        Ok(PublicKey { der })
    }

    /// Read a PEM public key file (at most 64 KiB).
    pub fn from_file(path: &Path) -> Result<Self, KeylessError> {
        let bytes = crate::json::read_bounded(path, 64 * 1024, Input::PublicKey)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| KeylessError::malformed(Input::PublicKey, "not UTF-8 PEM"))?;
        PublicKey::from_pem(text)
    }
}

/// Who must have signed.
#[derive(Debug, Clone, Copy)]
pub enum Signer<'a> {
    /// A Fulcio certificate chaining to the trusted root. Which identity it names is checked
    /// afterwards, by policy, on [`VerifiedBundle::certificate`].
    Certificate,
    /// This managed key (the bundle carries a public-key hint, not a certificate).
    Key(&'a PublicKey),
}

/// A bundle that verified: everything in it checked out against the artifact and the root.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    /// Bundle format version.
    pub version: BundleVersion,
    /// What was signed.
    pub content: ContentKind,
    /// The signing certificate's claims (`None` for a managed-key bundle).
    pub certificate: Option<CertificateClaims>,
    /// Every verified time (TSA times, SET integrated times), Unix seconds; the certificate was
    /// valid at each.
    pub verified_times: Vec<i64>,
    /// The transparency-log entries, all verified.
    pub log_entries: Vec<LogEntry>,
    /// How many RFC 3161 timestamps verified (all the bundle carried).
    pub timestamps: usize,
    /// Whether the certificate's SCT verified (false only for managed keys and for roots
    /// without CT logs, where a certificate carrying an SCT is refused).
    pub sct_verified: bool,
}

/// Verifies bundles against one trusted root (parse the root once, verify many bundles).
pub struct Verifier {
    inner: sigstore_verify::Verifier,
    root: TrustedRoot,
    rekor_keys: sigstore_crypto::Keyring,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("root", &self.root.source())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for `root`.
    pub fn new(root: &TrustedRoot) -> Result<Self, KeylessError> {
        crate::crypto::ensure_provider();
        let trusted = &root.inner;
        crate::crypto::register_trusted_certificates(
            trusted
                .certificate_authorities
                .iter()
                .flat_map(|ca| &ca.cert_chain.certificates)
                .chain(
                    trusted
                        .timestamp_authorities
                        .iter()
                        .flat_map(|tsa| &tsa.cert_chain.certificates),
                )
                .map(|cert| cert.raw_bytes.as_bytes()),
        );
        let inner = sigstore_verify::Verifier::new(&root.inner)
            .map_err(|e| KeylessError::malformed(Input::TrustedRoot, e))?;
        let rekor_keys = root
            .inner
            .rekor_keys()
            .map_err(|e| KeylessError::malformed(Input::TrustedRoot, e))?;
        Ok(Verifier {
            inner,
            root: root.clone(),
            rekor_keys,
        })
    }

    /// The root this verifier trusts.
    pub fn trusted_root(&self) -> &TrustedRoot {
        &self.root
    }

    /// Verify `bundle` over `artifact`, signed by `signer`. `Ok` only when every piece of
    /// evidence in the bundle verified; any failure is an `Err` naming the [`Check`].
    pub fn verify(
        &self,
        artifact: Artifact<'_>,
        bundle: &Bundle,
        signer: Signer<'_>,
    ) -> Result<VerifiedBundle, KeylessError> {
        let scope = crate::crypto::VerificationScope::enter();
        // Signet's own checks first: they need no artifact and refuse what sigstore-verify
        // would let pass (ARCHITECTURE.md, "keyless").
        self.strict_checks(bundle, signer)?;
        let b = &bundle.inner;
        // Only a message signature is checked over the artifact itself (a DSSE signature is over
        // the envelope), so only then is it worth holding the artifact's bytes.
        let hold_artifact = matches!(b.content, SignatureContent::MessageSignature(_));
        // A root without transparency logs (GitHub's) cannot check a log entry, and a bundle
        // for it carries none: then, and only then, there is no log evidence to verify, and the
        // verified time must come from an RFC 3161 timestamp (sigstore-verify requires one).
        // A bundle that carries entries always has every one verified.
        let no_log_evidence =
            !self.root.has_tlogs() && b.verification_material.tlog_entries.is_empty();
        let result = match signer {
            Signer::Certificate => {
                // Every step on: chain, validity at every verified time, SCT (when the root has
                // CT logs), inclusion proofs, checkpoints, SETs. Identity is policy's job.
                let mut policy = sigstore_verify::VerificationPolicy::any_identity();
                if !self.root.has_ct_logs() {
                    policy = policy.skip_sct();
                }
                if no_log_evidence {
                    policy = policy.skip_tlog_unsafe();
                }
                self.run(hold_artifact.then_some(&scope), artifact, b, &policy)?
            }
            Signer::Key(key) => {
                let mut policy = sigstore_verify::PublicKeyVerificationPolicy::new(key.der.clone());
                if no_log_evidence {
                    policy = policy.skip_tlog_unsafe();
                }
                self.run(hold_artifact.then_some(&scope), artifact, b, &policy)?
            }
        };
        let certificate = match (signer, b.signing_certificate()) {
            (Signer::Certificate, Some(leaf)) => {
                let info = result.certificate().ok_or_else(|| {
                    KeylessError::refused(Check::Certificate, "no certificate in the result")
                })?;
                if !result.certificate_verified() {
                    return Err(KeylessError::refused(
                        Check::Certificate,
                        "certificate chain was not verified",
                    ));
                }
                let subjects = crate::claims::subject_names(leaf.as_bytes())?;
                Some(crate::claims::from_info(info, subjects))
            }
            _ => None,
        };
        if no_log_evidence && result.verified_timestamps().is_empty() {
            return Err(KeylessError::refused(
                Check::Timestamp,
                "no transparency-log entry and no verified RFC 3161 timestamp",
            ));
        }
        if !result.tlog_verified() && !no_log_evidence {
            return Err(KeylessError::refused(
                Check::TransparencyLog,
                "transparency log was not verified",
            ));
        }
        Ok(VerifiedBundle {
            version: bundle.version(),
            content: bundle.content_kind(),
            certificate,
            verified_times: result
                .verified_timestamps()
                .iter()
                .map(|t| t.as_second())
                .collect(),
            log_entries: bundle.log_entries(),
            timestamps: bundle.timestamp_count(),
            sct_verified: result.sct_verified(),
        })
    }

    fn run(
        &self,
        scope: Option<&crate::crypto::VerificationScope>,
        artifact: Artifact<'_>,
        bundle: &sigstore_types::Bundle,
        policy: &(impl sigstore_verify::Policy + ?Sized),
    ) -> Result<sigstore_verify::VerificationResult, KeylessError> {
        match artifact {
            Artifact::Bytes(bytes) => {
                if let Some(scope) = scope {
                    scope.hold_artifact(bytes);
                }
                self.inner.verify(bytes, bundle, policy).map_err(refusal)
            }
            Artifact::Digest(digest) => self
                .inner
                .verify(
                    sigstore_types::Sha256Hash::new(*digest.as_bytes()),
                    bundle,
                    policy,
                )
                .map_err(refusal),
            Artifact::File(path) => {
                let read_error = |source| KeylessError::Read {
                    input: Input::Artifact,
                    path: path.to_path_buf(),
                    source,
                };
                use std::io::Read as _;
                let mut file = std::fs::File::open(path).map_err(read_error)?;
                // A small artifact (the usual signed blob) is read whole, so its signature can be
                // checked over its bytes; a larger one streams on from where this read stopped.
                let mut head = Vec::new();
                if let Some(scope) = scope {
                    (&mut file)
                        .take(crate::crypto::MAX_MESSAGE as u64 + 1)
                        .read_to_end(&mut head)
                        .map_err(read_error)?;
                    scope.hold_artifact(&head);
                }
                let reader = std::io::Cursor::new(head)
                    .chain(std::io::BufReader::with_capacity(1 << 20, file));
                self.inner
                    .verify_reader(reader, bundle, policy)
                    .map_err(|e| match e {
                        sigstore_verify::Error::ArtifactRead(source) => read_error(source),
                        other => refusal(other),
                    })
            }
        }
    }

    fn strict_checks(&self, bundle: &Bundle, signer: Signer<'_>) -> Result<(), KeylessError> {
        let b = &bundle.inner;
        match (signer, b.signing_certificate()) {
            (Signer::Key(_), Some(_)) => {
                return Err(KeylessError::refused(
                    Check::Bundle,
                    "the bundle is signed with a certificate, but a key was given",
                ))
            }
            (Signer::Certificate, None) => {
                return Err(KeylessError::refused(
                    Check::Bundle,
                    "the bundle carries no certificate (verify it with --key)",
                ))
            }
            (Signer::Certificate, Some(leaf)) => {
                // sigstore-verify builds the path from the root's anchors and ignores a root the
                // bundle carries; the bundle specification forbids carrying one, so refuse it.
                if let VerificationMaterialContent::X509CertificateChain { certificates } =
                    &b.verification_material.content
                {
                    for cert in certificates {
                        if crate::claims::is_self_issued(cert.raw_bytes.as_bytes())? {
                            return Err(KeylessError::refused(
                                Check::Certificate,
                                "the bundle carries a self-issued (root) certificate",
                            ));
                        }
                    }
                }
                if !self.root.has_ct_logs() && crate::claims::has_sct(leaf.as_bytes())? {
                    return Err(KeylessError::refused(
                        Check::CertificateTransparency,
                        "the certificate carries an SCT but the trusted root lists no CT log to check it",
                    ));
                }
            }
            (Signer::Key(_), None) => {}
        }
        if let SignatureContent::DsseEnvelope(envelope) = &b.content {
            if envelope.payload_type != "application/vnd.in-toto+json" {
                return Err(KeylessError::refused(
                    Check::Unsupported,
                    format!(
                        "DSSE payload type {:?} is not in-toto",
                        envelope.payload_type
                    ),
                ));
            }
        }
        self.every_checkpoint_signature_verifies(b)?;
        self.every_entry_is_bound_to_its_log(b)
    }

    /// sigstore-verify binds a Rekor v1 entry to its log through the SET, but for an entry with
    /// only an inclusion proof (all Rekor v2 entries) it accepts a checkpoint signed by *any*
    /// trusted log, never looks at the entry's `logId`, and for v2 ignores the proof's root hash
    /// and log index (found by the e2e mutation test, tests/e2e/keyless_blob.rs). So: every entry
    /// must name a log the root lists, its checkpoint must be signed by that log's key, the
    /// proof's root hash and tree size must be the checkpoint's, and (v2) its log index the entry's.
    fn every_entry_is_bound_to_its_log(
        &self,
        bundle: &sigstore_types::Bundle,
    ) -> Result<(), KeylessError> {
        for entry in &bundle.verification_material.tlog_entries {
            let unbound = |why: &str| KeylessError::refused(Check::TransparencyLog, why);
            let key_id = sigstore_types::Sha256Hash::try_from(entry.log_id.key_id.as_bytes())
                .map_err(|_| unbound("log entry's logId is not a SHA-256 key id"))?;
            let Some(key) = self.rekor_keys.key(&key_id) else {
                return Err(unbound(
                    "log entry names a transparency log the trusted root does not list",
                ));
            };
            let Some(proof) = &entry.inclusion_proof else {
                continue;
            };
            let Some(checkpoint) = proof.checkpoint.checkpoint() else {
                continue; // sigstore-verify refuses a proof without a checkpoint
            };
            if checkpoint.root_hash().as_bytes() != proof.root_hash.as_bytes() {
                return Err(unbound(
                    "inclusion proof's root hash is not the checkpoint's",
                ));
            }
            // Rekor v1 proofs index the shard's tree, its entries the whole log: they differ
            // legitimately (the SET binds the entry's). Rekor v2 has one index for both.
            let rekor_v2 = entry.kind_version == sigstore_types::KindVersion::HashedRekordV002;
            if rekor_v2 && proof.log_index.get() != entry.log_index.get() {
                return Err(unbound("inclusion proof's log index is not the entry's"));
            }
            if checkpoint.tree_size() != proof.tree_size {
                return Err(unbound(
                    "inclusion proof's tree size is not the checkpoint's",
                ));
            }
            let hint = &key_id.as_bytes()[..4];
            let signed_by_own_log = checkpoint
                .signatures()
                .iter()
                .filter(|sig| sig.key_id.as_bytes() == hint)
                .any(|sig| key.verify(checkpoint.signed_data(), &sig.signature).is_ok());
            if !signed_by_own_log {
                return Err(unbound(
                    "checkpoint is not signed by the log the entry names",
                ));
            }
        }
        Ok(())
    }

    /// sigstore-verify accepts a checkpoint when one signature from a trusted log key verifies
    /// and ignores the rest. A signature that claims (by key hint) to be from a trusted log key
    /// and does not verify under it is evidence that does not verify: refuse. Signatures whose
    /// hint names no trusted key (witness cosignatures) cannot be checked and are not relied on.
    fn every_checkpoint_signature_verifies(
        &self,
        bundle: &sigstore_types::Bundle,
    ) -> Result<(), KeylessError> {
        let now = jiff::Timestamp::now();
        for entry in &bundle.verification_material.tlog_entries {
            let Some(proof) = &entry.inclusion_proof else {
                continue;
            };
            let text = proof.checkpoint.envelope();
            if text.is_empty() {
                continue; // sigstore-verify refuses a proof without a checkpoint
            }
            let checkpoint = sigstore_types::Checkpoint::from_text(text).map_err(|e| {
                KeylessError::refused(Check::TransparencyLog, format!("checkpoint: {e}"))
            })?;
            for signature in checkpoint.signatures() {
                let mut claimed = false;
                let mut verified = false;
                for key in self.rekor_keys.keys_by_hint(&signature.key_id, now) {
                    claimed = true;
                    verified |= key
                        .verify(checkpoint.signed_data(), &signature.signature)
                        .is_ok();
                }
                if claimed && !verified {
                    return Err(KeylessError::refused(
                        Check::TransparencyLog,
                        format!(
                            "checkpoint signature by {:?} names a trusted log key and does not verify",
                            signature.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// sigstore-verify's error → which check refused.
fn refusal(error: sigstore_verify::Error) -> KeylessError {
    use sigstore_verify::{CertificateError, Error as E};
    let check = match &error {
        E::SignatureInvalid(_) | E::Crypto(_) => Check::Signature,
        E::ArtifactMismatch(_) => Check::Artifact,
        E::UnsupportedArtifact(_) | E::UnsupportedBundle(_) => Check::Unsupported,
        E::Certificate(CertificateError::Sct(_)) => Check::CertificateTransparency,
        E::Certificate(_) | E::IdentityMismatch { .. } | E::IssuerMismatch { .. } => {
            Check::Certificate
        }
        E::TransparencyLog(_) => Check::TransparencyLog,
        E::Timestamp(_) => Check::Timestamp,
        E::InvalidTrustRoot(_) | E::TrustRoot(_) | E::TrustedCertificate(_) => Check::TrustMaterial,
        _ => Check::Bundle,
    };
    KeylessError::refused(check, error)
}

impl From<sigstore_verify::Error> for KeylessError {
    fn from(error: sigstore_verify::Error) -> Self {
        refusal(error)
    }
}

/// Unix seconds as RFC 3339 UTC (`2025-01-02T03:04:05Z`), for reports; out-of-range values are
/// printed as the number.
pub fn rfc3339(unix_seconds: i64) -> String {
    jiff::Timestamp::from_second(unix_seconds)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| unix_seconds.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::trust::Instance;

    const COSIGN_BUNDLE: &[u8] =
        include_bytes!("../../testdata/sigstore-bundles/cosign-v3-blob/bundle.sigstore.json");
    const COSIGN_ARTIFACT: &[u8] =
        include_bytes!("../../testdata/sigstore-bundles/cosign-v3-blob/artifact");
    const KEY_BUNDLE: &[u8] =
        include_bytes!("../../testdata/sigstore-bundles/managed-key-v0.3/bundle.sigstore.json");
    const KEY_ARTIFACT: &[u8] =
        include_bytes!("../../testdata/sigstore-bundles/managed-key-v0.3/artifact");
    const KEY: &str = include_str!("../../testdata/sigstore-bundles/managed-key-v0.3/key.pub");

    fn verifier() -> Verifier {
        Verifier::new(&TrustedRoot::embedded(Instance::PublicGood).unwrap()).unwrap()
    }

    #[test]
    fn keyless_bundle_verifies_by_bytes_and_digest_and_reports_claims() {
        let bundle = Bundle::from_json(COSIGN_BUNDLE).unwrap();
        let v = verifier();
        let by_bytes = v
            .verify(
                Artifact::Bytes(COSIGN_ARTIFACT),
                &bundle,
                Signer::Certificate,
            )
            .unwrap();
        let digest = Sha256Digest::of(COSIGN_ARTIFACT);
        let by_digest = v
            .verify(Artifact::Digest(digest), &bundle, Signer::Certificate)
            .unwrap();
        let claims = by_bytes.certificate.unwrap();
        assert_eq!(
            claims.subjects,
            vec![crate::SubjectName::Email("w.vollprecht@gmail.com".into())]
        );
        assert_eq!(
            claims.issuer.as_deref(),
            Some("https://github.com/login/oauth")
        );
        assert!(by_bytes.sct_verified);
        assert_eq!(by_bytes.timestamps, 1);
        assert_eq!(by_digest.verified_times, by_bytes.verified_times);
        // Every verified time lies within the certificate's validity.
        assert!(by_bytes
            .verified_times
            .iter()
            .all(|t| (claims.not_before..=claims.not_after).contains(t)));
    }

    #[test]
    fn another_artifact_is_refused_as_artifact_mismatch() {
        let bundle = Bundle::from_json(COSIGN_BUNDLE).unwrap();
        let err = verifier()
            .verify(
                Artifact::Bytes(b"something else"),
                &bundle,
                Signer::Certificate,
            )
            .unwrap_err();
        assert_eq!(err.check(), Some(Check::Artifact), "{err}");
    }

    /// The message signature is checked over the artifact's bytes when they are at hand (bytes,
    /// or a file small enough to read whole) and over its digest otherwise: every form accepts
    /// the bundle, every form refuses a flipped signature bit, and a file past the size kept
    /// whole still streams (and here differs from the signed artifact). (The signature is also
    /// bound by the timestamp and the log entry, which may refuse it first; the crypto path
    /// itself is tested bit by bit in `crypto::tests`.)
    #[test]
    fn artifact_as_bytes_small_file_or_digest_gets_the_same_verdicts() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let v = verifier();
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("artifact");
        std::fs::write(&small, COSIGN_ARTIFACT).unwrap();
        let mut padded = COSIGN_ARTIFACT.to_vec();
        padded.resize(crate::crypto::MAX_MESSAGE + 1, b'x');
        let large = dir.path().join("large");
        std::fs::write(&large, &padded).unwrap();
        let digest = Sha256Digest::of(COSIGN_ARTIFACT);
        let forms = [
            Artifact::Bytes(COSIGN_ARTIFACT),
            Artifact::File(&small),
            Artifact::Digest(digest),
        ];

        let good = Bundle::from_json(COSIGN_BUNDLE).unwrap();
        for form in forms {
            v.verify(form, &good, Signer::Certificate)
                .unwrap_or_else(|e| panic!("{form:?}: {e}"));
        }
        let err = v
            .verify(Artifact::File(&large), &good, Signer::Certificate)
            .unwrap_err();
        assert_eq!(err.check(), Some(Check::Artifact), "{err}");

        let mut json: serde_json::Value = serde_json::from_slice(COSIGN_BUNDLE).unwrap();
        let signature = b64
            .decode(json["messageSignature"]["signature"].as_str().unwrap())
            .unwrap();
        for byte in [0, signature.len() / 2, signature.len() - 1] {
            let mut flipped = signature.clone();
            flipped[byte] ^= 0x10;
            json["messageSignature"]["signature"] = b64.encode(&flipped).into();
            let bundle = Bundle::from_json(&serde_json::to_vec(&json).unwrap()).unwrap();
            for form in forms {
                let err = v
                    .verify(form, &bundle, Signer::Certificate)
                    .expect_err("a flipped signature bit must be refused");
                assert!(
                    matches!(
                        err.check(),
                        Some(Check::Signature | Check::Timestamp | Check::TransparencyLog)
                    ),
                    "{form:?} byte {byte}: {err}"
                );
            }
        }
    }

    #[test]
    fn managed_key_bundle_needs_the_key_and_the_key_needs_a_key_bundle() {
        let key = PublicKey::from_pem(KEY).unwrap();
        let v = verifier();
        let bundle = Bundle::from_json(KEY_BUNDLE).unwrap();
        let ok = v
            .verify(Artifact::Bytes(KEY_ARTIFACT), &bundle, Signer::Key(&key))
            .unwrap();
        assert!(ok.certificate.is_none());
        let err = v
            .verify(Artifact::Bytes(KEY_ARTIFACT), &bundle, Signer::Certificate)
            .unwrap_err();
        assert_eq!(err.check(), Some(Check::Bundle), "{err}");
        let keyless = Bundle::from_json(COSIGN_BUNDLE).unwrap();
        let err = v
            .verify(
                Artifact::Bytes(COSIGN_ARTIFACT),
                &keyless,
                Signer::Key(&key),
            )
            .unwrap_err();
        assert_eq!(err.check(), Some(Check::Bundle), "{err}");
    }

    /// The bundle with `edit` applied to its leaf certificate's DER.
    fn with_leaf(edit: impl Fn(&mut Vec<u8>)) -> Bundle {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut json: serde_json::Value = serde_json::from_slice(COSIGN_BUNDLE).unwrap();
        let raw = &mut json["verificationMaterial"]["certificate"]["rawBytes"];
        let mut der = b64.decode(raw.as_str().unwrap()).unwrap();
        edit(&mut der);
        *raw = b64.encode(der).into();
        Bundle::from_json(&serde_json::to_vec(&json).unwrap()).unwrap()
    }

    /// The embedded public-good root with `edit` applied to its JSON.
    fn root_with(edit: impl Fn(&mut serde_json::Value)) -> Verifier {
        let mut json: serde_json::Value =
            serde_json::from_str(Instance::PublicGood.embedded_json()).unwrap();
        edit(&mut json);
        let root = TrustedRoot::from_json(
            &serde_json::to_vec(&json).unwrap(),
            crate::TrustSource::Embedded(Instance::PublicGood),
        )
        .unwrap();
        Verifier::new(&root).unwrap()
    }

    #[test]
    fn after_cached_successes_a_changed_byte_or_a_closed_window_is_still_refused() {
        let v = verifier();
        let bundle = Bundle::from_json(COSIGN_BUNDLE).unwrap();
        // Enough successes to build the trusted keys' tables and remember the root's links.
        for _ in 0..2 * crate::fixed_key::BUILD_AFTER_USES {
            v.verify(
                Artifact::Bytes(COSIGN_ARTIFACT),
                &bundle,
                Signer::Certificate,
            )
            .unwrap();
        }
        // The leaf's signature (the DER's last byte) and a serial-number byte of its TBS: the
        // Fulcio key's table must refuse both.
        for edit in [
            (|der: &mut Vec<u8>| *der.last_mut().unwrap() ^= 1) as fn(&mut Vec<u8>),
            |der: &mut Vec<u8>| der[20] ^= 1,
        ] {
            let err = v
                .verify(
                    Artifact::Bytes(COSIGN_ARTIFACT),
                    &with_leaf(edit),
                    Signer::Certificate,
                )
                .unwrap_err();
            assert_eq!(err.check(), Some(Check::Certificate), "{err}");
        }
        // A byte of the TSA's signing certificate in the root (its remembered link under the
        // TSA intermediate is keyed by the exact bytes): refused.
        let tampered = root_with(|root| {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD;
            for tsa in root["timestampAuthorities"].as_array_mut().unwrap() {
                let raw = &mut tsa["certChain"]["certificates"][0]["rawBytes"];
                let mut der = b64.decode(raw.as_str().unwrap()).unwrap();
                *der.last_mut().unwrap() ^= 1;
                *raw = b64.encode(der).into();
            }
        });
        let err = tampered
            .verify(
                Artifact::Bytes(COSIGN_ARTIFACT),
                &bundle,
                Signer::Certificate,
            )
            .unwrap_err();
        assert_eq!(err.check(), Some(Check::Timestamp), "{err}");
        // The same certificates under a root whose authorities' windows closed before the
        // bundle was signed: the remembered links and tables do not skip the time checks.
        for (list, check) in [
            ("timestampAuthorities", Check::Timestamp),
            ("certificateAuthorities", Check::Certificate),
        ] {
            let closed = root_with(|root| {
                for authority in root[list].as_array_mut().unwrap() {
                    authority["validFor"] = serde_json::json!({
                        "start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"
                    });
                }
            });
            let err = closed
                .verify(
                    Artifact::Bytes(COSIGN_ARTIFACT),
                    &bundle,
                    Signer::Certificate,
                )
                .unwrap_err();
            assert_eq!(err.check(), Some(check), "{list}: {err}");
        }
        // And the untouched bundle still verifies.
        v.verify(
            Artifact::Bytes(COSIGN_ARTIFACT),
            &bundle,
            Signer::Certificate,
        )
        .unwrap();
    }

    /// Every leaf of the bundle's JSON changed once (a bit of a base64 field's first, middle and
    /// last byte; a number plus one; a character of a text field), in one process whose tables
    /// and remembered links are warm from the untouched bundle's successes: all refused. (The e2e
    /// mutation test runs each mutation in a fresh process, where nothing is warm.)
    fn every_mutation_refused_with_warm_caches(json: &[u8], artifact: &[u8]) {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let v = verifier();
        let bundle = Bundle::from_json(json).unwrap();
        for _ in 0..2 * crate::fixed_key::BUILD_AFTER_USES {
            v.verify(Artifact::Bytes(artifact), &bundle, Signer::Certificate)
                .unwrap();
        }
        let original: serde_json::Value = serde_json::from_slice(json).unwrap();
        let mut paths = Vec::new();
        fn leaves(value: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, child) in map {
                        path.push(key.clone());
                        leaves(child, path, out);
                        path.pop();
                    }
                }
                serde_json::Value::Array(items) => {
                    for (i, child) in items.iter().enumerate() {
                        path.push(i.to_string());
                        leaves(child, path, out);
                        path.pop();
                    }
                }
                _ => out.push(path.clone()),
            }
        }
        leaves(&original, &mut Vec::new(), &mut paths);
        let mut tried = 0;
        let mut accepted = Vec::new();
        for path in &paths {
            let leaf = path.iter().fold(&original, |v, k| {
                v.get(k)
                    .or_else(|| v.get(k.parse::<usize>().unwrap_or(usize::MAX)))
                    .unwrap()
            });
            let mut variants: Vec<serde_json::Value> = Vec::new();
            match leaf {
                serde_json::Value::String(text) => match b64.decode(text) {
                    Ok(bytes) if bytes.len() >= 16 => {
                        for at in [0, bytes.len() / 2, bytes.len() - 1] {
                            let mut changed = bytes.clone();
                            changed[at] ^= 0x10;
                            variants.push(b64.encode(changed).into());
                        }
                    }
                    _ => {
                        if let Ok(n) = text.parse::<u64>() {
                            variants.push((n + 1).to_string().into());
                        } else {
                            // Text (the checkpoint, a media type): one character near the end.
                            let mut chars: Vec<char> = text.chars().collect();
                            let at = chars.len().saturating_sub(5);
                            chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
                            variants.push(chars.into_iter().collect::<String>().into());
                        }
                    }
                },
                serde_json::Value::Number(n) => {
                    variants.push((n.as_u64().unwrap() + 1).into());
                }
                _ => {}
            }
            for variant in variants {
                let mut mutated = original.clone();
                let slot = path.iter().fold(&mut mutated, |v, k| {
                    if v.is_array() {
                        &mut v[k.parse::<usize>().unwrap()]
                    } else {
                        &mut v[k.as_str()]
                    }
                });
                *slot = variant;
                tried += 1;
                // By bytes (the message signature checked by ring over them) and by digest (the
                // prehashed code): both must refuse.
                let digest = Sha256Digest::of(artifact);
                for form in [Artifact::Bytes(artifact), Artifact::Digest(digest)] {
                    let verdict = Bundle::from_json(&serde_json::to_vec(&mutated).unwrap())
                        .and_then(|b| v.verify(form, &b, Signer::Certificate));
                    if verdict.is_ok() {
                        accepted.push(format!("{} ({form:?})", path.join("/")));
                    }
                }
            }
        }
        assert!(tried > 60, "only {tried} mutations");
        assert!(accepted.is_empty(), "accepted after mutation: {accepted:?}");
        // And the caches still accept the untouched bundle.
        v.verify(Artifact::Bytes(artifact), &bundle, Signer::Certificate)
            .unwrap();
    }

    #[test]
    fn hashedrekord_mutations_are_refused_with_warm_caches() {
        every_mutation_refused_with_warm_caches(COSIGN_BUNDLE, COSIGN_ARTIFACT);
    }

    #[test]
    fn dsse_mutations_are_refused_with_warm_caches() {
        every_mutation_refused_with_warm_caches(
            include_bytes!(
                "../../testdata/sigstore-bundles/dsse-rekor1-conda/bundle.sigstore.json"
            ),
            include_bytes!("../../testdata/sigstore-bundles/dsse-rekor1-conda/artifact"),
        );
    }

    #[test]
    fn digests_parse_strictly() {
        let hex = "ab".repeat(32);
        assert!(format!("sha256:{hex}").parse::<Sha256Digest>().is_ok());
        for bad in [
            format!("sha256:{}", &hex[1..]),
            format!("sha512:{hex}"),
            format!("sha256:{}zz", &hex[2..]),
        ] {
            let err = bad.parse::<Sha256Digest>().unwrap_err();
            assert!(
                matches!(
                    err,
                    KeylessError::Malformed {
                        input: Input::Digest,
                        ..
                    }
                ),
                "{bad}"
            );
        }
    }
}
