brine_conformance_tests::transport_conformance!(brine_transport_ws_example::TestHarness::default());
