//! Small typed values shared by the master and minion configs.

use std::fmt;
use std::str::FromStr;

/// Salt's log levels (`log_level`, `log_level_logfile`), least to most
/// severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogLevel {
    /// `all`: everything.
    All,
    /// `garbage`: below trace.
    Garbage,
    /// `trace`.
    Trace,
    /// `debug`.
    Debug,
    /// `profile`: between debug and info.
    Profile,
    /// `info`.
    Info,
    /// `warning` (Salt's default).
    Warning,
    /// `error`.
    Error,
    /// `critical`.
    Critical,
    /// `quiet`: nothing.
    Quiet,
}

impl LogLevel {
    /// Every level, least severe first.
    pub const ALL: [LogLevel; 10] = [
        LogLevel::All,
        LogLevel::Garbage,
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Profile,
        LogLevel::Info,
        LogLevel::Warning,
        LogLevel::Error,
        LogLevel::Critical,
        LogLevel::Quiet,
    ];

    /// Salt's name of the level.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::All => "all",
            LogLevel::Garbage => "garbage",
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Profile => "profile",
            LogLevel::Info => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
            LogLevel::Quiet => "quiet",
        }
    }

    /// The nearest `tracing` filter directive: `trace`, `debug`, `info`,
    /// `warn`, `error` or `off`.
    pub fn tracing_directive(self) -> &'static str {
        match self {
            LogLevel::All | LogLevel::Garbage | LogLevel::Trace => "trace",
            LogLevel::Debug | LogLevel::Profile => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warn",
            LogLevel::Error | LogLevel::Critical => "error",
            LogLevel::Quiet => "off",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of Salt's log levels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown log level {0:?} (expected one of all, garbage, trace, debug, profile, info, warning, error, critical, quiet)"
)]
pub struct UnknownLogLevel(pub String);

impl FromStr for LogLevel {
    type Err = UnknownLogLevel;

    /// Case-insensitive; `warn` is accepted for `warning`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        if lower == "warn" {
            return Ok(LogLevel::Warning);
        }
        LogLevel::ALL
            .into_iter()
            .find(|l| l.name() == lower)
            .ok_or_else(|| UnknownLogLevel(s.to_owned()))
    }
}

/// Hash algorithms Salt accepts for `hash_type`.
pub(crate) const HASH_TYPES: [&str; 6] = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"];

/// This host's name (`/proc/sys/kernel/hostname`, else `/etc/hostname`,
/// else the `HOSTNAME` variable), trimmed; `None` if none is found.
/// The master's default `id` is this plus `_master`, as in Salt; the
/// minion's default `id` starts from it.
pub fn hostname() -> Option<String> {
    let from_file = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_parse_like_salt() {
        assert_eq!("warning".parse::<LogLevel>().unwrap(), LogLevel::Warning);
        assert_eq!("WARN".parse::<LogLevel>().unwrap(), LogLevel::Warning);
        assert_eq!("Debug".parse::<LogLevel>().unwrap(), LogLevel::Debug);
        assert_eq!(
            "quiet".parse::<LogLevel>().unwrap().tracing_directive(),
            "off"
        );
        let err = "loud".parse::<LogLevel>().unwrap_err();
        assert!(err.to_string().contains("loud"));
        for level in LogLevel::ALL {
            assert_eq!(level.name().parse::<LogLevel>().unwrap(), level);
        }
    }
}
