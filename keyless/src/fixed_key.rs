//! ECDSA P-384 verification under a *trusted* public key, with precomputed tables.
//!
//! Every keyless verification checks at least one P-384 signature made by a key of the trusted
//! root: the Fulcio intermediate signs every leaf certificate, the timestamp authority's key signs
//! every RFC 3161 token. Generic P-384 verification (`u1·G + u2·Q` with 384 doublings) dominates the
//! cost of a verification. Here both bases are fixed, so each gets a table of its multiples,
//! `T[i][j] = (j+1)·2^(7i)·P` (signed 7-bit windows), and a verification is about 110 mixed point
//! additions and no doublings.
//!
//! A table is a pure function of the public key: it changes no verdict, only the arithmetic. Only
//! keys of a trusted root are registered ([`register`]), at most [`MAX_KEYS`] of them, and a table
//! is built only after its key has been used [`BUILD_AFTER_USES`] times (a command that verifies
//! one bundle never pays for it). The point arithmetic is the `p384` crate's (complete formulas);
//! what is written here is the table walk, checked against the crate's own verifier in the tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use p384_arith::elliptic_curve::group::Group as _;
use p384_arith::elliptic_curve::ops::Reduce;
use p384_arith::elliptic_curve::point::{AffineCoordinates as _, BatchNormalize};
use p384_arith::elliptic_curve::sec1::FromSec1Point as _;
use p384_arith::elliptic_curve::PrimeField as _;
use p384_arith::{AffinePoint, FieldBytes, ProjectivePoint, Scalar, Sec1Point};

/// Window width in bits: 2^(W-1) table entries per window.
const W: usize = 7;
const HALF: usize = 1 << (W - 1);
/// Windows for a 384-bit scalar plus one for the final carry of the signed recoding.
const WINDOWS: usize = 384_usize.div_ceil(W) + 1;
/// Keys with a table slot, across all trusted roots of the process.
pub(crate) const MAX_KEYS: usize = 64;
/// Uses of a key before its table (about 340 KiB, a few milliseconds) is built.
pub(crate) const BUILD_AFTER_USES: u32 = 8;

/// Multiples of one point, affine, for the signed-window walk.
struct Table(Vec<AffinePoint>);

impl Table {
    fn new(point: ProjectivePoint) -> Self {
        let mut points = Vec::with_capacity(WINDOWS * HALF);
        let mut base = point;
        for _ in 0..WINDOWS {
            let mut multiple = base;
            for _ in 0..HALF {
                points.push(multiple);
                multiple += base;
            }
            for _ in 0..W {
                base = base.double();
            }
        }
        Table(<ProjectivePoint as BatchNormalize<[ProjectivePoint]>>::batch_normalize(&points))
    }

    /// `acc += k·P`, variable time (everything here is public).
    fn mul_add(&self, k: &Scalar, acc: &mut ProjectivePoint) {
        let be = k.to_repr();
        // Little-endian bytes, with slack so a window may read past the top.
        let mut le = [0u8; 51];
        for (i, byte) in be.iter().rev().enumerate() {
            le[i] = *byte;
        }
        let mut carry = 0i32;
        for window in 0..WINDOWS {
            let bit = window * W;
            let word = u32::from(le[bit / 8])
                | u32::from(le[bit / 8 + 1]) << 8
                | u32::from(le[bit / 8 + 2]) << 16;
            let mut digit = ((word >> (bit % 8)) & ((1 << W) - 1)) as i32 + carry;
            if digit >= HALF as i32 {
                digit -= 1 << W;
                carry = 1;
            } else {
                carry = 0;
            }
            let row = window * HALF;
            match digit {
                0 => {}
                d if d > 0 => *acc += &self.0[row + d as usize - 1],
                d => *acc += &(-self.0[row + (-d) as usize - 1]),
            }
        }
        debug_assert_eq!(carry, 0, "a scalar below n fits the windows");
    }
}

fn generator_table() -> &'static Table {
    static GENERATOR: OnceLock<Table> = OnceLock::new();
    GENERATOR.get_or_init(|| Table::new(ProjectivePoint::GENERATOR))
}

/// A trusted key's slot: its point, how often it was used, and its table once built.
pub(crate) struct Slot {
    point: ProjectivePoint,
    uses: AtomicU32,
    table: OnceLock<Table>,
}

fn registry() -> &'static RwLock<HashMap<Vec<u8>, Arc<Slot>>> {
    static KEYS: OnceLock<RwLock<HashMap<Vec<u8>, Arc<Slot>>>> = OnceLock::new();
    KEYS.get_or_init(Default::default)
}

/// Register a trusted P-384 public key (SEC1 encoding, as the verifier is handed it). Anything that
/// is not a valid P-384 point is ignored, as is every key past [`MAX_KEYS`].
pub(crate) fn register(sec1: &[u8]) {
    let Ok(encoded) = Sec1Point::from_bytes(sec1) else {
        return;
    };
    let Some(point) = Option::<AffinePoint>::from(AffinePoint::from_sec1_point(&encoded)) else {
        return;
    };
    let Ok(mut keys) = registry().write() else {
        return;
    };
    if keys.len() >= MAX_KEYS || keys.contains_key(sec1) {
        return;
    }
    keys.insert(
        sec1.to_vec(),
        Arc::new(Slot {
            point: point.into(),
            uses: AtomicU32::new(0),
            table: OnceLock::new(),
        }),
    );
}

/// The slot of a registered key (counting the use), `None` for any other key.
pub(crate) fn slot(sec1: &[u8]) -> Option<Arc<Slot>> {
    let slot = registry().read().ok()?.get(sec1).cloned()?;
    slot.uses.fetch_add(1, Ordering::Relaxed);
    Some(slot)
}

impl Slot {
    /// Whether the table is (now) built: after [`BUILD_AFTER_USES`] uses, or when `force`d.
    pub(crate) fn ready(&self, force: bool) -> bool {
        if self.table.get().is_none()
            && !force
            && self.uses.load(Ordering::Relaxed) < BUILD_AFTER_USES
        {
            return false;
        }
        self.table.get_or_init(|| Table::new(self.point));
        true
    }

    /// Verify an ECDSA signature (`r ‖ s`, each 48 bytes big-endian, as the `ecdsa` crate's fixed
    /// encoding) over `digest` (bits2int as in FIPS 186: the leftmost 384 bits, shorter digests
    /// taken as integers). `None` when the table is not built.
    pub(crate) fn verify(&self, digest: &[u8], r_s: &[u8; 96]) -> Option<bool> {
        let table = self.table.get()?;
        let scalar = |bytes: &[u8]| -> Option<Scalar> {
            let repr = FieldBytes::try_from(bytes).ok()?;
            Option::from(Scalar::from_repr(repr)).filter(|s: &Scalar| !bool::from(s.is_zero()))
        };
        let (Some(r), Some(s)) = (scalar(&r_s[..48]), scalar(&r_s[48..])) else {
            return Some(false);
        };
        let mut z_bytes = FieldBytes::default();
        let take = digest.len().min(48);
        z_bytes[48 - take..].copy_from_slice(&digest[..take]);
        let z = <Scalar as Reduce<FieldBytes>>::reduce(&z_bytes);
        let Some(s_inv) = Option::<Scalar>::from(s.invert_vartime()) else {
            return Some(false);
        };
        let mut sum = ProjectivePoint::IDENTITY;
        generator_table().mul_add(&(z * s_inv), &mut sum);
        table.mul_add(&(r * s_inv), &mut sum);
        if bool::from(sum.is_identity()) {
            return Some(false);
        }
        let x = sum.to_affine().x();
        Some(<Scalar as Reduce<FieldBytes>>::reduce(&x) == r)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use p384::ecdsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};

    fn key(seed: u8) -> p384::ecdsa::SigningKey {
        p384::ecdsa::SigningKey::from_slice(&[seed; 48]).unwrap()
    }

    fn sec1(key: &p384::ecdsa::SigningKey) -> Vec<u8> {
        key.verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    fn r_s(sig: &p384::ecdsa::Signature) -> [u8; 96] {
        let mut out = [0u8; 96];
        out.copy_from_slice(&sig.to_bytes());
        out
    }

    #[test]
    fn table_verdicts_equal_the_p384_crates_for_good_and_bad_signatures() {
        for seed in 1..=3u8 {
            let signer = key(seed);
            let public = sec1(&signer);
            register(&public);
            let slot = slot(&public).unwrap();
            assert!(slot.ready(true));
            let other = key(seed + 100);
            for n in 0..24u8 {
                // SHA-384-sized and SHA-256-sized digests (P-384 with SHA-256: the TSA's scheme).
                let len = if n % 2 == 0 { 48 } else { 32 };
                let digest: Vec<u8> = (0..len).map(|i| n.wrapping_mul(31) ^ i as u8).collect();
                let sig: p384::ecdsa::Signature = signer.sign_prehash(&digest).unwrap();
                let bytes = r_s(&sig);
                let reference = signer.verifying_key().verify_prehash(&digest, &sig).is_ok();
                assert!(reference);
                assert_eq!(
                    slot.verify(&digest, &bytes),
                    Some(true),
                    "seed {seed} n {n}"
                );
                let mut bad_digest = digest.clone();
                bad_digest[n as usize % len] ^= 1 << (n % 8);
                assert_eq!(slot.verify(&bad_digest, &bytes), Some(false));
                let mut bad_sig = bytes;
                bad_sig[n as usize % 96] ^= 0x40;
                assert_eq!(slot.verify(&digest, &bad_sig), Some(false));
                let foreign: p384::ecdsa::Signature = other.sign_prehash(&digest).unwrap();
                assert_eq!(slot.verify(&digest, &r_s(&foreign)), Some(false));
            }
            // r or s zero, or not below n: refused, not panicked on.
            assert_eq!(slot.verify(&[1; 48], &[0; 96]), Some(false));
            assert_eq!(slot.verify(&[1; 48], &[0xff; 96]), Some(false));
        }
    }

    #[test]
    fn unregistered_keys_and_non_points_get_no_slot() {
        assert!(slot(&sec1(&key(77))).is_none());
        let mut not_a_point = sec1(&key(78));
        not_a_point[60] ^= 1;
        register(&not_a_point);
        assert!(slot(&not_a_point).is_none());
    }

    #[test]
    fn a_table_is_built_only_after_enough_uses() {
        let public = sec1(&key(90));
        register(&public);
        let first = slot(&public).unwrap();
        assert!(!first.ready(false));
        assert_eq!(first.verify(&[1; 48], &[1; 96]), None);
        for _ in 1..BUILD_AFTER_USES {
            slot(&public).unwrap();
        }
        assert!(first.ready(false));
    }
}
