use super::{SerialError, decode, encode};

/// A msgpack item as Salt sees it: Python's `None`, `bool`, `int`, `float`,
/// `str`, `bytes`, `list`, `dict` and ext types.
///
/// Maps keep their keys in wire order and accept any key type, as Salt's
/// decoder does (`strict_map_key=False`). Integers are stored canonically:
/// [`Value::Int`] for everything that fits an `i64` and [`Value::UInt`] only
/// for values above `i64::MAX`; the decoder and the `From` impls keep to this,
/// so derived equality works. Build a `UInt` by hand only for such values.
///
/// Text versus bytes: Salt turns every byte string that is valid UTF-8 into
/// text after decoding. [`Value::as_str`] and [`Value::get`] follow that rule
/// and accept [`Value::Bytes`] holding valid UTF-8 as text.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// msgpack nil (Python `None`).
    #[default]
    Nil,
    /// msgpack true/false.
    Bool(bool),
    /// Any integer in `i64` range.
    Int(i64),
    /// An integer above `i64::MAX` (up to `u64::MAX`).
    UInt(u64),
    /// A float (float32 on the wire is widened; Salt always writes float64).
    Float(f64),
    /// A str-family item holding valid UTF-8.
    Str(String),
    /// A `bin` item, or a str-family item that is not valid UTF-8.
    Bytes(Vec<u8>),
    /// An array (Python list or tuple).
    Array(Vec<Value>),
    /// A map with keys in wire order.
    Map(Vec<(Value, Value)>),
    /// An ext item: type code and payload (Salt uses 78 for datetimes, 79 for constants).
    Ext(i8, Vec<u8>),
}

impl Value {
    /// Decodes exactly one msgpack document, with the default depth limit.
    ///
    /// # Errors
    /// [`SerialError`] on truncated or malformed input, nesting deeper than
    /// [`DEFAULT_MAX_DEPTH`](super::DEFAULT_MAX_DEPTH), or trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Value, SerialError> {
        decode::from_slice(bytes)
    }

    /// Packs with Salt's channel convention (bytes as msgpack str); see [`to_channel_bytes`](super::to_channel_bytes).
    ///
    /// # Errors
    /// [`SerialError::TooLong`] if an item exceeds msgpack's 32-bit lengths.
    pub fn to_channel_bytes(&self) -> Result<Vec<u8>, SerialError> {
        encode::to_channel_bytes(self)
    }

    /// Packs with Salt's event convention (bytes as msgpack bin); see [`to_event_bytes`](super::to_event_bytes).
    ///
    /// # Errors
    /// [`SerialError::TooLong`] if an item exceeds msgpack's 32-bit lengths.
    pub fn to_event_bytes(&self) -> Result<Vec<u8>, SerialError> {
        encode::to_event_bytes(self)
    }

    /// [`to_event_bytes`](Self::to_event_bytes) of a map with the value
    /// under `key` packed as nil, without copying the map.
    ///
    /// # Errors
    /// [`SerialError::TooLong`] if an item exceeds msgpack's 32-bit lengths.
    pub fn to_event_bytes_with_nil(&self, key: &str) -> Result<Vec<u8>, SerialError> {
        encode::to_event_bytes_with_nil(self, key)
    }

    /// An empty map.
    pub fn map() -> Value {
        Value::Map(Vec::new())
    }

    /// Whether this is [`Value::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// The text of a [`Value::Str`], or of a [`Value::Bytes`] that is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The raw bytes of a [`Value::Str`] or [`Value::Bytes`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s.as_bytes()),
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Consumes a [`Value::Str`] or [`Value::Bytes`] into its bytes.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Value::Str(s) => Some(s.into_bytes()),
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The integer, if it is one and fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    /// The integer, if it is one and is not negative.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Int(i) => u64::try_from(i).ok(),
            Value::UInt(u) => Some(u),
            _ => None,
        }
    }

    /// The float of a [`Value::Float`].
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    /// The boolean of a [`Value::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The items of a [`Value::Array`].
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The entries of a [`Value::Map`], in wire order.
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// Whether this is a text key equal to `key` (a str, or bytes with the same UTF-8).
    pub fn is_key(&self, key: &str) -> bool {
        self.as_bytes() == Some(key.as_bytes())
    }

    /// Looks `key` up in a map (the first matching entry); `None` for non-maps.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.is_key(key))
            .map(|(_, v)| v)
    }

    /// Like [`Value::get`], mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        match self {
            Value::Map(entries) => entries
                .iter_mut()
                .find(|(k, _)| k.is_key(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Whether a map has `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` in a map: replaces the value in place if the key exists,
    /// appends otherwise, and returns the old value. A non-map is left
    /// untouched and the new value is handed back.
    pub fn insert(&mut self, key: &str, value: impl Into<Value>) -> Option<Value> {
        let value = value.into();
        match self {
            Value::Map(entries) => {
                if let Some((_, slot)) = entries.iter_mut().find(|(k, _)| k.is_key(key)) {
                    Some(std::mem::replace(slot, value))
                } else {
                    entries.push((Value::from(key), value));
                    None
                }
            }
            _ => Some(value),
        }
    }

    /// Removes `key` from a map (keeping the order of the rest) and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        match self {
            Value::Map(entries) => {
                let at = entries.iter().position(|(k, _)| k.is_key(key))?;
                Some(entries.remove(at).1)
            }
            _ => None,
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

macro_rules! from_signed {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
from_signed!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(v),
        }
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::Array(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Nil, Into::into)
    }
}

/// Collects `(key, value)` pairs into a [`Value::Map`], in order.
impl<K: Into<Value>, V: Into<Value>> FromIterator<(K, V)> for Value {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Value::Map(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        [
            ("cmd", Value::from("_return")),
            ("id", Value::from("m1")),
            ("n", Value::from(3)),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn get_matches_text_and_byte_keys() {
        let v = Value::Map(vec![
            (Value::Bytes(b"tok".to_vec()), Value::from(1)),
            (Value::from("id"), Value::from("m")),
        ]);
        assert_eq!(v.get("tok"), Some(&Value::Int(1)));
        assert_eq!(v.get("id").and_then(Value::as_str), Some("m"));
        assert!(v.get("nope").is_none());
        assert!(Value::Nil.get("id").is_none());
    }

    #[test]
    fn insert_replaces_in_place_and_appends() {
        let mut v = sample();
        assert_eq!(v.insert("id", "m2"), Some(Value::from("m1")));
        assert_eq!(v.insert("jid", "req"), None);
        let keys: Vec<_> = v
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str().unwrap())
            .collect();
        assert_eq!(keys, ["cmd", "id", "n", "jid"]);
        let mut not_map = Value::from(1);
        assert_eq!(not_map.insert("k", 2), Some(Value::Int(2)));
    }

    #[test]
    fn remove_keeps_order() {
        let mut v = sample();
        assert_eq!(v.remove("id"), Some(Value::from("m1")));
        assert_eq!(v.remove("id"), None);
        assert_eq!(
            v,
            [("cmd", Value::from("_return")), ("n", Value::from(3))]
                .into_iter()
                .collect()
        );
    }

    #[test]
    fn integers_are_canonical() {
        assert_eq!(Value::from(5u64), Value::Int(5));
        assert_eq!(Value::from(u64::MAX), Value::UInt(u64::MAX));
        assert_eq!(Value::from(1u64 << 63), Value::UInt(1 << 63));
        assert_eq!(Value::Int(-1).as_u64(), None);
        assert_eq!(Value::UInt(u64::MAX).as_i64(), None);
        assert_eq!(Value::UInt(u64::MAX).as_u64(), Some(u64::MAX));
        assert_eq!(Value::Int(7).as_u64(), Some(7));
    }

    #[test]
    fn text_and_bytes_accessors() {
        assert_eq!(Value::Bytes(b"abc".to_vec()).as_str(), Some("abc"));
        assert_eq!(Value::Bytes(vec![0xff]).as_str(), None);
        assert_eq!(Value::from("x").as_bytes(), Some(&b"x"[..]));
        assert_eq!(Value::from(1).as_bytes(), None);
        assert_eq!(Value::from(Some("a")), Value::from("a"));
        assert_eq!(Value::from(None::<&str>), Value::Nil);
    }
}
