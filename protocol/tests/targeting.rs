//! Targeting against a table stock Salt 3007.8 produced.
//!
//! `fixtures/targeting.msgpack` is written by `fixtures/make_targeting.py`
//! from Salt's own matchers (minion side), `CkMinions.check_minions` over a
//! throwaway pki dir and minion data cache (master side, greedy and not),
//! `nodegroup_comp`, `fnmatch` and `re`. For every target in it, Brine must
//! give the same answers, except where the table flags `brine_error` (Salt
//! quietly matches nothing there; Brine reports a typed error) and the
//! `deviations` (nodegroups that keep their meaning as compound operands).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeSet;

use brine_protocol::Value;
use brine_protocol::target::{
    ExpectOptions, ExpectedMinions, MinionView, Nodegroups, Target, TargetExpr, TargetType,
    expected_minions, matches,
};

struct Minion {
    id: String,
    grains: Value,
    cached: bool,
}

struct Table {
    root: Value,
    minions: Vec<Minion>,
    nodegroups: Nodegroups,
}

fn table() -> Table {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/targeting.msgpack"
    ))
    .unwrap();
    let root = Value::decode(&bytes).unwrap();
    assert_eq!(root.get("salt").unwrap().as_str(), Some("3007.8"));
    let minions = root
        .get("minions")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| Minion {
            id: m.get("id").unwrap().as_str().unwrap().to_owned(),
            grains: m.get("grains").unwrap().clone(),
            cached: m.get("cached").unwrap().as_bool().unwrap(),
        })
        .collect();
    let mut nodegroups = Nodegroups::from_value(root.get("nodegroups").unwrap()).unwrap();
    let extra = Nodegroups::from_value(root.get("deviation_groups").unwrap()).unwrap();
    for (name, def) in extra.iter() {
        nodegroups.insert(name, def.clone());
    }
    Table {
        root,
        minions,
        nodegroups,
    }
}

fn cases<'a>(t: &'a Table, key: &str) -> &'a [Value] {
    t.root.get(key).unwrap().as_array().unwrap()
}

fn target_of(case: &Value) -> Target {
    let mut load = Value::map();
    load.insert("tgt", case.get("tgt").unwrap().clone());
    load.insert("tgt_type", case.get("tgt_type").unwrap().clone());
    if let Some(d) = case.get("delimiter").and_then(Value::as_str) {
        load.insert("delimiter", d);
    }
    Target::from_load(&load).unwrap()
}

fn bools(v: &Value) -> Vec<bool> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_bool().unwrap())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn sorted(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

fn expected(t: &Table, target: &Target, greedy: bool) -> Result<ExpectedMinions, String> {
    let accepted = t
        .minions
        .iter()
        .map(|m| (m.id.as_str(), m.cached.then_some(&m.grains)));
    let opts = ExpectOptions::with_nodegroups(&t.nodegroups).greedy(greedy);
    expected_minions(target, accepted, &opts).map_err(|e| e.to_string())
}

/// What each fixture minion decides for the target as the master publishes it.
fn minion_side(t: &Table, target: &Target) -> Result<Vec<bool>, String> {
    let published = target
        .resolve_nodegroups(&t.nodegroups)
        .map_err(|e| e.to_string())?;
    t.minions
        .iter()
        .map(|m| matches(&published, &MinionView::new(&m.id, &m.grains)).map_err(|e| e.to_string()))
        .collect()
}

#[test]
fn targets_match_as_salt_decides() {
    let t = table();
    let mut checked = 0;
    for case in cases(&t, "targets") {
        let target = target_of(case);
        let what = format!("{:?} ({})", target.expr, target.tgt_type);
        if case.get("brine_error").unwrap().as_bool().unwrap() {
            assert!(
                expected(&t, &target, true).is_err(),
                "{what}: master must refuse"
            );
            assert!(
                minion_side(&t, &target).is_err(),
                "{what}: minion must refuse"
            );
            continue;
        }
        let ours = minion_side(&t, &target).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            ours,
            bools(case.get("minion").unwrap()),
            "{what}: minion side"
        );

        for (key, greedy) in [("master", true), ("master_nongreedy", false)] {
            let salt = case.get(key).unwrap();
            let ours = expected(&t, &target, greedy).unwrap_or_else(|e| panic!("{what}: {e}"));
            let salt_minions = strings(salt.get("minions").unwrap());
            if target.tgt_type == TargetType::List {
                assert_eq!(ours.minions, salt_minions, "{what}: {key} (in list order)");
            } else {
                assert_eq!(
                    sorted(&ours.minions),
                    sorted(&salt_minions),
                    "{what}: {key}"
                );
            }
            assert_eq!(
                ours.missing,
                strings(salt.get("missing").unwrap()),
                "{what}: {key} missing"
            );
        }

        // The published form of a nodegroup target is Salt's, word for word.
        if target.tgt_type == TargetType::Nodegroup {
            let published = target.resolve_nodegroups(&t.nodegroups).unwrap();
            assert_eq!(
                published.expr,
                TargetExpr::from(case.get("published").unwrap().as_str().unwrap()),
                "{what}"
            );
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} cases checked");
}

#[test]
fn nodegroup_expansion_as_salt() {
    let t = table();
    for pair in cases(&t, "nodegroup_comp") {
        let pair = pair.as_array().unwrap();
        let name = pair[0].as_str().unwrap();
        assert_eq!(
            t.nodegroups.expand(name).unwrap(),
            strings(&pair[1]),
            "{name}"
        );
    }
}

#[test]
fn nodegroup_operands_deviate_from_salt_on_purpose() {
    let t = table();
    for case in cases(&t, "deviations") {
        let target = target_of(case);
        let ids = |flags: Vec<bool>| -> Vec<String> {
            t.minions
                .iter()
                .zip(flags)
                .filter(|(_, hit)| *hit)
                .map(|(m, _)| m.id.clone())
                .collect()
        };
        let salt = ids(bools(case.get("minion").unwrap()));
        let ours = ids(minion_side(&t, &target).unwrap());
        let (want, salt_publishes): (&[&str], _) = match target.expr.as_text().unwrap() {
            "db1 and N@either" => (&[], "db1 and web1 or web2"),
            "not N@either" => (
                &["db1", "db2", "Web3", "a,b", "edge.node-1"],
                "not web1 or web2",
            ),
            other => panic!("unexpected deviation case {other}"),
        };
        assert_eq!(ours, want, "{:?}: Salt matched {salt:?}", target.expr);
        assert_eq!(
            case.get("published").unwrap().as_str(),
            Some(salt_publishes)
        );
        assert_ne!(ours, salt, "the table no longer shows the difference");
    }
}

#[test]
fn fnmatch_as_python() {
    let t = table();
    let empty = Value::map();
    for row in cases(&t, "fnmatch") {
        let row = row.as_array().unwrap();
        let (pattern, name) = (row[0].as_str().unwrap(), row[1].as_str().unwrap());
        let ours = matches(&Target::glob(pattern), &MinionView::new(name, &empty)).unwrap();
        assert_eq!(
            ours,
            row[2].as_bool().unwrap(),
            "fnmatch({name:?}, {pattern:?})"
        );
    }
}

#[test]
fn pcre_as_python() {
    let t = table();
    let empty = Value::map();
    for row in cases(&t, "pcre") {
        let row = row.as_array().unwrap();
        let (pattern, text) = (row[0].as_str().unwrap(), row[1].as_str().unwrap());
        let target = Target::new(pattern, TargetType::Pcre);
        let ours = matches(&target, &MinionView::new(text, &empty)).ok();
        assert_eq!(ours, row[2].as_bool(), "re.match({pattern:?}, {text:?})");
    }
}
