//! A connected stream socket of either family the programs speak: TCP, or
//! a Unix-domain stream socket (`unix:/path`, `unix:@name`), or TLS over
//! TCP. One enum, so a server connection, a client and a load connection
//! work the same over all three; each call is one `match` on top of the
//! system call (or, for TLS, of [`TlsStream`]).

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};

use super::readiness::Drain;
use super::tls::{TlsStream, Wire};

/// A TCP or Unix-domain stream socket, non-blocking.
#[derive(Debug)]
pub enum Stream {
    /// Over TCP.
    Tcp(TcpStream),
    /// Over a Unix-domain socket.
    Unix(UnixStream),
    /// TLS over TCP. Boxed: a session is kilobytes, and a plain
    /// connection should not pay for its room.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// Turns Nagle's algorithm off (TCP only: Unix sockets have none), so
    /// a small message leaves at once.
    pub fn set_nodelay(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(true),
            Stream::Tls(t) => t.socket().set_nodelay(true),
            Stream::Unix(_) => Ok(()),
        }
    }

    /// The peer, for the logs: `127.0.0.1:50866`, or `unix` (a Unix peer
    /// that connects has no name of its own).
    pub fn peer_name(&self) -> String {
        match self {
            Stream::Tcp(s) => s.peer_addr().map_or_else(|_| "?".into(), |p| p.to_string()),
            Stream::Tls(t) => t
                .socket()
                .peer_addr()
                .map_or_else(|_| "?".into(), |p| p.to_string()),
            Stream::Unix(_) => "unix".into(),
        }
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Tls(t) => t.socket().shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    /// Copies what the socket holds into `buf` without taking it (a read
    /// with `MSG_PEEK`): the next read returns the same bytes. A PROXY
    /// header is looked at this way, so that only the header is taken and
    /// what follows it stays for the echo (or for TLS). A TLS stream has
    /// no plaintext to peek at before its handshake: it says
    /// `Unsupported`.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let fd = match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tls(_) => return Err(io::ErrorKind::Unsupported.into()),
        };
        // SAFETY: recv writes at most `buf.len()` bytes into `buf`, which
        // we own mutably for the call; the descriptor is open while `self`
        // is borrowed.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_PEEK) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    /// Over TLS, queues our `close_notify` (once) and sends what the
    /// socket takes; [`Wire::unsent`] says whether some is left. A bare
    /// socket has nothing to say before its FIN.
    pub fn close_notify(&mut self) -> io::Result<()> {
        match self {
            Stream::Tls(t) => t.close_notify(),
            Stream::Tcp(_) | Stream::Unix(_) => Ok(()),
        }
    }

    /// Makes closing send an RST instead of a FIN (`SO_LINGER` 0; TCP
    /// only: a Unix-domain socket has no reset, and just closes).
    pub fn linger_zero(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => socket2::SockRef::from(s).set_linger(Some(std::time::Duration::ZERO)),
            Stream::Tls(t) => {
                socket2::SockRef::from(t.socket()).set_linger(Some(std::time::Duration::ZERO))
            }
            Stream::Unix(_) => Ok(()),
        }
    }

    /// Whether a non-blocking connect has finished: `Ok(true)` connected,
    /// `Ok(false)` still in progress (a spurious wake-up), `Err` failed.
    /// mio's recipe: a pending error first, then whether there is a peer.
    pub fn connect_finished(&self) -> io::Result<bool> {
        let (error, peer) = match self {
            Stream::Tcp(s) => (s.take_error()?, s.peer_addr().map(|_| ())),
            Stream::Tls(t) => (t.socket().take_error()?, t.socket().peer_addr().map(|_| ())),
            Stream::Unix(s) => (s.take_error()?, s.peer_addr().map(|_| ())),
        };
        if let Some(e) = error {
            return Err(e);
        }
        match peer {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Read for Stream {
    // Tiny dispatchers on every read and write of both loops: inlined into
    // each caller, whichever codegen unit it lands in.
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    /// A socket's writes are on their way when `write` returns: nothing to
    /// do. TLS sends the records rustls still holds.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tls(t) => t.flush(),
            Stream::Tcp(_) | Stream::Unix(_) => Ok(()),
        }
    }
}

impl Wire for Stream {
    fn drain(&mut self, bare: Drain) -> Drain {
        match self {
            Stream::Tls(t) => t.drain(bare),
            Stream::Tcp(_) | Stream::Unix(_) => bare,
        }
    }

    fn unsent(&self) -> bool {
        match self {
            Stream::Tls(t) => t.unsent(),
            Stream::Tcp(_) | Stream::Unix(_) => false,
        }
    }

    fn read_size(&self, bare: usize) -> usize {
        match self {
            Stream::Tls(t) => t.read_size(bare),
            Stream::Tcp(_) | Stream::Unix(_) => bare,
        }
    }

    fn send_fin(&mut self) -> io::Result<()> {
        self.close_notify()?;
        if self.unsent() {
            // The close_notify waits for room (WRITABLE); the FIN follows it.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl Source for Stream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(registry, token, interests),
            Stream::Tls(t) => t.socket_mut().register(registry, token, interests),
            Stream::Unix(s) => s.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(registry, token, interests),
            Stream::Tls(t) => t.socket_mut().reregister(registry, token, interests),
            Stream::Unix(s) => s.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(registry),
            Stream::Tls(t) => t.socket_mut().deregister(registry),
            Stream::Unix(s) => s.deregister(registry),
        }
    }
}
