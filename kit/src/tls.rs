//! The certificate a TLS server presents, replaced in place: a rustls resolver whose pair is
//! set directly (certificates the process generates) or read again from PEM files when they
//! change (a mounted Secret, which the kubelet swaps atomically). A new pair is served only
//! when it loads and its key matches its certificate; otherwise the pair being served stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate chain is not PEM or holds no certificate.
    #[error("certificate PEM: {0}")]
    Certificate(String),
    /// The private key is not PEM or not a key rustls can sign with.
    #[error("private key: {0}")]
    Key(String),
    /// The key does not belong to the first certificate.
    #[error("certificate and key: {0}")]
    Mismatch(String),
}

/// A rustls key from a PEM certificate chain (leaf first) and a PEM private key (PKCS #8,
/// PKCS #1 or SEC 1), checked to belong together.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, CertError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(CertError::Certificate("no certificate found".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| CertError::Key(e.to_string()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| CertError::Key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| CertError::Mismatch(e.to_string()))?;
    Ok(Arc::new(certified))
}

/// A certificate file and its key file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// The PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
}

impl CertFiles {
    /// The pair `cert` and `key`.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// Reads both files: their contents (certificate first) and the key they make.
    pub fn load(&self) -> Result<(Vec<u8>, Arc<CertifiedKey>), CertError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| CertError::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        let cert = read(&self.cert)?;
        let key = read(&self.key)?;
        let certified = certified_key(&cert, &key)?;
        let mut contents = cert;
        contents.extend_from_slice(&key);
        Ok((contents, certified))
    }
}

#[derive(Debug, Default)]
struct Current {
    key: Option<Arc<CertifiedKey>>,
    /// The file contents `key` was loaded from (empty when it was set directly).
    loaded_from: Vec<u8>,
}

/// The certificate a TLS server presents; replaced in place on renewal or file change.
/// A handshake before any certificate is set fails.
#[derive(Debug, Default)]
pub struct CertSlot {
    current: RwLock<Current>,
}

impl CertSlot {
    /// A slot serving the pair in `files`; fails when they do not load.
    pub fn from_files(files: &CertFiles) -> Result<Self, CertError> {
        let slot = Self::default();
        slot.reload(files)?;
        Ok(slot)
    }

    /// Replaces the served certificate.
    pub fn set(&self, key: Arc<CertifiedKey>) {
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        *guard = Current {
            key: Some(key),
            loaded_from: Vec::new(),
        };
    }

    /// The served certificate, if one is set.
    pub fn get(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .key
            .clone()
    }

    /// Whether a certificate is set (readiness).
    pub fn is_loaded(&self) -> bool {
        self.get().is_some()
    }

    /// Reads `files` and serves their pair when it differs from the one served: `Ok(true)` when
    /// it changed, `Ok(false)` when the files hold the served pair. On error the served pair
    /// stays.
    pub fn reload(&self, files: &CertFiles) -> Result<bool, CertError> {
        let (contents, key) = files.load()?;
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        if guard.key.is_some() && guard.loaded_from == contents {
            return Ok(false);
        }
        *guard = Current {
            key: Some(key),
            loaded_from: contents,
        };
        Ok(true)
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.get()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::{CertError, CertFiles, CertSlot, certified_key};

    struct Pair {
        cert: String,
        key: String,
    }

    fn pair(name: &str) -> Pair {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        Pair {
            cert: c.cert.pem(),
            key: c.signing_key.serialize_pem(),
        }
    }

    fn write(files: &CertFiles, cert: &str, key: &str) {
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
    }

    fn served(slot: &CertSlot) -> Vec<u8> {
        slot.get().unwrap().cert[0].as_ref().to_vec()
    }

    fn der(pem: &str) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    #[test]
    fn reloads_a_changed_pair_and_keeps_the_served_one_on_a_bad_pair() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles::new(dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (a, b) = (pair("a.example"), pair("b.example"));

        write(&files, &a.cert, &a.key);
        let slot = CertSlot::from_files(&files).unwrap();
        assert_eq!(served(&slot), der(&a.cert));
        assert!(
            !slot.reload(&files).unwrap(),
            "unchanged files are not a change"
        );

        // A key that is not the certificate's: refused, the served pair stays.
        write(&files, &b.cert, &a.key);
        assert!(matches!(slot.reload(&files), Err(CertError::Mismatch(_))));
        assert_eq!(served(&slot), der(&a.cert));
        // Unreadable, then not PEM: the same.
        std::fs::remove_file(&files.key).unwrap();
        assert!(matches!(slot.reload(&files), Err(CertError::Io { .. })));
        write(&files, "not a certificate", &b.key);
        assert!(matches!(
            slot.reload(&files),
            Err(CertError::Certificate(_))
        ));
        write(&files, &b.cert, "not a key");
        assert!(matches!(slot.reload(&files), Err(CertError::Key(_))));
        assert_eq!(served(&slot), der(&a.cert));

        write(&files, &b.cert, &b.key);
        assert!(slot.reload(&files).unwrap());
        assert_eq!(served(&slot), der(&b.cert));
    }

    #[test]
    fn an_empty_slot_serves_nothing_until_set() {
        let slot = CertSlot::default();
        assert!(!slot.is_loaded());
        let a = pair("a.example");
        slot.set(certified_key(a.cert.as_bytes(), a.key.as_bytes()).unwrap());
        assert!(slot.is_loaded());
        assert_eq!(served(&slot), der(&a.cert));
    }

    #[test]
    fn files_that_do_not_load_are_no_slot() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles::new(dir.path().join("tls.crt"), dir.path().join("tls.key"));
        assert!(CertSlot::from_files(&files).is_err());
    }
}
