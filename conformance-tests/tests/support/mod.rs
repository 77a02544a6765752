//! Harnesses for the suite's self-tests: the in-process transport, a
//! wrapper that hides it behind `Box<dyn Transport>`, and broken variants.
#![allow(dead_code, unreachable_pub)] // each test file uses a part

pub mod broken;
pub mod wrapped;

use std::sync::Arc;

use brine_conformance_tests::Harness;
use brine_transport_api::{Transport, memory::MemoryTransport};

/// The suite over [`MemoryTransport`]; each harness value is its own network.
#[derive(Debug, Default)]
pub struct MemoryHarness {
    net: MemoryTransport,
}

impl Harness for MemoryHarness {
    fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.net.clone())
    }

    fn binds_os_sockets(&self) -> bool {
        false
    }
}
