//! What every Brine binary shares: logging set-up, the log-level flag,
//! waiting for a stop signal, and the one-line error report.
//!
//! Binaries report a failure as `<program>: <error>` on stderr and exit
//! non-zero; logs go through `tracing` to stderr or `--log-file`.

use std::path::Path;
use std::process::ExitCode;

use brine_protocol::config::LogLevel;

/// Starts logging at `level` (or `RUST_LOG` when set), to `file` or stderr.
///
/// # Errors
/// A readable message when the log file cannot be opened or logging was
/// already set up.
pub fn init_logging(level: LogLevel, file: Option<&Path>) -> Result<(), String> {
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
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init()
            .map_err(|e| e.to_string()),
    }
}

/// The level `-l/--log-level` names, else `default`.
///
/// # Errors
/// The parse error naming the bad level and the known ones.
pub fn log_level(flag: Option<&str>, default: LogLevel) -> Result<LogLevel, String> {
    match flag {
        Some(text) => text.parse::<LogLevel>().map_err(|e| e.to_string()),
        None => Ok(default),
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
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

/// Prints `<program>: <message>` on stderr and returns exit `code`.
pub fn fail(program: &str, message: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("{program}: {message}");
    ExitCode::from(code)
}

/// A current-thread runtime for a short-lived command-line tool.
///
/// # Errors
/// The I/O error when the runtime cannot start.
pub fn tool_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// What `--versions-report` prints: Brine's version, the transports built
/// in, and the platform (Salt's report lists its Python dependencies;
/// Brine's are compiled in).
pub fn versions_report(program: &str) -> String {
    use brine_transport_api::Registry;

    use crate::BuiltinTransports;

    let registry = Registry::builtin();
    let transports: Vec<&str> = registry.names().collect();
    format!(
        "Brine Version:\n          {program}: {}\n\nBuilt-in transports:\n          {}\n\n\
         Serializations:\n          msgpack (default), bincode\n\nSystem Versions:\n          \
         os: {}\n          arch: {}\n",
        env!("CARGO_PKG_VERSION"),
        transports.join(", "),
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
}

/// Salt's `EX_USAGE`: a bad command line.
pub const EX_USAGE: u8 = 64;

/// Parses the command line of `program`; `--help` and `--version` print and
/// exit 0, a usage error is one line on stderr and [`EX_USAGE`].
///
/// # Errors
/// The exit code to end with when parsing did not give arguments.
pub fn parse_args<T: clap::Parser>(program: &str) -> Result<T, ExitCode> {
    let parsed = T::command()
        .try_get_matches()
        .and_then(|m| T::from_arg_matches(&m));
    match parsed {
        Ok(args) => Ok(args),
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) {
                let _ = err.print();
                return Err(ExitCode::SUCCESS);
            }
            let text = err.render().to_string();
            let line = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            Err(fail(program, format!("{line} (see --help)"), EX_USAGE))
        }
    }
}

/// The master config in `dir`, or Salt's defaults when the directory has
/// no `master` file; a missing directory is an error. Returns the loader's
/// warnings as text.
///
/// # Errors
/// A readable message naming the directory or the bad key.
pub fn load_master_config(
    dir: &Path,
) -> Result<(brine_protocol::config::MasterConfig, Vec<String>), String> {
    use brine_protocol::config::{MasterConfig, Missing};

    if !dir.is_dir() {
        return Err(format!("config directory {} does not exist", dir.display()));
    }
    let loaded = MasterConfig::load(dir, Missing::UseDefaults).map_err(|e| e.to_string())?;
    let warnings = loaded.warnings.iter().map(ToString::to_string).collect();
    Ok((loaded.config, warnings))
}

/// Open files a daemon asks for (Salt's `max_open_files` default): a
/// master holds two sockets per minion, a swarm two per simulated minion.
pub const WANTED_OPEN_FILES: u64 = 100_000;

/// Raises this process's open-files limit towards `wanted`: the hard
/// limit too when allowed (root), else the soft limit up to the hard one.
/// Returns the soft limit in force afterwards; never fails the caller.
pub fn raise_open_files_limit(wanted: u64) -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

    let current = getrlimit(Resource::Nofile);
    let soft = current.current.unwrap_or(u64::MAX);
    if soft >= wanted {
        return Some(soft);
    }
    let hard = current.maximum.unwrap_or(u64::MAX);
    let raised = Rlimit {
        current: Some(wanted.max(soft)),
        maximum: Some(wanted.max(hard)),
    };
    if setrlimit(Resource::Nofile, raised).is_err() {
        let within = Rlimit {
            current: Some(hard.min(wanted).max(soft)),
            maximum: current.maximum,
        };
        let _ = setrlimit(Resource::Nofile, within);
    }
    let now = getrlimit(Resource::Nofile).current;
    if now.is_some_and(|n| n < wanted) {
        tracing::warn!(
            open_files = now,
            wanted,
            "open-files limit below what many minions need; raise it (LimitNOFILE= under systemd)"
        );
    }
    now
}
