//! Nodegroups: named compound expressions from the master's `nodegroups`
//! config, expanded on the master before a job is published (Salt's
//! `nodegroup_comp` and `LocalClient._prep_pub`), so minions never need the
//! definitions.
//!
//! Expansion follows Salt: a definition is split into words; `N@name` words
//! are replaced by that group's expansion wrapped in `( … )`; a definition
//! made only of plain words becomes `L@a,b,c` (or `E@a,b,c` when a word
//! holds a regex character), as Salt's shorthand for a list of minion ids.
//! Two deliberate differences from Salt 3007, both where Salt loses the
//! group's meaning:
//! - an `N@` word inside a larger compound expression is always wrapped in
//!   parentheses (Salt leaves a group without nested groups unwrapped, so
//!   `N@g and x` with `g: a or b` became `a or b and x`);
//! - each item of a list definition is split into words too (Salt takes
//!   `- 'N@g and not x'` as one word and fails to find the group).
//!
//! A group that includes itself, directly or not, and an unknown group are
//! typed errors instead of Salt's silent drop of the word.

use std::collections::BTreeMap;

use super::pystr::with_py_str;
use super::{TargetError, TargetExpr, compound::OPERATORS, py_split};
use crate::Value;

/// The master's nodegroup definitions: name → compound expression (a
/// string or a list of words).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nodegroups {
    groups: BTreeMap<String, TargetExpr>,
}

impl Nodegroups {
    /// No nodegroups.
    pub fn new() -> Nodegroups {
        Nodegroups::default()
    }

    /// Defines (or redefines) `name`, returning the previous definition.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        definition: impl Into<TargetExpr>,
    ) -> Option<TargetExpr> {
        self.groups.insert(name.into(), definition.into())
    }

    /// The definition of `name`.
    pub fn get(&self, name: &str) -> Option<&TargetExpr> {
        self.groups.get(name)
    }

    /// The definitions, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TargetExpr)> {
        self.groups.iter().map(|(name, def)| (name.as_str(), def))
    }

    /// Whether no nodegroup is defined.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Reads the `nodegroups` config value: a map from name to a string or a
    /// list (list items that are not strings take their Python `str()`, as
    /// Salt does).
    ///
    /// # Errors
    /// [`TargetError::InvalidNodegroup`] for a definition that is neither a
    /// string nor a list, [`TargetError::InvalidExpression`] if `value` is
    /// not a map or a name is not a string.
    pub fn from_value(value: &Value) -> Result<Nodegroups, TargetError> {
        let mut groups = BTreeMap::new();
        if value.is_nil() {
            return Ok(Nodegroups { groups });
        }
        let entries = value
            .as_map()
            .ok_or_else(|| TargetError::InvalidExpression {
                reason: "nodegroups must be a map".to_owned(),
            })?;
        for (name, def) in entries {
            let name = name
                .as_str()
                .ok_or_else(|| TargetError::InvalidExpression {
                    reason: "a nodegroup name is not a string".to_owned(),
                })?;
            let def = match def {
                Value::Array(items) => TargetExpr::List(
                    items
                        .iter()
                        .map(|i| with_py_str(i, str::to_owned))
                        .collect(),
                ),
                other => match other.as_str() {
                    Some(s) => TargetExpr::Text(s.to_owned()),
                    None => {
                        return Err(TargetError::InvalidNodegroup {
                            name: name.to_owned(),
                        });
                    }
                },
            };
            groups.insert(name.to_owned(), def);
        }
        Ok(Nodegroups { groups })
    }

    /// Salt's `nodegroup_comp(name)`: the words `name` expands to, with every
    /// nested `N@` group expanded.
    ///
    /// # Errors
    /// [`TargetError::UnknownNodegroup`] if `name` or a group it includes is
    /// not defined, [`TargetError::NodegroupCycle`] if a group includes itself.
    pub fn expand(&self, name: &str) -> Result<Vec<String>, TargetError> {
        Ok(self.comp(name, &mut Vec::new(), true)?.words)
    }

    /// The expansion of `name` as one operand of a larger compound
    /// expression: parenthesised unless it is a single word.
    pub(crate) fn expand_operand(&self, name: &str) -> Result<Vec<String>, TargetError> {
        let Expansion { mut words, grouped } = self.comp(name, &mut Vec::new(), true)?;
        if words.len() > 1 && !grouped {
            words.insert(0, "(".to_owned());
            words.push(")".to_owned());
        }
        Ok(words)
    }

    fn comp<'n>(
        &'n self,
        name: &'n str,
        stack: &mut Vec<&'n str>,
        first_call: bool,
    ) -> Result<Expansion, TargetError> {
        if stack.contains(&name) {
            let mut path = stack.join(" -> ");
            path.push_str(" -> ");
            path.push_str(name);
            return Err(TargetError::NodegroupCycle {
                name: name.to_owned(),
                path,
            });
        }
        let def = self
            .groups
            .get(name)
            .ok_or_else(|| TargetError::UnknownNodegroup {
                name: name.to_owned(),
            })?;
        let words: Vec<&str> = match def {
            TargetExpr::Text(s) => py_split(s).collect(),
            TargetExpr::List(items) => items.iter().flat_map(|i| py_split(i)).collect(),
        };
        stack.push(name);
        let mut ret = Vec::with_capacity(words.len() + 2);
        let mut nested = false;
        for &word in &words {
            match word.strip_prefix("N@").filter(|group| !group.is_empty()) {
                Some(group) => {
                    nested = true;
                    ret.extend(self.comp(group, stack, false)?.words);
                }
                _ => ret.push(word.to_owned()),
            }
        }
        stack.pop();
        if !ret.is_empty() {
            ret.insert(0, "(".to_owned());
            ret.push(")".to_owned());
        }
        if nested || !first_call {
            if !first_call && let Some(shorthand) = shorthand(&words) {
                return Ok(Expansion::single(shorthand));
            }
            return Ok(Expansion {
                words: ret,
                grouped: true,
            });
        }
        if let Some(shorthand) = shorthand(&words) {
            return Ok(Expansion::single(shorthand));
        }
        Ok(Expansion {
            words: words.into_iter().map(str::to_owned).collect(),
            grouped: false,
        })
    }
}

impl FromIterator<(String, TargetExpr)> for Nodegroups {
    fn from_iter<T: IntoIterator<Item = (String, TargetExpr)>>(iter: T) -> Self {
        Nodegroups {
            groups: iter.into_iter().collect(),
        }
    }
}

struct Expansion {
    words: Vec<String>,
    /// Whether `words` is a single operand already (one word, or wrapped in parentheses).
    grouped: bool,
}

impl Expansion {
    fn single(word: String) -> Expansion {
        Expansion {
            words: vec![word],
            grouped: true,
        }
    }
}

/// Salt's `_nodegroup_regex`: a definition of plain words (no operator, no
/// `*`, no `X@` engine) is a list of ids, or a regex list if a word holds a
/// regex character.
fn shorthand(words: &[&str]) -> Option<String> {
    if words.iter().any(|w| OPERATORS.contains(w)) {
        return None;
    }
    let has_engine = |w: &str| {
        let mut chars = w.chars();
        matches!((chars.next(), chars.next()), (Some(c), Some('@')) if c.is_ascii_uppercase())
    };
    if words.iter().any(|w| w.contains('*') || has_engine(w)) {
        return None;
    }
    const REGEX_CHARS: [char; 8] = ['(', '[', '{', '\\', '?', '}', ']', ')'];
    let engine = if words.iter().any(|w| w.contains(REGEX_CHARS)) {
        "E@"
    } else {
        "L@"
    };
    Some(format!("{engine}{}", words.join(",")))
}

/// Expands every `N@name` word of a compound expression with `nodegroups`,
/// as the master does before publishing; the result is the expression the
/// minions receive.
///
/// # Errors
/// [`TargetError::UnknownNodegroup`] and [`TargetError::NodegroupCycle`] as
/// for [`Nodegroups::expand`].
pub fn expand_nodegroups(
    expr: &TargetExpr,
    nodegroups: &Nodegroups,
) -> Result<String, TargetError> {
    let mut out: Vec<String> = Vec::new();
    for word in expr.words() {
        match nodegroup_word(word) {
            Some(name) => out.extend(nodegroups.expand_operand(name)?),
            None => out.push(word.to_owned()),
        }
    }
    Ok(out.join(" "))
}

/// The group named by an `N@name` word.
pub(crate) fn nodegroup_word(word: &str) -> Option<&str> {
    word.strip_prefix("N@").filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> Nodegroups {
        let mut ng = Nodegroups::new();
        ng.insert("web", "web1 web2");
        ng.insert("rx", "web?");
        ng.insert("mixed", "G@role:db or web*");
        ng.insert("nested", "N@web or N@mixed");
        ng.insert(
            "listed",
            TargetExpr::List(vec!["N@web and".into(), "not web2".into()]),
        );
        ng.insert("loop_a", "N@loop_b");
        ng.insert("loop_b", "x or N@loop_a");
        ng.insert("self", "N@self");
        ng
    }

    #[test]
    fn salt_expansion_shapes() {
        let ng = groups();
        assert_eq!(ng.expand("web").unwrap(), ["L@web1,web2"]);
        assert_eq!(ng.expand("rx").unwrap(), ["E@web?"]);
        assert_eq!(ng.expand("mixed").unwrap(), ["G@role:db", "or", "web*"]);
        assert_eq!(
            ng.expand("nested").unwrap().join(" "),
            "( L@web1,web2 or ( G@role:db or web* ) )"
        );
        // Salt's own inner shorthand: a nested plain group is one L@ word.
        assert_eq!(
            ng.expand("listed").unwrap().join(" "),
            "( L@web1,web2 and not web2 )"
        );
    }

    #[test]
    fn operands_keep_their_meaning() {
        let ng = groups();
        let expr = TargetExpr::from("N@mixed and x");
        assert_eq!(
            expand_nodegroups(&expr, &ng).unwrap(),
            "( G@role:db or web* ) and x"
        );
        let expr = TargetExpr::from("N@web or N@");
        assert_eq!(expand_nodegroups(&expr, &ng).unwrap(), "L@web1,web2 or N@");
    }

    #[test]
    fn cycles_and_unknown_groups() {
        let ng = groups();
        assert_eq!(
            ng.expand("loop_a").unwrap_err(),
            TargetError::NodegroupCycle {
                name: "loop_a".into(),
                path: "loop_a -> loop_b -> loop_a".into()
            }
        );
        assert!(matches!(
            ng.expand("self"),
            Err(TargetError::NodegroupCycle { .. })
        ));
        assert_eq!(
            ng.expand("nope").unwrap_err(),
            TargetError::UnknownNodegroup {
                name: "nope".into()
            }
        );
    }

    #[test]
    fn from_config_value() {
        let v: Value = [
            ("a", Value::from("x or y")),
            ("b", Value::Array(vec![Value::Int(1), "two".into()])),
        ]
        .into_iter()
        .collect();
        let ng = Nodegroups::from_value(&v).unwrap();
        assert_eq!(ng.expand("b").unwrap(), ["L@1,two"]);
        let bad: Value = [("a", Value::Int(3))].into_iter().collect();
        assert!(matches!(
            Nodegroups::from_value(&bad),
            Err(TargetError::InvalidNodegroup { .. })
        ));
    }
}
