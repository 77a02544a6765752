//! Keeps `docs/config.md` honest: every key the config loader knows
//! ([`MasterConfig::known_keys`], [`MinionConfig::known_keys`]) has a row in
//! the doc's table for its daemon, and every row of those tables names a key
//! the loader knows (so the doc never documents a key Brine would warn about
//! as unknown).
//!
//! A key's row is a table line starting with `` | `key` `` inside the
//! section `## Master keys` or `## Minion keys` (up to the next `## `
//! heading).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;

use brine_protocol::config::{MasterConfig, MinionConfig, RawConfig, Role};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.md");

fn read_doc() -> String {
    std::fs::read_to_string(DOC).unwrap_or_else(|e| panic!("cannot read {DOC}: {e}"))
}

/// The keys of the table rows in section `heading` (`## <heading>`).
fn documented_keys(doc: &str, heading: &str) -> BTreeSet<String> {
    let start = format!("## {heading}");
    let mut lines = doc.lines().skip_while(|l| l.trim_end() != start);
    assert!(
        lines.next().is_some(),
        "{DOC} has no section {start:?}; the key tables must sit under it"
    );
    lines
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(key, _)| key.to_owned()))
        .collect()
}

fn check(role: &str, heading: &str, known: &[String]) {
    let doc = read_doc();
    let documented = documented_keys(&doc, heading);
    let missing: Vec<&str> = known
        .iter()
        .filter(|k| !documented.contains(*k))
        .map(String::as_str)
        .collect();
    assert!(
        missing.is_empty(),
        "{DOC}, section \"## {heading}\", has no row for these {role} keys the loader reads: {}",
        missing.join(", ")
    );
    let unknown: Vec<&str> = documented
        .iter()
        .filter(|k| !known.contains(*k))
        .map(String::as_str)
        .collect();
    assert!(
        unknown.is_empty(),
        "{DOC}, section \"## {heading}\", documents {role} keys the loader does not know: {}",
        unknown.join(", ")
    );
}

#[test]
fn every_master_key_is_documented() {
    check("master", "Master keys", &MasterConfig::known_keys());
}

#[test]
fn every_minion_key_is_documented() {
    check("minion", "Minion keys", &MinionConfig::known_keys());
}

/// The lists the doc is checked against are the loader's: its keys load
/// without an unknown-key warning, and a key outside them warns.
#[test]
fn known_keys_are_what_the_loader_accepts() {
    let master = MasterConfig::known_keys();
    for key in ["transport", "nodegroups", "keep_jobs", "timeout", "include"] {
        assert!(master.iter().any(|k| k == key), "{key} not in {master:?}");
    }
    let minion = MinionConfig::known_keys();
    for key in ["master", "master_port", "grains", "recon_default"] {
        assert!(minion.iter().any(|k| k == key), "{key} not in {minion:?}");
    }
    assert!(!minion.iter().any(|k| k == "nodegroups"));

    let file = Path::new("/nonexistent/master");
    let text = "nodegroups: {}\nkeep_jobs: 12\npub_hwm: 500\nfile_roots: {}\n";
    let raw = RawConfig::from_yaml_str(text, file, Role::Master).unwrap();
    let loaded = MasterConfig::from_raw(&raw).unwrap();
    let warned: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warned,
        ["unknown key file_roots in /nonexistent/master; ignored"]
    );
}
