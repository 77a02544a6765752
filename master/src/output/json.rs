//! Salt's `json` outputter: Python's `json.dumps(data, default=repr,
//! ensure_ascii=False, indent=…)`.

use std::fmt::Write as _;

use brine_protocol::Value;
use brine_protocol::pyfmt::{float_repr, py_repr};

use super::Indent;
use super::pyobj::sorted_keys;

/// Python's `json.dumps` raised `TypeError` (a key that is not text, a
/// number, a bool or None; or keys `sort_keys` cannot compare).
struct NotSerializable;

struct Encoder {
    out: String,
    /// `None`: one line, `", "` and `": "` separators.
    indent: Option<usize>,
    sort_keys: bool,
}

impl Encoder {
    fn newline(&mut self, level: usize) {
        if let Some(width) = self.indent {
            self.out.push('\n');
            let spaces = width.saturating_mul(level);
            self.out.extend(std::iter::repeat_n(' ', spaces));
        }
    }

    fn separator(&mut self, level: usize) {
        if self.indent.is_some() {
            self.out.push(',');
            self.newline(level);
        } else {
            self.out.push_str(", ");
        }
    }

    fn value(&mut self, value: &Value, level: usize) -> Result<(), NotSerializable> {
        match value {
            Value::Nil => self.out.push_str("null"),
            Value::Bool(true) => self.out.push_str("true"),
            Value::Bool(false) => self.out.push_str("false"),
            Value::Int(i) => {
                let _ = write!(self.out, "{i}");
            }
            Value::UInt(u) => {
                let _ = write!(self.out, "{u}");
            }
            Value::Float(f) => self.out.push_str(&float_text(*f)),
            Value::Str(s) => write_string(&mut self.out, s),
            // default=repr: Python writes the repr of what it cannot encode as a string
            Value::Bytes(_) | Value::Ext(..) => write_string(&mut self.out, &py_repr(value)),
            Value::Array(items) => {
                if items.is_empty() {
                    self.out.push_str("[]");
                    return Ok(());
                }
                self.out.push('[');
                self.newline(level + 1);
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.separator(level + 1);
                    }
                    self.value(item, level + 1)?;
                }
                self.newline(level);
                self.out.push(']');
            }
            Value::Map(entries) => {
                if entries.is_empty() {
                    self.out.push_str("{}");
                    return Ok(());
                }
                let order: Vec<usize> = if self.sort_keys {
                    sorted_keys(entries.iter().map(|(k, _)| k)).ok_or(NotSerializable)?
                } else {
                    (0..entries.len()).collect()
                };
                self.out.push('{');
                self.newline(level + 1);
                for (n, (key, item)) in order.iter().filter_map(|&i| entries.get(i)).enumerate() {
                    if n > 0 {
                        self.separator(level + 1);
                    }
                    write_string(&mut self.out, &key_text(key)?);
                    self.out.push_str(": ");
                    self.value(item, level + 1)?;
                }
                self.newline(level);
                self.out.push('}');
            }
        }
        Ok(())
    }
}

/// Python's float in JSON: its repr, `NaN`, `Infinity`, `-Infinity`.
fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f == f64::INFINITY {
        "Infinity".into()
    } else if f == f64::NEG_INFINITY {
        "-Infinity".into()
    } else {
        float_repr(f)
    }
}

/// The text a dict key becomes; Python refuses every other key type.
fn key_text(key: &Value) -> Result<String, NotSerializable> {
    Ok(match key {
        Value::Str(s) => s.clone(),
        Value::Float(f) => float_text(*f),
        Value::Bool(true) => "true".into(),
        Value::Bool(false) => "false".into(),
        Value::Nil => "null".into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Bytes(_) | Value::Array(_) | Value::Map(_) | Value::Ext(..) => {
            return Err(NotSerializable);
        }
    })
}

/// A JSON string as Python writes it with `ensure_ascii=False`: only `"`,
/// `\` and control characters are escaped.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The text of Salt's json outputter. `indent` is `--out-indent`
/// (`output_indent`): absent → 4; negative → one line; `pretty` → 4 with
/// sorted keys. Data Python cannot encode prints as `{}`, as Salt does.
pub(super) fn render(data: &Value, indent: Option<Indent>) -> String {
    let (indent, sort_keys) = match indent {
        None => (Some(4), false),
        Some(Indent::Pretty) => (Some(4), true),
        Some(Indent::Spaces(n)) => (usize::try_from(n).ok(), false),
    };
    let mut encoder = Encoder {
        out: String::new(),
        indent,
        sort_keys,
    };
    match encoder.value(data, 0) {
        Ok(()) => encoder.out,
        Err(NotSerializable) => "{}".into(),
    }
}
