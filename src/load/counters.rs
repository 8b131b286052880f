//! What a load run counts: messages, bytes and latency inside the measured
//! window, and failures by kind. The server keeps its own `Counters`; the
//! two mirror each other in name and place.
//!
//! Next: [`report`](super::report), what is made of them.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::connection::Close;
use super::report::{Interval, Tick};
use crate::shared::duration::deadline_after;

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

/// The counters every connection adds to, and the measured window they
/// count in.
pub(super) struct Counters {
    /// Start of the measured window (far in the future until the clock
    /// starts, see `Generator::start_clock`).
    pub(super) measure_from: Instant,
    /// End of the run (likewise).
    pub(super) end: Instant,
    /// An echo that takes longer than this is a timeout, not a success.
    pub(super) timeout: Duration,
    pub(super) messages: u64,
    pub(super) bytes_sent: u64,
    pub(super) bytes_received: u64,
    pub(super) latency: Histogram<u64>,
    /// Connections established inside the window (churn, reconnects).
    pub(super) connects: u64,
    /// How long each of those took, connect() to established, µs.
    pub(super) connect_latency: Histogram<u64>,
    /// The same two histograms for the current `--interval` only.
    pub(super) interval_latency: Histogram<u64>,
    pub(super) interval_connect: Histogram<u64>,
    pub(super) errors: Errors,
}

/// `--interval D`: cuts the measured window into intervals of `every`,
/// and makes each one an [`Interval`] from the counters' deltas and their
/// interval histograms. Both generators (streams and datagrams) use it.
pub(super) struct Intervals {
    every: Duration,
    /// Where the next interval ends.
    next: Instant,
    /// Where the current one began.
    from: Instant,
    index: u64,
    /// The counters (and this thread's CPU) where the current one began.
    base: (u64, u64, u64, u64, Duration),
    /// From the run's start to the window's start.
    offset: Duration,
    /// Intervals that ended, for the generator's `run` to hand out.
    ended: VecDeque<Interval>,
}

impl Intervals {
    /// Intervals of `every` from `start` (the measured window's start) of
    /// a run that began at `run_start`.
    pub(super) fn new(every: Duration, start: Instant, run_start: Instant) -> Intervals {
        Intervals {
            every,
            next: deadline_after(start, every),
            from: start,
            index: 0,
            base: (0, 0, 0, 0, Duration::ZERO),
            offset: start.saturating_duration_since(run_start),
            ended: VecDeque::new(),
        }
    }

    /// Ends every interval due by `now` (with `last`, also the current one,
    /// cut at the window's end) and queues it for [`hand_out`].
    pub(super) fn tick(&mut self, now: Instant, counters: &mut Counters, last: bool) {
        if !last && now < self.next {
            return;
        }
        let cpu = super::thread_cpu();
        while let Some(interval) = self.take(now, counters, cpu, last) {
            self.ended.push_back(interval);
        }
    }

    /// When the current interval ends.
    pub(super) fn due(&self) -> Instant {
        self.next
    }

    /// The interval that ended by `now` (ending at `until`, at most the
    /// window's end), if one did; the interval histograms start afresh.
    fn take(
        &mut self,
        now: Instant,
        counters: &mut Counters,
        cpu: Duration,
        last: bool,
    ) -> Option<Interval> {
        let until = self.next.min(counters.end);
        if !last && now < self.next {
            return None;
        }
        if until <= self.from {
            return None;
        }
        let (messages, sent, received, errors, cpu_before) = self.base;
        let interval = Interval {
            index: self.index,
            start: self.from.saturating_duration_since(counters.measure_from),
            since_run_start: self.offset
                + self.from.saturating_duration_since(counters.measure_from),
            length: until.saturating_duration_since(self.from),
            messages: counters.messages - messages,
            bytes_sent: counters.bytes_sent - sent,
            bytes_received: counters.bytes_received - received,
            errors: counters.errors.total() - errors,
            latency: counters.interval_latency.clone(),
            connect_latency: counters.interval_connect.clone(),
            cpu: cpu.saturating_sub(cpu_before),
            threads: 1,
        };
        counters.interval_latency.reset();
        counters.interval_connect.reset();
        self.base = (
            counters.messages,
            counters.bytes_sent,
            counters.bytes_received,
            counters.errors.total(),
            cpu,
        );
        self.index += 1;
        self.from = until;
        self.next = deadline_after(self.next, self.every);
        Some(interval)
    }
}

/// Hands the intervals that ended to `report`, oldest first.
pub(super) fn hand_out(intervals: &mut Option<Intervals>, report: &mut impl FnMut(Tick<'_>)) {
    if let Some(intervals) = intervals {
        while let Some(interval) = intervals.ended.pop_front() {
            report(Tick::Interval(&interval));
        }
    }
}

/// A histogram of microseconds, 1 µs to 60 s, 3 significant digits.
pub(super) fn micros_histogram() -> io::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| io::Error::other(e.to_string()))
}

impl Counters {
    /// Nothing counted yet, in the window from `measure_from` to `end`.
    pub(super) fn new(timeout: Duration, measure_from: Instant, end: Instant) -> io::Result<Self> {
        Ok(Counters {
            measure_from,
            end,
            timeout,
            messages: 0,
            bytes_sent: 0,
            bytes_received: 0,
            latency: micros_histogram()?,
            connects: 0,
            connect_latency: micros_histogram()?,
            interval_latency: micros_histogram()?,
            interval_connect: micros_histogram()?,
            errors: Errors::default(),
        })
    }

    /// Counts a message echoed in full at `now` that was sent (closed loop)
    /// or due (open loop) at `at`. An echo later than the timeout is a
    /// timeout, however it was noticed: here, as it arrives, or by the
    /// periodic check in `Generator::expire` if it never does.
    pub(super) fn complete(&mut self, at: Instant, now: Instant) -> Result<(), Close> {
        let took = now.saturating_duration_since(at);
        if took > self.timeout {
            return Err(Close::Timeout);
        }
        if at >= self.measure_from && now <= self.end {
            self.messages += 1;
            let us = (took.as_micros() as u64).max(1);
            self.latency.saturating_record(us);
            self.interval_latency.saturating_record(us);
        }
        Ok(())
    }

    /// Counts a connection whose connect started at `since` and completed
    /// at `now`, when that happened inside the window.
    pub(super) fn connected(&mut self, since: Instant, now: Instant) {
        if since >= self.measure_from && now <= self.end {
            self.connects += 1;
            let took = (now.saturating_duration_since(since).as_micros() as u64).max(1);
            self.connect_latency.saturating_record(took);
            self.interval_connect.saturating_record(took);
        }
    }

    /// Whether bytes moved at `now` count: inside the measured window.
    pub(super) fn measuring(&self, now: Instant) -> bool {
        now >= self.measure_from && now <= self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(timeout: Duration, measure_from: Instant) -> Counters {
        Counters::new(
            timeout,
            measure_from,
            measure_from + Duration::from_secs(10),
        )
        .unwrap()
    }

    /// An echo later than the timeout is a timeout, not a success, however
    /// it was noticed; one just inside it counts, with its latency.
    #[test]
    fn a_late_echo_is_a_timeout_whatever_the_tick() {
        let t0 = Instant::now();
        let mut t = counters(Duration::from_millis(100), t0);
        let late = t.complete(t0, t0 + Duration::from_millis(150));
        assert!(matches!(late, Err(Close::Timeout)), "{late:?}");
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
        let mut t = counters(Duration::from_secs(60), from);
        assert!(!t.measuring(t0));
        assert!(t.measuring(from));
        assert!(!t.measuring(t.end + Duration::from_nanos(1)));
        t.complete(t0, from).unwrap(); // sent before the window: not counted
        let end = t.end;
        t.complete(from, end + Duration::from_millis(1)).unwrap(); // after it
        assert_eq!(t.messages, 0);
    }
}
