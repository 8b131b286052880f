//! The JSON rendering of a run (`--json`): one object per line, each a
//! plain serde struct of numbers and strings, rounded to read like the text.

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{Interval, MIB, Schedule, Summary, Verdict, quantile};

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
    half_close: u64,
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
struct SummaryJson<'a> {
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
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    thresholds: &'a [Verdict],
}

/// [`Ending`](super::Ending) in JSON (`in_flight_at_end`).
#[derive(Debug, Serialize)]
struct EndingJson {
    messages: u64,
    answered: u64,
    timed_out: u64,
    lost: u64,
}

impl Interval {
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

impl Schedule {
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

impl Summary {
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
                half_close: e.half_close,
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
            thresholds: &self.thresholds,
        })
    }
}
