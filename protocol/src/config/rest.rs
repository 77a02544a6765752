//! The REST API section of the master config: Brine's `rest_api:` or, so
//! that a Salt config works unchanged, salt-api's `rest_cherrypy:`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use super::fields::kind;
use super::{ConfigError, ConfigWarning, RawOption};
use crate::Value;

/// salt-api's default request body limit (`max_request_body_size`, 1 MiB).
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: usize = 1_048_576;

/// Keys of salt-api's `rest_cherrypy` section that Brine accepts without a
/// warning but does not use (CherryPy tuning, logging, bundled app paths).
const IGNORED_SALT_KEYS: &[&str] = &[
    "debug",
    "log_access_file",
    "log_error_file",
    "ssl_chain",
    "thread_pool",
    "socket_queue_size",
    "expire_responses",
    "collect_stats",
    "static",
    "static_path",
    "app",
    "app_path",
    "root_prefix",
    "enable_sessions",
];

/// The typed REST section (`rest_api:` / `rest_cherrypy:`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestApiConfig {
    /// Which section it came from: `rest_api` or `rest_cherrypy`.
    pub section: String,
    /// `port` (8000).
    pub port: u16,
    /// `host` (`0.0.0.0`).
    pub host: IpAddr,
    /// `ssl_crt` (unset): a PEM certificate chain; with `ssl_key`, serve HTTPS.
    pub ssl_crt: Option<PathBuf>,
    /// `ssl_key` (unset): the PEM private key of `ssl_crt`.
    pub ssl_key: Option<PathBuf>,
    /// `disable_ssl` (false): serve plain HTTP even when a certificate is set.
    pub disable_ssl: bool,
    /// `cors_origin` (unset): `*` or a list of origins answered with CORS
    /// headers; empty means no CORS headers at all.
    pub cors_origin: Vec<String>,
    /// `max_request_body_size` (1 MiB): larger bodies get 413.
    pub max_request_body_size: usize,
    /// `webhook_disable_auth` (false): `/hook` without a session.
    pub webhook_disable_auth: bool,
    /// `stats_disable_auth` (false): `/stats` without a session.
    pub stats_disable_auth: bool,
    /// `authorized_ips` (unset): client addresses allowed; others get 403.
    pub authorized_ips: Vec<String>,
}

impl RestApiConfig {
    /// The defaults for a section named `section`.
    pub fn new(section: &str) -> Self {
        RestApiConfig {
            section: section.to_owned(),
            port: 8000,
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ssl_crt: None,
            ssl_key: None,
            disable_ssl: false,
            cors_origin: Vec::new(),
            max_request_body_size: DEFAULT_MAX_REQUEST_BODY_SIZE,
            webhook_disable_auth: false,
            stats_disable_auth: false,
            authorized_ips: Vec::new(),
        }
    }

    /// Whether HTTPS is served: a certificate and key are set and
    /// `disable_ssl` is off.
    pub fn uses_tls(&self) -> bool {
        !self.disable_ssl && self.ssl_crt.is_some() && self.ssl_key.is_some()
    }
}

/// Reads the section `name` from `opt`; unknown sub-keys become warnings.
pub(crate) fn read(
    name: &str,
    opt: &RawOption,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Option<RestApiConfig>, ConfigError> {
    let entries = match &opt.value {
        // `rest_api:` with nothing under it enables the API with defaults
        Value::Nil => return Ok(Some(RestApiConfig::new(name))),
        Value::Map(entries) => entries,
        other => {
            return Err(ConfigError::WrongType {
                key: name.to_owned(),
                file: opt.file.clone(),
                expected: "a mapping",
                found: kind(other),
            });
        }
    };
    let mut c = RestApiConfig::new(name);
    for (key, value) in entries {
        let Some(key) = key.as_str() else {
            return Err(invalid(name, "", opt, "keys must be strings"));
        };
        let wrong = |expected: &'static str| ConfigError::WrongType {
            key: format!("{name}:{key}"),
            file: opt.file.clone(),
            expected,
            found: kind(value),
        };
        match key {
            "port" => {
                c.port = uint(value)
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| wrong("a port number"))?;
            }
            "host" => {
                let text = value.as_str().ok_or_else(|| wrong("an IP address"))?;
                c.host = text.parse().map_err(|_| {
                    invalid(name, key, opt, &format!("{text:?} is not an IP address"))
                })?;
            }
            "ssl_crt" => c.ssl_crt = opt_path(value).map_err(|()| wrong("a path"))?,
            "ssl_key" => c.ssl_key = opt_path(value).map_err(|()| wrong("a path"))?,
            "disable_ssl" => c.disable_ssl = boolean(value).ok_or_else(|| wrong("a bool"))?,
            "webhook_disable_auth" => {
                c.webhook_disable_auth = boolean(value).ok_or_else(|| wrong("a bool"))?;
            }
            "stats_disable_auth" => {
                c.stats_disable_auth = boolean(value).ok_or_else(|| wrong("a bool"))?;
            }
            "cors_origin" => {
                c.cors_origin = strings(value).ok_or_else(|| wrong("a string or a list"))?;
            }
            "authorized_ips" => {
                c.authorized_ips = strings(value).ok_or_else(|| wrong("a string or a list"))?;
            }
            "max_request_body_size" => {
                c.max_request_body_size = uint(value)
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| wrong("a positive number of bytes"))?;
            }
            other if IGNORED_SALT_KEYS.contains(&other) => {}
            other => warnings.push(ConfigWarning::UnknownKey {
                key: format!("{name}:{other}"),
                file: opt.file.clone(),
            }),
        }
    }
    if c.ssl_crt.is_some() != c.ssl_key.is_some() && !c.disable_ssl {
        return Err(invalid(
            name,
            "ssl_key",
            opt,
            "ssl_crt and ssl_key must be set together (or set disable_ssl)",
        ));
    }
    Ok(Some(c))
}

fn invalid(section: &str, key: &str, opt: &RawOption, reason: &str) -> ConfigError {
    ConfigError::InvalidValue {
        key: if key.is_empty() {
            section.to_owned()
        } else {
            format!("{section}:{key}")
        },
        file: opt.file.clone(),
        reason: reason.to_owned(),
    }
}

fn uint(value: &Value) -> Option<u64> {
    match value {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::UInt(u) => Some(*u),
        Value::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Int(i) => Some(*i != 0),
        Value::Str(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn opt_path(value: &Value) -> Result<Option<PathBuf>, ()> {
    match value {
        Value::Nil => Ok(None),
        Value::Str(s) if s.is_empty() => Ok(None),
        Value::Str(s) => Ok(Some(PathBuf::from(s))),
        _ => Err(()),
    }
}

fn strings(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Nil => Some(Vec::new()),
        Value::Str(s) => Some(
            s.split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
        ),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::*;
    use crate::config::{MasterConfig, RawConfig, Role};

    fn load(text: &str) -> Result<crate::config::Loaded<MasterConfig>, ConfigError> {
        let raw = RawConfig::from_yaml_str(text, Path::new("/etc/brine/master"), Role::Master)?;
        MasterConfig::from_raw(&raw)
    }

    #[test]
    fn rest_api_and_its_salt_alias() {
        let loaded = load("rest_api:\n  port: 8443\n  host: 127.0.0.1\n  cors_origin: '*'\nnetapi_enable_clients: [local, runner]\n").unwrap();
        let rest = loaded.config.rest.unwrap();
        assert_eq!(rest.section, "rest_api");
        assert_eq!(rest.port, 8443);
        assert_eq!(rest.host.to_string(), "127.0.0.1");
        assert_eq!(rest.cors_origin, ["*"]);
        assert_eq!(rest.max_request_body_size, DEFAULT_MAX_REQUEST_BODY_SIZE);
        assert!(!rest.uses_tls());
        assert_eq!(loaded.config.netapi_enable_clients, ["local", "runner"]);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

        let loaded = load("rest_cherrypy:\n  port: 8001\n  ssl_crt: /c.pem\n  ssl_key: /k.pem\n  thread_pool: 30\n  bogus: 1\n").unwrap();
        let rest = loaded.config.rest.unwrap();
        assert_eq!(rest.section, "rest_cherrypy");
        assert_eq!(rest.port, 8001);
        assert!(rest.uses_tls());
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(
            loaded.warnings[0]
                .to_string()
                .contains("rest_cherrypy:bogus")
        );

        let defaults = load("rest_api:\n").unwrap().config.rest.unwrap();
        assert_eq!(defaults.port, 8000);
        assert!(defaults.host.is_unspecified());
        assert!(load("id: x\n").unwrap().config.rest.is_none());
        assert_eq!(
            load("id: x\n").unwrap().config.rest_timeout,
            std::time::Duration::from_secs(300)
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = load("rest_api:\n  port: 70000\n").unwrap_err();
        assert_eq!(err.key(), Some("rest_api:port"));
        let err = load("rest_api:\n  host: nowhere\n").unwrap_err();
        assert_eq!(err.key(), Some("rest_api:host"));
        let err = load("rest_api:\n  ssl_crt: /c.pem\n").unwrap_err();
        assert_eq!(err.key(), Some("rest_api:ssl_key"));
        assert!(load("rest_api: 5\n").is_err());
    }
}
