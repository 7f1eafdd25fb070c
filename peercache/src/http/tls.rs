//! TLS between peers ([`TlsConfig`], documented there).

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The rustls this module is built with, for callers that build their own
/// `ServerConfig` or `ClientConfig`.
pub use rustls;

/// ALPN protocol ids.
const H2: &[u8] = b"h2";
const HTTP1: &[u8] = b"http/1.1";

/// Why a TLS configuration could not be built. Each names the file (or
/// `in-memory PEM`) and what it was for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read the {what} {source_name}: {error}")]
    Read {
        /// What the file was for ("CA bundle", "certificate chain", ...).
        what: &'static str,
        /// The file.
        source_name: String,
        /// Why.
        error: std::io::Error,
    },
    /// The PEM holds no certificate.
    #[error("the {what} {source_name} holds no certificate: expected PEM with -----BEGIN CERTIFICATE----- blocks")]
    NoCertificate {
        /// What the file was for.
        what: &'static str,
        /// The file.
        source_name: String,
    },
    /// The PEM holds no private key.
    #[error("the {what} {source_name} holds no private key: expected PEM with a -----BEGIN PRIVATE KEY----- (PKCS#8), RSA PRIVATE KEY (PKCS#1) or EC PRIVATE KEY (SEC1) block{}", if *.encrypted { "; encrypted keys are not supported: decrypt it first (e.g. `openssl pkey -in KEY -out KEY.plain`)" } else { "" })]
    NoKey {
        /// What the file was for.
        what: &'static str,
        /// The file.
        source_name: String,
        /// Whether it holds an encrypted key instead.
        encrypted: bool,
    },
    /// The PEM is malformed.
    #[error("the {what} {source_name} is not valid PEM: {reason}")]
    BadPem {
        /// What the file was for.
        what: &'static str,
        /// The file.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// A CA certificate cannot be used as a trust anchor.
    #[error("certificate {index} of the CA bundle {source_name} cannot be trusted: {reason}")]
    BadCa {
        /// The file.
        source_name: String,
        /// Which certificate, from 1.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A certificate chain and its key cannot be used together.
    #[error("the {what} {cert} with the key {key} cannot be used: {reason}")]
    CertKey {
        /// "server certificate" or "client certificate".
        what: &'static str,
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// Why (a key that does not match the certificate, an unsupported
        /// key type).
        reason: String,
    },
    /// The pieces given do not make a usable configuration.
    #[error("incomplete TLS configuration: {0}")]
    Incomplete(&'static str),
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Rustls(String),
}

/// Where a PEM comes from: a file, read when the configuration is built, or
/// bytes in memory (tests, secrets from a vault).
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    /// A PEM file.
    File(PathBuf),
    /// PEM text in memory.
    Memory(Vec<u8>),
}

impl Pem {
    /// A PEM file.
    pub fn file(path: impl AsRef<Path>) -> Self {
        Pem::File(path.as_ref().to_owned())
    }

    /// PEM text in memory.
    pub fn memory(pem: impl Into<Vec<u8>>) -> Self {
        Pem::Memory(pem.into())
    }

    /// How errors name it.
    fn name(&self) -> String {
        match self {
            Pem::File(path) => path.display().to_string(),
            Pem::Memory(_) => "(in-memory PEM)".to_owned(),
        }
    }

    fn read(&self, what: &'static str) -> Result<Vec<u8>, TlsError> {
        match self {
            Pem::File(path) => std::fs::read(path).map_err(|error| TlsError::Read {
                what,
                source_name: self.name(),
                error,
            }),
            Pem::Memory(bytes) => Ok(bytes.clone()),
        }
    }

    /// Every certificate in the PEM, in order; at least one.
    fn certificates(&self, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let bytes = self.read(what)?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| self.bad_pem(what, &error))?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate {
                what,
                source_name: self.name(),
            });
        }
        Ok(certs)
    }

    /// The first private key in the PEM.
    fn private_key(&self, what: &'static str) -> Result<PrivateKeyDer<'static>, TlsError> {
        let bytes = self.read(what)?;
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| match error {
            pem::Error::NoItemsFound => TlsError::NoKey {
                what,
                source_name: self.name(),
                encrypted: contains(&bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            },
            error => self.bad_pem(what, &error),
        })
    }

    fn bad_pem(&self, what: &'static str, error: &pem::Error) -> TlsError {
        TlsError::BadPem {
            what,
            source_name: self.name(),
            reason: error.to_string(),
        }
    }
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(path) => f.debug_tuple("File").field(path).finish(),
            // Never the bytes: they may hold a key.
            Pem::Memory(bytes) => write!(f, "Memory({} bytes)", bytes.len()),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What a [`TlsConfig`] is built from (see its documentation).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct TlsBuilder {
    ca: Option<Pem>,
    server: Option<(Pem, Pem)>,
    client: Option<(Pem, Pem)>,
    require_client_cert: bool,
}

impl TlsBuilder {
    /// The CA certificates to trust (a PEM bundle of one or more): peers'
    /// server certificates, and client certificates when they are required.
    pub fn ca(mut self, bundle: Pem) -> Self {
        self.ca = Some(bundle);
        self
    }

    /// This node's certificate chain (its own certificate first, then any
    /// intermediates) and private key, to serve HTTPS.
    pub fn server_cert(mut self, chain: Pem, key: Pem) -> Self {
        self.server = Some((chain, key));
        self
    }

    /// The certificate chain and key this node presents to peers that ask
    /// for a client certificate (mutual TLS). Needs [`TlsBuilder::ca`].
    pub fn client_cert(mut self, chain: Pem, key: Pem) -> Self {
        self.client = Some((chain, key));
        self
    }

    /// Whether the server refuses clients without a certificate signed by
    /// the CA (default `false`: no client certificate is asked for). Needs
    /// [`TlsBuilder::ca`] and [`TlsBuilder::server_cert`].
    pub fn require_client_cert(mut self, require: bool) -> Self {
        self.require_client_cert = require;
        self
    }

    /// Reads the PEMs and builds the rustls configurations.
    pub fn build(self) -> Result<TlsConfig, TlsError> {
        if self.ca.is_none() && self.server.is_none() {
            return Err(TlsError::Incomplete(
                "give a CA bundle to trust peers (--tls-ca), a server certificate and key to serve HTTPS (--tls-cert, --tls-key), or both",
            ));
        }
        if self.client.is_some() && self.ca.is_none() {
            return Err(TlsError::Incomplete(
                "a client certificate is only presented to https:// peers, which need a CA bundle to trust (--tls-ca)",
            ));
        }
        if self.require_client_cert && (self.ca.is_none() || self.server.is_none()) {
            return Err(TlsError::Incomplete(
                "requiring client certificates needs a server certificate and key (--tls-cert, --tls-key) and a CA bundle to check them against (--tls-ca)",
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &self.ca {
            Some(bundle) => Some(Arc::new(root_store(bundle)?)),
            None => None,
        };
        let client = match &roots {
            Some(roots) => {
                let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
                    .with_safe_default_protocol_versions()
                    .map_err(|e| TlsError::Rustls(e.to_string()))?
                    .with_root_certificates(Arc::clone(roots));
                let config = match &self.client {
                    Some((chain, key)) => {
                        let (certs, private) = cert_and_key(chain, key, "client")?;
                        builder
                            .with_client_auth_cert(certs, private)
                            .map_err(|e| cert_key_error("client certificate", chain, key, e))?
                    }
                    None => builder.with_no_client_auth(),
                };
                Some(Arc::new(config))
            }
            None => None,
        };
        let server = match &self.server {
            Some((chain, key)) => {
                let (certs, private) = cert_and_key(chain, key, "server")?;
                let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
                    .with_safe_default_protocol_versions()
                    .map_err(|e| TlsError::Rustls(e.to_string()))?;
                let builder = match (&roots, self.require_client_cert) {
                    (Some(roots), true) => builder.with_client_cert_verifier(
                        WebPkiClientVerifier::builder_with_provider(
                            Arc::clone(roots),
                            Arc::clone(&provider),
                        )
                        .build()
                        .map_err(|e| TlsError::Rustls(e.to_string()))?,
                    ),
                    _ => builder.with_no_client_auth(),
                };
                let mut config = builder
                    .with_single_cert(certs, private)
                    .map_err(|e| cert_key_error("server certificate", chain, key, e))?;
                config.alpn_protocols = vec![H2.to_vec(), HTTP1.to_vec()];
                Some(Arc::new(config))
            }
            None => None,
        };
        Ok(TlsConfig {
            client,
            server,
            requires_client_cert: self.require_client_cert,
        })
    }
}

fn root_store(bundle: &Pem) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for (index, cert) in bundle.certificates("CA bundle")?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| TlsError::BadCa {
            source_name: bundle.name(),
            index: index + 1,
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

type CertAndKey = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn cert_and_key(chain: &Pem, key: &Pem, side: &'static str) -> Result<CertAndKey, TlsError> {
    let (chain_what, key_what) = match side {
        "client" => ("client certificate chain", "client private key"),
        _ => ("certificate chain", "private key"),
    };
    Ok((chain.certificates(chain_what)?, key.private_key(key_what)?))
}

fn cert_key_error(what: &'static str, chain: &Pem, key: &Pem, error: rustls::Error) -> TlsError {
    let reason = match error {
        rustls::Error::InconsistentKeys(_) => {
            "the private key does not belong to the first certificate of the chain".to_owned()
        }
        error => error.to_string(),
    };
    TlsError::CertKey {
        what,
        cert: chain.name(),
        key: key.name(),
        reason,
    }
}

/// A TLS configuration for peers: the client side (trust, and a client
/// certificate) and the server side (this node's certificate, and whether
/// clients need one). Build it with [`TlsConfig::builder`].
///
/// TLS between peers (the `tls` cargo feature): `https://` peer URLs, a CA
/// bundle to trust, and optional client certificates (mutual TLS).
///
/// A [`TlsConfig`] is built from PEM files (or PEM bytes held in memory) by
/// [`TlsConfig::builder`]:
///
/// - [`TlsBuilder::server_cert`]: this node's certificate chain and key, to
///   serve HTTPS with [`super::Server::tls`];
/// - [`TlsBuilder::ca`]: the CA certificates to trust: a peer's server
///   certificate must chain to one of them (and name the host of its URL,
///   an IP address or a DNS name), and so must a client certificate;
/// - [`TlsBuilder::client_cert`]: the certificate chain and key this node
///   presents to peers that ask for one;
/// - [`TlsBuilder::require_client_cert`]: the server refuses, at the
///   handshake, every client without a certificate signed by the CA.
///
/// Put it in [`super::HttpOptionsBuilder::tls`] for the client side (peers whose
/// base URL is `https://`) and give it to [`super::Server::tls`] for the
/// server side, so both use one configuration:
///
/// ```no_run
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use peercache::http::{Pem, TlsConfig};
/// use peercache::http::{HttpOptions, HttpPool, Server, ServerLimits};
/// use std::sync::Arc;
///
/// let tls = Arc::new(
///     TlsConfig::builder()
///         .server_cert(Pem::file("node.pem"), Pem::file("node.key"))
///         .ca(Pem::file("ca.pem"))
///         .client_cert(Pem::file("node.pem"), Pem::file("node.key"))
///         .require_client_cert(true)
///         .build()?,
/// );
/// let options = HttpOptions::builder().tls(Arc::clone(&tls)).build()?;
/// let pool = HttpPool::new("https://10.0.0.1:8443", options)?;
/// let server = Server::new(ServerLimits::default()).tls(&tls)?;
/// # Ok(()) }
/// ```
///
/// rustls does the TLS, with the `ring` provider: TLS 1.3 and 1.2, no
/// OpenSSL. The server offers ALPN `h2` and `http/1.1`; the client asks for
/// `h2` when [`super::HttpOptions::http2`] is set, `http/1.1` otherwise, so
/// Go peers serving TLS with `net/http` work too. Certificates are read once,
/// when the configuration is built: rotating them means restarting the node.
#[derive(Clone)]
pub struct TlsConfig {
    client: Option<Arc<ClientConfig>>,
    server: Option<Arc<ServerConfig>>,
    requires_client_cert: bool,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("client", &self.client.is_some())
            .field("server", &self.server.is_some())
            .field("requires_client_cert", &self.requires_client_cert)
            .finish()
    }
}

impl TlsConfig {
    /// An empty builder.
    pub fn builder() -> TlsBuilder {
        TlsBuilder::default()
    }

    /// The client side, when a CA bundle was given: what reaches `https://`
    /// peers.
    pub fn client_config(&self) -> Option<Arc<ClientConfig>> {
        self.client.clone()
    }

    /// The server side, when a server certificate was given.
    pub fn server_config(&self) -> Option<Arc<ServerConfig>> {
        self.server.clone()
    }

    /// Whether the server side refuses clients without a certificate.
    pub fn requires_client_cert(&self) -> bool {
        self.requires_client_cert
    }
}

/// The client side used when TLS is compiled in but not configured: it
/// trusts nobody. [`super::HttpPool`] refuses `https://` peers then, so it
/// never handshakes; it only lets one connector type serve both cases.
pub(crate) fn untrusting_client_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    Arc::new(config)
}

#[cfg(test)]
mod tests;
