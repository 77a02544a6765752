//! The transport conformance suite against the QUIC backend.
//!
//! Each test's harness generates a self-signed certificate once into a
//! temporary `pki_dir` it keeps alive: servers use that `pki_dir` (the
//! generate-or-reuse path finds the certificate) and clients trust the
//! certificate through `ca`, so every run is deterministic.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use brine_conformance_tests::Harness;
use brine_transport_api::{ClientOptions, ServerOptions, TlsOptions, Transport};
use brine_transport_quic::{QuicTransport, pki};
use tempfile::TempDir;

struct QuicHarness {
    transport: Arc<dyn Transport>,
    pki_dir: PathBuf,
    cert: PathBuf,
    _dir: TempDir,
}

impl QuicHarness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki_dir = dir.path().join("master");
        let paths = pki::ensure_self_signed(&pki_dir, "").expect("certificate");
        Self {
            transport: Arc::new(QuicTransport::new()),
            pki_dir,
            cert: paths.cert,
            _dir: dir,
        }
    }
}

impl Harness for QuicHarness {
    fn transport(&self) -> Arc<dyn Transport> {
        self.transport.clone()
    }

    fn server_options(&self, bind: SocketAddr) -> ServerOptions {
        let mut opts = ServerOptions::new(bind);
        opts.tls = Some(TlsOptions {
            pki_dir: Some(self.pki_dir.clone()),
            ..TlsOptions::default()
        });
        opts
    }

    fn client_options(&self, connect: SocketAddr, identity: &str) -> ClientOptions {
        let mut opts = ClientOptions::new(connect, identity);
        opts.tls = Some(TlsOptions {
            ca: Some(self.cert.clone()),
            ..TlsOptions::default()
        });
        opts
    }
}

brine_conformance_tests::transport_conformance!(QuicHarness::new());
