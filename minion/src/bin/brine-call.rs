//! `brine-call`: run a function on this minion and print its return, as
//! Salt's `salt-call`: `brine-call [options] <function> [arguments]`.
//!
//! The function runs in this process with the minion's modules and grains
//! (config `grains` included). Brine has no pillar or file server yet, so
//! nothing needs the master: `--local` is accepted for Salt's command
//! lines and behaves the same.

use std::path::PathBuf;
use std::process::ExitCode;

use brine_master::cli;
use brine_master::output::{self, Indent, OutputOptions, Outputter};
use brine_minion::{ExecOptions, Jobs, Modules, PublishLoad, grains};
use brine_protocol::Value;
use brine_protocol::config::{DEFAULT_CONFIG_DIR, MinionConfig, Missing, hostname};
use brine_protocol::jid::gen_jid;
use clap::Parser;

const PROGRAM: &str = "brine-call";

/// Run a function on this minion (Salt's `salt-call`).
#[derive(Debug, Parser)]
#[command(
    name = "brine-call",
    version,
    about = "Run a function on this minion and print its return (Salt's `salt-call`)"
)]
struct Args {
    /// The directory holding the `minion` config file.
    #[arg(short = 'c', long = "config-dir", default_value = DEFAULT_CONFIG_DIR)]
    config_dir: PathBuf,
    /// Console log level.
    #[arg(short = 'l', long = "log-level", default_value = "warning")]
    log_level: String,
    /// Run without a master (Brine never needs one here; kept for Salt's command lines).
    #[arg(long = "local")]
    local: bool,
    /// Exit with the function's own retcode.
    #[arg(long = "retcode-passthrough")]
    retcode_passthrough: bool,
    /// The outputter: nested (default), json, yaml, txt, raw, quiet.
    #[arg(long = "out", alias = "output")]
    out: Option<String>,
    /// Indentation for outputters that use it.
    #[arg(long = "out-indent", alias = "output-indent")]
    out_indent: Option<i64>,
    /// No colors.
    #[arg(long = "no-color", alias = "no-colour")]
    no_color: bool,
    /// Colors even when stdout is not a terminal.
    #[arg(long = "force-color", alias = "force-colour")]
    force_color: bool,
    /// The function, `module.function`.
    function: String,
    /// Arguments: positional values and `key=value` keyword arguments.
    #[arg(allow_negative_numbers = true)]
    arguments: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(message) => cli::fail(PROGRAM, message, 1),
    }
}

fn run(args: &Args) -> Result<u8, String> {
    let config = MinionConfig::load(&args.config_dir, Missing::UseDefaults)
        .map_err(|e| e.to_string())?
        .config;
    let level = cli::log_level(Some(&args.log_level), config.log_level)?;
    cli::init_logging(level, None)?;
    let outputter: Option<Outputter> = match &args.out {
        Some(name) => Some(
            name.parse()
                .map_err(|e: output::OutputError| e.to_string())?,
        ),
        None => None,
    };
    let id = match &config.id {
        Some(id) => id.clone(),
        None => hostname().ok_or("the config has no id and the host name is unknown")?,
    };
    let cli_args: Vec<&str> = args.arguments.iter().map(String::as_str).collect();
    let load = PublishLoad::new(
        gen_jid(),
        args.function.as_str(),
        brine_protocol::args::parse_cli(&cli_args),
    );
    let runtime = cli::tool_runtime().map_err(|e| format!("could not start the runtime: {e}"))?;
    let ret = runtime.block_on(async {
        let grains = {
            let id = id.clone();
            let static_grains = config.grains.clone();
            tokio::task::spawn_blocking(move || grains::load(&id, &static_grains))
                .await
                .map_err(|e| format!("computing grains failed: {e}"))?
        };
        let jobs = Jobs::new();
        brine_minion::execute(
            &Modules::builtin(),
            &load,
            &jobs,
            &grains,
            &ExecOptions::default(),
        )
        .await
        .ok_or_else(|| "the function did not return".to_owned())
    })?;
    let chosen = Outputter::choose(outputter, ret.out.as_deref());
    let options = OutputOptions {
        color: output::use_color(
            args.force_color,
            args.no_color,
            std::io::IsTerminal::is_terminal(&std::io::stdout()),
        ),
        indent: args.out_indent.map(Indent::Spaces),
        retcode: ret.retcode,
        ..OutputOptions::default()
    };
    let shown = Value::Map(vec![(Value::from("local"), ret.ret.clone())]);
    print!("{}", output::render(chosen, &shown, &options));
    Ok(if args.retcode_passthrough {
        u8::try_from(ret.retcode.clamp(0, 255)).unwrap_or(1)
    } else if ret.retcode != 0 {
        1
    } else {
        0
    })
}
