//! The master's side: which accepted minions a target should reach (Salt's
//! `CkMinions.check_minions`), so the master knows whom to wait for.

use std::collections::HashMap;

use super::compound::Node;
use super::matcher::{IdList, Leaf, Matcher, Subject};
use super::{Nodegroups, Target, TargetError};
use crate::Value;

/// How the master computes expected minions.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ExpectOptions<'a> {
    /// Salt's `greedy` (default `true`): a grain or ipcidr match counts as
    /// true for a minion with no cached grains, so a minion the master knows
    /// nothing about is waited for rather than skipped.
    pub greedy: bool,
    /// The master's `nodegroups`, for `nodegroup` targets and `N@` words.
    pub nodegroups: Option<&'a Nodegroups>,
}

impl Default for ExpectOptions<'_> {
    fn default() -> Self {
        ExpectOptions {
            greedy: true,
            nodegroups: None,
        }
    }
}

impl<'a> ExpectOptions<'a> {
    /// The defaults, with these nodegroups.
    pub fn with_nodegroups(nodegroups: &'a Nodegroups) -> ExpectOptions<'a> {
        ExpectOptions {
            nodegroups: Some(nodegroups),
            ..ExpectOptions::default()
        }
    }

    /// The same options with `greedy` set.
    pub fn greedy(self, greedy: bool) -> ExpectOptions<'a> {
        ExpectOptions { greedy, ..self }
    }
}

/// The minions a job should hear from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedMinions {
    /// Accepted minions the target matches: in the target's order for a
    /// `list` target, in the order of the accepted keys otherwise.
    pub minions: Vec<String>,
    /// Ids a `list` target or an `L@` word names that have no accepted key
    /// (not those right after `not`), each once.
    pub missing: Vec<String>,
}

/// The accepted minions `target` matches, judged from their ids and cached
/// grains (`None`: nothing cached for that minion).
///
/// One pass over `accepted`; the target is compiled once, and no allocation
/// is made per minion but the ids that go into the result.
///
/// # Errors
/// As [`Matcher::compile`].
pub fn expected_minions<'m, I>(
    target: &Target,
    accepted: I,
    opts: &ExpectOptions<'_>,
) -> Result<ExpectedMinions, TargetError>
where
    I: IntoIterator<Item = (&'m str, Option<&'m Value>)>,
{
    Ok(Matcher::compile(target, opts.nodegroups)?.expected_minions(accepted, opts.greedy))
}

impl Matcher {
    /// [`expected_minions`] for an already compiled target.
    pub fn expected_minions<'m, I>(&self, accepted: I, greedy: bool) -> ExpectedMinions
    where
        I: IntoIterator<Item = (&'m str, Option<&'m Value>)>,
    {
        let mut lists = Vec::new();
        self.root.reported_lists(&mut lists);
        let top_list = match &self.root {
            Node::Leaf {
                leaf: Leaf::List(list),
                ..
            } => Some(list),
            _ => None,
        };
        let mut named = Named::new(&lists);
        let mut minions = Vec::new();
        for (id, grains) in accepted {
            named.see(id);
            if top_list.is_some() {
                continue;
            }
            let subject = Subject {
                id,
                grains,
                greedy,
                on_master: true,
            };
            if self.root.eval(&subject) {
                minions.push(id.to_owned());
            }
        }
        if let Some(list) = top_list {
            minions = named.found(list);
        }
        ExpectedMinions {
            minions,
            missing: named.missing(),
        }
    }
}

/// The ids named by lists, and which of them have been seen among the accepted keys.
struct Named<'l> {
    order: Vec<&'l str>,
    seen: HashMap<&'l str, bool>,
}

impl<'l> Named<'l> {
    fn new(lists: &[&'l IdList]) -> Named<'l> {
        let mut order = Vec::new();
        let mut seen = HashMap::new();
        for id in lists.iter().flat_map(|l| l.ids.iter()) {
            if seen.insert(id.as_str(), false).is_none() {
                order.push(id.as_str());
            }
        }
        Named { order, seen }
    }

    fn see(&mut self, id: &str) {
        if let Some(seen) = self.seen.get_mut(id) {
            *seen = true;
        }
    }

    fn is_seen(&self, id: &str) -> bool {
        self.seen.get(id).copied().unwrap_or(false)
    }

    /// The ids of `list` that were seen, in its order.
    fn found(&self, list: &IdList) -> Vec<String> {
        list.ids
            .iter()
            .filter(|id| self.is_seen(id))
            .cloned()
            .collect()
    }

    fn missing(&self) -> Vec<String> {
        self.order
            .iter()
            .filter(|id| !self.is_seen(id))
            .map(|id| (*id).to_owned())
            .collect()
    }
}
