//! Salt's `nested` outputter: one line per scalar, dict keys sorted and
//! indented by four, list items as `- item`, nested containers under `|_`.

use std::collections::HashMap;

use brine_protocol::Value;
use brine_protocol::pyfmt::{float_repr, py_str, splitlines};

use super::OutputOptions;
use super::color;
use super::pyobj::sorted_keys;

/// The colors nested uses, or empty strings when color is off.
struct Palette {
    scalar: &'static str,
    text: &'static str,
    list: &'static str,
    key: &'static str,
    reset: &'static str,
}

impl Palette {
    fn new(opts: &OutputOptions) -> Palette {
        if !opts.color {
            return Palette {
                scalar: "",
                text: "",
                list: "",
                key: "",
                reset: "",
            };
        }
        // a failed return paints the structure red, the values keep theirs
        let failed = opts.retcode != 0;
        Palette {
            scalar: color::LIGHT_YELLOW,
            text: color::GREEN,
            list: if failed { color::RED } else { color::GREEN },
            key: if failed { color::RED } else { color::CYAN },
            reset: color::ENDC,
        }
    }
}

struct Nest {
    palette: Palette,
    strip_colors: bool,
}

impl Nest {
    /// One output line: indent, color, prefix, text, reset, suffix.
    fn line(
        &self,
        out: &mut Vec<String>,
        indent: usize,
        color: &str,
        prefix: &str,
        msg: &str,
        suffix: &str,
    ) {
        let reset = self.palette.reset;
        out.push(format!("{:indent$}{color}{prefix}{msg}{reset}{suffix}", ""));
    }

    fn display(&self, value: &Value, indent: usize, prefix: &str, out: &mut Vec<String>) {
        let scalar = self.palette.scalar;
        match value {
            Value::Nil => self.line(out, indent, scalar, prefix, "None", ""),
            Value::Bool(b) => {
                let text = if *b { "True" } else { "False" };
                self.line(out, indent, scalar, prefix, text, "");
            }
            Value::Int(i) => self.line(out, indent, scalar, prefix, &i.to_string(), ""),
            Value::UInt(u) => self.line(out, indent, scalar, prefix, &u.to_string(), ""),
            Value::Float(f) => self.line(out, indent, scalar, prefix, &float_repr(*f), ""),
            Value::Str(s) => {
                let blank = " ".repeat(prefix.chars().count());
                for (i, line) in splitlines(s).into_iter().enumerate() {
                    let line_prefix = if i == 0 { prefix } else { blank.as_str() };
                    let text = if self.strip_colors {
                        line.replace('\x1b', "?")
                    } else {
                        line.to_owned()
                    };
                    self.line(out, indent, self.palette.text, line_prefix, &text, "");
                }
            }
            // bytes Python cannot decode match no branch of Salt's outputter
            Value::Bytes(_) | Value::Ext(..) => {}
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Map(_) => {
                            self.line(out, indent, self.palette.list, "", "|_", "");
                            self.display(item, indent + 2, "", out);
                        }
                        Value::Array(_) => {
                            self.line(out, indent, self.palette.list, "", "|_", "");
                            self.display(item, indent + 2, "- ", out);
                        }
                        _ => self.display(item, indent, "- ", out),
                    }
                }
            }
            Value::Map(entries) => {
                if indent > 0 {
                    self.line(out, indent, self.palette.key, "", "----------", "");
                }
                for (key, value) in sorted_entries(entries) {
                    self.line(out, indent, self.palette.key, prefix, &key, ":");
                    self.display(value, indent + 4, "", out);
                }
            }
        }
    }
}

/// The entries in Salt's order: sorted keys, or, when Python cannot compare
/// them, every key turned into its `str()` (equal texts merge, the last
/// value wins) and sorted as text.
fn sorted_entries(entries: &[(Value, Value)]) -> Vec<(String, &Value)> {
    if let Some(order) = sorted_keys(entries.iter().map(|(k, _)| k)) {
        return order
            .into_iter()
            .filter_map(|i| entries.get(i))
            .map(|(k, v)| (py_str(k), v))
            .collect();
    }
    let mut merged: Vec<(String, &Value)> = Vec::with_capacity(entries.len());
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(entries.len());
    for (k, v) in entries {
        let key = py_str(k);
        if let Some(&at) = seen.get(&key) {
            if let Some(slot) = merged.get_mut(at) {
                slot.1 = v;
            }
        } else {
            seen.insert(key.clone(), merged.len());
            merged.push((key, v));
        }
    }
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    merged
}

/// The text of Salt's nested outputter for `data` (before Salt's final rstrip).
pub(super) fn render(data: &Value, opts: &OutputOptions) -> String {
    let nest = Nest {
        palette: Palette::new(opts),
        strip_colors: opts.strip_colors,
    };
    let mut lines = Vec::new();
    nest.display(data, opts.nested_indent, "", &mut lines);
    lines.join("\n")
}
