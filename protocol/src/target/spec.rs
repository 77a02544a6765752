//! What a publish says about its target: `tgt`, `tgt_type` and `delimiter`.

use std::fmt;
use std::str::FromStr;

use super::nodegroup::expand_nodegroups;
use super::{Nodegroups, TargetError};
use crate::Value;

/// Salt's default delimiter between grain keys and values (`DEFAULT_TARGET_DELIM`).
pub const DEFAULT_DELIMITER: &str = ":";

/// A publish's target, as the load carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `tgt`: the expression.
    pub expr: TargetExpr,
    /// `tgt_type`: how to read it.
    pub tgt_type: TargetType,
    /// `delimiter`: separates keys and value in `grain`/`grain_pcre` targets
    /// (compound `G@` words use their own, `:` by default).
    pub delimiter: String,
}

impl Target {
    /// A target of this type, with the default delimiter.
    pub fn new(expr: impl Into<TargetExpr>, tgt_type: TargetType) -> Target {
        Target {
            expr: expr.into(),
            tgt_type,
            delimiter: DEFAULT_DELIMITER.to_owned(),
        }
    }

    /// A glob on minion ids, Salt's default target type.
    pub fn glob(expr: impl Into<String>) -> Target {
        Target::new(TargetExpr::Text(expr.into()), TargetType::Glob)
    }

    /// The same target with another grain delimiter.
    pub fn with_delimiter(self, delimiter: impl Into<String>) -> Target {
        Target {
            delimiter: delimiter.into(),
            ..self
        }
    }

    /// Reads `tgt`, `tgt_type` (default `glob`) and `delimiter` (default
    /// `:`) from a publish load.
    ///
    /// # Errors
    /// [`TargetError::InvalidExpression`] if `tgt` is missing or has the
    /// wrong shape, [`TargetError::UnknownType`] for an unknown `tgt_type`.
    pub fn from_load(load: &Value) -> Result<Target, TargetError> {
        let tgt = load
            .get("tgt")
            .ok_or_else(|| TargetError::InvalidExpression {
                reason: "the load has no tgt".to_owned(),
            })?;
        let tgt_type = match load.get("tgt_type") {
            None | Some(Value::Nil) => TargetType::Glob,
            Some(v) => v
                .as_str()
                .ok_or_else(|| TargetError::InvalidExpression {
                    reason: "tgt_type is not a string".to_owned(),
                })?
                .parse()?,
        };
        let delimiter = load
            .get("delimiter")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_DELIMITER);
        Ok(Target {
            expr: TargetExpr::from_value(tgt)?,
            tgt_type,
            delimiter: delimiter.to_owned(),
        })
    }

    /// The target as the master publishes it (Salt's `_prep_pub`): a
    /// `nodegroup` target becomes the `compound` expression it stands for,
    /// and `N@` words of a compound target are expanded, so minions need no
    /// nodegroup definitions. Other targets are returned unchanged.
    ///
    /// # Errors
    /// [`TargetError::UnknownNodegroup`] and [`TargetError::NodegroupCycle`];
    /// [`TargetError::InvalidExpression`] for a nodegroup target that is not a name.
    pub fn resolve_nodegroups(&self, nodegroups: &Nodegroups) -> Result<Target, TargetError> {
        let expr = match self.tgt_type {
            TargetType::Nodegroup => {
                let name = self
                    .expr
                    .as_text()
                    .ok_or_else(|| TargetError::InvalidExpression {
                        reason: "a nodegroup target must be a name".to_owned(),
                    })?;
                nodegroups.expand(name)?.join(" ")
            }
            TargetType::Compound | TargetType::CompoundPillarExact => {
                expand_nodegroups(&self.expr, nodegroups)?
            }
            _ => return Ok(self.clone()),
        };
        let tgt_type = match self.tgt_type {
            TargetType::Nodegroup => TargetType::Compound,
            other => other,
        };
        Ok(Target {
            expr: TargetExpr::Text(expr),
            tgt_type,
            delimiter: self.delimiter.clone(),
        })
    }
}

/// The `tgt` of a load: a string, or for `list` and `compound` targets a
/// list (of ids, of words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetExpr {
    /// A string: a pattern, a compound expression, comma-separated ids.
    Text(String),
    /// A list of strings.
    List(Vec<String>),
}

impl TargetExpr {
    /// Reads a `tgt` value: a string (or UTF-8 bytes) or a list of them.
    ///
    /// # Errors
    /// [`TargetError::InvalidExpression`] for anything else.
    pub fn from_value(v: &Value) -> Result<TargetExpr, TargetError> {
        if let Some(s) = v.as_str() {
            return Ok(TargetExpr::Text(s.to_owned()));
        }
        let items = v.as_array().ok_or_else(|| TargetError::InvalidExpression {
            reason: "tgt is neither a string nor a list".to_owned(),
        })?;
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| TargetError::InvalidExpression {
                        reason: "a tgt list holds something other than strings".to_owned(),
                    })
            })
            .collect::<Result<_, _>>()
            .map(TargetExpr::List)
    }

    /// The `tgt` value to put in a load.
    pub fn to_value(&self) -> Value {
        match self {
            TargetExpr::Text(s) => Value::from(s.as_str()),
            TargetExpr::List(items) => {
                Value::Array(items.iter().map(|i| Value::from(i.as_str())).collect())
            }
        }
    }

    /// The string, if this is one.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            TargetExpr::Text(s) => Some(s),
            TargetExpr::List(_) => None,
        }
    }

    /// The words of a compound expression: a string split on whitespace as
    /// Python's `str.split()` does, or the list items as they are.
    pub(crate) fn words(&self) -> impl Iterator<Item = &str> {
        let (text, list) = match self {
            TargetExpr::Text(s) => (Some(s.as_str()), None),
            TargetExpr::List(items) => (None, Some(items)),
        };
        text.into_iter()
            .flat_map(py_split)
            .chain(list.into_iter().flatten().map(String::as_str))
    }
}

impl From<&str> for TargetExpr {
    fn from(s: &str) -> Self {
        TargetExpr::Text(s.to_owned())
    }
}

impl From<String> for TargetExpr {
    fn from(s: String) -> Self {
        TargetExpr::Text(s)
    }
}

impl From<Vec<String>> for TargetExpr {
    fn from(items: Vec<String>) -> Self {
        TargetExpr::List(items)
    }
}

impl From<&[&str]> for TargetExpr {
    fn from(items: &[&str]) -> Self {
        TargetExpr::List(items.iter().map(|s| (*s).to_owned()).collect())
    }
}

/// Python's `str.split()` with no argument: runs of whitespace separate
/// words (Python also counts U+001C..U+001F as whitespace).
pub(crate) fn py_split(s: &str) -> impl Iterator<Item = &str> + Clone {
    s.split(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
        .filter(|w| !w.is_empty())
}

/// Salt's `tgt_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TargetType {
    /// `glob`: shell pattern on the minion id (the default).
    #[default]
    Glob,
    /// `pcre`: regular expression on the minion id, anchored at its start.
    Pcre,
    /// `list`: minion ids, a list or a comma-separated string.
    List,
    /// `grain`: `key:subkey:glob` on the grains.
    Grain,
    /// `grain_pcre`: `key:subkey:regex` on the grains.
    GrainPcre,
    /// `pillar` (not supported yet).
    Pillar,
    /// `pillar_pcre` (not supported yet).
    PillarPcre,
    /// `pillar_exact` (not supported yet).
    PillarExact,
    /// `compound`: matches joined with `and`/`or`/`not` and parentheses.
    Compound,
    /// `compound_pillar_exact`: compound, with exact pillar matches (pillar
    /// words are not supported yet; the rest works as `compound`).
    CompoundPillarExact,
    /// `nodegroup`: a name from the master's `nodegroups`.
    Nodegroup,
    /// `ipcidr`: an address or network on the `ipv4`/`ipv6` grains.
    Ipcidr,
    /// `range` (not supported).
    Range,
}

impl TargetType {
    const ALL: [TargetType; 13] = [
        TargetType::Glob,
        TargetType::Pcre,
        TargetType::List,
        TargetType::Grain,
        TargetType::GrainPcre,
        TargetType::Pillar,
        TargetType::PillarPcre,
        TargetType::PillarExact,
        TargetType::Compound,
        TargetType::CompoundPillarExact,
        TargetType::Nodegroup,
        TargetType::Ipcidr,
        TargetType::Range,
    ];

    /// Salt's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::Glob => "glob",
            TargetType::Pcre => "pcre",
            TargetType::List => "list",
            TargetType::Grain => "grain",
            TargetType::GrainPcre => "grain_pcre",
            TargetType::Pillar => "pillar",
            TargetType::PillarPcre => "pillar_pcre",
            TargetType::PillarExact => "pillar_exact",
            TargetType::Compound => "compound",
            TargetType::CompoundPillarExact => "compound_pillar_exact",
            TargetType::Nodegroup => "nodegroup",
            TargetType::Ipcidr => "ipcidr",
            TargetType::Range => "range",
        }
    }

    /// Whether Brine can match targets of this type.
    pub fn is_supported(self) -> bool {
        !matches!(
            self,
            TargetType::Pillar
                | TargetType::PillarPcre
                | TargetType::PillarExact
                | TargetType::Range
        )
    }
}

impl FromStr for TargetType {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TargetType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| TargetError::UnknownType { name: s.to_owned() })
    }
}

impl fmt::Display for TargetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip() {
        for t in TargetType::ALL {
            assert_eq!(t.as_str().parse::<TargetType>().unwrap(), t);
        }
        assert_eq!(
            "Glob".parse::<TargetType>().unwrap_err(),
            TargetError::UnknownType {
                name: "Glob".into()
            }
        );
    }

    #[test]
    fn from_load_defaults_and_shapes() {
        let load: Value = [("tgt", Value::from("web*"))].into_iter().collect();
        assert_eq!(Target::from_load(&load).unwrap(), Target::glob("web*"));
        let load: Value = [
            (
                "tgt",
                Value::Array(vec!["a".into(), Value::Bytes(b"b".to_vec())]),
            ),
            ("tgt_type", Value::from("list")),
        ]
        .into_iter()
        .collect();
        let t = Target::from_load(&load).unwrap();
        assert_eq!(t.expr, TargetExpr::List(vec!["a".into(), "b".into()]));
        assert_eq!(
            t.expr.to_value(),
            Value::Array(vec!["a".into(), "b".into()])
        );
        let load: Value = [("tgt", Value::Int(1))].into_iter().collect();
        assert!(matches!(
            Target::from_load(&load),
            Err(TargetError::InvalidExpression { .. })
        ));
    }

    #[test]
    fn python_whitespace() {
        let words: Vec<_> = py_split(" a\tb\u{1f}c\u{a0}d  ").collect();
        assert_eq!(words, ["a", "b", "c", "d"]);
    }
}
