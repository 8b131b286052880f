//! Readiness, as both reactors see it: the event type their `turn` takes,
//! and the rule for when a socket has been read dry.
//!
//! mio hands out `Event`s that only it can make. Both loops copy each one
//! into a [`Readiness`] first, so a test can hand-craft a batch (a stale
//! token, a spurious wake-up, a hang-up) and feed it to `turn` exactly as
//! the poller would.
//!
//! Readiness is edge-triggered: an event says "something changed", once.
//! After a readable event a loop must read until the socket is dry, or it
//! will never hear about the rest. [`Drain`] names the two ways to tell
//! that it is dry; the server's [`Connection`](crate::server) and the load
//! generator's connection use the same type for the same decision.

use std::fmt;

use mio::event::Event;
use mio::{Interest, Token};

/// One readiness event, copied out of mio's `Event` so that tests can
/// hand-craft batches (stale tokens, spurious wake-ups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// Whose event it is.
    pub token: Token,
    /// Data (or EOF) can be read.
    pub readable: bool,
    /// The send buffer has room.
    pub writable: bool,
    /// The peer shut down its sending side (EPOLLRDHUP / EPOLLHUP).
    pub read_closed: bool,
    /// The socket has a pending error (EPOLLERR).
    pub error: bool,
}

impl Readiness {
    /// A plain readable event for `token`.
    pub fn readable(token: Token) -> Self {
        Readiness {
            token,
            readable: true,
            writable: false,
            read_closed: false,
            error: false,
        }
    }
}

impl From<&Event> for Readiness {
    fn from(e: &Event) -> Self {
        Readiness {
            token: e.token(),
            readable: e.is_readable(),
            writable: e.is_writable(),
            read_closed: e.is_read_closed(),
            error: e.is_error(),
        }
    }
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token={}", self.token.0)?;
        for (on, name) in [
            (self.readable, "readable"),
            (self.writable, "writable"),
            (self.read_closed, "read_closed"),
            (self.error, "error"),
        ] {
            if on {
                write!(f, " {name}")?;
            }
        }
        Ok(())
    }
}

/// How a read pass should decide that the socket has been drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Stop after a read shorter than the buffer: epoll(7) notes that such a
    /// read emptied a stream socket, and any data that arrives later raises a
    /// new edge. Saves one `read` syscall per event.
    ShortRead,
    /// Read until `WouldBlock` or EOF. Needed when no further edge may come:
    /// the event already reported the peer's hang-up (the FIN may sit right
    /// behind the data), or we are resuming after pausing for backpressure
    /// (the edge for the waiting data was spent while we were not reading).
    WouldBlock,
}

impl Drain {
    // ANCHOR: drain_after
    /// The rule for a read pass that `event` started: after a hang-up or an
    /// error, read to `WouldBlock` (the FIN or the error may sit right
    /// behind the data, and will raise no new edge); otherwise a short read
    /// is enough.
    pub fn after(event: &Readiness) -> Drain {
        if event.read_closed || event.error {
            Drain::WouldBlock
        } else {
            Drain::ShortRead
        }
    }
    // ANCHOR_END: drain_after
}

/// An interest as the trace prints it everywhere: `READABLE`, `WRITABLE`,
/// `READABLE|WRITABLE`, or `none` once the connection is finished.
pub fn interest_name(interest: Option<Interest>) -> &'static str {
    match interest {
        Some(i) if i.is_readable() && i.is_writable() => "READABLE|WRITABLE",
        Some(i) if i.is_writable() => "WRITABLE",
        Some(_) => "READABLE",
        None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trace names interests the same way everywhere.
    #[test]
    fn interest_names() {
        assert_eq!(interest_name(Some(Interest::READABLE)), "READABLE");
        assert_eq!(interest_name(Some(Interest::WRITABLE)), "WRITABLE");
        assert_eq!(
            interest_name(Some(Interest::READABLE | Interest::WRITABLE)),
            "READABLE|WRITABLE"
        );
        assert_eq!(interest_name(None), "none");
    }

    #[test]
    fn a_hang_up_or_an_error_reads_to_would_block() {
        let plain = Readiness::readable(Token(7));
        assert_eq!(Drain::after(&plain), Drain::ShortRead);
        let hung_up = Readiness {
            read_closed: true,
            ..plain
        };
        assert_eq!(Drain::after(&hung_up), Drain::WouldBlock);
        let failed = Readiness {
            error: true,
            ..plain
        };
        assert_eq!(Drain::after(&failed), Drain::WouldBlock);
    }
}
