//! A master and minions in one process, on loopback, over a named
//! transport: what the end-to-end tests start.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)] // shared test helpers outside #[test] fns

mod tap;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use brine_master::client::{CmdResult, JobSpec, LocalClient};
use brine_master::{BuiltinTransports, Master, MasterHandle};
use brine_minion::Modules;
use brine_minion::daemon::{Minion, MinionHandle, MinionState};
use brine_protocol::Value;
use brine_protocol::config::{MasterConfig, MinionConfig};
use brine_transport_api::{Registry, Settings};

pub use tap::Tap;

/// How long a test waits for anything that should happen.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// A master config rooted in `dir`, on loopback ports chosen by the OS.
pub fn master_config(dir: &Path, transport: &str) -> MasterConfig {
    let mut config = MasterConfig::default();
    config.id = "e2e_master".into();
    config.interface = IpAddr::V4(Ipv4Addr::LOCALHOST);
    config.publish_port = 0;
    config.ret_port = 0;
    config.transport = transport.into();
    config.pki_dir = dir.join("master/pki");
    config.cachedir = dir.join("master/cache");
    config.sock_dir = dir.join("master/sock");
    config.keysize = 1024;
    config.auto_accept = true;
    config.loop_interval = Duration::from_millis(200);
    config.timeout = Duration::from_secs(5);
    config.gather_job_timeout = Duration::from_secs(3);
    config
}

/// A minion config for `id` under `dir`, pointed at `master`.
pub fn minion_config(dir: &Path, id: &str, master: &MasterHandle) -> MinionConfig {
    minion_config_in(&dir.join(id), id, master)
}

/// A minion config with its files in `root` (two minions may claim one id).
pub fn minion_config_in(root: &Path, id: &str, master: &MasterHandle) -> MinionConfig {
    let mut config = MinionConfig::default();
    config.id = Some(id.into());
    config.master = vec!["127.0.0.1".into()];
    config.master_port = master.ret_addr().port();
    config.transport = master.config().transport.clone();
    config.pki_dir = root.join("pki");
    config.cachedir = root.join("cache");
    config.sock_dir = root.join("sock");
    config.keysize = 1024;
    config.acceptance_wait_time = Duration::from_millis(200);
    config.acceptance_wait_time_max = Duration::from_millis(400);
    config.random_reauth_delay = Duration::ZERO;
    config.return_retry_timer = Duration::from_millis(200);
    config.return_retry_timer_max = Duration::from_millis(400);
    config
}

/// Grains `role: <role>` in a minion config.
pub fn with_role(mut config: MinionConfig, role: &str) -> MinionConfig {
    config.grains = Value::Map(vec![(Value::from("role"), Value::from(role))]);
    config
}

pub async fn start_master(config: &MasterConfig) -> MasterHandle {
    start_master_with(config, &Registry::builtin()).await
}

pub async fn start_master_with(config: &MasterConfig, registry: &Registry) -> MasterHandle {
    Master::start(config.clone(), registry)
        .await
        .expect("master starts")
}

pub async fn start_minion(config: MinionConfig) -> MinionHandle {
    Minion::start(config, &Registry::builtin(), Modules::builtin())
        .await
        .expect("minion starts")
}

/// Starts a minion and waits until it runs jobs.
pub async fn running_minion(config: MinionConfig) -> MinionHandle {
    let minion = start_minion(config).await;
    let state = tokio::time::timeout(PATIENCE, minion.wait_authenticated())
        .await
        .expect("minion authenticates in time");
    assert_eq!(state, MinionState::Running, "minion {}", minion.id());
    minion
}

/// Waits until `minion` reaches a state `done` accepts.
pub async fn wait_state(minion: &MinionHandle, done: impl Fn(&MinionState) -> bool) -> MinionState {
    tokio::time::timeout(PATIENCE, minion.wait_for(done))
        .await
        .expect("minion state in time")
}

pub async fn client(master: &MasterHandle) -> LocalClient {
    LocalClient::from_config(master.config(), &Registry::builtin())
        .await
        .expect("local client connects")
}

/// A LocalClient to a master whose config has port 0 (ask the handle).
pub async fn client_of(master: &MasterHandle) -> LocalClient {
    let config = master.config();
    LocalClient::connect(
        Registry::builtin().get(&config.transport).unwrap(),
        master.ret_addr(),
        &config.sock_dir,
        &config.cachedir,
        Settings::default(),
    )
    .await
    .expect("local client connects")
    .with_timeout(config.timeout)
    .with_gather_job_timeout(config.gather_job_timeout)
}

/// Runs `fun` on `tgt` (of `tgt_type`) and waits for the returns.
pub async fn cmd(
    client: &LocalClient,
    tgt: &str,
    tgt_type: &str,
    fun: &str,
    arg: Vec<Value>,
) -> CmdResult {
    let job = JobSpec::new(tgt, fun).tgt_type(tgt_type).args(arg);
    client.cmd(&job, None).await.expect("job published")
}

/// The ids that returned, sorted.
pub fn returned(result: &CmdResult) -> Vec<&str> {
    result.returns.keys().map(String::as_str).collect()
}

/// Polls `check` every 50 ms until it returns `Some`, for at most [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The per-test temp dir.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

pub fn path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().to_path_buf()
}

/// A registry whose `name` transport is the built-in one behind a [`Tap`].
pub fn tapped_registry(name: &str) -> (Registry, Arc<Tap>) {
    let inner = Registry::builtin().get(name).unwrap();
    let tap = Tap::new(inner);
    let mut registry = Registry::new();
    registry
        .register(Arc::clone(&tap) as Arc<dyn brine_transport_api::Transport>)
        .unwrap();
    (registry, tap)
}
