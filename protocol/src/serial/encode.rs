//! msgpack encoders mirroring Python msgpack's packer as Salt configures it.

use super::{SerialError, Value};

/// Packs `value` the way Salt packs channel envelopes and Crypticle
/// plaintexts (`salt.payload.dumps`, `use_bin_type=False`): byte strings
/// become msgpack **str** items holding the raw bytes, and no `str8`
/// (`0xd9`) header is used, as in the pre-2.0 msgpack spec Python follows
/// in this mode. The output is byte-for-byte what Salt produces for the
/// same data.
///
/// # Errors
/// [`SerialError::TooLong`] if an item exceeds msgpack's 32-bit lengths.
pub fn to_channel_bytes(value: &Value) -> Result<Vec<u8>, SerialError> {
    let mut out = Vec::new();
    Encoder { bin: false }.value(value, &mut out)?;
    Ok(out)
}

/// Packs `value` the way Salt packs event bus bodies and IPC frames
/// (`use_bin_type=True`): byte strings become msgpack **bin** items and text
/// uses the compact `str8` header.
///
/// # Errors
/// [`SerialError::TooLong`] if an item exceeds msgpack's 32-bit lengths.
pub fn to_event_bytes(value: &Value) -> Result<Vec<u8>, SerialError> {
    let mut out = Vec::new();
    Encoder { bin: true }.value(value, &mut out)?;
    Ok(out)
}

/// [`to_event_bytes`] of a map with the value of its first entry under
/// `key` packed as nil (as if [`Value::insert`]ed), without copying the map.
/// Any other value is packed as it is.
///
/// # Errors
/// [`SerialError::TooLong`] if an item exceeds msgpack's 32-bit lengths.
pub fn to_event_bytes_with_nil(value: &Value, key: &str) -> Result<Vec<u8>, SerialError> {
    let encoder = Encoder { bin: true };
    let mut out = Vec::new();
    let Value::Map(entries) = value else {
        encoder.value(value, &mut out)?;
        return Ok(out);
    };
    map_head(len32("map", entries.len())?, &mut out);
    let mut masked = false;
    for (k, v) in entries {
        encoder.value(k, &mut out)?;
        if !masked && k.is_key(key) {
            masked = true;
            out.push(0xc0);
        } else {
            encoder.value(v, &mut out)?;
        }
    }
    Ok(out)
}

fn map_head(len: u32, out: &mut Vec<u8>) {
    match len {
        0..=15 => out.push(0x80 | low_nibble(len)),
        16..=0xffff => head16(0xde, len, out),
        _ => head32(0xdf, len, out),
    }
}

fn len32(what: &'static str, len: usize) -> Result<u32, SerialError> {
    u32::try_from(len).map_err(|_| SerialError::TooLong { what, len })
}

#[derive(Clone, Copy)]
struct Encoder {
    /// `use_bin_type`: bytes as bin and `str8` allowed.
    bin: bool,
}

impl Encoder {
    fn value(self, value: &Value, out: &mut Vec<u8>) -> Result<(), SerialError> {
        match value {
            Value::Nil => out.push(0xc0),
            Value::Bool(false) => out.push(0xc2),
            Value::Bool(true) => out.push(0xc3),
            Value::Int(i) => match u64::try_from(*i) {
                Ok(u) => unsigned(u, out),
                Err(_) => signed(*i, out),
            },
            Value::UInt(u) => unsigned(*u, out),
            Value::Float(f) => {
                out.push(0xcb);
                out.extend_from_slice(&f.to_be_bytes());
            }
            Value::Str(s) => self.str(s.as_bytes(), out)?,
            Value::Bytes(b) if self.bin => bin(b, out)?,
            Value::Bytes(b) => self.str(b, out)?,
            Value::Array(items) => {
                let len = len32("array", items.len())?;
                match len {
                    0..=15 => out.push(0x90 | low_nibble(len)),
                    16..=0xffff => head16(0xdc, len, out),
                    _ => head32(0xdd, len, out),
                }
                for item in items {
                    self.value(item, out)?;
                }
            }
            Value::Map(entries) => {
                map_head(len32("map", entries.len())?, out);
                for (k, v) in entries {
                    self.value(k, out)?;
                    self.value(v, out)?;
                }
            }
            Value::Ext(ty, data) => ext(*ty, data, out)?,
        }
        Ok(())
    }

    fn str(self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), SerialError> {
        let len = len32("str", raw.len())?;
        match len {
            0..=31 => out.push(0xa0 | (len.to_be_bytes()[3] & 0x1f)),
            32..=0xff if self.bin => {
                out.push(0xd9);
                out.push(len.to_be_bytes()[3]);
            }
            32..=0xffff => head16(0xda, len, out),
            _ => head32(0xdb, len, out),
        }
        out.extend_from_slice(raw);
        Ok(())
    }
}

fn low_nibble(len: u32) -> u8 {
    len.to_be_bytes()[3] & 0x0f
}

/// Header byte plus a big-endian u16 length; `len` is known to fit.
fn head16(marker: u8, len: u32, out: &mut Vec<u8>) {
    out.push(marker);
    out.extend_from_slice(&len.to_be_bytes()[2..]);
}

fn head32(marker: u8, len: u32, out: &mut Vec<u8>) {
    out.push(marker);
    out.extend_from_slice(&len.to_be_bytes());
}

fn bin(raw: &[u8], out: &mut Vec<u8>) -> Result<(), SerialError> {
    let len = len32("bin", raw.len())?;
    match len {
        0..=0xff => {
            out.push(0xc4);
            out.push(len.to_be_bytes()[3]);
        }
        0x100..=0xffff => head16(0xc5, len, out),
        _ => head32(0xc6, len, out),
    }
    out.extend_from_slice(raw);
    Ok(())
}

fn ext(ty: i8, data: &[u8], out: &mut Vec<u8>) -> Result<(), SerialError> {
    let len = len32("ext", data.len())?;
    match len {
        1 => out.push(0xd4),
        2 => out.push(0xd5),
        4 => out.push(0xd6),
        8 => out.push(0xd7),
        16 => out.push(0xd8),
        0..=0xff => {
            out.push(0xc7);
            out.push(len.to_be_bytes()[3]);
        }
        0x100..=0xffff => head16(0xc8, len, out),
        _ => head32(0xc9, len, out),
    }
    out.extend_from_slice(&ty.to_be_bytes());
    out.extend_from_slice(data);
    Ok(())
}

/// Smallest unsigned form, as msgpack-python packs non-negative ints.
fn unsigned(u: u64, out: &mut Vec<u8>) {
    let be = u.to_be_bytes();
    match u {
        0..=0x7f => out.push(be[7]),
        0x80..=0xff => out.extend_from_slice(&[0xcc, be[7]]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend_from_slice(&be[6..]);
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xce);
            out.extend_from_slice(&be[4..]);
        }
        _ => {
            out.push(0xcf);
            out.extend_from_slice(&be);
        }
    }
}

/// Smallest signed form for a negative int.
fn signed(i: i64, out: &mut Vec<u8>) {
    let be = i.to_be_bytes();
    match i {
        -32..=-1 => out.push(be[7]),
        -128..=-33 => out.extend_from_slice(&[0xd0, be[7]]),
        -32768..=-129 => {
            out.push(0xd1);
            out.extend_from_slice(&be[6..]);
        }
        -2_147_483_648..=-32769 => {
            out.push(0xd2);
            out.extend_from_slice(&be[4..]);
        }
        _ => {
            out.push(0xd3);
            out.extend_from_slice(&be);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_nil_packs_as_the_map_with_that_entry_set_to_nil() {
        let mut load = Value::map();
        load.insert("jid", "20261205");
        load.insert("return", Value::Array(vec![Value::from("big"); 20]));
        load.insert("retcode", 0);
        let mut expected = load.clone();
        expected.insert("return", Value::Nil);
        assert_eq!(
            to_event_bytes_with_nil(&load, "return").unwrap(),
            to_event_bytes(&expected).unwrap()
        );
        assert_eq!(
            to_event_bytes_with_nil(&load, "absent").unwrap(),
            to_event_bytes(&load).unwrap()
        );
        let not_a_map = Value::from("return");
        assert_eq!(
            to_event_bytes_with_nil(&not_a_map, "return").unwrap(),
            to_event_bytes(&not_a_map).unwrap()
        );
    }

    #[test]
    fn bytes_pack_as_str_on_the_channel_and_bin_on_events() {
        let v = Value::Bytes(vec![0xff; 3]);
        assert_eq!(to_channel_bytes(&v).unwrap(), [0xa3, 0xff, 0xff, 0xff]);
        assert_eq!(to_event_bytes(&v).unwrap(), [0xc4, 0x03, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn channel_packing_never_uses_str8() {
        let ct = Value::Bytes(vec![0x80; 96]);
        let packed = to_channel_bytes(&ct).unwrap();
        assert_eq!(&packed[..3], &[0xda, 0x00, 0x60]); // as captured from Salt
        let text = Value::from("x".repeat(40));
        assert_eq!(to_channel_bytes(&text).unwrap()[0], 0xda);
        assert_eq!(&to_event_bytes(&text).unwrap()[..2], &[0xd9, 40]);
    }

    #[test]
    fn ints_use_the_smallest_form() {
        let cases: &[(Value, &[u8])] = &[
            (Value::Int(0), &[0x00]),
            (Value::Int(127), &[0x7f]),
            (Value::Int(128), &[0xcc, 0x80]),
            (Value::Int(65536), &[0xce, 0, 1, 0, 0]),
            (Value::Int(-1), &[0xff]),
            (Value::Int(-33), &[0xd0, 0xdf]),
            (Value::Int(-129), &[0xd1, 0xff, 0x7f]),
            (Value::Int(i64::MIN), &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            (
                Value::UInt(u64::MAX),
                &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
        ];
        for (v, want) in cases {
            assert_eq!(to_channel_bytes(v).unwrap(), *want, "{v:?}");
        }
    }

    #[test]
    fn containers_ext_and_floats_round_trip() {
        let big: Value = (0..20).map(|i| (format!("k{i}"), Value::from(i))).collect();
        let v = Value::Array(vec![
            Value::Nil,
            Value::Bool(true),
            Value::Float(-0.25),
            Value::Ext(78, b"20260101T00:00:00.000000".to_vec()),
            Value::Ext(1, vec![1, 2, 3, 4]),
            Value::Array((0..17).map(Value::from).collect()),
            big,
            Value::Bytes(vec![0xfe; 300]),
            Value::from("é".repeat(200)),
        ]);
        for packed in [to_channel_bytes(&v).unwrap(), to_event_bytes(&v).unwrap()] {
            assert_eq!(Value::decode(&packed).unwrap(), v);
        }
    }
}
