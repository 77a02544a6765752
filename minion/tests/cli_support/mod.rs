//! Real binaries as subprocesses: config files in a temp dir, a master and
//! minions started as a user starts them, the CLI run as a user runs it.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)] // shared test helpers outside #[test] fns

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long to wait for anything that should happen.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A workspace binary. Binaries of other packages sit beside this
/// package's own in the target directory (`cargo build --workspace
/// --bins`, which `cargo nextest run --workspace` does).
pub fn bin(name: &str) -> PathBuf {
    let own = PathBuf::from(env!("CARGO_BIN_EXE_brine-minion"));
    let path = own.with_file_name(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A port free on loopback for both TCP and UDP (QUIC), for now.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A child process killed when dropped.
pub struct Daemon {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub fn start(name: &str, program: &str, config_dir: &Path, log_dir: &Path) -> Daemon {
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin(program))
            .arg("-c")
            .arg(config_dir)
            .arg("-l")
            .arg("info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Daemon {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// Stops it with SIGTERM and waits; returns the exit status code.
    pub fn stop(mut self) -> Option<i32> {
        terminate(&self.child);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "{} did not stop", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- {} log ({})", self.name, self.log.display());
            eprintln!("{}", self.log());
        }
    }
}

/// Sends SIGTERM (the way systemd stops a daemon).
pub fn terminate(child: &Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").arg("-TERM").arg(pid).status();
}

/// The result of one CLI run.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `program args…` to its end.
pub fn run(program: &str, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(bin(program))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "{program} panicked: {run:?}"
    );
    run
}

/// Retries `attempt` until it gives `Some`, for at most [`PATIENCE`].
pub fn eventually<T>(what: &str, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match attempt() {
            Ok(found) => return found,
            Err(last) => {
                assert!(Instant::now() < deadline, "timed out: {what}; last: {last}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Every JSON document in `text` (Salt's json outputter prints one per
/// return; batch mode prints other lines between them).
pub fn json_docs(text: &str) -> Vec<serde_json::Value> {
    let mut docs = Vec::new();
    let mut buf = String::new();
    let mut inside = false;
    for line in text.lines() {
        if !inside && line.starts_with('{') {
            inside = true;
            buf.clear();
        }
        if inside {
            buf.push_str(line);
            buf.push('\n');
            if let Ok(doc) = serde_json::from_str(&buf) {
                docs.push(doc);
                inside = false;
            }
        }
    }
    docs
}

/// All JSON documents merged into one `{minion: return}` map.
pub fn merged(text: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut all = serde_json::Map::new();
    for doc in json_docs(text) {
        if let serde_json::Value::Object(map) = doc {
            all.extend(map);
        }
    }
    all
}

/// A temp dir with a master config and minion configs, on fresh ports.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub transport: String,
    pub ret_port: u16,
    pub publish_port: u16,
}

impl Site {
    pub fn new(transport: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let site = Site {
            dir,
            transport: transport.to_owned(),
            ret_port: free_port(),
            publish_port: free_port(),
        };
        site.write_master("");
        site
    }

    /// A site whose master serves publish and requests on one port
    /// (`publish_port` = `ret_port`: one connection per minion).
    pub fn on_one_port(transport: &str) -> Site {
        let mut site = Site::new(transport);
        site.publish_port = site.ret_port;
        site.write_master("");
        site
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn master_dir(&self) -> PathBuf {
        self.root().join("master/etc")
    }

    pub fn master_dir_arg(&self) -> String {
        self.master_dir().display().to_string()
    }

    /// Writes the master config with `extra` YAML appended.
    pub fn write_master(&self, extra: &str) {
        let etc = self.master_dir();
        std::fs::create_dir_all(&etc).unwrap();
        let text = format!(
            "root_dir: '{root}/master'\n\
             transport: {transport}\n\
             interface: 127.0.0.1\n\
             publish_port: {publish}\n\
             ret_port: {ret}\n\
             keysize: 1024\n\
             loop_interval: 1\n\
             timeout: 5\n\
             gather_job_timeout: 3\n\
             nodegroups:\n  group1: 'L@m1,m3'\n\
             {extra}\n",
            root = self.root().display(),
            transport = self.transport,
            publish = self.publish_port,
            ret = self.ret_port,
        );
        std::fs::write(etc.join("master"), text).unwrap();
    }

    /// Writes a minion config for `id` (with `role` as a grain if given).
    pub fn write_minion(&self, id: &str, role: Option<&str>) -> PathBuf {
        let etc = self.root().join(id).join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        let grains = role.map_or(String::new(), |r| format!("grains:\n  role: {r}\n"));
        let text = format!(
            "root_dir: '{root}/{id}'\n\
             id: {id}\n\
             transport: {transport}\n\
             master: 127.0.0.1\n\
             master_port: {ret}\n\
             keysize: 1024\n\
             acceptance_wait_time: 1\n\
             acceptance_wait_time_max: 1\n\
             random_reauth_delay: 0\n\
             {grains}",
            root = self.root().display(),
            transport = self.transport,
            ret = self.ret_port,
        );
        std::fs::write(etc.join("minion"), text).unwrap();
        etc
    }

    pub fn start_master(&self) -> Daemon {
        let daemon = Daemon::start("master", "brine-master", &self.master_dir(), self.root());
        let socket = self
            .root()
            .join("master/var/run/brine/master/master_event.ipc");
        eventually("the master is up", || {
            if socket.exists() {
                Ok(())
            } else {
                Err(daemon.log())
            }
        });
        daemon
    }

    pub fn start_minion(&self, id: &str, role: Option<&str>) -> Daemon {
        let etc = self.write_minion(id, role);
        Daemon::start(id, "brine-minion", &etc, self.root())
    }

    /// `brine -c <master etc> args…`
    pub fn brine(&self, args: &[&str]) -> Run {
        self.tool("brine", args)
    }

    pub fn key(&self, args: &[&str]) -> Run {
        self.tool("brine-key", args)
    }

    pub fn runner(&self, args: &[&str]) -> Run {
        self.tool("brine-run", args)
    }

    fn tool(&self, program: &str, args: &[&str]) -> Run {
        let dir = self.master_dir_arg();
        let mut all = vec!["-c", dir.as_str()];
        all.extend_from_slice(args);
        run(program, &all)
    }
}
