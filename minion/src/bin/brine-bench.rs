//! `brine-bench`: Brine over zeromq, tcp and quic side by side with stock
//! Salt 3007.8, on this machine, in one run (never a test).
//!
//! ```text
//! cargo run --release --bin brine-bench -- --quick        # N = 1, 10, 100 (a few minutes)
//! cargo run --release --bin brine-bench                   # N = 1 … 10,000
//! cargo run --release --bin brine-bench -- --only tcp --sizes 1000
//! ```
//!
//! For each system and each N, a fresh master and N minions on loopback:
//! Brine's real `brine-master` process and one `brine-swarm` process
//! holding the N minions; Salt's `salt-master` and N `salt-minion`
//! processes from the project's venv (`.venv`, or `BRINE_VENV`; made by
//! `scripts/salt-venv.sh`), over zeromq, capped by free memory at ~60 MB a
//! minion. Measured:
//!
//! - the time for N minions to start and authenticate (Brine: the swarm's
//!   own "every minion running" report, keys loaded from the cache; Salt:
//!   from spawning the minions until one `test.ping` to `*` is answered by
//!   all N, polled by a LocalClient script);
//! - `test.ping` to `*` through the client library, p50/p90 of 20 (Brine's
//!   `LocalClient`; Salt's `salt.client.LocalClient` in a python script in
//!   the venv), and the `brine`/`salt` CLI process end to end;
//! - at N = 100: jobs/s with 32 jobs in flight (`test.ping` to all);
//! - at N = 1: a 1 MB and a 50 MB return (`cmd.run "head -c <size> <file>"`;
//!   the swarm's `cmd` output cap raised to 64 MiB for it);
//! - master RSS (Salt: the PSS of every process of the master) and CPU
//!   seconds over the whole stage (`/proc/<pid>/stat`), memory per minion;
//! - a raw loopback TCP round trip (100 bytes) as the floor.
//!
//! Writes `results/bench-<mode>.md` and `results/bench-<mode>-latency.svg`
//! and copies both to `docs/bench/`. Before it starts, it runs
//! `cargo build --release --bins -p brine-master -p brine-minion` (skip with
//! `--no-build`) and generates the swarm's key pairs once into
//! `target/brine-bench/swarm` (reused by every later run).
//!
//! Flags: `--quick`, `--sizes 1,10,100`, `--only zeromq,tcp,quic,salt`,
//! `--no-salt`, `--salt-max N`, `--salt-wait SECS` (how long stock Salt's
//! minions get to answer: 120 + 3 per minion, `--quick` at most 150),
//! `--keysize 2048`, `--ramp-per-sec R`,
//! `--swarm-dir DIR`, `--no-build`, `--no-copy`.

#[path = "../../benches/support/procs.rs"]
mod procs;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brine_master::BuiltinTransports;
use brine_master::client::{JobSpec, LocalClient};
use brine_protocol::Value;
use brine_protocol::config::{MasterConfig, Missing};
use brine_transport_api::Registry;
use procs::{
    BoxError, Cluster, Daemon, Invocation, SaltTools, current_user, free_port,
    install_signal_guard, percentile, run_once, temp_dir, wait_listening,
};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

const BRINE_TRANSPORTS: [&str; 3] = ["zeromq", "tcp", "quic"];
/// Transports whose master serves publish and requests on one port (the
/// bench sets `publish_port` = `ret_port` for them).
const ONE_PORT_TRANSPORTS: [&str; 2] = ["tcp", "quic"];
/// Salt runs its default transport.
const SALT_TRANSPORT: &str = "zeromq";
const QUICK_SIZES: [usize; 3] = [1, 10, 100];
/// How long `--quick` waits for stock Salt's minions to answer (`--salt-wait`).
const QUICK_SALT_WAIT_SECS: u64 = 150;
const FULL_SIZES: [usize; 5] = [1, 10, 100, 1_000, 10_000];
/// Client-library pings per stage.
const PINGS: usize = 20;
/// Jobs in flight for the jobs/s figure, and the N it runs at.
const IN_FLIGHT: usize = 32;
const JOBS_AT: usize = 100;
/// Return sizes measured with one minion.
const BIG: [usize; 2] = [1_000_000, 50_000_000];
/// What one stock salt-minion costs in memory, for the cap.
const SALT_MINION_MB: u64 = 60;
/// Minion ids: `bench-0000` … (the swarm's format), one key cache for all.
const PREFIX: &str = "bench-";
/// The issue's targets.
const TARGET_AUTH_S: f64 = 60.0;
const TARGET_PING_10K_MS: f64 = 1_000.0;
const TARGET_RSS_10K_MB: f64 = 1_024.0;
const TARGET_PING_X: f64 = 50.0;
const TARGET_CLI_X: f64 = 20.0;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum System {
    Brine(&'static str),
    Salt,
}

impl System {
    fn label(self) -> String {
        match self {
            System::Brine(t) => format!("brine {t}"),
            System::Salt => format!("salt 3007.8 ({SALT_TRANSPORT})"),
        }
    }
}

struct Options {
    quick: bool,
    sizes: Vec<usize>,
    systems: Vec<System>,
    salt_max: Option<usize>,
    /// Seconds stock Salt's minions get to start and answer.
    salt_wait: Option<u64>,
    keysize: usize,
    ramp_per_sec: f64,
    swarm_dir: PathBuf,
    build: bool,
    copy: bool,
    mode: String,
}

/// Latency samples summarised, in ms.
#[derive(Clone, Copy, Debug)]
struct Lat {
    p50: f64,
    p90: f64,
    lost: usize,
}

/// CPU and memory of a process group.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    rss_kb: u64,
    pss_kb: u64,
    cpu_s: f64,
    procs: usize,
}

/// One (system, N).
#[derive(Debug)]
struct Stage {
    system: System,
    n: usize,
    start_s: Option<f64>,
    ping: Option<Lat>,
    cli_ms: Option<f64>,
    jobs: Option<(f64, usize)>,
    master: Option<Usage>,
    minion_kb: Option<f64>,
    big: Vec<(usize, Lat)>,
    notes: Vec<String>,
}

impl Stage {
    fn new(system: System, n: usize) -> Stage {
        Stage {
            system,
            n,
            start_s: None,
            ping: None,
            cli_ms: None,
            jobs: None,
            master: None,
            minion_kb: None,
            big: Vec::new(),
            notes: Vec::new(),
        }
    }
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(err) => {
            eprintln!("brine-bench: {err}");
            return ExitCode::from(2);
        }
    };
    install_signal_guard();
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("brine-bench failed: {err}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let has = |name: &str| args.iter().any(|a| a == name);
    let known = [
        "--quick",
        "--sizes",
        "--only",
        "--no-salt",
        "--salt-max",
        "--salt-wait",
        "--keysize",
        "--ramp-per-sec",
        "--swarm-dir",
        "--no-build",
        "--no-copy",
    ];
    let mut skip = false;
    for a in &args {
        if skip {
            skip = false;
            continue;
        }
        if !known.contains(&a.as_str()) {
            return Err(format!(
                "unknown argument {a:?} (known: {})",
                known.join(" ")
            ));
        }
        skip = matches!(
            a.as_str(),
            "--sizes"
                | "--only"
                | "--salt-max"
                | "--salt-wait"
                | "--keysize"
                | "--ramp-per-sec"
                | "--swarm-dir"
        );
    }
    let quick = has("--quick");
    let custom_sizes = value("--sizes");
    let sizes = match &custom_sizes {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().replace('_', "").parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("--sizes: {e}"))?,
        None if quick => QUICK_SIZES.to_vec(),
        None => FULL_SIZES.to_vec(),
    };
    let only = value("--only");
    let mut systems: Vec<System> = BRINE_TRANSPORTS.iter().map(|t| System::Brine(t)).collect();
    systems.push(System::Salt);
    if let Some(only) = &only {
        let wanted: Vec<&str> = only.split(',').map(str::trim).collect();
        systems.retain(|s| match s {
            System::Brine(t) => wanted.contains(t),
            System::Salt => wanted.contains(&"salt"),
        });
    }
    if has("--no-salt") {
        systems.retain(|s| *s != System::Salt);
    }
    let root = workspace_root();
    let mode = if custom_sizes.is_some() || only.is_some() {
        "custom"
    } else if quick {
        "quick"
    } else {
        "full"
    };
    Ok(Options {
        quick,
        sizes,
        systems,
        salt_max: value("--salt-max")
            .map(|v| v.parse().map_err(|e| format!("--salt-max: {e}")))
            .transpose()?,
        salt_wait: value("--salt-wait")
            .map(|v| v.parse().map_err(|e| format!("--salt-wait: {e}")))
            .transpose()?,
        keysize: value("--keysize")
            .map(|v| v.parse().map_err(|e| format!("--keysize: {e}")))
            .transpose()?
            .unwrap_or(2048),
        ramp_per_sec: value("--ramp-per-sec")
            .map(|v| v.parse().map_err(|e| format!("--ramp-per-sec: {e}")))
            .transpose()?
            .unwrap_or(0.0),
        swarm_dir: value("--swarm-dir")
            .map_or_else(|| root.join("target/brine-bench/swarm"), PathBuf::from),
        build: !has("--no-build"),
        copy: !has("--no-copy"),
        mode: mode.to_owned(),
    })
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The release binaries next to this one.
struct Bins {
    master: PathBuf,
    cli: PathBuf,
    swarm: PathBuf,
}

fn locate_bins(build: bool) -> Result<Bins, BoxError> {
    if build {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("building: cargo build --release --bins -p brine-master -p brine-minion");
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--bins",
                "-p",
                "brine-master",
                "-p",
                "brine-minion",
            ])
            .current_dir(workspace_root())
            .status()?;
        if !status.success() {
            return Err("cargo build failed".into());
        }
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or("no directory for this executable")?;
    let bins = Bins {
        master: dir.join("brine-master"),
        cli: dir.join("brine"),
        swarm: dir.join("brine-swarm"),
    };
    for bin in [&bins.master, &bins.cli, &bins.swarm] {
        if !bin.is_file() {
            return Err(format!(
                "{} is missing: build it with `cargo build --release --bins -p brine-master -p brine-minion`",
                bin.display()
            )
            .into());
        }
    }
    Ok(bins)
}

fn run(opts: &Options) -> Result<(), BoxError> {
    let bins = locate_bins(opts.build)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let machine = machine_line();
    eprintln!("{machine}");
    let raw = raw_tcp_rtt()?;
    eprintln!("raw loopback TCP RTT: p50 {:.1} µs", raw.p50 * 1000.0);
    let max_n = opts.sizes.iter().copied().max().unwrap_or(1);
    prepare_keys(&bins, opts, max_n)?;
    let salt = if opts.systems.contains(&System::Salt) {
        SaltTools::locate()
    } else {
        Err("not selected".to_owned())
    };
    let salt_cap = salt_cap(opts.salt_max);
    let mut stages = Vec::new();
    let mut notes = Vec::new();
    if let Err(why) = &salt
        && opts.systems.contains(&System::Salt)
    {
        notes.push(format!("stock Salt not measured: {why}"));
    }
    let plan = if opts.quick {
        StagePlan {
            cli_runs: 5,
            jobs_secs: 5.0,
            big_runs: [3, 2],
        }
    } else {
        StagePlan {
            cli_runs: 10,
            jobs_secs: 15.0,
            big_runs: [5, 3],
        }
    };
    for &n in &opts.sizes {
        for &system in &opts.systems {
            let mut stage = Stage::new(system, n);
            eprintln!("== {} with {n} minion(s)", system.label());
            let result = match system {
                System::Brine(transport) => match descriptors_short(transport, n) {
                    Some(note) => {
                        eprintln!("   not run: {note}");
                        stage.notes.push(format!("not run: {note}"));
                        Ok(())
                    }
                    None => brine_stage(&rt, &bins, opts, transport, plan, &mut stage),
                },
                System::Salt => match &salt {
                    Ok(tools) if n <= salt_cap => salt_stage(tools, opts, plan, &mut stage),
                    Ok(_) => {
                        stage.notes.push(format!(
                            "not run: {n} salt-minions need ~{} MB at {SALT_MINION_MB} MB each, \
                             more than 70% of the memory available (cap {salt_cap})",
                            n as u64 * SALT_MINION_MB
                        ));
                        Ok(())
                    }
                    Err(_) => continue,
                },
            };
            if let Err(err) = result {
                eprintln!("   failed: {err}");
                stage.notes.push(format!("failed: {err}"));
            }
            stages.push(stage);
        }
    }
    let report = render(&stages, &raw, opts, &machine, &notes, plan);
    println!("{report}");
    let out = workspace_root().join("results");
    std::fs::create_dir_all(&out)?;
    let md = out.join(format!("bench-{}.md", opts.mode));
    let svg = out.join(format!("bench-{}-latency.svg", opts.mode));
    std::fs::write(&md, &report)?;
    if let Err(err) = plot(&stages, &raw, &svg, &machine) {
        eprintln!("the plot failed: {err}");
    }
    eprintln!("wrote {} and {}", md.display(), svg.display());
    if opts.copy {
        let docs = workspace_root().join("docs/bench");
        std::fs::create_dir_all(&docs)?;
        for file in [&md, &svg] {
            if let Some(name) = file.file_name()
                && file.is_file()
            {
                std::fs::copy(file, docs.join(name))?;
            }
        }
        eprintln!("copied both to {}", docs.display());
    }
    Ok(())
}

/// Why `transport` cannot hold `n` minions under this machine's hard
/// open-files limit, if it cannot: the master (and the swarm) keep a TCP
/// socket per minion and channel (zeromq: publish and requests; tcp on one
/// port: one); quic multiplexes every minion on one UDP socket.
fn descriptors_short(transport: &str, n: usize) -> Option<String> {
    let per_minion = match transport {
        "quic" => 0,
        t if ONE_PORT_TRANSPORTS.contains(&t) => 1,
        _ => 2,
    };
    let needed = (n * per_minion) as u64 + 1_000;
    let limit = hard_open_files_limit()?;
    (needed > limit).then(|| {
        format!(
            "{transport} needs ~{needed} descriptors in the master for {n} minions \
             ({per_minion} per minion); this machine's hard limit is {limit}"
        )
    })
}

/// The hard `RLIMIT_NOFILE` of this process, from `/proc/self/limits`.
fn hard_open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(4)?.parse().ok()
}

#[derive(Clone, Copy)]
struct StagePlan {
    cli_runs: usize,
    jobs_secs: f64,
    big_runs: [usize; 2],
}

/// The largest N of stock minions this machine holds: 70% of
/// MemAvailable at [`SALT_MINION_MB`] each, or `--salt-max`.
fn salt_cap(flag: Option<usize>) -> usize {
    if let Some(max) = flag {
        return max;
    }
    let avail_kb = meminfo("MemAvailable:").unwrap_or(0);
    let cap = avail_kb * 7 / 10 / 1024 / SALT_MINION_MB;
    usize::try_from(cap).unwrap_or(usize::MAX)
}

fn meminfo(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn machine_line() -> String {
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_gib = meminfo("MemTotal:").unwrap_or(0) as f64 / 1024.0 / 1024.0;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{date}, {cores} cores, {mem_gib:.0} GiB RAM, Linux {}, load average at start {}",
        kernel.trim(),
        load.join(" ")
    )
}

/// Generates (once) or loads the swarm's key pairs for `n` minions, untimed.
fn prepare_keys(bins: &Bins, opts: &Options, n: usize) -> Result<(), BoxError> {
    eprintln!(
        "key pairs for {n} minions in {} ({}-bit; generated once, reused later)",
        opts.swarm_dir.display(),
        opts.keysize
    );
    let status = Command::new(&bins.swarm)
        .arg("--prepare-only")
        .args(["--count", &n.to_string(), "--prefix", PREFIX])
        .arg("--swarm-dir")
        .arg(&opts.swarm_dir)
        .args(["--keysize", &opts.keysize.to_string()])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err("brine-swarm --prepare-only failed".into());
    }
    Ok(())
}

fn minion_id(i: usize, n: usize) -> String {
    let width = n.saturating_sub(1).to_string().len().max(4);
    format!("{PREFIX}{i:0width$}")
}

// ------------------------------------------------------------ measuring

fn lat(samples: &mut [Duration], lost: usize) -> Lat {
    samples.sort();
    Lat {
        p50: percentile(samples, 0.5),
        p90: percentile(samples, 0.9),
        lost,
    }
}

/// CPU and memory of every process in group `pgid`.
fn group_usage(pgid: i32) -> Usage {
    let mut usage = Usage::default();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return usage;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // after the comm: state ppid pgrp … utime(12th) stime(13th)
        let field = |i: usize| fields.get(i).and_then(|v| v.parse::<i64>().ok());
        if field(2) != Some(i64::from(pgid)) {
            continue;
        }
        let ticks = field(11).unwrap_or(0) + field(12).unwrap_or(0);
        usage.cpu_s += ticks as f64 / 100.0;
        usage.procs += 1;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        usage.rss_kb += kb_field(&status, "VmRSS:");
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        usage.pss_kb += kb_field(&rollup, "Pss:");
    }
    usage
}

fn kb_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A loopback TCP round trip of 100 bytes, 2,000 times after 200 warm-ups.
fn raw_tcp_rtt() -> Result<Lat, BoxError> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.set_nodelay(true);
            let mut buf = [0u8; 100];
            while s.read_exact(&mut buf).is_ok() {
                if s.write_all(&buf).is_err() {
                    break;
                }
            }
        }
    });
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let msg = [b'x'; 100];
    let mut back = [0u8; 100];
    let mut samples = Vec::with_capacity(2_000);
    for i in 0..2_200 {
        let t = Instant::now();
        s.write_all(&msg)?;
        s.read_exact(&mut back)?;
        if i >= 200 {
            samples.push(t.elapsed());
        }
    }
    drop(s);
    let _ = server.join();
    Ok(lat(&mut samples, 0))
}

/// Median wall time of `runs` runs of `inv` after one warm-up, in ms; an
/// error if more than half failed.
fn cli_median(inv: &Invocation, runs: usize) -> Result<f64, BoxError> {
    run_once(inv, false)?;
    let mut samples = Vec::with_capacity(runs);
    let mut failed = 0;
    for _ in 0..runs {
        let (took, ok, _, stderr) = run_once(inv, false)?;
        if !ok {
            failed += 1;
            if failed == 1 {
                eprintln!("   a CLI run failed: {}", stderr.trim());
            }
        }
        samples.push(took);
    }
    if failed * 2 > runs {
        return Err(format!("{failed} of {runs} CLI runs failed").into());
    }
    samples.sort();
    Ok(percentile(&samples, 0.5))
}

/// Waits up to `limit` for a line starting with `prefix` in `log`.
fn wait_for_line(
    log: &Path,
    prefix: &str,
    limit: Duration,
    cluster: &mut Cluster,
) -> Result<String, BoxError> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with(prefix)) {
            return Ok(line.to_owned());
        }
        cluster.check_alive()?;
        if start.elapsed() > limit {
            return Err(format!("no {prefix:?} in {} after {limit:?}", log.display()).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits up to `limit` for `needle` anywhere in `log`.
fn wait_for_text(
    log: &Path,
    needle: &str,
    limit: Duration,
    cluster: &mut Cluster,
) -> Result<(), BoxError> {
    let start = Instant::now();
    loop {
        if std::fs::read_to_string(log).is_ok_and(|t| t.contains(needle)) {
            return Ok(());
        }
        cluster.check_alive()?;
        if start.elapsed() > limit {
            return Err(format!("no {needle:?} in {} after {limit:?}", log.display()).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `key=value` words of a report line.
fn line_fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

// ---------------------------------------------------------------- Brine

fn brine_stage(
    rt: &Runtime,
    bins: &Bins,
    opts: &Options,
    transport: &'static str,
    plan: StagePlan,
    stage: &mut Stage,
) -> Result<(), BoxError> {
    let n = stage.n;
    let dir = temp_dir()?;
    let root = dir.path();
    let ret_port = free_port()?;
    // One port: each minion's publish and request channels share one
    // connection (half the sockets and handshakes at 10,000 minions).
    let publish_port = if ONE_PORT_TRANSPORTS.contains(&transport) {
        ret_port
    } else {
        free_port()?
    };
    let etc = root.join("master/etc");
    std::fs::create_dir_all(&etc)?;
    std::fs::write(
        etc.join("master"),
        format!(
            "root_dir: '{}'\ntransport: {transport}\ninterface: 127.0.0.1\n\
             publish_port: {publish_port}\nret_port: {ret_port}\nauto_accept: true\n\
             log_level: warning\n",
            root.join("master").display()
        ),
    )?;
    let mut cluster = Cluster::default();
    let mut cmd = Command::new(&bins.master);
    // info: the "master ready" line (QUIC listens on UDP: no TCP probe)
    cmd.arg("-c").arg(&etc).args(["-l", "info"]);
    let master_log = root.join("master.log");
    let master = Daemon::spawn("brine-master", cmd, &master_log)?;
    let master_pgid = master.pgid;
    cluster.add(master);
    wait_for_text(
        &master_log,
        "master ready",
        Duration::from_secs(60),
        &mut cluster,
    )?;

    let swarm_log = root.join("swarm.log");
    let mut cmd = Command::new(&bins.swarm);
    cmd.args(["--count", &n.to_string(), "--prefix", PREFIX])
        .args(["--transport", transport, "--master", "127.0.0.1"])
        .args(["--master-port", &ret_port.to_string()])
        .arg("--swarm-dir")
        .arg(&opts.swarm_dir)
        .args(["--keysize", &opts.keysize.to_string()])
        .args(["--ramp-per-sec", &opts.ramp_per_sec.to_string()])
        .args(["--grains", "role=bench"]);
    if n == 1 {
        cmd.args(["--output-cap-mb", "64"]);
    }
    let swarm = Daemon::spawn("brine-swarm", cmd, &swarm_log)?;
    let swarm_pgid = swarm.pgid;
    cluster.add(swarm);
    let limit = Duration::from_secs(120 + n as u64 / 20);
    let ready = wait_for_line(&swarm_log, "swarm ready:", limit, &mut cluster)?;
    let fields = line_fields(&ready);
    let running: usize = fields
        .get("running")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    stage.start_s = fields.get("start_secs").and_then(|v| v.parse().ok());
    eprintln!("   {ready}");
    if running < n {
        let why = std::fs::read_to_string(&swarm_log)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("did not start") || l.contains("failed:") || l.contains("ERROR"))
            .map(str::to_owned)
            .unwrap_or_default();
        eprintln!("   swarm: {why}");
        stage.notes.push(format!(
            "only {running} of {n} swarm minions running ({why})"
        ));
    }

    let config = MasterConfig::load(&etc, Missing::UseDefaults)?.config;
    let job_timeout = Duration::from_secs(10 + n as u64 / 100);
    let measured = rt.block_on(async {
        let client = Arc::new(
            LocalClient::from_config(&config, &Registry::builtin())
                .await?
                .with_timeout(job_timeout)
                .with_gather_job_timeout(Duration::from_secs(5)),
        );
        // the first ping: every minion answers (the subscription is live)
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = client.cmd(&JobSpec::new("*", "test.ping"), None).await?;
            if r.returns.len() >= n || Instant::now() > deadline {
                if r.returns.len() < n {
                    eprintln!("   warm-up: {} of {n} answered", r.returns.len());
                }
                break;
            }
        }
        let mut samples = Vec::with_capacity(PINGS);
        let mut lost = 0;
        for i in 0..PINGS + 2 {
            let t = Instant::now();
            let r = client.cmd(&JobSpec::new("*", "test.ping"), None).await?;
            let took = t.elapsed();
            if i >= 2 {
                samples.push(took);
                lost += usize::from(r.returns.len() < n);
            }
        }
        let ping = lat(&mut samples, lost);
        let jobs = if n == JOBS_AT {
            Some(brine_jobs(&client, n, plan.jobs_secs).await?)
        } else {
            None
        };
        Ok::<_, BoxError>((client, ping, jobs))
    })?;
    let (client, ping, jobs) = measured;
    eprintln!(
        "   test.ping p50 {:.2} ms p90 {:.2} ms ({} lost)",
        ping.p50, ping.p90, ping.lost
    );
    stage.ping = Some(ping);
    stage.jobs = jobs;
    let etc_arg = etc.display().to_string();
    let cli = Invocation::new(
        &bins.cli,
        &["-c", &etc_arg, "*", "test.ping", "--out", "quiet"],
    );
    stage.cli_ms = Some(cli_median(&cli, plan.cli_runs)?);
    eprintln!("   CLI median {:.1} ms", stage.cli_ms.unwrap_or_default());
    // the large returns last: they leave big buffers behind
    if n == 1 {
        for (size, runs) in BIG.into_iter().zip(plan.big_runs) {
            let file = blob(root, size)?;
            let l = rt.block_on(brine_big(&client, &file, size, runs))?;
            stage.big.push((size, l));
        }
    }
    drop(client);
    let usage = group_usage(master_pgid);
    stage.master = Some(usage);
    let swarm_usage = group_usage(swarm_pgid);
    stage.minion_kb = Some(swarm_usage.rss_kb as f64 / n as f64);
    eprintln!(
        "   master RSS {:.1} MB, CPU {:.2} s; swarm RSS {:.1} MB ({:.0} KB per minion)",
        usage.rss_kb as f64 / 1024.0,
        usage.cpu_s,
        swarm_usage.rss_kb as f64 / 1024.0,
        swarm_usage.rss_kb as f64 / n as f64
    );
    drop(cluster);
    Ok(())
}

/// Jobs/s to all `n` minions with [`IN_FLIGHT`] jobs in flight for
/// `secs`; publish requests one at a time (concurrent publishes reach the
/// minions out of serial order and the late ones are dropped as stale),
/// returns awaited concurrently. (jobs/s, jobs with a missing return).
async fn brine_jobs(
    client: &Arc<LocalClient>,
    n: usize,
    secs: f64,
) -> Result<(f64, usize), BoxError> {
    let gate = Arc::new(tokio::sync::Mutex::new(()));
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (client, gate) = (Arc::clone(client), Arc::clone(&gate));
        workers.spawn(async move {
            let (mut done, mut lost) = (0usize, 0usize);
            while Instant::now() < end {
                let mut stream = {
                    let _turn = gate.lock().await;
                    client.run_job(&JobSpec::new("*", "test.ping")).await?
                };
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                let mut got = 0;
                while got < n {
                    match tokio::time::timeout_at(deadline, stream.next()).await {
                        Ok(Some(_)) => got += 1,
                        _ => break,
                    }
                }
                if got >= n {
                    done += 1;
                } else {
                    lost += 1;
                }
            }
            Ok::<_, BoxError>((done, lost, Instant::now()))
        });
    }
    let (mut done, mut lost, mut last) = (0, 0, start);
    while let Some(joined) = workers.join_next().await {
        let (d, l, at) = joined??;
        done += d;
        lost += l;
        last = last.max(at);
    }
    let rate = done as f64 / (last - start).as_secs_f64();
    eprintln!("   {rate:.0} jobs/s with {IN_FLIGHT} in flight ({lost} lost)");
    Ok((rate, lost))
}

/// A file of `size` bytes of `x` under `dir`.
fn blob(dir: &Path, size: usize) -> Result<PathBuf, BoxError> {
    let path = dir.join(format!("blob-{size}"));
    std::fs::write(&path, "x".repeat(size))?;
    Ok(path)
}

/// `head -c <size> <file>` as a shell command line.
fn head_cmd(file: &Path, size: usize) -> String {
    format!("head -c {size} {}", file.display())
}

/// A `size`-byte return from the one minion (`cmd.run` of `head -c`),
/// `runs` times.
async fn brine_big(
    client: &LocalClient,
    file: &Path,
    size: usize,
    runs: usize,
) -> Result<Lat, BoxError> {
    let job = JobSpec::new("*", "cmd.run").args(vec![Value::from(head_cmd(file, size))]);
    let mut samples = Vec::with_capacity(runs);
    let mut lost = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let r = client.cmd(&job, Some(Duration::from_secs(120))).await?;
        samples.push(t.elapsed());
        let ok = r
            .returns
            .values()
            .next()
            .and_then(|r| r.ret.as_str())
            .is_some_and(|s| s.len() == size);
        lost += usize::from(!ok);
    }
    let l = lat(&mut samples, lost);
    eprintln!(
        "   {} MB return: p50 {:.1} ms ({} bad)",
        size / 1_000_000,
        l.p50,
        l.lost
    );
    Ok(l)
}

// ----------------------------------------------------------------- Salt

const SALT_SCRIPT: &str = r#"
import json, os, sys, time
import salt.client, salt.config, salt.exceptions

mode, conf_dir = sys.argv[1], sys.argv[2]
opts = salt.config.client_config(os.path.join(conf_dir, "master"))
local = salt.client.LocalClient(mopts=opts)

def ping(n, timeout):
    t = time.perf_counter()
    try:
        ret = local.cmd("*", "test.ping", timeout=timeout)
    except salt.exceptions.SaltClientError:
        # a congested master ("Salt request timed out"): nobody answered
        ret = {}
    return time.perf_counter() - t, sum(1 for v in ret.values() if v is True)

out = {}
if mode == "wait":
    n, limit = int(sys.argv[3]), float(sys.argv[4])
    start, best = time.perf_counter(), 0
    while True:
        _, got = ping(n, 2)
        best = max(best, got)
        if got >= n or time.perf_counter() - start > limit:
            break
        time.sleep(0.2)
    out = {"answered": best}
elif mode == "ping":
    n, count, timeout = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    samples, lost = [], 0
    for i in range(count + 2):
        took, got = ping(n, timeout)
        if i >= 2:
            samples.append(took * 1000.0)
            lost += got < n
    out = {"samples_ms": samples, "lost": lost}
elif mode == "jobs":
    n, inflight, duration = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    pending, done, lost = {}, 0, 0
    start = time.perf_counter()
    end, last = start + duration, start
    while True:
        now = time.perf_counter()
        while now < end and len(pending) < inflight:
            pub = local.run_job("*", "test.ping", listen=True)
            if pub and pub.get("jid"):
                pending[pub["jid"]] = set()
            else:
                lost += 1
            now = time.perf_counter()
        if not pending and now >= end:
            break
        if now > end + 30:
            lost += len(pending)
            break
        ev = local.event.get_event(wait=0.5, tag="salt/job/", full=True)
        if not ev:
            continue
        parts = ev.get("tag", "").split("/")
        if len(parts) >= 5 and parts[3] == "ret" and parts[2] in pending:
            pending[parts[2]].add(parts[4])
            if len(pending[parts[2]]) >= n:
                del pending[parts[2]]
                done += 1
                last = time.perf_counter()
    out = {"done": done, "lost": lost, "secs": last - start}
elif mode == "big":
    command, size, count = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    samples, bad, first_bad = [], 0, ""
    for _ in range(count):
        t = time.perf_counter()
        ret = local.cmd("*", "cmd.run", [command], timeout=300)
        samples.append((time.perf_counter() - t) * 1000.0)
        vals = list(ret.values())
        if not (len(vals) == 1 and isinstance(vals[0], str) and len(vals[0]) == size):
            bad += 1
            first_bad = first_bad or "%d returns, first %s" % (len(vals), repr(vals[:1])[:160])
    out = {"samples_ms": samples, "lost": bad, "first_bad": first_bad}
print(json.dumps(out))
"#;

/// Runs the Salt client script; its JSON answer.
fn salt_script(
    tools: &SaltTools,
    script: &Path,
    etc: &Path,
    args: &[String],
) -> Result<serde_json::Value, BoxError> {
    let out = Command::new(&tools.python)
        .arg(script)
        .arg(args.first().map_or("", String::as_str))
        .arg(etc)
        .args(args.iter().skip(1))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().rev().find(|l| l.starts_with('{'));
    match last.map(serde_json::from_str::<serde_json::Value>) {
        Some(Ok(v)) => Ok(v),
        _ => Err(format!(
            "the Salt client script ({}) failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        )
        .into()),
    }
}

fn json_lat(v: &serde_json::Value) -> Option<Lat> {
    let mut samples: Vec<Duration> = v
        .get("samples_ms")?
        .as_array()?
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .collect();
    let lost = v
        .get("lost")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    Some(lat(
        &mut samples,
        usize::try_from(lost).unwrap_or(usize::MAX),
    ))
}

fn salt_stage(
    tools: &SaltTools,
    opts: &Options,
    plan: StagePlan,
    stage: &mut Stage,
) -> Result<(), BoxError> {
    let n = stage.n;
    let user = current_user()?;
    let dir = temp_dir()?;
    let root = dir.path();
    let script = root.join("salt_client.py");
    std::fs::write(&script, SALT_SCRIPT)?;
    let (publish_port, ret_port) = (free_port()?, free_port()?);
    let master_root = root.join("master");
    let etc = master_root.join("etc/salt");
    std::fs::create_dir_all(&etc)?;
    std::fs::write(
        etc.join("master"),
        format!(
            "root_dir: '{}'\nuser: {user}\ntransport: {SALT_TRANSPORT}\ninterface: 127.0.0.1\n\
             publish_port: {publish_port}\nret_port: {ret_port}\nauto_accept: True\n",
            master_root.display()
        ),
    )?;
    let mut cluster = Cluster::default();
    let mut cmd = tools.command("salt-master");
    cmd.arg("-c").arg(&etc);
    let master = Daemon::spawn("salt-master", cmd, &root.join("master.log"))?;
    let master_pgid = master.pgid;
    cluster.add(master);
    wait_listening(ret_port, &mut cluster, "salt-master")?;

    let start = Instant::now();
    let mut minion_groups = Vec::with_capacity(n);
    for i in 0..n {
        let id = minion_id(i, n);
        let minion_root = root.join(&id);
        let minion_etc = minion_root.join("etc/salt");
        let pki = minion_root.join("etc/salt/pki/minion");
        std::fs::create_dir_all(&minion_etc)?;
        std::fs::create_dir_all(&pki)?;
        // the swarm's cached key pair: Salt does not pay for key generation either
        let keys = opts.swarm_dir.join("keys").join(&id);
        for file in ["minion.pem", "minion.pub"] {
            std::fs::copy(keys.join(file), pki.join(file))?;
        }
        std::fs::write(
            minion_etc.join("minion"),
            format!(
                "root_dir: '{}'\nid: {id}\nuser: {user}\ntransport: {SALT_TRANSPORT}\n\
                 master: 127.0.0.1\nmaster_port: {ret_port}\ngrains:\n  role: bench\n",
                minion_root.display()
            ),
        )?;
        let mut cmd = tools.command("salt-minion");
        cmd.arg("-c").arg(&minion_etc);
        let minion = Daemon::spawn(
            &format!("salt-minion {id}"),
            cmd,
            &root.join(format!("{id}.log")),
        )?;
        minion_groups.push(minion.pgid);
        cluster.add(minion);
    }
    // Stock Salt on 2 cores may never bring 100 minions up; --quick must
    // stay a few minutes, so it gives up sooner.
    let full_wait = 120 + 3 * n as u64;
    let limit = opts.salt_wait.unwrap_or(if opts.quick {
        full_wait.min(QUICK_SALT_WAIT_SECS)
    } else {
        full_wait
    });
    let waited = salt_script(
        tools,
        &script,
        &etc,
        &["wait".into(), n.to_string(), limit.to_string()],
    )?;
    let answered = waited
        .get("answered")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    cluster.check_alive()?;
    if answered < n as u64 {
        return Err(
            format!("only {answered} of {n} salt-minions answered within {limit} s").into(),
        );
    }
    stage.start_s = Some(start.elapsed().as_secs_f64());
    eprintln!(
        "   {n} salt-minions answering after {:.1} s",
        stage.start_s.unwrap_or_default()
    );
    let timeout = 10 + n / 10;
    let pinged = salt_script(
        tools,
        &script,
        &etc,
        &[
            "ping".into(),
            n.to_string(),
            PINGS.to_string(),
            timeout.to_string(),
        ],
    )?;
    stage.ping = json_lat(&pinged);
    if let Some(p) = stage.ping {
        eprintln!(
            "   test.ping p50 {:.1} ms p90 {:.1} ms ({} lost)",
            p.p50, p.p90, p.lost
        );
    }
    if n == JOBS_AT {
        let jobs = salt_script(
            tools,
            &script,
            &etc,
            &[
                "jobs".into(),
                n.to_string(),
                IN_FLIGHT.to_string(),
                plan.jobs_secs.to_string(),
            ],
        )?;
        let done = jobs
            .get("done")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0);
        let secs = jobs
            .get("secs")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0);
        let lost = jobs
            .get("lost")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let rate = if secs > 0.0 { done / secs } else { 0.0 };
        eprintln!("   {rate:.1} jobs/s with {IN_FLIGHT} in flight ({lost} lost)");
        stage.jobs = Some((rate, usize::try_from(lost).unwrap_or(usize::MAX)));
    }
    let (cli, prefix) = tools.program("salt");
    let mut args: Vec<String> = prefix;
    let etc_arg = etc.display().to_string();
    args.extend(
        ["-c", &etc_arg, "*", "test.ping", "--out", "quiet"]
            .iter()
            .map(|s| (*s).to_owned()),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    stage.cli_ms = Some(cli_median(&Invocation::new(&cli, &args), plan.cli_runs)?);
    eprintln!("   CLI median {:.1} ms", stage.cli_ms.unwrap_or_default());
    if n == 1 {
        for (size, runs) in BIG.into_iter().zip(plan.big_runs) {
            let file = blob(root, size)?;
            let answered = salt_script(
                tools,
                &script,
                &etc,
                &[
                    "big".into(),
                    head_cmd(&file, size),
                    size.to_string(),
                    runs.to_string(),
                ],
            )?;
            if let Some(why) = answered
                .get("first_bad")
                .and_then(serde_json::Value::as_str)
                .filter(|w| !w.is_empty())
            {
                stage.notes.push(format!(
                    "{} MB return: {} of {runs} calls did not bring the {size} bytes back ({why})",
                    size / 1_000_000,
                    answered
                        .get("lost")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0)
                ));
            }
            if let Some(l) = json_lat(&answered) {
                eprintln!(
                    "   {} MB return: p50 {:.1} ms ({} bad)",
                    size / 1_000_000,
                    l.p50,
                    l.lost
                );
                stage.big.push((size, l));
            }
        }
    }
    let usage = group_usage(master_pgid);
    stage.master = Some(usage);
    let minions_pss: u64 = minion_groups.iter().map(|g| group_usage(*g).pss_kb).sum();
    stage.minion_kb = Some(minions_pss as f64 / n as f64);
    eprintln!(
        "   master PSS {:.1} MB over {} processes, CPU {:.2} s; {:.1} MB PSS per minion",
        usage.pss_kb as f64 / 1024.0,
        usage.procs,
        usage.cpu_s,
        minions_pss as f64 / n as f64 / 1024.0
    );
    drop(cluster);
    Ok(())
}

// --------------------------------------------------------------- report

fn f(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.prec$}"))
}

/// `a / b` as a ratio, with "(k× faster)" when under 1.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => {
            let r = a / b;
            if r < 1.0 {
                format!("{r:.3} ({:.0}× faster)", 1.0 / r)
            } else {
                format!("{r:.2}")
            }
        }
        _ => "—".to_owned(),
    }
}

fn find(stages: &[Stage], system: System, n: usize) -> Option<&Stage> {
    stages.iter().find(|s| s.system == system && s.n == n)
}

fn render(
    stages: &[Stage],
    raw: &Lat,
    opts: &Options,
    machine: &str,
    notes: &[String],
    plan: StagePlan,
) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "### Brine vs stock Salt ({} run)\n\n{machine}. Release build; every figure of a row \
         was measured in the same run, each (system, N) with a fresh master and fresh \
         minions on loopback. Brine: the `brine-master` process and one `brine-swarm` \
         process holding the N minions ({}-bit keys, loaded from the swarm's cache); Salt \
         3007.8: `salt-master` and N `salt-minion` processes from the venv, default \
         settings, the same cached keys. Raw loopback TCP round trip (100 bytes): p50 \
         {:.1} µs, p90 {:.1} µs.\n",
        opts.mode,
        opts.keysize,
        raw.p50 * 1000.0,
        raw.p90 * 1000.0
    );
    t.push_str(
        "| N | system | start + auth (s) | `test.ping` p50 (ms) | p90 (ms) | lost | p50 Brine/Salt | \
         p50 / raw TCP RTT | CLI (ms) | CLI Brine/Salt | master RSS (MB) | master CPU (s) | \
         memory per minion (MB) |\n",
    );
    t.push_str("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    let mut sizes: Vec<usize> = stages.iter().map(|s| s.n).collect();
    sizes.dedup();
    for s in stages {
        let salt = find(stages, System::Salt, s.n);
        let is_brine = matches!(s.system, System::Brine(_));
        let p50 = s.ping.map(|p| p.p50);
        let salt_p50 = salt.and_then(|x| x.ping).map(|p| p.p50);
        let salt_cli = salt.and_then(|x| x.cli_ms);
        let master_mb = s.master.map(|u| {
            if is_brine {
                u.rss_kb as f64 / 1024.0
            } else {
                u.pss_kb as f64 / 1024.0
            }
        });
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.n,
            s.system.label(),
            f(s.start_s, 2),
            f(p50, 2),
            f(s.ping.map(|p| p.p90), 2),
            s.ping
                .map_or_else(|| "—".to_owned(), |p| p.lost.to_string()),
            if is_brine {
                ratio(p50, salt_p50)
            } else {
                "1".to_owned()
            },
            f(p50.map(|p| p / raw.p50), 0),
            f(s.cli_ms, 1),
            if is_brine {
                ratio(s.cli_ms, salt_cli)
            } else {
                "1".to_owned()
            },
            f(master_mb, 1),
            f(s.master.map(|u| u.cpu_s), 2),
            f(s.minion_kb.map(|kb| kb / 1024.0), 2),
        );
    }
    let _ = writeln!(
        t,
        "\nstart + auth: Brine from starting the swarm process to every minion authenticated, \
         subscribed and its start events sent (keys loaded from disk included); Salt from \
         spawning the minions to the first `test.ping` answered by all N. `test.ping`: {PINGS} \
         calls through the client library after 2 warm-ups (a call counts as lost when a \
         minion is missing). CLI: median of {} runs of `brine`/`salt -c … '*' test.ping --out \
         quiet`, process start to exit. Master memory: Brine VmRSS of the one process; Salt the \
         PSS summed over its {} processes. Memory per minion: Brine the swarm process's RSS / N; \
         Salt the PSS of each salt-minion's processes. CPU: user + system seconds of the \
         master over the whole stage.\n",
        plan.cli_runs,
        find(stages, System::Salt, 1)
            .and_then(|s| s.master)
            .map_or_else(|| "master".to_owned(), |u| u.procs.to_string())
    );
    // jobs/s
    if stages.iter().any(|s| s.jobs.is_some()) {
        let _ = writeln!(
            t,
            "**Jobs/s**, `test.ping` to all {JOBS_AT} minions, {IN_FLIGHT} jobs in flight for \
             {:.0} s (a job is done when all {JOBS_AT} returned; Brine's publish requests go \
             one at a time, the waits are concurrent):\n",
            plan.jobs_secs
        );
        t.push_str("| system | jobs/s | returns/s | lost | Brine/Salt |\n| --- | ---: | ---: | ---: | ---: |\n");
        let salt_rate = find(stages, System::Salt, JOBS_AT)
            .and_then(|s| s.jobs)
            .map(|j| j.0);
        for s in stages.iter().filter(|s| s.jobs.is_some()) {
            let (rate, lost) = s.jobs.unwrap_or((0.0, 0));
            let _ = writeln!(
                t,
                "| {} | {rate:.1} | {:.0} | {lost} | {} |",
                s.system.label(),
                rate * JOBS_AT as f64,
                if matches!(s.system, System::Brine(_)) {
                    salt_rate.map_or_else(|| "—".to_owned(), |sr| format!("{:.1}×", rate / sr))
                } else {
                    "1".to_owned()
                }
            );
        }
        t.push('\n');
    }
    // big returns
    if stages.iter().any(|s| !s.big.is_empty()) {
        let _ = writeln!(
            t,
            "**Large returns**, 1 minion, `cmd.run \"head -c <size> <file>\"` returning 1 MB and \
             50 MB through the client library (p50 of {} and {} calls; Brine's swarm runs with \
             its `cmd` output cap raised from 8 to 64 MiB for this):\n",
            plan.big_runs[0], plan.big_runs[1]
        );
        t.push_str(
            "| system | 1 MB (ms) | Brine/Salt | 50 MB (ms) | Brine/Salt | bad |\n\
             | --- | ---: | ---: | ---: | ---: | ---: |\n",
        );
        let salt_big = find(stages, System::Salt, 1).map(|s| s.big.clone());
        for s in stages.iter().filter(|s| !s.big.is_empty()) {
            let get = |v: &[(usize, Lat)], size: usize| {
                v.iter().find(|(sz, _)| *sz == size).map(|(_, l)| l.p50)
            };
            let salt_of = |size| salt_big.as_deref().and_then(|b| get(b, size));
            let is_brine = matches!(s.system, System::Brine(_));
            let bad: usize = s.big.iter().map(|(_, l)| l.lost).sum();
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {bad} |",
                s.system.label(),
                f(get(&s.big, BIG[0]), 1),
                if is_brine {
                    ratio(get(&s.big, BIG[0]), salt_of(BIG[0]))
                } else {
                    "1".into()
                },
                f(get(&s.big, BIG[1]), 1),
                if is_brine {
                    ratio(get(&s.big, BIG[1]), salt_of(BIG[1]))
                } else {
                    "1".into()
                },
            );
        }
        t.push('\n');
    }
    // targets
    t.push_str("**Targets** (reported, never asserted):\n\n");
    for transport in BRINE_TRANSPORTS {
        let b = find(stages, System::Brine(transport), 1);
        let s = find(stages, System::Salt, 1);
        if let (Some(b), Some(s)) = (b, s) {
            if let (Some(bp), Some(sp)) = (b.ping, s.ping) {
                let x = sp.p50 / bp.p50;
                let _ = writeln!(
                    t,
                    "- N = 1, {transport}: client-library `test.ping` {x:.0}× faster than Salt's \
                     LocalClient (target ≥ {TARGET_PING_X:.0}×): {}",
                    verdict(x >= TARGET_PING_X)
                );
            }
            if let (Some(bc), Some(sc)) = (b.cli_ms, s.cli_ms) {
                let x = sc / bc;
                let _ = writeln!(
                    t,
                    "- N = 1, {transport}: CLI end to end {x:.0}× faster than `salt` (target ≥ \
                     {TARGET_CLI_X:.0}×): {}",
                    verdict(x >= TARGET_CLI_X)
                );
            }
        }
    }
    for transport in ["tcp", "quic"] {
        let Some(s) = find(stages, System::Brine(transport), 10_000) else {
            continue;
        };
        let auth = s.start_s.unwrap_or(f64::INFINITY);
        let p50 = s.ping.map_or(f64::INFINITY, |p| p.p50);
        let rss = s.master.map_or(f64::INFINITY, |u| u.rss_kb as f64 / 1024.0);
        let lost = s.ping.map_or(1, |p| p.lost) + s.notes.len();
        let _ = writeln!(
            t,
            "- N = 10,000, {transport}: all authenticated in {auth:.1} s (< {TARGET_AUTH_S:.0} s) \
             {}; `test.ping` p50 {p50:.0} ms (< {TARGET_PING_10K_MS:.0} ms) {}; master RSS \
             {rss:.0} MB (< {TARGET_RSS_10K_MB:.0} MB) {}; lost returns {lost} {}",
            verdict(auth < TARGET_AUTH_S),
            verdict(p50 < TARGET_PING_10K_MS),
            verdict(rss < TARGET_RSS_10K_MB),
            verdict(lost == 0)
        );
    }
    if !sizes.contains(&10_000) {
        t.push_str("- N = 10,000: not part of this run.\n");
    }
    let mut all_notes: Vec<String> = notes.to_vec();
    for s in stages {
        for note in &s.notes {
            all_notes.push(format!("{}, N = {}: {note}", s.system.label(), s.n));
        }
    }
    if !all_notes.is_empty() {
        t.push_str("\nNotes:\n\n");
        for note in all_notes {
            let _ = writeln!(t, "- {note}");
        }
    }
    t
}

fn verdict(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**missed**" }
}

/// Latency p50 against N, log-log, one line per system, the raw TCP RTT
/// as a flat reference.
fn plot(stages: &[Stage], raw: &Lat, path: &Path, machine: &str) -> Result<(), BoxError> {
    use plotters::prelude::*;
    let points = |system: System| -> Vec<(f64, f64)> {
        stages
            .iter()
            .filter(|s| s.system == system)
            .filter_map(|s| s.ping.map(|p| (s.n as f64, p.p50)))
            .collect()
    };
    let mut systems: Vec<System> = stages.iter().map(|s| s.system).collect();
    systems.sort();
    systems.dedup();
    let all: Vec<(f64, f64)> = systems.iter().flat_map(|s| points(*s)).collect();
    if all.is_empty() {
        return Err("no latency to plot".into());
    }
    let max_n = all.iter().map(|p| p.0).fold(1.0, f64::max).max(10.0);
    let max_ms = all.iter().map(|p| p.1).fold(raw.p50, f64::max) * 2.0;
    let min_ms = (raw.p50 / 2.0).min(all.iter().map(|p| p.1).fold(f64::MAX, f64::min) / 2.0);
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "test.ping to '*' through the client library, p50",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..max_n * 1.5).log_scale(), (min_ms..max_ms).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("minions (N)")
        .y_desc("latency (ms)")
        .draw()?;
    let palette = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0xd6, 0x27, 0x28),
    ];
    for (i, system) in systems.iter().enumerate() {
        let color = palette.get(i % palette.len()).copied().unwrap_or(BLACK);
        let pts = points(*system);
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(system.label())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
    }
    let grey = RGBColor(0x80, 0x80, 0x80);
    chart
        .draw_series(LineSeries::new(
            vec![(1.0, raw.p50), (max_n * 1.5, raw.p50)],
            grey.stroke_width(1),
        ))?
        .label("raw loopback TCP RTT")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.draw(&Text::new(
        machine.to_owned(),
        (16, 540),
        ("sans-serif", 12).into_font(),
    ))?;
    root.present()?;
    Ok(())
}
