#![allow(clippy::unwrap_used)]

use std::cmp::Ordering;

use super::jobs::{jid_to_time, parse_time};
use super::manage::compare_versions;
use super::*;

#[test]
fn start_time_reads_as_salts_jid_to_time() {
    assert_eq!(
        jid_to_time("20261125201059974475"),
        "2026, Nov 25 20:10:59.974475"
    );
    assert_eq!(
        jid_to_time("20240101010101010101_123"),
        "2024, Jan 01 01:01:01.010101"
    );
    assert_eq!(jid_to_time("2024010101010101010"), "");
    assert_eq!(jid_to_time("20241301010101010101"), "");
    assert_eq!(jid_to_time("req"), "");
}

#[test]
fn list_jobs_times_become_jid_digits() {
    assert_eq!(parse_time("2015-03-16").unwrap(), "20150316000000000000");
    assert_eq!(
        parse_time("2015-03-16 19:00").unwrap(),
        "20150316190000000000"
    );
    assert_eq!(
        parse_time("2015-03-16T19:00:05.25").unwrap(),
        "20150316190005250000"
    );
    assert_eq!(
        parse_time("2015, Mar 16 19:00").unwrap(),
        "20150316190000000000"
    );
    assert_eq!(
        parse_time("2026, Nov 25 20:10:59.974475").unwrap(),
        "20261125201059974475"
    );
    for bad in [
        "yesterday",
        "2015-13-01",
        "2015-03-16 25:00",
        "2015, Foo 16",
        "",
    ] {
        assert!(parse_time(bad).is_none(), "{bad}");
    }
}

#[test]
fn versions_compare_numerically() {
    assert_eq!(compare_versions("0.1.0", "0.1.0"), Ordering::Equal);
    assert_eq!(compare_versions("0.1", "0.1.0"), Ordering::Equal);
    assert_eq!(compare_versions("0.10.0", "0.9.1"), Ordering::Greater);
    assert_eq!(compare_versions("3007.8", "0.1.0"), Ordering::Greater);
    assert_eq!(compare_versions("0.1.0rc1", "0.1.0"), Ordering::Less);
    assert_eq!(compare_versions("0.0.9", "0.1.0"), Ordering::Less);
}

#[test]
fn unknown_functions_name_the_known_ones() {
    let err = function("jobs.nosuch").unwrap_err();
    assert_eq!(
        err.to_string(),
        "'jobs.nosuch' is not available (runner functions: jobs.active, jobs.list_job, \
         jobs.list_jobs, jobs.lookup_jid, jobs.print_job, manage.down, manage.not_present, \
         manage.present, manage.status, manage.up, manage.versions)"
    );
    let names: Vec<&str> = functions().iter().map(|f| f.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    for f in functions() {
        assert!(!f.doc.is_empty(), "{}", f.name);
    }
}
