//! The echo server's reactor: one `mio::Poll`, the listener, every accepted
//! connection, the signal pipe and a waker, all on one thread.
//!
//! One turn of the loop:
//!
//! ```text
//!   poll (sleep until an event or next_deadline(); not at all while work waits)
//!    │
//!    ▼
//!   now = the clock, read once
//!    │
//!    ▼
//!   dispatch each event ── listener: mark ready · signals · waker
//!    │                   └─ connection: write what is owed, read one budget
//!    ▼
//!   on_timers(now) ─ idle timeouts, end of an accept pause, --stats
//!    │
//!    ▼
//!   accept ─ at most ACCEPT_BUDGET, after the batch
//!    │
//!    ▼
//!   serve_ready ─ one more budget for each connection queued before the turn
//!    │
//!    └──▶ back to poll
//! ```
//!
//! Reading order: [`Server::run`] is the loop (it fits on a screen), then
//! [`Server::turn`] (one batch of events), then the handlers below it in the
//! order they run: `dispatch` → `on_connection` / `accept` →
//! `close`, and the timers in `on_timers`. What a single connection does with
//! its bytes is in [`connection`], what the loop counts in [`counters`];
//! accepting and the listening socket in [`listener`], signals and the
//! [`Handle`] in [`control`], the configuration in [`config`]; datagrams
//! in [`udp`], guarded by [`loops`] (no reflection loops) and
//! [`rate_limit`] (`--udp-rate-limit`); Prometheus' scrapes in
//! [`metrics`]; TLS (`--tls`) set up, and its close-time counts kept, in
//! [`tls`]; why a connection closed in [`close`]. [`Group`] runs N of these servers side by side
//! (`--threads`).
//!
//! Three choices shape this file:
//!
//! * **Accepting happens after the batch.** A listener event only marks the
//!   listener ready; the accept loop runs once every event of the batch has
//!   been handled. A connection closed in the middle of a batch frees its
//!   token (slab slot), and if we accepted inline the next connection could
//!   get that token while later events of the same batch still name it: they
//!   would be delivered, stale, to a stranger. With accepts deferred, such an
//!   event finds an empty slot and is ignored.
//! * **Timers come from the poll timeout.** mio has no timers, so the poll
//!   sleeps until the nearest deadline: an idle connection's, the end of an
//!   accept pause, or the next `--stats` line.
//! * **Every connection gets a budget per turn.** A read pass stops after
//!   `--budget` bytes even if the socket still has data, and the connection
//!   goes to the back of a ready queue; after each batch the queue is served
//!   round-robin, one budget each, and while it is not empty the poll does
//!   not sleep. Accepting has a budget too ([`ACCEPT_BUDGET`] per turn). So
//!   one greedy peer, or a flood of new ones, cannot hold the loop: every
//!   other connection, the timers and the listener get a turn in between.
//!   (tokio gives each task an operation budget per tick for the same reason;
//!   nginx's "posted events" are the same queue.)
//! * **Running out of file descriptors pauses accepting.** With edge-triggered
//!   readiness the listener will not wake us again for the peers already
//!   waiting, and accepting in a loop would spin on EMFILE; so we pause, and
//!   a timer tries again.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::shared::addr::Endpoint;
use crate::shared::duration::deadline_after;
use crate::shared::net::{self, interrupted};
pub use crate::shared::readiness::Readiness;
use crate::shared::readiness::{Drain, interest_name};
use crate::shared::stream::Stream;
use close::Close;
use connection::{Connection, Limits, Next, State};
pub use counters::Counters;
use faults::Held;
pub use faults::{End, Faults};
use rate_limit::RateLimit;
use udp::{Datagrams, Pass};

pub use config::{Config, DEFAULT_BUDGET, DEFAULT_OWED_CAP, StartError, UdpMode};
pub use control::Handle;
use control::print_stats;
pub use group::{Group, Totals};
pub use listener::{ACCEPT_BUDGET, ACCEPT_PAUSE};
use listener::{Accepting, Listener, SocketFile, warn_if_backlog_capped};

mod close;
mod config;
mod connection;
mod control;
mod counters;
mod faults;
mod group;
mod listener;
mod loops;
mod metrics;
mod rate_limit;
#[cfg(test)]
mod tests;
pub mod tls;
mod udp;

// The token plan, all in one place: 0–4 are fixed, echo connections
// count up from 5, metrics scrapes from half the token space.

/// The listening socket's token: a [`Readiness`] for it, handed to
/// [`Server::turn`], says that peers wait to be accepted. (The other tokens
/// are the loop's own business.)
pub const LISTENER: Token = Token(0);
/// The token of the signal pipe (SIGINT, SIGTERM, SIGUSR1).
const SIGNALS: Token = Token(1);
/// The token of the waker that [`Handle::shutdown`] uses.
const WAKER: Token = Token(2);
/// The UDP socket's token (`--udp`).
const UDP: Token = Token(3);
/// The metrics listener's token (`--metrics`, see [`metrics`]).
const METRICS: Token = Token(4);
/// Connection tokens start here: slab key `k` is `Token(k + FIRST_CONNECTION)`.
const FIRST_CONNECTION: usize = 5;
/// Metrics scrape tokens start here, far above any echo connection's.
const FIRST_SCRAPE: usize = usize::MAX / 2;

/// The next `--stats` line: when it is due, and the time and counters of
/// the last one (a line shows what changed since).
#[derive(Debug, Clone, Copy)]
struct StatsDue {
    at: Instant,
    last: Instant,
    then: Counters,
}

/// The echo server: a listener and its connections on one poller.
pub struct Server {
    /// The poller every socket is registered with.
    poll: Poll,
    /// The listening socket (`None` with `--udp-only`).
    listener: Option<Listener>,
    /// The UDP echo (`--udp`, `--udp-only`).
    udp: Option<Datagrams>,
    /// Whether the UDP socket may hold datagrams (an event came, or the
    /// last pass used its budget): served after the batch, like accepting.
    udp_ready: bool,
    /// `--metrics`: the endpoint Prometheus scrapes.
    metrics: Option<metrics::Exporter>,
    /// What the listener is doing; see [`Accepting`].
    accepting: Accepting,
    /// Open connections; a connection's slab key is its token (plus offset).
    conns: Slab<Connection<Stream>>,
    /// Connections that used their budget and may still have data, oldest
    /// first: (slab key, connection id). Served after each batch.
    ready: VecDeque<(usize, u64)>,
    /// The one read buffer, shared by every connection: an idle connection
    /// then costs no buffer at all.
    buf: Vec<u8>,
    /// Idle deadlines, soonest first. An entry may be out of date: the
    /// connection may have closed (the id no longer matches) or been
    /// active since (it is pushed again later).
    idle: BinaryHeap<Reverse<IdleCheck>>,
    /// `--delay`, `--jitter`: each open connection's held echoes, by slab key.
    held: HashMap<usize, Held>,
    /// When the next held echo of a connection is due, soonest first (an
    /// entry may be out of date, as in `idle`).
    releases: BinaryHeap<Reverse<Release>>,
    /// `--stats`: when the next line is due, and where the last one left off.
    stats_due: Option<StatsDue>,
    /// Stats lines this turn has to say (`--stats`, SIGUSR1): `turn`
    /// hands them out, and whoever runs the loop prints them.
    said: Vec<String>,
    /// SIGINT/SIGTERM/SIGUSR1, delivered as readiness on [`SIGNALS`].
    signals: Option<signal_hook_mio::v1_0::Signals>,
    /// Set by [`Handle::shutdown`] or a signal; the loop ends when it is.
    stop: Arc<AtomicBool>,
    /// Set by [`Handle::request_counters`]: send the counters to `counters_to`.
    counters_asked: Arc<AtomicBool>,
    /// Where the counters go when asked, with this reactor's number (several reactors).
    counters_to: Option<CountersTo>,
    /// Wakes the poll for [`Handle::shutdown`] and [`Handle::request_counters`].
    waker: Arc<Waker>,
    /// The time the last poll returned: one clock read per batch.
    now: Instant,
    /// When the server was created (SIGUSR1 prints counters since then).
    started: Instant,
    /// The next connection's serial number.
    next_id: u64,
    /// Whether we are inside a burst of accept failures (log once per burst).
    accept_failing: bool,
    /// The loop's counters.
    stats: Counters,
    /// The command-line settings.
    config: Config,
}

/// When to look at a connection's idle time again. Ordered by `at` first
/// (the fields' order), so the heap gives the soonest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct IdleCheck {
    /// When the connection would have been idle for `--idle-timeout`.
    at: Instant,
    /// Its slab key.
    key: usize,
    /// Its serial number (a key is reused; an id is not).
    id: u64,
}

/// When a connection's next held echo may go out (`--delay`). Ordered by
/// `at` first, so the heap gives the soonest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Release {
    at: Instant,
    key: usize,
    id: u64,
}

/// Where a reactor of a [`Group`] sends its counters when asked: this
/// reactor's number, the channel, and the waker of the poll that reads it.
#[derive(Debug)]
struct CountersTo {
    number: usize,
    tx: Sender<(usize, Counters)>,
    waker: Arc<Waker>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("accepting", &self.accepting)
            .field("open", &self.conns.len())
            .field("ready", &self.ready.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Creates the listening socket and the poller, ready to [`run`](Self::run).
    pub fn bind(config: Config) -> Result<Server, StartError> {
        warn_if_backlog_capped(config.backlog);
        let listen_err = |source| StartError::Listen {
            addr: config.bind.clone(),
            source,
        };
        let tcp = match &config.bind {
            Endpoint::Ip(addr) => *addr,
            unix => {
                if config.udp != UdpMode::Off {
                    let why = "UDP needs an IP address, not a Unix-domain socket";
                    return Err(listen_err(io::Error::new(io::ErrorKind::InvalidInput, why)));
                }
                let (listener, file) =
                    net::listen_unix(unix, config.unix_mode, config.backlog).map_err(listen_err)?;
                let listener = Listener::Unix {
                    listener: mio::net::UnixListener::from_std(listener),
                    _file: file.map(SocketFile),
                };
                return Server::on_sockets(config, Some(listener), None, None);
            }
        };
        let listener = match config.udp {
            UdpMode::Only => None,
            _ => Some(net::listen(tcp, config.backlog).map_err(listen_err)?),
        };
        // UDP on TCP's address and port (the real one, for port 0).
        let udp_addr = match &listener {
            Some(l) => l.local_addr().map_err(StartError::Setup)?,
            None => tcp,
        };
        let udp = match config.udp {
            UdpMode::Off => None,
            _ => Some(net::bind_udp(udp_addr, false).map_err(listen_err)?),
        };
        let listener = listener.map(|l| Listener::Tcp(TcpListener::from_std(l)));
        let limit = config.udp_rate_limit.map(|r| Arc::new(RateLimit::new(r)));
        Server::on_sockets(config, listener, udp, limit)
    }

    /// A server around sockets made elsewhere (the reactors of a [`Group`]
    /// each get one of several `SO_REUSEPORT` sockets, and share one
    /// `--udp-rate-limit`).
    fn on_sockets(
        config: Config,
        mut listener: Option<Listener>,
        udp: Option<std::net::UdpSocket>,
        limit: Option<Arc<RateLimit>>,
    ) -> Result<Server, StartError> {
        let poll = Poll::new().map_err(StartError::Setup)?;
        let registry = poll.registry();
        if let Some(listener) = &mut listener {
            listener.register(registry).map_err(StartError::Setup)?;
        }
        let udp = match udp {
            Some(socket) => {
                let mut socket = mio::net::UdpSocket::from_std(socket);
                registry
                    .register(&mut socket, UDP, Interest::READABLE)
                    .map_err(StartError::Setup)?;
                let mut datagrams = Datagrams::new(socket, limit).map_err(StartError::Setup)?;
                datagrams.drop_on_purpose(config.faults.drop, config.faults.seed);
                Some(datagrams)
            }
            None => None,
        };
        let waker = Arc::new(Waker::new(registry, WAKER).map_err(StartError::Setup)?);
        let metrics = match config.metrics {
            Some(addr) => Some(metrics::Exporter::bind(addr, registry).map_err(|source| {
                StartError::Listen {
                    addr: Endpoint::Ip(addr),
                    source,
                }
            })?),
            None => None,
        };
        let signals = if config.handle_signals {
            use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
            let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM, SIGUSR1])
                .map_err(StartError::Setup)?;
            registry
                .register(&mut signals, SIGNALS, Interest::READABLE)
                .map_err(StartError::Setup)?;
            Some(signals)
        } else {
            None
        };
        let now = Instant::now();
        Ok(Server {
            poll,
            listener,
            udp,
            udp_ready: false,
            metrics,
            accepting: Accepting::Idle,
            conns: Slab::new(),
            ready: VecDeque::new(),
            buf: vec![0; config.read_size.max(1)],
            idle: BinaryHeap::new(),
            held: HashMap::new(),
            releases: BinaryHeap::new(),
            stats_due: config.stats_every.map(|every| StatsDue {
                at: deadline_after(now, every),
                last: now,
                then: Counters::default(),
            }),
            said: Vec::new(),
            signals,
            stop: Arc::new(AtomicBool::new(false)),
            counters_asked: Arc::new(AtomicBool::new(false)),
            counters_to: None,
            waker,
            now,
            started: now,
            next_id: 1,
            accept_failing: false,
            stats: Counters {
                udp: config.udp != UdpMode::Off,
                faults: config.faults.any(),
                tls: counters::Handshakes {
                    on: config.tls.is_some(),
                    ..counters::Handshakes::default()
                },
                ..Counters::default()
            },
            config,
        })
    }

    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match (&self.listener, &self.udp) {
            (Some(Listener::Tcp(listener)), _) => listener.local_addr(),
            (None, Some(udp)) => udp.socket.local_addr(),
            _ => Err(io::Error::other("not listening on an IP address")),
        }
    }

    /// Where the metrics are served (`--metrics`), with the real port.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|m| m.local_addr().ok())
    }

    /// What the ready line says: `127.0.0.1:7878` (TCP, and UDP with
    /// `--udp`), `tls://127.0.0.1:7878` (`--tls`), `udp://127.0.0.1:7878`
    /// (`--udp-only`), `unix:/path`.
    pub fn listening_on(&self) -> io::Result<String> {
        match &self.listener {
            Some(Listener::Unix { .. }) => Ok(self.config.bind.to_string()),
            Some(Listener::Tcp(_)) if self.config.tls.is_some() => {
                Ok(format!("tls://{}", self.local_addr()?))
            }
            Some(Listener::Tcp(_)) => Ok(self.local_addr()?.to_string()),
            None => Ok(format!("udp://{}", self.local_addr()?)),
        }
    }

    /// A handle that can stop this server from another thread.
    pub fn handle(&self) -> Handle {
        Handle {
            stop: Arc::clone(&self.stop),
            counters_asked: Arc::clone(&self.counters_asked),
            waker: Arc::clone(&self.waker),
        }
    }

    /// Makes [`Handle::request_counters`] send `(number, counters)` on `tx`,
    /// then wake `waker`'s poll: how the reactors of a [`Group`] send theirs to
    /// the thread that prints and serves metrics, without it blocking.
    pub fn send_counters_to(
        &mut self,
        number: usize,
        tx: Sender<(usize, Counters)>,
        waker: Arc<Waker>,
    ) {
        self.counters_to = Some(CountersTo { number, tx, waker });
    }

    /// The counters so far.
    pub fn stats(&self) -> &Counters {
        &self.stats
    }

    // ANCHOR: run
    /// Runs the loop until a signal or [`Handle::shutdown`], then closes
    /// every connection and returns the final counters.
    pub fn run(&mut self) -> io::Result<Counters> {
        let mut events = Events::with_capacity(1024);
        while !self.stop.load(Ordering::Relaxed) {
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(self.now));
            self.poll(&mut events, timeout)?;
            log::trace!("poll timeout={timeout:?} events={}", events.iter().count());
            // The clock is read here, once per poll, and handed down:
            // everything below works with `now`, so tests can make it up.
            for line in self.turn(Instant::now(), events.iter().map(Readiness::from)) {
                print_stats(&line);
            }
        }
        Ok(self.shut_down())
    }
    // ANCHOR_END: run

    /// Waits for events, at most `timeout`. A signal that interrupts the
    /// wait (EINTR) is not an error: we return with no events and the loop
    /// goes round, recomputing its timeout.
    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        let result = self.poll.poll(events, timeout);
        self.stats.polls += 1;
        match result {
            Err(e) if interrupted(&e) => {
                log::trace!("poll interrupted by a signal; polling again");
                events.clear();
                Ok(())
            }
            other => other,
        }
    }

    // ANCHOR: turn
    /// Handles one batch of events that arrived at `now`, then does what had
    /// to wait for the end of the batch: timers, accepting (one budget), and
    /// the connections that were already on the ready queue when the turn
    /// began (one budget each).
    ///
    /// With [`next_deadline`](Self::next_deadline), this is the loop
    /// without its I/O wait: whoever owns the poll (here [`run`](Self::run);
    /// in the unit tests, a test with batches and instants of its own
    /// making) reads the clock and hands it in. It returns the stats lines
    /// the turn has to say (`--stats`, SIGUSR1) instead of printing them,
    /// so a turn is a pure step of the loop.
    pub fn turn(
        &mut self,
        now: Instant,
        batch: impl IntoIterator<Item = Readiness>,
    ) -> Vec<String> {
        // Time only moves forward, whatever a caller passes.
        self.now = self.now.max(now);
        let waiting = self.ready.len();
        let before = self.stats.events;
        for event in batch {
            self.stats.events += 1;
            self.dispatch(event);
        }
        self.stats.note_poll(self.stats.events - before);
        self.on_timers(self.now);
        self.accept();
        self.serve_udp();
        self.serve_ready(waiting);
        std::mem::take(&mut self.said)
    }
    // ANCHOR_END: turn

    /// One budget of datagrams, if the UDP socket may hold any.
    fn serve_udp(&mut self) {
        let Some(udp) = self.udp.as_mut().filter(|_| self.udp_ready) else {
            return;
        };
        match udp.serve(self.now, self.config.budget, &mut self.stats) {
            Pass::Drained => self.udp_ready = false,
            Pass::Requeue => {
                self.stats.budget_spent += 1;
                log::trace!("requeue udp (budget of {} B used)", self.config.budget);
            }
        }
    }

    /// Gives the first `waiting` connections on the ready queue (those
    /// queued before this turn) one more budget each. Any connection that
    /// uses up a budget in this turn joins the back of the queue and waits
    /// for the next turn: at most one budget per connection per turn, so a
    /// greedy peer cannot keep the turn going.
    fn serve_ready(&mut self, waiting: usize) {
        for _ in 0..waiting {
            let Some((key, id)) = self.ready.pop_front() else {
                break;
            };
            match self.conns.get_mut(key) {
                Some(conn) if conn.id() == id => conn.set_queued(false),
                _ => continue, // closed since; its slot may be someone else's
            }
            log::trace!("serve conn=#{id} from=ready");
            // No event brought us here, so no edge promises a later one:
            // read until WouldBlock (or the budget), not to a short read.
            self.serve(key, false, Some(Drain::WouldBlock));
        }
    }

    // ANCHOR: dispatch
    /// Routes one event to its owner.
    fn dispatch(&mut self, event: Readiness) {
        log::trace!("event {event}");
        match event.token {
            LISTENER => {
                if self.accepting == Accepting::Idle {
                    self.accepting = Accepting::Ready;
                }
            }
            SIGNALS => self.on_signals(),
            UDP => self.udp_ready = true,
            token if metrics::Exporter::owns(token) => {
                if let Some(exporter) = &mut self.metrics {
                    let stats = self.stats;
                    let render = move || Some(metrics::render(&[stats]));
                    exporter.on_event(self.poll.registry(), token, self.now, &render);
                }
            }
            WAKER => {
                // The stop flag is checked by the loop; asked-for counters go now.
                if self.counters_asked.swap(false, Ordering::SeqCst)
                    && let Some(to) = &self.counters_to
                {
                    let _ = to.tx.send((to.number, self.stats));
                    let _ = to.waker.wake();
                }
            }
            Token(t) => self.on_connection(t - FIRST_CONNECTION, event),
        }
    }
    // ANCHOR_END: dispatch

    /// A connection's socket is ready: write what is owed, read and echo.
    fn on_connection(&mut self, key: usize, event: Readiness) {
        let Some(conn) = self.conns.get(key) else {
            // Its connection closed earlier in this batch (or it is a
            // spurious wake-up for a token we never gave out): nothing to do.
            self.stats.stale_events += 1;
            log::trace!("event token={} is stale: ignored", event.token.0);
            return;
        };
        if conn.state() == State::Stalled && (event.read_closed || event.error) {
            // Stalled on purpose, we will never read its EOF: the event
            // is the only word that the peer has gone.
            self.close(key, Close::Done);
            return;
        }
        let drain = if conn.is_queued() {
            // It waits on the ready queue, which reads it (to WouldBlock)
            // later in this turn or the next: reading here too would give
            // it a second budget in one turn.
            None
        } else if event.readable || event.read_closed || event.error {
            Some(Drain::after(&event))
        } else {
            None
        };
        self.serve(key, event.writable, drain);
    }

    /// Does one connection's work for this turn: write what is owed (if
    /// `write`), then one budget of reading (if `read`); then what faults
    /// asked for call for (a delay, an end on purpose), and acting on the
    /// verdict: re-register, requeue or close.
    fn serve(&mut self, key: usize, write: bool, read: Option<Drain>) {
        let limits = self.limits(key);
        let (started, now) = (self.started, self.now);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let heard_before = conn.bytes_in();
        let mut next = Next::Keep;
        if write {
            next = conn.on_writable(&mut self.buf, limits, &mut self.stats);
        }
        if let (Next::Keep, Some(drain)) = (&next, read) {
            next = conn.on_readable(&mut self.buf, limits, drain, &mut self.stats);
        }
        let id = conn.id();
        if let Stream::Tls(tls) = conn.stream_mut()
            && let Some(resumed) = tls.handshake_news()
        {
            let took = stamp(started, now).saturating_sub(tls.started()) / 1_000;
            self.stats.tls.note(resumed, took);
            log::debug!(
                "tls conn=#{id} handshake done: {} {:?} {}, {took} us",
                if resumed { "resumed" } else { "full" },
                tls.session().protocol_version(),
                tls.session()
                    .negotiated_cipher_suite()
                    .map_or("?".into(), |s| format!("{:?}", s.suite())),
            );
        }
        if conn.bytes_in() != heard_before {
            // The idle timeout counts from here (only computed when heard).
            conn.touch(stamp(started, now));
            self.hold(key);
        }
        if matches!(next, Next::Keep | Next::Requeue) {
            match self.end_on_purpose(key) {
                Some(Some(after)) => next = after,
                Some(None) => {}
                None => return, // reset on purpose: gone
            }
        }
        self.settle(key, next);
    }

    /// Acts on a pass's verdict: requeue, re-register if what the
    /// connection needs changed, or close.
    fn settle(&mut self, key: usize, next: Next) {
        let limits = self.limits(key);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if matches!(next, Next::Requeue) && !conn.is_queued() {
            log::trace!(
                "requeue conn=#{} (budget of {} B used)",
                conn.id(),
                limits.budget
            );
            conn.set_queued(true);
            self.ready.push_back((key, conn.id()));
        }
        match next {
            Next::Keep | Next::Requeue => match conn.interest(limits) {
                Some(after) if Some(after) != conn.registered() => {
                    log::trace!(
                        "interest conn=#{} {} => {}",
                        conn.id(),
                        interest_name(conn.registered()),
                        interest_name(Some(after))
                    );
                    let token = Token(key + FIRST_CONNECTION);
                    match self
                        .poll
                        .registry()
                        .reregister(conn.stream_mut(), token, after)
                    {
                        Ok(()) => conn.set_registered(after),
                        Err(e) => self.close(key, Close::Failed(e)),
                    }
                }
                Some(_) => {}
                None if conn.finished() => self.close(key, Close::Done),
                // It waits for a timer (held echoes) or for nothing
                // (stalled): the registration stays as it is, and any
                // event it brings finds nothing to do.
                None => {}
            },
            Next::Done => self.close(key, Close::Done),
            Next::Failed(e) => self.close(key, Close::Failed(e)),
        }
    }

    /// The bounds of one pass over connection `key`: the owed cap and the
    /// budget, and with faults on, how far it may read and echo yet.
    fn limits(&self, key: usize) -> Limits {
        let mut limits = Limits::new(self.config.owed_cap, self.config.budget);
        limits.read_until = self.config.faults.read_until();
        // Without --delay/--jitter the map is empty: skip hashing the key
        // on every pass (SipHash costs more than the rest of this).
        if !self.held.is_empty()
            && let Some(held) = self.held.get(&key)
        {
            limits.write_until = held.released();
            if held.full()
                && let Some(conn) = self.conns.get(key)
            {
                // As many passes held as may be: read on once one leaves.
                limits.read_until = limits.read_until.min(conn.bytes_in());
            }
        }
        limits
    }

    /// `--delay`, `--jitter`: holds what connection `key` read in this
    /// pass, and arms a timer if it is the first in line.
    fn hold(&mut self, key: usize) {
        let (Some(conn), Some(held)) = (self.conns.get(key), self.held.get_mut(&key)) else {
            return;
        };
        self.stats.injected_delays += 1;
        let at = stamp(self.started, self.now);
        if let Some(due) = held.hold(&self.config.faults, at, conn.bytes_in()) {
            log::trace!("hold conn=#{} until +{due}ns", held.id);
            self.releases.push(Reverse(Release {
                at: deadline_after(self.started, Duration::from_nanos(due)),
                key,
                id: held.id,
            }));
        }
    }

    /// `--close-after`, `--reset-after`, `--stall-after`: once connection
    /// `key` has echoed its bytes, ends it as asked. `Some(None)`: nothing
    /// to do; `Some(Some(next))`: a new verdict; `None`: it was reset and
    /// is gone.
    fn end_on_purpose(&mut self, key: usize) -> Option<Option<Next>> {
        let Some((after, end)) = self.config.faults.end else {
            return Some(None);
        };
        let Some(conn) = self.conns.get_mut(key) else {
            return Some(None);
        };
        if conn.state() != State::Open || conn.bytes_out() < after {
            return Some(None);
        }
        log::debug!("{end} conn=#{} on purpose after {after} B", conn.id());
        match end {
            End::Close => {
                self.stats.injected_closes += 1;
                conn.begin_closing();
                if let Err(e) = conn.stream_mut().shutdown(Shutdown::Write) {
                    return Some(Some(Next::Failed(e)));
                }
                // Whatever the peer sent past the limit waits in the
                // kernel, its edge long spent: read it away now.
                let limits = Limits::new(self.config.owed_cap, self.config.budget);
                let drain = Drain::WouldBlock;
                Some(Some(conn.on_readable(
                    &mut self.buf,
                    limits,
                    drain,
                    &mut self.stats,
                )))
            }
            End::Reset => {
                self.stats.injected_resets += 1;
                if let Err(e) = conn.stream_mut().linger_zero() {
                    log::debug!("conn=#{}: SO_LINGER 0 failed: {e}", conn.id());
                }
                self.close(key, Close::Injected(End::Reset));
                None
            }
            End::Stall => {
                self.stats.injected_stalls += 1;
                conn.stall();
                Some(Some(Next::Keep))
            }
        }
    }

    /// Closes one connection. Dropping the socket closes the descriptor,
    /// which also removes it from the epoll set: no deregister call needed.
    fn close(&mut self, key: usize, why: Close) {
        let mut conn = self.conns.remove(key);
        if !self.held.is_empty() {
            self.held.remove(&key);
        }
        self.stats.note_closed(conn.owed());
        match &why {
            Close::Done | Close::Injected(_) => {}
            Close::Failed(_) => self.stats.failed += 1,
            Close::Timeout => self.stats.idle_closed += 1,
        }
        let id = conn.id();
        if let Stream::Tls(tls) = conn.stream_mut() {
            tls::on_close(tls, id, &why, &mut self.stats.tls);
        }
        if log::log_enabled!(log::Level::Debug) {
            let peer = conn.stream_mut().peer_name();
            log::debug!(
                "close conn=#{} peer={peer} token={} in={} out={} ({why})",
                conn.id(),
                key + FIRST_CONNECTION,
                conn.bytes_in(),
                conn.bytes_out()
            );
        }
        if self.accepting == Accepting::Full {
            // A slot is free. Peers may be waiting in the backlog, and they
            // raised their edge long ago: try accepting after this batch.
            self.accepting = Accepting::Ready;
        }
    }

    /// The soonest deadline: now if work is waiting (the ready queue, or a
    /// listener with peers left over from its budget), else an idle
    /// connection, the end of an accept pause, or the next stats line.
    /// `None`: sleep until an event.
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.ready.is_empty() || self.accepting == Accepting::Ready || self.udp_ready {
            return Some(self.now);
        }
        let idle = self.idle.peek().map(|Reverse(check)| check.at);
        let release = self.releases.peek().map(|Reverse(r)| r.at);
        let pause = match self.accepting {
            Accepting::Paused(until) => Some(until),
            _ => None,
        };
        let stats = self.stats_due.map(|due| due.at);
        let scrape = self
            .metrics
            .as_ref()
            .and_then(metrics::Exporter::next_deadline);
        [idle, release, pause, stats, scrape]
            .into_iter()
            .flatten()
            .min()
    }

    // ANCHOR: on_timers
    /// Fires every timer that is due.
    fn on_timers(&mut self, now: Instant) {
        if let Some(exporter) = &mut self.metrics {
            exporter.on_timers(now);
        }
        if let Accepting::Paused(until) = self.accepting
            && until <= now
        {
            log::trace!("accept resumed");
            self.accepting = Accepting::Ready;
        }
        if let Some(timeout) = self.config.idle_timeout {
            while let Some(&Reverse(IdleCheck { at, key, id })) = self.idle.peek() {
                if at > now {
                    break;
                }
                self.idle.pop();
                let Some(conn) = self.conns.get(key).filter(|c| c.id() == id) else {
                    continue; // closed already; its slot may be someone else's
                };
                let last = deadline_after(self.started, Duration::from_nanos(conn.last_active()));
                let due = deadline_after(last, timeout);
                if due <= now {
                    self.close(key, Close::Timeout);
                } else {
                    self.idle.push(Reverse(IdleCheck { at: due, key, id }));
                }
            }
        }
        self.release_held(now);
        if let Some(due) = self.stats_due
            && due.at <= now
        {
            let line = self.stats.interval_line(&due.then, now - due.last);
            self.said.push(line);
            let every = self.config.stats_every.unwrap_or(Duration::from_secs(1));
            self.stats_due = Some(StatsDue {
                at: deadline_after(due.at, every),
                last: now,
                then: self.stats,
            });
        }
    }
    // ANCHOR_END: on_timers

    /// `--delay`: writes the held echoes that are due by `now`.
    fn release_held(&mut self, now: Instant) {
        while let Some(&Reverse(Release { at, key, id })) = self.releases.peek() {
            if at > now {
                break;
            }
            self.releases.pop();
            let Some(held) = self.held.get_mut(&key).filter(|h| h.id == id) else {
                continue; // closed already; its slot may be someone else's
            };
            let was_full = held.full();
            if let Some(due) = held.release(stamp(self.started, now)) {
                self.releases.push(Reverse(Release {
                    at: deadline_after(self.started, Duration::from_nanos(due)),
                    key,
                    id,
                }));
            }
            log::trace!("release conn=#{id} up to {}", held.released());
            // A full queue had paused reading, and the data waiting in the
            // kernel raised its edge long ago: read on now.
            let read = was_full.then_some(Drain::WouldBlock);
            self.serve(key, true, read);
        }
    }

    /// Closes every connection and returns the final counters.
    fn shut_down(&mut self) -> Counters {
        for mut conn in self.conns.drain() {
            self.stats.note_closed(conn.owed());
            // A TLS peer is told we are going (our close_notify), so it
            // sees a clean end, not a truncation. Best effort: the socket
            // closes next either way; a bare socket has nothing to say.
            let _ = conn.stream_mut().close_notify();
        }
        self.stats
    }
}

/// `t` as a connection stores it: nanoseconds since the server `started`.
fn stamp(started: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(started).as_nanos() as u64
}
