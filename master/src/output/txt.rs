//! Salt's `txt` outputter: `key: line` for every line of every value, so a
//! command's output reads as it would on the minion.

use brine_protocol::Value;
use brine_protocol::pyfmt::{py_str, splitlines, write_bytes_repr};

use super::pprint::pformat;

/// `bytes.splitlines()`: breaks at `\n`, `\r` and `\r\n` only.
fn bytes_splitlines(b: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while let Some(&byte) = b.get(i) {
        if byte == b'\n' || byte == b'\r' {
            lines.push(b.get(start..i).unwrap_or_default());
            i += if byte == b'\r' && b.get(i + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            start = i;
        } else {
            i += 1;
        }
    }
    if start < b.len() {
        lines.push(b.get(start..).unwrap_or_default());
    }
    lines
}

/// The text of Salt's txt outputter: for a dict, `key: line` per line of
/// each text value (empty text prints nothing) and `key: str(value)` for
/// the rest; text as is; anything else through `pprint`.
pub(super) fn render(data: &Value) -> String {
    let mut out = String::new();
    match data {
        Value::Map(entries) => {
            for (key, value) in entries {
                let key = py_str(key);
                match value {
                    Value::Str(s) => {
                        for line in splitlines(s) {
                            out.push_str(&format!("{key}: {line}\n"));
                        }
                    }
                    Value::Bytes(b) => {
                        for line in bytes_splitlines(b) {
                            out.push_str(&key);
                            out.push_str(": ");
                            write_bytes_repr(&mut out, line);
                            out.push('\n');
                        }
                    }
                    other => out.push_str(&format!("{key}: {}\n", py_str(other))),
                }
            }
        }
        Value::Str(s) => {
            out.push_str(s);
            out.push('\n');
        }
        other => {
            out.push_str(&pformat(other));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_split_like_python() {
        let lines = bytes_splitlines(b"a\nb\r\nc\rd\x0be");
        assert_eq!(lines, [&b"a"[..], b"b", b"c", b"d\x0be"]);
        assert!(bytes_splitlines(b"").is_empty());
        assert_eq!(bytes_splitlines(b"x\n"), [&b"x"[..]]);
    }
}
