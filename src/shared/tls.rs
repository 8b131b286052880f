//! TLS on a non-blocking socket: [`TlsStream`], a rustls session and the
//! socket it speaks over, that reads and writes plaintext like any other
//! stream; and what every program needs to set TLS up (certificates and
//! keys from PEM files, the crypto provider, the client's configuration).
//!
//! rustls never touches a socket ("sans-IO"). It is fed ciphertext
//! ([`read_tls`](rustls::Connection::read_tls)), says what it has decrypted
//! (its `reader`), takes plaintext (its `writer`), and hands back records
//! to send ([`write_tls`](rustls::Connection::write_tls)). `TlsStream` does
//! that feeding, so that a server connection ([`crate::server`]),
//! the client and a load connection keep their own state machines and see
//! only plaintext. What changes for them is written down as two rules:
//!
//! 1. **A short read is on the ciphertext side.** rustls reads about 4 KiB
//!    of ciphertext at a time and hands out plaintext a record at a time,
//!    so a plaintext read shorter than the buffer does not mean the socket
//!    is dry. A *ciphertext* read shorter than rustls asked for does (the
//!    same epoll(7) rule as a bare socket's). So the owner reads plaintext
//!    until `WouldBlock` ([`Wire::drain`] says [`Drain::WouldBlock`]), and
//!    when the bare rule would have stopped at a short read, the stream
//!    itself answers `WouldBlock` once rustls has no plaintext left after a
//!    short ciphertext read: the `recvfrom` that would only say `EAGAIN` is
//!    saved, as on a bare socket.
//! 2. **A write can be accepted and not sent.** rustls takes plaintext,
//!    seals it into records and keeps them until the socket takes them.
//!    While it holds any ([`Wire::unsent`]) the owner asks for WRITABLE,
//!    and `flush` sends them. How much rustls may hold is bounded
//!    ([`TlsStream::new`]'s `limit`): past it a write says `WouldBlock`,
//!    which is the owner's ordinary backpressure.
//!
//! How a TLS stream ends: the peer's `close_notify` reads as a clean EOF
//! (`Ok(0)`), as TCP's FIN does; a FIN without one is a *truncation*
//! (an attacker could have cut the stream) and reads as an
//! `UnexpectedEof` error, never as a clean end. A handshake that fails
//! (a bad hello, a certificate not trusted, plaintext sent to a TLS port)
//! reads as an `InvalidData` error whose message says why, after the alert
//! rustls wrote for the peer was sent, if the socket took it.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{HandshakeKind, RootCertStore};

use super::readiness::Drain;
use super::tickets::TicketStore;
use super::trust::{AnyCertificate, CaFile};

/// What a connection's owner needs from the stream under it, beyond
/// `Read + Write`: the two places where TLS differs from a bare socket.
pub trait Wire: Read + Write {
    /// The drain rule for a read pass over this stream, given the one a
    /// bare socket would use after this event (called at the start of
    /// each pass). TLS answers [`Drain::WouldBlock`] and applies the bare
    /// rule to its ciphertext reads.
    fn drain(&mut self, bare: Drain) -> Drain {
        bare
    }

    /// Whether bytes were accepted by a `write` but are not yet on the
    /// socket (TLS records rustls still holds): the owner then wants
    /// WRITABLE, and calls `flush`.
    fn unsent(&self) -> bool {
        false
    }
}

/// A rustls session (client or server side) over a non-blocking socket,
/// read and written as plaintext.
pub struct TlsStream<S> {
    /// The TLS state machine: it holds received ciphertext, decrypted
    /// plaintext, and sealed records not yet sent.
    tls: rustls::Connection,
    /// The socket the records travel over.
    sock: S,
    /// Whether the handshake's end has been reported
    /// ([`handshake_news`](Self::handshake_news)).
    reported: bool,
    /// Whether the trace has told the handshake's end (as it happened,
    /// not when the owner asked).
    narrated: bool,
    /// When the connection was accepted or connected (the owner's clock,
    /// in nanoseconds), for the handshake's latency.
    started: u64,
    /// Whether our `close_notify` is queued (it is sent once).
    closing: bool,
    /// This read pass may end at a short ciphertext read (the bare
    /// socket's rule, [`Drain::ShortRead`], set by [`Wire::drain`]).
    short_ends: bool,
    /// The last ciphertext read of this pass came back shorter than rustls
    /// asked for: the socket was drained then.
    dry: bool,
    /// Whether writes are staged and sealed at `flush` ([`coalesce`](Self::coalesce)).
    coalesce: bool,
    /// Plaintext written since the last `flush`, not sealed yet (empty,
    /// and owning no memory, between passes).
    staged: Vec<u8>,
    /// The most plaintext staged, and the most sealed records held.
    limit: usize,
}

impl<S> fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("handshaking", &self.tls.is_handshaking())
            .field("unsent", &self.tls.wants_write())
            .finish_non_exhaustive()
    }
}

impl<S: Read + Write> TlsStream<S> {
    /// Wraps `sock` in the session `tls`, started at `started` (the
    /// owner's clock, nanoseconds). rustls holds at most about `limit`
    /// bytes of sealed records unsent (beyond it, `write` says
    /// `WouldBlock`).
    pub fn new(tls: impl Into<rustls::Connection>, sock: S, limit: usize, started: u64) -> Self {
        let mut tls = tls.into();
        tls.set_buffer_limit(Some(limit.max(1)));
        TlsStream {
            tls,
            sock,
            reported: false,
            narrated: false,
            started,
            closing: false,
            short_ends: false,
            dry: false,
            coalesce: false,
            staged: Vec::new(),
            limit: limit.max(1),
        }
    }

    /// Stages what is written until `flush`, which seals it into as few
    /// records as it fills (16 KiB each) and sends them with one call.
    /// For an owner that writes in small pieces and flushes once a pass
    /// (the echo server writes each 1 KiB read back at once): without it,
    /// each `write` is a record of its own, sealed and sent on its own.
    pub fn coalesce(&mut self) {
        self.coalesce = true;
    }

    /// Seals what is staged into records (rustls cuts them at 16 KiB),
    /// as far as rustls's limit on sealed records allows.
    fn seal(&mut self) -> io::Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let took = self.tls.writer().write(&self.staged)?;
        self.staged.drain(..took);
        if self.staged.is_empty() {
            // Hand the memory back: an idle connection owns no heap.
            self.staged = Vec::new();
        }
        Ok(())
    }

    /// The socket under the session.
    pub fn socket(&self) -> &S {
        &self.sock
    }

    /// The socket under the session, mutably (to register it).
    pub fn socket_mut(&mut self) -> &mut S {
        &mut self.sock
    }

    /// Whether the handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    /// The session (to ask what was negotiated).
    pub fn session(&self) -> &rustls::Connection {
        &self.tls
    }

    /// When the connection started, on the owner's clock.
    pub fn started(&self) -> u64 {
        self.started
    }

    /// The handshake's end, once: `Some(resumed)` the first time this is
    /// asked after the handshake finished, `None` before and after.
    pub fn handshake_news(&mut self) -> Option<bool> {
        if self.reported || self.tls.is_handshaking() {
            return None;
        }
        self.reported = true;
        Some(self.tls.handshake_kind() == Some(HandshakeKind::Resumed))
    }

    /// Queues our `close_notify` and sends it (with anything still held)
    /// if the socket takes it now. A close that cannot wait for the socket
    /// loses it, and the peer sees a truncation: rare, since the close
    /// comes when nothing is owed.
    pub fn close_notify(&mut self) -> io::Result<()> {
        self.seal()?;
        if !self.closing {
            self.closing = true;
            log::trace!("tls close_notify queued");
            self.tls.send_close_notify();
        }
        self.send_records()
    }

    /// Drives the handshake as far as the socket allows: sends what
    /// rustls has to say, reads and processes what the peer said, until
    /// the socket would block (`Ok(false)`) or the handshake is over
    /// (`Ok(true)`). Plaintext that came with the peer's last flight waits
    /// in rustls for the next `read`. An EOF during the handshake is an
    /// `UnexpectedEof` error, a refused handshake an `InvalidData` one.
    pub fn handshake(&mut self) -> io::Result<bool> {
        self.send_records()?;
        while self.tls.is_handshaking() {
            match self.tls.read_tls(&mut self.sock) {
                Ok(0) => {
                    log::trace!("tls read_tls eof (handshaking)");
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection during the handshake",
                    ));
                }
                Ok(n) => log::trace!("tls read_tls bytes={n} (handshaking)"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            self.process()?;
        }
        Ok(true)
    }

    /// Decrypts and acts on the records just read, narrating the
    /// handshake's end when it happens, and sends any answer (a handshake
    /// flight, a key update, or the alert that explains a refusal).
    fn process(&mut self) -> io::Result<()> {
        if let Err(err) = self.tls.process_new_packets() {
            let _ = self.send_records();
            return Err(io::Error::new(io::ErrorKind::InvalidData, err));
        }
        if !self.narrated && !self.tls.is_handshaking() {
            self.narrated = true;
            let resumed = self.tls.handshake_kind() == Some(HandshakeKind::Resumed);
            log::trace!(
                "tls state handshaking => traffic ({})",
                if resumed { "resumed" } else { "full" }
            );
        }
        self.send_records()
    }

    /// Sends the records rustls holds, until it has none or the socket
    /// would block (then the owner waits for WRITABLE: [`Wire::unsent`]).
    fn send_records(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(n) => log::trace!("tls write_tls bytes={n}"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

// ANCHOR: read
impl<S: Read + Write> Read for TlsStream<S> {
    /// Plaintext, if rustls has some; else it reads ciphertext from the
    /// socket, decrypts it (answering the handshake as it goes), and
    /// tries again. `WouldBlock` only when the socket said so.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // rustls reports the socket's EOF on the read after it saw it; a
        // second EOF in one call would mean it did not, and must not spin.
        let mut eof_seen = false;
        loop {
            match self.tls.reader().read(buf) {
                // Ok(0) here is the peer's close_notify: a clean EOF.
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // UnexpectedEof: the socket ended without a close_notify.
                Err(e) => return Err(e),
            }
            // rustls has no plaintext. After a short ciphertext read the
            // socket is dry, and new data will raise a new edge: say so
            // without the read that would only say WouldBlock.
            if self.dry && self.short_ends {
                log::trace!("tls read dry (the last read_tls was short)");
                return Err(io::ErrorKind::WouldBlock.into());
            }
            // Feed it. Ok(0) is the socket's EOF, which the reader above
            // then reports as clean or truncated.
            let mut counted = Counted::new(&mut self.sock);
            let n = self.tls.read_tls(&mut counted)?;
            self.dry = counted.short();
            log::trace!("tls read_tls bytes={n}");
            if n == 0 {
                if eof_seen {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                eof_seen = true;
            }
            self.process()?;
        }
    }
}
// ANCHOR_END: read

impl<S: Read + Write> Write for TlsStream<S> {
    /// Seals what rustls will take (before the handshake ends it holds
    /// the plaintext) and sends what the socket takes.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.coalesce {
            if self.staged.len() >= self.limit {
                // Full: make room by sealing and sending what is staged.
                self.flush()?;
                if self.staged.len() >= self.limit {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
            }
            let took = data.len().min(self.limit - self.staged.len());
            self.staged.extend_from_slice(&data[..took]);
            return Ok(took);
        }
        let mut took = self.tls.writer().write(data)?;
        if took == 0 && !data.is_empty() {
            // Full: make room by sending, then try once more.
            self.send_records()?;
            took = self.tls.writer().write(data)?;
            if took == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        self.send_records()?;
        Ok(took)
    }

    /// Seals what is staged and sends the records rustls holds, as far as
    /// the socket takes them (rustls hands them to one `writev`).
    fn flush(&mut self) -> io::Result<()> {
        self.seal()?;
        self.send_records()
    }
}

/// A socket whose last read says how much was asked and how much came.
struct Counted<'a, S> {
    sock: &'a mut S,
    asked: usize,
    got: usize,
}

impl<'a, S: Read> Counted<'a, S> {
    fn new(sock: &'a mut S) -> Self {
        Counted {
            sock,
            asked: 0,
            got: 0,
        }
    }

    /// Whether the last read returned data, but less than was asked: the
    /// socket held no more (epoll(7)).
    fn short(&self) -> bool {
        self.got > 0 && self.got < self.asked
    }
}

impl<S: Read> Read for Counted<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.asked = buf.len();
        self.got = 0;
        let n = self.sock.read(buf)?;
        self.got = n;
        Ok(n)
    }
}

impl<S: Read + Write> Wire for TlsStream<S> {
    fn drain(&mut self, bare: Drain) -> Drain {
        self.short_ends = bare == Drain::ShortRead;
        self.dry = false;
        Drain::WouldBlock
    }

    fn unsent(&self) -> bool {
        self.tls.wants_write() || !self.staged.is_empty()
    }
}

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
        let session = rustls::ClientConnection::new(self.config.clone(), self.name.clone())
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

    /// Plaintext sent where a handshake was expected fails with a reason.
    #[test]
    fn plaintext_to_a_tls_server_is_invalid_data() {
        let config = test_server_config();
        let conn = rustls::ServerConnection::new(config).expect("session");
        let sock = crate::shared::fake::Fake {
            reads: vec![crate::shared::fake::Step::Data(b"GET / HTTP/1.0\r\n\r\n")].into(),
            ..Default::default()
        };
        let mut tls = TlsStream::new(conn, sock, 1 << 16, 0);
        let mut buf = [0u8; 64];
        let err = tls.read(&mut buf).expect_err("plaintext is refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(tls.handshake_news().is_none());
    }

    /// A server session that finished its handshake with a client in
    /// memory, and `plaintext` sent by that client as ciphertext records
    /// (one per `chunk` bytes).
    fn handshaken_with(plaintext: &[u8], chunk: usize) -> (rustls::ServerConnection, Vec<u8>) {
        let mut server = rustls::ServerConnection::new(test_server_config()).expect("server");
        let client_config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").expect("name");
        let mut client =
            rustls::ClientConnection::new(Arc::new(client_config), name).expect("client");
        while client.is_handshaking() || server.is_handshaking() {
            let mut wire = Vec::new();
            client.write_tls(&mut wire).expect("client writes");
            server.read_tls(&mut &wire[..]).expect("server reads");
            server.process_new_packets().expect("server processes");
            let mut wire = Vec::new();
            server.write_tls(&mut wire).expect("server writes");
            client.read_tls(&mut &wire[..]).expect("client reads");
            client.process_new_packets().expect("client processes");
        }
        // Tickets and the like the server sent after its handshake.
        let mut wire = Vec::new();
        server.write_tls(&mut wire).expect("server writes");
        client.read_tls(&mut &wire[..]).expect("client reads");
        client.process_new_packets().expect("client processes");
        for part in plaintext.chunks(chunk) {
            client.writer().write_all(part).expect("client seals");
        }
        let mut records = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut records).expect("client writes");
        }
        (server, records)
    }

    /// Reads plaintext until `WouldBlock` (or an error), as a server's
    /// read pass does; returns what came.
    fn read_pass(tls: &mut TlsStream<crate::shared::fake::Fake>) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match tls.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        got
    }

    /// The drain rule on ciphertext, with made-up reads: after a read
    /// pass that may end at a short read (the bare socket's rule), a
    /// ciphertext read shorter than rustls asked for ends the pass once
    /// the plaintext is out: one read call, not the second that would only
    /// say WouldBlock. Where the bare rule reads to WouldBlock (after a
    /// hang-up, or from the ready queue), the socket is asked again.
    #[test]
    fn a_short_ciphertext_read_proves_the_socket_dry() {
        let sent: Vec<u8> = (0..600u32).map(|i| (i % 251) as u8).collect();
        for (bare, calls) in [(Drain::ShortRead, 1), (Drain::WouldBlock, 2)] {
            let (server, records) = handshaken_with(&sent, 100);
            assert!(records.len() < 4096, "one short read holds it all");
            let sock = crate::shared::fake::Fake {
                reads: vec![crate::shared::fake::Step::Data(records.leak())].into(),
                ..Default::default()
            };
            let mut tls = TlsStream::new(server, sock, 1 << 16, 0);
            assert_eq!(
                tls.drain(bare),
                Drain::WouldBlock,
                "plaintext reads go to WouldBlock"
            );
            assert_eq!(read_pass(&mut tls), sent, "every byte, in order ({bare:?})");
            assert_eq!(tls.socket().read_calls, calls, "{bare:?}");
        }
    }

    /// A ciphertext read that fills what rustls asked for proves nothing:
    /// the socket is read again, and the pass ends at the short read
    /// after it.
    #[test]
    fn a_full_ciphertext_read_reads_on() {
        let sent: Vec<u8> = (0..12_000u32).map(|i| (i % 253) as u8).collect();
        let (server, records) = handshaken_with(&sent, 1000);
        assert!(records.len() > 8192, "more than two of rustls's reads");
        let sock = crate::shared::fake::Fake {
            reads: vec![crate::shared::fake::Step::Data(records.leak())].into(),
            ..Default::default()
        };
        let mut tls = TlsStream::new(server, sock, 1 << 16, 0);
        tls.drain(Drain::ShortRead);
        assert_eq!(read_pass(&mut tls), sent);
        // 4096 + 4096 (full) + the rest (short): three calls, no fourth.
        assert_eq!(tls.socket().read_calls, 3);
    }

    /// A server config with a fresh self-signed certificate.
    pub(crate) fn test_server_config() -> Arc<rustls::ServerConfig> {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("rcgen");
        let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![made.cert.der().clone()], key)
            .expect("cert");
        Arc::new(config)
    }
}
