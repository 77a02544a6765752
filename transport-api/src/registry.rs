//! The registry: `transport` config key → backend.

use std::{collections::BTreeMap, sync::Arc};

use crate::{DuplicateTransport, Transport, UnknownTransport};

/// Maps a lowercase `transport` name to its backend.
///
/// A value, not a global: the daemons' built-in registry is assembled where
/// all backends are known (`brine-master`), and a downstream crate builds its
/// own (the built-ins plus its transport) and hands it to the same master
/// and minion libraries.
///
/// ```
/// use brine_transport_api::Registry;
/// let registry = Registry::new();
/// let err = registry.get("carrier-pigeon").unwrap_err();
/// assert_eq!(err.to_string(), r#"unknown transport "carrier-pigeon" (known transports: )"#);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Registry {
    transports: BTreeMap<String, Arc<dyn Transport>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `transport` under its [`name`](Transport::name).
    ///
    /// # Errors
    /// [`DuplicateTransport`] if the name is taken.
    pub fn register(&mut self, transport: Arc<dyn Transport>) -> Result<(), DuplicateTransport> {
        let name = transport.name().to_ascii_lowercase();
        if self.transports.contains_key(&name) {
            return Err(DuplicateTransport { name });
        }
        self.transports.insert(name, transport);
        Ok(())
    }

    /// The backend called `name` (case-insensitive).
    ///
    /// # Errors
    /// [`UnknownTransport`] listing every known name.
    pub fn get(&self, name: &str) -> Result<Arc<dyn Transport>, UnknownTransport> {
        self.transports
            .get(&name.trim().to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| UnknownTransport {
                name: name.to_owned(),
                known: self.names().map(str::to_owned).collect(),
            })
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.transports.keys().map(String::as_str)
    }
}
