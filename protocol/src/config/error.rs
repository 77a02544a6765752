use std::fmt;
use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Why a config could not be loaded. Every variant names the file (and
/// the key, where one is at fault), so the daemon can print it as is.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config directory does not exist and the caller asked for
    /// [`Missing::Error`](super::Missing::Error).
    #[error("config directory {} does not exist", dir.display())]
    DirNotFound {
        /// The directory.
        dir: PathBuf,
    },
    /// The config "directory" is something else.
    #[error("config directory {} is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The main file does not exist and the caller asked for
    /// [`Missing::Error`](super::Missing::Error).
    #[error("config file {} does not exist", path.display())]
    FileNotFound {
        /// The file.
        path: PathBuf,
    },
    /// Reading a file or listing a directory failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file is not valid YAML.
    #[error("error parsing configuration file {}: {message}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error, when the parser knows it.
        line: Option<usize>,
        /// 1-based column of the error, when the parser knows it.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// A file parsed, but its document is not a mapping of options.
    #[error("error parsing configuration file {}: conf should be a mapping of options, not {found}", path.display())]
    NotAMapping {
        /// The file.
        path: PathBuf,
        /// What the document was (`a list`, `a string`, …).
        found: &'static str,
    },
    /// A known key holds a value of the wrong type.
    #[error("config option '{key}' in {} has an invalid type: {expected} is required, found {found}", file.display())]
    WrongType {
        /// The option.
        key: String,
        /// The file the value came from.
        file: PathBuf,
        /// What the option takes (`an integer`, `a boolean`, …).
        expected: &'static str,
        /// What was found (`a string`, `a list`, …).
        found: &'static str,
    },
    /// A known key has the right type but an unusable value.
    #[error("config option '{key}' in {} has an invalid value: {reason}", file.display())]
    InvalidValue {
        /// The option.
        key: String,
        /// The file the value came from.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ConfigError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The option at fault, for [`ConfigError::WrongType`] and
    /// [`ConfigError::InvalidValue`].
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::WrongType { key, .. } | ConfigError::InvalidValue { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Something the loader noticed and the daemon should log (as a warning),
/// but that does not stop it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigWarning {
    /// A key Brine does not know; it is ignored, never given another meaning.
    UnknownKey {
        /// The key.
        key: String,
        /// The file it was found in.
        file: PathBuf,
    },
    /// The main file (or the whole directory) is missing and the caller
    /// asked for [`Missing::UseDefaults`](super::Missing::UseDefaults).
    MissingConfig {
        /// The file or directory that is missing.
        path: PathBuf,
    },
    /// An `include:` path or glob matched no file.
    IncludeMatchedNothing {
        /// The pattern, after making it absolute.
        pattern: PathBuf,
        /// The file that asked for it.
        file: PathBuf,
    },
    /// A backend setting (`zmq_*`, `tcp_*`, `quic_*`, …) whose value is a
    /// list or a mapping; transports take scalar settings only.
    NonScalarSetting {
        /// The key.
        key: String,
        /// The file it was found in.
        file: PathBuf,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::UnknownKey { key, file } => {
                write!(f, "unknown key {key} in {}; ignored", file.display())
            }
            ConfigWarning::MissingConfig { path } => {
                write!(f, "{} does not exist; using defaults", path.display())
            }
            ConfigWarning::IncludeMatchedNothing { pattern, file } => write!(
                f,
                "include path/glob {} in {} matches no files",
                pattern.display(),
                file.display()
            ),
            ConfigWarning::NonScalarSetting { key, file } => write!(
                f,
                "transport setting {key} in {} is not a scalar; ignored",
                file.display()
            ),
        }
    }
}
