//! The whole suite against the in-process transport.
mod support;

brine_conformance_tests::transport_conformance!(support::MemoryHarness::default());
