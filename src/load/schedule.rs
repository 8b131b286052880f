//! The open-loop schedule (`--rate R`), one for both generators: message
//! `n` is due at `origin + n / R`, whether or not earlier echoes came back.
//!
//! [`OpenLoop`] knows when each message is due, hands them out in order
//! ([`peek`](OpenLoop::peek), then [`take`](OpenLoop::take) once a socket
//! can carry it), records how late each send was, says when the loop must
//! wake for the next one, and counts what fell due in the measured window
//! for the report. Both the stream generator and the datagram generator
//! own one; before, each kept its own arithmetic and they drifted apart
//! (one counted `ceil(elapsed·R)` from the clock's start, the other
//! `floor(elapsed·R) + 1` from the run's; the report's `due` was computed
//! two ways).
//!
//! Due times come from one function, [`OpenLoop::due_time`]; every count
//! is a count of due times, so rounding cannot make two answers differ.

use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::Token;

use super::counters::micros_histogram;
use super::outcome::Schedule;
use crate::shared::duration::{deadline_after, nth_tick};

/// The most due messages handed out in one turn; the rest wait for the next
/// turn, after a poll, so that echoes are read in between.
pub const DEAL_PER_TURN: u64 = 1024;

/// The most the open-loop timer wakes the loop before a message is due;
/// the loop then polls without sleeping until the due time. A sleeping CPU
/// (a virtual one, especially) takes 50–300 µs to wake from a timer; a
/// schedule kept only by the timer sends every message that late, and the
/// delay is charged to the server. Spinning the last stretch keeps sends
/// within microseconds.
pub const SPIN: Duration = Duration::from_micros(300);

/// The share of the time between two due messages that may be spent
/// spinning: the spin before each message is `SPIN` or this share of
/// `1 / rate`, whichever is shorter. At 100 msgs/s that is the whole
/// `SPIN` (3% of a core) and sends leave within microseconds; at 5,000/s
/// it is 10 µs, so the generator sleeps between messages instead of
/// spinning through all of them (it used to be 98% busy there), and a send
/// is as late as the timer's wake-up.
pub const SPIN_SHARE: f64 = 0.05;

/// The open-loop timer's token in either generator's poll (connection
/// and socket tokens are their indices).
pub const TIMER: Token = Token(usize::MAX);

/// A running open-loop schedule.
#[derive(Debug)]
pub struct OpenLoop {
    rate: f64,
    /// `--spin`, if given.
    spin: Option<Duration>,
    /// When message 0 is due; `None` until the clock starts.
    origin: Option<Instant>,
    /// Messages handed out so far (the next one is number `dealt`).
    dealt: u64,
    /// Of those, the ones due inside the measured window.
    dealt_measured: u64,
    /// How late each measured message was handed out, µs (1 = on time).
    lag: Histogram<u64>,
}

impl OpenLoop {
    /// `rate` messages a second, from an origin set by [`start`](Self::start),
    /// spinning `spin` before each (`None`: see [`spin`](Self::spin)).
    pub fn new(rate: f64, spin: Option<Duration>) -> io::Result<OpenLoop> {
        Ok(OpenLoop {
            rate,
            spin,
            origin: None,
            dealt: 0,
            dealt_measured: 0,
            lag: micros_histogram()?,
        })
    }

    /// Starts the schedule: message 0 is due at `origin`.
    pub fn start(&mut self, origin: Instant) {
        self.origin = Some(origin);
    }

    /// When message `n` is due, once the schedule has started.
    pub fn due_time(&self, n: u64) -> Option<Instant> {
        Some(deadline_after(self.origin?, nth_tick(n, self.rate)))
    }

    /// How many messages are due strictly before `at`.
    pub fn due_before(&self, at: Instant) -> u64 {
        let Some(origin) = self.origin.filter(|&o| at > o) else {
            return 0;
        };
        // An estimate from the rate, then set exactly by the due times.
        let estimate = (at - origin).as_secs_f64() * self.rate;
        let mut n = estimate.ceil().min(u64::MAX as f64 / 2.0) as u64;
        while n > 0 && self.due_time(n - 1).is_some_and(|t| t >= at) {
            n -= 1;
        }
        while self.due_time(n).is_some_and(|t| t < at) {
            n += 1;
        }
        n
    }

    /// When the next message is due, if it is due before `end`.
    pub fn next_due(&self, end: Instant) -> Option<Instant> {
        self.due_time(self.dealt).filter(|&at| at < end)
    }

    /// The next message's due time if it is due by `now` (and before
    /// `end`): the caller hands it to a socket, then calls [`take`](Self::take).
    pub fn peek(&self, now: Instant, end: Instant) -> Option<Instant> {
        self.next_due(end).filter(|&at| at <= now)
    }

    /// The message [`peek`](Self::peek) gave, due at `at`, was handed out at
    /// `now`: the next one is up. Its lag is recorded when it was due in
    /// the window starting at `measure_from`.
    pub fn take(&mut self, at: Instant, now: Instant, measure_from: Instant) {
        self.dealt += 1;
        if at >= measure_from {
            self.dealt_measured += 1;
            let late = now.saturating_duration_since(at).as_micros() as u64;
            self.lag.saturating_record(late.max(1));
        }
    }

    /// How long before each message the loop spins: `--spin` if given,
    /// else [`SPIN`], or [`SPIN_SHARE`] of the time between two messages if
    /// that is shorter.
    pub fn spin(&self) -> Duration {
        if let Some(spin) = self.spin {
            return spin;
        }
        Duration::try_from_secs_f64(SPIN_SHARE / self.rate)
            .unwrap_or(SPIN)
            .min(SPIN)
    }

    /// When the loop starts spinning for message due `at`.
    fn spin_start(&self, at: Instant) -> Instant {
        at.checked_sub(self.spin()).unwrap_or(at)
    }

    /// When the open-loop timer should fire: [`spin`](Self::spin) before
    /// the next due message, or `None` when that moment has passed (the loop
    /// then polls without sleeping) or nothing more is due before `end`.
    pub fn spin_from(&self, now: Instant, end: Instant) -> Option<Instant> {
        let at = self.next_due(end)?;
        Some(self.spin_start(at)).filter(|&from| from > now)
    }

    /// The loop's own deadline for the next message: `now` (do not sleep)
    /// once it is within [`spin`](Self::spin) of being due, otherwise none
    /// when a timer wakes the loop (`timed`), or the due time itself when
    /// none does.
    pub fn wake(&self, now: Instant, end: Instant, timed: bool) -> Option<Instant> {
        let at = self.next_due(end)?;
        if !timed {
            return Some(at);
        }
        (self.spin_start(at) <= now).then_some(now)
    }

    /// What the report says of the schedule over the window from
    /// `measure_from` to `end`: due, sent, and the lag of the sends.
    pub fn kept(&self, measure_from: Instant, end: Instant) -> Schedule {
        Schedule {
            due: self
                .due_before(end)
                .saturating_sub(self.due_before(measure_from)),
            sent: self.dealt_measured,
            lag: self.lag.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counting due times and reading them agree exactly, at the boundaries
    /// too (333.3/s does not divide a second).
    #[test]
    fn due_counts_match_due_times() {
        let mut s = OpenLoop::new(333.3, None).unwrap();
        let t0 = Instant::now();
        s.start(t0);
        for n in [0u64, 1, 2, 333, 334, 1000, 33_330] {
            let at = s.due_time(n).unwrap();
            assert_eq!(s.due_before(at), n, "strictly before message {n}");
            assert_eq!(s.due_before(at + Duration::from_nanos(1)), n + 1);
        }
        assert_eq!(s.due_before(t0), 0);
        // A one-second window holds 334 due times of 333.3/s (0 to 333).
        assert_eq!(s.kept(t0, t0 + Duration::from_secs(1)).due, 334);
    }

    /// Handing out: only what is due by now and before the end, in order;
    /// the lag is recorded for messages due in the window.
    #[test]
    fn messages_are_handed_out_when_due() {
        let mut s = OpenLoop::new(1000.0, None).unwrap();
        let t0 = Instant::now();
        let end = t0 + Duration::from_millis(3);
        assert_eq!(s.peek(t0, end), None, "not started");
        s.start(t0);
        let mut sent = Vec::new();
        let now = t0 + Duration::from_micros(1500);
        while let Some(at) = s.peek(now, end) {
            s.take(at, now, t0 + Duration::from_millis(1));
            sent.push(at);
        }
        assert_eq!(sent, [t0, t0 + Duration::from_millis(1)]);
        let kept = s.kept(t0 + Duration::from_millis(1), end);
        assert_eq!((kept.due, kept.sent), (2, 1));
        assert_eq!(kept.lag.max(), 500, "message 1 went out 500 µs late");
        let later = t0 + Duration::from_secs(1);
        assert_eq!(s.peek(later, end), Some(t0 + Duration::from_millis(2)));
        s.take(t0 + Duration::from_millis(2), later, t0);
        assert_eq!(s.peek(later, end), None, "message 3 is due at the end");
    }

    /// The spin is SPIN at low rates and a share of the gap at high ones.
    #[test]
    fn the_spin_shrinks_with_the_gap() {
        let spin = |rate| OpenLoop::new(rate, None).unwrap().spin();
        assert_eq!(spin(100.0), SPIN);
        assert_eq!(spin(5000.0), Duration::from_micros(10));
        assert_eq!(spin(100_000.0), Duration::from_nanos(500));
        let asked = Duration::from_micros(250);
        assert_eq!(OpenLoop::new(5000.0, Some(asked)).unwrap().spin(), asked);
    }

    /// The timer fires SPIN before the next message; inside that stretch
    /// the loop does not sleep; without a timer it sleeps until the due time.
    #[test]
    fn the_timer_and_the_wake_up() {
        let mut s = OpenLoop::new(100.0, None).unwrap();
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(1);
        s.start(t0);
        s.take(t0, t0, t0);
        let next = t0 + Duration::from_millis(10);
        assert_eq!(s.spin_from(t0, end), Some(next - SPIN));
        assert_eq!(s.wake(t0, end, true), None, "the timer will wake us");
        assert_eq!(s.wake(t0, end, false), Some(next));
        let close = next - SPIN / 2;
        assert_eq!(s.spin_from(close, end), None);
        assert_eq!(s.wake(close, end, true), Some(close), "spin");
    }
}
