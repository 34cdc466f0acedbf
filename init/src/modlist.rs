//! The initramfs module list, `/lib/modules/load.list` (docs/interfaces.md
//! "Initramfs"): one absolute path per line, in load order; blank lines and
//! lines starting with `#` are ignored.

/// One module to load.
#[derive(Debug, PartialEq, Eq)]
pub struct Module<'a> {
    pub path: &'a [u8],
    /// `.ko.xz`, `.ko.zst` or `.ko.gz`: loaded with
    /// `MODULE_INIT_COMPRESSED_FILE` so the kernel decompresses it.
    pub compressed: bool,
}

/// Why a line was rejected.
#[derive(Debug, PartialEq, Eq)]
pub enum ModListError<'a> {
    /// Not an absolute path ending in `.ko`, `.ko.xz`, `.ko.zst` or `.ko.gz`.
    BadLine(&'a [u8]),
}

/// Iterates over the entries of the file, in order.
pub fn entries(text: &[u8]) -> impl Iterator<Item = Result<Module<'_>, ModListError<'_>>> {
    text.split(|b| *b == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = trim(line);
        if line.is_empty() || line.starts_with(b"#") {
            return None;
        }
        let plain = line.ends_with(b".ko");
        let compressed = [&b".ko.xz"[..], b".ko.zst", b".ko.gz"]
            .iter()
            .any(|s| line.ends_with(s));
        if !line.starts_with(b"/") || !(plain || compressed) || crate::has_nul(line) {
            return Some(Err(ModListError::BadLine(line)));
        }
        Some(Ok(Module {
            path: line,
            compressed,
        }))
    })
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_in_order() {
        let t = b"# virtio first\n/lib/modules/6.1.0-26-amd64/kernel/drivers/virtio/virtio_blk.ko.xz\n\n  /lib/modules/x/squashfs.ko  \r\n/lib/modules/x/ext4.ko.zst\nsquashfs.ko\n/x/readme.txt\n";
        let v: Vec<_> = entries(t).collect();
        assert_eq!(v.len(), 5);
        assert_eq!(
            v[0],
            Ok(Module {
                path: b"/lib/modules/6.1.0-26-amd64/kernel/drivers/virtio/virtio_blk.ko.xz",
                compressed: true
            })
        );
        assert_eq!(
            v[1],
            Ok(Module {
                path: b"/lib/modules/x/squashfs.ko",
                compressed: false
            })
        );
        assert_eq!(
            v[2],
            Ok(Module {
                path: b"/lib/modules/x/ext4.ko.zst",
                compressed: true
            })
        );
        assert_eq!(v[3], Err(ModListError::BadLine(b"squashfs.ko")));
        assert_eq!(v[4], Err(ModListError::BadLine(b"/x/readme.txt")));
        // A NUL would cut the path short as a C string.
        let v: Vec<_> = entries(b"/lib/x\0y.ko\n").collect();
        assert_eq!(v, [Err(ModListError::BadLine(b"/lib/x\0y.ko"))]);
    }
}
