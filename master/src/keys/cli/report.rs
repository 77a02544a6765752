//! Salt's `key` outputter: the headings and colours `salt-key` prints.
//!
//! The data is a map from a state directory name (`minions`,
//! `minions_pre`, `minions_rejected`, `minions_denied`) or `local` to
//! either a list of ids or a map of id to text (a fingerprint, a key).
//! States print in sorted name order (`local`, accepted, denied,
//! unaccepted, rejected), ids sorted, each state under its heading:
//!
//! ```text
//! Accepted Keys:
//! web1
//! Unaccepted Keys:
//! web2:  c6:34:…
//! ```

use brine_protocol::Value;
use brine_protocol::pyfmt::py_str;

/// ANSI SGR sequences as Salt's `TextFormat` writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Palette {
    color: bool,
}

impl Palette {
    pub(crate) fn new(color: bool) -> Self {
        Palette { color }
    }

    fn code(self, code: &'static str) -> &'static str {
        if self.color { code } else { "" }
    }

    fn end(self) -> &'static str {
        self.code("\x1b[0;0m")
    }
}

/// The heading text and the (heading, entry) colours of a state.
fn style(status: &str) -> Option<(&'static str, &'static str, &'static str)> {
    match status {
        "minions_pre" => Some(("Unaccepted Keys:", "\x1b[0;1;31m", "\x1b[0;31m")),
        "minions" => Some(("Accepted Keys:", "\x1b[0;1;32m", "\x1b[0;32m")),
        "minions_denied" => Some(("Denied Keys:", "\x1b[0;1;35m", "\x1b[0;35m")),
        "minions_rejected" => Some(("Rejected Keys:", "\x1b[0;1;34m", "\x1b[0;34m")),
        "local" => Some(("Local Keys:", "\x1b[0;1;35m", "\x1b[0;35m")),
        _ => None,
    }
}

/// Whether `data` has the shape the `key` outputter prints (Salt falls
/// back to `nested` for anything else).
pub(crate) fn is_key_data(data: &Value) -> bool {
    data.as_map().is_some_and(|entries| {
        entries.iter().all(|(k, v)| {
            k.as_str().and_then(style).is_some() && matches!(v, Value::Array(_) | Value::Map(_))
        })
    })
}

/// Replaces ESC so an id cannot drive the terminal (Salt's
/// `strip_esc_sequence`).
fn strip_esc(text: &str) -> String {
    text.replace('\x1b', "?")
}

/// Renders `data` as Salt's `key` outputter does, before `display_output`
/// right-strips it; `None` if `data` is not key data.
pub(crate) fn render(data: &Value, palette: Palette) -> Option<String> {
    if !is_key_data(data) {
        return None;
    }
    let mut states: Vec<(&str, &Value)> = data
        .as_map()
        .unwrap_or_default()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?, v)))
        .collect();
    states.sort_by(|a, b| a.0.cmp(b.0));
    let end = palette.end();
    let mut out = String::new();
    for (status, entries) in states {
        let Some((heading, heading_color, color)) = style(status) else {
            continue;
        };
        out.push_str(palette.code(heading_color));
        out.push_str(heading);
        out.push_str(end);
        out.push('\n');
        let color = palette.code(color);
        match entries {
            Value::Array(ids) => {
                let mut ids: Vec<String> = ids.iter().map(py_str).collect();
                ids.sort();
                for id in ids {
                    out.push_str(&format!("{color}{}{end}\n", strip_esc(&id)));
                }
            }
            Value::Map(pairs) => {
                let mut pairs: Vec<(String, String)> =
                    pairs.iter().map(|(k, v)| (py_str(k), py_str(v))).collect();
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
                for (id, value) in pairs {
                    out.push_str(&format!("{color}{}:  {value}{end}\n", strip_esc(&id)));
                }
            }
            _ => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Value {
        Value::Array(list.iter().map(|s| Value::from(*s)).collect())
    }

    #[test]
    fn states_print_in_salts_order_with_headings() {
        let data: Value = [
            ("minions", ids(&["acc1"])),
            ("minions_pre", ids(&["web2", "web1"])),
            ("minions_rejected", ids(&["db1"])),
            ("minions_denied", ids(&[])),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            render(&data, Palette::new(false)).unwrap(),
            "Accepted Keys:\nacc1\nDenied Keys:\nUnaccepted Keys:\nweb1\nweb2\nRejected Keys:\ndb1\n"
        );
    }

    #[test]
    fn colours_are_salts_sequences() {
        let data: Value = [("minions", ids(&["a"]))].into_iter().collect();
        assert_eq!(
            render(&data, Palette::new(true)).unwrap(),
            "\x1b[0;1;32mAccepted Keys:\x1b[0;0m\n\x1b[0;32ma\x1b[0;0m\n"
        );
    }

    #[test]
    fn maps_print_id_and_value() {
        let data: Value = [(
            "local",
            [("master.pub", Value::from("aa:bb"))]
                .into_iter()
                .collect::<Value>(),
        )]
        .into_iter()
        .collect();
        assert_eq!(
            render(&data, Palette::new(false)).unwrap(),
            "Local Keys:\nmaster.pub:  aa:bb\n"
        );
    }

    #[test]
    fn other_shapes_are_not_key_data() {
        let data: Value = [("return", Value::from("x"))].into_iter().collect();
        assert!(render(&data, Palette::new(false)).is_none());
        assert!(render(&Value::from("x"), Palette::new(false)).is_none());
        assert_eq!(render(&Value::map(), Palette::new(false)).unwrap(), "");
    }
}
