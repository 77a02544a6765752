//! Process plumbing shared by the benchmarks that start real daemons
//! (`benches/cli.rs` and the `brine-bench` binary include it with
//! `#[path]`): programs run and timed, daemons in their own process groups
//! stopped on drop or on Ctrl-C, temp dirs, free ports, and how to start
//! stock Salt from the project's venv.
#![allow(dead_code)] // each includer uses a different part

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a master may take to listen.
pub(crate) const MASTER_UP: Duration = Duration::from_secs(60);
/// How long a stopped daemon's group gets after SIGTERM before SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);

/// Process groups this bench started and has not reaped yet; killed when
/// the bench gets SIGINT or SIGTERM.
pub(crate) static LIVE_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
/// Temp dirs of the setups; removed when the bench is interrupted (their
/// `TempDir` guards do it otherwise).
pub(crate) static TEMP_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

// ----------------------------------------------------------------- timing

/// A program and its arguments.
pub(crate) struct Invocation {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
}

impl Invocation {
    pub(crate) fn new(program: &Path, args: &[&str]) -> Invocation {
        Invocation {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).stdin(Stdio::null());
        cmd
    }

    pub(crate) fn describe(&self) -> String {
        format!("{} {}", self.program.display(), self.args.join(" "))
    }
}

/// One run of `inv` to its end: wall time, exit success, stdout, stderr.
pub(crate) fn run_once(
    inv: &Invocation,
    capture: bool,
) -> Result<(Duration, bool, String, String), BoxError> {
    let mut cmd = inv.command();
    cmd.stdout(if capture {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", inv.program.display()))?
        .wait_with_output()?;
    let elapsed = start.elapsed();
    Ok((
        elapsed,
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Nearest-rank percentile of sorted samples, in ms.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

// -------------------------------------------------------------- processes

/// A daemon in its own process group, its output in a log file.
pub(crate) struct Daemon {
    pub(crate) name: String,
    pub(crate) child: Child,
    pub(crate) pgid: i32,
    pub(crate) log: PathBuf,
}

impl Daemon {
    pub(crate) fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Daemon, BoxError> {
        let file = File::create(log)?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0);
        let mut groups = LIVE_GROUPS.lock().map_err(|_| "group registry poisoned")?;
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let pgid = i32::try_from(child.id())?;
        groups.insert(pgid);
        Ok(Daemon {
            name: name.to_owned(),
            child,
            pgid,
            log: log.to_owned(),
        })
    }

    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

pub(crate) fn signal_group(pgid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pgid) {
        let _ = kill_process_group(pid, signal);
    }
}

/// Every daemon of one measured setup; stopped when dropped.
#[derive(Default)]
pub(crate) struct Cluster {
    pub(crate) daemons: Vec<Daemon>,
}

impl Cluster {
    pub(crate) fn add(&mut self, daemon: Daemon) {
        self.daemons.push(daemon);
    }

    /// An error naming a daemon that has exited, with its log tail.
    pub(crate) fn check_alive(&mut self) -> Result<(), BoxError> {
        for d in &mut self.daemons {
            if let Ok(Some(status)) = d.child.try_wait() {
                return Err(format!(
                    "{} exited with {status}; log tail:\n{}",
                    d.name,
                    d.log_tail(15)
                )
                .into());
            }
        }
        Ok(())
    }

    /// SIGTERM to every group, up to [`STOP_GRACE`] for the leaders to exit,
    /// then SIGKILL to every group (whatever children are left) and reap.
    pub(crate) fn stop(&mut self) {
        for d in &self.daemons {
            signal_group(d.pgid, Signal::TERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            let all_exited = self
                .daemons
                .iter_mut()
                .all(|d| matches!(d.child.try_wait(), Ok(Some(_))));
            if all_exited {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut groups = LIVE_GROUPS.lock().ok();
        for mut d in self.daemons.drain(..) {
            signal_group(d.pgid, Signal::KILL);
            let _ = d.child.kill();
            let _ = d.child.wait();
            if let Some(groups) = groups.as_mut() {
                groups.remove(&d.pgid);
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// On SIGINT or SIGTERM: SIGKILL every live group, then exit 130.
pub(crate) fn install_signal_guard() {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            let _ = ready_tx.send(());
            return;
        };
        rt.block_on(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                let _ = ready_tx.send(());
                return std::future::pending().await;
            };
            let _ = ready_tx.send(());
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        });
        if let Ok(groups) = LIVE_GROUPS.lock() {
            for pgid in groups.iter() {
                signal_group(*pgid, Signal::KILL);
            }
        }
        if let Ok(dirs) = TEMP_DIRS.lock() {
            for dir in dirs.iter() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        eprintln!("interrupted: killed every process group the bench started");
        std::process::exit(130);
    });
    let _ = ready_rx.recv_timeout(Duration::from_secs(5));
}

/// A temp dir, removed on drop or when the bench is interrupted.
pub(crate) fn temp_dir() -> Result<tempfile::TempDir, BoxError> {
    let dir = tempfile::tempdir()?;
    TEMP_DIRS
        .lock()
        .map_err(|_| "temp dir registry poisoned")?
        .push(dir.path().to_owned());
    Ok(dir)
}

/// A port free on loopback now.
pub(crate) fn free_port() -> Result<u16, BoxError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something listens on `port`.
pub(crate) fn wait_listening(port: u16, cluster: &mut Cluster, what: &str) -> Result<(), BoxError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        cluster.check_alive()?;
        if start.elapsed() > MASTER_UP {
            return Err(format!("{what} not listening on {addr} after {MASTER_UP:?}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The login name of the current user (Salt's `user` key).
pub(crate) fn current_user() -> Result<String, BoxError> {
    if let Ok(user) = std::env::var("USER")
        && !user.is_empty()
    {
        return Ok(user);
    }
    let out = Command::new("id").arg("-un").output()?;
    let user = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if user.is_empty() {
        return Err("cannot tell the current user (no $USER, `id -un` failed)".into());
    }
    Ok(user)
}

// ------------------------------------------------------------------- Salt

/// How to start each of Salt's programs: the venv's scripts, or its python
/// with `salt.scripts` when a script is missing.
pub(crate) struct SaltTools {
    pub(crate) python: PathBuf,
    pub(crate) bin: PathBuf,
}

impl SaltTools {
    pub(crate) fn locate() -> Result<SaltTools, String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let venv = std::env::var_os("BRINE_VENV").map_or_else(|| root.join(".venv"), PathBuf::from);
        let python = venv.join("bin/python");
        if !python.exists() {
            return Err(format!(
                "no venv at {} (create it with `bash scripts/salt-venv.sh`)",
                venv.display()
            ));
        }
        Ok(SaltTools {
            python,
            bin: venv.join("bin"),
        })
    }

    /// (program, arguments before Salt's own) for `name` (`salt-master`, …).
    pub(crate) fn program(&self, name: &str) -> (PathBuf, Vec<String>) {
        let script = self.bin.join(name);
        if script.is_file() {
            return (script, Vec::new());
        }
        let entry = name.replace('-', "_");
        (
            self.python.clone(),
            vec![
                "-c".to_owned(),
                format!("import salt.scripts; salt.scripts.{entry}()"),
            ],
        )
    }

    pub(crate) fn command(&self, name: &str) -> Command {
        let (program, prefix) = self.program(name);
        let mut cmd = Command::new(program);
        cmd.args(prefix);
        cmd
    }
}

/// How many entries `dir` holds (0 if it cannot be read).
pub(crate) fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.flatten().count())
}
