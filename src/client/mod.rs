//! The HTTP GET client: what the classic Python socket client does —
//! resolve, connect, send a request, read the reply until EOF, shut down,
//! close — as a small explicit state machine driven by a `mio::Poll`.
//!
//! The states are the steps, and the data each step needs lives in its
//! variant (the socket only exists once we are connecting):
//!
//! ```text
//! Resolving ──▶ Connecting ──▶ (Handshaking) ──▶ Writing ──▶ Reading ──▶ Done
//!                 │    ▲                           │                     ▲
//!                 └────┘                           └── EOF from the peer ─┘
//!           (refused or timed out: the next address)
//! ```
//!
//! `Handshaking` is there over TLS only (`https://`, `tls://`): rustls
//! and the server say hello, agree on keys and check the certificate,
//! fed by the same readiness events. Once it is over, `Writing` and
//! `Reading` work as over TCP, through [`TlsStream`],
//! with one addition: `Writing` ends only when rustls has handed every
//! record to the socket, since `Reading` does not ask for WRITABLE.
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
//! * **The deadline wins.** The loop reads the clock once per poll and
//!   hands it to every step (so tests make instants up); the deadline is
//!   checked at every poll and every step, and a step reads at most
//!   `READ_BUDGET` before the loop looks at the clock again, since a server
//!   that sends without pause never lets a read say `WouldBlock`. Stdout
//!   is written through a writer that gives up
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
//! Around the loop: [`target`] parses the SERVER argument and builds the
//! request, [`repr`] formats the reply as Python's `repr()`, [`stdout`]
//! writes it without waiting past the deadline, and [`udp`] is the
//! one-datagram exchange of `udp://`.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use crate::shared::addr::{Endpoint, resolve};
use crate::shared::duration::deadline_after;
use crate::shared::net::{self, interrupted, would_block};
use crate::shared::stream::Stream;
use crate::shared::tls::{TlsStream, Wire};
pub use config::{ClientError, Config};
pub use repr::bytes_repr;
pub use stdout::DeadlineStdout;
pub use target::{Target, Transport};

mod config;
mod repr;
mod stdout;
mod target;
mod udp;

/// The client's one socket.
const SOCKET: Token = Token(0);

/// After a step: wait for the next event, step again at once (the state
/// changed and may go further), or step again after a look at the clock
/// (the read budget ran out with more to read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    Wait,
    Continue,
    Again,
}

/// What a turn of reading found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadEnd {
    /// `WouldBlock`: all there was, for now.
    Dry,
    /// The peer's EOF.
    Eof,
    /// The read budget ran out first: there may be more.
    More,
}

/// The most one step reads before the loop looks at the clock again: a
/// server that sends without pause never makes a read return `WouldBlock`,
/// and the deadline must still win. (The loop's clock is read once per
/// poll and handed to each step, so tests can make it up.)
const READ_BUDGET: usize = 1 << 20;

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
    /// Connected over TCP; the TLS handshake is under way.
    Handshaking {
        /// The TLS stream.
        stream: Stream,
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
            State::Handshaking { .. } => "handshaking",
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
    opts: Config,
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
    /// Bytes one step may read ([`READ_BUDGET`]; tests make it small).
    read_budget: usize,
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
pub fn run(opts: Config, out: &mut dyn Write) -> Result<u64, ClientError> {
    if opts.target.transport == Transport::Udp {
        return udp::exchange(&opts, out);
    }
    let mut client = Client::new(opts, out)?;
    client.run()
}

impl<'o> Client<'o> {
    /// A client in state `Resolving`, whose time starts now.
    pub fn new(opts: Config, out: &'o mut dyn Write) -> Result<Self, ClientError> {
        Self::starting_at(opts, out, Instant::now())
    }

    /// A client in state `Resolving`, whose time started at `now`.
    fn starting_at(
        opts: Config,
        out: &'o mut dyn Write,
        now: Instant,
    ) -> Result<Self, ClientError> {
        Ok(Client {
            deadline: deadline_after(now, opts.timeout),
            opts,
            state: State::Resolving,
            poll: Poll::new().map_err(ClientError::Poll)?,
            untried: VecDeque::new(),
            last_failure: None,
            buf: vec![0; 64 * 1024],
            reply: Vec::new(),
            received: 0,
            out,
            read_budget: READ_BUDGET,
        })
    }

    /// The loop: resolve, then poll and step until `Done`.
    pub fn run(&mut self) -> Result<u64, ClientError> {
        let next = self.resolve(Instant::now())?;
        self.set_state(next);
        self.drive()
    }

    /// Polls and steps from `Connecting` until `Done`, then prints. The
    /// clock is read here, once per poll, and handed to every step.
    fn drive(&mut self) -> Result<u64, ClientError> {
        let mut events = Events::with_capacity(8);
        let mut now = Instant::now();
        // The last step stopped at its read budget with more to read: poll
        // without waiting, then step whether or not an event came (with
        // edge-triggered readiness, none will for bytes already there).
        let mut again = false;
        while !matches!(self.state, State::Done) {
            let timeout = self.check_deadlines(now)?;
            let wait = if again { Duration::ZERO } else { timeout };
            let polled = self.poll.poll(&mut events, Some(wait));
            now = Instant::now();
            match polled {
                Ok(()) => {}
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(ClientError::Poll(e)),
            }
            if events.is_empty() && !again {
                continue; // a deadline passed: check_deadlines handles it
            }
            again = self.step_until_waiting(now)? == Then::Again;
        }
        if !self.opts.raw {
            let printed = writeln!(self.out, "{}", bytes_repr(&self.reply));
            printed.map_err(|e| self.output_error(e))?;
        }
        let flushed = self.out.flush();
        flushed.map_err(|e| self.output_error(e))?;
        Ok(self.received)
    }

    /// One event can carry us through several states (connected, then the
    /// whole request written at once): steps until a state has to wait for
    /// the next event, or for a look at the clock.
    fn step_until_waiting(&mut self, now: Instant) -> Result<Then, ClientError> {
        loop {
            let state = std::mem::replace(&mut self.state, State::Done);
            let name = state.name();
            let (next, then) = self.step(state, now)?;
            self.state = next;
            if self.state.name() != name {
                log::debug!("state {name} => {}", self.state);
            }
            if then != Then::Continue {
                return Ok(then);
            }
        }
    }

    // ANCHOR: step
    /// The transitions at `now`: what the socket's readiness means in each
    /// state. Events can be spurious; every arm tolerates nothing being
    /// ready.
    fn step(&mut self, state: State, now: Instant) -> Result<(State, Then), ClientError> {
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
                    let next = match self.opts.tls.clone() {
                        Some(config) => State::Handshaking {
                            stream: self.start_tls(stream, config)?,
                        },
                        None => State::Writing {
                            stream,
                            written: 0,
                            peer_done: false,
                        },
                    };
                    Ok((next, Then::Continue))
                }
                // Still in progress: that was a spurious wake-up.
                Ok(false) => Ok((
                    State::Connecting {
                        stream,
                        addr,
                        since,
                    },
                    Then::Wait,
                )),
                // Refused, unreachable: on to the next address.
                Err(e) => {
                    log::debug!("connect to {addr} failed: {e}");
                    self.last_failure = Some(e);
                    Ok((self.connect_next(now)?, Then::Wait))
                }
            },
            State::Handshaking { mut stream } => {
                let Stream::Tls(tls) = &mut stream else {
                    return Ok((
                        State::Writing {
                            stream,
                            written: 0,
                            peer_done: false,
                        },
                        Then::Continue,
                    ));
                };
                match tls.handshake() {
                    Ok(true) => {
                        log::debug!(
                            "tls handshake done: {:?} {}",
                            tls.session().protocol_version(),
                            tls.session()
                                .negotiated_cipher_suite()
                                .map_or("?".into(), |s| format!("{:?}", s.suite()))
                        );
                        let writing = State::Writing {
                            stream,
                            written: 0,
                            peer_done: false,
                        };
                        Ok((writing, Then::Continue))
                    }
                    Ok(false) => Ok((State::Handshaking { stream }, Then::Wait)),
                    Err(source) => Err(self.handshake_error(source)),
                }
            }
            State::Writing {
                stream,
                written,
                peer_done,
            } => self.write(stream, written, peer_done, now),
            State::Reading { mut stream } => match self.read_available(&mut stream, now)? {
                ReadEnd::Eof => Ok((finish(stream), Then::Wait)),
                ReadEnd::Dry => Ok((State::Reading { stream }, Then::Wait)),
                ReadEnd::More => Ok((State::Reading { stream }, Then::Again)),
            },
            other @ (State::Resolving | State::Done) => Ok((other, Then::Wait)),
        }
    }
    // ANCHOR_END: step

    /// Resolving → Connecting: ask the system resolver, then try the first
    /// address. (A Unix-domain socket has nothing to resolve.)
    fn resolve(&mut self, now: Instant) -> Result<State, ClientError> {
        if let Transport::Unix(endpoint) = &self.opts.target.transport {
            self.untried = VecDeque::from([endpoint.clone()]);
            return self.connect_next(now);
        }
        let Target { host, port, .. } = &self.opts.target;
        let addrs = resolve(host, *port).map_err(ClientError::Resolve)?;
        self.untried = addrs.into_iter().map(Endpoint::Ip).collect();
        log::debug!("resolved {host} to {:?}", self.untried);
        self.connect_next(now)
    }

    /// Starts a non-blocking connect to the next untried address, as
    /// Python's `socket.create_connection` does: the first one that works
    /// wins; if none does, the last failure is the error.
    fn connect_next(&mut self, now: Instant) -> Result<State, ClientError> {
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
                since: now,
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
        now: Instant,
    ) -> Result<(State, Then), ClientError> {
        let total = self.opts.payload.len();
        // The read budget ran out: step again soon, whatever the writing.
        let mut then = Then::Wait;
        if !peer_done {
            match self.read_available(&mut stream, now) {
                Ok(ReadEnd::Dry) => {}
                Ok(ReadEnd::More) => then = Then::Again,
                Ok(ReadEnd::Eof) => {
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
                    let writing = State::Writing {
                        stream,
                        written,
                        peer_done,
                    };
                    return Ok((writing, then));
                }
                Err(e) if interrupted(&e) => {}
                Err(source) => return Err(self.send_error(source, written)),
            }
        }
        if self.opts.half_close {
            // Over TLS a close_notify first: the FIN alone would read as
            // a truncation.
            stream
                .close_notify()
                .map_err(|e| self.send_error(e, written))?;
        }
        // Over TLS, rustls may still hold records the socket had no room
        // for: they must be out before we stop asking for WRITABLE.
        stream.flush().map_err(|e| self.send_error(e, written))?;
        if stream.unsent() {
            let writing = State::Writing {
                stream,
                written,
                peer_done,
            };
            return Ok((writing, then));
        }
        if self.opts.half_close {
            log::debug!("shutdown write side");
            stream
                .shutdown(Shutdown::Write)
                .map_err(|e| self.send_error(e, written))?;
        }
        if peer_done {
            return Ok((finish(stream), Then::Wait));
        }
        self.poll
            .registry()
            .reregister(&mut stream, SOCKET, Interest::READABLE)
            .map_err(ClientError::Poll)?;
        Ok((State::Reading { stream }, then))
    }

    /// Reads until `WouldBlock`, EOF or [`READ_BUDGET`], passing each chunk
    /// to the output, unless the deadline has passed at `now`. The budget
    /// is what lets the deadline win over a server that sends without
    /// pause: the loop looks at the clock between two budgets.
    fn read_available(
        &mut self,
        stream: &mut Stream,
        now: Instant,
    ) -> Result<ReadEnd, ClientError> {
        if now >= self.deadline {
            return Err(self.timed_out());
        }
        let mut budget = self.read_budget;
        loop {
            if budget == 0 {
                log::debug!("read budget spent: the clock, then more");
                return Ok(ReadEnd::More);
            }
            match stream.read(&mut self.buf) {
                Ok(0) => {
                    log::debug!("read EOF after {} bytes", self.received);
                    return Ok(ReadEnd::Eof);
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
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
                Err(e) if would_block(&e) => return Ok(ReadEnd::Dry),
                Err(e) if interrupted(&e) => {}
                // A TLS server that closed without a close_notify. Many
                // HTTPS servers do; Python's ssl reads it as EOF too
                // (suppress_ragged_eofs), so the reply is still printed.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    log::debug!("read EOF without a TLS close_notify (truncated?)");
                    return Ok(ReadEnd::Eof);
                }
                Err(source) => {
                    return Err(ClientError::Recv {
                        target: self.opts.target.to_string(),
                        source,
                    });
                }
            }
        }
    }

    /// Connecting → Handshaking: a TLS session over the connected socket,
    /// naming the server (SNI, and the name its certificate must hold).
    fn start_tls(
        &mut self,
        stream: Stream,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> Result<Stream, ClientError> {
        let target = self.opts.target.to_string();
        let Stream::Tcp(tcp) = stream else {
            return Ok(stream);
        };
        let name = crate::shared::tls::server_name(&self.opts.target.host).map_err(|why| {
            ClientError::Handshake {
                target: target.clone(),
                source: io::Error::new(io::ErrorKind::InvalidInput, why),
            }
        })?;
        let session =
            rustls::client::UnbufferedClientConnection::new(config, name).map_err(|e| {
                ClientError::Handshake {
                    target,
                    source: io::Error::new(io::ErrorKind::InvalidData, e),
                }
            })?;
        let tls = TlsStream::new(session, tcp, 1 << 20, 0);
        Ok(Stream::Tls(Box::new(tls)))
    }

    /// A failed handshake: an untrusted certificate (exit 60), or any
    /// other failure (exit 35).
    fn handshake_error(&self, source: io::Error) -> ClientError {
        let target = self.opts.target.to_string();
        if crate::shared::tls::is_certificate_error(&source) {
            ClientError::Certificate { target, source }
        } else {
            ClientError::Handshake { target, source }
        }
    }

    /// Checks both deadlines and returns how long the next poll may wait.
    /// A connection attempt that ran out of time moves on to the next
    /// address; the whole exchange running out of time is an error.
    fn check_deadlines(&mut self, now: Instant) -> Result<Duration, ClientError> {
        loop {
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
            let next = self.connect_next(now)?;
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
            State::Handshaking { .. } => "in the TLS handshake with",
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

    fn opts(port: u16) -> Config {
        Config {
            target: Target::parse(&format!("127.0.0.1:{port}"), None, None).unwrap(),
            payload: b"ping".to_vec(),
            half_close: true,
            raw: true,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_reply: 1 << 20,
            tls: None,
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
        let first = client.connect_next(Instant::now()).unwrap();
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
        let err = match client.connect_next(Instant::now()) {
            Ok(state) => {
                client.set_state(state);
                client.drive().unwrap_err()
            }
            Err(e) => e,
        };
        assert_eq!(err.exit_code(), 7, "{err}");
        assert!(err.to_string().contains("connection refused"), "{err}");
    }

    /// Connects to `addr` and waits (with a deadline) until the socket is
    /// readable; returns the client in `Reading` and the time it started.
    fn reading_client<'o>(
        addr: std::net::SocketAddr,
        out: &'o mut Vec<u8>,
    ) -> (Client<'o>, Instant) {
        let t0 = Instant::now();
        let mut client = Client::starting_at(opts(addr.port()), out, t0).unwrap();
        client.untried = [Endpoint::Ip(addr)].into();
        let connecting = client.connect_next(t0).unwrap();
        let State::Connecting { mut stream, .. } = connecting else {
            panic!("not connecting");
        };
        client
            .poll
            .registry()
            .reregister(&mut stream, SOCKET, Interest::READABLE)
            .unwrap();
        let mut events = Events::with_capacity(8);
        let waited = Instant::now();
        while events.is_empty() {
            assert!(waited.elapsed() < Duration::from_secs(10), "never readable");
            client
                .poll
                .poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
        }
        client.set_state(State::Reading { stream });
        (client, t0)
    }

    /// The deadline is the step's `now`, not the wall clock: a step at a
    /// made-up instant past it times out with what was there unread, and
    /// one just before it reads.
    #[test]
    fn a_read_step_past_the_deadline_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"pong").unwrap();
        });
        let mut out = Vec::new();
        let (mut client, t0) = reading_client(addr, &mut out);
        server.join().unwrap();
        let late = t0 + client.opts.timeout;
        let err = client.step_until_waiting(late).unwrap_err();
        assert_eq!(err.exit_code(), 28, "{err}");
        assert!(err.to_string().contains("reading from"), "{err}");
        assert_eq!(client.received, 0, "nothing read after the deadline");
        let mut out = Vec::new();
        let (mut client, t0) = reading_client(addr_of_echo(b"pong"), &mut out);
        let just_in_time = t0 + client.opts.timeout - Duration::from_nanos(1);
        client.step_until_waiting(just_in_time).unwrap();
        assert_eq!(client.received, 4);
    }

    /// A listener that accepts one connection, writes `reply` and closes.
    fn addr_of_echo(reply: &'static [u8]) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(reply).unwrap();
        });
        addr
    }

    /// The read budget: a step stops reading once it is spent and asks to
    /// be stepped again after a look at the clock (a server that never
    /// stops sending cannot hold the loop past its deadline); the next step
    /// reads on, to the EOF, and nothing is lost.
    #[test]
    fn a_spent_read_budget_steps_again_and_loses_nothing() {
        let reply: &'static [u8] = &[7u8; 100];
        let mut out = Vec::new();
        let (mut client, t0) = reading_client(addr_of_echo(reply), &mut out);
        client.read_budget = 10;
        assert_eq!(client.step_until_waiting(t0).unwrap(), Then::Again);
        assert_eq!(client.state.name(), "reading");
        assert_eq!(client.received, 100, "one read of what was there");
        let waited = Instant::now();
        while !matches!(client.state, State::Done) {
            assert!(waited.elapsed() < Duration::from_secs(10), "no EOF");
            client.step_until_waiting(t0).unwrap();
        }
        assert_eq!(client.received, 100);
        drop(client);
        assert_eq!(out, reply);
    }

    /// A connect attempt that outlives `--connect-timeout` at a made-up
    /// instant moves on to the next address; with none left, the error is
    /// a timeout while connecting (exit 28).
    #[test]
    fn a_connect_attempt_past_its_timeout_moves_on() {
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let live_addr = live.local_addr().unwrap();
        let mut out = Vec::new();
        let t0 = Instant::now();
        let mut client = Client::starting_at(opts(live_addr.port()), &mut out, t0).unwrap();
        client.untried = [Endpoint::Ip(live_addr), Endpoint::Ip(live_addr)].into();
        let first = client.connect_next(t0).unwrap();
        client.set_state(first);
        let attempt = client.opts.connect_timeout;
        assert!(client.check_deadlines(t0 + attempt / 2).is_ok());
        assert_eq!(client.untried.len(), 1, "still on the first address");
        let second = t0 + attempt + Duration::from_millis(1);
        assert!(client.check_deadlines(second).is_ok());
        assert!(client.untried.is_empty(), "on to the second address");
        let State::Connecting { since, .. } = &client.state else {
            panic!("{}", client.state.name());
        };
        assert_eq!(*since, second, "its attempt starts at the made-up now");
        let err = client
            .check_deadlines(second + attempt + Duration::from_millis(1))
            .unwrap_err();
        assert_eq!(err.exit_code(), 28, "{err}");
        assert!(err.to_string().contains("connecting to"), "{err}");
    }
}
