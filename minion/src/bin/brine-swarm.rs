//! `brine-swarm`: N Brine minions in one process against one master, like
//! Salt's `minionswarm.py` but in one process so that 10,000 fit in memory.
//!
//! ```text
//! brine-swarm --master 127.0.0.1 --master-port 4506 --transport tcp --count 1000 \
//!     [--prefix swarm-] [--grains role=web]... [--ramp-per-sec 200] \
//!     [--swarm-dir .brine/swarm] [--keysize 2048]
//! ```
//!
//! - Each minion has its own id (`<prefix><index>`, zero-padded), key pair,
//!   grains, `pki_dir` and `cachedir` (return spool), real sockets to the
//!   master over the chosen transport.
//! - Key pairs are generated once, on every core, and cached under
//!   `<swarm-dir>/keys/<id>/` (RSA of `--keysize` bits, 2048 as Salt); a rerun
//!   loads them. What a minion learns from a master (its public key, a
//!   pinned QUIC certificate) lives in `<swarm-dir>/run/<id>/`, emptied at
//!   every start so that one swarm dir serves any master.
//! - The host's grains are computed once; each minion gets a copy with its
//!   own `id` and the `--grains KEY=VALUE` overrides (values typed as on
//!   Salt's command line: `n=3` is an integer).
//! - `--ramp-per-sec R` starts R minions a second (0: as fast as the keys
//!   load).
//! - One line on stdout when every minion runs (authenticated, start events
//!   sent, subscription live) or has failed:
//!   `swarm ready: count=N running=N failed=0 keys_secs=… start_secs=… rss_kb=…`
//!   (`start_secs` from process start, keys included; `auth_secs` from the
//!   first minion start). Progress goes to stderr.
//! - `--prepare-only` generates or loads the keys and exits (what a
//!   benchmark runs before it times a start).
//! - Ctrl-C or SIGTERM stops every minion (gracefully, 10 s at most) and
//!   exits 0.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use brine_master::{BuiltinTransports, cli};
use brine_minion::daemon::{
    Minion, MinionHandle, MinionState, Preloaded, SharedMasterKey, error_chain,
};
use brine_minion::{ExecOptions, Modules};
use brine_protocol::Value;
use brine_protocol::args::yamlify_arg;
use brine_protocol::config::{LogLevel, MinionConfig};
use brine_protocol::keys::{KeyPair, MinionPki};
use brine_transport_api::Registry;
use clap::Parser;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{info, warn};

/// mimalloc instead of glibc's malloc: at 10,000 minions glibc's spent a
/// third of the swarm's CPU and fragmented across the worker threads.
/// The swarm keeps the transparent huge pages mimalloc asks for (the master
/// and a lone minion turn them off): its heap is large, and with them it
/// spent ~18% less CPU per `test.ping` round to 10,000 minions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Minion starts in flight at once (each does one RSA private-key
/// operation and a few file writes on the blocking pool).
const START_CONCURRENCY: usize = 64;
/// How long the graceful stop may take before the process exits anyway.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// N Brine minions in one process.
#[derive(Debug, Parser)]
#[command(
    name = "brine-swarm",
    version,
    about = "N Brine minions in one process"
)]
struct Args {
    /// The master's host (its request port is --master-port).
    #[arg(long, default_value = "127.0.0.1")]
    master: String,
    /// The master's `ret_port`.
    #[arg(long = "master-port", default_value_t = 4506)]
    master_port: u16,
    /// zeromq, tcp or quic.
    #[arg(long, default_value = "zeromq")]
    transport: String,
    /// How many minions.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// Minion ids are `<prefix><index>`.
    #[arg(long, default_value = "swarm-")]
    prefix: String,
    /// The first index.
    #[arg(long = "start-index", default_value_t = 0)]
    start_index: usize,
    /// A static grain for every minion, KEY=VALUE (repeatable).
    #[arg(long = "grains", value_name = "KEY=VALUE")]
    grains: Vec<String>,
    /// Minions started per second (0: as fast as possible).
    #[arg(long = "ramp-per-sec", default_value_t = 0.0)]
    ramp_per_sec: f64,
    /// Where key pairs are cached and per-minion state lives.
    #[arg(long = "swarm-dir", default_value = ".brine/swarm")]
    swarm_dir: PathBuf,
    /// RSA key size for keys generated now (cached keys are reused as they are).
    #[arg(long, default_value_t = 2048)]
    keysize: usize,
    /// Threads generating and loading keys (default: every core).
    #[arg(long = "key-threads")]
    key_threads: Option<usize>,
    /// Runtime worker threads (default: every core).
    #[arg(long = "worker-threads")]
    worker_threads: Option<usize>,
    /// Seconds a minion waits for an `_auth` reply (Salt's `auth_timeout`).
    #[arg(long = "auth-timeout")]
    auth_timeout: Option<u64>,
    /// Log level: all, garbage, trace, debug, profile, info, warning, error, critical, quiet.
    #[arg(short = 'l', long = "log-level", default_value = "warning")]
    log_level: LogLevel,
    /// Log to this file instead of stderr.
    #[arg(long = "log-file")]
    log_file: Option<PathBuf>,
    /// Bytes kept from each output stream of a `cmd.*` command, in MiB
    /// (Brine's default 8; raise it to return more from `cmd.run`).
    #[arg(long = "output-cap-mb", default_value_t = 8)]
    output_cap_mb: usize,
    /// Generate (or load) the key pairs, print `swarm keys: …` and exit.
    #[arg(long = "prepare-only")]
    prepare_only: bool,
}

fn main() -> ExitCode {
    let started = Instant::now();
    let args = Args::parse();
    if let Err(err) = cli::init_logging(args.log_level, args.log_file.as_deref()) {
        return cli::fail("brine-swarm", err, 1);
    }
    cli::raise_open_files_limit(cli::WANTED_OPEN_FILES);
    if args.count == 0 {
        return cli::fail("brine-swarm", "--count must be at least 1", 2);
    }
    let static_grains = match parse_grains(&args.grains) {
        Ok(grains) => grains,
        Err(err) => return cli::fail("brine-swarm", err, 2),
    };
    let ids: Vec<String> = {
        let last = args.start_index + args.count - 1;
        let width = last.to_string().len().max(4);
        (args.start_index..=last)
            .map(|i| format!("{}{i:0width$}", args.prefix))
            .collect()
    };
    let keys = match prepare(&args, &ids) {
        Ok(keys) => keys,
        Err(err) => return cli::fail("brine-swarm", err, 1),
    };
    let keys_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "brine-swarm: {} key pairs ready in {keys_secs:.1} s",
        keys.len()
    );
    if args.prepare_only {
        println!("swarm keys: count={} keys_secs={keys_secs:.3}", keys.len());
        return ExitCode::SUCCESS;
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.worker_threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = match runtime.build() {
        Ok(runtime) => runtime,
        Err(err) => return cli::fail("brine-swarm", err, 1),
    };
    let plan = Plan {
        ids,
        keys,
        static_grains,
        started,
        keys_secs,
    };
    match runtime.block_on(run(&args, plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => cli::fail("brine-swarm", err, 1),
    }
}

/// `KEY=VALUE` flags as a grains map, values typed as Salt's CLI types them.
fn parse_grains(flags: &[String]) -> Result<Value, String> {
    let mut grains = Value::Map(Vec::new());
    for flag in flags {
        let (key, value) = flag
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| format!("--grains {flag:?}: expected KEY=VALUE"))?;
        grains.insert(key, yamlify_arg(value));
    }
    Ok(grains)
}

fn state_dir(swarm_dir: &Path, id: &str) -> PathBuf {
    swarm_dir.join("run").join(id)
}

/// Empties each minion's state dir and loads (or generates, once) its key
/// pair, on `--key-threads` threads; the pairs in `ids` order.
fn prepare(args: &Args, ids: &[String]) -> Result<Vec<KeyPair>, String> {
    let threads = args
        .key_threads
        .or_else(|| std::thread::available_parallelism().ok().map(Into::into))
        .unwrap_or(1)
        .clamp(1, ids.len());
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let generated = AtomicUsize::new(0);
    let started = Instant::now();
    let mut slots: Vec<Option<KeyPair>> = vec![None; ids.len()];
    let results: Vec<Result<Vec<(usize, KeyPair)>, String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(id) = ids.get(i) else { break };
                        let state = state_dir(&args.swarm_dir, id);
                        match std::fs::remove_dir_all(&state) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(format!("cannot clear {}: {e}", state.display())),
                        }
                        let pki = MinionPki::new(args.swarm_dir.join("keys").join(id));
                        if !pki.private_key_path().exists() {
                            generated.fetch_add(1, Ordering::Relaxed);
                        }
                        let pair = pki
                            .load_or_generate_with_bits(args.keysize)
                            .map_err(|e| format!("keys of {id}: {}", error_chain(&e)))?;
                        mine.push((i, pair));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(mine)
                })
            })
            .collect();
        let mut last_report = Instant::now();
        while !workers.iter().all(|w| w.is_finished()) {
            std::thread::sleep(Duration::from_millis(100));
            if last_report.elapsed() >= Duration::from_secs(5) {
                last_report = Instant::now();
                eprintln!(
                    "brine-swarm: keys {}/{} ({} generated, {}-bit) after {:.0} s",
                    done.load(Ordering::Relaxed),
                    ids.len(),
                    generated.load(Ordering::Relaxed),
                    args.keysize,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a key thread panicked".to_owned()))
            })
            .collect()
    });
    for result in results {
        for (i, pair) in result? {
            if let Some(slot) = slots.get_mut(i) {
                *slot = Some(pair);
            }
        }
    }
    let generated = generated.load(Ordering::Relaxed);
    if generated > 0 {
        eprintln!(
            "brine-swarm: generated {generated} {}-bit key pairs under {} (reused on the next run)",
            args.keysize,
            args.swarm_dir.join("keys").display()
        );
    }
    slots
        .into_iter()
        .map(|slot| slot.ok_or_else(|| "a key pair is missing".to_owned()))
        .collect()
}

struct Plan {
    ids: Vec<String>,
    keys: Vec<KeyPair>,
    static_grains: Value,
    started: Instant,
    keys_secs: f64,
}

fn minion_config(args: &Args, id: &str) -> MinionConfig {
    let state = state_dir(&args.swarm_dir, id);
    let mut config = MinionConfig::default();
    config.id = Some(id.to_owned());
    config.master = vec![args.master.clone()];
    config.master_port = args.master_port;
    config.transport = args.transport.clone();
    config.pki_dir = state.join("pki");
    config.cachedir = state.join("cache");
    config.sock_dir = state.join("sock");
    config.keysize = args.keysize;
    if let Some(secs) = args.auth_timeout {
        config.auth_timeout = Duration::from_secs(secs);
    }
    config
}

/// Counts of minion states.
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
struct Tally {
    running: usize,
    failed: usize,
    waiting: usize,
}

fn tally(minions: &[MinionHandle]) -> Tally {
    let mut t = Tally::default();
    for m in minions {
        match m.state() {
            MinionState::Running => t.running += 1,
            s if s.is_final() => t.failed += 1,
            _ => t.waiting += 1,
        }
    }
    t
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn run(args: &Args, plan: Plan) -> Result<(), BoxError> {
    let Plan {
        ids,
        keys,
        static_grains,
        started,
        keys_secs,
    } = plan;
    let count = ids.len();
    let first = ids.first().cloned().unwrap_or_default();
    let host_grains = {
        let (first, static_grains) = (first.clone(), static_grains.clone());
        tokio::task::spawn_blocking(move || brine_minion::grains::load(&first, &static_grains))
            .await?
    };
    let registry = Arc::new(Registry::builtin());
    registry.get(&args.transport)?;
    // one parsed master key for every minion: a publish's signature is
    // checked once per process (each real minion checks it on its own core)
    let master_key = SharedMasterKey::new();
    let modules = Modules::builtin();
    let exec = ExecOptions {
        output_cap: args.output_cap_mb.saturating_mul(1024 * 1024),
        ..ExecOptions::default()
    };
    let limit = Arc::new(Semaphore::new(START_CONCURRENCY));
    let mut starting = JoinSet::new();
    let auth_started = Instant::now();
    let signal = cli::wait_for_signal();
    tokio::pin!(signal);
    let mut minions = Vec::with_capacity(count);
    let mut errors = Vec::new();
    let mut last_report = Instant::now();
    let mut ready_reported = false;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut pending = ids.into_iter().zip(keys).enumerate();
    let mut next_start = tokio::time::Instant::now();
    let gap = (args.ramp_per_sec > 0.0).then(|| Duration::from_secs_f64(1.0 / args.ramp_per_sec));
    let mut launched = 0;
    let mut last_tally = Tally::default();
    loop {
        // Launch what the ramp allows now.
        while launched < count && tokio::time::Instant::now() >= next_start {
            let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                break;
            };
            let Some((_, (id, pair))) = pending.next() else {
                break;
            };
            let mut grains = host_grains.clone();
            grains.insert("id", id.as_str());
            let config = minion_config(args, &id);
            let registry = Arc::clone(&registry);
            let modules = modules.clone();
            let exec = exec.clone();
            let master_key = master_key.clone();
            starting.spawn(async move {
                let preloaded = Preloaded {
                    keys: pair,
                    grains,
                    exec,
                    master_key,
                };
                let started = Minion::start_preloaded(config, &registry, modules, preloaded).await;
                drop(permit);
                started.map_err(|e| format!("{id}: {}", error_chain(&e)))
            });
            launched += 1;
            if let Some(gap) = gap {
                next_start += gap;
            }
        }
        tokio::select! {
            () = &mut signal => break,
            Some(done) = starting.join_next(), if !starting.is_empty() => match done {
                Ok(Ok(handle)) => minions.push(handle),
                Ok(Err(err)) => errors.push(err),
                Err(err) => errors.push(format!("a minion start task failed: {err}")),
            },
            _ = tick.tick() => {}
        }
        let t = tally(&minions);
        let failed = t.failed + errors.len();
        if !ready_reported && launched == count && starting.is_empty() && t.waiting == 0 {
            ready_reported = true;
            let start_secs = started.elapsed().as_secs_f64();
            let auth_secs = auth_started.elapsed().as_secs_f64();
            println!(
                "swarm ready: count={count} running={} failed={failed} keys_secs={keys_secs:.3} \
                 auth_secs={auth_secs:.3} start_secs={start_secs:.3} rss_kb={}",
                t.running,
                rss_kb()
            );
            report_failures(&minions, &errors);
        }
        if t != last_tally && last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            last_tally = t;
            eprintln!(
                "brine-swarm: {} running, {} starting, {failed} failed of {count} after {:.1} s \
                 (RSS {} MiB)",
                t.running,
                t.waiting + (count - minions.len() - errors.len()),
                started.elapsed().as_secs_f64(),
                rss_kb() / 1024
            );
        }
    }
    info!("signal received; stopping {} minions", minions.len());
    starting.abort_all();
    let mut stopping = JoinSet::new();
    for minion in minions {
        stopping.spawn(minion.shutdown());
    }
    let all_stopped = async { while stopping.join_next().await.is_some() {} };
    if tokio::time::timeout(STOP_GRACE, all_stopped).await.is_err() {
        warn!("some minions did not stop within {STOP_GRACE:?}; exiting anyway");
    }
    Ok(())
}

fn report_failures(minions: &[MinionHandle], errors: &[String]) {
    let mut shown = 0;
    for err in errors {
        if shown < 5 {
            eprintln!("brine-swarm: a minion did not start: {err}");
        }
        shown += 1;
    }
    for m in minions {
        if let MinionState::Failed(why) = m.state() {
            if shown < 5 {
                eprintln!("brine-swarm: minion {} failed: {why}", m.id());
            }
            shown += 1;
        } else if m.state().is_final() {
            if shown < 5 {
                eprintln!("brine-swarm: minion {} ended: {:?}", m.id(), m.state());
            }
            shown += 1;
        }
    }
    if shown > 5 {
        eprintln!("brine-swarm: … and {} more", shown - 5);
    }
}
