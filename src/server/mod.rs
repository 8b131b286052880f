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
//! order they run: `dispatch` → `on_connection` → `serve` → `settle` →
//! `close`, the timers in `on_timers` and `next_deadline`. This file is
//! the loop alone; everything else is a part that owns its state and
//! answers the same few verbs (`on_event`, `on_timers(now)`,
//! `next_deadline()`):
//!
//! | part | file | what it owns |
//! |---|---|---|
//! | the token plan | [`tokens`] | which token names what |
//! | `Acceptor` | [`listener`] | the listening socket, accepting, its pause |
//! | `Connection` | [`connection`] | one peer's bytes and its echo's states |
//! | `Deadlines` | [`deadlines`] | one keyed timer heap (idle timeouts, held echoes) |
//! | `Injector` | [`faults`] | misbehaving on purpose: held echoes, ends |
//! | `Control` | [`control`] | signals, the stop flag, the [`Handle`]'s waker |
//! | `StatsLines` | [`stats`] | `--stats` and SIGUSR1 lines |
//! | `Datagrams` | [`udp`] | the UDP echo, with [`loops`] and [`rate_limit`] |
//! | `Exporter` | [`metrics`] | Prometheus' scrapes |
//! | TLS | [`tls_server`] | set up once; handshake news and close-time counts |
//! | `Arrivals` | [`proxy_header`] | connections waiting for their PROXY header |
//!
//! What the loop counts is in [`counters`], why a connection closed in
//! [`close`], the settings in [`config`]. [`Group`] runs N of these
//! servers side by side (`--threads`).
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

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::shared::addr::Endpoint;
use crate::shared::duration::deadline_after;
use crate::shared::net::interrupted;
pub use crate::shared::readiness::Readiness;
use crate::shared::readiness::{Drain, interest_name};
use crate::shared::stream::Stream;
use close::Close;
use connection::{Connection, Limits, Next};
use control::{Control, print_stats};
pub use counters::Counters;
use deadlines::Deadlines;
pub use faults::{End, Faults};
use faults::{Ending, Injector};
use listener::{Acceptor, Listener, Peer};
use proxy_header::{Arrival, Arrivals, Arrived};
use rate_limit::RateLimit;
use stats::StatsLines;
pub use tokens::LISTENER;
use tokens::{SIGNALS, UDP, WAKER};
use udp::Datagrams;

pub use config::{Config, DEFAULT_BUDGET, DEFAULT_OWED_CAP, StartError, UdpMode};
pub use control::Handle;
pub use group::{Group, Totals};
pub use listener::{ACCEPT_BUDGET, ACCEPT_PAUSE};

mod close;
mod config;
mod connection;
mod control;
mod counters;
mod deadlines;
mod faults;
mod group;
mod listener;
mod loops;
mod metrics;
pub mod proxy_header;
mod rate_limit;
mod stats;
#[cfg(test)]
mod tests;
pub mod tls_server;
mod tokens;
mod udp;

/// The echo server: a listener and its connections on one poller, and
/// the parts that serve them.
pub struct Server {
    /// The poller every socket is registered with.
    poll: Poll,
    /// The listening socket and accepting.
    acceptor: Acceptor,
    /// Open connections; a connection's slab key is its token (plus offset).
    conns: Slab<Connection<Stream>>,
    /// Connections that used their budget and may still have data, oldest
    /// first: (slab key, connection id). Served after each batch.
    ready: VecDeque<(usize, u64)>,
    /// The one read buffer, shared by every connection: an idle connection
    /// then costs no buffer at all.
    buf: Vec<u8>,
    /// `--idle-timeout`: when to look at each connection's idle time again.
    idle: Deadlines,
    /// `--delay`, `--close-after` and the other faults on purpose.
    injector: Injector,
    /// The UDP echo (`--udp`, `--udp-only`).
    udp: Option<Datagrams>,
    /// `--metrics`: the endpoint Prometheus scrapes.
    metrics: Option<metrics::Exporter>,
    /// `--proxy-protocol`: connections waiting for their PROXY header.
    arrivals: Option<Arrivals>,
    /// Signals, the stop flag, the [`Handle`].
    control: Control,
    /// `--stats` and SIGUSR1.
    lines: StatsLines,
    /// Stats lines this turn has to say: `turn` hands them out, and
    /// whoever runs the loop prints them.
    said: Vec<String>,
    /// The latest `now` a turn was given (time only moves forward).
    clock: Instant,
    /// When the server was created: connections stamp their times from here.
    started: Instant,
    /// The next connection's serial number.
    next_id: u64,
    /// The loop's counters.
    stats: Counters,
    /// The command-line settings.
    config: Config,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("acceptor", &self.acceptor)
            .field("open", &self.conns.len())
            .field("ready", &self.ready.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Creates the listening socket and the poller, ready to [`run`](Self::run).
    pub fn bind(config: Config) -> Result<Server, StartError> {
        let (listener, udp) = listener::open(&config)?;
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
        let udp = udp
            .map(|socket| Datagrams::register(socket, registry, limit, &config.faults))
            .transpose()
            .map_err(StartError::Setup)?;
        let metrics = config
            .metrics
            .map(|addr| {
                metrics::Exporter::bind(addr, registry, tokens::exporter()).map_err(|e| (addr, e))
            })
            .transpose()
            .map_err(|(addr, source)| StartError::Listen {
                addr: Endpoint::Ip(addr),
                source,
            })?;
        let control = Control::new(registry, config.handle_signals).map_err(StartError::Setup)?;
        let now = Instant::now();
        let mut stats = Counters::new(
            config.udp != UdpMode::Off,
            config.faults.any(),
            config.tls.is_some(),
        );
        stats.proxy.on = config.proxy_protocol;
        Ok(Server {
            poll,
            acceptor: Acceptor::new(listener, config.max_connections),
            conns: Slab::new(),
            ready: VecDeque::new(),
            buf: vec![0; tls_server::read_buffer(&config)],
            idle: Deadlines::default(),
            injector: Injector::new(config.faults, now),
            udp,
            metrics,
            arrivals: config
                .proxy_protocol
                .then(|| Arrivals::new(config.idle_timeout)),
            control,
            lines: StatsLines::new(config.stats_every, now),
            said: Vec::new(),
            clock: now,
            started: now,
            next_id: 1,
            stats,
            config,
        })
    }

    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match (self.acceptor.listener(), &self.udp) {
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
        match self.acceptor.listener() {
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
        self.control.handle()
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
        self.control.send_counters_to(number, tx, waker);
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
        while !self.control.stopped() {
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
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
    /// to wait for the end of the batch: timers, accepting (one budget),
    /// datagrams (one budget), and the connections that were already on
    /// the ready queue when the turn began (one budget each).
    ///
    /// With [`next_deadline`](Self::next_deadline), this is the loop
    /// without its I/O wait: whoever owns the poll (here [`run`](Self::run);
    /// in the unit tests, a test with batches and instants of its own
    /// making) reads the clock and hands it in. It returns the stats lines
    /// the turn has to say instead of printing them, so a turn is a pure
    /// step of the loop.
    pub fn turn(
        &mut self,
        now: Instant,
        batch: impl IntoIterator<Item = Readiness>,
    ) -> Vec<String> {
        // Time only moves forward, whatever a caller passes.
        let now = self.clock.max(now);
        self.clock = now;
        let waiting = self.ready.len();
        let before = self.stats.events;
        for event in batch {
            self.stats.events += 1;
            self.dispatch(event, now);
        }
        self.stats.note_poll(self.stats.events - before);
        self.on_timers(now);
        self.accept(now);
        if let Some(udp) = &mut self.udp {
            udp.on_turn(now, self.config.budget, &mut self.stats);
        }
        self.serve_ready(waiting, now);
        std::mem::take(&mut self.said)
    }
    // ANCHOR_END: turn

    // ANCHOR: dispatch
    /// Routes one event to the part that owns its token.
    fn dispatch(&mut self, event: Readiness, now: Instant) {
        log::trace!("event {event}");
        match event.token {
            LISTENER => self.acceptor.on_event(),
            UDP => self.udp.iter_mut().for_each(Datagrams::on_event),
            SIGNALS | WAKER => {
                if self.control.on_event(event.token, &self.stats) {
                    self.said.push(self.lines.since_start(now, &self.stats));
                }
            }
            token if tokens::is_metrics(token) => self.on_scrape(token, now),
            token if tokens::arrival_key(token).is_some() => self.on_arrival(&event, now),
            token => match tokens::connection_key(token) {
                Some(key) => self.on_connection(key, event, now),
                None => self.stats.stale_events += 1,
            },
        }
    }
    // ANCHOR_END: dispatch

    /// A metrics event: the exporter answers with this reactor's counters.
    fn on_scrape(&mut self, token: Token, now: Instant) {
        if let Some(exporter) = &mut self.metrics {
            let stats = self.stats;
            let render = move || Some(metrics::render(&[stats]));
            exporter.on_event(self.poll.registry(), token, now, &render);
        }
    }

    /// Accepts what this turn's budget allows, after the batch. With
    /// `--proxy-protocol` a peer first waits for its header (and counts
    /// as open meanwhile); without, it is admitted at once.
    fn accept(&mut self, now: Instant) {
        let mut budget = ACCEPT_BUDGET;
        loop {
            let open = self.conns.len() + self.arrivals.as_ref().map_or(0, Arrivals::waiting);
            let Some((stream, peer)) = self.acceptor.next(now, open, &mut budget, &mut self.stats)
            else {
                break;
            };
            match &mut self.arrivals {
                Some(arrivals) => arrivals.on_accept(self.poll.registry(), stream, peer, now),
                None => self.admit(stream, peer, None, now),
            }
        }
    }

    /// An event for a connection waiting for its PROXY header: admit it
    /// once its header is whole (under the client's name, on the token
    /// it had).
    fn on_arrival(&mut self, event: &Readiness, now: Instant) {
        let Some(arrivals) = &mut self.arrivals else {
            return;
        };
        match arrivals.on_event(event, &mut self.stats.proxy) {
            Arrival::Whole(Arrived {
                stream,
                token,
                client,
                via,
            }) => {
                log::trace!("proxy header done client={client} via={via}");
                self.admit(stream, client, Some(token), now);
            }
            Arrival::Refused => self.acceptor.on_close(),
            Arrival::Waiting => {}
        }
    }

    /// Gives a freshly accepted peer its slot, its token and its timers.
    /// `moved` is the token it is registered with already (it waited for
    /// a PROXY header there), and `peer` is then the client the header
    /// named.
    fn admit(&mut self, stream: Stream, peer: Peer, moved: Option<Token>, now: Instant) {
        // An echo is a small reply that must leave now: Nagle's algorithm
        // would hold it back waiting for the peer's ACK.
        if let Err(e) = stream.set_nodelay() {
            log::debug!("accept peer={peer}: TCP_NODELAY failed: {e}");
        }
        let accepted = stamp(self.started, now);
        let tls = self.config.tls.as_ref();
        let Some(mut stream) = tls_server::wrap(stream, tls, self.config.owed_cap, accepted) else {
            return;
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let token = tokens::connection(key);
        let registry = self.poll.registry();
        // Moving a socket re-checks its readiness (epoll_ctl MOD, as ADD
        // does): bytes that came after a PROXY header raise an event.
        let registered = match moved {
            None => registry.register(&mut stream, token, Interest::READABLE),
            Some(_) => registry.reregister(&mut stream, token, Interest::READABLE),
        };
        if let Err(e) = registered {
            log::warn!("accept peer={peer}: cannot register with the poller: {e}");
            return;
        }
        if let (Some(arrivals), Some(_)) = (&mut self.arrivals, moved) {
            arrivals.admitted(key, peer);
        }
        let id = self.next_id;
        self.next_id += 1;
        entry.insert(Connection::new(stream, id, accepted));
        self.injector.on_accept(key, id);
        self.stats.accepted += 1;
        self.stats.peak_open = self.stats.peak_open.max(self.stats.open());
        if let Some(timeout) = self.config.idle_timeout {
            self.idle.push(deadline_after(now, timeout), key, id);
        }
        log::debug!("accept conn=#{id} peer={peer} token={}", token.0);
    }

    /// Gives the first `waiting` connections on the ready queue (those
    /// queued before this turn) one more budget each. Any connection that
    /// uses up a budget in this turn joins the back of the queue and waits
    /// for the next turn: at most one budget per connection per turn, so a
    /// greedy peer cannot keep the turn going.
    fn serve_ready(&mut self, waiting: usize, now: Instant) {
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
            self.serve(key, now, false, Some(Drain::WouldBlock));
        }
    }

    /// A connection's socket is ready: write what is owed, read and echo.
    fn on_connection(&mut self, key: usize, event: Readiness, now: Instant) {
        let Some(conn) = self.conns.get(key) else {
            // Its connection closed earlier in this batch (or it is a
            // spurious wake-up for a token we never gave out): nothing to do.
            self.stats.stale_events += 1;
            log::trace!("event token={} is stale: ignored", event.token.0);
            return;
        };
        if self.injector.stalled_peer_left(key, conn.id(), &event) {
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
        self.serve(key, now, event.writable, drain);
    }

    /// The bounds of a well-behaved pass: the owed cap and the budget.
    fn limits(&self) -> Limits {
        Limits::new(self.config.owed_cap, self.config.budget)
    }

    /// Does one connection's work for this turn: write what is owed (if
    /// `write`), then one budget of reading (if `read`); then tells the
    /// parts what happened (TLS's handshake news, the idle clock, the
    /// faults), and acts on the verdict: re-register, requeue or close.
    fn serve(&mut self, key: usize, now: Instant, write: bool, read: Option<Drain>) {
        let base = self.limits();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let limits = self.injector.limits(key, conn.bytes_in(), base);
        let heard_before = conn.bytes_in();
        let mut next = Next::Keep;
        // A read asks for what the stream wants (TLS: a record's plaintext).
        let size = conn.read_size(self.config.read_size).min(self.buf.len());
        let buf = &mut self.buf[..size];
        if write {
            next = conn.on_writable(buf, limits, &mut self.stats);
        }
        if let (Next::Keep, Some(drain)) = (&next, read) {
            next = conn.on_readable(buf, limits, drain, &mut self.stats);
        }
        let stamp_now = stamp(self.started, now);
        let id = conn.id();
        tls_server::on_progress(conn.stream_mut(), id, stamp_now, &mut self.stats.tls);
        if conn.bytes_in() != heard_before {
            // The idle timeout counts from here (only computed when heard).
            conn.touch(stamp_now);
            self.injector
                .on_read(key, conn.bytes_in(), now, &mut self.stats);
        }
        if matches!(next, Next::Keep | Next::Requeue) {
            match self.injector.end(key, conn, &mut self.stats) {
                Ending::Untouched => {}
                Ending::Verdict(after) => next = after,
                Ending::ReadOn => return self.serve(key, now, false, Some(Drain::WouldBlock)),
                Ending::Reset => return self.close(key, Close::Injected(End::Reset)),
            }
        }
        self.settle(key, next, limits);
    }

    /// Acts on a pass's verdict: requeue, re-register if what the
    /// connection needs changed, or close.
    fn settle(&mut self, key: usize, next: Next, limits: Limits) {
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
                    let token = tokens::connection(key);
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
                // Its limits let it neither read nor write yet (a timer
                // will, or nothing will): the registration stays as it
                // is, and any event it brings finds nothing to do.
                None => {}
            },
            Next::Done => self.close(key, Close::Done),
            Next::Failed(e) => self.close(key, Close::Failed(e)),
        }
    }

    /// Closes one connection. Dropping the socket closes the descriptor,
    /// which also removes it from the epoll set: no deregister call needed.
    fn close(&mut self, key: usize, why: Close) {
        let mut conn = self.conns.remove(key);
        self.injector.on_close(key);
        self.stats.note_closed(conn.owed());
        match &why {
            Close::Done | Close::Injected(_) => {}
            Close::Failed(_) => self.stats.failed += 1,
            Close::Timeout => self.stats.idle_closed += 1,
        }
        let id = conn.id();
        tls_server::on_close(conn.stream_mut(), id, &why, &mut self.stats.tls);
        let client = self.arrivals.as_mut().and_then(|a| a.closed(key));
        if log::log_enabled!(log::Level::Debug) {
            let peer = client.map_or_else(|| conn.stream_mut().peer_name(), |c| c.to_string());
            log::debug!(
                "close conn=#{} peer={peer} token={} in={} out={} ({why})",
                conn.id(),
                tokens::connection(key).0,
                conn.bytes_in(),
                conn.bytes_out()
            );
        }
        self.acceptor.on_close();
    }

    /// The soonest deadline: now if work is waiting (the ready queue, a
    /// listener with peers left over from its budget, datagrams), else
    /// the soonest any part asks for. `None`: sleep until an event.
    pub fn next_deadline(&self) -> Option<Instant> {
        let udp_ready = self.udp.as_ref().is_some_and(Datagrams::ready);
        if !self.ready.is_empty() || self.acceptor.ready() || udp_ready {
            return Some(self.clock);
        }
        [
            self.idle.next_deadline(),
            self.injector.next_deadline(),
            self.acceptor.next_deadline(),
            self.arrivals.as_ref().and_then(Arrivals::next_deadline),
            self.lines.next_deadline(),
            self.metrics
                .as_ref()
                .and_then(metrics::Exporter::next_deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ANCHOR: on_timers
    /// Fires every timer that is due by `now`, part by part.
    fn on_timers(&mut self, now: Instant) {
        self.acceptor.on_timers(now);
        if let Some(arrivals) = &mut self.arrivals
            && arrivals.on_timers(now, &mut self.stats.proxy)
        {
            self.acceptor.on_close();
        }
        while let Some((key, id)) = self.idle.pop_due(now) {
            self.on_idle_check(key, id, now);
        }
        while let Some((key, read)) = self.injector.on_timers(now) {
            self.serve(key, now, true, read);
        }
        if let Some(line) = self.lines.on_timers(now, &self.stats) {
            self.said.push(line);
        }
        if let Some(exporter) = &mut self.metrics {
            exporter.on_timers(now);
        }
    }
    // ANCHOR_END: on_timers

    /// `--idle-timeout`: closes connection `key` if it has been silent for
    /// the whole timeout by `now`, or looks again when it would have been.
    fn on_idle_check(&mut self, key: usize, id: u64, now: Instant) {
        let (Some(timeout), Some(conn)) = (
            self.config.idle_timeout,
            self.conns.get(key).filter(|c| c.id() == id),
        ) else {
            return; // closed already; its slot may be someone else's
        };
        let last = deadline_after(self.started, Duration::from_nanos(conn.last_active()));
        let due = deadline_after(last, timeout);
        if due <= now {
            self.close(key, Close::Timeout);
        } else {
            self.idle.push(due, key, id);
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
