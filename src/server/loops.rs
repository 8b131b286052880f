//! Why a UDP echo server must sometimes stay silent: reflection loops.
//!
//! A datagram's source address is whatever its sender wrote. Forge one
//! datagram "from" another echo server (`B → A` written as `A → B`) and
//! the two answer each other, byte for byte, forever: the echo–chargen
//! loop of CVE-1999-0103. Nothing in a single datagram tells a loop from a
//! client, so [`LoopGuard`] looks at three things, cheapest first:
//!
//! 1. **The source port.** Echo, discard, daytime, quote, chargen and time
//!    ([`SERVICE_PORTS`]) answer datagrams by themselves; BSD inetd refuses
//!    them for the same reason. Port 0 is no real sender's.
//! 2. **Our own port.** A datagram from the port this server listens on
//!    comes from the server itself (a forged source equal to our own
//!    address, or another local address on the same port with
//!    `--bind 0.0.0.0`), from another reactor of the same group, or from a
//!    twin echo server on the same port elsewhere. All of them would
//!    answer; none is a client. So any address counts, not just local ones:
//!    it costs nothing to check, and a client never needs that port.
//! 3. **Bounces.** Between two echo servers on arbitrary ports, a loop is
//!    the same bytes from the same source address and port, again and
//!    again, each within a round trip of our answer. A table remembers, for
//!    each (source, payload) it has answered, when it last did and how many
//!    times in a row the same bytes came back within [`BOUNCE_WINDOW`].
//!    After [`MAX_BOUNCES`] in a row, one datagram is not answered. A loop
//!    has nobody to resend, so it is over; a client that really does send
//!    the same bytes that fast (a fixed-payload ping) resends after its own
//!    timeout and is answered again, having lost one answer in
//!    `MAX_BOUNCES + 1`. A ping slower than one a second is never counted.
//!
//! The table is direct-mapped and fixed in size ([`SLOTS`]): one slot per
//! hash of (source, payload), no allocation after the first datagram, one
//! lookup per datagram. A slot whose owner is still active (seen within the
//! window) is not taken over by a newcomer, which is answered untracked
//! until the slot frees; every tracked loop ends within `MAX_BOUNCES`, so
//! slots free and the rest get tracked in turn. (An attacker can still keep
//! slots busy with traffic of their own; that costs them a datagram per
//! answer, which is no reflection.)

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::shared::duration::deadline_after;

/// Source ports of services that answer any datagram by themselves: echo
/// (7), discard (9), daytime (13), quote of the day (17), chargen (19),
/// time (37), and 0, which no real sender uses.
pub const SERVICE_PORTS: [u16; 7] = [0, 7, 9, 13, 17, 19, 37];

/// Same bytes from the same source this soon after the last answer count as
/// a bounce. A second: longer than any real round trip, shorter than the
/// gap of a default `ping`.
pub const BOUNCE_WINDOW: Duration = Duration::from_secs(1);

/// Bounces in a row that are answered; the next one is not. On loopback a
/// loop runs at ~45,000 datagrams/s per side, so it ends within about 25 ms.
pub const MAX_BOUNCES: u32 = 1000;

/// Slots in the bounce table (a power of two).
pub const SLOTS: usize = 1024;

/// Why a datagram is not answered as a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Looped {
    /// Its source port is a service that answers by itself.
    ServicePort,
    /// Its source port is this server's own.
    OwnPort,
    /// The same bytes came back from the same source too often, too fast.
    Bounced,
}

impl std::fmt::Display for Looped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Looped::ServicePort => "a service port",
            Looped::OwnPort => "this server's own port",
            Looped::Bounced => "the same bytes bounced back",
        })
    }
}

/// One slot: which (source, payload) it tracks, when it was last answered,
/// and how many bounces in a row it has seen.
#[derive(Debug, Clone, Copy)]
struct Slot {
    key: u64,
    /// When the last answer's window closes: a bounce must come before.
    until: Instant,
    bounces: u32,
}

/// The loop check of one UDP socket.
#[derive(Debug)]
pub struct LoopGuard {
    own_port: u16,
    /// Empty until the first datagram (a server without UDP traffic pays
    /// nothing); then [`SLOTS`] long.
    slots: Vec<Option<Slot>>,
    /// The last `now` seen, and its window's end: a batch of datagrams
    /// shares one `now`, so the sum is made once per batch, not per
    /// datagram (Instant arithmetic is most of this check's cost).
    window: Option<(Instant, Instant)>,
}

impl LoopGuard {
    /// A guard for a socket bound to `own_port`.
    pub fn new(own_port: u16) -> LoopGuard {
        LoopGuard {
            own_port,
            slots: Vec::new(),
            window: None,
        }
    }

    /// Whether a datagram of `payload` from `from`, arriving at `now`, would
    /// feed a loop. A datagram that passes is recorded as answered at `now`.
    pub fn check(&mut self, from: SocketAddr, payload: &[u8], now: Instant) -> Option<Looped> {
        if SERVICE_PORTS.contains(&from.port()) {
            return Some(Looped::ServicePort);
        }
        if from.port() == self.own_port {
            return Some(Looped::OwnPort);
        }
        if self.slots.is_empty() {
            self.slots = vec![None; SLOTS];
        }
        let until = match self.window {
            Some((at, until)) if at == now => until,
            _ => {
                let until = deadline_after(now, BOUNCE_WINDOW);
                self.window = Some((now, until));
                until
            }
        };
        let key = fingerprint(from, payload);
        let slot = &mut self.slots[(key as usize) & (SLOTS - 1)];
        let recent = |s: &Slot| now < s.until;
        match slot {
            Some(s) if s.key == key && recent(s) => {
                if s.bounces >= MAX_BOUNCES {
                    // Silence ends a loop; a client will resend and start
                    // a fresh count.
                    *slot = None;
                    return Some(Looped::Bounced);
                }
                s.bounces += 1;
                s.until = until;
            }
            // Someone else's, and still active: answer, untracked.
            Some(s) if s.key != key && recent(s) => {}
            _ => {
                *slot = Some(Slot {
                    key,
                    until,
                    bounces: 0,
                })
            }
        }
        None
    }
}

/// A 64-bit hash of the source and every byte of the payload, a word at a
/// time (the multiply-rotate step of rustc's FxHash): about a nanosecond
/// per 8 bytes, far below what the kernel spends copying them.
fn fingerprint(from: SocketAddr, payload: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let step = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let mut h = step(0, u64::from(from.port()) << 32 | payload.len() as u64);
    h = match from.ip() {
        IpAddr::V4(ip) => step(h, u64::from(u32::from(ip))),
        IpAddr::V6(ip) => {
            let bits = u128::from(ip);
            step(step(h, bits as u64), (bits >> 64) as u64)
        }
    };
    let (words, tail) = payload.as_chunks::<8>();
    for w in words {
        h = step(h, u64::from_le_bytes(*w));
    }
    // The last 0 to 7 bytes, a byte at a time (a copy of a length only
    // known at run time would call memcpy, for at most 7 bytes).
    let last = tail
        .iter()
        .enumerate()
        .fold(0u64, |w, (i, &b)| w | u64::from(b) << (8 * i));
    step(h, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: u16 = 7000;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 2], port))
    }

    /// Service ports and our own port are refused from any address.
    #[test]
    fn service_and_own_ports_are_refused() {
        let mut guard = LoopGuard::new(OWN);
        let now = Instant::now();
        for port in SERVICE_PORTS {
            assert_eq!(
                guard.check(peer(port), b"x", now),
                Some(Looped::ServicePort)
            );
        }
        for from in [
            peer(OWN),
            SocketAddr::from(([127, 0, 0, 5], OWN)),
            "[::1]:7000".parse().unwrap(),
        ] {
            assert_eq!(guard.check(from, b"x", now), Some(Looped::OwnPort));
        }
        assert_eq!(guard.check(peer(OWN + 1), b"x", now), None);
    }

    /// A loop (same bytes, same source, back within microseconds) is
    /// answered MAX_BOUNCES + 1 times, then refused once; after that
    /// silence, a resend is answered again.
    #[test]
    fn a_bouncing_datagram_is_cut_off() {
        let mut guard = LoopGuard::new(OWN);
        let t0 = Instant::now();
        let at = |i: u32| t0 + Duration::from_micros(u64::from(i) * 20);
        let answered = (0..=MAX_BOUNCES)
            .take_while(|i| guard.check(peer(40000), b"loop", at(*i)).is_none())
            .count();
        assert_eq!(answered as u32, MAX_BOUNCES + 1);
        let cut = at(MAX_BOUNCES + 1);
        assert_eq!(
            guard.check(peer(40000), b"loop", cut),
            Some(Looped::Bounced)
        );
        assert_eq!(guard.check(peer(40000), b"loop", cut), None, "a resend");
    }

    /// A fixed-payload ping once a second is never counted as a bounce,
    /// however long it runs; other bytes or another port reset nothing of
    /// each other's.
    #[test]
    fn a_ping_at_the_window_is_always_answered() {
        let mut guard = LoopGuard::new(OWN);
        let t0 = Instant::now();
        for i in 0..10 * MAX_BOUNCES {
            let at = t0 + BOUNCE_WINDOW * i;
            assert_eq!(guard.check(peer(40000), b"ping", at), None, "ping {i}");
        }
        // Different payloads from one source are separate keys.
        for i in 0..3 * MAX_BOUNCES {
            let payload = i.to_le_bytes();
            assert_eq!(guard.check(peer(40001), &payload, t0), None);
        }
    }

    /// A slot held by an active key is not taken by another, which is
    /// answered untracked; once the holder is quiet the newcomer gets it.
    #[test]
    fn an_active_slot_is_not_taken_over() {
        let mut guard = LoopGuard::new(OWN);
        let t0 = Instant::now();
        assert_eq!(guard.check(peer(40000), b"a", t0), None);
        let held = fingerprint(peer(40000), b"a") as usize & (SLOTS - 1);
        // Find another source whose key falls in the same slot.
        let rival = (40001..u16::MAX)
            .map(peer)
            .find(|p| fingerprint(*p, b"a") as usize & (SLOTS - 1) == held)
            .unwrap();
        for _ in 0..2 * MAX_BOUNCES {
            assert_eq!(guard.check(rival, b"a", t0), None, "untracked");
        }
        let later = t0 + BOUNCE_WINDOW;
        assert_eq!(guard.check(rival, b"a", later), None);
        let slot = guard.slots[held].unwrap();
        assert_eq!(slot.key, fingerprint(rival, b"a"));
    }

    /// The fingerprint sees every byte, the length and the source.
    #[test]
    fn the_fingerprint_sees_everything() {
        let base = fingerprint(peer(1), &[7; 100]);
        let mut flipped = [7; 100];
        flipped[50] = 8;
        assert_ne!(base, fingerprint(peer(1), &flipped));
        assert_ne!(base, fingerprint(peer(1), &[7; 101]));
        assert_ne!(base, fingerprint(peer(2), &[7; 100]));
        assert_ne!(
            fingerprint(peer(1), &[0; 3]),
            fingerprint(peer(1), &[0; 4]),
            "zero tails differ by length"
        );
    }
}
