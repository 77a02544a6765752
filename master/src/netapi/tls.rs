//! HTTPS for the REST API: a rustls acceptor from `ssl_crt` / `ssl_key`.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::NetapiError;

/// An acceptor serving the certificate chain in `crt` with the key in
/// `key` (both PEM), HTTP/1.1 only. Blocking file reads.
///
/// # Errors
/// [`NetapiError::Tls`] naming the file and the reason.
pub(crate) fn acceptor(crt: &Path, key: &Path) -> Result<TlsAcceptor, NetapiError> {
    let fail = |path: &Path, reason: String| NetapiError::Tls {
        path: path.to_owned(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(crt)
        .map_err(|e| fail(crt, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| fail(crt, e.to_string()))?;
    if chain.is_empty() {
        return Err(fail(crt, "no certificate in the file".to_owned()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(crt, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| fail(key, e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
