//! Backend settings (`quic_*` keys) and the QUIC transport parameters built
//! from them.

use std::{sync::Arc, time::Duration};

use brine_transport_api::{Settings, TransportError};

use crate::error::invalid_option;

/// Setting: seconds between keep-alive packets on an idle connection.
pub const KEEPALIVE_KEY: &str = "quic_keepalive";
/// Setting: seconds without any packet after which a connection is dead.
pub const IDLE_TIMEOUT_KEY: &str = "quic_idle_timeout";

/// Default keep-alive interval: well under every NAT's UDP mapping timeout
/// (30 s is the common floor), and a third of the idle timeout so two lost
/// keep-alives do not kill a healthy connection.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(5);
/// Default idle timeout: a master that vanished without closing (power
/// loss, cable pulled) is noticed by its minions within this time, and they
/// start reconnecting.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Bytes a peer may have in flight to us on one stream (quinn's default is
/// 1.25 MB; more lets large frames cross in fewer round trips).
const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
/// Bytes a peer may have in flight to us on one connection, all streams
/// together.
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// The QUIC connection settings of one channel end, read from
/// [`Settings`].
///
/// | key | default | meaning |
/// | --- | --- | --- |
/// | `quic_keepalive` | 5 | seconds between keep-alive pings on a quiet connection; `0` turns them off |
/// | `quic_idle_timeout` | 15 | seconds of silence after which a connection is considered dead |
///
/// Both sides send keep-alives, so an idle minion connection stays open
/// through NATs and firewalls, and either side notices a vanished peer
/// within the idle timeout (the smaller of the two sides' values applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Interval between keep-alive packets; `None` disables them.
    pub keepalive: Option<Duration>,
    /// How long a connection may stay silent before it is dropped.
    pub idle_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            keepalive: Some(DEFAULT_KEEPALIVE),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl Config {
    /// Reads the `quic_*` keys of `settings`; other keys are left to other
    /// layers.
    ///
    /// # Errors
    /// [`TransportError::InvalidOption`] naming the key when a value does not
    /// parse as seconds, the idle timeout is zero, or the keep-alive interval
    /// is not shorter than the idle timeout.
    pub fn from_settings(settings: &Settings) -> Result<Self, TransportError> {
        let mut config = Self::default();
        if let Some(secs) = settings.get_parsed::<f64>(KEEPALIVE_KEY)? {
            config.keepalive = match seconds(KEEPALIVE_KEY, secs)? {
                Duration::ZERO => None,
                interval => Some(interval),
            };
        }
        if let Some(secs) = settings.get_parsed::<f64>(IDLE_TIMEOUT_KEY)? {
            config.idle_timeout = seconds(IDLE_TIMEOUT_KEY, secs)?;
        }
        if config.idle_timeout.is_zero() {
            return Err(invalid_option(
                IDLE_TIMEOUT_KEY,
                "must be more than 0 seconds",
            ));
        }
        if config.keepalive.is_some_and(|k| k >= config.idle_timeout) {
            return Err(invalid_option(
                KEEPALIVE_KEY,
                format!("must be shorter than {IDLE_TIMEOUT_KEY}"),
            ));
        }
        Ok(config)
    }

    /// quinn's transport parameters: these timers, at most `bidi_streams`
    /// concurrent bidirectional streams opened by the peer, 4 MiB stream and
    /// 16 MiB connection receive windows (room for large returns without
    /// letting one peer make us buffer much), no unidirectional streams and
    /// no datagrams.
    pub(crate) fn transport(&self, bidi_streams: usize) -> Arc<quinn::TransportConfig> {
        self.transport_with(bidi_streams, self.keepalive)
    }

    /// [`transport`](Self::transport) for the server's end, whose
    /// keep-alives are a backstop for clients that send none: they come at
    /// [`server_keepalive`](Self::server_keepalive).
    pub(crate) fn server_transport(&self, bidi_streams: usize) -> Arc<quinn::TransportConfig> {
        self.transport_with(bidi_streams, self.server_keepalive())
    }

    /// The server's keep-alive interval: longer than the client's, so a
    /// client's keep-alive (which resets the server's timer when it
    /// arrives) always comes first and the server sends none of its own,
    /// yet shorter than the idle timeout. With both ends at the same
    /// interval, both sent one every interval: at 10,000 minions the
    /// master spent 12% of a core on 2,000 keep-alives a second.
    pub(crate) fn server_keepalive(&self) -> Option<Duration> {
        let client = self.keepalive?;
        Some((client * 2).min((client + self.idle_timeout) / 2))
    }

    fn transport_with(
        &self,
        bidi_streams: usize,
        keepalive: Option<Duration>,
    ) -> Arc<quinn::TransportConfig> {
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(keepalive);
        // The idle timeout was checked to be under a day in `seconds`, far
        // below QUIC's 2^62 ms limit; the fallback is never taken.
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout)
            .unwrap_or_else(|_| quinn::IdleTimeout::from(quinn::VarInt::from_u32(u32::MAX)));
        transport.max_idle_timeout(Some(idle));
        let streams = u32::try_from(bidi_streams).unwrap_or(u32::MAX);
        transport.max_concurrent_bidi_streams(quinn::VarInt::from_u32(streams));
        transport.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
        transport.datagram_receive_buffer_size(None);
        // Bounds what one connection can make us buffer across all its
        // streams (quinn's default is unlimited; each stream is already
        // bounded by its own window).
        transport.receive_window(quinn::VarInt::from_u32(CONNECTION_WINDOW));
        transport.stream_receive_window(quinn::VarInt::from_u32(STREAM_WINDOW));
        Arc::new(transport)
    }
}

/// A non-negative number of seconds up to a day.
fn seconds(key: &str, secs: f64) -> Result<Duration, TransportError> {
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(invalid_option(key, "must be between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_settings() {
        let config = Config::from_settings(&Settings::default()).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn reads_keys_and_zero_disables_keepalive() {
        let mut s = Settings::default();
        s.set(KEEPALIVE_KEY, "0").set(IDLE_TIMEOUT_KEY, "2.5");
        let config = Config::from_settings(&s).unwrap();
        assert_eq!(config.keepalive, None);
        assert_eq!(config.idle_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn server_keepalive_trails_the_client_within_the_idle_timeout() {
        let config = Config::default();
        let server = config.server_keepalive().unwrap();
        assert!(server > DEFAULT_KEEPALIVE && server < DEFAULT_IDLE_TIMEOUT);
        let tight = Config {
            keepalive: Some(Duration::from_secs(14)),
            idle_timeout: Duration::from_secs(15),
        };
        let server = tight.server_keepalive().unwrap();
        assert!(server > Duration::from_secs(14) && server < Duration::from_secs(15));
        let off = Config {
            keepalive: None,
            ..Config::default()
        };
        assert_eq!(off.server_keepalive(), None);
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut s = Settings::default();
        s.set(IDLE_TIMEOUT_KEY, "-1");
        let err = Config::from_settings(&s).unwrap_err();
        assert!(err.to_string().contains(IDLE_TIMEOUT_KEY), "{err}");

        let mut s = Settings::default();
        s.set(KEEPALIVE_KEY, "20").set(IDLE_TIMEOUT_KEY, "10");
        let err = Config::from_settings(&s).unwrap_err();
        assert!(err.to_string().contains(KEEPALIVE_KEY), "{err}");
    }
}
