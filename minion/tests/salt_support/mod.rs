//! Stock Salt 3007.8 from the project's venv as real processes: a
//! `salt-master` and `salt-minion`s with a private `root_dir` in a temp
//! dir, non-default loopback ports, `user` = the current user, short
//! timeouts, logs in files (printed when a test fails); `salt`, `salt-key`
//! and `salt-run` run with `-c`.
//!
//! Needs `cli_support` declared beside it (`mod cli_support;`) for
//! [`Run`], ports and `eventually`.
//!
//! The venv comes from `scripts/salt-venv.sh` (`scripts/test.sh` creates
//! it and exports `BRINE_SALT_PYTHON`); the Salt 3006 one from
//! `SALT_VERSION=3006.9 scripts/salt-venv.sh .venv3006`
//! (`BRINE_SALT3006_PYTHON`). Without it a test is skipped locally and
//! fails under `CI`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)] // shared test helpers outside #[test] fns

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::cli_support::{PATIENCE, Run, free_port};

/// The Salt version the interop suite is written against.
pub const SALT_VERSION: &str = "3007.8";

/// The older Salt the request-protocol-v2 test runs: a 3006 release from
/// before 3006.12 (which moved 3006 to version 3), from
/// `SALT_VERSION=3006.9 scripts/salt-venv.sh .venv3006`.
pub const SALT_3006_VERSION: &str = "3006.9";

/// The venv's python and its `bin` directory.
#[derive(Debug, Clone)]
pub struct Venv {
    pub python: PathBuf,
    pub bin: PathBuf,
}

impl Venv {
    /// Finds the venv (`BRINE_SALT_PYTHON`, else `<repo>/.venv`). `None`
    /// (after saying so on stderr) when it is missing outside CI; under
    /// `CI` a missing venv fails the test.
    pub fn find() -> Option<Venv> {
        Venv::find_version(
            SALT_VERSION,
            "BRINE_SALT_PYTHON",
            ".venv",
            "scripts/salt-venv.sh",
        )
    }

    /// The Salt [`SALT_3006_VERSION`] venv (`BRINE_SALT3006_PYTHON`, else
    /// `<repo>/.venv3006`), as [`Venv::find`].
    pub fn find_salt3006() -> Option<Venv> {
        Venv::find_version(
            SALT_3006_VERSION,
            "BRINE_SALT3006_PYTHON",
            ".venv3006",
            "SALT_VERSION=3006.9 scripts/salt-venv.sh .venv3006",
        )
    }

    fn find_version(wanted: &str, env: &str, dir: &str, make: &str) -> Option<Venv> {
        let python = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(dir)
                .join("bin/python")
        });
        let version = Command::new(&python)
            .args([
                "-c",
                "import salt.version, zmq; print(salt.version.__version__)",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        match version {
            Some(v) if v == wanted => {
                let bin = python.parent().unwrap().to_path_buf();
                Some(Venv { python, bin })
            }
            found => {
                let why = format!(
                    "no stock Salt {wanted} at {} (found {found:?}); run {make}",
                    python.display()
                );
                assert!(std::env::var_os("CI").is_none(), "{why}");
                eprintln!("skipped: {why}");
                None
            }
        }
    }

    /// `python <venv>/bin/<script>`, independent of the script's shebang.
    pub fn command(&self, script: &str) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.arg(self.bin.join(script));
        cmd.env_remove("SALT_CONFIG_DIR").stdin(Stdio::null());
        cmd
    }

    /// Runs `script args…` to its end.
    pub fn run(&self, script: &str, args: &[&str]) -> Run {
        let Output {
            status,
            stdout,
            stderr,
        } = self.command(script).args(args).output().unwrap();
        Run {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// The user the tests run as (`user:` in every Salt config).
pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A Salt daemon in its own process group, killed (with every process it
/// forked) when dropped. When the test is failing, its logs are printed.
pub struct SaltProcess {
    pub name: String,
    child: Child,
    /// The daemon's `log_file` (debug level).
    pub log_file: PathBuf,
    console: PathBuf,
}

impl SaltProcess {
    fn spawn(venv: &Venv, script: &str, name: &str, config_dir: &Path, root: &Path) -> Self {
        let console = root.join(format!("{name}.console"));
        let file = std::fs::File::create(&console).unwrap();
        let child = venv
            .command(script)
            .arg("-c")
            .arg(config_dir)
            .args(["-l", "warning"])
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0)
            .spawn()
            .unwrap();
        SaltProcess {
            name: name.to_owned(),
            child,
            log_file: root.join(name).join(format!("{name}.log")),
            console,
        }
    }

    /// The debug log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Lines logged at ERROR or CRITICAL and traceback lines, except
    /// those in `expected` (substrings).
    pub fn errors(&self, expected: &[&str]) -> Vec<String> {
        let text = format!(
            "{}{}",
            self.log(),
            std::fs::read_to_string(&self.console).unwrap_or_default()
        );
        text.lines()
            .filter(|l| l.contains("[ERROR") || l.contains("[CRITICAL") || l.contains("Traceback"))
            .filter(|l| !expected.iter().any(|e| l.contains(e)))
            .map(str::to_owned)
            .collect()
    }

    fn kill_group(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SaltProcess {
    fn drop(&mut self) {
        self.kill_group();
        // BRINE_SALT_KEEP_LOGS=<dir>: keep every Salt log, for a look after the run.
        if let Some(keep) = std::env::var_os("BRINE_SALT_KEEP_LOGS") {
            let keep = PathBuf::from(keep);
            let _ = std::fs::create_dir_all(&keep);
            let _ = std::fs::copy(&self.log_file, keep.join(format!("{}.log", self.name)));
        }
        if std::thread::panicking() {
            let paths = if self.console == self.log_file {
                vec![&self.console]
            } else {
                vec![&self.console, &self.log_file]
            };
            for path in paths {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let tail: Vec<&str> = text
                    .lines()
                    .rev()
                    .filter(|l| !l.contains("[DEBUG") && !l.contains("[TRACE"))
                    .take(100)
                    .collect();
                eprintln!(
                    "----- {} ({}), last lines above DEBUG",
                    self.name,
                    path.display()
                );
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// Settings every Salt daemon here gets.
fn common_config(root: &Path, name: &str) -> String {
    format!(
        "root_dir: '{root}'\n\
         user: {user}\n\
         log_file: '{log}'\n\
         log_level_logfile: debug\n",
        root = root.join(name).display(),
        user = current_user(),
        // Inside root_dir: Salt prefixes paths outside it with root_dir.
        log = root.join(name).join(format!("{name}.log")).display(),
    )
}

/// A stock `salt-master` on fresh loopback ports.
pub struct StockMaster {
    pub venv: Venv,
    pub config_dir: PathBuf,
    pub publish_port: u16,
    pub ret_port: u16,
    pub process: SaltProcess,
}

impl StockMaster {
    /// Starts it under `root` (its files in `root/salt-master`) and waits
    /// until its ports answer and its event bus is up.
    pub fn start(venv: &Venv, root: &Path) -> StockMaster {
        StockMaster::start_with(venv, root, "")
    }

    /// [`StockMaster::start`] with `extra` YAML appended to its config.
    pub fn start_with(venv: &Venv, root: &Path, extra: &str) -> StockMaster {
        let name = "salt-master";
        let config_dir = root.join(name).join("conf");
        std::fs::create_dir_all(&config_dir).unwrap();
        let (publish_port, ret_port) = (free_port(), free_port());
        let text = format!(
            "{common}\
             interface: 127.0.0.1\n\
             publish_port: {publish_port}\n\
             ret_port: {ret_port}\n\
             worker_threads: 2\n\
             loop_interval: 1\n\
             keysize: 2048\n\
             timeout: 5\n\
             gather_job_timeout: 5\n\
             enable_fqdns_grains: false\n\
             {extra}",
            common = common_config(root, name),
        );
        std::fs::write(config_dir.join("master"), text).unwrap();
        let process = SaltProcess::spawn(venv, "salt-master", name, &config_dir, root);
        let master = StockMaster {
            venv: venv.clone(),
            config_dir,
            publish_port,
            ret_port,
            process,
        };
        let event_bus = root
            .join(name)
            .join("var/run/salt/master/master_event_pub.ipc");
        wait_until("the stock salt-master is up", || {
            port_open(publish_port) && port_open(ret_port) && event_bus.exists()
        });
        master
    }

    fn tool(&self, script: &str, args: &[&str]) -> Run {
        let dir = self.config_dir.display().to_string();
        let mut all = vec!["-c", dir.as_str()];
        all.extend_from_slice(args);
        self.venv.run(script, &all)
    }

    /// `salt -c <conf> args…`
    pub fn salt(&self, args: &[&str]) -> Run {
        self.tool("salt", args)
    }

    /// `salt-key -c <conf> args…`
    pub fn key(&self, args: &[&str]) -> Run {
        self.tool("salt-key", args)
    }

    /// `salt-run -c <conf> args…`
    pub fn runner(&self, args: &[&str]) -> Run {
        self.tool("salt-run", args)
    }
}

/// Where a stock minion connects.
#[derive(Debug, Clone, Copy)]
pub struct MasterPorts {
    pub publish_port: u16,
    pub ret_port: u16,
}

/// A stock `salt-minion`.
pub struct StockMinion {
    pub id: String,
    pub config_dir: PathBuf,
    pub process: SaltProcess,
}

impl StockMinion {
    /// Starts minion `id` (its files in `root/<id>`) against the master on
    /// `master`; `grains` is YAML for its `grains:` block (may be empty).
    pub fn start(venv: &Venv, root: &Path, id: &str, master: MasterPorts, grains: &str) -> Self {
        let config_dir = root.join(id).join("conf");
        std::fs::create_dir_all(&config_dir).unwrap();
        let grains = if grains.is_empty() {
            String::new()
        } else {
            format!("grains:\n{grains}")
        };
        let text = format!(
            "{common}\
             id: {id}\n\
             master: 127.0.0.1\n\
             master_port: {ret}\n\
             publish_port: {publish}\n\
             acceptance_wait_time: 1\n\
             acceptance_wait_time_max: 1\n\
             random_reauth_delay: 0\n\
             auth_timeout: 5\n\
             recon_default: 100\n\
             recon_max: 1000\n\
             recon_randomize: false\n\
             return_retry_timer: 1\n\
             return_retry_timer_max: 2\n\
             enable_fqdns_grains: false\n\
             {grains}",
            common = common_config(root, id),
            ret = master.ret_port,
            publish = master.publish_port,
        );
        std::fs::write(config_dir.join("minion"), text).unwrap();
        let process = SaltProcess::spawn(venv, "salt-minion", id, &config_dir, root);
        StockMinion {
            id: id.to_owned(),
            config_dir,
            process,
        }
    }

    /// Whether the minion logged that it is ready for jobs.
    pub fn is_ready(&self) -> bool {
        self.process
            .log()
            .contains("Minion is ready to receive requests!")
    }
}

/// Polls `check` until it holds, for at most [`PATIENCE`].
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether something listens on loopback `port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// `salt-run state.event <tagmatch>` on a stock master, printing one
/// `tag<TAB>json` line per matching event into a file; killed on drop.
pub struct EventWatch {
    process: SaltProcess,
}

impl EventWatch {
    pub fn start(master: &StockMaster, root: &Path, tagmatch: &str) -> EventWatch {
        let name = "salt-events";
        let out = root.join(format!("{name}.console"));
        let file = std::fs::File::create(&out).unwrap();
        let child = master
            .venv
            .command("salt-run")
            .arg("-c")
            .arg(&master.config_dir)
            .args(["state.event", tagmatch, "pretty=False"])
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0)
            .spawn()
            .unwrap();
        EventWatch {
            process: SaltProcess {
                name: name.to_owned(),
                child,
                log_file: out.clone(),
                console: out,
            },
        }
    }

    /// Every event seen so far: (tag, data).
    pub fn events(&self) -> Vec<(String, serde_json::Value)> {
        std::fs::read_to_string(&self.process.console)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (tag, data) = line.split_once('\t')?;
                Some((tag.to_owned(), serde_json::from_str(data).ok()?))
            })
            .collect()
    }
}
