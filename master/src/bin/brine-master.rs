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
        cli::wait_for_signal().await;
        info!("shutdown requested");
        handle.shutdown().await;
        ExitCode::SUCCESS
    })
}
