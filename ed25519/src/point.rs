//! Points of edwards25519 (−x² + y² = 1 + d·x²·y²) in extended coordinates
//! (X : Y : Z : T), x = X/Z, y = Y/Z, x·y = T/Z: one addition formula,
//! complete, so it also doubles (fewer bytes than a separate doubling); the
//! RFC 8032 5.1.3 decoding and 5.1.2 encoding.
//!
//! Owns the group law and the point encoding only; public points only
//! (variable time).

use crate::field::{self, Fe, ONE, ZERO};

/// d = −121665/121666, little-endian.
const D: [u8; 32] = [
    0xa3, 0x78, 0x59, 0x13, 0xca, 0x4d, 0xeb, 0x75, 0xab, 0xd8, 0x41, 0x41, 0x4d, 0x0a, 0x70, 0x00,
    0x98, 0xe8, 0x79, 0x77, 0x79, 0x40, 0xc7, 0x8c, 0x73, 0xfe, 0x6f, 0x2b, 0xee, 0x6c, 0x03, 0x52,
];
/// √−1 = 2^((p−1)/4), little-endian.
const SQRT_M1: [u8; 32] = [
    0xb0, 0xa0, 0x0e, 0x4a, 0x27, 0x1b, 0xee, 0xc4, 0x78, 0xe4, 0x2f, 0xad, 0x06, 0x18, 0x43, 0x2f,
    0xa7, 0xd7, 0xfb, 0x3d, 0x99, 0x00, 0x4d, 0x2b, 0x0b, 0xdf, 0xc1, 0x4f, 0x80, 0x24, 0x83, 0x2b,
];
/// The base point B's encoding: y = 4/5, x positive (decoded when needed,
/// which costs two square roots' worth of time and saves a 128-byte table).
pub const BASE: [u8; 32] = {
    let mut b = [0x66; 32];
    b[0] = 0x58;
    b
};

#[derive(Clone, Copy)]
pub struct Point {
    x: Fe,
    y: Fe,
    z: Fe,
    t: Fe,
}

pub const IDENTITY: Point = Point {
    x: ZERO,
    y: ONE,
    z: ONE,
    t: ZERO,
};

/// P + Q (add-2008-hwcd-3, a = −1; complete since d is not a square).
pub fn add(p: &Point, q: &Point) -> Point {
    use field::{add as fa, mul, sub};
    let d = field::from_bytes(&D);
    let a = mul(&sub(&p.y, &p.x), &sub(&q.y, &q.x));
    let b = mul(&fa(&p.y, &p.x), &fa(&q.y, &q.x));
    let c = mul(&mul(&p.t, &q.t), &fa(&d, &d));
    let zz = mul(&p.z, &q.z);
    let dd = fa(&zz, &zz);
    let (e, f, g, h) = (sub(&b, &a), sub(&dd, &c), fa(&dd, &c), fa(&b, &a));
    Point {
        x: mul(&e, &f),
        y: mul(&g, &h),
        z: mul(&f, &g),
        t: mul(&e, &h),
    }
}

/// RFC 8032 5.1.3: y from bits 0–254, x from the curve equation and the
/// sign bit 255; `None` when x² = (y² − 1)/(d·y² + 1) has no root. Two
/// departures from the RFC, both ring's: a y ≥ p is read as y − p, and
/// x = 0 with the sign bit set is accepted (as x = 0); the RFC refuses
/// both. With `negate`,
/// the point's negative (−x, y): the sign bit read inverted, which gives
/// −P for every P, x = 0 included (cheaper than negating afterwards).
pub fn decode(s: &[u8; 32], negate: bool) -> Option<Point> {
    use field::{equal, mul, square, sub};
    let y = field::from_bytes(s);
    let y2 = square(&y);
    let u = sub(&y2, &ONE);
    let v = field::add(&mul(&field::from_bytes(&D), &y2), &ONE);
    // x = u·v³·(u·v⁷)^((p−5)/8)
    let v2 = square(&v);
    let uv3 = mul(&u, &mul(&v2, &v));
    let uv7 = mul(&uv3, &square(&v2));
    let mut x = mul(&uv3, &field::pow(&uv7, 251, 0xfd));
    let vx2 = mul(&v, &square(&x));
    if !equal(&vx2, &u) {
        if !equal(&vx2, &sub(&ZERO, &u)) {
            return None;
        }
        x = mul(&x, &field::from_bytes(&SQRT_M1));
    }
    if field::is_negative(&x) != (s[31] >> 7 == 1) ^ negate {
        x = sub(&ZERO, &x);
    }
    Some(Point {
        t: mul(&x, &y),
        x,
        y,
        z: ONE,
    })
}

/// RFC 8032 5.1.2: y/Z canonical, with the sign of x/Z in bit 255.
pub fn encode(p: &Point) -> [u8; 32] {
    let zinv = field::pow(&p.z, 254, 0xeb);
    let mut out = field::to_bytes(&field::mul(&p.y, &zinv));
    out[31] |= (field::is_negative(&field::mul(&p.x, &zinv)) as u8) << 7;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::{equal, from_bytes, mul, square, sub};

    #[test]
    fn constants() {
        // d·121666 = −121665
        let mut n = ZERO;
        n[0] = 121_666 & 0xffff;
        n[1] = 121_666 >> 16;
        let mut m = ZERO;
        m[0] = 121_665 & 0xffff;
        m[1] = 121_665 >> 16;
        assert!(equal(&mul(&from_bytes(&D), &n), &sub(&ZERO, &m)));
        assert!(equal(&square(&from_bytes(&SQRT_M1)), &sub(&ZERO, &ONE)));
        let b = decode(&BASE, false).expect("B decodes");
        assert_eq!(encode(&b), BASE);
    }

    #[test]
    fn doubling_by_addition_matches_repeated_addition() {
        let b = decode(&BASE, false).unwrap();
        let two = add(&b, &b);
        let four = add(&two, &two);
        let four_by_one = add(&add(&add(&b, &b), &b), &b);
        assert_eq!(encode(&four), encode(&four_by_one));
        assert_eq!(
            encode(&add(&b, &decode(&BASE, true).unwrap())),
            encode(&IDENTITY)
        );
    }
}
