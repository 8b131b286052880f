//! The HTTP GET client: what the classic Python socket client does —
//! resolve, connect, send a request, read the reply until EOF, shut down,
//! close — as a small explicit state machine driven by a `mio::Poll`.
//!
//! The states are the steps, and the data each step needs lives in its
//! variant (the socket only exists once we are connecting):
//!
//! ```text
//! Resolving ──▶ Connecting ──▶ Writing ──▶ Reading ──▶ Done
//!                 │    ▲          │                     ▲
//!                 └────┘          └── EOF from the peer ─┘
//!           (refused or timed out: the next address)
//! ```
//!
//! Every transition is logged as `state old => new` at debug level
//! (`echoloop client -v`). Read `Client::step` for the transitions driven
//! by readiness, one `match` arm per state. Two happen outside it, on time
//! or before any socket exists: `Client::run` moves from `Resolving` to the
//! first `Connecting` (after the blocking lookup), and
//! `Client::check_deadlines` moves a `Connecting` whose attempt ran out of
//! `--connect-timeout` on to the next address. Both go through
//! `Client::set_state`, which logs them the same way.
//!
//! Three promises hold against a hostile server:
//!
//! * **The deadline wins.** It is checked between polls *and* inside every
//!   read loop, since a server that sends without pause never lets a read
//!   say `WouldBlock`; and stdout is written through a writer that gives up
//!   at the same deadline ([`stdout`]), so a reader that stops
//!   reading cannot hold the client past `--timeout` either. On a timeout,
//!   the reply so far is printed before the error, as curl does.
//! * **Memory is bounded.** Without `--raw` the reply is held for `repr()`,
//!   up to `--max-reply` bytes; past that the client stops (exit 63).
//!   `--raw` streams and holds nothing.
//! * **The upload is never cut short silently.** A server that half-closes
//!   early does not stop the sending: the client keeps writing until the
//!   whole payload is out, and a reset on the way is a send failure (exit
//!   55) that says how much went out.
//!
//! Read this after [`crate::server`]. Next: [`target`] parses the SERVER
//! argument and builds the request, [`repr`] formats the reply, [`stdout`]
//! writes it; then [`crate::load`].

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use crate::shared::addr::Endpoint;
use crate::shared::duration::deadline_after;
use crate::shared::net::{self, describe, interrupted, resolver_message, would_block};
use crate::shared::stream::Stream;
pub use repr::bytes_repr;
pub use stdout::DeadlineStdout;
pub use target::{Target, Transport};

mod repr;
mod stdout;
mod target;
mod udp;

/// The client's one socket.
const SOCKET: Token = Token(0);

/// After a step: wait for the next event, or step again at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Wait,
    Continue,
}

/// Everything `echoloop client` can be told.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to connect, and the path for the request.
    pub target: Target,
    /// The bytes to send: the GET request, or `--data`/`--data-file`.
    pub payload: Vec<u8>,
    /// Shut down our sending side once the payload is out (an echo server
    /// then sees EOF, echoes, and closes).
    pub half_close: bool,
    /// Stream the reply's bytes as they arrive instead of printing `repr()`.
    pub raw: bool,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long the whole exchange may take, connecting included.
    pub timeout: Duration,
    /// The most reply bytes held for `repr()` (not used with `raw`).
    pub max_reply: u64,
}

/// Why the exchange failed. Each kind has its own exit code, following curl.
#[derive(Debug)]
pub enum ClientError {
    /// The resolver found no address for the host (exit 6).
    Resolve {
        /// The host we asked for.
        host: String,
        /// The resolver's own words, e.g. "Name or service not known".
        message: String,
    },
    /// No address accepted the connection (exit 7).
    Connect {
        /// `host:port`.
        target: String,
        /// Why the last address failed.
        source: io::Error,
    },
    /// A deadline passed (exit 28).
    Timeout {
        /// `host:port`.
        target: String,
        /// What we were doing: "connecting to", "sending to", "reading from".
        during: &'static str,
        /// The limit that was exceeded.
        after: Duration,
    },
    /// Sending failed after connecting, or the connection failed while the
    /// payload was still going out (exit 55).
    Send {
        /// `host:port`.
        target: String,
        /// What the kernel said.
        source: io::Error,
        /// Payload bytes written before the failure.
        sent: usize,
        /// Payload bytes in all.
        total: usize,
    },
    /// The reply outgrew `--max-reply` (exit 63, curl's "maximum file size
    /// exceeded").
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// Receiving failed, e.g. the connection was reset (exit 56).
    Recv {
        /// `host:port`.
        target: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// Writing the reply to stdout failed (exit 23).
    Output(io::Error),
    /// `--data-file` could not be read (exit 26, curl's "read error").
    DataFile {
        /// The file.
        path: std::path::PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The poller could not be created or used (exit 1).
    Poll(io::Error),
}

impl ClientError {
    /// The process exit code for this error (curl's numbers where they fit).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Resolve { .. } => 6,
            ClientError::Connect { .. } => 7,
            ClientError::Timeout { .. } => 28,
            ClientError::Send { .. } => 55,
            ClientError::TooLarge { .. } => 63,
            ClientError::Recv { .. } => 56,
            ClientError::Output(_) => 23,
            ClientError::DataFile { .. } => 26,
            ClientError::Poll(_) => 1,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Resolve { host, message } => {
                write!(f, "could not resolve host {host}: {message}")
            }
            ClientError::DataFile { path, source } => {
                write!(f, "cannot read {}: {}", path.display(), describe(source))
            }
            ClientError::Connect { target, source } => {
                write!(f, "failed to connect to {target}: {}", describe(source))
            }
            ClientError::Timeout {
                target,
                during,
                after,
            } => write!(
                f,
                "timed out after {} s {during} {target}",
                after.as_secs_f64()
            ),
            ClientError::Send {
                target,
                source,
                sent,
                total,
            } => write!(
                f,
                "failed sending to {target}: {} (sent {sent} of {total} bytes)",
                describe(source)
            ),
            ClientError::TooLarge { limit } => write!(
                f,
                "the reply is larger than --max-reply ({limit} bytes); use --raw to stream it"
            ),
            ClientError::Recv { target, source } => {
                write!(f, "failed receiving from {target}: {}", describe(source))
            }
            ClientError::Output(e) => write!(f, "cannot write the reply: {}", describe(e)),
            ClientError::Poll(e) => write!(f, "event loop failed: {}", describe(e)),
        }
    }
}

impl std::error::Error for ClientError {}

/// Where the exchange is.
#[derive(Debug)]
pub enum State {
    /// Looking the host up with the system resolver (getaddrinfo). This one
    /// step blocks: there is no non-blocking system resolver to poll.
    Resolving,
    /// A non-blocking connect to `addr` is in flight; it started at `since`.
    Connecting {
        /// The socket being connected.
        stream: Stream,
        /// The address being tried.
        addr: Endpoint,
        /// When this attempt started (for `--connect-timeout`).
        since: Instant,
    },
    /// Connected; the first `written` bytes of the payload are out. We read
    /// here too: a server may answer (an echo server does) before the
    /// payload is all out, and would stop reading from us if we did not.
    Writing {
        /// The connected socket.
        stream: Stream,
        /// Payload bytes written so far.
        written: usize,
        /// The server has sent EOF: it will say no more, but it may still
        /// be reading, so the rest of the payload still goes out.
        peer_done: bool,
    },
    /// The payload is out; read until EOF.
    Reading {
        /// The connected socket.
        stream: Stream,
    },
    /// EOF seen; the socket is shut down and closed.
    Done,
}

impl State {
    /// The state's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            State::Resolving => "resolving",
            State::Connecting { .. } => "connecting",
            State::Writing { .. } => "writing",
            State::Reading { .. } => "reading",
            State::Done => "done",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One exchange with one server.
pub struct Client<'o> {
    /// What to do.
    opts: Options,
    /// Where we are.
    state: State,
    /// The poller for the one socket.
    poll: Poll,
    /// Resolved addresses not tried yet.
    untried: VecDeque<Endpoint>,
    /// Why the last connection attempt failed, for the final error.
    last_failure: Option<io::Error>,
    /// When the whole exchange must be over.
    deadline: Instant,
    /// Read buffer.
    buf: Vec<u8>,
    /// The reply so far (only without `--raw`: raw output is streamed).
    reply: Vec<u8>,
    /// Bytes received.
    received: u64,
    /// Where the reply goes.
    out: &'o mut dyn Write,
}

impl fmt::Debug for Client<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("target", &self.opts.target.to_string())
            .field("state", &self.state.name())
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

/// Runs one exchange and writes the reply to `out`. Returns the number of
/// reply bytes received.
pub fn run(opts: Options, out: &mut dyn Write) -> Result<u64, ClientError> {
    if opts.target.transport == Transport::Udp {
        return udp::exchange(&opts, out);
    }
    let mut client = Client::new(opts, out)?;
    client.run()
}

impl<'o> Client<'o> {
    /// A client in state `Resolving`.
    pub fn new(opts: Options, out: &'o mut dyn Write) -> Result<Self, ClientError> {
        Ok(Client {
            deadline: deadline_after(Instant::now(), opts.timeout),
            opts,
            state: State::Resolving,
            poll: Poll::new().map_err(ClientError::Poll)?,
            untried: VecDeque::new(),
            last_failure: None,
            buf: vec![0; 64 * 1024],
            reply: Vec::new(),
            received: 0,
            out,
        })
    }

    /// The loop: resolve, then poll and step until `Done`.
    pub fn run(&mut self) -> Result<u64, ClientError> {
        let next = self.resolve()?;
        self.set_state(next);
        self.drive()
    }

    /// Polls and steps from `Connecting` until `Done`, then prints.
    fn drive(&mut self) -> Result<u64, ClientError> {
        let mut events = Events::with_capacity(8);
        while !matches!(self.state, State::Done) {
            let timeout = self.check_deadlines()?;
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(ClientError::Poll(e)),
            }
            if events.is_empty() {
                continue; // a deadline passed: check_deadlines handles it
            }
            // One event can carry us through several states (connected,
            // then the whole request written at once): step until a state
            // has to wait for the next event.
            loop {
                let state = std::mem::replace(&mut self.state, State::Done);
                let name = state.name();
                let (next, flow) = self.step(state)?;
                self.state = next;
                if self.state.name() != name {
                    log::debug!("state {name} => {}", self.state);
                }
                if flow == Flow::Wait {
                    break;
                }
            }
        }
        if !self.opts.raw {
            let printed = writeln!(self.out, "{}", bytes_repr(&self.reply));
            printed.map_err(|e| self.output_error(e))?;
        }
        let flushed = self.out.flush();
        flushed.map_err(|e| self.output_error(e))?;
        Ok(self.received)
    }

    /// The transitions: what the socket's readiness means in each state.
    /// Events can be spurious; every arm tolerates nothing being ready.
    fn step(&mut self, state: State) -> Result<(State, Flow), ClientError> {
        match state {
            State::Connecting {
                mut stream,
                addr,
                since,
            } => match stream.connect_finished() {
                // Connected: ask for both directions and write at once (a
                // freshly connected socket has room).
                Ok(true) => {
                    log::debug!("connected to {addr}");
                    self.poll
                        .registry()
                        .reregister(&mut stream, SOCKET, Interest::READABLE | Interest::WRITABLE)
                        .map_err(ClientError::Poll)?;
                    let writing = State::Writing {
                        stream,
                        written: 0,
                        peer_done: false,
                    };
                    Ok((writing, Flow::Continue))
                }
                // Still in progress: that was a spurious wake-up.
                Ok(false) => Ok((
                    State::Connecting {
                        stream,
                        addr,
                        since,
                    },
                    Flow::Wait,
                )),
                // Refused, unreachable: on to the next address.
                Err(e) => {
                    log::debug!("connect to {addr} failed: {e}");
                    self.last_failure = Some(e);
                    Ok((self.connect_next()?, Flow::Wait))
                }
            },
            State::Writing {
                stream,
                written,
                peer_done,
            } => Ok((self.write(stream, written, peer_done)?, Flow::Wait)),
            State::Reading { mut stream } => {
                if self.read_available(&mut stream)? {
                    Ok((finish(stream), Flow::Wait))
                } else {
                    Ok((State::Reading { stream }, Flow::Wait))
                }
            }
            other @ (State::Resolving | State::Done) => Ok((other, Flow::Wait)),
        }
    }

    /// Resolving → Connecting: ask the system resolver, then try the first
    /// address. (A Unix-domain socket has nothing to resolve.)
    fn resolve(&mut self) -> Result<State, ClientError> {
        if let Transport::Unix(endpoint) = &self.opts.target.transport {
            self.untried = VecDeque::from([endpoint.clone()]);
            return self.connect_next();
        }
        let Target { host, port, .. } = &self.opts.target;
        let addrs = (host.as_str(), *port)
            .to_socket_addrs()
            .map_err(|e| ClientError::Resolve {
                host: host.clone(),
                message: resolver_message(&e),
            })?;
        self.untried = addrs.map(Endpoint::Ip).collect();
        log::debug!("resolved {host} to {:?}", self.untried);
        if self.untried.is_empty() {
            return Err(ClientError::Resolve {
                host: host.clone(),
                message: "no addresses".to_string(),
            });
        }
        self.connect_next()
    }

    /// Starts a non-blocking connect to the next untried address, as
    /// Python's `socket.create_connection` does: the first one that works
    /// wins; if none does, the last failure is the error.
    fn connect_next(&mut self) -> Result<State, ClientError> {
        while let Some(addr) = self.untried.pop_front() {
            let connecting = match &addr {
                Endpoint::Ip(ip) => mio::net::TcpStream::connect(*ip).map(Stream::Tcp),
                unix => net::connect_unix(unix).map(Stream::Unix),
            };
            let mut stream = match connecting {
                Ok(stream) => stream,
                Err(e) => {
                    log::debug!("connect to {addr} failed at once: {e}");
                    self.last_failure = Some(e);
                    continue;
                }
            };
            // A connect in progress finishes (or fails) by becoming writable.
            self.poll
                .registry()
                .register(&mut stream, SOCKET, Interest::WRITABLE)
                .map_err(ClientError::Poll)?;
            log::debug!("connecting to {addr}");
            return Ok(State::Connecting {
                stream,
                addr,
                since: Instant::now(),
            });
        }
        let target = self.opts.target.to_string();
        match self.last_failure.take() {
            Some(e) if e.kind() == io::ErrorKind::TimedOut => Err(ClientError::Timeout {
                target,
                during: "connecting to",
                after: self.opts.connect_timeout,
            }),
            Some(source) => Err(ClientError::Connect { target, source }),
            None => Err(ClientError::Connect {
                target,
                source: io::ErrorKind::AddrNotAvailable.into(),
            }),
        }
    }

    /// Writing: read what has arrived, then write more of the payload,
    /// across partial writes. All out: half-close if asked, then → Reading,
    /// or → Done if the server has already sent its EOF.
    ///
    /// An EOF from the server while we write does not stop the writing: a
    /// half-close only says the server will send no more, and it may well
    /// go on reading (an echo server that was itself half-closed does). We
    /// stop reading (the socket would report EOF forever) and write on; if
    /// the server really has gone, the next write fails and says how much
    /// of the payload went out.
    fn write(
        &mut self,
        mut stream: Stream,
        mut written: usize,
        mut peer_done: bool,
    ) -> Result<State, ClientError> {
        let total = self.opts.payload.len();
        if !peer_done {
            match self.read_available(&mut stream) {
                Ok(false) => {}
                Ok(true) => {
                    log::debug!(
                        "the server sent EOF with {written} of {total} bytes out: sending on"
                    );
                    peer_done = true;
                    self.poll
                        .registry()
                        .reregister(&mut stream, SOCKET, Interest::WRITABLE)
                        .map_err(ClientError::Poll)?;
                }
                // A reset while the payload is going out is a failed send:
                // it is the sending that did not complete.
                Err(ClientError::Recv { source, .. }) => {
                    return Err(self.send_error(source, written));
                }
                Err(e) => return Err(e),
            }
        }
        while written < total {
            match stream.write(&self.opts.payload[written..]) {
                Ok(n) => {
                    log::debug!("write {n} bytes");
                    written += n;
                }
                Err(e) if would_block(&e) => {
                    return Ok(State::Writing {
                        stream,
                        written,
                        peer_done,
                    });
                }
                Err(e) if interrupted(&e) => {}
                Err(source) => return Err(self.send_error(source, written)),
            }
        }
        if self.opts.half_close {
            log::debug!("shutdown write side");
            stream
                .shutdown(Shutdown::Write)
                .map_err(|e| self.send_error(e, written))?;
        }
        if peer_done {
            return Ok(finish(stream));
        }
        self.poll
            .registry()
            .reregister(&mut stream, SOCKET, Interest::READABLE)
            .map_err(ClientError::Poll)?;
        Ok(State::Reading { stream })
    }

    /// Reads until `WouldBlock` (false) or EOF (true), passing each chunk to
    /// the output. The deadline is checked before every read: a server that
    /// sends without pause would otherwise keep this loop going forever.
    fn read_available(&mut self, stream: &mut Stream) -> Result<bool, ClientError> {
        loop {
            if Instant::now() >= self.deadline {
                return Err(self.timed_out());
            }
            match stream.read(&mut self.buf) {
                Ok(0) => {
                    log::debug!("read EOF after {} bytes", self.received);
                    return Ok(true);
                }
                Ok(n) => {
                    log::debug!("read {n} bytes");
                    self.received += n as u64;
                    if self.opts.raw {
                        let written = self.out.write_all(&self.buf[..n]);
                        written.map_err(|e| self.output_error(e))?;
                    } else if self.reply.len() as u64 + n as u64 > self.opts.max_reply {
                        return Err(ClientError::TooLarge {
                            limit: self.opts.max_reply,
                        });
                    } else {
                        self.reply.extend_from_slice(&self.buf[..n]);
                    }
                }
                Err(e) if would_block(&e) => return Ok(false),
                Err(e) if interrupted(&e) => {}
                Err(source) => {
                    return Err(ClientError::Recv {
                        target: self.opts.target.to_string(),
                        source,
                    });
                }
            }
        }
    }

    /// Checks both deadlines and returns how long the next poll may wait.
    /// A connection attempt that ran out of time moves on to the next
    /// address; the whole exchange running out of time is an error.
    fn check_deadlines(&mut self) -> Result<Duration, ClientError> {
        loop {
            let now = Instant::now();
            if now >= self.deadline {
                return Err(self.timed_out());
            }
            let State::Connecting { since, addr, .. } = &self.state else {
                return Ok(self.deadline - now);
            };
            let attempt_ends = deadline_after(*since, self.opts.connect_timeout);
            if now < attempt_ends {
                return Ok(attempt_ends.min(self.deadline) - now);
            }
            log::debug!("connect to {addr} timed out");
            self.last_failure = Some(io::ErrorKind::TimedOut.into());
            let next = self.connect_next()?;
            self.set_state(next);
        }
    }

    /// Moves to `next` outside [`Client::step`], logging the transition.
    fn set_state(&mut self, next: State) {
        if self.state.name() != next.name() {
            log::debug!("state {} => {}", self.state, next);
        }
        self.state = next;
    }

    /// The timeout error for the current state. Like curl, first prints
    /// what has been received so far (without `--raw`; raw output already
    /// went out as it came), so a partial reply is not lost. Printing is
    /// best effort: the timeout is the error either way.
    fn timed_out(&mut self) -> ClientError {
        let during = match self.state {
            State::Resolving | State::Connecting { .. } => "connecting to",
            State::Writing { .. } => "sending to",
            State::Reading { .. } | State::Done => "reading from",
        };
        if !self.opts.raw && !self.reply.is_empty() {
            let _ = writeln!(self.out, "{}", bytes_repr(&self.reply));
            let _ = self.out.flush();
        }
        ClientError::Timeout {
            target: self.opts.target.to_string(),
            during,
            after: self.opts.timeout,
        }
    }

    /// The error for a failed write to the output: the deadline passing
    /// while stdout was blocked (see [`stdout`]) is a timeout.
    fn output_error(&self, e: io::Error) -> ClientError {
        if e.kind() == io::ErrorKind::TimedOut {
            ClientError::Timeout {
                target: self.opts.target.to_string(),
                during: "writing the reply from",
                after: self.opts.timeout,
            }
        } else {
            ClientError::Output(e)
        }
    }

    fn send_error(&self, source: io::Error, sent: usize) -> ClientError {
        ClientError::Send {
            target: self.opts.target.to_string(),
            source,
            sent,
            total: self.opts.payload.len(),
        }
    }
}

/// Reading → Done: shut the socket down and close it.
fn finish(stream: Stream) -> State {
    // The peer may have closed both directions already (ENOTCONN): fine.
    let _ = stream.shutdown(Shutdown::Both);
    drop(stream);
    State::Done
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn opts(port: u16) -> Options {
        Options {
            target: Target::parse(&format!("127.0.0.1:{port}"), None, None).unwrap(),
            payload: b"ping".to_vec(),
            half_close: true,
            raw: true,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_reply: 1 << 20,
        }
    }

    /// A port that refuses connections for as long as the guard lives: a
    /// bound socket that does not listen (a listener bound and dropped
    /// would leave the port free for another process to take).
    fn closed_port() -> (socket2::Socket, std::net::SocketAddr) {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&any.into()).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        (socket, addr)
    }

    /// Like `socket.create_connection`: a refused address is skipped and
    /// the next one is tried.
    #[test]
    fn test_connecting_refused_moves_on_to_the_next_address() {
        let (_guard, closed) = closed_port();
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let live_addr = live.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = live.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            s.write_all(b"pong").unwrap();
            got
        });
        let mut out = Vec::new();
        let mut client = Client::new(opts(live_addr.port()), &mut out).unwrap();
        client.untried = [Endpoint::Ip(closed), Endpoint::Ip(live_addr)].into();
        let first = client.connect_next().unwrap();
        client.set_state(first);
        assert_eq!(client.drive().unwrap(), 4);
        assert_eq!(server.join().unwrap(), b"ping");
        assert_eq!(out, b"pong");
    }

    /// Every address refused: the last failure is the error, exit 7.
    #[test]
    fn test_connecting_all_refused_is_a_connect_error() {
        let (_guard, closed) = closed_port();
        let mut out = Vec::new();
        let mut client = Client::new(opts(closed.port()), &mut out).unwrap();
        client.untried = [Endpoint::Ip(closed), Endpoint::Ip(closed)].into();
        let err = match client.connect_next() {
            Ok(state) => {
                client.set_state(state);
                client.drive().unwrap_err()
            }
            Err(e) => e,
        };
        assert_eq!(err.exit_code(), 7, "{err}");
        assert!(err.to_string().contains("connection refused"), "{err}");
    }
}
