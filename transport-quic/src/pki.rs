//! Certificate files under `pki_dir`: the master's self-signed certificate,
//! generated at first start and reused afterwards, and the minion's
//! trust-on-first-use pin of the master's certificate.
//!
//! Files are written atomically (a temporary file in the same directory,
//! fsync, rename), so a crash never leaves a half-written key; the private
//! key is created with mode `0600`.

use std::{
    fs, io,
    io::Write,
    path::{Path, PathBuf},
};

use brine_transport_api::TransportError;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::error::{Error, Opaque, file_io, invalid_option};

/// File name of the generated server certificate in `pki_dir`.
pub const CERT_FILE: &str = "quic.crt";
/// File name of the generated server private key in `pki_dir`.
pub const KEY_FILE: &str = "quic.key";
/// File name of a client's pin of the server certificate in `pki_dir`.
pub const PIN_FILE: &str = "quic_master.crt";

/// The name servers present and clients expect when `server_name` is empty;
/// it is in the generated certificate along with `localhost`, `127.0.0.1`
/// and `::1`.
pub const DEFAULT_SERVER_NAME: &str = "brine-master";

/// Where a server certificate and its key live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePaths {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, mode 0600).
    pub key: PathBuf,
}

/// Makes sure `pki_dir` holds a server certificate and key, generating a
/// self-signed pair on first use and reusing it afterwards, as a QUIC
/// master does at start-up. `extra_name` (if not empty) is added to the
/// certificate's names.
///
/// Blocking file I/O: call it from a blocking context.
///
/// # Errors
/// [`TransportError::Io`] naming the file that could not be read or
/// written; [`TransportError::Backend`] if generation fails.
pub fn ensure_self_signed(
    pki_dir: &Path,
    extra_name: &str,
) -> Result<CertificatePaths, TransportError> {
    let paths = CertificatePaths {
        cert: pki_dir.join(CERT_FILE),
        key: pki_dir.join(KEY_FILE),
    };
    let cert_exists = exists(&paths.cert)?;
    let key_exists = exists(&paths.key)?;
    if cert_exists && key_exists {
        return Ok(paths);
    }
    if cert_exists || key_exists {
        tracing::warn!(
            pki_dir = %pki_dir.display(),
            "only one of {CERT_FILE} and {KEY_FILE} exists; generating a new pair \
             (minions that pinned the old certificate will refuse the new one)"
        );
    }
    create_dir(pki_dir)?;
    let mut names = vec![
        DEFAULT_SERVER_NAME.to_owned(),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !extra_name.is_empty() && !names.iter().any(|n| n == extra_name) {
        names.push(extra_name.to_owned());
    }
    let (cert_pem, key_pem) = generate(names)?;
    write_atomic(&paths.key, key_pem.as_bytes(), 0o600)?;
    write_atomic(&paths.cert, cert_pem.as_bytes(), 0o644)?;
    tracing::info!(cert = %paths.cert.display(), "generated a self-signed certificate");
    Ok(paths)
}

/// A self-signed certificate and its key, both PEM.
fn generate(names: Vec<String>) -> Result<(String, String), TransportError> {
    let generation = |e: rcgen::Error| Error::Generate(Opaque::new(e));
    let mut params = rcgen::CertificateParams::new(names).map_err(generation)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, DEFAULT_SERVER_NAME);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().map_err(generation)?;
    let cert = params.self_signed(&key).map_err(generation)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Every certificate in a PEM file.
///
/// # Errors
/// [`TransportError::InvalidOption`] naming `option` when the file cannot be
/// read or holds no certificate.
pub(crate) fn read_certs(
    path: &Path,
    option: &str,
) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let bad = |reason: String| invalid_option(option, format!("{}: {reason}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in the file".to_owned()));
    }
    Ok(certs)
}

/// The private key in a PEM file.
///
/// # Errors
/// [`TransportError::InvalidOption`] naming `option`.
pub(crate) fn read_key(
    path: &Path,
    option: &str,
) -> Result<PrivateKeyDer<'static>, TransportError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| invalid_option(option, format!("{}: {e}", path.display())))
}

/// The pinned server certificate, `None` before first contact.
///
/// # Errors
/// [`TransportError::Io`] if the pin exists but cannot be read;
/// [`TransportError::InvalidOption`] if it is not a certificate.
pub(crate) fn read_pin(path: &Path) -> Result<Option<CertificateDer<'static>>, TransportError> {
    if !exists(path)? {
        return Ok(None);
    }
    let mut certs = read_certs(path, "tls.pki_dir")?;
    Ok(certs.drain(..).next())
}

/// Pins `cert` at `path` unless a pin appeared meanwhile; returns the pin
/// now in force (`cert`, or the one another connection stored first).
///
/// # Errors
/// [`TransportError::Io`] naming the file.
pub(crate) fn store_pin(
    path: &Path,
    cert: &CertificateDer<'_>,
) -> Result<CertificateDer<'static>, TransportError> {
    if let Some(dir) = path.parent() {
        create_dir(dir)?;
    }
    let pem = pem_certificate(cert);
    let tmp = temp_path(path);
    write_synced(&tmp, pem.as_bytes(), 0o644)?;
    // A hard link is created atomically and never replaces an existing pin,
    // so two connections pinning at once cannot overwrite each other.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(path);
            Ok(cert.clone().into_owned())
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => read_pin(path)?
            .ok_or_else(|| file_io(path, io::Error::other("pin vanished while storing it"))),
        Err(_) => {
            // File systems without hard links: fall back to a plain rename.
            write_atomic(path, pem.as_bytes(), 0o644)?;
            Ok(cert.clone().into_owned())
        }
    }
}

fn pem_certificate(cert: &CertificateDer<'_>) -> String {
    const LINE: usize = 64;
    let b64 = base64(cert.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(LINE));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, s) in sextets.iter().enumerate() {
            if i <= chunk.len() {
                let idx = usize::try_from(*s).unwrap_or(0);
                out.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn exists(path: &Path) -> Result<bool, TransportError> {
    path.try_exists().map_err(|e| file_io(path, e))
}

fn create_dir(dir: &Path) -> Result<(), TransportError> {
    fs::create_dir_all(dir).map_err(|e| file_io(dir, e))
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TransportError> {
    let tmp = temp_path(path);
    write_synced(&tmp, bytes, mode)?;
    if let Err(err) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(file_io(path, err));
    }
    sync_dir(path);
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TransportError> {
    let _ = fs::remove_file(path);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| file_io(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| file_io(path, e))
}

/// Makes a rename durable; best effort (not every platform can fsync a directory).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(handle) = fs::File::open(dir)
    {
        let _ = handle.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn generates_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_self_signed(dir.path(), "").unwrap();
        let cert = fs::read(&first.cert).unwrap();
        let key = fs::read(&first.key).unwrap();
        let again = ensure_self_signed(dir.path(), "").unwrap();
        assert_eq!(first, again);
        assert_eq!(fs::read(&again.cert).unwrap(), cert);
        assert_eq!(fs::read(&again.key).unwrap(), key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&first.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(read_certs(&first.cert, "tls.cert").unwrap().len(), 1);
        read_key(&first.key, "tls.key").unwrap();
    }

    #[test]
    fn pin_round_trips_and_first_pin_wins() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure_self_signed(&dir.path().join("a"), "").unwrap();
        let b = ensure_self_signed(&dir.path().join("b"), "").unwrap();
        let cert_a = read_certs(&a.cert, "x").unwrap().remove(0);
        let cert_b = read_certs(&b.cert, "x").unwrap().remove(0);
        let pin = dir.path().join("minion").join(PIN_FILE);
        assert_eq!(read_pin(&pin).unwrap(), None);
        assert_eq!(store_pin(&pin, &cert_a).unwrap(), cert_a);
        assert_eq!(read_pin(&pin).unwrap(), Some(cert_a.clone()));
        assert_eq!(store_pin(&pin, &cert_b).unwrap(), cert_a);
    }
}
