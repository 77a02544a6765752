//! The minion's config (`<config_dir>/minion`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fields::{BACKEND_KEYS, Fields};
use super::master::{adjust_log_file, hash_type, invalid, short_sock_dir};
use super::paths::{self, defaults};
use super::raw::{Missing, RawConfig, Role};
use super::types::LogLevel;
use super::{ConfigError, Loaded};
use crate::{Serialization, Value};

/// The minion's options, with Salt's key names and defaults and Brine's
/// paths. Field docs give the key's default.
///
/// `root_dir` has already been applied to `pki_dir`, `cachedir`,
/// `sock_dir`, `pidfile` and `log_file` (unless it is a URI).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MinionConfig {
    /// The directory the config was read from (`-c`, default `/etc/brine`).
    pub config_dir: PathBuf,
    /// The main file (`<config_dir>/minion`), whether or not it existed.
    pub conf_file: PathBuf,
    /// `root_dir` (`/`), made absolute.
    pub root_dir: PathBuf,
    /// `id` (unset: the minion derives it from the host name; see
    /// [`hostname`](super::hostname)). Numbers are accepted as text.
    pub id: Option<String>,
    /// `master` (`salt`): one address, or several.
    pub master: Vec<String>,
    /// `master_port` (4506): the master's request port.
    pub master_port: u16,
    /// `publish_port` (unset: the master announces it at auth).
    pub publish_port: Option<u16>,
    /// `transport` (`zeromq`), lowercased.
    pub transport: String,
    /// `serial` (`msgpack`): must match the master's; `bincode` is
    /// announced at `_auth`.
    pub serial: Serialization,
    /// `user` (`root`).
    pub user: String,
    /// `pki_dir` (`/etc/brine/pki/minion`).
    pub pki_dir: PathBuf,
    /// `cachedir` (`/var/cache/brine/minion`): the return spool lives here.
    pub cachedir: PathBuf,
    /// `sock_dir` (`/var/run/brine/minion`); shortened as the master's.
    pub sock_dir: PathBuf,
    /// `pidfile` (`/var/run/brine-minion.pid`).
    pub pidfile: PathBuf,
    /// `grains` (empty): static grains.
    pub grains: Value,
    /// `acceptance_wait_time` (10 s): retry period while the key is pending.
    pub acceptance_wait_time: Duration,
    /// `acceptance_wait_time_max` (0 = do not grow the wait).
    pub acceptance_wait_time_max: Duration,
    /// `random_reauth_delay` (10 s): upper bound of the random delay before
    /// re-authenticating after a key rotation.
    pub random_reauth_delay: Duration,
    /// `random_startup_delay` (0 s).
    pub random_startup_delay: Duration,
    /// `auth_timeout` (5 s) of one `_auth` request.
    pub auth_timeout: Duration,
    /// `auth_tries` (7).
    pub auth_tries: u32,
    /// `auth_safemode` (false).
    pub auth_safemode: bool,
    /// `rejected_retry` (false): keep retrying when the key is rejected.
    pub rejected_retry: bool,
    /// `return_retry_tries` (3).
    pub return_retry_tries: u32,
    /// `sign_pub_messages` (**true** in Brine; Salt's minion default is
    /// false): verify the master's signature on every publish before
    /// decrypting it, and drop unsigned or badly signed publishes.
    pub sign_pub_messages: bool,
    /// `minion_jid_queue_hwm` (100): how many recent jids the minion
    /// remembers to ignore a repeated publish.
    pub minion_jid_queue_hwm: usize,
    /// `return_retry_timer` (5 s).
    pub return_retry_timer: Duration,
    /// `return_retry_timer_max` (10 s).
    pub return_retry_timer_max: Duration,
    /// `request_channel_timeout` (60 s).
    pub request_channel_timeout: Duration,
    /// `request_channel_tries` (3).
    pub request_channel_tries: u32,
    /// `zmq_filtering` (false); also among [`Self::transport_settings`].
    pub zmq_filtering: bool,
    /// `recon_default` (1000 ms): first reconnect delay.
    pub recon_default: Duration,
    /// `recon_max` (10000 ms): longest reconnect delay.
    pub recon_max: Duration,
    /// `recon_randomize` (true).
    pub recon_randomize: bool,
    /// `retry_dns` (30 s).
    pub retry_dns: Duration,
    /// `master_type` (`str`).
    pub master_type: String,
    /// `ping_interval` (0 minutes = off).
    pub ping_interval: Duration,
    /// `master_alive_interval` (0 s = off).
    pub master_alive_interval: Duration,
    /// `loop_interval` (1 s).
    pub loop_interval: Duration,
    /// `grains_refresh_every` (0 minutes = off).
    pub grains_refresh_every: Duration,
    /// `multiprocessing` (true): in Brine, each job in its own task either way.
    pub multiprocessing: bool,
    /// `open_mode` (false).
    pub open_mode: bool,
    /// `ipv6` (unset).
    pub ipv6: Option<bool>,
    /// `keysize` (2048).
    pub keysize: usize,
    /// `hash_type` (`sha256`), lowercased.
    pub hash_type: String,
    /// `log_level` (`warning`).
    pub log_level: LogLevel,
    /// `log_level_logfile` (unset).
    pub log_level_logfile: Option<LogLevel>,
    /// `log_file` (`/var/log/brine/minion`); may be a URI.
    pub log_file: PathBuf,
    /// Backend options (`zmq_*`, `tcp_*`, `quic_*`, `<transport>_*`,
    /// `pub_hwm`, `ipc_write_buffer`) as strings, sorted by key.
    pub transport_settings: Vec<(String, String)>,
}

impl Default for MinionConfig {
    /// Salt's defaults with Brine's paths.
    fn default() -> Self {
        MinionConfig {
            config_dir: PathBuf::from(paths::DEFAULT_CONFIG_DIR),
            conf_file: Path::new(paths::DEFAULT_CONFIG_DIR).join("minion"),
            root_dir: PathBuf::from("/"),
            id: None,
            master: vec!["salt".to_owned()],
            master_port: 4506,
            publish_port: None,
            transport: "zeromq".to_owned(),
            serial: Serialization::Msgpack,
            user: "root".to_owned(),
            pki_dir: PathBuf::from(defaults::MINION_PKI_DIR),
            cachedir: PathBuf::from(defaults::MINION_CACHEDIR),
            sock_dir: PathBuf::from(defaults::MINION_SOCK_DIR),
            pidfile: PathBuf::from(defaults::MINION_PIDFILE),
            grains: Value::map(),
            acceptance_wait_time: Duration::from_secs(10),
            acceptance_wait_time_max: Duration::ZERO,
            random_reauth_delay: Duration::from_secs(10),
            random_startup_delay: Duration::ZERO,
            auth_timeout: Duration::from_secs(5),
            auth_tries: 7,
            auth_safemode: false,
            rejected_retry: false,
            return_retry_tries: 3,
            sign_pub_messages: true,
            minion_jid_queue_hwm: 100,
            return_retry_timer: Duration::from_secs(5),
            return_retry_timer_max: Duration::from_secs(10),
            request_channel_timeout: Duration::from_secs(60),
            request_channel_tries: 3,
            zmq_filtering: false,
            recon_default: Duration::from_millis(1000),
            recon_max: Duration::from_millis(10_000),
            recon_randomize: true,
            retry_dns: Duration::from_secs(30),
            master_type: "str".to_owned(),
            ping_interval: Duration::ZERO,
            master_alive_interval: Duration::ZERO,
            loop_interval: Duration::from_secs(1),
            grains_refresh_every: Duration::ZERO,
            multiprocessing: true,
            open_mode: false,
            ipv6: None,
            keysize: 2048,
            hash_type: "sha256".to_owned(),
            log_level: LogLevel::Warning,
            log_level_logfile: None,
            log_file: PathBuf::from(defaults::MINION_LOG_FILE),
            transport_settings: Vec::new(),
        }
    }
}

impl MinionConfig {
    /// Loads `<config_dir>/minion` and its includes, then types it.
    ///
    /// # Errors
    /// As [`RawConfig::load`] and [`MinionConfig::from_raw`].
    pub fn load(config_dir: &Path, missing: Missing) -> Result<Loaded<MinionConfig>, ConfigError> {
        let raw = RawConfig::load(config_dir, Role::Minion, missing)?;
        MinionConfig::from_raw(&raw)
    }

    /// Types merged options (see [`MasterConfig::from_raw`](super::MasterConfig::from_raw)).
    ///
    /// # Errors
    /// [`ConfigError::WrongType`] or [`ConfigError::InvalidValue`] naming
    /// the key and the file it came from.
    pub fn from_raw(raw: &RawConfig) -> Result<Loaded<MinionConfig>, ConfigError> {
        MinionConfig::read(raw).map(|(loaded, _)| loaded)
    }

    /// Every top-level key the loader reads for the minion (sorted), plus
    /// the unprefixed backend keys (`pub_hwm`, `ipc_write_buffer`); any
    /// other key is an unknown-key warning unless it starts with a backend
    /// prefix (`zmq_`, `tcp_`, `quic_`, `<transport>_`). Taken from the
    /// loader itself (the keys it consults while typing an empty config),
    /// so it cannot drift from [`MinionConfig::from_raw`]; `docs/config.md`
    /// is checked against it.
    pub fn known_keys() -> Vec<String> {
        let mut keys = MinionConfig::read(&RawConfig::default())
            .map(|(_, keys)| keys)
            .unwrap_or_default();
        keys.extend(BACKEND_KEYS.iter().map(|k| (*k).to_owned()));
        keys.sort();
        keys.dedup();
        keys
    }

    /// [`MinionConfig::from_raw`], also returning every key consulted.
    fn read(raw: &RawConfig) -> Result<(Loaded<MinionConfig>, Vec<String>), ConfigError> {
        let d = MinionConfig::default();
        let mut f = Fields::new(raw);
        for key in ["conf_file", "default_include", "include"] {
            f.known(key);
        }
        let root_dir = paths::absolute_root(&f.path("root_dir", "/")?);
        let transport = f.string("transport", &d.transport)?.to_ascii_lowercase();
        let minutes = Duration::from_secs(60);
        let mut c = MinionConfig {
            config_dir: raw.config_dir().to_owned(),
            conf_file: raw.main_file().to_owned(),
            id: f.opt_string("id")?.filter(|s| !s.is_empty()),
            master: f.string_list("master", &["salt"])?,
            master_port: f.uint("master_port", d.master_port)?,
            publish_port: f.opt_uint("publish_port")?,
            serial: f.parsed("serial", d.serial)?,
            user: f.string("user", &d.user)?,
            pki_dir: f.path("pki_dir", defaults::MINION_PKI_DIR)?,
            cachedir: f.path("cachedir", defaults::MINION_CACHEDIR)?,
            sock_dir: f.path("sock_dir", defaults::MINION_SOCK_DIR)?,
            pidfile: f.path("pidfile", defaults::MINION_PIDFILE)?,
            grains: f.map("grains")?,
            acceptance_wait_time: f.seconds("acceptance_wait_time", 10)?,
            acceptance_wait_time_max: f.seconds("acceptance_wait_time_max", 0)?,
            random_reauth_delay: f.seconds("random_reauth_delay", 10)?,
            random_startup_delay: f.seconds("random_startup_delay", 0)?,
            auth_timeout: f.seconds("auth_timeout", 5)?,
            auth_tries: f.uint("auth_tries", d.auth_tries)?,
            auth_safemode: f.bool("auth_safemode", d.auth_safemode)?,
            rejected_retry: f.bool("rejected_retry", d.rejected_retry)?,
            return_retry_tries: f.uint("return_retry_tries", d.return_retry_tries)?,
            sign_pub_messages: f.bool("sign_pub_messages", d.sign_pub_messages)?,
            minion_jid_queue_hwm: f.uint("minion_jid_queue_hwm", d.minion_jid_queue_hwm)?,
            return_retry_timer: f.seconds("return_retry_timer", 5)?,
            return_retry_timer_max: f.seconds("return_retry_timer_max", 10)?,
            request_channel_timeout: f.seconds("request_channel_timeout", 60)?,
            request_channel_tries: f.uint("request_channel_tries", d.request_channel_tries)?,
            zmq_filtering: f.bool("zmq_filtering", d.zmq_filtering)?,
            recon_default: f.millis("recon_default", 1000)?,
            recon_max: f.millis("recon_max", 10_000)?,
            recon_randomize: f.bool("recon_randomize", d.recon_randomize)?,
            retry_dns: f.seconds("retry_dns", 30)?,
            master_type: f.string("master_type", &d.master_type)?,
            ping_interval: f
                .opt_duration("ping_interval", minutes)?
                .unwrap_or(d.ping_interval),
            master_alive_interval: f.seconds("master_alive_interval", 0)?,
            loop_interval: f.seconds("loop_interval", 1)?,
            grains_refresh_every: f
                .opt_duration("grains_refresh_every", minutes)?
                .unwrap_or(d.grains_refresh_every),
            multiprocessing: f.bool("multiprocessing", d.multiprocessing)?,
            open_mode: f.bool("open_mode", d.open_mode)?,
            ipv6: f.opt_bool("ipv6")?,
            keysize: f.uint("keysize", d.keysize)?,
            hash_type: hash_type(&mut f, &d.hash_type)?,
            log_level: f.parsed("log_level", d.log_level)?,
            log_level_logfile: match f.opt_string("log_level_logfile")? {
                None => None,
                Some(_) => Some(f.parsed("log_level_logfile", d.log_level)?),
            },
            log_file: f.path("log_file", defaults::MINION_LOG_FILE)?,
            root_dir,
            transport,
            transport_settings: Vec::new(),
        };
        if c.master.is_empty() || c.master.iter().any(String::is_empty) {
            return Err(invalid(&f, "master", "must name at least one master"));
        }
        if c.keysize == 0 {
            return Err(invalid(&f, "keysize", "must be positive"));
        }
        if c.transport.is_empty() {
            return Err(invalid(&f, "transport", "must not be empty"));
        }
        if let Some(log_dir) = f.opt_path("log_dir")? {
            c.log_file = adjust_log_file(&log_dir, raw.get("log_file").is_some(), &c.log_file);
        }
        c.sock_dir = short_sock_dir(&c.sock_dir, &c.cachedir);
        let root = c.root_dir.clone();
        for path in [
            &mut c.pki_dir,
            &mut c.cachedir,
            &mut c.sock_dir,
            &mut c.pidfile,
        ] {
            *path = paths::prepend_root_dir(&root, path);
        }
        if !paths::is_uri(&c.log_file) {
            c.log_file = paths::prepend_root_dir(&root, &c.log_file);
        }
        let mut warnings = raw.warnings().to_vec();
        let keys = f.used_keys();
        c.transport_settings = f.finish(&c.transport, &mut warnings);
        Ok((
            Loaded {
                config: c,
                warnings,
            },
            keys,
        ))
    }
}
