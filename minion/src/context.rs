//! What a running module function can see: the job, the minion's grains,
//! the jobs table, the registry, the executor's options, and the job's
//! retcode cell (Salt's `__context__["retcode"]`).

use std::sync::atomic::{AtomicI64, Ordering};

use brine_protocol::Value;

use crate::jobs::Jobs;
use crate::load::PublishLoad;
use crate::modules::Modules;

/// Default cap on the bytes kept from each output stream of a command
/// (stdout and stderr separately): 8 MiB. A job return must fit one frame
/// of the transport (64 MiB by default), and a runaway command must not
/// grow the minion's memory without bound.
pub const DEFAULT_OUTPUT_CAP: usize = 8 * 1024 * 1024;

/// Settings of the executor and of the built-in modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    /// Bytes kept from each output stream of a `cmd.*` command; the rest is
    /// read and dropped (so the command never blocks on a full pipe), and
    /// the kept output ends with a note saying how much was dropped.
    pub output_cap: usize,
    /// The shell for `cmd.*` with `python_shell=True` or `cmd.shell` when
    /// the call names none (Salt uses the minion's `$SHELL`; Brine a fixed
    /// `/bin/sh`, so a job does not depend on how the daemon was started).
    pub shell: String,
}

impl Default for ExecOptions {
    fn default() -> Self {
        Self {
            output_cap: DEFAULT_OUTPUT_CAP,
            shell: "/bin/sh".into(),
        }
    }
}

/// The world of one job, lent to every function it calls.
#[derive(Debug)]
pub struct JobContext<'a> {
    /// The job as published.
    pub load: &'a PublishLoad,
    /// The minion's grains (a map).
    pub grains: &'a Value,
    /// The jobs table.
    pub jobs: &'a Jobs,
    /// The module registry the job runs under.
    pub modules: &'a Modules,
    /// Executor and module settings.
    pub options: &'a ExecOptions,
    retcode: AtomicI64,
}

impl<'a> JobContext<'a> {
    /// A context with retcode 0.
    pub fn new(
        load: &'a PublishLoad,
        grains: &'a Value,
        jobs: &'a Jobs,
        modules: &'a Modules,
        options: &'a ExecOptions,
    ) -> Self {
        Self {
            load,
            grains,
            jobs,
            modules,
            options,
            retcode: AtomicI64::new(0),
        }
    }

    /// The job id.
    pub fn jid(&self) -> &str {
        &self.load.jid
    }

    /// Sets the job's retcode (Salt's `__context__["retcode"] = n`), e.g. a
    /// command's exit code. A non-zero retcode makes the job unsuccessful
    /// even when the function returns a value.
    pub fn set_retcode(&self, retcode: i64) {
        self.retcode.store(retcode, Ordering::Relaxed);
    }

    /// The retcode set so far (0 if none).
    pub fn retcode(&self) -> i64 {
        self.retcode.load(Ordering::Relaxed)
    }
}
