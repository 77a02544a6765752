//! `brine-minion`: the minion daemon.
//!
//! Reads `<config-dir>/minion` (Salt's keys and defaults), starts the
//! daemon with the built-in transports, and runs until Ctrl-C or SIGTERM.
//! Errors are one line on stderr; the exit code is 77 when the master
//! rejected the key (as Salt's minion), 1 for other failures, 2 for bad
//! arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use brine_master::{BuiltinTransports, cli};
use brine_minion::Modules;
use brine_minion::daemon::{Minion, MinionError, error_chain};
use brine_protocol::config::{DEFAULT_CONFIG_DIR, LogLevel, MinionConfig, Missing};
use brine_transport_api::Registry;
use clap::Parser;
use tracing::{error, info, warn};

/// mimalloc instead of glibc's malloc: at 10,000 minions glibc's spent a
/// third of the swarm's CPU and fragmented across the worker threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Brine minion daemon.
#[derive(Debug, Parser)]
#[command(name = "brine-minion", version, about = "The Brine minion daemon")]
struct Args {
    /// The directory holding the `minion` config file.
    #[arg(short = 'c', long = "config-dir", default_value = DEFAULT_CONFIG_DIR)]
    config_dir: PathBuf,
    /// Console log level: all, garbage, trace, debug, profile, info,
    /// warning, error, critical, quiet (default: the config's `log_level`).
    #[arg(short = 'l', long = "log-level")]
    log_level: Option<LogLevel>,
    /// Log to this file instead of stderr.
    #[arg(long = "log-file")]
    log_file: Option<PathBuf>,
    /// Print Brine's version, built-in transports and platform, then exit.
    #[arg(long = "versions-report")]
    versions_report: bool,
}

fn main() -> ExitCode {
    // One minion's heap is small: transparent huge pages (which mimalloc
    // asks for) would only inflate its RSS. `brine-swarm` keeps them.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let args = Args::parse();
    if args.versions_report {
        print!("{}", cli::versions_report("brine-minion"));
        return ExitCode::SUCCESS;
    }
    let loaded = match MinionConfig::load(&args.config_dir, Missing::UseDefaults) {
        Ok(loaded) => loaded,
        Err(err) => return fail(&err, 1),
    };
    let level = args.log_level.unwrap_or(loaded.config.log_level);
    if let Err(err) = cli::init_logging(level, args.log_file.as_deref()) {
        return cli::fail("brine-minion", err, 1);
    }
    cli::raise_open_files_limit(cli::WANTED_OPEN_FILES);
    for warning in &loaded.warnings {
        warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&err, 1),
    };
    match runtime.block_on(run(loaded.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = %error_chain(&err), "the brine minion stopped");
            fail(&err, err.exit_code())
        }
    }
}

async fn run(config: MinionConfig) -> Result<(), MinionError> {
    let minion = Minion::start(config, &Registry::builtin(), Modules::builtin()).await?;
    let stopped = cli::wait_for_signal();
    // `wait` ends only on a fatal error; a signal asks for a clean stop.
    let ended = tokio::select! {
        () = stopped => None,
        state = minion.wait_for(|s| s.is_final()) => Some(state),
    };
    if ended.is_none() {
        info!("signal received; shutting down");
    }
    minion.shutdown().await
}

fn fail(err: &dyn std::error::Error, code: i32) -> ExitCode {
    eprintln!("brine-minion: {}", error_chain(err));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
