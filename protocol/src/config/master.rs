//! The master's config (`<config_dir>/master`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fields::{BACKEND_KEYS, Fields, kind};
use super::paths::{self, defaults};
use super::raw::{Missing, RawConfig, Role};
use super::rest::{self, RestApiConfig};
use super::types::{HASH_TYPES, LogLevel, hostname};
use super::{ConfigError, Loaded};
use crate::{Serialization, Value};

/// The master's options, with Salt's key names and defaults and Brine's
/// paths. Field docs give the key's default.
///
/// `root_dir` has already been applied to the path options that Salt
/// re-roots (`pki_dir`, `cachedir`, `sock_dir`, `pidfile`,
/// `autosign_file`, `autoreject_file`, `autosign_grains_dir`, and
/// `log_file`/`key_logfile` unless they are URIs).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MasterConfig {
    /// The directory the config was read from (`-c`, default `/etc/brine`).
    pub config_dir: PathBuf,
    /// The main file (`<config_dir>/master`), whether or not it existed.
    pub conf_file: PathBuf,
    /// `root_dir` (`/`), made absolute.
    pub root_dir: PathBuf,
    /// `id`: the master's id (default: the host name plus `_master`, as
    /// Salt). It is written into the `.dfn` key-rotation drop file.
    pub id: String,
    /// `interface` (`0.0.0.0`): the address both ports bind to.
    pub interface: IpAddr,
    /// `ipv6` (unset): whether to bind dual-stack.
    pub ipv6: Option<bool>,
    /// `publish_port` (4505).
    pub publish_port: u16,
    /// `ret_port` (4506): the request channel.
    pub ret_port: u16,
    /// `transport` (`zeromq`), lowercased.
    pub transport: String,
    /// `worker_threads` (5): request workers.
    pub worker_threads: usize,
    /// `serial` (`msgpack`): how the AES layer is packed; `bincode` between
    /// Brine peers only, and minions must use the same.
    pub serial: Serialization,
    /// `user` (`root`).
    pub user: String,
    /// `pki_dir` (`/etc/brine/pki/master`).
    pub pki_dir: PathBuf,
    /// `cachedir` (`/var/cache/brine/master`): job cache, `.dfn`, tokens.
    pub cachedir: PathBuf,
    /// `sock_dir` (`/var/run/brine/master`): IPC sockets. As in Salt, a
    /// `sock_dir` more than 10 bytes longer than `cachedir` is replaced by
    /// `<cachedir>/.brine-unix` (Unix socket paths are short).
    pub sock_dir: PathBuf,
    /// `pidfile` (`/var/run/brine-master.pid`).
    pub pidfile: PathBuf,
    /// `auto_accept` (false).
    pub auto_accept: bool,
    /// `autosign_file` (unset).
    pub autosign_file: Option<PathBuf>,
    /// `autoreject_file` (unset).
    pub autoreject_file: Option<PathBuf>,
    /// `autosign_grains_dir` (unset).
    pub autosign_grains_dir: Option<PathBuf>,
    /// `autosign_timeout` (120 minutes): life of `minions_autosign/` stubs.
    pub autosign_timeout: Duration,
    /// `permissive_pki_access` (false): accept group-writable autosign files.
    pub permissive_pki_access: bool,
    /// `open_mode` (false): accept every minion and skip key checks.
    pub open_mode: bool,
    /// `max_minions` (0 = no limit).
    pub max_minions: usize,
    /// `keysize` (2048) of keys Brine generates.
    pub keysize: usize,
    /// `hash_type` (`sha256`), lowercased: key fingerprints.
    pub hash_type: String,
    /// `rotate_aes_key` (true): rotate the session key when a minion key is
    /// deleted or rejected.
    pub rotate_aes_key: bool,
    /// `publish_session` (86400 s): rotate the session key this often.
    pub publish_session: Duration,
    /// `minimum_auth_version` (0 = any; Salt 3006.17+ has it, default 3):
    /// refuse requests whose envelope `version` is lower. 3 refuses Salt
    /// 3006.0–3006.11 minions, which speak request protocol version 2.
    pub minimum_auth_version: u8,
    /// `ping_on_rotate` (false).
    pub ping_on_rotate: bool,
    /// `sign_pub_messages` (true).
    pub sign_pub_messages: bool,
    /// `master_sign_pubkey` (false).
    pub master_sign_pubkey: bool,
    /// `keep_jobs` (24 hours; deprecated in Salt by `keep_jobs_seconds`).
    pub keep_jobs: u64,
    /// `keep_jobs_seconds` (86400).
    pub keep_jobs_seconds: u64,
    /// `job_cache` (true).
    pub job_cache: bool,
    /// `minion_data_cache` (true): cache grains of every minion.
    pub minion_data_cache: bool,
    /// `preserve_minion_cache` (false).
    pub preserve_minion_cache: bool,
    /// `presence_events` (false).
    pub presence_events: bool,
    /// `timeout` (5 s): default CLI/LocalClient timeout.
    pub timeout: Duration,
    /// `gather_job_timeout` (10 s): how long to wait for `find_job` answers.
    pub gather_job_timeout: Duration,
    /// `loop_interval` (60 s): the Maintenance period.
    pub loop_interval: Duration,
    /// `nodegroups` (none): a mapping of group name to a compound
    /// expression (string) or a list of its words, checked and normalised
    /// (Salt's list-of-one-key-mappings form is repacked, `null` is empty),
    /// ready for `brine_protocol::target::Nodegroups::from_value`.
    pub nodegroups: Value,
    /// `log_level` (`warning`).
    pub log_level: LogLevel,
    /// `log_level_logfile` (unset: same as `log_level`).
    pub log_level_logfile: Option<LogLevel>,
    /// `log_file` (`/var/log/brine/master`); may be a URI. `log_dir`, if
    /// set, moves it as Salt does.
    pub log_file: PathBuf,
    /// `key_logfile` (`/var/log/brine/key`).
    pub key_logfile: PathBuf,
    /// `zmq_filtering` (false): publish only to targeted minions (also
    /// passed to the transport among [`Self::transport_settings`]).
    pub zmq_filtering: bool,
    /// `token_expire` (43200 s): eauth token lifetime.
    pub token_expire: Duration,
    /// `keep_acl_in_token` (false).
    pub keep_acl_in_token: bool,
    /// `external_auth` (empty), kept raw for the netapi issue.
    pub external_auth: Value,
    /// `publisher_acl` (empty), kept raw.
    pub publisher_acl: Value,
    /// `rest_cherrypy` (unset), kept raw for the netapi issue.
    pub rest_cherrypy: Option<Value>,
    /// `rest_api` (unset): Brine's REST section, kept raw.
    pub rest_api: Option<Value>,
    /// The REST API to serve, typed from `rest_api:` or (when that is not
    /// set) salt-api's `rest_cherrypy:`; `None` when neither is set.
    pub rest: Option<RestApiConfig>,
    /// `netapi_enable_clients` (empty, as Salt ≥ 3006): the lowstate
    /// clients the REST API runs (`local`, `local_async`, `local_batch`,
    /// `runner`, `wheel`, …); any other is refused with 400.
    pub netapi_enable_clients: Vec<String>,
    /// `rest_timeout` (300 s): how long a synchronous runner call through
    /// the REST API may take before it answers 504.
    pub rest_timeout: Duration,
    /// Backend options (`zmq_*`, `tcp_*`, `quic_*`, `<transport>_*`,
    /// `pub_hwm`, `ipc_write_buffer`) as strings, sorted by key.
    pub transport_settings: Vec<(String, String)>,
}

impl Default for MasterConfig {
    /// Salt's defaults with Brine's paths (the id from the host name).
    fn default() -> Self {
        MasterConfig {
            config_dir: PathBuf::from(paths::DEFAULT_CONFIG_DIR),
            conf_file: Path::new(paths::DEFAULT_CONFIG_DIR).join("master"),
            root_dir: PathBuf::from("/"),
            id: default_master_id(),
            interface: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ipv6: None,
            publish_port: 4505,
            ret_port: 4506,
            transport: "zeromq".to_owned(),
            worker_threads: 5,
            serial: Serialization::Msgpack,
            user: "root".to_owned(),
            pki_dir: PathBuf::from(defaults::MASTER_PKI_DIR),
            cachedir: PathBuf::from(defaults::MASTER_CACHEDIR),
            sock_dir: PathBuf::from(defaults::MASTER_SOCK_DIR),
            pidfile: PathBuf::from(defaults::MASTER_PIDFILE),
            auto_accept: false,
            autosign_file: None,
            autoreject_file: None,
            autosign_grains_dir: None,
            autosign_timeout: Duration::from_secs(120 * 60),
            permissive_pki_access: false,
            open_mode: false,
            max_minions: 0,
            keysize: 2048,
            hash_type: "sha256".to_owned(),
            rotate_aes_key: true,
            publish_session: Duration::from_secs(86_400),
            minimum_auth_version: 0,
            ping_on_rotate: false,
            sign_pub_messages: true,
            master_sign_pubkey: false,
            keep_jobs: 24,
            keep_jobs_seconds: 86_400,
            job_cache: true,
            minion_data_cache: true,
            preserve_minion_cache: false,
            presence_events: false,
            timeout: Duration::from_secs(5),
            gather_job_timeout: Duration::from_secs(10),
            loop_interval: Duration::from_secs(60),
            nodegroups: Value::map(),
            log_level: LogLevel::Warning,
            log_level_logfile: None,
            log_file: PathBuf::from(defaults::MASTER_LOG_FILE),
            key_logfile: PathBuf::from(defaults::KEY_LOG_FILE),
            zmq_filtering: false,
            token_expire: Duration::from_secs(43_200),
            keep_acl_in_token: false,
            external_auth: Value::map(),
            publisher_acl: Value::map(),
            rest_cherrypy: None,
            rest_api: None,
            rest: None,
            netapi_enable_clients: Vec::new(),
            rest_timeout: Duration::from_secs(300),
            transport_settings: Vec::new(),
        }
    }
}

fn default_master_id() -> String {
    format!(
        "{}_master",
        hostname().unwrap_or_else(|| "localhost".to_owned())
    )
}

impl MasterConfig {
    /// Loads `<config_dir>/master` and its includes, then types it.
    ///
    /// # Errors
    /// As [`RawConfig::load`] and [`MasterConfig::from_raw`].
    pub fn load(config_dir: &Path, missing: Missing) -> Result<Loaded<MasterConfig>, ConfigError> {
        let raw = RawConfig::load(config_dir, Role::Master, missing)?;
        MasterConfig::from_raw(&raw)
    }

    /// Types merged options: every known key is read and checked, the
    /// rest become [`ConfigWarning::UnknownKey`](super::ConfigWarning::UnknownKey) (backend keys go to
    /// [`Self::transport_settings`] instead).
    ///
    /// # Errors
    /// [`ConfigError::WrongType`] or [`ConfigError::InvalidValue`] naming
    /// the key and the file it came from.
    pub fn from_raw(raw: &RawConfig) -> Result<Loaded<MasterConfig>, ConfigError> {
        MasterConfig::read(raw).map(|(loaded, _)| loaded)
    }

    /// Every top-level key the loader reads for the master (sorted), plus
    /// the unprefixed backend keys (`pub_hwm`, `ipc_write_buffer`); any
    /// other key is an unknown-key warning unless it starts with a backend
    /// prefix (`zmq_`, `tcp_`, `quic_`, `<transport>_`). Taken from the
    /// loader itself (the keys it consults while typing an empty config),
    /// so it cannot drift from [`MasterConfig::from_raw`]; `docs/config.md`
    /// is checked against it.
    pub fn known_keys() -> Vec<String> {
        let mut keys = MasterConfig::read(&RawConfig::default())
            .map(|(_, keys)| keys)
            .unwrap_or_default();
        keys.extend(BACKEND_KEYS.iter().map(|k| (*k).to_owned()));
        keys.sort();
        keys.dedup();
        keys
    }

    /// [`MasterConfig::from_raw`], also returning every key consulted.
    fn read(raw: &RawConfig) -> Result<(Loaded<MasterConfig>, Vec<String>), ConfigError> {
        let d = MasterConfig::default();
        let mut f = Fields::new(raw);
        for key in ["conf_file", "default_include", "include"] {
            f.known(key);
        }
        let root_dir = paths::absolute_root(&f.path("root_dir", "/")?);
        let transport = f.string("transport", &d.transport)?.to_ascii_lowercase();
        let mut c = MasterConfig {
            config_dir: raw.config_dir().to_owned(),
            conf_file: raw.main_file().to_owned(),
            id: f.opt_string("id")?.unwrap_or(d.id),
            interface: f.parsed("interface", d.interface)?,
            ipv6: f.opt_bool("ipv6")?,
            publish_port: f.uint("publish_port", d.publish_port)?,
            ret_port: f.uint("ret_port", d.ret_port)?,
            worker_threads: f.uint("worker_threads", d.worker_threads)?,
            serial: f.parsed("serial", d.serial)?,
            user: f.string("user", &d.user)?,
            pki_dir: f.path("pki_dir", defaults::MASTER_PKI_DIR)?,
            cachedir: f.path("cachedir", defaults::MASTER_CACHEDIR)?,
            sock_dir: f.path("sock_dir", defaults::MASTER_SOCK_DIR)?,
            pidfile: f.path("pidfile", defaults::MASTER_PIDFILE)?,
            auto_accept: f.bool("auto_accept", d.auto_accept)?,
            autosign_file: f.opt_path("autosign_file")?,
            autoreject_file: f.opt_path("autoreject_file")?,
            autosign_grains_dir: f.opt_path("autosign_grains_dir")?,
            autosign_timeout: f
                .opt_duration("autosign_timeout", Duration::from_secs(60))?
                .unwrap_or(d.autosign_timeout),
            permissive_pki_access: f.bool("permissive_pki_access", d.permissive_pki_access)?,
            open_mode: f.bool("open_mode", d.open_mode)?,
            max_minions: f.uint("max_minions", d.max_minions)?,
            keysize: f.uint("keysize", d.keysize)?,
            hash_type: hash_type(&mut f, &d.hash_type)?,
            rotate_aes_key: f.bool("rotate_aes_key", d.rotate_aes_key)?,
            publish_session: f.seconds("publish_session", 86_400)?,
            minimum_auth_version: f.uint("minimum_auth_version", d.minimum_auth_version)?,
            ping_on_rotate: f.bool("ping_on_rotate", d.ping_on_rotate)?,
            sign_pub_messages: f.bool("sign_pub_messages", d.sign_pub_messages)?,
            master_sign_pubkey: f.bool("master_sign_pubkey", d.master_sign_pubkey)?,
            keep_jobs: f.uint("keep_jobs", d.keep_jobs)?,
            keep_jobs_seconds: f.uint("keep_jobs_seconds", d.keep_jobs_seconds)?,
            job_cache: f.bool("job_cache", d.job_cache)?,
            minion_data_cache: f.bool("minion_data_cache", d.minion_data_cache)?,
            preserve_minion_cache: f.bool("preserve_minion_cache", d.preserve_minion_cache)?,
            presence_events: f.bool("presence_events", d.presence_events)?,
            timeout: f.seconds("timeout", 5)?,
            gather_job_timeout: f.seconds("gather_job_timeout", 10)?,
            loop_interval: f.seconds("loop_interval", 60)?,
            nodegroups: nodegroups(&mut f)?,
            log_level: f.parsed("log_level", d.log_level)?,
            log_level_logfile: match f.opt_string("log_level_logfile")? {
                None => None,
                Some(_) => Some(f.parsed("log_level_logfile", d.log_level)?),
            },
            log_file: f.path("log_file", defaults::MASTER_LOG_FILE)?,
            key_logfile: f.path("key_logfile", defaults::KEY_LOG_FILE)?,
            zmq_filtering: f.bool("zmq_filtering", d.zmq_filtering)?,
            token_expire: f.seconds("token_expire", 43_200)?,
            keep_acl_in_token: f.bool("keep_acl_in_token", d.keep_acl_in_token)?,
            external_auth: f.map("external_auth")?,
            publisher_acl: f.map("publisher_acl")?,
            rest_cherrypy: f.raw_value("rest_cherrypy"),
            rest_api: f.raw_value("rest_api"),
            rest: None,
            netapi_enable_clients: f.string_list("netapi_enable_clients", &[])?,
            rest_timeout: f.seconds("rest_timeout", 300)?,
            root_dir,
            transport,
            transport_settings: Vec::new(),
        };
        if c.worker_threads == 0 {
            return Err(invalid(&f, "worker_threads", "must be at least 1"));
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
        for path in [
            &mut c.autosign_file,
            &mut c.autoreject_file,
            &mut c.autosign_grains_dir,
        ]
        .into_iter()
        .flatten()
        {
            *path = paths::prepend_root_dir(&root, path);
        }
        for path in [&mut c.log_file, &mut c.key_logfile] {
            if !paths::is_uri(path) {
                *path = paths::prepend_root_dir(&root, path);
            }
        }
        let mut warnings = raw.warnings().to_vec();
        c.rest = match (raw.get("rest_api"), raw.get("rest_cherrypy")) {
            (Some(opt), _) => rest::read("rest_api", opt, &mut warnings)?,
            (None, Some(opt)) => rest::read("rest_cherrypy", opt, &mut warnings)?,
            (None, None) => None,
        };
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

    /// How long jobs are kept, Salt's `get_keep_jobs_seconds`:
    /// `keep_jobs_seconds`, unless it is at its default and `keep_jobs`
    /// (hours) is not. `None` when it is 0 (never prune).
    pub fn keep_jobs_duration(&self) -> Option<Duration> {
        let seconds = if self.keep_jobs_seconds == 86_400 && self.keep_jobs != 24 {
            self.keep_jobs.saturating_mul(3600)
        } else {
            self.keep_jobs_seconds
        };
        (seconds != 0).then(|| Duration::from_secs(seconds))
    }
}

pub(crate) fn invalid(f: &Fields<'_>, key: &str, reason: &str) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_owned(),
        file: f.file_of(key).unwrap_or_default(),
        reason: reason.to_owned(),
    }
}

/// Salt's `_adjust_log_file_override`: with `log_dir`, a relative
/// `log_file` goes under it, and an unset one becomes
/// `<log_dir>/<basename of the default>`.
pub(crate) fn adjust_log_file(log_dir: &Path, log_file_set: bool, log_file: &Path) -> PathBuf {
    if log_file_set {
        if log_file.is_absolute() || paths::is_uri(log_file) {
            log_file.to_owned()
        } else {
            log_dir.join(log_file)
        }
    } else {
        match log_file.file_name() {
            Some(name) => log_dir.join(name),
            None => log_file.to_owned(),
        }
    }
}

/// Salt's rule: a `sock_dir` more than 10 bytes longer than `cachedir`
/// becomes `<cachedir>/.brine-unix`.
pub(crate) fn short_sock_dir(sock_dir: &Path, cachedir: &Path) -> PathBuf {
    if sock_dir.as_os_str().len() > cachedir.as_os_str().len() + 10 {
        cachedir.join(".brine-unix")
    } else {
        sock_dir.to_owned()
    }
}

pub(crate) fn hash_type(f: &mut Fields<'_>, default: &str) -> Result<String, ConfigError> {
    let value = f.string("hash_type", default)?.to_ascii_lowercase();
    if HASH_TYPES.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err(invalid(
            f,
            "hash_type",
            &format!("{value:?} is not one of {}", HASH_TYPES.join(", ")),
        ))
    }
}

/// `nodegroups`: a mapping of name → expression or list of words, or
/// Salt's "dictlist" (a list of one-key mappings), repacked into a mapping.
fn nodegroups(f: &mut Fields<'_>) -> Result<Value, ConfigError> {
    let Some(opt) = f.take("nodegroups") else {
        return Ok(Value::map());
    };
    let wrong = |found: &'static str| ConfigError::WrongType {
        key: "nodegroups".to_owned(),
        file: opt.file.clone(),
        expected: "a mapping of names to expressions or lists",
        found,
    };
    let entries: Vec<&(Value, Value)> = match &opt.value {
        Value::Nil => return Ok(Value::map()),
        Value::Map(entries) => entries.iter().collect(),
        Value::Array(items) => {
            let mut entries = Vec::new();
            for item in items {
                match item {
                    Value::Map(one) if one.len() == 1 => entries.extend(one.iter()),
                    other => return Err(wrong(kind(other))),
                }
            }
            entries
        }
        other => return Err(wrong(kind(other))),
    };
    let mut groups = Value::map();
    for (name, definition) in entries {
        let name = match name {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            other => return Err(wrong(kind(other))),
        };
        match definition {
            Value::Str(_) | Value::Array(_) => {}
            other => return Err(wrong(kind(other))),
        }
        groups.insert(&name, definition.clone());
    }
    Ok(groups)
}
