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

use super::outcome::{Schedule, micros_histogram};
use super::plan::Plan;
use crate::shared::duration::{deadline_after, nth_period};

/// The most due messages handed out in one turn; the rest wait for the next
/// turn, after a poll, so that echoes are read in between.
pub const DEAL_PER_TURN: u64 = 1024;

/// The longest the loop spins before a due message. A sleeping CPU (a
/// virtual one, especially) wakes from a timer some tens of µs late, now and
/// then hundreds; a schedule kept only by the timer sends every message that
/// late, and the delay is charged to the server. Spinning the last stretch
/// keeps sends within microseconds.
pub const SPIN: Duration = Duration::from_micros(300);

/// The share of the time between two due messages that may be spent
/// spinning: the spin before a message is at most this share of `1 / rate`.
/// At 100 msgs/s that allows all of `SPIN` (3% of a core); at 5,000/s
/// 10 µs, so the generator sleeps between messages instead of spinning
/// through all of them (it used to be 98% busy there).
pub const SPIN_SHARE: f64 = 0.05;

/// The open-loop timer's token in either generator's poll (connection
/// and socket tokens are their indices).
pub const TIMER: Token = Token(usize::MAX);

/// A running open-loop schedule.
#[derive(Debug)]
pub struct OpenLoop {
    /// How the rate runs over the window (flat, a ramp, steps).
    plan: Plan,
    /// The warm-up before the plan's start, at its first rate.
    warmup: Duration,
    /// Messages due in the warm-up ([`Plan::lead`]).
    lead: u64,
    /// `--spin`, if given; otherwise the spin follows the timer's measured
    /// lateness (see [`spin`](Self::spin)).
    spin: Option<Duration>,
    /// `--coalesce`: how late a send may be to share a wake-up.
    coalesce: Duration,
    /// When message 0 is due; `None` until the clock starts.
    origin: Option<Instant>,
    /// Messages handed out so far (the next one is number `dealt`).
    dealt: u64,
    /// Of those, the ones due inside the measured window.
    dealt_measured: u64,
    /// Passes that handed out a message due inside the measured window.
    passes_measured: u64,
    /// How late each measured message was handed out, µs (1 = on time).
    lag: Histogram<u64>,
    /// When a message was last handed out: the next pass is at least
    /// `coalesce` after it.
    last_pass: Option<Instant>,
    /// When the pass in progress was planned (see [`open_pass`](Self::open_pass)).
    pass: Instant,
    /// How late the timer has woken the loop lately: a maximum that loses
    /// a 64th at each wake-up, so one slow wake-up lengthens the next spins
    /// for a while (about 45 wake-ups to halve) and a run of prompt ones
    /// shortens them again.
    timer_late: Duration,
}

impl OpenLoop {
    /// `rate` messages a second, from an origin set by [`start`](Self::start),
    /// spinning `spin` before each (`None`: see [`spin`](Self::spin)), and
    /// letting a send wait up to `coalesce` to share a wake-up.
    #[cfg(test)]
    pub fn new(rate: f64, spin: Option<Duration>, coalesce: Duration) -> io::Result<OpenLoop> {
        OpenLoop::planned(Plan::Flat(rate), Duration::ZERO, spin, coalesce)
    }

    /// A schedule that follows `plan` from the end of `warmup` (which runs
    /// at the plan's first rate), spinning `spin` before each message
    /// (`None`: see [`spin`](Self::spin)) and letting a send wait up to
    /// `coalesce` to share a wake-up.
    pub fn planned(
        plan: Plan,
        warmup: Duration,
        spin: Option<Duration>,
        coalesce: Duration,
    ) -> io::Result<OpenLoop> {
        let now = Instant::now();
        Ok(OpenLoop {
            pass: now,
            lead: plan.lead(warmup),
            warmup: if plan.varies() {
                warmup
            } else {
                Duration::ZERO
            },
            plan,
            spin,
            coalesce,
            origin: None,
            dealt: 0,
            dealt_measured: 0,
            passes_measured: 0,
            lag: micros_histogram()?,
            last_pass: None,
            // Until the timer has been seen, assume the worst.
            timer_late: SPIN,
        })
    }

    /// Starts the schedule: message 0 is due at `origin`.
    pub fn start(&mut self, origin: Instant) {
        self.origin = Some(origin);
    }

    /// When message `n` is due, once the schedule has started.
    pub fn due_time(&self, n: u64) -> Option<Instant> {
        let offset = match n.checked_sub(self.lead) {
            None => nth_period(n, self.plan.first()),
            Some(k) => self.warmup.saturating_add(self.plan.due(k)),
        };
        Some(deadline_after(self.origin?, offset))
    }

    /// How late each measured message was handed out so far, µs.
    pub fn lag(&self) -> &Histogram<u64> {
        &self.lag
    }

    /// The plan it follows.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// How many messages are due strictly before `at`.
    pub fn due_before(&self, at: Instant) -> u64 {
        let Some(origin) = self.origin.filter(|&o| at > o) else {
            return 0;
        };
        // An estimate from the plan, then set exactly by the due times.
        let since = at - origin;
        let estimate = match since.checked_sub(self.warmup) {
            Some(in_plan) => self.lead as f64 + self.plan.count(in_plan),
            None => since.as_secs_f64() * self.plan.first(),
        };
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

    // ANCHOR: open_pass
    /// Opens a pass at `now` if its time has come (see
    /// [`wake_at`](Self::wake_at)); then [`peek`](Self::peek) and
    /// [`take`](Self::take) hand out what is due. False: nothing now.
    ///
    /// A loop woken by echoes between two coalesced passes sends nothing:
    /// messages go out in passes, so the server is woken once per pass and
    /// answers the pass in a burst, which in turn wakes the generator about
    /// once. Sending on every echo's wake-up kept both sides waking per
    /// message.
    pub fn open_pass(&mut self, now: Instant, end: Instant) -> bool {
        match self.wake_at(end) {
            Some(at) if at <= now => {
                self.pass = at;
                true
            }
            _ => false,
        }
    }
    // ANCHOR_END: open_pass

    /// The next message's due time if it is due by `now` (and before
    /// `end`): the caller hands it to a socket, then calls [`take`](Self::take).
    pub fn peek(&self, now: Instant, end: Instant) -> Option<Instant> {
        self.next_due(end).filter(|&at| at <= now)
    }

    /// The message [`peek`](Self::peek) gave, due at `at`, was handed out at
    /// `now`: the next one is up. Returns when it was meant to go: its due
    /// time, or its pass's planned time if that is later (coalesced). Its
    /// latency counts from then, and its lag (how late the generator kept
    /// its own plan) is recorded when it was due in the window starting at
    /// `measure_from`.
    pub fn take(&mut self, at: Instant, now: Instant, measure_from: Instant) -> Instant {
        self.dealt += 1;
        let first_of_pass = self.last_pass != Some(now);
        self.last_pass = Some(now);
        let meant = at.max(self.pass);
        if at >= measure_from {
            self.dealt_measured += 1;
            self.passes_measured += u64::from(first_of_pass);
            let late = now.saturating_duration_since(meant).as_micros() as u64;
            self.lag.saturating_record(late.max(1));
        }
        meant
    }

    /// The timer, armed for `armed`, woke the loop at `now`: how late it
    /// was feeds the spin.
    pub fn timer_woke(&mut self, armed: Instant, now: Instant) {
        let late = now.saturating_duration_since(armed);
        self.timer_late = late.max(self.timer_late - self.timer_late / 64);
    }

    /// How long before a due message the loop spins: `--spin` if given,
    /// else twice as long as the timer has lately been late, at most
    /// [`SPIN`] and at most [`SPIN_SHARE`] of the time between two messages.
    ///
    /// Twice: a virtual CPU's wake-up has a long tail, and a spin of just
    /// the recent maximum missed it on every tenth of the sends or so (send
    /// lag p99 about 100 µs at 100 msgs/s, against 25 µs with 300 µs).
    pub fn spin(&self) -> Duration {
        if let Some(spin) = self.spin {
            return spin;
        }
        // At the plan's peak: a ramp's slow start spins less than it could.
        let share = Duration::try_from_secs_f64(SPIN_SHARE / self.plan.peak()).unwrap_or(SPIN);
        self.timer_late.saturating_mul(2).min(share).min(SPIN)
    }

    // ANCHOR: wake_at
    /// When the loop should next hand out messages (a pass): when the next
    /// one is due, but not sooner than `coalesce` after the last pass, nor
    /// later than the last message due before `end`.
    /// Messages left over from the last pass (the deal's cap, or full
    /// sockets) go at once. `None`: nothing more is due before `end`.
    pub fn wake_at(&self, end: Instant) -> Option<Instant> {
        let due = self.next_due(end)?;
        Some(match self.last_pass {
            Some(last) if due > last => {
                let coalesced = deadline_after(last, self.coalesce);
                if coalesced < end {
                    due.max(coalesced)
                } else {
                    // The last pass: when the last message before the end
                    // is due, so that it is sent in the window.
                    let last_due = self.due_before(end).saturating_sub(1);
                    self.due_time(last_due).map_or(due, |at| at.max(due))
                }
            }
            _ => due,
        })
    }
    // ANCHOR_END: wake_at

    /// When the loop stops sleeping for the next pass: [`spin`](Self::spin)
    /// before it when the pass is for a message due then, at the pass
    /// itself when it is coalesced (its messages are late by design, and
    /// spinning would buy nothing).
    fn spin_start(&self, end: Instant) -> Option<Instant> {
        let due = self.next_due(end)?;
        let at = self.wake_at(end)?;
        Some(if at > due {
            at
        } else {
            at.checked_sub(self.spin()).unwrap_or(at)
        })
    }

    /// When the open-loop timer should fire: where the spin starts, or
    /// `None` when that moment has passed (the loop then polls without
    /// sleeping) or nothing more is due before `end`.
    pub fn spin_from(&self, now: Instant, end: Instant) -> Option<Instant> {
        self.spin_start(end).filter(|&from| from > now)
    }

    /// The loop's own deadline for the next pass: `now` (do not sleep)
    /// once the spin has started, otherwise none when a timer wakes the
    /// loop (`timed`), or the pass itself when none does.
    pub fn wake(&self, now: Instant, end: Instant, timed: bool) -> Option<Instant> {
        if !timed {
            return self.wake_at(end);
        }
        (self.spin_start(end)? <= now).then_some(now)
    }

    /// What the report says of the schedule over the window from
    /// `measure_from` to `end`: due, sent, and the lag of the sends.
    pub fn kept(&self, measure_from: Instant, end: Instant) -> Schedule {
        Schedule {
            due: self
                .due_before(end)
                .saturating_sub(self.due_before(measure_from)),
            sent: self.dealt_measured,
            passes: self.passes_measured,
            lag: self.lag.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::config::COALESCE;

    /// A plan with a warm-up: the warm-up runs at the first rate, the plan
    /// starts when it ends, and counting due times still agrees exactly.
    #[test]
    fn a_planned_schedule_starts_after_its_warm_up() {
        let plan = Plan::Steps {
            rates: vec![100.0, 1000.0],
            each: Duration::from_secs(1),
        };
        let warmup = Duration::from_millis(500);
        let mut s = OpenLoop::planned(plan, warmup, None, COALESCE).unwrap();
        let t0 = Instant::now();
        s.start(t0);
        // 50 in the warm-up at 100/s, then the first step's first at 0.5 s.
        assert_eq!(s.due_time(49), Some(t0 + Duration::from_millis(490)));
        assert_eq!(s.due_time(50), Some(t0 + warmup));
        assert_eq!(s.due_time(150), Some(t0 + Duration::from_millis(1500)));
        assert_eq!(s.due_time(151), Some(t0 + Duration::from_millis(1501)));
        for n in [0u64, 49, 50, 51, 149, 150, 151, 1000] {
            let at = s.due_time(n).unwrap();
            assert_eq!(s.due_before(at), n, "strictly before message {n}");
            assert_eq!(s.due_before(at + Duration::from_nanos(1)), n + 1);
        }
        let window = s.due_before(t0 + Duration::from_millis(2500)) - s.due_before(t0 + warmup);
        assert_eq!(window, 100 + 1000, "the two steps, exactly");
    }

    /// Counting due times and reading them agree exactly, at the boundaries
    /// too (333.3/s does not divide a second).
    #[test]
    fn due_counts_match_due_times() {
        let mut s = OpenLoop::new(333.3, None, COALESCE).unwrap();
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
        let mut s = OpenLoop::new(1000.0, None, COALESCE).unwrap();
        let t0 = Instant::now();
        let end = t0 + Duration::from_millis(3);
        assert_eq!(s.peek(t0, end), None, "not started");
        s.start(t0);
        let mut sent = Vec::new();
        let now = t0 + Duration::from_micros(1500);
        assert!(s.open_pass(now, end));
        while let Some(at) = s.peek(now, end) {
            s.take(at, now, t0 + Duration::from_millis(1));
            sent.push(at);
        }
        assert_eq!(sent, [t0, t0 + Duration::from_millis(1)]);
        let kept = s.kept(t0 + Duration::from_millis(1), end);
        assert_eq!((kept.due, kept.sent), (2, 1));
        assert_eq!(kept.lag.max(), 500, "message 1 went out 500 µs late");
        let later = t0 + Duration::from_secs(1);
        assert!(s.open_pass(later, end));
        assert_eq!(s.peek(later, end), Some(t0 + Duration::from_millis(2)));
        s.take(t0 + Duration::from_millis(2), later, t0);
        assert_eq!(s.peek(later, end), None, "message 3 is due at the end");
    }

    /// The spin is SPIN at low rates until the timer is seen to be
    /// prompt, a share of the gap at high ones, and `--spin` if given.
    #[test]
    fn the_spin_follows_the_timer_and_shrinks_with_the_gap() {
        let spin = |rate| OpenLoop::new(rate, None, COALESCE).unwrap().spin();
        assert_eq!(spin(100.0), SPIN, "nothing measured yet");
        assert_eq!(spin(5000.0), Duration::from_micros(10));
        assert_eq!(spin(100_000.0), Duration::from_nanos(500));
        let asked = Duration::from_micros(250);
        let given = OpenLoop::new(5000.0, Some(asked), COALESCE).unwrap();
        assert_eq!(given.spin(), asked);

        let mut s = OpenLoop::new(100.0, None, COALESCE).unwrap();
        let t0 = Instant::now();
        let us = Duration::from_micros;
        // Prompt wake-ups (20 µs late) bring the spin down from SPIN to
        // twice that...
        for _ in 0..400 {
            s.timer_woke(t0, t0 + us(20));
        }
        assert_eq!(s.spin(), us(40));
        // ...one slow one (120 µs) lifts it at once, and it fades.
        s.timer_woke(t0, t0 + us(120));
        assert_eq!(s.spin(), us(240));
        s.timer_woke(t0, t0 + us(20));
        assert_eq!(s.spin(), (us(120) - us(120) / 64) * 2);
        for _ in 0..400 {
            s.timer_woke(t0, t0 + us(20));
        }
        assert_eq!(s.spin(), us(40));
        // Never longer than SPIN, however late the timer.
        s.timer_woke(t0, t0 + Duration::from_millis(5));
        assert_eq!(s.spin(), SPIN);
    }

    /// The timer fires `spin` before the next message; inside that stretch
    /// the loop does not sleep; without a timer it sleeps until the due time.
    #[test]
    fn the_timer_and_the_wake_up() {
        let mut s = OpenLoop::new(100.0, None, COALESCE).unwrap();
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

    /// Above 1 / coalesce messages a second the loop wakes once per
    /// `coalesce` and sends all that fell due, without spinning, each meant
    /// for the pass's planned time; below it every message gets its own
    /// wake-up, on time. Leftovers go at once; the last stretch before the
    /// end is not coalesced.
    #[test]
    fn wake_ups_are_coalesced_at_high_rates() {
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        let mut s = OpenLoop::new(5000.0, None, ms(1)).unwrap();
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(1);
        s.start(t0);
        assert_eq!(s.wake_at(end), Some(t0), "the first message");
        assert!(s.open_pass(t0, end));
        assert_eq!(s.take(t0, t0, t0), t0);
        // Message 1 is due at 0.2 ms; the pass waits until 1 ms.
        assert_eq!(s.wake_at(end), Some(t0 + ms(1)));
        assert_eq!(s.spin_from(t0, end), Some(t0 + ms(1)), "no spin");
        // Awake before it (an echo came back): nothing is handed out.
        assert!(!s.open_pass(t0 + us(500), end));
        // The pass, 30 µs late: messages due at 0.2 to 1.0 ms go, meant
        // for 1 ms (the one due at 1.0 ms too), 30 µs late by the plan.
        let now = t0 + us(1030);
        assert!(s.open_pass(now, end));
        let mut meant = Vec::new();
        while let Some(at) = s.peek(now, end) {
            meant.push(s.take(at, now, t0));
        }
        assert_eq!(meant, [t0 + ms(1); 5]);
        assert_eq!(s.kept(t0, end).lag.max(), 30);
        assert_eq!(s.wake_at(end), Some(t0 + us(2030)));
        // A pass cut short (the deal's cap) leaves messages due before it:
        // the next pass is at once, and they were meant for their due times.
        let later = t0 + ms(3);
        assert!(s.open_pass(later, end));
        let at = s.peek(later, end).unwrap();
        assert_eq!(s.take(at, later, t0), t0 + us(2030));
        assert_eq!(
            s.wake_at(end),
            s.due_time(7),
            "left over, due before the pass"
        );
        assert!(s.open_pass(later, end));
        assert_eq!(
            s.take(s.peek(later, end).unwrap(), later, t0),
            s.due_time(7).unwrap()
        );
        // Near the end: no pass is planned past the last message before it.
        let near = end - us(500);
        let mut tail = OpenLoop::new(5000.0, None, ms(1)).unwrap();
        tail.start(t0);
        while let Some(at) = tail.due_time(tail.dealt).filter(|&at| at < near) {
            tail.pass = at;
            tail.take(at, at, t0);
        }
        assert_eq!(
            tail.wake_at(end),
            Some(end - us(200)),
            "the last, at 999.8 ms"
        );
        assert_eq!(tail.kept(t0, end).passes, 4998, "message by message so far");
        // At 100/s with the same coalescing, each message is on time.
        let mut slow = OpenLoop::new(100.0, None, ms(1)).unwrap();
        slow.start(t0);
        slow.take(t0, t0, t0);
        assert_eq!(slow.wake_at(end), Some(t0 + ms(10)));
        // And with none, at 5000/s too.
        let mut none = OpenLoop::new(5000.0, None, Duration::ZERO).unwrap();
        none.start(t0);
        none.take(t0, t0, t0);
        assert_eq!(none.wake_at(end), Some(t0 + us(200)));
    }
}
