//! `--udp-rate-limit N`: at most N answers a second to each source address,
//! whichever reactor the datagrams reach.
//!
//! With `--threads`, the kernel spreads datagrams over the reactors by a
//! hash of the address pair, so one source address with many ports reaches
//! all of them. The limit is therefore one table shared by every reactor,
//! split into [`SHARDS`] locked shards by a hash of the address: a
//! datagram takes one uncontended lock, and only when the limit is on.
//!
//! **A bounded table, O(1) per datagram.** Each shard remembers at most
//! `MAX_SOURCES / SHARDS` addresses. When a new address finds its shard
//! full, the address that came *first* is forgotten (FIFO), so nothing is
//! ever swept and nobody is ever refused for lack of room. What a flood of
//! spoofed sources does to real clients: it pushes them out of the table,
//! and a client pushed out returns with a full bucket. It is answered, not
//! refused; the cost is that an address the flood pushes out gets up to one
//! extra burst per [`MAX_SOURCES`]`/`[`SHARDS`] new sources in its shard, so
//! a flood buys less than one extra answer per datagram it sends (it is
//! never an amplifier).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// The most source addresses the whole limit remembers.
pub const MAX_SOURCES: usize = 4096;

/// Independently locked parts of the table.
pub const SHARDS: usize = 16;

/// A token bucket per source address: `per_s` answers a second, bursts of
/// up to a second's worth (at least one).
#[derive(Debug)]
pub struct RateLimit {
    per_s: f64,
    shards: Vec<Mutex<Shard>>,
}

/// One shard: the buckets, and the order their addresses arrived in.
#[derive(Debug, Default)]
struct Shard {
    buckets: HashMap<IpAddr, Bucket>,
    arrivals: VecDeque<IpAddr>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A limit of `per_s` answers a second per source address.
    pub fn new(per_s: f64) -> RateLimit {
        RateLimit {
            per_s,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// The most tokens a bucket holds.
    fn burst(&self) -> f64 {
        self.per_s.max(1.0)
    }

    /// Whether a datagram from `ip` at `now` may be answered.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let shard = &self.shards[shard_of(ip)];
        // A reactor that panicked while holding the lock cannot have left a
        // bucket half-updated in a way that matters: use it anyway.
        let mut shard = shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let burst = self.burst();
        if !shard.buckets.contains_key(&ip) {
            if shard.arrivals.len() >= MAX_SOURCES / SHARDS
                && let Some(first) = shard.arrivals.pop_front()
            {
                shard.buckets.remove(&first);
            }
            shard.arrivals.push_back(ip);
        }
        let bucket = shard.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let refill = now.saturating_duration_since(bucket.last).as_secs_f64() * self.per_s;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Addresses remembered now (all shards).
    #[cfg(test)]
    fn sources(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.buckets.len()))
            .sum()
    }
}

/// Which shard an address belongs to.
fn shard_of(ip: IpAddr) -> usize {
    let folded = match ip {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            (bits as u64) ^ (bits >> 64) as u64
        }
    };
    (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60) as usize % SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// With made-up instants: 3 a second allows a burst of 3, then one
    /// more each third of a second; another source has its own bucket.
    #[test]
    fn the_rate_limit_refills_per_source() {
        let limit = RateLimit::new(3.0);
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

    /// The table stays bounded, and a full table refuses nobody: a newcomer
    /// is answered at once (even at a rate of one per 1,000 s, whose bucket
    /// takes 17 minutes to refill), and the address that came first is
    /// forgotten to make room.
    #[test]
    fn a_full_table_forgets_the_first_and_refuses_nobody() {
        let limit = RateLimit::new(0.001);
        let t0 = Instant::now();
        let mut seen = Vec::new();
        for i in 0..4 * MAX_SOURCES as u32 {
            let ip = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
            assert!(limit.allow(ip, t0), "new source {i} answered");
            assert!(!limit.allow(ip, t0), "its bucket is then empty");
            seen.push(ip);
            assert!(limit.sources() <= MAX_SOURCES);
        }
        assert!(limit.sources() >= MAX_SOURCES - SHARDS * 8);
        // The last arrivals are remembered (still limited) ...
        assert!(!limit.allow(*seen.last().unwrap(), t0));
        // ... the first ones were forgotten, and start afresh.
        assert!(limit.allow(seen[0], t0));
    }

    /// Shared by reference: two callers (two reactors) draw on one bucket.
    #[test]
    fn reactors_share_one_bucket() {
        let limit = std::sync::Arc::new(RateLimit::new(5.0));
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let t0 = Instant::now();
        let other = std::sync::Arc::clone(&limit);
        let a = std::thread::spawn(move || (0..8).filter(|_| other.allow(ip, t0)).count());
        let b = (0..8).filter(|_| limit.allow(ip, t0)).count();
        assert_eq!(a.join().unwrap() + b, 5);
    }
}
