//! `brine-run`: run a runner function on the master (Salt's `salt-run`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use brine_master::client::ClientError;
use brine_master::keys::cli::{Out, Printer, parse_outputter};
use brine_master::output::{Indent, OutputOptions};
use brine_master::runners::{self, Runner, RunnerError};
use brine_master::{BuiltinTransports, cli, output};
use brine_protocol::config::MasterConfig;
use brine_transport_api::Registry;
use clap::Parser;
use tracing::warn;

const PROGRAM: &str = "brine-run";
use brine_master::cli::EX_USAGE;

/// Run a runner function on the Brine master.
#[derive(Debug, Parser)]
#[command(
    name = "brine-run",
    version,
    about = "brine-run is the frontend command for executing Brine runners",
    override_usage = "brine-run [OPTIONS] <FUNCTION> [ARGUMENTS]..."
)]
struct Args {
    /// The config directory holding `master` and `master.d/`.
    #[arg(short = 'c', long = "config-dir", default_value = brine_protocol::config::DEFAULT_CONFIG_DIR)]
    config_dir: PathBuf,
    /// Console log level (overrides `log_level`).
    #[arg(short = 'l', long = "log-level", value_name = "LEVEL")]
    log_level: Option<String>,
    /// How long commands sent to minions wait, in seconds (default: the
    /// config's `timeout`).
    #[arg(short = 't', long = "timeout", value_name = "SECONDS")]
    timeout: Option<u64>,
    /// Output format: nested (default), json, yaml, txt, raw, quiet, key.
    #[arg(long = "out", alias = "output", value_name = "OUTPUTTER", value_parser = parse_outputter)]
    out: Option<Out>,
    /// Indentation for json and yaml (a negative number: one line).
    #[arg(
        long = "out-indent",
        alias = "output-indent",
        value_name = "N",
        allow_negative_numbers = true
    )]
    out_indent: Option<i64>,
    /// Never colour the output.
    #[arg(long = "no-color", alias = "no-colour")]
    no_color: bool,
    /// Colour the output even when it is not a terminal.
    #[arg(
        long = "force-color",
        alias = "force-colour",
        conflicts_with = "no_color"
    )]
    force_color: bool,
    /// Do not display the results of the run.
    #[arg(long = "quiet")]
    quiet: bool,
    /// Show the documentation of the runner functions (all, one module or
    /// one function).
    #[arg(short = 'd', long = "doc", alias = "documentation")]
    doc: bool,
    /// The runner function (`jobs.list_jobs`), then its arguments
    /// (positional or `key=value`).
    #[arg(value_name = "FUNCTION")]
    call: Vec<String>,
}

fn parse_args() -> Result<Args, ExitCode> {
    cli::parse_args(PROGRAM)
}

fn load_config(dir: &Path) -> Result<(MasterConfig, Vec<String>), String> {
    cli::load_master_config(dir)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    if args.doc {
        return print_docs(args.call.first().map(String::as_str));
    }
    let Some((fun, fun_args)) = args.call.split_first() else {
        return cli::fail(
            PROGRAM,
            "no runner function given (e.g. brine-run manage.status; see --doc)",
            EX_USAGE,
        );
    };
    let (mut config, warnings) = match load_config(&args.config_dir) {
        Ok(loaded) => loaded,
        Err(err) => return cli::fail(PROGRAM, err, 1),
    };
    let level = match cli::log_level(args.log_level.as_deref(), config.log_level) {
        Ok(level) => level,
        Err(err) => return cli::fail(PROGRAM, err, EX_USAGE),
    };
    if let Err(err) = cli::init_logging(level, None) {
        return cli::fail(PROGRAM, err, 1);
    }
    for warning in &warnings {
        warn!("{warning}");
    }
    if let Some(secs) = args.timeout {
        config.timeout = Duration::from_secs(secs);
    }
    let color = output::use_color(
        args.force_color,
        args.no_color,
        std::io::stdout().is_terminal(),
    );
    let printer = Printer::new(args.out, color).with_options(OutputOptions {
        color,
        indent: args.out_indent.map(Indent::Spaces),
        ..OutputOptions::default()
    });
    let runtime = match cli::tool_runtime() {
        Ok(rt) => rt,
        Err(err) => return cli::fail(PROGRAM, format!("could not start the runtime: {err}"), 1),
    };
    let runner = Runner::new(config, Registry::builtin());
    let result = runtime.block_on(runner.run(fun, fun_args));
    let output = match result {
        Ok(output) => output,
        Err(err) => return cli::fail(PROGRAM, describe(&err), 1),
    };
    if args.quiet {
        return ExitCode::SUCCESS;
    }
    let text = printer.format_suggested(&output.data, output.outputter.as_deref());
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => cli::fail(PROGRAM, format!("could not write the output: {err}"), 1),
    }
}

/// `--doc [module|module.function]`: `name:` then its documentation, as
/// `salt-run -d` prints it.
fn print_docs(filter: Option<&str>) -> ExitCode {
    let chosen: Vec<_> = runners::functions()
        .iter()
        .filter(|f| {
            filter.is_none_or(|wanted| {
                f.name == wanted
                    || f.name
                        .strip_prefix(wanted)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
        })
        .collect();
    if chosen.is_empty() {
        let wanted = filter.unwrap_or_default();
        return cli::fail(PROGRAM, format!("no runner function matches {wanted:?}"), 1);
    }
    let mut text = String::new();
    for f in chosen {
        text.push_str(&format!("{}:\n{}\n\n", f.name, f.doc));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    ExitCode::SUCCESS
}

/// The error on one line; a missing root key means no master ever ran
/// with this config (or it runs as another user).
fn describe(err: &RunnerError) -> String {
    if let RunnerError::Client(ClientError::RootKey { path, source }) = err {
        let reason = if source.kind() == std::io::ErrorKind::NotFound {
            "the master is not running (it never ran with this config)"
        } else {
            "cannot use the master's root key (run as the master's user)"
        };
        return format!("{reason}: could not read {}: {source}", path.display());
    }
    error_chain(err)
}

/// `error: cause: cause`, on one line (transparent wrappers add nothing).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}
