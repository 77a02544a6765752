//! Python's `pprint.pformat(data)` (width 80, sorted dicts), which Salt's
//! `txt` outputter uses for data that is neither a dict nor text.

use std::cmp::Ordering;

use brine_protocol::Value;
use brine_protocol::pyfmt::{is_space, py_repr, splitlines_keepends, str_repr, write_bytes_repr};

use super::pyobj::{KeyClass, py_cmp};

const WIDTH: i64 = 80;

/// `repr()` of a value as `pprint` sees it: bytes always as `b'…'`.
fn repr(value: &Value) -> String {
    match value {
        Value::Bytes(b) => bytes_repr(b),
        Value::Map(entries) => {
            let parts: Vec<String> = sorted_entries(entries)
                .map(|(k, v)| format!("{}: {}", repr(k), repr(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", parts.join(", "))
        }
        other => py_repr(other),
    }
}

fn bytes_repr(b: &[u8]) -> String {
    let mut out = String::new();
    write_bytes_repr(&mut out, b);
    out
}

fn width_of(text: &str) -> i64 {
    i64::try_from(text.chars().count()).unwrap_or(i64::MAX)
}

/// `pprint`'s dict order: sorted keys; keys Python cannot compare fall
/// back to their type's name (and, unlike Python, arrival order instead of
/// memory addresses).
fn sorted_entries(entries: &[(Value, Value)]) -> impl Iterator<Item = &(Value, Value)> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&x, &y| {
        let (Some((a, _)), Some((b, _))) = (entries.get(x), entries.get(y)) else {
            return Ordering::Equal;
        };
        let (ca, cb) = (KeyClass::of(a), KeyClass::of(b));
        if ca == cb {
            py_cmp(a, b).unwrap_or_else(|| x.cmp(&y))
        } else {
            ca.type_name().cmp(cb.type_name())
        }
    });
    order.into_iter().filter_map(|i| entries.get(i))
}

/// `re.findall(r'\S*\s*', line)` without its final empty match.
fn words(line: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        let word_end = rest.find(is_space).unwrap_or(rest.len());
        let tail = rest.get(word_end..).unwrap_or_default();
        let space_len = tail.find(|c: char| !is_space(c)).unwrap_or(tail.len());
        let (part, next) = rest.split_at(word_end + space_len);
        parts.push(part);
        rest = next;
    }
    parts
}

struct Printer {
    out: String,
}

impl Printer {
    fn format(&mut self, value: &Value, indent: i64, allowance: i64, level: usize) {
        let rep = repr(value);
        if width_of(&rep) > WIDTH - indent - allowance {
            match value {
                Value::Map(entries) => return self.dict(entries, indent, allowance, level + 1),
                Value::Array(items) => return self.list(items, indent, allowance, level + 1),
                Value::Str(s) => return self.text(s, indent, allowance, level + 1),
                Value::Bytes(b) => return self.bytes(b, indent, allowance, level + 1),
                _ => {}
            }
        }
        self.out.push_str(&rep);
    }

    fn newline(&mut self, indent: i64) {
        self.out.push('\n');
        let spaces = usize::try_from(indent).unwrap_or(0);
        self.out.extend(std::iter::repeat_n(' ', spaces));
    }

    fn dict(&mut self, entries: &[(Value, Value)], indent: i64, allowance: i64, level: usize) {
        self.out.push('{');
        let indent = indent + 1;
        let last = entries.len().saturating_sub(1);
        for (i, (key, value)) in sorted_entries(entries).enumerate() {
            let rep = repr(key);
            self.out.push_str(&rep);
            self.out.push_str(": ");
            let allowance = if i == last { allowance + 1 } else { 1 };
            self.format(value, indent + width_of(&rep) + 2, allowance, level);
            if i != last {
                self.out.push(',');
                self.newline(indent);
            }
        }
        self.out.push('}');
    }

    fn list(&mut self, items: &[Value], indent: i64, allowance: i64, level: usize) {
        self.out.push('[');
        let indent = indent + 1;
        let last = items.len().saturating_sub(1);
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
                self.newline(indent);
            }
            let allowance = if i == last { allowance + 1 } else { 1 };
            self.format(item, indent, allowance, level);
        }
        self.out.push(']');
    }

    fn text(&mut self, s: &str, mut indent: i64, mut allowance: i64, level: usize) {
        if s.is_empty() {
            self.out.push_str(&str_repr(s));
            return;
        }
        let lines = splitlines_keepends(s);
        if level == 1 {
            indent += 1;
            allowance += 1;
        }
        let max_width = WIDTH - indent;
        let mut max_width1 = max_width;
        let mut chunks = Vec::new();
        let last_line = lines.len().saturating_sub(1);
        for (i, line) in lines.iter().enumerate() {
            let rep = str_repr(line);
            if i == last_line {
                max_width1 -= allowance;
            }
            if width_of(&rep) <= max_width1 {
                chunks.push(rep);
                continue;
            }
            let parts = words(line);
            let last_part = parts.len().saturating_sub(1);
            let mut max_width2 = max_width;
            let mut current = String::new();
            for (j, part) in parts.iter().enumerate() {
                let candidate = format!("{current}{part}");
                if j == last_part && i == last_line {
                    max_width2 -= allowance;
                }
                if width_of(&str_repr(&candidate)) > max_width2 {
                    if !current.is_empty() {
                        chunks.push(str_repr(&current));
                    }
                    current = (*part).to_owned();
                } else {
                    current = candidate;
                }
            }
            if !current.is_empty() {
                chunks.push(str_repr(&current));
            }
        }
        self.chunks(&chunks, indent, level);
    }

    fn chunks(&mut self, chunks: &[String], indent: i64, level: usize) {
        if let [only] = chunks {
            self.out.push_str(only);
            return;
        }
        if level == 1 {
            self.out.push('(');
        }
        for (i, chunk) in chunks.iter().enumerate() {
            if i > 0 {
                self.newline(indent);
            }
            self.out.push_str(chunk);
        }
        if level == 1 {
            self.out.push(')');
        }
    }

    fn bytes(&mut self, b: &[u8], mut indent: i64, mut allowance: i64, level: usize) {
        if b.len() <= 4 {
            self.out.push_str(&bytes_repr(b));
            return;
        }
        if level == 1 {
            indent += 1;
            allowance += 1;
        }
        // groups of four bytes, as many per line as fit
        let mut width = WIDTH - indent;
        let mut chunks = Vec::new();
        let mut current: Vec<u8> = Vec::new();
        let last = b.len() / 4 * 4;
        for (n, part) in b.chunks(4).enumerate() {
            let mut candidate = current.clone();
            candidate.extend_from_slice(part);
            if n * 4 == last {
                width -= allowance;
            }
            if width_of(&bytes_repr(&candidate)) > width {
                if !current.is_empty() {
                    chunks.push(bytes_repr(&current));
                }
                current = part.to_vec();
            } else {
                current = candidate;
            }
        }
        if !current.is_empty() {
            chunks.push(bytes_repr(&current));
        }
        if level == 1 {
            // Python writes the parentheses even around a single chunk here
            self.out.push('(');
            for (i, chunk) in chunks.iter().enumerate() {
                if i > 0 {
                    self.newline(indent);
                }
                self.out.push_str(chunk);
            }
            self.out.push(')');
        } else {
            self.chunks(&chunks, indent, 2);
        }
    }
}

/// `pprint.pformat(value)`.
pub(super) fn pformat(value: &Value) -> String {
    let mut printer = Printer { out: String::new() };
    printer.format(value, 0, 0, 0);
    printer.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_print_as_repr() {
        let v = Value::Map(vec![
            (Value::from("b"), Value::Int(1)),
            (Value::from("a"), Value::Nil),
        ]);
        assert_eq!(pformat(&v), "{'a': None, 'b': 1}");
        assert_eq!(pformat(&Value::Int(42)), "42");
    }

    #[test]
    fn long_lists_break_one_item_a_line() {
        let items: Vec<Value> = (0..12)
            .map(|i| Value::from(format!("minion-{i:02}")))
            .collect();
        let text = pformat(&Value::Array(items));
        assert!(text.starts_with("['minion-00',\n 'minion-01',\n"));
        assert!(text.ends_with(" 'minion-11']"));
    }

    #[test]
    fn words_keep_their_trailing_space() {
        assert_eq!(words("ab  cd e "), ["ab  ", "cd ", "e "]);
        assert_eq!(words("  x"), ["  ", "x"]);
        assert_eq!(splitlines_keepends("a\r\nb\nc"), ["a\r\n", "b\n", "c"]);
    }
}
