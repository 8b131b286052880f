//! The one loop both generators run: the skeleton of a load run, with
//! what differs between a stream and datagrams left to an [`Engine`].
//!
//! ```text
//!   turn(now, events) ── each event, then the timers, then deferred work
//!    │                    (a live line when a tick fell due)
//!    ▼
//!   hand out the --interval records that ended
//!    │
//!    ▼
//!   finished? ── yes: finish (the summary), hand out the last interval
//!    │ no
//!    ▼
//!   arm the timer (open loop), poll until next_deadline(), read the clock once
//!    └──▶ back to turn
//! ```
//!
//! This is the server's loop turned around, name for name: `turn`,
//! `next_deadline` and `on_timers` take `now` as a parameter, so tests can
//! make it up; only [`run`] reads the clock.

use std::io;
use std::time::Instant;

use mio::{Events, Poll};

use super::config::TICK;
use super::counters::Counters;
use super::intervals::{Intervals, hand_out};
use super::outcome::{Figures, Progress, RunStage, Summary, Update};
use super::schedule::OpenLoop;
use super::timer::Timer;
use crate::shared::duration::deadline_after;
use crate::shared::net::interrupted;
use crate::shared::readiness::Readiness;

/// What a generator answers to the one loop: a stream generator (its
/// connection pool) and a datagram generator (its sockets) alike.
pub trait Engine {
    /// The poll its sockets (and its timer) are registered with.
    fn poll(&mut self) -> &mut Poll;

    /// When the run started: the first turn's `now`.
    fn started(&self) -> Instant;

    /// The latest `now` a turn was given.
    fn clock(&self) -> Instant;

    /// Handles one batch of events that arrived at `now`, then its timers
    /// and deferred work. Returns the live line's figures when a tick fell
    /// due in this turn.
    fn turn(
        &mut self,
        now: Instant,
        batch: impl IntoIterator<Item = Readiness>,
    ) -> Option<Progress>;

    /// `--interval`'s clock, once the window is known.
    fn intervals(&mut self) -> &mut Option<Intervals>;

    /// Whether the run is over (the window ended and what was sent in it
    /// is accounted for, or nothing is left to run).
    fn finished(&self) -> bool;

    /// Closes everything and builds the report.
    fn finish(&mut self) -> Summary;

    /// Open loop: sets the timerfd for the next due message (a no-op
    /// without one).
    fn arm_timer(&mut self) -> io::Result<()>;

    /// When the loop must wake at the latest; `None`: sleep until an event.
    fn next_deadline(&self) -> Option<Instant>;
}

/// Runs `engine` until its run is over, handing every live line and
/// interval to `update`, and returns the summary.
pub fn run<E: Engine>(engine: &mut E, mut update: impl FnMut(Update<'_>)) -> io::Result<Summary> {
    let mut events = Events::with_capacity(1024);
    let mut now = engine.started();
    loop {
        // The first turn has no events: it opens the connections.
        if let Some(live) = engine.turn(now, events.iter().map(Readiness::from)) {
            update(Update::Live(&live));
        }
        hand_out(engine.intervals(), &mut update);
        if engine.finished() {
            let summary = engine.finish();
            hand_out(engine.intervals(), &mut update);
            return Ok(summary);
        }
        engine.arm_timer()?;
        let timeout = engine
            .next_deadline()
            .map(|at| at.saturating_duration_since(engine.clock()));
        // A signal that interrupts the wait (EINTR) is not an error: no
        // events, and the loop goes round.
        match engine.poll().poll(&mut events, timeout) {
            Err(e) if interrupted(&e) => events.clear(),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        // The clock is read here, once per poll, and handed down:
        // everything below works with `now`, so tests can make it up.
        now = Instant::now();
    }
}

/// The timers both generators keep alike, at `now`: the `--interval` that
/// ended, the error clock. Returns whether the live line's tick fell due
/// (and moves it on).
pub fn on_timers(
    now: Instant,
    intervals: &mut Option<Intervals>,
    counters: &mut Counters,
    schedule: Option<&OpenLoop>,
    next_tick: &mut Instant,
) -> bool {
    if let Some(intervals) = intervals {
        intervals.cut(now, counters, false, schedule);
    }
    counters.note_errors(now);
    if now < *next_tick {
        return false;
    }
    *next_tick = deadline_after(now, TICK);
    true
}

/// The live line's figures at `now`; `clock_started`: whether the
/// window's clock runs yet (not while connecting).
///
/// With `--metrics`, `figures` gives what the endpoint serves beyond the
/// line: the messages in flight and the open loop's schedule.
pub fn progress(
    counters: &Counters,
    now: Instant,
    clock_started: bool,
    errors: u64,
    figures: Option<(u64, Option<&OpenLoop>)>,
) -> Progress {
    Progress {
        measured: now.saturating_duration_since(counters.measure_from),
        messages: counters.messages,
        bytes_received: counters.bytes_received,
        p99_us: if counters.latency.is_empty() {
            0
        } else {
            counters.latency.value_at_quantile(0.99)
        },
        errors,
        stage: RunStage::at(now, clock_started, counters.measure_from, counters.end),
        figures: figures.map(|(in_flight, schedule)| metrics(counters, now, in_flight, schedule)),
    }
}

/// `--metrics`: what the endpoint serves beyond the live line, from the
/// counters, the messages `in_flight` and the open loop's `schedule`.
fn metrics(
    counters: &Counters,
    now: Instant,
    in_flight: u64,
    schedule: Option<&OpenLoop>,
) -> Box<Figures> {
    let started = now >= counters.measure_from;
    Box::new(Figures {
        errors: counters.errors,
        in_flight,
        due: schedule
            .filter(|_| started)
            .map(|s| s.due_before(now.min(counters.end)) - s.due_before(counters.measure_from)),
        latency: counters.latency.clone(),
        lag: schedule.map(|s| s.lag().clone()),
    })
}

/// The open-loop timer's event: reads the timer, and once the window's
/// clock runs tells the schedule how late the wake-up came (the lag the
/// report shows).
pub fn on_timer(
    timer: &mut Option<Timer>,
    schedule: &mut Option<OpenLoop>,
    now: Instant,
    clock_started: bool,
) {
    if let Some(timer) = timer
        && let Some(armed) = timer.fired()
        && let Some(schedule) = schedule
        && clock_started
    {
        schedule.timer_woke(armed, now);
    }
}
