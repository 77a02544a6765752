//! The Brine master: the daemon as a library, LocalClient, key management
//! and the job cache.
//!
//! [`Master::start`] runs the seed's components on one tokio runtime: the
//! Publisher (`publish_port`), the ReqServer (`ret_port`) in front of the
//! request [`handler`](crate::Master) (`_auth`, `_return`,
//! `_minion_event`, `_pillar`, local `publish`), the EventPublisher (the
//! transport's event bus, in process and over IPC under `sock_dir`) and
//! Maintenance (job pruning, key changes, AES rotation), under a
//! supervisor that restarts a failed component. [`client::LocalClient`]
//! publishes jobs and collects returns from another process. With a
//! `rest_api:` section the master also serves the salt-api compatible
//! REST API, live events and web UI ([`netapi`]).
//!
//! The master never names a backend: it takes the transport the
//! `transport` key names from a [`Registry`](brine_transport_api::Registry).
//! [`builtin_registry`] (also `Registry::builtin()` through
//! [`BuiltinTransports`]) is the one place that knows every built-in one:
//!
//! | feature | backend | default |
//! | --- | --- | --- |
//! | `zeromq` | `brine-transport-zeromq` (Salt-compatible) | on |
//! | `tcp` | `brine-transport-tcp` | on |
//! | `quic` | `brine-transport-quic` | on |
//!
//! ```
//! use brine_master::BuiltinTransports;
//! use brine_transport_api::Registry;
//! let registry = Registry::builtin();
//! assert_eq!(registry.get("zeromq").unwrap().name(), "zeromq");
//! let err = registry.get("smoke-signals").unwrap_err();
//! assert_eq!(err.known, ["quic", "tcp", "zeromq"]);
//! ```
//!
//! Events fired on the bus carry their data as msgpack (bytes as `bin`,
//! `_stamp` added, as Salt's `fire_event`); read it with
//! [`decode_event_data`].

pub mod cli;
pub mod client;
pub mod cmdline;
mod daemon;
mod error;
mod events;
mod handler;
pub mod job_cache;
pub mod keys;
mod maintenance;
pub mod netapi;
pub mod output;
pub mod runners;
mod sequencer;
mod state;
mod supervisor;
mod transports;

pub use daemon::{Master, MasterHandle, ROOT_KEY_FILE};
pub use error::MasterError;
pub use events::decode_event_data;
pub use transports::{BuiltinTransports, builtin_registry};
