//! Shared test helpers: harnesses for plain and TLS runs, throwaway
//! certificates.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use brine_conformance_tests::Harness;
use brine_transport_api::{
    Backoff, ClientOptions, PublishClient, Received, ServerOptions, TlsOptions, Transport,
};
use brine_transport_tcp::TcpTransport;
use tempfile::TempDir;

/// A self-signed certificate and its key, written as PEM files into a
/// temporary directory that lives as long as this value.
pub struct Certificate {
    _dir: TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certificate {
    /// A fresh certificate for `names`.
    pub fn self_signed(names: &[&str]) -> Self {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let generated = rcgen::generate_simple_self_signed(names).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        Self {
            _dir: dir,
            cert,
            key,
        }
    }

    /// Server TLS options presenting this certificate.
    pub fn server_tls(&self) -> TlsOptions {
        TlsOptions {
            cert: Some(self.cert.clone()),
            key: Some(self.key.clone()),
            ..TlsOptions::default()
        }
    }

    /// Client TLS options pinning this certificate, with the default name.
    pub fn client_tls(&self) -> TlsOptions {
        TlsOptions {
            ca: Some(self.cert.clone()),
            ..TlsOptions::default()
        }
    }
}

/// Plain TCP, or TLS with a throwaway certificate for `brine-master` and
/// `localhost`.
pub struct TcpHarness {
    tls: Option<Certificate>,
}

impl TcpHarness {
    pub fn plain() -> Self {
        Self { tls: None }
    }

    pub fn tls() -> Self {
        Self {
            tls: Some(Certificate::self_signed(&["brine-master", "localhost"])),
        }
    }
}

impl Harness for TcpHarness {
    fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(TcpTransport::new())
    }

    fn server_options(&self, bind: SocketAddr) -> ServerOptions {
        let mut opts = ServerOptions::new(bind);
        opts.tls = self.tls.as_ref().map(Certificate::server_tls);
        opts
    }

    fn client_options(&self, connect: SocketAddr, identity: &str) -> ClientOptions {
        let mut opts = ClientOptions::new(connect, identity);
        opts.tls = self.tls.as_ref().map(Certificate::client_tls);
        opts
    }
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A CA and a leaf certificate it signed, as PEM files.
pub struct CaSigned {
    _dir: TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CaSigned {
    /// A fresh CA and a leaf for `names` signed by it.
    pub fn new(names: &[&str]) -> Self {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let paths = ["ca.pem", "cert.pem", "key.pem"].map(|f| dir.path().join(f));
        std::fs::write(&paths[0], ca.pem()).unwrap();
        std::fs::write(&paths[1], leaf.pem()).unwrap();
        std::fs::write(&paths[2], leaf_key.serialize_pem()).unwrap();
        let [ca, cert, key] = paths;
        Self {
            _dir: dir,
            ca,
            cert,
            key,
        }
    }
}

/// Client options that retry quickly.
pub fn quick(mut opts: ClientOptions) -> ClientOptions {
    opts.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    opts
}

/// The next event from a subscriber, failing the test after 10 s.
pub async fn next(client: &dyn PublishClient) -> Received {
    tokio::time::timeout(Duration::from_secs(10), client.recv())
        .await
        .expect("subscriber event within 10 s")
        .expect("subscriber open")
}

/// Log lines captured on the current thread (use a current-thread runtime
/// so the transport's tasks log here too).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Starts capturing warnings and errors until the guard drops.
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Checks that the server dropped the stalled subscriber `stalled_id` and
/// said so, kept the one whose name holds `healthy_word`, and closed the
/// stalled socket before all `sent_bytes` reached it.
pub async fn assert_stalled_dropped(
    logs: &Logs,
    stalled: &mut tokio::net::TcpStream,
    healthy_word: &str,
    sent_bytes: usize,
) {
    use tokio::io::AsyncReadExt;
    let text = logs.text();
    assert!(
        text.contains("stalled-minion") && text.contains("stopped reading; 4 frames queued"),
        "no warning naming the stalled subscriber in:\n{text}"
    );
    assert!(
        !text.contains(healthy_word),
        "the healthy subscriber was dropped:\n{text}"
    );
    // The stalled socket was closed by the server: what was in flight, then EOF.
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut received))
        .await
        .expect("the server closes the stalled connection")
        .unwrap();
    assert!(received.len() < sent_bytes);
}

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
