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
//!   wrote, so an echo can be turned against another echo: see
//!   [`loops`](super::loops) for what is never answered (`looped`), and
//!   [`rate_limit`](super::rate_limit) for `--udp-rate-limit N`, a cap per
//!   source address for an exposed port (`limited`).
//!
//! Datagrams move in batches (see [`mmsg`](crate::shared::mmsg)): one
//! `recvmmsg` takes up to 32 waiting datagrams, one `sendmmsg` answers
//! them. A batch that comes back shorter than asked proves the socket
//! empty, as a short read does for a TCP connection: the next datagram
//! raises a new edge, so the pass ends without the read that would only
//! say `EAGAIN`.
//!
//! Reading follows the per-turn budget like a connection's: at most
//! `--budget` bytes per turn, then the socket waits its turn on the ready
//! queue (edge-triggered readiness will not announce the rest again). A
//! batch asks for as many datagrams as the budget left holds at the size
//! of the largest in the last batch, so a pass overshoots the budget by
//! at most about one datagram, as it did one datagram at a time.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use mio::net::UdpSocket;

use super::counters::Counters;
use super::faults::Faults;
use super::loops::LoopGuard;
use super::rate_limit::RateLimit;
use super::tokens::UDP;
use crate::shared::dice::Dice;
use crate::shared::mmsg::{BATCH, Batch};
use crate::shared::net::{interrupted, would_block};

/// The UDP side of a server: the socket, its buffer, the rate limit.
#[derive(Debug)]
pub struct Datagrams {
    /// The socket, registered under the server's UDP token.
    pub socket: UdpSocket,
    /// The datagrams of the last receive, and their senders.
    batch: Batch,
    /// The largest datagram of the last batch: how many the budget
    /// left has room for, in the next one.
    typical: usize,
    /// The last batch's datagrams to answer, by slot.
    answer: Vec<usize>,
    guard: LoopGuard,
    /// `--udp-rate-limit`, shared by every reactor of a group.
    limit: Option<Arc<RateLimit>>,
    /// `--drop`: the share of datagrams left unanswered, and the dice.
    drop: Option<(f64, Dice)>,
    /// Whether the socket may hold datagrams (an event came, or the last
    /// pass used its budget): served after the batch, like accepting.
    ready: bool,
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
    /// Wraps a bound socket; `limit` is `--udp-rate-limit`'s table (one
    /// for the whole server).
    pub fn new(socket: UdpSocket, limit: Option<Arc<RateLimit>>) -> std::io::Result<Datagrams> {
        let own_port = socket.local_addr()?.port();
        Ok(Datagrams {
            socket,
            batch: Batch::new(),
            typical: 1024,
            answer: Vec::with_capacity(BATCH),
            guard: LoopGuard::new(own_port),
            limit,
            drop: None,
            ready: false,
        })
    }

    /// Readiness on the UDP token: datagrams wait.
    pub fn on_event(&mut self) {
        self.ready = true;
    }

    /// Whether datagrams may wait right now (the poll must not sleep).
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// After the batch: one budget of datagrams, if the socket may hold any.
    pub fn on_turn(&mut self, now: Instant, budget: usize, stats: &mut Counters) {
        if !self.ready {
            return;
        }
        match self.serve(now, budget, stats) {
            Pass::Drained => self.ready = false,
            Pass::Requeue => {
                stats.budget_spent += 1;
                log::trace!("requeue udp (budget of {budget} B used)");
            }
        }
    }

    /// Registers a bound socket under the UDP token and wraps it, with
    /// `--udp-rate-limit`'s table and `--drop` from `faults`.
    pub fn register(
        socket: std::net::UdpSocket,
        registry: &mio::Registry,
        limit: Option<Arc<RateLimit>>,
        faults: &Faults,
    ) -> std::io::Result<Datagrams> {
        let mut socket = UdpSocket::from_std(socket);
        registry.register(&mut socket, UDP, mio::Interest::READABLE)?;
        let mut datagrams = Datagrams::new(socket, limit)?;
        datagrams.drop_on_purpose(faults.drop, faults.seed);
        Ok(datagrams)
    }

    /// `--drop`: leaves `share` (0 to 1) of the datagrams unanswered, as
    /// the dice of `seed` choose.
    pub fn drop_on_purpose(&mut self, share: f64, seed: u64) {
        self.drop = (share > 0.0).then(|| (share, Dice::new(seed, 0)));
    }

    /// Receives and answers datagrams, a batch at a time, until the
    /// socket is dry or `budget` bytes were read. Errors that concern one
    /// datagram (a send the kernel refuses, an ICMP error surfacing on
    /// receive) are counted or logged and the pass goes on.
    pub fn serve(&mut self, now: Instant, budget: usize, stats: &mut Counters) -> Pass {
        let mut read = 0;
        loop {
            if read >= budget {
                return Pass::Requeue;
            }
            let room = (budget - read) / self.typical.max(1);
            let asked = room.clamp(1, BATCH);
            let got = match self.batch.recv(self.socket.as_raw_fd(), asked) {
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
            log::trace!("udp batch got={got} asked={asked}");
            self.typical = 1;
            self.answer.clear();
            for i in 0..got {
                let (data, from) = self.batch.get(i);
                let n = data.len();
                self.typical = self.typical.max(n);
                read += n.max(1);
                stats.udp_in += 1;
                stats.bytes_in += n as u64;
                let Some(from) = from else {
                    log::debug!("udp bytes={n}: a sender of no IP family, not answered");
                    continue;
                };
                if let Some(why) = self.guard.check(from, data, now) {
                    log::debug!("udp from={from} bytes={n}: not answered ({why}: a loop)");
                    stats.udp_looped += 1;
                    continue;
                }
                if let Some(limit) = &self.limit
                    && !limit.allow(from.ip(), now)
                {
                    log::trace!("udp from={from} bytes={n}: over --udp-rate-limit");
                    stats.udp_limited += 1;
                    continue;
                }
                if let Some((share, dice)) = &mut self.drop
                    && dice.chance(*share)
                {
                    log::trace!("udp from={from} bytes={n}: dropped on purpose (--drop)");
                    stats.injected_drops += 1;
                    continue;
                }
                log::trace!("udp from={from} bytes={n}");
                self.answer.push(i);
            }
            if !self.answer.is_empty() {
                // No backpressure in UDP: what the socket will not take now
                // is dropped and counted, never queued.
                let sent = self.batch.send_back(self.socket.as_raw_fd(), &self.answer);
                stats.udp_out += sent.sent as u64;
                stats.bytes_out += sent.bytes as u64;
                stats.udp_dropped += sent.dropped as u64;
            }
            // ANCHOR: short_batch
            if got < asked {
                // Short: the socket is empty. A datagram that lands from
                // now on raises a new edge, so no read for EAGAIN.
                log::trace!("udp drained (short batch)");
                return Pass::Drained;
            }
            // ANCHOR_END: short_batch
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A pass stops once its budget is read (the rest waits for the next
    /// turn), and the next pass reads on to `WouldBlock`; every datagram is
    /// answered whole, to its sender.
    #[test]
    fn a_pass_stops_at_the_budget_and_the_next_drains() {
        let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        std_socket.set_nonblocking(true).unwrap();
        let addr = std_socket.local_addr().unwrap();
        let mut udp = Datagrams::new(UdpSocket::from_std(std_socket), None).unwrap();
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
        // The last batch came back short (1 of 32): that ended the pass,
        // without a read that only says EAGAIN.
        assert_eq!(stats.would_blocks, 0, "no read was spent on EAGAIN");
        let mut buf = [0u8; 200];
        for i in 0..3u8 {
            let (n, from) = peer.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&[i; 100][..], addr));
        }
    }
}
