//! Python's text forms of a [`Value`]: `repr()`, `str()`, truthiness and the
//! few `str` methods Salt's output relies on (`splitlines`, `rstrip`).
//!
//! Salt prints values with Python formatting in many user-facing places:
//! error messages of execution modules, the `raw` and `nested` outputters,
//! the `txt` outputter for non-text values. The master and the minion share
//! this one implementation so Brine's text reads byte for byte the same.
//!
//! The rules are CPython 3.11's (the Python Salt 3007 ships with): shortest
//! round-trip float digits, string quotes chosen as `repr` does, and escapes
//! for every character `str.isprintable()` rejects (the table is generated
//! from CPython 3.11's Unicode 14.0 data).
//!
//! ```
//! use brine_protocol::{Value, pyfmt};
//!
//! let v = Value::Map(vec![(Value::from("ok"), Value::Array(vec![Value::Bool(true), Value::Nil]))]);
//! assert_eq!(pyfmt::py_repr(&v), "{'ok': [True, None]}");
//! assert_eq!(pyfmt::py_str(&Value::from("it's")), "it's");
//! assert_eq!(pyfmt::py_repr(&Value::from("it's")), "\"it's\"");
//! assert_eq!(pyfmt::float_repr(1e16), "1e+16");
//! ```

use std::fmt::Write as _;

use crate::Value;

mod printable;

/// Python's `str(value)`: text as is, everything else as [`py_repr`].
pub fn py_str(value: &Value) -> String {
    match value.as_str() {
        Some(s) => s.to_owned(),
        None => py_repr(value),
    }
}

/// Python's `repr(value)` for the types Salt's msgpack produces.
///
/// Bytes holding valid UTF-8 print as text (Salt decodes them to `str`); an
/// ext item prints as msgpack's `ExtType(code=…, data=b'…')`.
pub fn py_repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, value);
    out
}

/// Appends Python's `repr(value)` to `out`.
pub fn write_repr(out: &mut String, value: &Value) {
    match value {
        Value::Nil => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) => out.push_str(&float_repr(*f)),
        Value::Str(s) => write_str_repr(out, s),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => write_str_repr(out, s),
            Err(_) => write_bytes_repr(out, b),
        },
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, item);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, k);
                out.push_str(": ");
                write_repr(out, v);
            }
            out.push('}');
        }
        Value::Ext(ty, data) => {
            let _ = write!(out, "ExtType(code={ty}, data=");
            write_bytes_repr(out, data);
            out.push(')');
        }
    }
}

/// Python's `repr(text)`.
pub fn str_repr(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_str_repr(&mut out, s);
    out
}

/// Appends Python's `repr(text)` to `out`: single quotes unless the text
/// holds a `'` and no `"`; `\\`, the quote, `\t`, `\n`, `\r` escaped, and
/// every other non-printable character as `\xhh`, `\uhhhh` or `\Uhhhhhhhh`.
pub fn write_str_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !is_printable(c) => {
                let code = u32::from(c);
                let _ = if code < 0x100 {
                    write!(out, "\\x{code:02x}")
                } else if code < 0x1_0000 {
                    write!(out, "\\u{code:04x}")
                } else {
                    write!(out, "\\U{code:08x}")
                };
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Appends Python's `repr(bytes)` to `out` (`b'…'`, quotes chosen as for text).
pub fn write_bytes_repr(out: &mut String, b: &[u8]) {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.push('b');
    out.push(char::from(quote));
    for &byte in b {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ if byte == quote => {
                out.push('\\');
                out.push(char::from(byte));
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push(char::from(quote));
}

/// Python's `repr(float)`: the shortest round-trip digits, positional for
/// exponents in `-4..16`, scientific (`1e+16`, `1.5e-07`) otherwise; `nan`,
/// `inf`, `-inf`.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // `{:e}` gives the shortest round-trip digits, e.g. "-1.5e16", "1e-7"
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            let zeros = "0".repeat(usize::try_from(-point).unwrap_or(0));
            format!("0.{zeros}{digits}")
        } else {
            let point = usize::try_from(point).unwrap_or(0);
            match (digits.get(..point), digits.get(point..)) {
                (Some(int), Some(frac)) if !frac.is_empty() => format!("{int}.{frac}"),
                _ => format!(
                    "{digits}{}.0",
                    "0".repeat(point.saturating_sub(digits.len()))
                ),
            }
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let mant = if rest.is_empty() {
            first.to_owned()
        } else {
            format!("{first}.{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mant}e{esign}{:02}", exp.unsigned_abs())
    }
}

/// Python's truthiness (`bool(value)`).
pub fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::UInt(u) => *u != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::Bytes(b) => !b.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::Ext(..) => true,
    }
}

/// Python's `str.isprintable()` for one character.
pub fn is_printable(c: char) -> bool {
    let code = u32::from(c);
    printable::NON_PRINTABLE
        .binary_search_by(|&(first, last)| {
            if last < code {
                std::cmp::Ordering::Less
            } else if first > code {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_err()
}

/// Python's `str.isspace()` for one character: Unicode white space plus the
/// separators `\x1c`..`\x1f`.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `str.rstrip()` with no argument.
pub fn rstrip(s: &str) -> &str {
    s.trim_end_matches(is_space)
}

/// Python's `str.splitlines()`: splits at `\n`, `\r`, `\r\n`, `\x0b`, `\x0c`,
/// `\x1c`, `\x1d`, `\x1e`, `\x85`, `\u2028` and `\u2029`; no empty last
/// line for a trailing break, no line at all for empty text.
pub fn splitlines(s: &str) -> Vec<&str> {
    split_lines(s)
        .into_iter()
        .map(|(line, break_at)| line.get(..break_at).unwrap_or(line))
        .collect()
}

/// Python's `str.splitlines(keepends=True)`: as [`splitlines`], each line
/// keeping its break.
pub fn splitlines_keepends(s: &str) -> Vec<&str> {
    split_lines(s).into_iter().map(|(line, _)| line).collect()
}

/// Each line with its break, and where in it the break starts.
fn split_lines(s: &str) -> Vec<(&str, usize)> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if !is_break {
            continue;
        }
        let mut end = at + c.len_utf8();
        if c == '\r' && chars.peek().is_some_and(|&(_, next)| next == '\n') {
            chars.next();
            end += 1;
        }
        lines.push((s.get(start..end).unwrap_or_default(), at - start));
        start = end;
    }
    if start < s.len() {
        let rest = s.get(start..).unwrap_or_default();
        lines.push((rest, rest.len()));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python() {
        assert_eq!(float_repr(1.0), "1.0");
        assert_eq!(float_repr(3.1), "3.1");
        assert_eq!(float_repr(-0.5), "-0.5");
        assert_eq!(float_repr(0.0001), "0.0001");
        assert_eq!(float_repr(0.00001), "1e-05");
        assert_eq!(float_repr(1e16), "1e+16");
        assert_eq!(float_repr(1.5e16), "1.5e+16");
        assert_eq!(float_repr(123456789012345.0), "123456789012345.0");
        assert_eq!(float_repr(1234.5), "1234.5");
        assert_eq!(float_repr(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(float_repr(-0.0), "-0.0");
        assert_eq!(float_repr(f64::NEG_INFINITY), "-inf");
        assert_eq!(float_repr(f64::NAN), "nan");
    }

    #[test]
    fn containers_and_strings_print_like_python() {
        let v = Value::Map(vec![(
            Value::from("a"),
            Value::Array(vec![Value::Int(1), Value::from("it's"), Value::Nil]),
        )]);
        assert_eq!(py_repr(&v), "{'a': [1, \"it's\", None]}");
        assert_eq!(py_str(&Value::from("plain")), "plain");
        assert_eq!(py_str(&Value::Bool(true)), "True");
        assert_eq!(py_repr(&Value::from("a\nb")), "'a\\nb'");
        assert_eq!(py_repr(&Value::from("both ' and \"")), "'both \\' and \"'");
        assert_eq!(
            py_repr(&Value::from("é\u{a0}\u{200b}\u{e000}😀")),
            "'é\\xa0\\u200b\\ue000😀'"
        );
        assert_eq!(py_repr(&Value::from("\u{f0000}")), "'\\U000f0000'");
        assert_eq!(py_repr(&Value::Bytes(vec![0xff, b'\''])), "b\"\\xff'\"");
        assert_eq!(
            py_repr(&Value::Ext(78, vec![1])),
            "ExtType(code=78, data=b'\\x01')"
        );
    }

    #[test]
    fn truthiness() {
        assert!(!is_truthy(&Value::Nil));
        assert!(!is_truthy(&Value::from("")));
        assert!(is_truthy(&Value::from("x")));
        assert!(!is_truthy(&Value::Int(0)));
        assert!(!is_truthy(&Value::map()));
    }

    #[test]
    fn splitlines_and_rstrip_follow_python() {
        assert_eq!(splitlines(""), Vec::<&str>::new());
        assert_eq!(splitlines("a\n"), ["a"]);
        assert_eq!(
            splitlines("a\r\nb\rc\x0bd\u{2028}e\n\nf"),
            ["a", "b", "c", "d", "e", "", "f"]
        );
        assert_eq!(rstrip("a \t\n\x1f"), "a");
        assert_eq!(rstrip("a\u{a0}b"), "a\u{a0}b");
    }
}
