//! The load generator: many client connections, each a small state
//! machine, on one `mio::Poll` — the server's reactor turned around.
//!
//! Each connection sends a stream of fixed-size messages and checks every
//! echoed byte against what it sent, however the replies are segmented
//! (the bytes come from one shared random [`tape`]).
//!
//! Two ways to drive the server:
//!
//! * **Closed loop** (the default): each connection keeps `--pipeline K`
//!   messages in flight and sends the next only when an echo has come back
//!   in full. Latency is measured from the actual send.
//! * **Open loop** (`--rate R`): messages are due on a fixed schedule, R per
//!   second over all connections, whether or not earlier echoes came back.
//!   Latency is measured from the time a message was *due*, so a server that
//!   stalls is charged for the whole stall, not only for the one message
//!   that was waiting (the "coordinated omission" trap).
//!
//!   A schedule the generator itself cannot keep is reported, not hidden:
//!   due messages wait in a backlog (a count, not a queue, so memory stays
//!   flat whatever the rate) and are handed to connections whose sockets
//!   have taken everything so far; the report says how many were due, how
//!   many were sent, how many never were, and how late the sends were. The
//!   schedule ([`schedule`], one for both generators) is kept with a
//!   timerfd ([`timer`]), not the poll's millisecond timeout.
//!
//! The clock starts once the connections are up (with `--connect-rate`, at
//! once: the ramp is part of the run): `--warmup`, then `--duration`. So a
//! run shorter than connecting still measures what it was asked to.
//!
//! The costs per message are the server's mirror image: one `write`, one
//! `read` (a short read means the socket is drained: no read that only says
//! `WouldBlock`), and a share of one `epoll_wait`. Sockets are registered
//! once for both directions and never re-registered.
//!
//! The loop has the server's shape, name for name: [`Generator::run`]
//! (poll, then `turn`), [`Generator::turn`] (each event, then the timers,
//! then deferred work), [`Generator::next_deadline`] and `on_timers`. Read
//! those, then [`connection`] for one connection, [`counters`] for what is
//! counted, [`intervals`] for `--interval` and [`outcome`] for what is
//! printed; [`window`] says whether the window is open, settling after
//! its end (the echoes of what was sent in it awaited) or halted;
//! [`threads`] runs N generators side by side (`--threads`), and
//! [`datagrams`] is the same loop over UDP sockets (`udp://`).
//!
//! Imports point down: [`config`] and [`outcome`] (the vocabulary of a
//! run's result, [`Errors`] included) at the bottom; [`counters`] on them;
//! [`intervals`] and [`connection`] on the counters; the generators on top.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use crate::shared::addr::Endpoint;
use crate::shared::duration::{MAX_DURATION, deadline_after, nth_period};
use crate::shared::net::{self, describe, interrupted};
use crate::shared::readiness::{Drain, Readiness};
use crate::shared::stream::Stream;

pub use crate::shared::dice::splitmix64;
pub use config::Config;
use config::TICK;
use connection::{Close, Connection, Phase};
use counters::Counters;
/// The bytes before the tape in each datagram of `load udp://` (sequence,
/// socket, magic): the smallest `-s` over UDP.
pub use datagrams::HEADER as DATAGRAM_HEADER;
use intervals::{Intervals, hand_out};
pub use outcome::{
    DatagramFigures, Ending, Errors, Failure, Fate, Interval, Progress, RunStage, Schedule, Shape,
    Summary, Update,
};
pub use plan::Plan;
use schedule::{DEAL_PER_TURN, OpenLoop, TIMER};
pub use tape::Payload;
use tape::{CHUNK, Tape};
use timer::Timer;
use window::Window;

mod config;
mod connection;
mod counters;
mod datagrams;
mod intervals;
mod outcome;
pub mod plan;
mod schedule;
mod tape;
#[cfg(test)]
mod tests;
mod threads;
mod timer;
mod window;

/// How long a failed connection waits before `--reconnect` opens it again:
/// long enough not to hammer a server that refuses, short next to a run.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// The generator: its connections, the tape, the schedule, the counters.
pub struct Generator {
    config: Config,
    poll: Poll,
    conns: Vec<Connection<Stream>>,
    tape: Tape,
    buf: Vec<u8>,
    /// When the run started (connections open from here).
    started: Instant,
    /// The time the last poll returned: one clock read per batch.
    now: Instant,
    /// When overdue echoes are next looked for and the live line is due.
    next_tick: Instant,
    /// When the clock started: the schedule counts from here, the warm-up
    /// and the measured window follow. `None` while connecting.
    t0: Option<Instant>,
    /// Connections opened so far (they open in index order).
    opened: usize,
    /// Connections that reached `Running`.
    established: usize,
    /// Connections in `Connecting` right now, and connections `Closed` so
    /// far: the loop's "still connecting?" and "all gone?" questions, in
    /// O(1) instead of a scan of every connection per turn.
    connecting: usize,
    closed: usize,
    /// Slots whose first connect has not ended yet (established or
    /// failed). The clock starts when this reaches 0, not when no slot is
    /// connecting: with churn some slot is always connecting again, and a
    /// run that waited for that moment could wait forever.
    first_pending: usize,
    /// Which slots have ended their first connect.
    first_done: Vec<bool>,
    /// Open loop: the schedule, started at `t0` (messages not yet handed
    /// out although due are the backlog). `None` in closed loop.
    schedule: Option<OpenLoop>,
    /// Open loop: the last deal found no connection able to take a message
    /// (all still connecting, or every socket full), so waking for the
    /// next due time would only spin: wait for an event instead.
    deal_blocked: bool,
    /// Open loop: the next connection to get a message (round robin).
    next_conn: usize,
    /// Open loop: the connections `deal` gave messages in its pass.
    touched: Vec<usize>,
    /// Open loop: wakes the poll at the next due time, to the nanosecond.
    /// `None` in closed loop (or if timerfd is unavailable: then the
    /// poll's millisecond timeout is used, and the report shows the lag).
    timer: Option<Timer>,
    /// What the connections count, and the measured window.
    counters: Counters,
    /// This thread's CPU time when the measured window began.
    cpu: crate::shared::cpu::CpuWindow,
    /// `--interval`: the clock of intervals, once the window is known.
    intervals: Option<Intervals>,
    /// `--reconnect`: failed connections waiting to be opened again, and
    /// when (in that order: the back-off is the same for all).
    retries: VecDeque<(Instant, usize)>,
    first_connect_error: Option<String>,
    /// Connections that died on the way, and when.
    fate: Fate,
    /// Open, settling after its end (see [`settle`](Self::settle)), or
    /// halted by a signal before the clock started.
    window: Window,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("addr", &self.config.addr)
            .field("opened", &self.opened)
            .field("established", &self.established)
            .field("schedule", &self.schedule)
            .field("messages", &self.counters.messages)
            .finish_non_exhaustive()
    }
}

impl Generator {
    /// Prepares a run; nothing is connected yet.
    pub fn new(config: Config) -> io::Result<Generator> {
        let started = config.origin.unwrap_or_else(Instant::now);
        // Nothing is measured until the clock starts.
        let never = deadline_after(started, MAX_DURATION);
        let counters = Counters::new(config.timeout, never, never)?;
        let tape = Tape::new(&config.payload);
        let conns = (0..config.connections)
            .map(|i| Connection::new(tape.start(i), config.messages_per_connection))
            .collect();
        let poll = Poll::new()?;
        // The timer keeps the open-loop schedule, and wakes the loop for
        // --start-at to the microsecond rather than the poll's millisecond.
        let timed = config.rate.is_some() || config.start_at.is_some();
        let timer = match timed.then(|| Timer::new(poll.registry(), TIMER)) {
            Some(Ok(timer)) => Some(timer),
            Some(Err(e)) => {
                log::warn!("no timerfd ({e}): the schedule is kept to the millisecond");
                None
            }
            None => None,
        };
        Ok(Generator {
            poll,
            conns,
            tape,
            buf: vec![0; CHUNK],
            started,
            now: started,
            next_tick: started,
            t0: None,
            opened: 0,
            established: 0,
            connecting: 0,
            closed: 0,
            first_pending: config.connections,
            first_done: vec![false; config.connections],
            schedule: config
                .rate
                .as_ref()
                .map(|plan| {
                    let plan = plan.clone();
                    OpenLoop::planned(plan, config.warmup, config.spin, config.coalesce)
                })
                .transpose()?,
            deal_blocked: false,
            next_conn: 0,
            touched: Vec::new(),
            timer,
            counters,
            retries: VecDeque::new(),
            cpu: crate::shared::cpu::CpuWindow::default(),
            intervals: None,
            first_connect_error: None,
            fate: Fate::default(),
            window: Window::Open,
            config,
        })
    }

    /// Runs until the duration (or message count) is reached, or every
    /// connection has failed. `progress` is called every tick.
    pub fn run(&mut self, mut update: impl FnMut(Update<'_>)) -> io::Result<Summary> {
        let mut events = Events::with_capacity(1024);
        let mut now = self.started;
        loop {
            // The first turn has no events: it opens the connections.
            if let Some(live) = self.turn(now, events.iter().map(Readiness::from)) {
                update(Update::Live(&live));
            }
            hand_out(&mut self.intervals, &mut update);
            if self.finished() {
                let summary = self.finish();
                hand_out(&mut self.intervals, &mut update);
                return Ok(summary);
            }
            self.arm_timer()?;
            let timeout = self
                .next_deadline()
                .map(|at| at.saturating_duration_since(self.now));
            self.poll(&mut events, timeout)?;
            // The clock is read here, once per poll, and handed down:
            // everything below works with `now`, so tests can make it up.
            now = Instant::now();
        }
    }

    /// Waits for events, at most `timeout`. A signal that interrupts the
    /// wait (EINTR) is not an error: no events, and the loop goes round.
    fn poll(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        match self.poll.poll(events, timeout) {
            Err(e) if interrupted(&e) => {
                events.clear();
                Ok(())
            }
            other => other,
        }
    }

    /// Handles one batch of events that arrived at `now`, then the timers,
    /// then the work that waits for the end of a batch: opening the
    /// connections whose time has come, and (open loop) handing out the
    /// messages that fell due. Returns the live line's figures when a tick
    /// fell due in this turn.
    ///
    /// With [`next_deadline`](Self::next_deadline), this is the loop
    /// without its I/O wait, as in the server: whoever owns the poll reads
    /// the clock and hands it in.
    pub fn turn(
        &mut self,
        now: Instant,
        batch: impl IntoIterator<Item = Readiness>,
    ) -> Option<Progress> {
        // Time only moves forward, whatever a caller passes.
        self.now = self.now.max(now);
        // The window's CPU ends before this batch if the window has.
        self.cpu
            .on_turn(self.now, self.counters.measure_from, self.counters.end);
        self.settle();
        for event in batch {
            self.dispatch(event);
        }
        if self.enough() && self.now < self.counters.end {
            log::debug!("--messages reached: the window ends, the last echoes settle");
            self.counters.end = self.now;
            self.settle();
        }
        self.on_stop();
        let tick = self.on_timers(self.now);
        self.open_due(self.now);
        self.deal(self.now);
        tick
    }

    /// At the first turn after the window's end: stop sending, and note
    /// how many messages sent inside the window are still awaited. The
    /// loop goes on reading until each is answered, times out or goes
    /// down with its connection ([`finished`](Self::finished)); the open
    /// loop's promise (a stall counts for every message it held up) then
    /// holds at the window's end too.
    fn settle(&mut self) {
        if !self.window.open() || self.now < self.counters.end {
            return;
        }
        self.window.close();
        let awaited: u64 = self.conns.iter().map(|c| c.awaited(&self.counters)).sum();
        self.counters.ending.in_flight += awaited;
        log::debug!("the window has ended: {awaited} echoes awaited");
    }

    /// SIGINT or SIGTERM (see [`Stop`](crate::shared::stop::Stop)): the
    /// window ends now, and the run winds down as at its deadline (the
    /// last echoes settle, the summary is printed, the log flushed).
    /// Before the clock has started there is nothing to wind down.
    fn on_stop(&mut self) {
        if !self.window.open() {
            return;
        }
        let Some(signal) = self.config.stop.requested() else {
            return;
        };
        if self.t0.is_none() {
            log::warn!("{signal}: stopped while connecting; nothing was measured");
            self.window.halt();
            return;
        }
        log::warn!(
            "{signal}: the window ends now, {:.2} s into it; awaiting the last echoes \
             (send it again to stop at once)",
            self.now
                .saturating_duration_since(self.counters.measure_from)
                .as_secs_f64()
        );
        self.counters.end = self.now.min(self.counters.end);
        self.settle();
    }

    /// Routes one event to its owner: the open-loop timer, or a connection
    /// (whose token is its index).
    fn dispatch(&mut self, event: Readiness) {
        log::trace!("event {event}");
        if event.token == TIMER {
            if let Some(timer) = &mut self.timer
                && let Some(armed) = timer.fired()
                && let Some(schedule) = &mut self.schedule
                && self.t0.is_some()
            {
                schedule.timer_woke(armed, self.now);
            }
            return;
        }
        self.deal_blocked = false; // a socket may have room now
        self.on_connection(event.token.0, event);
    }

    /// Starts the clock once the connections are up; at each tick, fails
    /// what is overdue and returns the live line's figures.
    fn on_timers(&mut self, now: Instant) -> Option<Progress> {
        if self.t0.is_none() && self.connected() && self.config.start_at.is_none_or(|at| now >= at)
        {
            self.start_clock(now);
        }
        // Again after start_clock: the window may have opened just now.
        self.cpu
            .on_turn(now, self.counters.measure_from, self.counters.end);
        if let Some(intervals) = &mut self.intervals {
            intervals.cut(now, &mut self.counters, false, self.schedule.as_ref());
        }
        self.counters.note_errors(now);
        if now < self.next_tick {
            return None;
        }
        self.expire(now);
        self.next_tick = deadline_after(now, TICK);
        Some(self.progress(now))
    }

    /// The soonest deadline: the end of the run, the next tick, the next
    /// connection to open, or the next due message. `None`: sleep until an
    /// event. The next due message is the timer's job when there is one
    /// (see [`arm_timer`](Self::arm_timer)): the poll only stops sleeping
    /// for it in the last [`SPIN`](schedule::SPIN) before it is due, and then not at all.
    pub fn next_deadline(&self) -> Option<Instant> {
        let due = match &self.schedule {
            _ if self.deal_blocked => None,
            Some(s) => s.wake(self.now, self.counters.end, self.timer.is_some()),
            None => None,
        };
        // --start-at, when no timer wakes the loop for it.
        let start = self
            .config
            .start_at
            .filter(|_| self.t0.is_none() && self.timer.is_none());
        // After the window: only the ticks (which find what timed out) and
        // the last moment anything sent inside it can still be answered.
        if self.window.settling() {
            return [Some(self.settled_by()), Some(self.next_tick)]
                .into_iter()
                .flatten()
                .min();
        }
        [
            start,
            Some(self.counters.end),
            Some(self.next_tick),
            self.next_open(),
            self.retries.front().map(|&(at, _)| at),
            self.intervals.as_ref().map(Intervals::due),
            due,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Open loop: sets the timerfd to wake the poll [`SPIN`](schedule::SPIN) before the next
    /// message is due (the poll timeout is whole milliseconds), or disarms
    /// it when the loop is already in that last stretch or nothing is due.
    fn arm_timer(&mut self) -> io::Result<()> {
        let spin_from = match &self.schedule {
            // Before the clock: --start-at, if it is still ahead.
            _ if self.t0.is_none() => self.config.start_at.filter(|&at| at > self.now),
            _ if self.deal_blocked => None,
            Some(s) => s.spin_from(self.now, self.counters.end),
            None => None,
        };
        match &mut self.timer {
            Some(timer) => timer.set(self.now, spin_from),
            None => Ok(()),
        }
    }

    /// Whether the clock may start: with `--connect-rate` at once (the
    /// ramp is part of the run), otherwise once no connection is still
    /// connecting.
    fn connected(&self) -> bool {
        self.config.connect_rate.is_some()
            || (self.opened == self.conns.len() && self.first_pending == 0)
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

    /// Starts the clock at `t0`: the schedule, then the warm-up, then the
    /// measured window.
    fn start_clock(&mut self, now: Instant) {
        let t0 = if self.config.connect_rate.is_some() {
            self.started
        } else {
            now
        };
        log::debug!(
            "clock starts {:?} after the first connect",
            t0.saturating_duration_since(self.started)
        );
        self.t0 = Some(t0);
        if let Some(schedule) = &mut self.schedule {
            schedule.start(t0);
        }
        self.counters.measure_from = deadline_after(t0, self.config.warmup);
        self.counters.end = deadline_after(self.counters.measure_from, self.config.duration);
        self.counters.segments = segments_for(&self.config);
        self.intervals = self
            .config
            .interval
            .map(|every| Intervals::new(every, self.counters.measure_from, self.started));
        if let Some(at) = self.config.start_at {
            let late = t0.saturating_duration_since(at);
            if late > Duration::from_millis(5) {
                log::warn!(
                    "the clock starts {:.1} ms after --start-at (connections came up late)",
                    late.as_secs_f64() * 1e3
                );
            }
            log::debug!("--start-at: the clock starts {late:?} after the asked instant");
            for i in 0..self.conns.len() {
                let conn = &mut self.conns[i];
                if !matches!(conn.phase, Phase::Running { .. }) || !conn.is_greeted() {
                    continue;
                }
                fill_pipeline(conn, &self.config, t0);
                if let Err(why) = conn.on_writable(&self.tape, &mut self.counters, t0) {
                    self.close(i, why);
                }
            }
        }
    }

    /// A connection's socket is ready: finish its connect, or read the
    /// echoes (to dry, by the drain rule) and write what is queued.
    fn on_connection(&mut self, i: usize, event: Readiness) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(i) else {
            return;
        };
        let result = match &mut conn.phase {
            Phase::Connecting { stream, .. } => match stream.connect_finished() {
                Ok(true) if self.config.tls.is_some() => {
                    self.begin_tls(i, now);
                    return;
                }
                Ok(true) => {
                    self.established += 1;
                    self.connect_ended(i);
                    self.start(i, now);
                    return;
                }
                Ok(false) => return, // spurious: still connecting
                Err(e) => {
                    self.connect_failed(i, &e);
                    return;
                }
            },
            Phase::Running { .. } => {
                let sending = self.window.open();
                let refill = (self.config.rate.is_none() && sending).then_some(self.config.size);
                conn.on_readable(
                    &mut self.buf,
                    &self.tape,
                    &mut self.counters,
                    now,
                    refill,
                    Drain::after(&event),
                )
                .and_then(|()| {
                    if conn.take_greeted() && sending {
                        // The first message's echo is in: the messages begin.
                        fill_pipeline(conn, &self.config, now);
                    }
                    conn.on_writable(&self.tape, &mut self.counters, now)
                })
            }
            Phase::Handshaking { .. } => {
                self.handshake(i, now);
                return;
            }
            Phase::Waiting | Phase::Backoff | Phase::Closed => return,
        };
        match result {
            Err(why) => self.close(i, why),
            Ok(()) if self.conns[i].is_spent() => self.recycle(i, now),
            Ok(()) => {}
        }
    }

    /// Connecting → Handshaking (`tls://`): TCP is up; the connect's
    /// latency ends here, and the handshake's begins.
    fn begin_tls(&mut self, i: usize, now: Instant) {
        let Some(dialer) = self.config.tls.clone() else {
            return;
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
            return self.handshake_failed(i, &e);
        }
        if let Phase::Handshaking { since, .. } = self.conns[i].phase {
            self.counters.connected(since, now);
        }
        self.handshake(i, now);
    }

    /// Handshaking: drives the handshake as far as the socket allows;
    /// once it is over, the connection is established (→ Running).
    fn handshake(&mut self, i: usize, now: Instant) {
        let Phase::Handshaking {
            stream: Stream::Tls(tls),
            up,
            ..
        } = &mut self.conns[i].phase
        else {
            return;
        };
        match tls.handshake() {
            Ok(false) => {}
            Ok(true) => {
                let resumed = tls.handshake_news().unwrap_or(false);
                log::trace!(
                    "connection {i}: tls handshake done ({})",
                    if resumed { "resumed" } else { "full" }
                );
                let up = *up;
                self.counters.handshaken(up, now, resumed);
                self.established += 1;
                self.connect_ended(i);
                self.start(i, now);
            }
            Err(e) => self.handshake_failed(i, &e),
        }
    }

    /// A TLS handshake failed (refused, a certificate not trusted, the
    /// server closed): counted apart from connect errors, and said once.
    fn handshake_failed(&mut self, i: usize, e: &io::Error) {
        let why = crate::shared::tls::describe(e);
        log::debug!("connection {i}: {why}");
        self.counters.errors.handshake += 1;
        self.connect_ended(i);
        self.first_connect_error.get_or_insert(why);
        self.down(i);
    }

    /// Connecting (or Handshaking) → Running: in closed loop, fill the
    /// pipeline and send.
    fn start(&mut self, i: usize, now: Instant) {
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
        let Some(since) = began else { return };
        if let Some(since) = since {
            self.counters.connected(since, now);
        }
        let conn = &mut self.conns[i];
        conn.open(&self.tape);
        // With --start-at, nothing is measured or sent before the start but
        // the first message: the clock's start fills the pipelines.
        let waiting = self.config.start_at.is_some() && self.t0.is_none();
        if conn.is_greeted() && !waiting && self.window.open() {
            fill_pipeline(conn, &self.config, now);
        }
        if let Err(why) = conn.on_writable(&self.tape, &mut self.counters, now) {
            self.close(i, why);
        }
    }

    /// Opens the connections whose turn has come, and (`--reconnect`) the
    /// failed ones whose back-off is over.
    fn open_due(&mut self, now: Instant) {
        if self.window.settling() {
            return;
        }
        while self.opened < self.conns.len() && self.open_time(self.opened) <= now {
            let i = self.opened;
            self.opened += 1;
            self.connect(i, now);
        }
        while let Some(&(at, i)) = self.retries.front() {
            if at > now {
                break;
            }
            self.retries.pop_front();
            log::debug!("connection {i}: reconnecting");
            self.connect(i, now);
        }
    }

    /// Starts a non-blocking connect for slot `i` (from the slot's source
    /// address, if any): its phase becomes `Connecting`. The slot's token is
    /// `i` whatever socket it holds; an event left over from an earlier
    /// socket of the slot is harmless, since `connect_finished` tells a
    /// spurious wake-up from a finished connect.
    fn connect(&mut self, i: usize, now: Instant) {
        let source = match self.config.sources.as_slice() {
            [] => None,
            sources => Some(sources[i % sources.len()]),
        };
        let stream = match &self.config.addr {
            Endpoint::Ip(addr) => net::connect_from(source, *addr).map(Stream::Tcp),
            unix => net::connect_unix(unix).map(Stream::Unix),
        };
        match stream {
            Ok(mut stream) => {
                // Both directions, once: writable completes the connect
                // and later says the send buffer has room again.
                let registered = self.poll.registry().register(
                    &mut stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                );
                match registered {
                    Ok(()) => self.set_phase(i, |_| Phase::Connecting { stream, since: now }),
                    Err(e) => self.connect_failed(i, &e),
                }
            }
            Err(e) => self.connect_failed(i, &e),
        }
    }

    /// `--messages-per-connection`: slot `i` has carried its quota; close
    /// its socket (cleanly: everything was echoed) and open a new one now.
    fn recycle(&mut self, i: usize, now: Instant) {
        if self.window.settling() {
            log::trace!("connection {i}: quota done after the window, closing");
            return self.end(i);
        }
        log::trace!("connection {i}: quota done, reconnecting");
        self.goodbye(i);
        self.conns[i].reset();
        self.connect(i, now); // running => connecting drops the old socket
    }

    /// When connection `i` is due to open.
    fn open_time(&self, i: usize) -> Instant {
        match self.config.connect_rate {
            Some(rate) => deadline_after(self.started, nth_period(i as u64, rate)),
            None => self.started,
        }
    }

    fn next_open(&self) -> Option<Instant> {
        (self.opened < self.conns.len()).then(|| self.open_time(self.opened))
    }

    /// Open loop: hands the due backlog out, round robin, one message at a
    /// time to each connection whose socket has taken everything so far, at
    /// most [`DEAL_PER_TURN`] in this turn. Latency counts from each
    /// message's due time, and how late it was handed out is recorded.
    fn deal(&mut self, now: Instant) {
        let n = self.conns.len();
        let (measure_from, end) = (self.counters.measure_from, self.counters.end);
        // Connections given messages in this pass: each writes once, at
        // the end, all it was given (tcpkali's write-combining: after a late
        // wake-up several messages are due at once).
        // (A field, emptied each pass: no allocation per turn.)
        let mut touched = std::mem::take(&mut self.touched);
        touched.clear();
        let Some(schedule) = &mut self.schedule else {
            return;
        };
        if !self.window.take_pass() {
            return;
        }
        if !schedule.open_pass(now, end) {
            return;
        }
        for _ in 0..DEAL_PER_TURN {
            let Some(schedule) = &mut self.schedule else {
                break;
            };
            let Some(at) = schedule.peek(now, end) else {
                break;
            };
            // The next connection, at most one lap away, that can take one:
            // its socket took everything before this pass.
            let Some(i) = (0..n).map(|k| (self.next_conn + k) % n).find(|&i| {
                let conn = &self.conns[i];
                conn.can_take() || (touched.contains(&i) && conn.wants_more())
            }) else {
                self.deal_blocked = true;
                break;
            };
            let meant = schedule.take(at, now, measure_from);
            // Due inside the window, handed out after it: awaited too.
            self.counters.ending.in_flight += u64::from(self.window.settling());
            self.next_conn = (i + 1) % n;
            if !touched.contains(&i) {
                touched.push(i);
            }
            self.conns[i].queue(self.config.size, meant);
        }
        for &i in &touched {
            if let Err(why) = self.conns[i].on_writable(&self.tape, &mut self.counters, now) {
                self.close(i, why);
            }
        }
        self.touched = touched;
    }

    /// Fails connections whose connect or oldest echo is overdue.
    fn expire(&mut self, now: Instant) {
        let timeout = self.config.timeout;
        for i in 0..self.conns.len() {
            match &self.conns[i].phase {
                Phase::Connecting { since, .. }
                    if now.saturating_duration_since(*since) > timeout =>
                {
                    let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                    self.connect_failed(i, &e);
                }
                Phase::Handshaking { up, .. } if now.saturating_duration_since(*up) > timeout => {
                    let e = io::Error::new(io::ErrorKind::TimedOut, "handshake timed out");
                    self.handshake_failed(i, &e);
                }
                Phase::Running { .. } => {
                    if let Some(at) = self.conns[i].oldest_in_flight()
                        && now.saturating_duration_since(at) > timeout
                    {
                        self.close(i, Close::Timeout);
                    }
                }
                _ => {}
            }
        }
    }

    fn connect_failed(&mut self, i: usize, e: &io::Error) {
        log::debug!("connection {i}: connect failed: {e}");
        self.counters.errors.connect += 1;
        self.connect_ended(i);
        if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) && self.first_connect_error.is_none() {
            log::warn!(
                "out of local ports to {} (each closed connection holds its port in TIME_WAIT \
                 for a minute): spread the connections with --source 127.0.0.2,127.0.0.3,...",
                self.config.addr
            );
        }
        self.first_connect_error.get_or_insert_with(|| describe(e));
        self.down(i);
    }

    /// A failed connection: with `--reconnect`, parked until its back-off
    /// is over; otherwise gone for the rest of the run.
    fn down(&mut self, i: usize) {
        if self.window.settling() {
            let now = self.now;
            self.conns[i].abandon(&mut self.counters, now);
        }
        if !self.config.reconnect || self.window.settling() {
            return self.end(i);
        }
        self.set_phase(i, |_| Phase::Backoff); // drops the socket
        self.conns[i].reset(); // the stream starts afresh on the new socket
        self.retries
            .push_back((deadline_after(self.now, RECONNECT_BACKOFF), i));
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

    /// Every change of a connection's phase goes through here: it keeps the
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

    /// Closes connection `i` before the end of the run, and counts why.
    fn close(&mut self, i: usize, why: Close) {
        log::debug!("close connection {i} ({why})");
        let since_start = self
            .now
            .saturating_duration_since(self.t0.unwrap_or(self.started));
        self.fate.death(since_start);
        match why {
            Close::Closed => self.counters.errors.closed += 1,
            Close::Failed(_) => self.counters.errors.reset += 1,
            Close::Mismatch => self.counters.errors.mismatch += 1,
            Close::Timeout => self.counters.errors.timeout += 1,
            Close::Truncated => self.counters.errors.truncated += 1,
            Close::Corrupt(_) => self.counters.errors.corrupt += 1,
            Close::Refused(_) => self.counters.errors.handshake += 1,
        }
        self.down(i);
    }

    /// Whether the run is over: every connection is gone, or the window
    /// has ended (at `-d`, or at `--messages`) and every message sent
    /// inside it is accounted for: echoed, timed out, or gone with its
    /// connection. At the latest that is `--timeout` after the end.
    fn finished(&self) -> bool {
        self.all_closed()
            || self.window == Window::Halted
            || (self.window.settling() && (self.settled() || self.now >= self.settled_by()))
    }

    /// Whether no connection awaits an echo of a message sent inside the
    /// window.
    fn settled(&self) -> bool {
        self.conns.iter().all(|c| c.awaited(&self.counters) == 0)
    }

    /// When the last message sent inside the window has had its whole
    /// `--timeout`.
    fn settled_by(&self) -> Instant {
        deadline_after(self.counters.end, self.config.timeout)
    }

    fn enough(&self) -> bool {
        self.config
            .messages
            .is_some_and(|want| self.counters.messages >= want)
    }

    fn all_closed(&self) -> bool {
        self.opened == self.conns.len() && self.closed == self.conns.len()
    }

    fn progress(&self, now: Instant) -> Progress {
        let t = &self.counters;
        Progress {
            measured: now.saturating_duration_since(t.measure_from),
            messages: t.messages,
            bytes_received: t.bytes_received,
            p99_us: if t.latency.is_empty() {
                0
            } else {
                t.latency.value_at_quantile(0.99)
            },
            errors: t.errors.total(),
            stage: RunStage::at(now, self.t0.is_some(), t.measure_from, t.end),
        }
    }

    /// Closes everything and builds the report.
    fn finish(&mut self) -> Summary {
        let now = self.now;
        if self.window.settling() {
            // What is still awaited has had its --timeout (or the run ends
            // early, every connection gone): find the overdue now rather
            // than at the next tick, so they count as the timeouts they are.
            self.expire(now);
        }
        if let Some(intervals) = &mut self.intervals {
            intervals.cut(now, &mut self.counters, true, self.schedule.as_ref());
        }
        self.fate.up_at_end = self
            .conns
            .iter()
            .filter(|c| matches!(c.phase, Phase::Running { .. }))
            .count();
        for i in 0..self.conns.len() {
            self.end(i);
        }
        let end = now.min(self.counters.end);
        self.counters.note_errors(end);
        let cpu = self.cpu.used();
        let cpu_wall = self.cpu.wall();
        let duration = end.saturating_duration_since(self.counters.measure_from);
        let msgs_per_s = self.counters.messages as f64 / duration.as_secs_f64().max(1e-9);
        let schedule = self
            .schedule
            .as_ref()
            .map(|s| s.kept(self.counters.measure_from, end));
        Summary {
            connections: self.config.connections,
            established: self.established,
            size: self.config.size,
            duration,
            messages: self.counters.messages,
            bytes_sent: self.counters.bytes_sent,
            bytes_received: self.counters.bytes_received,
            latency: self.counters.latency.clone(),
            service: self
                .config
                .rate
                .is_some()
                .then(|| self.counters.service.clone()),
            connects: self.counters.connects,
            connect_latency: self.counters.connect_latency.clone(),
            errors: self.counters.errors,
            tls: self.config.tls.as_ref().map(|_| outcome::Handshakes {
                full: self.counters.handshakes_full,
                resumed: self.counters.handshakes_resumed,
                latency: self.counters.handshake_latency.clone(),
            }),
            first_connect_error: self.first_connect_error.clone(),
            fate: self.fate,
            schedule,
            cpu,
            cpu_wall,
            per_thread: vec![msgs_per_s],
            datagrams: None,
            ending: Some(self.counters.ending),
            segments: self.counters.segments(self.schedule.as_ref()),
        }
    }
}

/// Resolves ADDR's host, and when the name has several addresses and
/// `probe` is set, picks the first that accepts a TCP connection (as the
/// client does), so `localhost:PORT` works whether the server listens on
/// 127.0.0.1 or ::1. Without `probe` (UDP), the first address.
pub fn resolve(
    host: &str,
    port: u16,
    timeout: Duration,
    probe: bool,
) -> Result<SocketAddr, Failure> {
    let resolved = crate::shared::addr::resolve(host, port).map_err(Failure::Unresolved)?;
    match resolved.as_slice() {
        [] => Err(Failure::NoConnection {
            target: format!("{host}:{port}"),
            why: "no address".into(),
        }),
        [only] => Ok(*only),
        [first, ..] if !probe => Ok(*first),
        several => {
            let mut last = None;
            for addr in several {
                match std::net::TcpStream::connect_timeout(addr, timeout) {
                    Ok(_) => return Ok(*addr),
                    Err(e) => {
                        log::debug!("{addr} does not accept: {e}");
                        last = Some(e);
                    }
                }
            }
            Err(Failure::NoConnection {
                target: format!("{host}:{port}"),
                why: last.map_or("no address accepted".into(), |e| describe(&e)),
            })
        }
    }
}

/// Runs a whole load test.
pub fn run(config: Config, progress: impl FnMut(Update<'_>)) -> io::Result<Summary> {
    if config.threads > 1 {
        threads::run(config, progress)
    } else {
        run_one(config, progress)
    }
}

/// One generator on this thread: datagrams or a stream.
fn run_one(config: Config, progress: impl FnMut(Update<'_>)) -> io::Result<Summary> {
    if config.udp {
        datagrams::run(config, progress)
    } else {
        Generator::new(config)?.run(progress)
    }
}

/// A varying open-loop run's stretches (see [`Plan::segment_length`]),
/// if it is one.
fn segments_for(config: &Config) -> Option<counters::Segments> {
    let plan = config.rate.as_ref()?;
    let length = plan.segment_length(config.duration, config.interval)?;
    counters::Segments::new(length, config.duration).ok()
}

/// Closed loop (no `--rate`): queues `--pipeline` messages on a
/// connection that has just started (or just had its first message's echo
/// back, or whose clock just started), as far as its quota allows.
fn fill_pipeline(conn: &mut Connection<Stream>, config: &Config, now: Instant) {
    if config.rate.is_some() {
        return;
    }
    for _ in 0..config.pipeline {
        if conn.wants_more() {
            conn.queue(config.size, now);
        }
    }
}
