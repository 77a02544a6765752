//! serde interop: typed structs to and from msgpack (Salt-compatible) or bincode.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::decode::{DEFAULT_MAX_DEPTH, validate};
use super::encode::to_channel_bytes;
use super::{SerialError, Value, value_bincode};

/// Cap on what bincode may allocate while decoding one message (64 MiB,
/// the transports' default frame limit).
pub const BINCODE_LIMIT: usize = 64 * 1024 * 1024;

fn msgpack_ser(err: rmp_serde::encode::Error) -> SerialError {
    SerialError::Serialize {
        format: "msgpack",
        message: err.to_string(),
    }
}

fn msgpack_de(err: rmp_serde::decode::Error) -> SerialError {
    SerialError::Deserialize {
        format: "msgpack",
        message: err.to_string(),
    }
}

/// Serializes `value` to msgpack with field names (structs become maps, as
/// Salt's dicts). Byte fields marked `#[serde(with = "serde_bytes")]` become
/// msgpack bin (Salt's event convention); use [`encode_channel`] for envelopes.
///
/// # Errors
/// [`SerialError::Serialize`] if the value cannot be represented (e.g. a map
/// with non-serializable keys).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, SerialError> {
    rmp_serde::to_vec_named(value).map_err(msgpack_ser)
}

/// Serializes `value` with Salt's channel convention: as [`encode`], then
/// re-packed so byte strings become msgpack str (`use_bin_type=False`).
///
/// # Errors
/// As [`encode`].
pub fn encode_channel<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, SerialError> {
    to_channel_bytes(&to_value(value)?)
}

/// Deserializes msgpack into `T`. The input is first checked by the bounded
/// decoder (depth, lengths, trailing bytes), so garbage fails fast. Text
/// fields accept str items; byte fields (`serde_bytes`) accept both bin and
/// str items, including non-UTF-8 str as Salt sends them.
///
/// # Errors
/// [`SerialError`] for malformed input, or [`SerialError::Deserialize`]
/// when well-formed input does not match `T`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SerialError> {
    validate(bytes, DEFAULT_MAX_DEPTH)?;
    rmp_serde::from_slice(bytes).map_err(msgpack_de)
}

/// Converts a serializable value into a [`Value`].
///
/// # Errors
/// As [`encode`].
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, SerialError> {
    Value::decode(&encode(value)?)
}

/// Converts a [`Value`] into `T` (bytes are offered as str when valid UTF-8,
/// so both `String` and `serde_bytes` fields accept them).
///
/// # Errors
/// As [`decode`].
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, SerialError> {
    decode(&to_channel_bytes(value)?)
}

/// How Brine serializes typed messages, chosen by the `serial` config key.
///
/// Msgpack is the default and the only choice a stock Salt peer
/// understands. Bincode is compact for typed structs but Brine-to-Brine
/// only (for [`Value`] trees it is a little larger than msgpack, whose
/// headers fold type and length into one byte);
/// both peers must agree (the minion announces a non-default choice in its
/// `_auth` load and the master refuses a mismatch).
///
/// [`encode`](Self::encode) / [`decode`](Self::decode) carry typed structs
/// (bincode cannot carry a [`Value`] field that way: it is not
/// self-describing). [`encode_value`](Self::encode_value) /
/// [`decode_value`](Self::decode_value) carry a [`Value`] — what travels
/// inside a [`Crypticle`](crate::Crypticle) — in a form each peer can tell
/// apart from the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Serialization {
    /// msgpack with field names (`msgpack`).
    #[default]
    Msgpack,
    /// bincode's standard configuration (`bincode`).
    Bincode,
}

impl Serialization {
    /// The config key that selects it.
    pub const CONFIG_KEY: &'static str = "serial";

    /// Every choice, in the order they are documented.
    pub const ALL: [Serialization; 2] = [Serialization::Msgpack, Serialization::Bincode];

    /// The config name: `msgpack` or `bincode`.
    pub fn name(self) -> &'static str {
        match self {
            Serialization::Msgpack => "msgpack",
            Serialization::Bincode => "bincode",
        }
    }

    /// Serializes `value`.
    ///
    /// # Errors
    /// [`SerialError::Serialize`] if the value cannot be represented.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, SerialError> {
        match self {
            Serialization::Msgpack => encode(value),
            Serialization::Bincode => bincode::serde::encode_to_vec(value, bincode_config())
                .map_err(|e| SerialError::Serialize {
                    format: "bincode",
                    message: e.to_string(),
                }),
        }
    }

    /// Deserializes `bytes`, which must be consumed exactly.
    ///
    /// # Errors
    /// [`SerialError`] for malformed or trailing input, or input that does not match `T`.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, SerialError> {
        match self {
            Serialization::Msgpack => decode(bytes),
            Serialization::Bincode => {
                let (value, used) =
                    bincode::serde::decode_from_slice::<T, _>(bytes, bincode_config()).map_err(
                        |e| SerialError::Deserialize {
                            format: "bincode",
                            message: e.to_string(),
                        },
                    )?;
                match bytes.len().checked_sub(used) {
                    Some(0) | None => Ok(value),
                    Some(rest) => Err(SerialError::TrailingBytes(rest)),
                }
            }
        }
    }

    /// Packs a [`Value`]: msgpack with Salt's channel convention
    /// ([`to_channel_bytes`]), or Brine's tagged bincode form (see
    /// [`crate::serial`]'s bincode section), which starts with `0xc1`, the
    /// byte msgpack never uses.
    ///
    /// # Errors
    /// [`SerialError::TooLong`] (msgpack) or [`SerialError::Serialize`] (bincode).
    pub fn encode_value(self, value: &Value) -> Result<Vec<u8>, SerialError> {
        match self {
            Serialization::Msgpack => to_channel_bytes(value),
            Serialization::Bincode => value_bincode::encode(value),
        }
    }

    /// Unpacks exactly one [`Value`] packed by [`encode_value`](Self::encode_value)
    /// with the same choice, bounding nesting at [`DEFAULT_MAX_DEPTH`] either way.
    ///
    /// # Errors
    /// [`SerialError::SerializationMismatch`] when `bytes` were packed with
    /// the other choice (the peers' `serial` settings differ); otherwise the
    /// decoder's [`SerialError`] for truncated, malformed or too deeply
    /// nested input or trailing bytes.
    pub fn decode_value(self, bytes: &[u8]) -> Result<Value, SerialError> {
        match self {
            Serialization::Msgpack if bytes.first() == Some(&value_bincode::TAG) => {
                Err(SerialError::SerializationMismatch {
                    expected: Serialization::Msgpack,
                    found: Serialization::Bincode,
                })
            }
            Serialization::Msgpack => Value::decode(bytes),
            Serialization::Bincode => value_bincode::decode(bytes, DEFAULT_MAX_DEPTH),
        }
    }
}

pub(super) fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<BINCODE_LIMIT>()
}

impl fmt::Display for Serialization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Serialization {
    type Err = SerialError;

    /// Parses a config value; surrounding whitespace and case are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Serialization::ALL
            .into_iter()
            .find(|choice| choice.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| SerialError::UnknownSerialization { name: s.to_owned() })
    }
}

impl Serialize for Serialization {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Serialization {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Serialization;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"msgpack\" or \"bincode\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Serialization, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Load {
        cmd: String,
        id: String,
        #[serde(with = "serde_bytes")]
        tok: Vec<u8>,
        ts: u64,
        jid: Option<String>,
        ret: Value,
    }

    fn load() -> Load {
        Load {
            cmd: "_return".into(),
            id: "m1".into(),
            tok: vec![0xff, 0x00, 0x80],
            ts: 1_764_000_000,
            jid: Some("20261125201059974475".into()),
            ret: [("a", Value::from(1)), ("b", Value::Bytes(vec![0xfe]))]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn typed_msgpack_uses_named_maps() {
        let bytes = encode(&load()).unwrap();
        let v = Value::decode(&bytes).unwrap();
        assert_eq!(v.get("cmd").and_then(Value::as_str), Some("_return"));
        assert_eq!(v.get("tok"), Some(&Value::Bytes(vec![0xff, 0x00, 0x80])));
        assert_eq!(decode::<Load>(&bytes).unwrap(), load());
    }

    #[test]
    fn channel_encoding_packs_bytes_as_str_and_still_decodes() {
        let bytes = encode_channel(&load()).unwrap();
        // the tok field's bytes are now a str-family item
        let v = Value::decode(&bytes).unwrap();
        assert_eq!(v.get("tok"), Some(&Value::Bytes(vec![0xff, 0x00, 0x80])));
        assert!(!bytes.windows(2).any(|w| w == [0xc4, 0x03]));
        assert_eq!(decode::<Load>(&bytes).unwrap(), load());
        assert_eq!(from_value::<Load>(&v).unwrap(), load());
        assert_eq!(to_value(&load()).unwrap(), v);
    }

    #[test]
    fn decode_rejects_garbage_and_mismatches() {
        assert!(decode::<Load>(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(matches!(
            decode::<Load>(&[0x80, 0xc0]),
            Err(SerialError::TrailingBytes(1))
        ));
        assert!(matches!(
            decode::<Load>(&[0x80]),
            Err(SerialError::Deserialize { .. })
        ));
        assert!(decode::<u8>(&vec![0x91; 1000]).is_err());
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Plain {
        jid: String,
        minions: Vec<String>,
        #[serde(with = "serde_bytes")]
        sig: Vec<u8>,
        n: i64,
    }

    #[test]
    fn both_serializations_round_trip() {
        let p = Plain {
            jid: "20261125201059974475".into(),
            minions: vec!["a".into(), "b".into()],
            sig: vec![1, 2, 255],
            n: -5,
        };
        for s in Serialization::ALL {
            let bytes = s.encode(&p).unwrap();
            assert_eq!(s.decode::<Plain>(&bytes).unwrap(), p, "{s}");
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(
                s.decode::<Plain>(&longer).is_err(),
                "{s} accepted trailing bytes"
            );
            assert!(s.decode::<Plain>(&bytes[..bytes.len() - 1]).is_err(), "{s}");
        }
    }

    #[test]
    fn bincode_refuses_absurd_lengths() {
        // a varint length of u64::MAX for the first string
        let evil = [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(Serialization::Bincode.decode::<Plain>(&evil).is_err());
    }

    #[test]
    fn random_bytes_into_typed_decoders_never_panic() {
        let mut state = 0x0bad_5eed_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5000 {
            let len = usize::try_from(next() % 48).unwrap();
            let bytes: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
            for s in Serialization::ALL {
                let _ = s.decode::<Plain>(&bytes);
                let _ = s.decode::<Vec<String>>(&bytes);
            }
            let _ = decode::<Load>(&bytes);
            let _ = decode::<Value>(&bytes);
        }
    }

    #[test]
    fn config_names() {
        assert_eq!(Serialization::default(), Serialization::Msgpack);
        assert_eq!(
            "msgpack".parse::<Serialization>().unwrap(),
            Serialization::Msgpack
        );
        assert_eq!(
            " Bincode ".parse::<Serialization>().unwrap(),
            Serialization::Bincode
        );
        let err = "json".parse::<Serialization>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown serialization \"json\" for the `serial` key (available: msgpack, bincode)"
        );
        assert_eq!(Serialization::CONFIG_KEY, "serial");
        // serde (config files) goes through the same parser
        let bytes = encode("bincode").unwrap();
        assert_eq!(
            decode::<Serialization>(&bytes).unwrap(),
            Serialization::Bincode
        );
        let bytes = encode("yaml").unwrap();
        let err = decode::<Serialization>(&bytes).unwrap_err().to_string();
        assert!(err.contains("unknown serialization \"yaml\""), "{err}");
    }
}
