//! The human rendering of a run: the summary's lines, the `--interval`
//! line, the live line, and the advice when the generator was the limit.
//! It prints what it is given: the figures, and the run's [`Shape`]
//! (what it was asked to do, worded by the configuration).

use std::fmt::Write as _;

use super::{Ending, Fate, Interval, MIB, Progress, RunStage, Schedule, Summary, quantile};

/// What the run was asked to do, as the summary words it: made by the
/// load configuration, so the rendering needs no configuration of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// The target as given (`127.0.0.1:7878`, `tls://…`).
    pub target: String,
    /// `closed loop, pipeline 1`, `open loop at 1000/s`, …
    pub mode: String,
    /// Whether connections are opened again (`--messages-per-connection`
    /// or `--reconnect`): then the connect figures are shown.
    pub churn: bool,
    /// `--half-close`: the errors line shows its kind.
    pub half_close: bool,
    /// `--no-reply`: the latency is the send lag, and is called so.
    pub sends_only: bool,
    /// The likeliest cause when the generator was busy, named from what it
    /// was asked to do.
    pub busy_cause: String,
}

impl Interval {
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
}

impl Ending {
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

impl Fate {
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

impl Schedule {
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

impl Summary {
    /// What to say when the generator was busy (90% or more of its
    /// threads): the likeliest cause, named from what it was asked to do.
    /// `None` when it was not busy, or the window was too short to tell.
    pub fn busy_advice(&self, shape: &Shape) -> Option<String> {
        if !self.busy_is_measured() || self.busy() < 0.9 {
            return None;
        }
        let busy = format!(
            "the generator was busy {:.0}% of its {} thread(s) over the run",
            self.busy() * 100.0,
            self.per_thread.len()
        );
        let cause = &shape.busy_cause;
        Some(format!("{busy}: {cause}"))
    }

    /// The human summary, several lines.
    pub fn to_human(&self, shape: &Shape) -> String {
        let mode = &shape.mode;
        let secs = self.secs();
        let mut out = String::new();
        let plural = if self.connections == 1 { "" } else { "s" };
        let _ = writeln!(
            out,
            "{}: {} connection{plural} ({} established) x {} B, {mode}, {:.2} s measured",
            shape.target,
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
        // --no-reply: nothing comes back; the figure is the send lag.
        let label = if shape.sends_only {
            "send lag µs"
        } else {
            "latency µs "
        };
        let _ = writeln!(
            out,
            "  {label} p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
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
        if shape.churn {
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
        if shape.half_close {
            let _ = write!(out, "  half-close {}", e.half_close);
        }
        // --fail-if: each threshold, held or broken, with the run's figure.
        for verdict in &self.thresholds {
            let said = if verdict.broken { "FAILED" } else { "passed" };
            let _ = write!(out, "\n  threshold   {said} {verdict}");
        }
        out
    }
}
