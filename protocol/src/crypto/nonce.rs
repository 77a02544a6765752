use super::{CryptoError, fill_random};

/// Length of a request nonce: 32 lowercase hex characters (`uuid4().hex`).
pub const NONCE_LEN: usize = 32;

/// A fresh request nonce, formatted like Python's `uuid.uuid4().hex`:
/// 32 lowercase hex characters with the UUID version-4 and variant bits set.
///
/// # Errors
/// [`CryptoError::Random`] if the OS random number generator fails.
pub fn gen_nonce() -> Result<String, CryptoError> {
    let mut raw = [0u8; 16];
    fill_random(&mut raw)?;
    raw[6] = (raw[6] & 0x0f) | 0x40; // version 4
    raw[8] = (raw[8] & 0x3f) | 0x80; // RFC 4122 variant
    Ok(to_hex(&raw))
}

/// Lowercase hex of `bytes`.
pub(super) fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(hex_digit(b >> 4));
        out.push(hex_digit(b & 0x0f));
    }
    out
}

fn hex_digit(n: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(n & 0x0f)])
}

/// Whether `s` can be a nonce inside a Crypticle: 32 ASCII hex characters
/// (either case, so a peer's nonce is echoed back as sent).
pub fn is_nonce(s: &str) -> bool {
    s.len() == NONCE_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_look_like_uuid4_hex_and_differ() {
        let a = gen_nonce().unwrap();
        let b = gen_nonce().unwrap();
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert!(is_nonce(n), "{n}");
            assert!(
                n.bytes()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
            );
            assert_eq!(&n[12..13], "4");
            assert!(matches!(&n[16..17], "8" | "9" | "a" | "b"), "{n}");
        }
    }

    #[test]
    fn is_nonce_is_strict_about_shape() {
        assert!(is_nonce("0123456789abcdef0123456789ABCDEF"));
        assert!(!is_nonce("0123456789abcdef0123456789abcde"));
        assert!(!is_nonce("0123456789abcdef0123456789abcdeg"));
        assert!(!is_nonce(""));
        assert!(!is_nonce("é123456789abcdef0123456789abcde"));
    }
}
