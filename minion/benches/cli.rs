//! CLI benchmark: the wall time of one `brine '*' test.ping` process, from
//! spawn to exit, against a real `brine-master` and 1 or 10 real
//! `brine-minion` processes on loopback, next to stock Salt 3007.8 (`salt`
//! against `salt-master` and `salt-minion`s from the project's venv) measured
//! the same way in the same run, and `/bin/true` spawned the same way (what
//! starting any process costs on this machine).
//!
//! `cargo bench -p brine-minion --bench cli [-- --quick] [-- --only tcp] [-- --no-salt]`
//!
//! Per transport (zeromq, tcp), for Brine and then for Salt: start the
//! master and one minion, accept its key (`brine-key -A -y`; Salt's master
//! runs with `auto_accept: True`), ping until it answers, time `-c <dir> '*'
//! test.ping --out quiet` and `--out json`; then start nine more minions,
//! wait until all ten answer, time again. Every daemon runs in its own
//! process group; the groups are stopped (SIGTERM, then SIGKILL) when a part
//! ends, fails or the bench is interrupted.
//!
//! The Brine binaries are the release ones next to the bench executable
//! (`target/release/`); without them the bench prints the build command and
//! exits non-zero. The venv is `.venv` in the workspace root or `BRINE_VENV`
//! (`scripts/salt-venv.sh` creates it); without it the Salt columns stay
//! empty. Prints a Markdown table and writes it to `results/cli-bench.md`;
//! the target is reported next to the figures, never asserted.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

#[path = "support/procs.rs"]
mod procs;

use procs::{
    BoxError, Cluster, Daemon, Invocation, SaltTools, count_files, current_user, free_port,
    install_signal_guard, percentile, run_once, temp_dir, wait_listening,
};

const TRANSPORTS: [&str; 2] = ["zeromq", "tcp"];
/// The larger cluster; the smaller one is a single minion.
const MANY: usize = 10;
/// How long a cluster may take to answer with every minion.
const CONVERGE: Duration = Duration::from_secs(120);
/// The target for `brine '*' test.ping` with one minion.
const TARGET_MS: f64 = 30.0;
/// The process-start reference.
const TRUE: &str = "/bin/true";
/// The command that builds what the bench runs.
const BUILD_HINT: &str = "cargo build --release --bins -p brine-master -p brine-minion";

#[derive(Clone, Copy)]
struct Plan {
    runs: usize,
    warm_up: usize,
    true_runs: usize,
}

/// Timings of one command, in ms.
#[derive(Clone, Copy)]
struct Stats {
    median_ms: f64,
    p90_ms: f64,
    /// Runs that exited non-zero or (json) missed a minion's `true`.
    failed: usize,
}

/// One setup's figures: `--out quiet`, `--out json`, and `/bin/true`
/// spawned right before each quiet run (the floor under the same load).
#[derive(Clone, Copy)]
struct Timed {
    quiet: Stats,
    json: Stats,
    floor: Stats,
}

/// One (minions, transport) line of the table.
struct Row {
    minions: usize,
    transport: &'static str,
    brine: Option<Timed>,
    salt: Option<Timed>,
}

impl Row {
    fn new(minions: usize, transport: &'static str) -> Row {
        Row {
            minions,
            transport,
            brine: None,
            salt: None,
        }
    }
}

/// What a cluster measured with 1 and with [`MANY`] minions.
#[derive(Default)]
struct Measured {
    one: Option<Timed>,
    many: Option<Timed>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let no_salt = args.iter().any(|a| a == "--no-salt");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let plan = if quick {
        Plan {
            runs: 10,
            warm_up: 2,
            true_runs: 50,
        }
    } else {
        Plan {
            runs: 30,
            warm_up: 3,
            true_runs: 200,
        }
    };
    let brine = match BrineBinaries::locate() {
        Ok(found) => found,
        Err(missing) => {
            eprintln!("{missing}\nbuild them with:\n    {BUILD_HINT}");
            return ExitCode::FAILURE;
        }
    };
    install_signal_guard();
    match run(plan, quick, no_salt, only.as_deref(), &brine) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cli bench failed: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    plan: Plan,
    quick: bool,
    no_salt: bool,
    only: Option<&str>,
    brine: &BrineBinaries,
) -> Result<(), BoxError> {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let salt = if no_salt {
        Err("skipped (--no-salt)".to_owned())
    } else {
        SaltTools::locate()
    };
    if let Err(why) = &salt {
        eprintln!("stock Salt: {why}");
    }
    let true_stats = time_runs(&Invocation::new(Path::new(TRUE), &[]), plan.true_runs, None)?;
    eprintln!("/bin/true: median {:.2} ms", true_stats.median_ms);

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for transport in TRANSPORTS {
        if only.is_some_and(|o| o != transport) {
            continue;
        }
        let mut one = Row::new(1, transport);
        let mut many = Row::new(MANY, transport);
        eprintln!("brine over {transport}");
        let measured = bench_brine(brine, transport, plan);
        if let Err(err) = &measured.0 {
            notes.push(failure_note("brine", transport, &measured.1, err));
        }
        (one.brine, many.brine) = (measured.1.one, measured.1.many);
        if let Ok(tools) = &salt {
            eprintln!("stock Salt over {transport}");
            let measured = bench_salt(tools, transport, plan);
            if let Err(err) = &measured.0 {
                notes.push(failure_note("salt", transport, &measured.1, err));
            }
            (one.salt, many.salt) = (measured.1.one, measured.1.many);
        }
        rows.push(one);
        rows.push(many);
    }
    if let Err(why) = &salt {
        notes.push(format!("stock Salt not measured: {why}"));
    }
    rows.sort_by_key(|r| r.minions);
    let table = render(&rows, true_stats, plan, quick, &load, &notes);
    println!("{table}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("cli-bench.md"), &table)?;
    Ok(())
}

/// What a failed part says in the report.
fn failure_note(who: &str, transport: &str, measured: &Measured, err: &BoxError) -> String {
    if measured.one.is_some() && measured.many.is_none() {
        format!("{who} over {transport}: no {MANY}-minion figure, only the 1-minion one ({err})")
    } else {
        format!("{who} over {transport} failed: {err}")
    }
}

/// Times `runs` runs of `inv`; with `expect`, stdout is the json outputter's
/// and a run counts as failed unless `expect` minions returned `true`.
fn time_runs(inv: &Invocation, runs: usize, expect: Option<usize>) -> Result<Stats, BoxError> {
    Ok(time_runs_with_floor(inv, runs, expect, None)?.0)
}

/// [`time_runs`], with `floor` (if any) run and timed right before each run.
fn time_runs_with_floor(
    inv: &Invocation,
    runs: usize,
    expect: Option<usize>,
    floor: Option<&Invocation>,
) -> Result<(Stats, Option<Stats>), BoxError> {
    let mut samples = Vec::with_capacity(runs);
    let mut floor_samples = Vec::with_capacity(runs);
    let mut failed = 0;
    for _ in 0..runs {
        if let Some(floor) = floor {
            floor_samples.push(run_once(floor, false)?.0);
        }
        let (elapsed, ok, stdout, stderr) = run_once(inv, expect.is_some())?;
        let answered = expect.map(|_| answered_true(&stdout));
        let ok = ok && expect.is_none_or(|n| answered == Some(n));
        if !ok {
            failed += 1;
            if failed == 1 {
                eprintln!(
                    "a run failed: {} ({} answered)\n{stderr}",
                    inv.describe(),
                    answered.map_or_else(|| "?".to_owned(), |n| n.to_string())
                );
            }
        }
        samples.push(elapsed);
    }
    Ok((
        stats(samples, failed),
        floor.map(|_| stats(floor_samples, 0)),
    ))
}

fn stats(mut samples: Vec<Duration>, failed: usize) -> Stats {
    samples.sort();
    Stats {
        median_ms: percentile(&samples, 0.5),
        p90_ms: percentile(&samples, 0.9),
        failed,
    }
}

/// The quiet and the json invocation, each after `plan.warm_up` untimed
/// runs, and `/bin/true` interleaved with the quiet runs.
fn time_pair(
    cli: &Path,
    prefix: &[&str],
    config_dir: &Path,
    minions: usize,
    plan: Plan,
) -> Result<Timed, BoxError> {
    let dir = config_dir.display().to_string();
    let with = |out: &str| {
        let mut args = prefix.to_vec();
        args.extend(["-c", dir.as_str(), "*", "test.ping", "--out", out]);
        Invocation::new(cli, &args)
    };
    let quiet = with("quiet");
    let json = with("json");
    for _ in 0..plan.warm_up {
        run_once(&quiet, false)?;
        run_once(&json, true)?;
    }
    let true_inv = Invocation::new(Path::new(TRUE), &[]);
    let (q, floor) = time_runs_with_floor(&quiet, plan.runs, None, Some(&true_inv))?;
    let floor = floor.ok_or("no /bin/true samples")?;
    let j = time_runs(&json, plan.runs, Some(minions))?;
    eprintln!(
        "  {minions} minion(s): quiet median {:.1} ms p90 {:.1} ms, json median {:.1} ms \
         ({} + {} failed), /bin/true {:.2} ms",
        q.median_ms, q.p90_ms, j.median_ms, q.failed, j.failed, floor.median_ms
    );
    Ok(Timed {
        quiet: q,
        json: j,
        floor,
    })
}

/// How many minions returned `true` in json outputter text (one document
/// per return, or one for all).
fn answered_true(text: &str) -> usize {
    let mut ids = BTreeSet::new();
    let mut buf = String::new();
    for line in text.lines() {
        if buf.is_empty() && !line.starts_with('{') {
            continue;
        }
        buf.push_str(line);
        buf.push('\n');
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&buf) {
            ids.extend(
                map.into_iter()
                    .filter(|(_, v)| *v == serde_json::Value::Bool(true))
                    .map(|(k, _)| k),
            );
            buf.clear();
        }
    }
    ids.len()
}

/// Pings with `inv` (json out) until `minions` answer; error after [`CONVERGE`]
/// with the last count.
fn converge(
    inv: &Invocation,
    minions: usize,
    cluster: &mut Cluster,
    mut between: impl FnMut(),
) -> Result<Duration, BoxError> {
    let start = Instant::now();
    let mut best = 0;
    loop {
        between();
        let (_, _, stdout, stderr) = run_once(inv, true)?;
        let answered = answered_true(&stdout);
        best = best.max(answered);
        if answered >= minions {
            return Ok(start.elapsed());
        }
        cluster.check_alive()?;
        if start.elapsed() > CONVERGE {
            return Err(format!(
                "only {best} of {minions} minions answered test.ping within {CONVERGE:?} \
                 (last stderr: {})",
                stderr.trim()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

// ------------------------------------------------------------------ Brine

struct BrineBinaries {
    master: PathBuf,
    minion: PathBuf,
    cli: PathBuf,
    key: PathBuf,
}

impl BrineBinaries {
    /// The binaries in the directory above the bench executable
    /// (`target/release/deps/cli-…` → `target/release/`).
    fn locate() -> Result<BrineBinaries, String> {
        let exe = std::env::current_exe().map_err(|e| format!("no bench executable path: {e}"))?;
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .ok_or("the bench executable has no grandparent directory")?;
        let path = |name: &str| dir.join(name);
        let missing: Vec<String> = ["brine-master", "brine-minion", "brine", "brine-key"]
            .into_iter()
            .filter(|name| !path(name).is_file())
            .map(str::to_owned)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "missing release binaries in {}: {}",
                dir.display(),
                missing.join(", ")
            ));
        }
        Ok(BrineBinaries {
            master: path("brine-master"),
            minion: path("brine-minion"),
            cli: path("brine"),
            key: path("brine-key"),
        })
    }
}

/// Brine's master and minions over `transport`: (the first error, what was
/// measured before it).
fn bench_brine(
    bins: &BrineBinaries,
    transport: &str,
    plan: Plan,
) -> (Result<(), BoxError>, Measured) {
    let mut measured = Measured::default();
    let result = (|| {
        let dir = temp_dir()?;
        let root = dir.path();
        let ret_port = free_port()?;
        let publish_port = free_port()?;
        let master_etc = root.join("master/etc");
        std::fs::create_dir_all(&master_etc)?;
        std::fs::write(
            master_etc.join("master"),
            format!(
                "root_dir: '{root}/master'\ntransport: {transport}\ninterface: 127.0.0.1\n\
                 publish_port: {publish_port}\nret_port: {ret_port}\n",
                root = root.display(),
            ),
        )?;
        let mut cluster = Cluster::default();
        let mut cmd = Command::new(&bins.master);
        cmd.arg("-c").arg(&master_etc);
        cluster.add(Daemon::spawn(
            "brine-master",
            cmd,
            &root.join("master.log"),
        )?);
        wait_listening(ret_port, &mut cluster, "brine-master")?;
        let master_etc_arg = master_etc.display().to_string();
        let accept = Invocation::new(&bins.key, &["-c", &master_etc_arg, "-A", "-y"]);
        let ping = Invocation::new(
            &bins.cli,
            &[
                "-c",
                &master_etc_arg,
                "*",
                "test.ping",
                "--out",
                "json",
                "-t",
                "3",
            ],
        );
        let mut started = 0;
        for (target, slot) in [(1, &mut measured.one), (MANY, &mut measured.many)] {
            while started < target {
                let id = format!("m{started}");
                let etc = root.join(&id).join("etc");
                std::fs::create_dir_all(&etc)?;
                std::fs::write(
                    etc.join("minion"),
                    format!(
                        "root_dir: '{root}/{id}'\nid: {id}\ntransport: {transport}\n\
                         master: 127.0.0.1\nmaster_port: {ret_port}\n\
                         acceptance_wait_time: 1\nacceptance_wait_time_max: 1\n\
                         random_reauth_delay: 0\n",
                        root = root.display(),
                    ),
                )?;
                let mut cmd = Command::new(&bins.minion);
                cmd.arg("-c").arg(&etc);
                cluster.add(Daemon::spawn(
                    &format!("brine-minion {id}"),
                    cmd,
                    &root.join(format!("{id}.log")),
                )?);
                started += 1;
            }
            let took = converge(&ping, target, &mut cluster, || {
                let _ = run_once(&accept, false);
            })?;
            eprintln!("  {target} minion(s) answering after {took:.1?}");
            *slot = Some(time_pair(&bins.cli, &[], &master_etc, target, plan)?);
        }
        drop(cluster);
        Ok::<_, BoxError>(())
    })();
    if let Err(err) = &result {
        eprintln!("brine over {transport} failed: {err}");
    }
    (result, measured)
}

/// Stock Salt's master and minions over `transport`, as for Brine.
fn bench_salt(tools: &SaltTools, transport: &str, plan: Plan) -> (Result<(), BoxError>, Measured) {
    let mut measured = Measured::default();
    let result = (|| {
        let user = current_user()?;
        let dir = temp_dir()?;
        let root = dir.path();
        let ret_port = free_port()?;
        let publish_port = free_port()?;
        let master_root = root.join("master");
        let master_etc = master_root.join("etc/salt");
        std::fs::create_dir_all(&master_etc)?;
        std::fs::write(
            master_etc.join("master"),
            format!(
                "root_dir: '{}'\nuser: {user}\ntransport: {transport}\ninterface: 127.0.0.1\n\
                 publish_port: {publish_port}\nret_port: {ret_port}\nauto_accept: True\n",
                master_root.display(),
            ),
        )?;
        let mut cluster = Cluster::default();
        let mut cmd = tools.command("salt-master");
        cmd.arg("-c").arg(&master_etc);
        cluster.add(Daemon::spawn("salt-master", cmd, &root.join("master.log"))?);
        wait_listening(ret_port, &mut cluster, "salt-master")?;
        let (cli, prefix) = tools.program("salt");
        let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
        let master_etc_arg = master_etc.display().to_string();
        let mut ping_args = prefix.clone();
        ping_args.extend([
            "-c",
            &master_etc_arg,
            "*",
            "test.ping",
            "--out",
            "json",
            "-t",
            "5",
        ]);
        let ping = Invocation::new(&cli, &ping_args);
        let accepted_dir = master_root.join("etc/salt/pki/master/minions");
        let mut started = 0;
        for (target, slot) in [(1, &mut measured.one), (MANY, &mut measured.many)] {
            while started < target {
                let id = format!("m{started}");
                let minion_root = root.join(&id);
                let etc = minion_root.join("etc/salt");
                std::fs::create_dir_all(&etc)?;
                std::fs::write(
                    etc.join("minion"),
                    format!(
                        "root_dir: '{}'\nid: {id}\nuser: {user}\ntransport: {transport}\n\
                         master: 127.0.0.1\nmaster_port: {ret_port}\n",
                        minion_root.display(),
                    ),
                )?;
                let mut cmd = tools.command("salt-minion");
                cmd.arg("-c").arg(&etc);
                cluster.add(Daemon::spawn(
                    &format!("salt-minion {id}"),
                    cmd,
                    &root.join(format!("{id}.log")),
                )?);
                started += 1;
            }
            // The keys land in the accepted dir (auto_accept) before any
            // minion can answer; waiting for them spares the CPU a few
            // python processes.
            let start = Instant::now();
            while count_files(&accepted_dir) < target && start.elapsed() < CONVERGE {
                cluster.check_alive()?;
                std::thread::sleep(Duration::from_millis(200));
            }
            let took = converge(&ping, target, &mut cluster, || {})?;
            eprintln!("  {target} minion(s) answering after {took:.1?}");
            *slot = Some(time_pair(&cli, &prefix, &master_etc, target, plan)?);
        }
        drop(cluster);
        Ok::<_, BoxError>(())
    })();
    if let Err(err) = &result {
        eprintln!("salt over {transport} failed: {err}");
    }
    (result, measured)
}

// ----------------------------------------------------------------- report

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.1}"))
}

fn render(
    rows: &[Row],
    true_stats: Stats,
    plan: Plan,
    quick: bool,
    load: &str,
    notes: &[String],
) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "CLI benchmark ({}): wall time of one `<cli> -c <dir> '*' test.ping` process, spawn to \
         exit, {} timed runs after {} warm-up runs, against a `brine-master` and N \
         `brine-minion` release processes on loopback; stock Salt 3007.8 (`salt-master`, N \
         `salt-minion`s and `salt` from the venv, default settings, same transport) measured \
         the same way in the same run. `/bin/true`, spawned the same way right before each \
         timed quiet run (brine run / salt run), is the cost of starting any process under \
         the load of the moment ({:.2} ms median over {} runs at the start). Load average at \
         start: {load}.\n",
        if quick { "--quick" } else { "full" },
        plan.runs,
        plan.warm_up,
        true_stats.median_ms,
        plan.true_runs,
    );
    t.push_str(
        "| minions | transport | brine median (ms) | brine p90 (ms) | brine `--out json` median (ms) | \
         /bin/true median (ms) | salt median (ms) | salt p90 (ms) | salt `--out json` median (ms) | \
         salt / brine |\n",
    );
    t.push_str("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for r in rows {
        let ratio = match (r.salt, r.brine) {
            (Some(s), Some(b)) if b.quiet.median_ms > 0.0 => {
                format!("{:.0}x", s.quiet.median_ms / b.quiet.median_ms)
            }
            _ => "—".to_owned(),
        };
        let floor = |t: Option<Timed>| {
            t.map_or_else(|| "—".to_owned(), |t| format!("{:.2}", t.floor.median_ms))
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {ratio} |",
            r.minions,
            r.transport,
            ms(r.brine.map(|b| b.quiet.median_ms)),
            ms(r.brine.map(|b| b.quiet.p90_ms)),
            ms(r.brine.map(|b| b.json.median_ms)),
            floor(r.brine),
            floor(r.salt),
            ms(r.salt.map(|s| s.quiet.median_ms)),
            ms(r.salt.map(|s| s.quiet.p90_ms)),
            ms(r.salt.map(|s| s.json.median_ms)),
        );
    }
    let _ = writeln!(
        t,
        "\nMedians and p90 are of `--out quiet` unless the column says json; \"salt / brine\" \
         compares the quiet medians.\n\nTarget (reported, not asserted): `brine '*' test.ping` \
         < {TARGET_MS:.0} ms with 1 minion.\n"
    );
    for r in rows.iter().filter(|r| r.minions == 1) {
        if let Some(b) = r.brine {
            let _ = writeln!(
                t,
                "- {}: median {:.1} ms {}",
                r.transport,
                b.quiet.median_ms,
                if b.quiet.median_ms < TARGET_MS {
                    "(meets target)"
                } else {
                    "(misses target)"
                }
            );
        }
    }
    for r in rows {
        for (who, timed) in [("brine", r.brine), ("salt", r.salt)] {
            let Some(timed) = timed else { continue };
            for (out, stats) in [("quiet", timed.quiet), ("json", timed.json)] {
                if stats.failed > 0 {
                    let _ = writeln!(
                        t,
                        "- {who} --out {out}, {} minion(s), {}: {} of {} runs failed (non-zero \
                         exit or a minion missing)",
                        r.minions, r.transport, stats.failed, plan.runs
                    );
                }
            }
        }
    }
    for note in notes {
        let _ = writeln!(t, "- {note}");
    }
    t
}
