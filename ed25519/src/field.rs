//! Arithmetic modulo p = 2^255 − 19: an element is 16 signed limbs of 16
//! bits (`Fe`), so a product is one 16×16 loop of `i64` multiplications
//! folded with 2^256 ≡ 38: chosen for small code over speed (docs/init.md
//! "Size").
//!
//! Owns the field only (no curve, no encoding rules of Ed25519). Limbs may
//! be negative or exceed 16 bits between operations; `mul` carries its
//! result and `to_bytes` is the only canonical form, so equality is
//! always decided on bytes. Not constant time: it must never be handed a
//! secret.

/// A field element: value = Σ limb[i]·2^(16·i) (mod p).
pub type Fe = [i64; 16];

pub const ZERO: Fe = [0; 16];
pub const ONE: Fe = {
    let mut f = ZERO;
    f[0] = 1;
    f
};

/// The 255-bit little-endian integer in `b` (bit 255 ignored), not
/// necessarily below p: Ed25519 decoders read y ≥ p as y − p (as ring does).
pub fn from_bytes(b: &[u8; 32]) -> Fe {
    let mut f = ZERO;
    for (i, limb) in f.iter_mut().enumerate() {
        *limb = b[2 * i] as i64 | (b[2 * i + 1] as i64) << 8;
    }
    f[15] &= 0x7fff;
    f
}

pub fn add(a: &Fe, b: &Fe) -> Fe {
    core::array::from_fn(|i| a[i] + b[i])
}

pub fn sub(a: &Fe, b: &Fe) -> Fe {
    core::array::from_fn(|i| a[i] - b[i])
}

/// Moves each limb's bits above 16 into the next, and what is above bit
/// 255 back into limb 0 times `fold` (19: 2^255 ≡ 19, the value stays the
/// same modulo p); returns that top carry.
fn carry(f: &mut Fe, fold: i64) -> i64 {
    for i in 0..15 {
        let c = f[i] >> 16;
        f[i] -= c << 16;
        f[i + 1] += c;
    }
    let c = f[15] >> 15;
    f[15] -= c << 15;
    f[0] += fold * c;
    c
}

pub fn mul(a: &Fe, b: &Fe) -> Fe {
    let mut t = [0i64; 32];
    for i in 0..16 {
        for j in 0..16 {
            t[i + j] += a[i] * b[j];
        }
    }
    // Limb 16 + i weighs 2^256 · 2^(16·i) ≡ 38 · 2^(16·i).
    let mut r: Fe = core::array::from_fn(|i| t[i] + 38 * t[i + 16]);
    carry(&mut r, 19);
    carry(&mut r, 19);
    r
}

pub fn square(a: &Fe) -> Fe {
    mul(a, a)
}

/// `a` to the power whose bits are: all ones from bit 8 to bit `top`, and
/// `low` in bits 0–7. Both exponents Ed25519 needs have that form:
/// p − 2 = 2^255 − 21 (inversion; `top` 254, `low` 0xeb) and
/// (p − 5)/8 = 2^252 − 3 (square roots; `top` 251, `low` 0xfd).
pub fn pow(a: &Fe, top: u32, low: u8) -> Fe {
    let mut r = *a;
    for bit in (0..top).rev() {
        r = square(&r);
        if bit >= 8 || low >> bit & 1 == 1 {
            r = mul(&r, a);
        }
    }
    r
}

/// The canonical encoding: the value reduced below p, little-endian.
/// Any limbs of either sign up to 2^47 (all that `add`/`sub`/`mul` make).
pub fn to_bytes(a: &Fe) -> [u8; 32] {
    let mut t = *a;
    // The first pass leaves |value| < 2^255 + 2^31, the second
    // 0 ≤ value < 2^255 (a negative value gains 2^255 − 19 ≡ 0), the third
    // only normalises the limbs.
    for _ in 0..3 {
        carry(&mut t, 19);
    }
    // t < 2^255 < 2p; t ≥ p exactly when t + 19 passes 2^255, and then
    // t + 19 − 2^255 is t − p.
    let mut m = t;
    m[0] += 19;
    if carry(&mut m, 0) == 1 {
        t = m;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = (t[i / 2] >> (8 * (i % 2))) as u8;
    }
    out
}

pub fn is_negative(a: &Fe) -> bool {
    to_bytes(a)[0] & 1 == 1
}

pub fn equal(a: &Fe, b: &Fe) -> bool {
    to_bytes(a) == to_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(n: i64) -> Fe {
        let mut f = ZERO;
        f[0] = n;
        f
    }

    #[test]
    fn p_reads_as_zero_and_p_minus_one_as_minus_one() {
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert_eq!(to_bytes(&from_bytes(&p)), [0; 32]);
        p[0] = 0xec;
        assert!(equal(&from_bytes(&p), &sub(&ZERO, &ONE)));
        assert_eq!(to_bytes(&from_bytes(&p)), p, "p − 1 is canonical");
        // Negative limbs and values: −1 is p − 1; −1 − (2^255 − 1) = −2^255
        // ≡ −19 is p − 19.
        assert_eq!(to_bytes(&small(-1)), p);
        let mut p19 = p;
        p19[0] = 0xda;
        assert_eq!(to_bytes(&sub(&small(-1), &from_bytes(&[0xff; 32]))), p19);
    }

    #[test]
    fn inversion_and_square_root_exponents() {
        let x = small(121_666);
        assert!(equal(&mul(&x, &pow(&x, 254, 0xeb)), &ONE));
        // x^((p−5)/8) squared four times... checked via Euler: x^((p−1)/2)
        // = (x^((p−5)/8))^4 · x^2 = ±1.
        let r = pow(&x, 251, 0xfd);
        let e = mul(&square(&square(&r)), &square(&x));
        assert!(equal(&e, &ONE) || equal(&e, &sub(&ZERO, &ONE)));
    }
}
