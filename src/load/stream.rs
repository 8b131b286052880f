//! The stream generator: many connections on one `mio::Poll`, each
//! sending a stream of fixed-size messages and checking every echoed byte
//! (the bytes come from one shared random [`tape`](super::tape)).
//!
//! It answers the one loop (the skeleton in [`super::engine`]) as an [`Engine`]:
//! `turn` (each event, then the timers, then deferred work), `next_deadline`
//! and `finish`. Read those, then `on_timers`, `deal` (the open loop) and
//! `traffic`; the slots' lives (connect, handshake, recycle, down) are the
//! [`pool`](super::pool)'s, and one connection's bytes are in
//! [`connection`](super::connection).

use std::io;
use std::time::{Duration, Instant};

use mio::Poll;

use super::config::Config;
use super::connection::{Close, Connection, Phase};
use super::counters::{Counters, Segments};
use super::engine::{self, Engine};
use super::intervals::Intervals;
use super::outcome::{self, Progress, Summary};
use super::pool::{Pool, Slot};
use super::schedule::{DEAL_PER_TURN, OpenLoop, TIMER};
use super::tape::{CHUNK, Tape};
use super::timer::Timer;
use super::window::Window;
use crate::shared::duration::{MAX_DURATION, deadline_after};
use crate::shared::readiness::{Drain, Readiness};
use crate::shared::stream::Stream;

/// `--no-reply` in closed loop: rounds of topping up and writing one
/// connection gets per turn before the others have theirs.
const SEND_ROUNDS: usize = 16;

/// The generator: its connections, the tape, the schedule, the counters.
pub struct Generator {
    pub(super) config: Config,
    pub(super) poll: Poll,
    /// The connections, each slot through its life.
    pub(super) pool: Pool,
    pub(super) tape: Tape,
    pub(super) buf: Vec<u8>,
    /// When the run started (connections open from here).
    pub(super) started: Instant,
    /// The time the last poll returned: one clock read per batch.
    pub(super) now: Instant,
    /// When overdue echoes are next looked for and the live line is due.
    pub(super) next_tick: Instant,
    /// When the clock started: the schedule counts from here, the warm-up
    /// and the measured window follow. `None` while connecting.
    pub(super) t0: Option<Instant>,
    /// Open loop: the schedule, started at `t0` (messages not yet handed
    /// out although due are the backlog). `None` in closed loop.
    pub(super) schedule: Option<OpenLoop>,
    /// Open loop: the last deal found no connection able to take a message
    /// (all still connecting, or every socket full), so waking for the
    /// next due time would only spin: wait for an event instead.
    pub(super) deal_blocked: bool,
    /// Open loop: the next connection to get a message (round robin).
    pub(super) next_conn: usize,
    /// Open loop: the connections `deal` gave messages in its pass.
    pub(super) touched: Vec<usize>,
    /// `--no-reply` in closed loop: connections whose sockets still took
    /// bytes after a burst ([`send_on`](Self::send_on)); served again
    /// before the next poll waits.
    pub(super) sending: Vec<usize>,
    /// Open loop: wakes the poll at the next due time, to the nanosecond.
    /// `None` in closed loop (or if timerfd is unavailable: then the
    /// poll's millisecond timeout is used, and the report shows the lag).
    pub(super) timer: Option<Timer>,
    /// What the connections count, and the measured window.
    pub(super) counters: Counters,
    /// This thread's CPU time when the measured window began.
    pub(super) cpu: crate::shared::cpu::CpuWindow,
    /// `--interval`: the clock of intervals, once the window is known.
    pub(super) intervals: Option<Intervals>,
    /// Open, settling after its end (see [`settle`](Self::settle)), or
    /// halted by a signal before the clock started.
    pub(super) window: Window,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("addr", &self.config.addr)
            .field("established", &self.pool.established())
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
        let pool = Pool::new(&config, &tape, started);
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
            pool,
            tape,
            buf: vec![0; CHUNK],
            started,
            now: started,
            next_tick: started,
            t0: None,
            schedule: config
                .rate
                .as_ref()
                .map(|plan| {
                    let plan = plan.clone();
                    OpenLoop::planned(plan, config.warmup, config.spin, config.coalesce)
                })
                .transpose()?,
            deal_blocked: false,
            sending: Vec::new(),
            next_conn: 0,
            touched: Vec::new(),
            timer,
            counters,
            cpu: crate::shared::cpu::CpuWindow::default(),
            intervals: None,
            window: Window::Open,
            config,
        })
    }

    /// At the first turn after the window's end: stop sending, and note
    /// how many messages sent inside the window are still awaited. The
    /// loop goes on reading until each is answered, times out or goes
    /// down with its connection ([`finished`](Self::finished)); the open
    /// loop's promise (a stall counts for every message it held up) then
    /// holds at the window's end too.
    fn settle(&mut self, now: Instant) {
        if !self.window.open() || now < self.counters.end {
            return;
        }
        self.window.close();
        self.pool.settle();
        if self.config.half_close {
            // Each connection's last message is out or on its way: its FIN
            // follows (now, or once what is queued is written).
            for i in 0..self.pool.conns.len() {
                self.pool.conns[i].finish_sending();
                if let Err(why) =
                    self.pool.conns[i].on_writable(&self.tape, &mut self.counters, now)
                {
                    self.close(i, why, now);
                }
            }
        }
        let awaited: u64 = self
            .pool
            .conns
            .iter()
            .map(|c| c.awaited(&self.counters))
            .sum();
        self.counters.ending.in_flight += awaited;
        log::debug!("the window has ended: {awaited} echoes awaited");
    }

    /// SIGINT or SIGTERM (see [`Stop`](crate::shared::stop::Stop)): the
    /// window ends now, and the run winds down as at its deadline (the
    /// last echoes settle, the summary is printed, the log flushed).
    /// Before the clock has started there is nothing to wind down.
    fn on_stop(&mut self, now: Instant) {
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
            now.saturating_duration_since(self.counters.measure_from)
                .as_secs_f64()
        );
        self.counters.end = now.min(self.counters.end);
        self.settle(now);
    }

    /// Routes one event to its owner: the open-loop timer, or a connection
    /// (whose token is its index).
    fn dispatch(&mut self, event: Readiness, now: Instant) {
        log::trace!("event {event}");
        if event.token == TIMER {
            let started = self.t0.is_some();
            return engine::on_timer(&mut self.timer, &mut self.schedule, now, started);
        }
        self.deal_blocked = false; // a socket may have room now
        self.on_connection(event.token.0, event, now);
    }

    /// Starts the clock once the connections are up; at each tick, fails
    /// what is overdue and returns the live line's figures.
    fn on_timers(&mut self, now: Instant) -> Option<Progress> {
        if self.t0.is_none()
            && self.pool.connected()
            && self.config.start_at.is_none_or(|at| now >= at)
        {
            self.start_clock(now);
        }
        // Again after start_clock: the window may have opened just now.
        self.cpu
            .on_turn(now, self.counters.measure_from, self.counters.end);
        let schedule = self.schedule.as_ref();
        let tick = engine::on_timers(
            now,
            &mut self.intervals,
            &mut self.counters,
            schedule,
            &mut self.next_tick,
        );
        if !tick {
            return None;
        }
        self.pool.expire(now, self.t0, &mut self.counters);
        let errors = self.counters.errors.total();
        let figures = self.config.metrics.then(|| {
            let in_flight = self
                .pool
                .conns
                .iter()
                .map(|c| c.awaited(&self.counters))
                .sum();
            (in_flight, self.schedule.as_ref())
        });
        Some(engine::progress(
            &self.counters,
            now,
            self.t0.is_some(),
            errors,
            figures,
        ))
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
        self.counters.segments = Segments::for_config(&self.config);
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
            for i in 0..self.pool.conns.len() {
                let conn = &mut self.pool.conns[i];
                if !matches!(conn.phase, Phase::Running { .. }) || !conn.is_greeted() {
                    continue;
                }
                fill_pipeline(conn, &self.config, t0);
                if let Err(why) = conn.on_writable(&self.tape, &mut self.counters, t0) {
                    self.close(i, why, now);
                }
            }
        }
    }

    /// A connection's socket is ready: the pool finishes its connect (or
    /// handshake); once it is running, read the echoes (to dry, by the
    /// drain rule) and write what is queued.
    fn on_connection(&mut self, i: usize, event: Readiness, now: Instant) {
        // Nearly every event is a running connection's: it goes straight to
        // its traffic, without a call into the pool (one call site, so the
        // traffic is inlined here: the per-message path).
        let running = self
            .pool
            .conns
            .get(i)
            .is_some_and(|c| matches!(c.phase, Phase::Running { .. }));
        if !running {
            match self.pool.on_event(i, now, &mut self.counters) {
                Slot::Quiet => return,
                Slot::Up => return self.start(i, now),
                Slot::Running => {}
            }
        }
        self.traffic(i, now, Drain::after(&event));
    }

    /// A running connection: reads its echoes and writes what is queued.
    /// `--no-reply` in closed loop: a message written is done, so the
    /// pipeline is topped up and written on until the socket is full (its
    /// WRITABLE edge then brings the connection back), at most
    /// [`SEND_ROUNDS`] rounds at a time: then it waits in `sending` for the
    /// next turn, so that one fast sink does not hold up the rest.
    fn send_on(&mut self, i: usize, now: Instant) {
        if self.config.rate.is_some() || !self.window.open() || !self.pool.conns[i].sends_only() {
            return;
        }
        for _ in 0..SEND_ROUNDS {
            let conn = &mut self.pool.conns[i];
            if !conn.top_up(self.config.pipeline, self.config.size, now) {
                return;
            }
            if let Err(why) = conn.on_writable(&self.tape, &mut self.counters, now) {
                self.close(i, why, now);
                return;
            }
            if self.pool.conns[i].is_spent() {
                let registry = self.poll.registry();
                self.pool.recycle(i, now, registry, &mut self.counters);
                return;
            }
        }
        if !self.sending.contains(&i) {
            self.sending.push(i);
        }
    }

    fn traffic(&mut self, i: usize, now: Instant, drain: Drain) {
        let sending = self.window.open();
        let refill = (self.config.rate.is_none() && sending).then_some(self.config.size);
        let conn = &mut self.pool.conns[i];
        let result = conn
            .on_readable(
                &mut self.buf,
                &self.tape,
                &mut self.counters,
                now,
                refill,
                drain,
            )
            .and_then(|()| {
                if conn.take_greeted() && sending {
                    // The first message's echo is in: the messages begin.
                    fill_pipeline(conn, &self.config, now);
                }
                conn.on_writable(&self.tape, &mut self.counters, now)
            });
        match result {
            Err(why) => self.close(i, why, now),
            Ok(()) if self.pool.conns[i].is_spent() => {
                let registry = self.poll.registry();
                self.pool.recycle(i, now, registry, &mut self.counters);
            }
            Ok(()) => self.send_on(i, now),
        }
    }

    /// A connection just came up: its first message (if any) and, in
    /// closed loop, a full pipeline go out.
    fn start(&mut self, i: usize, now: Instant) {
        let conn = &mut self.pool.conns[i];
        conn.open(&self.tape);
        // With --start-at, nothing is measured or sent before the start but
        // the first message: the clock's start fills the pipelines.
        let waiting = self.config.start_at.is_some() && self.t0.is_none();
        if conn.is_greeted() && !waiting && self.window.open() {
            fill_pipeline(conn, &self.config, now);
        }
        if let Err(why) = conn.on_writable(&self.tape, &mut self.counters, now) {
            self.close(i, why, now);
            return;
        }
        self.send_on(i, now);
    }

    /// Closes connection `i` before the end of the run (the pool counts why).
    fn close(&mut self, i: usize, why: Close, now: Instant) {
        self.pool.close(i, why, now, self.t0, &mut self.counters);
    }

    /// Open loop: hands the due backlog out, round robin, one message at a
    /// time to each connection whose socket has taken everything so far, at
    /// most [`DEAL_PER_TURN`] in this turn. Latency counts from each
    /// message's due time, and how late it was handed out is recorded.
    fn deal(&mut self, now: Instant) {
        let n = self.pool.conns.len();
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
                let conn = &self.pool.conns[i];
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
            self.pool.conns[i].queue(self.config.size, meant);
        }
        for &i in &touched {
            if let Err(why) = self.pool.conns[i].on_writable(&self.tape, &mut self.counters, now) {
                self.close(i, why, now);
            }
        }
        self.touched = touched;
    }

    /// Whether no connection awaits an echo of a message sent inside the
    /// window.
    fn settled(&self) -> bool {
        self.pool
            .conns
            .iter()
            .all(|c| c.awaited(&self.counters) == 0 && !c.awaits_eof())
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
}

impl Engine for Generator {
    fn poll(&mut self) -> &mut Poll {
        &mut self.poll
    }

    fn started(&self) -> Instant {
        self.started
    }

    fn clock(&self) -> Instant {
        self.now
    }

    fn intervals(&mut self) -> &mut Option<Intervals> {
        &mut self.intervals
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
    fn turn(
        &mut self,
        now: Instant,
        batch: impl IntoIterator<Item = Readiness>,
    ) -> Option<Progress> {
        // Time only moves forward, whatever a caller passes.
        let now = self.now.max(now);
        self.now = now;
        // The window's CPU ends before this batch if the window has.
        self.cpu
            .on_turn(now, self.counters.measure_from, self.counters.end);
        self.settle(now);
        for event in batch {
            self.dispatch(event, now);
        }
        for i in std::mem::take(&mut self.sending) {
            self.send_on(i, now);
        }
        if self.enough() && now < self.counters.end {
            log::debug!("--messages reached: the window ends, the last echoes settle");
            self.counters.end = now;
            self.settle(now);
        }
        self.on_stop(now);
        let tick = self.on_timers(now);
        let registry = self.poll.registry();
        self.pool.open_due(now, registry, &mut self.counters);
        self.deal(now);
        tick
    }

    /// The soonest deadline: the end of the run, the next tick, the next
    /// connection to open, or the next due message. `None`: sleep until an
    /// event. The next due message is the timer's job when there is one
    /// (see [`arm_timer`](Self::arm_timer)): the poll only stops sleeping
    /// for it in the last [`SPIN`](super::schedule::SPIN) before it is due, and then not at all.
    fn next_deadline(&self) -> Option<Instant> {
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
        if !self.sending.is_empty() {
            // --no-reply: sockets that still take bytes go on at once.
            return Some(self.now);
        }
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
            self.pool.next_open(),
            self.pool.next_retry(),
            self.intervals.as_ref().map(Intervals::due),
            due,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Open loop: sets the timerfd to wake the poll [`SPIN`](super::schedule::SPIN) before the next
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

    /// Whether the run is over: every connection is gone, or the window
    /// has ended (at `-d`, or at `--messages`) and every message sent
    /// inside it is accounted for: echoed, timed out, or gone with its
    /// connection. At the latest that is `--timeout` after the end.
    fn finished(&self) -> bool {
        self.pool.all_closed()
            || self.window == Window::Halted
            || (self.window.settling() && (self.settled() || self.now >= self.settled_by()))
    }

    /// Closes everything and builds the report.
    fn finish(&mut self) -> Summary {
        let now = self.now;
        if self.window.settling() {
            // What is still awaited has had its --timeout (or the run ends
            // early, every connection gone): find the overdue now rather
            // than at the next tick, so they count as the timeouts they are.
            self.pool.expire(now, self.t0, &mut self.counters);
        }
        if let Some(intervals) = &mut self.intervals {
            intervals.cut(now, &mut self.counters, true, self.schedule.as_ref());
        }
        // --half-close: a connection still without the server's EOF when
        // the run ends never got one.
        let no_eof = self.pool.conns.iter().filter(|c| c.awaits_eof()).count();
        self.counters.errors.half_close += no_eof as u64;
        let fate = self.pool.end_all();
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
            established: self.pool.established(),
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
            tls: self.config.tls.as_ref().map(|_| outcome::HandshakeFigures {
                full: self.counters.handshakes_full,
                resumed: self.counters.handshakes_resumed,
                latency: self.counters.handshake_latency.clone(),
            }),
            first_connect_error: self.pool.first_connect_error(),
            fate,
            schedule,
            cpu,
            cpu_wall,
            per_thread: vec![msgs_per_s],
            datagrams: None,
            ending: Some(self.counters.ending),
            segments: self.counters.segments(self.schedule.as_ref()),
            thresholds: Vec::new(),
        }
    }
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
