//! One load connection: what it has sent, what came back, and the
//! messages whose echoes are still on their way. The server's
//! [`Connection`](crate::server) seen from the other end of the wire.
//!
//! Like the server's, it works on any `Read + Write` stream, so the tests
//! at the bottom drive it with a scripted fake stream (short writes,
//! segmented echoes, a wrong byte, `Ok(0)`) instead of sockets. The loop
//! that owns the real sockets, connects them and times them out is
//! [`Generator`](super::Generator); read that next.
//!
//! Its I/O follows the same rules as the server's: write until the socket
//! is full and keep count of what is left (here a count, not a buffer: the
//! bytes are on the tape), read until the socket is dry by the shared
//! [`Drain`] rule, tolerate spurious events.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::time::Instant;

use crate::shared::net::{interrupted, would_block};
use crate::shared::readiness::Drain;

use super::counters::Counters;
use super::tape::{CHUNK, tape_slice};

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
    /// Sending messages and checking echoes.
    Running {
        /// The connected socket.
        stream: S,
    },
    /// Failed, or the run is over; the socket is closed.
    Closed,
}

/// Why a connection was closed before the end of the run. The server's
/// reasons have the same names where they mean the same thing.
#[derive(Debug)]
pub(super) enum Close {
    /// An I/O error, or the server closed the connection mid-run.
    Failed(io::Error),
    /// The echo differs from what was sent.
    Mismatch,
    /// An echo did not come back within `--timeout`.
    Timeout,
}

impl fmt::Display for Close {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Close::Failed(e) => write!(f, "error: {e}"),
            Close::Mismatch => f.write_str("the echo differs from what was sent"),
            Close::Timeout => f.write_str("echo timeout"),
        }
    }
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
    /// For each message not yet echoed in full: the stream offset where it
    /// ends, and when it was sent (closed loop) or due (open loop).
    in_flight: VecDeque<(u64, Instant)>,
}

impl<S: Read + Write> Connection<S> {
    /// A connection not opened yet, whose bytes start at `tape_start`.
    pub(super) fn new(tape_start: usize) -> Self {
        Connection {
            phase: Phase::Waiting,
            tape_start,
            queued: 0,
            sent: 0,
            received: 0,
            in_flight: VecDeque::new(),
        }
    }

    /// Whether this connection can take another open-loop message now:
    /// running, with everything queued so far already written.
    pub(super) fn can_take(&self) -> bool {
        matches!(self.phase, Phase::Running { .. }) && self.sent == self.queued
    }

    /// When the oldest message still waiting for its echo was sent (or due).
    pub(super) fn oldest_in_flight(&self) -> Option<Instant> {
        self.in_flight.front().map(|&(_, at)| at)
    }

    /// Queues one message, sent (or due) at `at`.
    pub(super) fn queue(&mut self, size: usize, at: Instant) {
        self.queued += size as u64;
        self.in_flight.push_back((self.queued, at));
    }

    /// Writes queued bytes until all are out or the socket is full.
    pub(super) fn on_writable(
        &mut self,
        tape: &[u8],
        counters: &mut Counters,
        now: Instant,
    ) -> Result<(), Close> {
        let Phase::Running { stream } = &mut self.phase else {
            return Ok(());
        };
        while self.sent < self.queued {
            let len = (self.queued - self.sent).min(CHUNK as u64) as usize;
            match stream.write(tape_slice(tape, self.tape_start, self.sent, len)) {
                Ok(n) => {
                    self.sent += n as u64;
                    if counters.measuring(now) {
                        counters.bytes_sent += n as u64;
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(Close::Failed(e)),
            }
        }
        Ok(())
    }

    /// Reads echoes until the socket is dry (by `drain`), checks them
    /// against the tape, completes messages, and in closed loop (`refill`)
    /// queues a new message of that size for each one completed.
    pub(super) fn on_readable(
        &mut self,
        buf: &mut [u8],
        tape: &[u8],
        counters: &mut Counters,
        now: Instant,
        refill: Option<usize>,
        drain: Drain,
    ) -> Result<(), Close> {
        loop {
            let Phase::Running { stream } = &mut self.phase else {
                return Ok(());
            };
            let n = match stream.read(buf) {
                Ok(0) => {
                    let eof = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    );
                    return Err(Close::Failed(eof));
                }
                Ok(n) => n,
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(Close::Failed(e)),
            };
            if self.received + n as u64 > self.sent
                || buf[..n] != *tape_slice(tape, self.tape_start, self.received, n)
            {
                return Err(Close::Mismatch);
            }
            self.received += n as u64;
            if counters.measuring(now) {
                counters.bytes_received += n as u64;
            }
            while let Some(&(end, at)) = self.in_flight.front() {
                if end > self.received {
                    break;
                }
                self.in_flight.pop_front();
                counters.complete(at, now)?;
                if let Some(size) = refill {
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
