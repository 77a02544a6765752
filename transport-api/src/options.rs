//! Typed options for the channel ends: addresses, limits, TLS material and
//! backend settings.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use crate::TransportError;

/// The default largest frame any channel end accepts: 64 MiB.
///
/// Big enough for a `cmd.run` that prints tens of megabytes (after msgpack
/// and encryption overhead), small enough that a hostile length prefix cannot
/// make a daemon allocate gigabytes. Raise `max_frame_size` for larger returns.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 64 * 1024 * 1024;

/// The default bound of every per-peer queue, in frames (Salt's `pub_hwm`).
pub const DEFAULT_QUEUE_DEPTH: usize = 1000;

/// Resource limits every backend enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted on receive, checked before any buffer of that
    /// size is allocated, and refused on send with
    /// [`TransportError::FrameTooLarge`].
    pub max_frame_size: usize,
    /// Frames queued per subscriber (publish) or per connection before the
    /// slow peer is dropped with a logged reason.
    pub queue_depth: usize,
    /// Requests a server handles at once per connection-accepting socket;
    /// more wait in the socket buffers (back-pressure, never unbounded memory).
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            queue_depth: DEFAULT_QUEUE_DEPTH,
            max_in_flight: 1024,
        }
    }
}

/// Reconnection delays: exponential from `initial` to `max`, as Salt's
/// `recon_default` / `recon_max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay after a connection is lost.
    pub initial: Duration,
    /// The ceiling the delay doubles up to.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before attempt `n` (0-based), doubling and capped at `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// TLS material, as paths to PEM files.
///
/// On a server: `cert` and `key`, or neither and a `pki_dir` where a backend
/// that needs TLS generates a self-signed certificate at first start. On a
/// client: `ca` (a CA bundle or the server's own certificate to pin), or
/// neither and a `pki_dir` where the first certificate seen is stored and
/// required from then on (trust on first use, as Salt minions treat the
/// master's public key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Server certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Server private key (PEM).
    pub key: Option<PathBuf>,
    /// Trusted CA bundle or pinned server certificate (PEM), for clients.
    pub ca: Option<PathBuf>,
    /// Where generated certificates and trust-on-first-use pins live.
    pub pki_dir: Option<PathBuf>,
    /// The name a client expects in the server certificate; empty means
    /// the backend's default.
    pub server_name: String,
}

impl TlsOptions {
    /// Only a `pki_dir`: a server generates (and reuses) its certificate
    /// there, a client pins the first certificate it sees there. What a
    /// daemon uses when a backend needs TLS and the config names no files.
    pub fn in_pki_dir(dir: impl Into<PathBuf>) -> Self {
        TlsOptions {
            pki_dir: Some(dir.into()),
            ..TlsOptions::default()
        }
    }
}

/// Backend-specific settings, by config key (`zmq_filtering`, `tcp_keepalive`…).
///
/// Values are the strings from the config file; each backend documents the
/// keys it reads and parses them with [`Settings::get_parsed`], so a bad value
/// is an error naming the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings(BTreeMap<String, String>);

impl Settings {
    /// Sets `key` to `value`, replacing any earlier value.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// The raw value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Parses `key` as `T`; `Ok(None)` if unset.
    ///
    /// Booleans accept `true/false`, `yes/no`, `on/off`, `1/0` as YAML does.
    ///
    /// # Errors
    /// [`TransportError::InvalidOption`] naming the key when the value does not parse.
    pub fn get_parsed<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, TransportError> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        let normalized = match raw.trim().to_ascii_lowercase().as_str() {
            "yes" | "on" | "1" if std::any::type_name::<T>() == "bool" => "true".to_owned(),
            "no" | "off" | "0" if std::any::type_name::<T>() == "bool" => "false".to_owned(),
            _ => raw.trim().to_owned(),
        };
        normalized
            .parse()
            .map(Some)
            .map_err(|_| TransportError::InvalidOption {
                option: key.to_owned(),
                reason: format!("cannot parse {raw:?} as {}", std::any::type_name::<T>()),
            })
    }

    /// Every key set, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Options for the listening ends: [`PublishServer`](crate::PublishServer)
/// and [`RequestServer`](crate::RequestServer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Where to listen; port 0 picks a free port (read it back with `local_addr`).
    pub bind: SocketAddr,
    /// Frame and queue limits.
    pub limits: Limits,
    /// TLS material; required by backends whose capabilities say `tls_always`.
    pub tls: Option<TlsOptions>,
    /// Backend-specific settings.
    pub settings: Settings,
}

impl ServerOptions {
    /// Options with default limits, no TLS and no settings.
    pub fn new(bind: SocketAddr) -> Self {
        Self {
            bind,
            limits: Limits::default(),
            tls: None,
            settings: Settings::default(),
        }
    }
}

/// Options for the connecting ends: [`PublishClient`](crate::PublishClient)
/// and [`RequestClient`](crate::RequestClient).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// The server to connect to.
    pub connect: SocketAddr,
    /// The minion id this end speaks for; a publish client announces it so
    /// the server can deliver targeted publishes.
    pub identity: String,
    /// Frame and queue limits.
    pub limits: Limits,
    /// TLS material.
    pub tls: Option<TlsOptions>,
    /// Reconnection delays.
    pub backoff: Backoff,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// Backend-specific settings.
    pub settings: Settings,
}

impl ClientOptions {
    /// Options with default limits, no TLS and no settings.
    pub fn new(connect: SocketAddr, identity: impl Into<String>) -> Self {
        Self {
            connect,
            identity: identity.into(),
            limits: Limits::default(),
            tls: None,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(5),
            settings: Settings::default(),
        }
    }
}

/// Options for the event bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBusOptions {
    /// Directory of the IPC socket (Salt's `sock_dir`).
    pub sock_dir: PathBuf,
    /// Which daemon's bus: the socket is `<sock_dir>/<name>_event.ipc`.
    pub name: String,
    /// Events queued per subscriber before the slow one is dropped.
    pub queue_depth: usize,
    /// Largest event (tag plus data) accepted from an IPC peer.
    pub max_frame_size: usize,
}

impl EventBusOptions {
    /// Options for the bus called `name` under `sock_dir`, default limits.
    pub fn new(sock_dir: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        Self {
            sock_dir: sock_dir.into(),
            name: name.into(),
            queue_depth: 10_000,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        }
    }

    /// The IPC socket's path.
    pub fn socket_path(&self) -> PathBuf {
        self.sock_dir.join(format!("{}_event.ipc", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(b.delay(0), Duration::from_millis(100));
        assert_eq!(b.delay(1), Duration::from_millis(200));
        assert_eq!(b.delay(3), Duration::from_millis(800));
        assert_eq!(b.delay(4), Duration::from_secs(1));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn settings_parse_yaml_booleans_and_name_the_key() {
        let mut s = Settings::default();
        s.set("zmq_filtering", "yes")
            .set("tcp_keepalive_idle", "abc");
        assert_eq!(s.get_parsed::<bool>("zmq_filtering").unwrap(), Some(true));
        assert_eq!(s.get_parsed::<bool>("missing").unwrap(), None);
        let err = s.get_parsed::<u64>("tcp_keepalive_idle").unwrap_err();
        assert!(err.to_string().contains("tcp_keepalive_idle"), "{err}");
    }
}
