//! serde for [`Value`], so typed structs can hold arbitrary Salt data
//! (job arguments, return values). Self-describing formats only (msgpack);
//! bincode cannot carry a `Value`.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Value;

/// rmp-serde's name for an ext item carried as a newtype struct of `(i8, bytes)`.
const EXT_STRUCT: &str = "_ExtStruct";

struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::UInt(u) => serializer.serialize_u64(*u),
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Str(s) => serializer.serialize_str(s),
            Value::Bytes(b) => serializer.serialize_bytes(b),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Value::Ext(ty, data) => {
                serializer.serialize_newtype_struct(EXT_STRUCT, &(ty, RawBytes(data)))
            }
        }
    }
}

/// Accepts a byte string however the format offers it.
struct ByteVisitor;

impl<'de> Visitor<'de> for ByteVisitor {
    type Value = Vec<u8>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        Ok(v.as_bytes().to_vec())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}

struct OwnedBytes(Vec<u8>);

impl<'de> Deserialize<'de> for OwnedBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ByteVisitor).map(OwnedBytes)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any msgpack value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        // never trust the size hint for more than a small head start
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        // rmp-serde hands ext items over as a newtype wrapping (type, bytes)
        let (ty, OwnedBytes(data)) = <(i8, OwnedBytes)>::deserialize(d)?;
        Ok(Value::Ext(ty, data))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode, encode, to_event_bytes};
    use super::*;

    fn rich() -> Value {
        Value::Map(vec![
            (Value::from("nil"), Value::Nil),
            (Value::from("b"), Value::Bool(false)),
            (Value::from("neg"), Value::Int(-70000)),
            (Value::from("big"), Value::UInt(u64::MAX)),
            (Value::from("f"), Value::Float(2.5)),
            (Value::from("s"), Value::from("text")),
            (Value::from("raw"), Value::Bytes(vec![0xff, 0xfe])),
            (Value::Int(7), Value::from("int key")),
            (
                Value::from("dt"),
                Value::Ext(78, b"20261125T20:10:59.142494".to_vec()),
            ),
            (
                Value::from("arr"),
                Value::Array(vec![Value::Int(1), Value::Array(vec![])]),
            ),
        ])
    }

    #[test]
    fn value_survives_rmp_serde_both_ways() {
        let v = rich();
        // our encoder, rmp-serde decoder
        let ours = to_event_bytes(&v).unwrap();
        assert_eq!(decode::<Value>(&ours).unwrap(), v);
        // rmp-serde encoder, our decoder: identical bytes
        let theirs = encode(&v).unwrap();
        assert_eq!(Value::decode(&theirs).unwrap(), v);
        assert_eq!(theirs, ours);
    }

    #[test]
    fn non_utf8_str_deserializes_as_bytes() {
        let blob = [0xa2, 0xff, 0x00];
        assert_eq!(
            decode::<Value>(&blob).unwrap(),
            Value::Bytes(vec![0xff, 0x00])
        );
    }
}
