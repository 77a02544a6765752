//! `brine-master`: start the Brine master from a config directory.

use std::path::PathBuf;
use std::process::ExitCode;

use brine_master::{BuiltinTransports, Master, cli};
use brine_protocol::config::{MasterConfig, Missing};
use brine_transport_api::Registry;
use clap::Parser;
use tracing::{error, info, warn};

const PROGRAM: &str = "brine-master";

/// mimalloc instead of glibc's malloc: a master serving 10,000 minions spent
/// 18% of its CPU in glibc's malloc and free, mostly on its slow paths
/// (bursts of same-sized allocations freed by other threads empty the
/// per-thread caches).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Brine master daemon.
#[derive(Debug, Parser)]
#[command(name = "brine-master", version, about = "The Brine master daemon")]
struct Args {
    /// The config directory holding `master` and `master.d/`.
    #[arg(short = 'c', long = "config-dir", default_value = brine_protocol::config::DEFAULT_CONFIG_DIR)]
    config_dir: PathBuf,
    /// Console log level (overrides `log_level`).
    #[arg(short = 'l', long = "log-level")]
    log_level: Option<String>,
    /// Log file (overrides `log_file`); logs go to stderr when not set.
    #[arg(long = "log-file")]
    log_file: Option<PathBuf>,
    /// Print Brine's version, built-in transports and platform, then exit.
    #[arg(long = "versions-report")]
    versions_report: bool,
}

fn main() -> ExitCode {
    // Small pages until the heap is large (see `huge_pages_once_large`).
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let args = Args::parse();
    if args.versions_report {
        print!("{}", cli::versions_report("brine-master"));
        return ExitCode::SUCCESS;
    }
    let loaded = match MasterConfig::load(&args.config_dir, Missing::UseDefaults) {
        Ok(loaded) => loaded,
        Err(err) => return cli::fail(PROGRAM, err, 1),
    };
    let config = loaded.config;
    let level = match cli::log_level(args.log_level.as_deref(), config.log_level) {
        Ok(level) => level,
        Err(err) => return cli::fail(PROGRAM, err, 1),
    };
    if let Err(err) = cli::init_logging(level, args.log_file.as_deref()) {
        return cli::fail(PROGRAM, err, 1);
    }
    cli::raise_open_files_limit(cli::WANTED_OPEN_FILES);
    for warning in &loaded.warnings {
        warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => return cli::fail(PROGRAM, format!("could not start the runtime: {err}"), 1),
    };
    runtime.block_on(async move {
        let registry = Registry::builtin();
        let handle = match Master::start(config, &registry).await {
            Ok(handle) => handle,
            Err(err) => {
                error!("{err}");
                return cli::fail(PROGRAM, &err, u8::try_from(err.exit_code()).unwrap_or(1));
            }
        };
        let huge_pages = tokio::spawn(huge_pages_once_large());
        cli::wait_for_signal().await;
        huge_pages.abort();
        info!("shutdown requested");
        handle.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Resident size past which the master lets transparent huge pages back
/// its heap.
const HUGE_PAGES_FROM: u64 = 64 * 1024 * 1024;

/// mimalloc asks for transparent huge pages for its arenas. A small master
/// is better off without: with 10 minions they doubled its RSS (42–50 MB
/// against ~21). A large one is better off with: serving 10,000 minions
/// it spent 5–9% less CPU per `test.ping` round (fewer TLB misses; the
/// most when on from the start). So the master starts with them off and
/// turns them on once its RSS passes [`HUGE_PAGES_FROM`].
async fn huge_pages_once_large() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Ok(statm) = tokio::fs::read_to_string("/proc/self/statm").await else {
            return;
        };
        // Fields: size resident shared ..., in pages.
        let resident = statm
            .split_whitespace()
            .nth(1)
            .and_then(|pages| pages.parse::<u64>().ok())
            .map(|pages| {
                pages.saturating_mul(u64::try_from(rustix::param::page_size()).unwrap_or(4096))
            });
        if resident.is_some_and(|bytes| bytes >= HUGE_PAGES_FROM) {
            match rustix::thread::disable_transparent_huge_pages(false) {
                Ok(()) => info!("resident size past 64 MiB: transparent huge pages on"),
                Err(err) => warn!(error = %err, "cannot turn transparent huge pages on"),
            }
            return;
        }
    }
}
