//! What a load run tells its user, as types: the summary and its parts
//! (errors, the schedule an open-loop run kept or did not, the fate of
//! its connections, the end of its window), the `--interval` record, the
//! live line's figures, and the verdict with its exit code. At the bottom
//! of the load module: it imports nothing of the generator.
//!
//! How they read is in the two renderings below it: [`human`] (the text
//! summary and the lines) and [`json`] (`--json`, one object per line).

use std::io;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::shared::addr::{Endpoint, Unresolved};

pub use human::Shape;

mod human;
mod json;
pub mod repeats;
#[cfg(test)]
mod tests;

/// A histogram of microseconds, 1 µs to 60 s, 3 significant digits: the
/// one shape of every latency the load module keeps.
pub fn micros_histogram() -> io::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| io::Error::other(e.to_string()))
}

/// Failures by kind. None of them stops the run; all of them are reported.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Errors {
    /// Connections that could not be established (refused, timed out).
    pub connect: u64,
    /// Connections the server closed cleanly (EOF) mid-run.
    pub closed: u64,
    /// Connections that failed mid-run: reset, broken pipe, other errors.
    pub reset: u64,
    /// Echoes that did not come back within the timeout.
    pub timeout: u64,
    /// Echoed bytes that differ from what was sent (or more than was sent).
    pub mismatch: u64,
    /// TLS handshakes that failed (`tls://`): refused, a certificate not
    /// trusted, timed out.
    pub handshake: u64,
    /// `tls://`: connections the server ended with a bare FIN after the
    /// handshake, with no `close_notify` (data may have been cut off).
    pub truncated: u64,
    /// `tls://`: connections on which a record did not decrypt or parse
    /// (garbage, or bytes changed on the way).
    pub corrupt: u64,
    /// `--half-close`: connections whose server, after our FIN, closed
    /// before echoing everything, or never sent its EOF.
    pub half_close: u64,
}

impl Errors {
    /// Each kind, named as the summary's JSON names it, and its count.
    pub fn by_kind(&self) -> [(&'static str, u64); 9] {
        [
            ("connect", self.connect),
            ("closed", self.closed),
            ("reset", self.reset),
            ("timeout", self.timeout),
            ("mismatch", self.mismatch),
            ("handshake", self.handshake),
            ("truncated", self.truncated),
            ("corrupt", self.corrupt),
            ("half_close", self.half_close),
        ]
    }

    /// All errors.
    pub fn total(&self) -> u64 {
        self.connect
            + self.closed
            + self.reset
            + self.timeout
            + self.mismatch
            + self.handshake
            + self.truncated
            + self.corrupt
            + self.half_close
    }
}

/// TLS handshakes of a `tls://` run, inside the measured window (the
/// first connections' handshakes happen before the clock starts).
#[derive(Debug, Clone)]
pub struct HandshakeFigures {
    /// HandshakeFigures completed in full.
    pub full: u64,
    /// HandshakeFigures that resumed a session.
    pub resumed: u64,
    /// Their latency, TCP established to handshake done, µs.
    pub latency: Histogram<u64>,
}

/// One stretch of a varying open-loop run (a step of `--rate-steps`, a
/// piece of a ramp): what was offered in it, and how it went.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Where it starts, from the measured window's start.
    pub start: Duration,
    /// How long it is.
    pub length: Duration,
    /// Messages due in it.
    pub due: u64,
    /// Latency of the messages due in it that were echoed, µs.
    pub latency: Histogram<u64>,
    /// Errors while it lasted.
    pub errors: u64,
}

impl Segment {
    fn secs(&self) -> f64 {
        self.length.as_secs_f64().max(1e-9)
    }

    /// The rate offered, msgs/s.
    pub fn offered(&self) -> f64 {
        self.due as f64 / self.secs()
    }

    /// The rate achieved (messages due in it that came back), msgs/s.
    pub fn achieved(&self) -> f64 {
        self.latency.len() as f64 / self.secs()
    }

    /// Adds another thread's stretch of the same place.
    fn add(&mut self, other: &Segment) {
        self.due += other.due;
        self.errors += other.errors;
        let _ = self.latency.add(&other.latency);
    }
}

/// A send later than this after its due time means the schedule slipped.
const LAG_TOLERATED_US: u64 = 1000;
/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Summary {
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
    /// Open loop over a stream: service time, from each message's actual
    /// send to its echo (µs), beside `latency`, which counts from the due
    /// time. `None` in closed loop, where the two are the same, and over UDP.
    pub service: Option<Histogram<u64>>,
    /// Connections established inside the window (with
    /// `--messages-per-connection` or `--reconnect`; the first connects
    /// happen before the clock starts).
    pub connects: u64,
    /// Connect latency of those, connect() to established, µs.
    pub connect_latency: Histogram<u64>,
    /// Failures by kind.
    pub errors: Errors,
    /// `tls://`: the handshakes. `None` over plain TCP.
    pub tls: Option<HandshakeFigures>,
    /// The first connect failure, for the error message.
    pub first_connect_error: Option<String>,
    /// How the connections fared: up at the end, died on the way.
    pub fate: Fate,
    /// Open loop: how well the schedule was kept. `None` in closed loop.
    pub schedule: Option<Schedule>,
    /// The generator's own CPU time (user + system) over the window, all
    /// its threads together.
    pub cpu: Duration,
    /// The wall time `cpu` was read over, each thread's added up (about
    /// the window times the threads).
    pub cpu_wall: Duration,
    /// Messages per second of each generator thread (one entry per thread).
    pub per_thread: Vec<f64>,
    /// UDP only: what happened to the datagrams.
    pub datagrams: Option<DatagramFigures>,
    /// Streams: what became of the messages in flight when the window
    /// closed. `None` over UDP, where `datagrams` says it.
    pub ending: Option<Ending>,
    /// A varying open-loop run (`--rate-steps`, a ramp): each stretch's
    /// offered and achieved rate, latency and errors.
    pub segments: Vec<Segment>,
    /// `--fail-if`: how each threshold came out (judged after the run).
    pub thresholds: Vec<Verdict>,
}

/// What a running generator reports as it goes: the live line's figures
/// (every 200 ms), or an interval that has just ended (`--interval`).
#[derive(Debug, Clone, Copy)]
pub enum Update<'a> {
    /// The live figures so far.
    Live(&'a Progress),
    /// An interval that ended.
    Interval(&'a Interval),
}

/// One `--interval` of a run: what moved and how fast it came back. The
/// intervals of several threads with the same index are merged into one.
#[derive(Debug, Clone)]
pub struct Interval {
    /// 0 for the first interval of the window.
    pub index: u64,
    /// Where it starts, from the measured window's start.
    pub start: Duration,
    /// Where it starts, from the run's start (the log's StartTime).
    pub since_run_start: Duration,
    /// How long it is (the last one may be shorter).
    pub length: Duration,
    /// Messages echoed in full.
    pub messages: u64,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Bytes read back and verified.
    pub bytes_received: u64,
    /// Errors of every kind.
    pub errors: u64,
    /// Latency of its messages, µs.
    pub latency: Histogram<u64>,
    /// Connect latency of the connections established in it, µs.
    pub connect_latency: Histogram<u64>,
    /// `tls://`: latency of the handshakes completed in it, µs.
    pub handshake_latency: Histogram<u64>,
    /// Service time of its messages (open loop over a stream), µs.
    pub service: Histogram<u64>,
    /// The generator's CPU time in it, all threads.
    pub cpu: Duration,
    /// How many generator threads it sums.
    pub threads: usize,
    /// A varying open-loop run (a ramp, steps): the messages due in it.
    pub due: Option<u64>,
}

impl Interval {
    /// Adds another thread's interval of the same index.
    pub fn merge(&mut self, other: &Interval) {
        self.length = self.length.max(other.length);
        self.messages += other.messages;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.errors += other.errors;
        let _ = self.latency.add(&other.latency);
        let _ = self.connect_latency.add(&other.connect_latency);
        let _ = self.handshake_latency.add(&other.handshake_latency);
        let _ = self.service.add(&other.service);
        self.cpu += other.cpu;
        self.threads += other.threads;
        self.due = match (self.due, other.due) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }

    /// The offered rate, msgs/s, of a varying open-loop run.
    pub fn offered(&self) -> Option<f64> {
        self.due.map(|n| n as f64 / self.secs())
    }

    fn secs(&self) -> f64 {
        self.length.as_secs_f64().max(1e-9)
    }

    /// The generator's CPU over this interval, as a share of its threads.
    pub fn busy(&self) -> f64 {
        self.cpu.as_secs_f64() / (self.secs() * self.threads.max(1) as f64)
    }
}

/// What became of the messages sent inside the window whose echoes had
/// not come back when it closed. The generator stops sending at the
/// window's end but keeps reading until each of them is answered (counted
/// with its latency, however late), has passed `--timeout`, or went down
/// with its connection: a stall at the very end of a run shows in the
/// figures instead of falling between them. `in_flight` is always the sum
/// of the other three.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ending {
    /// Messages sent inside the window and not yet echoed when it closed
    /// (an open loop's backlog due inside it and sent just after counts
    /// too).
    pub in_flight: u64,
    /// Of those, echoed in full after the window, within `--timeout`:
    /// also counted in `messages` and in the latency.
    pub answered: u64,
    /// Of those, not echoed within `--timeout` (their connections are
    /// counted as timeouts in the errors).
    pub timed_out: u64,
    /// Of those, lost with a connection that closed, was reset or echoed
    /// a wrong byte before they came back.
    pub lost: u64,
}

impl Ending {
    fn add(&mut self, other: &Ending) {
        self.in_flight += other.in_flight;
        self.answered += other.answered;
        self.timed_out += other.timed_out;
        self.lost += other.lost;
    }
}

/// How a run's connections fared: how many were up at the end, and how
/// many died on the way (reset, timed out, wrong echo) and when, counted
/// from the clock's start. "50 connections (82 established)" alone hides
/// that 34 were reset in the first second and the run went on with 16.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fate {
    /// Connections up (established, not closed) when the run ended.
    pub up_at_end: usize,
    /// Connections closed by a failure while the run went on.
    pub died: u64,
    /// When the first and the last of them died, from the clock's start.
    pub first_death: Option<Duration>,
    /// See `first_death`.
    pub last_death: Option<Duration>,
}

impl Fate {
    /// One more death, `at` from the clock's start.
    pub fn death(&mut self, at: Duration) {
        self.died += 1;
        self.first_death = Some(self.first_death.map_or(at, |f| f.min(at)));
        self.last_death = Some(self.last_death.map_or(at, |l| l.max(at)));
    }

    fn add(&mut self, other: &Fate) {
        self.up_at_end += other.up_at_end;
        self.died += other.died;
        self.first_death = match (self.first_death, other.first_death) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_death = match (self.last_death, other.last_death) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// What happened to a UDP run's datagrams (those sent in the window).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct DatagramFigures {
    /// Datagrams sent.
    pub sent: u64,
    /// Of those, answered within `--timeout` (possibly after the window:
    /// the run waits up to `--timeout` for the last replies).
    pub answered: u64,
    /// Of those, no reply within `--timeout`: `sent = answered + lost`.
    pub lost: u64,
    /// A second reply to the same datagram.
    pub duplicated: u64,
    /// A reply after its datagram was counted lost (past `--timeout`).
    pub late: u64,
    /// A reply that came after one to a later datagram.
    pub reordered: u64,
    /// A reply that is not exactly a datagram that was sent.
    pub corrupted: u64,
    /// The sockets' RFC 3550 interarrival jitter estimates, summed (ns),
    /// and how many sockets had one: their mean is the run's jitter.
    pub jitter_sum_ns: f64,
    /// Sockets with a jitter estimate (two replies or more).
    pub jitter_sockets: u64,
}

impl DatagramFigures {
    /// The mean of the sockets' jitter estimates, µs (0 without any).
    pub fn jitter_us(&self) -> f64 {
        self.jitter_sum_ns / self.jitter_sockets.max(1) as f64 / 1000.0
    }

    /// Lost datagrams as a percentage of those sent.
    pub fn loss_pct(&self) -> f64 {
        100.0 * self.lost as f64 / self.sent.max(1) as f64
    }

    fn add(&mut self, other: &DatagramFigures) {
        self.sent += other.sent;
        self.answered += other.answered;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.late += other.late;
        self.reordered += other.reordered;
        self.corrupted += other.corrupted;
        self.jitter_sum_ns += other.jitter_sum_ns;
        self.jitter_sockets += other.jitter_sockets;
    }
}

/// How an open-loop run kept its schedule, over the measured window.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Messages that fell due.
    pub due: u64,
    /// Of those, messages handed to a connection and written.
    pub sent: u64,
    /// The passes that sent them (see `--coalesce`): `sent / passes`
    /// messages shared each wake-up.
    pub passes: u64,
    /// How late each send was after it was meant to go (its due time, or
    /// its pass's planned time when coalesced), µs (1 = on time).
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

    /// Sends later than a millisecond after their due time.
    pub fn late_sends(&self) -> u64 {
        if self.lag.max() <= LAG_TOLERATED_US {
            return 0;
        }
        self.lag.count_between(LAG_TOLERATED_US + 1, self.lag.max())
    }

    /// Whether the schedule was kept: everything due was sent, and the
    /// sends later than a millisecond are no more than one, or 1% of them.
    /// (One late send, a page fault or a preempted thread, does not shift a
    /// run; many do, and then the load was not what was asked for.)
    pub fn kept(&self) -> bool {
        self.unsent() == 0 && self.late_sends() <= (self.sent / 100).max(1)
    }
}

/// Why a finished run counts as failed: the one line `echoloop load`
/// prints on stderr, and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// ADDR's host name did not resolve (exit 6).
    Unresolved(Unresolved),
    /// Not one connection was established (exit 7).
    NoConnection {
        /// The server: an address, or `host:port` as given.
        target: String,
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
            Failure::Unresolved(_) => 6,
            Failure::NoConnection { .. } => 7,
            Failure::Errors(_) | Failure::NothingEchoed => 1,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unresolved(unresolved) => write!(f, "{unresolved}"),
            Failure::NoConnection { target, why } => {
                write!(f, "could not connect to {target}: {why}")
            }
            Failure::Errors(e) => write!(
                f,
                "{} errors (connect {}, closed {}, reset {}, timeout {}, mismatch {}{})",
                e.total(),
                e.connect,
                e.closed,
                e.reset,
                e.timeout,
                e.mismatch,
                [
                    ("handshake", e.handshake),
                    ("truncated", e.truncated),
                    ("corrupt", e.corrupt),
                    ("half-close", e.half_close)
                ]
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(kind, n)| format!(", {kind} {n}"))
                .collect::<String>()
            ),
            Failure::NothingEchoed => f.write_str("no message was echoed"),
        }
    }
}

/// A snapshot for the live progress line (and, with `--metrics`, the
/// figures the generator's Prometheus endpoint serves).
#[derive(Debug, Clone, Default)]
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
    /// Where the run is: connecting, warming up (only with `--warmup`),
    /// or measuring.
    pub stage: RunStage,
    /// `--metrics`: what the endpoint serves beyond the line's figures.
    pub figures: Option<Box<Figures>>,
}

/// What the generator's `--metrics` endpoint serves beyond the live
/// line's figures, so far in the measured window.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Errors, by kind.
    pub errors: Errors,
    /// Messages sent (or due) and not answered yet.
    pub in_flight: u64,
    /// Open loop: messages due so far (the offered load).
    pub due: Option<u64>,
    /// Latency of every message measured so far, µs.
    pub latency: Histogram<u64>,
    /// Open loop: how late each message was handed out, µs.
    pub lag: Option<Histogram<u64>>,
}

impl Figures {
    /// Adds another thread's figures.
    pub fn merge(&mut self, other: &Figures) {
        let (a, b) = (&mut self.errors, &other.errors);
        a.connect += b.connect;
        a.closed += b.closed;
        a.reset += b.reset;
        a.timeout += b.timeout;
        a.mismatch += b.mismatch;
        a.handshake += b.handshake;
        a.truncated += b.truncated;
        a.corrupt += b.corrupt;
        a.half_close += b.half_close;
        self.in_flight += other.in_flight;
        self.due = match (self.due, other.due) {
            (Some(x), Some(y)) => Some(x + y),
            (x, y) => x.or(y),
        };
        let _ = self.latency.add(&other.latency);
        match (&mut self.lag, &other.lag) {
            (Some(x), Some(y)) => {
                let _ = x.add(y);
            }
            (None, Some(y)) => self.lag = Some(y.clone()),
            _ => {}
        }
    }
}

/// Where a run is, for the live line (in the order a run goes through).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum RunStage {
    /// Opening the connections; the clock has not started.
    Connecting,
    /// In `--warmup`: nothing counts yet.
    WarmingUp,
    /// In the measured window.
    #[default]
    Measuring,
    /// The window has closed; the last echoes are awaited.
    Settling,
}

impl RunStage {
    /// The stage at `now` of a run whose clock started (`Some`) or not,
    /// with its window measured from `measure_from`.
    pub fn at(
        now: std::time::Instant,
        started: bool,
        measure_from: std::time::Instant,
        end: std::time::Instant,
    ) -> RunStage {
        match (started, now < measure_from, now < end) {
            (false, _, _) => RunStage::Connecting,
            (true, true, _) => RunStage::WarmingUp,
            (true, false, true) => RunStage::Measuring,
            (true, false, false) => RunStage::Settling,
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// The value at quantile `q` of `h`, 0 when it is empty.
fn quantile(h: &Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q)
    }
}

impl Summary {
    /// The run's verdict: `None` for a clean run, else why it failed (in
    /// this order: nothing connected, errors, nothing echoed). A schedule
    /// that was not kept is not a failure; it is reported in the summary.
    pub fn failure(&self, addr: &Endpoint) -> Option<Failure> {
        if self.established == 0 {
            let why = self
                .first_connect_error
                .as_deref()
                .unwrap_or("no connection");
            return Some(Failure::NoConnection {
                target: addr.to_string(),
                why: why.to_string(),
            });
        }
        if self.errors.total() > 0 {
            return Some(Failure::Errors(self.errors));
        }
        (self.messages == 0).then_some(Failure::NothingEchoed)
    }

    /// The summaries of several generator threads as one: counts summed,
    /// histograms added, the longest window, the first connect error.
    /// `None` for none.
    pub fn merge(summaries: Vec<Summary>) -> Option<Summary> {
        let mut summaries = summaries.into_iter();
        let mut all = summaries.next()?;
        for r in summaries {
            all.connections += r.connections;
            all.established += r.established;
            all.duration = all.duration.max(r.duration);
            all.messages += r.messages;
            all.bytes_sent += r.bytes_sent;
            all.bytes_received += r.bytes_received;
            // Same bounds on every thread, so adding cannot fail.
            let _ = all.latency.add(&r.latency);
            all.service = match (all.service, r.service) {
                (Some(mut a), Some(b)) => {
                    let _ = a.add(&b);
                    Some(a)
                }
                (a, b) => a.or(b),
            };
            all.connects += r.connects;
            let _ = all.connect_latency.add(&r.connect_latency);
            all.errors.connect += r.errors.connect;
            all.errors.closed += r.errors.closed;
            all.errors.reset += r.errors.reset;
            all.errors.timeout += r.errors.timeout;
            all.errors.mismatch += r.errors.mismatch;
            all.errors.handshake += r.errors.handshake;
            all.errors.truncated += r.errors.truncated;
            all.errors.corrupt += r.errors.corrupt;
            all.errors.half_close += r.errors.half_close;
            all.tls = match (all.tls, r.tls) {
                (Some(mut a), Some(b)) => {
                    a.full += b.full;
                    a.resumed += b.resumed;
                    let _ = a.latency.add(&b.latency);
                    Some(a)
                }
                (a, b) => a.or(b),
            };
            all.first_connect_error = all.first_connect_error.or(r.first_connect_error);
            all.fate.add(&r.fate);
            all.schedule = match (all.schedule, r.schedule) {
                (Some(mut a), Some(b)) => {
                    a.due += b.due;
                    a.sent += b.sent;
                    a.passes += b.passes;
                    let _ = a.lag.add(&b.lag);
                    Some(a)
                }
                (a, b) => a.or(b),
            };
            all.cpu += r.cpu;
            all.cpu_wall += r.cpu_wall;
            all.per_thread.extend(r.per_thread);
            for (mine, theirs) in all.segments.iter_mut().zip(&r.segments) {
                mine.add(theirs);
            }
            all.ending = match (all.ending, r.ending) {
                (Some(mut a), Some(b)) => {
                    a.add(&b);
                    Some(a)
                }
                (a, b) => a.or(b),
            };
            all.datagrams = match (all.datagrams, r.datagrams) {
                (Some(mut a), Some(b)) => {
                    a.add(&b);
                    Some(a)
                }
                (a, b) => a.or(b),
            };
        }
        Some(all)
    }

    /// The generator's CPU time per measured message, µs; `None` when no
    /// message was measured (there is no per-message figure then).
    pub fn cpu_us_per_msg(&self) -> Option<f64> {
        (self.messages > 0).then(|| self.cpu.as_secs_f64() * 1e6 / self.messages as f64)
    }

    /// How busy the generator's threads were over the window: CPU time over
    /// (window × threads); near 1.0, the generator may be the limit.
    /// A thread cannot be busier than the clock, but over a window of a
    /// few milliseconds the CPU clock's steps can read more than 1 (see
    /// [`busy_is_measured`](Self::busy_is_measured)).
    pub fn busy(&self) -> f64 {
        // Over the wall time of the CPU readings themselves; a thread
        // cannot be busier than the clock, so what reads above 1 is the
        // CPU clock's step (a few ms), and is 1.
        let wall = match self.cpu_wall.is_zero() {
            true => self.secs() * self.per_thread.len().max(1) as f64,
            false => self.cpu_wall.as_secs_f64(),
        };
        (self.cpu.as_secs_f64() / wall.max(1e-9)).min(1.0)
    }

    /// Whether the window was long enough for `busy` to mean something
    /// (the CPU clock moves in steps of up to a few milliseconds).
    pub fn busy_is_measured(&self) -> bool {
        self.duration >= std::time::Duration::from_millis(100)
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
        quantile(&self.latency, q)
    }

    /// Connections established per second over the window.
    pub fn connects_per_s(&self) -> f64 {
        self.connects as f64 / self.secs()
    }
}

/// How a threshold came out in one run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// The expression as given.
    pub expr: String,
    /// The run's figure, in the expression's unit (ms for a latency
    /// given in ms, a percentage for `%`); `None` if the run has none.
    pub value: Option<f64>,
    /// Its unit: `us`, `ms`, `s`, `%` or empty.
    pub unit: &'static str,
    /// Whether the run fails on it.
    pub broken: bool,
}

impl std::fmt::Display for Verdict {
    /// `p99>5ms: p99 was 7.310 ms` (or `… the run has no such figure`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.expr.split(['<', '>']).next().unwrap_or("").trim();
        match self.value {
            Some(v) => {
                let unit = match self.unit {
                    "" => String::new(),
                    "%" => "%".into(),
                    u => format!(" {u}"),
                };
                write!(f, "{}: {name} was {}{unit}", self.expr, trim(v))
            }
            None => write!(f, "{}: the run has no {name} figure", self.expr),
        }
    }
}

/// A number as people write it: at most three decimals, no trailing zeros.
fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}
