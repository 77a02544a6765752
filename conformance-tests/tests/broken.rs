//! The suite can fail: against transports that each break one promise,
//! `run_all` reports the checks that cover that promise as failed, and
//! the unrelated ones as passed.
mod support;

use std::collections::BTreeSet;

use brine_conformance_tests::{Outcome, Report, run_all};
use support::broken::{BrokenHarness, Flaw};

/// Runs the suite against `flaw` and checks which checks fail.
async fn expect(flaw: Flaw, must_fail: &[&str], must_pass: &[&str]) {
    brine_conformance_tests::init_test_logging();
    let report: Report = run_all(&BrokenHarness::new(flaw)).await;
    let failed: BTreeSet<&str> = report
        .failures()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for (name, why) in report.failures() {
        eprintln!("[{flaw:?}] {name} failed as it may: {why}");
    }
    for name in must_fail {
        assert!(
            failed.contains(name),
            "{flaw:?}: {name} should have failed; failed: {failed:?}"
        );
    }
    for name in must_pass {
        let result = report
            .results
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.clone());
        assert_eq!(
            result,
            Some(Ok(Outcome::Passed)),
            "{flaw:?}: {name} covers no broken promise and should pass"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_publishes_are_caught() {
    expect(
        Flaw::DropsPublishes,
        &[
            "publish_reaches_every_subscriber_in_order",
            "slow_subscriber_is_dropped_others_unaffected",
        ],
        &[
            "request_reply_roundtrip",
            "concurrent_requests_from_many_clients",
            "oversized_frame_refused_and_server_keeps_serving",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_up_replies_are_caught() {
    expect(
        Flaw::StaleReplies,
        &["concurrent_requests_from_many_clients"],
        &[
            "request_reply_roundtrip",
            "publish_reaches_every_subscriber_in_order",
            "slow_subscriber_is_dropped_others_unaffected",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ignored_frame_limit_is_caught() {
    expect(
        Flaw::IgnoresFrameLimit,
        &["oversized_frame_refused_and_server_keeps_serving"],
        &[
            "request_reply_roundtrip",
            "frames_of_every_size_arrive_intact",
            "publish_reaches_every_subscriber_in_order",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaked_tasks_are_caught() {
    expect(
        Flaw::LeaksTasks,
        &["clean_shutdown_releases_ports_and_tasks"],
        &[
            "request_reply_roundtrip",
            "publish_reaches_every_subscriber_in_order",
        ],
    )
    .await;
}
