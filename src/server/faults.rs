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

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use super::connection::{Connection, Limits, Next, State};
use super::counters::Counters;
use super::deadlines::Deadlines;
use crate::shared::dice::Dice;
use crate::shared::duration::deadline_after;
use crate::shared::readiness::{Drain, Readiness};
use crate::shared::stream::Stream;

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

/// What [`Injector::end`] made of a connection's pass.
#[derive(Debug)]
pub enum Ending {
    /// No fault ends it (yet): the pass's own verdict stands.
    Untouched,
    /// It was ended on purpose and this verdict replaces the pass's.
    Verdict(Next),
    /// Our FIN went (`--close-after`): read on now, to drop what the peer
    /// still sends until its EOF. Those bytes wait in the kernel with
    /// their edge long spent, so no event would bring us back.
    ReadOn,
    /// It was reset on purpose: close it now (its `SO_LINGER` is 0).
    Reset,
}

/// How a connection was ended on purpose, once it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ended {
    /// The connection's serial number (its slab key is reused).
    id: u64,
    /// `--close-after`: our FIN went at this position; `--stall-after`: reading stopped there.
    at: u64,
    end: End,
}

/// The faults as a part of the loop: it owns each connection's held
/// echoes and its end on purpose, the release timers, and the counts, and
/// speaks to a connection only through [`Limits`] and [`Ending`]. With no
/// fault asked for, each call is a branch on an empty map.
#[derive(Debug)]
pub struct Injector {
    faults: Faults,
    /// `--delay`, `--jitter`: each open connection's held echoes, by slab key.
    held: HashMap<usize, Held>,
    /// Connections ended on purpose (closing or stalled), by slab key.
    ended: HashMap<usize, Ended>,
    /// When a connection's next held echo is due.
    releases: Deadlines,
    /// Stamps count from here (nanoseconds, as [`Held`] keeps them).
    started: Instant,
    /// Whether any stream fault is asked for (a delay, a jitter, an end).
    on: bool,
}

impl Injector {
    /// Injects `faults` (maybe none), with time counted from `started`.
    pub fn new(faults: Faults, started: Instant) -> Injector {
        Injector {
            faults,
            held: HashMap::new(),
            ended: HashMap::new(),
            releases: Deadlines::default(),
            started,
            on: faults.holds() || faults.end.is_some(),
        }
    }

    /// A connection was accepted into slot `key`.
    pub fn on_accept(&mut self, key: usize, id: u64) {
        if self.faults.holds() {
            self.held.insert(key, Held::new(self.faults.seed, id));
        }
    }

    // ANCHOR: limits
    /// The bounds of the next pass over connection `key`, which has read
    /// `bytes_in` so far: how far it may read, echo and write.
    // Every hook below is on each pass of every connection: each starts
    // with an inlined test that is false without faults, and only then
    // calls the part's own code (a call and a hash lookup per pass would
    // otherwise cost a well-behaved server ~15% of its own instructions).
    #[inline]
    pub fn limits(&self, key: usize, bytes_in: u64, limits: Limits) -> Limits {
        if !self.on {
            return limits;
        }
        self.shape(key, bytes_in, limits)
    }

    /// [`limits`](Self::limits) with faults on.
    fn shape(&self, key: usize, bytes_in: u64, mut limits: Limits) -> Limits {
        limits.read_until = self.faults.read_until();
        // Without faults the maps are empty: skip hashing the key on every
        // pass (SipHash costs more than the rest of this).
        if !self.held.is_empty()
            && let Some(held) = self.held.get(&key)
        {
            limits.write_until = held.released();
            if held.full() {
                // As many passes held as may be: read on once one leaves.
                limits.read_until = limits.read_until.min(bytes_in);
            }
        }
        if !self.ended.is_empty()
            && let Some(ended) = self.ended.get(&key)
            && ended.end == End::Close
        {
            // Our FIN went: read the rest away to the peer's EOF, echo none.
            limits.read_until = u64::MAX;
            limits.echo_until = ended.at;
        }
        limits
    }
    // ANCHOR_END: limits

    /// Connection `key` read up to `bytes_in` at `now`: with `--delay` or
    /// `--jitter`, that is held, and a timer armed if it is first in line.
    #[inline]
    pub fn on_read(&mut self, key: usize, bytes_in: u64, now: Instant, stats: &mut Counters) {
        if !self.held.is_empty() {
            self.hold(key, bytes_in, now, stats);
        }
    }

    /// [`on_read`](Self::on_read) with echoes held.
    fn hold(&mut self, key: usize, bytes_in: u64, now: Instant, stats: &mut Counters) {
        let Some(held) = self.held.get_mut(&key) else {
            return;
        };
        stats.injected_delays += 1;
        let at = stamp(self.started, now);
        if let Some(due) = held.hold(&self.faults, at, bytes_in) {
            log::trace!("hold conn=#{} until +{due}ns", held.id);
            let due = deadline_after(self.started, Duration::from_nanos(due));
            self.releases.push(due, key, held.id);
        }
    }

    // ANCHOR: end
    /// `--close-after`, `--reset-after`, `--stall-after`: once connection
    /// `key` has echoed its bytes, ends it as asked.
    #[inline]
    pub fn end(
        &mut self,
        key: usize,
        conn: &mut Connection<Stream>,
        stats: &mut Counters,
    ) -> Ending {
        match self.faults.end {
            None => Ending::Untouched,
            Some((after, end)) => self.end_on_purpose(key, conn, after, end, stats),
        }
    }

    /// [`end`](Self::end) with an end asked for: after `after` bytes, `end`.
    fn end_on_purpose(
        &mut self,
        key: usize,
        conn: &mut Connection<Stream>,
        after: u64,
        end: End,
        stats: &mut Counters,
    ) -> Ending {
        if conn.state() != State::Open || conn.bytes_out() < after {
            return Ending::Untouched;
        }
        if self.ended.get(&key).is_some_and(|e| e.id == conn.id()) {
            return Ending::Untouched; // ended already
        }
        log::debug!("{end} conn=#{} on purpose after {after} B", conn.id());
        let ended = Ended {
            id: conn.id(),
            at: conn.bytes_in(),
            end,
        };
        match end {
            End::Close => {
                stats.injected_closes += 1;
                self.ended.insert(key, ended);
                log::trace!("state conn=#{} open => closing (our FIN sent)", conn.id());
                if let Err(e) = conn.stream_mut().shutdown(Shutdown::Write) {
                    return Ending::Verdict(Next::Failed(e));
                }
                Ending::ReadOn
            }
            End::Reset => {
                stats.injected_resets += 1;
                if let Err(e) = conn.stream_mut().linger_zero() {
                    log::debug!("conn=#{}: SO_LINGER 0 failed: {e}", conn.id());
                }
                Ending::Reset
            }
            End::Stall => {
                stats.injected_stalls += 1;
                self.ended.insert(key, ended);
                log::trace!("state conn=#{} open => stalled", conn.id());
                Ending::Verdict(Next::Keep)
            }
        }
    }
    // ANCHOR_END: end

    /// Whether an event on connection `key` says that its peer left while
    /// the connection was stalled on purpose: we will never read its EOF,
    /// so the event is the only word that it has gone.
    #[inline]
    pub fn stalled_peer_left(&self, key: usize, id: u64, event: &Readiness) -> bool {
        !self.ended.is_empty()
            && (event.read_closed || event.error)
            && self
                .ended
                .get(&key)
                .is_some_and(|e| e.id == id && e.end == End::Stall)
    }

    /// Connection `key` closed: forget it.
    #[inline]
    pub fn on_close(&mut self, key: usize) {
        if !self.held.is_empty() {
            self.held.remove(&key);
        }
        if !self.ended.is_empty() {
            self.ended.remove(&key);
        }
    }

    /// The next held echo due by `now`: the connection to serve, and
    /// whether it must read too (a full queue had paused reading, and the
    /// data waiting in the kernel raised its edge long ago).
    pub fn on_timers(&mut self, now: Instant) -> Option<(usize, Option<Drain>)> {
        while let Some((key, id)) = self.releases.pop_due(now) {
            let Some(held) = self.held.get_mut(&key).filter(|h| h.id == id) else {
                continue; // closed already; its slot may be someone else's
            };
            let was_full = held.full();
            if let Some(due) = held.release(stamp(self.started, now)) {
                let due = deadline_after(self.started, Duration::from_nanos(due));
                self.releases.push(due, key, id);
            }
            log::trace!("release conn=#{id} up to {}", held.released());
            return Some((key, was_full.then_some(Drain::WouldBlock)));
        }
        None
    }

    /// When the next held echo is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.releases.next_deadline()
    }
}

/// `t` as the injector stores it: nanoseconds since `started`.
fn stamp(started: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(started).as_nanos() as u64
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
