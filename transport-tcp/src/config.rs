//! Settings this backend reads, and the socket options they turn into.
//!
//! | key | type | default | meaning |
//! | --- | --- | --- | --- |
//! | `tcp_keepalive` | bool | `true` | TCP keepalive probes on every connection (Salt's key) |
//! | `tcp_keepalive_idle` | seconds | OS default | idle time before the first probe; `-1` keeps the OS default (Salt's key and convention) |
//!
//! `TCP_NODELAY` is always on: frames are written whole and flushed when a
//! queue runs empty, so Nagle's algorithm would only add latency.
//! Other `tcp_*` keys are warned about and ignored.

use std::time::Duration;

use brine_transport_api::{Settings, TransportError};
use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;
use tracing::{debug, warn};

const KEEPALIVE: &str = "tcp_keepalive";
const KEEPALIVE_IDLE: &str = "tcp_keepalive_idle";

/// The typed form of the backend settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Config {
    /// Whether keepalive probes are on.
    pub(crate) keepalive: bool,
    /// Idle time before the first probe; `None` keeps the OS default.
    pub(crate) keepalive_idle: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            keepalive: true,
            keepalive_idle: None,
        }
    }
}

impl Config {
    /// Reads the keys in the module table from `settings`.
    ///
    /// # Errors
    /// [`TransportError::InvalidOption`] naming a key whose value does not parse.
    pub(crate) fn from_settings(settings: &Settings) -> Result<Self, TransportError> {
        for key in settings.keys() {
            if key.starts_with("tcp_") && key != KEEPALIVE && key != KEEPALIVE_IDLE {
                warn!(key, "unknown tcp transport setting ignored");
            }
        }
        let keepalive = settings.get_parsed::<bool>(KEEPALIVE)?.unwrap_or(true);
        let keepalive_idle = match settings.get_parsed::<i64>(KEEPALIVE_IDLE)? {
            None => None,
            Some(secs) if secs < 0 => None,
            Some(0) => {
                return Err(TransportError::InvalidOption {
                    option: KEEPALIVE_IDLE.to_owned(),
                    reason: "must be at least 1 second, or -1 for the OS default".to_owned(),
                });
            }
            Some(secs) => Some(Duration::from_secs(secs.unsigned_abs())),
        };
        Ok(Self {
            keepalive,
            keepalive_idle,
        })
    }

    /// Applies `TCP_NODELAY` and the keepalive settings to a fresh
    /// connection. A failure is logged, never fatal: the connection works
    /// without them.
    pub(crate) fn tune(&self, stream: &TcpStream) {
        if let Err(err) = stream.set_nodelay(true) {
            debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let sock = SockRef::from(stream);
        let applied = match (self.keepalive, self.keepalive_idle) {
            (false, _) => sock.set_keepalive(false),
            (true, None) => sock.set_keepalive(true),
            (true, Some(idle)) => sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle)),
        };
        if let Err(err) = applied {
            debug!(error = %err, "cannot set tcp keepalive");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_salt_conventions() {
        assert_eq!(
            Config::from_settings(&Settings::default()).unwrap(),
            Config::default()
        );
        let mut s = Settings::default();
        s.set(KEEPALIVE, "no").set(KEEPALIVE_IDLE, "-1");
        let c = Config::from_settings(&s).unwrap();
        assert!(!c.keepalive);
        assert_eq!(c.keepalive_idle, None);
        s.set(KEEPALIVE_IDLE, "300");
        let c = Config::from_settings(&s).unwrap();
        assert_eq!(c.keepalive_idle, Some(Duration::from_secs(300)));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (key, value) in [
            (KEEPALIVE, "maybe"),
            (KEEPALIVE_IDLE, "soon"),
            (KEEPALIVE_IDLE, "0"),
        ] {
            let mut s = Settings::default();
            s.set(key, value);
            let err = Config::from_settings(&s).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }
}
