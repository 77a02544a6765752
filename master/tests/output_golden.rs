//! Brine's outputters against stock Salt 3007.8, byte for byte.
//!
//! `fixtures/output/` holds what Salt's `display_output` printed for a fixed
//! set of returns (`fixtures/make_output_goldens.py` made them; `cases.msgpack`
//! is the data, `<case>.<variant>.txt` the output, the variant naming the
//! outputter and its options). Each test here renders every case of one
//! outputter and compares with the golden.
//!
//! `goldens_are_what_stock_salt_prints` reruns the generator with Salt's
//! Python into a temp dir and checks the committed goldens are current. It
//! needs the Salt venv (`scripts/salt-venv.sh`, or `BRINE_SALT_PYTHON`); it
//! is skipped with a note without it, and fails under `CI`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use brine_master::output::{Indent, OutputOptions, Outputter, render};
use brine_protocol::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn golden_dir() -> PathBuf {
    fixtures().join("output")
}

/// Every case: name → the data Salt's outputters were given.
fn cases() -> BTreeMap<String, Value> {
    let bytes = std::fs::read(golden_dir().join("cases.msgpack")).unwrap();
    let Value::Map(entries) = Value::decode(&bytes).unwrap() else {
        panic!("cases.msgpack is not a map");
    };
    entries
        .into_iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v))
        .collect()
}

/// The goldens: (case, variant) → bytes.
fn goldens(dir: &Path) -> BTreeMap<(String, String), Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let Some(stem) = name.strip_suffix(".txt") else {
            continue;
        };
        let (case, variant) = stem
            .split_once('.')
            .unwrap_or_else(|| panic!("golden {name} is not <case>.<variant>.txt"));
        out.insert(
            (case.to_owned(), variant.to_owned()),
            std::fs::read(&path).unwrap(),
        );
    }
    out
}

/// A variant name (see make_output_goldens.py) as outputter and options.
fn parse_variant(variant: &str) -> (Outputter, OutputOptions) {
    let mut tokens = variant.split('-');
    let out: Outputter = tokens.next().unwrap().parse().unwrap();
    let mut opts = OutputOptions::default();
    for token in tokens {
        if token == "color" {
            opts.color = true;
        } else if token == "retcode1" {
            opts.retcode = 1;
        } else if token == "pretty" {
            opts.indent = Some(Indent::Pretty);
        } else if let Some(n) = token.strip_prefix("nestedindent") {
            opts.nested_indent = n.parse().unwrap();
        } else if let Some(n) = token.strip_prefix("indentneg") {
            opts.indent = Some(Indent::Spaces(-n.parse::<i64>().unwrap()));
        } else if let Some(n) = token.strip_prefix("indent") {
            opts.indent = Some(Indent::Spaces(n.parse().unwrap()));
        } else {
            panic!("unknown variant token {token:?} in {variant:?}");
        }
    }
    (out, opts)
}

/// Where two outputs part, for the failure message.
fn first_difference(ours: &str, salt: &str) -> String {
    let (ours_lines, salt_lines): (Vec<&str>, Vec<&str>) =
        (ours.split('\n').collect(), salt.split('\n').collect());
    let at = ours_lines
        .iter()
        .zip(&salt_lines)
        .position(|(a, b)| a != b)
        .unwrap_or(ours_lines.len().min(salt_lines.len()));
    format!(
        "line {}:\n  brine: {:?}\n  salt:  {:?}",
        at + 1,
        ours_lines.get(at).copied().unwrap_or("<end>"),
        salt_lines.get(at).copied().unwrap_or("<end>"),
    )
}

/// Renders every golden of `outputter` and fails listing each mismatch.
fn check(outputter: Outputter) {
    let cases = cases();
    let mut checked = 0;
    let mut failures = Vec::new();
    for ((case, variant), expected) in goldens(&golden_dir()) {
        let (out, opts) = parse_variant(&variant);
        if out != outputter {
            continue;
        }
        let data = cases
            .get(&case)
            .unwrap_or_else(|| panic!("golden for unknown case {case}"));
        let ours = render(out, data, &opts);
        let salt = String::from_utf8(expected).unwrap();
        checked += 1;
        if ours != salt {
            failures.push(format!(
                "{case}.{variant}: {}",
                first_difference(&ours, &salt)
            ));
        }
    }
    assert!(checked > 0, "no goldens for {outputter}");
    assert!(
        failures.is_empty(),
        "{} of {checked} {outputter} goldens differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn nested_matches_salt() {
    check(Outputter::Nested);
}

#[test]
fn json_matches_salt() {
    check(Outputter::Json);
}

#[test]
fn yaml_matches_salt() {
    check(Outputter::Yaml);
}

#[test]
fn txt_matches_salt() {
    check(Outputter::Txt);
}

#[test]
fn raw_matches_salt() {
    check(Outputter::Raw);
}

#[test]
fn quiet_matches_salt() {
    check(Outputter::Quiet);
}

/// A golden deleted by mistake must not shrink the coverage silently.
#[test]
fn every_case_has_every_main_variant() {
    let goldens = goldens(&golden_dir());
    for case in cases().keys() {
        for variant in ["nested", "nested-color", "json", "yaml", "txt", "raw"] {
            assert!(
                goldens.contains_key(&(case.clone(), variant.to_owned())),
                "missing golden {case}.{variant}.txt"
            );
        }
    }
    assert!(goldens.len() >= 250, "only {} goldens", goldens.len());
}

// --- the goldens are current ------------------------------------------------------

fn salt_python() -> Option<PathBuf> {
    let python = std::env::var_os("BRINE_SALT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(".venv")
                .join("bin")
                .join("python")
        });
    let works = Command::new(&python)
        .args(["-c", "import salt.output, salt.payload, msgpack, yaml"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    works.then_some(python)
}

#[test]
fn goldens_are_what_stock_salt_prints() {
    let Some(python) = salt_python() else {
        // CI creates the venv (scripts/test.sh), so there a missing Salt is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "no Python with Salt under CI (scripts/salt-venv.sh failed?)"
        );
        eprintln!(
            "skipped: no Python with Salt (run scripts/salt-venv.sh or set BRINE_SALT_PYTHON)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(&python)
        .arg(fixtures().join("make_output_goldens.py"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "make_output_goldens.py failed");

    let fresh = goldens(dir.path());
    let committed = goldens(&golden_dir());
    assert_eq!(
        fresh.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>(),
        "the golden files differ from what the script makes: rerun it"
    );
    for (key, bytes) in &fresh {
        assert!(
            committed.get(key) == Some(bytes),
            "{}.{}.txt is stale: rerun make_output_goldens.py",
            key.0,
            key.1
        );
    }
    let cases = std::fs::read(dir.path().join("cases.msgpack")).unwrap();
    assert_eq!(
        cases,
        std::fs::read(golden_dir().join("cases.msgpack")).unwrap(),
        "cases.msgpack is stale: rerun make_output_goldens.py"
    );
}
