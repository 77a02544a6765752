//! The netapi: a salt-api (`rest_cherrypy`) compatible REST API, live
//! events over Server-Sent Events and WebSocket, and the web UI, served by
//! the master itself when its config has a `rest_api:` (or salt-api's
//! `rest_cherrypy:`) section. [`Master::start`](crate::Master::start)
//! starts it; [`MasterHandle::netapi_addr`](crate::MasterHandle::netapi_addr)
//! says where it listens.
//!
//! | URL | auth | what |
//! | --- | --- | --- |
//! | `GET /` | none | `{"return": "Welcome", "clients": [...]}`; a browser (`Accept: text/html`) gets the web UI |
//! | `POST /` | session | lowstates (`local`, `local_async`, `local_batch`, `runner`, `wheel`) → `{"return": [...]}` |
//! | `POST /login` | credentials | `{"return": [{"token", "expire", "start", "user", "eauth", "perms"}]}`, `X-Auth-Token`, cookie `session_id` |
//! | `GET /login` | none | `{"status": 200, "return": "Please log in"}` |
//! | `POST /logout` | session | ends the session |
//! | `POST /run` | eauth `token` or credentials in each lowstate | as `POST /` without a session |
//! | `POST /token` | credentials | `[{"start", "token", "expire", "name", "eauth"}]` (an eauth token for `/run`) |
//! | `GET /minions[/<id>]` | session | `grains.items` of every minion or one |
//! | `POST /minions` | session | lowstates as `local_async`; 202 with `_links.jobs` |
//! | `GET /jobs[/<jid>]` | session | `jobs.list_jobs`; `jobs.list_job` as `{"info", "return"}` |
//! | `GET /keys[/<id>]` | session | `key.list_all`; `key.finger` |
//! | `POST /keys` | credentials in the body | `key.gen_accept` for `mid`: a tar of `minion.pem` and `minion.pub` |
//! | `POST /hook[/<path>]` | session unless `webhook_disable_auth` | fires `salt/netapi/hook/<path>` with `{"body", "post", "headers"}` |
//! | `GET /events` | session (`X-Auth-Token`, cookie, `?token=`) or `?salt_token=` | Server-Sent Events: `retry: 400`, then `tag:` / `data:` per event |
//! | `GET /ws[/<session>]` | as `/events` | WebSocket: one JSON `{"tag", "data"}` text message per event |
//! | `GET /stats` | session unless `stats_disable_auth` | request and event-client counters |
//! | `GET /app`, `GET /static/<file>` | none | the embedded web UI |
//!
//! Requests: JSON, form, YAML or text bodies up to
//! `max_request_body_size`; answers in JSON or, on
//! `Accept: application/x-yaml`, YAML. Status codes are salt-api's (400 bad
//! lowstate or client, 401 no or expired session or bad credentials, 406,
//! 413, 500 with the reason logged, 503 master unreachable, 504 runner
//! timeout), except that a logged-in user without permission for a
//! function gets 403 where salt-api answers 401.
//!
//! Permissions are `external_auth`'s, matched as Salt does (see
//! `docs/netapi.md`); clients must be listed in `netapi_enable_clients`.

mod api;
pub(crate) mod auth;
mod clients;
mod events;
pub(crate) mod json;
mod request;
mod respond;
mod routes;
mod server;
mod tar;
mod tls;
mod ui;
mod wheel;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use brine_protocol::config::{MasterConfig, RestApiConfig};
use brine_transport_api::{EventBus, Registry, Settings, Transport};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::client::{ClientError, LocalClient};
use crate::keys::{KeyStore, RotationRequest};
use crate::runners::Runner;
use crate::state::Shared;

/// The eauth backends Brine has (`file`, `auto`).
pub const EAUTH_BACKENDS: &[&str] = auth::eauth::BACKENDS;

/// Why the REST API could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetapiError {
    /// The port is taken.
    #[error("The ports are not available to bind: port {port} is in use")]
    PortInUse {
        /// The port.
        port: u16,
    },
    /// Binding failed for another reason.
    #[error("could not bind the REST API on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `ssl_crt` or `ssl_key` could not be used.
    #[error("REST API TLS file {}: {reason}", path.display())]
    Tls {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The API's own client could not reach the master.
    #[error("the REST API could not connect to the master")]
    Client(#[source] ClientError),
}

/// A running REST API.
#[derive(Debug)]
pub struct NetapiHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl NetapiHandle {
    /// Where it listens (the actual port when `port` was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, ends every connection and event stream.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(err) = self.task.await
            && !err.is_cancelled()
        {
            warn!(error = %err, "the REST API task failed");
        }
    }
}

/// What the master hands the API.
pub(crate) struct Parts {
    pub(crate) config: MasterConfig,
    pub(crate) rest: RestApiConfig,
    pub(crate) shared: Arc<Shared>,
    pub(crate) bus: Arc<dyn EventBus>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) ret_addr: SocketAddr,
    pub(crate) settings: Settings,
}

/// Binds `rest.host:rest.port` and serves the API for the running master.
pub(crate) async fn start(parts: Parts) -> Result<NetapiHandle, NetapiError> {
    let Parts {
        config,
        rest,
        shared,
        bus,
        transport,
        ret_addr,
        settings,
    } = parts;
    let tls = if rest.uses_tls() {
        let (crt, key) = (rest.ssl_crt.clone(), rest.ssl_key.clone());
        match (crt, key) {
            (Some(crt), Some(key)) => Some(
                tokio::task::spawn_blocking(move || tls::acceptor(&crt, &key))
                    .await
                    .map_err(|e| NetapiError::Tls {
                        path: PathBuf::new(),
                        reason: e.to_string(),
                    })??,
            ),
            _ => None,
        }
    } else {
        None
    };
    let loopback = if ret_addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), ret_addr.port())
    } else {
        ret_addr
    };
    let client = LocalClient::connect(
        Arc::clone(&transport),
        loopback,
        &config.sock_dir,
        &config.cachedir,
        settings.clone(),
    )
    .await
    .map_err(NetapiError::Client)?
    .with_timeout(config.timeout)
    .with_gather_job_timeout(config.gather_job_timeout);
    let addr = SocketAddr::new(rest.host, rest.port);
    let listener = TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            NetapiError::PortInUse { port: rest.port }
        } else {
            NetapiError::Bind { addr, source }
        }
    })?;
    let local = listener
        .local_addr()
        .map_err(|source| NetapiError::Bind { addr, source })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let keys = KeyStore::new(&config.pki_dir).with_rotation(RotationRequest {
        cachedir: config.cachedir.clone(),
        master_id: config.id.clone(),
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    let api = Arc::new(api::Api {
        runner: Runner::new(config.clone(), Registry::new()),
        config,
        rest,
        shared,
        bus,
        client: Arc::new(client),
        connector: api::Connector {
            transport,
            ret_addr: loopback,
            settings,
        },
        keys,
        logins: auth::Logins::new(auth::tokens::MAX_LOGINS),
        stats: api::Stats::default(),
        stop: stop_rx.clone(),
    });
    let router = routes::router(api);
    let task = tokio::spawn(server::serve(listener, tls, router, stop_rx));
    info!(addr = %local, scheme, "REST API ready");
    Ok(NetapiHandle {
        addr: local,
        stop: stop_tx,
        task,
    })
}
