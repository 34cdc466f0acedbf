//! The signed release manifest: a fixed 512-byte record, little-endian,
//! that fixes the payload's size and digest, its dm-verity parameters and
//! root hash, the OS version and the anti-rollback security counter, signed
//! with Ed25519 by a release key.
//!
//! ```text
//! offset len  field
//!      0   8  magic "MATICREL"
//!      8   4  format, 1
//!     12   4  flags, 0 (no flag is defined)
//!     16   8  security counter
//!     24   8  payload size in bytes (data, verity superblock and tree)
//!     32  32  SHA-256 of the payload
//!     64   8  data blocks
//!     72   4  data block size
//!     76   4  hash block size
//!     80   8  hash start: byte offset of the tree's first block in the payload
//!     88   1  hash algorithm, 1 = SHA-256
//!     89   1  salt length, 0..=64
//!     90   1  version length, 1..=64
//!     91   5  zero
//!     96  64  salt, zero after its length
//!    160  32  verity root hash
//!    192   8  key id of the signing key
//!    200  64  OS version: printable ASCII without blanks, zero after its length
//!    264 184  zero
//!    448  64  Ed25519 signature of bytes 0..448
//! ```
//!
//! In a release file and in a slot the record starts a [`BLOCK_LEN`] block
//! whose remaining bytes are zero. A slot keeps its manifest block at the
//! start of its last [`SLOT_RESERVE`] bytes; the payload starts at the
//! slot's first byte.
//!
//! Every byte of the block is checked: the signed ones by the signature, the
//! zero ones (reserved fields, padding of salt and version, the rest of the
//! block) by [`Manifest::parse_unverified`], so no bit of a valid block can change and
//! still be accepted.
//!
//! Must never: accept a manifest before its signature has been checked with
//! a trusted key ([`Manifest::verify`] is the only way to get one from
//! bytes), or accept a payload layout other than `data ‖ superblock ‖ tree`.

use crate::key::{KeyId, PublicKey};
use crate::verity::{self, Geometry, GeometryError};

/// The record's magic.
pub const MAGIC: &[u8; 8] = b"MATICREL";
/// The only format this code reads and writes.
pub const FORMAT: u32 = 1;
/// Bytes of the record.
pub const LEN: usize = 512;
/// Bytes the signature covers: everything before it.
pub const SIGNED_LEN: usize = 448;
/// The manifest block: the record, then zeros; the payload follows it in a
/// release file.
pub const BLOCK_LEN: usize = 4096;
/// The tail of a slot kept for its manifest block; a payload must end
/// before it.
pub const SLOT_RESERVE: u64 = 64 * 1024;
/// Longest salt (veritysetup writes 32 bytes by default).
pub const MAX_SALT: usize = 64;
/// Longest OS version.
pub const MAX_VERSION: usize = 64;
/// The hash-algorithm byte for SHA-256.
pub const ALG_SHA256: u8 = 1;

/// An Ed25519 signature check, brought by each program (`ring` in the agent
/// and osctl, a small no_std verifier in init).
pub trait SignatureCheck {
    /// Whether `signature` is `key`'s valid signature of `message`.
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &[u8; 64]) -> bool;
}

/// Why a manifest block is refused. [`ManifestError::describe`] has the
/// words; the agent and osctl add the values through `Display`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestError {
    /// Fewer bytes than a manifest block.
    Short(usize),
    /// Not a MaticOS release (no `MATICREL`): an unsigned image, say.
    Magic,
    /// A format this code does not read.
    Format(u32),
    /// A flag bit this code does not know.
    Flags(u32),
    /// A byte that must be zero is not.
    NonZero(usize),
    /// A hash algorithm other than SHA-256.
    Algorithm(u8),
    /// A salt longer than [`MAX_SALT`].
    SaltLength(u8),
    /// An empty or too long version, or one with a blank or control byte.
    Version,
    /// Verity parameters the kernel would refuse.
    Geometry(GeometryError),
    /// The tree does not start one hash block after the data (where the
    /// verity superblock goes).
    Layout,
    /// The payload size is not where the tree ends.
    PayloadSize { manifest: u64, tree_end: u64 },
    /// No trusted key with this id.
    UnknownKey(KeyId),
    /// The signature does not verify with the named key.
    BadSignature(KeyId),
}

impl ManifestError {
    /// The words init prints (no values: init has no `core::fmt`).
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Short(_) => "the manifest block is truncated",
            Self::Magic => "no release manifest (an unsigned image?)",
            Self::Format(_) => "the manifest's format is not one this build reads",
            Self::Flags(_) => "the manifest sets a flag this build does not know",
            Self::NonZero(_) => "a reserved byte of the manifest block is not zero",
            Self::Algorithm(_) => "the manifest's hash algorithm is not SHA-256",
            Self::SaltLength(_) => "the manifest's salt is longer than 64 bytes",
            Self::Version => {
                "the manifest's version is empty, too long, or not printable ASCII without blanks"
            }
            Self::Geometry(g) => g.describe(),
            Self::Layout => "the verity tree does not start one block after the data",
            Self::PayloadSize { .. } => {
                "the manifest's payload size is not where its verity tree ends"
            }
            Self::UnknownKey(_) => "the manifest is signed by a key that is not trusted",
            Self::BadSignature(_) => "the manifest's signature does not verify",
        }
    }
}

#[cfg(feature = "std")]
impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())?;
        match self {
            Self::Short(n) => write!(f, " ({n} of {BLOCK_LEN} bytes)"),
            Self::Format(n) => write!(f, " (format {n}; this build reads {FORMAT})"),
            Self::Flags(n) => write!(f, " (flags {n:#x})"),
            Self::NonZero(at) => write!(f, " (byte {at})"),
            Self::Algorithm(a) => write!(f, " (algorithm {a})"),
            Self::SaltLength(n) => write!(f, " ({n} bytes)"),
            Self::PayloadSize { manifest, tree_end } => {
                write!(f, " ({manifest} bytes; the tree ends at {tree_end})")
            }
            Self::UnknownKey(id) => write!(f, " (key id {id})"),
            Self::BadSignature(id) => write!(f, " (key id {id})"),
            _ => Ok(()),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ManifestError {}

/// A manifest's fields. Obtained from bytes only through
/// [`Manifest::verify`]; built by `osctl release sign` and rendered with
/// [`Manifest::render`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub counter: u64,
    pub payload_size: u64,
    pub payload_sha256: [u8; 32],
    pub geometry: Geometry,
    salt: [u8; MAX_SALT],
    salt_len: u8,
    pub root_hash: [u8; 32],
    pub key_id: KeyId,
    version: [u8; MAX_VERSION],
    version_len: u8,
    pub signature: [u8; 64],
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn zero_from(b: &[u8], start: usize) -> Result<(), ManifestError> {
    match b.iter().position(|&x| x != 0) {
        Some(i) => Err(ManifestError::NonZero(start + i)),
        None => Ok(()),
    }
}

fn version_ok(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= MAX_VERSION && v.iter().all(u8::is_ascii_graphic)
}

impl Manifest {
    /// A manifest for a payload laid out `data ‖ superblock ‖ tree` by
    /// `geometry`, unsigned (the signature is zero) until [`Self::sign`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        version: &str,
        counter: u64,
        payload_sha256: [u8; 32],
        geometry: Geometry,
        salt: &[u8],
        root_hash: [u8; 32],
        key_id: KeyId,
    ) -> Result<Self, ManifestError> {
        if !version_ok(version.as_bytes()) {
            return Err(ManifestError::Version);
        }
        if salt.len() > MAX_SALT {
            return Err(ManifestError::SaltLength(salt.len().min(255) as u8));
        }
        let mut m = Self {
            counter,
            payload_size: 0,
            payload_sha256,
            geometry,
            salt: [0; MAX_SALT],
            salt_len: salt.len() as u8,
            root_hash,
            key_id,
            version: [0; MAX_VERSION],
            version_len: version.len() as u8,
            signature: [0; 64],
        };
        m.salt[..salt.len()].copy_from_slice(salt);
        m.version[..version.len()].copy_from_slice(version.as_bytes());
        check_layout(&geometry)?;
        m.payload_size = geometry
            .payload_len()
            .ok_or(ManifestError::Geometry(GeometryError::TooLarge))?;
        Ok(m)
    }

    /// The verity salt.
    pub fn salt(&self) -> &[u8] {
        &self.salt[..usize::from(self.salt_len)]
    }

    /// The OS version (printable ASCII, checked on the way in).
    pub fn version(&self) -> &str {
        core::str::from_utf8(self.version_bytes()).unwrap_or("")
    }

    /// The OS version's bytes, what [`Manifest::version`] shows: matic-init
    /// prints them as they are and so links no `str::from_utf8`.
    pub fn version_bytes(&self) -> &[u8] {
        &self.version[..usize::from(self.version_len)]
    }

    /// The record, signature included.
    pub fn render(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&FORMAT.to_le_bytes());
        b[16..24].copy_from_slice(&self.counter.to_le_bytes());
        b[24..32].copy_from_slice(&self.payload_size.to_le_bytes());
        b[32..64].copy_from_slice(&self.payload_sha256);
        let g = &self.geometry;
        b[64..72].copy_from_slice(&g.data_blocks.to_le_bytes());
        b[72..76].copy_from_slice(&g.data_block_size.to_le_bytes());
        b[76..80].copy_from_slice(&g.hash_block_size.to_le_bytes());
        b[80..88].copy_from_slice(&g.hash_start().to_le_bytes());
        b[88] = ALG_SHA256;
        b[89] = self.salt_len;
        b[90] = self.version_len;
        b[96..160].copy_from_slice(&self.salt);
        b[160..192].copy_from_slice(&self.root_hash);
        b[192..200].copy_from_slice(&self.key_id.0);
        b[200..264].copy_from_slice(&self.version);
        b[SIGNED_LEN..].copy_from_slice(&self.signature);
        b
    }

    /// The manifest block: the record, then zeros to [`BLOCK_LEN`].
    pub fn render_block(&self) -> [u8; BLOCK_LEN] {
        let mut b = [0u8; BLOCK_LEN];
        b[..LEN].copy_from_slice(&self.render());
        b
    }

    /// Sets the signature: `sign` gets the bytes it covers.
    pub fn sign(&mut self, sign: impl FnOnce(&[u8]) -> [u8; 64]) {
        self.signature = sign(&self.render()[..SIGNED_LEN]);
    }

    /// Reads a manifest block (at least [`BLOCK_LEN`] bytes; only the first
    /// [`BLOCK_LEN`] are read), finds its key with `key` and checks its
    /// signature with `check`. The only way to a `Manifest` from bytes.
    pub fn verify(
        block: &[u8],
        key: impl FnOnce(KeyId) -> Option<PublicKey>,
        check: &dyn SignatureCheck,
    ) -> Result<Self, ManifestError> {
        let m = Self::parse_unverified(block)?;
        let public = key(m.key_id).ok_or(ManifestError::UnknownKey(m.key_id))?;
        if !check.verify(&public, &block[..SIGNED_LEN], &m.signature) {
            return Err(ManifestError::BadSignature(m.key_id));
        }
        Ok(m)
    }

    /// The structure of a manifest block, signature not checked: for
    /// `osctl release inspect` (which says so) and for [`Self::verify`].
    pub fn parse_unverified(block: &[u8]) -> Result<Self, ManifestError> {
        let b = block
            .get(..BLOCK_LEN)
            .ok_or(ManifestError::Short(block.len()))?;
        if &b[..8] != MAGIC {
            return Err(ManifestError::Magic);
        }
        let format = u32_at(b, 8);
        if format != FORMAT {
            return Err(ManifestError::Format(format));
        }
        let flags = u32_at(b, 12);
        if flags != 0 {
            return Err(ManifestError::Flags(flags));
        }
        zero_from(&b[91..96], 91)?;
        zero_from(&b[264..SIGNED_LEN], 264)?;
        zero_from(&b[LEN..], LEN)?;
        if b[88] != ALG_SHA256 {
            return Err(ManifestError::Algorithm(b[88]));
        }
        let salt_len = b[89];
        if usize::from(salt_len) > MAX_SALT {
            return Err(ManifestError::SaltLength(salt_len));
        }
        zero_from(
            &b[96 + usize::from(salt_len)..160],
            96 + usize::from(salt_len),
        )?;
        let version_len = usize::from(b[90]);
        if !version_ok(b.get(200..200 + version_len).unwrap_or(&[])) {
            return Err(ManifestError::Version);
        }
        zero_from(&b[200 + version_len..264], 200 + version_len)?;
        let geometry = Geometry::new(u64_at(b, 64), u32_at(b, 72), u32_at(b, 76), u64_at(b, 80))
            .map_err(ManifestError::Geometry)?;
        check_layout(&geometry)?;
        let payload_size = u64_at(b, 24);
        let tree_end = geometry
            .payload_len()
            .ok_or(ManifestError::Geometry(GeometryError::TooLarge))?;
        if payload_size != tree_end {
            return Err(ManifestError::PayloadSize {
                manifest: payload_size,
                tree_end,
            });
        }
        let mut m = Self {
            counter: u64_at(b, 16),
            payload_size,
            payload_sha256: [0; 32],
            geometry,
            salt: [0; MAX_SALT],
            salt_len,
            root_hash: [0; 32],
            key_id: KeyId([0; 8]),
            version: [0; MAX_VERSION],
            version_len: version_len as u8,
            signature: [0; 64],
        };
        m.payload_sha256.copy_from_slice(&b[32..64]);
        m.salt.copy_from_slice(&b[96..160]);
        m.root_hash.copy_from_slice(&b[160..192]);
        m.key_id.0.copy_from_slice(&b[192..200]);
        m.version.copy_from_slice(&b[200..264]);
        m.signature.copy_from_slice(&b[SIGNED_LEN..LEN]);
        Ok(m)
    }
}

/// The one payload layout: the superblock fills the hash block right after
/// the data, the tree starts after it.
fn check_layout(g: &Geometry) -> Result<(), ManifestError> {
    let superblock = u64::from(g.hash_block_size);
    if g.hash_start() != g.data_len() + superblock || g.data_block_size != verity::BLOCK {
        return Err(ManifestError::Layout);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in signature for the layout tests: the signature is the
    /// first 64 bytes of the key repeated over a checksum of the message.
    /// (The real Ed25519 round trips are in the agent's, osctl's and
    /// init's tests, which bring real verifiers.)
    struct Toy;
    fn toy_sign(key: &PublicKey, msg: &[u8]) -> [u8; 64] {
        let mut s = [0u8; 64];
        for (i, b) in msg.iter().enumerate() {
            s[i % 64] = s[i % 64].wrapping_mul(31).wrapping_add(*b ^ key[i % 32]);
        }
        s
    }
    impl SignatureCheck for Toy {
        fn verify(&self, key: &PublicKey, message: &[u8], signature: &[u8; 64]) -> bool {
            toy_sign(key, message) == *signature
        }
    }
    const KEY: PublicKey = [7u8; 32];

    fn sample() -> Manifest {
        let g = Geometry::new(131_072, 4096, 4096, 131_073 * 4096).unwrap();
        let mut m = Manifest::new(
            "1.2.3-rc1",
            42,
            [0xab; 32],
            g,
            &[0x5a; 32],
            [0xcd; 32],
            KeyId([1, 2, 3, 4, 5, 6, 7, 8]),
        )
        .unwrap();
        m.sign(|msg| toy_sign(&KEY, msg));
        m
    }

    fn verify(block: &[u8]) -> Result<Manifest, ManifestError> {
        Manifest::verify(
            block,
            |id| (id == KeyId([1, 2, 3, 4, 5, 6, 7, 8])).then_some(KEY),
            &Toy,
        )
    }

    #[test]
    fn round_trips() {
        let m = sample();
        let back = verify(&m.render_block()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.version(), "1.2.3-rc1");
        assert_eq!(back.version_bytes(), b"1.2.3-rc1");
        assert_eq!(back.salt(), &[0x5a; 32]);
        assert_eq!(back.payload_size, (131_082 + 1024) * 4096);
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let block = sample().render_block();
        for bit in 0..BLOCK_LEN * 8 {
            let mut b = block;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(verify(&b).is_err(), "bit {bit} flipped was accepted");
        }
    }

    #[test]
    fn named_refusals() {
        let block = sample().render_block();
        assert_eq!(verify(&block[..4095]), Err(ManifestError::Short(4095)));
        assert_eq!(verify(&[0u8; BLOCK_LEN]), Err(ManifestError::Magic));
        let mut b = block;
        b[8] = 2;
        assert_eq!(verify(&b), Err(ManifestError::Format(2)));
        let mut b = block;
        b[89] = 65;
        assert_eq!(verify(&b), Err(ManifestError::SaltLength(65)));
        let mut b = block;
        b[90] = 0;
        assert_eq!(verify(&b), Err(ManifestError::Version));
        let mut b = block;
        b[203] = b' ';
        assert_eq!(verify(&b), Err(ManifestError::Version));
        let mut b = block;
        b[192] ^= 1;
        assert!(matches!(verify(&b), Err(ManifestError::UnknownKey(_))));
        let mut b = block;
        b[16] ^= 1;
        assert!(matches!(verify(&b), Err(ManifestError::BadSignature(_))));
        let mut b = block;
        b[24] ^= 1;
        assert!(matches!(verify(&b), Err(ManifestError::PayloadSize { .. })));
    }

    #[test]
    fn new_refuses_bad_fields() {
        let g = Geometry::new(8, 4096, 4096, 9 * 4096).unwrap();
        let id = KeyId([0; 8]);
        let new = |v: &str, salt: &[u8], g| Manifest::new(v, 0, [0; 32], g, salt, [0; 32], id);
        assert_eq!(new("", &[], g), Err(ManifestError::Version));
        assert_eq!(new("a b", &[], g), Err(ManifestError::Version));
        assert_eq!(new(&"v".repeat(65), &[], g), Err(ManifestError::Version));
        assert_eq!(new("1", &[0; 65], g), Err(ManifestError::SaltLength(65)));
        let no_superblock = Geometry::new(8, 4096, 4096, 8 * 4096).unwrap();
        assert_eq!(new("1", &[], no_superblock), Err(ManifestError::Layout));
        assert!(new("1", &[], g).is_ok());
    }
}
