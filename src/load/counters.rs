//! What a load run counts: messages, bytes and latency inside the measured
//! window, and failures by kind. The server keeps its own `Counters`; the
//! two mirror each other in name and place.

use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::config::Config;
use super::outcome::{Ending, Errors, Segment, micros_histogram};
use super::schedule::OpenLoop;
use crate::shared::duration::deadline_after;

/// The verdict on an echo that came after `--timeout`: it is not counted,
/// and its connection decides what that means (the stream generator closes
/// it as a timeout, the datagram one counts a loss).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Late;

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
    /// Service time: from each message's actual send to its echo, µs. In
    /// open loop it leaves out the time a message waited to be sent, which
    /// `latency` (from the due time) includes: wrk2's "uncorrected".
    pub(super) service: Histogram<u64>,
    /// Connections established inside the window (churn, reconnects).
    pub(super) connects: u64,
    /// How long each of those took, connect() to established, µs.
    pub(super) connect_latency: Histogram<u64>,
    /// `tls://`: handshakes completed inside the window, in full and
    /// resumed.
    pub(super) handshakes_full: u64,
    pub(super) handshakes_resumed: u64,
    /// How long each of those took, TCP established to handshake done, µs.
    pub(super) handshake_latency: Histogram<u64>,
    /// The same histograms for the current `--interval` only.
    pub(super) interval_latency: Histogram<u64>,
    pub(super) interval_connect: Histogram<u64>,
    pub(super) interval_handshake: Histogram<u64>,
    pub(super) interval_service: Histogram<u64>,
    pub(super) errors: Errors,
    /// What became of the messages in flight when the window closed.
    pub(super) ending: Ending,
    /// A varying open-loop run (a ramp, steps): its figures per stretch
    /// of the window.
    pub(super) segments: Option<Segments>,
}

/// A varying open-loop run's figures per stretch of the window (each of
/// `--rate-steps`, or a piece of a ramp): each message counts in the
/// stretch it was due in, which is what its offered rate was; each error
/// in the stretch it happened in.
#[derive(Debug)]
pub(super) struct Segments {
    /// How long each stretch is (the last may be cut by the window's end).
    pub(super) length: Duration,
    /// The latency of the messages due in each, µs.
    pub(super) latency: Vec<Histogram<u64>>,
    /// The errors that happened in each.
    pub(super) errors: Vec<u64>,
    /// The stretch errors are being counted for, and the error total when
    /// it began.
    mark: (usize, u64),
}

impl Segments {
    /// A varying open-loop run's stretches (see
    /// [`Plan::segment_length`](super::plan::Plan::segment_length)), if it is one.
    pub(super) fn for_config(config: &Config) -> Option<Segments> {
        let plan = config.rate.as_ref()?;
        let length = plan.segment_length(config.duration, config.interval)?;
        Segments::new(length, config.duration).ok()
    }

    /// Stretches of `length` covering `window` (at most
    /// [`MAX_SEGMENTS`](super::plan::MAX_SEGMENTS) by the plan's choice).
    pub(super) fn new(length: Duration, window: Duration) -> io::Result<Segments> {
        let n = (window.as_secs_f64() / length.as_secs_f64().max(1e-9)).ceil() as usize;
        let n = n.clamp(1, super::plan::MAX_SEGMENTS + 1);
        Ok(Segments {
            length,
            latency: (0..n)
                .map(|_| micros_histogram())
                .collect::<io::Result<_>>()?,
            errors: vec![0; n],
            mark: (0, 0),
        })
    }

    /// Which stretch `since` (from the window's start) falls in.
    fn index(&self, since: Duration) -> usize {
        let k = (since.as_secs_f64() / self.length.as_secs_f64().max(1e-9)) as usize;
        k.min(self.latency.len() - 1)
    }
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
            service: micros_histogram()?,
            connects: 0,
            connect_latency: micros_histogram()?,
            handshakes_full: 0,
            handshakes_resumed: 0,
            handshake_latency: micros_histogram()?,
            interval_latency: micros_histogram()?,
            interval_connect: micros_histogram()?,
            interval_handshake: micros_histogram()?,
            interval_service: micros_histogram()?,
            errors: Errors::default(),
            ending: Ending::default(),
            segments: None,
        })
    }

    /// The errors so far belong to the stretch that was running: at `now`
    /// (each turn of the loop, and once at the end), hands them to it when
    /// a new one has begun.
    pub(super) fn note_errors(&mut self, now: Instant) {
        let total = self.errors.total();
        let since = now.saturating_duration_since(self.measure_from);
        let Some(s) = &mut self.segments else { return };
        let k = s.index(since);
        let (current, base) = s.mark;
        s.errors[current] += total - base;
        s.mark = (k, total);
    }

    /// Counts a message echoed in full at `now` that was sent (closed loop)
    /// or due (open loop) at `at`. An echo later than the timeout is a
    /// timeout, however it was noticed: here, as it arrives, or by the
    /// periodic check in `Generator::expire` if it never does.
    ///
    /// A message counts when it was sent inside the window, wherever its
    /// echo lands: one that comes back after the window's end (a stall
    /// at the very end) is counted with its whole latency, and in
    /// [`Ending`] as answered after the window.
    pub(super) fn complete(&mut self, at: Instant, now: Instant) -> Result<(), Late> {
        let took = now.saturating_duration_since(at);
        let settling = now >= self.end && self.sent_in_window(at);
        if took > self.timeout {
            self.ending.timed_out += u64::from(settling);
            return Err(Late);
        }
        if self.sent_in_window(at) {
            self.ending.answered += u64::from(settling);
            self.messages += 1;
            let us = (took.as_micros() as u64).max(1);
            self.latency.saturating_record(us);
            self.interval_latency.saturating_record(us);
            if let Some(s) = &mut self.segments {
                let k = s.index(at.saturating_duration_since(self.measure_from));
                s.latency[k].saturating_record(us);
            }
        }
        Ok(())
    }

    /// Records the service time of a message `complete` counted (due or
    /// sent at `at`, its last byte written at `sent`), echoed at `now`.
    #[inline]
    pub(super) fn served(&mut self, at: Instant, sent: Instant, now: Instant) {
        if self.sent_in_window(at) {
            let us = (now.saturating_duration_since(sent).as_micros() as u64).max(1);
            self.service.saturating_record(us);
            self.interval_service.saturating_record(us);
        }
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

    /// Counts a TLS handshake that began when TCP was up at `up` and
    /// ended at `now`, when that happened inside the window.
    pub(super) fn handshaken(&mut self, up: Instant, now: Instant, resumed: bool) {
        if up >= self.measure_from && now <= self.end {
            if resumed {
                self.handshakes_resumed += 1;
            } else {
                self.handshakes_full += 1;
            }
            let took = (now.saturating_duration_since(up).as_micros() as u64).max(1);
            self.handshake_latency.saturating_record(took);
            self.interval_handshake.saturating_record(took);
        }
    }

    /// The stretches of a varying run, with the messages `schedule` had
    /// due in each (empty for any other run).
    pub(super) fn segments(&self, schedule: Option<&OpenLoop>) -> Vec<Segment> {
        let (Some(s), Some(schedule)) = (&self.segments, schedule) else {
            return Vec::new();
        };
        let window = self.end.saturating_duration_since(self.measure_from);
        let mut out = Vec::new();
        for (k, (latency, &errors)) in s.latency.iter().zip(&s.errors).enumerate() {
            let start = s.length.saturating_mul(k as u32);
            if start >= window {
                break;
            }
            let end = s.length.saturating_mul(k as u32 + 1).min(window);
            let at = |d| deadline_after(self.measure_from, d);
            out.push(Segment {
                start,
                length: end - start,
                due: schedule.due_before(at(end)) - schedule.due_before(at(start)),
                latency: latency.clone(),
                errors,
            });
        }
        out
    }

    /// Whether bytes moved at `now` count: inside the measured window.
    pub(super) fn measuring(&self, now: Instant) -> bool {
        now >= self.measure_from && now <= self.end
    }

    /// Whether a stream's bytes moved at `now` count: from the window's
    /// start on, the settling after its end included. After the end only
    /// the messages sent inside the window are written out and echoed, so
    /// their bytes count with them, as the messages do, and MiB/s agrees
    /// with msgs/s.
    pub(super) fn moving(&self, now: Instant) -> bool {
        now >= self.measure_from
    }

    /// Whether a datagram sent (or due) at `at` is one of the window's:
    /// half open, so that one sent at the very end is not counted sent
    /// with no time left to be answered in.
    pub(super) fn sent_in_window(&self, at: Instant) -> bool {
        at >= self.measure_from && at < self.end
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
        assert_eq!(late, Err(Late));
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
        // Bytes of a stream count on after the end: only the window's
        // messages move then, and they count with their echoes.
        assert!(!t.moving(t0));
        assert!(t.moving(t.end + Duration::from_nanos(1)));
        t.complete(t0, from).unwrap(); // sent before the window: not counted
        let end = t.end;
        t.complete(end, end + Duration::from_millis(1)).unwrap(); // sent after it
        assert_eq!(t.messages, 0);
    }

    /// A message sent inside the window counts however late its echo
    /// comes (within --timeout), with its whole latency, and is said to
    /// have been answered after the window; past --timeout it is a
    /// timeout of the window's end.
    #[test]
    fn an_echo_after_the_window_counts_by_its_send() {
        let t0 = Instant::now();
        let mut t = counters(Duration::from_secs(60), t0);
        let sent = t.end - Duration::from_millis(1);
        t.complete(sent, t.end + Duration::from_secs(5)).unwrap();
        assert_eq!(t.messages, 1);
        assert_eq!(t.latency.max(), t.latency.highest_equivalent(5_001_000));
        assert_eq!((t.ending.answered, t.ending.timed_out), (1, 0));
        let late = t.complete(sent, sent + Duration::from_secs(61));
        assert_eq!(late, Err(Late));
        assert_eq!((t.messages, t.ending.timed_out), (1, 1));
        // Inside the window, neither is an ending's.
        t.complete(t0, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!((t.messages, t.ending.answered), (2, 1));
    }
}
