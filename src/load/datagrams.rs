//! `echoloop load udp://HOST:PORT`: the load generator for datagrams. Its
//! loop has the stream generator's shape (`run` polls, then `turn(now,
//! batch)`: each event, the timers, then deferred work), on `-c`
//! connected UDP sockets.
//!
//! A datagram can be lost, duplicated, reordered or corrupted on the way,
//! and a UDP load test is there to say which, as iperf3 `-u` does. So each
//! datagram carries a header, `[sequence: u64][socket: u32][magic: u32]`
//! (little-endian, 16 bytes), then tape bytes that depend on both. A reply
//! is checked in full:
//!
//! * **corrupted**: wrong length, wrong socket, or a byte differs;
//! * **duplicated**: its sequence number was already answered;
//! * **reordered**: it came after a reply with a higher number (it still
//!   counts, with its latency);
//! * **lost**: no reply within `--timeout` (found at the next 200 ms tick);
//!   a reply that comes after that stays lost, and is counted **late**
//!   (never as a duplicate: under heavy loss, thousands of losses may come
//!   back late, and the server did not answer any of them twice). When the window ends, the
//!   run stops sending and waits up to `--timeout` for the replies still
//!   due, so that every datagram sent in the window is counted either
//!   answered or lost: `sent = answered + lost`.
//!
//! Closed loop keeps `--pipeline K` datagrams in flight per socket, and a
//! lost one is replaced; `--rate` sends on the schedule, round robin.
//! Losing datagrams is a measurement, not a failure: the run fails (exit
//! 1) for corrupted replies, or when nothing came back at all.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Instant;

use mio::net::UdpSocket;
use mio::{Interest, Poll, Token};

use super::config::Config;
use super::counters::{Counters, Segments};
use super::engine::{self, Engine};
use super::intervals::Intervals;
use super::outcome::{DatagramFigures, Fate, Progress, Summary, Update};
use super::schedule::{DEAL_PER_TURN, OpenLoop, TIMER};
use super::tape::{TAPE_PERIOD, make_tape, tape_slice};
use super::timer::Timer;
use crate::shared::addr::Endpoint;
use crate::shared::duration::deadline_after;
use crate::shared::mmsg::{BATCH, Batch, Outbox};
use crate::shared::net::{MAX_DATAGRAM, describe, interrupted, would_block};
use crate::shared::readiness::Readiness;

/// The header before the tape bytes: sequence, socket, magic.
pub const HEADER: usize = 16;
const MAGIC: u32 = 0xEC40_100F;
/// The most sequence numbers remembered as lost per socket (to tell a late
/// reply from a duplicate); older ones are forgotten.
const LOST_MEMORY: usize = 4096;

/// One UDP socket's traffic.
struct Flow {
    socket: UdpSocket,
    /// Where this socket's bytes start on the tape.
    tape_start: usize,
    next_seq: u64,
    /// Datagrams waiting for their reply: sequence → sent (or due) at.
    in_flight: BTreeMap<u64, Instant>,
    /// Sequence numbers given up as lost (a reply now is late, not a
    /// duplicate), oldest first.
    lost: VecDeque<u64>,
    lost_set: HashSet<u64>,
    /// Every sequence below this was either answered or forgotten from
    /// `lost`: a reply for one of them cannot be told apart, and counts as
    /// late (a second answer to a datagram is rare; a late one under loss
    /// is not).
    forgotten_below: u64,
    highest_answered: Option<u64>,
    /// RFC 3550 interarrival jitter of this socket's replies in the window.
    jitter: Jitter,
}

/// The UDP generator.
pub(super) struct DatagramGenerator {
    config: Config,
    poll: Poll,
    flows: Vec<Flow>,
    tape: Vec<u8>,
    /// Replies, a batch per `recvmmsg` (see [`mmsg`](crate::shared::mmsg)).
    batch: Batch,
    /// Datagrams due together on one socket, sent by one `sendmmsg`.
    outbox: Outbox,
    /// When each datagram of this pass fell due (open loop: in the order
    /// the schedule dealt them, round robin from `next_flow`).
    due: Vec<Instant>,
    /// The part of `due` that goes to one socket.
    mine: Vec<Instant>,
    started: Instant,
    now: Instant,
    next_tick: Instant,
    counters: Counters,
    figures: DatagramFigures,
    /// Open loop: the schedule, from the run's start. `None` in closed loop.
    schedule: Option<OpenLoop>,
    next_flow: usize,
    cpu: crate::shared::cpu::CpuWindow,
    /// Open loop: wakes the poll [`SPIN`](super::schedule::SPIN) before the next due datagram,
    /// as in the stream generator (the poll's timeout is whole ms).
    timer: Option<Timer>,
    /// `--interval`, as in the stream generator.
    intervals: Option<Intervals>,
}

impl DatagramGenerator {
    /// Binds and connects the sockets; the clock starts at once (UDP has
    /// no handshake to wait for).
    pub(super) fn new(config: Config) -> io::Result<DatagramGenerator> {
        let Endpoint::Ip(addr) = config.addr else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "UDP needs an IP address",
            ));
        };
        if !(HEADER..=MAX_DATAGRAM).contains(&config.size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a UDP message is {HEADER} to {MAX_DATAGRAM} bytes (-s)"),
            ));
        }
        let poll = Poll::new()?;
        let mut flows = Vec::with_capacity(config.connections);
        for i in 0..config.connections {
            let local = match config.sources.as_slice() {
                [] => match addr {
                    SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
                    SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
                },
                sources => SocketAddr::new(sources[i % sources.len()], 0),
            };
            let mut socket = UdpSocket::bind(local)?;
            socket.connect(addr)?;
            poll.registry()
                .register(&mut socket, Token(i), Interest::READABLE)?;
            flows.push(Flow {
                socket,
                tape_start: (i * 7919 * 64) % TAPE_PERIOD,
                next_seq: 0,
                in_flight: BTreeMap::new(),
                lost: VecDeque::new(),
                lost_set: HashSet::new(),
                forgotten_below: 0,
                highest_answered: None,
                jitter: Jitter::default(),
            });
        }
        let timer = match &config.rate {
            Some(_) => Timer::new(poll.registry(), TIMER).ok(),
            None => None,
        };
        let started = config.origin.unwrap_or_else(Instant::now);
        // --start-at: the clock starts then (no connections to wait for).
        let origin = config.start_at.unwrap_or(started);
        let measure_from = deadline_after(origin, config.warmup);
        let end = deadline_after(measure_from, config.duration);
        let mut counters = Counters::new(config.timeout, measure_from, end)?;
        counters.segments = Segments::for_config(&config);
        Ok(DatagramGenerator {
            counters,
            figures: DatagramFigures::default(),
            poll,
            flows,
            tape: make_tape(),
            batch: Batch::new(),
            outbox: Outbox::new(config.size),
            due: Vec::with_capacity(DEAL_PER_TURN as usize),
            mine: Vec::with_capacity(DEAL_PER_TURN as usize),
            started,
            now: started,
            next_tick: started,
            schedule: match &config.rate {
                Some(plan) => {
                    let (plan, warmup) = (plan.clone(), config.warmup);
                    let mut schedule =
                        OpenLoop::planned(plan, warmup, config.spin, config.coalesce)?;
                    schedule.start(origin);
                    Some(schedule)
                }
                None => None,
            },
            next_flow: 0,
            cpu: crate::shared::cpu::CpuWindow::default(),
            timer,
            intervals: config
                .interval
                .map(|every| Intervals::new(every, measure_from, started)),
            config,
        })
    }

    /// At each tick: datagrams older than `--timeout` are lost.
    fn on_timers(&mut self, now: Instant) -> Option<Progress> {
        let schedule = self.schedule.as_ref();
        let tick = engine::on_timers(
            now,
            &mut self.intervals,
            &mut self.counters,
            schedule,
            &mut self.next_tick,
        );
        if !tick {
            return None;
        }
        let timeout = self.config.timeout;
        for flow in &mut self.flows {
            while let Some((&seq, &at)) = flow.in_flight.first_key_value() {
                if now.saturating_duration_since(at) <= timeout {
                    break;
                }
                flow.in_flight.remove(&seq);
                if self.counters.sent_in_window(at) {
                    self.figures.lost += 1;
                }
                flow.lost.push_back(seq);
                flow.lost_set.insert(seq);
                if flow.lost.len() > LOST_MEMORY
                    && let Some(old) = flow.lost.pop_front()
                {
                    flow.lost_set.remove(&old);
                    flow.forgotten_below = flow.forgotten_below.max(old + 1);
                }
            }
        }
        // The datagram generator's clock starts at once (no connects).
        let errors = self.figures.corrupted;
        let figures = self.config.metrics.then(|| {
            let in_flight = self.flows.iter().map(|f| f.in_flight.len() as u64).sum();
            (in_flight, self.schedule.as_ref())
        });
        Some(engine::progress(&self.counters, now, true, errors, figures))
    }

    /// Open loop: sends the datagrams due by now, round robin: the
    /// schedule deals them to the sockets in turn, and each socket's share
    /// goes in one `sendmmsg` (one socket at a high rate gets many at
    /// once; many sockets at a low rate get one each).
    fn deal(&mut self, now: Instant) {
        let (measure_from, end) = (self.counters.measure_from, self.counters.end);
        if !self
            .schedule
            .as_mut()
            .is_some_and(|s| s.open_pass(now, end))
        {
            return;
        }
        let Some(schedule) = &mut self.schedule else {
            return;
        };
        self.due.clear();
        while (self.due.len() as u64) < DEAL_PER_TURN {
            let Some(at) = schedule.peek(now, end) else {
                break;
            };
            self.due.push(schedule.take(at, now, measure_from));
        }
        // Due datagram k goes to socket (first + k) mod n.
        let (first, n) = (self.next_flow, self.flows.len());
        self.next_flow = (first + self.due.len()) % n;
        let mut mine = std::mem::take(&mut self.mine);
        for j in 0..n.min(self.due.len()) {
            mine.clear();
            mine.extend(self.due.iter().skip(j).step_by(n));
            self.send(first.wrapping_add(j) % n, &mine);
        }
        self.mine = mine;
    }

    /// Sends flow `i`'s next datagrams, one per instant of `due` (when
    /// each fell due, or now in closed loop), as few calls as the
    /// outbox's room allows. What the socket will not take is not sent
    /// and not in flight: UDP has no backpressure to wait on.
    fn send(&mut self, i: usize, due: &[Instant]) {
        let Some(flow) = self.flows.get_mut(i) else {
            return;
        };
        let size = self.config.size;
        for chunk in due.chunks(self.outbox.room()) {
            for k in 0..chunk.len() {
                let seq = flow.next_seq + k as u64;
                fill(
                    self.outbox.slot(k),
                    &self.tape,
                    flow.tape_start,
                    seq,
                    i as u32,
                );
            }
            let went = match self.outbox.send(flow.socket.as_raw_fd(), chunk.len()) {
                Ok(went) => went,
                Err(e) => {
                    if !would_block(&e) {
                        log::debug!("udp socket {i}: send failed: {}", describe(&e));
                    }
                    0
                }
            };
            log::trace!("udp socket {i}: sent {went} of {} in one call", chunk.len());
            for &at in &chunk[..went] {
                flow.in_flight.insert(flow.next_seq, at);
                flow.next_seq += 1;
                if self.counters.sent_in_window(at) {
                    self.figures.sent += 1;
                    self.counters.bytes_sent += size as u64;
                }
            }
            if went < chunk.len() {
                return;
            }
        }
    }

    /// Receives every reply waiting on socket `i`, a batch per call, and
    /// checks each.
    fn on_readable(&mut self, i: usize, now: Instant) {
        let Some(flow) = self.flows.get_mut(i) else {
            return;
        };
        loop {
            let got = match self.batch.recv(flow.socket.as_raw_fd(), BATCH) {
                Ok(got) => got,
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    // ICMP "port unreachable" for an earlier datagram.
                    log::debug!("udp socket {i}: {}", describe(&e));
                    self.counters.errors.connect += 1;
                    return;
                }
            };
            for k in 0..got {
                let (reply, _) = self.batch.get(k);
                let n = reply.len();
                let Some(seq) = check(
                    reply,
                    self.config.size,
                    &self.tape,
                    flow.tape_start,
                    i as u32,
                ) else {
                    log::debug!("udp socket {i}: a corrupted reply ({n} bytes)");
                    self.figures.corrupted += 1;
                    continue;
                };
                let Some(at) = flow.in_flight.remove(&seq) else {
                    if flow.lost_set.contains(&seq) || seq < flow.forgotten_below {
                        log::trace!(
                            "udp socket {i}: seq {seq} came back after it was counted lost"
                        );
                        self.figures.late += 1;
                    } else {
                        self.figures.duplicated += 1;
                    }
                    continue;
                };
                if flow.highest_answered.is_some_and(|h| seq < h) {
                    self.figures.reordered += 1;
                }
                flow.highest_answered = flow.highest_answered.max(Some(seq));
                if self.counters.measuring(now) {
                    self.counters.bytes_received += n as u64;
                }
                let in_window = self.counters.sent_in_window(at);
                // A reply later than the timeout is a loss, however it was
                // noticed: here, or by the tick if it never comes.
                match self.counters.complete(at, now) {
                    Err(_) if in_window => self.figures.lost += 1,
                    Ok(()) if in_window => {
                        self.figures.answered += 1;
                        flow.jitter.on_reply(at, now);
                    }
                    _ => {}
                }
            }
            // A short batch: the socket is empty (the next reply raises a
            // new edge), so no read is spent on EAGAIN.
            if got < BATCH {
                return;
            }
        }
    }
}

/// Writes datagram `seq` of socket `socket` into `out` (its whole length).
fn fill(out: &mut [u8], tape: &[u8], start: usize, seq: u64, socket: u32) {
    out[..8].copy_from_slice(&seq.to_le_bytes());
    out[8..12].copy_from_slice(&socket.to_le_bytes());
    out[12..16].copy_from_slice(&MAGIC.to_le_bytes());
    let body = out.len() - HEADER;
    out[HEADER..].copy_from_slice(tape_slice(tape, start, seq.wrapping_mul(997), body));
}

/// The sequence number of `reply` if it is exactly a datagram that socket
/// `socket` sent (length, header and every tape byte); `None` if not.
fn check(reply: &[u8], size: usize, tape: &[u8], start: usize, socket: u32) -> Option<u64> {
    if reply.len() != size {
        return None;
    }
    let word =
        |r: std::ops::Range<usize>| u32::from_le_bytes(reply[r].try_into().unwrap_or_default());
    let seq = u64::from_le_bytes(reply[..8].try_into().ok()?);
    if word(8..12) != socket || word(12..16) != MAGIC {
        return None;
    }
    let body = size - HEADER;
    (reply[HEADER..] == *tape_slice(tape, start, seq.wrapping_mul(997), body)).then_some(seq)
}

impl Engine for DatagramGenerator {
    fn poll(&mut self) -> &mut Poll {
        &mut self.poll
    }

    fn started(&self) -> Instant {
        self.started
    }

    fn clock(&self) -> Instant {
        self.now
    }

    fn intervals(&mut self) -> &mut Option<Intervals> {
        &mut self.intervals
    }

    /// Each event, then the timers, then sending what is due.
    fn turn(
        &mut self,
        now: Instant,
        batch: impl IntoIterator<Item = Readiness>,
    ) -> Option<Progress> {
        let now = self.now.max(now);
        self.now = now;
        // The window's CPU ends before this batch if the window has.
        self.cpu
            .on_turn(now, self.counters.measure_from, self.counters.end);
        for event in batch {
            log::trace!("event {event}");
            if event.token == TIMER {
                // The datagram generator's clock starts at once.
                engine::on_timer(&mut self.timer, &mut self.schedule, now, true);
                continue;
            }
            self.on_readable(event.token.0, now);
        }
        if self
            .config
            .messages
            .is_some_and(|m| self.counters.messages >= m)
            && now < self.counters.end
        {
            log::debug!("--messages reached: the window ends, the last replies settle");
            self.counters.end = now;
        }
        if let Some(signal) = self.config.stop.requested()
            && now < self.counters.end
        {
            log::warn!(
                "{signal}: the window ends now; awaiting the last replies \
                 (send it again to stop at once)"
            );
            self.counters.end = now;
        }
        let tick = self.on_timers(now);
        if self.config.rate.is_some() {
            // What fell due before the end goes out even when the loop
            // wakes after it (as in the stream generator); nothing later.
            self.deal(now);
        } else if now >= self.counters.end {
            // Settling: no more sends, only the last replies.
        } else if self.config.start_at.is_some_and(|at| now < at) {
            // --start-at: not yet.
        } else {
            for i in 0..self.flows.len() {
                let want = self
                    .config
                    .pipeline
                    .saturating_sub(self.flows[i].in_flight.len());
                if want > 0 {
                    let mut mine = std::mem::take(&mut self.mine);
                    mine.clear();
                    mine.resize(want, now);
                    self.send(i, &mine);
                    self.mine = mine;
                }
            }
        }
        tick
    }

    /// When to wake: the end, the next tick, the next due datagram (with a
    /// timer, only in the last [`SPIN`](super::schedule::SPIN) before it:
    /// then at once).
    fn next_deadline(&self) -> Option<Instant> {
        let timed = self.timer.is_some();
        let due = self
            .schedule
            .as_ref()
            .and_then(|s| s.wake(self.now, self.counters.end, timed));
        let settled_by = deadline_after(self.counters.end, self.config.timeout);
        let end = if self.now >= self.counters.end {
            settled_by
        } else {
            self.counters.end
        };
        let interval = self.intervals.as_ref().map(Intervals::due);
        let start = self.config.start_at.filter(|&at| at > self.now);
        [Some(end), Some(self.next_tick), interval, due, start]
            .into_iter()
            .flatten()
            .min()
    }

    /// Over once the window has ended and every datagram sent in it is
    /// answered or timed out (at most `--timeout` later). `--messages`
    /// ends the window early (see [`turn`](Self::turn)), and the
    /// datagrams then in flight settle the same way: counted lost only if
    /// their replies do not come.
    fn finished(&self) -> bool {
        let settled = self.flows.iter().all(|f| f.in_flight.is_empty())
            || self.now >= deadline_after(self.counters.end, self.config.timeout);
        self.now >= self.counters.end && settled
    }

    fn finish(&mut self) -> Summary {
        if let Some(intervals) = &mut self.intervals {
            intervals.cut(self.now, &mut self.counters, true, self.schedule.as_ref());
        }
        // What is still in flight now had its whole --timeout: lost.
        for flow in &self.flows {
            for &at in flow.in_flight.values() {
                if self.counters.sent_in_window(at) {
                    self.figures.lost += 1;
                }
            }
            if flow.jitter.known() {
                self.figures.jitter_sum_ns += flow.jitter.estimate_ns;
                self.figures.jitter_sockets += 1;
            }
        }
        let end = self.now.min(self.counters.end);
        self.counters.note_errors(end);
        let duration = end.saturating_duration_since(self.counters.measure_from);
        let cpu = self.cpu.used();
        let cpu_wall = self.cpu.wall();
        let schedule = self
            .schedule
            .as_ref()
            .map(|s| s.kept(self.counters.measure_from, end));
        let c = &self.counters;
        let mut errors = c.errors;
        errors.mismatch += self.figures.corrupted;
        Summary {
            tls: None,
            connections: self.config.connections,
            established: self.flows.len(),
            size: self.config.size,
            duration,
            messages: c.messages,
            bytes_sent: c.bytes_sent,
            bytes_received: c.bytes_received,
            latency: c.latency.clone(),
            service: None,
            connects: 0,
            connect_latency: c.connect_latency.clone(),
            errors,
            first_connect_error: None,
            // Datagram sockets neither connect nor die.
            fate: Fate {
                up_at_end: self.flows.len(),
                ..Fate::default()
            },
            schedule,
            cpu,
            cpu_wall,
            per_thread: vec![c.messages as f64 / duration.as_secs_f64().max(1e-9)],
            datagrams: Some(self.figures),
            ending: None,
            segments: c.segments(self.schedule.as_ref()),
            thresholds: Vec::new(),
        }
    }

    /// Open loop: the timerfd wakes the poll in the last stretch before
    /// the next due datagram.
    fn arm_timer(&mut self) -> io::Result<()> {
        let spin_from = self
            .schedule
            .as_ref()
            .and_then(|s| s.spin_from(self.now, self.counters.end));
        match &mut self.timer {
            Some(timer) => timer.set(self.now, spin_from),
            None => Ok(()),
        }
    }
}

/// Runs a whole UDP load test on this thread.
pub(super) fn run(config: Config, progress: impl FnMut(Update<'_>)) -> io::Result<Summary> {
    engine::run(&mut DatagramGenerator::new(config)?, progress)
}

/// RFC 3550's interarrival jitter, for one socket: a running mean of how
/// much the transit time of consecutive replies differs, smoothed by 1/16
/// (the RFC's gain), so a single outlier moves it a sixteenth.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Jitter {
    /// The previous reply's transit time (reply seen − datagram sent), ns.
    last_transit_ns: Option<i128>,
    /// The estimate, ns.
    pub estimate_ns: f64,
}

impl Jitter {
    /// A reply whose datagram went at `sent` came back at `now`.
    pub fn on_reply(&mut self, sent: std::time::Instant, now: std::time::Instant) {
        let transit = now.saturating_duration_since(sent).as_nanos() as i128;
        if let Some(last) = self.last_transit_ns {
            let d = (transit - last).abs() as f64;
            self.estimate_ns += (d - self.estimate_ns) / 16.0;
        }
        self.last_transit_ns = Some(transit);
    }

    /// Whether there is an estimate yet (two replies or more).
    pub fn known(&self) -> bool {
        self.last_transit_ns.is_some() && self.estimate_ns > 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram checks out as itself, and not as another socket's, with
    /// a byte changed, or cut short.
    #[test]
    fn a_datagram_checks_out_only_as_itself() {
        let tape = make_tape();
        let mut d = vec![0; 100];
        fill(&mut d, &tape, 1000, 42, 3);
        assert_eq!(check(&d, 100, &tape, 1000, 3), Some(42));
        assert_eq!(check(&d, 100, &tape, 1000, 4), None, "another socket");
        assert_eq!(check(&d[..99], 100, &tape, 1000, 3), None, "cut short");
        let mut bad = d.clone();
        bad[70] ^= 1;
        assert_eq!(check(&bad, 100, &tape, 1000, 3), None, "a byte changed");
        let mut other = vec![0; 100];
        fill(&mut other, &tape, 1000, 43, 3);
        assert_ne!(other[HEADER..], d[HEADER..], "each datagram's body differs");
    }
}
