//! Runners: what `brine-run` executes on the master (Salt's
//! `salt/runners/`), talking to the running master through
//! [`LocalClient`].
//!
//! | function | returns | Salt |
//! | --- | --- | --- |
//! | `jobs.active` | `{jid: {Function, Arguments, Target, Target-type, User, StartTime, Running: [{minion: pid}], Returned: [minion]}}` | `jobs.active` |
//! | `jobs.list_jobs` | `{jid: {Function, Arguments, Target, Target-type, User, StartTime}}`, filtered by `search_function`, `search_target`, `start_time`, `end_time` | `jobs.list_jobs` |
//! | `jobs.list_job <jid>` | `{jid, Function, …, Minions, StartTime, Result: {minion: {return, retcode, success}}}` | `jobs.list_job` |
//! | `jobs.lookup_jid <jid>` | `{minion: return}` (`missing=True` adds "Minion did not return") | `jobs.lookup_jid` |
//! | `jobs.print_job <jid>` | `{jid: {Function, …, StartTime, Result}}` | `jobs.print_job` |
//! | `manage.status` | `{up: [...], down: [...]}` after a `test.ping` | `manage.status` |
//! | `manage.up` / `manage.down` | the ids; `down removekeys=True` deletes their keys | `manage.up`, `manage.down` |
//! | `manage.present` / `manage.not_present` | minions holding / not holding a session | `manage.present`, `manage.not_present` |
//! | `manage.versions` | minions grouped by `test.version` against the master's version | `manage.versions` |
//!
//! Arguments are Salt's: positional or `key=value`, typed with YAML,
//! checked against the function's parameters (unknown keywords and missing
//! ones are refused with Python's wording). Start and end times of
//! `jobs.list_jobs` are read in the jid's clock (UTC).
//!
//! Where Brine differs: `manage.present` lists the minions that
//! authenticated with the running master (Salt inspects TCP connections),
//! so a minion that stopped without a word stays present until its session
//! ends; `show_ip=True` is not supported. `ext_source` and
//! `display_progress` are accepted and ignored (there is one job cache).

mod args;
mod jobs;
mod manage;
#[cfg(test)]
mod tests;

use std::time::Duration;

use brine_protocol::Value;
use brine_protocol::args::Signature;
use brine_protocol::config::MasterConfig;
use brine_transport_api::Registry;
use thiserror::Error;

use crate::client::{ClientError, LocalClient};
use crate::keys::KeyStoreError;

use args::Bound;

/// Why a runner call failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// No runner function has this name.
    #[error("'{name}' is not available (runner functions: {available})")]
    UnknownFunction {
        /// The name asked for.
        name: String,
        /// The known names, comma separated.
        available: String,
    },
    /// The arguments do not fit the function (Python's `TypeError` text).
    #[error("passed invalid arguments: {0}")]
    InvalidArguments(String),
    /// An argument has a value the function cannot use.
    #[error("invalid value for {param}: {reason}")]
    BadValue {
        /// The parameter.
        param: String,
        /// Why.
        reason: String,
    },
    /// The function does not support this option in Brine.
    #[error("{0} is not supported")]
    Unsupported(&'static str),
    /// Talking to the master failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Changing keys failed (`manage.down removekeys=True`).
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
}

/// What a runner returned.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerOutput {
    /// The return value.
    pub data: Value,
    /// The outputter the runner asks for (`lookup_jid` of a job whose
    /// returns name one, `list_jobs outputter=…`), if any.
    pub outputter: Option<String>,
}

impl RunnerOutput {
    fn new(data: Value) -> Self {
        RunnerOutput {
            data,
            outputter: None,
        }
    }
}

/// One runner function.
#[derive(Debug, Clone, Copy)]
pub struct RunnerFunction {
    /// `module.function`.
    pub name: &'static str,
    /// Its documentation.
    pub doc: &'static str,
    signature: fn() -> Signature,
}

impl RunnerFunction {
    /// Its parameters.
    pub fn signature(&self) -> Signature {
        (self.signature)()
    }
}

/// Every runner function, sorted by name.
pub fn functions() -> &'static [RunnerFunction] {
    FUNCTIONS
}

const FUNCTIONS: &[RunnerFunction] = &[
    jobs::ACTIVE,
    jobs::LIST_JOB,
    jobs::LIST_JOBS,
    jobs::LOOKUP_JID,
    jobs::PRINT_JOB,
    manage::DOWN,
    manage::NOT_PRESENT,
    manage::PRESENT,
    manage::STATUS,
    manage::UP,
    manage::VERSIONS,
];

/// The runner function `name`.
///
/// # Errors
/// [`RunnerError::UnknownFunction`].
pub fn function(name: &str) -> Result<&'static RunnerFunction, RunnerError> {
    FUNCTIONS
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| RunnerError::UnknownFunction {
            name: name.to_owned(),
            available: FUNCTIONS
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Runs runner functions against the master `config` describes.
#[derive(Debug)]
pub struct Runner {
    config: MasterConfig,
    registry: Registry,
}

/// What a runner function gets: the master's config and a connected,
/// checked client.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub(crate) config: &'a MasterConfig,
    pub(crate) client: LocalClient,
}

impl Runner {
    /// A runner for the master of `config`, reached with a transport from
    /// `registry`; `config.timeout` is how long minion commands wait.
    pub fn new(config: MasterConfig, registry: Registry) -> Self {
        Runner { config, registry }
    }

    /// Runs `fun` with the command-line `args` (`key=value` or positional).
    /// Checks the function and its arguments first, then connects.
    ///
    /// # Errors
    /// [`RunnerError`]; [`ClientError::NotRunning`] (inside
    /// [`RunnerError::Client`]) when no master runs.
    pub async fn run(&self, fun: &str, args: &[String]) -> Result<RunnerOutput, RunnerError> {
        let function = function(fun)?;
        let bound = Bound::bind(function.name, &function.signature(), args)?;
        let client = LocalClient::from_config(&self.config, &self.registry).await?;
        self.execute(function, &bound, client).await
    }

    /// Runs `fun` with typed arguments (a REST lowstate's `arg` list and
    /// keyword arguments) over `client`, a client already connected to
    /// the master. Checks the function and its arguments first.
    ///
    /// # Errors
    /// As [`Runner::run`].
    pub async fn run_with(
        &self,
        client: LocalClient,
        fun: &str,
        args: &[Value],
        kwargs: &[(String, Value)],
    ) -> Result<RunnerOutput, RunnerError> {
        let function = function(fun)?;
        let bound = Bound::bind_values(function.name, &function.signature(), args, kwargs)?;
        self.execute(function, &bound, client).await
    }

    async fn execute(
        &self,
        function: &RunnerFunction,
        bound: &Bound,
        mut client: LocalClient,
    ) -> Result<RunnerOutput, RunnerError> {
        if let Some(secs) = bound.seconds("gather_job_timeout")? {
            client = client.with_gather_job_timeout(duration(secs));
        }
        client.check_master().await?;
        let ctx = Context {
            config: &self.config,
            client,
        };
        let output = match function.name {
            "jobs.active" => jobs::active(&ctx).await,
            "jobs.list_job" => jobs::list_job(&ctx, bound).await,
            "jobs.list_jobs" => jobs::list_jobs(&ctx, bound).await,
            "jobs.lookup_jid" => jobs::lookup_jid(&ctx, bound).await,
            "jobs.print_job" => jobs::print_job(&ctx, bound).await,
            "manage.down" => manage::down(&ctx, bound).await,
            "manage.not_present" => manage::not_present(&ctx, bound).await,
            "manage.present" => manage::present(&ctx, bound).await,
            "manage.status" => manage::status(&ctx, bound).await.map(RunnerOutput::new),
            "manage.up" => manage::up(&ctx, bound).await,
            "manage.versions" => manage::versions(&ctx).await,
            other => Err(RunnerError::UnknownFunction {
                name: other.to_owned(),
                available: String::new(),
            }),
        };
        // The client is done: tell the master now rather than leave the
        // connection to its idle timeout (`brine-run` exits next).
        ctx.client.close().await;
        output
    }
}

/// Whether a publish was refused because no minion matched the target
/// (Salt's runners treat that as an empty result, not an error).
pub(crate) fn is_no_minions(err: &ClientError) -> bool {
    matches!(err, ClientError::Refused(message) if message.starts_with("Master could not resolve minions"))
}

/// A seconds value as a [`Duration`].
fn duration(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

fn string_list(ids: impl IntoIterator<Item = impl Into<String>>) -> Value {
    Value::Array(ids.into_iter().map(|id| Value::from(id.into())).collect())
}
