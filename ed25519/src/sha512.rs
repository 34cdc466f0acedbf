//! SHA-512 (FIPS 180-4) of a message given in parts, for Ed25519's
//! `SHA-512(R ‖ A ‖ M)`: one loop of 80 rounds over a 16-word window,
//! nothing unrolled (size over speed: it hashes one 4 KiB manifest per boot).
//!
//! Owns only the hash; it must never hold or see a secret (it is not
//! written to be constant time, though it branches on nothing but lengths).

/// The round constants: the first 64 bits of the fractional parts of the
/// cube roots of the first 80 primes (FIPS 180-4, 4.2.3).
const K: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

/// The initial hash value: the first 64 bits of the fractional parts of the
/// square roots of the first 8 primes (FIPS 180-4, 5.3.5).
const IV: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// SHA-512 of the concatenation of `parts` (at most 2^61 − 1 bytes in all:
/// the length is kept in 64 bits, FIPS's upper 64 bits are always zero).
pub fn digest(parts: &[&[u8]]) -> [u8; 64] {
    let mut st = State {
        h: IV,
        block: [0; 128],
        fill: 0,
    };
    let mut bytes: u64 = 0;
    for part in parts {
        part.iter().for_each(|&b| st.push(b));
        bytes = bytes.wrapping_add(part.len() as u64);
    }
    // Padding: 0x80, zeros up to 16 bytes before a block's end, then the
    // length in bits as 128 bits.
    st.push(0x80);
    while st.fill != 112 {
        st.push(0);
    }
    ((bytes as u128) << 3)
        .to_be_bytes()
        .into_iter()
        .for_each(|b| st.push(b));

    let mut out = [0u8; 64];
    for (i, b) in out.iter_mut().enumerate() {
        *b = (st.h[i / 8] >> (56 - 8 * (i % 8))) as u8;
    }
    out
}

struct State {
    h: [u64; 8],
    block: [u8; 128],
    fill: usize,
}

impl State {
    /// The message and the padding go through this one byte sink (less
    /// code than copying slices).
    fn push(&mut self, b: u8) {
        self.block[self.fill % 128] = b;
        self.fill += 1;
        if self.fill == 128 {
            compress(&mut self.h, &self.block);
            self.fill = 0;
        }
    }
}

fn compress(h: &mut [u64; 8], block: &[u8; 128]) {
    let mut w = [0u64; 16];
    for (i, &b) in block.iter().enumerate() {
        w[i / 8] = (w[i / 8] << 8) | b as u64;
    }
    let mut s = *h;
    for (t, k) in K.iter().enumerate() {
        if t >= 16 {
            // W[t] = σ1(W[t−2]) + W[t−7] + σ0(W[t−15]) + W[t−16], in place.
            let (w2, w15) = (w[(t + 14) % 16], w[(t + 1) % 16]);
            let s1 = w2.rotate_right(19) ^ w2.rotate_right(61) ^ (w2 >> 6);
            let s0 = w15.rotate_right(1) ^ w15.rotate_right(8) ^ (w15 >> 7);
            w[t % 16] = w[t % 16]
                .wrapping_add(s1)
                .wrapping_add(w[(t + 9) % 16])
                .wrapping_add(s0);
        }
        let [a, b, c, d, e, f, g, hh] = s;
        let t1 = hh
            .wrapping_add(e.rotate_right(14) ^ e.rotate_right(18) ^ e.rotate_right(41))
            .wrapping_add((e & f) ^ (!e & g))
            .wrapping_add(*k)
            .wrapping_add(w[t % 16]);
        let t2 = (a.rotate_right(28) ^ a.rotate_right(34) ^ a.rotate_right(39))
            .wrapping_add((a & b) ^ (a & c) ^ (b & c));
        s = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
    }
    for (x, y) in h.iter_mut().zip(s) {
        *x = x.wrapping_add(y);
    }
}
