//! ANSI X9.31 padding as OpenSSL's `RSA_X931_PADDING` applies it
//! (`RSA_padding_add_X931` / `RSA_padding_check_X931`), which Salt's
//! `salt/utils/rsax931.py` reaches through libcrypto.
//!
//! Block of `k` bytes for a message `m`, with `j = k - len(m) - 2`:
//!
//! ```text
//! j == 0:  6A | m | CC
//! j >= 1:  6B | BB * (j - 1) | BA | m | CC
//! ```
//!
//! OpenSSL's checker insists on at least one `BB` after `6B`, so a message of
//! exactly `k - 3` bytes signs but never verifies there; [`unpad`] mirrors
//! that and [`pad`] refuses such a message rather than emit an unverifiable
//! signature.

use super::CryptoError;

/// Builds the `k`-byte block for `msg`.
pub(super) fn pad(msg: &[u8], k: usize) -> Result<Vec<u8>, CryptoError> {
    let too_long = CryptoError::MessageTooLong {
        len: msg.len(),
        key_bytes: k,
    };
    let j = k.checked_sub(msg.len()).and_then(|r| r.checked_sub(2));
    let mut block = Vec::with_capacity(k);
    match j {
        None | Some(1) => return Err(too_long),
        Some(0) => block.push(0x6a),
        Some(j) => {
            block.push(0x6b);
            block.resize(j, 0xbb); // 6B then j-1 BB
            block.push(0xba);
        }
    }
    block.extend_from_slice(msg);
    block.push(0xcc);
    debug_assert_eq!(block.len(), k);
    Ok(block)
}

/// Recovers the message from a decoded block.
pub(super) fn unpad(block: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let bad = || CryptoError::BadSignature;
    let (&trailer, rest) = block.split_last().ok_or_else(bad)?;
    let (&header, body) = rest.split_first().ok_or_else(bad)?;
    if trailer != 0xcc {
        return Err(bad());
    }
    match header {
        0x6a => Ok(body.to_vec()),
        0x6b => {
            let fill = body.iter().take_while(|&&b| b == 0xbb).count();
            if fill == 0 {
                return Err(bad());
            }
            let after_fill = body.get(fill..).ok_or_else(bad)?;
            match after_fill.split_first() {
                Some((0xba, msg)) => Ok(msg.to_vec()),
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_layout_matches_openssl() {
        assert_eq!(
            pad(b"salt", 10).unwrap(),
            [0x6b, 0xbb, 0xbb, 0xbb, 0xba, b's', b'a', b'l', b't', 0xcc]
        );
        // j == 0: header and padding nibbles share one byte
        assert_eq!(
            pad(b"salt", 6).unwrap(),
            [0x6a, b's', b'a', b'l', b't', 0xcc]
        );
        // j == 1 would be unverifiable by OpenSSL; too short is refused
        assert!(matches!(
            pad(b"salt", 7),
            Err(CryptoError::MessageTooLong { .. })
        ));
        assert!(pad(b"salt", 5).is_err());
        assert!(pad(b"salt", 0).is_err());
        assert_eq!(pad(b"", 2).unwrap(), [0x6a, 0xcc]);
        assert!(pad(b"", 3).is_err());
        assert_eq!(pad(b"", 4).unwrap(), [0x6b, 0xbb, 0xba, 0xcc]);
    }

    #[test]
    fn unpad_inverts_pad() {
        for k in [6, 8, 64, 256] {
            let msg = b"salt";
            if let Ok(block) = pad(msg, k) {
                assert_eq!(unpad(&block).unwrap(), msg, "k={k}");
            }
        }
        let digest = [b'a'; 64];
        assert_eq!(unpad(&pad(&digest, 256).unwrap()).unwrap(), digest);
    }

    #[test]
    fn unpad_rejects_malformed_blocks() {
        let bad: &[&[u8]] = &[
            &[],
            &[0xcc],
            &[0x6b, 0xcc],
            &[0x6b, 0xba, b's', 0xcc],       // no BB (OpenSSL rejects too)
            &[0x6b, 0xbb, 0xbb, b's', 0xcc], // no BA
            &[0x6b, 0xbb, 0xba, b's', 0xcd], // bad trailer
            &[0x6c, 0xbb, 0xba, b's', 0xcc], // bad header
            &[0x00, 0x6a, b's', 0xcc],
        ];
        for block in bad {
            assert!(
                matches!(unpad(block), Err(CryptoError::BadSignature)),
                "{block:02x?}"
            );
        }
        assert_eq!(unpad(&[0x6a, 0xcc]).unwrap(), b"");
    }
}
