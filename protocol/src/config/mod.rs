//! The daemons' config loader: Salt-style YAML files, typed.
//!
//! A config directory (`-c`, default `/etc/brine`) holds the main file
//! (`master` or `minion`) and a drop-in directory (`master.d/*.conf`,
//! `minion.d/*.conf`), merged as Salt 3007 merges them (see [`RawConfig`]
//! for the exact rules). The merged options are then typed into
//! [`MasterConfig`] or [`MinionConfig`], with Salt's key names and
//! defaults and Brine's paths:
//!
//! | Salt | Brine |
//! | --- | --- |
//! | `/etc/salt` | `/etc/brine` |
//! | `/etc/salt/pki/{master,minion}` | `/etc/brine/pki/{master,minion}` |
//! | `/var/cache/salt/{master,minion}` | `/var/cache/brine/{master,minion}` |
//! | `/var/run/salt/{master,minion}` | `/var/run/brine/{master,minion}` |
//! | `/var/log/salt/{master,minion,key}` | `/var/log/brine/{master,minion,key}` |
//! | `/var/run/salt-{master,minion}.pid` | `/var/run/brine-{master,minion}.pid` |
//!
//! Rules:
//! - an unknown key is reported as a [`ConfigWarning::UnknownKey`] ("unknown
//!   key X in FILE") for the caller to log, and otherwise ignored;
//! - a known key with a value of the wrong type is a
//!   [`ConfigError::WrongType`] naming the key and the file it came from;
//! - `root_dir` re-roots the path options Salt re-roots (listed on each
//!   config struct);
//! - backend options (`zmq_*`, `tcp_*`, `quic_*`, `<transport>_*`,
//!   `pub_hwm`) are collected as strings in `transport_settings`, to be
//!   handed to the transport;
//! - a missing directory or main file is an error or the defaults, as the
//!   caller asks with [`Missing`].
//!
//! YAML is parsed as YAML 1.2 (`serde_norway`); for boolean options the
//! YAML 1.1 words Salt's PyYAML accepts (`yes`, `no`, `on`, `off`) are
//! accepted too.
//!
//! ```
//! use brine_protocol::config::{MasterConfig, RawConfig, Role};
//! use std::path::Path;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let raw = RawConfig::from_yaml_str(
//!     "ret_port: 14506\nauto_accept: yes\nzmq_backlog: 500\nfile_roots: {}\n",
//!     Path::new("/nonexistent/master"),
//!     Role::Master,
//! )?;
//! let loaded = MasterConfig::from_raw(&raw)?;
//! assert_eq!(loaded.config.ret_port, 14506);
//! assert_eq!(loaded.config.publish_port, 4505);
//! assert!(loaded.config.auto_accept);
//! assert_eq!(loaded.config.transport_settings, [("zmq_backlog".to_owned(), "500".to_owned())]);
//! assert_eq!(loaded.warnings[0].to_string(), "unknown key file_roots in /nonexistent/master; ignored");
//! # Ok(())
//! # }
//! ```

mod error;
mod fields;
mod glob;
mod master;
mod minion;
mod paths;
mod raw;
mod rest;
mod types;
mod yaml;

#[cfg(test)]
mod tests;

pub use error::{ConfigError, ConfigWarning};
pub use glob::fnmatch;
pub use master::MasterConfig;
pub use minion::MinionConfig;
pub use paths::DEFAULT_CONFIG_DIR;
pub use raw::{Missing, RawConfig, RawOption, Role};
pub use rest::{DEFAULT_MAX_REQUEST_BODY_SIZE, RestApiConfig};
pub use types::{LogLevel, UnknownLogLevel, hostname};

/// A typed config and the warnings met while loading it.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    /// The config.
    pub config: T,
    /// What the caller should log as warnings (unknown keys, missing
    /// files, includes matching nothing).
    pub warnings: Vec<ConfigWarning>,
}
