//! What a load run tells its user: the report (human and JSON), the
//! schedule an open-loop run kept or did not, the live line, and the
//! verdict with its exit code.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::config::Config;
use crate::shared::addr::{Endpoint, Unresolved};

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
}

impl Errors {
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
    }
}

/// TLS handshakes of a `tls://` run, inside the measured window (the
/// first connections' handshakes happen before the clock starts).
#[derive(Debug, Clone)]
pub struct Handshakes {
    /// Handshakes completed in full.
    pub full: u64,
    /// Handshakes that resumed a session.
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

/// A segment in JSON (`steps`).
#[derive(Debug, Serialize)]
struct SegmentJson {
    start_s: f64,
    length_s: f64,
    offered_per_s: f64,
    achieved_per_s: f64,
    latency_us: Short,
    errors: u64,
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
    pub tls: Option<Handshakes>,
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

    /// One line: `[  1.0s] msgs/s 123456  MiB/s 7.53 / 7.53  p50 120µs  p99 350µs  max 900µs  errors 0  cpu 61%`.
    /// A varying open-loop run puts the offered rate first:
    /// `[  1.0s] offered 2000/s  msgs/s 1998  …`.
    pub fn line(&self) -> String {
        let secs = self.secs();
        let end = (self.start + self.length).as_secs_f64();
        let offered = self
            .offered()
            .map(|r| format!("offered {r:.0}/s  "))
            .unwrap_or_default();
        let handshakes = match self.handshake_latency.len() {
            0 => String::new(),
            n => format!(
                "  handshakes/s {:.0} p99 {}µs",
                n as f64 / secs,
                quantile(&self.handshake_latency, 0.99)
            ),
        };
        format!(
            "[{end:>6.1}s] {offered}msgs/s {:.0}  MiB/s {:.2} / {:.2}  p50 {}µs  p99 {}µs  max {}µs  errors {}  cpu {:.0}%{handshakes}",
            self.messages as f64 / secs,
            self.bytes_sent as f64 / secs / MIB,
            self.bytes_received as f64 / secs / MIB,
            quantile(&self.latency, 0.5),
            quantile(&self.latency, 0.99),
            self.latency.max(),
            self.errors,
            self.busy() * 100.0
        )
    }

    /// One JSON object, `"type":"interval"`, on one line.
    pub fn to_json(&self) -> String {
        let secs = self.secs();
        to_json(&IntervalJson {
            kind: "interval",
            index: self.index,
            start_s: round(self.start.as_secs_f64(), 3),
            duration_s: round(self.length.as_secs_f64(), 3),
            messages: self.messages,
            msgs_per_s: round(self.messages as f64 / secs, 1),
            mib_per_s_sent: round(self.bytes_sent as f64 / secs / MIB, 3),
            mib_per_s_received: round(self.bytes_received as f64 / secs / MIB, 3),
            latency_us: Short::of(&self.latency),
            errors: self.errors,
            cpu_busy: round(self.busy(), 3),
            offered_per_s: self.offered().map(|r| round(r, 1)),
            handshakes_per_s: (!self.handshake_latency.is_empty())
                .then(|| round(self.handshake_latency.len() as f64 / secs, 1)),
            handshake_latency_us: (!self.handshake_latency.is_empty())
                .then(|| Short::of(&self.handshake_latency)),
        })
    }
}

/// `x` rounded to `digits` decimals: JSON that reads like the text.
fn round(x: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    (x * k).round() / k
}

/// Any of the JSON shapes below, on one line.
fn to_json(value: &impl Serialize) -> String {
    // Serializing plain structs of numbers and strings cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// p50, p99 and max, µs.
#[derive(Debug, Serialize)]
struct Short {
    p50: u64,
    p99: u64,
    max: u64,
}

impl Short {
    fn of(h: &Histogram<u64>) -> Short {
        Short {
            p50: quantile(h, 0.5),
            p99: quantile(h, 0.99),
            max: h.max(),
        }
    }
}

/// p50, p90, p99 and max, µs (`p999` too for message latency).
#[derive(Debug, Serialize)]
struct Long {
    p50: u64,
    p90: u64,
    p99: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    p999: Option<u64>,
    max: u64,
}

impl Long {
    fn of(h: &Histogram<u64>, p999: bool) -> Long {
        Long {
            p50: quantile(h, 0.5),
            p90: quantile(h, 0.9),
            p99: quantile(h, 0.99),
            p999: p999.then(|| quantile(h, 0.999)),
            max: h.max(),
        }
    }
}

/// An `--interval --json` line.
#[derive(Debug, Serialize)]
struct IntervalJson {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u64,
    start_s: f64,
    duration_s: f64,
    messages: u64,
    msgs_per_s: f64,
    mib_per_s_sent: f64,
    mib_per_s_received: f64,
    latency_us: Short,
    errors: u64,
    cpu_busy: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    offered_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    handshakes_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    handshake_latency_us: Option<Short>,
}

/// The summary's `errors`.
#[derive(Debug, Serialize)]
struct ErrorsJson {
    connect: u64,
    closed: u64,
    reset: u64,
    timeout: u64,
    mismatch: u64,
    handshake: u64,
    truncated: u64,
    corrupt: u64,
}

/// The summary's `tls` (`tls://` only).
#[derive(Debug, Serialize)]
struct TlsJson {
    handshakes: u64,
    handshakes_per_s: f64,
    full: u64,
    resumed: u64,
    resumed_fraction: f64,
    handshake_latency_us: Long,
}

/// The summary's `schedule` (open loop).
#[derive(Debug, Serialize)]
struct ScheduleJson {
    due: u64,
    sent: u64,
    unsent: u64,
    passes: u64,
    kept: bool,
    lag_us: Short,
}

/// The summary's `udp`.
#[derive(Debug, Serialize)]
struct UdpJson {
    sent: u64,
    answered: u64,
    lost: u64,
    loss_pct: f64,
    late: u64,
    duplicated: u64,
    reordered: u64,
    corrupted: u64,
    jitter_us: f64,
}

/// The summary.
#[derive(Debug, Serialize)]
struct SummaryJson {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    connections: usize,
    size: usize,
    duration_s: f64,
    messages: u64,
    msgs_per_s: f64,
    mib_per_s: f64,
    latency_us: Long,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_us: Option<Long>,
    connects: u64,
    connects_per_s: f64,
    connect_latency_us: Long,
    up_at_end: usize,
    died: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_death_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_death_s: Option<f64>,
    errors: ErrorsJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_flight_at_end: Option<EndingJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<TlsJson>,
    /// `null` when no message was measured.
    cpu_us_per_msg: Option<f64>,
    cpu_busy: f64,
    threads: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<ScheduleJson>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    steps: Vec<SegmentJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    udp: Option<UdpJson>,
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

    /// The summary's `at the end` line, when anything was in flight:
    /// `12 in flight: 10 answered after the window, 2 timed out, 0 lost`.
    pub fn line(&self) -> Option<String> {
        (self.in_flight > 0).then(|| {
            format!(
                "{} in flight: {} answered after the window, {} timed out, {} lost with their connection",
                self.in_flight, self.answered, self.timed_out, self.lost
            )
        })
    }
}

/// [`Ending`] in JSON (`in_flight_at_end`).
#[derive(Debug, Serialize)]
struct EndingJson {
    messages: u64,
    answered: u64,
    timed_out: u64,
    lost: u64,
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

    /// The summary's `connections` line, when there is more to say than
    /// "all up": `16 of 50 up at the end; 34 died between 0.02 s and
    /// 0.91 s; 82 established for 50 slots (--reconnect)`.
    pub fn line(&self, slots: usize, established: usize) -> Option<String> {
        if self.died == 0 && established <= slots && self.up_at_end == slots {
            return None;
        }
        let mut line = format!("{} of {slots} up at the end", self.up_at_end);
        if let (Some(first), Some(last)) = (self.first_death, self.last_death) {
            let _ = write!(
                line,
                "; {} died between {:.2} s and {:.2} s",
                self.died,
                first.as_secs_f64(),
                last.as_secs_f64()
            );
        }
        if established > slots {
            let _ = write!(
                line,
                "; {established} established for {slots} slots (connections opened again)"
            );
        }
        Some(line)
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

/// RFC 3550's interarrival jitter, for one socket: a running mean of how
/// much the transit time of consecutive replies differs, smoothed by 1/16
/// (the RFC's gain), so a single outlier moves it a sixteenth.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Jitter {
    /// The previous reply's transit time (reply seen − datagram sent), ns.
    last_transit_ns: Option<i128>,
    /// The estimate, ns.
    pub estimate_ns: f64,
}

impl Jitter {
    /// A reply whose datagram went at `sent` came back at `now`.
    pub fn on_reply(&mut self, sent: std::time::Instant, now: std::time::Instant) {
        let transit = now.saturating_duration_since(sent).as_nanos() as i128;
        if let Some(last) = self.last_transit_ns {
            let d = (transit - last).abs() as f64;
            self.estimate_ns += (d - self.estimate_ns) / 16.0;
        }
        self.last_transit_ns = Some(transit);
    }

    /// Whether there is an estimate yet (two replies or more).
    pub fn known(&self) -> bool {
        self.last_transit_ns.is_some() && self.estimate_ns > 0.0
    }
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

    /// By how much the schedule was missed: what was not sent, and how many
    /// sends were late, each with its share.
    pub fn shortfall(&self) -> String {
        let pct = |n: u64, of: u64| 100.0 * n as f64 / of.max(1) as f64;
        format!(
            "{} of {} due messages not sent ({:.1}%), {} sends more than 1 ms late ({:.1}%, p99 {} µs)",
            self.unsent(),
            self.due,
            pct(self.unsent(), self.due),
            self.late_sends(),
            pct(self.late_sends(), self.sent),
            self.lag_at(0.99)
        )
    }

    /// One line for the human summary (and the warning when not kept).
    pub fn line(&self) -> String {
        format!(
            "due {}, sent {} in {} passes, not sent {}; send lag µs p50 {}  p99 {}  max {}",
            self.due,
            self.sent,
            self.passes,
            self.unsent(),
            self.lag_at(0.5),
            self.lag_at(0.99),
            self.lag.max()
        )
    }

    fn to_json(&self) -> ScheduleJson {
        ScheduleJson {
            due: self.due,
            sent: self.sent,
            unsent: self.unsent(),
            passes: self.passes,
            kept: self.kept(),
            lag_us: Short::of(&self.lag),
        }
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
                    ("corrupt", e.corrupt)
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

/// A snapshot for the live progress line.
#[derive(Debug, Clone, Copy, Default)]
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

impl Progress {
    /// `elapsed 3.2s  msgs/s 123456  MiB/s 7.5  p99 350µs  errors 0`.
    pub fn line(&self) -> String {
        match self.stage {
            RunStage::Connecting => return format!("connecting...  errors {}", self.errors),
            RunStage::WarmingUp => return format!("warming up...  errors {}", self.errors),
            RunStage::Settling => {
                return format!(
                    "window closed, awaiting the last echoes...  msgs {}  errors {}",
                    self.messages, self.errors
                );
            }
            RunStage::Measuring => {}
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

    /// One JSON object with exactly the documented keys (plus `schedule`
    /// in open loop, `udp` over UDP); `"type":"summary"` first when it
    /// follows `--interval` lines.
    pub fn to_json(&self, typed: bool) -> String {
        let e = &self.errors;
        to_json(&SummaryJson {
            kind: typed.then_some("summary"),
            connections: self.connections,
            size: self.size,
            duration_s: round(self.duration.as_secs_f64(), 3),
            messages: self.messages,
            msgs_per_s: round(self.msgs_per_s(), 1),
            mib_per_s: round(self.mib_per_s(), 3),
            latency_us: Long::of(&self.latency, true),
            service_us: self.service.as_ref().map(|h| Long::of(h, true)),
            connects: self.connects,
            connects_per_s: round(self.connects_per_s(), 1),
            connect_latency_us: Long::of(&self.connect_latency, false),
            up_at_end: self.fate.up_at_end,
            died: self.fate.died,
            first_death_s: self.fate.first_death.map(|d| round(d.as_secs_f64(), 3)),
            last_death_s: self.fate.last_death.map(|d| round(d.as_secs_f64(), 3)),
            errors: ErrorsJson {
                connect: e.connect,
                closed: e.closed,
                reset: e.reset,
                timeout: e.timeout,
                mismatch: e.mismatch,
                handshake: e.handshake,
                truncated: e.truncated,
                corrupt: e.corrupt,
            },
            in_flight_at_end: self.ending.map(|n| EndingJson {
                messages: n.in_flight,
                answered: n.answered,
                timed_out: n.timed_out,
                lost: n.lost,
            }),
            tls: self.tls.as_ref().map(|t| {
                let all = t.full + t.resumed;
                TlsJson {
                    handshakes: all,
                    handshakes_per_s: round(all as f64 / self.secs(), 1),
                    full: t.full,
                    resumed: t.resumed,
                    resumed_fraction: round(t.resumed as f64 / all.max(1) as f64, 4),
                    handshake_latency_us: Long::of(&t.latency, false),
                }
            }),
            cpu_us_per_msg: self.cpu_us_per_msg().map(|us| round(us, 3)),
            cpu_busy: round(self.busy(), 3),
            threads: self.per_thread.iter().map(|m| round(*m, 1)).collect(),
            schedule: self.schedule.as_ref().map(Schedule::to_json),
            steps: self
                .segments
                .iter()
                .map(|g| SegmentJson {
                    start_s: round(g.start.as_secs_f64(), 3),
                    length_s: round(g.length.as_secs_f64(), 3),
                    offered_per_s: round(g.offered(), 1),
                    achieved_per_s: round(g.achieved(), 1),
                    latency_us: Short::of(&g.latency),
                    errors: g.errors,
                })
                .collect(),
            udp: self.datagrams.map(|d| UdpJson {
                sent: d.sent,
                answered: d.answered,
                lost: d.lost,
                loss_pct: round(d.loss_pct(), 3),
                late: d.late,
                duplicated: d.duplicated,
                reordered: d.reordered,
                corrupted: d.corrupted,
                jitter_us: round(d.jitter_us(), 1),
            }),
        })
    }

    /// What to say when the generator was busy (90% or more of its
    /// threads): the likeliest cause, named from what it was asked to do.
    /// `None` when it was not busy, or the window was too short to tell.
    pub fn busy_advice(&self, config: &Config) -> Option<String> {
        if !self.busy_is_measured() || self.busy() < 0.9 {
            return None;
        }
        let busy = format!(
            "the generator was busy {:.0}% of its {} thread(s) over the run",
            self.busy() * 100.0,
            self.per_thread.len()
        );
        let cause = match &config.rate {
            Some(_) if config.spin.is_some_and(|s| !s.is_zero()) => format!(
                "it spins {:?} before each due message (--spin) instead of sleeping; \
                 a shorter --spin, or none, frees the CPU",
                config.spin.unwrap_or_default()
            ),
            Some(plan) if config.coalesce.is_zero() && plan.peak() >= 1000.0 => format!(
                "with --coalesce 0 it wakes for every one of {} msgs/s, and a wake-up \
                 costs far more than a send; --coalesce 1ms sends what falls due in one pass",
                plan.peak()
            ),
            Some(_) => "it may be the limit, not the server (try --threads, fewer \
                        connections per thread, or a longer --coalesce)"
                .to_string(),
            None => "it may be the limit, not the server (try --threads, or fewer \
                     connections per thread)"
                .to_string(),
        };
        Some(format!("{busy}: {cause}"))
    }

    /// The human summary, several lines.
    pub fn to_human(&self, config: &Config) -> String {
        let mode = match &config.rate {
            Some(plan) if plan.peak() * config.coalesce.as_secs_f64() > 1.0 => format!(
                "open loop at {} in passes every {:?}",
                plan.describe(),
                config.coalesce
            ),
            Some(plan) => format!("open loop at {}", plan.describe()),
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
        if let Some(service) = &self.service {
            let _ = writeln!(
                out,
                "  service µs  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (from each actual send)",
                quantile(service, 0.5),
                quantile(service, 0.9),
                quantile(service, 0.99),
                quantile(service, 0.999),
                service.max()
            );
        }
        if config.messages_per_connection.is_some() || config.reconnect {
            let c = &self.connect_latency;
            let _ = writeln!(
                out,
                "  connects    {} ({:.1} conns/s), connect µs p50 {}  p90 {}  p99 {}  max {}",
                self.connects,
                self.connects_per_s(),
                quantile(c, 0.5),
                quantile(c, 0.9),
                quantile(c, 0.99),
                c.max()
            );
        }
        if let Some(t) = self.tls.as_ref().filter(|t| t.full + t.resumed > 0) {
            let all = t.full + t.resumed;
            let _ = writeln!(
                out,
                "  handshakes  {all} ({:.1}/s; full {}, resumed {}), handshake µs p50 {}  p90 {}  p99 {}  max {}",
                all as f64 / self.secs(),
                t.full,
                t.resumed,
                quantile(&t.latency, 0.5),
                quantile(&t.latency, 0.9),
                quantile(&t.latency, 0.99),
                t.latency.max()
            );
        }
        if let Some(line) = self.fate.line(self.connections, self.established) {
            let _ = writeln!(out, "  connections {line}");
        }
        if let Some(schedule) = &self.schedule {
            let _ = writeln!(out, "  schedule    {}", schedule.line());
        }
        if let Some(line) = self.ending.as_ref().and_then(Ending::line) {
            let _ = writeln!(out, "  at the end  {line}");
        }
        if !self.segments.is_empty() {
            let _ = writeln!(
                out,
                "  steps       {:>8} {:>10} {:>10} {:>8} {:>8} {:>8} {:>6}",
                "from s", "offered/s", "achieved/s", "p50 µs", "p99 µs", "max µs", "errors"
            );
        }
        for g in &self.segments {
            let _ = writeln!(
                out,
                "              {:>8.2} {:>10.1} {:>10.1} {:>8} {:>8} {:>8} {:>6}",
                g.start.as_secs_f64(),
                g.offered(),
                g.achieved(),
                quantile(&g.latency, 0.5),
                quantile(&g.latency, 0.99),
                g.latency.max(),
                g.errors
            );
        }
        if let Some(d) = &self.datagrams {
            let _ = writeln!(
                out,
                "  datagrams   sent {}, answered {}, lost {} ({:.2}%), late {}, duplicated {}, reordered {}, corrupted {}; jitter {:.1} µs",
                d.sent,
                d.answered,
                d.lost,
                d.loss_pct(),
                d.late,
                d.duplicated,
                d.reordered,
                d.corrupted,
                d.jitter_us()
            );
        }
        let threads = match self.per_thread.as_slice() {
            [_] => "1 thread".to_string(),
            each => {
                let each: Vec<String> = each.iter().map(|m| format!("{m:.0}")).collect();
                format!("{} threads (msgs/s {})", each.len(), each.join(" / "))
            }
        };
        let cpu = match self.cpu_us_per_msg() {
            Some(us) => format!("{us:.2} µs CPU per message"),
            None => format!(
                "{:.2} ms CPU, no message measured",
                self.cpu.as_secs_f64() * 1e3
            ),
        };
        let _ = writeln!(
            out,
            "  generator   {cpu}, {:.0}% busy on {threads}",
            self.busy() * 100.0,
        );
        let e = &self.errors;
        let _ = write!(
            out,
            "  errors      connect {}  closed {}  reset {}  timeout {}  mismatch {}",
            e.connect, e.closed, e.reset, e.timeout, e.mismatch
        );
        if self.tls.is_some() {
            let _ = write!(
                out,
                "  handshake {}  truncated {}  corrupt {}",
                e.handshake, e.truncated, e.corrupt
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an open-loop run reports about its schedule.
    #[test]
    fn schedule_kept_and_not_kept() {
        let mut lag = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        lag.record(20).unwrap();
        let kept = Schedule {
            due: 10,
            sent: 10,
            passes: 1,
            lag: lag.clone(),
        };
        assert!(kept.kept());
        assert_eq!(kept.unsent(), 0);
        let short = Schedule {
            due: 10,
            sent: 7,
            passes: 1,
            lag: lag.clone(),
        };
        assert!(!short.kept());
        assert_eq!(short.unsent(), 3);
        assert!(
            short
                .line()
                .starts_with("due 10, sent 7 in 1 passes, not sent 3; send lag µs p50 20")
        );
        lag.record(5_000).unwrap();
        lag.record(5_000).unwrap();
        let late = Schedule {
            due: 3,
            sent: 3,
            passes: 1,
            lag,
        };
        assert!(
            !late.kept(),
            "2 of 3 sends 5 ms late is not keeping the schedule"
        );
        assert_eq!(
            late.shortfall(),
            "0 of 3 due messages not sent (0.0%), 2 sends more than 1 ms late (66.7%, p99 5003 µs)"
        );
        // One outlier among 20,000 on-time sends keeps the schedule.
        let mut lag = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        lag.record_n(3, 19_999).unwrap();
        lag.record(4_500).unwrap();
        let outlier = Schedule {
            due: 20_000,
            sent: 20_000,
            passes: 1,
            lag,
        };
        assert!(outlier.kept());
    }

    fn report(established: usize, errors: Errors, messages: u64) -> Summary {
        Summary {
            tls: None,
            connections: 2,
            established,
            size: 64,
            duration: Duration::from_secs(1),
            messages,
            bytes_sent: 0,
            bytes_received: 0,
            latency: Histogram::new(3).unwrap(),
            connects: 0,
            connect_latency: Histogram::new(3).unwrap(),
            errors,
            cpu: Duration::ZERO,
            cpu_wall: Duration::ZERO,
            per_thread: vec![0.0],
            datagrams: None,
            ending: None,
            segments: Vec::new(),
            first_connect_error: Some("connection refused".into()),
            fate: Fate::default(),
            service: None,
            schedule: None,
        }
    }

    /// Two threads' summaries as one: counts and histograms add up, the
    /// schedule too, and each thread keeps its msgs/s.
    #[test]
    fn merged_summaries_add_up() {
        let mut a = report(2, Errors::default(), 10);
        a.latency.record(100).unwrap();
        a.per_thread = vec![10.0];
        a.cpu = Duration::from_millis(30);
        let mut b = report(
            1,
            Errors {
                reset: 2,
                ..Errors::default()
            },
            5,
        );
        b.latency.record(300).unwrap();
        b.latency.record(300).unwrap();
        b.per_thread = vec![5.0];
        b.cpu = Duration::from_millis(20);
        b.duration = Duration::from_secs(2);
        let all = Summary::merge(vec![a, b]).unwrap();
        assert_eq!((all.connections, all.established, all.messages), (4, 3, 15));
        assert_eq!(
            (all.latency.len(), all.latency.max()),
            (3, all.latency.highest_equivalent(300))
        );
        assert_eq!(all.errors.reset, 2);
        assert_eq!(all.duration, Duration::from_secs(2));
        assert_eq!(all.per_thread, [10.0, 5.0]);
        assert_eq!(all.cpu, Duration::from_millis(50));
        assert!((all.busy() - 0.05 / 4.0).abs() < 1e-9, "{}", all.busy());
        assert!(Summary::merge(Vec::new()).is_none());
    }

    /// The verdict and its exit code, in the documented order.
    #[test]
    fn failure_verdicts_and_exit_codes() {
        let addr: Endpoint = "127.0.0.1:9".parse().unwrap();
        let refused = Errors {
            connect: 2,
            ..Errors::default()
        };
        let f = report(0, refused, 0).failure(&addr).unwrap();
        assert_eq!(
            (f.exit_code(), f.to_string().as_str()),
            (7, "could not connect to 127.0.0.1:9: connection refused")
        );
        let reset = Errors {
            reset: 1,
            ..Errors::default()
        };
        let f = report(2, reset, 10).failure(&addr).unwrap();
        assert_eq!(
            (f.exit_code(), f.to_string().as_str()),
            (
                1,
                "1 errors (connect 0, closed 0, reset 1, timeout 0, mismatch 0)"
            )
        );
        let f = report(2, Errors::default(), 0).failure(&addr).unwrap();
        assert_eq!(
            (f.exit_code(), f.to_string().as_str()),
            (1, "no message was echoed")
        );
        assert_eq!(report(2, Errors::default(), 10).failure(&addr), None);
    }

    /// Busy is the CPU over the wall time it was read across, and never
    /// above 1: a late last turn or the CPU clock's step (1.016 on a 2 s
    /// window before) is not a thread busier than the clock. With no
    /// message there is no CPU per message.
    #[test]
    fn busy_is_bounded_and_per_message_needs_a_message() {
        let mut r = report(2, Errors::default(), 0);
        r.cpu = Duration::from_millis(2032);
        r.cpu_wall = Duration::from_millis(2000);
        assert_eq!(r.busy(), 1.0);
        r.cpu = Duration::from_millis(900);
        r.cpu_wall = Duration::from_millis(1200);
        assert!(
            (r.busy() - 0.75).abs() < 1e-9,
            "over the readings' wall time"
        );
        assert_eq!(r.cpu_us_per_msg(), None);
        assert!(r.to_json(false).contains("\"cpu_us_per_msg\":null"));
        r.messages = 300;
        assert_eq!(r.cpu_us_per_msg(), Some(3000.0));
    }

    /// The busy warning names the cause it can see in the configuration:
    /// a spin, a wake-up per message, or the generator's own limit.
    #[test]
    fn busy_advice_names_the_cause() {
        let mut busy = report(2, Errors::default(), 10);
        busy.per_thread = vec![1.0];
        busy.duration = Duration::from_secs(1);
        busy.cpu = Duration::from_millis(950);
        let closed = Config::default();
        let said = busy.busy_advice(&closed).unwrap();
        assert!(
            said.starts_with("the generator was busy 95% of its 1 thread(s)"),
            "{said}"
        );
        assert!(
            said.ends_with("(try --threads, or fewer connections per thread)"),
            "{said}"
        );
        let open = Config {
            rate: Some(crate::load::Plan::Flat(50_000.0)),
            ..Config::default()
        };
        assert!(
            busy.busy_advice(&open)
                .unwrap()
                .contains("a longer --coalesce")
        );
        let each = Config {
            coalesce: Duration::ZERO,
            ..open.clone()
        };
        assert!(
            busy.busy_advice(&each)
                .unwrap()
                .contains("with --coalesce 0 it wakes for every one of 50000 msgs/s")
        );
        let spinning = Config {
            spin: Some(Duration::from_micros(300)),
            ..each
        };
        assert!(
            busy.busy_advice(&spinning)
                .unwrap()
                .contains("it spins 300µs before each")
        );
        busy.cpu = Duration::from_millis(500);
        assert_eq!(busy.busy_advice(&spinning), None, "50% is not busy");
    }

    /// The live line says "connecting" before the clock starts and
    /// "warming up" only inside a --warmup; threads merge to the earliest.
    #[test]
    fn the_live_line_names_the_stage() {
        let t0 = std::time::Instant::now();
        let later = t0 + Duration::from_secs(1);
        let end = later + Duration::from_secs(1);
        assert_eq!(RunStage::at(t0, false, later, end), RunStage::Connecting);
        assert_eq!(RunStage::at(t0, true, later, end), RunStage::WarmingUp);
        assert_eq!(RunStage::at(later, true, later, end), RunStage::Measuring);
        assert_eq!(RunStage::at(end, true, later, end), RunStage::Settling);
        let connecting = Progress {
            stage: RunStage::Connecting,
            ..Progress::default()
        };
        assert_eq!(connecting.line(), "connecting...  errors 0");
        let warming = Progress {
            stage: RunStage::WarmingUp,
            ..Progress::default()
        };
        assert_eq!(warming.line(), "warming up...  errors 0");
        assert!(Progress::default().line().starts_with("elapsed "));
        assert!(RunStage::Connecting < RunStage::WarmingUp);
        assert!(RunStage::WarmingUp < RunStage::Measuring);
    }

    /// RFC 3550's jitter: steady transit times give none; alternating
    /// transits 100 µs apart move the estimate a sixteenth of the way each
    /// time, toward 100 µs.
    #[test]
    fn jitter_follows_rfc_3550() {
        let t0 = std::time::Instant::now();
        let us = Duration::from_micros;
        let mut steady = Jitter::default();
        for k in 0..10 {
            let sent = t0 + us(1000 * k);
            steady.on_reply(sent, sent + us(50));
        }
        assert_eq!(steady.estimate_ns, 0.0);
        assert!(!steady.known());
        let mut varying = Jitter::default();
        varying.on_reply(t0, t0 + us(50));
        varying.on_reply(t0 + us(1000), t0 + us(1150));
        assert_eq!(varying.estimate_ns, 100_000.0 / 16.0);
        for k in 2..400u64 {
            let sent = t0 + us(1000 * k);
            varying.on_reply(sent, sent + us(if k % 2 == 0 { 50 } else { 150 }));
        }
        assert!(
            (varying.estimate_ns - 100_000.0).abs() < 1.0,
            "{}",
            varying.estimate_ns
        );
        let figures = DatagramFigures {
            jitter_sum_ns: 300_000.0,
            jitter_sockets: 3,
            ..DatagramFigures::default()
        };
        assert_eq!(figures.jitter_us(), 100.0);
    }

    /// The connections line: nothing when all were up throughout; who is
    /// up, who died and when, and reconnects explained, otherwise.
    #[test]
    fn the_connections_line_tells_their_fate() {
        let all_up = Fate {
            up_at_end: 50,
            ..Fate::default()
        };
        assert_eq!(all_up.line(50, 50), None);
        let mut fate = Fate {
            up_at_end: 16,
            ..Fate::default()
        };
        for ms in [20, 400, 910] {
            fate.death(Duration::from_millis(ms));
        }
        assert_eq!(
            fate.line(50, 82).unwrap(),
            "16 of 50 up at the end; 3 died between 0.02 s and 0.91 s; \
             82 established for 50 slots (connections opened again)"
        );
        let mut other = Fate::default();
        other.death(Duration::from_millis(5));
        fate.add(&other);
        assert_eq!(
            (fate.died, fate.first_death),
            (4, Some(Duration::from_millis(5)))
        );
        assert_eq!(fate.last_death, Some(Duration::from_millis(910)));
    }
}
