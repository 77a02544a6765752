//! Job benchmark for the master/minion core: `test.ping` through
//! `LocalClient::cmd` on every built-in transport, against a raw tokio
//! loopback TCP request/response measured in the same run.
//!
//! `cargo bench -p brine-minion --bench jobs [-- --quick] [-- --only tcp] [-- --no-rss] [-- --unsigned]`
//!
//! Per transport:
//! 1. an in-process master (`Master::start`) and one in-process minion
//!    (`Minion::start`) on loopback, auto_accept: the latency of one job
//!    (median, p99) and jobs/s, sequential and with 32 jobs in flight, once
//!    as 32 concurrent `cmd` calls and once with the publish requests
//!    serialized by the bench (one `run_job` at a time, the 32 return
//!    waits concurrent): concurrent publishes reach minions out of serial
//!    order and the minion drops the late ones as stale, so the first
//!    figure counts lost jobs and the second shows the pipeline's capacity;
//! 2. the real `brine-master` binary as a separate process (from a generated
//!    config dir) with 10 in-process minions: its VmRSS idle and after a
//!    batch of jobs targeting all ten (publishes serialized as above). The
//!    binary is looked up next to the
//!    bench executable (`target/release/brine-master`) or in
//!    `BRINE_MASTER_BIN`; without it this part is skipped with a hint.
//!
//! Prints a Markdown table and writes it to `results/jobs-bench.md`. The
//! targets are reported next to the figures, never asserted.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brine_master::client::{JobSpec, LocalClient};
use brine_master::{BuiltinTransports, Master};
use brine_minion::Modules;
use brine_minion::daemon::{Minion, MinionHandle, MinionState};
use brine_protocol::config::{MasterConfig, MinionConfig, Missing};
use brine_transport_api::{Registry, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const TRANSPORTS: [&str; 3] = ["zeromq", "tcp", "quic"];
/// `cmd` calls in flight for the concurrent figures.
const IN_FLIGHT: usize = 32;
/// Minions attached to the separate master process.
const RSS_MINIONS: usize = 10;
/// How long one job waits for its returns before it counts as lost.
const JOB_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `cmd`'s `saltutil.find_job` round waits (after `JOB_TIMEOUT`).
const GATHER_JOB_TIMEOUT: Duration = Duration::from_secs(1);
/// How long start-up steps (auth, first return) may take.
const STARTUP: Duration = Duration::from_secs(60);

/// Issue targets, reported next to the figures.
const TARGET_MEDIAN_MS: f64 = 2.0;
const TARGET_JOBS_PER_S: f64 = 2_000.0;
const TARGET_RSS_MB: f64 = 30.0;

#[derive(Clone, Copy)]
struct Plan {
    sequential_jobs: usize,
    in_flight_jobs: usize,
    rss_jobs: usize,
    raw_samples: usize,
}

/// What one transport measured; `None` where a part failed or was skipped.
#[derive(Default)]
struct Row {
    name: String,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    seq_per_s: Option<f64>,
    /// 32 concurrent `cmd` calls.
    in_flight_per_s: Option<f64>,
    /// Jobs whose return never came (sequential and concurrent `cmd`).
    failed: usize,
    /// 32 in flight, publish requests serialized by the bench.
    serialized_per_s: Option<f64>,
    serialized_failed: usize,
    rss: Option<Rss>,
    notes: Vec<String>,
}

struct Rss {
    idle_mb: f64,
    after_mb: f64,
    peak_mb: f64,
    jobs_per_s: f64,
    failed: usize,
}

struct Raw {
    p50_us: f64,
    p99_us: f64,
    seq_per_s: f64,
    in_flight_per_s: f64,
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let no_rss = args.iter().any(|a| a == "--no-rss");
    let _ = UNSIGNED.set(args.iter().any(|a| a == "--unsigned"));
    let plan = if quick {
        Plan {
            sequential_jobs: 50,
            in_flight_jobs: IN_FLIGHT * 10,
            rss_jobs: 1_000,
            raw_samples: 500,
        }
    } else {
        Plan {
            sequential_jobs: 500,
            in_flight_jobs: IN_FLIGHT * 100,
            rss_jobs: 10_000,
            raw_samples: 5_000,
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(plan, quick, only, no_rss))
}

async fn run(plan: Plan, quick: bool, only: Option<String>, no_rss: bool) -> Result<(), BoxError> {
    let raw = bench_raw_tcp(plan).await?;
    let sign_ms = tokio::task::spawn_blocking(publish_signature_ms).await??;
    eprintln!("RSA-2048 publish signature: p50 {sign_ms:.2} ms");
    eprintln!(
        "raw tcp: p50 {:.1} µs, {:.0} req/s ({IN_FLIGHT} in flight)",
        raw.p50_us, raw.in_flight_per_s
    );
    let master_bin = master_binary();
    let mut rows = Vec::new();
    for name in TRANSPORTS {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let mut row = Row {
            name: name.to_owned(),
            ..Row::default()
        };
        eprintln!("{name}: in-process master + 1 minion");
        if let Err(err) = bench_in_process(name, plan, &mut row).await {
            eprintln!("{name}: in-process part failed: {err}");
            row.notes.push(format!("in-process: {err}"));
        }
        match &master_bin {
            _ if no_rss => row.notes.push("master RSS skipped (--no-rss)".to_owned()),
            Ok(bin) => {
                eprintln!("{name}: brine-master process + {RSS_MINIONS} minions");
                match bench_master_process(bin, name, plan).await {
                    Ok(rss) => row.rss = Some(rss),
                    Err(err) => {
                        eprintln!("{name}: master-process part failed: {err}");
                        row.notes.push(format!("master process: {err}"));
                    }
                }
            }
            Err(hint) => row.notes.push(hint.clone()),
        }
        rows.push(row);
    }
    let table = render(&rows, &raw, sign_ms, plan, quick);
    println!("{table}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("jobs-bench.md"), &table)?;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).map_or(0.0, Duration::as_secs_f64)
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.prec$}"))
}

fn render(rows: &[Row], raw: &Raw, sign_ms: f64, plan: Plan, quick: bool) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Jobs benchmark ({}): `test.ping` through `LocalClient`. In-process master + 1 minion: \
         {} sequential `cmd` jobs (latency, jobs/s), then {} jobs with {IN_FLIGHT} in flight, \
         as {IN_FLIGHT} concurrent `cmd` calls and with the publish requests serialized \
         (returns awaited concurrently). `brine-master` process + {RSS_MINIONS} in-process \
         minions: master VmRSS idle and after {} jobs targeting all {RSS_MINIONS} \
         ({IN_FLIGHT} in flight, serialized publishes). A job is lost when a return is \
         missing after {JOB_TIMEOUT:?}.\n",
        if quick { "--quick" } else { "full" },
        plan.sequential_jobs,
        plan.in_flight_jobs,
        plan.rss_jobs,
    );
    t.push_str(
        "| transport | job p50 (ms) | job p99 (ms) | p50 / raw | jobs/s sequential | \
         jobs/s, 32 concurrent `cmd` | lost | jobs/s, 32 in flight, serialized publish | lost | \
         master RSS idle (MB) | master RSS after (MB) | master peak RSS (MB) | \
         jobs/s ×10 minions | lost |\n",
    );
    t.push_str(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let _ = writeln!(
        t,
        "| raw tokio TCP, 100-byte request/response (reference) | {:.3} | {:.3} | 1x | {:.0} | {:.0} | — | {:.0} | — | — | — | — | — | — |",
        raw.p50_us / 1000.0,
        raw.p99_us / 1000.0,
        raw.seq_per_s,
        raw.in_flight_per_s,
        raw.in_flight_per_s,
    );
    for r in rows {
        let ratio = r.p50_ms.map(|p| p * 1000.0 / raw.p50_us);
        let rss = match &r.rss {
            Some(s) => format!(
                "{:.1} | {:.1} | {:.1} | {:.0} | {}",
                s.idle_mb, s.after_mb, s.peak_mb, s.jobs_per_s, s.failed
            ),
            None => "— | — | — | — | —".to_owned(),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {rss} |",
            r.name,
            opt(r.p50_ms, 3),
            opt(r.p99_ms, 3),
            ratio.map_or_else(|| "—".to_owned(), |x| format!("{x:.0}x")),
            opt(r.seq_per_s, 0),
            opt(r.in_flight_per_s, 0),
            r.failed,
            opt(r.serialized_per_s, 0),
            r.serialized_failed,
        );
    }
    let _ = writeln!(
        t,
        "\nPer job the master signs the publish (`sign_pub_messages`, on by default as in \
         Salt): one RSA-2048 PKCS#1 v1.5 signature with the master key took {sign_ms:.2} ms \
         (p50, this run)."
    );
    let _ = writeln!(
        t,
        "\nTargets (reported, not asserted): job median < {TARGET_MEDIAN_MS} ms; \
         ≥ {TARGET_JOBS_PER_S:.0} jobs/s with {IN_FLIGHT} in flight; master RSS < {TARGET_RSS_MB} MB \
         with {RSS_MINIONS} minions.\n"
    );
    for r in rows {
        let mut verdicts = Vec::new();
        if let Some(p50) = r.p50_ms {
            verdicts.push(format!(
                "median {p50:.2} ms {}",
                mark(p50 < TARGET_MEDIAN_MS)
            ));
        }
        if let Some(rate) = r.in_flight_per_s {
            verdicts.push(format!(
                "{rate:.0} jobs/s with concurrent `cmd` ({} lost) {}",
                r.failed,
                mark(rate >= TARGET_JOBS_PER_S && r.failed == 0)
            ));
        }
        if let Some(rate) = r.serialized_per_s {
            verdicts.push(format!(
                "{rate:.0} jobs/s with serialized publishes {}",
                mark(rate >= TARGET_JOBS_PER_S && r.serialized_failed == 0)
            ));
        }
        if let Some(s) = &r.rss {
            let worst = s.after_mb.max(s.idle_mb).max(s.peak_mb);
            verdicts.push(format!(
                "master RSS ≤ {worst:.1} MB {}",
                mark(worst < TARGET_RSS_MB)
            ));
        }
        let _ = writeln!(t, "- {}: {}", r.name, verdicts.join(", "));
        for note in &r.notes {
            let _ = writeln!(t, "  - {note}");
        }
    }
    t
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "(meets target)"
    } else {
        "(misses target)"
    }
}

// ---------------------------------------------------------------- configs

/// `--unsigned`: master and minions with `sign_pub_messages: false`, to
/// show what the per-publish RSA signature costs.
static UNSIGNED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

fn unsigned() -> bool {
    UNSIGNED.get().copied().unwrap_or(false)
}

fn master_config(dir: &Path, transport: &str) -> MasterConfig {
    let mut config = MasterConfig::default();
    config.id = "bench_master".into();
    config.interface = IpAddr::V4(Ipv4Addr::LOCALHOST);
    config.publish_port = 0;
    config.ret_port = 0;
    config.transport = transport.into();
    config.pki_dir = dir.join("pki");
    config.cachedir = dir.join("cache");
    config.sock_dir = dir.join("sock");
    config.auto_accept = true;
    config.sign_pub_messages = !unsigned();
    config
}

fn minion_config(dir: &Path, id: &str, transport: &str, ret: SocketAddr) -> MinionConfig {
    let mut config = MinionConfig::default();
    config.id = Some(id.into());
    config.master = vec![ret.ip().to_string()];
    config.master_port = ret.port();
    config.transport = transport.into();
    config.pki_dir = dir.join(id).join("pki");
    config.cachedir = dir.join(id).join("cache");
    config.sock_dir = dir.join(id).join("sock");
    config.sign_pub_messages = !unsigned();
    config
}

async fn start_minions(
    dir: &Path,
    transport: &str,
    ret: SocketAddr,
    count: usize,
) -> Result<Vec<MinionHandle>, BoxError> {
    let registry = Registry::builtin();
    let mut minions = Vec::with_capacity(count);
    for i in 0..count {
        let config = minion_config(dir, &format!("bench-m{i}"), transport, ret);
        minions.push(Minion::start(config, &registry, Modules::builtin()).await?);
    }
    for minion in &minions {
        let state = tokio::time::timeout(STARTUP, minion.wait_authenticated())
            .await
            .map_err(|_| format!("minion {} not running after {STARTUP:?}", minion.id()))?;
        if state != MinionState::Running {
            return Err(format!("minion {} ended: {state:?}", minion.id()).into());
        }
    }
    Ok(minions)
}

async fn stop_minions(minions: Vec<MinionHandle>) {
    for minion in minions {
        let _ = minion.shutdown().await;
    }
}

/// Pings until every one of `expected` minions returned (the publish
/// subscription may become live a little after the minion says so).
async fn warm_up(client: &LocalClient, expected: usize) -> Result<(), BoxError> {
    let deadline = Instant::now() + STARTUP;
    loop {
        let result = client
            .cmd(
                &JobSpec::new("*", "test.ping"),
                Some(Duration::from_secs(2)),
            )
            .await?;
        if result.minions.len() == expected && result.returns.len() == expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "warm-up: {} of {expected} minions returned ({} expected by the master)",
                result.returns.len(),
                result.minions.len()
            )
            .into());
        }
    }
}

/// How the in-flight jobs reach the master.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every worker calls `LocalClient::cmd`.
    Cmd,
    /// One publish request at a time (a bench-side gate around `run_job`),
    /// returns awaited concurrently.
    SerializedPublish,
}

/// Runs `jobs` pings of every minion with `IN_FLIGHT` workers;
/// (jobs/s, lost jobs), a job being lost when a return is missing.
async fn pings_in_flight(
    client: &Arc<LocalClient>,
    jobs: usize,
    expected: usize,
    mode: Mode,
) -> Result<(f64, usize), BoxError> {
    let per_worker = jobs.div_ceil(IN_FLIGHT);
    let gate = Arc::new(tokio::sync::Mutex::new(()));
    let start = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let client = Arc::clone(client);
        let gate = Arc::clone(&gate);
        workers.spawn(async move {
            let mut failed = 0;
            for _ in 0..per_worker {
                let ok = match mode {
                    Mode::Cmd => ping(&client, expected).await?,
                    Mode::SerializedPublish => ping_gated(&client, &gate, expected).await?,
                };
                if !ok {
                    failed += 1;
                }
            }
            Ok::<_, BoxError>(failed)
        });
    }
    let mut failed = 0;
    while let Some(done) = workers.join_next().await {
        failed += done??;
    }
    let rate = (per_worker * IN_FLIGHT) as f64 / start.elapsed().as_secs_f64();
    Ok((rate, failed))
}

/// One `test.ping` to every minion through `cmd`; whether all `expected`
/// returned `true`.
async fn ping(client: &LocalClient, expected: usize) -> Result<bool, BoxError> {
    let result = client
        .cmd(&JobSpec::new("*", "test.ping"), Some(JOB_TIMEOUT))
        .await?;
    let ok = result.returns.len() == expected
        && result
            .returns
            .values()
            .all(|r| r.ret.as_bool() == Some(true));
    if !ok {
        eprintln!(
            "job {}: {} of {expected} returns, not returned: {:?}",
            result.jid,
            result.returns.len(),
            result.not_returned
        );
    }
    Ok(ok)
}

/// One `test.ping` to every minion, its publish request made while holding
/// `gate`; whether all `expected` returned `true` within `JOB_TIMEOUT`.
async fn ping_gated(
    client: &LocalClient,
    gate: &tokio::sync::Mutex<()>,
    expected: usize,
) -> Result<bool, BoxError> {
    let mut stream = {
        let _turn = gate.lock().await;
        client.run_job(&JobSpec::new("*", "test.ping")).await?
    };
    let jid = stream.published().jid.clone();
    let deadline = tokio::time::Instant::now() + JOB_TIMEOUT;
    let mut ok = 0;
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < expected {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(ret)) => {
                if ret.ret.as_bool() == Some(true) {
                    ok += 1;
                }
                seen.insert(ret.id);
            }
            _ => break,
        }
    }
    if ok != expected {
        eprintln!("job {jid}: {ok} of {expected} returns");
    }
    Ok(ok == expected)
}

// ------------------------------------------------- in-process master, 1 minion

async fn bench_in_process(transport: &str, plan: Plan, row: &mut Row) -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let registry = Registry::builtin();
    let config = master_config(&dir.path().join("master"), transport);
    let master = Master::start(config.clone(), &registry).await?;
    let result = async {
        let minions = start_minions(dir.path(), transport, master.ret_addr(), 1).await?;
        let client = Arc::new(
            LocalClient::connect(
                registry.get(transport)?,
                master.ret_addr(),
                &config.sock_dir,
                &config.cachedir,
                Settings::default(),
            )
            .await?
            .with_timeout(JOB_TIMEOUT)
            .with_gather_job_timeout(GATHER_JOB_TIMEOUT),
        );
        let measured = async {
            warm_up(&client, 1).await?;
            for _ in 0..(plan.sequential_jobs / 5).max(10) {
                ping(&client, 1).await?;
            }
            let mut samples = Vec::with_capacity(plan.sequential_jobs);
            let start = Instant::now();
            for _ in 0..plan.sequential_jobs {
                let t = Instant::now();
                if !ping(&client, 1).await? {
                    row.failed += 1;
                }
                samples.push(t.elapsed());
            }
            let elapsed = start.elapsed();
            samples.sort();
            row.p50_ms = Some(percentile(&samples, 0.5) * 1000.0);
            row.p99_ms = Some(percentile(&samples, 0.99) * 1000.0);
            row.seq_per_s = Some(plan.sequential_jobs as f64 / elapsed.as_secs_f64());
            eprintln!(
                "{transport}: p50 {:.3} ms, p99 {:.3} ms, {:.0} jobs/s sequential",
                row.p50_ms.unwrap_or_default(),
                row.p99_ms.unwrap_or_default(),
                row.seq_per_s.unwrap_or_default()
            );
            let (rate, failed) =
                pings_in_flight(&client, plan.in_flight_jobs, 1, Mode::SerializedPublish).await?;
            row.serialized_per_s = Some(rate);
            row.serialized_failed = failed;
            eprintln!(
                "{transport}: {rate:.0} jobs/s, {IN_FLIGHT} in flight, serialized publishes \
                 ({failed} lost)"
            );
            let (rate, failed) =
                pings_in_flight(&client, plan.in_flight_jobs, 1, Mode::Cmd).await?;
            row.in_flight_per_s = Some(rate);
            row.failed += failed;
            eprintln!("{transport}: {rate:.0} jobs/s, {IN_FLIGHT} concurrent cmd ({failed} lost)");
            Ok::<_, BoxError>(())
        }
        .await;
        drop(client);
        stop_minions(minions).await;
        measured
    }
    .await;
    master.shutdown().await;
    result
}

// ------------------------------------------- brine-master process, 10 minions

/// `BRINE_MASTER_BIN`, else `brine-master` in the directory above the bench
/// executable (`target/<profile>/deps/jobs-…` → `target/<profile>/`).
fn master_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("BRINE_MASTER_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().map_err(|e| format!("no bench executable path: {e}"))?;
    let candidate = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("brine-master"));
    match candidate {
        Some(bin) if bin.is_file() => {
            let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            if let (Some(bin_time), Some(exe_time)) = (modified(&bin), modified(&exe))
                && bin_time < exe_time
            {
                eprintln!(
                    "note: {} is older than this bench; rebuild it with \
                     `cargo build --release -p brine-master --bin brine-master` if the \
                     master changed",
                    bin.display()
                );
            }
            Ok(bin)
        }
        _ => {
            let hint = "master RSS skipped: no brine-master binary next to the bench; build it with \
                 `cargo build --release -p brine-master --bin brine-master` (or set BRINE_MASTER_BIN)";
            eprintln!("{hint}");
            Err(hint.to_owned())
        }
    }
}

/// The master process; killed on drop if still running.
struct MasterProcess {
    child: Child,
}

impl MasterProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait up to 10 s, then SIGKILL.
    fn stop(&mut self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MasterProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// VmRSS and VmHWM of `pid`, in MB (MiB).
fn rss_mb(pid: u32) -> Result<(f64, f64), BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(rss), Some(hwm)) => Ok((rss, hwm)),
        _ => Err(format!("no VmRSS in /proc/{pid}/status").into()),
    }
}

/// Starts `bin -c <conf>` and waits for "master ready" in its log file;
/// the request address it logged.
async fn spawn_master(
    bin: &Path,
    conf_dir: &Path,
    log: &Path,
) -> Result<(MasterProcess, SocketAddr), BoxError> {
    let child = Command::new(bin)
        .arg("-c")
        .arg(conf_dir)
        .arg("-l")
        .arg("info")
        .arg("--log-file")
        .arg(log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let mut process = MasterProcess { child };
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Ok(Some(status)) = process.child.try_wait() {
            return Err(
                format!("brine-master exited with {status} (log: {})", log.display()).into(),
            );
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("master ready")) {
            let ret = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("ret="))
                .ok_or_else(|| format!("no ret= in {line:?}"))?;
            let addr: SocketAddr = ret.trim_matches('"').parse()?;
            return Ok((process, addr));
        }
        if Instant::now() > deadline {
            return Err(format!("brine-master not ready after {STARTUP:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bench_master_process(bin: &Path, transport: &str, plan: Plan) -> Result<Rss, BoxError> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("master");
    let conf_dir = root.join("conf");
    std::fs::create_dir_all(&conf_dir)?;
    std::fs::write(
        conf_dir.join("master"),
        format!(
            "id: bench_master\ninterface: 127.0.0.1\npublish_port: 0\nret_port: 0\n\
             transport: {transport}\nauto_accept: true\npki_dir: {}\ncachedir: {}\n\
             sock_dir: {}\n",
            root.join("pki").display(),
            root.join("cache").display(),
            root.join("sock").display(),
        ),
    )?;
    let log = root.join("master.log");
    let (mut process, ret) = spawn_master(bin, &conf_dir, &log).await?;
    let result = async {
        let minions = start_minions(dir.path(), transport, ret, RSS_MINIONS).await?;
        let mut config = MasterConfig::load(&conf_dir, Missing::UseDefaults)?.config;
        config.ret_port = ret.port();
        let client = Arc::new(
            LocalClient::from_config(&config, &Registry::builtin())
                .await?
                .with_timeout(JOB_TIMEOUT)
                .with_gather_job_timeout(GATHER_JOB_TIMEOUT),
        );
        let measured = async {
            warm_up(&client, RSS_MINIONS).await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (idle_mb, _) = rss_mb(process.pid())?;
            eprintln!("{transport}: master RSS idle {idle_mb:.1} MB");
            let (jobs_per_s, failed) =
                pings_in_flight(&client, plan.rss_jobs, RSS_MINIONS, Mode::SerializedPublish)
                    .await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (after_mb, peak_mb) = rss_mb(process.pid())?;
            eprintln!(
                "{transport}: master RSS after {} jobs {after_mb:.1} MB (peak {peak_mb:.1}), \
                 {jobs_per_s:.0} jobs/s ({failed} lost)",
                plan.rss_jobs
            );
            Ok::<_, BoxError>(Rss {
                idle_mb,
                after_mb,
                peak_mb,
                jobs_per_s,
                failed,
            })
        }
        .await;
        drop(client);
        stop_minions(minions).await;
        measured
    }
    .await;
    process.stop();
    if result.is_err()
        && let Ok(text) = std::fs::read_to_string(&log)
    {
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        eprintln!("{transport}: master log tail:");
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
    }
    result
}

/// p50 of one RSA-2048 signature over a publish-sized payload with a
/// fresh master-sized key, in ms: what `wrap_publish` pays per job.
fn publish_signature_ms() -> Result<f64, BoxError> {
    let key = brine_protocol::PrivateKey::generate(2048)?;
    let payload = vec![0x5a_u8; 512];
    let mut samples = Vec::with_capacity(50);
    for _ in 0..50 {
        let t = Instant::now();
        key.sign(&payload)?;
        samples.push(t.elapsed());
    }
    samples.sort();
    Ok(percentile(&samples, 0.5) * 1000.0)
}

// ------------------------------------------------------------ raw reference

async fn bench_raw_tcp(plan: Plan) -> Result<Raw, BoxError> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let echo = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let mut len = [0u8; 4];
                    if stream.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let n = u32::from_be_bytes(len) as usize;
                    buf.resize(n, 0);
                    if stream.read_exact(&mut buf[..n]).await.is_err()
                        || stream.write_all(&len).await.is_err()
                        || stream.write_all(&buf[..n]).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    async fn round_trip(stream: &mut TcpStream) -> Result<(), BoxError> {
        let mut msg = 100u32.to_be_bytes().to_vec();
        msg.extend_from_slice(&[b'x'; 100]);
        stream.write_all(&msg).await?;
        let mut back = vec![0u8; msg.len()];
        stream.read_exact(&mut back).await?;
        Ok(())
    }
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    for _ in 0..200 {
        round_trip(&mut stream).await?;
    }
    let mut samples = Vec::with_capacity(plan.raw_samples);
    let start = Instant::now();
    for _ in 0..plan.raw_samples {
        let t = Instant::now();
        round_trip(&mut stream).await?;
        samples.push(t.elapsed());
    }
    let seq_per_s = plan.raw_samples as f64 / start.elapsed().as_secs_f64();
    samples.sort();

    let per_conn = (plan.raw_samples * 4).div_ceil(IN_FLIGHT);
    let mut workers = JoinSet::new();
    let start = Instant::now();
    for _ in 0..IN_FLIGHT {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        workers.spawn(async move {
            for _ in 0..per_conn {
                round_trip(&mut s).await?;
            }
            Ok::<_, BoxError>(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    let in_flight_per_s = (per_conn * IN_FLIGHT) as f64 / start.elapsed().as_secs_f64();
    echo.abort();
    Ok(Raw {
        p50_us: percentile(&samples, 0.5) * 1e6,
        p99_us: percentile(&samples, 0.99) * 1e6,
        seq_per_s,
        in_flight_per_s,
    })
}
