//! The transport conformance suite, run twice: Salt-compatible (filtering
//! off) and with `zmq_filtering` on.

use std::{net::SocketAddr, sync::Arc};

use brine_transport_api::{ClientOptions, ServerOptions, Transport};
use brine_transport_zeromq::{Config, ZMQ_FILTERING, ZmqTransport};

/// The zeromq transport under test, with or without topic filtering.
#[derive(Debug, Default)]
struct Harness {
    config: Config,
}

impl Harness {
    fn filtering() -> Self {
        Self {
            config: Config {
                zmq_filtering: true,
            },
        }
    }

    fn filtering_setting(&self) -> &'static str {
        if self.config.zmq_filtering {
            "true"
        } else {
            "false"
        }
    }
}

impl brine_conformance_tests::Harness for Harness {
    fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(ZmqTransport::new(self.config))
    }

    fn server_options(&self, bind: SocketAddr) -> ServerOptions {
        let mut opts = ServerOptions::new(bind);
        opts.settings.set(ZMQ_FILTERING, self.filtering_setting());
        opts
    }

    fn client_options(&self, connect: SocketAddr, identity: &str) -> ClientOptions {
        let mut opts = ClientOptions::new(connect, identity);
        opts.settings.set(ZMQ_FILTERING, self.filtering_setting());
        opts
    }
}

brine_conformance_tests::transport_conformance!(salt_compatible, Harness::default());
brine_conformance_tests::transport_conformance!(filtering, Harness::filtering());
