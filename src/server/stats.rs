//! `--stats` and SIGUSR1: the lines a reactor has to say about its
//! counters, as a part with a deadline of its own. A line shows what
//! changed since the last one; SIGUSR1's shows everything since the start.

use std::time::{Duration, Instant};

use super::counters::Counters;
use crate::shared::duration::deadline_after;

/// When the next `--stats` line is due, and where the last one left off.
#[derive(Debug, Clone, Copy)]
struct Due {
    at: Instant,
    last: Instant,
    then: Counters,
}

/// The stats lines of one reactor.
#[derive(Debug)]
pub struct StatsLines {
    /// `--stats SECS`, if asked for.
    every: Option<Duration>,
    due: Option<Due>,
    /// When the reactor started (SIGUSR1 counts from there).
    started: Instant,
}

impl StatsLines {
    /// A line every `every` (none if `None`), counting from `now`.
    pub fn new(every: Option<Duration>, now: Instant) -> StatsLines {
        StatsLines {
            every,
            due: every.map(|every| Due {
                at: deadline_after(now, every),
                last: now,
                then: Counters::default(),
            }),
            started: now,
        }
    }

    /// When the next line is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.due.map(|due| due.at)
    }

    /// The `--stats` line, if one is due by `now`.
    pub fn on_timers(&mut self, now: Instant, stats: &Counters) -> Option<String> {
        let due = self.due.filter(|due| due.at <= now)?;
        let line = stats.interval_line(&due.then, now - due.last);
        let every = self.every.unwrap_or(Duration::from_secs(1));
        self.due = Some(Due {
            at: deadline_after(due.at, every),
            last: now,
            then: *stats,
        });
        Some(line)
    }

    /// SIGUSR1's line: the counters since the start.
    pub fn since_start(&self, now: Instant, stats: &Counters) -> String {
        let elapsed = now.saturating_duration_since(self.started);
        stats.interval_line(&Counters::default(), elapsed)
    }
}
