//! The cryptographic backend handed to sigstore-crypto.
//!
//! sigstore-crypto ships only an aws-lc-rs backend; building aws-lc on our two cores costs minutes,
//! and ring is already in the tree for rustls. ring verifies whole messages (ECDSA P-256/P-384,
//! Ed25519, RSA PKCS#1 v1.5 and PSS); it has no prehashed verification, which sigstore-verify uses
//! for every ECDSA/RSA message signature (the artifact may be given only by its digest), so that
//! part comes from RustCrypto (`p256`, `p384`, `rsa`). ML-DSA is not supported: such a signature is
//! refused (fail closed), never accepted.

use sha2::Digest as _;
use sigstore_crypto::{CryptoProvider, HashContext, SigningScheme};
use sigstore_types::HashAlgorithm;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Once, OnceLock, RwLock};

/// Verification-only provider: ring + RustCrypto.
#[derive(Debug)]
struct RingProvider;

static PROVIDER: RingProvider = RingProvider;
static INSTALL: Once = Once::new();

/// Install our provider as sigstore-crypto's process-wide default (idempotent). Called by every
/// public entry point before any sigstore code can reach for a provider; without one,
/// sigstore-crypto would panic.
pub(crate) fn ensure_provider() {
    INSTALL.call_once(|| {
        // An `Err` means a provider is already installed (by the embedding program); keep it.
        let _ = sigstore_crypto::install_default_provider(&PROVIDER);
    });
}

static ACCELERATED: AtomicBool = AtomicBool::new(true);

/// Turn the speed-ups below (tables, remembered root links, the per-verification memo) off or on,
/// process-wide. Only for the benchmark, to measure the plain ring/RustCrypto provider in the
/// same run; verdicts are the same either way.
pub fn set_accelerated(on: bool) {
    ACCELERATED.store(on, Ordering::Relaxed);
}

fn accelerated() -> bool {
    ACCELERATED.load(Ordering::Relaxed)
}

/// One signature check, identified by everything it depends on: which operation, the scheme, the
/// exact key, message (or digest) and signature bytes. Equal fingerprints are the same pure
/// computation, so its result may be reused where the reuse is allowed (below).
type Fingerprint = [u8; 32];

fn fingerprint(
    prehashed: bool,
    scheme: SigningScheme,
    key: &[u8],
    message_hash: &[u8; 32],
    signature: &[u8],
) -> Fingerprint {
    let mut h = sha2::Sha256::new();
    h.update([u8::from(prehashed)]);
    h.update(scheme.name().as_bytes());
    h.update([0]);
    h.update((key.len() as u64).to_be_bytes());
    h.update(key);
    h.update(message_hash);
    h.update((signature.len() as u64).to_be_bytes());
    h.update(signature);
    h.finalize().into()
}

thread_local! {
    /// The verification running on this thread: its successful checks, and the artifact.
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

#[derive(Default)]
struct Scope {
    /// The checks that succeeded during this verification.
    verified: HashSet<Fingerprint>,
    /// The artifact's bytes, when they are at hand and small (see [`MAX_MESSAGE`]).
    message: Option<Message>,
}

struct Message {
    bytes: Vec<u8>,
}

/// Artifacts up to this size are kept for the verification so that a P-256 signature over them is
/// checked by ring over the bytes (ring hashes them again) rather than by RustCrypto's prehashed
/// P-256, about 4x slower. Past it, hashing twice more would cost more than it saves.
pub(crate) const MAX_MESSAGE: usize = 64 * 1024;

/// While alive, a signature check that already succeeded *in this verification* is not redone:
/// sigstore-verify checks the leaf certificate once per verified time and a Rekor v1 SET twice,
/// and Signet's own checkpoint checks repeat its. Nothing outlives the verification: a memo
/// across bundles would be keyed by per-bundle material and only flatter a benchmark that
/// verifies one bundle over and over.
pub(crate) struct VerificationScope {
    outer: Option<Scope>,
}

impl VerificationScope {
    pub(crate) fn enter() -> Self {
        let outer = SCOPE.with(|current| current.replace(Some(Scope::default())));
        VerificationScope { outer }
    }

    /// The artifact's bytes are at hand: keep them (up to [`MAX_MESSAGE`]) for this verification.
    pub(crate) fn hold_artifact(&self, bytes: &[u8]) {
        if bytes.len() > MAX_MESSAGE {
            return;
        }
        SCOPE.with(|scope| {
            if let Some(s) = scope.borrow_mut().as_mut() {
                s.message = Some(Message {
                    bytes: bytes.to_vec(),
                });
            }
        });
    }
}

impl Drop for VerificationScope {
    fn drop(&mut self) {
        let outer = self.outer.take();
        SCOPE.with(|scope| *scope.borrow_mut() = outer);
    }
}

fn in_scope(fp: &Fingerprint) -> bool {
    SCOPE.with(|scope| {
        scope
            .borrow()
            .as_ref()
            .is_some_and(|s| s.verified.contains(fp))
    })
}

fn remember_in_scope(fp: Fingerprint) {
    SCOPE.with(|scope| {
        if let Some(s) = scope.borrow_mut().as_mut() {
            s.verified.insert(fp);
        }
    });
}

/// A prehashed ECDSA P-256/SHA-256 check whose digest is the SHA-256 of this verification's
/// artifact, done by ring over the artifact itself: the same equation (ring hashes the bytes to
/// the same digest), about 4x faster. `None` when that does not apply (another scheme, a key not
/// in uncompressed SEC1 form, no artifact bytes, or a digest of something else): then the
/// prehashed code decides.
fn verify_prehashed_over_message(
    scheme: SigningScheme,
    spki_pubkey_bytes: &[u8],
    digest: &[u8],
    signature: &[u8],
) -> Option<sigstore_crypto::Result<()>> {
    // ring reads only the uncompressed form; RustCrypto also takes compressed points.
    let uncompressed = spki_pubkey_bytes.len() == 65 && spki_pubkey_bytes[0] == 0x04;
    if scheme != SigningScheme::EcdsaP256Sha256 || !uncompressed {
        return None;
    }
    SCOPE.with(|scope| {
        let scope = scope.borrow();
        let message = scope.as_ref()?.message.as_ref()?;
        if sha2::Sha256::digest(&message.bytes).as_slice() != digest {
            return None;
        }
        Some(
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_ASN1,
                spki_pubkey_bytes,
            )
            .verify(&message.bytes, signature)
            .map_err(|_| failed(scheme)),
        )
    })
}

/// Signature checks between certificates *of a trusted root* (a Fulcio or TSA intermediate under
/// its root, a TSA's signing certificate under its intermediate). They are the same for every
/// bundle, so a success is remembered across verifications — keyed by the exact key, TBS and
/// signature bytes, so a changed byte is a different check. Only the signature is remembered:
/// webpki still checks every certificate's validity at each verified time, and sigstore-verify
/// each authority's window, on every verification.
#[derive(Default)]
struct RootLinks {
    /// SHA-256 of the TBS of every certificate in a registered trusted root.
    tbs: HashSet<[u8; 32]>,
    /// Checks over one of those TBSs that succeeded.
    verified: HashSet<Fingerprint>,
}

/// Bound on both sets: a trusted root has a handful of certificates.
const MAX_ROOT_LINKS: usize = 1024;

fn root_links() -> &'static RwLock<RootLinks> {
    static LINKS: OnceLock<RwLock<RootLinks>> = OnceLock::new();
    LINKS.get_or_init(Default::default)
}

/// Register the certificates (DER) of a trusted root: their TBS for the link memo above, their
/// P-384 keys for precomputed tables (`fixed_key`). Certificates that do not parse are skipped:
/// this only speeds verification up, it decides nothing.
pub(crate) fn register_trusted_certificates<'a>(certificates: impl Iterator<Item = &'a [u8]>) {
    use x509_cert::der::{Decode as _, Encode as _};
    for der in certificates {
        let Ok(cert) = x509_cert::Certificate::from_der(der) else {
            continue;
        };
        if let Ok(tbs) = cert.tbs_certificate.to_der() {
            if let Ok(mut links) = root_links().write() {
                if links.tbs.len() < MAX_ROOT_LINKS {
                    links.tbs.insert(sha2::Sha256::digest(&tbs).into());
                }
            }
        }
        let spki = &cert.tbs_certificate.subject_public_key_info;
        if let Some(point) = spki.subject_public_key.as_bytes() {
            crate::fixed_key::register(point);
        }
    }
}

fn root_link_verified(fp: &Fingerprint) -> bool {
    root_links()
        .read()
        .is_ok_and(|links| links.verified.contains(fp))
}

fn remember_root_link(message_hash: &[u8; 32], fp: Fingerprint) {
    if let Ok(mut links) = root_links().write() {
        if links.tbs.contains(message_hash) && links.verified.len() < MAX_ROOT_LINKS {
            links.verified.insert(fp);
        }
    }
}

/// P-384 under a registered trusted key whose table is built: the precomputed-table verifier.
/// `None`: not such a key (or not yet), use the generic code.
fn fixed_key_p384(key: &[u8], digest: &[u8], der_signature: &[u8]) -> Option<bool> {
    if !accelerated() {
        return None;
    }
    let slot = crate::fixed_key::slot(key)?;
    if !slot.ready(false) {
        return None;
    }
    let Ok(signature) = p384::ecdsa::Signature::from_der(der_signature) else {
        return Some(false);
    };
    let mut r_s = [0u8; 96];
    r_s.copy_from_slice(&signature.to_bytes());
    slot.verify(digest, &r_s)
}

fn failed(scheme: SigningScheme) -> sigstore_crypto::Error {
    sigstore_crypto::Error::Verification(format!("{} signature invalid", scheme.name()))
}

fn unsupported(scheme: SigningScheme) -> sigstore_crypto::Error {
    sigstore_crypto::Error::UnsupportedAlgorithm(format!(
        "{} is not supported by Signet's verifier",
        scheme.name()
    ))
}

enum Hasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl HashContext for Hasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(data),
            Self::Sha384(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
        }
    }

    fn finalize(self: Box<Self>) -> Vec<u8> {
        match *self {
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha384(h) => h.finalize().to_vec(),
            Self::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

impl CryptoProvider for RingProvider {
    fn hash(&self, algorithm: HashAlgorithm) -> sigstore_crypto::Result<Box<dyn HashContext>> {
        Ok(Box::new(match algorithm {
            HashAlgorithm::Sha2256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha2384 => Hasher::Sha384(sha2::Sha384::new()),
            HashAlgorithm::Sha2512 => Hasher::Sha512(sha2::Sha512::new()),
            other => {
                return Err(sigstore_crypto::Error::UnsupportedAlgorithm(format!(
                    "cannot compute {other} digests"
                )))
            }
        }))
    }

    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(data).into()
    }

    fn sha384(&self, data: &[u8]) -> [u8; 48] {
        sha2::Sha384::digest(data).into()
    }

    fn sha512(&self, data: &[u8]) -> [u8; 64] {
        sha2::Sha512::digest(data).into()
    }

    fn verify_raw(
        &self,
        scheme: SigningScheme,
        spki_pubkey_bytes: &[u8],
        data: &[u8],
        signature: &[u8],
    ) -> sigstore_crypto::Result<()> {
        if !accelerated() {
            return verify_raw_uncached(scheme, spki_pubkey_bytes, data, signature);
        }
        let message_hash: [u8; 32] = sha2::Sha256::digest(data).into();
        let fp = fingerprint(false, scheme, spki_pubkey_bytes, &message_hash, signature);
        if in_scope(&fp) || root_link_verified(&fp) {
            return Ok(());
        }
        verify_raw_uncached(scheme, spki_pubkey_bytes, data, signature)?;
        remember_in_scope(fp);
        remember_root_link(&message_hash, fp);
        Ok(())
    }

    fn verify_prehashed(
        &self,
        scheme: SigningScheme,
        spki_pubkey_bytes: &[u8],
        digest: &[u8],
        signature: &[u8],
    ) -> sigstore_crypto::Result<()> {
        if !accelerated() {
            return verify_prehashed_uncached(scheme, spki_pubkey_bytes, digest, signature);
        }
        let message_hash: [u8; 32] = sha2::Sha256::digest(digest).into();
        let fp = fingerprint(true, scheme, spki_pubkey_bytes, &message_hash, signature);
        if in_scope(&fp) {
            return Ok(());
        }
        match verify_prehashed_over_message(scheme, spki_pubkey_bytes, digest, signature) {
            Some(verdict) => verdict?,
            None => verify_prehashed_uncached(scheme, spki_pubkey_bytes, digest, signature)?,
        }
        remember_in_scope(fp);
        Ok(())
    }
}

fn verify_raw_uncached(
    scheme: SigningScheme,
    spki_pubkey_bytes: &[u8],
    data: &[u8],
    signature: &[u8],
) -> sigstore_crypto::Result<()> {
    let fixed = match scheme {
        SigningScheme::EcdsaP384Sha384 => {
            fixed_key_p384(spki_pubkey_bytes, &sha2::Sha384::digest(data), signature)
        }
        SigningScheme::EcdsaP384Sha256 => {
            fixed_key_p384(spki_pubkey_bytes, &sha2::Sha256::digest(data), signature)
        }
        _ => None,
    };
    if let Some(verified) = fixed {
        return verified.then_some(()).ok_or_else(|| failed(scheme));
    }
    use ring::signature as rs;
    let algorithm: &'static dyn rs::VerificationAlgorithm = match scheme {
        SigningScheme::EcdsaP256Sha256 => &rs::ECDSA_P256_SHA256_ASN1,
        SigningScheme::EcdsaP256Sha384 => &rs::ECDSA_P256_SHA384_ASN1,
        SigningScheme::EcdsaP384Sha256 => &rs::ECDSA_P384_SHA256_ASN1,
        SigningScheme::EcdsaP384Sha384 => &rs::ECDSA_P384_SHA384_ASN1,
        SigningScheme::Ed25519 => &rs::ED25519,
        SigningScheme::RsaPssSha256 => &rs::RSA_PSS_2048_8192_SHA256,
        SigningScheme::RsaPssSha384 => &rs::RSA_PSS_2048_8192_SHA384,
        SigningScheme::RsaPssSha512 => &rs::RSA_PSS_2048_8192_SHA512,
        SigningScheme::RsaPkcs1Sha256 => &rs::RSA_PKCS1_2048_8192_SHA256,
        SigningScheme::RsaPkcs1Sha384 => &rs::RSA_PKCS1_2048_8192_SHA384,
        SigningScheme::RsaPkcs1Sha512 => &rs::RSA_PKCS1_2048_8192_SHA512,
        _ => return Err(unsupported(scheme)),
    };
    rs::UnparsedPublicKey::new(algorithm, spki_pubkey_bytes)
        .verify(data, signature)
        .map_err(|_| failed(scheme))
}

fn verify_prehashed_uncached(
    scheme: SigningScheme,
    spki_pubkey_bytes: &[u8],
    digest: &[u8],
    signature: &[u8],
) -> sigstore_crypto::Result<()> {
    // sigstore-crypto has already checked that `digest` has the scheme's hash length.
    match scheme {
        SigningScheme::EcdsaP256Sha256 | SigningScheme::EcdsaP256Sha384 => {
            use p256_prehash::ecdsa::signature::hazmat::PrehashVerifier;
            let key = p256_prehash::ecdsa::VerifyingKey::from_sec1_bytes(spki_pubkey_bytes)
                .map_err(|_| failed(scheme))?;
            let sig =
                p256_prehash::ecdsa::Signature::from_der(signature).map_err(|_| failed(scheme))?;
            key.verify_prehash(digest, &sig).map_err(|_| failed(scheme))
        }
        SigningScheme::EcdsaP384Sha256 | SigningScheme::EcdsaP384Sha384 => {
            if let Some(verified) = fixed_key_p384(spki_pubkey_bytes, digest, signature) {
                return verified.then_some(()).ok_or_else(|| failed(scheme));
            }
            use p384::ecdsa::signature::hazmat::PrehashVerifier;
            let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(spki_pubkey_bytes)
                .map_err(|_| failed(scheme))?;
            let sig = p384::ecdsa::Signature::from_der(signature).map_err(|_| failed(scheme))?;
            key.verify_prehash(digest, &sig).map_err(|_| failed(scheme))
        }
        SigningScheme::RsaPkcs1Sha256
        | SigningScheme::RsaPkcs1Sha384
        | SigningScheme::RsaPkcs1Sha512
        | SigningScheme::RsaPssSha256
        | SigningScheme::RsaPssSha384
        | SigningScheme::RsaPssSha512 => {
            use rsa::pkcs1::DecodeRsaPublicKey;
            let key =
                rsa::RsaPublicKey::from_pkcs1_der(spki_pubkey_bytes).map_err(|_| failed(scheme))?;
            let verified = match scheme {
                SigningScheme::RsaPkcs1Sha256 => {
                    key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), digest, signature)
                }
                SigningScheme::RsaPkcs1Sha384 => {
                    key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), digest, signature)
                }
                SigningScheme::RsaPkcs1Sha512 => {
                    key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha512>(), digest, signature)
                }
                SigningScheme::RsaPssSha256 => {
                    key.verify(rsa::Pss::new::<sha2::Sha256>(), digest, signature)
                }
                SigningScheme::RsaPssSha384 => {
                    key.verify(rsa::Pss::new::<sha2::Sha384>(), digest, signature)
                }
                _ => key.verify(rsa::Pss::new::<sha2::Sha512>(), digest, signature),
            };
            verified.map_err(|_| failed(scheme))
        }
        _ => Err(unsupported(scheme)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use p256::ecdsa::signature::Signer as _;

    #[test]
    fn p256_raw_and_prehashed_agree_and_refuse_a_flipped_bit() {
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let point = key.verifying_key().to_encoded_point(false);
        let msg = b"signet keyless";
        let sig: p256::ecdsa::Signature = key.sign(msg);
        let der = sig.to_der();
        let digest = sha2::Sha256::digest(msg);
        let s = SigningScheme::EcdsaP256Sha256;
        PROVIDER
            .verify_raw(s, point.as_bytes(), msg, der.as_bytes())
            .unwrap();
        PROVIDER
            .verify_prehashed(s, point.as_bytes(), &digest, der.as_bytes())
            .unwrap();
        let mut bad = digest;
        bad[0] ^= 1;
        let err = PROVIDER
            .verify_prehashed(s, point.as_bytes(), &bad, der.as_bytes())
            .unwrap_err();
        assert!(
            matches!(err, sigstore_crypto::Error::Verification(_)),
            "{err}"
        );
        let err = PROVIDER
            .verify_raw(s, point.as_bytes(), b"signet keyleSs", der.as_bytes())
            .unwrap_err();
        assert!(
            matches!(err, sigstore_crypto::Error::Verification(_)),
            "{err}"
        );
    }

    /// With the artifact held, a prehashed P-256 check of its digest is ring's over the bytes:
    /// good signatures pass, and a flipped bit in the signature, the digest or the key is refused,
    /// through that path (not by falling back).
    #[test]
    fn prehashed_p256_over_the_held_artifact_refuses_every_flipped_bit() {
        let key = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
        let point = key.verifying_key().to_encoded_point(false);
        let point = point.as_bytes();
        let msg = b"signet keyless artifact";
        let der = p256::ecdsa::Signature::to_der(&key.sign(msg));
        let der = der.as_bytes();
        let digest: [u8; 32] = sha2::Sha256::digest(msg).into();
        let s = SigningScheme::EcdsaP256Sha256;
        let refused = |r: Option<sigstore_crypto::Result<()>>| {
            matches!(r, Some(Err(sigstore_crypto::Error::Verification(_))))
        };

        // No verification running, or none holding the artifact: not this path.
        assert!(verify_prehashed_over_message(s, point, &digest, der).is_none());
        let scope = VerificationScope::enter();
        assert!(verify_prehashed_over_message(s, point, &digest, der).is_none());
        scope.hold_artifact(msg);

        assert!(matches!(
            verify_prehashed_over_message(s, point, &digest, der),
            Some(Ok(()))
        ));
        PROVIDER.verify_prehashed(s, point, &digest, der).unwrap();
        for bit in 0..der.len() * 8 {
            let mut bad = der.to_vec();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                refused(verify_prehashed_over_message(s, point, &digest, &bad)),
                "signature bit {bit}"
            );
            assert!(PROVIDER.verify_prehashed(s, point, &digest, &bad).is_err());
        }
        for bit in 8..point.len() * 8 {
            let mut bad = point.to_vec();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                refused(verify_prehashed_over_message(s, &bad, &digest, der)),
                "key bit {bit}"
            );
        }
        // A digest of anything else is not the held artifact's: the prehashed code decides, and
        // refuses it.
        for bit in 0..256 {
            let mut bad = digest;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(verify_prehashed_over_message(s, point, &bad, der).is_none());
            let err = PROVIDER.verify_prehashed(s, point, &bad, der).unwrap_err();
            assert!(matches!(err, sigstore_crypto::Error::Verification(_)));
        }
        // Other schemes and compressed keys: not this path.
        let compressed = key.verifying_key().to_encoded_point(true);
        assert!(verify_prehashed_over_message(s, compressed.as_bytes(), &digest, der).is_none());
        PROVIDER
            .verify_prehashed(s, compressed.as_bytes(), &digest, der)
            .unwrap();
        assert!(
            verify_prehashed_over_message(SigningScheme::EcdsaP384Sha256, point, &digest, der)
                .is_none()
        );

        // An artifact past the size limit is not held.
        drop(scope);
        let scope = VerificationScope::enter();
        scope.hold_artifact(&vec![0u8; MAX_MESSAGE + 1]);
        assert!(SCOPE.with(|s| s.borrow().as_ref().unwrap().message.is_none()));
        drop(scope);
        assert!(SCOPE.with(|s| s.borrow().is_none()));
    }

    #[test]
    fn ml_dsa_is_refused_not_accepted() {
        let err = PROVIDER
            .verify_raw(SigningScheme::MlDsa44, &[0; 1312], b"x", &[0; 2420])
            .unwrap_err();
        assert!(
            matches!(err, sigstore_crypto::Error::UnsupportedAlgorithm(_)),
            "{err}"
        );
    }
}
