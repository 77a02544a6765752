//! Shared helpers for the master's integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)] // shared test helpers outside #[test] fns

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brine_master::client::LocalClient;
use brine_master::{BuiltinTransports, Master, MasterHandle};
use brine_protocol::auth::{AuthOutcome, AuthRequest, Credentials, handle_signin_response};
use brine_protocol::config::MasterConfig;
use brine_protocol::crypto::gen_nonce;
use brine_protocol::envelope::{EnvelopeError, Tok, open_aes_reply, open_clear_reply, package_aes};
use brine_protocol::{Crypticle, PrivateKey, Value};
use brine_transport_api::{ClientOptions, Registry, RequestClient, Settings, Transport};
use bytes::Bytes;

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// A master config rooted in `dir`, on loopback port 0.
pub fn master_config(dir: &Path, transport: &str) -> MasterConfig {
    let mut config = MasterConfig::default();
    config.id = "test_master".into();
    config.interface = IpAddr::V4(Ipv4Addr::LOCALHOST);
    config.publish_port = 0;
    config.ret_port = 0;
    config.transport = transport.into();
    config.pki_dir = dir.join("pki");
    config.cachedir = dir.join("cache");
    config.sock_dir = dir.join("sock");
    config.keysize = 1024;
    config.loop_interval = Duration::from_millis(200);
    config.timeout = Duration::from_secs(2);
    config.gather_job_timeout = Duration::from_secs(2);
    config
}

pub async fn start(config: &MasterConfig) -> MasterHandle {
    Master::start(config.clone(), &Registry::builtin())
        .await
        .expect("master starts")
}

pub fn transport(name: &str) -> Arc<dyn Transport> {
    Registry::builtin().get(name).unwrap()
}

pub async fn local_client(handle: &MasterHandle) -> LocalClient {
    let config = handle.config();
    LocalClient::connect(
        transport(&config.transport),
        handle.ret_addr(),
        &config.sock_dir,
        &config.cachedir,
        Settings::default(),
    )
    .await
    .expect("local client connects")
    .with_timeout(Duration::from_secs(2))
    .with_gather_job_timeout(Duration::from_secs(2))
}

/// A minion built from the protocol crate alone.
pub struct RawMinion {
    pub id: String,
    pub key: PrivateKey,
    pub tok: Tok,
    pub client: Box<dyn RequestClient>,
    pub creds: Option<Credentials>,
}

impl RawMinion {
    pub async fn connect(transport: &Arc<dyn Transport>, addr: SocketAddr, id: &str) -> RawMinion {
        let key = PrivateKey::generate(1024).unwrap();
        Self::with_key(transport, addr, id, key).await
    }

    pub async fn with_key(
        transport: &Arc<dyn Transport>,
        addr: SocketAddr,
        id: &str,
        key: PrivateKey,
    ) -> RawMinion {
        let client = transport
            .connect_requests(ClientOptions::new(addr, id))
            .await
            .unwrap();
        RawMinion {
            id: id.into(),
            tok: Tok::new(&key).unwrap(),
            key,
            client,
            creds: None,
        }
    }

    pub async fn raw(&self, frame: impl Into<Bytes>) -> Value {
        let reply = self.client.request(frame.into(), TIMEOUT).await.unwrap();
        open_clear_reply(&reply).unwrap()
    }

    /// Authenticates: "accepted", "pending", "rejected" or "full".
    pub async fn auth(&mut self) -> &'static str {
        let nonce = gen_nonce().unwrap();
        let request = AuthRequest::new(&self.id, &self.key, None, &nonce).unwrap();
        let reply = self.raw(request.to_frame().unwrap()).await;
        match handle_signin_response(&reply, &request, &self.key).unwrap() {
            AuthOutcome::Accepted(creds) => {
                self.creds = Some(creds);
                "accepted"
            }
            AuthOutcome::Pending => "pending",
            AuthOutcome::Rejected => "rejected",
            AuthOutcome::Full => "full",
        }
    }

    pub fn session(&self) -> Crypticle {
        Crypticle::new(&self.creds.as_ref().expect("authenticated").session).unwrap()
    }

    pub fn aes(&self) -> Crypticle {
        Crypticle::new(&self.creds.as_ref().expect("authenticated").aes).unwrap()
    }

    /// An aes request frame and its nonce.
    pub fn aes_frame(&self, load: Value) -> (Bytes, String) {
        package_aes(load, &self.id, &self.session(), &self.tok, unix_now()).unwrap()
    }

    pub async fn request(&self, load: Value) -> Result<Value, EnvelopeError> {
        let (frame, nonce) = self.aes_frame(load);
        let reply = self.client.request(frame, TIMEOUT).await.unwrap();
        open_aes_reply(&reply, &self.session(), &nonce)
    }

    pub fn return_load(&self, jid: &str, ret: Value) -> Value {
        [
            ("cmd", Value::from("_return")),
            ("id", Value::from(self.id.as_str())),
            ("success", Value::from(true)),
            ("return", ret),
            ("retcode", Value::from(0)),
            ("jid", Value::from(jid)),
            ("fun", Value::from("test.ping")),
            ("fun_args", Value::Array(vec![])),
        ]
        .into_iter()
        .collect()
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn map(entries: &[(&str, Value)]) -> Value {
    entries.iter().map(|(k, v)| (*k, v.clone())).collect()
}
