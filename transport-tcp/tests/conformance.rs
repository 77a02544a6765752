//! The transport conformance suite, over plain TCP and over TLS.

mod support;

use support::TcpHarness;

brine_conformance_tests::transport_conformance!(plain, TcpHarness::plain());
brine_conformance_tests::transport_conformance!(tls, TcpHarness::tls());
