//! The lenient, bounded msgpack decoder.

use super::{SerialError, Value};

/// Default limit on array/map nesting. Salt's payloads rarely nest beyond a
/// few dozen levels; this keeps recursion far from any stack limit.
pub const DEFAULT_MAX_DEPTH: usize = 128;

/// Decodes exactly one msgpack document with the default depth limit.
///
/// # Errors
/// [`SerialError`] on truncated or malformed input, excessive nesting or trailing bytes.
pub fn from_slice(bytes: &[u8]) -> Result<Value, SerialError> {
    from_slice_with_depth(bytes, DEFAULT_MAX_DEPTH)
}

/// Decodes exactly one msgpack document, allowing `max_depth` levels of nesting.
///
/// # Errors
/// [`SerialError`] on truncated or malformed input, excessive nesting or trailing bytes.
pub fn from_slice_with_depth(bytes: &[u8], max_depth: usize) -> Result<Value, SerialError> {
    let (value, used) = decode_prefix(bytes, max_depth)?;
    match bytes.len().checked_sub(used) {
        Some(0) | None => Ok(value),
        Some(rest) => Err(SerialError::TrailingBytes(rest)),
    }
}

/// Decodes the first msgpack document of `bytes` and returns it with the
/// number of bytes it used, for streams of concatenated documents (Salt's
/// event bus). [`SerialError::Truncated`] means the document is incomplete.
///
/// # Errors
/// [`SerialError`] on truncated or malformed input or excessive nesting.
pub fn decode_prefix(bytes: &[u8], max_depth: usize) -> Result<(Value, usize), SerialError> {
    let mut reader = Reader::new(bytes, max_depth);
    let value = reader.value(0)?;
    Ok((value, reader.pos))
}

/// Checks that `bytes` hold exactly one well-formed document within the depth
/// limit, without building it (used before handing input to serde).
pub(crate) fn validate(bytes: &[u8], max_depth: usize) -> Result<(), SerialError> {
    let mut reader = Reader::new(bytes, max_depth);
    reader.skip(0)?;
    match bytes.len().checked_sub(reader.pos) {
        Some(0) | None => Ok(()),
        Some(rest) => Err(SerialError::TrailingBytes(rest)),
    }
}

/// One item's marker, decoded: scalars carry their value, containers and
/// blobs their length (not yet checked against the input).
enum Header {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(usize),
    Bin(usize),
    Array(usize),
    Map(usize),
    Ext(i8, usize),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], max_depth: usize) -> Self {
        Reader {
            buf,
            pos: 0,
            max_depth,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Takes `n` bytes, or fails without consuming anything.
    fn take(&mut self, n: usize) -> Result<&'a [u8], SerialError> {
        let available = self.remaining();
        if n > available {
            return Err(SerialError::Truncated {
                needed: n,
                available,
            });
        }
        let end = self.pos + n; // n <= remaining, so this cannot overflow
        let out = self.buf.get(self.pos..end).ok_or(SerialError::Truncated {
            needed: n,
            available,
        })?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SerialError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, SerialError> {
        Ok(self.array::<1>()?[0])
    }

    fn len8(&mut self) -> Result<usize, SerialError> {
        Ok(usize::from(self.u8()?))
    }

    fn len16(&mut self) -> Result<usize, SerialError> {
        Ok(usize::from(u16::from_be_bytes(self.array()?)))
    }

    fn len32(&mut self) -> Result<usize, SerialError> {
        let n = u32::from_be_bytes(self.array()?);
        // A length that does not fit usize cannot fit the input either.
        usize::try_from(n).map_err(|_| SerialError::Truncated {
            needed: usize::MAX,
            available: self.remaining(),
        })
    }

    fn ext_type(&mut self) -> Result<i8, SerialError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    fn header(&mut self) -> Result<Header, SerialError> {
        let marker = self.u8()?;
        Ok(match marker {
            0x00..=0x7f => Header::Int(i64::from(marker)),
            0x80..=0x8f => Header::Map(usize::from(marker & 0x0f)),
            0x90..=0x9f => Header::Array(usize::from(marker & 0x0f)),
            0xa0..=0xbf => Header::Str(usize::from(marker & 0x1f)),
            0xc0 => Header::Nil,
            0xc1 => return Err(SerialError::InvalidMarker(marker)),
            0xc2 => Header::Bool(false),
            0xc3 => Header::Bool(true),
            0xc4 => Header::Bin(self.len8()?),
            0xc5 => Header::Bin(self.len16()?),
            0xc6 => Header::Bin(self.len32()?),
            0xc7 => {
                let len = self.len8()?;
                Header::Ext(self.ext_type()?, len)
            }
            0xc8 => {
                let len = self.len16()?;
                Header::Ext(self.ext_type()?, len)
            }
            0xc9 => {
                let len = self.len32()?;
                Header::Ext(self.ext_type()?, len)
            }
            0xca => Header::Float(f64::from(f32::from_be_bytes(self.array()?))),
            0xcb => Header::Float(f64::from_be_bytes(self.array()?)),
            0xcc => Header::Int(i64::from(self.u8()?)),
            0xcd => Header::Int(i64::from(u16::from_be_bytes(self.array()?))),
            0xce => Header::Int(i64::from(u32::from_be_bytes(self.array()?))),
            0xcf => {
                let u = u64::from_be_bytes(self.array()?);
                match i64::try_from(u) {
                    Ok(i) => Header::Int(i),
                    Err(_) => Header::UInt(u),
                }
            }
            0xd0 => Header::Int(i64::from(i8::from_be_bytes(self.array()?))),
            0xd1 => Header::Int(i64::from(i16::from_be_bytes(self.array()?))),
            0xd2 => Header::Int(i64::from(i32::from_be_bytes(self.array()?))),
            0xd3 => Header::Int(i64::from_be_bytes(self.array()?)),
            0xd4 => Header::Ext(self.ext_type()?, 1),
            0xd5 => Header::Ext(self.ext_type()?, 2),
            0xd6 => Header::Ext(self.ext_type()?, 4),
            0xd7 => Header::Ext(self.ext_type()?, 8),
            0xd8 => Header::Ext(self.ext_type()?, 16),
            0xd9 => Header::Str(self.len8()?),
            0xda => Header::Str(self.len16()?),
            0xdb => Header::Str(self.len32()?),
            0xdc => Header::Array(self.len16()?),
            0xdd => Header::Array(self.len32()?),
            0xde => Header::Map(self.len16()?),
            0xdf => Header::Map(self.len32()?),
            0xe0..=0xff => Header::Int(i64::from(i8::from_be_bytes([marker]))),
        })
    }

    /// Fails unless `count` items of at least `min_size` bytes each can still
    /// fit in the input: the guard that comes before any allocation.
    fn check_items(&self, count: usize, min_size: usize) -> Result<(), SerialError> {
        let needed = count.saturating_mul(min_size);
        let available = self.remaining();
        if needed > available {
            return Err(SerialError::Truncated { needed, available });
        }
        Ok(())
    }

    fn enter(&self, depth: usize) -> Result<usize, SerialError> {
        if depth >= self.max_depth {
            return Err(SerialError::DepthExceeded {
                max: self.max_depth,
            });
        }
        Ok(depth + 1)
    }

    fn value(&mut self, depth: usize) -> Result<Value, SerialError> {
        Ok(match self.header()? {
            Header::Nil => Value::Nil,
            Header::Bool(b) => Value::Bool(b),
            Header::Int(i) => Value::Int(i),
            Header::UInt(u) => Value::UInt(u),
            Header::Float(f) => Value::Float(f),
            Header::Str(len) => {
                let raw = self.take(len)?;
                match std::str::from_utf8(raw) {
                    Ok(s) => Value::Str(s.to_owned()),
                    Err(_) => Value::Bytes(raw.to_vec()),
                }
            }
            Header::Bin(len) => Value::Bytes(self.take(len)?.to_vec()),
            Header::Ext(ty, len) => Value::Ext(ty, self.take(len)?.to_vec()),
            Header::Array(len) => {
                let inner = self.enter(depth)?;
                self.check_items(len, 1)?;
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(self.value(inner)?);
                }
                Value::Array(items)
            }
            Header::Map(len) => {
                let inner = self.enter(depth)?;
                self.check_items(len, 2)?;
                let mut entries = Vec::with_capacity(len);
                for _ in 0..len {
                    let k = self.value(inner)?;
                    let v = self.value(inner)?;
                    entries.push((k, v));
                }
                Value::Map(entries)
            }
        })
    }

    fn skip(&mut self, depth: usize) -> Result<(), SerialError> {
        match self.header()? {
            Header::Nil | Header::Bool(_) | Header::Int(_) | Header::UInt(_) | Header::Float(_) => {
            }
            Header::Str(len) | Header::Bin(len) | Header::Ext(_, len) => {
                self.take(len)?;
            }
            Header::Array(len) => {
                let inner = self.enter(depth)?;
                self.check_items(len, 1)?;
                for _ in 0..len {
                    self.skip(inner)?;
                }
            }
            Header::Map(len) => {
                let inner = self.enter(depth)?;
                self.check_items(len, 2)?;
                for _ in 0..len {
                    self.skip(inner)?;
                    self.skip(inner)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_str_becomes_bytes() {
        // fixstr of 3 bytes, not UTF-8
        let v = from_slice(&[0xa3, 0xff, 0xfe, 0x00]).unwrap();
        assert_eq!(v, Value::Bytes(vec![0xff, 0xfe, 0x00]));
        // str16 as Salt writes ciphertexts
        let mut blob = vec![0xda, 0x00, 0x03];
        blob.extend_from_slice(&[0x80, 0x81, 0x82]);
        assert_eq!(
            from_slice(&blob).unwrap(),
            Value::Bytes(vec![0x80, 0x81, 0x82])
        );
        // valid UTF-8 stays text
        assert_eq!(from_slice(&[0xa2, b'h', b'i']).unwrap(), Value::from("hi"));
        // bin is bytes even when it is UTF-8
        assert_eq!(
            from_slice(&[0xc4, 0x02, b'h', b'i']).unwrap(),
            Value::Bytes(b"hi".to_vec())
        );
    }

    #[test]
    fn integers_of_every_width() {
        let cases: &[(&[u8], Value)] = &[
            (&[0x7f], Value::Int(127)),
            (&[0xff], Value::Int(-1)),
            (&[0xe0], Value::Int(-32)),
            (&[0xcc, 0xff], Value::Int(255)),
            (&[0xcd, 0xff, 0xff], Value::Int(65535)),
            (&[0xce, 0xff, 0xff, 0xff, 0xff], Value::Int(4_294_967_295)),
            (
                &[0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Value::Int(i64::MAX),
            ),
            (&[0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0], Value::UInt(1 << 63)),
            (
                &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Value::UInt(u64::MAX),
            ),
            (&[0xd0, 0x80], Value::Int(-128)),
            (&[0xd1, 0x80, 0x00], Value::Int(-32768)),
            (&[0xd2, 0x80, 0, 0, 0], Value::Int(i64::from(i32::MIN))),
            (&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0], Value::Int(i64::MIN)),
        ];
        for (bytes, want) in cases {
            assert_eq!(&from_slice(bytes).unwrap(), want, "{bytes:02x?}");
        }
    }

    #[test]
    fn floats_and_ext() {
        assert_eq!(
            from_slice(&[0xca, 0x3f, 0xc0, 0, 0]).unwrap(),
            Value::Float(1.5)
        );
        assert_eq!(
            from_slice(&[0xd4, 0x4e, 0x01]).unwrap(),
            Value::Ext(78, vec![1])
        );
        assert_eq!(
            from_slice(&[0xc7, 0x02, 0xff, 0x01, 0x02]).unwrap(),
            Value::Ext(-1, vec![1, 2])
        );
    }

    #[test]
    fn claimed_length_beyond_input_fails_before_allocating() {
        // str32 claiming 4 GiB
        let err = from_slice(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'a']).unwrap_err();
        assert!(
            matches!(err, SerialError::Truncated { available: 1, .. }),
            "{err}"
        );
        // array32 claiming 4 billion items
        let err = from_slice(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]).unwrap_err();
        assert!(matches!(err, SerialError::Truncated { .. }), "{err}");
        // map32 claiming 2^31 entries over 3 bytes
        let err = from_slice(&[0xdf, 0x80, 0, 0, 0, 1, 2, 3]).unwrap_err();
        assert!(matches!(err, SerialError::Truncated { .. }), "{err}");
        // bin32, ext32
        assert!(from_slice(&[0xc6, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(from_slice(&[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
    }

    #[test]
    fn depth_is_bounded() {
        let deep = vec![0x91; 10_000];
        let err = from_slice(&deep).unwrap_err();
        assert!(matches!(
            err,
            SerialError::DepthExceeded {
                max: DEFAULT_MAX_DEPTH
            }
        ));
        assert!(validate(&deep, DEFAULT_MAX_DEPTH).is_err());
        // exactly at the limit is fine
        let mut ok = vec![0x91; 3];
        ok.push(0xc0);
        assert!(from_slice_with_depth(&ok, 3).is_ok());
        assert!(from_slice_with_depth(&ok, 2).is_err());
    }

    #[test]
    fn trailing_bytes_and_prefix_decoding() {
        assert!(matches!(
            from_slice(&[0xc0, 0xc0]),
            Err(SerialError::TrailingBytes(1))
        ));
        let (v, used) = decode_prefix(&[0x01, 0x02], DEFAULT_MAX_DEPTH).unwrap();
        assert_eq!((v, used), (Value::Int(1), 1));
        assert!(matches!(
            decode_prefix(&[0x92, 0x01], DEFAULT_MAX_DEPTH),
            Err(SerialError::Truncated { .. })
        ));
    }

    #[test]
    fn reserved_marker_and_empty_input() {
        assert!(matches!(
            from_slice(&[0xc1]),
            Err(SerialError::InvalidMarker(0xc1))
        ));
        assert!(matches!(
            from_slice(&[]),
            Err(SerialError::Truncated { .. })
        ));
    }

    #[test]
    fn random_garbage_never_panics() {
        // xorshift so the test is deterministic without a rand dependency
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let len = usize::try_from(next() % 64).unwrap();
            let bytes: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
            let decoded = from_slice(&bytes);
            let validated = validate(&bytes, DEFAULT_MAX_DEPTH);
            assert_eq!(
                decoded.is_ok(),
                validated.is_ok(),
                "round {round}: {bytes:02x?}"
            );
            if let Ok(v) = decoded {
                // whatever decodes re-encodes and decodes to the same value
                let packed = v.to_event_bytes().unwrap();
                let again = from_slice(&packed).unwrap();
                assert_eq!(again.to_event_bytes().unwrap(), packed);
            }
        }
    }
}
