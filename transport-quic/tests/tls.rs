//! TLS: certificate generation and reuse, trust on first use, CA trust,
//! and missing TLS options.

mod support;

use std::{fs, path::PathBuf};

use brine_transport_api::{
    ClientOptions, RequestClient, ServerOptions, TlsOptions, TransportError,
};
use brine_transport_quic::pki;
use bytes::Bytes;
use support::*;

async fn ping(client: &dyn RequestClient) -> Result<Bytes, TransportError> {
    client.request(Bytes::from_static(b"ping"), STEP).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generates_a_self_signed_certificate_once_and_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master");
    let t = transport();

    let server = t
        .bind_requests(server_opts(loopback(), &master), echo())
        .await
        .unwrap();
    let cert = fs::read(cert_path(&master)).unwrap();
    let key = fs::read(master.join(pki::KEY_FILE)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(master.join(pki::KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "private key must be owner-only");
    }
    let client = t
        .connect_requests(client_opts_ca(
            server.local_addr(),
            "m",
            &cert_path(&master),
        ))
        .await
        .unwrap();
    assert_eq!(&ping(&*client).await.unwrap()[..], b"re:ping");
    client.close().await.unwrap();
    let addr = server.local_addr();
    server.close().await.unwrap();

    // A restart on the same port finds and reuses the same pair.
    let server = t
        .bind_requests(server_opts(addr, &master), echo())
        .await
        .unwrap();
    assert_eq!(fs::read(cert_path(&master)).unwrap(), cert);
    assert_eq!(fs::read(master.join(pki::KEY_FILE)).unwrap(), key);
    let client = t
        .connect_requests(client_opts_ca(addr, "m", &cert_path(&master)))
        .await
        .unwrap();
    assert_eq!(&ping(&*client).await.unwrap()[..], b"re:ping");
    client.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_on_first_use_pins_and_then_rejects_a_changed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second, minion) = (
        dir.path().join("first"),
        dir.path().join("second"),
        dir.path().join("minion"),
    );
    let t = transport();
    let server = t
        .bind_requests(server_opts(loopback(), &first), echo())
        .await
        .unwrap();
    let addr = server.local_addr();
    let client = t
        .connect_requests(client_opts_tofu(addr, "m", &minion))
        .await
        .unwrap();
    assert_eq!(&ping(&*client).await.unwrap()[..], b"re:ping");
    let pin = minion.join(pki::PIN_FILE);
    assert_eq!(
        fs::read(&pin).unwrap(),
        fs::read(cert_path(&first)).unwrap(),
        "the first certificate seen is pinned"
    );
    client.close().await.unwrap();
    server.close().await.unwrap();

    // Another master (another certificate) on the same address is refused.
    let impostor = t
        .bind_requests(server_opts(addr, &second), echo())
        .await
        .unwrap();
    let client = t
        .connect_requests(client_opts_tofu(addr, "m", &minion))
        .await
        .unwrap();
    match ping(&*client).await {
        Err(TransportError::Tls { reason, .. }) => {
            assert!(reason.contains("changed"), "unclear reason: {reason}");
        }
        other => panic!("expected a tls error, got {other:?}"),
    }
    client.close().await.unwrap();
    impostor.close().await.unwrap();

    // The genuine master is still trusted.
    let server = t
        .bind_requests(server_opts(addr, &first), echo())
        .await
        .unwrap();
    let client = t
        .connect_requests(client_opts_tofu(addr, "m", &minion))
        .await
        .unwrap();
    assert_eq!(&ping(&*client).await.unwrap()[..], b"re:ping");
    client.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master");
    let other = dir.path().join("other");
    pki::ensure_self_signed(&other, "").unwrap();
    let t = transport();
    let server = t
        .bind_requests(server_opts(loopback(), &master), echo())
        .await
        .unwrap();
    let client = t
        .connect_requests(client_opts_ca(server.local_addr(), "m", &cert_path(&other)))
        .await
        .unwrap();
    match ping(&*client).await {
        Err(TransportError::Tls { reason, .. }) => {
            assert!(reason.contains("not trusted"), "unclear reason: {reason}");
        }
        other => panic!("expected a tls error, got {other:?}"),
    }
    // The server is unharmed: a client with the right CA gets through.
    let good = t
        .connect_requests(client_opts_ca(
            server.local_addr(),
            "m",
            &cert_path(&master),
        ))
        .await
        .unwrap();
    assert_eq!(&ping(&*good).await.unwrap()[..], b"re:ping");
    client.close().await.unwrap();
    good.close().await.unwrap();
    server.close().await.unwrap();
}

/// A CA and a server certificate it signed for `names`, as PEM files in `dir`.
fn ca_signed(dir: &std::path::Path, names: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params =
        rcgen::CertificateParams::new(Vec::<String>::new()).expect("test certificate");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test ca");
    let ca = rcgen::CertifiedIssuer::self_signed(
        ca_params,
        rcgen::KeyPair::generate().expect("test certificate"),
    )
    .expect("test certificate");
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let leaf_key = rcgen::KeyPair::generate().expect("test certificate");
    let leaf = rcgen::CertificateParams::new(names)
        .expect("test certificate")
        .signed_by(&leaf_key, &ca)
        .expect("test certificate");
    fs::create_dir_all(dir).expect("test certificate");
    let (ca_path, cert, key) = (
        dir.join("ca.pem"),
        dir.join("server.crt"),
        dir.join("server.key"),
    );
    fs::write(&ca_path, ca.pem()).expect("test certificate");
    fs::write(&cert, leaf.pem()).expect("test certificate");
    fs::write(&key, leaf_key.serialize_pem()).expect("test certificate");
    (ca_path, cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_certificate_is_checked_against_the_ca_and_the_server_name() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_signed(dir.path(), &["master.example"]);
    let t = transport();
    let mut opts = ServerOptions::new(loopback());
    opts.tls = Some(TlsOptions {
        cert: Some(cert),
        key: Some(key),
        ..TlsOptions::default()
    });
    let server = t.bind_requests(opts, echo()).await.unwrap();
    let addr = server.local_addr();

    let mut right = client_opts_ca(addr, "m", &ca);
    if let Some(tls) = right.tls.as_mut() {
        tls.server_name = "master.example".to_owned();
    }
    let client = t.connect_requests(right).await.unwrap();
    assert_eq!(&ping(&*client).await.unwrap()[..], b"re:ping");
    client.close().await.unwrap();

    // The default name (brine-master) is not in this certificate.
    let client = t
        .connect_requests(client_opts_ca(addr, "m", &ca))
        .await
        .unwrap();
    match ping(&*client).await {
        Err(TransportError::Tls { reason, .. }) => {
            assert!(reason.contains("not trusted"), "unclear reason: {reason}");
        }
        other => panic!("expected a tls error, got {other:?}"),
    }
    client.close().await.unwrap();
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tls_options_are_a_clear_error() {
    let t = transport();
    let err = t
        .bind_requests(ServerOptions::new(loopback()), echo())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TransportError::InvalidOption { option, .. } if option == "tls"),
        "{err}"
    );
    let err = t
        .bind_publisher(ServerOptions::new(loopback()))
        .await
        .unwrap_err();
    assert!(matches!(&err, TransportError::InvalidOption { option, .. } if option == "tls"));
    let err = t
        .connect_requests(ClientOptions::new(loopback(), "m"))
        .await
        .unwrap_err();
    assert!(matches!(&err, TransportError::InvalidOption { option, .. } if option == "tls"));
    let err = t
        .subscribe(ClientOptions::new(loopback(), "m"))
        .await
        .unwrap_err();
    assert!(matches!(&err, TransportError::InvalidOption { option, .. } if option == "tls"));
}
