//! Behaviour tests across the target module; `tests/targeting.rs` checks
//! the same code against a table Salt itself produced.

use super::*;
use crate::Value;

fn grains(role: &str) -> Value {
    [("role", Value::from(role))].into_iter().collect()
}

fn on_minion(expr: &str, tgt_type: TargetType, id: &str, role: &str) -> Result<bool, TargetError> {
    let g = grains(role);
    matches(&Target::new(expr, tgt_type), &MinionView::new(id, &g))
}

fn compound(expr: &str, id: &str) -> bool {
    on_minion(expr, TargetType::Compound, id, "web").unwrap()
}

#[test]
fn compound_precedence_is_not_and_or() {
    // or binds loosest: web1 or (db1 and G@role:db)
    assert!(compound("web1 or db1 and G@role:db", "web1"));
    assert!(!compound("web1 or db1 and G@role:db", "db1"));
    // not binds tightest: (not web1) and web*
    assert!(compound("not web1 and web*", "web2"));
    assert!(!compound("not web1 and web*", "db1"));
    assert!(compound("not ( web1 or web2 )", "db1"));
    assert!(!compound("not ( web1 or web2 )", "web2"));
    // `a not b` is `a and not b`, as in Salt
    assert!(compound("web* not web2", "web1"));
    assert!(!compound("web* not web2", "web2"));
    assert!(compound("( ( web1 ) )", "web1"));
}

#[test]
fn parentheses_must_stand_alone() {
    // Salt splits on whitespace only: `(web1` is a glob that matches nothing ordinary.
    assert!(!compound("(web1 or web2)", "web1"));
    assert!(compound("(web1 or web2)", "(web1"));
}

#[test]
fn malformed_compounds_name_the_word() {
    use CompoundFault::*;
    for (expr, fault, word, token) in [
        ("", Empty, 1, ""),
        ("   ", Empty, 1, ""),
        ("and web1", ExpectedOperand, 1, "and"),
        ("web1 and", UnexpectedEnd, 3, ""),
        ("web1 or or db1", ExpectedOperand, 3, "or"),
        ("( web1", UnexpectedEnd, 3, ""),
        ("web1 )", UnmatchedClose, 2, ")"),
        ("( )", EmptyGroup, 2, ")"),
        ("not not web1", DoubleNot, 2, "not"),
        ("web1 web2", ExpectedOperator, 2, "web2"),
        ("web1 ( web2 )", ExpectedOperator, 2, "("),
        ("( web1 web2 )", ExpectedOperator, 3, "web2"),
        ("( and web1 )", ExpectedOperand, 2, "and"),
        ("not", UnexpectedEnd, 2, ""),
        ("web1 and )", ExpectedOperand, 3, ")"),
        ("web1 or X@foo", UnknownEngine, 3, "X@foo"),
    ] {
        let err = on_minion(expr, TargetType::Compound, "web1", "web").unwrap_err();
        assert_eq!(
            err,
            TargetError::Compound {
                fault,
                word,
                token: token.to_owned()
            },
            "{expr:?}"
        );
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!("{} web1 {}", "( ".repeat(10_000), ") ".repeat(10_000));
    assert!(matches!(
        on_minion(&deep, TargetType::Compound, "web1", "web"),
        Err(TargetError::Compound {
            fault: CompoundFault::TooDeep,
            ..
        })
    ));
    let ok = format!("{} web1 {}", "( ".repeat(60), ") ".repeat(60));
    assert!(compound(&ok, "web1"));
}

#[test]
fn unsupported_engines_and_types() {
    for expr in ["I@role:web", "J@role:w.b", "R@%cluster", "web1 or I@a:b"] {
        assert!(
            matches!(
                on_minion(expr, TargetType::Compound, "web1", "web"),
                Err(TargetError::Unsupported { .. })
            ),
            "{expr}"
        );
    }
    for t in ["pillar", "pillar_pcre", "pillar_exact", "range"] {
        let t: TargetType = t.parse().unwrap();
        assert!(!t.is_supported());
        assert!(matches!(
            on_minion("a:b", t, "web1", "web"),
            Err(TargetError::Unsupported { .. })
        ));
    }
    // An engine letter with nothing after `@` is a plain glob, as in Salt.
    assert!(compound("G@", "G@"));
}

#[test]
fn list_targets_on_the_minion() {
    let list = |expr: &str, id: &str| on_minion(expr, TargetType::List, id, "web").unwrap();
    assert!(list("web1,db1", "db1"));
    assert!(
        !list("web1, db1", "db1"),
        "Salt does not trim around commas"
    );
    assert!(list(",web1,,", "web1"));
    assert!(!list("web", "web1"));
    // An id with a comma: Salt's substring checks on the raw string.
    assert!(list("a,b", "a,b"));
    assert!(list("x,a,b", "a,b"));
    let g = grains("web");
    let t = Target::new(TargetExpr::from(&["a,b", "c"][..]), TargetType::List);
    assert!(matches(&t, &MinionView::new("a,b", &g)).unwrap());
    assert!(!matches(&t, &MinionView::new("a", &g)).unwrap());
}

#[test]
fn glob_targets_need_a_string() {
    let g = grains("web");
    let t = Target::new(TargetExpr::from(&["web1"][..]), TargetType::Glob);
    assert!(matches!(
        matches(&t, &MinionView::new("web1", &g)),
        Err(TargetError::InvalidExpression { .. })
    ));
}

fn fleet() -> Vec<(String, Option<Value>)> {
    vec![
        ("web1".into(), Some(grains("web"))),
        ("web2".into(), Some(grains("web"))),
        ("db1".into(), Some(grains("db"))),
        ("new1".into(), None),
    ]
}

fn expect(target: &Target, opts: &ExpectOptions<'_>) -> ExpectedMinions {
    let fleet = fleet();
    expected_minions(
        target,
        fleet.iter().map(|(id, g)| (id.as_str(), g.as_ref())),
        opts,
    )
    .unwrap()
}

#[test]
fn expected_minions_are_greedy_by_default() {
    let t = Target::new("role:web", TargetType::Grain);
    assert_eq!(
        expect(&t, &ExpectOptions::default()).minions,
        ["web1", "web2", "new1"]
    );
    let strict = ExpectOptions::default().greedy(false);
    assert_eq!(expect(&t, &strict).minions, ["web1", "web2"]);
    // Greedy leaves negate too: `not G@` drops a minion with no cached grains.
    let t = Target::new("not G@role:web", TargetType::Compound);
    assert_eq!(expect(&t, &ExpectOptions::default()).minions, ["db1"]);
    assert_eq!(expect(&t, &strict).minions, ["db1", "new1"]);
    // Ids are judged on the ids alone.
    let t = Target::glob("*1");
    assert_eq!(
        expect(&t, &ExpectOptions::default()).minions,
        ["web1", "db1", "new1"]
    );
}

#[test]
fn expected_minions_report_missing_ids() {
    let t = Target::new("db1,gone,web1,gone,db1", TargetType::List);
    let e = expect(&t, &ExpectOptions::default());
    assert_eq!(e.minions, ["db1", "web1"], "the list's order, each once");
    assert_eq!(e.missing, ["gone"]);

    let t = Target::new("L@web1,gone1 or L@gone2", TargetType::Compound);
    let e = expect(&t, &ExpectOptions::default());
    assert_eq!(e.minions, ["web1"]);
    assert_eq!(e.missing, ["gone1", "gone2"]);

    // Right after `not`, Salt does not count a list's ids as missing.
    let t = Target::new("not L@web1,gone", TargetType::Compound);
    let e = expect(&t, &ExpectOptions::default());
    assert_eq!(e.minions, ["web2", "db1", "new1"]);
    assert!(e.missing.is_empty());
}

fn groups() -> Nodegroups {
    let mut ng = Nodegroups::new();
    ng.insert("webs", "web1 web2");
    ng.insert("either", "web1 or web2");
    ng.insert("all_web", "N@webs or G@role:web");
    ng.insert("a", "N@b");
    ng.insert("b", "N@a");
    ng
}

#[test]
fn nodegroups_expand_on_the_master() {
    let ng = groups();
    let t = Target::new("all_web", TargetType::Nodegroup);
    let published = t.resolve_nodegroups(&ng).unwrap();
    assert_eq!(
        published,
        Target::new("( L@web1,web2 or G@role:web )", TargetType::Compound)
    );
    let opts = ExpectOptions::with_nodegroups(&ng);
    assert_eq!(expect(&t, &opts).minions, ["web1", "web2", "new1"]);
    assert_eq!(
        expect(&published, &ExpectOptions::default()).minions,
        ["web1", "web2", "new1"]
    );

    // The minion needs no definitions for the published form, and refuses N@ without them.
    let g = grains("db");
    assert!(!matches(&published, &MinionView::new("db1", &g)).unwrap());
    let raw = Target::new("N@webs", TargetType::Compound);
    assert_eq!(
        matches(&raw, &MinionView::new("web1", &g)).unwrap_err(),
        TargetError::UnknownNodegroup {
            name: "webs".into()
        }
    );
    assert!(matches(&raw, &MinionView::new("web1", &g).with_nodegroups(&ng)).unwrap());
}

#[test]
fn nodegroup_operands_keep_their_meaning() {
    // Salt publishes `db1 and web1 or web2` here and so matches web2.
    let ng = groups();
    let t = Target::new("db1 and N@either", TargetType::Compound);
    let published = t.resolve_nodegroups(&ng).unwrap();
    assert_eq!(published.expr, TargetExpr::from("db1 and ( web1 or web2 )"));
    assert!(
        expect(&t, &ExpectOptions::with_nodegroups(&ng))
            .minions
            .is_empty()
    );
}

#[test]
fn nodegroup_errors() {
    let ng = groups();
    for (expr, tgt_type) in [
        ("a", TargetType::Nodegroup),
        ("web1 or N@b", TargetType::Compound),
    ] {
        let t = Target::new(expr, tgt_type);
        assert!(
            matches!(
                t.resolve_nodegroups(&ng),
                Err(TargetError::NodegroupCycle { .. })
            ),
            "{expr}"
        );
        let fleet = fleet();
        let accepted = fleet.iter().map(|(id, g)| (id.as_str(), g.as_ref()));
        assert!(expected_minions(&t, accepted, &ExpectOptions::with_nodegroups(&ng)).is_err());
    }
    let t = Target::new("nope", TargetType::Nodegroup);
    assert_eq!(
        t.resolve_nodegroups(&ng).unwrap_err(),
        TargetError::UnknownNodegroup {
            name: "nope".into()
        }
    );
}

#[test]
fn matchers_are_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Matcher>();
    assert_send_sync::<Target>();
    assert_send_sync::<TargetError>();
}
