//! `brine-master`: start the Brine master from a config directory.

use std::path::PathBuf;
use std::process::ExitCode;

use brine_master::{BuiltinTransports, Master};
use brine_protocol::config::{LogLevel, MasterConfig, Missing};
use brine_transport_api::Registry;
use clap::Parser;
use tracing::{error, info, warn};

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
}

fn main() -> ExitCode {
    let args = Args::parse();
    let loaded = match MasterConfig::load(&args.config_dir, Missing::UseDefaults) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("brine-master: {err}");
            return ExitCode::from(1);
        }
    };
    let config = loaded.config;
    let level = match args.log_level.as_deref().map(str::parse::<LogLevel>) {
        Some(Ok(level)) => level,
        Some(Err(err)) => {
            eprintln!("brine-master: {err}");
            return ExitCode::from(1);
        }
        None => config.log_level,
    };
    if let Err(err) = init_logging(level, args.log_file.as_ref()) {
        eprintln!("brine-master: {err}");
        return ExitCode::from(1);
    }
    for warning in &loaded.warnings {
        warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("brine-master: could not start the runtime: {err}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let registry = Registry::builtin();
        let handle = match Master::start(config, &registry).await {
            Ok(handle) => handle,
            Err(err) => {
                error!("{err}");
                eprintln!("brine-master: {err}");
                return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(1));
            }
        };
        wait_for_signal().await;
        info!("shutdown requested");
        handle.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_logging(level: LogLevel, file: Option<&PathBuf>) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.tracing_directive()));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init()
                .map_err(|e| e.to_string())
        }
        None => builder
            .with_writer(std::io::stderr)
            .try_init()
            .map_err(|e| e.to_string()),
    }
}
