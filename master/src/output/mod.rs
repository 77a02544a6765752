//! Salt's outputters for the CLI: the text `salt` prints for returns.
//!
//! The salt CLI hands each minion's return to an outputter as the dict
//! `{minion_id: return}` as soon as it arrives (one print per minion); with
//! `--static` it first collects every return into one dict (see
//! [`static_returns`]) and prints once. Errors and `--preview-target` lists
//! go through the same outputters as bare values. [`render`] returns
//! exactly what Salt 3007 writes to stdout for one such print: the
//! outputter's text with trailing white space stripped plus a newline, or
//! nothing at all when that text is empty.
//!
//! | [`Outputter`] | `--out` | what it prints |
//! | --- | --- | --- |
//! | `Nested` | `nested` (default) | one line per scalar; dict keys sorted, values indented by 4 under `key:`; a dict below the top starts with `----------`; list items as `- item`, nested containers under `\|_`; text split into its lines; `None`/`True`/numbers as Python prints them |
//! | `Json` | `json` | Python's `json.dumps(ensure_ascii=False, default=repr)`: indent 4 by default, `--out-indent N`, one line for a negative N, keys in arrival order |
//! | `Yaml` | `yaml` | PyYAML's `safe_dump(default_flow_style=False, allow_unicode=True)` through libyaml: sorted keys, block style, lists not indented under their key, text quoted whenever YAML 1.1 would read it as another type, lines folded past column 80; `--out-indent N` sets the indentation, a negative N gives flow style |
//! | `Txt` | `txt`, `text` | `key: line` for every line of every text value, `key: str(value)` for the rest |
//! | `Raw` | `raw` | Python's `str()` of the whole dict |
//! | `Quiet` | `quiet` | nothing |
//!
//! Colors (nested only, as in Salt): keys and `----------` cyan, text green,
//! `None`, booleans and numbers light yellow, `|_` green; for a failed
//! return (`retcode` not 0) keys, `----------` and `|_` turn red. The codes
//! are Salt's (`ESC[0;36m` …, reset `ESC[0;0m`). Escape characters inside
//! text print as `?` (`strip_colors`). Decide `color` with [`use_color`]
//! from `--force-color`, `--no-color` and whether stdout is a terminal.
//!
//! ```
//! use brine_master::output::{render, OutputOptions, Outputter};
//! use brine_protocol::Value;
//!
//! let ret = Value::Map(vec![(
//!     Value::from("web1"),
//!     Value::Map(vec![
//!         (Value::from("stdout"), Value::from("a\nb")),
//!         (Value::from("retcode"), Value::from(0)),
//!     ]),
//! )]);
//! let opts = OutputOptions::default();
//! let nested = render(Outputter::Nested, &ret, &opts);
//! assert_eq!(nested, "web1:\n    ----------\n    retcode:\n        0\n    stdout:\n        a\n        b\n");
//! let txt = render("txt".parse().unwrap(), &ret, &opts);
//! assert_eq!(txt, "web1: {'stdout': 'a\\nb', 'retcode': 0}\n");
//! let yaml = render(Outputter::Yaml, &ret, &opts);
//! assert_eq!(yaml, "web1:\n  retcode: 0\n  stdout: 'a\n\n    b'\n");
//! let err = "pretty".parse::<Outputter>().unwrap_err();
//! assert_eq!(err.to_string(), "no outputter named \"pretty\" (available: nested, json, yaml, txt, raw, quiet)");
//! ```
//!
//! The data is read as Salt's Python reads a return (`salt.payload.loads`):
//! bytes that are valid UTF-8 are text, other bytes stay bytes, ext items
//! are their payload bytes, and map keys that Python holds equal (`1`,
//! `1.0`, `True`) merge, the last value winning.
//!
//! Where Brine differs from Salt:
//! - Only these six outputters exist. A minion suggesting another one
//!   (`highstate`, `pprint`, `table`, …) gets nested; see
//!   [`Outputter::choose`]. Salt also falls back to nested, but only for
//!   names it has no outputter for.
//! - Ext items 78 and 79 (datetimes, Salt constants) print as their payload
//!   bytes; Salt would decode them into Python objects first.
//! - `color_theme` files are not read.
//! - `txt` on a bare value that is neither a dict nor text uses Python's
//!   `pprint`; where that sorts dict keys of types Python cannot compare it
//!   falls back to memory addresses, Brine to arrival order.

mod json;
mod nested;
mod pprint;
mod pyobj;
mod txt;
mod yaml;

use std::fmt;
use std::str::FromStr;

use brine_protocol::Value;
use brine_protocol::pyfmt::{py_str, rstrip};

/// Salt's ANSI color codes (`salt.utils.color.get_colors`).
mod color {
    pub(super) const RED: &str = "\x1b[0;31m";
    pub(super) const GREEN: &str = "\x1b[0;32m";
    pub(super) const LIGHT_YELLOW: &str = "\x1b[0;1;33m";
    pub(super) const CYAN: &str = "\x1b[0;36m";
    pub(super) const ENDC: &str = "\x1b[0;0m";
}

/// One of Salt's outputters (`--out`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Outputter {
    /// `nested`, Salt's default.
    #[default]
    Nested,
    /// `json`.
    Json,
    /// `yaml`.
    Yaml,
    /// `txt` (also spelled `text`).
    Txt,
    /// `raw`: Python's `str()` of the data.
    Raw,
    /// `quiet`: prints nothing.
    Quiet,
}

impl Outputter {
    /// Every outputter, in the order error messages list them.
    pub const ALL: [Outputter; 6] = [
        Outputter::Nested,
        Outputter::Json,
        Outputter::Yaml,
        Outputter::Txt,
        Outputter::Raw,
        Outputter::Quiet,
    ];

    /// The name `--out` takes.
    pub fn name(self) -> &'static str {
        match self {
            Outputter::Nested => "nested",
            Outputter::Json => "json",
            Outputter::Yaml => "yaml",
            Outputter::Txt => "txt",
            Outputter::Raw => "raw",
            Outputter::Quiet => "quiet",
        }
    }

    /// The outputter for one return, as the salt CLI picks it: `--out` if
    /// given, else the one the minion suggested (the `out` field of its
    /// return) when Brine has it, else nested. With `--static` Salt ignores
    /// suggestions: pass `None` for `suggested`.
    pub fn choose(cli: Option<Outputter>, suggested: Option<&str>) -> Outputter {
        cli.or_else(|| suggested.and_then(|name| name.parse().ok()))
            .unwrap_or_default()
    }

    /// [`render`] with this outputter.
    pub fn render(self, data: &Value, opts: &OutputOptions) -> String {
        render(self, data, opts)
    }
}

impl fmt::Display for Outputter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Outputter {
    type Err = OutputError;

    /// Salt's names (case-sensitive, as Salt's loader is); `text` is `txt`.
    fn from_str(name: &str) -> Result<Outputter, OutputError> {
        if name == "text" {
            return Ok(Outputter::Txt);
        }
        Outputter::ALL
            .into_iter()
            .find(|o| o.name() == name)
            .ok_or_else(|| OutputError::UnknownOutputter {
                name: name.to_owned(),
                available: Outputter::ALL.map(Outputter::name).join(", "),
            })
    }
}

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// `--out` named an outputter Brine does not have.
    #[error("no outputter named {name:?} (available: {available})")]
    UnknownOutputter {
        /// The name asked for.
        name: String,
        /// The known names, comma-separated.
        available: String,
    },
}

/// `--out-indent` (config `output_indent`), for json and yaml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indent {
    /// `--out-indent N`: json indents by N (one line if negative); yaml
    /// indents blocks by N (2 unless 2..=9; flow style if negative).
    Spaces(i64),
    /// `output_indent: pretty` in the config: json indents by 4 and sorts
    /// keys; yaml fails on it in Salt, which then prints nested.
    Pretty,
}

/// How to print: the options Salt's outputters read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputOptions {
    /// Colored nested output (Salt's `color`; see [`use_color`]).
    pub color: bool,
    /// `--out-indent` / `output_indent`; `None` when not given.
    pub indent: Option<Indent>,
    /// The highest retcode of the minions in this print (Salt's
    /// `_retcode`); not 0 paints nested keys red. `--static` prints with 0.
    pub retcode: i64,
    /// Config `nested_indent`: spaces before every nested line.
    pub nested_indent: usize,
    /// Config `strip_colors` (default on): nested prints ESC in text as `?`.
    pub strip_colors: bool,
}

impl Default for OutputOptions {
    fn default() -> OutputOptions {
        OutputOptions {
            color: false,
            indent: None,
            retcode: 0,
            nested_indent: 0,
            strip_colors: true,
        }
    }
}

/// Salt's color decision: `--force-color` wins, then `--no-color`, then
/// color only when stdout is a terminal.
pub fn use_color(force_color: bool, no_color: bool, stdout_is_terminal: bool) -> bool {
    force_color || (!no_color && stdout_is_terminal)
}

/// What Salt prints for `data` (usually `{minion_id: return}`) with `out`:
/// the outputter's text, right-stripped, plus a newline; empty when there
/// is nothing to print (quiet, an empty dict under nested).
pub fn render(out: Outputter, data: &Value, opts: &OutputOptions) -> String {
    let data = pyobj::normalize(data);
    let text = match out {
        Outputter::Nested => nested::render(&data, opts),
        Outputter::Json => json::render(&data, opts.indent),
        Outputter::Yaml => {
            yaml::render(&data, opts.indent).unwrap_or_else(|| nested::render(&data, opts))
        }
        Outputter::Txt => txt::render(&data),
        Outputter::Raw => py_str(&data),
        Outputter::Quiet => String::new(),
    };
    let text = rstrip(&text);
    if text.is_empty() {
        String::new()
    } else {
        format!("{text}\n")
    }
}

/// The one dict `--static` prints: every `(minion_id, return)` in arrival
/// order; a minion that returns twice keeps its place and its last return
/// (Python's `dict.update`).
pub fn static_returns<I, K>(returns: I) -> Value
where
    I: IntoIterator<Item = (K, Value)>,
    K: AsRef<str>,
{
    let mut all = Value::map();
    for (id, ret) in returns {
        all.insert(id.as_ref(), ret);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known_ones() {
        for out in Outputter::ALL {
            assert_eq!(out.name().parse::<Outputter>(), Ok(out));
        }
        assert_eq!("text".parse::<Outputter>(), Ok(Outputter::Txt));
        let err = "highstate".parse::<Outputter>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "no outputter named \"highstate\" (available: nested, json, yaml, txt, raw, quiet)"
        );
        assert!("JSON".parse::<Outputter>().is_err());
    }

    #[test]
    fn cli_choice_beats_the_minions_suggestion() {
        assert_eq!(Outputter::choose(None, None), Outputter::Nested);
        assert_eq!(Outputter::choose(None, Some("txt")), Outputter::Txt);
        assert_eq!(
            Outputter::choose(None, Some("highstate")),
            Outputter::Nested
        );
        assert_eq!(
            Outputter::choose(Some(Outputter::Json), Some("txt")),
            Outputter::Json
        );
    }

    #[test]
    fn color_follows_salts_flags() {
        assert!(use_color(true, true, false));
        assert!(!use_color(false, true, true));
        assert!(!use_color(false, false, false));
        assert!(use_color(false, false, true));
    }

    #[test]
    fn static_returns_update_in_place() {
        let all = static_returns([
            ("web2", Value::Bool(true)),
            ("db1", Value::Bool(false)),
            ("web2", Value::from("again")),
        ]);
        assert_eq!(
            all,
            Value::Map(vec![
                (Value::from("web2"), Value::from("again")),
                (Value::from("db1"), Value::Bool(false)),
            ])
        );
    }

    #[test]
    fn quiet_and_empty_print_nothing() {
        let opts = OutputOptions::default();
        let ret = Value::Map(vec![(Value::from("web1"), Value::Bool(true))]);
        assert_eq!(render(Outputter::Quiet, &ret, &opts), "");
        assert_eq!(render(Outputter::Nested, &Value::map(), &opts), "");
        assert_eq!(render(Outputter::Json, &Value::map(), &opts), "{}\n");
    }
}
