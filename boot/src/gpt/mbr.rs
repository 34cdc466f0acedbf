//! The protective MBR in sector 0: one partition of type 0xEE covering the
//! disk, so MBR-only tools see it as in use. Bytes only: never does I/O.

/// Is `sector` an MBR with the 0x55AA signature and a type-0xEE entry?
pub fn is_protective(sector: &[u8; 512]) -> bool {
    sector[510] == 0x55 && sector[511] == 0xaa && (0..4).any(|i| sector[446 + 16 * i + 4] == 0xee)
}

/// Builds a protective MBR for a disk of `total_sectors` 512-byte sectors.
pub fn protective(total_sectors: u64) -> [u8; 512] {
    let mut s = [0u8; 512];
    let e = &mut s[446..462];
    e[0] = 0x00; // not bootable
    e[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
    e[4] = 0xee;
    e[5..8].copy_from_slice(&[0xff, 0xff, 0xff]); // CHS "too big"
    e[8..12].copy_from_slice(&1u32.to_le_bytes());
    let len = u32::try_from(total_sectors - 1).unwrap_or(u32::MAX);
    e[12..16].copy_from_slice(&len.to_le_bytes());
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protective_is_protective() {
        let m = protective(1 << 40);
        assert!(is_protective(&m));
        assert_eq!(&m[458..462], &[0xff; 4]);
        assert!(!is_protective(&[0; 512]));
        let mut m2 = protective(2048);
        assert_eq!(
            u32::from_le_bytes([m2[458], m2[459], m2[460], m2[461]]),
            2047
        );
        m2[450] = 0x83;
        assert!(!is_protective(&m2));
    }
}
