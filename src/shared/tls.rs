//! Setting TLS up: certificates and keys from PEM files, the crypto
//! provider, the client's configuration and its server name. The stream
//! that speaks TLS over a socket is [`TlsStream`] (in
//! [`tls_stream`](super::tls_stream)).

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::tickets::TicketStore;
pub use super::tls_stream::{Session, TlsStream, Wire};
use super::trust::{AnyCertificate, CaFile};

/// Setting TLS up failed: a file, a certificate or a key. Each says which
/// file, and why, in one line.
#[derive(Debug)]
pub enum TlsSetupError {
    /// Our own certificate or key (`--tls-cert`, `--tls-key`, `--cert`,
    /// `--key`) cannot be used (exit 58, curl's "problem with the local
    /// certificate").
    LocalCert(String),
    /// A CA file (`--cacert`, `--tls-client-ca`) cannot be used (exit 77,
    /// curl's "problem reading the CA cert").
    CaFile(String),
}

impl TlsSetupError {
    /// The exit code (curl's numbers).
    pub fn exit_code(&self) -> u8 {
        match self {
            TlsSetupError::LocalCert(_) => 58,
            TlsSetupError::CaFile(_) => 77,
        }
    }
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSetupError::LocalCert(why) | TlsSetupError::CaFile(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for TlsSetupError {}

/// The crypto every TLS peer here uses: rustls's *ring* provider, with
/// X25519 offered first (and P-256 after it) and AES-128-GCM preferred
/// (rustls's default puts AES-256 first; OpenSSL and nginx pick
/// AES-128-GCM from a client that offers it first), so that a benchmark
/// against other TLS programs compares one key exchange and one cipher
/// with themselves.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite as suite;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        suite::TLS13_AES_128_GCM_SHA256,
        suite::TLS13_AES_256_GCM_SHA384,
        suite::TLS13_CHACHA20_POLY1305_SHA256,
        suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    provider.kx_groups = vec![
        rustls::crypto::ring::kx_group::X25519,
        rustls::crypto::ring::kx_group::SECP256R1,
    ];
    Arc::new(provider)
}

/// The certificates of a PEM file (a chain: leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read_pem_file(path)?;
    // PKCS#8 `ENCRYPTED PRIVATE KEY`, or the old OpenSSL
    // `Proc-Type: 4,ENCRYPTED` header: a passphrase is needed, which a
    // server started by a script has nobody to type.
    let text = String::from_utf8_lossy(&pem);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
    {
        return Err(format!(
            "{}: the private key is encrypted (passphrase-protected), which is not supported: \
             decrypt it with `openssl pkey -in {} -out plain-key.pem` and give that file",
            path.display(),
            path.display()
        ));
    }
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| format!("{}: no PEM private key in it ({e})", path.display()))
}

/// A PEM file, read whole: at most 1 MiB (a chain of certificates is a
/// few KiB; a larger file is a mistake, not a certificate).
fn read_pem_file(path: &Path) -> Result<Vec<u8>, String> {
    const MAX: u64 = 1 << 20;
    let pem = super::input::read_at_most(path, MAX)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if pem.len() as u64 > MAX {
        return Err(format!(
            "{}: larger than 1 MiB, not a PEM file",
            path.display()
        ));
    }
    Ok(pem)
}

/// The trust anchors of a CA file (`--cacert`, `--tls-client-ca`).
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsSetupError> {
    let certs = load_certs(path).map_err(TlsSetupError::CaFile)?;
    let mut roots = RootCertStore::empty();
    let (_, refused) = roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err(TlsSetupError::CaFile(format!(
            "{}: none of its {refused} certificates can be a trust anchor",
            path.display()
        )));
    }
    Ok(roots)
}

/// A certificate chain and its key, checked as a pair, and the leaf's
/// validity checked against the clock (a server with an expired
/// certificate would fail every handshake: better to refuse to start).
pub fn load_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsSetupError> {
    let certs = load_certs(cert).map_err(TlsSetupError::LocalCert)?;
    let secret = load_key(key).map_err(TlsSetupError::LocalCert)?;
    check_validity(&certs[0], cert)?;
    let signer = provider()
        .key_provider
        .load_private_key(secret.clone_key())
        .map_err(|e| TlsSetupError::LocalCert(format!("{}: unusable key: {e}", key.display())))?;
    let pair = rustls::sign::CertifiedKey::new(certs.clone(), signer);
    pair.keys_match().map_err(|_| {
        TlsSetupError::LocalCert(format!(
            "{} is not the key of the certificate in {}",
            key.display(),
            cert.display()
        ))
    })?;
    Ok((certs, secret))
}

/// Refuses a certificate that is not valid now (expired, or not yet).
fn check_validity(der: &CertificateDer<'_>, path: &Path) -> Result<(), TlsSetupError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| {
        TlsSetupError::LocalCert(format!("{}: not an X.509 certificate: {e}", path.display()))
    })?;
    let validity = cert.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now > validity.not_after {
        return Err(TlsSetupError::LocalCert(format!(
            "{}: the certificate expired on {}",
            path.display(),
            validity.not_after
        )));
    }
    if now < validity.not_before {
        return Err(TlsSetupError::LocalCert(format!(
            "{}: the certificate is not valid before {}",
            path.display(),
            validity.not_before
        )));
    }
    Ok(())
}

/// A certificate's SHA-256 fingerprint as `AB:CD:…` (what `openssl x509
/// -fingerprint -sha256` prints), to check by eye which certificate a
/// client was given.
pub fn fingerprint(der: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// Whether a client resumes sessions when it reconnects
/// (`--tls-resume`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Resume {
    /// Never: every connection is a full handshake.
    Never,
    /// With tickets (TLS 1.3, and TLS 1.2's session tickets).
    #[default]
    Tickets,
    /// With session IDs where TLS 1.2 has them (TLS 1.3 only has tickets,
    /// which the server makes stateless or not).
    Ids,
}

/// How a client speaks TLS: `--cacert`, `--insecure`, `--cert`/`--key`,
/// `--tls-resume`, `--alpn`.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Trust only the certificates in this file (else the system's roots).
    pub cacert: Option<PathBuf>,
    /// Accept any certificate, as curl's `-k` (the handshake still checks
    /// that the server holds the certificate's key).
    pub insecure: bool,
    /// Our certificate, for a server that asks (mTLS).
    pub cert: Option<PathBuf>,
    /// The key of `cert`.
    pub key: Option<PathBuf>,
    /// Whether reconnects resume.
    pub resume: Resume,
    /// Protocols offered in ALPN.
    pub alpn: Vec<String>,
    /// TLS 1.3 tickets kept per server (0: rustls's own 8). A load
    /// generator asks for two per connection: see [`super::tickets`].
    pub tickets: usize,
}

/// The client side's configuration: verified against `--cacert` or the
/// system's roots (rustls-native-certs: the store curl and openssl use,
/// so an administrator's own CA is trusted as it is by them).
pub fn client_config(opts: &ClientOptions) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsSetupError::LocalCert(format!("tls: {e}")))?;
    let builder = match &opts.cacert {
        _ if opts.insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
        // The file's own certificates are trusted as they are, too
        // (see shared::trust).
        Some(path) => {
            let roots = load_roots(path)?;
            let certs = load_certs(path).map_err(TlsSetupError::CaFile)?;
            let verifier = CaFile::new(roots, certs, provider)
                .map_err(|why| TlsSetupError::CaFile(format!("{}: {why}", path.display())))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
        None => builder.with_root_certificates(system_roots()?),
    };
    let mut config = match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => {
            let (certs, key) = load_identity(cert, key)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| TlsSetupError::LocalCert(format!("tls: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    let store = || {
        let tickets = match opts.tickets {
            0 => 8,
            n => n,
        };
        rustls::client::Resumption::store(Arc::new(TicketStore::new(tickets)))
    };
    config.resumption = match opts.resume {
        Resume::Never => rustls::client::Resumption::disabled(),
        Resume::Tickets => store(),
        Resume::Ids => store().tls12_resumption(rustls::client::Tls12Resumption::SessionIdOnly),
    };
    config.alpn_protocols = opts.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Arc::new(config))
}

/// The system's trust anchors.
fn system_roots() -> Result<RootCertStore, TlsSetupError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_string(), |e| e.to_string());
        return Err(TlsSetupError::CaFile(format!(
            "no system root certificates ({why}): give --cacert FILE or --insecure"
        )));
    }
    Ok(roots)
}

/// What a client needs to open TLS sessions to one server: the
/// configuration (verification, client certificate, resumption cache,
/// shared by every connection and thread) and the server's name.
#[derive(Debug, Clone)]
pub struct Dialer {
    /// The client configuration.
    pub config: Arc<rustls::ClientConfig>,
    /// The name sent as SNI and checked in the certificate.
    pub name: ServerName<'static>,
}

impl Dialer {
    /// A new session to the server over the connected `sock`, holding at
    /// most `limit` bytes of records unsent.
    pub fn wrap<S: Read + Write>(&self, sock: S, limit: usize) -> io::Result<TlsStream<S>> {
        let session =
            rustls::client::UnbufferedClientConnection::new(self.config.clone(), self.name.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(TlsStream::new(session, sock, limit, 0))
    }
}

/// The server name a client sends (SNI) and checks the certificate
/// against: a DNS name, or an IP address (sent as no SNI, checked against
/// the certificate's IP names).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string())
        .map_err(|e| format!("{host}: not a TLS server name: {e}"))
}

/// How a TLS failure reads in one line: `tls: ` and a sentence (see
/// [`trust::explain`](super::trust::explain)).
pub fn describe(err: &io::Error) -> String {
    format!("tls: {}", super::trust::explain(err))
}

/// Whether a TLS error is the peer's certificate not being trusted (the
/// client's exit 60), rather than another handshake failure (exit 35).
pub fn is_certificate_error(err: &io::Error) -> bool {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprint is SHA-256 of the DER, as openssl prints it.
    #[test]
    fn fingerprint_is_colon_separated_upper_hex() {
        let der = CertificateDer::from(b"abc".to_vec());
        assert_eq!(
            fingerprint(&der),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }
}
