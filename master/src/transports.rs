//! The built-in transport registry.

use brine_transport_api::Registry;

/// A registry holding every backend compiled in (see the crate's feature table).
pub fn builtin_registry() -> Registry {
    let mut registry = Registry::new();
    // Each built-in registers under its own distinct name into an empty
    // registry, so these cannot collide; a collision would be a build bug
    // that the unit test below catches.
    #[cfg(feature = "zeromq")]
    let _ = brine_transport_zeromq::register(&mut registry);
    #[cfg(feature = "tcp")]
    let _ = brine_transport_tcp::register(&mut registry);
    #[cfg(feature = "quic")]
    let _ = brine_transport_quic::register(&mut registry);
    registry
}

/// `Registry::builtin()`: the registry of every compiled-in backend.
pub trait BuiltinTransports {
    /// Every built-in backend, by name.
    fn builtin() -> Self;
}

impl BuiltinTransports for Registry {
    fn builtin() -> Self {
        builtin_registry()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_is_registered_under_its_name() {
        let registry = Registry::builtin();
        assert_eq!(
            registry.names().collect::<Vec<_>>(),
            ["quic", "tcp", "zeromq"]
        );
        for name in ["zeromq", "tcp", "quic", "TCP"] {
            let transport = registry.get(name).unwrap();
            assert_eq!(transport.name(), name.to_ascii_lowercase());
        }
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let err = Registry::builtin().get("zmq").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown transport "zmq" (known transports: quic, tcp, zeromq)"#
        );
    }

    #[test]
    fn a_downstream_transport_joins_the_builtins() {
        let mut registry = Registry::builtin();
        let tcp = registry.get("tcp").unwrap();
        // Registering a second backend under a taken name is refused.
        assert!(registry.register(tcp).is_err());
    }
}
