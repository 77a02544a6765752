//! TLS 1.3 for both ends: the server's certificate (given, or generated
//! under `pki_dir`) and the client's trust (a CA bundle or pinned
//! certificate, or trust on first use under `pki_dir`).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use brine_transport_api::{TlsOptions, TransportError};
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, WebPkiSupportedAlgorithms},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::{
    config::Config,
    error::{Error, Opaque, invalid_option},
    pki,
};

/// The ALPN protocol id of Brine over QUIC; a peer speaking anything else is
/// refused during the handshake.
pub const ALPN: &[u8] = b"brine/1";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config_error(err: impl std::error::Error + Send + Sync + 'static) -> TransportError {
    Error::Config(Opaque::new(err)).into()
}

/// The server's certificate chain and key, resolved from its options.
#[derive(Debug)]
pub(crate) struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl ServerIdentity {
    /// Loads `cert` + `key`, or generates / reuses a self-signed pair under
    /// `pki_dir`. Blocking file I/O.
    ///
    /// # Errors
    /// [`TransportError::InvalidOption`] naming `tls` (or the sub-option)
    /// when nothing usable is configured or a file is unreadable.
    pub(crate) fn load(tls: Option<&TlsOptions>) -> Result<Self, TransportError> {
        let Some(tls) = tls else {
            return Err(invalid_option(
                "tls",
                "the quic transport always uses TLS: set tls.cert and tls.key, \
                 or tls.pki_dir to generate a self-signed certificate",
            ));
        };
        let (cert, key) = match (&tls.cert, &tls.key, &tls.pki_dir) {
            (Some(cert), Some(key), _) => (cert.clone(), key.clone()),
            (Some(_), None, _) => {
                return Err(invalid_option("tls.key", "tls.cert is set without it"));
            }
            (None, Some(_), _) => {
                return Err(invalid_option("tls.cert", "tls.key is set without it"));
            }
            (None, None, Some(dir)) => {
                let paths = pki::ensure_self_signed(dir, &tls.server_name)?;
                (paths.cert, paths.key)
            }
            (None, None, None) => {
                return Err(invalid_option(
                    "tls",
                    "set tls.cert and tls.key, or tls.pki_dir to generate a self-signed certificate",
                ));
            }
        };
        Ok(Self {
            chain: pki::read_certs(&cert, "tls.cert")?,
            key: pki::read_key(&key, "tls.key")?,
        })
    }

    /// quinn's server configuration: TLS 1.3 only, ALPN [`ALPN`], the
    /// timers of `config`, and `bidi_streams` concurrent streams per connection.
    pub(crate) fn server_config(
        &self,
        config: &Config,
        bidi_streams: usize,
    ) -> Result<quinn::ServerConfig, TransportError> {
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_error)?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| invalid_option("tls.key", format!("does not fit the certificate: {e}")))?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto =
            quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(config_error)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(config.server_transport(bidi_streams));
        Ok(server)
    }
}

/// How a client decides to trust the server.
#[derive(Debug)]
enum Trust {
    /// `tls.ca`: a certificate in the bundle equal to the server's is a pin;
    /// otherwise the chain must lead to one of the bundle's roots and name
    /// the server.
    Ca {
        pinned: Vec<CertificateDer<'static>>,
        webpki: Arc<rustls::client::WebPkiServerVerifier>,
    },
    /// `tls.pki_dir` alone: the first certificate seen is pinned at `pin`.
    FirstUse { pin: PathBuf },
}

#[derive(Debug, Default)]
struct VerifyState {
    /// The pin in force for the next handshake (trust on first use).
    expected: Option<CertificateDer<'static>>,
    /// Why the last handshake's certificate was refused.
    rejection: Option<String>,
}

/// The client's certificate check; one per client connection.
#[derive(Debug)]
pub(crate) struct Verifier {
    trust: Trust,
    algorithms: WebPkiSupportedAlgorithms,
    state: Mutex<VerifyState>,
}

impl Verifier {
    /// The pin file, when trusting on first use.
    pub(crate) fn pin_path(&self) -> Option<&Path> {
        match &self.trust {
            Trust::FirstUse { pin } => Some(pin),
            Trust::Ca { .. } => None,
        }
    }

    /// Sets the pin required from the next handshake on (`None`: accept
    /// the first certificate) and forgets the last rejection.
    pub(crate) fn prepare(&self, expected: Option<CertificateDer<'static>>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.expected = expected;
        state.rejection = None;
    }

    /// Why the last handshake's certificate was refused, if it was.
    pub(crate) fn take_rejection(&self) -> Option<String> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.rejection.take()
    }

    fn reject(&self, reason: String) -> rustls::Error {
        tracing::warn!(%reason, "refusing the server's certificate");
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.rejection = Some(reason);
        rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure)
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.trust {
            Trust::Ca { pinned, webpki } => {
                if pinned.iter().any(|p| p == end_entity) {
                    return Ok(ServerCertVerified::assertion());
                }
                webpki
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                    .map_err(|err| self.reject(format!("certificate not trusted by tls.ca: {err}")))
            }
            Trust::FirstUse { pin } => {
                let expected = self
                    .state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .expected
                    .clone();
                match expected {
                    Some(expected) if expected != *end_entity => Err(self.reject(format!(
                        "the master's certificate has changed since it was pinned at {} on \
                         first contact; if the change is intended, remove that file",
                        pin.display()
                    ))),
                    _ => Ok(ServerCertVerified::assertion()),
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A client's TLS setup: the verifier (kept to read its verdicts) and the
/// quinn client configuration using it.
#[derive(Debug)]
pub(crate) struct ClientTls {
    pub(crate) verifier: Arc<Verifier>,
    pub(crate) config: quinn::ClientConfig,
    pub(crate) server_name: String,
}

impl ClientTls {
    /// Builds the client side from its options. Blocking file I/O.
    ///
    /// # Errors
    /// [`TransportError::InvalidOption`] naming `tls` (or the sub-option)
    /// when there is no way to trust a server or a file is unreadable.
    pub(crate) fn load(tls: Option<&TlsOptions>, config: &Config) -> Result<Self, TransportError> {
        let Some(tls) = tls else {
            return Err(invalid_option(
                "tls",
                "the quic transport always uses TLS: set tls.ca to the master's CA or \
                 certificate, or tls.pki_dir to trust the master on first use",
            ));
        };
        let provider = provider();
        let trust = match (&tls.ca, &tls.pki_dir) {
            (Some(ca), _) => {
                let pinned = pki::read_certs(ca, "tls.ca")?;
                let mut roots = rustls::RootCertStore::empty();
                let _ = roots.add_parsable_certificates(pinned.iter().cloned());
                let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .map_err(|e| invalid_option("tls.ca", format!("{}: {e}", ca.display())))?;
                Trust::Ca { pinned, webpki }
            }
            (None, Some(dir)) => Trust::FirstUse {
                pin: dir.join(pki::PIN_FILE),
            },
            (None, None) => {
                return Err(invalid_option(
                    "tls",
                    "set tls.ca, or tls.pki_dir to trust the master on first use",
                ));
            }
        };
        let verifier = Arc::new(Verifier {
            trust,
            algorithms: provider.signature_verification_algorithms,
            state: Mutex::default(),
        });
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_error)?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        client.alpn_protocols = vec![ALPN.to_vec()];
        let crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(client).map_err(config_error)?;
        let mut quic = quinn::ClientConfig::new(Arc::new(crypto));
        // A client accepts no streams from the server.
        quic.transport_config(config.transport(0));
        let server_name = if tls.server_name.is_empty() {
            pki::DEFAULT_SERVER_NAME.to_owned()
        } else {
            tls.server_name.clone()
        };
        Ok(Self {
            verifier,
            config: quic,
            server_name,
        })
    }
}
