//! Running one command for `cmd.*`: tokio child process in its own process
//! group, output captured up to a cap, stdin fed concurrently, killed (the
//! whole group) on the deadline or when the job is dropped.

use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

/// What to run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Spec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Start from an empty environment instead of the minion's.
    pub clear_env: bool,
    /// Variables to remove from the inherited environment.
    pub remove_env: Vec<String>,
    /// Variables to set, in order.
    pub env: Vec<(String, String)>,
    /// Bytes for the command's stdin (`None`: stdin is `/dev/null`).
    pub stdin: Option<Vec<u8>>,
    /// Send stderr into the same pipe as stdout (Salt's `redirect_stderr`).
    pub merge_stderr: bool,
    /// Kill the command after this long.
    pub timeout: Option<Duration>,
    /// Bytes kept per output stream.
    pub output_cap: usize,
    /// Run as this user id (the minion must be root to change it).
    pub uid: Option<u32>,
    /// Run with this group id.
    pub gid: Option<u32>,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// It exited: its exit code, or minus the signal that ended it (as
    /// Python's `returncode`).
    Exited(i64),
    /// It ran past the deadline and its process group was killed.
    TimedOut,
}

/// The result of one command.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub pid: u32,
    pub status: Status,
    /// Captured stdout (with stderr when merged), lossily decoded.
    pub stdout: String,
    pub stderr: String,
}

/// Kills a process group when dropped, unless disarmed. The group's leader
/// is our child, and it is not reaped before the guard is disarmed or fires,
/// so its id cannot have been reused by then.
struct GroupKill(Option<Pid>);

impl GroupKill {
    fn fire(&mut self) {
        if let Some(pgid) = self.0.take() {
            // ESRCH (the group is gone already) is fine
            let _ = kill_process_group(pgid, Signal::KILL);
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.fire();
    }
}

type Reader = Box<dyn AsyncRead + Send + Unpin>;

/// Runs `spec` to its end, or to its deadline.
///
/// # Errors
/// The spawn error (program not found, not executable, bad cwd, not allowed
/// to change user), or an error creating the pipes.
pub(crate) async fn run(spec: Spec) -> io::Result<Output> {
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(&spec.cwd)
        .kill_on_drop(true)
        .process_group(0);
    if spec.clear_env {
        cmd.env_clear();
    }
    for key in &spec.remove_env {
        cmd.env_remove(key);
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(gid) = spec.gid {
        cmd.gid(gid);
    }
    if let Some(uid) = spec.uid {
        cmd.uid(uid);
    }
    cmd.stdin(if spec.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let merged = if spec.merge_stderr {
        let (reader, writer) = io::pipe()?;
        cmd.stdout(writer.try_clone()?);
        cmd.stderr(writer);
        Some(reader)
    } else {
        cmd.stdout(Stdio::piped());
        cmd.stderr(Stdio::piped());
        None
    };
    let mut child = cmd.spawn()?;
    // the Command holds our copies of the pipe's write end: close them, or
    // the reader would never see end-of-file
    drop(cmd);
    let pid = child.id().unwrap_or(0);
    let mut guard = GroupKill(i32::try_from(pid).ok().and_then(Pid::from_raw));

    let out: Option<Reader> = match merged {
        Some(reader) => Some(Box::new(pipe::Receiver::from_owned_fd(reader.into())?)),
        None => child.stdout.take().map(|s| Box::new(s) as Reader),
    };
    let err: Option<Reader> = child.stderr.take().map(|s| Box::new(s) as Reader);
    let stdin = child.stdin.take();
    let input = spec.stdin.unwrap_or_default();
    let cap = spec.output_cap;

    let work = async {
        let feed = async {
            if let Some(mut w) = stdin {
                // a command that does not read its input is not an error
                let _ = w.write_all(&input).await;
                let _ = w.shutdown().await;
            }
        };
        let (_, out, err, status) = tokio::join!(
            feed,
            read_capped(out, cap),
            read_capped(err, cap),
            child.wait()
        );
        (out, err, status)
    };
    let finished = match spec.timeout {
        Some(limit) => tokio::time::timeout(limit, work).await.ok(),
        None => Some(work.await),
    };
    match finished {
        Some((out, err, status)) => {
            guard.disarm();
            Ok(Output {
                pid,
                status: Status::Exited(exit_code(status?)),
                stdout: out,
                stderr: err,
            })
        }
        None => {
            guard.fire();
            let _ = child.wait().await;
            Ok(Output {
                pid,
                status: Status::TimedOut,
                stdout: String::new(),
                stderr: String::new(),
            })
        }
    }
}

fn exit_code(status: ExitStatus) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(sig)) => -i64::from(sig),
        (None, None) => -1,
    }
}

/// Reads a stream to its end, keeping at most `cap` bytes; the rest is
/// drained and counted, and a note saying how much was dropped is appended.
async fn read_capped(reader: Option<Reader>, cap: usize) -> String {
    let Some(mut reader) = reader else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut dropped: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                let take = cap.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(buf.get(..take).unwrap_or_default());
                dropped = dropped.saturating_add(u64::try_from(n - take).unwrap_or(u64::MAX));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        tracing::warn!(
            kept = kept.len(),
            dropped,
            "command output over the cap was dropped"
        );
        text.push_str(&format!(
            "\n[brine: output truncated, {dropped} bytes over the {cap}-byte cap dropped]"
        ));
    }
    text
}
