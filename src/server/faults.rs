//! A target that misbehaves on purpose, for testing what sits in front of
//! it (a proxy, a load balancer, a client library): `--delay`, `--jitter`,
//! `--close-after`, `--reset-after`, `--stall-after` and, for UDP,
//! `--drop`. All are off unless asked for, and each applies to every
//! connection on its own: a byte count counts that connection's bytes.
//!
//! How each fault fits the loop without a thread or a sleep:
//!
//! * **Delay and jitter.** The bytes of a read pass are echoed into `owed`
//!   as always, but not written: a [`Held`] queue remembers up to which
//!   position of the stream each pass may go out, and when. The loop's own
//!   timer heap wakes it then; the connection asks for WRITABLE only while
//!   it has bytes it may write. Jitter adds a uniform extra 0..=J to each
//!   pass's delay, but a pass never leaves before an earlier one: order
//!   within a connection is kept. Memory stays bounded by the owed cap
//!   (and by [`MAX_MARKS`] passes held at once: reading pauses beyond).
//! * **Close, reset, stall after N bytes.** Reads stop at the N-th byte
//!   (what follows stays in the kernel); once those N are echoed the
//!   connection sends a clean FIN (and reads the rest away until the
//!   peer's EOF, since closing with unread bytes would send an RST), or an
//!   RST (`SO_LINGER` 0, then close), or simply never reads again.
//! * **Drop.** A datagram is not answered with probability PCT/100.
//!
//! Randomness is splitmix64, seeded from `--seed` and the connection's
//! serial number (or the reactor's, for datagrams): a run with the same
//! seed and the same order of connections jitters and drops alike.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::shared::dice::Dice;

/// Echo passes one connection may hold back at once; reading pauses
/// while this many wait (a peer sending a byte per turn cannot make the
/// queue outgrow the owed cap's own bound by much: 16 B a pass).
pub const MAX_MARKS: usize = 256;

/// What happens to a connection once `after` bytes were echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// A clean close: our FIN (`--close-after`).
    Close,
    /// A reset: an RST (`--reset-after`).
    Reset,
    /// No more reading, ever (`--stall-after`).
    Stall,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            End::Close => "close",
            End::Reset => "reset",
            End::Stall => "stall",
        })
    }
}

/// The faults a server injects (`Default`: none).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Every echo is held this long before it is written.
    pub delay: Duration,
    /// Plus a uniform extra delay from zero to this, per read pass.
    pub jitter: Duration,
    /// After this many bytes of a connection were echoed, end it so.
    pub end: Option<(u64, End)>,
    /// The share of datagrams not answered, 0 to 1.
    pub drop: f64,
    /// Seeds every random choice.
    pub seed: u64,
}

impl Faults {
    /// Whether any fault is asked for.
    pub fn any(&self) -> bool {
        self.holds() || self.end.is_some() || self.drop > 0.0
    }

    /// Whether echoes are held (a delay or a jitter).
    pub fn holds(&self) -> bool {
        !self.delay.is_zero() || !self.jitter.is_zero()
    }

    /// Where reading stops for good (`u64::MAX`: never).
    pub fn read_until(&self) -> u64 {
        self.end.map_or(u64::MAX, |(after, _)| after)
    }

    /// How it reads in the server's log: `delay 10ms, close after 640 B`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.delay.is_zero() {
            parts.push(format!("delay {:?}", self.delay));
        }
        if !self.jitter.is_zero() {
            parts.push(format!("jitter 0..={:?}", self.jitter));
        }
        if let Some((after, end)) = self.end {
            parts.push(format!("{end} after {after} B"));
        }
        if self.drop > 0.0 {
            parts.push(format!("drop {}% of datagrams", self.drop * 100.0));
        }
        format!("{} (seed {})", parts.join(", "), self.seed)
    }
}

/// One connection's held echoes: up to which stream position each read
/// pass may be written, and from when (nanoseconds since the server
/// started). Positions and times both only grow.
#[derive(Debug)]
pub struct Held {
    /// The connection's serial number (its slab key is reused, this is not).
    pub id: u64,
    dice: Dice,
    /// Echoes up to this position may be written now.
    released: u64,
    /// (due, position): oldest first.
    marks: VecDeque<(u64, u64)>,
}

impl Held {
    /// Nothing held yet, for connection `id`.
    pub fn new(seed: u64, id: u64) -> Held {
        Held {
            id,
            dice: Dice::new(seed, id),
            released: 0,
            marks: VecDeque::new(),
        }
    }

    /// Holds everything up to position `upto`, read at `now`, for the
    /// delay plus this pass's jitter, but never past an earlier pass.
    /// Returns the due time when it is the first in line (arm a timer).
    pub fn hold(&mut self, faults: &Faults, now: u64, upto: u64) -> Option<u64> {
        let extra = self.dice.upto(faults.jitter.as_nanos() as u64);
        let due = now
            .saturating_add(faults.delay.as_nanos() as u64)
            .saturating_add(extra);
        let due = self.marks.back().map_or(due, |&(last, _)| due.max(last));
        match self.marks.back_mut() {
            // Two passes due together are one mark.
            Some(last) if last.0 == due => last.1 = upto,
            _ => self.marks.push_back((due, upto)),
        }
        (self.marks.len() == 1).then_some(due)
    }

    /// Releases every pass due by `now`. Returns the next pass's due time,
    /// if one is still held (arm a timer for it).
    pub fn release(&mut self, now: u64) -> Option<u64> {
        while let Some(&(due, upto)) = self.marks.front() {
            if due > now {
                return Some(due);
            }
            self.released = upto;
            self.marks.pop_front();
        }
        None
    }

    /// Echoes up to this position may be written.
    pub fn released(&self) -> u64 {
        self.released
    }

    /// Whether it holds as many passes as it may (reading pauses).
    pub fn full(&self) -> bool {
        self.marks.len() >= MAX_MARKS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn faults(delay_ms: u64, jitter_ms: u64) -> Faults {
        Faults {
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::from_millis(jitter_ms),
            ..Faults::default()
        }
    }

    /// A pass is held exactly the delay; the timer is armed once for the
    /// first in line and again for the next after a release.
    #[test]
    fn a_delay_holds_each_pass_for_exactly_its_time() {
        let f = faults(10, 0);
        let mut h = Held::new(1, 7);
        assert_eq!(h.hold(&f, 0, 100), Some(10 * MS));
        assert_eq!(h.hold(&f, 3 * MS, 250), None, "a timer is already armed");
        assert_eq!(h.released(), 0);
        assert_eq!(h.release(10 * MS - 1), Some(10 * MS));
        assert_eq!(h.released(), 0, "one nanosecond early is still held");
        assert_eq!(h.release(10 * MS), Some(13 * MS));
        assert_eq!(h.released(), 100);
        assert_eq!(h.release(20 * MS), None);
        assert_eq!(h.released(), 250);
    }

    /// With jitter each pass waits delay + 0..=jitter, and never leaves
    /// before the pass read before it: the order of the bytes is kept.
    #[test]
    fn jitter_stays_in_range_and_keeps_the_order() {
        let f = faults(5, 20);
        let mut h = Held::new(42, 3);
        let mut last_due = 0;
        let mut spread = (u64::MAX, 0);
        for i in 0..200u64 {
            let now = i * MS;
            h.hold(&f, now, (i + 1) * 10);
            let &(due, upto) = h.marks.back().unwrap();
            assert!(due >= last_due, "pass {i} would overtake an earlier one");
            assert!(due >= now + 5 * MS, "pass {i} due before its delay");
            assert_eq!(upto, (i + 1) * 10);
            last_due = due;
            spread = (spread.0.min(due - now), spread.1.max(due - now));
            // Release as time goes, as the loop does.
            h.release(now);
        }
        assert!(
            spread.1 > spread.0 + 10 * MS,
            "the jitter varies: {spread:?}"
        );
        assert!(h.marks.len() <= MAX_MARKS);
    }

    /// Past MAX_MARKS held passes the queue says it is full.
    #[test]
    fn the_queue_is_bounded() {
        let f = faults(1000, 0);
        let mut h = Held::new(0, 0);
        for i in 0..MAX_MARKS as u64 {
            assert!(!h.full());
            h.hold(&f, i, i + 1);
        }
        assert!(h.full());
    }
}
