//! The minion daemon: Salt's `Minion` over any transport.
//!
//! ```text
//! Minion::start(config, &registry, modules)
//!   id (config, else host name) · keys load-or-generate in pki_dir · grains once
//!   └─ task: resolve master ─ _auth (pending: wait acceptance_wait_time, doubling
//!            up to acceptance_wait_time_max) ─ subscribe(identity = id) ─ _pillar
//!            (carries the grains) ─ _minion_event minion_start, salt/minion/<id>/start
//!            └─ for each publish: verify + decrypt (HMAC failure: re-auth, retry the
//!               frame once) ─ match target ─ dedup jid ─ job task ─ _return
//!               (return_retry_tries, then the on-disk spool, resent until acked)
//! ```
//!
//! # API (for embedding and for end-to-end tests)
//!
//! ```no_run
//! use brine_master::BuiltinTransports;
//! use brine_minion::Modules;
//! use brine_minion::daemon::{Minion, MinionState};
//! use brine_protocol::config::MinionConfig;
//! use brine_transport_api::Registry;
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = MinionConfig::default();
//! config.id = Some("m1".into());
//! config.master = vec!["127.0.0.1".into()];
//! config.master_port = 4506;           // the master's ret_port
//! config.transport = "tcp".into();
//! config.pki_dir = "/tmp/m1/pki".into();
//! config.cachedir = "/tmp/m1/cache".into();
//! let minion = Minion::start(config, &Registry::builtin(), Modules::builtin()).await?;
//! // authenticated, start events sent, subscription live:
//! assert_eq!(minion.wait_authenticated().await, MinionState::Running);
//! minion.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! - [`Minion::start`] returns at once after the local start-up (id, keys,
//!   grains, spool directory); the rest runs in a task owned by the
//!   [`MinionHandle`]. Dropping the handle aborts it; [`MinionHandle::shutdown`]
//!   stops it gracefully (running jobs are dropped, their commands killed).
//! - [`MinionHandle::state`] / [`MinionHandle::wait_for`] follow
//!   [`MinionState`]: `Starting` → `Authenticating` (→ `Pending` while the
//!   key waits for acceptance) → `Running` once the subscription is live,
//!   then `Stopped`, `Rejected` or `Failed`. [`MinionHandle::wait_authenticated`]
//!   waits for `Running` or an end state.
//! - [`MinionHandle::wait`] returns the daemon's own end:
//!   `Err(`[`MinionError::Rejected`]`)` when the master rejected the key
//!   (the binary exits 77 then, as Salt's minion).
//! - Set `publish_port` in the config to override the port the master
//!   announces at auth. Transports that always use TLS (QUIC) trust the
//!   master's certificate on first use, pinned in `pki_dir`.
//! - A publish may carry [`JOB_TIMEOUT_KEY`] (`job_timeout`, seconds): the
//!   job is stopped after it. Without it a job runs to its end, as in Salt.
//! - Publishes must be signed (`sign_pub_messages`, Brine default true).
//! - Undelivered returns wait in `<cachedir>/spool/returns/` ([`Spool`]).

mod channel;
mod error;
mod pillar;
mod publish;
mod run;
mod spool;

use std::sync::Arc;

use brine_protocol::config::{MinionConfig, hostname};
use brine_protocol::envelope::Tok;
use brine_protocol::keys::{KeyPair, MinionPki, validate_minion_id};
use brine_protocol::{AuthError, Value};
use brine_transport_api::Registry;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, info, info_span};

pub use channel::SharedMasterKey;
pub use error::{EX_NOPERM, MinionError};
pub use publish::JOB_TIMEOUT_KEY;
pub use spool::{Spool, SpoolError, SpoolLimits, SpooledReturn};

use self::channel::{AuthSettings, Channel};
use self::run::Shared;
use crate::{ExecOptions, Jobs, Modules};

/// Where the daemon is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MinionState {
    /// Resolving the master.
    Starting,
    /// Signing in (or re-signing in) to the master.
    Authenticating,
    /// The master holds our key as pending; retrying every `acceptance_wait_time`.
    Pending,
    /// Authenticated, start events sent, subscription live: jobs run.
    Running,
    /// Shut down on request.
    Stopped,
    /// The master rejected our key.
    Rejected,
    /// Stopped on an error (its message).
    Failed(String),
}

impl MinionState {
    /// Whether the daemon has ended.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            MinionState::Stopped | MinionState::Rejected | MinionState::Failed(_)
        )
    }
}

/// The minion daemon's entry point.
#[derive(Debug)]
pub struct Minion;

/// What [`Minion::start_preloaded`] takes instead of loading or computing it.
#[derive(Debug, Clone)]
pub struct Preloaded {
    /// The minion's key pair.
    pub keys: KeyPair,
    /// The grains, complete (`id` included).
    pub grains: Value,
    /// The executor's settings (a benchmark raises `output_cap` to return
    /// 50 MB from `cmd.run`).
    pub exec: ExecOptions,
    /// The master's key, shared with the other minions of this process.
    pub master_key: SharedMasterKey,
}

impl Minion {
    /// Starts a minion: determines its id (config `id`, else the host
    /// name), loads or generates its keys in `pki_dir` (private key mode
    /// 0600), computes the grains once (plus the config's static grains),
    /// creates the return spool, then spawns the daemon's task on the
    /// current tokio runtime. `registry` supplies the backend named by
    /// `transport`; `modules` the execution modules.
    ///
    /// # Errors
    /// [`MinionError::NoId`], [`MinionError::InvalidId`],
    /// [`MinionError::UnknownTransport`], [`MinionError::Keys`] (keys or
    /// the spool directory).
    pub async fn start(
        config: MinionConfig,
        registry: &Registry,
        modules: Modules,
    ) -> Result<MinionHandle, MinionError> {
        Self::start_inner(config, registry, modules, None).await
    }

    /// [`Minion::start`] with the keys and grains supplied by the caller
    /// instead of loaded from `pki_dir` and computed from this host: what a
    /// swarm of minions in one process uses (keys loaded in bulk, the
    /// host's grains computed once). `pki_dir` still holds what the minion
    /// learns from the master (its public key, a pinned certificate);
    /// `preloaded.grains` are used as given (the caller sets `id`).
    ///
    /// # Errors
    /// As [`Minion::start`].
    pub async fn start_preloaded(
        config: MinionConfig,
        registry: &Registry,
        modules: Modules,
        preloaded: Preloaded,
    ) -> Result<MinionHandle, MinionError> {
        Self::start_inner(config, registry, modules, Some(preloaded)).await
    }

    async fn start_inner(
        config: MinionConfig,
        registry: &Registry,
        modules: Modules,
        preloaded: Option<Preloaded>,
    ) -> Result<MinionHandle, MinionError> {
        let id = match config.id.clone() {
            Some(id) => id,
            None => hostname().ok_or(MinionError::NoId)?,
        };
        validate_minion_id(&id).map_err(|source| MinionError::InvalidId {
            id: id.clone(),
            source,
        })?;
        let transport = registry.get(&config.transport)?;
        let pki = MinionPki::new(&config.pki_dir);
        let spool = Spool::under_cachedir(&config.cachedir, SpoolLimits::default());
        let local = {
            let (pki, spool, id) = (pki.clone(), spool.clone(), id.clone());
            let (keysize, static_grains) = (config.keysize, config.grains.clone());
            tokio::task::spawn_blocking(move || {
                let (keys, grains, exec, master_key) = match preloaded {
                    Some(Preloaded {
                        keys,
                        grains,
                        exec,
                        master_key,
                    }) => (keys, grains, exec, master_key),
                    None => {
                        let keys = pki
                            .load_or_generate_with_bits(keysize)
                            .map_err(MinionError::Keys)?;
                        let grains = crate::grains::load(&id, &static_grains);
                        (keys, grains, ExecOptions::default(), SharedMasterKey::new())
                    }
                };
                spool.ensure().map_err(|e| match e {
                    SpoolError::Write(k) => MinionError::Keys(k),
                    _ => MinionError::TaskFailed("start-up"),
                })?;
                let tok =
                    Tok::new(&keys.private).map_err(|e| MinionError::Auth(AuthError::from(e)))?;
                Ok::<_, MinionError>((keys, grains, tok, exec, master_key))
            })
        };
        let (keys, grains, tok, exec, master_key) = local
            .await
            .map_err(|_| MinionError::TaskFailed("start-up"))??;

        let (state_tx, state_rx) = watch::channel(MinionState::Starting);
        let (stop_tx, stop_rx) = oneshot::channel();
        let jobs = Jobs::new();
        let task = tokio::spawn(
            daemon(DaemonParts {
                config,
                transport,
                id: id.clone(),
                keys,
                tok,
                pki,
                spool,
                grains: grains.clone(),
                modules,
                exec,
                master_key,
                jobs: jobs.clone(),
                state: state_tx,
                stop: stop_rx,
            })
            .instrument(info_span!("minion", id = %id)),
        );
        Ok(MinionHandle {
            id,
            grains,
            jobs,
            state: state_rx,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }
}

struct DaemonParts {
    config: MinionConfig,
    transport: Arc<dyn brine_transport_api::Transport>,
    id: String,
    keys: brine_protocol::keys::KeyPair,
    tok: Tok,
    pki: MinionPki,
    spool: Spool,
    grains: Value,
    modules: Modules,
    exec: ExecOptions,
    master_key: SharedMasterKey,
    jobs: Jobs,
    state: watch::Sender<MinionState>,
    stop: oneshot::Receiver<()>,
}

async fn daemon(parts: DaemonParts) -> Result<(), MinionError> {
    let DaemonParts {
        config,
        transport,
        id,
        keys,
        tok,
        pki,
        spool,
        grains,
        modules,
        exec,
        master_key,
        jobs,
        state,
        mut stop,
    } = parts;
    info!(
        transport = transport.name(),
        "the brine minion is starting up"
    );
    let work = async {
        let master = run::resolve_master(&config).await?;
        let req = transport
            .connect_requests(run::client_options(
                &config,
                transport.as_ref(),
                master,
                &id,
            ))
            .await?;
        let settings = AuthSettings {
            auth_timeout: config.auth_timeout,
            auth_tries: config.auth_tries,
            acceptance_wait_time: config.acceptance_wait_time,
            acceptance_wait_time_max: config.acceptance_wait_time_max,
            rejected_retry: config.rejected_retry,
            serial: config.serial,
        };
        let (fatal_tx, fatal_rx) = mpsc::channel(1);
        let channel = Channel::new(
            id.clone(),
            keys.private,
            tok,
            pki,
            req,
            settings,
            state.clone(),
            master_key,
        );
        let shared = Arc::new(Shared {
            channel,
            grains,
            modules,
            jobs,
            exec,
            spool,
            spool_wake: Notify::new(),
            fatal: fatal_tx,
            verify_publish_sig: config.sign_pub_messages,
            return_tries: config.return_retry_tries,
            return_timeout: config.auth_timeout,
            return_retry_timer: config.return_retry_timer,
        });
        let result = run::serve(
            Arc::clone(&shared),
            &config,
            Arc::clone(&transport),
            master,
            fatal_rx,
        )
        .await;
        shared.channel.close().await;
        result
    };
    let result = tokio::select! {
        result = work => result,
        _ = &mut stop => {
            info!("the brine minion is shutting down");
            Ok(())
        }
    };
    state.send_replace(match &result {
        Ok(()) => MinionState::Stopped,
        Err(MinionError::Rejected) => MinionState::Rejected,
        Err(err) => MinionState::Failed(error_chain(err)),
    });
    result
}

/// `err` and its sources, joined with `: `.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A running minion. Dropping it aborts the daemon's task.
#[derive(Debug)]
pub struct MinionHandle {
    id: String,
    grains: Value,
    jobs: Jobs,
    state: watch::Receiver<MinionState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), MinionError>>>,
}

impl MinionHandle {
    /// The minion id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The grains computed at start (with the config's static grains).
    pub fn grains(&self) -> &Value {
        &self.grains
    }

    /// The running jobs table (what `saltutil.running` reads).
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// The current state.
    pub fn state(&self) -> MinionState {
        self.state.borrow().clone()
    }

    /// Waits until `done` holds for the state or the daemon has ended;
    /// returns that state.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_for(&self, done: impl Fn(&MinionState) -> bool) -> MinionState {
        let mut rx = self.state.clone();
        match rx.wait_for(|s| done(s) || s.is_final()).await {
            Ok(state) => state.clone(),
            Err(_) => self.state(),
        }
    }

    /// Waits until the minion is [`MinionState::Running`] (authenticated,
    /// start events sent, subscription live) or has ended; returns the state.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_authenticated(&self) -> MinionState {
        self.wait_for(|s| *s == MinionState::Running).await
    }

    /// Stops the daemon gracefully and waits for it.
    ///
    /// # Errors
    /// The error that had stopped the daemon already, if any.
    pub async fn shutdown(mut self) -> Result<(), MinionError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join().await
    }

    /// Waits for the daemon to end on its own (it runs until a fatal
    /// error, such as a rejected key).
    ///
    /// # Errors
    /// Why it ended: [`MinionError::Rejected`] (exit code 77), …
    pub async fn wait(mut self) -> Result<(), MinionError> {
        self.join().await
    }

    async fn join(&mut self) -> Result<(), MinionError> {
        match self.task.take() {
            Some(task) => task.await.map_err(|_| MinionError::TaskFailed("daemon"))?,
            None => Ok(()),
        }
    }
}

impl Drop for MinionHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
