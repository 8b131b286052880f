//! One echo connection: the bytes it still owes its peer, where it is in its
//! life, and which readiness it needs from the poller next.
//!
//! A [`Connection`] works on any `Read + Write` stream, so the tests at the
//! bottom of this file drive it with a scripted fake stream (WouldBlock, short
//! writes, `Ok(0)`) instead of sockets. The reactor that owns the real sockets
//! is in [`crate::server`]; after both, [`counters`](super::counters).
//!
//! The whole contract with the operating system, in four rules:
//!
//! 1. Readiness is edge-triggered. An event says "something changed", once.
//!    We must read until the kernel says `WouldBlock` (or until a read comes
//!    back shorter than the buffer, which on a stream socket means it was
//!    drained, see epoll(7)), or we will never hear about that data again.
//!    (The short-read rule is Linux's epoll behaviour, which this crate
//!    targets; mio documents the portable rule, drain until `WouldBlock`.)
//! 2. A write on a non-blocking socket may take only part of the bytes, or
//!    none. Whatever it did not take is kept here, in `owed`, in order, and
//!    nothing new is written until `owed` is empty. (This is why `write_all`
//!    is never used: when it meets `WouldBlock` it returns an error and the
//!    caller cannot tell how much of the buffer already went out.)
//! 3. A read of zero bytes means the peer has finished sending (it may still
//!    be reading). We send what we still owe it, then close.
//! 4. Events can be spurious. Every handler tolerates being called when
//!    nothing is ready: the read or write just reports `WouldBlock`.
//!
//! Rule 1 has a catch: a peer that sends as fast as we read never lets a
//! read come back short, and "read until drained" then means "read this one
//! socket forever" while every other connection waits. So each read pass
//! also stops after a *budget* of bytes and says so ([`Next::Requeue`]);
//! the reactor puts the connection on its ready queue and comes back to it
//! after everyone else has had a turn. No edge is lost: the queue, not the
//! poller, remembers that this socket may still hold data.

use std::fmt;
use std::io;

use mio::Interest;

use crate::shared::readiness::Drain;
use crate::shared::tls::Wire;

use super::counters::Counters;
use crate::shared::net::{interrupted, would_block};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Both directions open: read, echo, repeat.
    Open,
    /// The peer has sent EOF. We still owe it bytes; once they are written the
    /// connection closes. Nothing more is read.
    Draining,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Open => "open",
            State::Draining => "draining",
        })
    }
}

/// What the reactor should do with a connection after it handled an event.
#[derive(Debug)]
pub enum Next {
    /// Keep it; re-register if [`Connection::interest`] changed.
    Keep,
    /// Keep it, and come back soon: the read pass used its whole budget
    /// and the socket may still hold data, which edge-triggered readiness
    /// will not announce again.
    Requeue,
    /// The peer finished sending and everything owed has been written.
    Done,
    /// The connection failed (reset, broken pipe, ...). Only this connection
    /// is affected.
    Failed(io::Error),
}

/// The bounds on one pass over a connection. `cap` and `budget` are in
/// bytes; the `_until` fields are positions in the connection's byte
/// stream, `u64::MAX` (no bound) unless the server misbehaves on purpose.
/// They are all a fault can say to a connection (see
/// [`faults`](super::faults)): the connection knows nothing of delays,
/// closes or stalls, only how far it may read, echo and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Stop reading while this much is owed (backpressure): memory bound.
    pub cap: usize,
    /// Stop reading after this much in one pass (fairness): time bound.
    pub budget: usize,
    /// Read no byte past this position (`--close-after` and the like, or
    /// a delay queue that is full).
    pub read_until: u64,
    /// Echo no byte past this position yet (`--delay`: the rest is held).
    pub write_until: u64,
    /// Read bytes past this position are dropped, not echoed (after
    /// `--close-after` sent our FIN, what the peer still sends is read
    /// away until its EOF: closing with unread bytes would send an RST).
    pub echo_until: u64,
}

impl Limits {
    /// The bounds of a well-behaved echo: `cap` and `budget` only.
    pub fn new(cap: usize, budget: usize) -> Limits {
        Limits {
            cap,
            budget,
            read_until: u64::MAX,
            write_until: u64::MAX,
            echo_until: u64::MAX,
        }
    }

    /// Whether the byte at stream position `at` may be read.
    pub fn may_read(&self, at: u64) -> bool {
        at < self.read_until
    }

    /// How much of a buffer of `len` bytes the read at position `at` may
    /// fill: what lies beyond the last readable position stays in the kernel.
    pub fn read_room(&self, at: u64, len: usize) -> usize {
        let room = self.read_until.saturating_sub(at);
        usize::try_from(room).map_or(len, |r| r.min(len))
    }

    /// Of `n` bytes read from position `start`, how many are echoed (the
    /// rest are read only to be dropped).
    pub fn echoed(&self, start: u64, n: usize) -> usize {
        let keep = self.echo_until.saturating_sub(start);
        usize::try_from(keep).map_or(n, |k| k.min(n))
    }

    /// How many of `owed` bytes, the first at stream position `from`, may
    /// be written now.
    pub fn writable(&self, from: u64, owed: usize) -> usize {
        let allowed = self.write_until.saturating_sub(from);
        usize::try_from(allowed).map_or(owed, |a| a.min(owed))
    }
}

/// One accepted echo connection.
///
/// Kept small on purpose: an idle connection costs the size of this struct
/// and nothing on the heap. The read buffer is shared by the whole loop and
/// `owed` only allocates while a peer is slower than its own sending.
#[derive(Debug)]
pub struct Connection<S> {
    /// The socket (or, in tests, a scripted fake).
    stream: S,
    /// Bytes read from the peer but not yet written back, oldest first.
    owed: Vec<u8>,
    /// Open, or draining after the peer's EOF.
    state: State,
    /// Bytes read from the peer so far (written back = this minus `owed`).
    bytes_in: u64,
    /// When the peer last sent us data, in nanoseconds since the server
    /// started (a `u64`, not an `Instant`: 8 bytes fewer per connection,
    /// and 584 years of range); the idle timeout counts from here.
    last_active: u64,
    /// A serial number, unique over the server's life (tokens are reused,
    /// this is not); logs name connections by it and timers check it.
    id: u64,
    /// Whether it waits on the reactor's ready queue (so it is queued once).
    queued: bool,
    /// The interest it is registered with now (one byte, in what was
    /// padding): [`interest`](Self::interest) is compared with this, not
    /// with a recomputation, since a timer may change what it needs
    /// between two passes.
    registered: Option<Interest>,
}

impl<S: Wire> Connection<S> {
    /// Wraps a freshly accepted stream, accepted at `now` (nanoseconds
    /// since the server started).
    pub fn new(stream: S, id: u64, now: u64) -> Self {
        Connection {
            stream,
            owed: Vec::new(),
            state: State::Open,
            bytes_in: 0,
            last_active: now,
            id,
            queued: false,
            registered: Some(Interest::READABLE),
        }
    }

    // ANCHOR: interest
    /// The readiness this connection needs, derived from its state rather
    /// than stored: READABLE while it is open and owes less than the cap,
    /// WRITABLE while it owes anything it may write now. `None` when it
    /// needs neither: it is [`finished`](Self::finished), or its limits
    /// let it neither read nor write yet.
    ///
    /// Backpressure falls out of this: a peer that sends but does not read
    /// fills `owed` up to the cap, we stop asking to read, the kernel
    /// buffers fill, and TCP flow control makes the peer wait.
    pub fn interest(&self, limits: Limits) -> Option<Interest> {
        let read = match self.state {
            State::Open => self.owed.len() < limits.cap && limits.may_read(self.bytes_in),
            State::Draining => false,
        };
        // The stream may keep bytes of its own the socket has not taken.
        let write = self.writable(limits) > 0 || self.stream.unsent();
        match (read, write) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }
    // ANCHOR_END: interest

    /// How many owed bytes may be written now (all of them, unless the
    /// limits hold the newest back).
    fn writable(&self, limits: Limits) -> usize {
        limits.writable(self.bytes_out(), self.owed.len())
    }

    /// Whether it is done: the peer finished and has everything back
    /// (over TLS, on the socket, not only sealed).
    pub fn finished(&self) -> bool {
        self.state == State::Draining && self.owed.is_empty() && !self.stream.unsent()
    }

    // ANCHOR: on_readable
    /// Reads what the peer sent, in `buf`-sized chunks, and echoes each chunk
    /// back at once. Stops at `WouldBlock`, at EOF, when `owed` reaches `cap`,
    /// (with [`Drain::ShortRead`]) after a short read, or once `budget`
    /// bytes were read in this pass: then it returns [`Next::Requeue`]. At
    /// least one read is always made, whatever the budget.
    pub fn on_readable(
        &mut self,
        buf: &mut [u8],
        limits: Limits,
        drain: Drain,
        stats: &mut Counters,
    ) -> Next {
        let mut read_now = 0;
        // Whether a short read proves the socket drained is the stream's
        // to say (rule 1's short-read half is true of a bare socket).
        let drain = self.stream.drain(drain);
        while self.state == State::Open
            && self.owed.len() < limits.cap
            && limits.may_read(self.bytes_in)
        {
            if read_now >= limits.budget {
                stats.budget_spent += 1;
                return Next::Requeue;
            }
            let len = limits.read_room(self.bytes_in, buf.len());
            let buf = &mut buf[..len];
            match self.stream.read(buf) {
                Ok(0) => {
                    log::trace!("read conn=#{} eof", self.id);
                    self.set_state(State::Draining);
                }
                Ok(n) => {
                    log::trace!("read conn=#{} bytes={n}", self.id);
                    stats.reads += 1;
                    let start = self.bytes_in;
                    self.bytes_in += n as u64;
                    read_now += n;
                    // Bytes the limits do not echo are not counted as in.
                    let keep = limits.echoed(start, n);
                    stats.bytes_in += keep as u64;
                    if let Err(e) = self.echo(&buf[..keep], start, limits, stats) {
                        return Next::Failed(e);
                    }
                    if drain == Drain::ShortRead && n < buf.len() {
                        break;
                    }
                }
                Err(e) if would_block(&e) => {
                    log::trace!("read conn=#{} wouldblock", self.id);
                    stats.would_blocks += 1;
                    break;
                }
                Err(e) if interrupted(&e) => {}
                Err(e) => return Next::Failed(e),
            }
        }
        self.next()
    }
    // ANCHOR_END: on_readable

    /// Writes as much of `owed` as the socket takes. If that makes room
    /// below `cap` after reading had paused for backpressure, reads again
    /// right away: the edge for the data waiting in the kernel was spent
    /// while we were not reading, so no event would ever bring us back.
    pub fn on_writable(&mut self, buf: &mut [u8], limits: Limits, stats: &mut Counters) -> Next {
        let cap = limits.cap;
        let was_paused = self.state == State::Open && self.owed.len() >= cap;
        // TLS records sealed earlier go first (a no-op on a bare socket).
        match self.stream.flush() {
            Ok(()) => {}
            Err(e) if would_block(&e) || interrupted(&e) => {}
            Err(e) => return Next::Failed(e),
        }
        loop {
            let now = self.writable(limits);
            if now == 0 {
                break;
            }
            match self.stream.write(&self.owed[..now]) {
                Ok(0) => return Next::Failed(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    log::trace!("write conn=#{} bytes={n} from=owed", self.id);
                    stats.writes += 1;
                    stats.bytes_out += n as u64;
                    stats.owed_now -= n as u64;
                    self.owed.drain(..n);
                }
                Err(e) if would_block(&e) => {
                    log::trace!(
                        "write conn=#{} wouldblock owed={}",
                        self.id,
                        self.owed.len()
                    );
                    stats.would_blocks += 1;
                    break;
                }
                Err(e) if interrupted(&e) => {}
                Err(e) => return Next::Failed(e),
            }
        }
        if self.owed.is_empty() {
            // Hand the memory back: an idle connection should own no heap.
            self.owed = Vec::new();
        }
        if was_paused && self.owed.len() < cap {
            log::trace!("resume conn=#{} owed={}", self.id, self.owed.len());
            return self.on_readable(buf, limits, Drain::WouldBlock, stats);
        }
        self.next()
    }

    // ANCHOR: echo
    /// Echoes one chunk: straight from the shared buffer when nothing is
    /// owed, otherwise (and for whatever the socket does not take, or the
    /// limits keep back) appended to `owed`, so the peer gets its bytes
    /// back in order. `start` is where `data` begins in the peer's stream.
    fn echo(
        &mut self,
        mut data: &[u8],
        start: u64,
        limits: Limits,
        stats: &mut Counters,
    ) -> io::Result<()> {
        if self.owed.is_empty() && limits.writable(start, data.len()) == data.len() {
            while !data.is_empty() {
                match self.stream.write(data) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        log::trace!("write conn=#{} bytes={n}", self.id);
                        stats.writes += 1;
                        stats.bytes_out += n as u64;
                        data = &data[n..];
                        // A short write means the send buffer is full. Rather
                        // than pay for a write that would only say WouldBlock,
                        // keep the rest: asking for WRITABLE (which follows
                        // from `owed` being non-empty) re-arms the poller,
                        // and it reports at once if there is room again.
                        if !data.is_empty() {
                            break;
                        }
                    }
                    Err(e) if would_block(&e) => {
                        log::trace!("write conn=#{} wouldblock", self.id);
                        stats.would_blocks += 1;
                        break;
                    }
                    Err(e) if interrupted(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if !data.is_empty() {
            self.owed.extend_from_slice(data);
            stats.owed_now += data.len() as u64;
            stats.owed_peak = stats.owed_peak.max(self.owed.len() as u64);
            log::trace!("owe conn=#{} bytes={}", self.id, self.owed.len());
        }
        Ok(())
    }
    // ANCHOR_END: echo

    /// How many bytes one read asks for, given the server's `--read-size`
    /// (TLS asks for a record's plaintext: see [`Wire::read_size`]).
    pub fn read_size(&self, bare: usize) -> usize {
        self.stream.read_size(bare)
    }

    /// Where it is in its life.
    pub fn state(&self) -> State {
        self.state
    }

    /// The verdict after a handler ran.
    fn next(&self) -> Next {
        if self.finished() {
            Next::Done
        } else {
            Next::Keep
        }
    }

    fn set_state(&mut self, state: State) {
        log::trace!("state conn=#{} {} => {}", self.id, self.state, state);
        self.state = state;
    }

    /// The interest it is registered with.
    pub fn registered(&self) -> Option<Interest> {
        self.registered
    }

    /// Notes that it was registered again, with `interest`.
    pub fn set_registered(&mut self, interest: Interest) {
        self.registered = Some(interest);
    }

    /// Whether it waits on the reactor's ready queue.
    pub fn is_queued(&self) -> bool {
        self.queued
    }

    /// Marks it as on (or off) the reactor's ready queue.
    pub fn set_queued(&mut self, queued: bool) {
        self.queued = queued;
    }

    /// Notes that the peer was heard from at `now` (nanoseconds since the
    /// server started), for the idle timeout.
    pub fn touch(&mut self, now: u64) {
        self.last_active = now;
    }

    /// When the peer last sent data (or connected), in nanoseconds since
    /// the server started.
    pub fn last_active(&self) -> u64 {
        self.last_active
    }

    /// The connection's serial number.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Bytes read from the peer so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Bytes still owed to the peer.
    pub fn owed(&self) -> usize {
        self.owed.len()
    }

    /// Bytes written back to the peer so far.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_in - self.owed.len() as u64
    }

    /// The underlying stream (to register it with the poller).
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::fake::{Fake, Step};

    fn conn(reads: Vec<Step>, writes: Vec<Step>) -> Connection<Fake> {
        let fake = Fake {
            reads: reads.into(),
            writes: writes.into(),
            ..Fake::default()
        };
        Connection::new(fake, 1, 0)
    }

    const CAP: usize = 8;
    const LIMITS: Limits = Limits {
        cap: CAP,
        budget: usize::MAX,
        read_until: u64::MAX,
        write_until: u64::MAX,
        echo_until: u64::MAX,
    };

    /// Reads until WouldBlock and echoes every chunk, in order.
    #[test]
    fn test_open_readable_echoes_until_would_block() {
        let mut c = conn(vec![Step::Data(b"abcd"), Step::Data(b"ef")], vec![]);
        let mut buf = [0u8; 4];
        let mut stats = Counters::default();
        let next = c.on_readable(&mut buf, LIMITS, Drain::WouldBlock, &mut stats);
        assert!(matches!(next, Next::Keep));
        assert_eq!(c.stream.written, b"abcdef");
        assert_eq!(c.stream.read_calls, 3, "two data reads, then WouldBlock");
        assert_eq!(c.interest(LIMITS), Some(Interest::READABLE));
        assert_eq!((stats.reads, stats.writes, stats.would_blocks), (2, 2, 1));
    }

    /// A read shorter than the buffer ends the pass: no third read.
    #[test]
    fn test_open_short_read_skips_the_would_block_read() {
        let mut c = conn(vec![Step::Data(b"abcd"), Step::Data(b"ef")], vec![]);
        let mut buf = [0u8; 4];
        let mut stats = Counters::default();
        c.on_readable(&mut buf, LIMITS, Drain::ShortRead, &mut stats);
        assert_eq!(c.stream.written, b"abcdef");
        assert_eq!(c.stream.read_calls, 2);
    }

    /// A short write keeps the rest, asks for WRITABLE, and later bytes queue
    /// behind it instead of overtaking it. (The `write_all` trap: it would
    /// have reported WouldBlock with "a" already sent and the rest lost.)
    #[test]
    fn test_open_short_write_keeps_the_rest_in_order() {
        let mut c = conn(
            vec![Step::Data(b"abcd"), Step::Data(b"ef")],
            vec![Step::Take(1)],
        );
        let mut buf = [0u8; 4];
        let mut stats = Counters::default();
        c.on_readable(&mut buf, LIMITS, Drain::WouldBlock, &mut stats);
        assert_eq!(c.stream.written, b"a");
        assert_eq!(c.owed, b"bcdef");
        assert_eq!(stats.owed_now, 5);
        assert_eq!(
            c.interest(LIMITS),
            Some(Interest::READABLE | Interest::WRITABLE)
        );
        c.stream.writes = vec![Step::Take(2), Step::Block].into();
        c.on_writable(&mut buf, LIMITS, &mut stats);
        assert_eq!(c.stream.written, b"abc");
        c.on_writable(&mut buf, LIMITS, &mut stats);
        assert_eq!(c.stream.written, b"abcdef");
        assert_eq!(c.owed.capacity(), 0, "drained owed gives its memory back");
        assert_eq!(c.interest(LIMITS), Some(Interest::READABLE));
        assert_eq!(stats.owed_now, 0);
        assert_eq!(c.bytes_out(), 6);
    }

    /// A peer that does not read: at the cap we stop reading and only wait
    /// for WRITABLE; the unread data stays in the kernel.
    #[test]
    fn test_open_at_cap_stops_reading() {
        let mut c = conn(
            vec![
                Step::Data(b"abcd"),
                Step::Data(b"efgh"),
                Step::Data(b"ijkl"),
            ],
            vec![Step::Block],
        );
        let mut buf = [0u8; 4];
        let mut stats = Counters::default();
        c.on_readable(&mut buf, LIMITS, Drain::WouldBlock, &mut stats);
        assert_eq!(c.owed(), 8);
        assert_eq!(c.stream.read_calls, 2, "the third chunk is left unread");
        assert_eq!(c.interest(LIMITS), Some(Interest::WRITABLE));
        assert_eq!(stats.owed_peak, 8);
    }

    /// Paused at the cap, then the peer drains us: reading resumes at once,
    /// to WouldBlock, without waiting for an edge that will not come.
    #[test]
    fn test_paused_writable_drains_then_resumes_reading() {
        let mut c = conn(
            vec![Step::Data(b"abcd"), Step::Data(b"efgh"), Step::Data(b"ij")],
            vec![Step::Block],
        );
        let mut buf = [0u8; 4];
        let mut stats = Counters::default();
        c.on_readable(&mut buf, LIMITS, Drain::ShortRead, &mut stats);
        assert_eq!(c.interest(LIMITS), Some(Interest::WRITABLE));
        let next = c.on_writable(&mut buf, LIMITS, &mut stats);
        assert!(matches!(next, Next::Keep));
        assert_eq!(c.stream.written, b"abcdefghij");
        assert_eq!(c.stream.read_calls, 4, "resumed until WouldBlock");
        assert_eq!(c.interest(LIMITS), Some(Interest::READABLE));
    }

    /// EOF with nothing owed: done at once.
    #[test]
    fn test_open_eof_with_nothing_owed_is_done() {
        let mut c = conn(vec![Step::Data(b"ab"), Step::Eof], vec![]);
        let mut buf = [0u8; 4];
        let mut stats = Counters::default();
        let next = c.on_readable(&mut buf, LIMITS, Drain::WouldBlock, &mut stats);
        assert!(matches!(next, Next::Done));
        assert_eq!(c.stream.written, b"ab");
    }

    /// EOF while bytes are owed: drain them first (half-close loses nothing).
    #[test]
    fn test_draining_writes_what_is_owed_then_is_done() {
        let mut c = conn(vec![Step::Data(b"abcd"), Step::Eof], vec![Step::Block]);
        let mut buf = [0u8; 4];
        let mut stats = Counters::default();
        let next = c.on_readable(&mut buf, LIMITS, Drain::WouldBlock, &mut stats);
        assert!(matches!(next, Next::Keep));
        assert_eq!(c.state, State::Draining);
        assert_eq!(c.interest(LIMITS), Some(Interest::WRITABLE));
        let next = c.on_writable(&mut buf, LIMITS, &mut stats);
        assert!(matches!(next, Next::Done));
        assert_eq!(c.stream.written, b"abcd");
        assert_eq!(c.interest(LIMITS), None);
    }

    /// Interrupted reads and writes are retried, not treated as failures.
    #[test]
    fn test_open_interrupted_calls_are_retried() {
        let mut c = conn(vec![Step::Intr, Step::Data(b"ab")], vec![Step::Intr]);
        let mut buf = [0u8; 4];
        let mut stats = Counters::default();
        let next = c.on_readable(&mut buf, LIMITS, Drain::WouldBlock, &mut stats);
        assert!(matches!(next, Next::Keep));
        assert_eq!(c.stream.written, b"ab");
    }

    /// A reset fails this connection and reports the error.
    #[test]
    fn test_open_reset_fails() {
        let mut c = conn(vec![Step::Reset], vec![]);
        let mut buf = [0u8; 4];
        let mut stats = Counters::default();
        match c.on_readable(&mut buf, LIMITS, Drain::WouldBlock, &mut stats) {
            Next::Failed(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    /// A broken pipe on the echo write fails the connection.
    #[test]
    fn test_open_broken_pipe_on_echo_fails() {
        let mut c = conn(vec![Step::Data(b"ab")], vec![Step::Reset]);
        let mut buf = [0u8; 4];
        let mut stats = Counters::default();
        let next = c.on_readable(&mut buf, LIMITS, Drain::WouldBlock, &mut stats);
        assert!(matches!(next, Next::Failed(e) if e.kind() == io::ErrorKind::BrokenPipe));
    }

    /// A spurious event (nothing to read, nothing owed) changes nothing.
    #[test]
    fn test_open_spurious_events_are_harmless() {
        let mut c = conn(vec![], vec![]);
        let mut buf = [0u8; 4];
        let mut stats = Counters::default();
        assert!(matches!(
            c.on_readable(&mut buf, LIMITS, Drain::ShortRead, &mut stats),
            Next::Keep
        ));
        assert!(matches!(
            c.on_writable(&mut buf, LIMITS, &mut stats),
            Next::Keep
        ));
        assert_eq!(c.interest(LIMITS), Some(Interest::READABLE));
        assert!(c.stream.written.is_empty());
    }

    /// A peer that always has more: the pass stops after its budget and
    /// asks to be requeued, instead of reading this socket forever.
    #[test]
    fn test_open_endless_peer_stops_at_the_budget() {
        let endless = (0..1000).map(|_| Step::Data(b"abcd")).collect();
        let mut c = conn(endless, vec![]);
        let mut buf = [0u8; 4];
        let mut stats = Counters::default();
        let limits = Limits {
            budget: 12,
            ..LIMITS
        };
        let next = c.on_readable(&mut buf, limits, Drain::WouldBlock, &mut stats);
        assert!(matches!(next, Next::Requeue), "{next:?}");
        assert_eq!(c.stream.read_calls, 3, "12 bytes of budget, 4 per read");
        assert_eq!(c.stream.written, b"abcdabcdabcd");
        assert_eq!(stats.budget_spent, 1);
        // The next pass (from the ready queue) picks up where it stopped.
        c.on_readable(&mut buf, limits, Drain::WouldBlock, &mut stats);
        assert_eq!(c.stream.read_calls, 6);
        assert_eq!(c.bytes_in(), 24);
    }

    /// A pass that drains the socket within its budget is a plain Keep,
    /// and a budget smaller than one read still reads once.
    #[test]
    fn test_open_budget_is_not_spent_when_drained_and_always_reads_once() {
        let mut c = conn(vec![Step::Data(b"abcd"), Step::Data(b"ef")], vec![]);
        let mut buf = [0u8; 4];
        let mut stats = Counters::default();
        let limits = Limits {
            budget: 64,
            ..LIMITS
        };
        let next = c.on_readable(&mut buf, limits, Drain::ShortRead, &mut stats);
        assert!(matches!(next, Next::Keep), "{next:?}");
        assert_eq!(stats.budget_spent, 0);
        let mut c = conn(vec![Step::Data(b"abcd"), Step::Data(b"efgh")], vec![]);
        let tiny = Limits {
            budget: 1,
            ..LIMITS
        };
        let next = c.on_readable(&mut buf, tiny, Drain::ShortRead, &mut stats);
        assert!(matches!(next, Next::Requeue), "{next:?}");
        assert_eq!(c.stream.written, b"abcd");
    }
}

#[cfg(test)]
mod size {
    use crate::shared::stream::Stream;

    /// An idle connection costs this struct and nothing on the heap. Its
    /// own fields take 56 bytes beside the socket (8 in a release build,
    /// where mio's sources carry no debug id): 64 in all, one cache line.
    /// The faults' state lives beside it in the reactor, not in it.
    #[test]
    fn a_connection_owns_56_bytes_beside_its_socket() {
        let size = std::mem::size_of::<super::Connection<Stream>>();
        let own = size - std::mem::size_of::<Stream>();
        assert!(own <= 56, "{own} B of its own");
    }
}
