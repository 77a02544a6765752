//! Printing a command's data with the outputter `--out` names, as Salt's
//! `display_output` does: the outputter's text right-stripped plus one
//! newline, or nothing at all when that text is empty.

use std::fmt;
use std::str::FromStr;

use brine_protocol::Value;

use super::report::{self, Palette};
use crate::output::{OutputOptions, Outputter};

/// An `--out` choice: Salt's `key` outputter (what `brine-key` prints by
/// default) or one of the general [`Outputter`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out {
    /// `key`: headings per key state; other data falls back to nested, as
    /// in Salt.
    Key,
    /// `nested`, `json`, `yaml`, `txt`, `raw`, `quiet`.
    General(Outputter),
}

impl Out {
    /// Nested, the default of everything but `brine-key`.
    pub const NESTED: Out = Out::General(Outputter::Nested);
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Out::Key => f.write_str("key"),
            Out::General(out) => out.fmt(f),
        }
    }
}

impl FromStr for Out {
    type Err = String;

    fn from_str(name: &str) -> Result<Out, String> {
        if name == "key" {
            return Ok(Out::Key);
        }
        name.parse::<Outputter>().map(Out::General).map_err(|_| {
            let known: Vec<&str> = std::iter::once("key")
                .chain(Outputter::ALL.iter().map(|o| o.name()))
                .collect();
            format!(
                "no outputter named {name:?} (available: {})",
                known.join(", ")
            )
        })
    }
}

/// Parses an `--out` value (a clap value parser).
///
/// # Errors
/// A readable message naming the known outputters.
pub fn parse_outputter(name: &str) -> Result<Out, String> {
    name.parse()
}

/// How a command prints its data: the `--out` choice and the outputter
/// options (colour, indent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printer {
    out: Option<Out>,
    opts: OutputOptions,
}

impl Printer {
    /// Prints with `out` when given, else with each call's default; in
    /// colour when `color` (decide it with [`crate::output::use_color`]).
    pub fn new(out: Option<Out>, color: bool) -> Self {
        Printer {
            out,
            opts: OutputOptions {
                color,
                ..OutputOptions::default()
            },
        }
    }

    /// The same printer with these outputter options.
    pub fn with_options(mut self, opts: OutputOptions) -> Self {
        self.opts = opts;
        self
    }

    /// The outputter options.
    pub fn options(&self) -> &OutputOptions {
        &self.opts
    }

    /// The outputter `--out` chose, if any.
    pub fn chosen(&self) -> Option<Out> {
        self.out
    }

    /// What Salt's `display_output(data, default)` writes to stdout.
    pub fn format(&self, data: &Value, default: Out) -> String {
        match self.out.unwrap_or(default) {
            Out::Key => match report::render(data, Palette::new(self.opts.color)) {
                Some(text) => {
                    let trimmed = text.trim_end();
                    if trimmed.is_empty() {
                        String::new()
                    } else {
                        format!("{trimmed}\n")
                    }
                }
                None => Outputter::Nested.render(data, &self.opts),
            },
            Out::General(out) => out.render(data, &self.opts),
        }
    }

    /// As [`Printer::format`] with nested as the default, or the
    /// outputter the data suggests (a runner's `outputter`, a minion's
    /// `out`) when Brine has it.
    pub fn format_suggested(&self, data: &Value, suggested: Option<&str>) -> String {
        let default = suggested
            .and_then(|name| name.parse::<Out>().ok())
            .unwrap_or(Out::NESTED);
        self.format(data, default)
    }
}
