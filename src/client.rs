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
//! (`echoloop client -v`). Read `Client::step` for the transitions, one
//! `match` arm per state.
//!
//! Read this after [`crate::server`]; [`crate::target`] parses the SERVER
//! argument and builds the request, [`crate::repr`] formats the reply.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::duration::deadline_after;
use crate::net::{connect_finished, describe, interrupted, would_block};
use crate::repr::bytes_repr;
use crate::target::Target;

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
    /// Sending failed after connecting (exit 55).
    Send {
        /// `host:port`.
        target: String,
        /// What the kernel said.
        source: io::Error,
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
            ClientError::Recv { .. } => 56,
            ClientError::Output(_) => 23,
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
            ClientError::Send { target, source } => {
                write!(f, "failed sending to {target}: {}", describe(source))
            }
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
pub enum State {
    /// Looking the host up with the system resolver (getaddrinfo). This one
    /// step blocks: there is no non-blocking system resolver to poll.
    Resolving,
    /// A non-blocking connect to `addr` is in flight; it started at `since`.
    Connecting {
        /// The socket being connected.
        stream: TcpStream,
        /// The address being tried.
        addr: SocketAddr,
        /// When this attempt started (for `--connect-timeout`).
        since: Instant,
    },
    /// Connected; the first `written` bytes of the payload are out. We read
    /// here too: a server may answer (an echo server does) before the
    /// payload is all out, and would stop reading from us if we did not.
    Writing {
        /// The connected socket.
        stream: TcpStream,
        /// Payload bytes written so far.
        written: usize,
    },
    /// The payload is out; read until EOF.
    Reading {
        /// The connected socket.
        stream: TcpStream,
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
    untried: VecDeque<SocketAddr>,
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

/// Runs one exchange and writes the reply to `out`. Returns the number of
/// reply bytes received.
pub fn run(opts: Options, out: &mut dyn Write) -> Result<u64, ClientError> {
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
            writeln!(self.out, "{}", bytes_repr(&self.reply)).map_err(ClientError::Output)?;
        }
        self.out.flush().map_err(ClientError::Output)?;
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
            } => match connect_finished(&stream) {
                // Connected: ask for both directions and write at once (a
                // freshly connected socket has room).
                Ok(true) => {
                    log::debug!("connected to {addr}");
                    self.poll
                        .registry()
                        .reregister(&mut stream, SOCKET, Interest::READABLE | Interest::WRITABLE)
                        .map_err(ClientError::Poll)?;
                    Ok((State::Writing { stream, written: 0 }, Flow::Continue))
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
            State::Writing { stream, written } => Ok((self.write(stream, written)?, Flow::Wait)),
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
    /// address.
    fn resolve(&mut self) -> Result<State, ClientError> {
        let Target { host, port, .. } = &self.opts.target;
        let addrs = (host.as_str(), *port)
            .to_socket_addrs()
            .map_err(|e| ClientError::Resolve {
                host: host.clone(),
                message: resolver_message(&e),
            })?;
        self.untried = addrs.collect();
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
            let mut stream = match TcpStream::connect(addr) {
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
    /// across partial writes. All out: half-close if asked, → Reading.
    /// EOF from the peer first: → Done (it has said all it will).
    fn write(&mut self, mut stream: TcpStream, mut written: usize) -> Result<State, ClientError> {
        if self.read_available(&mut stream)? {
            return Ok(finish(stream));
        }
        while written < self.opts.payload.len() {
            match stream.write(&self.opts.payload[written..]) {
                Ok(n) => {
                    log::debug!("write {n} bytes");
                    written += n;
                }
                Err(e) if would_block(&e) => return Ok(State::Writing { stream, written }),
                Err(e) if interrupted(&e) => {}
                Err(source) => return Err(self.send_error(source)),
            }
        }
        if self.opts.half_close {
            log::debug!("shutdown write side");
            stream
                .shutdown(Shutdown::Write)
                .map_err(|e| self.send_error(e))?;
        }
        self.poll
            .registry()
            .reregister(&mut stream, SOCKET, Interest::READABLE)
            .map_err(ClientError::Poll)?;
        Ok(State::Reading { stream })
    }

    /// Reads until `WouldBlock` (false) or EOF (true), passing each chunk to
    /// the output.
    fn read_available(&mut self, stream: &mut TcpStream) -> Result<bool, ClientError> {
        loop {
            match stream.read(&mut self.buf) {
                Ok(0) => {
                    log::debug!("read EOF after {} bytes", self.received);
                    return Ok(true);
                }
                Ok(n) => {
                    log::debug!("read {n} bytes");
                    self.received += n as u64;
                    if self.opts.raw {
                        self.out
                            .write_all(&self.buf[..n])
                            .map_err(ClientError::Output)?;
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
                let during = match self.state {
                    State::Resolving | State::Connecting { .. } => "connecting to",
                    State::Writing { .. } => "sending to",
                    State::Reading { .. } | State::Done => "reading from",
                };
                return Err(ClientError::Timeout {
                    target: self.opts.target.to_string(),
                    during,
                    after: self.opts.timeout,
                });
            }
            let State::Connecting { since, addr, .. } = self.state else {
                return Ok(self.deadline - now);
            };
            let attempt_ends = deadline_after(since, self.opts.connect_timeout);
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

    fn send_error(&self, source: io::Error) -> ClientError {
        ClientError::Send {
            target: self.opts.target.to_string(),
            source,
        }
    }
}

/// Reading → Done: shut the socket down and close it.
fn finish(stream: TcpStream) -> State {
    // The peer may have closed both directions already (ENOTCONN): fine.
    let _ = stream.shutdown(Shutdown::Both);
    drop(stream);
    State::Done
}

/// The resolver's own message, without std's "failed to lookup address
/// information: " prefix.
fn resolver_message(err: &io::Error) -> String {
    let text = err.to_string();
    match text.split_once("information: ") {
        Some((_, message)) => message.to_string(),
        None => text,
    }
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
        }
    }

    /// Like `socket.create_connection`: a refused address is skipped and
    /// the next one is tried.
    #[test]
    fn test_connecting_refused_moves_on_to_the_next_address() {
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
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
        client.untried = [closed, live_addr].into();
        let first = client.connect_next().unwrap();
        client.set_state(first);
        assert_eq!(client.drive().unwrap(), 4);
        assert_eq!(server.join().unwrap(), b"ping");
        assert_eq!(out, b"pong");
    }

    /// Every address refused: the last failure is the error, exit 7.
    #[test]
    fn test_connecting_all_refused_is_a_connect_error() {
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut out = Vec::new();
        let mut client = Client::new(opts(closed.port()), &mut out).unwrap();
        client.untried = [closed, closed].into();
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
