//! The REST API's state: the master's config and shared state, a
//! LocalClient connected to this master, the key store, the logins.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use brine_protocol::Value;
use brine_protocol::config::{MasterConfig, RestApiConfig};
use brine_protocol::target::{Nodegroups, Target};
use brine_transport_api::{EventBus, Settings, Transport};
use tokio::sync::watch;
use tracing::warn;

use crate::client::{ClientError, LocalClient};
use crate::keys::KeyStore;
use crate::runners::Runner;
use crate::state::Shared;

use super::auth::{Login, Logins, TokenData, eauth, perms};
use super::respond::ApiError;

/// Counters `/stats` reports.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) requests: AtomicU64,
    pub(crate) event_clients: AtomicU64,
    pub(crate) event_clients_dropped: AtomicU64,
}

/// How to reach the master's request channel for a fresh LocalClient
/// (each runner call gets its own, as `brine-run` does).
#[derive(Debug)]
pub(crate) struct Connector {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) ret_addr: SocketAddr,
    pub(crate) settings: Settings,
}

/// Everything a request handler needs.
#[derive(Debug)]
pub(crate) struct Api {
    pub(crate) config: MasterConfig,
    pub(crate) rest: RestApiConfig,
    pub(crate) shared: Arc<Shared>,
    pub(crate) bus: Arc<dyn EventBus>,
    pub(crate) client: Arc<LocalClient>,
    pub(crate) connector: Connector,
    pub(crate) runner: Runner,
    pub(crate) keys: KeyStore,
    pub(crate) logins: Logins,
    pub(crate) stats: Stats,
    pub(crate) stop: watch::Receiver<bool>,
}

impl Api {
    /// A new LocalClient to this master with its timeouts.
    pub(crate) async fn new_client(&self) -> Result<LocalClient, ClientError> {
        Ok(LocalClient::connect(
            Arc::clone(&self.connector.transport),
            self.connector.ret_addr,
            &self.config.sock_dir,
            &self.config.cachedir,
            self.connector.settings.clone(),
        )
        .await?
        .with_timeout(self.config.timeout)
        .with_gather_job_timeout(self.config.gather_job_timeout))
    }

    /// Checks `username`/`password` with backend `eauth` (off the async
    /// threads) and mints a login. Salt's `mk_token`.
    ///
    /// # Errors
    /// [`ApiError::Unauthorized`] for bad credentials or an eauth backend
    /// not in `external_auth`.
    pub(crate) async fn login(
        self: &Arc<Self>,
        creds: &Value,
        session: bool,
    ) -> Result<Login, ApiError> {
        let field = |key: &str| creds.get(key).and_then(Value::as_str).map(str::to_owned);
        let refused = || {
            ApiError::Unauthorized("Could not authenticate using provided credentials".to_owned())
        };
        let (Some(username), Some(password), Some(backend)) =
            (field("username"), field("password"), field("eauth"))
        else {
            return Err(refused());
        };
        let api = Arc::clone(self);
        let user = username.clone();
        let chosen = backend.clone();
        let ok = tokio::task::spawn_blocking(move || {
            eauth::authenticate(&api.config.external_auth, &chosen, &user, &password)
        })
        .await
        .unwrap_or(false);
        if !ok {
            warn!(user = %username, eauth = %backend, "REST API login refused");
            return Err(refused());
        }
        let lifetime = self.config.token_expire;
        let login = if session {
            self.logins.login(&username, &backend, Vec::new(), lifetime)
        } else {
            self.logins
                .token_only(&username, &backend, Vec::new(), lifetime)
                .map(|data| Login {
                    session: String::new(),
                    data,
                })
        };
        login.ok_or_else(|| ApiError::Internal("no randomness for a token".to_owned()))
    }

    /// The login behind a session id.
    ///
    /// # Errors
    /// [`ApiError::Unauthorized`] when missing, unknown or expired.
    pub(crate) fn session(&self, id: Option<&str>) -> Result<Arc<TokenData>, ApiError> {
        let Some(id) = id else {
            return Err(ApiError::Unauthorized(
                "No session: log in first (POST /login)".to_owned(),
            ));
        };
        self.logins.by_session(id).ok_or_else(|| {
            ApiError::Unauthorized("Session expired or invalid: log in again".to_owned())
        })
    }

    /// The permission entries of `token`'s user (Salt's `get_auth_list`);
    /// `None` when its eauth backend is no longer configured.
    pub(crate) fn auth_list(&self, token: &TokenData) -> Option<Vec<Value>> {
        let provider = self.config.external_auth.get(&token.eauth)?;
        Some(perms::fill_auth_list(provider, &token.name, &token.groups))
    }

    /// What `/login` reports as `perms`.
    pub(crate) fn login_perms(&self, token: &TokenData) -> Vec<Value> {
        self.config
            .external_auth
            .get(&token.eauth)
            .map(|provider| perms::login_perms(provider, &token.name, &token.groups))
            .unwrap_or_default()
    }

    /// The accepted minions `tgt` of `tgt_type` reaches, as the master
    /// computes them for a publish. Blocking (lists `pki_dir`).
    pub(crate) fn expand_target(&self, tgt: &Value, tgt_type: &str) -> Option<BTreeSet<String>> {
        let load: Value = [("tgt", tgt.clone()), ("tgt_type", Value::from(tgt_type))]
            .into_iter()
            .collect();
        let nodegroups = Nodegroups::from_value(&self.config.nodegroups).unwrap_or_default();
        let target = Target::from_load(&load)
            .and_then(|t| t.resolve_nodegroups(&nodegroups))
            .ok()?;
        crate::handler::expected_minions(&self.shared, &target, &nodegroups)
            .ok()
            .map(|expected| expected.minions.into_iter().collect())
    }
}
