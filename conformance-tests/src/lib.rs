#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod checks;

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use brine_transport_api::{ClientOptions, ServerOptions, Transport};

/// What a plugin provides to run the suite.
pub trait Harness: Send + Sync + 'static {
    /// The transport under test.
    fn transport(&self) -> Arc<dyn Transport>;

    /// Options for a server end listening on `bind`; add TLS material and
    /// settings here. Keep the given limits unless the backend needs others.
    fn server_options(&self, bind: SocketAddr) -> ServerOptions {
        ServerOptions::new(bind)
    }

    /// Options for a client end connecting to `connect` as `identity`.
    fn client_options(&self, connect: SocketAddr, identity: &str) -> ClientOptions {
        ClientOptions::new(connect, identity)
    }

    /// Whether the servers' addresses are real OS sockets on loopback.
    /// An in-process transport (such as `MemoryTransport`) says `false`, and
    /// the check that throws raw junk at the ports skips.
    fn binds_os_sockets(&self) -> bool {
        true
    }
}

/// How a check ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every assertion held.
    Passed,
    /// The check does not apply (a capability the backend does not claim,
    /// or a harness without OS sockets); the reason says which.
    Skipped(String),
}

/// A check's result: `Err` carries what did not hold.
pub type CheckResult = Result<Outcome, String>;

/// A boxed check, as listed in [`checks::ALL`].
pub type CheckFn =
    for<'a> fn(&'a dyn Harness) -> Pin<Box<dyn Future<Output = CheckResult> + Send + 'a>>;

/// The longest any single check may run.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one check on a fresh multi-threaded runtime with test logging and a
/// timeout; panics with `[<transport>] <check>: <reason>` on failure.
pub fn run_case(name: &str, harness: &dyn Harness, check: CheckFn) {
    init_test_logging();
    let transport = harness.transport().name();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => panic!("[{transport}] {name}: cannot build a tokio runtime: {err}"),
    };
    let result =
        runtime.block_on(async { tokio::time::timeout(CHECK_TIMEOUT, check(harness)).await });
    runtime.shutdown_timeout(Duration::from_secs(5));
    match result {
        Ok(Ok(Outcome::Passed)) => {}
        Ok(Ok(Outcome::Skipped(why))) => eprintln!("[{transport}] {name}: skipped: {why}"),
        Ok(Err(why)) => panic!("[{transport}] {name}: {why}"),
        Err(_) => panic!("[{transport}] {name}: did not finish within {CHECK_TIMEOUT:?}"),
    }
}

/// The result of [`run_all`]: each check's name and result.
#[derive(Debug)]
pub struct Report {
    /// `(check name, result)` in suite order.
    pub results: Vec<(&'static str, CheckResult)>,
}

impl Report {
    /// The checks that failed, with their reasons.
    pub fn failures(&self) -> Vec<(&'static str, &str)> {
        self.results
            .iter()
            .filter_map(|(name, r)| r.as_ref().err().map(|why| (*name, why.as_str())))
            .collect()
    }
}

/// Runs every check in turn (each under [`CHECK_TIMEOUT`]) and reports all
/// results, for a plugin that prefers one test to many.
pub async fn run_all(harness: &dyn Harness) -> Report {
    let mut results = Vec::new();
    for (name, check) in checks::ALL {
        let result = match tokio::time::timeout(CHECK_TIMEOUT, check(harness)).await {
            Ok(r) => r,
            Err(_) => Err(format!("did not finish within {CHECK_TIMEOUT:?}")),
        };
        results.push((*name, result));
    }
    Report { results }
}

/// Installs a test-friendly tracing subscriber once (`RUST_LOG` filters it).
pub fn init_test_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// Expands to one `#[test]` per conformance check, each running against
/// the harness built by the given expression.
///
/// Use the two-argument form to run the suite for several harnesses in one
/// file: `transport_conformance!(zmq_filtering, Harness::filtering());`
/// puts the tests in a module called `zmq_filtering`.
#[macro_export]
macro_rules! transport_conformance {
    ($harness:expr) => {
        $crate::__conformance_cases!($harness;
            request_reply_roundtrip,
            concurrent_requests_from_many_clients,
            frames_of_every_size_arrive_intact,
            oversized_frame_refused_and_server_keeps_serving,
            publish_reaches_every_subscriber_in_order,
            targeted_publish_reaches_only_listed_minions,
            late_subscriber_misses_earlier_publish,
            request_to_dead_server_fails_in_time,
            clients_reconnect_after_server_restart,
            garbage_does_not_crash_or_wedge_server,
            slow_subscriber_is_dropped_others_unaffected,
            event_bus_prefix_subscriptions,
            event_bus_ipc_from_another_process_side,
            clean_shutdown_releases_ports_and_tasks,
        );
    };
    ($module:ident, $harness:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::transport_conformance!($harness);
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($harness:expr; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                let harness = $harness;
                $crate::run_case(
                    stringify!($case),
                    &harness,
                    |h| ::std::boxed::Box::pin($crate::checks::$case(h)),
                );
            }
        )+
    };
}
