//! Python's `str()` of a [`Value`], which Salt matches grain values against
//! (`str(True)` is `"True"`, `str(1.0)` is `"1.0"`, a list is its `repr`).
//!
//! Scalars are formatted into a stack buffer, so matching a grain that is a
//! number or a boolean does not allocate; only containers (matched by their
//! `repr`, which is rare) and undecodable bytes build a `String`.

use std::fmt::{self, Write};

use crate::Value;

/// Calls `f` with `str(v)` as Python would spell it.
pub(crate) fn with_py_str<R>(v: &Value, f: impl FnOnce(&str) -> R) -> R {
    match v {
        Value::Str(s) => f(s),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => f(s),
            Err(_) => f(&repr_string(v)),
        },
        Value::Nil => f("None"),
        Value::Bool(true) => f("True"),
        Value::Bool(false) => f("False"),
        Value::Int(_) | Value::UInt(_) | Value::Float(_) => {
            let mut buf = StackBuf::default();
            match write_scalar(&mut buf, v) {
                Ok(()) => f(buf.as_str()),
                Err(_) => f(&repr_string(v)),
            }
        }
        Value::Array(_) | Value::Map(_) | Value::Ext(..) => f(&repr_string(v)),
    }
}

/// `repr(v)` in a new string.
pub(crate) fn repr_string(v: &Value) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_repr(&mut out, v);
    out
}

fn write_scalar(out: &mut impl Write, v: &Value) -> fmt::Result {
    match v {
        Value::Int(i) => write!(out, "{i}"),
        Value::UInt(u) => write!(out, "{u}"),
        Value::Float(x) => write_float(out, *x),
        _ => write_repr(out, v),
    }
}

fn write_repr(out: &mut impl Write, v: &Value) -> fmt::Result {
    match v {
        Value::Nil => out.write_str("None"),
        Value::Bool(true) => out.write_str("True"),
        Value::Bool(false) => out.write_str("False"),
        Value::Int(_) | Value::UInt(_) | Value::Float(_) => write_scalar(out, v),
        Value::Str(s) => write_str_repr(out, s),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => write_str_repr(out, s),
            Err(_) => write_bytes_repr(out, b),
        },
        Value::Array(items) => {
            out.write_char('[')?;
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.write_str(", ")?;
                }
                write_repr(out, item)?;
            }
            out.write_char(']')
        }
        Value::Map(entries) => {
            out.write_char('{')?;
            for (n, (k, item)) in entries.iter().enumerate() {
                if n > 0 {
                    out.write_str(", ")?;
                }
                write_repr(out, k)?;
                out.write_str(": ")?;
                write_repr(out, item)?;
            }
            out.write_char('}')
        }
        Value::Ext(code, _) => write!(out, "<ext {code}>"),
    }
}

fn write_str_repr(out: &mut impl Write, s: &str) -> fmt::Result {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.write_char(quote)?;
    for c in s.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '\t' => out.write_str("\\t")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            c if c == quote => {
                out.write_char('\\')?;
                out.write_char(c)?;
            }
            c if u32::from(c) < 0x20 || ('\u{7f}'..='\u{a0}').contains(&c) || c == '\u{ad}' => {
                write!(out, "\\x{:02x}", u32::from(c))?;
            }
            c => out.write_char(c)?,
        }
    }
    out.write_char(quote)
}

fn write_bytes_repr(out: &mut impl Write, b: &[u8]) -> fmt::Result {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.write_char('b')?;
    out.write_char(char::from(quote))?;
    for &byte in b {
        match byte {
            b'\\' => out.write_str("\\\\")?,
            b'\t' => out.write_str("\\t")?,
            b'\n' => out.write_str("\\n")?,
            b'\r' => out.write_str("\\r")?,
            _ if byte == quote => {
                out.write_char('\\')?;
                out.write_char(char::from(byte))?;
            }
            0x20..=0x7e => out.write_char(char::from(byte))?,
            _ => write!(out, "\\x{byte:02x}")?,
        }
    }
    out.write_char(char::from(quote))
}

/// Python's `repr(float)`: the shortest digits that round-trip, positional
/// for exponents from -4 to 15, scientific (`1e+16`, `1.5e-05`) otherwise.
fn write_float(out: &mut impl Write, x: f64) -> fmt::Result {
    if x.is_nan() {
        return out.write_str("nan");
    }
    if x.is_infinite() {
        return out.write_str(if x > 0.0 { "inf" } else { "-inf" });
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: `-1.25e-7`.
    let mut sci = StackBuf::default();
    write!(sci, "{x:e}")?;
    let (mantissa, exp) = sci.as_str().split_once('e').ok_or(fmt::Error)?;
    let exp: i32 = exp.parse().map_err(|_| fmt::Error)?;
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    if negative {
        out.write_char('-')?;
    }
    let mut digits = StackBuf::default();
    for c in mantissa.chars().filter(char::is_ascii_digit) {
        digits.write_char(c)?;
    }
    let digits = digits.as_str();
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.write_str(first)?;
        if !rest.is_empty() {
            out.write_char('.')?;
            out.write_str(rest)?;
        }
        let sign = if exp < 0 { '-' } else { '+' };
        return write!(out, "e{sign}{:02}", exp.unsigned_abs());
    }
    if exp < 0 {
        out.write_str("0.")?;
        for _ in 0..(exp.unsigned_abs() - 1) {
            out.write_char('0')?;
        }
        return out.write_str(digits);
    }
    let int_len = usize::try_from(exp).map_err(|_| fmt::Error)? + 1;
    if digits.len() <= int_len {
        out.write_str(digits)?;
        for _ in digits.len()..int_len {
            out.write_char('0')?;
        }
        out.write_str(".0")
    } else {
        let (int, frac) = digits.split_at(int_len);
        write!(out, "{int}.{frac}")
    }
}

/// A fixed-size text buffer on the stack, big enough for any number's `str()`.
struct StackBuf {
    buf: [u8; 48],
    len: usize,
}

impl Default for StackBuf {
    fn default() -> Self {
        StackBuf {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl StackBuf {
    fn as_str(&self) -> &str {
        // Only whole UTF-8 strings are ever appended.
        self.buf
            .get(..self.len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }
}

impl Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: Value) -> String {
        with_py_str(&v, str::to_owned)
    }

    #[test]
    fn scalars() {
        assert_eq!(s(Value::Bool(true)), "True");
        assert_eq!(s(Value::Nil), "None");
        assert_eq!(s(Value::Int(-12)), "-12");
        assert_eq!(s(Value::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(s(Value::from("x")), "x");
    }

    #[test]
    fn floats_like_python() {
        for (x, want) in [
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (123.456, "123.456"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.25e-7, "1.25e-07"),
            (2.5e100, "2.5e+100"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ] {
            assert_eq!(s(Value::Float(x)), want, "{x:?}");
        }
    }

    #[test]
    fn containers_use_repr() {
        let v = Value::Array(vec![
            Value::from("a'b"),
            Value::Int(1),
            [("k", Value::Bool(false))].into_iter().collect(),
        ]);
        assert_eq!(s(v), "[\"a'b\", 1, {'k': False}]");
        assert_eq!(s(Value::Bytes(vec![0xff, b'a'])), "b'\\xffa'");
    }
}
