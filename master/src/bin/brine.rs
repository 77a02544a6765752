//! `brine`: publish a job to minions and print their returns, as Salt's
//! `salt` command: `brine [options] '<target>' <function> [arguments]`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use brine_master::client::{JobSpec, LocalClient, MinionReturn};
use brine_master::cmdline::batch::{self, BatchEvent};
use brine_master::cmdline::{self, BatchSize};
use brine_master::output::{self, Indent, OutputOptions, Outputter};
use brine_master::{BuiltinTransports, cli};
use brine_protocol::Value;
use brine_protocol::args::parse_input;
use brine_protocol::config::{DEFAULT_CONFIG_DIR, MasterConfig, Missing};
use brine_transport_api::Registry;
use clap::{ArgGroup, Parser};

const PROGRAM: &str = "brine";

/// Run a function on the minions a target matches, and print the returns.
#[derive(Debug, Parser)]
#[command(
    name = "brine",
    version,
    about = "Publish a job to the minions a target matches and print their returns (Salt's `salt`)",
    group(ArgGroup::new("target_type").args(["pcre", "list", "grain", "grain_pcre", "compound", "nodegroup"]))
)]
struct Args {
    /// The config directory holding `master` and `master.d/`.
    #[arg(short = 'c', long = "config-dir", default_value = DEFAULT_CONFIG_DIR)]
    config_dir: PathBuf,
    /// Console log level.
    #[arg(short = 'l', long = "log-level", default_value = "warning")]
    log_level: String,
    /// Seconds to wait for returns (default: the config's `timeout`).
    #[arg(short = 't', long = "timeout")]
    timeout: Option<f64>,
    /// Wait for every return, then print them together.
    #[arg(short = 's', long = "static")]
    static_out: bool,
    /// Publish and print the job id without waiting.
    #[arg(long = "async")]
    run_async: bool,
    /// Run on this many minions at a time (a count, or a percentage like 10%).
    #[arg(short = 'b', long = "batch-size", alias = "batch")]
    batch: Option<String>,
    /// The target is a Perl-compatible regular expression.
    #[arg(short = 'E', long = "pcre")]
    pcre: bool,
    /// The target is a comma-separated list of minion ids.
    #[arg(short = 'L', long = "list")]
    list: bool,
    /// The target is a grain match, `key:glob`.
    #[arg(short = 'G', long = "grain")]
    grain: bool,
    /// The target is a grain match, `key:regex`.
    #[arg(short = 'P', long = "grain-pcre")]
    grain_pcre: bool,
    /// The target is a compound expression (`G@role:web and not m1`).
    #[arg(short = 'C', long = "compound")]
    compound: bool,
    /// The target is a nodegroup from the master config.
    #[arg(short = 'N', long = "nodegroup")]
    nodegroup: bool,
    /// The outputter: nested (default), json, yaml, txt, raw, quiet.
    #[arg(long = "out", alias = "output")]
    out: Option<String>,
    /// Indentation for outputters that use it (json).
    #[arg(long = "out-indent", alias = "output-indent")]
    out_indent: Option<i64>,
    /// Write the output to this file instead of stdout.
    #[arg(long = "out-file", alias = "output-file")]
    out_file: Option<PathBuf>,
    /// Append to --out-file instead of replacing it.
    #[arg(long = "out-file-append", alias = "output-file-append")]
    out_file_append: bool,
    /// No colors.
    #[arg(long = "no-color", alias = "no-colour")]
    no_color: bool,
    /// Colors even when stdout is not a terminal.
    #[arg(long = "force-color", alias = "force-colour")]
    force_color: bool,
    /// Show the job id and the minions that did not return.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Print the job id.
    #[arg(long = "show-jid")]
    show_jid: bool,
    /// Print a summary of the returns at the end.
    #[arg(long = "summary")]
    summary: bool,
    /// Show a progress bar of returns on stderr.
    #[arg(long = "progress")]
    progress: bool,
    /// Do not list the minions that did not return.
    #[arg(long = "hide-timeout")]
    hide_timeout: bool,
    /// Returners to send the returns to as well (comma separated).
    #[arg(long = "return")]
    returners: Option<String>,
    /// The target expression.
    target: String,
    /// The function, `module.function`.
    function: String,
    /// Arguments: positional values and `key=value` keyword arguments.
    #[arg(allow_negative_numbers = true)]
    arguments: Vec<String>,
}

impl Args {
    fn tgt_type(&self) -> &'static str {
        if self.pcre {
            "pcre"
        } else if self.list {
            "list"
        } else if self.grain {
            "grain"
        } else if self.grain_pcre {
            "grain_pcre"
        } else if self.compound {
            "compound"
        } else if self.nodegroup {
            "nodegroup"
        } else {
            "glob"
        }
    }
}

/// Where output goes: stdout, or the `--out-file`.
struct Sink {
    out: Box<dyn std::io::Write>,
    outputter: Outputter,
    options: OutputOptions,
}

impl Sink {
    fn show(&mut self, value: &Value) {
        self.show_with_retcode(value, 0);
    }

    /// Prints `value`; a non-zero `retcode` paints nested keys red, as Salt.
    fn show_with_retcode(&mut self, value: &Value, retcode: i64) {
        self.options.retcode = retcode;
        let text = self.outputter.render(value, &self.options);
        if !text.is_empty() {
            let _ = self.out.write_all(text.as_bytes());
            if !text.ends_with('\n') {
                let _ = self.out.write_all(b"\n");
            }
            let _ = self.out.flush();
        }
    }

    fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }
}

fn main() -> ExitCode {
    let args: Args = match cli::parse_args(PROGRAM) {
        Ok(args) => args,
        Err(code) => return code,
    };
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err(message) => cli::fail(PROGRAM, message, cmdline::EX_NO_RETURN),
    }
}

fn run(args: Args) -> Result<u8, String> {
    let loaded = MasterConfig::load(&args.config_dir, Missing::Error).map_err(|e| e.to_string())?;
    let config = loaded.config;
    let level = cli::log_level(Some(&args.log_level), config.log_level)?;
    cli::init_logging(level, None)?;
    let outputter: Outputter = args
        .out
        .as_deref()
        .unwrap_or("nested")
        .parse()
        .map_err(|e: output::OutputError| e.to_string())?;
    let batch_size = match &args.batch {
        Some(text) => Some(text.parse::<BatchSize>().map_err(|e| e.to_string())?),
        None => None,
    };
    let timeout = match args.timeout {
        Some(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
        Some(secs) => {
            return Err(format!(
                "invalid timeout {secs}: it must be a positive number of seconds"
            ));
        }
        None => None,
    };
    let options = OutputOptions {
        color: output::use_color(
            args.force_color,
            args.no_color,
            std::io::IsTerminal::is_terminal(&std::io::stdout()),
        ),
        indent: args.out_indent.map(Indent::Spaces),
        ..OutputOptions::default()
    };
    let out: Box<dyn std::io::Write> = match &args.out_file {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(args.out_file_append)
                .truncate(!args.out_file_append)
                .open(path)
                .map_err(|e| format!("cannot open --out-file {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let mut sink = Sink {
        out,
        outputter,
        options,
    };

    let (arg, kwargs) = parse_input(
        &args
            .arguments
            .iter()
            .map(|a| Value::from(a.as_str()))
            .collect::<Vec<_>>(),
        &[],
    );
    let tgt = if args.list {
        Value::Array(
            args.target
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Value::from)
                .collect(),
        )
    } else {
        Value::from(args.target.as_str())
    };
    let mut job = JobSpec::new("", args.function.as_str()).tgt_type(args.tgt_type());
    job.tgt = tgt;
    job.arg = arg;
    job.kwargs = kwargs
        .iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
    if let Some(returners) = &args.returners {
        job.ret.clone_from(returners);
    }

    let runtime = cli::tool_runtime().map_err(|e| format!("could not start the runtime: {e}"))?;
    runtime.block_on(async {
        let client = LocalClient::from_config(&config, &Registry::builtin())
            .await
            .map_err(|e| format!("{e}; is the brine master running?"))?;
        let client = Arc::new(client);
        let outcome = run_job(&client, &job, batch_size, timeout, &args, &mut sink).await;
        client.close().await;
        outcome
    })
}

async fn run_job(
    client: &Arc<LocalClient>,
    job: &JobSpec,
    batch_size: Option<BatchSize>,
    timeout: Option<Duration>,
    args: &Args,
    sink: &mut Sink,
) -> Result<u8, String> {
    if args.run_async {
        let published = client.pub_job(job).await.map_err(|e| e.to_string())?;
        if published.minions.is_empty() {
            return Ok(no_minions());
        }
        sink.line(&format!("Executed command with job ID: {}", published.jid));
        return Ok(cmdline::EX_OK);
    }
    if let Some(size) = batch_size {
        return run_batch(Arc::clone(client), job, size, timeout, args, sink).await;
    }
    run_cmd(client, job, timeout, args, sink).await
}

fn no_minions() -> u8 {
    println!("No minions matched the target. No command was sent, no jid was assigned.");
    eprintln!("ERROR: No return received");
    cmdline::EX_NO_RETURN
}

async fn run_cmd(
    client: &LocalClient,
    job: &JobSpec,
    timeout: Option<Duration>,
    args: &Args,
    sink: &mut Sink,
) -> Result<u8, String> {
    // Salt learns the jid before any return; our client picks it here.
    let mut job = job.clone();
    let jid = brine_protocol::jid::gen_jid();
    job.jid = Some(jid.clone());
    if args.verbose {
        let msg = format!("Executing job with jid {jid}");
        sink.line(&msg);
        sink.line(&format!("{}\n", "-".repeat(msg.len())));
    } else if args.show_jid {
        sink.line(&format!("jid: {jid}"));
    }
    let streaming = !args.static_out;
    let progress = args.progress;
    // Returns print as they arrive unless they are collected for one
    // `--static` print (or kept off stdout while a progress line runs).
    let print_now = streaming && !progress;
    let mut printed: Vec<(String, Value)> = Vec::new();
    let mut seen = 0usize;
    let mut take = |id: String, ret: Value, sink: &mut Sink| {
        seen += 1;
        if progress {
            eprint!("\r{seen} returned");
        }
        if print_now {
            sink.show(&output::static_returns([(id.as_str(), ret)]));
        } else {
            printed.push((id, ret));
        }
    };
    // The callback cannot borrow the sink across the await: it forwards.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Value)>(4096);
    let mut forward = |ret: &MinionReturn| {
        let _ = tx.try_send((ret.id.clone(), ret.ret.clone()));
    };
    let cmd = client.cmd_cli(&job, timeout, &mut forward);
    tokio::pin!(cmd);
    let result = loop {
        tokio::select! {
            result = &mut cmd => break result,
            Some((id, ret)) = rx.recv() => take(id, ret, sink),
        }
    };
    while let Ok((id, ret)) = rx.try_recv() {
        take(id, ret, sink);
    }
    let result = result.map_err(|e| e.to_string())?;
    if result.minions.is_empty() && result.returns.is_empty() {
        return Ok(no_minions());
    }
    if progress {
        eprintln!(
            "\r{} of {} returned",
            result.returns.len(),
            result.minions.len()
        );
    }
    if !streaming || progress {
        let mut all: Vec<(&str, Value)> = printed
            .iter()
            .map(|(id, v)| (id.as_str(), v.clone()))
            .collect();
        if !args.hide_timeout {
            for id in &result.not_returned {
                all.push((
                    id.as_str(),
                    Value::from(cmdline::did_not_return(&result.jid)),
                ));
            }
        }
        sink.show(&output::static_returns(all));
    } else if !args.hide_timeout {
        for id in &result.not_returned {
            sink.show(&output::static_returns([(
                id.as_str(),
                Value::from(cmdline::did_not_return(&result.jid)),
            )]));
        }
    }
    if args.summary {
        sink.line(&cmdline::summary(&result, args.verbose));
    }
    let code = cmdline::exit_code(&result);
    if code == cmdline::EX_GENERIC {
        eprintln!("ERROR: Minions returned with non-zero exit code");
    }
    Ok(code)
}

async fn run_batch(
    client: Arc<LocalClient>,
    job: &JobSpec,
    size: BatchSize,
    timeout: Option<Duration>,
    args: &Args,
    sink: &mut Sink,
) -> Result<u8, String> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<BatchEvent>(4096);
    let mut forward = |event: BatchEvent| {
        let _ = tx.try_send(event);
    };
    let run = batch::run(client, job, size, timeout, &mut forward);
    tokio::pin!(run);
    let mut code = cmdline::EX_OK;
    let mut collected: Vec<(String, Value)> = Vec::new();
    let mut handle = |event: BatchEvent, sink: &mut Sink, code: &mut u8| match event {
        BatchEvent::Down(id) => {
            sink.line(&format!(
                "Minion {id} did not respond. No job will be sent."
            ));
        }
        BatchEvent::Executing(ids) => {
            if !args.static_out {
                let list: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
                sink.line(&format!("\nExecuting run on [{}]\n", list.join(", ")));
            }
        }
        BatchEvent::Returned(ret) => {
            let rc = cmdline::retcode_of(&ret);
            if rc != 0 {
                *code = (*code).max(u8::try_from(rc.clamp(1, 255)).unwrap_or(1));
            }
            if args.static_out {
                collected.push((ret.id, ret.ret));
            } else {
                sink.show(&output::static_returns([(ret.id.as_str(), ret.ret)]));
            }
        }
        BatchEvent::NotReturned { id, jid } => {
            *code = (*code).max(cmdline::EX_NOT_RETURNED);
            if !args.hide_timeout {
                sink.show(&output::static_returns([(
                    id.as_str(),
                    Value::from(cmdline::did_not_return(&jid)),
                )]));
            }
        }
        BatchEvent::Failed { ids, reason } => {
            *code = (*code).max(cmdline::EX_NO_RETURN);
            sink.line(&format!(
                "could not publish to {}: {reason}",
                ids.join(", ")
            ));
        }
    };
    let result = loop {
        tokio::select! {
            result = &mut run => break result,
            Some(event) = rx.recv() => handle(event, sink, &mut code),
        }
    };
    while let Ok(event) = rx.try_recv() {
        handle(event, sink, &mut code);
    }
    result.map_err(|e| e.to_string())?;
    if args.static_out && !collected.is_empty() {
        sink.show(&output::static_returns(
            collected.iter().map(|(id, v)| (id.as_str(), v.clone())),
        ));
    }
    Ok(code)
}
