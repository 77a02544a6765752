//! The whole suite through `Arc<dyn Transport>` → `Box<dyn Transport>`.
mod support;

brine_conformance_tests::transport_conformance!(support::wrapped::WrappedHarness::default());
