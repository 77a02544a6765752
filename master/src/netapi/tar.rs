//! A minimal ustar writer for `POST /keys` (salt-api answers with a tar
//! holding `minion.pem` and `minion.pub`).

/// A tar archive of `(name, mode, contents)` regular files.
pub(crate) fn archive(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, mode, contents) in files {
        let mut header = [0u8; 512];
        put(&mut header, 0, name.as_bytes(), 100);
        put(&mut header, 100, format!("{mode:07o}\0").as_bytes(), 8);
        put(&mut header, 108, b"0000000\0", 8);
        put(&mut header, 116, b"0000000\0", 8);
        put(
            &mut header,
            124,
            format!("{:011o}\0", contents.len()).as_bytes(),
            12,
        );
        put(&mut header, 136, b"00000000000\0", 12);
        put(&mut header, 148, b"        ", 8);
        header[156] = b'0';
        put(&mut header, 257, b"ustar\0", 6);
        put(&mut header, 263, b"00", 2);
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        put(&mut header, 148, format!("{sum:06o}\0 ").as_bytes(), 8);
        out.extend_from_slice(&header);
        out.extend_from_slice(contents);
        let pad = (512 - contents.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

fn put(header: &mut [u8; 512], at: usize, bytes: &[u8], width: usize) {
    let n = bytes.len().min(width);
    if let (Some(dst), Some(src)) = (header.get_mut(at..at + n), bytes.get(..n)) {
        dst.copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_lists_with_the_system_tar() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("keys.tar");
        let data = archive(&[
            ("minion.pem", 0o600, b"private\n"),
            ("minion.pub", 0o644, b"public\n"),
        ]);
        assert_eq!(data.len() % 512, 0);
        std::fs::write(&path, &data).unwrap_or_else(|e| panic!("{e}"));
        let Ok(output) = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&path)
            .output()
        else {
            return; // no tar on this machine
        };
        let listing = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{listing}");
        assert!(
            listing.contains("minion.pem") && listing.contains("minion.pub"),
            "{listing}"
        );
    }
}
