//! Standard output with a deadline: the client's reply goes to stdout, and
//! a reader that stops reading (`echoloop client ... | (sleep 8; head -c1)`)
//! must not hold the client past `--timeout`.
//!
//! A plain `write` to a full pipe blocks until the reader reads, however
//! long that takes, and no deadline is checked meanwhile. Making fd 1
//! non-blocking would fix that but leaks: the flag lives on the open file
//! description, which the shell and every other process on the same
//! terminal or pipe share, and they would start seeing `EAGAIN`. So instead
//! each write is non-blocking *for this call only*: `pwritev2` with
//! `RWF_NOWAIT` writes what fits into a pipe or socket and says `EAGAIN`
//! when nothing does, and then we wait with `poll(2)` for room, at most
//! until the deadline. Where `RWF_NOWAIT` is not supported (a terminal, a
//! file, an older kernel), each write waits for `poll` first and then
//! writes at most `PIPE_BUF` bytes — a write that size into a pipe that
//! `poll` called writable does not block. A regular file never waits on a
//! reader, so it is written plainly.

use std::fs::File;
use std::io::{self, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Instant;

use crate::shared::net::interrupted;

/// The most bytes written per call: POSIX's `PIPE_BUF` on Linux. A pipe
/// with room for one more write takes this much without blocking.
const CHUNK: usize = 4096;

/// Stdout, written in chunks that never wait past a deadline. A write that
/// would have to wait longer fails with [`io::ErrorKind::TimedOut`].
#[derive(Debug)]
pub struct DeadlineStdout {
    /// fd 1, borrowed (never closed: `ManuallyDrop`).
    file: ManuallyDrop<File>,
    /// When writing gives up.
    deadline: Instant,
    /// How writes are made; see [`Mode`].
    mode: Mode,
}

/// How [`DeadlineStdout`] writes, by what stdout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A regular file: plain writes, which never wait on a reader.
    Plain,
    /// A pipe or socket: `pwritev2(RWF_NOWAIT)`, and `poll` on `EAGAIN`.
    NoWait,
    /// Anything else, or `RWF_NOWAIT` refused: `poll`, then at most
    /// [`CHUNK`] bytes.
    PollThenChunk,
}

impl DeadlineStdout {
    /// Stdout with `deadline`. Nothing else in the process may write to
    /// stdout meanwhile (std's buffered `Stdout` would interleave).
    pub fn new(deadline: Instant) -> Self {
        // SAFETY: fd 1 is open for the life of the process, and the
        // ManuallyDrop keeps this File from closing it.
        let file = unsafe { File::from_raw_fd(1) };
        DeadlineStdout {
            mode: match file.metadata() {
                Ok(meta) if meta.file_type().is_file() => Mode::Plain,
                _ => Mode::NoWait,
            },
            file: ManuallyDrop::new(file),
            deadline,
        }
    }

    /// Waits until fd 1 can take a write, or the deadline passes. Past the
    /// deadline it still looks once, without waiting: a stdout with room
    /// is written (that is how the partial reply gets out after a
    /// timeout); only a stdout that is really blocked times out.
    fn wait_writable(&self) -> io::Result<()> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            // Round up, so that a wait never ends just before the deadline.
            let ms = if left.is_zero() {
                0
            } else {
                left.as_millis().saturating_add(1).min(i32::MAX as u128) as i32
            };
            let mut fd = libc::pollfd {
                fd: self.file.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one pollfd, which lives across the call.
            let rc = unsafe { libc::poll(&mut fd, 1, ms) };
            match rc {
                0 if ms == 0 => return Err(io::ErrorKind::TimedOut.into()),
                0 => {}                      // woke at the deadline: one last look
                n if n > 0 => return Ok(()), // writable, or an error the write will report
                _ => {
                    let e = io::Error::last_os_error();
                    if !interrupted(&e) {
                        return Err(e);
                    }
                }
            }
        }
    }
}

impl Write for DeadlineStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.mode == Mode::Plain {
            return self.file.write(buf);
        }
        while self.mode == Mode::NoWait {
            let iov = libc::iovec {
                iov_base: buf.as_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            };
            // SAFETY: one iovec over `buf`, which outlives the call; offset
            // -1 means "the current position", as write(2).
            let rc =
                unsafe { libc::pwritev2(self.file.as_raw_fd(), &iov, 1, -1, libc::RWF_NOWAIT) };
            if rc >= 0 {
                return Ok(rc as usize);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => self.wait_writable()?,
                Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS) => {
                    self.mode = Mode::PollThenChunk;
                }
                _ if interrupted(&e) => {}
                _ => return Err(e),
            }
        }
        self.wait_writable()?;
        let n = buf.len().min(CHUNK);
        self.file.write(&buf[..n])
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // nothing is buffered here
    }
}
