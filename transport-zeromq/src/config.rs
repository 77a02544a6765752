//! The backend's configuration and the settings keys it reads.

use brine_transport_api::{Settings, TransportError};

/// Salt's config key switching topic filtering on the publish channel.
pub const ZMQ_FILTERING: &str = "zmq_filtering";

/// How a [`ZmqTransport`](crate::ZmqTransport) behaves.
///
/// The default is Salt-compatible: `zmq_filtering` off, one frame per
/// publish, as a stock Salt 3007 minion expects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Config {
    /// Salt's `zmq_filtering`: publish `[topic, body]` with topic
    /// `b"broadcast"` or the lowercase hex SHA-1 of the minion id, so a
    /// targeted publish reaches only the listed minions. A stock 3007.8
    /// minion mis-reads the two-frame form (see the crate docs); leave it off
    /// when stock minions connect.
    pub zmq_filtering: bool,
}

impl Config {
    /// Reads the keys this backend knows from `settings`, defaults for the rest.
    ///
    /// # Errors
    /// [`TransportError::InvalidOption`] naming the key when a value does not parse.
    pub fn from_settings(settings: &Settings) -> Result<Self, TransportError> {
        Ok(Self {
            zmq_filtering: settings.get_parsed::<bool>(ZMQ_FILTERING)?.unwrap_or(false),
        })
    }

    /// The filtering a channel end uses: the end's own `zmq_filtering`
    /// setting when present, this config's value otherwise.
    ///
    /// # Errors
    /// [`TransportError::InvalidOption`] when the setting does not parse.
    pub(crate) fn filtering_for(&self, settings: &Settings) -> Result<bool, TransportError> {
        let filtering = settings
            .get_parsed::<bool>(ZMQ_FILTERING)?
            .unwrap_or(self.zmq_filtering);
        if filtering != self.zmq_filtering {
            tracing::warn!(
                setting = filtering,
                transport = self.zmq_filtering,
                "zmq_filtering setting differs from the transport's config; \
                 using the setting, but capabilities() reports the config"
            );
        }
        Ok(filtering)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_salt_compatible() {
        assert!(!Config::default().zmq_filtering);
        assert_eq!(
            Config::from_settings(&Settings::default()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn settings_override_and_bad_values_name_the_key() {
        let mut settings = Settings::default();
        settings.set(ZMQ_FILTERING, "yes");
        assert!(Config::from_settings(&settings).unwrap().zmq_filtering);
        assert!(Config::default().filtering_for(&settings).unwrap());
        let filtering_on = Config {
            zmq_filtering: true,
        };
        assert!(filtering_on.filtering_for(&Settings::default()).unwrap());
        settings.set(ZMQ_FILTERING, "maybe");
        let err = Config::from_settings(&settings).unwrap_err();
        assert!(err.to_string().contains(ZMQ_FILTERING), "{err}");
    }
}
