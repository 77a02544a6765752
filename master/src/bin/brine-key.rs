//! `brine-key`: manage the master's minion keys (Salt's `salt-key`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use brine_master::keys::cli::{
    Include, KeyAction, KeyCli, KeyCliError, ListWhich, Out, Printer, Terminal, parse_outputter,
};
use brine_master::keys::{HashType, KeyStore, RotationRequest};
use brine_master::{cli, output};
use brine_protocol::config::{LogLevel, MasterConfig};
use clap::{ArgGroup, Parser};
use tracing::warn;

const PROGRAM: &str = "brine-key";
use brine_master::cli::EX_USAGE;

/// Manage the Brine master's minion keys.
#[derive(Debug, Parser)]
#[command(
    name = "brine-key",
    version,
    about = "brine-key is used to manage Brine authentication keys",
    group(ArgGroup::new("action").multiple(false).args([
        "list", "list_all", "accept", "accept_all", "reject", "reject_all",
        "print", "print_all", "delete", "delete_all", "finger", "finger_all", "gen_keys",
    ]))
)]
struct Args {
    /// The config directory holding `master` and `master.d/`.
    #[arg(short = 'c', long = "config-dir", default_value = brine_protocol::config::DEFAULT_CONFIG_DIR)]
    config_dir: PathBuf,
    /// Console log level (`-l` is `--list`, as in salt-key).
    #[arg(long = "log-level", value_name = "LEVEL")]
    log_level: Option<String>,
    /// Output format: key (default), nested, json, yaml, txt, raw, quiet.
    #[arg(long = "out", alias = "output", value_name = "OUTPUTTER", value_parser = parse_outputter)]
    out: Option<Out>,
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

    /// List keys: pre|un|unaccepted, acc|accepted, rej|rejected, den|denied, all.
    #[arg(short = 'l', long = "list", value_name = "ARG", value_parser = str::parse::<ListWhich>)]
    list: Option<ListWhich>,
    /// List all keys.
    #[arg(short = 'L', long = "list-all")]
    list_all: bool,
    /// Accept the matching pending keys (globs, comma separated).
    #[arg(short = 'a', long = "accept", value_name = "GLOB")]
    accept: Option<String>,
    /// Accept all pending keys.
    #[arg(short = 'A', long = "accept-all")]
    accept_all: bool,
    /// Reject the matching pending keys.
    #[arg(short = 'r', long = "reject", value_name = "GLOB")]
    reject: Option<String>,
    /// Reject all pending keys.
    #[arg(short = 'R', long = "reject-all")]
    reject_all: bool,
    /// Print the matching public keys.
    #[arg(short = 'p', long = "print", value_name = "GLOB")]
    print: Option<String>,
    /// Print all public keys.
    #[arg(short = 'P', long = "print-all")]
    print_all: bool,
    /// Delete the matching keys, in any state.
    #[arg(short = 'd', long = "delete", value_name = "GLOB")]
    delete: Option<String>,
    /// Delete all keys.
    #[arg(short = 'D', long = "delete-all")]
    delete_all: bool,
    /// Print the matching keys' fingerprints.
    #[arg(short = 'f', long = "finger", value_name = "GLOB")]
    finger: Option<String>,
    /// Print all keys' fingerprints.
    #[arg(short = 'F', long = "finger-all")]
    finger_all: bool,

    /// Include accepted keys when rejecting.
    #[arg(long = "include-accepted")]
    include_accepted: bool,
    /// Include rejected keys when accepting.
    #[arg(long = "include-rejected")]
    include_rejected: bool,
    /// Include denied keys when accepting or rejecting.
    #[arg(long = "include-denied")]
    include_denied: bool,
    /// Include rejected keys when accepting, accepted keys when rejecting.
    #[arg(long = "include-all")]
    include_all: bool,
    /// Answer yes to every question.
    #[arg(short = 'y', long = "yes")]
    yes: bool,
    /// Ask a running master to rotate its session key after a reject or
    /// delete (true/false; default: the config's `rotate_aes_key`).
    #[arg(long = "rotate-aes-key", value_name = "BOOL", value_parser = parse_bool)]
    rotate_aes_key: Option<bool>,

    /// Generate a key pair named NAME (NAME.pem, NAME.pub).
    #[arg(long = "gen-keys", value_name = "NAME")]
    gen_keys: Option<String>,
    /// Where --gen-keys writes the pair.
    #[arg(long = "gen-keys-dir", value_name = "DIR", default_value = ".")]
    gen_keys_dir: PathBuf,
    /// RSA key size for --gen-keys (2048 to 32768).
    #[arg(long = "keysize", value_name = "BITS", default_value_t = 2048,
          value_parser = clap::value_parser!(u64).range(2048..=32768))]
    keysize: u64,
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(format!("expected true or false, not {s:?}")),
    }
}

impl Args {
    fn action(&self) -> KeyAction {
        let all = || "*".to_owned();
        if let Some(name) = &self.gen_keys {
            return KeyAction::GenKeys {
                name: name.clone(),
                dir: self.gen_keys_dir.clone(),
                keysize: usize::try_from(self.keysize).unwrap_or(usize::MAX),
            };
        }
        if let Some(which) = self.list {
            KeyAction::List(which)
        } else if let Some(glob) = &self.accept {
            KeyAction::Accept(glob.clone())
        } else if self.accept_all {
            KeyAction::Accept(all())
        } else if let Some(glob) = &self.reject {
            KeyAction::Reject(glob.clone())
        } else if self.reject_all {
            KeyAction::Reject(all())
        } else if let Some(glob) = &self.print {
            KeyAction::Print(glob.clone())
        } else if self.print_all {
            KeyAction::Print(all())
        } else if let Some(glob) = &self.delete {
            KeyAction::Delete(glob.clone())
        } else if self.delete_all {
            KeyAction::Delete(all())
        } else if let Some(glob) = &self.finger {
            KeyAction::Finger(glob.clone())
        } else if self.finger_all {
            KeyAction::Finger(all())
        } else {
            KeyAction::List(ListWhich::All)
        }
    }
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
    let action = args.action();
    let generating = matches!(action, KeyAction::GenKeys { .. });
    // --gen-keys needs no master config (salt-key falls back likewise)
    let config = if generating && !args.config_dir.is_dir() {
        None
    } else {
        match load_config(&args.config_dir) {
            Ok(loaded) => Some(loaded),
            Err(err) => return cli::fail(PROGRAM, err, 1),
        }
    };
    let default_level = config
        .as_ref()
        .map_or(LogLevel::Warning, |(c, _)| c.log_level);
    let level = match cli::log_level(args.log_level.as_deref(), default_level) {
        Ok(level) => level,
        Err(err) => return cli::fail(PROGRAM, err, EX_USAGE),
    };
    if let Err(err) = cli::init_logging(level, None) {
        return cli::fail(PROGRAM, err, 1);
    }
    if let Some((_, warnings)) = &config {
        for warning in warnings {
            warn!("{warning}");
        }
    }
    let color = output::use_color(
        args.force_color,
        args.no_color,
        std::io::stdout().is_terminal(),
    );
    let printer = Printer::new(args.out, color);
    let (store, hash) = match &config {
        Some((config, _)) => {
            let hash = match config.hash_type.parse::<HashType>() {
                Ok(hash) => hash,
                Err(err) => return cli::fail(PROGRAM, err, 1),
            };
            (key_store(config, args.rotate_aes_key), hash)
        }
        None => (KeyStore::new(&args.gen_keys_dir), HashType::default()),
    };
    let include = Include {
        accepted: args.include_accepted,
        rejected: args.include_rejected,
        denied: args.include_denied,
        all: args.include_all,
    };
    let key_cli = KeyCli::new(store, printer)
        .with_hash(hash)
        .with_include(include)
        .with_yes(args.yes);
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let stdin = std::io::stdin();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let mut input = stdin.lock();
    let result = key_cli.run(
        &action,
        &mut Terminal {
            out: &mut out,
            err: &mut err,
            input: &mut input,
        },
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // the reader went away (`brine-key -L | head`): nothing to report
        Err(KeyCliError::Terminal(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(err) => cli::fail(PROGRAM, error_chain(&err), 1),
    }
}

/// The key store, asking a running master to rotate its session key after
/// rejects and deletes when `rotate_aes_key` is on and its `cachedir`
/// exists (no master ever ran there otherwise).
fn key_store(config: &MasterConfig, rotate_flag: Option<bool>) -> KeyStore {
    let store = KeyStore::new(&config.pki_dir);
    if rotate_flag.unwrap_or(config.rotate_aes_key) && config.cachedir.is_dir() {
        store.with_rotation(RotationRequest {
            cachedir: config.cachedir.clone(),
            master_id: config.id.clone(),
        })
    } else {
        store
    }
}

/// `error: cause: cause`, on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
