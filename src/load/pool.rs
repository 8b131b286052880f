//! The connection pool: each slot's life, from waiting to connected (and
//! handshaken, over TLS) to running, and down again — failed, recycled
//! after its quota, backing off before `--reconnect`, or closed for good.
//! Every change of phase goes through one traced [`Pool::set_phase`].
//!
//! The pool knows nothing of messages: once a slot is up it says so
//! ([`Slot::Up`]), and the generator starts its traffic; a slot whose
//! traffic failed comes back here through [`Pool::close`]. The counts the
//! loop asks every turn ("still connecting?", "all gone?") are kept as
//! numbers, in O(1), instead of a scan of every slot.

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mio::{Interest, Registry, Token};

use super::config::Config;
use super::connection::{Close, Connection, Phase};
use super::counters::Counters;
use super::outcome::Fate;
use super::proxy_header::ProxyHeader;
use super::tape::{CHUNK, Tape};
use crate::shared::addr::Endpoint;
use crate::shared::duration::{deadline_after, nth_period};
use crate::shared::net::{self, describe};
use crate::shared::stream::Stream;
use crate::shared::tls::Dialer;

/// How long a failed connection waits before `--reconnect` opens it again:
/// long enough not to hammer a server that refuses, short next to a run.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// What an event made of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Nothing for the traffic: still connecting or handshaking, gone, or
    /// a spurious wake-up.
    Quiet,
    /// It came up in this event: start its traffic.
    Up,
    /// It was running already: read its echoes, write what is queued.
    Running,
}

/// Whether `stream`'s connect finished (as [`Stream::connect_finished`]);
/// once it has, with `--proxy-protocol`, the PROXY header goes first.
fn connected(stream: &Stream, proxy: Option<ProxyHeader>) -> io::Result<bool> {
    let up = stream.connect_finished()?;
    if let (true, Some(header), Stream::Tcp(tcp)) = (up, proxy, stream) {
        header.send(tcp)?;
        log::trace!("proxy header sent ({:?})", header.version);
    }
    Ok(up)
}

/// How the pool dials: the target and the options that shape a connect.
#[derive(Debug)]
struct Dial {
    addr: Endpoint,
    sources: Vec<IpAddr>,
    tls: Option<Dialer>,
    proxy: Option<ProxyHeader>,
    reconnect: bool,
    connect_rate: Option<f64>,
}

/// Every slot of a stream generator and its phase.
pub struct Pool {
    /// The slots; slot `i`'s token is `Token(i)` whatever socket it holds.
    pub conns: Vec<Connection<Stream>>,
    dial: Dial,
    /// When the run started (slots open from here, `--connect-rate` paced).
    started: Instant,
    /// Slots opened so far (they open in index order).
    pub(super) opened: usize,
    /// Connects (and handshakes) that succeeded.
    pub(super) established: usize,
    /// Slots in `Connecting` or `Handshaking` right now, and slots `Closed`.
    pub(super) connecting: usize,
    pub(super) closed: usize,
    /// Slots whose first connect has not ended yet (established or
    /// failed). The clock starts when this reaches 0, not when no slot is
    /// connecting: with churn some slot is always connecting again, and a
    /// run that waited for that moment could wait forever.
    first_pending: usize,
    /// Which slots have ended their first connect.
    first_done: Vec<bool>,
    /// `--reconnect`: failed slots waiting to be opened again, and when
    /// (in that order: the back-off is the same for all).
    retries: VecDeque<(Instant, usize)>,
    /// The first connect or handshake error, worded for the user.
    first_connect_error: Option<String>,
    /// Connections that died on the way, and when.
    fate: Fate,
    /// The window has ended: nothing opens again, and a slot that goes
    /// down takes what it still awaited with it.
    settling: bool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("slots", &self.conns.len())
            .field("opened", &self.opened)
            .field("established", &self.established)
            .field("connecting", &self.connecting)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// `config.connections` slots, none opened yet, each starting its
    /// stream at its own place on `tape`.
    pub fn new(config: &Config, tape: &Tape, started: Instant) -> Pool {
        Pool {
            conns: (0..config.connections)
                .map(|i| {
                    Connection::new(
                        tape.start(i),
                        config.messages_per_connection,
                        config.half_close,
                    )
                })
                .collect(),
            dial: Dial {
                addr: config.addr.clone(),
                sources: config.sources.clone(),
                tls: config.tls.clone(),
                proxy: config.proxy,
                reconnect: config.reconnect,
                connect_rate: config.connect_rate,
            },
            started,
            opened: 0,
            established: 0,
            connecting: 0,
            closed: 0,
            first_pending: config.connections,
            first_done: vec![false; config.connections],
            retries: VecDeque::new(),
            first_connect_error: None,
            fate: Fate::default(),
            settling: false,
        }
    }

    /// The window has ended: from now on slots only wind down.
    pub fn settle(&mut self) {
        self.settling = true;
    }

    /// Whether the clock may start: with `--connect-rate` at once (the
    /// ramp is part of the run), otherwise once every slot's first connect
    /// has ended.
    pub fn connected(&self) -> bool {
        self.dial.connect_rate.is_some()
            || (self.opened == self.conns.len() && self.first_pending == 0)
    }

    /// Whether every slot was opened and is closed for good.
    pub fn all_closed(&self) -> bool {
        self.opened == self.conns.len() && self.closed == self.conns.len()
    }

    /// Connects (and handshakes) that succeeded.
    pub fn established(&self) -> usize {
        self.established
    }

    /// The first connect error, worded for the user.
    pub fn first_connect_error(&self) -> Option<String> {
        self.first_connect_error.clone()
    }

    /// When the next slot is due to open, if any is left.
    pub fn next_open(&self) -> Option<Instant> {
        (self.opened < self.conns.len()).then(|| self.open_time(self.opened))
    }

    /// When the next failed slot is due to open again (`--reconnect`).
    pub fn next_retry(&self) -> Option<Instant> {
        self.retries.front().map(|&(at, _)| at)
    }

    /// When slot `i` is due to open.
    fn open_time(&self, i: usize) -> Instant {
        match self.dial.connect_rate {
            Some(rate) => deadline_after(self.started, nth_period(i as u64, rate)),
            None => self.started,
        }
    }

    /// Readiness on slot `i`: finishes its connect or drives its
    /// handshake, and says whether its traffic is the generator's now.
    pub fn on_event(&mut self, i: usize, now: Instant, counters: &mut Counters) -> Slot {
        let Some(conn) = self.conns.get_mut(i) else {
            return Slot::Quiet;
        };
        match &mut conn.phase {
            Phase::Connecting { stream, .. } => match connected(stream, self.dial.proxy) {
                Ok(true) if self.dial.tls.is_some() => self.begin_tls(i, now, counters),
                Ok(true) => self.up(i, now, counters),
                Ok(false) => Slot::Quiet, // spurious: still connecting
                Err(e) => {
                    self.connect_failed(i, &e, counters, now);
                    Slot::Quiet
                }
            },
            Phase::Handshaking { .. } => self.handshake(i, now, counters),
            Phase::Running { .. } => Slot::Running,
            Phase::Waiting | Phase::Backoff | Phase::Closed => Slot::Quiet,
        }
    }

    /// Connecting → Handshaking (`tls://`): TCP is up; the connect's
    /// latency ends here, and the handshake's begins.
    fn begin_tls(&mut self, i: usize, now: Instant, counters: &mut Counters) -> Slot {
        let Some(dialer) = self.dial.tls.clone() else {
            return Slot::Quiet;
        };
        let mut failed = None;
        self.set_phase(i, |phase| match phase {
            Phase::Connecting {
                stream: Stream::Tcp(tcp),
                since,
            } => {
                let _ = tcp.set_nodelay(true);
                match dialer.wrap(tcp, CHUNK) {
                    Ok(tls) => Phase::Handshaking {
                        stream: Stream::Tls(Box::new(tls)),
                        since,
                        up: now,
                    },
                    Err(e) => {
                        failed = Some(e);
                        Phase::Closed
                    }
                }
            }
            other => other,
        });
        if let Some(e) = failed {
            self.handshake_failed(i, &e, counters, now);
            return Slot::Quiet;
        }
        if let Phase::Handshaking { since, .. } = self.conns[i].phase {
            counters.connected(since, now);
        }
        self.handshake(i, now, counters)
    }

    /// Handshaking: drives the handshake as far as the socket allows;
    /// once it is over, the slot is up (→ Running).
    fn handshake(&mut self, i: usize, now: Instant, counters: &mut Counters) -> Slot {
        let Phase::Handshaking {
            stream: Stream::Tls(tls),
            up,
            ..
        } = &mut self.conns[i].phase
        else {
            return Slot::Quiet;
        };
        match tls.handshake() {
            Ok(false) => Slot::Quiet,
            Ok(true) => {
                let resumed = tls.handshake_news().unwrap_or(false);
                log::trace!(
                    "connection {i}: tls handshake done ({})",
                    if resumed { "resumed" } else { "full" }
                );
                let up = *up;
                counters.handshaken(up, now, resumed);
                self.up(i, now, counters)
            }
            Err(e) => {
                self.handshake_failed(i, &e, counters, now);
                Slot::Quiet
            }
        }
    }

    /// Connecting (or Handshaking) → Running.
    fn up(&mut self, i: usize, now: Instant, counters: &mut Counters) -> Slot {
        let mut began = None;
        self.set_phase(i, |phase| match phase {
            Phase::Connecting { stream, since } => {
                began = Some(Some(since));
                // Small messages must leave at once, not wait for Nagle.
                let _ = stream.set_nodelay();
                Phase::Running { stream }
            }
            // The connect was counted when TCP came up.
            Phase::Handshaking { stream, .. } => {
                began = Some(None);
                Phase::Running { stream }
            }
            other => other,
        });
        let Some(since) = began else {
            return Slot::Quiet;
        };
        if let Some(since) = since {
            counters.connected(since, now);
        }
        self.established += 1;
        self.connect_ended(i);
        Slot::Up
    }

    /// Slot `i`'s connect ended (either way): the first time, one fewer to
    /// wait for before the clock starts. A connect that never ends is
    /// failed by [`expire`](Self::expire) after `--timeout`, so the clock
    /// starts at most `--timeout` (and a tick) after the last slot opened.
    fn connect_ended(&mut self, i: usize) {
        if let Some(done) = self.first_done.get_mut(i)
            && !*done
        {
            *done = true;
            self.first_pending -= 1;
        }
    }

    /// A TLS handshake failed (refused, a certificate not trusted, the
    /// server closed): counted apart from connect errors, and said once.
    fn handshake_failed(&mut self, i: usize, e: &io::Error, counters: &mut Counters, now: Instant) {
        let why = crate::shared::tls::describe(e);
        log::debug!("connection {i}: {why}");
        counters.errors.handshake += 1;
        self.connect_ended(i);
        self.first_connect_error.get_or_insert(why);
        self.down(i, counters, now);
    }

    /// A connect failed (refused, timed out, out of local ports).
    fn connect_failed(&mut self, i: usize, e: &io::Error, counters: &mut Counters, now: Instant) {
        log::debug!("connection {i}: connect failed: {e}");
        counters.errors.connect += 1;
        self.connect_ended(i);
        if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) && self.first_connect_error.is_none() {
            log::warn!(
                "out of local ports to {} (each closed connection holds its port in TIME_WAIT \
                 for a minute): spread the connections with --source 127.0.0.2,127.0.0.3,...",
                self.dial.addr
            );
        }
        self.first_connect_error.get_or_insert_with(|| describe(e));
        self.down(i, counters, now);
    }

    /// Opens the slots whose turn has come, and (`--reconnect`) the failed
    /// ones whose back-off is over. Nothing opens while the run settles.
    pub fn open_due(&mut self, now: Instant, registry: &Registry, counters: &mut Counters) {
        if self.settling {
            return;
        }
        while self.opened < self.conns.len() && self.open_time(self.opened) <= now {
            let i = self.opened;
            self.opened += 1;
            self.connect(i, now, registry, counters);
        }
        while let Some(&(at, i)) = self.retries.front() {
            if at > now {
                break;
            }
            self.retries.pop_front();
            log::debug!("connection {i}: reconnecting");
            self.connect(i, now, registry, counters);
        }
    }

    /// Starts a non-blocking connect for slot `i` (from the slot's source
    /// address, if any): its phase becomes `Connecting`. The slot's token is
    /// `i` whatever socket it holds; an event left over from an earlier
    /// socket of the slot is harmless, since `connect_finished` tells a
    /// spurious wake-up from a finished connect.
    fn connect(&mut self, i: usize, now: Instant, registry: &Registry, counters: &mut Counters) {
        let source = match self.dial.sources.as_slice() {
            [] => None,
            sources => Some(sources[i % sources.len()]),
        };
        let stream = match &self.dial.addr {
            Endpoint::Ip(addr) => net::connect_from(source, *addr).map(Stream::Tcp),
            unix => net::connect_unix(unix).map(Stream::Unix),
        };
        match stream {
            Ok(mut stream) => {
                // Both directions, once: writable completes the connect
                // and later says the send buffer has room again.
                let registered = registry.register(
                    &mut stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                );
                match registered {
                    Ok(()) => self.set_phase(i, |_| Phase::Connecting { stream, since: now }),
                    Err(e) => self.connect_failed(i, &e, counters, now),
                }
            }
            Err(e) => self.connect_failed(i, &e, counters, now),
        }
    }

    /// `--messages-per-connection`: slot `i` has carried its quota; close
    /// its socket (cleanly: everything was echoed) and open a new one now
    /// (or, while the run settles, none).
    pub fn recycle(
        &mut self,
        i: usize,
        now: Instant,
        registry: &Registry,
        counters: &mut Counters,
    ) {
        if self.settling {
            log::trace!("connection {i}: quota done after the window, closing");
            return self.end(i);
        }
        log::trace!("connection {i}: quota done, reconnecting");
        self.goodbye(i);
        self.conns[i].reset();
        self.connect(i, now, registry, counters); // running => connecting drops the old socket
    }

    /// Fails the slots whose connect or handshake, or whose oldest echo
    /// (or, after our FIN, the server's EOF), is overdue by `now`.
    pub fn expire(&mut self, now: Instant, t0: Option<Instant>, counters: &mut Counters) {
        let timeout = counters.timeout;
        for i in 0..self.conns.len() {
            match &self.conns[i].phase {
                Phase::Connecting { since, .. }
                    if now.saturating_duration_since(*since) > timeout =>
                {
                    let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                    self.connect_failed(i, &e, counters, now);
                }
                Phase::Handshaking { up, .. } if now.saturating_duration_since(*up) > timeout => {
                    let e = io::Error::new(io::ErrorKind::TimedOut, "handshake timed out");
                    self.handshake_failed(i, &e, counters, now);
                }
                Phase::Running { .. } => {
                    if let Some(at) = self.conns[i].oldest_in_flight()
                        && now.saturating_duration_since(at) > timeout
                    {
                        self.close(i, Close::Timeout, now, t0, counters);
                    } else if self.conns[i].eof_overdue(now, timeout) {
                        let why = Close::HalfCloseFailed(
                            "no EOF from the server within --timeout of our FIN",
                        );
                        self.close(i, why, now, t0, counters);
                    }
                }
                _ => {}
            }
        }
    }

    /// Closes slot `i` before the end of the run, and counts why.
    pub fn close(
        &mut self,
        i: usize,
        why: Close,
        now: Instant,
        t0: Option<Instant>,
        counters: &mut Counters,
    ) {
        log::debug!("close connection {i} ({why})");
        let since_start = now.saturating_duration_since(t0.unwrap_or(self.started));
        self.fate.death(since_start);
        match why {
            Close::Closed => counters.errors.closed += 1,
            Close::Failed(_) => counters.errors.reset += 1,
            Close::Mismatch => counters.errors.mismatch += 1,
            Close::Timeout => counters.errors.timeout += 1,
            Close::Truncated => counters.errors.truncated += 1,
            Close::Corrupt(_) => counters.errors.corrupt += 1,
            Close::Refused(_) => counters.errors.handshake += 1,
            Close::HalfCloseFailed(_) => counters.errors.half_close += 1,
        }
        self.down(i, counters, now);
    }

    /// A failed slot: with `--reconnect`, parked until its back-off is
    /// over; otherwise gone for the rest of the run. While the run
    /// settles, what it still awaited is lost with it.
    fn down(&mut self, i: usize, counters: &mut Counters, now: Instant) {
        if self.settling {
            self.conns[i].abandon(counters, now);
        }
        if !self.dial.reconnect || self.settling {
            return self.end(i);
        }
        self.set_phase(i, |_| Phase::Backoff); // drops the socket
        self.conns[i].reset(); // the stream starts afresh on the new socket
        self.retries
            .push_back((deadline_after(now, RECONNECT_BACKOFF), i));
    }

    /// Closes every slot at the end of the run, and returns the fate of
    /// the connections (how many were still up).
    pub fn end_all(&mut self) -> Fate {
        self.fate.up_at_end = self
            .conns
            .iter()
            .filter(|c| matches!(c.phase, Phase::Running { .. }))
            .count();
        for i in 0..self.conns.len() {
            self.end(i);
        }
        self.fate
    }

    /// Any phase → `Closed` (dropping the socket).
    fn end(&mut self, i: usize) {
        self.goodbye(i);
        self.set_phase(i, |_| Phase::Closed);
    }

    /// Over TLS, a running connection about to close says so with a
    /// `close_notify` (best effort: the socket is closed next either
    /// way), so the server sees a clean end, not a truncation.
    fn goodbye(&mut self, i: usize) {
        if let Some(conn) = self.conns.get_mut(i)
            && let Phase::Running { stream } = &mut conn.phase
            && let Err(e) = stream.close_notify()
        {
            log::trace!("connection {i}: close_notify not sent: {e}");
        }
    }

    /// Every change of a slot's phase goes through here: it keeps the
    /// `connecting` and `closed` counts in step and traces `old => new`
    /// (smoltcp's `set_state`). `next` gets the old phase by value, so the
    /// socket can move from one variant to the next.
    fn set_phase(&mut self, i: usize, next: impl FnOnce(Phase<Stream>) -> Phase<Stream>) {
        let Some(conn) = self.conns.get_mut(i) else {
            return;
        };
        let old = std::mem::replace(&mut conn.phase, Phase::Closed);
        let (was_connecting, was_closed) = (
            matches!(old, Phase::Connecting { .. } | Phase::Handshaking { .. }),
            matches!(old, Phase::Closed),
        );
        let from = old.name();
        let new = next(old);
        if from != new.name() {
            log::trace!("connection {i}: {from} => {}", new.name());
        }
        self.connecting += usize::from(matches!(
            new,
            Phase::Connecting { .. } | Phase::Handshaking { .. }
        ));
        self.connecting -= usize::from(was_connecting);
        self.closed += usize::from(matches!(new, Phase::Closed));
        self.closed -= usize::from(was_closed);
        conn.phase = new;
    }
}
