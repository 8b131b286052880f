//! `--interval D`: the measured window cut into intervals, each made into
//! an [`Interval`] from the counters' deltas. Both generators (streams and
//! datagrams) use it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::counters::Counters;
use super::outcome::{Interval, Update};
use super::schedule::OpenLoop;
use crate::shared::cpu::thread_cpu;
use crate::shared::duration::deadline_after;

/// `--interval D`: cuts the measured window into intervals of `every`,
/// and makes each one an [`Interval`] from the counters' deltas and their
/// interval histograms. Both generators (streams and datagrams) use it.
pub struct Intervals {
    every: Duration,
    /// Where the next interval ends.
    next: Instant,
    /// Where the current one began.
    from: Instant,
    index: u64,
    /// The counters (and this thread's CPU) where the current one began.
    base: Marks,
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
            base: Marks::default(),
            offset: start.saturating_duration_since(run_start),
            ended: VecDeque::new(),
        }
    }

    /// Ends every interval due by `now` (with `last`, also the current one,
    /// cut at the window's end) and queues it for [`hand_out`]. A varying
    /// open-loop `schedule` gives each interval the messages it had due.
    pub(super) fn cut(
        &mut self,
        now: Instant,
        counters: &mut Counters,
        last: bool,
        schedule: Option<&OpenLoop>,
    ) {
        if !last && now < self.next {
            return;
        }
        let cpu = thread_cpu();
        let schedule = schedule.filter(|s| s.plan().varies());
        while let Some(interval) = self.take(now, counters, cpu, last, schedule) {
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
        schedule: Option<&OpenLoop>,
    ) -> Option<Interval> {
        let until = self.next.min(counters.end);
        // The interval the window ends in is cut last of all, when the
        // echoes still awaited at the end have come back or timed out:
        // they are its messages.
        if !last && (now < self.next || self.next >= counters.end) {
            return None;
        }
        if until <= self.from {
            return None;
        }
        let base = self.base;
        let interval = Interval {
            index: self.index,
            start: self.from.saturating_duration_since(counters.measure_from),
            since_run_start: self.offset
                + self.from.saturating_duration_since(counters.measure_from),
            length: until.saturating_duration_since(self.from),
            messages: counters.messages - base.messages,
            bytes_sent: counters.bytes_sent - base.bytes_sent,
            bytes_received: counters.bytes_received - base.bytes_received,
            errors: counters.errors.total() - base.errors,
            latency: counters.interval_latency.clone(),
            connect_latency: counters.interval_connect.clone(),
            handshake_latency: counters.interval_handshake.clone(),
            service: counters.interval_service.clone(),
            cpu: cpu.saturating_sub(base.cpu),
            threads: 1,
            due: schedule.map(|s| s.due_before(until) - s.due_before(self.from)),
        };
        counters.interval_latency.reset();
        counters.interval_connect.reset();
        counters.interval_handshake.reset();
        counters.interval_service.reset();
        self.base = Marks {
            messages: counters.messages,
            bytes_sent: counters.bytes_sent,
            bytes_received: counters.bytes_received,
            errors: counters.errors.total(),
            cpu,
        };
        self.index += 1;
        self.from = until;
        self.next = deadline_after(self.next, self.every);
        Some(interval)
    }
}

/// Hands the intervals that ended to `report`, oldest first.
pub(super) fn hand_out(intervals: &mut Option<Intervals>, update: &mut impl FnMut(Update<'_>)) {
    if let Some(intervals) = intervals {
        while let Some(interval) = intervals.ended.pop_front() {
            update(Update::Interval(&interval));
        }
    }
}

/// The counters (and the thread's CPU) where the current interval began;
/// an interval's figures are the counters' distance from these.
#[derive(Debug, Default, Clone, Copy)]
struct Marks {
    messages: u64,
    bytes_sent: u64,
    bytes_received: u64,
    errors: u64,
    cpu: Duration,
}
