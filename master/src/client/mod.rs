//! LocalClient: what `brine`, `brine-run` and netapi use to publish jobs
//! and collect returns, as Salt's `salt.client.LocalClient`.
//!
//! It talks to a running master from any process on its host: clear
//! requests on the master's request channel, authenticated with the root
//! key (`<cachedir>/.root_key`), and the master's event bus over IPC
//! (`<sock_dir>/master_event.ipc`) for returns.
//!
//! The jid is generated here, and the client subscribes to
//! `salt/job/<jid>/` before publishing, so no return can be missed.
//!
//! ```no_run
//! use brine_master::client::{JobSpec, LocalClient};
//! use brine_master::BuiltinTransports;
//! use brine_transport_api::Registry;
//! # async fn run(config: brine_protocol::config::MasterConfig) -> Result<(), Box<dyn std::error::Error>> {
//! let client = LocalClient::from_config(&config, &Registry::builtin()).await?;
//! let result = client.cmd(&JobSpec::new("*", "test.ping"), None).await?;
//! for (id, ret) in &result.returns {
//!     println!("{id}: {:?}", ret.ret);
//! }
//! println!("did not return: {:?}", result.not_returned);
//! # Ok(())
//! # }
//! ```

mod error;
mod wait;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brine_protocol::Value;
use brine_protocol::config::MasterConfig;
use brine_protocol::envelope::{condition_input, open_clear_reply, package_clear};
use brine_protocol::jid::gen_jid;
use brine_transport_api::{
    ClientOptions, EventBusOptions, EventClient, Registry, RequestClient, Settings, TlsOptions,
    Transport,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use error::ClientError;
pub use wait::CmdResult;

use crate::daemon::ROOT_KEY_FILE;
use crate::job_cache::JobFilter;

/// Where a local client pins the master's certificate (under `cachedir`)
/// for transports that always use TLS.
const LOCAL_CLIENT_PKI: &str = "local_client_pki";
/// How long one request to the master may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Returns buffered per job stream.
const STREAM_DEPTH: usize = 1024;

/// A job to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// The target expression (a string, or a list for `list`).
    pub tgt: Value,
    /// `glob`, `pcre`, `list`, `grain`, `compound`, `nodegroup`, …
    pub tgt_type: String,
    /// The function.
    pub fun: String,
    /// Positional arguments.
    pub arg: Vec<Value>,
    /// Keyword arguments (sent as Salt's trailing `__kwarg__` map).
    pub kwargs: Vec<(String, Value)>,
    /// Returners, comma separated (`""` for none).
    pub ret: String,
    /// The publishing user.
    pub user: String,
    /// A jid to use; generated when `None`.
    pub jid: Option<String>,
}

impl JobSpec {
    /// A glob-targeted job without arguments.
    pub fn new(tgt: impl Into<String>, fun: impl Into<String>) -> Self {
        JobSpec {
            tgt: Value::from(tgt.into()),
            tgt_type: "glob".to_owned(),
            fun: fun.into(),
            arg: Vec::new(),
            kwargs: Vec::new(),
            ret: String::new(),
            user: "root".to_owned(),
            jid: None,
        }
    }

    /// The same job with another target type.
    pub fn tgt_type(mut self, tgt_type: impl Into<String>) -> Self {
        self.tgt_type = tgt_type.into();
        self
    }

    /// The same job with these positional arguments.
    pub fn args(mut self, arg: Vec<Value>) -> Self {
        self.arg = arg;
        self
    }

    /// A `list` target.
    pub fn list(ids: &[&str], fun: impl Into<String>) -> Self {
        JobSpec {
            tgt: Value::Array(ids.iter().map(|id| Value::from(*id)).collect()),
            tgt_type: "list".to_owned(),
            ..JobSpec::new("", fun)
        }
    }
}

/// What the master answered to a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The job id.
    pub jid: String,
    /// The minions expected to return.
    pub minions: Vec<String>,
    /// Minions a list target named that have no accepted key.
    pub missing: Vec<String>,
}

/// One minion's return.
#[derive(Debug, Clone, PartialEq)]
pub struct MinionReturn {
    /// The minion id.
    pub id: String,
    /// What the function returned.
    pub ret: Value,
    /// Its retcode, if sent.
    pub retcode: Option<i64>,
    /// Its success flag, if sent.
    pub success: Option<bool>,
    /// The whole return load.
    pub load: Value,
}

impl MinionReturn {
    fn from_load(load: Value) -> Option<MinionReturn> {
        Some(MinionReturn {
            id: load.get("id")?.as_str()?.to_owned(),
            ret: load.get("return").cloned().unwrap_or(Value::Nil),
            retcode: load.get("retcode").and_then(Value::as_i64),
            success: load.get("success").and_then(Value::as_bool),
            load,
        })
    }
}

/// Returns of one job as they arrive (from the event bus).
#[derive(Debug)]
pub struct ReturnStream {
    published: Published,
    rx: mpsc::Receiver<MinionReturn>,
    task: JoinHandle<()>,
}

impl ReturnStream {
    /// What the master answered to the publish.
    pub fn published(&self) -> &Published {
        &self.published
    }

    /// The next return; `None` when the event bus went away.
    ///
    /// # Cancel safety
    /// Cancel safe: a return not yet taken stays queued.
    pub async fn next(&mut self) -> Option<MinionReturn> {
        self.rx.recv().await
    }
}

impl Drop for ReturnStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client of a master running on this host.
#[derive(Debug)]
pub struct LocalClient {
    requests: Box<dyn RequestClient>,
    events: Box<dyn EventClient>,
    root_key: String,
    sock_dir: PathBuf,
    timeout: Duration,
    gather_job_timeout: Duration,
}

impl LocalClient {
    /// Connects to the master `config` describes: its `transport`,
    /// `interface`:`ret_port` (loopback when it binds every interface),
    /// `sock_dir` and `cachedir`.
    ///
    /// # Errors
    /// [`ClientError::UnknownTransport`], [`ClientError::RootKey`],
    /// [`ClientError::Transport`].
    pub async fn from_config(
        config: &MasterConfig,
        registry: &Registry,
    ) -> Result<Self, ClientError> {
        let transport = registry.get(&config.transport)?;
        let ip = if config.interface.is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            config.interface
        };
        let mut settings = Settings::default();
        for (key, value) in &config.transport_settings {
            settings.set(key.clone(), value.clone());
        }
        let mut client = Self::connect(
            transport,
            SocketAddr::new(ip, config.ret_port),
            &config.sock_dir,
            &config.cachedir,
            settings,
        )
        .await?;
        client.timeout = config.timeout;
        client.gather_job_timeout = config.gather_job_timeout;
        Ok(client)
    }

    /// Connects to a master's request channel at `ret_addr` over
    /// `transport`, its event bus under `sock_dir`, with the root key from
    /// `cachedir`.
    ///
    /// # Errors
    /// [`ClientError::RootKey`], [`ClientError::Transport`].
    pub async fn connect(
        transport: Arc<dyn Transport>,
        ret_addr: SocketAddr,
        sock_dir: &Path,
        cachedir: &Path,
        settings: Settings,
    ) -> Result<Self, ClientError> {
        let key_path: PathBuf = cachedir.join(ROOT_KEY_FILE);
        let root_key = tokio::fs::read_to_string(&key_path)
            .await
            .map_err(|source| ClientError::RootKey {
                path: key_path,
                source,
            })?
            .trim()
            .to_owned();
        let mut opts = ClientOptions::new(ret_addr, format!("local-client-{}", std::process::id()));
        opts.settings = settings;
        if transport.capabilities().tls_always {
            // trust on first use, pinned beside the root key: the CLI never
            // writes into the master's pki_dir
            opts.tls = Some(TlsOptions::in_pki_dir(cachedir.join(LOCAL_CLIENT_PKI)));
        }
        let requests = transport.connect_requests(opts).await?;
        let events = transport
            .connect_event_bus(EventBusOptions::new(sock_dir, "master"))
            .await?;
        Ok(LocalClient {
            requests,
            events,
            root_key,
            sock_dir: sock_dir.to_owned(),
            timeout: Duration::from_secs(5),
            gather_job_timeout: Duration::from_secs(10),
        })
    }

    /// Sets the default `cmd` timeout (Salt's `timeout`, 5 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how long a `saltutil.find_job` round waits (10 s).
    pub fn with_gather_job_timeout(mut self, timeout: Duration) -> Self {
        self.gather_job_timeout = timeout;
        self
    }

    /// Sends a clear request with the root key and returns the reply's
    /// `load` (ClearFuncs replies are `{"enc": "clear", "load": …}`).
    async fn clear_request(&self, mut load: Value) -> Result<Value, ClientError> {
        load.insert("key", self.root_key.as_str());
        let frame = package_clear(load).map_err(|e| ClientError::BadReply(e.to_string()))?;
        let reply = self.requests.request(frame, REQUEST_TIMEOUT).await?;
        let reply = open_clear_reply(&reply).map_err(|e| ClientError::BadReply(e.to_string()))?;
        if let Some(error) = reply.get("error") {
            let message = error
                .get("message")
                .or_else(|| error.get("name"))
                .unwrap_or(error);
            return Err(ClientError::Refused(
                message
                    .as_str()
                    .map_or_else(|| format!("{message:?}"), str::to_owned),
            ));
        }
        let load = reply.get("load").cloned().unwrap_or(reply);
        if let Some(error) = load.get("error").and_then(Value::as_str) {
            return Err(ClientError::Refused(error.to_owned()));
        }
        Ok(load)
    }

    /// Publishes `job` (Salt's `pub`) and returns the jid and the expected
    /// minions, without waiting for returns.
    ///
    /// # Errors
    /// [`ClientError::Refused`] (bad root key, no minion matched, …),
    /// [`ClientError::Transport`], [`ClientError::BadReply`].
    pub async fn pub_job(&self, job: &JobSpec) -> Result<Published, ClientError> {
        let jid = job.jid.clone().unwrap_or_else(gen_jid);
        self.publish_with_jid(job, jid).await
    }

    async fn publish_with_jid(&self, job: &JobSpec, jid: String) -> Result<Published, ClientError> {
        let load: Value = [
            ("cmd", Value::from("publish")),
            ("tgt", job.tgt.clone()),
            ("fun", Value::from(job.fun.as_str())),
            ("arg", Value::Array(condition_input(&job.arg, &job.kwargs))),
            ("tgt_type", Value::from(job.tgt_type.as_str())),
            ("ret", Value::from(job.ret.as_str())),
            ("jid", Value::from(jid.as_str())),
            ("user", Value::from(job.user.as_str())),
        ]
        .into_iter()
        .collect();
        let load = self.clear_request(load).await?;
        let list = |key: &str| -> Vec<String> {
            load.get(key)
                .and_then(Value::as_array)
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        let jid = load
            .get("jid")
            .and_then(Value::as_str)
            .ok_or_else(|| ClientError::BadReply("publish reply without jid".to_owned()))?
            .to_owned();
        Ok(Published {
            jid,
            minions: list("minions"),
            missing: list("missing"),
        })
    }

    /// Closes the connection to the master's request server, so the
    /// master learns at once (over quic it would otherwise keep the
    /// connection until its idle timeout). For a short-lived process
    /// (the `brine` command line) before it exits; a failure only means
    /// the connection was already gone.
    pub async fn close(&self) {
        if let Err(err) = self.requests.close().await {
            tracing::debug!(error = %err, "closing the request connection");
        }
    }

    /// Subscribes to the job's returns, then publishes it (Salt's
    /// `run_job`); read the returns from the stream.
    ///
    /// # Errors
    /// As [`LocalClient::pub_job`], plus event bus failures.
    pub async fn run_job(&self, job: &JobSpec) -> Result<ReturnStream, ClientError> {
        let jid = job.jid.clone().unwrap_or_else(gen_jid);
        let mut subscription = self
            .events
            .subscribe(&format!("salt/job/{jid}/ret/"))
            .await?;
        let (tx, rx) = mpsc::channel(STREAM_DEPTH);
        let task = tokio::spawn(async move {
            while let Ok(event) = subscription.next().await {
                let Ok(load) = crate::events::decode_event_data(&event) else {
                    continue;
                };
                if let Some(ret) = MinionReturn::from_load(load)
                    && tx.send(ret).await.is_err()
                {
                    return;
                }
            }
        });
        let published = match self.publish_with_jid(job, jid).await {
            Ok(published) => published,
            Err(err) => {
                task.abort();
                return Err(err);
            }
        };
        Ok(ReturnStream {
            published,
            rx,
            task,
        })
    }

    /// [`LocalClient::run_job`] by another name (Salt's `cmd_iter`): the
    /// returns as they arrive. The stream does not end by itself; stop
    /// reading once every expected minion returned.
    ///
    /// # Errors
    /// As [`LocalClient::run_job`].
    pub async fn cmd_iter(&self, job: &JobSpec) -> Result<ReturnStream, ClientError> {
        self.run_job(job).await
    }

    /// Runs `job` and waits until every expected minion returned or
    /// `timeout` (default: the client's, 5 s) passed without news; then asks
    /// the silent minions `saltutil.find_job` and keeps waiting for those
    /// still running it, as Salt's `get_iter_returns` does.
    ///
    /// # Errors
    /// As [`LocalClient::run_job`].
    pub async fn cmd(
        &self,
        job: &JobSpec,
        timeout: Option<Duration>,
    ) -> Result<CmdResult, ClientError> {
        self.cmd_cli(job, timeout, &mut |_| {}).await
    }

    /// [`LocalClient::cmd`], calling `on_return` with each return as it
    /// arrives (what the `brine` command line prints from).
    ///
    /// # Errors
    /// As [`LocalClient::run_job`].
    pub async fn cmd_cli(
        &self,
        job: &JobSpec,
        timeout: Option<Duration>,
        on_return: &mut (dyn FnMut(&MinionReturn) + Send),
    ) -> Result<CmdResult, ClientError> {
        let stream = self.run_job(job).await?;
        Ok(wait::gather(self, stream, timeout.unwrap_or(self.timeout), on_return).await)
    }

    /// The returns the master stored for `jid`, by minion id.
    ///
    /// # Errors
    /// [`ClientError::Refused`], [`ClientError::Transport`], [`ClientError::BadReply`].
    pub async fn get_cache_returns(
        &self,
        jid: &str,
    ) -> Result<BTreeMap<String, MinionReturn>, ClientError> {
        let load: Value = [
            ("cmd", Value::from("get_returns")),
            ("jid", Value::from(jid)),
        ]
        .into_iter()
        .collect();
        let load = self.clear_request(load).await?;
        let mut out = BTreeMap::new();
        for (_, ret) in load.get("data").and_then(Value::as_map).unwrap_or_default() {
            if let Some(ret) = MinionReturn::from_load(ret.clone()) {
                out.insert(ret.id.clone(), ret);
            }
        }
        Ok(out)
    }

    /// The stored load of `jid` (`None` if unknown), as a map with `jid`,
    /// `fun`, `arg`, `tgt`, `tgt_type`, `user`, `start_time`, `minions`,
    /// `missing`.
    ///
    /// # Errors
    /// As [`LocalClient::get_cache_returns`].
    pub async fn get_load(&self, jid: &str) -> Result<Option<Value>, ClientError> {
        let load: Value = [("cmd", Value::from("get_load")), ("jid", Value::from(jid))]
            .into_iter()
            .collect();
        let load = self.clear_request(load).await?;
        Ok(load.get("data").cloned().filter(|d| !d.is_nil()))
    }

    /// The stored jobs matching `filter`, newest first, each as
    /// [`LocalClient::get_load`] gives one (`brine-run jobs.list_jobs`).
    ///
    /// # Errors
    /// As [`LocalClient::get_cache_returns`].
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Value>, ClientError> {
        let unix = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        let mut load: Value = [("cmd", Value::from("list_jobs"))].into_iter().collect();
        if let Some(since) = filter.since {
            load.insert("since", unix(since));
        }
        if let Some(until) = filter.until {
            load.insert("until", unix(until));
        }
        if let Some(fun) = &filter.fun {
            load.insert("fun", fun.as_str());
        }
        if let Some(user) = &filter.user {
            load.insert("user", user.as_str());
        }
        if let Some(limit) = filter.limit {
            load.insert("limit", u64::try_from(limit).unwrap_or(u64::MAX));
        }
        let load = self.clear_request(load).await?;
        Ok(load
            .get("data")
            .and_then(Value::as_array)
            .unwrap_or_default()
            .to_vec())
    }

    /// The minions holding a session with the master (authenticated since
    /// it started, key still accepted), sorted (`brine-run manage.present`).
    ///
    /// # Errors
    /// As [`LocalClient::get_cache_returns`].
    pub async fn present(&self) -> Result<Vec<String>, ClientError> {
        let load: Value = [("cmd", Value::from("present"))].into_iter().collect();
        let load = self.clear_request(load).await?;
        Ok(load
            .get("data")
            .and_then(Value::as_array)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect())
    }

    /// Checks that the master is running by subscribing to its event bus
    /// (a local socket: fails at once when no master serves it, where a
    /// request would wait for its timeout).
    ///
    /// # Errors
    /// [`ClientError::NotRunning`].
    pub async fn check_master(&self) -> Result<(), ClientError> {
        match self.events.subscribe("brine/cli/check").await {
            Ok(_) => Ok(()),
            Err(source) => Err(ClientError::NotRunning {
                sock_dir: self.sock_dir.clone(),
                source,
            }),
        }
    }

    pub(crate) fn gather_job_timeout(&self) -> Duration {
        self.gather_job_timeout
    }
}
