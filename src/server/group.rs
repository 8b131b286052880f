//! `echoloop server --threads N`: N share-nothing reactors side by side,
//! the way nginx workers, seastar shards and h2o loops scale past a core.
//!
//! Each reactor is exactly the one-thread [`Server`] of the rest of this
//! module: its own `Poll`, slab, read buffer, timers and counters, on its
//! own thread. Nothing is shared on the hot path. The main thread only
//! handles signals and `--stats`: it wakes each reactor through its waker
//! to shut down, or to send a copy of its counters over a channel.
//!
//! **How connections are spread: one `SO_REUSEPORT` listener per reactor.**
//! The kernel hashes each new connection's address pair to one of the
//! listeners, so the spread is even and costs nothing. The alternative, one
//! listening socket in every reactor's poll (h2o), wakes every idle reactor
//! for each new peer (all but one find `WouldBlock`), and under a burst the
//! first reactor awake takes a whole accept budget at once. A reactor that
//! stops (at `--max-connections`, or out of fds) keeps its share waiting in
//! its own backlog; that is the price of the hash, and the same wait a
//! single reactor imposes.
//!
//! **The guard.** `SO_REUSEPORT` lets any socket of the same user join
//! the group: a second `echoloop server --threads N` on the same port would
//! bind without error and silently take a share of the connections (or, on
//! a more specific address such as `127.0.0.1:P` beside `0.0.0.0:P`, all of
//! the ones it matches). So a group first takes a lock per protocol and
//! port ([`lock`]): an abstract Unix socket `@echoloop-server/tcp/P` (and
//! `…/udp/P`), which only one process can bind, and which the kernel frees
//! when the process ends, however it ends. A second group on that port,
//! whatever its address, fails with "address in use", like a plain
//! listener. (A one-reactor server does not set `SO_REUSEPORT` at all, so
//! it and a group exclude each other by the ordinary bind rules.) With port
//! 0 the lock is taken right after the first bind, on the port it got.
//!
//! What it does not guard: the kernel lets *any* process of the same user
//! that sets `SO_REUSEPORT` itself join the group; only echoloop servers
//! look at the lock. Run a server that must not be joined under a user of
//! its own.
//!
//! **`--max-connections M`** stays the whole server's limit: it is split,
//! each reactor taking `M / N` and the first `M mod N` one more. It must be
//! at least N, or a reactor would accept nothing.

use std::io;
use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Waker};

use super::control::{Signals, print_stats};
use super::listener::{Listener, warn_if_backlog_capped};
use super::tokens::{self, SIGNALS, WAKER};
use super::{Config, Counters, Handle, Server, StartError, UdpMode, metrics};
use crate::shared::addr::Endpoint;
use crate::shared::duration::deadline_after;
use crate::shared::net::{self, interrupted};

// The main thread's poll uses a reactor's token plan (`tokens`): signals,
// the one waker (mio allows one per poll) that a reactor uses when it has
// sent its counters or when its thread ends, and `--metrics`' tokens.

/// How long the main thread waits for the reactors' counters; one that has
/// not answered by then counts as zero.
const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// A round of asking every reactor for its counters. The answers come in
/// through the loop like any event (each reactor sends, then wakes this
/// poll), so the main thread never blocks on them: signals, scrapes and
/// the stats clock go on while a reactor is slow to answer.
#[derive(Debug)]
struct Collection {
    /// When it was asked for: the stats line's interval ends here.
    asked: Instant,
    /// Each reactor's answer, once in.
    per: Vec<Option<Counters>>,
    /// The answers in by then, or zero for the missing.
    deadline: Instant,
    /// What waits for it: the `--stats` line, SIGUSR1's line, scrapes.
    stats: bool,
    usr1: bool,
    scrape: bool,
}

/// One reactor's sockets: its TCP listener and its UDP socket, each when
/// served.
type Sockets = (Option<std::net::TcpListener>, Option<std::net::UdpSocket>);

/// One reactor, seen from the main thread.
#[derive(Debug)]
struct ReactorThread {
    handle: Handle,
    thread: Option<JoinHandle<io::Result<Counters>>>,
}

/// What a group of reactors did: the sum, and each reactor's own counters.
#[derive(Debug, Clone)]
pub struct Totals {
    /// All reactors together (see [`Counters::add`]).
    pub total: Counters,
    /// Each reactor's counters, in reactor order.
    pub per_reactor: Vec<Counters>,
}

impl Totals {
    fn of(per_reactor: Vec<Counters>) -> Totals {
        let mut total = Counters::default();
        for c in &per_reactor {
            total.add(c);
        }
        Totals { total, per_reactor }
    }

    /// The shutdown summary: the summed line, then how many connections
    /// each reactor served (`; per reactor 52/48/49/51`).
    pub fn summary_line(&self) -> String {
        let each = self.joined(|c| c.accepted);
        format!("{}; per reactor {each}", self.total.summary_line())
    }

    /// `a/b/c`: one figure per reactor.
    fn joined(&self, figure: impl Fn(&Counters) -> u64) -> String {
        let each: Vec<String> = self
            .per_reactor
            .iter()
            .map(|c| figure(c).to_string())
            .collect();
        each.join("/")
    }
}

/// N reactors on N threads, and the main thread's signals and stats.
pub struct Group {
    reactors: Vec<ReactorThread>,
    addr: SocketAddr,
    poll: Poll,
    signals: Option<Signals>,
    answers: Receiver<(usize, Counters)>,
    /// The counters being collected, if a round is under way.
    collection: Option<Collection>,
    stats_every: Option<Duration>,
    /// `--metrics`, served by this (main) thread with a label per reactor.
    metrics: Option<metrics::Exporter>,
    started: Instant,
    /// Set by a reactor's thread when its loop has ended (before it wakes
    /// this poll): on its own, that is a failure, and the group stops.
    ended: Arc<AtomicBool>,
    /// The port locks; held (open) as long as the group lives.
    _lock: Vec<UnixListener>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("addr", &self.addr)
            .field("reactors", &self.reactors.len())
            .finish_non_exhaustive()
    }
}

impl Group {
    /// Binds `threads` listeners on `config.bind` (`threads` ≥ 2) and
    /// starts a reactor on each.
    pub fn bind(config: Config, threads: usize) -> Result<Group, StartError> {
        warn_if_backlog_capped(config.backlog);
        let listen_err = |addr, source| StartError::Listen {
            addr: Endpoint::Ip(addr),
            source,
        };
        let Endpoint::Ip(bind) = config.bind else {
            let why = "several reactors need a TCP address (SO_REUSEPORT)";
            return Err(StartError::Listen {
                addr: config.bind.clone(),
                source: io::Error::new(io::ErrorKind::InvalidInput, why),
            });
        };
        // One socket (or two: TCP and UDP) per reactor, all SO_REUSEPORT.
        let tcp = config.udp != UdpMode::Only;
        let udp = config.udp != UdpMode::Off;
        // With a fixed port, lock before joining any reuseport group.
        let early_lock = match bind.port() {
            0 => None,
            _ => Some(lock(bind.port(), tcp, udp).map_err(|e| listen_err(bind, e))?),
        };
        let open = |addr: SocketAddr| -> io::Result<Sockets> {
            let listener = match tcp {
                true => Some(net::listen_reuseport(addr, config.backlog)?),
                false => None,
            };
            // UDP on the port TCP got (for port 0).
            let udp_addr = match &listener {
                Some(l) => l.local_addr()?,
                None => addr,
            };
            let socket = match udp {
                true => Some(net::bind_udp(udp_addr, true)?),
                false => None,
            };
            Ok((listener, socket))
        };
        let first = open(bind).map_err(|e| listen_err(bind, e))?;
        let addr = match &first {
            (Some(l), _) => l.local_addr(),
            (None, Some(u)) => u.local_addr(),
            (None, None) => Err(io::Error::other("no socket")),
        }
        .map_err(StartError::Setup)?;
        let lock = match early_lock {
            Some(lock) => lock,
            None => lock(addr.port(), tcp, udp).map_err(|e| listen_err(addr, e))?,
        };
        let mut sockets = vec![first];
        for _ in 1..threads {
            sockets.push(open(addr).map_err(|e| listen_err(addr, e))?);
        }

        let poll = Poll::new().map_err(StartError::Setup)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(StartError::Setup)?);
        let signals = match config.handle_signals {
            true => Some(Signals::register(poll.registry(), SIGNALS).map_err(StartError::Setup)?),
            false => None,
        };
        let exporter = match config.metrics {
            Some(at) => Some(
                metrics::Exporter::bind(at, poll.registry(), tokens::exporter())
                    .map_err(|e| listen_err(at, e))?,
            ),
            None => None,
        };
        let (tx, answers) = mpsc::channel();
        // One --udp-rate-limit table for all: it is per source address,
        // and one address reaches every reactor.
        let limit = config
            .udp_rate_limit
            .map(|r| Arc::new(super::rate_limit::RateLimit::new(r)));
        let mut group = Group {
            reactors: Vec::with_capacity(threads),
            addr,
            poll,
            signals,
            answers,
            collection: None,
            stats_every: config.stats_every,
            metrics: exporter,
            started: Instant::now(),
            ended: Arc::new(AtomicBool::new(false)),
            _lock: lock,
        };
        // ANCHOR: reactors
        for (number, (listener, socket)) in sockets.into_iter().enumerate() {
            let own = Config {
                max_connections: config.max_connections.map(|m| share(m, threads, number)),
                stats_every: None,
                handle_signals: false,
                metrics: None,
                ..config.clone()
            };
            // On an error here, dropping `group` stops the reactors so far.
            let listener = listener.map(|l| Listener::Tcp(mio::net::TcpListener::from_std(l)));
            let mut server = Server::on_sockets(own, listener, socket, limit.clone())?;
            server.send_counters_to(number, tx.clone(), Arc::clone(&waker));
            let handle = server.handle();
            let (waker, ended) = (Arc::clone(&waker), Arc::clone(&group.ended));
            let thread = thread::Builder::new()
                .name(format!("reactor-{number}"))
                .spawn(move || {
                    let result = server.run();
                    ended.store(true, Ordering::SeqCst);
                    let _ = waker.wake();
                    result
                })
                .map_err(StartError::Setup)?;
            group.reactors.push(ReactorThread {
                handle,
                thread: Some(thread),
            });
        }
        // ANCHOR_END: reactors
        Ok(group)
    }

    /// Where the metrics are served (`--metrics`), with the real port.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|m| m.local_addr().ok())
    }

    /// The address every reactor listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for SIGINT or SIGTERM (or a reactor that ends on its own),
    /// printing `--stats` lines and SIGUSR1's and answering scrapes
    /// meanwhile; then stops every reactor and returns their counters.
    pub fn run(&mut self) -> io::Result<Totals> {
        let mut events = Events::with_capacity(16);
        let mut last = (self.started, Counters::default());
        let mut stats_due = self
            .stats_every
            .map(|every| deadline_after(self.started, every));
        loop {
            let scrape = self
                .metrics
                .as_ref()
                .and_then(metrics::Exporter::next_deadline);
            let collected_by = self.collection.as_ref().map(|c| c.deadline);
            let wake = [stats_due, scrape, collected_by]
                .into_iter()
                .flatten()
                .min();
            let timeout = wake.map(|at| at.saturating_duration_since(Instant::now()));
            match self.poll.poll(&mut events, timeout) {
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    let _ = self.stop_all();
                    return Err(e);
                }
                Ok(()) => {}
            }
            let now = Instant::now();
            let (mut stop, mut usr1) = (false, false);
            for event in events.iter() {
                match event.token() {
                    SIGNALS => {
                        if let Some(signals) = self.signals.as_mut() {
                            let said = signals.drain();
                            stop |= said.stop;
                            usr1 |= said.counters;
                        }
                    }
                    WAKER => {
                        // Counters came in, or a reactor's thread ended.
                        self.receive();
                        if self.ended.load(Ordering::SeqCst) {
                            log::warn!("a reactor stopped on its own: shutting down");
                            stop = true;
                        }
                    }
                    token if tokens::is_metrics(token) => {
                        if let Some(exporter) = &mut self.metrics {
                            // Not at hand: the scrape waits for a collection.
                            exporter.on_event(self.poll.registry(), token, now, &|| None);
                        }
                    }
                    _ => {}
                }
            }
            if let Some(exporter) = &mut self.metrics {
                exporter.on_timers(now);
            }
            if self
                .metrics
                .as_ref()
                .is_some_and(metrics::Exporter::waiting)
            {
                self.ask(now).scrape = true;
            }
            if usr1 {
                self.ask(now).usr1 = true;
            }
            if let Some(at) = stats_due
                && at <= now
            {
                self.ask(now).stats = true;
                let every = self.stats_every.unwrap_or(Duration::from_secs(1));
                stats_due = Some(deadline_after(at, every));
            }
            if let Some((round, totals)) = self.collected(now) {
                if round.usr1 {
                    let since_start = Counters::default();
                    let elapsed = round.asked - self.started;
                    print_stats(&self.stats_line(&totals, &since_start, elapsed));
                }
                if round.stats {
                    let elapsed = round.asked.saturating_duration_since(last.0);
                    print_stats(&self.stats_line(&totals, &last.1, elapsed));
                    last = (round.asked, totals.total);
                }
                if round.scrape
                    && let Some(exporter) = &mut self.metrics
                {
                    exporter.deliver(&metrics::render(&totals.per_reactor));
                }
            }
            if stop {
                return self.stop_all();
            }
        }
    }

    /// The `--stats` line of the whole server, and each reactor's open
    /// connections: `... | open=200 ... open_per_reactor=52/48/49/51`.
    fn stats_line(&self, totals: &Totals, earlier: &Counters, elapsed: Duration) -> String {
        format!(
            "{} open_per_reactor={}",
            totals.total.interval_line(earlier, elapsed),
            totals.joined(Counters::open)
        )
    }

    /// The round of collecting counters under way, or a new one asked of
    /// every reactor at `now` (answers to an earlier round that came too
    /// late are dropped first: they would pass for this round's).
    fn ask(&mut self, now: Instant) -> &mut Collection {
        if self.collection.is_none() {
            while self.answers.try_recv().is_ok() {}
            for reactor in &self.reactors {
                let _ = reactor.handle.request_counters();
            }
            log::trace!("counters asked of {} reactors", self.reactors.len());
        }
        self.collection.get_or_insert_with(|| Collection {
            asked: now,
            per: vec![None; self.reactors.len()],
            deadline: deadline_after(now, ANSWER_WAIT),
            stats: false,
            usr1: false,
            scrape: false,
        })
    }

    /// Takes in the answers that have arrived.
    fn receive(&mut self) {
        while let Ok((number, counters)) = self.answers.try_recv() {
            if let Some(slot) = self
                .collection
                .as_mut()
                .and_then(|round| round.per.get_mut(number))
            {
                *slot = Some(counters);
            }
        }
    }

    /// The round and its totals once every reactor has answered, or at its
    /// deadline (a reactor that did not answer counts as zero).
    fn collected(&mut self, now: Instant) -> Option<(Collection, Totals)> {
        let round = self.collection.as_ref()?;
        let missing = round.per.iter().filter(|c| c.is_none()).count();
        if missing > 0 && now < round.deadline {
            return None;
        }
        if missing > 0 {
            log::warn!("{missing} reactor(s) did not send its counters in time: counted as zero");
        }
        let round = self.collection.take()?;
        let per = round.per.iter().map(|c| c.unwrap_or_default()).collect();
        Some((round, Totals::of(per)))
    }

    /// Stops every reactor and waits for each; the first error wins.
    fn stop_all(&mut self) -> io::Result<Totals> {
        for reactor in &self.reactors {
            let _ = reactor.handle.shutdown();
        }
        let mut per = Vec::with_capacity(self.reactors.len());
        let mut first_error = None;
        for reactor in &mut self.reactors {
            let Some(thread) = reactor.thread.take() else {
                continue;
            };
            match thread.join() {
                Ok(Ok(counters)) => per.push(counters),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(io::Error::other("a reactor thread panicked"));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(Totals::of(per)),
        }
    }
}

impl Drop for Group {
    /// A group dropped before [`run`](Group::run) finished (a failed start,
    /// a test) stops and joins its reactors rather than leaving them running.
    fn drop(&mut self) {
        let _ = self.stop_all();
    }
}

/// Reactor `number`'s share of a limit of `max` over `threads` reactors.
fn share(max: usize, threads: usize, number: usize) -> usize {
    max / threads + usize::from(number < max % threads)
}

/// Takes the group's lock on each protocol's port: abstract Unix sockets
/// `@echoloop-server/tcp/PORT` and `@echoloop-server/udp/PORT`.
///
/// Named after the port, not the address text, because that is what the
/// kernel shares: `0.0.0.0:P`, `127.0.0.1:P`, `[::]:P` and
/// `[::ffff:127.0.0.1]:P` all overlap on loopback, and with
/// `SO_REUSEPORT` on both sides the more specific group would silently take
/// every connection it matches. So two groups never share a port number,
/// even on addresses that do not overlap (127.0.0.2:P and 127.0.0.3:P):
/// the price of a rule that is simple to check.
fn lock(port: u16, tcp: bool, udp: bool) -> io::Result<Vec<UnixListener>> {
    let protocols = [("tcp", tcp), ("udp", udp)];
    let mut held = Vec::new();
    for (protocol, _) in protocols.iter().filter(|(_, on)| *on) {
        let name = format!("echoloop-server/{protocol}/{port}");
        let lock_addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let listener = UnixListener::bind_addr(&lock_addr).map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "address in use ({protocol} port {port} is served by another \
                     echoloop server --threads)"
                ),
            ),
            _ => e,
        })?;
        held.push(listener);
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limit is split exactly: shares add up to it, and differ by one
    /// at most.
    #[test]
    fn shares_add_up_to_the_limit() {
        for (max, threads) in [(10, 3), (4, 4), (1000, 7), (5, 2)] {
            let shares: Vec<usize> = (0..threads).map(|n| share(max, threads, n)).collect();
            assert_eq!(shares.iter().sum::<usize>(), max, "{shares:?}");
            let (lo, hi) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            assert!(hi - lo <= 1, "{shares:?}");
        }
    }

    /// Collecting the reactors' counters is part of the loop: asking
    /// returns at once, the answers come in as events on WAKER, and the
    /// round ends when all are in; at its deadline (made-up instants) a
    /// reactor that has not answered counts as zero, and not a nanosecond
    /// before. A second ask during a round joins it.
    #[test]
    fn counters_are_collected_in_the_loop() {
        let config = Config {
            bind: Endpoint::Ip(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..Config::default()
        };
        let mut group = Group::bind(config, 2).unwrap();
        let t0 = Instant::now();
        group.ask(t0).stats = true;
        group.ask(t0 + Duration::from_millis(1)).scrape = true;
        let mut events = Events::with_capacity(16);
        let waited = Instant::now();
        let (round, totals) = loop {
            assert!(waited.elapsed() < Duration::from_secs(10), "no answers");
            if let Some(done) = group.collected(t0) {
                break done;
            }
            group
                .poll
                .poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            if events.iter().any(|e| e.token() == WAKER) {
                group.receive();
            }
        };
        assert_eq!(round.asked, t0, "one round: the second ask joined it");
        assert!(round.stats && round.scrape && !round.usr1);
        assert_eq!(totals.per_reactor.len(), 2);
        assert!(group.collection.is_none());

        // A round with a third, silent slot: both reactors answer, and it
        // still waits for the third until its deadline.
        let t1 = t0 + Duration::from_secs(5);
        group.ask(t1).usr1 = true;
        if let Some(round) = group.collection.as_mut() {
            round.per.push(None);
        }
        let waited = Instant::now();
        while group
            .collection
            .as_ref()
            .is_some_and(|r| r.per.iter().take(2).any(Option::is_none))
        {
            assert!(waited.elapsed() < Duration::from_secs(10), "no answers");
            group
                .poll
                .poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            group.receive();
        }
        let deadline = t1 + ANSWER_WAIT;
        assert!(
            group
                .collected(deadline - Duration::from_nanos(1))
                .is_none()
        );
        let (round, totals) = group.collected(deadline).unwrap();
        assert!(round.usr1);
        assert_eq!(totals.per_reactor.len(), 3);
        assert_eq!(totals.per_reactor[2].accepted, 0, "the silent one is zero");
    }
}
