//! One load connection: what it has sent, what came back, and the
//! messages whose echoes are still on their way. The server's
//! [`Connection`](crate::server) seen from the other end of the wire.
//!
//! Like the server's, it works on any `Read + Write` stream, so the tests
//! at the bottom drive it with a scripted fake stream (short writes,
//! segmented echoes, a wrong byte, `Ok(0)`) instead of sockets. The loop
//! that owns the real sockets, connects them and times them out is
//! [`Generator`](super::stream::Generator).
//!
//! Its I/O follows the same rules as the server's: write until the socket
//! is full and keep count of what is left (here a count, not a buffer: the
//! bytes are on the tape), read until the socket is dry by the shared
//! [`Drain`] rule, tolerate spurious events.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::time::Instant;

use crate::shared::net::{interrupted, would_block};
use crate::shared::readiness::Drain;
use crate::shared::tls::Wire;

use super::counters::Counters;
use super::tape::{CHUNK, Reply, Tape};

/// Where one connection is.
pub(super) enum Phase<S> {
    /// Not opened yet (ramping up under `--connect-rate`).
    Waiting,
    /// A non-blocking connect is in flight since `since`.
    Connecting {
        /// The socket being connected.
        stream: S,
        /// When the attempt started.
        since: Instant,
    },
    /// TCP is up (at `up`); the TLS handshake is under way (`tls://`).
    Handshaking {
        /// The TLS stream.
        stream: S,
        /// When the TCP connect started.
        since: Instant,
        /// When TCP was established: the handshake's latency counts from
        /// here.
        up: Instant,
    },
    /// Sending messages and checking echoes.
    Running {
        /// The connected socket.
        stream: S,
    },
    /// Failed; with `--reconnect`, waits to be opened again.
    Backoff,
    /// Failed, or the run is over; the socket is closed.
    Closed,
}

impl<S> Phase<S> {
    /// The phase's name, for the trace (`connecting => running`).
    pub(super) fn name(&self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Connecting { .. } => "connecting",
            Phase::Handshaking { .. } => "handshaking",
            Phase::Running { .. } => "running",
            Phase::Backoff => "backoff",
            Phase::Closed => "closed",
        }
    }
}

/// Why a connection was closed before the end of the run. The server's
/// reasons have the same names where they mean the same thing.
#[derive(Debug)]
pub(super) enum Close {
    /// The server closed the connection mid-run (a clean EOF).
    Closed,
    /// An I/O error: a reset, a broken pipe.
    Failed(io::Error),
    /// The echo differs from what was sent.
    Mismatch,
    /// An echo did not come back within `--timeout`.
    Timeout,
    /// TLS: the server sent a FIN with no `close_notify` before it.
    Truncated,
    /// TLS: a record did not decrypt or parse.
    Corrupt(io::Error),
    /// TLS: the server ended the session with an alert (in TLS 1.3 a
    /// refused client certificate arrives so, after the client's side of
    /// the handshake is over).
    Refused(io::Error),
    /// `--half-close`: after our FIN, the server closed before echoing
    /// everything, or sent no EOF within `--timeout`.
    HalfCloseFailed(&'static str),
}

impl Close {
    /// An I/O error, named: over TLS a FIN without a `close_notify` is a
    /// truncation and a bad record is corruption (a bare socket has
    /// neither: its FIN is a clean `Closed`), anything else a failure.
    fn of(e: io::Error) -> Close {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => Close::Truncated,
            io::ErrorKind::InvalidData if is_alert(&e) => Close::Refused(e),
            io::ErrorKind::InvalidData => Close::Corrupt(e),
            _ => Close::Failed(e),
        }
    }
}

impl fmt::Display for Close {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Close::Closed => f.write_str("the server closed the connection"),
            Close::Failed(e) => write!(f, "error: {e}"),
            Close::Mismatch => f.write_str("the echo differs from what was sent"),
            Close::Timeout => f.write_str("echo timeout"),
            Close::Truncated => f.write_str("the server closed without a close_notify (truncated)"),
            Close::Corrupt(e) => write!(f, "corrupt record: {e}"),
            Close::Refused(e) => write!(f, "refused: {}", crate::shared::trust::explain(e)),
            Close::HalfCloseFailed(why) => write!(f, "half-close: {why}"),
        }
    }
}

/// Whether a TLS error is an alert the peer sent (rather than bytes that
/// made no sense).
fn is_alert(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::AlertReceived(_)))
}

/// One load connection.
pub(super) struct Connection<S> {
    /// Where it is, and its socket while it has one.
    pub(super) phase: Phase<S>,
    /// Where this connection's bytes start on the tape.
    tape_start: usize,
    /// Bytes handed to the messages so far (what should be written).
    queued: u64,
    /// Bytes written so far.
    sent: u64,
    /// Bytes read back and verified so far.
    received: u64,
    /// Each message not yet echoed in full, oldest first.
    in_flight: VecDeque<InFlight>,
    /// How many of `in_flight` (from the front) are written in full: the
    /// next one to be stamped with its send time.
    written: usize,
    /// `--messages-per-connection`: how many messages one socket carries
    /// before it is closed and a new one opened in its place.
    quota: Option<u64>,
    /// Messages queued on this socket so far, and echoed in full.
    msgs_queued: u64,
    msgs_done: u64,
    /// Bytes of the first message (`--first-message`) at the head of the
    /// stream written: message positions count them, the tape does not.
    first_len: u64,
    /// Whether the first message's echo is still awaited (the measured
    /// messages wait for it).
    awaiting_first: bool,
    /// Set once its echo is in; the generator then starts the messages.
    greeted: bool,
    /// `--half-close`: end with our FIN after the last message.
    half_close: bool,
    /// No more messages: the quota is queued, or the window has ended.
    last: bool,
    /// When our FIN went (`--half-close`).
    fin_at: Option<Instant>,
    /// What comes back, as the tape says at `open`: an echo, `--expect`'s
    /// reply (its length), or nothing.
    replies: Replies,
    /// `--expect`: where the replies owed for what is queued end, in the
    /// stream read back (the first message's echo, if any, comes first).
    reply_owed: u64,
    /// The server's EOF came after every echo: the connection is done.
    eof: bool,
}

/// What comes back for each message, as one connection keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replies {
    /// The message's own bytes.
    Echo,
    /// A fixed reply of this many bytes (`--expect`).
    Expect(u64),
    /// Nothing (`--no-reply`): a message is done once written.
    Nothing,
}

/// A message waiting for its echo.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// Where its last byte is in the connection's stream.
    end: u64,
    /// Where its reply ends in the stream read back (an echo: `end`).
    reply_end: u64,
    /// When it was sent (closed loop) or meant to go (open loop): its
    /// latency counts from here.
    at: Instant,
    /// When its last byte was written: its service time counts from here.
    sent: Option<Instant>,
}

impl<S: Wire> Connection<S> {
    /// A connection not opened yet, whose bytes start at `tape_start`.
    pub(super) fn new(tape_start: usize, quota: Option<u64>, half_close: bool) -> Self {
        Connection {
            phase: Phase::Waiting,
            tape_start,
            queued: 0,
            sent: 0,
            received: 0,
            in_flight: VecDeque::new(),
            written: 0,
            quota,
            msgs_queued: 0,
            msgs_done: 0,
            first_len: 0,
            awaiting_first: false,
            greeted: false,
            half_close,
            last: false,
            fin_at: None,
            eof: false,
            replies: Replies::Echo,
            reply_owed: 0,
        }
    }

    /// The socket is up: queues the first message, if there is one.
    pub(super) fn open(&mut self, tape: &Tape) {
        self.first_len = tape.first().len() as u64;
        self.queued += self.first_len;
        self.awaiting_first = self.first_len > 0 && tape.first_echoed();
        self.replies = match tape.reply() {
            Reply::Echo => Replies::Echo,
            Reply::Expect(r) => Replies::Expect(r.len() as u64),
            Reply::Nothing => Replies::Nothing,
        };
        if self.awaiting_first {
            self.reply_owed = self.first_len;
        }
    }

    /// Whether the measured messages may begin: no first message's echo
    /// is awaited.
    pub(super) fn is_greeted(&self) -> bool {
        !self.awaiting_first
    }

    /// True once, just after the first message's echo came in: the
    /// closed loop then fills its pipeline.
    pub(super) fn take_greeted(&mut self) -> bool {
        std::mem::take(&mut self.greeted)
    }

    /// Forgets the old socket's stream, for a new socket in this slot (its
    /// bytes start again at the connection's place on the tape).
    /// The phase is left alone: it changes only through the generator's
    /// `set_phase`, which keeps the counts and traces the change.
    pub(super) fn reset(&mut self) {
        let phase = std::mem::replace(&mut self.phase, Phase::Waiting);
        *self = Connection::new(self.tape_start, self.quota, self.half_close);
        self.phase = phase;
    }

    /// Whether this socket may carry another message (its quota is not
    /// all queued yet).
    pub(super) fn wants_more(&self) -> bool {
        !self.last && self.quota.is_none_or(|q| self.msgs_queued < q)
    }

    /// Whether this socket has carried its whole quota, every echo back
    /// (with `--half-close`, and the server's EOF after them).
    pub(super) fn is_spent(&self) -> bool {
        self.quota.is_some_and(|q| self.msgs_done >= q) && (!self.half_close || self.eof)
    }

    /// `--no-reply`: whether a message is done once written.
    pub(super) fn sends_only(&self) -> bool {
        self.replies == Replies::Nothing
    }

    /// `--no-reply`, closed loop: queues messages (sent at `now`) until
    /// `pipeline` are unwritten, while the quota allows. Whether any was.
    pub(super) fn top_up(&mut self, pipeline: usize, size: usize, now: Instant) -> bool {
        let mut queued = false;
        while matches!(self.phase, Phase::Running { .. })
            && self.sent == self.queued
            && self.in_flight.len() < pipeline
            && self.wants_more()
        {
            self.queue(size, now);
            queued = true;
        }
        queued
    }

    /// The window has ended: no more messages; with `--half-close`, the
    /// FIN goes once what is queued is written.
    pub(super) fn finish_sending(&mut self) {
        self.last = true;
    }

    /// `--half-close`: whether this connection still waits for the
    /// server's EOF after our FIN (or has yet to send it).
    pub(super) fn awaits_eof(&self) -> bool {
        self.half_close && matches!(self.phase, Phase::Running { .. }) && !self.eof
    }

    /// `--half-close`: our FIN went at least `timeout` before `now`, every
    /// echo is in, and no EOF came.
    pub(super) fn eof_overdue(&self, now: Instant, timeout: std::time::Duration) -> bool {
        self.in_flight.is_empty()
            && !self.eof
            && self
                .fin_at
                .is_some_and(|at| now.saturating_duration_since(at) > timeout)
    }

    /// `--half-close`: sends our FIN once nothing more is to be written.
    fn maybe_fin(&mut self, now: Instant) -> Result<(), Close> {
        if !self.half_close || self.fin_at.is_some() || self.wants_more() || self.sent < self.queued
        {
            return Ok(());
        }
        let Phase::Running { stream } = &mut self.phase else {
            return Ok(());
        };
        match stream.send_fin() {
            Ok(()) => {
                log::trace!("half-close: fin sent after {} bytes", self.sent);
                self.fin_at = Some(now);
                Ok(())
            }
            Err(e) if would_block(&e) || interrupted(&e) => Ok(()),
            Err(e) => Err(Close::of(e)),
        }
    }

    /// Whether this connection can take another open-loop message now:
    /// running, with everything queued so far already written.
    pub(super) fn can_take(&self) -> bool {
        matches!(self.phase, Phase::Running { .. })
            && self.sent == self.queued
            && self.wants_more()
            && !self.awaiting_first
    }

    /// When the oldest message still waiting for its echo was sent (or due).
    pub(super) fn oldest_in_flight(&self) -> Option<Instant> {
        self.in_flight.front().map(|m| m.at)
    }

    /// How many messages sent inside the counters' window are still
    /// waiting for their echoes.
    pub(super) fn awaited(&self, counters: &Counters) -> u64 {
        self.in_flight
            .iter()
            .filter(|m| counters.sent_in_window(m.at))
            .count() as u64
    }

    /// The connection goes down after its window closed: each message
    /// sent inside the window that it still awaited is counted in the
    /// counters' [`Ending`](super::outcome::Ending), as timed out when it
    /// was older than `--timeout` at `now`, otherwise as lost with it.
    pub(super) fn abandon(&mut self, counters: &mut Counters, now: Instant) {
        for m in self.in_flight.drain(..) {
            if !counters.sent_in_window(m.at) {
                continue;
            }
            if now.saturating_duration_since(m.at) > counters.timeout {
                counters.ending.timed_out += 1;
            } else {
                counters.ending.lost += 1;
            }
        }
        self.written = 0;
    }

    /// Queues one message, sent (or due) at `at`.
    pub(super) fn queue(&mut self, size: usize, at: Instant) {
        self.msgs_queued += 1;
        self.queued += size as u64;
        let reply_end = match self.replies {
            Replies::Expect(len) => {
                self.reply_owed += len;
                self.reply_owed
            }
            Replies::Echo | Replies::Nothing => self.queued,
        };
        self.in_flight.push_back(InFlight {
            end: self.queued,
            reply_end,
            at,
            sent: None,
        });
    }

    /// Writes queued bytes until all are out or the socket is full.
    pub(super) fn on_writable(
        &mut self,
        tape: &Tape,
        counters: &mut Counters,
        now: Instant,
    ) -> Result<(), Close> {
        let Phase::Running { stream } = &mut self.phase else {
            return Ok(());
        };
        // Over TLS, records rustls sealed earlier go first (a no-op on a
        // bare socket): the edge that brought us here may be the only one.
        match stream.flush() {
            Ok(()) => {}
            Err(e) if would_block(&e) || interrupted(&e) => {}
            Err(e) => return Err(Close::of(e)),
        }
        while self.sent < self.queued {
            let len = (self.queued - self.sent).min(CHUNK as u64) as usize;
            let bytes = match self.sent.checked_sub(self.first_len) {
                Some(on_tape) => tape.slice(self.tape_start, on_tape, len),
                None => &tape.first()[self.sent as usize..self.first_len as usize],
            };
            match stream.write(bytes) {
                Ok(n) => {
                    self.sent += n as u64;
                    if counters.moving(now) {
                        counters.bytes_sent += n as u64;
                    }
                    // Stamp the messages this write finished sending.
                    while let Some(m) = self.in_flight.get_mut(self.written) {
                        if m.end > self.sent {
                            break;
                        }
                        m.sent = Some(now);
                        self.written += 1;
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(Close::of(e)),
            }
        }
        if self.replies == Replies::Nothing {
            self.sent_is_done(counters, now)?;
        }
        self.maybe_fin(now)
    }

    /// Reads echoes until the socket is dry (by `drain`), checks them
    /// against the tape, completes messages, and in closed loop (`refill`)
    /// queues a new message of that size for each one completed.
    pub(super) fn on_readable(
        &mut self,
        buf: &mut [u8],
        tape: &Tape,
        counters: &mut Counters,
        now: Instant,
        refill: Option<usize>,
        drain: Drain,
    ) -> Result<(), Close> {
        // Over TLS a short plaintext read proves nothing; the stream
        // applies the rule to its ciphertext (see shared::tls). Asked once
        // a pass: the stream remembers within the pass what it read.
        let drain = match &mut self.phase {
            Phase::Running { stream } => stream.drain(drain),
            _ => return Ok(()),
        };
        loop {
            let Phase::Running { stream } = &mut self.phase else {
                return Ok(());
            };
            let n = match stream.read(buf) {
                Ok(0) => return self.on_eof(),
                Ok(n) => n,
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(Close::of(e)),
            };
            if !self.expected(tape, &buf[..n]) {
                return Err(Close::Mismatch);
            }
            self.received += n as u64;
            if counters.moving(now) {
                counters.bytes_received += n as u64;
            }
            // Where the replies read so far end (an echo: in the stream
            // written).
            let echoed = self.reply_at(tape);
            if self.awaiting_first && echoed >= self.first_len {
                self.awaiting_first = false;
                self.greeted = true;
            }
            while let Some(&m) = self.in_flight.front() {
                if m.reply_end > echoed {
                    break;
                }
                self.in_flight.pop_front();
                self.written = self.written.saturating_sub(1);
                self.msgs_done += 1;
                // An echo past --timeout closes its connection as a timeout.
                counters
                    .complete(m.at, now)
                    .map_err(|_late| Close::Timeout)?;
                // (An echo cannot come back before its bytes went out.)
                counters.served(m.at, m.sent.unwrap_or(m.at), now);
                if let Some(size) = refill
                    && self.wants_more()
                {
                    self.queue(size, now);
                }
            }
            // A short read drained the socket (epoll(7)); more data raises
            // a new edge. After a hang-up, read on to see the EOF.
            if n < buf.len() && drain == Drain::ShortRead {
                return Ok(());
            }
        }
    }
}

impl<S> Connection<S> {
    /// The server's EOF. Without our FIN, it closed mid-run. After it, a
    /// clean end once every byte sent has come back; before that, the
    /// server (or a proxy) closed early.
    fn on_eof(&mut self) -> Result<(), Close> {
        if self.fin_at.is_none() {
            return Err(Close::Closed);
        }
        if self.in_flight.is_empty() && !self.awaiting_first {
            log::trace!("half-close: eof after every echo");
            self.eof = true;
            return Ok(());
        }
        Err(Close::HalfCloseFailed(
            "the server closed before echoing everything sent before our FIN",
        ))
    }

    /// Where the bytes read back so far end in the stream written: when
    /// the first message is not echoed, the echo starts after it.
    fn echoed(&self, tape: &Tape) -> u64 {
        match tape.first_echoed() {
            true => self.received,
            false => self.received + self.first_len,
        }
    }

    /// Where the replies read so far end: for an echo, in the stream
    /// written ([`echoed`](Self::echoed)); for `--expect`, in the stream
    /// of replies (the bytes read).
    fn reply_at(&self, tape: &Tape) -> u64 {
        match self.replies {
            Replies::Echo | Replies::Nothing => self.echoed(tape),
            Replies::Expect(_) => self.received,
        }
    }

    /// `--no-reply`: the messages written in full are done (their
    /// latency is the send lag: from when each was sent or due until its
    /// last byte went).
    fn sent_is_done(&mut self, counters: &mut Counters, now: Instant) -> Result<(), Close> {
        while self.written > 0 {
            let Some(m) = self.in_flight.pop_front() else {
                break;
            };
            self.written -= 1;
            self.msgs_done += 1;
            counters
                .complete(m.at, now)
                .map_err(|_late| Close::Timeout)?;
            counters.served(m.at, m.sent.unwrap_or(now), now);
        }
        Ok(())
    }

    /// Whether `got`, read next, is what was written there: never more
    /// than was sent, the first message's bytes, then the tape's. With
    /// `--expect`, the replies owed instead of the tape; with
    /// `--no-reply`, nothing at all.
    fn expected(&self, tape: &Tape, mut got: &[u8]) -> bool {
        match self.replies {
            Replies::Echo => {}
            Replies::Nothing => return got.is_empty(),
            Replies::Expect(_) => {
                let mut at = self.received;
                if at + got.len() as u64 > self.reply_owed {
                    return false;
                }
                let first = if tape.first_echoed() {
                    tape.first()
                } else {
                    &[]
                };
                if at < first.len() as u64 {
                    let first = &first[at as usize..];
                    let n = first.len().min(got.len());
                    if got[..n] != first[..n] {
                        return false;
                    }
                    got = &got[n..];
                    at += n as u64;
                }
                return got.is_empty()
                    || got == tape.reply_slice(at - first.len() as u64, got.len());
            }
        }
        let mut at = self.echoed(tape);
        if at + got.len() as u64 > self.sent {
            return false;
        }
        if at < self.first_len {
            let first = &tape.first()[at as usize..];
            let n = first.len().min(got.len());
            if got[..n] != first[..n] {
                return false;
            }
            got = &got[n..];
            at += n as u64;
        }
        got.is_empty() || got == tape.slice(self.tape_start, at - self.first_len, got.len())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;
    use std::time::Duration;

    use super::*;
    use crate::load::tape::{Payload, Reply};
    use crate::shared::fake::{Fake, Step};

    /// Where the test connection's bytes start on the tape.
    const START: usize = 1000;
    const SIZE: usize = 64;
    const TIMEOUT: Duration = Duration::from_secs(1);

    fn tape() -> &'static Tape {
        static TAPE: OnceLock<Tape> = OnceLock::new();
        TAPE.get_or_init(|| Tape::new(&Payload::default()))
    }

    /// The first `len` bytes this connection sends.
    fn sent(len: usize) -> &'static [u8] {
        tape().slice(START, 0, len)
    }

    fn running(reads: Vec<Step>, writes: Vec<Step>) -> Connection<Fake> {
        let mut c = Connection::new(START, None, false);
        c.phase = Phase::Running {
            stream: Fake {
                reads: reads.into(),
                writes: writes.into(),
                ..Fake::default()
            },
        };
        c
    }

    fn counters(t0: Instant) -> Counters {
        Counters::new(TIMEOUT, t0, t0 + Duration::from_secs(10)).unwrap()
    }

    fn fake(c: &Connection<Fake>) -> &Fake {
        match &c.phase {
            Phase::Running { stream } => stream,
            _ => panic!("not running"),
        }
    }

    fn fake_mut(c: &mut Connection<Fake>) -> &mut Fake {
        match &mut c.phase {
            Phase::Running { stream } => stream,
            _ => panic!("not running"),
        }
    }

    /// One message queued and written in full, at `t0`.
    fn one_message_out(c: &mut Connection<Fake>, k: &mut Counters, t0: Instant) {
        c.queue(SIZE, t0);
        c.on_writable(tape(), k, t0).unwrap();
        assert_eq!(fake(c).written, sent(SIZE));
    }

    /// The drain rule is asked once a read pass, however many reads the
    /// pass makes: a TLS stream keeps what its ciphertext reads proved for
    /// the pass it was told of (asked per read, it forgot, and the
    /// generator made 2.005 recvfrom per message over TLS instead of 1).
    #[test]
    fn the_drain_rule_is_asked_once_a_pass() {
        let t0 = Instant::now();
        let mut k = counters(t0);
        let mut c = running(vec![], vec![]);
        for _ in 0..4 {
            c.queue(SIZE, t0);
        }
        c.on_writable(tape(), &mut k, t0).unwrap();
        let echo = sent(4 * SIZE);
        fake_mut(&mut c).reads = vec![
            Step::Data(&echo[..SIZE]),
            Step::Data(&echo[SIZE..2 * SIZE]),
            Step::Data(&echo[2 * SIZE..]),
        ]
        .into();
        let mut buf = [0u8; SIZE];
        c.on_readable(&mut buf, tape(), &mut k, t0, None, Drain::WouldBlock)
            .unwrap();
        assert_eq!(fake(&c).read_calls, 5, "four full reads, then WouldBlock");
        assert_eq!(fake(&c).drains, 1);
    }

    /// `--half-close` with a quota of two: the FIN goes only once both
    /// messages are written, every echo is still taken after it, and the
    /// server's EOF then ends the connection cleanly (spent).
    #[test]
    fn a_half_close_sends_fin_after_the_last_message_and_ends_at_eof() {
        let t0 = Instant::now();
        let mut k = counters(t0);
        let mut c = running(vec![], vec![]);
        c.quota = Some(2);
        c.half_close = true;
        one_message_out(&mut c, &mut k, t0);
        assert!(!fake(&c).fin, "one more message to go");
        c.queue(SIZE, t0);
        c.on_writable(tape(), &mut k, t0).unwrap();
        assert!(fake(&c).fin, "the FIN follows the last message");
        let echo = sent(2 * SIZE);
        fake_mut(&mut c).reads = vec![Step::Data(echo), Step::Eof].into();
        let mut buf = vec![0; CHUNK];
        c.on_readable(&mut buf, tape(), &mut k, t0, None, Drain::WouldBlock)
            .expect("a clean end");
        assert_eq!(k.messages, 2);
        assert!(c.is_spent() && !c.awaits_eof());
    }

    /// After our FIN, an EOF before every echo is a half-close error (a
    /// proxy that closes on the client's FIN), and no EOF within the
    /// timeout is one too.
    #[test]
    fn an_early_eof_or_none_after_our_fin_is_a_half_close_error() {
        let t0 = Instant::now();
        let mut k = counters(t0);
        let mut c = running(vec![], vec![]);
        c.quota = Some(1);
        c.half_close = true;
        one_message_out(&mut c, &mut k, t0);
        assert!(fake(&c).fin);
        fake_mut(&mut c).reads = vec![Step::Data(&sent(SIZE)[..3]), Step::Eof].into();
        let mut buf = vec![0; CHUNK];
        let why = c
            .on_readable(&mut buf, tape(), &mut k, t0, None, Drain::WouldBlock)
            .expect_err("closed early");
        assert!(matches!(why, Close::HalfCloseFailed(_)), "{why}");

        let mut c = running(vec![], vec![]);
        c.quota = Some(1);
        c.half_close = true;
        one_message_out(&mut c, &mut k, t0);
        fake_mut(&mut c).reads = vec![Step::Data(sent(SIZE))].into();
        c.on_readable(&mut buf, tape(), &mut k, t0, None, Drain::WouldBlock)
            .unwrap();
        assert!(
            !c.is_spent() && c.awaits_eof(),
            "the echo is in, the EOF is not"
        );
        assert!(!c.eof_overdue(t0 + TIMEOUT, TIMEOUT));
        assert!(c.eof_overdue(t0 + TIMEOUT + Duration::from_millis(1), TIMEOUT));
    }

    /// `--expect`: each message's reply is the fixed reply, however the
    /// replies are cut; a message is done when its reply is in, and a
    /// byte past the replies owed, or a wrong one, is a mismatch.
    #[test]
    fn expected_replies_complete_messages_however_they_are_cut() {
        let tape: &'static Tape = Box::leak(Box::new(Tape::new(&Payload {
            message: Some(std::sync::Arc::from(&b"PING\r\n"[..])),
            reply: Reply::Expect(std::sync::Arc::from(&b"+PONG\r\n"[..])),
            ..Payload::default()
        })));
        let t0 = Instant::now();
        let mut k = counters(t0);
        let mut c = running(
            vec![
                Step::Data(b"+PO"),
                Step::Data(b"NG\r\n+P"),
                Step::Data(b"ONG\r"),
            ],
            vec![],
        );
        c.tape_start = tape.start(0);
        c.open(tape);
        c.queue(6, t0);
        c.queue(6, t0);
        c.on_writable(tape, &mut k, t0).unwrap();
        assert_eq!(fake(&c).written, b"PING\r\nPING\r\n");
        let mut buf = vec![0; CHUNK];
        c.on_readable(&mut buf, tape, &mut k, t0, None, Drain::WouldBlock)
            .unwrap();
        assert_eq!(k.messages, 1, "the second reply lacks its last byte");
        fake_mut(&mut c).reads = vec![Step::Data(b"\n+")].into();
        let why = c
            .on_readable(&mut buf, tape, &mut k, t0, None, Drain::WouldBlock)
            .expect_err("a byte past the replies owed");
        assert!(matches!(why, Close::Mismatch), "{why}");

        let mut c = running(vec![Step::Data(b"+PANG\r\n")], vec![]);
        c.tape_start = tape.start(0);
        c.open(tape);
        c.queue(6, t0);
        c.on_writable(tape, &mut k, t0).unwrap();
        let why = c
            .on_readable(&mut buf, tape, &mut k, t0, None, Drain::WouldBlock)
            .expect_err("a wrong byte");
        assert!(matches!(why, Close::Mismatch), "{why}");
    }

    /// `--no-reply`: a message is done once written, and any byte that
    /// comes back is a mismatch.
    #[test]
    fn without_replies_a_message_is_done_once_written() {
        let tape: &'static Tape = Box::leak(Box::new(Tape::new(&Payload {
            reply: Reply::Nothing,
            ..Payload::default()
        })));
        let t0 = Instant::now();
        let mut k = counters(t0);
        let mut c = running(
            vec![Step::Data(b"x")],
            vec![Step::Take(SIZE + 10), Step::Block],
        );
        c.open(tape);
        c.queue(SIZE, t0);
        c.queue(SIZE, t0);
        c.on_writable(tape, &mut k, t0).unwrap();
        assert_eq!(
            k.messages, 1,
            "the first is written, the second only in part"
        );
        c.on_writable(tape, &mut k, t0).unwrap();
        assert_eq!(k.messages, 2);
        let mut buf = vec![0; CHUNK];
        let why = c
            .on_readable(&mut buf, tape, &mut k, t0, None, Drain::WouldBlock)
            .expect_err("nothing may come back");
        assert!(matches!(why, Close::Mismatch), "{why}");
    }

    /// A tape with a first message, echoed or not (leaked: the fake
    /// stream's script borrows from it for the whole test).
    fn greeting_tape(echoed: bool) -> &'static Tape {
        Box::leak(Box::new(Tape::new(&Payload {
            first: Some(std::sync::Arc::from(&b"HELLO\n"[..])),
            first_echoed: echoed,
            ..Payload::default()
        })))
    }

    /// The first message goes out first and, echoed, is awaited: no
    /// message may be taken until its echo is in, which is checked byte
    /// for byte (split over two reads) and never measured; then the
    /// messages follow on the tape as usual.
    #[test]
    fn an_echoed_first_message_is_awaited_then_the_messages_follow() {
        let t0 = Instant::now();
        let mut k = counters(t0);
        let tape = greeting_tape(true);
        let mut c = running(vec![Step::Data(b"HEL"), Step::Data(b"LO\n")], vec![]);
        c.open(tape);
        c.on_writable(tape, &mut k, t0).unwrap();
        assert_eq!(fake(&c).written, b"HELLO\n");
        assert!(!c.can_take(), "the greeting's echo is awaited");
        let mut buf = vec![0; CHUNK];
        c.on_readable(&mut buf, tape, &mut k, t0, None, Drain::WouldBlock)
            .unwrap();
        assert!(c.take_greeted() && !c.take_greeted(), "said once");
        assert!(c.can_take());
        assert_eq!(k.messages, 0, "the greeting is not measured");
        c.queue(SIZE, t0);
        c.on_writable(tape, &mut k, t0).unwrap();
        assert_eq!(&fake(&c).written[6..], tape.slice(START, 0, SIZE));
        fake_mut(&mut c).reads = vec![Step::Data(tape.slice(START, 0, SIZE))].into();
        c.on_readable(&mut buf, tape, &mut k, t0, None, Drain::WouldBlock)
            .unwrap();
        assert_eq!(k.messages, 1);
    }

    /// A first message the path consumes is not awaited, and the echo
    /// expected starts after it; if it comes back anyway, that is a
    /// mismatch.
    #[test]
    fn a_consumed_first_message_is_skipped_in_the_echo() {
        let t0 = Instant::now();
        let mut k = counters(t0);
        let tape = greeting_tape(false);
        let mut c = running(vec![Step::Data(tape.slice(START, 0, SIZE))], vec![]);
        c.open(tape);
        assert!(c.is_greeted());
        c.queue(SIZE, t0);
        c.on_writable(tape, &mut k, t0).unwrap();
        let mut buf = vec![0; CHUNK];
        c.on_readable(&mut buf, tape, &mut k, t0, None, Drain::WouldBlock)
            .unwrap();
        assert_eq!(k.messages, 1);
        let mut c = running(vec![Step::Data(b"HELLO\n")], vec![]);
        c.open(tape);
        c.queue(SIZE, t0);
        c.on_writable(tape, &mut k, t0).unwrap();
        let got = c.on_readable(&mut buf, tape, &mut k, t0, None, Drain::WouldBlock);
        assert!(matches!(got, Err(Close::Mismatch)), "{got:?}");
    }

    /// A short write keeps the rest; the next writable event sends it from
    /// where it stopped: on the wire, exactly the tape's bytes, in order.
    #[test]
    fn a_short_write_resumes_where_it_stopped() {
        let t0 = Instant::now();
        let mut k = counters(t0);
        let mut c = running(vec![], vec![Step::Take(10), Step::Block]);
        c.queue(SIZE, t0);
        c.on_writable(tape(), &mut k, t0).unwrap();
        assert_eq!(fake(&c).written, sent(10));
        assert!(!c.can_take(), "54 bytes still queued");
        c.on_writable(tape(), &mut k, t0).unwrap();
        assert_eq!(fake(&c).written, sent(SIZE));
        assert!(c.can_take());
        assert_eq!(k.bytes_sent, SIZE as u64);
    }

    /// An echo that comes back in pieces completes its message once, when
    /// its last byte arrives; in closed loop that queues the next message.
    /// With the short-read rule, each pass stops after a short read.
    #[test]
    fn a_segmented_echo_completes_once_and_refills() {
        let t0 = Instant::now();
        let mut k = counters(t0);
        let echo = sent(SIZE);
        let mut c = running(
            vec![Step::Data(&echo[..20]), Step::Data(&echo[20..])],
            vec![],
        );
        one_message_out(&mut c, &mut k, t0);
        let mut buf = vec![0; CHUNK];
        let later = t0 + Duration::from_millis(3);
        // One read per pass; the message completes with the second piece.
        for (messages, reads) in [(0, 1), (1, 2)] {
            c.on_readable(
                &mut buf,
                tape(),
                &mut k,
                later,
                Some(SIZE),
                Drain::ShortRead,
            )
            .unwrap();
            assert_eq!((k.messages, fake(&c).read_calls), (messages, reads));
        }
        assert_eq!(k.latency.max(), k.latency.highest_equivalent(3000));
        assert_eq!(c.oldest_in_flight(), Some(later), "the refill, sent now");
        assert_eq!(k.bytes_received, SIZE as u64);
    }

    /// With a quota of 2 and a pipeline of 1, the socket carries exactly
    /// two messages: the second echo refills nothing, and it is spent.
    #[test]
    fn a_quota_of_two_messages_then_spent() {
        let t0 = Instant::now();
        let mut k = counters(t0);
        let mut c = running(
            vec![
                Step::Data(sent(SIZE)),
                Step::Data(tape().slice(START, SIZE as u64, SIZE)),
            ],
            vec![],
        );
        c.quota = Some(2);
        one_message_out(&mut c, &mut k, t0);
        let mut buf = vec![0; CHUNK];
        c.on_readable(&mut buf, tape(), &mut k, t0, Some(SIZE), Drain::ShortRead)
            .unwrap();
        assert!(!c.is_spent() && !c.wants_more(), "the refill was the last");
        c.on_writable(tape(), &mut k, t0).unwrap();
        c.on_readable(&mut buf, tape(), &mut k, t0, Some(SIZE), Drain::ShortRead)
            .unwrap();
        assert!(c.is_spent());
        assert_eq!(
            (k.messages, c.oldest_in_flight()),
            (2, None),
            "nothing refilled"
        );
        c.reset();
        assert!(c.wants_more() && !c.is_spent());
        // The phase is the generator's to change (set_phase), not reset's.
        assert!(matches!(c.phase, Phase::Running { .. }));
    }

    /// After a hang-up the pass reads past the short read (no edge will
    /// come for what follows) and sees the EOF behind the echo: the
    /// message counts, and the connection fails with the server's close.
    #[test]
    fn reading_to_would_block_sees_the_eof_behind_the_echo() {
        let t0 = Instant::now();
        let mut k = counters(t0);
        let mut c = running(vec![Step::Data(sent(SIZE)), Step::Eof], vec![]);
        one_message_out(&mut c, &mut k, t0);
        let mut buf = vec![0; CHUNK];
        let got = c.on_readable(&mut buf, tape(), &mut k, t0, None, Drain::WouldBlock);
        assert!(matches!(&got, Err(Close::Closed)), "{got:?}");
        assert_eq!(k.messages, 1);
    }

    /// A wrong byte is a mismatch; so is a byte that was never sent.
    #[test]
    fn a_wrong_or_unsent_byte_is_a_mismatch() {
        let t0 = Instant::now();
        let mut buf = vec![0; CHUNK];
        let mut wrong = sent(SIZE).to_vec();
        wrong[40] ^= 1;
        let wrong: &'static [u8] = wrong.leak();
        let mut k = counters(t0);
        let mut c = running(vec![Step::Data(wrong)], vec![]);
        one_message_out(&mut c, &mut k, t0);
        let got = c.on_readable(&mut buf, tape(), &mut k, t0, None, Drain::ShortRead);
        assert!(matches!(got, Err(Close::Mismatch)), "{got:?}");

        // Only 10 bytes went out, and 11 come back.
        let mut c = running(
            vec![Step::Data(sent(11))],
            vec![Step::Take(10), Step::Block],
        );
        c.queue(SIZE, t0);
        c.on_writable(tape(), &mut k, t0).unwrap();
        let got = c.on_readable(&mut buf, tape(), &mut k, t0, None, Drain::ShortRead);
        assert!(matches!(got, Err(Close::Mismatch)), "{got:?}");
        assert_eq!(k.messages, 0);
    }

    /// With made-up instants: an echo that arrives exactly `--timeout` after
    /// its send counts; one a nanosecond later is a timeout, not a success.
    #[test]
    fn an_echo_later_than_the_timeout_is_a_timeout() {
        let t0 = Instant::now();
        let mut buf = vec![0; CHUNK];
        for (arrives, want_ok) in [
            (t0 + TIMEOUT, true),
            (t0 + TIMEOUT + Duration::from_nanos(1), false),
        ] {
            let mut k = counters(t0);
            let mut c = running(vec![Step::Data(sent(SIZE))], vec![]);
            one_message_out(&mut c, &mut k, t0);
            let got = c.on_readable(&mut buf, tape(), &mut k, arrives, None, Drain::ShortRead);
            if want_ok {
                assert!(got.is_ok(), "{got:?}");
                assert_eq!(k.messages, 1);
            } else {
                assert!(matches!(got, Err(Close::Timeout)), "{got:?}");
                assert_eq!(k.messages, 0);
            }
        }
    }

    /// Service time counts from the write that finished a message, latency
    /// from when it was due: two messages due at t0, the socket takes the
    /// first at 1 ms and the second only at 5 ms, both echoes come at 9 ms.
    #[test]
    fn service_time_counts_from_the_write_that_finished_the_message() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut k = counters(t0);
        let both = sent(2 * SIZE);
        let mut c = running(
            vec![Step::Data(both)],
            vec![Step::Take(SIZE + 10), Step::Block, Step::Take(SIZE - 10)],
        );
        c.queue(SIZE, t0);
        c.queue(SIZE, t0);
        c.on_writable(tape(), &mut k, t0 + ms(1)).unwrap();
        c.on_writable(tape(), &mut k, t0 + ms(5)).unwrap();
        assert_eq!(fake(&c).written, both);
        let mut buf = vec![0; CHUNK];
        c.on_readable(&mut buf, tape(), &mut k, t0 + ms(9), None, Drain::ShortRead)
            .unwrap();
        assert_eq!(k.messages, 2);
        let (lat, svc) = (&k.latency, &k.service);
        assert!(lat.equivalent(lat.min(), 9000) && lat.equivalent(lat.max(), 9000));
        assert!(svc.equivalent(svc.min(), 4000), "9 − 5 ms: {}", svc.min());
        assert!(svc.equivalent(svc.max(), 8000), "9 − 1 ms: {}", svc.max());
    }
}
