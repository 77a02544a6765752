//! Targeting: which minions a job is for, with Salt 3007's semantics.
//!
//! A publish carries `tgt`, `tgt_type` and, for grain targets, `delimiter`
//! ([`Target`]). The master computes from them the minions it expects to
//! hear from ([`expected_minions`], Salt's `CkMinions.check_minions`), from
//! the accepted keys and the grains it has cached; every minion receives
//! every publish and checks the target itself before running anything
//! ([`matches()`], Salt's `Minion._target_load`).
//!
//! | `tgt_type` | matches | Salt counterpart |
//! | --- | --- | --- |
//! | `glob` (default) | the id, with `fnmatch` (`*`, `?`, `[seq]`, `[!seq]`; case-sensitive) | `matchers/glob_match.py` |
//! | `pcre` | the id, with Python's `re.match` (anchored at the start only) | `matchers/pcre_match.py` |
//! | `list` | the id, in a list or a comma-separated string | `matchers/list_match.py` |
//! | `grain` | `key:subkey:glob` in the grains, both sides lowercased | `matchers/grain_match.py`, `utils/data.py:subdict_match` |
//! | `grain_pcre` | `key:subkey:regex` in the grains | `matchers/grain_pcre_match.py` |
//! | `ipcidr` | an address or network on the `ipv4`/`ipv6` grains | `matchers/ipcidr_match.py` |
//! | `compound` | `G@`, `P@`, `L@`, `E@`, `S@`, `N@` and globs with `and`/`or`/`not`/`( )` | `matchers/compound_match.py` |
//! | `nodegroup` | a named compound expression from the master config, expanded on the master | `utils/minions.py:nodegroup_comp` |
//!
//! `pillar`, `pillar_pcre`, `pillar_exact` (and `I@`/`J@`) and `range`
//! (`R@`) parse but report [`TargetError::Unsupported`].
//!
//! Where Salt would log and quietly match nothing — a malformed compound
//! expression, a regex that does not compile, a grain target without a
//! delimiter, an unknown or self-including nodegroup — Brine returns a
//! typed [`TargetError`] naming the problem: the master refuses the job,
//! the minion ignores the publish. The few other places where Brine
//! departs from Salt are listed with [`Nodegroups`] and in the compound
//! module docs (an unknown `X@` prefix is an error, not a literal glob).
//!
//! ```
//! use brine_protocol::Value;
//! use brine_protocol::target::{
//!     ExpectOptions, MinionView, Nodegroups, Target, TargetType, expected_minions, matches,
//! };
//!
//! # fn main() -> Result<(), brine_protocol::target::TargetError> {
//! let web: Value = [("role", Value::from("web"))].into_iter().collect();
//! let target = Target::new("G@role:web or db*", TargetType::Compound);
//!
//! // On a minion:
//! assert!(matches(&target, &MinionView::new("m1", &web))?);
//!
//! // On the master: accepted keys and cached grains (none cached for m3).
//! let accepted = [("m1", Some(&web)), ("db1", None), ("m3", None)];
//! let expected = expected_minions(&target, accepted, &ExpectOptions::default())?;
//! // Greedy, as Salt: m3 has no cached grains, so it might be a web server.
//! assert_eq!(expected.minions, ["m1", "db1", "m3"]);
//!
//! // Nodegroups are expanded on the master before publishing.
//! let mut groups = Nodegroups::new();
//! groups.insert("webs", "G@role:web and not G@env:prod");
//! let published = Target::new("webs", TargetType::Nodegroup).resolve_nodegroups(&groups)?;
//! assert_eq!(published, Target::new("G@role:web and not G@env:prod", TargetType::Compound));
//! # Ok(())
//! # }
//! ```

mod compound;
mod error;
mod expected;
mod fnmatch;
mod ipcidr;
mod matcher;
mod nodegroup;
mod pcre;
mod pystr;
mod spec;
mod subdict;

pub use error::{CompoundFault, TargetError};
pub use expected::{ExpectOptions, ExpectedMinions, expected_minions};
pub use matcher::{Matcher, MinionView, matches};
pub use nodegroup::{Nodegroups, expand_nodegroups};
pub use spec::{DEFAULT_DELIMITER, Target, TargetExpr, TargetType};

use spec::py_split;

#[cfg(test)]
mod tests;
