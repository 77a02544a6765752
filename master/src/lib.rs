//! The Brine master.
//!
//! So far this crate holds the one place that knows every built-in transport:
//! [`builtin_registry`] (also reachable as `Registry::builtin()` through
//! [`BuiltinTransports`]). The master and minion cores never name a backend;
//! they take an `Arc<dyn Transport>` from a registry by the `transport`
//! config key, as Salt's `Channel.factory(opts)` does. A downstream crate
//! starts from the built-ins and registers its own transport beside them.
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

mod transports;

pub use transports::{BuiltinTransports, builtin_registry};
