//! The UDP echo (RFC 862): one more token in the same poll. Each datagram
//! goes back to its sender unchanged and whole.
//!
//! A datagram socket sits in the loop like a stream socket, with three
//! differences this file is about:
//!
//! * **Whole datagrams.** A read returns one datagram, never part of one,
//!   and a buffer shorter than the datagram silently truncates it. So the
//!   buffer holds the largest datagram (65,507 bytes over IPv4), whatever
//!   `--read-size` says.
//! * **No backpressure.** UDP has no flow control to push back with: when a
//!   send would block, the datagram is dropped and counted (`dropped`),
//!   never queued, so memory stays bounded whatever the peers do.
//! * **Anyone can ask.** A datagram's source address is whatever the sender
//!   wrote. One spoofed datagram "from" another echo server's port 7 would
//!   make two echo servers answer each other forever (the echo–chargen loop
//!   of CVE-1999-0103). As BSD inetd's built-in services do, datagrams from
//!   the ports of small services that answer by themselves are not
//!   answered (`looped`). `--udp-rate-limit N` caps what each source
//!   address gets answered per second (`limited`), for an exposed port.
//!
//! Reading follows the per-turn budget like a connection's: at most
//! `--budget` bytes per turn, then the socket waits its turn on the ready
//! queue (edge-triggered readiness will not announce the rest again).
//!
//! Next: [`group`](super::group).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;

use super::counters::Counters;
use crate::shared::net::{interrupted, would_block};

/// The largest UDP payload over IPv4 (65,535 − 8 − 20); IPv6's is a bit
/// larger without jumbograms, and the buffer has room for it too.
pub const MAX_DATAGRAM: usize = 65_507;

/// Source ports of services that answer any datagram by themselves: echo,
/// discard, daytime, quote of the day, chargen, time (and 0, which no real
/// sender uses). A datagram from one of them is never answered: the answer
/// would be answered back.
pub const LOOPING_PORTS: [u16; 7] = [0, 7, 9, 13, 17, 19, 37];

/// The most source addresses the rate limit remembers; past that, a new
/// source is refused until old ones have gone quiet (a flood of spoofed
/// sources cannot grow the table).
pub const MAX_SOURCES: usize = 4096;

/// The UDP side of a server: the socket, its buffer, the rate limit.
#[derive(Debug)]
pub struct Datagrams {
    /// The socket, registered under the server's UDP token.
    pub socket: UdpSocket,
    buf: Vec<u8>,
    limit: Option<RateLimit>,
}

/// Whether the socket was read dry in this pass.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    /// It said `WouldBlock`: wait for the next event.
    Drained,
    /// The budget ran out first: come back next turn.
    Requeue,
}

impl Datagrams {
    /// Wraps a bound socket; `rate_limit` is datagrams per second per
    /// source address.
    pub fn new(socket: UdpSocket, rate_limit: Option<f64>) -> Datagrams {
        Datagrams {
            socket,
            buf: vec![0; MAX_DATAGRAM + 1024],
            limit: rate_limit.map(RateLimit::new),
        }
    }

    /// Receives and answers datagrams until the socket is dry or `budget`
    /// bytes were read. Errors that concern one datagram (a send that
    /// fails, an ICMP error surfacing on receive) are counted or logged
    /// and the pass goes on.
    pub fn serve(&mut self, now: Instant, budget: usize, stats: &mut Counters) -> Pass {
        let mut read = 0;
        loop {
            if read >= budget {
                return Pass::Requeue;
            }
            let (n, from) = match self.socket.recv_from(&mut self.buf) {
                Ok(got) => got,
                Err(e) if would_block(&e) => {
                    log::trace!("udp wouldblock");
                    stats.would_blocks += 1;
                    return Pass::Drained;
                }
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    // E.g. an ICMP error for an earlier answer: it concerns
                    // that peer only.
                    log::debug!("udp receive: {e}");
                    continue;
                }
            };
            read += n.max(1);
            stats.udp_in += 1;
            stats.bytes_in += n as u64;
            if LOOPING_PORTS.contains(&from.port()) {
                log::debug!("udp from={from} bytes={n}: not answered (a service port: loop)");
                stats.udp_looped += 1;
                continue;
            }
            if let Some(limit) = &mut self.limit
                && !limit.allow(from.ip(), now)
            {
                log::trace!("udp from={from} bytes={n}: over --udp-rate-limit");
                stats.udp_limited += 1;
                continue;
            }
            log::trace!("udp from={from} bytes={n}");
            self.answer(n, from, stats);
        }
    }

    /// Sends the first `n` bytes of the buffer back to `to`, or drops them.
    fn answer(&mut self, n: usize, to: SocketAddr, stats: &mut Counters) {
        loop {
            match self.socket.send_to(&self.buf[..n], to) {
                Ok(_) => {
                    stats.udp_out += 1;
                    stats.bytes_out += n as u64;
                    return;
                }
                Err(e) if interrupted(&e) => {}
                Err(e) => {
                    // No backpressure in UDP: never queue, count.
                    log::trace!("udp to={to} dropped: {e}");
                    stats.udp_dropped += 1;
                    return;
                }
            }
        }
    }
}

/// A token bucket per source address: `per_s` datagrams a second, bursts
/// of up to a second's worth.
#[derive(Debug)]
struct RateLimit {
    per_s: f64,
    sources: HashMap<IpAddr, (f64, Instant)>,
}

impl RateLimit {
    fn new(per_s: f64) -> RateLimit {
        RateLimit {
            per_s,
            sources: HashMap::new(),
        }
    }

    /// The most tokens a bucket holds.
    fn burst(&self) -> f64 {
        self.per_s.max(1.0)
    }

    /// Whether a datagram from `ip` at `now` may be answered.
    fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let burst = self.burst();
        if !self.sources.contains_key(&ip) && self.sources.len() >= MAX_SOURCES {
            // Forget the sources whose bucket has refilled: they are the
            // same as new ones.
            let per_s = self.per_s;
            let full_after = Duration::from_secs_f64(burst / per_s);
            self.sources
                .retain(|_, (_, last)| now.saturating_duration_since(*last) < full_after);
            if self.sources.len() >= MAX_SOURCES {
                return false;
            }
        }
        let (tokens, last) = self.sources.entry(ip).or_insert((burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.per_s;
        *tokens = (*tokens + refill).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With made-up instants: 3 a second allows a burst of 3, then one
    /// more each third of a second; another source has its own bucket.
    #[test]
    fn the_rate_limit_refills_per_source() {
        let mut limit = RateLimit::new(3.0);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let t0 = Instant::now();
        let allowed = (0..5).filter(|_| limit.allow(a, t0)).count();
        assert_eq!(allowed, 3);
        assert!(limit.allow(b, t0), "b has its own bucket");
        assert!(!limit.allow(a, t0 + Duration::from_millis(300)));
        assert!(limit.allow(a, t0 + Duration::from_millis(334)));
        assert!(!limit.allow(a, t0 + Duration::from_millis(335)));
    }

    /// A pass stops once its budget is read (the rest waits for the next
    /// turn), and the next pass reads on to `WouldBlock`; every datagram is
    /// answered whole, to its sender.
    #[test]
    fn a_pass_stops_at_the_budget_and_the_next_drains() {
        let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        std_socket.set_nonblocking(true).unwrap();
        let addr = std_socket.local_addr().unwrap();
        let mut udp = Datagrams::new(UdpSocket::from_std(std_socket), None);
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        for i in 0..3u8 {
            peer.send_to(&[i; 100], addr).unwrap();
        }
        let mut stats = Counters::default();
        let now = Instant::now();
        // A send to a loopback UDP socket is queued at the receiver before
        // send_to returns: all three wait now.
        assert_eq!(udp.serve(now, 150, &mut stats), Pass::Requeue);
        assert_eq!(stats.udp_in, 2, "two reads of 100 B spend a budget of 150");
        assert_eq!(udp.serve(now, 1_000_000, &mut stats), Pass::Drained);
        assert_eq!((stats.udp_in, stats.udp_out, stats.bytes_out), (3, 3, 300));
        let mut buf = [0u8; 200];
        for i in 0..3u8 {
            let (n, from) = peer.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&[i; 100][..], addr));
        }
    }

    /// The table stays bounded: a flood of new sources is refused once it
    /// is full, and a quiet source's entry makes room again.
    #[test]
    fn the_table_of_sources_is_bounded() {
        let mut limit = RateLimit::new(10.0);
        let t0 = Instant::now();
        for i in 0..MAX_SOURCES as u32 {
            assert!(limit.allow(IpAddr::from(i.to_be_bytes()), t0));
        }
        let newcomer = IpAddr::from([10, 0, 0, 1]);
        assert!(
            limit.allow(IpAddr::from(0u32.to_be_bytes()), t0),
            "known ones go on"
        );
        assert!(!limit.allow(newcomer, t0), "full: refused");
        assert_eq!(limit.sources.len(), MAX_SOURCES);
        // A second later every bucket is full again: all are forgettable.
        assert!(limit.allow(newcomer, t0 + Duration::from_secs(1)));
        assert!(limit.sources.len() <= MAX_SOURCES);
    }
}
