//! The daemon's task: resolve the master, authenticate, subscribe, send
//! `_pillar` and the start events, then serve publishes; plus the returns
//! and their spool.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use brine_protocol::Value;
use brine_protocol::config::MinionConfig;
use brine_protocol::envelope::MinionEvent;
use brine_protocol::tags;
use brine_transport_api::{Backoff, ClientOptions, PublishClient, Received, TlsOptions, Transport};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use super::channel::{Channel, RequestFailure};
use super::pillar::{open_pillar_reply, pillar_load};
use super::publish::{self, Accepted, JidQueue};
use super::spool::Spool;
use super::{MinionError, MinionState};
use crate::{ExecOptions, Jobs, Modules};

/// Longest wait between two attempts to flush the spool.
const SPOOL_MAX_DELAY: Duration = Duration::from_secs(60);

/// Everything the daemon's tasks share.
pub(crate) struct Shared {
    pub(crate) channel: Channel,
    pub(crate) grains: Value,
    pub(crate) modules: Modules,
    pub(crate) jobs: Jobs,
    pub(crate) exec: ExecOptions,
    pub(crate) spool: Spool,
    pub(crate) spool_wake: Notify,
    pub(crate) fatal: mpsc::Sender<MinionError>,
    pub(crate) verify_publish_sig: bool,
    pub(crate) return_tries: u32,
    pub(crate) return_timeout: Duration,
    pub(crate) return_retry_timer: Duration,
}

impl Shared {
    /// Stops the daemon with `err` (the first fatal error wins).
    pub(crate) fn fail(&self, err: MinionError) {
        let _ = self.fatal.try_send(err);
    }

    /// Sends a `_return` load, `return_retry_tries` times; keeps it in the
    /// spool if the master never acknowledged it.
    pub(crate) async fn deliver(&self, jid: String, load: Value) {
        let tries = self.return_tries.max(1);
        for attempt in 1..=tries {
            match self.channel.request_aes(&load, self.return_timeout).await {
                Ok(_) => {
                    debug!(jid, attempt, "return acknowledged");
                    return;
                }
                Err(RequestFailure::Fatal(err)) => {
                    self.fail(err);
                    break;
                }
                Err(err) => {
                    debug!(jid, attempt, error = %err, "return not acknowledged");
                    if attempt < tries {
                        tokio::time::sleep(self.return_retry_timer).await;
                    }
                }
            }
        }
        warn!(
            jid,
            "the master did not acknowledge the return; keeping it in the spool"
        );
        let spool = self.spool.clone();
        let stored = tokio::task::spawn_blocking(move || spool.store(&jid, &load)).await;
        match stored {
            Ok(Ok(_)) => self.spool_wake.notify_one(),
            Ok(Err(err)) => error!(error = %err, "could not spool a return; it is lost"),
            Err(_) => error!("the spool writer failed; a return is lost"),
        }
    }

    /// Resends every spooled return, oldest first, stopping at the first
    /// the master does not acknowledge. True when the spool is empty.
    async fn flush_spool(&self) -> bool {
        let spool = self.spool.clone();
        let pending = match tokio::task::spawn_blocking(move || spool.pending()).await {
            Ok(Ok(pending)) => pending,
            Ok(Err(err)) => {
                warn!(error = %err, "cannot list the return spool");
                return false;
            }
            Err(_) => return false,
        };
        if pending.is_empty() {
            return true;
        }
        if self.channel.current().is_none() {
            return false;
        }
        info!(count = pending.len(), "resending spooled returns");
        for entry in pending {
            let spool = self.spool.clone();
            let item = entry.clone();
            let load = match tokio::task::spawn_blocking(move || spool.read(&item)).await {
                Ok(Ok(Some(load))) => load,
                Ok(Ok(None)) => continue,
                Ok(Err(err)) => {
                    warn!(error = %err, "cannot read a spooled return");
                    return false;
                }
                Err(_) => return false,
            };
            match self.channel.request_aes(&load, self.return_timeout).await {
                Ok(_) => {
                    let spool = self.spool.clone();
                    let removed = tokio::task::spawn_blocking(move || spool.remove(&entry)).await;
                    if let Ok(Err(err)) = removed {
                        warn!(error = %err, "cannot remove a delivered return from the spool");
                        return false;
                    }
                    let jid = load.get("jid").and_then(Value::as_str).unwrap_or("");
                    info!(jid, "spooled return delivered");
                }
                Err(RequestFailure::Fatal(err)) => {
                    self.fail(err);
                    return false;
                }
                Err(err) => {
                    debug!(error = %err, "the master did not take a spooled return; later");
                    return false;
                }
            }
        }
        true
    }
}

/// Flushes the spool when woken (after each authentication and reconnect)
/// and periodically, backing off from `return_retry_timer` to a minute
/// while the master does not take the returns.
async fn spool_task(shared: Arc<Shared>) {
    let initial = shared.return_retry_timer.max(Duration::from_millis(50));
    let mut failures: u32 = 0;
    let mut delay = initial;
    loop {
        tokio::select! {
            () = shared.spool_wake.notified() => {}
            () = tokio::time::sleep(delay) => {}
        }
        if shared.flush_spool().await {
            failures = 0;
            delay = SPOOL_MAX_DELAY;
        } else {
            delay = Backoff {
                initial,
                max: SPOOL_MAX_DELAY,
            }
            .delay(failures);
            failures = failures.saturating_add(1);
        }
    }
}

/// Options for a channel end to the master at `addr`.
pub(crate) fn client_options(
    config: &MinionConfig,
    transport: &dyn Transport,
    addr: SocketAddr,
    id: &str,
) -> ClientOptions {
    let mut opts = ClientOptions::new(addr, id);
    opts.backoff = Backoff {
        initial: config.recon_default,
        max: config.recon_max.max(config.recon_default),
    };
    for (key, value) in &config.transport_settings {
        opts.settings.set(key.as_str(), value.as_str());
    }
    if transport.capabilities().tls_always {
        // trust on first use of the master's certificate, pinned in pki_dir
        opts.tls = Some(TlsOptions::in_pki_dir(&config.pki_dir));
    }
    opts
}

/// Resolves `master:master_port`, retrying every `retry_dns` if set.
pub(crate) async fn resolve_master(config: &MinionConfig) -> Result<SocketAddr, MinionError> {
    let host = config.master.first().map_or("salt", String::as_str);
    if config.master.len() > 1 {
        warn!(
            master = host,
            "several masters configured; only the first is used"
        );
    }
    let target = format!("{host}:{}", config.master_port);
    loop {
        match tokio::net::lookup_host(target.clone()).await {
            Ok(mut addrs) => {
                if let Some(addr) = addrs.next() {
                    return Ok(addr);
                }
            }
            Err(source) if config.retry_dns.is_zero() => {
                return Err(MinionError::Resolve {
                    master: target,
                    source,
                });
            }
            Err(err) => {
                warn!(master = %target, error = %err, "cannot resolve the master; retrying");
            }
        }
        if config.retry_dns.is_zero() {
            return Err(MinionError::Resolve {
                master: target,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
            });
        }
        tokio::time::sleep(config.retry_dns).await;
    }
}

/// After the first authentication: subscribe, `_pillar`, start events,
/// then serve publishes until a fatal error or the subscriber closes.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    config: &MinionConfig,
    transport: Arc<dyn Transport>,
    master: SocketAddr,
    mut fatal: mpsc::Receiver<MinionError>,
) -> Result<(), MinionError> {
    let state = shared.channel.state().clone();
    state.send_replace(MinionState::Authenticating);
    let session = shared.channel.authenticate().await?;
    let publish_port = config.publish_port.unwrap_or(session.publish_port);
    let publish_addr = SocketAddr::new(master.ip(), publish_port);
    let sub = transport
        .subscribe(client_options(
            config,
            transport.as_ref(),
            publish_addr,
            shared.channel.id(),
        ))
        .await?;
    info!(master = %publish_addr, "subscribed to the master's publisher");
    start_sequence(&shared, config.request_channel_timeout).await;

    let mut background = JoinSet::new();
    background.spawn(spool_task(Arc::clone(&shared)));
    shared.spool_wake.notify_one();
    let result = publish_loop(&shared, sub.as_ref(), &mut fatal, config).await;
    let _ = sub.close().await;
    background.shutdown().await;
    result
}

/// `_pillar` (the master caches our grains from it), then `minion_start`
/// and `salt/minion/<id>/start`. Failures are logged, not fatal.
async fn start_sequence(shared: &Shared, timeout: Duration) {
    let id = shared.channel.id();
    let load = pillar_load(id, &shared.grains);
    let key = shared.channel.key().clone();
    match shared
        .channel
        .request_aes_with(&load, timeout, |frame, session, nonce| {
            open_pillar_reply(frame, session, nonce, &key)
        })
        .await
    {
        Ok(pillar) => debug!(
            keys = pillar.as_map().map_or(0, <[_]>::len),
            "pillar received"
        ),
        Err(RequestFailure::Fatal(err)) => shared.fail(err),
        Err(err) => warn!(error = %err, "the pillar request failed"),
    }
    let started_at = tags::asctime(SystemTime::now());
    for event in MinionEvent::minion_start(id, &started_at, None) {
        match shared.channel.request_aes(&event.to_load(), timeout).await {
            Ok(_) => debug!(tag = %event.tag, "start event sent"),
            Err(RequestFailure::Fatal(err)) => shared.fail(err),
            Err(err) => warn!(tag = %event.tag, error = %err, "a start event was not sent"),
        }
    }
}

async fn publish_loop(
    shared: &Arc<Shared>,
    sub: &dyn PublishClient,
    fatal: &mut mpsc::Receiver<MinionError>,
    config: &MinionConfig,
) -> Result<(), MinionError> {
    let state = shared.channel.state();
    let mut jids = JidQueue::new(config.minion_jid_queue_hwm);
    let mut jobs = JoinSet::new();
    let mut disconnected = false;
    loop {
        tokio::select! {
            Some(err) = fatal.recv() => return Err(err),
            Some(done) = jobs.join_next(), if !jobs.is_empty() => {
                if let Err(err) = done
                    && err.is_panic()
                {
                    error!("a job task panicked");
                }
            }
            received = sub.recv() => match received? {
                Received::Frame(frame) => {
                    if let Accepted::Job(load) = publish::open(shared, &frame, &mut jids).await {
                        jobs.spawn(publish::run_job(Arc::clone(shared), load));
                    }
                }
                Received::Connected => {
                    if disconnected {
                        info!("publish connection back; re-authenticating");
                        let stale = shared.channel.current().map_or(0, |s| s.generation);
                        shared.channel.reauth(stale).await?;
                        shared.spool_wake.notify_one();
                    }
                    disconnected = false;
                    state.send_if_modified(|s| {
                        let changed = *s != MinionState::Running;
                        *s = MinionState::Running;
                        changed
                    });
                }
                Received::Disconnected { reason } => {
                    warn!(reason, "lost the publish connection to the master; reconnecting");
                    disconnected = true;
                }
            },
        }
    }
}
