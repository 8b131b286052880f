//! The loop's own counters: what `--stats` prints every few seconds, what
//! SIGUSR1 prints on demand, and where the shutdown summary comes from.
//!
//! They are plain integers bumped by the handlers; nothing here does I/O
//! except the formatting helpers, which only build strings.

use std::fmt::Write as _;

/// Buckets of the events-per-poll histogram: ≤1, ≤2, ≤4, … ≤64, more.
pub const POLL_BUCKETS: usize = 8;
use std::time::Duration;

/// Upper bounds of the handshake-latency buckets, in microseconds (the
/// last bucket counts everything slower).
pub const HANDSHAKE_BUCKETS_US: [u64; 10] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
];

/// TLS handshakes (`--tls`): how many, of which kind, and how long each
/// took from accept to the peer's Finished.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Handshakes {
    /// Whether TLS is served: the lines then show these figures.
    pub on: bool,
    /// Full handshakes completed.
    pub full: u64,
    /// Resumed handshakes completed (a ticket or a session ID).
    pub resumed: u64,
    /// Handshakes refused: a real handshake error (a bad hello, a
    /// certificate refused, plaintext sent to the TLS port). The
    /// connection was closed with an alert.
    pub refused: u64,
    /// Handshakes the peer abandoned: it closed or reset the connection
    /// before the handshake was over (a port scan, a load generator
    /// stopping with handshakes in flight).
    pub aborted: u64,
    /// Handshakes still unfinished at `--idle-timeout` (a ClientHello
    /// that trickles in, or never comes).
    pub timed_out: u64,
    /// Connections whose peer closed TCP without a `close_notify`.
    pub truncated: u64,
    /// The handshakes' latencies added up, in microseconds.
    pub sum_us: u64,
    /// The slowest handshake, in microseconds.
    pub max_us: u64,
    /// Handshakes by latency: bucket `i` counts those of at most
    /// [`HANDSHAKE_BUCKETS_US`]`[i]`; the last, the slower ones.
    pub buckets: [u64; HANDSHAKE_BUCKETS_US.len() + 1],
}

impl Handshakes {
    /// Counts one completed handshake that took `us` microseconds.
    pub fn note(&mut self, resumed: bool, us: u64) {
        if resumed {
            self.resumed += 1;
        } else {
            self.full += 1;
        }
        self.sum_us = self.sum_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
        let bucket = HANDSHAKE_BUCKETS_US.partition_point(|&bound| bound < us);
        self.buckets[bucket] += 1;
    }

    /// The mean latency of the completed handshakes, in microseconds.
    pub fn mean_us(&self) -> u64 {
        self.sum_us
            .checked_div(self.full + self.resumed)
            .unwrap_or(0)
    }

    /// Adds another reactor's handshakes.
    fn add(&mut self, other: &Handshakes) {
        self.on |= other.on;
        self.full += other.full;
        self.resumed += other.resumed;
        self.refused += other.refused;
        self.aborted += other.aborted;
        self.timed_out += other.timed_out;
        self.truncated += other.truncated;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.max_us = self.max_us.max(other.max_us);
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
    }
}

/// PROXY protocol headers (`--proxy-protocol`): how many came, of which
/// version, and how many connections were refused for want of one.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeaders {
    /// Whether headers are expected: the lines then show these figures.
    pub on: bool,
    /// Version 1 (text) headers that named a client.
    pub v1: u64,
    /// Version 2 (binary) headers that named a client.
    pub v2: u64,
    /// Headers that named no client (v2 `LOCAL`, a proxy's health check;
    /// v1 `UNKNOWN`; a Unix or unspecified family): the connection's own
    /// peer stands for the client.
    pub local: u64,
    /// Connections closed because they did not begin with a valid header.
    pub bad: u64,
    /// Connections closed because their header was longer than allowed
    /// (107 bytes for v1, as the spec says; 4 KiB for v2, our bound).
    pub oversized: u64,
    /// Connections closed because no whole header came in time.
    pub timed_out: u64,
    /// Connections whose peer left before its header was whole.
    pub left: u64,
    /// The client the latest header named (for the lines: which address
    /// the server sees now).
    pub last: Option<std::net::SocketAddr>,
}

impl ProxyHeaders {
    /// Adds another reactor's headers.
    fn add(&mut self, other: &ProxyHeaders) {
        self.on |= other.on;
        self.v1 += other.v1;
        self.v2 += other.v2;
        self.local += other.local;
        self.bad += other.bad;
        self.oversized += other.oversized;
        self.timed_out += other.timed_out;
        self.left += other.left;
        self.last = other.last.or(self.last);
    }
}

/// Monotonic counters of one server's event loop.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Calls to `poll` that returned (with events or on a timeout).
    pub polls: u64,
    /// Readiness events delivered by those polls.
    pub events: u64,
    /// Events for tokens that no longer belong to anything (a connection
    /// closed earlier in the same batch); ignored.
    pub stale_events: u64,
    /// `read` calls that returned data.
    pub reads: u64,
    /// `write` calls that took data.
    pub writes: u64,
    /// Reads, writes and accepts that said `WouldBlock`.
    pub would_blocks: u64,
    /// Bytes read from peers to be echoed (not those read away after
    /// `--close-after`'s FIN).
    pub bytes_in: u64,
    /// Bytes written back to peers.
    pub bytes_out: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed (for any reason).
    pub closed: u64,
    /// Connections closed because they were idle too long.
    pub idle_closed: u64,
    /// Connections closed because of an error on them (reset, broken pipe).
    pub failed: u64,
    /// Accepts that failed for lack of file descriptors or memory.
    pub accept_errors: u64,
    /// Bytes owed to peers right now, over all connections.
    pub owed_now: u64,
    /// The most any single connection has ever owed at once: the figure that
    /// shows the per-connection cap holds.
    pub owed_peak: u64,
    /// The most connections open at once.
    pub peak_open: u64,
    /// Times a read pass or the accept loop stopped because it had used
    /// its budget for the turn, with work possibly left (fairness).
    pub budget_spent: u64,
    /// Whether UDP is served: the lines then show the datagram figures.
    pub udp: bool,
    /// Datagrams received.
    pub udp_in: u64,
    /// Datagrams sent back.
    pub udp_out: u64,
    /// Datagrams not sent back because the send would block or failed
    /// (UDP has no backpressure: never queued).
    pub udp_dropped: u64,
    /// Datagrams not answered because they came from a service port that
    /// answers by itself (loop protection).
    pub udp_looped: u64,
    /// Datagrams not answered because their source was over
    /// `--udp-rate-limit`.
    pub udp_limited: u64,
    /// Whether faults are injected on purpose (`--delay` and the like):
    /// the lines then show what was injected.
    pub faults: bool,
    /// Read passes whose echo was held back (`--delay`, `--jitter`).
    pub injected_delays: u64,
    /// Connections closed cleanly on purpose (`--close-after`).
    pub injected_closes: u64,
    /// Connections reset on purpose (`--reset-after`).
    pub injected_resets: u64,
    /// Connections no longer read on purpose (`--stall-after`).
    pub injected_stalls: u64,
    /// Datagrams not answered on purpose (`--drop`).
    pub injected_drops: u64,
    /// TLS handshakes (all zero without `--tls`).
    pub tls: Handshakes,
    /// PROXY protocol headers (all zero without `--proxy-protocol`).
    pub proxy: ProxyHeaders,
    /// Polls by how many events they returned: bucket `i` counts polls of
    /// at most 2^i events (the last, more than 64).
    pub events_per_poll: [u64; POLL_BUCKETS],
}

impl Counters {
    /// Zero counters for a server that serves UDP (`udp`), injects
    /// faults (`faults`) and speaks TLS (`tls`): which figures its lines show.
    pub fn new(udp: bool, faults: bool, tls: bool) -> Counters {
        Counters {
            udp,
            faults,
            tls: Handshakes {
                on: tls,
                ..Handshakes::default()
            },
            ..Counters::default()
        }
    }

    /// Connections open right now.
    pub fn open(&self) -> u64 {
        self.accepted - self.closed
    }

    /// Counts a connection closed while it still owed `owed` bytes.
    pub fn note_closed(&mut self, owed: usize) {
        self.closed += 1;
        self.owed_now -= owed as u64;
    }

    /// One line describing what happened between `earlier` and `self`, over
    /// `elapsed`: the `--stats` line.
    pub fn interval_line(&self, earlier: &Counters, elapsed: Duration) -> String {
        let d = |now: u64, then: u64| now - then;
        let polls = d(self.polls, earlier.polls);
        let events = d(self.events, earlier.events);
        let per_poll = if polls == 0 {
            0.0
        } else {
            events as f64 / polls as f64
        };
        let mut line = format!("stats: last={:.1}s", elapsed.as_secs_f64());
        // Writing to a String cannot fail.
        let _ = write!(
            line,
            " polls={polls} events/poll={per_poll:.2} reads={} writes={} wouldblock={} \
             in={} out={} accepted={} closed={}",
            d(self.reads, earlier.reads),
            d(self.writes, earlier.writes),
            d(self.would_blocks, earlier.would_blocks),
            d(self.bytes_in, earlier.bytes_in),
            d(self.bytes_out, earlier.bytes_out),
            d(self.accepted, earlier.accepted),
            d(self.closed, earlier.closed),
        );
        let _ = write!(
            line,
            " budget_spent={} | open={} owed={} owed_peak={} accept_errors={}",
            d(self.budget_spent, earlier.budget_spent),
            self.open(),
            self.owed_now,
            self.owed_peak,
            self.accept_errors
        );
        if self.udp {
            let _ = write!(
                line,
                " | udp_in={} udp_out={} udp_dropped={} udp_looped={} udp_limited={}",
                d(self.udp_in, earlier.udp_in),
                d(self.udp_out, earlier.udp_out),
                d(self.udp_dropped, earlier.udp_dropped),
                d(self.udp_looped, earlier.udp_looped),
                d(self.udp_limited, earlier.udp_limited),
            );
        }
        if self.faults {
            let _ = write!(
                line,
                " | injected delays={} closes={} resets={} stalls={} drops={}",
                d(self.injected_delays, earlier.injected_delays),
                d(self.injected_closes, earlier.injected_closes),
                d(self.injected_resets, earlier.injected_resets),
                d(self.injected_stalls, earlier.injected_stalls),
                d(self.injected_drops, earlier.injected_drops),
            );
        }
        if self.tls.on {
            let (now, then) = (&self.tls, &earlier.tls);
            let _ = write!(
                line,
                " | tls full={} resumed={} refused={} aborted={} timed_out={} truncated={} \
                 handshake_max={}us",
                d(now.full, then.full),
                d(now.resumed, then.resumed),
                d(now.refused, then.refused),
                d(now.aborted, then.aborted),
                d(now.timed_out, then.timed_out),
                d(now.truncated, then.truncated),
                now.max_us,
            );
        }
        if self.proxy.on {
            let (now, then) = (&self.proxy, &earlier.proxy);
            let _ = write!(
                line,
                " | proxy v1={} v2={} local={} bad={} oversized={} timed_out={} left={}",
                d(now.v1, then.v1),
                d(now.v2, then.v2),
                d(now.local, then.local),
                d(now.bad, then.bad),
                d(now.oversized, then.oversized),
                d(now.timed_out, then.timed_out),
                d(now.left, then.left),
            );
            if let Some(last) = now.last {
                let _ = write!(line, " last_client={last}");
            }
        }
        line
    }

    /// Adds another reactor's counters to these (`--threads`): counts and
    /// what is owed now are summed; `owed_peak` is the larger of the two (it
    /// is per connection); `peak_open` is summed, so for several reactors it
    /// is the sum of each one's peak, an upper bound of the true peak.
    pub fn add(&mut self, other: &Counters) {
        let Counters {
            polls,
            events,
            stale_events,
            reads,
            writes,
            would_blocks,
            bytes_in,
            bytes_out,
            accepted,
            closed,
            idle_closed,
            failed,
            accept_errors,
            owed_now,
            owed_peak,
            peak_open,
            budget_spent,
            udp,
            udp_in,
            udp_out,
            udp_dropped,
            udp_looped,
            udp_limited,
            faults,
            injected_delays,
            injected_closes,
            injected_resets,
            injected_stalls,
            injected_drops,
            tls,
            proxy,
            events_per_poll,
        } = *other;
        self.polls += polls;
        self.events += events;
        self.stale_events += stale_events;
        self.reads += reads;
        self.writes += writes;
        self.would_blocks += would_blocks;
        self.bytes_in += bytes_in;
        self.bytes_out += bytes_out;
        self.accepted += accepted;
        self.closed += closed;
        self.idle_closed += idle_closed;
        self.failed += failed;
        self.accept_errors += accept_errors;
        self.owed_now += owed_now;
        self.owed_peak = self.owed_peak.max(owed_peak);
        self.peak_open += peak_open;
        self.budget_spent += budget_spent;
        self.udp |= udp;
        self.udp_in += udp_in;
        self.udp_out += udp_out;
        self.udp_dropped += udp_dropped;
        self.udp_looped += udp_looped;
        self.udp_limited += udp_limited;
        self.faults |= faults;
        self.injected_delays += injected_delays;
        self.injected_closes += injected_closes;
        self.injected_resets += injected_resets;
        self.injected_stalls += injected_stalls;
        self.injected_drops += injected_drops;
        self.tls.add(&tls);
        self.proxy.add(&proxy);
        for (mine, theirs) in self.events_per_poll.iter_mut().zip(events_per_poll) {
            *mine += theirs;
        }
    }

    /// Counts one poll that returned `events` events.
    pub fn note_poll(&mut self, events: u64) {
        // ⌈log2(events)⌉: 0 and 1 → bucket 0, 2 → 1, 3..=4 → 2, …
        let bucket = (u64::BITS - events.saturating_sub(1).leading_zeros()) as usize;
        self.events_per_poll[bucket.min(POLL_BUCKETS - 1)] += 1;
    }

    /// The one-line summary printed at shutdown.
    pub fn summary_line(&self) -> String {
        let plural = if self.accepted == 1 { "" } else { "s" };
        let mut line = format!(
            "served {} connection{plural}, echoed {} bytes, peak {} concurrent",
            self.accepted, self.bytes_out, self.peak_open
        );
        if self.udp {
            let _ = write!(
                line,
                "; udp datagrams in {} out {} dropped {} looped {} limited {}",
                self.udp_in, self.udp_out, self.udp_dropped, self.udp_looped, self.udp_limited
            );
        }
        if self.faults {
            let _ = write!(
                line,
                "; injected delays {} closes {} resets {} stalls {} drops {}",
                self.injected_delays,
                self.injected_closes,
                self.injected_resets,
                self.injected_stalls,
                self.injected_drops
            );
        }
        if self.tls.on {
            let t = &self.tls;
            let _ = write!(
                line,
                "; tls handshakes full {} resumed {}, refused {} aborted {} timed out {}, \
                 truncated {}, mean {} us, max {} us",
                t.full,
                t.resumed,
                t.refused,
                t.aborted,
                t.timed_out,
                t.truncated,
                t.mean_us(),
                t.max_us
            );
        }
        if self.proxy.on {
            let p = &self.proxy;
            let _ = write!(
                line,
                "; proxy headers v1 {} v2 {} local {}, refused bad {} oversized {} \
                 timed out {} left {}",
                p.v1, p.v2, p.local, p.bad, p.oversized, p.timed_out, p.left
            );
            if let Some(last) = p.last {
                let _ = write!(line, ", last client {last}");
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_line_shows_deltas_and_current_gauges() {
        let then = Counters {
            polls: 10,
            events: 10,
            reads: 5,
            accepted: 3,
            ..Counters::default()
        };
        let now = Counters {
            polls: 14,
            events: 20,
            reads: 9,
            accepted: 5,
            closed: 1,
            owed_now: 7,
            owed_peak: 9,
            ..then
        };
        let line = now.interval_line(&then, Duration::from_millis(1500));
        assert_eq!(
            line,
            "stats: last=1.5s polls=4 events/poll=2.50 reads=4 writes=0 wouldblock=0 \
             in=0 out=0 accepted=2 closed=1 budget_spent=0 | open=4 owed=7 owed_peak=9 accept_errors=0"
        );
    }

    /// Summing two reactors: counts add, the per-connection peak does not.
    #[test]
    fn add_sums_counts_and_keeps_the_larger_owed_peak() {
        let mut a = Counters {
            accepted: 3,
            closed: 1,
            bytes_out: 10,
            owed_peak: 9,
            peak_open: 2,
            ..Counters::default()
        };
        let b = Counters {
            accepted: 4,
            bytes_out: 5,
            owed_now: 6,
            owed_peak: 7,
            peak_open: 4,
            ..Counters::default()
        };
        a.add(&b);
        assert_eq!(
            (
                a.accepted,
                a.closed,
                a.open(),
                a.bytes_out,
                a.owed_now,
                a.owed_peak,
                a.peak_open
            ),
            (7, 1, 6, 15, 6, 9, 6)
        );
    }

    /// With faults on, both lines say what was injected.
    #[test]
    fn the_lines_count_injected_faults() {
        let then = Counters {
            faults: true,
            injected_delays: 5,
            ..Counters::default()
        };
        let now = Counters {
            injected_delays: 12,
            injected_closes: 2,
            injected_drops: 9,
            ..then
        };
        let line = now.interval_line(&then, Duration::from_secs(1));
        assert!(
            line.ends_with(" | injected delays=7 closes=2 resets=0 stalls=0 drops=9"),
            "{line}"
        );
        assert!(
            now.summary_line()
                .ends_with("; injected delays 12 closes 2 resets 0 stalls 0 drops 9"),
            "{}",
            now.summary_line()
        );
    }

    /// With TLS on, both lines count handshakes, and the latencies fall
    /// into their buckets (a bound is inclusive).
    #[test]
    fn the_lines_count_handshakes() {
        let then = Counters {
            tls: Handshakes {
                on: true,
                ..Handshakes::default()
            },
            ..Counters::default()
        };
        let mut now = then;
        now.tls.note(false, 100);
        now.tls.note(false, 101);
        now.tls.note(true, 200_000);
        now.tls.refused = 1;
        now.tls.aborted = 2;
        now.tls.timed_out = 3;
        assert_eq!(now.tls.buckets[0], 1);
        assert_eq!(now.tls.buckets[1], 1);
        assert_eq!(now.tls.buckets[10], 1);
        let line = now.interval_line(&then, Duration::from_secs(1));
        assert!(
            line.ends_with(
                " | tls full=2 resumed=1 refused=1 aborted=2 timed_out=3 truncated=0 \
                 handshake_max=200000us"
            ),
            "{line}"
        );
        assert!(
            now.summary_line().ends_with(
                "; tls handshakes full 2 resumed 1, refused 1 aborted 2 timed out 3, truncated 0, \
                 mean 66733 us, max 200000 us"
            ),
            "{}",
            now.summary_line()
        );
    }

    #[test]
    fn summary_line_names_the_three_figures() {
        let c = Counters {
            accepted: 4,
            bytes_out: 1234,
            peak_open: 3,
            ..Counters::default()
        };
        assert_eq!(
            c.summary_line(),
            "served 4 connections, echoed 1234 bytes, peak 3 concurrent"
        );
    }

    /// The shutdown line speaks English: one connection, two connections.
    #[test]
    fn the_summary_line_counts_in_english() {
        let one = Counters {
            accepted: 1,
            ..Counters::default()
        };
        assert!(
            one.summary_line()
                .starts_with("served 1 connection, echoed 0 bytes")
        );
        let two = Counters {
            accepted: 2,
            ..Counters::default()
        };
        assert!(two.summary_line().starts_with("served 2 connections, "));
    }
}
