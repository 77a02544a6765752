//! A target compiled once and evaluated per minion: on the minion, against
//! its own id and grains; on the master, against each accepted key and its
//! cached grains.

use std::collections::HashMap;

use super::compound::{self, Node};
use super::fnmatch::Glob;
use super::ipcidr::IpTarget;
use super::pcre::Pcre;
use super::subdict::Subdict;
use super::{Nodegroups, Target, TargetError, TargetExpr, TargetType};
use crate::Value;

/// What a minion knows about itself when it checks a publish's target.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct MinionView<'a> {
    /// The minion's id.
    pub id: &'a str,
    /// The minion's grains (a map).
    pub grains: &'a Value,
    /// Nodegroup definitions, if the minion has any. Masters expand
    /// nodegroups before publishing, so this is normally `None`.
    pub nodegroups: Option<&'a Nodegroups>,
}

impl<'a> MinionView<'a> {
    /// A minion with this id and these grains, and no nodegroups.
    pub fn new(id: &'a str, grains: &'a Value) -> MinionView<'a> {
        MinionView {
            id,
            grains,
            nodegroups: None,
        }
    }

    /// The same view, with nodegroup definitions to expand `N@` words.
    pub fn with_nodegroups(self, nodegroups: &'a Nodegroups) -> MinionView<'a> {
        MinionView {
            nodegroups: Some(nodegroups),
            ..self
        }
    }
}

/// Whether the publish with this target is for this minion (Salt's
/// `Minion._target_load`).
///
/// # Errors
/// Any [`TargetError`] from [`Matcher::compile`]; the minion then treats the
/// publish as not for it.
pub fn matches(target: &Target, minion: &MinionView<'_>) -> Result<bool, TargetError> {
    Ok(Matcher::compile(target, minion.nodegroups)?.matches(minion))
}

/// A compiled target, reusable for any number of minions.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub(crate) root: Node,
}

impl Matcher {
    /// Compiles `target`; `nodegroups` expands `nodegroup` targets and `N@`
    /// words.
    ///
    /// # Errors
    /// - [`TargetError::Unsupported`] for pillar and range targets;
    /// - [`TargetError::InvalidExpression`] when the expression has the
    ///   wrong shape (a list where a string is needed);
    /// - [`TargetError::InvalidRegex`], [`TargetError::MissingDelimiter`],
    ///   [`TargetError::InvalidIp`] for a bad pattern;
    /// - [`TargetError::Compound`] for a malformed compound expression;
    /// - [`TargetError::UnknownNodegroup`], [`TargetError::NodegroupCycle`]
    ///   for nodegroups.
    pub fn compile(
        target: &Target,
        nodegroups: Option<&Nodegroups>,
    ) -> Result<Matcher, TargetError> {
        let text = || {
            target
                .expr
                .as_text()
                .ok_or_else(|| TargetError::InvalidExpression {
                    reason: format!("a {} target must be a string", target.tgt_type),
                })
        };
        let leaf = match target.tgt_type {
            TargetType::Glob => Leaf::Glob(Glob::new(text()?)),
            TargetType::Pcre => Leaf::Pcre(Pcre::new(text()?)?),
            TargetType::List => Leaf::List(match &target.expr {
                TargetExpr::Text(s) => IdList::from_text(s),
                TargetExpr::List(items) => IdList::from_items(items),
            }),
            TargetType::Grain => Leaf::Grain(Subdict::new(text()?, &target.delimiter, false)?),
            TargetType::GrainPcre => Leaf::Grain(Subdict::new(text()?, &target.delimiter, true)?),
            TargetType::Ipcidr => Leaf::Ipcidr(IpTarget::parse(text()?)?),
            TargetType::Compound | TargetType::CompoundPillarExact => {
                return Ok(Matcher {
                    root: compound::parse(&target.expr, nodegroups)?,
                });
            }
            TargetType::Nodegroup => {
                let name = text()?;
                let ng = nodegroups.ok_or_else(|| TargetError::UnknownNodegroup {
                    name: name.to_owned(),
                })?;
                let words = TargetExpr::List(ng.expand(name)?);
                return Ok(Matcher {
                    root: compound::parse(&words, None)?,
                });
            }
            TargetType::Pillar | TargetType::PillarPcre | TargetType::PillarExact => {
                return Err(TargetError::Unsupported {
                    what: "pillar targeting",
                });
            }
            TargetType::Range => {
                return Err(TargetError::Unsupported {
                    what: "range targeting",
                });
            }
        };
        Ok(Matcher {
            root: Node::Leaf {
                leaf,
                negated: false,
            },
        })
    }

    /// Whether the minion matches, by its own view of itself.
    pub fn matches(&self, minion: &MinionView<'_>) -> bool {
        self.root.eval(&Subject {
            id: minion.id,
            grains: Some(minion.grains),
            greedy: false,
            on_master: false,
        })
    }
}

/// The minion a target is evaluated against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub(crate) id: &'a str,
    /// `None` on the master when no grains are cached for the minion.
    pub(crate) grains: Option<&'a Value>,
    /// Whether a grain or ipcidr match counts as true without cached grains.
    pub(crate) greedy: bool,
    /// The master splits list strings on commas; the minion runs Salt's substring checks.
    pub(crate) on_master: bool,
}

/// One match of a target or of a compound word.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Leaf {
    Glob(Glob),
    Pcre(Pcre),
    List(IdList),
    Grain(Subdict),
    Ipcidr(IpTarget),
}

impl Leaf {
    /// Compiles one compound word; `Err(None)` for an unknown `X@` engine.
    pub(crate) fn from_word(word: &str) -> Result<Leaf, Option<TargetError>> {
        let Some((engine, delimiter, pattern)) = split_engine(word) else {
            let mut chars = word.chars();
            let unknown = matches!(
                (chars.next(), chars.next(), chars.next()),
                (Some(c), Some('@'), Some(_)) if c.is_ascii_uppercase()
            );
            return if unknown {
                Err(None)
            } else {
                Ok(Leaf::Glob(Glob::new(word)))
            };
        };
        let delimiter = delimiter.map_or_else(|| ":".to_owned(), String::from);
        let leaf = match engine {
            'G' => Leaf::Grain(Subdict::new(pattern, &delimiter, false)?),
            'P' => Leaf::Grain(Subdict::new(pattern, &delimiter, true)?),
            'L' => Leaf::List(IdList::from_text(pattern)),
            'E' => Leaf::Pcre(Pcre::new(pattern)?),
            'S' => Leaf::Ipcidr(IpTarget::parse(pattern)?),
            'N' => {
                return Err(Some(TargetError::UnknownNodegroup {
                    name: pattern.to_owned(),
                }));
            }
            'I' | 'J' => {
                return Err(Some(TargetError::Unsupported {
                    what: "pillar targeting",
                }));
            }
            _ => {
                return Err(Some(TargetError::Unsupported {
                    what: "range targeting",
                }));
            }
        };
        Ok(leaf)
    }

    pub(crate) fn eval(&self, s: &Subject<'_>) -> bool {
        match self {
            Leaf::Glob(g) => g.is_match(s.id),
            Leaf::Pcre(re) => re.is_match(s.id),
            Leaf::List(list) => list.contains(s.id, s.on_master),
            Leaf::Grain(sub) => s.grains.map_or(s.greedy, |g| sub.matches(g)),
            Leaf::Ipcidr(ip) => s.grains.map_or(s.greedy, |g| ip.matches(g)),
        }
    }
}

/// Salt's `TARGET_REX`: an engine letter, for `G`/`P`/`I`/`J` an optional
/// one-character delimiter, `@`, and a non-empty pattern.
fn split_engine(word: &str) -> Option<(char, Option<char>, &str)> {
    let mut chars = word.chars();
    let engine = chars.next().filter(|c| "GPIJLNSER".contains(*c))?;
    let rest = chars.as_str();
    if "GPIJ".contains(engine) {
        let mut after = rest.chars();
        if let Some(delimiter) = after.next()
            && let Some(pattern) = after.as_str().strip_prefix('@').filter(|p| !p.is_empty())
        {
            return Some((engine, Some(delimiter), pattern));
        }
    }
    let pattern = rest.strip_prefix('@').filter(|p| !p.is_empty())?;
    Some((engine, None, pattern))
}

/// The ids of a `list` target or an `L@` word.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IdList {
    /// Distinct ids, in the order given.
    pub(crate) ids: Vec<String>,
    index: HashMap<String, usize>,
    /// The comma-separated text, when the list came as one.
    raw: Option<String>,
}

impl IdList {
    pub(crate) fn from_text(s: &str) -> IdList {
        let mut list = IdList::from_iter(s.split(',').filter(|id| !id.is_empty()));
        list.raw = Some(s.to_owned());
        list
    }

    pub(crate) fn from_items(items: &[String]) -> IdList {
        IdList::from_iter(items.iter().map(String::as_str))
    }

    fn from_iter<'i>(items: impl Iterator<Item = &'i str>) -> IdList {
        let mut ids = Vec::new();
        let mut index = HashMap::new();
        for id in items {
            if !index.contains_key(id) {
                index.insert(id.to_owned(), ids.len());
                ids.push(id.to_owned());
            }
        }
        IdList {
            ids,
            index,
            raw: None,
        }
    }

    fn contains(&self, id: &str, on_master: bool) -> bool {
        match &self.raw {
            // Salt's minion checks `,id,` / `id,` / `,id` / `id` on the raw
            // string; that differs from splitting only for ids with commas.
            Some(raw) if !on_master && id.contains(',') => {
                raw == id
                    || raw.contains(&format!(",{id},"))
                    || raw.strip_prefix(id).is_some_and(|r| r.starts_with(','))
                    || raw.strip_suffix(id).is_some_and(|r| r.ends_with(','))
            }
            _ => self.index.contains_key(id),
        }
    }
}
