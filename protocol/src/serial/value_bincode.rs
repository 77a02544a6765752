//! bincode for [`Value`], Brine to Brine only (`serial: bincode`).
//!
//! bincode is not self-describing, so [`Value`]'s own serde impl (which lets
//! the format say what comes next) cannot carry it. A value travels instead
//! as an externally tagged enum, its variant index a bincode varint:
//!
//! | index | variant | then |
//! | ---: | --- | --- |
//! | 0 | `Nil` | nothing |
//! | 1 | `Bool` | `bool` |
//! | 2 | `Int` | `i64` |
//! | 3 | `UInt` | `u64` |
//! | 4 | `Float` | `f64` |
//! | 5 | `Str` | a string |
//! | 6 | `Bytes` | a byte string |
//! | 7 | `Array` | a sequence of values |
//! | 8 | `Map` | a sequence of `(key, value)` pairs, in wire order |
//! | 9 | `Ext` | `i8`, a byte string |
//!
//! A document is [`TAG`] (`0xc1`, the one byte msgpack never uses) and one
//! such value, in bincode's standard configuration. The tag lets either
//! decoder tell the other format apart: a msgpack peer reading this, or a
//! bincode peer reading msgpack, gets [`SerialError::SerializationMismatch`]
//! rather than a wrong value.
//!
//! Decoding is bounded like the msgpack decoder: nesting is checked before
//! each level is entered (so hostile input cannot exhaust the stack through
//! serde's recursion), strings and byte strings are borrowed from the input
//! (a length beyond the input fails before anything is allocated), and
//! sequences grow as items arrive rather than by their announced length.
//! Inside a [`Crypticle`](crate::Crypticle) the payload is HMAC-authenticated
//! before it is decoded, so only a holder of the key can feed this decoder.
//!
//! The decoded value follows the msgpack channel convention, so the choice of
//! serialization never changes what a peer sees: a byte string holding valid
//! UTF-8 is read back as [`Value::Str`] (Salt packs bytes as msgpack str),
//! and integers are canonical ([`Value::UInt`] only above `i64::MAX`).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, SeqAccess, Unexpected, VariantAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple, SerializeTupleVariant};
use serde::{Deserializer, Serialize, Serializer};

use super::typed::{Serialization, bincode_config};
use super::{SerialError, Value};

/// The first byte of every bincode [`Value`] document: `0xc1`, which
/// msgpack never uses.
pub(crate) const TAG: u8 = 0xc1;

const NAME: &str = "Value";
const VARIANTS: &[&str] = &[
    "Nil", "Bool", "Int", "UInt", "Float", "Str", "Bytes", "Array", "Map", "Ext",
];

/// How many items a sequence reserves up front, whatever length it announces.
const HEAD_START: usize = 64;

/// Encodes `value` as a tagged bincode document.
pub(crate) fn encode(value: &Value) -> Result<Vec<u8>, SerialError> {
    let mut out = vec![TAG];
    bincode::serde::encode_into_std_write(Wire(value), &mut out, bincode_config()).map_err(
        |e| SerialError::Serialize {
            format: "bincode",
            message: e.to_string(),
        },
    )?;
    Ok(out)
}

/// Decodes exactly one tagged bincode document, allowing `max_depth` levels
/// of nesting.
pub(crate) fn decode(bytes: &[u8], max_depth: usize) -> Result<Value, SerialError> {
    let body = match bytes.split_first() {
        None => {
            return Err(SerialError::Truncated {
                needed: 1,
                available: 0,
            });
        }
        Some((&TAG, body)) => body,
        Some(_) => {
            return Err(SerialError::SerializationMismatch {
                expected: Serialization::Bincode,
                found: Serialization::Msgpack,
            });
        }
    };
    let limits = Limits {
        max_depth,
        exceeded: Cell::new(false),
    };
    let seed = ValueSeed {
        limits: &limits,
        depth: 0,
    };
    match bincode::serde::seed_decode_from_slice(seed, body, bincode_config()) {
        Ok((value, used)) => match body.len().checked_sub(used) {
            Some(0) | None => Ok(value),
            Some(rest) => Err(SerialError::TrailingBytes(rest)),
        },
        Err(_) if limits.exceeded.get() => Err(SerialError::DepthExceeded { max: max_depth }),
        Err(e) => Err(SerialError::Deserialize {
            format: "bincode",
            message: e.to_string(),
        }),
    }
}

// ---- encoding ----

struct Wire<'a>(&'a Value);

struct RawBytes<'a>(&'a [u8]);

struct Items<'a>(&'a [Value]);

struct Entries<'a>(&'a [(Value, Value)]);

struct Pair<'a>(&'a Value, &'a Value);

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Nil => s.serialize_unit_variant(NAME, 0, "Nil"),
            Value::Bool(b) => s.serialize_newtype_variant(NAME, 1, "Bool", b),
            Value::Int(i) => s.serialize_newtype_variant(NAME, 2, "Int", i),
            Value::UInt(u) => s.serialize_newtype_variant(NAME, 3, "UInt", u),
            Value::Float(f) => s.serialize_newtype_variant(NAME, 4, "Float", f),
            Value::Str(text) => s.serialize_newtype_variant(NAME, 5, "Str", text.as_str()),
            Value::Bytes(bytes) => s.serialize_newtype_variant(NAME, 6, "Bytes", &RawBytes(bytes)),
            Value::Array(items) => s.serialize_newtype_variant(NAME, 7, "Array", &Items(items)),
            Value::Map(entries) => s.serialize_newtype_variant(NAME, 8, "Map", &Entries(entries)),
            Value::Ext(ty, data) => {
                let mut ext = s.serialize_tuple_variant(NAME, 9, "Ext", 2)?;
                ext.serialize_field(ty)?;
                ext.serialize_field(&RawBytes(data))?;
                ext.end()
            }
        }
    }
}

impl Serialize for RawBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl Serialize for Items<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            seq.serialize_element(&Wire(item))?;
        }
        seq.end()
    }
}

impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (k, v) in self.0 {
            seq.serialize_element(&Pair(k, v))?;
        }
        seq.end()
    }
}

impl Serialize for Pair<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut pair = s.serialize_tuple(2)?;
        pair.serialize_element(&Wire(self.0))?;
        pair.serialize_element(&Wire(self.1))?;
        pair.end()
    }
}

// ---- decoding ----

/// The depth limit, and whether decoding stopped on it (serde's error type
/// is the format's, so the typed reason travels beside it).
struct Limits {
    max_depth: usize,
    exceeded: Cell<bool>,
}

/// Decodes one value at `depth` (the number of containers around it).
#[derive(Clone, Copy)]
struct ValueSeed<'a> {
    limits: &'a Limits,
    depth: usize,
}

impl<'a> ValueSeed<'a> {
    /// The seed for the items of a container at this depth, or an error
    /// once the limit is reached (checked before any recursion).
    fn enter<E: de::Error>(self) -> Result<ValueSeed<'a>, E> {
        if self.depth >= self.limits.max_depth {
            self.limits.exceeded.set(true);
            return Err(E::custom(format_args!(
                "nesting deeper than {} levels",
                self.limits.max_depth
            )));
        }
        Ok(ValueSeed {
            limits: self.limits,
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_enum(NAME, VARIANTS, self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Brine bincode value")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (index, variant) = data.variant::<u32>()?;
        match index {
            0 => variant.unit_variant().map(|()| Value::Nil),
            1 => variant.newtype_variant().map(Value::Bool),
            2 => variant.newtype_variant().map(Value::Int),
            3 => variant.newtype_variant::<u64>().map(Value::from),
            4 => variant.newtype_variant().map(Value::Float),
            5 => variant.newtype_variant_seed(Text).map(Value::Str),
            6 => variant
                .newtype_variant_seed(Blob)
                .map(|bytes| match String::from_utf8(bytes) {
                    Ok(text) => Value::Str(text),
                    Err(e) => Value::Bytes(e.into_bytes()),
                }),
            7 => {
                let inner = self.enter()?;
                variant
                    .newtype_variant_seed(ItemsSeed(inner))
                    .map(Value::Array)
            }
            8 => {
                let inner = self.enter()?;
                variant
                    .newtype_variant_seed(EntriesSeed(inner))
                    .map(Value::Map)
            }
            9 => variant
                .tuple_variant(2, ExtVisitor)
                .map(|(ty, data)| Value::Ext(ty, data)),
            other => Err(de::Error::invalid_value(
                Unexpected::Unsigned(u64::from(other)),
                &"a variant index up to 9",
            )),
        }
    }
}

/// A string, borrowed from the input when the format allows.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Text {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

/// A byte string, borrowed from the input when the format allows.
struct Blob;

impl<'de> DeserializeSeed<'de> for Blob {
    type Value = Vec<u8>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_bytes(self)
    }
}

impl Visitor<'_> for Blob {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
}

/// The items of an array; the seed is already one level in.
struct ItemsSeed<'a>(ValueSeed<'a>);

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = Vec<Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Value>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of values")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(HEAD_START));
        while let Some(item) = seq.next_element_seed(self.0)? {
            items.push(item);
        }
        Ok(items)
    }
}

/// The entries of a map; the seed is already one level in.
struct EntriesSeed<'a>(ValueSeed<'a>);

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_> {
    type Value = Vec<(Value, Value)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_> {
    type Value = Vec<(Value, Value)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of key-value pairs")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(HEAD_START));
        while let Some(entry) = seq.next_element_seed(PairSeed(self.0))? {
            entries.push(entry);
        }
        Ok(entries)
    }
}

/// One `(key, value)` pair of a map.
struct PairSeed<'a>(ValueSeed<'a>);

impl<'de> DeserializeSeed<'de> for PairSeed<'_> {
    type Value = (Value, Value);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_tuple(2, self)
    }
}

impl<'de> Visitor<'de> for PairSeed<'_> {
    type Value = (Value, Value);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key-value pair")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let key = seq
            .next_element_seed(self.0)?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let value = seq
            .next_element_seed(self.0)?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok((key, value))
    }
}

/// The `(type, data)` of an ext item.
struct ExtVisitor;

impl<'de> Visitor<'de> for ExtVisitor {
    type Value = (i8, Vec<u8>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an ext type and its data")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let ty = seq
            .next_element::<i8>()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let data = seq
            .next_element_seed(Blob)?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok((ty, data))
    }
}

#[cfg(test)]
mod tests {
    use super::super::DEFAULT_MAX_DEPTH;
    use super::*;

    /// One of every kind, nested, with non-text keys.
    fn every_kind() -> Value {
        Value::Map(vec![
            (Value::from("nil"), Value::Nil),
            (Value::from("t"), Value::Bool(true)),
            (Value::from("f"), Value::Bool(false)),
            (Value::from("neg"), Value::Int(i64::MIN)),
            (Value::from("pos"), Value::Int(i64::MAX)),
            (Value::from("big"), Value::UInt(u64::MAX)),
            (Value::from("float"), Value::Float(-2.5e-300)),
            (Value::from("text"), Value::from("héllo")),
            (Value::from("empty"), Value::from("")),
            (Value::from("raw"), Value::Bytes(vec![0xff, 0x00, 0xc1])),
            (Value::Int(7), Value::from("int key")),
            (Value::Bytes(vec![0xfe]), Value::from("byte key")),
            (Value::Nil, Value::Array(vec![])),
            (
                Value::from("dt"),
                Value::Ext(78, b"20261125T20:10:59.142494".to_vec()),
            ),
            (Value::from("ext-"), Value::Ext(-1, vec![])),
            (
                Value::from("arr"),
                Value::Array(vec![
                    Value::Int(1),
                    Value::Array(vec![Value::map()]),
                    Value::Map(vec![(Value::from("k"), Value::Array(vec![Value::Nil]))]),
                ]),
            ),
            (Value::from("dup"), Value::Int(1)),
            (Value::from("dup"), Value::Int(2)),
        ])
    }

    #[test]
    fn every_kind_round_trips() {
        let v = every_kind();
        let bytes = encode(&v).unwrap();
        assert_eq!(bytes[0], TAG);
        assert_eq!(decode(&bytes, DEFAULT_MAX_DEPTH).unwrap(), v);
        for scalar in [
            Value::Nil,
            Value::Bool(true),
            Value::Int(-1),
            Value::UInt(u64::MAX),
            Value::Float(f64::INFINITY),
            Value::from("x"),
            Value::Bytes(vec![0x80]),
            Value::Ext(79, vec![1, 2]),
        ] {
            let bytes = encode(&scalar).unwrap();
            assert_eq!(decode(&bytes, DEFAULT_MAX_DEPTH).unwrap(), scalar);
        }
        let nan = decode(&encode(&Value::Float(f64::NAN)).unwrap(), 1).unwrap();
        assert!(nan.as_f64().is_some_and(f64::is_nan));
    }

    #[test]
    fn decoded_values_match_the_msgpack_channel_convention() {
        // text-like bytes come back as text and small UInts as Int, as
        // they do through Salt's channel packing
        let v = Value::Array(vec![
            Value::Bytes(b"utf8".to_vec()),
            Value::Bytes(vec![0xff]),
            Value::UInt(5),
        ]);
        let via_msgpack = Value::decode(&v.to_channel_bytes().unwrap()).unwrap();
        let via_bincode = decode(&encode(&v).unwrap(), DEFAULT_MAX_DEPTH).unwrap();
        assert_eq!(via_bincode, via_msgpack);
        assert_eq!(
            via_bincode,
            Value::Array(vec![
                Value::from("utf8"),
                Value::Bytes(vec![0xff]),
                Value::Int(5)
            ])
        );
    }

    fn nested(levels: usize) -> Value {
        let mut v = Value::Nil;
        for _ in 0..levels {
            v = Value::Array(vec![v]);
        }
        v
    }

    #[test]
    fn depth_is_bounded_like_msgpack() {
        let at_limit = encode(&nested(DEFAULT_MAX_DEPTH)).unwrap();
        assert!(decode(&at_limit, DEFAULT_MAX_DEPTH).is_ok());
        assert!(Value::decode(&nested(DEFAULT_MAX_DEPTH).to_channel_bytes().unwrap()).is_ok());
        let over = encode(&nested(DEFAULT_MAX_DEPTH + 1)).unwrap();
        assert!(matches!(
            decode(&over, DEFAULT_MAX_DEPTH),
            Err(SerialError::DepthExceeded {
                max: DEFAULT_MAX_DEPTH
            })
        ));
        // maps count too
        let map = Value::Map(vec![(Value::Nil, nested(2))]);
        assert!(decode(&encode(&map).unwrap(), 3).is_ok());
        assert!(matches!(
            decode(&encode(&map).unwrap(), 2),
            Err(SerialError::DepthExceeded { max: 2 })
        ));
    }

    #[test]
    fn hostile_depth_stops_at_the_limit_without_recursing_further() {
        // a million nested one-item arrays: variant 7, length 1, repeated;
        // deep enough to overflow any stack if decoding recursed through it
        let mut evil = vec![TAG];
        for _ in 0..1_000_000 {
            evil.extend_from_slice(&[7, 1]);
        }
        evil.push(0);
        assert!(matches!(
            decode(&evil, DEFAULT_MAX_DEPTH),
            Err(SerialError::DepthExceeded { .. })
        ));
    }

    #[test]
    fn lengths_beyond_the_input_fail_before_allocating() {
        // a string, a byte string and an array each claiming u64::MAX items
        for variant in [5u8, 6, 7, 8] {
            let mut evil = vec![TAG, variant, 0xfd];
            evil.extend_from_slice(&[0xff; 8]);
            assert!(
                matches!(
                    decode(&evil, DEFAULT_MAX_DEPTH),
                    Err(SerialError::Deserialize {
                        format: "bincode",
                        ..
                    })
                ),
                "variant {variant}"
            );
        }
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(
            decode(&[], DEFAULT_MAX_DEPTH),
            Err(SerialError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&[TAG, 10], DEFAULT_MAX_DEPTH),
            Err(SerialError::Deserialize { .. })
        ));
        assert!(matches!(
            decode(&[TAG, 0, 0], DEFAULT_MAX_DEPTH),
            Err(SerialError::TrailingBytes(1))
        ));
        assert!(matches!(
            decode(&[TAG, 5, 2, 0xff, 0xfe], DEFAULT_MAX_DEPTH),
            Err(SerialError::Deserialize { .. })
        ));
        let mut state = 0x5eed_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5000 {
            let len = usize::try_from(next() % 40).unwrap();
            let mut bytes = vec![TAG];
            bytes.extend((0..len).map(|_| next().to_le_bytes()[0] % 12));
            let _ = decode(&bytes, DEFAULT_MAX_DEPTH);
        }
    }

    #[test]
    fn msgpack_input_is_named_as_such() {
        for v in [Value::Nil, Value::Int(0), every_kind()] {
            let msgpack = v.to_channel_bytes().unwrap();
            assert!(matches!(
                decode(&msgpack, DEFAULT_MAX_DEPTH),
                Err(SerialError::SerializationMismatch {
                    expected: Serialization::Bincode,
                    found: Serialization::Msgpack
                })
            ));
        }
    }
}
