//! A TLS session over a non-blocking socket, read and written as
//! plaintext: [`TlsStream`]. The server's connections, the client and
//! the load generator's connections keep their own state machines and
//! see only plaintext; what changes for them is two rules, written down
//! in [`Wire`].
//!
//! rustls never touches a socket ("sans-IO"). Here it is driven through
//! its *unbuffered* API: the session owns no buffer of its own, and each
//! call hands it the ciphertext received so far and asks what it wants
//! next. It answers with a state ([`ConnectionState`]):
//!
//! | state | what it wants | what this file does |
//! |---|---|---|
//! | `EncodeTlsData` | a handshake record written out | appends it to `unsent` |
//! | `TransmitTlsData` | what was encoded, sent | sends `unsent` as far as the socket takes it |
//! | `BlockedHandshake` | more of the peer's handshake | reads the socket |
//! | `ReadTraffic` | its decrypted records taken | copies them into the reader's buffer |
//! | `WriteTraffic` | nothing: application data may flow | seals what is written; or reads the socket |
//! | `PeerClosed` | nothing: the peer's `close_notify` came | reads as a clean EOF |
//!
//! Why unbuffered: a buffered rustls session keeps a 4 KiB buffer for
//! ciphertext from its first read to its last, which is most of what an
//! idle TLS connection costs. Here ciphertext is read into one buffer per
//! thread ([`INCOMING`]), shared by every stream of the thread as the
//! server's plaintext buffer is shared by its connections: a thread runs
//! one loop, and a loop serves one connection at a time. Only what a read
//! leaves unfinished (part of a record) is copied out to the stream, and
//! an idle stream holds none.
//!
//! How a TLS stream ends: the peer's `close_notify` reads as a clean EOF
//! (`Ok(0)`), as TCP's FIN does; a FIN without one is a *truncation* (an
//! attacker could have cut the stream) and reads as an `UnexpectedEof`
//! error, never as a clean end. A handshake that fails (a bad hello, a
//! certificate not trusted, plaintext sent to a TLS port) reads as an
//! `InvalidData` error whose message says why, after the alert rustls
//! wrote for the peer was sent, if the socket took it.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read, Write};

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, UnbufferedConnectionCommon,
    UnbufferedStatus,
};
use rustls::{CommonState, HandshakeKind};

use super::readiness::Drain;

/// What a connection's owner needs from the stream under it, beyond
/// `Read + Write`: the places where TLS differs from a bare socket.
///
/// 1. **A short read is on the ciphertext side.** A TLS stream hands out
///    plaintext a record at a time, so a plaintext read shorter than the
///    buffer does not mean the socket is dry. A *ciphertext* read shorter
///    than asked for does (the same epoll(7) rule as a bare socket's). So
///    the owner reads plaintext until `WouldBlock` ([`Wire::drain`] says
///    [`Drain::WouldBlock`]), and when the bare rule would have stopped at
///    a short read, the stream itself answers `WouldBlock` once it has no
///    plaintext left after a short ciphertext read: the `recvfrom` that
///    would only say `EAGAIN` is saved, as on a bare socket.
/// 2. **A write can be accepted and not sent.** The stream seals
///    plaintext into records and keeps those the socket did not take.
///    While it holds any ([`Wire::unsent`]) the owner asks for WRITABLE,
///    and `flush` sends them. How much it may hold is bounded
///    ([`TlsStream::new`]'s `limit`): past it a write says `WouldBlock`,
///    which is the owner's ordinary backpressure.
pub trait Wire: Read + Write {
    /// The drain rule for a read pass over this stream, given the one a
    /// bare socket would use after this event (called at the start of
    /// each pass). TLS answers [`Drain::WouldBlock`] and applies the bare
    /// rule to its ciphertext reads.
    fn drain(&mut self, bare: Drain) -> Drain {
        bare
    }

    /// Whether bytes were accepted by a `write` but are not yet on the
    /// socket (sealed TLS records): the owner then wants WRITABLE, and
    /// calls `flush`.
    fn unsent(&self) -> bool {
        false
    }

    /// How many bytes one read should ask for, given the owner's choice
    /// for a bare socket. TLS asks for a whole record's plaintext
    /// ([`RECORD_PLAINTEXT`]): a record is decrypted whole anyway, and
    /// what one read returns is written back as one record.
    fn read_size(&self, bare: usize) -> usize {
        bare
    }

    /// Ends our direction of the stream and keeps reading (a half-close):
    /// TCP's FIN, after TLS's `close_notify`. A stream that cannot says
    /// `Unsupported`.
    fn send_fin(&mut self) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// The most plaintext one TLS record carries (RFC 8446, 5.1).
pub const RECORD_PLAINTEXT: usize = 16 * 1024;

/// The largest record on the wire: the plaintext, the 5-byte header and
/// at most 256 bytes of expansion (RFC 8446, 5.2).
const RECORD: usize = RECORD_PLAINTEXT + 256 + 5;

/// Room for ciphertext: a handshake message may span records, and
/// rustls joins at most 64 KiB of one (it refuses more), plus a record.
const INCOMING_SIZE: usize = 64 * 1024 + RECORD;

/// The most plaintext sealed in one call: four full records.
const SEAL_MAX: usize = 4 * RECORD_PLAINTEXT;

thread_local! {
    /// The ciphertext buffer every stream of this thread reads into. Taken
    /// for the length of one call and put back (a `Cell`: a call that
    /// found it taken would only allocate its own, never fail).
    static INCOMING: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// The buffer every stream of this thread seals records into before
    /// the socket takes them.
    static OUTGOING: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's buffer `which`, at least `len` bytes long.
fn with_scratch<R>(
    which: &'static std::thread::LocalKey<Cell<Vec<u8>>>,
    len: usize,
    f: impl FnOnce(&mut Vec<u8>) -> R,
) -> R {
    let mut buf = which.take();
    if buf.len() < len {
        buf.resize(len, 0);
    }
    let out = f(&mut buf);
    which.set(buf);
    out
}

/// The TLS state machine, client or server side.
pub enum Session {
    /// We connected (the client, the load generator).
    Client(UnbufferedClientConnection),
    /// We accepted (the server).
    Server(UnbufferedServerConnection),
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Session::Client(_) => "Session::Client",
            Session::Server(_) => "Session::Server",
        })
    }
}

impl From<UnbufferedClientConnection> for Session {
    fn from(c: UnbufferedClientConnection) -> Self {
        Session::Client(c)
    }
}

impl From<UnbufferedServerConnection> for Session {
    fn from(s: UnbufferedServerConnection) -> Self {
        Session::Server(s)
    }
}

impl Session {
    /// What both sides answer: the version and suite agreed, whether the
    /// handshake is over, how it went.
    pub fn common(&self) -> &CommonState {
        match self {
            Session::Client(c) => c,
            Session::Server(s) => s,
        }
    }
}

/// rustls's one call, on either side: the same states come back, over a
/// different `Data`.
trait Machine {
    type Data;
    fn common(&self) -> &CommonState;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
}

impl Machine for UnbufferedConnectionCommon<ClientConnectionData> {
    type Data = ClientConnectionData;
    fn common(&self) -> &CommonState {
        self
    }
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ClientConnectionData> {
        self.process_tls_records(incoming)
    }
}

impl Machine for UnbufferedConnectionCommon<ServerConnectionData> {
    type Data = ServerConnectionData;
    fn common(&self) -> &CommonState {
        self
    }
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ServerConnectionData> {
        self.process_tls_records(incoming)
    }
}

/// What one drive of the state machine is for.
enum Goal<'a> {
    /// Plaintext into this buffer: stop once some came, or none can
    /// without more ciphertext.
    Read(&'a mut [u8]),
    /// The handshake's end: stop there, or where more ciphertext is needed.
    Handshake,
    /// Seal this plaintext into records.
    Seal(&'a [u8]),
    /// Seal our `close_notify`.
    Close,
}

/// Where a drive stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reached {
    /// This much plaintext was read (0: the peer's `close_notify`).
    Read(usize),
    /// More ciphertext is needed to go on.
    Starved,
    /// The handshake is over (or was already).
    Traffic,
    /// This much plaintext was sealed (or the `close_notify`: 0).
    Sealed(usize),
}

/// The bytes around the state machine: the socket, and what is on its
/// way in or out. Every buffer is empty, and owns no memory, when the
/// stream is idle.
struct Io<S> {
    sock: S,
    /// Ciphertext of a record (or handshake message) not complete yet, or
    /// of records a full reader's buffer left for the next read.
    held: Vec<u8>,
    /// Decrypted plaintext that did not fit the reader's buffer.
    plain: Vec<u8>,
    /// How much of `plain` was read already.
    plain_at: usize,
    /// Sealed records the socket did not take yet.
    unsent: Vec<u8>,
    /// How much of `unsent` was sent already.
    unsent_at: usize,
    /// The peer's `close_notify` came: reads are at a clean EOF.
    peer_closed: bool,
    /// rustls refused the peer: the session is over, and is not driven
    /// again (it would act on the same bytes twice).
    failed: bool,
}

impl<S: Read + Write> Io<S> {
    /// Copies out plaintext kept from an earlier record.
    fn take_plain(&mut self, buf: &mut [u8]) -> usize {
        let left = &self.plain[self.plain_at..];
        let n = left.len().min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.plain_at += n;
        if self.plain_at == self.plain.len() {
            self.plain = Vec::new();
            self.plain_at = 0;
        }
        n
    }

    /// Sealed bytes waiting for the socket.
    fn unsent_len(&self) -> usize {
        self.unsent.len() - self.unsent_at
    }

    /// Sends `unsent` until the socket would block (then the owner waits
    /// for WRITABLE: [`Wire::unsent`]).
    fn send(&mut self) -> io::Result<()> {
        while self.unsent_at < self.unsent.len() {
            match self.sock.write(&self.unsent[self.unsent_at..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    log::trace!("tls sent bytes={n}");
                    self.unsent_at += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // All out: hand the memory back.
        self.unsent = Vec::new();
        self.unsent_at = 0;
        Ok(())
    }

    /// Sends freshly sealed `records`: straight from the scratch buffer
    /// when nothing is waiting before them, and keeps what the socket
    /// does not take.
    fn send_sealed(&mut self, mut records: &[u8]) -> io::Result<()> {
        if self.unsent_len() == 0 {
            while !records.is_empty() {
                match self.sock.write(records) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        log::trace!("tls sent bytes={n}");
                        records = &records[n..];
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.unsent.extend_from_slice(records);
        Ok(())
    }
}

/// A rustls session (client or server side) over a non-blocking socket,
/// read and written as plaintext.
pub struct TlsStream<S> {
    /// The TLS state machine.
    session: Session,
    /// The socket, and the bytes on their way.
    io: Io<S>,
    /// Whether the handshake's end has been reported
    /// ([`handshake_news`](Self::handshake_news)).
    reported: bool,
    /// Whether the trace has told the handshake's end (as it happened,
    /// not when the owner asked).
    narrated: bool,
    /// When the connection was accepted or connected (the owner's clock,
    /// in nanoseconds), for the handshake's latency.
    started: u64,
    /// Whether our `close_notify` was sealed (it is sent once).
    closing: bool,
    /// This read pass may end at a short ciphertext read (the bare
    /// socket's rule, [`Drain::ShortRead`], set by [`Wire::drain`]).
    short_ends: bool,
    /// The last ciphertext read of this pass came back shorter than
    /// asked for: the socket was drained then.
    dry: bool,
    /// The most sealed bytes held unsent before a write says `WouldBlock`.
    limit: usize,
}

impl<S> fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("handshaking", &self.session.common().is_handshaking())
            .field("unsent", &(self.io.unsent.len() - self.io.unsent_at))
            .finish_non_exhaustive()
    }
}

impl<S: Read + Write> TlsStream<S> {
    /// Wraps `sock` in the session `tls`, started at `started` (the
    /// owner's clock, nanoseconds). At most about `limit` bytes of sealed
    /// records are held unsent (beyond it, `write` says `WouldBlock`).
    pub fn new(tls: impl Into<Session>, sock: S, limit: usize, started: u64) -> Self {
        TlsStream {
            session: tls.into(),
            io: Io {
                sock,
                held: Vec::new(),
                plain: Vec::new(),
                plain_at: 0,
                unsent: Vec::new(),
                unsent_at: 0,
                peer_closed: false,
                failed: false,
            },
            reported: false,
            narrated: false,
            started,
            closing: false,
            short_ends: false,
            dry: false,
            limit: limit.max(1),
        }
    }

    /// The socket under the session.
    pub fn socket(&self) -> &S {
        &self.io.sock
    }

    /// The socket under the session, mutably (to register it).
    pub fn socket_mut(&mut self) -> &mut S {
        &mut self.io.sock
    }

    /// Whether the handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        self.session.common().is_handshaking()
    }

    /// The session's agreed parameters (version, cipher suite, ALPN).
    pub fn session(&self) -> &CommonState {
        self.session.common()
    }

    /// When the connection started, on the owner's clock.
    pub fn started(&self) -> u64 {
        self.started
    }

    /// The handshake's end, once: `Some(resumed)` the first time this is
    /// asked after the handshake finished, `None` before and after.
    pub fn handshake_news(&mut self) -> Option<bool> {
        if self.reported || self.is_handshaking() {
            return None;
        }
        self.reported = true;
        Some(self.session.common().handshake_kind() == Some(HandshakeKind::Resumed))
    }

    /// Seals our `close_notify` and sends it (with anything still held)
    /// if the socket takes it now. A close that cannot wait for the socket
    /// loses it, and the peer sees a truncation: rare, since the close
    /// comes when nothing is owed. Before the handshake's end there is no
    /// session to close.
    pub fn close_notify(&mut self) -> io::Result<()> {
        if !self.closing && !self.is_handshaking() && !self.io.failed {
            self.closing = true;
            log::trace!("tls close_notify");
            self.drive_held(Goal::Close)?;
        }
        self.io.send()
    }

    /// Drives the handshake as far as the socket allows: sends what
    /// rustls has to say, reads and processes what the peer said, until
    /// the socket would block (`Ok(false)`) or the handshake is over
    /// (`Ok(true)`). Plaintext that came with the peer's last flight waits
    /// for the next `read`. An EOF during the handshake is an
    /// `UnexpectedEof` error, a refused handshake an `InvalidData` one.
    pub fn handshake(&mut self) -> io::Result<bool> {
        self.io.send()?;
        match self.pump(Goal::Handshake) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Drives the state machine towards `goal` over what is held, reading
    /// the socket into this thread's ciphertext buffer whenever it is
    /// starved. `WouldBlock` when the socket is dry first.
    fn pump(&mut self, mut goal: Goal<'_>) -> io::Result<Reached> {
        with_scratch(&INCOMING, INCOMING_SIZE, |incoming| {
            // What an earlier call left unfinished goes first.
            let mut used = self.io.held.len();
            incoming[..used].copy_from_slice(&self.io.held);
            let asked = match &goal {
                Goal::Read(buf) => buf.len().max(RECORD),
                _ => RECORD,
            };
            let result = loop {
                let (reached, consumed) = match self.drive(&mut incoming[..used], &mut goal) {
                    Ok(r) => r,
                    Err(e) => break Err(e),
                };
                incoming.copy_within(consumed..used, 0);
                used -= consumed;
                if reached != Reached::Starved {
                    break Ok(reached);
                }
                if self.dry && self.short_ends {
                    log::trace!("tls read dry (the last ciphertext read was short)");
                    break Err(io::ErrorKind::WouldBlock.into());
                }
                if used == incoming.len() {
                    break Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a TLS handshake message larger than 64 KiB",
                    ));
                }
                let ask = asked.min(incoming.len() - used);
                match self.io.sock.read(&mut incoming[used..used + ask]) {
                    Ok(0) => break Err(self.eof(used)),
                    Ok(n) => {
                        log::trace!("tls read ciphertext bytes={n}");
                        used += n;
                        self.dry = n < ask;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            // Keep what is unfinished, sized to what it is.
            if used == 0 || self.io.failed {
                self.io.held = Vec::new();
            } else {
                self.io.held.clear();
                self.io.held.extend_from_slice(&incoming[..used]);
            }
            self.narrate();
            result
        })
    }

    /// The socket's EOF, with `used` bytes of an unfinished record held:
    /// always an error here, since the peer's `close_notify` (a clean
    /// end) would have been read before it.
    fn eof(&self, used: usize) -> io::Error {
        log::trace!("tls read ciphertext eof");
        let why = if self.is_handshaking() {
            "the peer closed the connection during the handshake"
        } else if used > 0 {
            "the peer closed the connection in the middle of a TLS record"
        } else {
            "the peer closed the connection without sending TLS close_notify"
        };
        io::Error::new(io::ErrorKind::UnexpectedEof, why)
    }

    /// Drives the state machine over the ciphertext held (no socket
    /// read): for a write, which must first let rustls act on any
    /// record still held.
    fn drive_held(&mut self, mut goal: Goal<'_>) -> io::Result<Reached> {
        let mut held = std::mem::take(&mut self.io.held);
        let driven = self.drive(&mut held, &mut goal);
        if let Ok((_, consumed)) = driven {
            held.drain(..consumed);
        }
        if !held.is_empty() {
            self.io.held = held;
        }
        driven.map(|(reached, _)| reached)
    }

    /// One drive over `incoming`, on whichever side this is: where it
    /// stopped, and how many bytes of `incoming` are done with.
    fn drive(&mut self, incoming: &mut [u8], goal: &mut Goal<'_>) -> io::Result<(Reached, usize)> {
        match &mut self.session {
            Session::Client(c) => drive(&mut **c, incoming, &mut self.io, goal),
            Session::Server(s) => drive(&mut **s, incoming, &mut self.io, goal),
        }
    }

    /// Tells the trace of the handshake's end, when it happens.
    fn narrate(&mut self) {
        if !self.narrated && !self.is_handshaking() {
            self.narrated = true;
            let resumed = self.session.common().handshake_kind() == Some(HandshakeKind::Resumed);
            log::trace!(
                "tls state handshaking => traffic ({})",
                if resumed { "resumed" } else { "full" }
            );
        }
    }
}

// ANCHOR: drive
/// Drives `machine` over `incoming` towards `goal`, answering each state
/// rustls comes back with, until the goal is reached or more ciphertext
/// is needed. Returns where it stopped and how many bytes of `incoming`
/// rustls is done with (the caller drops them from the front).
fn drive<M: Machine, S: Read + Write>(
    machine: &mut M,
    incoming: &mut [u8],
    io: &mut Io<S>,
    goal: &mut Goal<'_>,
) -> io::Result<(Reached, usize)> {
    if io.failed {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the TLS session failed earlier",
        ));
    }
    let mut done = 0;
    let mut filled = 0;
    loop {
        let status = machine.process(&mut incoming[done..]);
        let discard = status.discard;
        let state = match status.state {
            Ok(state) => state,
            Err(e) => return Err(refused(machine, io, e)),
        };
        log::trace!("tls state {state:?}");
        let stop = match state {
            ConnectionState::EncodeTlsData(mut data) => {
                encode(&mut data, &mut io.unsent)?;
                None
            }
            ConnectionState::TransmitTlsData(data) => {
                io.send()?;
                data.done();
                None
            }
            ConnectionState::ReadTraffic(mut records) => match goal {
                Goal::Read(buf) => {
                    // Fill the reader's buffer, a record at a time; a
                    // record that does not fit waits in rustls for the
                    // next read, unless nothing was read yet.
                    let mut full = false;
                    while let Some(len) = records.peek_len() {
                        let room = buf.len() - filled;
                        if len.get() > room && filled > 0 {
                            full = true;
                            break;
                        }
                        let Some(record) = records.next_record() else {
                            break;
                        };
                        let record = record.map_err(invalid)?;
                        let n = record.payload.len().min(room);
                        buf[filled..filled + n].copy_from_slice(&record.payload[..n]);
                        filled += n;
                        if n < record.payload.len() {
                            io.plain.extend_from_slice(&record.payload[n..]);
                        }
                        if filled == buf.len() {
                            full = true;
                            break;
                        }
                    }
                    full.then_some(Reached::Read(filled))
                }
                // Plaintext that came with the handshake's last flight
                // waits in rustls for the first read.
                Goal::Handshake => Some(Reached::Traffic),
                // A write found records not read yet: keep them for the
                // reader, so that rustls will take the write.
                Goal::Seal(_) | Goal::Close => {
                    while let Some(record) = records.next_record() {
                        io.plain.extend_from_slice(record.map_err(invalid)?.payload);
                    }
                    None
                }
            },
            ConnectionState::WriteTraffic(mut traffic) => match goal {
                Goal::Read(_) if filled > 0 => Some(Reached::Read(filled)),
                Goal::Read(_) => Some(Reached::Starved),
                Goal::Handshake => Some(Reached::Traffic),
                Goal::Seal(plaintext) => {
                    let take = plaintext.len().min(SEAL_MAX);
                    let need = take + (take / RECORD_PLAINTEXT + 1) * 64;
                    with_scratch(&OUTGOING, need, |out| -> io::Result<()> {
                        let n = loop {
                            match traffic.encrypt(&plaintext[..take], out) {
                                Ok(n) => break n,
                                Err(EncryptError::InsufficientSize(s)) => {
                                    out.resize(s.required_size, 0)
                                }
                                Err(e) => return Err(io::Error::other(e.to_string())),
                            }
                        };
                        io.send_sealed(&out[..n])
                    })?;
                    Some(Reached::Sealed(take))
                }
                Goal::Close => {
                    let at = io.unsent.len();
                    io.unsent.resize(at + 64, 0);
                    let n = traffic
                        .queue_close_notify(&mut io.unsent[at..])
                        .map_err(|e| io::Error::other(e.to_string()))?;
                    io.unsent.truncate(at + n);
                    Some(Reached::Sealed(0))
                }
            },
            ConnectionState::BlockedHandshake => match goal {
                Goal::Read(_) if filled > 0 => Some(Reached::Read(filled)),
                _ => Some(Reached::Starved),
            },
            // The peer's close_notify: the next drive comes back with
            // `WriteTraffic`, since we may still send.
            ConnectionState::PeerClosed => {
                io.peer_closed = true;
                match goal {
                    Goal::Read(_) => Some(Reached::Read(filled)),
                    Goal::Handshake => Some(Reached::Traffic),
                    Goal::Seal(_) | Goal::Close => None,
                }
            }
            // Both sides sent close_notify: nothing more flows.
            ConnectionState::Closed => match goal {
                Goal::Read(_) => Some(Reached::Read(filled)),
                Goal::Handshake => Some(Reached::Traffic),
                Goal::Close => Some(Reached::Sealed(0)),
                Goal::Seal(_) => return Err(io::ErrorKind::BrokenPipe.into()),
            },
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("tls: unexpected state {other:?}"),
                ));
            }
        };
        done += discard;
        if let Some(reached) = stop {
            return Ok((reached, done));
        }
    }
}
// ANCHOR_END: drive

/// Appends the handshake record rustls hands out to `unsent`.
fn encode<Data>(data: &mut EncodeTlsData<'_, Data>, unsent: &mut Vec<u8>) -> io::Result<()> {
    let at = unsent.len();
    let mut room = 4096;
    loop {
        unsent.resize(at + room, 0);
        match data.encode(&mut unsent[at..]) {
            Ok(n) => {
                unsent.truncate(at + n);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(s)) => room = s.required_size,
            Err(e) => {
                unsent.truncate(at);
                return Err(io::Error::other(e.to_string()));
            }
        }
    }
}

/// A rustls error, as an I/O error that carries it.
fn invalid(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// rustls refused the peer (`e`): sends the alert it wrote to say why
/// (best effort), and returns the error.
fn refused<M: Machine, S: Read + Write>(
    machine: &mut M,
    io: &mut Io<S>,
    e: rustls::Error,
) -> io::Error {
    io.failed = true;
    io.held = Vec::new();
    // The alert (and a flight queued before it) waits in the session.
    // While it holds records, a call hands one out before it looks at any
    // ciphertext: so none is given, and what was refused is not read twice.
    while machine.common().wants_write() {
        match machine.process(&mut []).state {
            Ok(ConnectionState::EncodeTlsData(mut data)) => {
                if encode(&mut data, &mut io.unsent).is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
    let _ = io.send();
    invalid(e)
}

// ANCHOR: read
impl<S: Read + Write> Read for TlsStream<S> {
    /// Plaintext already decrypted, if any; else rustls is driven over
    /// the ciphertext held and read (answering the handshake as it goes)
    /// until a record's plaintext comes. `WouldBlock` when the socket
    /// said so, or when a short ciphertext read already proved it dry.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.io.take_plain(buf);
        if n > 0 {
            return Ok(n);
        }
        if self.io.peer_closed {
            return Ok(0);
        }
        match self.pump(Goal::Read(buf))? {
            Reached::Read(n) => Ok(n),
            // The handshake ended with no plaintext: as a read, nothing yet.
            _ => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}
// ANCHOR_END: read

impl<S: Read + Write> Write for TlsStream<S> {
    /// Seals what it takes of `data` into records and sends what the
    /// socket takes; `WouldBlock` while `limit` bytes wait unsent, or
    /// before the handshake lets application data through.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        self.io.send()?;
        if self.io.unsent_len() >= self.limit {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match self.drive_held(Goal::Seal(data))? {
            Reached::Sealed(n) => Ok(n),
            _ => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Sends the sealed records held, as far as the socket takes them.
    fn flush(&mut self) -> io::Result<()> {
        self.io.send()
    }
}

impl<S: Read + Write> Wire for TlsStream<S> {
    fn drain(&mut self, bare: Drain) -> Drain {
        self.short_ends = bare == Drain::ShortRead;
        self.dry = false;
        Drain::WouldBlock
    }

    fn unsent(&self) -> bool {
        self.io.unsent_len() > 0
    }

    fn read_size(&self, _bare: usize) -> usize {
        RECORD_PLAINTEXT
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::{PrivateKeyDer, ServerName};

    use super::*;
    use crate::shared::fake::{Fake, Step};
    use crate::shared::tls::provider;
    use crate::shared::trust::AnyCertificate;

    /// A server config with a fresh self-signed certificate.
    fn server_config() -> Arc<rustls::ServerConfig> {
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

    /// A buffered rustls client (the peer, in memory) that trusts anything.
    fn client() -> rustls::ClientConnection {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").expect("name");
        rustls::ClientConnection::new(Arc::new(config), name).expect("client")
    }

    /// What the client has to send, as one scripted read of the server's
    /// socket.
    fn client_says(client: &mut rustls::ClientConnection, server: &mut TlsStream<Fake>) {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).expect("client writes");
        }
        if !wire.is_empty() {
            server.socket_mut().reads.push_back(Step::Data(wire.leak()));
        }
    }

    /// What the server wrote, handed to the client.
    fn server_says(server: &mut TlsStream<Fake>, client: &mut rustls::ClientConnection) {
        let wire = std::mem::take(&mut server.socket_mut().written);
        let mut rest = &wire[..];
        while !rest.is_empty() {
            client.read_tls(&mut rest).expect("client reads");
            client.process_new_packets().expect("client processes");
        }
    }

    /// A server stream over a scripted socket that finished its handshake
    /// with an in-memory client; the socket's read count starts at zero.
    fn handshaken() -> (TlsStream<Fake>, rustls::ClientConnection) {
        let session = UnbufferedServerConnection::new(server_config()).expect("session");
        let mut server = TlsStream::new(session, Fake::default(), 1 << 16, 0);
        let mut client = client();
        while client.is_handshaking() || server.is_handshaking() {
            client_says(&mut client, &mut server);
            let mut buf = [0u8; 16];
            let err = server
                .read(&mut buf)
                .expect_err("no plaintext during the handshake");
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
            server_says(&mut server, &mut client);
        }
        assert_eq!(server.handshake_news(), Some(false), "a full handshake");
        server.socket_mut().read_calls = 0;
        (server, client)
    }

    /// `plaintext` sealed by the client, in records of `chunk` bytes, as
    /// one scripted read of the server's socket.
    fn client_sends(
        client: &mut rustls::ClientConnection,
        server: &mut TlsStream<Fake>,
        plaintext: &[u8],
        chunk: usize,
    ) -> usize {
        for part in plaintext.chunks(chunk) {
            client.writer().write_all(part).expect("client seals");
        }
        let before = server.socket().reads.len();
        client_says(client, server);
        match server.socket().reads.back() {
            Some(Step::Data(d)) if server.socket().reads.len() > before => d.len(),
            _ => 0,
        }
    }

    /// Reads plaintext with a `size`-byte buffer until `WouldBlock`, as a
    /// server's read pass does; returns what came.
    fn read_pass(tls: &mut TlsStream<Fake>, size: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; size];
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

    /// Plaintext sent where a handshake was expected fails with a reason,
    /// and rustls's alert goes out first.
    #[test]
    fn plaintext_to_a_tls_server_is_invalid_data() {
        let session = UnbufferedServerConnection::new(server_config()).expect("session");
        let sock = Fake {
            reads: vec![Step::Data(b"GET / HTTP/1.0\r\n\r\n")].into(),
            ..Default::default()
        };
        let mut tls = TlsStream::new(session, sock, 1 << 16, 0);
        let mut buf = [0u8; 64];
        let err = tls.read(&mut buf).expect_err("plaintext is refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(tls.handshake_news().is_none());
        assert_eq!(
            tls.socket().written.first(),
            Some(&0x15),
            "an alert record (content type 21) was sent"
        );
    }

    /// A hostile client: a handshake message that claims 16 MiB, sent as
    /// record after full record. It is refused with a reason, and what the
    /// stream holds meanwhile never passes its ciphertext room.
    #[test]
    fn an_endless_handshake_message_is_refused_and_bounded() {
        let mut record = vec![22, 3, 1, 0x40, 0x00];
        let mut body = vec![0u8; 16 * 1024];
        body[..4].copy_from_slice(&[1, 0xff, 0xff, 0xff]);
        record.extend_from_slice(&body);
        let record: &'static [u8] = record.leak();
        let session = UnbufferedServerConnection::new(server_config()).expect("session");
        let sock = Fake {
            reads: std::iter::repeat_with(|| Step::Data(record))
                .take(8)
                .collect(),
            ..Default::default()
        };
        let mut tls = TlsStream::new(session, sock, 1 << 16, 0);
        let mut buf = [0u8; 64];
        let err = loop {
            match tls.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(tls.io.held.len() <= INCOMING_SIZE);
                    assert!(!tls.socket().reads.is_empty(), "never refused");
                }
                Err(e) => break e,
                Ok(n) => panic!("{n} bytes of plaintext from a handshake"),
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(tls.io.held.is_empty(), "nothing kept after a refusal");
    }

    /// The drain rule on ciphertext, with made-up reads: after a read
    /// pass that may end at a short read (the bare socket's rule), a
    /// ciphertext read shorter than asked for ends the pass once the
    /// plaintext is out: one read call, not the second that would only
    /// say WouldBlock. Where the bare rule reads to WouldBlock (after a
    /// hang-up, or from the ready queue), the socket is asked again.
    #[test]
    fn a_short_ciphertext_read_proves_the_socket_dry() {
        let sent: Vec<u8> = (0..600u32).map(|i| (i % 251) as u8).collect();
        for (bare, calls) in [(Drain::ShortRead, 1), (Drain::WouldBlock, 2)] {
            let (mut server, mut client) = handshaken();
            client_sends(&mut client, &mut server, &sent, 100);
            assert_eq!(
                server.drain(bare),
                Drain::WouldBlock,
                "plaintext reads go on"
            );
            assert_eq!(read_pass(&mut server, 1024), sent, "every byte, in order");
            assert_eq!(server.socket().read_calls, calls, "{bare:?}");
        }
    }

    /// A ciphertext read that fills what was asked for proves nothing:
    /// the socket is read again, and the pass ends at the short read
    /// after it.
    #[test]
    fn a_full_ciphertext_read_reads_on() {
        let sent: Vec<u8> = (0..40_000u32).map(|i| (i % 253) as u8).collect();
        let (mut server, mut client) = handshaken();
        let wire = client_sends(&mut client, &mut server, &sent, 1000);
        assert!(wire > 2 * RECORD, "more than two full reads: {wire}");
        server.drain(Drain::ShortRead);
        assert_eq!(read_pass(&mut server, 1024), sent);
        // RECORD + RECORD (full) + the rest (short): three calls, no fourth.
        assert_eq!(server.socket().read_calls, 3);
    }

    /// Small records are read many to a buffer: a 16 KiB read takes
    /// every record that fits, so the echo writes them back as one.
    #[test]
    fn one_read_takes_every_record_that_fits() {
        let sent: Vec<u8> = (0..6_400u32).map(|i| (i % 241) as u8).collect();
        let (mut server, mut client) = handshaken();
        client_sends(&mut client, &mut server, &sent, 64);
        server.drain(Drain::ShortRead);
        let mut buf = vec![0u8; RECORD_PLAINTEXT];
        let n = server.read(&mut buf).expect("plaintext");
        assert_eq!(&buf[..n], &sent[..], "a hundred records in one read");
    }

    /// A record larger than the reader's buffer is handed out over as
    /// many reads as it takes, in order; then the stream holds nothing:
    /// an idle TLS stream owns no buffer.
    #[test]
    fn a_record_larger_than_the_buffer_comes_whole_and_nothing_stays() {
        let sent: Vec<u8> = (0..16_384u32).map(|i| (i % 239) as u8).collect();
        let (mut server, mut client) = handshaken();
        client_sends(&mut client, &mut server, &sent, 16_384);
        server.drain(Drain::ShortRead);
        assert_eq!(read_pass(&mut server, 1000), sent);
        let io = &server.io;
        assert_eq!(
            (
                io.held.capacity(),
                io.plain.capacity(),
                io.unsent.capacity()
            ),
            (0, 0, 0),
            "no memory held between passes"
        );
    }

    /// A record cut by a read waits for its rest, then reads whole.
    #[test]
    fn a_record_cut_in_two_reads_whole_once_its_rest_comes() {
        let sent = b"a record cut in the middle".to_vec();
        let (mut server, mut client) = handshaken();
        client.writer().write_all(&sent).expect("client seals");
        let mut wire = Vec::new();
        client.write_tls(&mut wire).expect("client writes");
        let (first, second) = wire.split_at(10);
        server
            .socket_mut()
            .reads
            .push_back(Step::Data(first.to_vec().leak()));
        server.drain(Drain::WouldBlock);
        assert!(
            read_pass(&mut server, 1024).is_empty(),
            "half a record: nothing"
        );
        assert_eq!(server.io.held.len(), 10, "the half is kept");
        server
            .socket_mut()
            .reads
            .push_back(Step::Data(second.to_vec().leak()));
        server.drain(Drain::WouldBlock);
        assert_eq!(read_pass(&mut server, 1024), sent);
        assert_eq!(server.io.held.capacity(), 0);
    }

    /// The peer's close_notify reads as a clean EOF, and stays one.
    #[test]
    fn close_notify_reads_as_a_clean_eof() {
        let (mut server, mut client) = handshaken();
        client.writer().write_all(b"bye").expect("seal");
        client.send_close_notify();
        client_says(&mut client, &mut server);
        let mut buf = [0u8; 64];
        assert_eq!(server.read(&mut buf).expect("plaintext"), 3);
        assert_eq!(server.read(&mut buf).expect("eof"), 0);
        assert_eq!(server.read(&mut buf).expect("still eof"), 0);
        // Ours goes back, and the client reads it as the clean end.
        server.close_notify().expect("close_notify");
        server_says(&mut server, &mut client);
        let mut end = [0u8; 8];
        assert_eq!(client.reader().read(&mut end).expect("client eof"), 0);
    }

    /// A FIN without close_notify is a truncation, never a clean end.
    #[test]
    fn a_fin_without_close_notify_is_a_truncation() {
        let (mut server, mut client) = handshaken();
        client_sends(&mut client, &mut server, b"cut", 64);
        server.socket_mut().reads.push_back(Step::Eof);
        let mut buf = [0u8; 64];
        assert_eq!(server.read(&mut buf).expect("plaintext"), 3);
        let err = server.read(&mut buf).expect_err("truncated");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        assert!(err.to_string().contains("close_notify"), "{err}");
    }

    /// What the socket does not take is held as sealed records: the
    /// owner is told (`unsent`), `flush` sends the rest, and past the
    /// limit a write says WouldBlock.
    #[test]
    fn records_the_socket_refuses_are_held_and_flushed() {
        let (mut server, mut client) = handshaken();
        server.limit = 4096;
        server.socket_mut().writes = vec![Step::Take(100), Step::Block, Step::Block].into();
        let payload = vec![7u8; 5000];
        assert_eq!(server.write(&payload).expect("sealed"), 5000);
        assert!(server.unsent(), "most of the record waits");
        let err = server.write(b"more").expect_err("past the limit");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        server.flush().expect("flush");
        assert!(!server.unsent());
        assert_eq!(server.io.unsent.capacity(), 0, "memory handed back");
        server_says(&mut server, &mut client);
        let mut got = vec![0u8; 6000];
        let n = client.reader().read(&mut got).expect("client reads");
        assert_eq!(&got[..n], &payload[..]);
    }
}
