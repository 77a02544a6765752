//! Salt's `subdict_match` and `traverse_dict_and_list`: how `grain` and
//! `grain_pcre` targets (and `G@`/`P@`) look into nested grains.
//!
//! An expression `a:b:c` is tried as key `a:b` with value pattern `c`, then
//! as key `a` with pattern `b:c` (deeper keys first). The key walks maps by
//! name and lists by index or through the maps they hold; the value found is
//! matched, lowercased on both sides, with `fnmatch` (or `re.match` for
//! `grain_pcre`) against its Python `str()`; a list matches if one member
//! does; a map matches if it has the key, or (`*:` prefix) if any value
//! does. Both the patterns and the key paths are suffixes and prefixes of
//! the one expression, so every pattern is compiled once, up front, and
//! matching a minion allocates nothing but for values that are containers.

use super::TargetError;
use super::fnmatch::{Glob, lowercase_chars};
use super::pcre::Pcre;
use super::pystr::with_py_str;
use crate::Value;
use std::borrow::Cow;

/// A compiled grain expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Subdict {
    expr: String,
    delimiter: String,
    /// Byte offsets of the delimiters in `expr`, left to right, as `str.split` finds them.
    splits: Vec<usize>,
    /// The value pattern for each suffix of `expr` that can be one, by offset.
    patterns: Vec<(usize, Pattern)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Pattern {
    Glob(Glob),
    Regex(Pcre),
    /// A regular expression that does not compile: Salt logs it and treats it as no match.
    Invalid,
}

/// The delimiter Salt uses inside nested maps, whatever the target's own.
const INNER: &str = ":";

impl Subdict {
    /// Compiles `expr` split by `delimiter`, matching values as globs or regexes.
    ///
    /// # Errors
    /// [`TargetError::MissingDelimiter`] if `expr` does not contain the
    /// delimiter (Salt's matcher refuses it), [`TargetError::InvalidExpression`]
    /// for an empty delimiter, [`TargetError::InvalidRegex`] if no candidate
    /// value pattern compiles.
    pub(crate) fn new(expr: &str, delimiter: &str, regex: bool) -> Result<Subdict, TargetError> {
        if delimiter.is_empty() {
            return Err(TargetError::InvalidExpression {
                reason: "empty grain delimiter".to_owned(),
            });
        }
        if !expr.contains(delimiter) {
            return Err(TargetError::MissingDelimiter {
                expr: expr.to_owned(),
                delimiter: delimiter.to_owned(),
            });
        }
        let splits: Vec<usize> = expr.match_indices(delimiter).map(|(at, _)| at).collect();
        let mut offsets = vec![0];
        offsets.extend(splits.iter().map(|at| at + delimiter.len()));
        offsets.extend(expr.match_indices(INNER).map(|(at, _)| at + 1));
        offsets.extend(expr.match_indices("*:").map(|(at, _)| at + 2));
        offsets.sort_unstable();
        offsets.dedup();
        let mut patterns = Vec::with_capacity(offsets.len());
        let mut first_error = None;
        for at in offsets {
            let suffix = expr.get(at..).unwrap_or_default();
            let pattern = if regex {
                let lowered: String = lowercase_chars(suffix).collect();
                match Pcre::new(&lowered) {
                    Ok(re) => Pattern::Regex(re),
                    Err(e) => {
                        first_error.get_or_insert(e);
                        Pattern::Invalid
                    }
                }
            } else {
                Pattern::Glob(Glob::new_lowercase(suffix))
            };
            patterns.push((at, pattern));
        }
        let subdict = Subdict {
            expr: expr.to_owned(),
            delimiter: delimiter.to_owned(),
            splits,
            patterns,
        };
        let all_invalid = subdict.splits.iter().all(|at| {
            matches!(
                subdict.pattern(at + delimiter.len()),
                Some(Pattern::Invalid)
            )
        });
        match first_error {
            Some(e) if all_invalid => Err(e),
            _ => Ok(subdict),
        }
    }

    /// Whether `data` (a minion's grains) matches.
    pub(crate) fn matches(&self, data: &Value) -> bool {
        self.splits.iter().rev().any(|&at| {
            let key = self.expr.get(..at).unwrap_or_default();
            self.candidate(data, key, &self.delimiter, 0, at + self.delimiter.len())
        })
    }

    /// Salt's `subdict_match(data, expr[start..], ':')`, as nested maps see it.
    fn matches_inner(&self, data: &Value, start: usize) -> bool {
        let s = self.expr.get(start..).unwrap_or_default();
        // ':' is one character, so right-to-left finds the same splits.
        s.rmatch_indices(INNER).any(|(at, _)| {
            let key = s.get(..at).unwrap_or_default();
            self.candidate(data, key, INNER, start, start + at + 1)
        })
    }

    /// One split: `key` in `data`, the rest (from `rest`) as the pattern.
    fn candidate(&self, data: &Value, key: &str, delim: &str, start: usize, rest: usize) -> bool {
        let (found, at) = if key == "*" {
            (Some(data), start)
        } else {
            (traverse(data, key, delim), rest)
        };
        match found {
            None => false,
            Some(Value::Map(entries)) if entries.is_empty() => false,
            Some(map @ Value::Map(_)) => self.dict_match(map, at),
            Some(Value::Array(members)) => members.iter().any(|member| {
                (matches!(member, Value::Map(_)) && self.dict_match(member, at))
                    || self.value_match(member, at)
            }),
            Some(value) => self.value_match(value, at),
        }
    }

    /// Salt's `_dict_match(map, expr[at..])`.
    fn dict_match(&self, map: &Value, at: usize) -> bool {
        let raw = self.expr.get(at..).unwrap_or_default();
        let (wildcard, at) = match raw.strip_prefix("*:") {
            Some(_) => (true, at + 2),
            None => (false, at),
        };
        let pattern = self.expr.get(at..).unwrap_or_default();
        if pattern == "*" || map.contains_key(pattern) || self.matches_inner(map, at) {
            return true;
        }
        wildcard
            && map
                .as_map()
                .unwrap_or_default()
                .iter()
                .any(|(_, v)| match v {
                    Value::Map(_) => self.dict_match(v, at),
                    Value::Array(items) => items.iter().any(|item| self.value_match(item, at)),
                    _ => self.value_match(v, at),
                })
    }

    /// Salt's `_match(value, expr[at..])`: lowercased `str()` against the lowercased pattern.
    fn value_match(&self, value: &Value, at: usize) -> bool {
        match self.pattern(at) {
            Some(Pattern::Glob(glob)) => with_py_str(value, |s| glob.is_match_lowercase(s)),
            Some(Pattern::Regex(re)) => with_py_str(value, |s| re.is_match(&lowercase(s))),
            Some(Pattern::Invalid) | None => false,
        }
    }

    fn pattern(&self, at: usize) -> Option<&Pattern> {
        let i = self.patterns.binary_search_by_key(&at, |(o, _)| *o).ok()?;
        self.patterns.get(i).map(|(_, p)| p)
    }
}

/// `s` lowercased, borrowed when it already is.
fn lowercase(s: &str) -> Cow<'_, str> {
    let unchanged = s.chars().all(|c| {
        let mut lower = c.to_lowercase();
        lower.next() == Some(c) && lower.next().is_none()
    });
    if unchanged {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(lowercase_chars(s).collect())
    }
}

/// Salt's `traverse_dict_and_list`: `None` where Salt returns its default.
pub(crate) fn traverse<'v>(data: &'v Value, key: &str, delimiter: &str) -> Option<&'v Value> {
    let mut ptr = data;
    for part in key.split(delimiter) {
        ptr = match ptr {
            Value::Array(items) => match py_int(part) {
                PyInt::NotInt => items.iter().find_map(|item| match item {
                    Value::Map(_) => item.get(part),
                    _ => None,
                })?,
                PyInt::Huge => return None,
                PyInt::Int(idx) => {
                    let embedded = items.iter().find_map(|item| {
                        item.as_map()?
                            .iter()
                            .find(|(k, _)| py_eq_key(k, &KeyLit::Int(idx)))
                            .map(|(_, v)| v)
                    });
                    match embedded {
                        Some(v) => v,
                        None => py_index(items, idx)?,
                    }
                }
            },
            Value::Map(entries) => match ptr.get(part) {
                Some(v) => v,
                None => {
                    let lit = yaml_key(part)?;
                    entries
                        .iter()
                        .find(|(k, _)| py_eq_key(k, &lit))
                        .map(|(_, v)| v)?
                }
            },
            _ => return None,
        };
    }
    Some(ptr)
}

/// A non-string dict key Salt retries a lookup with, after YAML-loading the key text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum KeyLit {
    Nil,
    Bool(bool),
    Int(i64),
}

/// What `yamlify_arg` turns a key into, when it is not a string any more.
fn yaml_key(s: &str) -> Option<KeyLit> {
    let t = s.trim();
    if t.is_empty() || t == "---" || t == "..." || s.contains(['\t', '\r', '\n', '#']) {
        return None;
    }
    match s {
        "None" | "null" | "Null" | "NULL" | "~" => return Some(KeyLit::Nil),
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => {
            return Some(KeyLit::Bool(true));
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
            return Some(KeyLit::Bool(false));
        }
        _ => {}
    }
    // Plain decimal integers; YAML 1.1's octal, hex and sexagesimal forms are left out.
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    let decimal = digits.chars().all(|c| c.is_ascii_digit())
        && (digits == "0" || (!digits.is_empty() && !digits.starts_with('0')));
    if decimal {
        return t.parse().ok().map(KeyLit::Int);
    }
    None
}

/// Python's `==` between a dict key and a YAML-loaded lookup key
/// (`True == 1`, so a bool key answers an int lookup and back).
fn py_eq_key(key: &Value, lit: &KeyLit) -> bool {
    match (key, lit) {
        (Value::Nil, KeyLit::Nil) => true,
        (Value::Bool(a), KeyLit::Bool(b)) => a == b,
        (Value::Bool(a), KeyLit::Int(i)) | (Value::Int(i), KeyLit::Bool(a)) => *i == i64::from(*a),
        (Value::Int(a), KeyLit::Int(b)) => a == b,
        _ => false,
    }
}

enum PyInt {
    NotInt,
    Int(i64),
    /// A valid integer too large for any list.
    Huge,
}

/// Python's `int(s)`: surrounding whitespace, a sign, digits with single underscores between.
fn py_int(s: &str) -> PyInt {
    let t = s.trim();
    let (negative, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let well_formed = !body.is_empty()
        && !body.starts_with('_')
        && !body.ends_with('_')
        && !body.contains("__")
        && body.chars().all(|c| c.is_ascii_digit() || c == '_');
    if !well_formed {
        return PyInt::NotInt;
    }
    let mut n: i64 = 0;
    for d in body.bytes().filter(u8::is_ascii_digit) {
        let next = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(i64::from(d - b'0')));
        match next {
            Some(v) => n = v,
            None => return PyInt::Huge,
        }
    }
    PyInt::Int(if negative { -n } else { n })
}

/// Python's `list[idx]`, negative indexes counting from the end.
fn py_index(items: &[Value], idx: i64) -> Option<&Value> {
    let len = i64::try_from(items.len()).ok()?;
    let at = if idx < 0 { idx.checked_add(len)? } else { idx };
    items.get(usize::try_from(at).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grains() -> Value {
        let nested: Value = [("b", Value::from("C:d")), ("n", Value::Int(3))]
            .into_iter()
            .collect();
        [
            ("os", Value::from("Ubuntu")),
            ("a", nested),
            ("roles", Value::Array(vec!["web".into(), "db".into()])),
            ("on", Value::Bool(true)),
            (
                "ifs",
                Value::Array(vec![[("eth0", Value::from("up"))].into_iter().collect()]),
            ),
        ]
        .into_iter()
        .collect()
    }

    fn m(expr: &str) -> bool {
        Subdict::new(expr, ":", false).unwrap().matches(&grains())
    }

    #[test]
    fn nested_lists_and_case() {
        assert!(m("os:ubuntu"));
        assert!(m("os:UBU*"));
        assert!(m("a:b:c:d"), "the value may contain the delimiter");
        assert!(m("a:b:c:*"));
        assert!(m("a:n:3"));
        assert!(m("a:b"), "a map matches when it has the key");
        assert!(m("roles:db"));
        assert!(!m("roles:mail"));
        assert!(m("on:true"));
        assert!(m("ifs:eth0:up"));
        assert!(m("ifs:0:eth0:up"));
        assert!(m("*:web"));
        assert!(!m("os:debian"));
        assert!(!m("missing:x"));
    }

    #[test]
    fn regex_variant() {
        let s = Subdict::new("os:ub.n", ":", true).unwrap();
        assert!(s.matches(&grains()));
        assert!(matches!(
            Subdict::new("os:(", ":", true),
            Err(TargetError::InvalidRegex { .. })
        ));
        assert!(matches!(
            Subdict::new("os", ":", false),
            Err(TargetError::MissingDelimiter { .. })
        ));
    }

    #[test]
    fn python_ints() {
        assert!(matches!(py_int(" -1_0 "), PyInt::Int(-10)));
        assert!(matches!(py_int("1__0"), PyInt::NotInt));
        assert!(matches!(py_int("99999999999999999999"), PyInt::Huge));
    }
}
