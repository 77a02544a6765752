//! Key fingerprints as Salt prints them (`salt-key -f`).

use std::fmt;
use std::str::FromStr;

use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use super::KeyStoreError;

/// The digest of a fingerprint (Salt's `hash_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashType {
    /// `sha1`.
    Sha1,
    /// `sha224`.
    Sha224,
    /// `sha256` (Salt's default).
    #[default]
    Sha256,
    /// `sha384`.
    Sha384,
    /// `sha512`.
    Sha512,
}

impl HashType {
    /// Salt's name.
    pub fn name(self) -> &'static str {
        match self {
            HashType::Sha1 => "sha1",
            HashType::Sha224 => "sha224",
            HashType::Sha256 => "sha256",
            HashType::Sha384 => "sha384",
            HashType::Sha512 => "sha512",
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashType::Sha1 => Sha1::digest(data).to_vec(),
            HashType::Sha224 => Sha224::digest(data).to_vec(),
            HashType::Sha256 => Sha256::digest(data).to_vec(),
            HashType::Sha384 => Sha384::digest(data).to_vec(),
            HashType::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

impl fmt::Display for HashType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashType {
    type Err = KeyStoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sha1" => Ok(HashType::Sha1),
            "sha224" => Ok(HashType::Sha224),
            "sha256" => Ok(HashType::Sha256),
            "sha384" => Ok(HashType::Sha384),
            "sha512" => Ok(HashType::Sha512),
            _ => Err(KeyStoreError::UnsupportedHash(s.to_owned())),
        }
    }
}

/// Salt's `pem_finger` of a key **file's content**: the lines between the
/// first and last non-blank lines (the base64 body, each with its line
/// end; `\r\n` read as `\n`), hashed, and written as lowercase hex pairs
/// joined by `:`.
///
/// ```
/// use brine_master::keys::{HashType, pem_finger};
/// let pem = "-----BEGIN PUBLIC KEY-----\nAAAA\nBBBB\n-----END PUBLIC KEY-----\n";
/// let finger = pem_finger(pem.as_bytes(), HashType::Sha256);
/// assert_eq!(finger.len(), 32 * 3 - 1);
/// assert_eq!(finger, pem_finger(pem.replace('\n', "\r\n").as_bytes(), HashType::Sha256));
/// ```
pub fn pem_finger(file_content: &[u8], hash: HashType) -> String {
    let lines: Vec<&[u8]> = file_content
        .split_inclusive(|&b| b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .collect();
    let body = match lines.len() {
        0..=2 => Vec::new(),
        n => lines
            .get(1..n - 1)
            .unwrap_or_default()
            .iter()
            .flat_map(|line| line.iter().copied())
            .collect(),
    };
    let body = crlf_to_lf(&body);
    colon_hex(&hash.digest(&body))
}

fn crlf_to_lf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut iter = data.iter().peekable();
    while let Some(&b) = iter.next() {
        if b == b'\r' && iter.peek() == Some(&&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

fn colon_hex(digest: &[u8]) -> String {
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, byte) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_salts_pem_finger() {
        // Salt 3007: salt.utils.crypt.pem_finger(path) on this file gives
        // the sha256 of "AAAA\nBBBB\n" written as colon-separated hex.
        let pem = b"-----BEGIN PUBLIC KEY-----\nAAAA\nBBBB\n-----END PUBLIC KEY-----\n";
        let want = colon_hex(&Sha256::digest(b"AAAA\nBBBB\n"));
        assert_eq!(
            want,
            "b1:d9:41:c7:78:ca:2b:8a:bf:df:5c:da:73:9b:bc:87:37:f2:ad:4e:94:31:e4:d5:9b:1f:a2:50:cb:1b:5f:5a"
        );
        assert_eq!(pem_finger(pem, HashType::Sha256), want);
        // blank lines anywhere are ignored, a missing final newline too
        let loose = b"\n-----BEGIN PUBLIC KEY-----\n\nAAAA\nBBBB\n-----END PUBLIC KEY-----";
        assert_eq!(pem_finger(loose, HashType::Sha256), want);
        assert_eq!(
            pem_finger(pem, HashType::Sha1),
            colon_hex(&Sha1::digest(b"AAAA\nBBBB\n"))
        );
    }

    #[test]
    fn hash_types_parse() {
        assert_eq!("SHA256".parse::<HashType>().unwrap(), HashType::Sha256);
        assert_eq!("sha512".parse::<HashType>().unwrap(), HashType::Sha512);
        assert!(matches!(
            "md5".parse::<HashType>(),
            Err(KeyStoreError::UnsupportedHash(_))
        ));
    }

    #[test]
    fn colon_hex_format() {
        assert_eq!(colon_hex(&[0x0a, 0xff, 0x10]), "0a:ff:10");
    }
}
