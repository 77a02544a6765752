//! The conformance harness, kept in the library so the plugin's test file
//! is one line.

use std::sync::Arc;

use brine_conformance_tests::Harness;
use brine_transport_api::Transport;

use crate::WsTransport;

/// Runs the conformance suite against [`WsTransport`] with default options.
#[derive(Debug, Default)]
pub struct TestHarness {
    transport: WsTransport,
}

impl Harness for TestHarness {
    fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.transport)
    }
}
