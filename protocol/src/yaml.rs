//! YAML as Salt loads a command-line argument: PyYAML's `SafeLoader`
//! (YAML 1.1 implicit typing) with the changes of Salt's `SaltYamlSafeLoader`.
//!
//! `saphyr-parser` turns the text into events (it keeps the scalar style, so a
//! quoted `'1'` stays text); this module builds the [`Value`] and decides the
//! type of every plain scalar with YAML 1.1's rules, as PyYAML does:
//!
//! | plain scalar | becomes |
//! | --- | --- |
//! | `yes`/`no`/`on`/`off`/`true`/`false` (three casings each) | bool |
//! | `1`, `-2`, `0x1f`, `0b101`, `1:30` (base 60), `1_000` | int |
//! | `010` | int 10: Salt strips leading zeros (PyYAML alone would read octal) |
//! | `-010` | int -8: Salt's strip misses signed values, PyYAML reads octal |
//! | `1.5`, `.5`, `1.`, `1.5e+3`, `.inf`, `.nan`, `1:30.5` | float (`1e3` stays text: YAML 1.1 wants a dot and a signed exponent) |
//! | `~`, `null`, empty | nil |
//! | timestamps (`2024-01-01`) | text: Salt loads them as plain strings |
//!
//! Everything Salt's loader rejects is an error here too (the caller then
//! keeps the original text): duplicate keys (`found conflicting ID`),
//! unhashable keys, more than one document, tags it has no constructor for.
//! Integers beyond 64 bits are an error as well (Python would keep a big int
//! that msgpack cannot carry). Aliases are expanded within a node budget, and
//! nesting is bounded, so hostile input cannot blow up memory or the stack.

use crate::Value;
use saphyr_parser::{Event, Parser, ScalarStyle, Tag};

/// Most nodes (including those copied by aliases) one document may produce.
const MAX_NODES: usize = 100_000;
/// Deepest nesting of collections accepted.
const MAX_DEPTH: usize = 64;

/// Why a text could not be loaded; the message is for logs only.
/// Public through [`crate::load_yaml`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct YamlError(String);

fn err<T>(msg: impl Into<String>) -> Result<T, YamlError> {
    Err(YamlError(msg.into()))
}

/// A map key waiting for its value: either a real key or Salt's `<<` merge key.
enum Key {
    Value(Value),
    Merge,
}

enum Frame {
    Seq {
        anchor: usize,
        items: Vec<Value>,
    },
    Map {
        anchor: usize,
        entries: Vec<(Value, Value)>,
        merges: Vec<Value>,
        key: Option<Key>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: Vec<(usize, Value)>,
    nodes: usize,
    root: Option<Value>,
}

/// Loads one YAML document as Salt's `salt.utils.yaml.safe_load` does.
/// An empty stream loads as [`Value::Nil`].
///
/// # Errors
/// [`YamlError`] for malformed YAML or anything Salt's loader refuses (see the
/// module docs).
pub fn safe_load(text: &str) -> Result<Value, YamlError> {
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: Vec::new(),
        nodes: 0,
        root: None,
    };
    let mut documents = 0usize;
    for event in Parser::new_from_str(text) {
        let (event, _span) = event.map_err(|e| YamlError(e.to_string()))?;
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return err("expected a single document in the stream");
                }
            }
            Event::Alias(id) => {
                let value = builder
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == id)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| YamlError("found undefined alias".into()))?;
                builder.count(&value)?;
                builder.push_value(value)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                builder.nodes += 1;
                builder.check_budget()?;
                let awaiting_key =
                    matches!(builder.stack.last(), Some(Frame::Map { key: None, .. }));
                if awaiting_key && style == ScalarStyle::Plain && tag.is_none() {
                    if text == "<<" {
                        builder.set_merge_key()?;
                        continue;
                    }
                    if text == "=" {
                        // Salt's loader reads the `=` value key as a string
                        builder.push_value(Value::from("="))?;
                        continue;
                    }
                }
                let value = scalar(&text, style, tag.as_deref())?;
                if anchor > 0 {
                    builder.anchors.push((anchor, value.clone()));
                }
                builder.push_value(value)?;
            }
            Event::SequenceStart(anchor, tag) => {
                collection_tag(tag.as_deref(), "seq")?;
                builder.open(Frame::Seq {
                    anchor,
                    items: Vec::new(),
                })?;
            }
            Event::MappingStart(anchor, tag) => {
                collection_tag(tag.as_deref(), "map")?;
                builder.open(Frame::Map {
                    anchor,
                    entries: Vec::new(),
                    merges: Vec::new(),
                    key: None,
                })?;
            }
            Event::SequenceEnd | Event::MappingEnd => builder.close()?,
        }
    }
    Ok(builder.root.unwrap_or(Value::Nil))
}

fn collection_tag(tag: Option<&Tag>, expected: &str) -> Result<(), YamlError> {
    match tag {
        None => Ok(()),
        Some(t) if t.is_yaml_core_schema() && t.suffix == expected => Ok(()),
        Some(t) => err(format!("no constructor for the tag {t}")),
    }
}

impl Builder {
    fn check_budget(&self) -> Result<(), YamlError> {
        if self.nodes > MAX_NODES {
            return err("document too large");
        }
        Ok(())
    }

    /// Counts the nodes an alias copies in, iteratively.
    fn count(&mut self, value: &Value) -> Result<(), YamlError> {
        let mut pending = vec![value];
        while let Some(v) = pending.pop() {
            self.nodes += 1;
            self.check_budget()?;
            match v {
                Value::Array(items) => pending.extend(items),
                Value::Map(entries) => {
                    for (k, v) in entries {
                        pending.push(k);
                        pending.push(v);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame) -> Result<(), YamlError> {
        self.nodes += 1;
        self.check_budget()?;
        if self.stack.len() >= MAX_DEPTH {
            return err("nesting too deep");
        }
        self.stack.push(frame);
        Ok(())
    }

    fn set_merge_key(&mut self) -> Result<(), YamlError> {
        if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
            *key = Some(Key::Merge);
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), YamlError> {
        let Some(frame) = self.stack.pop() else {
            return err("unbalanced collection end");
        };
        let (anchor, value) = match frame {
            Frame::Seq { anchor, items } => (anchor, Value::Array(items)),
            Frame::Map {
                anchor,
                entries,
                merges,
                ..
            } => (anchor, Value::Map(merge_entries(entries, merges)?)),
        };
        if anchor > 0 {
            self.anchors.push((anchor, value.clone()));
        }
        self.push_value(value)
    }

    fn push_value(&mut self, value: Value) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(value);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(value);
                Ok(())
            }
            Some(Frame::Map {
                entries,
                merges,
                key,
                ..
            }) => match key.take() {
                None => {
                    if matches!(value, Value::Array(_) | Value::Map(_)) {
                        return err("found unacceptable key");
                    }
                    *key = Some(Key::Value(value));
                    Ok(())
                }
                Some(Key::Merge) => {
                    merges.push(value);
                    Ok(())
                }
                Some(Key::Value(k)) => {
                    entries.push((k, value));
                    Ok(())
                }
            },
        }
    }
}

/// Applies `<<` merges the way Salt's `flatten_mapping` does (merged entries
/// first, own keys win; a list merges its maps with the first one winning),
/// then refuses duplicate keys as Salt's `construct_mapping` does.
fn merge_entries(
    entries: Vec<(Value, Value)>,
    merges: Vec<Value>,
) -> Result<Vec<(Value, Value)>, YamlError> {
    let mut merged: Vec<(Value, Value)> = Vec::new();
    for source in merges {
        match source {
            Value::Map(items) => merged.extend(items),
            Value::Array(maps) => {
                let mut sub = Vec::new();
                for m in maps {
                    match m {
                        Value::Map(items) => sub.push(items),
                        _ => return err("expected a mapping for merging"),
                    }
                }
                for items in sub.into_iter().rev() {
                    merged.extend(items);
                }
            }
            _ => return err("expected a mapping or list of mappings for merging"),
        }
    }
    let mut out: Vec<(Value, Value)> = merged
        .into_iter()
        .filter(|(k, _)| !entries.iter().any(|(own, _)| key_eq(own, k)))
        .collect();
    out.extend(entries);
    for (i, (k, _)) in out.iter().enumerate() {
        if out.iter().take(i).any(|(earlier, _)| key_eq(earlier, k)) {
            return err("found conflicting ID");
        }
    }
    Ok(out)
}

/// Python's dict-key equality for the scalar types YAML produces
/// (`True == 1 == 1.0`).
fn key_eq(a: &Value, b: &Value) -> bool {
    fn num(v: &Value) -> Option<f64> {
        match *v {
            Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            Value::Int(i) => Some(i as f64),
            Value::UInt(u) => Some(u as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, YamlError> {
    match tag {
        None if style == ScalarStyle::Plain => implicit(text),
        None => Ok(Value::from(text)),
        // the non-specific tag `!` makes a scalar a string
        Some(t) if t.handle == "!" && t.suffix.is_empty() => Ok(Value::from(text)),
        Some(t) if t.is_yaml_core_schema() => match t.suffix.as_str() {
            "str" | "timestamp" => Ok(Value::from(text)),
            "int" => construct_int(text),
            "float" => construct_float(text),
            "bool" => match text.to_ascii_lowercase().as_str() {
                "yes" | "true" | "on" => Ok(Value::Bool(true)),
                "no" | "false" | "off" => Ok(Value::Bool(false)),
                _ => err("not a boolean"),
            },
            "null" => Ok(Value::Nil),
            _ => err(format!("no constructor for the tag {t}")),
        },
        Some(t) => err(format!("no constructor for the tag {t}")),
    }
}

/// PyYAML's implicit resolvers for a plain scalar (YAML 1.1).
fn implicit(text: &str) -> Result<Value, YamlError> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Nil),
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Ok(Value::Bool(true));
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Ok(Value::Bool(false));
        }
        "<<" | "=" => return err("no constructor for a merge or value key here"),
        _ => {}
    }
    if is_float(text) {
        construct_float(text)
    } else if is_int(text) {
        construct_int(text)
    } else {
        Ok(Value::from(text))
    }
}

fn strip_sign(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

fn all(s: &str, f: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.bytes().all(f)
}

/// `(:[0-5]?[0-9])+` after a leading part: every group is one or two digits,
/// a two-digit group starting with 0-5.
fn sexagesimal_tail(groups: &[&str]) -> bool {
    !groups.is_empty()
        && groups.iter().all(|g| match g.as_bytes() {
            [d] => d.is_ascii_digit(),
            [a, b] => (b'0'..=b'5').contains(a) && b.is_ascii_digit(),
            _ => false,
        })
}

fn decimal_head(s: &str) -> bool {
    // [1-9][0-9_]*
    let b = s.as_bytes();
    matches!(b.first(), Some(b'1'..=b'9')) && b.iter().all(|c| c.is_ascii_digit() || *c == b'_')
}

fn digits_underscore(s: &str) -> bool {
    s.bytes().all(|c| c.is_ascii_digit() || c == b'_')
}

/// PyYAML's int resolver.
fn is_int(text: &str) -> bool {
    let s = strip_sign(text);
    if let Some(rest) = s.strip_prefix("0b") {
        return all(rest, |c| c == b'0' || c == b'1' || c == b'_');
    }
    if let Some(rest) = s.strip_prefix("0x") {
        return all(rest, |c| c.is_ascii_hexdigit() || c == b'_');
    }
    if s == "0" {
        return true;
    }
    if let Some(rest) = s.strip_prefix('0') {
        return all(rest, |c| (b'0'..=b'7').contains(&c) || c == b'_');
    }
    let mut parts = s.split(':');
    let head = parts.next().unwrap_or("");
    let tail: Vec<&str> = parts.collect();
    decimal_head(head) && (tail.is_empty() || sexagesimal_tail(&tail))
}

/// PyYAML's float resolver.
fn is_float(text: &str) -> bool {
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let signed = strip_sign(text);
    if matches!(signed, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    // \.[0-9][0-9_]*(?:[eE][-+][0-9]+)?   (no sign allowed)
    if let Some(rest) = text.strip_prefix('.') {
        let (mantissa, exp) = split_exponent(rest);
        return mantissa.as_bytes().first().is_some_and(u8::is_ascii_digit)
            && digits_underscore(mantissa)
            && exp.is_none_or(signed_exp);
    }
    let s = signed;
    let Some((int_part, frac)) = s.split_once('.') else {
        return false;
    };
    let starts_digit = int_part.as_bytes().first().is_some_and(u8::is_ascii_digit);
    if !starts_digit {
        return false;
    }
    // [0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?
    if digits_underscore(int_part) {
        let (frac, exp) = split_exponent(frac);
        return digits_underscore(frac) && exp.is_none_or(signed_exp);
    }
    // [0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    let mut parts = int_part.split(':');
    let head = parts.next().unwrap_or("");
    let tail: Vec<&str> = parts.collect();
    digits_underscore(head) && sexagesimal_tail(&tail) && digits_underscore(frac)
}

/// Splits `"5e+3"` into `("5", Some("+3"))`.
fn split_exponent(s: &str) -> (&str, Option<&str>) {
    match s.find(['e', 'E']) {
        Some(at) => (&s[..at], s.get(at + 1..)),
        None => (s, None),
    }
}

fn signed_exp(e: &str) -> bool {
    matches!(e.as_bytes().first(), Some(b'-' | b'+')) && all(&e[1..], |c| c.is_ascii_digit())
}

/// PyYAML's `construct_yaml_int`, after Salt's leading-zero strip.
fn construct_int(text: &str) -> Result<Value, YamlError> {
    let mut value = text.to_owned();
    // Salt: an int written with leading zeros is decimal, not octal
    if value != "0"
        && value.starts_with('0')
        && !value.starts_with("0b")
        && !value.starts_with("0x")
    {
        value = value.trim_start_matches('0').to_owned();
        if value.is_empty() {
            value = "0".to_owned();
        }
    }
    let value = value.replace('_', "");
    let (negative, digits) = match value.as_bytes().first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value.as_str()),
    };
    let magnitude: u128 = if digits == "0" {
        0
    } else if let Some(bin) = digits.strip_prefix("0b") {
        parse_radix(bin, 2)?
    } else if let Some(hex) = digits.strip_prefix("0x") {
        parse_radix(hex, 16)?
    } else if digits.starts_with('0') {
        parse_radix(digits, 8)?
    } else if digits.contains(':') {
        let mut total: u128 = 0;
        for part in digits.split(':') {
            total = total
                .checked_mul(60)
                .and_then(|t| t.checked_add(parse_radix(part, 10).ok()?))
                .ok_or_else(|| YamlError("integer out of range".into()))?;
        }
        total
    } else {
        parse_radix(digits, 10)?
    };
    int_value(negative, magnitude)
}

fn parse_radix(digits: &str, radix: u32) -> Result<u128, YamlError> {
    if digits.is_empty() {
        return err("invalid literal for int()");
    }
    u128::from_str_radix(digits, radix).map_err(|_| YamlError("invalid literal for int()".into()))
}

fn int_value(negative: bool, magnitude: u128) -> Result<Value, YamlError> {
    if negative {
        let m = i128::try_from(magnitude).map_err(|_| YamlError("integer out of range".into()))?;
        i64::try_from(-m)
            .map(Value::Int)
            .map_err(|_| YamlError("integer out of range".into()))
    } else {
        u64::try_from(magnitude)
            .map(Value::from)
            .map_err(|_| YamlError("integer out of range".into()))
    }
}

/// PyYAML's `construct_yaml_float`.
fn construct_float(text: &str) -> Result<Value, YamlError> {
    let value = text.replace('_', "").to_ascii_lowercase();
    let (sign, body) = match value.as_bytes().first() {
        Some(b'-') => (-1.0, &value[1..]),
        Some(b'+') => (1.0, &value[1..]),
        _ => (1.0, value.as_str()),
    };
    let bad = || YamlError("could not convert string to float".into());
    let magnitude = if body == ".inf" {
        f64::INFINITY
    } else if body == ".nan" {
        f64::NAN
    } else if body.contains(':') {
        let mut total = 0.0;
        for part in body.split(':') {
            total = total * 60.0 + python_float(part).ok_or_else(bad)?;
        }
        total
    } else {
        python_float(body).ok_or_else(bad)?
    };
    Ok(Value::Float(sign * magnitude))
}

/// Python's `float()` for the decimal shapes the resolver lets through.
fn python_float(s: &str) -> Option<f64> {
    if !s.bytes().any(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(s: &str) -> Value {
        safe_load(s).unwrap()
    }

    #[test]
    fn scalars_follow_yaml_1_1() {
        assert_eq!(load("1"), Value::Int(1));
        assert_eq!(load("-2"), Value::Int(-2));
        assert_eq!(load("010"), Value::Int(10));
        assert_eq!(load("-010"), Value::Int(-8));
        assert_eq!(load("0x1f"), Value::Int(31));
        assert_eq!(load("0b101"), Value::Int(5));
        assert_eq!(load("1:30"), Value::Int(90));
        assert_eq!(load("1.5"), Value::Float(1.5));
        assert_eq!(load("1e3"), Value::from("1e3"));
        assert_eq!(load("1.0e+3"), Value::Float(1000.0));
        assert_eq!(load("yes"), Value::Bool(true));
        assert_eq!(load("Off"), Value::Bool(false));
        assert_eq!(load("~"), Value::Nil);
        assert_eq!(load("2024-01-01"), Value::from("2024-01-01"));
        assert_eq!(load("'1'"), Value::from("1"));
        assert_eq!(load("!!str 1"), Value::from("1"));
        assert_eq!(load("!!int '7'"), Value::Int(7));
        assert_eq!(load(""), Value::Nil);
        assert_eq!(load("18446744073709551615"), Value::UInt(u64::MAX));
        assert!(safe_load("18446744073709551616").is_err());
        assert!(load(".nan").as_f64().unwrap().is_nan());
        assert_eq!(load("-.inf"), Value::Float(f64::NEG_INFINITY));
    }

    #[test]
    fn collections_keep_order_and_refuse_duplicates() {
        let v = load("{b: 1, a: [x, 2]}");
        assert_eq!(
            v,
            Value::Map(vec![
                (Value::from("b"), Value::Int(1)),
                (
                    Value::from("a"),
                    Value::Array(vec![Value::from("x"), Value::Int(2)])
                ),
            ])
        );
        assert!(safe_load("{a: 1, a: 2}").is_err());
        assert!(safe_load("{1: a, true: b}").is_err());
        assert!(safe_load("{[1]: a}").is_err());
        assert!(safe_load("a\n---\nb").is_err());
        assert!(safe_load("!!binary aGk=").is_err());
    }

    #[test]
    fn merge_keys_and_aliases() {
        let v = load("{base: &b {x: 1, y: 2}, other: {<<: *b, y: 3}}");
        assert_eq!(
            v.get("other").unwrap(),
            &Value::Map(vec![
                (Value::from("x"), Value::Int(1)),
                (Value::from("y"), Value::Int(3)),
            ])
        );
    }

    #[test]
    fn alias_bombs_hit_the_budget() {
        let mut doc = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for name in ['b', 'c', 'd', 'e', 'f', 'g'] {
            doc.push_str(&format!(
                "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = name;
        }
        assert!(safe_load(&doc).is_err());
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(safe_load(&deep).is_err());
    }
}
