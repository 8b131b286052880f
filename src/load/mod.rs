//! The load generator: many client connections, each a small state
//! machine, on one `mio::Poll` — the server's reactor turned around.
//!
//! Each connection sends a stream of fixed-size messages and checks every
//! echoed byte against what it sent, however the replies are segmented.
//! The bytes come from one shared random "tape": connection `i` sends the
//! tape from its own starting offset, cyclically, so checking a received
//! chunk is one `memcmp` against the tape, and a lost, repeated or
//! reordered segment shows up as a mismatch.
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
//!   schedule is kept with a timerfd ([`timer`]), not the poll's
//!   millisecond timeout.
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
//! Read [`Generator::run`] for the loop, then `Conn` for one connection.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::shared::duration::{MAX_DURATION, deadline_after, nth_tick};
use crate::shared::net::{connect_finished, describe, interrupted, would_block};
use timer::Timer;

mod timer;

/// The period of the byte tape. Shifts of whole multiples of it would go
/// unnoticed; 1 MiB is far beyond anything a TCP stream reorders.
const TAPE_PERIOD: usize = 1 << 20;
/// The most bytes one read or write handles, and the tape's overhang past
/// its period (so any chunk starting inside the period is one slice).
const CHUNK: usize = 64 * 1024;
/// How often overdue echoes are looked for and the live line is refreshed.
/// (An echo that does come back late is a timeout whatever the tick: see
/// [`Tally::complete`].)
const TICK: Duration = Duration::from_millis(200);
/// The most due messages handed out in one turn; the rest wait for the next
/// turn, after a poll, so that echoes are read in between.
const DEAL_PER_TURN: u64 = 1024;
/// A send later than this after its due time means the schedule slipped.
const LAG_TOLERATED_US: u64 = 1000;
/// How long before a message is due the open-loop timer wakes the loop,
/// which then polls without sleeping until the due time. A sleeping CPU
/// (a virtual one, especially) takes 50–300 µs to wake from a timer; a
/// schedule kept only by the timer sends every message that late, and the
/// delay is charged to the server. Spinning the last stretch costs up to
/// this much CPU per message, and keeps sends within microseconds.
const SPIN: Duration = Duration::from_micros(300);
/// The open-loop timer's token (connection tokens are their indices).
const TIMER: Token = Token(usize::MAX);

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The echo server.
    pub addr: SocketAddr,
    /// Connections to open.
    pub connections: usize,
    /// Bytes per message.
    pub size: usize,
    /// How long to measure (after the warm-up).
    pub duration: Duration,
    /// Stop once this many messages were measured (benches use this).
    pub messages: Option<u64>,
    /// Messages in flight per connection (closed loop).
    pub pipeline: usize,
    /// Messages per second over all connections (open loop).
    pub rate: Option<f64>,
    /// Connections opened per second while ramping up (default: all at once).
    pub connect_rate: Option<f64>,
    /// A period at the start whose numbers are dropped.
    pub warmup: Duration,
    /// How long a connect or an echo may take before it counts as an error.
    pub timeout: Duration,
}

/// Failures by kind. None of them stops the run; all of them are reported.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Errors {
    /// Connections that could not be established (refused, timed out).
    pub connect: u64,
    /// Connections reset or closed by the server mid-run.
    pub reset: u64,
    /// Echoes that did not come back within the timeout.
    pub timeout: u64,
    /// Echoed bytes that differ from what was sent (or more than was sent).
    pub mismatch: u64,
}

impl Errors {
    /// All errors.
    pub fn total(&self) -> u64 {
        self.connect + self.reset + self.timeout + self.mismatch
    }
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Connections asked for.
    pub connections: usize,
    /// Connections that were established at some point.
    pub established: usize,
    /// Bytes per message.
    pub size: usize,
    /// The measured window (warm-up excluded).
    pub duration: Duration,
    /// Messages echoed in full within the window.
    pub messages: u64,
    /// Bytes written within the window.
    pub bytes_sent: u64,
    /// Bytes read (and verified) within the window.
    pub bytes_received: u64,
    /// Latency of each measured message, in microseconds.
    pub latency: Histogram<u64>,
    /// Failures by kind.
    pub errors: Errors,
    /// The first connect failure, for the error message.
    pub first_connect_error: Option<String>,
    /// Open loop: how well the schedule was kept. `None` in closed loop.
    pub schedule: Option<Schedule>,
}

/// How an open-loop run kept its schedule, over the measured window.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Messages that fell due.
    pub due: u64,
    /// Of those, messages handed to a connection and written.
    pub sent: u64,
    /// How late each send was after its due time, µs (1 = on time).
    pub lag: Histogram<u64>,
}

impl Schedule {
    /// Messages that fell due but were never sent: the generator (or the
    /// connections available to it) could not keep up.
    pub fn unsent(&self) -> u64 {
        self.due.saturating_sub(self.sent)
    }

    fn lag_at(&self, q: f64) -> u64 {
        if self.lag.is_empty() {
            0
        } else {
            self.lag.value_at_quantile(q)
        }
    }

    /// Whether the schedule was kept: everything due was sent, and 99% of
    /// the sends within a millisecond of their due time.
    pub fn kept(&self) -> bool {
        self.unsent() == 0 && self.lag_at(0.99) <= LAG_TOLERATED_US
    }

    /// One line for the human summary (and the warning when not kept).
    pub fn line(&self) -> String {
        format!(
            "due {}, sent {}, not sent {}; send lag µs p50 {}  p99 {}  max {}",
            self.due,
            self.sent,
            self.unsent(),
            self.lag_at(0.5),
            self.lag_at(0.99),
            self.lag.max()
        )
    }

    fn to_json(&self) -> String {
        format!(
            "{{\"due\":{},\"sent\":{},\"unsent\":{},\"kept\":{},\
             \"lag_us\":{{\"p50\":{},\"p99\":{},\"max\":{}}}}}",
            self.due,
            self.sent,
            self.unsent(),
            self.kept(),
            self.lag_at(0.5),
            self.lag_at(0.99),
            self.lag.max()
        )
    }
}

/// Why a finished run counts as failed: the one line `echoloop load`
/// prints on stderr, and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Not one connection was established (exit 7).
    NoConnection {
        /// The server.
        addr: SocketAddr,
        /// The first connect error, in the kernel's words.
        why: String,
    },
    /// Errors happened; the summary has the details (exit 1).
    Errors(Errors),
    /// The run was clean but nothing came back in the window (exit 1).
    NothingEchoed,
}

impl Failure {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::NoConnection { .. } => 7,
            Failure::Errors(_) | Failure::NothingEchoed => 1,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoConnection { addr, why } => write!(f, "could not connect to {addr}: {why}"),
            Failure::Errors(e) => write!(
                f,
                "{} errors (connect {}, reset {}, timeout {}, mismatch {})",
                e.total(),
                e.connect,
                e.reset,
                e.timeout,
                e.mismatch
            ),
            Failure::NothingEchoed => f.write_str("no message was echoed"),
        }
    }
}

/// A snapshot for the live progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Time measured so far (0 during warm-up).
    pub measured: Duration,
    /// Messages so far.
    pub messages: u64,
    /// Bytes received so far.
    pub bytes_received: u64,
    /// p99 latency so far, µs.
    pub p99_us: u64,
    /// Errors so far.
    pub errors: u64,
    /// Still in the warm-up.
    pub warming_up: bool,
}

impl Progress {
    /// `elapsed 3.2s  msgs/s 123456  MiB/s 7.5  p99 350µs  errors 0`.
    pub fn line(&self) -> String {
        if self.warming_up {
            return format!("warming up...  errors {}", self.errors);
        }
        let secs = self.measured.as_secs_f64().max(1e-9);
        format!(
            "elapsed {:.1}s  msgs/s {:.0}  MiB/s {:.2}  p99 {}µs  errors {}",
            secs,
            self.messages as f64 / secs,
            self.bytes_received as f64 / secs / MIB,
            self.p99_us,
            self.errors
        )
    }
}

const MIB: f64 = 1024.0 * 1024.0;

impl Report {
    /// The run's verdict: `None` for a clean run, else why it failed (in
    /// this order: nothing connected, errors, nothing echoed). A schedule
    /// that was not kept is not a failure; it is reported in the summary.
    pub fn failure(&self, addr: SocketAddr) -> Option<Failure> {
        if self.established == 0 {
            let why = self
                .first_connect_error
                .as_deref()
                .unwrap_or("no connection");
            return Some(Failure::NoConnection {
                addr,
                why: why.to_string(),
            });
        }
        if self.errors.total() > 0 {
            return Some(Failure::Errors(self.errors));
        }
        (self.messages == 0).then_some(Failure::NothingEchoed)
    }

    /// Messages per second over the window.
    pub fn msgs_per_s(&self) -> f64 {
        self.messages as f64 / self.secs()
    }

    /// MiB per second echoed back (the received direction).
    pub fn mib_per_s(&self) -> f64 {
        self.bytes_received as f64 / self.secs() / MIB
    }

    fn secs(&self) -> f64 {
        self.duration.as_secs_f64().max(1e-9)
    }

    fn percentile(&self, q: f64) -> u64 {
        if self.latency.is_empty() {
            0
        } else {
            self.latency.value_at_quantile(q)
        }
    }

    /// One JSON object with exactly the documented keys (plus `schedule`
    /// in open loop).
    pub fn to_json(&self) -> String {
        let e = &self.errors;
        let schedule = self
            .schedule
            .as_ref()
            .map_or(String::new(), |s| format!(",\"schedule\":{}", s.to_json()));
        format!(
            "{{\"connections\":{},\"size\":{},\"duration_s\":{:.3},\"messages\":{},\
             \"msgs_per_s\":{:.1},\"mib_per_s\":{:.3},\
             \"latency_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{}}},\
             \"errors\":{{\"connect\":{},\"reset\":{},\"timeout\":{},\"mismatch\":{}}}{schedule}}}",
            self.connections,
            self.size,
            self.duration.as_secs_f64(),
            self.messages,
            self.msgs_per_s(),
            self.mib_per_s(),
            self.percentile(0.5),
            self.percentile(0.9),
            self.percentile(0.99),
            self.percentile(0.999),
            self.latency.max(),
            e.connect,
            e.reset,
            e.timeout,
            e.mismatch
        )
    }

    /// The human summary, several lines.
    pub fn to_human(&self, config: &Config) -> String {
        let mode = match config.rate {
            Some(rate) => format!("open loop at {rate} msgs/s"),
            None => format!("closed loop, pipeline {}", config.pipeline),
        };
        let secs = self.secs();
        let mut out = String::new();
        let plural = if self.connections == 1 { "" } else { "s" };
        let _ = writeln!(
            out,
            "{}: {} connection{plural} ({} established) x {} B, {mode}, {:.2} s measured",
            config.addr,
            self.connections,
            self.established,
            self.size,
            self.duration.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "  messages    {} ({:.1} msgs/s)",
            self.messages,
            self.msgs_per_s()
        );
        let _ = writeln!(
            out,
            "  throughput  {:.3} MiB/s sent, {:.3} MiB/s received",
            self.bytes_sent as f64 / secs / MIB,
            self.mib_per_s()
        );
        let _ = writeln!(
            out,
            "  latency µs  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            self.percentile(0.5),
            self.percentile(0.9),
            self.percentile(0.99),
            self.percentile(0.999),
            self.latency.max()
        );
        if let Some(schedule) = &self.schedule {
            let _ = writeln!(out, "  schedule    {}", schedule.line());
        }
        let e = &self.errors;
        let _ = write!(
            out,
            "  errors      connect {}  reset {}  timeout {}  mismatch {}",
            e.connect, e.reset, e.timeout, e.mismatch
        );
        out
    }
}

/// Where one connection is.
enum Phase {
    /// Not opened yet (ramping up under `--connect-rate`).
    Waiting,
    /// A non-blocking connect is in flight since `since`.
    Connecting {
        /// The socket being connected.
        stream: TcpStream,
        /// When the attempt started.
        since: Instant,
    },
    /// Sending messages and checking echoes.
    Running {
        /// The connected socket.
        stream: TcpStream,
    },
    /// Failed, or the run is over; the socket is closed.
    Closed,
}

/// Why a connection stopped.
#[derive(Debug)]
enum Fault {
    /// The server reset or closed the connection, or I/O failed.
    Reset,
    /// The echo differs from what was sent.
    Mismatch,
    /// The oldest echo did not come back within the timeout.
    Timeout,
}

/// One load connection: what it has sent, what came back, and the
/// messages whose echoes are still on their way.
struct Conn {
    phase: Phase,
    /// Where this connection's bytes start on the tape.
    tape_start: usize,
    /// Bytes handed to the messages so far (what should be written).
    queued: u64,
    /// Bytes written so far.
    sent: u64,
    /// Bytes read back and verified so far.
    received: u64,
    /// For each message not yet echoed in full: the stream offset where it
    /// ends, and when it was sent (closed loop) or due (open loop).
    in_flight: VecDeque<(u64, Instant)>,
}

/// The counters every connection adds to.
struct Tally {
    /// Start of the measured window (far in the future until the clock
    /// starts, see [`Generator::start_clock`]).
    measure_from: Instant,
    /// End of the run (likewise).
    end: Instant,
    /// An echo that takes longer than this is a timeout, not a success.
    timeout: Duration,
    messages: u64,
    bytes_sent: u64,
    bytes_received: u64,
    latency: Histogram<u64>,
    errors: Errors,
}

impl Tally {
    /// Counts a message echoed in full at `now` that was sent (closed loop)
    /// or due (open loop) at `at`. An echo later than the timeout is a
    /// timeout, however it was noticed: here, as it arrives, or by the
    /// periodic check in [`Generator::expire`] if it never does.
    fn complete(&mut self, at: Instant, now: Instant) -> Result<(), Fault> {
        let took = now.saturating_duration_since(at);
        if took > self.timeout {
            return Err(Fault::Timeout);
        }
        if at >= self.measure_from && now <= self.end {
            self.messages += 1;
            self.latency
                .saturating_record((took.as_micros() as u64).max(1));
        }
        Ok(())
    }

    /// Whether bytes moved at `now` count: inside the measured window.
    fn measuring(&self, now: Instant) -> bool {
        now >= self.measure_from && now <= self.end
    }
}

impl Conn {
    /// Whether this connection can take another open-loop message now:
    /// running, with everything queued so far already written.
    fn can_take(&self) -> bool {
        matches!(self.phase, Phase::Running { .. }) && self.sent == self.queued
    }

    /// Queues one message, sent (or due) at `at`.
    fn queue(&mut self, size: usize, at: Instant) {
        self.queued += size as u64;
        self.in_flight.push_back((self.queued, at));
    }

    /// Writes queued bytes until all are out or the socket is full.
    fn write(&mut self, tape: &[u8], tally: &mut Tally, now: Instant) -> Result<(), Fault> {
        let Phase::Running { stream } = &mut self.phase else {
            return Ok(());
        };
        while self.sent < self.queued {
            let len = (self.queued - self.sent).min(CHUNK as u64) as usize;
            match stream.write(tape_slice(tape, self.tape_start, self.sent, len)) {
                Ok(n) => {
                    self.sent += n as u64;
                    if tally.measuring(now) {
                        tally.bytes_sent += n as u64;
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(e) if interrupted(&e) => {}
                Err(e) => {
                    log::debug!("write failed: {e}");
                    return Err(Fault::Reset);
                }
            }
        }
        Ok(())
    }

    /// Reads echoes, checks them against the tape, completes messages, and
    /// in closed loop queues a new message for each one completed.
    fn read(
        &mut self,
        buf: &mut [u8],
        tape: &[u8],
        tally: &mut Tally,
        now: Instant,
        refill: Option<usize>,
        to_would_block: bool,
    ) -> Result<(), Fault> {
        loop {
            let Phase::Running { stream } = &mut self.phase else {
                return Ok(());
            };
            let n = match stream.read(buf) {
                Ok(0) => {
                    log::debug!("server closed the connection");
                    return Err(Fault::Reset);
                }
                Ok(n) => n,
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    log::debug!("read failed: {e}");
                    return Err(Fault::Reset);
                }
            };
            if self.received + n as u64 > self.sent
                || buf[..n] != *tape_slice(tape, self.tape_start, self.received, n)
            {
                return Err(Fault::Mismatch);
            }
            self.received += n as u64;
            if tally.measuring(now) {
                tally.bytes_received += n as u64;
            }
            while let Some(&(end, at)) = self.in_flight.front() {
                if end > self.received {
                    break;
                }
                self.in_flight.pop_front();
                tally.complete(at, now)?;
                if let Some(size) = refill {
                    self.queue(size, now);
                }
            }
            // A short read drained the socket (epoll(7)); more data raises
            // a new edge. After a hang-up, read on to see the EOF.
            if n < buf.len() && !to_would_block {
                return Ok(());
            }
        }
    }
}

/// The generator: its connections, the tape, the schedule, the counters.
pub struct Generator {
    config: Config,
    poll: Poll,
    conns: Vec<Conn>,
    tape: Vec<u8>,
    buf: Vec<u8>,
    /// When the run started (connections open from here).
    started: Instant,
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
    /// Open loop: messages handed to connections so far (message `n` is
    /// due at `t0 + n / rate`; those from `dealt` on are the backlog).
    dealt: u64,
    /// Open loop: of those, the ones due inside the measured window.
    dealt_measured: u64,
    /// Open loop: how late each measured message was handed out, µs.
    lag: Histogram<u64>,
    /// Open loop: the last deal found no connection able to take a message
    /// (all still connecting, or every socket full), so waking for the
    /// next due time would only spin: wait for an event instead.
    deal_blocked: bool,
    /// Open loop: the next connection to get a message (round robin).
    next_conn: usize,
    /// Open loop: wakes the poll at the next due time, to the nanosecond.
    /// `None` in closed loop (or if timerfd is unavailable: then the
    /// poll's millisecond timeout is used, and the report shows the lag).
    timer: Option<Timer>,
    tally: Tally,
    first_connect_error: Option<String>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("addr", &self.config.addr)
            .field("opened", &self.opened)
            .field("established", &self.established)
            .field("dealt", &self.dealt)
            .field("messages", &self.tally.messages)
            .finish_non_exhaustive()
    }
}

impl Generator {
    /// Prepares a run; nothing is connected yet.
    pub fn new(config: Config) -> io::Result<Generator> {
        let started = Instant::now();
        // Nothing is measured until the clock starts.
        let never = deadline_after(started, MAX_DURATION);
        let histogram = || {
            Histogram::new_with_bounds(1, 60_000_000, 3)
                .map_err(|e| io::Error::other(e.to_string()))
        };
        let tally = Tally {
            measure_from: never,
            end: never,
            timeout: config.timeout,
            messages: 0,
            bytes_sent: 0,
            bytes_received: 0,
            latency: histogram()?,
            errors: Errors::default(),
        };
        let conns = (0..config.connections)
            .map(|i| Conn {
                phase: Phase::Waiting,
                // Spread the starting points over the tape.
                tape_start: (i * 7919 * 64) % TAPE_PERIOD,
                queued: 0,
                sent: 0,
                received: 0,
                in_flight: VecDeque::new(),
            })
            .collect();
        let poll = Poll::new()?;
        let timer = match config.rate {
            Some(_) => match Timer::new(poll.registry(), TIMER) {
                Ok(timer) => Some(timer),
                Err(e) => {
                    log::warn!("no timerfd ({e}): the schedule is kept to the millisecond");
                    None
                }
            },
            None => None,
        };
        Ok(Generator {
            poll,
            conns,
            tape: make_tape(),
            buf: vec![0; CHUNK],
            started,
            t0: None,
            opened: 0,
            established: 0,
            connecting: 0,
            closed: 0,
            dealt: 0,
            dealt_measured: 0,
            lag: histogram()?,
            deal_blocked: false,
            next_conn: 0,
            timer,
            tally,
            first_connect_error: None,
            config,
        })
    }

    /// Runs until the duration (or message count) is reached, or every
    /// connection has failed. `progress` is called every tick.
    pub fn run(&mut self, mut progress: impl FnMut(&Progress)) -> io::Result<Report> {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = self.started;
        // One clock read per poll: the time the poll returned serves both
        // the events of the batch and the deadline checks that follow it.
        let mut now = Instant::now();
        loop {
            if self.t0.is_none() && self.connected() {
                self.start_clock(now);
            }
            if now >= self.tally.end || self.enough() || self.all_closed() {
                break;
            }
            self.open_due(now);
            self.deal(now);
            if now >= next_tick {
                self.expire(now);
                progress(&self.progress(now));
                next_tick = deadline_after(now, TICK);
            }
            let timeout = self.poll_timeout(now, next_tick)?;
            let polled = self.poll.poll(&mut events, timeout);
            now = Instant::now();
            match polled {
                Ok(()) => {}
                Err(e) if interrupted(&e) => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                if event.token() == TIMER {
                    if let Some(timer) = &mut self.timer {
                        timer.fired();
                    }
                    continue;
                }
                self.deal_blocked = false; // a socket may have room now
                let to_would_block = event.is_read_closed() || event.is_error();
                self.on_event(event.token().0, to_would_block, now);
            }
        }
        Ok(self.finish())
    }

    /// How long the next poll may sleep: until the end, the next tick or
    /// the next connection to open, in whole milliseconds. The next due
    /// message is the timer's job when there is one: it wakes the loop
    /// [`SPIN`] early, and from there the poll does not sleep until the
    /// message is due. Without a timer, the poll's own timeout does it.
    fn poll_timeout(&mut self, now: Instant, next_tick: Instant) -> io::Result<Option<Duration>> {
        let due = if self.deal_blocked {
            None
        } else {
            self.next_due()
        };
        let mut wake = [Some(self.tally.end), Some(next_tick), self.next_open()];
        match &mut self.timer {
            Some(timer) => {
                let spin_from = due.map(|at| at.checked_sub(SPIN).unwrap_or(at));
                match spin_from {
                    Some(from) if from <= now => {
                        timer.set(now, None)?;
                        wake[0] = Some(now); // the last stretch: poll, do not sleep
                    }
                    other => timer.set(now, other)?,
                }
            }
            None => wake[0] = wake[0].into_iter().chain(due).min(),
        }
        let wake = wake.into_iter().flatten().min();
        Ok(wake.map(|at| at.saturating_duration_since(now)))
    }

    /// Whether the clock may start: with `--connect-rate` at once (the
    /// ramp is part of the run), otherwise once no connection is still
    /// connecting.
    fn connected(&self) -> bool {
        self.config.connect_rate.is_some()
            || (self.opened == self.conns.len() && self.connecting == 0)
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
        self.tally.measure_from = deadline_after(t0, self.config.warmup);
        self.tally.end = deadline_after(self.tally.measure_from, self.config.duration);
    }

    /// One socket is ready.
    fn on_event(&mut self, i: usize, to_would_block: bool, now: Instant) {
        let Some(conn) = self.conns.get_mut(i) else {
            return;
        };
        let result = match &mut conn.phase {
            Phase::Connecting { stream, .. } => match connect_finished(stream) {
                Ok(true) => {
                    self.established += 1;
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
                let refill = self.config.rate.is_none().then_some(self.config.size);
                conn.read(
                    &mut self.buf,
                    &self.tape,
                    &mut self.tally,
                    now,
                    refill,
                    to_would_block,
                )
                .and_then(|()| conn.write(&self.tape, &mut self.tally, now))
            }
            Phase::Waiting | Phase::Closed => return,
        };
        if let Err(fault) = result {
            self.fail(i, fault);
        }
    }

    /// Connecting → Running: in closed loop, fill the pipeline and send.
    fn start(&mut self, i: usize, now: Instant) {
        let conn = &mut self.conns[i];
        let Phase::Connecting { stream, .. } = std::mem::replace(&mut conn.phase, Phase::Closed)
        else {
            return;
        };
        self.connecting -= 1;
        // Small messages must leave at once, not wait for Nagle.
        let _ = stream.set_nodelay(true);
        conn.phase = Phase::Running { stream };
        if self.config.rate.is_none() {
            for _ in 0..self.config.pipeline {
                conn.queue(self.config.size, now);
            }
        }
        if let Err(fault) = conn.write(&self.tape, &mut self.tally, now) {
            self.fail(i, fault);
        }
    }

    /// Opens the connections whose turn has come.
    fn open_due(&mut self, now: Instant) {
        while self.opened < self.conns.len() && self.open_time(self.opened) <= now {
            let i = self.opened;
            self.opened += 1;
            match TcpStream::connect(self.config.addr) {
                Ok(mut stream) => {
                    // Both directions, once: writable completes the connect
                    // and later says the send buffer has room again.
                    let registered = self.poll.registry().register(
                        &mut stream,
                        Token(i),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    match registered {
                        Ok(()) => {
                            self.conns[i].phase = Phase::Connecting { stream, since: now };
                            self.connecting += 1;
                        }
                        Err(e) => self.connect_failed(i, &e),
                    }
                }
                Err(e) => self.connect_failed(i, &e),
            }
        }
    }

    /// When connection `i` is due to open.
    fn open_time(&self, i: usize) -> Instant {
        match self.config.connect_rate {
            Some(rate) => deadline_after(self.started, nth_tick(i as u64, rate)),
            None => self.started,
        }
    }

    fn next_open(&self) -> Option<Instant> {
        (self.opened < self.conns.len()).then(|| self.open_time(self.opened))
    }

    /// When scheduled message `n` is due (open loop, once the clock runs).
    fn due_time(&self, n: u64) -> Option<Instant> {
        Some(deadline_after(self.t0?, nth_tick(n, self.config.rate?)))
    }

    /// Messages due strictly before `at` (open loop).
    fn due_before(&self, at: Instant) -> u64 {
        match (self.t0, self.config.rate) {
            (Some(t0), Some(rate)) if at > t0 => {
                let n = (at - t0).as_secs_f64() * rate;
                // Message n is due at n / rate: those with n < elapsed*rate.
                n.ceil().min(u64::MAX as f64) as u64
            }
            _ => 0,
        }
    }

    /// When the next message is due, if one is still to come in the run.
    fn next_due(&self) -> Option<Instant> {
        self.due_time(self.dealt).filter(|&at| at < self.tally.end)
    }

    /// Open loop: hands the due backlog out, round robin, one message at a
    /// time to each connection whose socket has taken everything so far, at
    /// most [`DEAL_PER_TURN`] in this turn. Latency counts from each
    /// message's due time, and how late it was handed out is recorded.
    fn deal(&mut self, now: Instant) {
        let n = self.conns.len();
        let due = self.due_before(deadline_after(now, Duration::from_nanos(1)));
        let due = due.min(self.due_before(self.tally.end));
        let mut budget = DEAL_PER_TURN;
        while self.dealt < due && budget > 0 {
            // The next connection, at most one lap away, that can take one.
            let Some(i) = (0..n)
                .map(|k| (self.next_conn + k) % n)
                .find(|&i| self.conns[i].can_take())
            else {
                self.deal_blocked = true;
                return;
            };
            let Some(at) = self.due_time(self.dealt) else {
                return;
            };
            self.dealt += 1;
            budget -= 1;
            self.next_conn = (i + 1) % n;
            if at >= self.tally.measure_from {
                self.dealt_measured += 1;
                let late = now.saturating_duration_since(at).as_micros() as u64;
                self.lag.saturating_record(late.max(1));
            }
            self.conns[i].queue(self.config.size, at);
            if let Err(fault) = self.conns[i].write(&self.tape, &mut self.tally, now) {
                self.fail(i, fault);
            }
        }
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
                Phase::Running { .. } => {
                    if let Some(&(_, at)) = self.conns[i].in_flight.front()
                        && now.saturating_duration_since(at) > timeout
                    {
                        self.fail(i, Fault::Timeout);
                    }
                }
                _ => {}
            }
        }
    }

    fn connect_failed(&mut self, i: usize, e: &io::Error) {
        log::debug!("connection {i}: connect failed: {e}");
        self.tally.errors.connect += 1;
        self.first_connect_error.get_or_insert_with(|| describe(e));
        self.close(i);
    }

    /// Any phase → `Closed` (dropping the socket), keeping the counts.
    fn close(&mut self, i: usize) {
        match std::mem::replace(&mut self.conns[i].phase, Phase::Closed) {
            Phase::Closed => {}
            Phase::Connecting { .. } => {
                self.connecting -= 1;
                self.closed += 1;
            }
            Phase::Waiting | Phase::Running { .. } => self.closed += 1,
        }
    }

    fn fail(&mut self, i: usize, fault: Fault) {
        log::debug!("connection {i}: {fault:?}");
        match fault {
            Fault::Reset => self.tally.errors.reset += 1,
            Fault::Mismatch => self.tally.errors.mismatch += 1,
            Fault::Timeout => self.tally.errors.timeout += 1,
        }
        self.close(i);
    }

    fn enough(&self) -> bool {
        self.config
            .messages
            .is_some_and(|want| self.tally.messages >= want)
    }

    fn all_closed(&self) -> bool {
        self.opened == self.conns.len() && self.closed == self.conns.len()
    }

    fn progress(&self, now: Instant) -> Progress {
        let t = &self.tally;
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
            warming_up: now < t.measure_from,
        }
    }

    /// Closes everything and builds the report.
    fn finish(&mut self) -> Report {
        let now = Instant::now();
        for conn in &mut self.conns {
            conn.phase = Phase::Closed;
        }
        let end = now.min(self.tally.end);
        let schedule = self.config.rate.map(|_| Schedule {
            due: self
                .due_before(end)
                .saturating_sub(self.due_before(self.tally.measure_from)),
            sent: self.dealt_measured,
            lag: self.lag.clone(),
        });
        Report {
            connections: self.config.connections,
            established: self.established,
            size: self.config.size,
            duration: end.saturating_duration_since(self.tally.measure_from),
            messages: self.tally.messages,
            bytes_sent: self.tally.bytes_sent,
            bytes_received: self.tally.bytes_received,
            latency: self.tally.latency.clone(),
            errors: self.tally.errors,
            first_connect_error: self.first_connect_error.clone(),
            schedule,
        }
    }
}

/// The `len` tape bytes (at most [`CHUNK`]) at `offset` of the stream of a
/// connection whose bytes start at `start` on the tape.
fn tape_slice(tape: &[u8], start: usize, offset: u64, len: usize) -> &[u8] {
    let at = (start + (offset % TAPE_PERIOD as u64) as usize) % TAPE_PERIOD;
    &tape[at..at + len.min(CHUNK)]
}

/// The tape every connection sends from: one period of random bytes
/// (splitmix64), then its first [`CHUNK`] bytes again, so that a chunk that
/// starts near the end of the period reads on, seamlessly, into its start.
fn make_tape() -> Vec<u8> {
    let mut state: u64 = 0x0123_4567_89ab_cdef;
    let mut tape = Vec::with_capacity(TAPE_PERIOD + CHUNK + 8);
    while tape.len() < TAPE_PERIOD {
        tape.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    tape.truncate(TAPE_PERIOD);
    tape.extend_from_within(..CHUNK);
    tape
}

/// The next value of the splitmix64 generator: small, fast, and good
/// enough for test payloads (not for anything secret).
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs a whole load test.
pub fn run(config: Config, progress: impl FnMut(&Progress)) -> io::Result<Report> {
    Generator::new(config)?.run(progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any chunk read at any offset equals the bytes written there, however
    /// the stream is cut: the tape wraps seamlessly.
    #[test]
    fn tape_slices_agree_across_the_wrap() {
        let tape = make_tape();
        let start = TAPE_PERIOD - 100;
        let written: Vec<u8> = [
            tape_slice(&tape, start, 0, 5000),
            tape_slice(&tape, start, 5000, 3000),
        ]
        .concat();
        let mut read = Vec::new();
        for (offset, len) in [(0, 37), (37, 63), (100, 4000), (4100, 3900)] {
            read.extend_from_slice(tape_slice(&tape, start, offset, len));
        }
        assert_eq!(read, written);
        assert_eq!(tape_slice(&tape, start, 100, 10), &tape[..10]);
    }

    fn tally(timeout: Duration, measure_from: Instant) -> Tally {
        Tally {
            measure_from,
            end: measure_from + Duration::from_secs(10),
            timeout,
            messages: 0,
            bytes_sent: 0,
            bytes_received: 0,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
            errors: Errors::default(),
        }
    }

    /// An echo later than the timeout is a timeout, not a success, however
    /// it was noticed; one just inside it counts, with its latency.
    #[test]
    fn a_late_echo_is_a_timeout_whatever_the_tick() {
        let t0 = Instant::now();
        let mut t = tally(Duration::from_millis(100), t0);
        let late = t.complete(t0, t0 + Duration::from_millis(150));
        assert!(matches!(late, Err(Fault::Timeout)), "{late:?}");
        assert_eq!(t.messages, 0);
        assert!(t.complete(t0, t0 + Duration::from_millis(100)).is_ok());
        assert_eq!(t.messages, 1);
        assert_eq!(t.latency.max(), t.latency.highest_equivalent(100_000));
    }

    /// Bytes and messages count only inside the window, so the figures
    /// agree: nothing before the warm-up ends, nothing after the end.
    #[test]
    fn only_the_window_counts() {
        let t0 = Instant::now();
        let from = t0 + Duration::from_secs(1);
        let mut t = tally(Duration::from_secs(60), from);
        assert!(!t.measuring(t0));
        assert!(t.measuring(from));
        assert!(!t.measuring(t.end + Duration::from_nanos(1)));
        t.complete(t0, from).unwrap(); // sent before the window: not counted
        let end = t.end;
        t.complete(from, end + Duration::from_millis(1)).unwrap(); // after it
        assert_eq!(t.messages, 0);
    }

    /// What an open-loop run reports about its schedule.
    #[test]
    fn schedule_kept_and_not_kept() {
        let mut lag = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        lag.record(20).unwrap();
        let kept = Schedule {
            due: 10,
            sent: 10,
            lag: lag.clone(),
        };
        assert!(kept.kept());
        assert_eq!(kept.unsent(), 0);
        let short = Schedule {
            due: 10,
            sent: 7,
            lag: lag.clone(),
        };
        assert!(!short.kept());
        assert_eq!(short.unsent(), 3);
        assert!(
            short
                .line()
                .starts_with("due 10, sent 7, not sent 3; send lag µs p50 20")
        );
        lag.record(5_000).unwrap();
        lag.record(5_000).unwrap();
        let late = Schedule {
            due: 3,
            sent: 3,
            lag,
        };
        assert!(!late.kept(), "p99 of 5 ms late is not keeping the schedule");
    }

    fn report(established: usize, errors: Errors, messages: u64) -> Report {
        Report {
            connections: 2,
            established,
            size: 64,
            duration: Duration::from_secs(1),
            messages,
            bytes_sent: 0,
            bytes_received: 0,
            latency: Histogram::new(3).unwrap(),
            errors,
            first_connect_error: Some("connection refused".into()),
            schedule: None,
        }
    }

    /// The verdict and its exit code, in the documented order.
    #[test]
    fn failure_verdicts_and_exit_codes() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let refused = Errors {
            connect: 2,
            ..Errors::default()
        };
        let f = report(0, refused, 0).failure(addr).unwrap();
        assert_eq!(
            (f.exit_code(), f.to_string().as_str()),
            (7, "could not connect to 127.0.0.1:9: connection refused")
        );
        let reset = Errors {
            reset: 1,
            ..Errors::default()
        };
        let f = report(2, reset, 10).failure(addr).unwrap();
        assert_eq!(
            (f.exit_code(), f.to_string().as_str()),
            (1, "1 errors (connect 0, reset 1, timeout 0, mismatch 0)")
        );
        let f = report(2, Errors::default(), 0).failure(addr).unwrap();
        assert_eq!(
            (f.exit_code(), f.to_string().as_str()),
            (1, "no message was echoed")
        );
        assert_eq!(report(2, Errors::default(), 10).failure(addr), None);
    }
}
