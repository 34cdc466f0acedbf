//! Scalars modulo the group order L = 2^252 + 27742317777372353535851937790883648493,
//! as four little-endian 64-bit limbs: the canonical-`S` check and the
//! reduction of the 512-bit hash `k`, both by compare-and-subtract (one bit
//! at a time for the reduction: 512 steps, a few microseconds, tiny code).
//!
//! Owns scalar arithmetic only; it handles public values (S, k) and must
//! never be used for a secret scalar (not constant time).

pub type Scalar = [u64; 4];

const L: Scalar = [
    0x5812631a5cf5d3ed,
    0x14def9dea2f79cd6,
    0,
    0x1000000000000000,
];

/// `x − L`, or `None` when x < L.
fn minus_l(x: &Scalar) -> Option<Scalar> {
    let mut out = [0; 4];
    let mut borrow = false;
    for i in 0..4 {
        let (d, b1) = x[i].overflowing_sub(L[i]);
        let (d, b2) = d.overflowing_sub(borrow as u64);
        out[i] = d;
        borrow = b1 | b2;
    }
    (!borrow).then_some(out)
}

/// The signature's `S` when it is below L, else `None`: RFC 8032 5.1.7
/// and ring both refuse S ≥ L (`S + L` would verify as well, a malleable
/// signature).
pub fn canonical(s: &[u8; 32]) -> Option<Scalar> {
    let mut x = [0u64; 4];
    for (i, &b) in s.iter().enumerate().rev() {
        x[i / 8] = (x[i / 8] << 8) | b as u64;
    }
    minus_l(&x).is_none().then_some(x)
}

/// The 512-bit little-endian `h` reduced modulo L.
pub fn reduce(h: &[u8; 64]) -> Scalar {
    let mut r = [0u64; 4];
    for bit in (0..512).rev() {
        // r < L < 2^253, so 2r + 1 fits in 254 bits.
        let mut carry = (h[bit / 8] >> (bit % 8) & 1) as u64;
        for limb in r.iter_mut() {
            let top = *limb >> 63;
            *limb = (*limb << 1) | carry;
            carry = top;
        }
        if let Some(d) = minus_l(&r) {
            r = d;
        }
    }
    r
}

pub fn bit(s: &Scalar, i: usize) -> bool {
    s[i / 64] >> (i % 64) & 1 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &Scalar) -> [u8; 32] {
        core::array::from_fn(|i| (s[i / 8] >> (8 * (i % 8))) as u8)
    }

    #[test]
    fn l_is_not_canonical_and_l_minus_one_is() {
        let l = bytes(&L);
        assert_eq!(canonical(&l), None);
        let mut below = l;
        below[0] -= 1;
        assert!(canonical(&below).is_some());
        assert_eq!(canonical(&[0xff; 32]), None);
    }

    #[test]
    fn reduction_of_multiples_of_l() {
        // L itself, 2L and L·2^256 + 5 reduce to 0, 0 and 5.
        let mut h = [0u8; 64];
        h[..32].copy_from_slice(&bytes(&L));
        assert_eq!(reduce(&h), [0; 4]);
        let two_l: Scalar = [
            L[0] << 1,
            (L[1] << 1) | (L[0] >> 63),
            L[2] << 1 | L[1] >> 63,
            L[3] << 1,
        ];
        h[..32].copy_from_slice(&bytes(&two_l));
        assert_eq!(reduce(&h), [0; 4]);
        let mut h = [0u8; 64];
        h[32..].copy_from_slice(&bytes(&L));
        h[0] = 5;
        assert_eq!(reduce(&h), [5, 0, 0, 0]);
    }
}
