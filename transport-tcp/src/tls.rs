//! Optional TLS (rustls with the ring provider): building the client and
//! server configurations from [`TlsOptions`] PEM files, and naming handshake
//! failures.
//!
//! - Server: `tls.cert` (the chain, leaf first) and `tls.key` (PKCS#8,
//!   PKCS#1 or SEC1) are required. Generating a certificate into `pki_dir`
//!   is not done by this backend: TLS is optional here, so an operator who
//!   turns it on brings the material.
//! - Client: `tls.ca` is required and holds the CAs to trust, or the
//!   server's own self-signed certificate to pin. The server certificate
//!   must name `tls.server_name`, or [`DEFAULT_SERVER_NAME`] when that is
//!   empty. Trust on first use through `pki_dir` is not implemented.
//! - TLS 1.2 and 1.3, rustls' safe defaults; no client certificates (minions
//!   authenticate in the channel layer, as in Salt).

use std::{io, path::Path, sync::Arc};

use brine_transport_api::{TlsOptions, TransportError};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::{NAME, error::Error};

/// The name a client expects in the server certificate when
/// `tls.server_name` is empty.
pub const DEFAULT_SERVER_NAME: &str = "brine-master";

/// A client's TLS setup: whom it trusts and which name it checks.
#[derive(Clone)]
pub(crate) struct ClientTls {
    pub(crate) connector: TlsConnector,
    pub(crate) server_name: ServerName<'static>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Builds a client setup from `opts` (reading the PEM files off the runtime).
///
/// # Errors
/// [`TransportError::InvalidOption`] naming the option whose file is missing
/// or unreadable, or a bad server name; [`TransportError::Backend`] if rustls
/// refuses the material.
pub(crate) async fn client(opts: &TlsOptions) -> Result<ClientTls, TransportError> {
    let opts = opts.clone();
    run_blocking(move || client_blocking(&opts)).await
}

/// Builds a server acceptor from `opts` (reading the PEM files off the runtime).
///
/// # Errors
/// As [`client`].
pub(crate) async fn server(opts: &TlsOptions) -> Result<TlsAcceptor, TransportError> {
    let opts = opts.clone();
    run_blocking(move || server_blocking(&opts)).await
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, TransportError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(TransportError::from),
        Err(join) => Err(TransportError::Backend {
            transport: NAME,
            source: Box::new(join),
        }),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config(err: rustls::Error) -> Error {
    Error::TlsConfig(Box::new(err))
}

fn client_blocking(opts: &TlsOptions) -> Result<ClientTls, Error> {
    let ca = opts
        .ca
        .as_deref()
        .ok_or(Error::MissingTlsFile { option: "tls.ca" })?;
    let mut roots = RootCertStore::empty();
    for cert in load_certs("tls.ca", ca)? {
        roots.add(cert).map_err(|err| Error::Pem {
            option: "tls.ca",
            path: ca.to_owned(),
            reason: err.to_string(),
        })?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_config)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = match opts.server_name.trim() {
        "" => DEFAULT_SERVER_NAME,
        name => name,
    };
    let server_name = ServerName::try_from(name.to_owned()).map_err(|_| Error::ServerName {
        name: name.to_owned(),
    })?;
    Ok(ClientTls {
        connector: TlsConnector::from(Arc::new(config)),
        server_name,
    })
}

fn server_blocking(opts: &TlsOptions) -> Result<TlsAcceptor, Error> {
    let cert = opts
        .cert
        .as_deref()
        .ok_or(Error::MissingTlsFile { option: "tls.cert" })?;
    let key = opts
        .key
        .as_deref()
        .ok_or(Error::MissingTlsFile { option: "tls.key" })?;
    let chain = load_certs("tls.cert", cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|err| Error::Pem {
        option: "tls.key",
        path: key.to_owned(),
        reason: err.to_string(),
    })?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls_config)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn load_certs(option: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem_err = |reason: String| Error::Pem {
        option,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| pem_err(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_err(err.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err("no certificate in the file".to_owned()));
    }
    Ok(certs)
}

/// Maps an I/O error from a TLS handshake: a rustls failure (untrusted
/// certificate, wrong name, alert from the peer, not TLS at all) becomes
/// [`TransportError::Tls`], anything else the usual I/O mapping.
pub(crate) fn handshake_error(peer: &str, err: io::Error) -> TransportError {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => TransportError::Tls {
            peer: peer.to_owned(),
            reason: tls.to_string(),
        },
        None => TransportError::from_io(peer, err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_material_names_the_option() {
        let err = TransportError::from(client_blocking(&TlsOptions::default()).unwrap_err());
        assert!(err.to_string().contains("tls.ca"), "{err}");
        let Err(err) = server_blocking(&TlsOptions::default()) else {
            panic!("a server without a certificate was accepted")
        };
        let err = TransportError::from(err);
        assert!(err.to_string().contains("tls.cert"), "{err}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, b"not pem at all\n").unwrap();
        let opts = TlsOptions {
            ca: Some(path),
            ..TlsOptions::default()
        };
        let err = TransportError::from(client_blocking(&opts).unwrap_err());
        assert!(
            matches!(&err, TransportError::InvalidOption { option, .. } if option == "tls.ca"),
            "{err}"
        );
    }

    #[test]
    fn non_rustls_handshake_errors_keep_their_kind() {
        let err = handshake_error("p", io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
        assert!(
            matches!(err, TransportError::ConnectionLost { .. }),
            "{err}"
        );
        let err = handshake_error(
            "p",
            io::Error::new(
                io::ErrorKind::InvalidData,
                rustls::Error::General("bad".into()),
            ),
        );
        assert!(matches!(err, TransportError::Tls { .. }), "{err}");
    }
}
