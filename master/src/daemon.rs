//! Start-up and the running master: [`Master::start`] checks the
//! environment, loads or creates keys, binds the event bus, the publisher
//! and the request server, and starts Maintenance under the supervisor.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use brine_protocol::Crypticle;
use brine_protocol::config::MasterConfig;
use brine_protocol::keys::{MasterPki, ensure_dir, write_atomic};
use brine_transport_api::{
    EventBus, EventBusOptions, PublishServer, Registry, RequestServer, ServerOptions, Settings,
    TlsOptions, TransportError,
};
use tracing::{info, warn};

use crate::MasterError;
use crate::events::Events;
use crate::handler::Handler;
use crate::job_cache::{JobCache, SqliteJobCache};
use crate::keys::clear_aes_rotation_request;
use crate::netapi::NetapiHandle;
use crate::state::{Shared, SharedParts, grains_dir, sessions_dir};
use crate::supervisor::{Supervisor, component};

/// The file local clients read the root key from, under `cachedir`.
pub const ROOT_KEY_FILE: &str = ".root_key";

/// The Brine master daemon.
#[derive(Debug)]
pub struct Master;

/// A running master. Dropping it aborts its tasks; prefer
/// [`MasterHandle::shutdown`].
#[derive(Debug)]
pub struct MasterHandle {
    shared: Arc<Shared>,
    requests: Box<dyn RequestServer>,
    bus: Arc<dyn EventBus>,
    supervisor: Supervisor,
    publish_addr: SocketAddr,
    ret_addr: SocketAddr,
    netapi: Option<NetapiHandle>,
}

impl Master {
    /// Starts a master from `config`, with the transport `config.transport`
    /// names in `registry`. Logs "The brine master is starting up".
    ///
    /// # Errors
    /// [`MasterError::PortInUse`] when `publish_port` or `ret_port` is
    /// taken (exit code 4); [`MasterError::Directory`] /
    /// [`MasterError::KeyFile`] for an unusable environment;
    /// [`MasterError::UnknownTransport`], [`MasterError::JobCache`],
    /// [`MasterError::Bind`], [`MasterError::Crypto`].
    pub async fn start(
        config: MasterConfig,
        registry: &Registry,
    ) -> Result<MasterHandle, MasterError> {
        info!("The brine master is starting up");
        let transport = registry.get(&config.transport)?;
        let prepared = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || prepare_environment(&config))
                .await
                .map_err(|e| MasterError::Crypto(e.to_string()))??
        };
        let (master_key, root_key, job_cache) = prepared;

        let mut settings = Settings::default();
        for (key, value) in &config.transport_settings {
            settings.set(key.clone(), value.clone());
        }
        let mut pub_opts =
            ServerOptions::new(SocketAddr::new(config.interface, config.publish_port));
        pub_opts.settings = settings.clone();
        // a backend that always encrypts gets a certificate made in pki_dir
        let tls = transport
            .capabilities()
            .tls_always
            .then(|| TlsOptions::in_pki_dir(&config.pki_dir));
        pub_opts.tls = tls.clone();
        let publisher: Arc<dyn PublishServer> = Arc::from(
            transport
                .bind_publisher(pub_opts)
                .await
                .map_err(|e| bind_error(e, "publisher", config.publish_port))?,
        );
        let publish_addr = publisher.local_addr();

        let bus: Arc<dyn EventBus> = Arc::from(
            transport
                .bind_event_bus(EventBusOptions::new(&config.sock_dir, "master"))
                .await
                .map_err(|source| MasterError::Bind {
                    what: "event bus",
                    source,
                })?,
        );
        let aes = Crypticle::generate()
            .map_err(|e| MasterError::Crypto(e.to_string()))?
            .with_serialization(config.serial);
        let shared = Arc::new_cyclic(|me| {
            Shared::new(
                SharedParts {
                    config: config.clone(),
                    master_key,
                    aes,
                    root_key,
                    job_cache,
                    events: Events::new(Arc::clone(&bus)),
                    publisher: Arc::clone(&publisher),
                    publish_port: publish_addr.port(),
                },
                me.clone(),
            )
        });

        let mut req_opts = ServerOptions::new(SocketAddr::new(config.interface, config.ret_port));
        req_opts.settings = settings.clone();
        req_opts.tls = tls;
        let handler = Arc::new(Handler::new(Arc::clone(&shared)));
        let requests = match transport.bind_requests(req_opts, handler).await {
            Ok(server) => server,
            Err(err) => {
                let _ = publisher.close().await;
                let _ = bus.close().await;
                return Err(bind_error(err, "request server", config.ret_port));
            }
        };
        let ret_addr = requests.local_addr();

        let mut supervisor = Supervisor::new();
        let for_maintenance = Arc::clone(&shared);
        supervisor.spawn(
            "maintenance",
            component(move || crate::maintenance::run(Arc::clone(&for_maintenance))),
        );
        let netapi = match config.rest.clone() {
            None => None,
            Some(rest) => {
                let parts = crate::netapi::Parts {
                    config: config.clone(),
                    rest,
                    shared: Arc::clone(&shared),
                    bus: Arc::clone(&bus),
                    transport: Arc::clone(&transport),
                    ret_addr,
                    settings,
                };
                match crate::netapi::start(parts).await {
                    Ok(handle) => Some(handle),
                    Err(err) => {
                        supervisor.shutdown().await;
                        let _ = requests.close().await;
                        let _ = publisher.close().await;
                        let _ = bus.close().await;
                        return Err(err.into());
                    }
                }
            }
        };
        info!(
            transport = transport.name(),
            publish = %publish_addr,
            ret = %ret_addr,
            "master ready"
        );
        Ok(MasterHandle {
            shared,
            requests,
            bus,
            supervisor,
            publish_addr,
            ret_addr,
            netapi,
        })
    }
}

impl MasterHandle {
    /// Where the publisher listens (the actual port when bound to 0).
    pub fn publish_addr(&self) -> SocketAddr {
        self.publish_addr
    }

    /// Where the request server listens.
    pub fn ret_addr(&self) -> SocketAddr {
        self.ret_addr
    }

    /// Where the REST API listens, when the config enables it.
    pub fn netapi_addr(&self) -> Option<SocketAddr> {
        self.netapi.as_ref().map(NetapiHandle::local_addr)
    }

    /// The in-process side of the event bus.
    pub fn event_bus(&self) -> Arc<dyn EventBus> {
        Arc::clone(&self.bus)
    }

    /// The config the master runs with.
    pub fn config(&self) -> &MasterConfig {
        &self.shared.config
    }

    /// Rotates the AES key now, as Maintenance does after a key deletion.
    pub fn rotate_aes_key(&self) {
        crate::maintenance::rotate_aes(&self.shared);
    }

    /// Stops the components, closes the channels and the event bus.
    pub async fn shutdown(mut self) {
        info!("the brine master is shutting down");
        if let Some(netapi) = self.netapi.take() {
            netapi.shutdown().await;
        }
        self.supervisor.shutdown().await;
        if let Err(err) = self.requests.close().await {
            warn!(error = %err, "closing the request server failed");
        }
        if let Err(err) = self.shared.publisher.close().await {
            warn!(error = %err, "closing the publisher failed");
        }
        if let Err(err) = self.bus.close().await {
            warn!(error = %err, "closing the event bus failed");
        }
    }
}

fn bind_error(source: TransportError, what: &'static str, port: u16) -> MasterError {
    if source.is_addr_in_use() {
        MasterError::PortInUse { port }
    } else {
        MasterError::Bind { what, source }
    }
}

type Prepared = (brine_protocol::PrivateKey, String, Arc<dyn JobCache>);

/// Directories, key permissions, keys, the root key, the job cache.
fn prepare_environment(config: &MasterConfig) -> Result<Prepared, MasterError> {
    for dir in [
        &config.pki_dir,
        &config.cachedir,
        &config.sock_dir,
        &sessions_dir(&config.cachedir),
        &grains_dir(&config.cachedir),
    ] {
        usable_dir(dir)?;
    }
    let pki = MasterPki::new(&config.pki_dir);
    pki.ensure_layout().map_err(|e| MasterError::Directory {
        path: config.pki_dir.clone(),
        reason: e.to_string(),
    })?;
    let private = pki.private_key_path();
    check_key_mode(&private, config.permissive_pki_access)?;
    let pair = pki
        .load_or_generate_with_bits(config.keysize)
        .map_err(|e| MasterError::KeyFile {
            path: private.clone(),
            reason: e.to_string(),
        })?;
    let root_key = Crypticle::generate_key_string()
        .map_err(|e| MasterError::Crypto(e.to_string()))?
        .replace(['+', '/', '='], "");
    let root_path = config.cachedir.join(ROOT_KEY_FILE);
    write_atomic(&root_path, root_key.as_bytes(), 0o600).map_err(|e| MasterError::KeyFile {
        path: root_path,
        reason: e.to_string(),
    })?;
    if let Err(err) = clear_aes_rotation_request(&config.cachedir) {
        warn!(error = %err, "could not clear a stale AES rotation request");
    }
    let cache = SqliteJobCache::open(&config.cachedir).map_err(MasterError::JobCache)?;
    Ok((pair.private, root_key, Arc::new(cache)))
}

fn usable_dir(dir: &Path) -> Result<(), MasterError> {
    ensure_dir(dir).map_err(|e| MasterError::Directory {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    let probe = dir.join(".brine-write-test");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| MasterError::Directory {
            path: dir.to_owned(),
            reason: format!("not writable: {e}"),
        })
}

#[cfg(unix)]
fn check_key_mode(path: &Path, permissive: bool) -> Result<(), MasterError> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 && !permissive {
        return Err(MasterError::KeyFile {
            path: path.to_owned(),
            reason: format!("mode {mode:o} lets others read the private key; chmod 600 it"),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_key_mode(_: &Path, _: bool) -> Result<(), MasterError> {
    Ok(())
}
