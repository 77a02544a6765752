//! The transport layer's contract: bytes in, bytes out.
//!
//! Brine's master and minion never name a backend. They take an
//! `Arc<dyn `[`Transport`]`>` from a [`Registry`], chosen by the `transport`
//! config key as Salt's `Channel.factory(opts)` does, and build from it:
//!
//! | channel | server end (master) | client end (minion, tools) |
//! | --- | --- | --- |
//! | publish (Salt's 4505) | [`PublishServer`] | [`PublishClient`] |
//! | request (Salt's 4506) | [`RequestServer`] + [`RequestHandler`] | [`RequestClient`] |
//! | event bus | [`EventBus`] (in process + IPC) | [`EventClient`] (IPC) |
//!
//! Frames are opaque [`bytes::Bytes`]: jobs, keys, msgpack and crypto live
//! in `brine-protocol`, above every transport. This crate also holds the
//! typed [`TransportError`], the [`Limits`] every backend enforces
//! (a [`DEFAULT_MAX_FRAME_SIZE`] of 64 MiB), length-prefixed [`framing`]
//! helpers, and the built-in Unix-socket event bus in [`ipc`].
//!
//! Backends: `brine-transport-zeromq`, `brine-transport-tcp`,
//! `brine-transport-quic`; a downstream crate implements [`Transport`] the
//! same way and proves it with `brine-conformance-tests`.
//!
//! ```
//! use brine_transport_api::{Registry, Transport};
//! fn pick(registry: &Registry, configured: &str) -> Result<std::sync::Arc<dyn Transport>, String> {
//!     registry.get(configured).map_err(|e| e.to_string())
//! }
//! # assert!(pick(&Registry::new(), "zeromq").is_err());
//! ```
#![warn(missing_docs)]

mod error;
mod event;
pub mod framing;
pub mod ipc;
#[cfg(feature = "memory")]
pub mod memory;
mod options;
pub mod pending;
mod publish;
mod registry;
mod request;
mod transport;

pub use error::{DuplicateTransport, TransportError, UnknownTransport};
pub use event::{Event, EventBus, EventClient, EventSubscription};
pub use options::{
    Backoff, ClientOptions, DEFAULT_MAX_FRAME_SIZE, DEFAULT_QUEUE_DEPTH, EventBusOptions, Limits,
    ServerOptions, Settings, TlsOptions,
};
pub use publish::{Audience, PublishClient, PublishServer, Received};
pub use registry::Registry;
pub use request::{
    Peer, RequestClient, RequestClientExt, RequestHandler, RequestServer, handler_fn,
};
pub use transport::{Capabilities, Transport};
