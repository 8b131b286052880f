//! A scripted stand-in for a non-blocking socket, for unit tests: each
//! read and write answers from a script (data, EOF, WouldBlock, EINTR, a
//! short write, a reset). The server's and the load generator's
//! connections are both tested against it, so the traps of non-blocking
//! I/O are pinned without sockets and without timing.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use crate::shared::readiness::Drain;
use crate::shared::tls::Wire;

/// One scripted answer of the fake stream.
pub(crate) enum Step {
    /// A read returns these bytes.
    Data(&'static [u8]),
    /// A read returns `Ok(0)`.
    Eof,
    /// The call returns `WouldBlock`.
    Block,
    /// The call returns `Interrupted`.
    Intr,
    /// A write takes at most this many bytes.
    Take(usize),
    /// The call fails with a reset.
    Reset,
}

/// A stream that answers reads and writes from two scripts and records
/// every byte written. When a script runs out it says `WouldBlock`.
#[derive(Default)]
pub(crate) struct Fake {
    pub(crate) reads: VecDeque<Step>,
    pub(crate) writes: VecDeque<Step>,
    pub(crate) written: Vec<u8>,
    pub(crate) read_calls: usize,
    /// How many read passes asked for the drain rule ([`Wire::drain`]):
    /// a stream such as TLS's keeps state for the pass it is told of.
    pub(crate) drains: usize,
    /// Whether the owner half-closed it ([`Wire::send_fin`]).
    pub(crate) fin: bool,
}

impl Read for Fake {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_calls += 1;
        match self.reads.pop_front().unwrap_or(Step::Block) {
            Step::Data(d) => {
                // A buffer shorter than the data takes a part; the rest
                // is the next read's, as with a socket.
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                if n < d.len() {
                    self.reads.push_front(Step::Data(&d[n..]));
                }
                Ok(n)
            }
            Step::Eof => Ok(0),
            Step::Intr => Err(io::ErrorKind::Interrupted.into()),
            Step::Reset => Err(io::ErrorKind::ConnectionReset.into()),
            _ => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Fake {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.writes.pop_front().unwrap_or(Step::Take(usize::MAX)) {
            Step::Take(n) => {
                let n = n.min(buf.len());
                self.written.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            Step::Intr => Err(io::ErrorKind::Interrupted.into()),
            Step::Reset => Err(io::ErrorKind::BrokenPipe.into()),
            _ => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Wire for Fake {
    fn drain(&mut self, bare: Drain) -> Drain {
        self.drains += 1;
        bare
    }

    fn send_fin(&mut self) -> io::Result<()> {
        self.fin = true;
        Ok(())
    }
}
