//! ECDSA P-384 verification under a *trusted* public key, with precomputed tables.
//!
//! Every keyless verification checks at least one P-384 signature made by a key of the trusted
//! root: the Fulcio intermediate signs every leaf certificate, the timestamp authority's key signs
//! every RFC 3161 token. Generic P-384 verification (`u1·G + u2·Q` with 384 doublings) dominates the
//! cost of a verification. Here both bases are fixed, so each gets a table of its multiples,
//! `T[i][j] = (j+1)·2^(8i)·P` (signed 8-bit windows), and a verification is about 98 mixed point
//! additions and no doublings.
//!
//! A table is a pure function of the public key: it changes no verdict, only the arithmetic. Only
//! keys of a trusted root are registered ([`register`]), at most [`MAX_KEYS`] of them, and a table
//! is built only after its key has been used [`BUILD_AFTER_USES`] times (a command that verifies
//! one bundle never pays for it). Tables are built with the `p384` crate's arithmetic; the walk
//! adds with the same complete formulas (Renes–Costello–Batina) over a 6-limb Montgomery field
//! written here ([`field`]), about twice as fast as the crate's generic big-integer field, and
//! compares x without an inversion. The field is tested against big-integer arithmetic mod p, the
//! additions against the crate's points, and the verdicts against the crate's verifier.

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
const W: usize = 8;
const HALF: usize = 1 << (W - 1);
/// Windows for a 384-bit scalar plus one for the final carry of the signed recoding.
const WINDOWS: usize = 384_usize.div_ceil(W) + 1;
/// Keys with a table slot, across all trusted roots of the process.
pub(crate) const MAX_KEYS: usize = 64;
/// Uses of a key before its table (about 600 KiB, a few milliseconds) is built.
pub(crate) const BUILD_AFTER_USES: u32 = 8;

/// Multiples of one point, affine, in [`field`]'s Montgomery form, for the signed-window walk.
struct Table(Vec<field::Affine>);

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
        let affine =
            <ProjectivePoint as BatchNormalize<[ProjectivePoint]>>::batch_normalize(&points);
        Table(
            affine
                .iter()
                .map(|p| field::Affine::from_coordinates(&p.x(), &p.y()))
                .collect(),
        )
    }

    /// `acc += k·P`, variable time (everything here is public).
    fn mul_add(&self, k: &Scalar, acc: &mut field::Projective) {
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
                d if d > 0 => acc.add_mixed(&self.0[row + d as usize - 1]),
                d => acc.add_mixed(&self.0[row + (-d) as usize - 1].neg()),
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
        let mut sum = field::Projective::IDENTITY;
        generator_table().mul_add(&(z * s_inv), &mut sum);
        table.mul_add(&(r * s_inv), &mut sum);
        // x(sum) mod n == r, without an inversion: x = X/Z is below p, so x mod n is r exactly
        // when X = r·Z, or X = (r + n)·Z where r + n < p.
        let r_bytes = r.to_repr();
        if sum.x_equals(&r_bytes) {
            return Some(true);
        }
        let r_plus_n = field::add_order(&r_bytes, &order_bytes());
        Some(r_plus_n.is_some_and(|candidate| sum.x_equals(&candidate)))
    }
}

/// The group order n, big-endian (from the crate: n − 1 is the scalar −1).
fn order_bytes() -> [u8; 48] {
    static ORDER: OnceLock<[u8; 48]> = OnceLock::new();
    *ORDER.get_or_init(|| {
        let mut n: [u8; 48] = (-Scalar::ONE).to_repr().into();
        for byte in n.iter_mut().rev() {
            let (sum, overflow) = byte.overflowing_add(1);
            *byte = sum;
            if !overflow {
                break;
            }
        }
        n
    })
}

/// P-384 field arithmetic for the table walk: the `p384` crate's field multiplication is generic
/// big-integer code and dominates a verification; this one is a plain 6-limb Montgomery
/// multiplication (CIOS) specialised to p. Variable time: only public values (keys, signatures,
/// digests) go through it. Checked against the crate's field arithmetic in the tests, and the
/// verifier's verdicts against the crate's verifier.
mod field {
    /// p = 2^384 − 2^128 − 2^96 + 2^32 − 1, little-endian 64-bit limbs.
    const P: [u64; 6] = [
        0x0000_0000_ffff_ffff,
        0xffff_ffff_0000_0000,
        0xffff_ffff_ffff_fffe,
        0xffff_ffff_ffff_ffff,
        0xffff_ffff_ffff_ffff,
        0xffff_ffff_ffff_ffff,
    ];

    /// −p⁻¹ mod 2^64 (Newton's iteration doubles the correct low bits each step).
    const P_INV_NEG: u64 = {
        let mut inv: u64 = 1;
        let mut i = 0;
        while i < 7 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(P[0].wrapping_mul(inv)));
            i += 1;
        }
        inv.wrapping_neg()
    };

    /// An element of GF(p) in Montgomery form (a·2^384 mod p), always fully reduced (below p).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) struct Fe([u64; 6]);

    fn geq_p(a: &[u64; 6]) -> bool {
        for i in (0..6).rev() {
            if a[i] != P[i] {
                return a[i] > P[i];
            }
        }
        true
    }

    /// `a − p` (wrapping); callers use it only when a ≥ p or a 385th bit was carried out.
    fn sub_p(a: &mut [u64; 6]) {
        let mut borrow = 0u64;
        for i in 0..6 {
            let (d, b1) = a[i].overflowing_sub(P[i]);
            let (d, b2) = d.overflowing_sub(borrow);
            a[i] = d;
            borrow = u64::from(b1 | b2);
        }
    }

    impl Fe {
        pub(super) const ZERO: Fe = Fe([0; 6]);

        pub(super) fn mul(&self, other: &Fe) -> Fe {
            let (a, b) = (&self.0, &other.0);
            let mut t = [0u64; 8];
            for &bi in b {
                let mut carry = 0u64;
                for j in 0..6 {
                    let v =
                        u128::from(t[j]) + u128::from(a[j]) * u128::from(bi) + u128::from(carry);
                    t[j] = v as u64;
                    carry = (v >> 64) as u64;
                }
                let v = u128::from(t[6]) + u128::from(carry);
                t[6] = v as u64;
                t[7] = (v >> 64) as u64;
                let m = t[0].wrapping_mul(P_INV_NEG);
                let v = u128::from(t[0]) + u128::from(m) * u128::from(P[0]);
                let mut carry = (v >> 64) as u64;
                for j in 1..6 {
                    let v = u128::from(t[j]) + u128::from(m) * u128::from(P[j]) + u128::from(carry);
                    t[j - 1] = v as u64;
                    carry = (v >> 64) as u64;
                }
                let v = u128::from(t[6]) + u128::from(carry);
                t[5] = v as u64;
                t[6] = t[7] + (v >> 64) as u64;
                t[7] = 0;
            }
            let mut out = [t[0], t[1], t[2], t[3], t[4], t[5]];
            if t[6] != 0 || geq_p(&out) {
                sub_p(&mut out);
            }
            Fe(out)
        }

        pub(super) fn add(&self, other: &Fe) -> Fe {
            let mut out = [0u64; 6];
            let mut carry = false;
            for (i, limb) in out.iter_mut().enumerate() {
                let (s, c1) = self.0[i].overflowing_add(other.0[i]);
                let (s, c2) = s.overflowing_add(u64::from(carry));
                *limb = s;
                carry = c1 | c2;
            }
            if carry || geq_p(&out) {
                sub_p(&mut out);
            }
            Fe(out)
        }

        pub(super) fn sub(&self, other: &Fe) -> Fe {
            let mut out = [0u64; 6];
            let mut borrow = false;
            for (i, limb) in out.iter_mut().enumerate() {
                let (d, b1) = self.0[i].overflowing_sub(other.0[i]);
                let (d, b2) = d.overflowing_sub(u64::from(borrow));
                *limb = d;
                borrow = b1 | b2;
            }
            if borrow {
                let mut carry = false;
                for (i, limb) in out.iter_mut().enumerate() {
                    let (s, c1) = limb.overflowing_add(P[i]);
                    let (s, c2) = s.overflowing_add(u64::from(carry));
                    *limb = s;
                    carry = c1 | c2;
                }
            }
            Fe(out)
        }

        fn double(&self) -> Fe {
            self.add(self)
        }

        fn triple(&self) -> Fe {
            self.double().add(self)
        }

        fn is_zero(&self) -> bool {
            self.0 == [0; 6]
        }

        /// A big-endian integer below p, into Montgomery form; `None` at or above p.
        pub(super) fn from_be_bytes(bytes: &[u8; 48]) -> Option<Fe> {
            let mut limbs = [0u64; 6];
            for (i, limb) in limbs.iter_mut().enumerate() {
                let start = 48 - 8 * (i + 1);
                let mut word = [0u8; 8];
                word.copy_from_slice(&bytes[start..start + 8]);
                *limb = u64::from_be_bytes(word);
            }
            if geq_p(&limbs) {
                return None;
            }
            Some(Fe(limbs).mul(r_squared()))
        }

        /// Out of Montgomery form, big-endian.
        #[cfg(test)]
        pub(super) fn to_be_bytes(self) -> [u8; 48] {
            let plain = self.mul(&Fe([1, 0, 0, 0, 0, 0]));
            let mut out = [0u8; 48];
            for (i, limb) in plain.0.iter().enumerate() {
                let start = 48 - 8 * (i + 1);
                out[start..start + 8].copy_from_slice(&limb.to_be_bytes());
            }
            out
        }

        /// 1 in Montgomery form: 2^384 mod p = 2^384 − p.
        pub(super) const ONE: Fe = Fe([0xffff_ffff_0000_0001, 0x0000_0000_ffff_ffff, 1, 0, 0, 0]);
    }

    /// 2^768 mod p: 2^384 mod p doubled 384 times.
    fn r_squared() -> &'static Fe {
        static R2: std::sync::OnceLock<Fe> = std::sync::OnceLock::new();
        R2.get_or_init(|| {
            let mut r = Fe::ONE;
            for _ in 0..384 {
                r = r.double();
            }
            r
        })
    }

    /// The curve's b, from the generator: b = y² − x³ + 3x.
    fn curve_b() -> &'static Fe {
        static B: std::sync::OnceLock<Fe> = std::sync::OnceLock::new();
        B.get_or_init(|| {
            use p384_arith::elliptic_curve::point::AffineCoordinates as _;
            let g = p384_arith::AffinePoint::GENERATOR;
            let g = Affine::from_coordinates(&g.x(), &g.y());
            let x3 = g.x.mul(&g.x).mul(&g.x);
            g.y.mul(&g.y).sub(&x3).add(&g.x.triple())
        })
    }

    /// `r + n` as a big-endian 384-bit integer, when it is below p (else `None`).
    pub(super) fn add_order(r: &[u8], n: &[u8; 48]) -> Option<[u8; 48]> {
        let mut out = [0u8; 48];
        let mut carry = 0u16;
        for i in (0..48).rev() {
            let s = u16::from(r[i]) + u16::from(n[i]) + carry;
            out[i] = s as u8;
            carry = s >> 8;
        }
        (carry == 0 && Fe::from_be_bytes(&out).is_some()).then_some(out)
    }

    /// An affine point (never the identity: table entries are nonzero multiples of a point of
    /// prime order).
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Affine {
        x: Fe,
        y: Fe,
    }

    impl Affine {
        /// From the crate's coordinates (big-endian, below p, as the crate produces them).
        pub(super) fn from_coordinates(
            x: &p384_arith::FieldBytes,
            y: &p384_arith::FieldBytes,
        ) -> Self {
            let fe = |bytes: &p384_arith::FieldBytes| {
                let mut b = [0u8; 48];
                b.copy_from_slice(bytes);
                Fe::from_be_bytes(&b).unwrap_or(Fe::ZERO)
            };
            Affine { x: fe(x), y: fe(y) }
        }

        pub(super) fn neg(&self) -> Self {
            Affine {
                x: self.x,
                y: Fe::ZERO.sub(&self.y),
            }
        }
    }

    /// A point in homogeneous projective coordinates (x = X/Z, y = Y/Z).
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Projective {
        x: Fe,
        y: Fe,
        z: Fe,
    }

    impl Projective {
        pub(super) const IDENTITY: Projective = Projective {
            x: Fe::ZERO,
            y: Fe::ONE,
            z: Fe::ZERO,
        };

        /// `self += rhs`: the complete mixed addition of Renes–Costello–Batina 2015 (Algorithm 5,
        /// a = −3), step for step as the `primeorder` crate writes it.
        pub(super) fn add_mixed(&mut self, rhs: &Affine) {
            let b = curve_b();
            let xx = self.x.mul(&rhs.x);
            let yy = self.y.mul(&rhs.y);
            let xy_pairs = self
                .x
                .add(&self.y)
                .mul(&rhs.x.add(&rhs.y))
                .sub(&xx.add(&yy));
            let yz_pairs = rhs.y.mul(&self.z).add(&self.y);
            let xz_pairs = rhs.x.mul(&self.z).add(&self.x);

            let bz_part = xz_pairs.sub(&b.mul(&self.z));
            let bz3_part = bz_part.triple();
            let yy_m_bzz3 = yy.sub(&bz3_part);
            let yy_p_bzz3 = yy.add(&bz3_part);

            let z3 = self.z.triple();
            let bxz_part = b.mul(&xz_pairs).sub(&z3.add(&xx));
            let bxz3_part = bxz_part.triple();
            let xx3_m_zz3 = xx.triple().sub(&z3);

            self.x = yy_p_bzz3.mul(&xy_pairs).sub(&yz_pairs.mul(&bxz3_part));
            self.y = yy_p_bzz3.mul(&yy_m_bzz3).add(&xx3_m_zz3.mul(&bxz3_part));
            self.z = yy_m_bzz3.mul(&yz_pairs).add(&xy_pairs.mul(&xx3_m_zz3));
        }

        /// Whether this is a finite point whose affine x is the big-endian integer `x` (which
        /// must be below p to match).
        pub(super) fn x_equals(&self, x: &[u8]) -> bool {
            let Ok(bytes) = <[u8; 48]>::try_from(x) else {
                return false;
            };
            let Some(x) = Fe::from_be_bytes(&bytes) else {
                return false;
            };
            !self.z.is_zero() && x.mul(&self.z) == self.x
        }

        /// Affine coordinates (big-endian) by big-integer arithmetic, `None` for the identity.
        #[cfg(test)]
        pub(super) fn to_affine_bytes(self) -> Option<([u8; 48], [u8; 48])> {
            if self.z.is_zero() {
                return None;
            }
            let p = super::tests::p_big();
            let big = |f: Fe| rsa::BigUint::from_bytes_be(&f.to_be_bytes());
            let z_inv = big(self.z).modpow(&(&p - 2u32), &p);
            Some((
                super::tests::to48(&(big(self.x) * &z_inv % &p)),
                super::tests::to48(&(big(self.y) * &z_inv % &p)),
            ))
        }
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

    /// Deterministic pseudo-random 48-byte strings.
    fn bytes48(seed: u32) -> [u8; 48] {
        use sha2::Digest as _;
        sha2::Sha384::digest(seed.to_be_bytes()).into()
    }

    pub(super) fn p_big() -> rsa::BigUint {
        let p = rsa::BigUint::from(1u32) << 384;
        p - (rsa::BigUint::from(1u32) << 128) - (rsa::BigUint::from(1u32) << 96)
            + (rsa::BigUint::from(1u32) << 32)
            - 1u32
    }

    pub(super) fn to48(x: &rsa::BigUint) -> [u8; 48] {
        let bytes = x.to_bytes_be();
        let mut out = [0u8; 48];
        out[48 - bytes.len()..].copy_from_slice(&bytes);
        out
    }

    /// The field operations against big-integer arithmetic mod p (the `rsa` crate's BigUint),
    /// at the edges (0, 1, p − 1, p − 2, top bits) and on pseudo-random values.
    #[test]
    fn field_arithmetic_equals_big_integer_arithmetic_mod_p() {
        use field::Fe;
        let p = p_big();
        let big = |b: &[u8; 48]| rsa::BigUint::from_bytes_be(b);
        assert!(Fe::from_be_bytes(&to48(&p)).is_none());
        assert!(Fe::from_be_bytes(&[0xff; 48]).is_none());
        let mut one = [0u8; 48];
        one[47] = 1;
        assert_eq!(Fe::from_be_bytes(&one), Some(Fe::ONE));
        let mut values = vec![
            [0u8; 48],
            one,
            to48(&(&p - 1u32)),
            to48(&(&p - 2u32)),
            to48(&(rsa::BigUint::from(1u32) << 383)),
            [0x80; 48],
        ];
        values.extend((0..300).map(bytes48).filter(|b| big(b) < p));
        assert!(values.len() > 250);
        for (i, a) in values.iter().enumerate() {
            let mine_a = Fe::from_be_bytes(a).unwrap();
            assert_eq!(mine_a.to_be_bytes(), *a);
            for b in values.iter().skip(i % 5).step_by(5) {
                let mine_b = Fe::from_be_bytes(b).unwrap();
                let (x, y) = (big(a), big(b));
                assert_eq!(mine_a.mul(&mine_b).to_be_bytes(), to48(&(&x * &y % &p)));
                assert_eq!(mine_a.add(&mine_b).to_be_bytes(), to48(&((&x + &y) % &p)));
                assert_eq!(
                    mine_a.sub(&mine_b).to_be_bytes(),
                    to48(&((&x + &p - &y) % &p))
                );
            }
        }
    }

    #[test]
    fn point_additions_equal_the_p384_crates_including_doubling_and_identity() {
        let g = ProjectivePoint::GENERATOR;
        let points: Vec<AffinePoint> = (1..=12u64)
            .map(|k| (g * Scalar::from(k * 1_000_003)).to_affine())
            .collect();
        let mine = |p: &AffinePoint| field::Affine::from_coordinates(&p.x(), &p.y());
        let coordinates = |p: ProjectivePoint| -> Option<([u8; 48], [u8; 48])> {
            if bool::from(p.is_identity()) {
                return None;
            }
            let a = p.to_affine();
            Some((a.x().into(), a.y().into()))
        };
        let mut theirs = ProjectivePoint::IDENTITY;
        let mut ours = field::Projective::IDENTITY;
        // Sums, a point added to itself (the acc equals the addend), and back to the identity.
        let sequence: Vec<(usize, bool)> = (0..12)
            .map(|i| (i, false))
            .chain([(3, false), (3, false)])
            .chain((0..12).rev().map(|i| (i, true)))
            .chain([(3, true), (3, true)])
            .collect();
        for (step, (i, negate)) in sequence.into_iter().enumerate() {
            let p = points[i];
            if negate {
                theirs += -ProjectivePoint::from(p);
                ours.add_mixed(&mine(&p).neg());
            } else {
                theirs += p;
                ours.add_mixed(&mine(&p));
            }
            assert_eq!(ours.to_affine_bytes(), coordinates(theirs), "step {step}");
        }
        assert!(bool::from(theirs.is_identity()));
        assert_eq!(ours.to_affine_bytes(), None);
        // x_equals: the affine x, nothing else, and never for the identity.
        assert!(!ours.x_equals(&[0u8; 48]));
        let mut acc = field::Projective::IDENTITY;
        acc.add_mixed(&mine(&points[5]));
        acc.add_mixed(&mine(&points[5]));
        let double = (ProjectivePoint::from(points[5]).double()).to_affine();
        let x: [u8; 48] = double.x().into();
        assert!(acc.x_equals(&x));
        let mut other = x;
        other[47] ^= 1;
        assert!(!acc.x_equals(&other));
    }

    #[test]
    fn r_plus_n_is_a_candidate_only_below_p() {
        let n = order_bytes();
        let mut one = [0u8; 48];
        one[47] = 1;
        let mut n_plus_one = n;
        n_plus_one[47] += 1; // n ends in 0x73
        assert_eq!(field::add_order(&one, &n), Some(n_plus_one));
        assert_eq!(field::add_order(&n, &n), None); // past 2^384
        let mut big = [0u8; 48];
        big[23] = 1; // 2^192 > p − n
        assert_eq!(field::add_order(&big, &n), None);
        assert_eq!(
            Scalar::from_repr(FieldBytes::from(n)).is_some().unwrap_u8(),
            0,
            "n is not a scalar"
        );
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
