//! `echoloop server --tls`: the server's side of TLS set up once, before
//! the loop starts. One [`rustls::ServerConfig`] is shared by every
//! reactor (`--threads`), and with it one ticket key and one session
//! cache: a client that reconnects usually lands on another reactor, and
//! still resumes.
//!
//! The loop itself does not change: an accepted TCP socket is wrapped in
//! a [`TlsStream`] and served as any
//! stream is (see [`shared::tls`](crate::shared::tls) for the two rules
//! that differ). DTLS (TLS over UDP) is not served.

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{
    NoServerSessionStorage, ServerSessionMemoryCache, UnbufferedServerConnection,
    WebPkiClientVerifier,
};

use super::close::Close;
use super::counters::Handshakes;
use crate::shared::certificate::{self, LOOPBACK_NAMES};
use crate::shared::stream::Stream;
use crate::shared::tls::{
    TlsSetupError, TlsStream, fingerprint, load_identity, load_roots, provider,
};
use crate::shared::tls_stream::RECORD_PLAINTEXT;

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
pub struct Settings {
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
    /// Where the self-signed certificate was written, if one was made
    /// (in a directory made for it; both are removed when this is dropped).
    pub cert_file: Option<MadeCert>,
    /// The SHA-256 fingerprint of the certificate served.
    pub fingerprint: String,
}

/// A self-signed certificate file this server wrote, in a directory made
/// for it. Dropping it removes both (never a file it did not create): the
/// certificate was for this run only, however the run ends, and also when
/// the setup fails after writing it (a client CA that cannot be read):
/// left behind, its directory would make a later server that gets the
/// same PID refuse to start.
#[derive(Debug)]
pub struct MadeCert(PathBuf);

impl MadeCert {
    /// The certificate file.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for MadeCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Loads (or makes) the certificate and builds the configuration.
/// A self-signed certificate is written to `cert.pem` in a new private
/// directory `self_signed_in` (see [`write_private`]).
pub fn setup(opts: &Settings, self_signed_in: &Path) -> Result<Served, TlsSetupError> {
    let (certs, key, cert_file) = match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => {
            let (certs, key) = load_identity(cert, key)?;
            (certs, key, None)
        }
        _ => {
            let file = self_signed_in.join("cert.pem");
            let (certs, key) = self_signed(&file)?;
            // From here on, an error that ends the setup removes it.
            (certs, key, Some(MadeCert(file)))
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
    let names: Vec<String> = LOOPBACK_NAMES.iter().map(|n| n.to_string()).collect();
    let made =
        certificate::make(&names).map_err(|e| TlsSetupError::LocalCert(format!("tls: {e}")))?;
    write_private(path, made.cert_pem.as_bytes())?;
    Ok((vec![made.cert], made.key))
}

/// Writes `bytes` to `path`, a file in a directory that this call makes
/// (mode 0700) and that must not exist yet.
///
/// Clients trust this file (`--cacert`), so whoever could write it could
/// stand between them and the server. In a shared temporary directory
/// another user can plant a symlink at the name (a plain write would then
/// overwrite whatever it points at) or create the file first (a plain
/// write would reuse it, their permissions and all). `mkdir` never
/// follows a symlink and fails on any existing name, and a file created
/// `O_EXCL` (with `O_NOFOLLOW` besides) in a directory only we can enter
/// is ours; anything already there is refused, not reused.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsSetupError> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let failed = |what: &Path, e: std::io::Error| {
        let why = match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                "it exists already (left by a server that was killed, or made by someone \
                 else): remove it, or give --tls-cert and --tls-key"
                    .to_string()
            }
            _ => crate::shared::net::describe(&e),
        };
        TlsSetupError::LocalCert(format!(
            "cannot write the certificate: {}: {why}",
            what.display()
        ))
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| failed(dir, e))?;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    // Only what this call made is removed on the way out.
    let written = match created {
        Ok(mut file) => file.write_all(bytes).inspect_err(|_| {
            let _ = std::fs::remove_file(path);
        }),
        Err(e) => Err(e),
    };
    written.map_err(|e| {
        let _ = std::fs::remove_dir(dir);
        failed(path, e)
    })
}

/// Where a self-signed certificate's directory goes unless told: the
/// temporary directory, named by the process (two servers never share
/// one); the certificate is `cert.pem` in it.
pub fn default_cert_dir() -> PathBuf {
    std::env::temp_dir().join(format!("echoloop-{}", std::process::id()))
}

/// A freshly accepted stream, served through a TLS session of its own
/// when `tls` is set and the peer came over TCP (a Unix-socket peer is
/// not: TLS is for the network). `None`, logged, if rustls cannot start
/// a session.
pub(super) fn wrap(
    stream: Stream,
    tls: Option<&Arc<rustls::ServerConfig>>,
    owed_cap: usize,
    accepted: u64,
) -> Option<Stream> {
    match (stream, tls) {
        (Stream::Tcp(tcp), Some(tls)) => match UnbufferedServerConnection::new(Arc::clone(tls)) {
            Ok(session) => {
                let tls = TlsStream::new(session, tcp, owed_cap, accepted);
                Some(Stream::Tls(Box::new(tls)))
            }
            Err(e) => {
                log::warn!("accept: cannot start a TLS session: {e}");
                None
            }
        },
        (stream, _) => Some(stream),
    }
}

/// The size of the server's one read buffer: `--read-size`, or with
/// `--tls` at least a record's plaintext, which a TLS stream reads at
/// once ([`Wire::read_size`](crate::shared::tls::Wire::read_size)).
pub(super) fn read_buffer(config: &super::config::Config) -> usize {
    match config.tls {
        Some(_) => config.read_size.max(RECORD_PLAINTEXT),
        None => config.read_size.max(1),
    }
}

/// After a pass over connection `id`: if its handshake finished in this
/// pass, counts it (full or resumed, and how long it took: `now` and the
/// session's start are both nanoseconds since the reactor started).
#[inline]
pub(super) fn on_progress(stream: &mut Stream, id: u64, now: u64, stats: &mut Handshakes) {
    if let Stream::Tls(tls) = stream {
        handshake_news(tls, id, now, stats);
    }
}

/// [`on_progress`] over TLS.
fn handshake_news(
    tls: &mut TlsStream<mio::net::TcpStream>,
    id: u64,
    now: u64,
    stats: &mut Handshakes,
) {
    let Some(resumed) = tls.handshake_news() else {
        return;
    };
    let took = now.saturating_sub(tls.started()) / 1_000;
    stats.note(resumed, took);
    log::debug!(
        "tls conn=#{id} handshake done: {} {:?} {}, {took} us",
        if resumed { "resumed" } else { "full" },
        tls.session().protocol_version(),
        tls.session()
            .negotiated_cipher_suite()
            .map_or("?".into(), |s| format!("{:?}", s.suite())),
    );
}

/// A connection is being closed for `why`. Over TLS: a handshake that
/// ends with it counts once, by who ended it (us: refused or timed out;
/// the peer: aborted); a clean end is answered with our `close_notify`,
/// then TCP's FIN; a FIN with no `close_notify` before it is a truncation.
pub(super) fn on_close(stream: &mut Stream, id: u64, why: &Close, stats: &mut Handshakes) {
    let Stream::Tls(tls) = stream else {
        return;
    };
    let handshaking = tls.is_handshaking();
    match why {
        Close::Timeout if handshaking => stats.timed_out += 1,
        Close::Done if handshaking => stats.aborted += 1,
        Close::Failed(e) if handshaking && peer_went_away(e) => stats.aborted += 1,
        Close::Failed(e) if handshaking => {
            stats.refused += 1;
            log::debug!("tls conn=#{id} handshake refused: {e}");
        }
        Close::Done => {
            // The peer's close_notify (or its FIN after ours, with
            // --close-after) ended it cleanly.
            if let Err(e) = tls.close_notify() {
                log::debug!("tls conn=#{id}: close_notify not sent: {e}");
            }
            let _ = tls.socket().shutdown(Shutdown::Write);
        }
        Close::Failed(e) if e.kind() == io::ErrorKind::UnexpectedEof => stats.truncated += 1,
        _ => {}
    }
}

/// Whether an error on a connection means its peer left: a FIN where
/// more was due (a TLS session without its close_notify), or a reset.
fn peer_went_away(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// A fresh scratch directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("echoloop-unit-cert-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The certificate lands in a directory only its owner can enter, in a
    /// file only its owner can write.
    #[test]
    fn the_certificate_is_written_in_a_private_directory() {
        let base = scratch("fresh");
        let file = base.join("echoloop-1").join("cert.pem");
        write_private(&file, b"PEM").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"PEM");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        assert_eq!(mode(&file), 0o600);
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A symlink planted at the directory's name is refused, and what it
    /// points at is left alone.
    #[test]
    fn a_planted_symlink_is_refused_and_its_target_untouched() {
        let base = scratch("symlink");
        let victim = base.join("victim");
        std::fs::create_dir(&victim).unwrap();
        std::fs::write(victim.join("cert.pem"), b"precious").unwrap();
        let dir = base.join("echoloop-2");
        std::os::unix::fs::symlink(&victim, &dir).unwrap();
        let err = write_private(&dir.join("cert.pem"), b"PEM").unwrap_err();
        assert!(err.to_string().contains("it exists already"), "{err}");
        assert_eq!(std::fs::read(victim.join("cert.pem")).unwrap(), b"precious");
        assert!(dir.is_symlink(), "the planted link is not removed either");
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A setup that fails after writing its certificate (a client CA file
    /// that is not one) leaves no directory behind: a later server that
    /// gets the same PID must not find it.
    #[test]
    fn a_failed_setup_removes_the_certificate_it_made() {
        let base = scratch("failed-setup");
        let bad_ca = base.join("ca.pem");
        std::fs::write(&bad_ca, b"not a certificate").unwrap();
        let opts = Settings {
            client_ca: Some(bad_ca),
            ..Settings::default()
        };
        let dir = base.join("echoloop-4");
        assert!(setup(&opts, &dir).is_err());
        assert!(!dir.exists(), "the certificate's directory is removed");
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A directory (or a file) someone made at the name first is refused,
    /// not reused, and not removed.
    #[test]
    fn a_precreated_path_is_refused_not_reused() {
        let base = scratch("precreated");
        let dir = base.join("echoloop-3");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), b"theirs").unwrap();
        let err = write_private(&dir.join("cert.pem"), b"PEM").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot write the certificate: {}: it exists already (left by a server that \
                 was killed, or made by someone else): remove it, or give --tls-cert and \
                 --tls-key",
                dir.display()
            )
        );
        assert_eq!(std::fs::read(dir.join("cert.pem")).unwrap(), b"theirs");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
