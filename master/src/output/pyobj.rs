//! A [`Value`] as Salt's Python holds it, and Python's ordering of dict keys.
//!
//! The salt CLI reads returns with `salt.payload.loads`: bytes that are
//! valid UTF-8 become `str`, ext items other than 78 (datetime) and 79
//! (constants) become their payload bytes, and a map is a `dict`, so a key
//! that equals an earlier one (`1`, `1.0` and `True` are one key) keeps the
//! first key and takes the last value. [`normalize`] applies those rules
//! once, so the outputters only see what Salt's outputters see.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use brine_protocol::Value;

/// The value Salt's outputters get for `value` (see the module docs).
pub(crate) fn normalize(value: &Value) -> Value {
    match value {
        Value::Bytes(b) | Value::Ext(_, b) => match std::str::from_utf8(b) {
            Ok(s) => Value::Str(s.to_owned()),
            Err(_) => Value::Bytes(b.clone()),
        },
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Map(entries) => {
            let mut out: Vec<(Value, Value)> = Vec::with_capacity(entries.len());
            let mut seen: HashMap<HashKey, usize> = HashMap::with_capacity(entries.len());
            for (i, (k, v)) in entries.iter().enumerate() {
                let k = normalize(k);
                let v = normalize(v);
                match seen.entry(HashKey::of(&k, i)) {
                    Entry::Occupied(slot) => {
                        if let Some(entry) = out.get_mut(*slot.get()) {
                            entry.1 = v;
                        }
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(out.len());
                        out.push((k, v));
                    }
                }
            }
            Value::Map(out)
        }
        other => other.clone(),
    }
}

/// Python's dict-key identity: equal keys hash alike across int, float and bool.
#[derive(Debug, PartialEq, Eq, Hash)]
enum HashKey {
    Nil,
    Int(i128),
    Float(u64),
    Str(String),
    Bytes(Vec<u8>),
    /// Keys Python would never merge (NaN, unhashable containers).
    Unique(usize),
}

impl HashKey {
    fn of(key: &Value, position: usize) -> HashKey {
        match key {
            Value::Nil => HashKey::Nil,
            Value::Bool(b) => HashKey::Int(i128::from(*b)),
            Value::Int(i) => HashKey::Int(i128::from(*i)),
            Value::UInt(u) => HashKey::Int(i128::from(*u)),
            Value::Float(f) if f.is_nan() => HashKey::Unique(position),
            Value::Float(f) => match float_as_int(*f) {
                Some(i) => HashKey::Int(i),
                None => HashKey::Float(f.to_bits()),
            },
            Value::Str(s) => HashKey::Str(s.clone()),
            Value::Bytes(b) => HashKey::Bytes(b.clone()),
            Value::Array(_) | Value::Map(_) | Value::Ext(..) => HashKey::Unique(position),
        }
    }
}

/// The integer a float equals, if it is whole and within `i128`.
fn float_as_int(f: f64) -> Option<i128> {
    // 2^127 as f64; every whole float below it converts exactly
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if f.fract() == 0.0 && f.abs() < LIMIT {
        #[allow(clippy::cast_possible_truncation)] // whole and in range, checked above
        Some(f as i128)
    } else {
        None
    }
}

/// Groups of key types Python can compare with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum KeyClass {
    Number,
    Str,
    Bytes,
    None,
    Container,
}

impl KeyClass {
    pub(crate) fn of(value: &Value) -> KeyClass {
        match value {
            Value::Bool(_) | Value::Int(_) | Value::UInt(_) | Value::Float(_) => KeyClass::Number,
            Value::Str(_) => KeyClass::Str,
            Value::Bytes(_) | Value::Ext(..) => KeyClass::Bytes,
            Value::Nil => KeyClass::None,
            Value::Array(_) | Value::Map(_) => KeyClass::Container,
        }
    }

    /// Python's type name, which `pprint` falls back to for keys it cannot compare.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            KeyClass::Number => "<class 'int'>",
            KeyClass::Str => "<class 'str'>",
            KeyClass::Bytes => "<class 'bytes'>",
            KeyClass::None => "<class 'NoneType'>",
            KeyClass::Container => "<class 'list'>",
        }
    }
}

#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

fn as_num(value: &Value) -> Option<Num> {
    match value {
        Value::Bool(b) => Some(Num::Int(i128::from(*b))),
        Value::Int(i) => Some(Num::Int(i128::from(*i))),
        Value::UInt(u) => Some(Num::Int(i128::from(*u))),
        Value::Float(f) => Some(Num::Float(*f)),
        _ => None,
    }
}

/// `i` against `f`, exactly (NaN sorts last).
fn cmp_int_float(i: i128, f: f64) -> Ordering {
    if f.is_nan() || f == f64::INFINITY {
        return Ordering::Less;
    }
    if f == f64::NEG_INFINITY {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    #[allow(clippy::cast_possible_truncation)] // saturating; our ints are far inside i128
    let whole_int = whole as i128;
    match i.cmp(&whole_int) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - whole)).unwrap_or(Ordering::Equal),
        other => other,
    }
}

fn cmp_num(a: Num, b: Num) -> Ordering {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Float(x), Num::Float(y)) => match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        },
        (Num::Int(x), Num::Float(y)) => cmp_int_float(x, y),
        (Num::Float(x), Num::Int(y)) => cmp_int_float(y, x).reverse(),
    }
}

/// Python's `<` between two keys of the same [`KeyClass`], as a total order
/// (NaN sorts after every number); `None` when Python raises `TypeError`.
pub(crate) fn py_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (as_num(a), as_num(b)) {
        return Some(cmp_num(x, y));
    }
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Bytes(x), Value::Bytes(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Python's `sorted()` of a dict's keys, as positions into `keys`; `None`
/// when Python would raise `TypeError` (keys of types it cannot compare).
/// One key never fails: Python compares nothing then.
pub(crate) fn sorted_keys<'a>(keys: impl Iterator<Item = &'a Value>) -> Option<Vec<usize>> {
    let keys: Vec<&Value> = keys.collect();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    if keys.len() < 2 {
        return Some(order);
    }
    let first = KeyClass::of(keys.first()?);
    let comparable = matches!(first, KeyClass::Number | KeyClass::Str | KeyClass::Bytes)
        && keys.iter().all(|k| KeyClass::of(k) == first);
    if !comparable {
        return None;
    }
    order.sort_by(|&x, &y| match (keys.get(x), keys.get(y)) {
        (Some(a), Some(b)) => py_cmp(a, b).unwrap_or(Ordering::Equal),
        _ => Ordering::Equal,
    });
    Some(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_decodes_text_and_merges_equal_keys() {
        let v = Value::Map(vec![
            (Value::Int(1), Value::from("one")),
            (Value::Bytes(b"k".to_vec()), Value::Ext(5, vec![0xfe])),
            (Value::Bool(true), Value::from("true")),
            (Value::Float(1.0), Value::from("float")),
            (Value::from("k"), Value::Ext(5, b"ab".to_vec())),
        ]);
        assert_eq!(
            normalize(&v),
            Value::Map(vec![
                (Value::Int(1), Value::from("float")),
                (Value::from("k"), Value::from("ab")),
            ])
        );
    }

    #[test]
    fn keys_sort_like_python() {
        let keys = [
            Value::Int(10),
            Value::Float(2.5),
            Value::Bool(true),
            Value::Int(-1),
        ];
        assert_eq!(sorted_keys(keys.iter()), Some(vec![3, 2, 1, 0]));
        let mixed = [Value::Int(1), Value::from("a")];
        assert_eq!(sorted_keys(mixed.iter()), None);
        assert_eq!(sorted_keys([Value::Nil].iter()), Some(vec![0]));
        assert_eq!(
            cmp_int_float(i128::from(u64::MAX), 1.8446744073709552e19),
            Ordering::Less
        );
        assert_eq!(cmp_int_float(2, 2.0), Ordering::Equal);
        assert_eq!(cmp_int_float(-3, -2.5), Ordering::Less);
    }
}
