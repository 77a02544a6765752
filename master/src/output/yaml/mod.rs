//! Salt's `yaml` outputter: `salt.utils.yaml.safe_dump(data,
//! default_flow_style=False)`, that is PyYAML's `SafeRepresenter` with
//! sorted keys, `allow_unicode=True`, driving libyaml's emitter.
//!
//! The representer turns the data into [`Node`]s the way PyYAML does
//! (floats as `1.0e+16`, `.nan`, `.inf`; bytes as `!!binary` base64; text
//! that PyYAML would read back as another type marked so it gets quoted),
//! and [`emitter`] writes them as libyaml does.

mod emitter;
mod scalar;

use brine_protocol::Value;
use brine_protocol::pyfmt::float_repr;

use super::Indent;
use super::pyobj::sorted_keys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScalarStyle {
    /// The emitter picks (plain when it can).
    Any,
    /// `|`, asked for by the binary representer.
    Literal,
}

#[derive(Debug)]
struct Scalar {
    value: String,
    /// A tag that must be written, as (handle, suffix): only `!!binary`.
    tag: Option<(&'static str, &'static str)>,
    /// PyYAML's resolver reads the plain text back as this scalar's type.
    plain_implicit: bool,
    /// Quoted text reads back as this scalar's type (true for strings).
    quoted_implicit: bool,
    style: ScalarStyle,
}

#[derive(Debug)]
enum Node {
    Scalar(Scalar),
    Sequence {
        items: Vec<Node>,
        flow: bool,
    },
    Mapping {
        entries: Vec<(Node, Node)>,
        flow: bool,
    },
}

/// A scalar of a non-string type whose text always reads back as that type.
fn typed(value: impl Into<String>) -> Node {
    Node::Scalar(Scalar {
        value: value.into(),
        tag: None,
        plain_implicit: true,
        quoted_implicit: false,
        style: ScalarStyle::Any,
    })
}

/// PyYAML's float text: `repr()` lowercased, with `.0` put before a bare exponent.
fn float_text(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    let text = float_repr(f).to_lowercase();
    if !text.contains('.') && text.contains('e') {
        text.replacen('e', ".0e", 1)
    } else {
        text
    }
}

/// Python's `base64.encodebytes`: lines of 76 characters, each ending in a newline.
fn encodebytes(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len() * 4 / 3 + data.len() / 57 + 4);
    for line in data.chunks(57) {
        for group in line.chunks(3) {
            let b = [
                group.first().copied().unwrap_or(0),
                group.get(1).copied().unwrap_or(0),
                group.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for k in 0..4 {
                if k <= group.len() {
                    let index = usize::try_from((n >> (18 - 6 * k)) & 0x3F).unwrap_or(0);
                    out.push(char::from(ALPHABET.get(index).copied().unwrap_or(b'A')));
                } else {
                    out.push('=');
                }
            }
        }
        out.push('\n');
    }
    out
}

fn represent(value: &Value, flow: bool) -> Node {
    match value {
        Value::Nil => typed("null"),
        Value::Bool(b) => typed(if *b { "true" } else { "false" }),
        Value::Int(i) => typed(i.to_string()),
        Value::UInt(u) => typed(u.to_string()),
        Value::Float(f) => typed(float_text(*f)),
        Value::Str(s) => Node::Scalar(Scalar {
            value: s.clone(),
            tag: None,
            plain_implicit: !scalar::resolves_to_other_type(s),
            quoted_implicit: true,
            style: ScalarStyle::Any,
        }),
        Value::Bytes(b) | Value::Ext(_, b) => Node::Scalar(Scalar {
            value: encodebytes(b),
            tag: Some(("!!", "binary")),
            plain_implicit: false,
            quoted_implicit: false,
            style: ScalarStyle::Literal,
        }),
        Value::Array(items) => Node::Sequence {
            items: items.iter().map(|item| represent(item, flow)).collect(),
            flow,
        },
        Value::Map(entries) => {
            // sorted when Python can compare the keys, else as they came
            let order = sorted_keys(entries.iter().map(|(k, _)| k))
                .unwrap_or_else(|| (0..entries.len()).collect());
            Node::Mapping {
                entries: order
                    .into_iter()
                    .filter_map(|i| entries.get(i))
                    .map(|(k, v)| (represent(k, flow), represent(v, flow)))
                    .collect(),
                flow,
            }
        }
    }
}

/// The text of Salt's yaml outputter. `indent` is `--out-indent`: absent →
/// block style indented by 2; `n >= 0` → block style indented by `n`
/// (libyaml takes 2..=9, anything else is 2); negative → flow style.
/// `None` for `output_indent: pretty`, which makes Salt's yaml outputter
/// fail (Salt then prints with nested).
pub(super) fn render(data: &Value, indent: Option<Indent>) -> Option<String> {
    let (flow, width) = match indent {
        None => (false, 2),
        Some(Indent::Pretty) => return None,
        Some(Indent::Spaces(n)) => match usize::try_from(n) {
            Ok(n) => (false, n),
            Err(_) => (true, 0),
        },
    };
    let root = represent(data, flow);
    Some(emitter::Emitter::new(width).document(&root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_python() {
        assert_eq!(encodebytes(b""), "");
        assert_eq!(encodebytes(b"\xff\x00"), "/wA=\n");
        assert_eq!(encodebytes(b"abc"), "YWJj\n");
        assert_eq!(encodebytes(b"abcd"), "YWJjZA==\n");
        let long = encodebytes(&[0u8; 58]);
        let lines: Vec<&str> = long.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines.first().map(|l| l.len()), Some(76));
        assert_eq!(lines.get(1).copied(), Some("AA=="));
    }

    #[test]
    fn floats_print_like_pyyaml() {
        assert_eq!(float_text(1e16), "1.0e+16");
        assert_eq!(float_text(1e-7), "1.0e-07");
        assert_eq!(float_text(0.5), "0.5");
        assert_eq!(float_text(f64::NEG_INFINITY), "-.inf");
        assert_eq!(float_text(f64::NAN), ".nan");
    }

    #[test]
    fn documents_look_like_safe_dump() {
        let data = Value::Map(vec![
            (
                Value::from("b"),
                Value::Array(vec![Value::Int(1), Value::from("yes")]),
            ),
            (Value::from("a"), Value::map()),
        ]);
        assert_eq!(
            render(&data, None).as_deref(),
            Some("a: {}\nb:\n- 1\n- 'yes'\n")
        );
        assert_eq!(
            render(&data, Some(Indent::Spaces(-1))).as_deref(),
            Some("{a: {}, b: [1, 'yes']}\n")
        );
        assert_eq!(render(&data, Some(Indent::Pretty)), None);
    }
}
