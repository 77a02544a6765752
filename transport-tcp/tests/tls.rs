//! TLS: trust, names, and what a mismatch looks like.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::time::Duration;

use brine_transport_api::{
    Audience, ClientOptions, Received, RequestServer, ServerOptions, TlsOptions, Transport,
    TransportError, handler_fn,
};
use brine_transport_tcp::TcpTransport;
use bytes::Bytes;
use support::{CaSigned, Certificate, loopback, next, quick};

const LONG: Duration = Duration::from_secs(10);

async fn tls_echo(tls: TlsOptions) -> Box<dyn RequestServer> {
    let mut opts = ServerOptions::new(loopback());
    opts.tls = Some(tls);
    TcpTransport::new()
        .bind_requests(opts, handler_fn(|frame: Bytes, _| async move { frame }))
        .await
        .unwrap()
}

async fn request_with(
    server: &dyn RequestServer,
    tls: Option<TlsOptions>,
) -> Result<Bytes, TransportError> {
    let mut opts = quick(ClientOptions::new(server.local_addr(), "minion"));
    opts.tls = tls;
    let client = TcpTransport::new().connect_requests(opts).await.unwrap();
    let result = client.request(Bytes::from_static(b"hello"), LONG).await;
    client.close().await.unwrap();
    result
}

#[tokio::test]
async fn pinned_self_signed_certificate_is_trusted() {
    let cert = Certificate::self_signed(&["brine-master"]);
    let server = tls_echo(cert.server_tls()).await;
    let reply = request_with(&*server, Some(cert.client_tls()))
        .await
        .unwrap();
    assert_eq!(&reply[..], b"hello");
    server.close().await.unwrap();
}

#[tokio::test]
async fn certificate_signed_by_a_trusted_ca_is_accepted_under_its_name() {
    let pki = CaSigned::new(&["salt.example.com"]);
    let server = tls_echo(TlsOptions {
        cert: Some(pki.cert.clone()),
        key: Some(pki.key.clone()),
        ..TlsOptions::default()
    })
    .await;
    let client_tls = |name: &str| TlsOptions {
        ca: Some(pki.ca.clone()),
        server_name: name.to_owned(),
        ..TlsOptions::default()
    };
    let reply = request_with(&*server, Some(client_tls("salt.example.com")))
        .await
        .unwrap();
    assert_eq!(&reply[..], b"hello");
    // The default name is not in this certificate.
    let err = request_with(&*server, Some(client_tls("")))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Tls { .. }), "{err:?}");
    server.close().await.unwrap();
}

#[tokio::test]
async fn wrong_ca_fails_with_a_tls_error_and_the_server_goes_on() {
    let real = Certificate::self_signed(&["brine-master"]);
    let other = Certificate::self_signed(&["brine-master"]);
    let server = tls_echo(real.server_tls()).await;
    let err = request_with(&*server, Some(other.client_tls()))
        .await
        .unwrap_err();
    let TransportError::Tls { reason, .. } = &err else {
        panic!("expected a tls error, got {err:?}");
    };
    assert!(!reason.is_empty());
    assert!(!err.is_retryable());
    let reply = request_with(&*server, Some(real.client_tls()))
        .await
        .unwrap();
    assert_eq!(&reply[..], b"hello");
    server.close().await.unwrap();
}

#[tokio::test]
async fn wrong_server_name_fails_with_a_tls_error() {
    let cert = Certificate::self_signed(&["brine-master"]);
    let server = tls_echo(cert.server_tls()).await;
    let mut tls = cert.client_tls();
    tls.server_name = "someone-else".to_owned();
    let err = request_with(&*server, Some(tls)).await.unwrap_err();
    assert!(matches!(err, TransportError::Tls { .. }), "{err:?}");
    server.close().await.unwrap();
}

#[tokio::test]
async fn plain_client_gets_no_reply_from_a_tls_server() {
    let cert = Certificate::self_signed(&["brine-master"]);
    let server = tls_echo(cert.server_tls()).await;
    let mut opts = ClientOptions::new(server.local_addr(), "plain");
    opts.connect_timeout = Duration::from_secs(1);
    let client = TcpTransport::new().connect_requests(opts).await.unwrap();
    let err = client
        .request(Bytes::from_static(b"hello"), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    server.close().await.unwrap();
}

#[tokio::test]
async fn missing_or_bad_material_is_an_option_error_naming_the_option() {
    let cert = Certificate::self_signed(&["brine-master"]);
    let mut opts = ServerOptions::new(loopback());
    opts.tls = Some(TlsOptions {
        cert: Some(cert.cert.clone()),
        ..TlsOptions::default()
    });
    let err = TcpTransport::new()
        .bind_publisher(opts.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TransportError::InvalidOption { option, .. } if option == "tls.key"),
        "{err:?}"
    );
    opts.tls = Some(TlsOptions {
        cert: Some(cert.cert.clone()),
        key: Some(cert.cert.clone()),
        ..TlsOptions::default()
    });
    let err = TcpTransport::new().bind_publisher(opts).await.unwrap_err();
    assert!(
        matches!(&err, TransportError::InvalidOption { option, .. } if option == "tls.key"),
        "{err:?}"
    );
    let mut client = ClientOptions::new(loopback(), "m");
    client.tls = Some(TlsOptions {
        ca: Some(cert.cert.clone()),
        server_name: "not a name!".to_owned(),
        ..TlsOptions::default()
    });
    let err = TcpTransport::new().subscribe(client).await.unwrap_err();
    assert!(
        matches!(&err, TransportError::InvalidOption { option, .. } if option == "tls.server_name"),
        "{err:?}"
    );
}

#[tokio::test]
async fn subscriber_with_the_wrong_ca_never_connects_and_a_trusting_one_does() {
    let real = Certificate::self_signed(&["brine-master"]);
    let other = Certificate::self_signed(&["brine-master"]);
    let mut opts = ServerOptions::new(loopback());
    opts.tls = Some(real.server_tls());
    let server = TcpTransport::new().bind_publisher(opts).await.unwrap();
    let mut wrong = quick(ClientOptions::new(server.local_addr(), "wrong"));
    wrong.tls = Some(other.client_tls());
    let wrong = TcpTransport::new().subscribe(wrong).await.unwrap();
    let mut right = quick(ClientOptions::new(server.local_addr(), "right"));
    right.tls = Some(real.client_tls());
    let right = TcpTransport::new().subscribe(right).await.unwrap();
    assert_eq!(next(&*right).await, Received::Connected);
    server
        .publish(Bytes::from_static(b"x"), &Audience::All)
        .await
        .unwrap();
    assert_eq!(
        next(&*right).await,
        Received::Frame(Bytes::from_static(b"x"))
    );
    // Retrying with backoff the whole time, the wrong one has nothing to say.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), wrong.recv())
            .await
            .is_err()
    );
    wrong.close().await.unwrap();
    right.close().await.unwrap();
    server.close().await.unwrap();
}
