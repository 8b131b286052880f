//! `echoloop server --tls`: the server's side of TLS set up once, before
//! the loop starts. One [`rustls::ServerConfig`] is shared by every
//! reactor (`--threads`), and with it one ticket key and one session
//! cache: a client that reconnects usually lands on another reactor, and
//! still resumes.
//!
//! The loop itself does not change: an accepted TCP socket is wrapped in
//! a [`TlsStream`](crate::shared::tls::TlsStream) and served as any
//! stream is (see [`shared::tls`](crate::shared::tls) for the two rules
//! that differ). DTLS (TLS over UDP) is not served.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache, WebPkiClientVerifier};

use crate::shared::tls::{TlsSetupError, fingerprint, load_identity, load_roots, provider};

/// How a returning client may resume (`--tls-resumption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Resumption {
    /// Never: every handshake is full (to test a proxy without it).
    Off,
    /// Stateless tickets, sealed with one key shared by all reactors.
    #[default]
    Tickets,
    /// Session IDs (TLS 1.2) and stateful tickets (TLS 1.3), in one
    /// cache shared by all reactors.
    Ids,
}

impl fmt::Display for Resumption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resumption::Off => "off",
            Resumption::Tickets => "tickets",
            Resumption::Ids => "ids",
        })
    }
}

/// What `--tls` and its options ask for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The certificate chain (PEM); with `key`. Neither: self-signed.
    pub cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// Require client certificates signed by these CAs (mTLS).
    pub client_ca: Option<PathBuf>,
    /// How returning clients resume.
    pub resumption: Resumption,
    /// Protocols to agree on in ALPN (none: ALPN is not answered).
    pub alpn: Vec<String>,
}

/// The entries a session-ID cache keeps (about 200 B each).
const SESSION_CACHE: usize = 16 * 1024;

/// TLS, ready to serve.
#[derive(Debug)]
pub struct Served {
    /// The configuration every reactor's sessions are made from.
    pub config: Arc<rustls::ServerConfig>,
    /// Where the self-signed certificate was written, if one was made.
    pub cert_file: Option<PathBuf>,
    /// The SHA-256 fingerprint of the certificate served.
    pub fingerprint: String,
}

/// Loads (or makes) the certificate and builds the configuration.
/// A self-signed certificate is written to `self_signed_at`.
pub fn setup(opts: &Options, self_signed_at: &Path) -> Result<Served, TlsSetupError> {
    let (certs, key, cert_file) = match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => {
            let (certs, key) = load_identity(cert, key)?;
            (certs, key, None)
        }
        _ => {
            let (certs, key) = self_signed(self_signed_at)?;
            (certs, key, Some(self_signed_at.to_path_buf()))
        }
    };
    let fingerprint = fingerprint(&certs[0]);
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsSetupError::LocalCert(format!("tls: {e}")))?;
    let builder = match &opts.client_ca {
        Some(path) => {
            let roots = load_roots(path)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsSetupError::CaFile(format!("{}: {e}", path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsSetupError::LocalCert(format!("tls: {e}")))?;
    match opts.resumption {
        Resumption::Off => {
            config.session_storage = Arc::new(NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
        Resumption::Tickets => {
            config.ticketer = rustls::crypto::ring::Ticketer::new()
                .map_err(|e| TlsSetupError::LocalCert(format!("tls: ticket key: {e}")))?;
        }
        Resumption::Ids => config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE),
    }
    config.alpn_protocols = opts.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Served {
        config: Arc::new(config),
        cert_file,
        fingerprint,
    })
}

/// An ECDSA P-256 certificate for `localhost`, `127.0.0.1` and `::1`,
/// made now; its PEM is written to `path` for clients to trust
/// (`--cacert`). The key stays in memory.
fn self_signed(
    path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsSetupError> {
    let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TlsSetupError::LocalCert(format!("tls: cannot make a certificate: {e}")))?;
    std::fs::write(path, made.cert.pem()).map_err(|e| {
        TlsSetupError::LocalCert(format!(
            "cannot write the certificate to {}: {e}",
            path.display()
        ))
    })?;
    let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    Ok((vec![made.cert.der().clone()], key))
}

/// Where a self-signed certificate goes unless told: the temporary
/// directory, named by the process (two servers never share one).
pub fn default_cert_path() -> PathBuf {
    std::env::temp_dir().join(format!("echoloop-{}.pem", std::process::id()))
}
