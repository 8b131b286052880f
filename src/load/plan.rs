//! How the open-loop rate runs over a run: flat (`--rate R`), a linear
//! ramp (`--rate FROM..TO --ramp D`), or steps (`--rate-steps R1,R2,…
//! --step D`), the way k6's ramping arrival rate and ghz's load schedules
//! find the knee: where latency breaks as the offered rate grows.
//!
//! A [`Plan`] answers one question exactly: when message `n` is due, as
//! an offset from the plan's start. [`OpenLoop`](super::schedule::OpenLoop)
//! asks it for every message, so a ramp is as exact as a flat rate: the
//! schedule never drifts, and the report's `due` counts the same due
//! times.
//!
//! The plan's clock starts with the measured window: during `--warmup` the
//! generator runs at the plan's first rate (see [`Plan::lead`]).

use std::time::Duration;

use crate::shared::duration::{MAX_DURATION, nth_period};

/// The most steps of `--rate-steps`.
pub const MAX_STEPS: usize = 100;

/// The most segments a varying run is reported in.
pub const MAX_SEGMENTS: usize = 100;

/// How the offered rate runs over the measured window.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The same rate throughout.
    Flat(f64),
    /// From `from` to `to` linearly over `over`, then `to`.
    Ramp {
        /// The rate at the start, msgs/s.
        from: f64,
        /// The rate at the end of the ramp, msgs/s.
        to: f64,
        /// How long the ramp takes.
        over: Duration,
    },
    /// Each rate for `each`, in turn; the last one holds after them.
    Steps {
        /// The rates, msgs/s.
        rates: Vec<f64>,
        /// How long each lasts.
        each: Duration,
    },
}

impl Plan {
    /// Whether the rate changes over the run.
    pub fn varies(&self) -> bool {
        !matches!(self, Plan::Flat(_))
    }

    /// The highest rate it reaches.
    pub fn peak(&self) -> f64 {
        match self {
            Plan::Flat(r) => *r,
            Plan::Ramp { from, to, .. } => from.max(*to),
            Plan::Steps { rates, .. } => rates.iter().copied().fold(0.0, f64::max),
        }
    }

    /// The rate it starts at.
    pub fn first(&self) -> f64 {
        match self {
            Plan::Flat(r) => *r,
            Plan::Ramp { from, .. } => *from,
            Plan::Steps { rates, .. } => rates.first().copied().unwrap_or(1.0),
        }
    }

    /// The same plan at `share` of every rate (a thread's part of it).
    pub fn scaled(&self, share: f64) -> Plan {
        match self {
            Plan::Flat(r) => Plan::Flat(r * share),
            Plan::Ramp { from, to, over } => Plan::Ramp {
                from: from * share,
                to: to * share,
                over: *over,
            },
            Plan::Steps { rates, each } => Plan::Steps {
                rates: rates.iter().map(|r| r * share).collect(),
                each: *each,
            },
        }
    }

    /// How it reads: `5000 msgs/s`, `1000 to 8000 msgs/s over 10s`,
    /// `steps of 2s at 1000, 2000, 4000 msgs/s`.
    pub fn describe(&self) -> String {
        match self {
            Plan::Flat(r) => format!("{r} msgs/s"),
            Plan::Ramp { from, to, over } => format!("{from} to {to} msgs/s over {over:?}"),
            Plan::Steps { rates, each } => {
                let rates: Vec<String> = rates.iter().map(|r| r.to_string()).collect();
                format!("steps of {each:?} at {} msgs/s", rates.join(", "))
            }
        }
    }

    /// The options that ask for it: `--rate 5000`, `--rate 1000..8000
    /// --ramp 10s`, `--rate-steps 1000,2000 --step 2s`.
    pub fn as_args(&self) -> String {
        match self {
            Plan::Flat(r) => format!("--rate {r}"),
            Plan::Ramp { from, to, over } => {
                format!("--rate {from}..{to} --ramp {}s", over.as_secs_f64())
            }
            Plan::Steps { rates, each } => {
                let rates: Vec<String> = rates.iter().map(|r| r.to_string()).collect();
                format!(
                    "--rate-steps {} --step {}s",
                    rates.join(","),
                    each.as_secs_f64()
                )
            }
        }
    }

    /// When message `n` is due, from the plan's start (saturating).
    pub fn due(&self, n: u64) -> Duration {
        match self {
            Plan::Flat(r) => nth_period(n, *r),
            Plan::Ramp { from, to, over } => {
                let t = over.as_secs_f64();
                let slope = (to - from) / t;
                let in_ramp = from * t + slope * t * t / 2.0;
                let n = n as f64;
                let secs = if n <= in_ramp {
                    // from·s + slope·s²/2 = n, in the form that stays
                    // exact as the slope goes to zero (and for a ramp down).
                    let root = (from * from + 2.0 * slope * n).max(0.0).sqrt();
                    2.0 * n / (from + root)
                } else {
                    t + (n - in_ramp) / to
                };
                seconds(secs)
            }
            Plan::Steps { rates, each } => {
                let mut left = n;
                for (k, &rate) in rates.iter().enumerate() {
                    let here = per_step(rate, *each);
                    if left < here || k + 1 == rates.len() {
                        return each
                            .saturating_mul(k as u32)
                            .saturating_add(nth_period(left, rate))
                            .min(MAX_DURATION);
                    }
                    left -= here;
                }
                Duration::ZERO
            }
        }
    }

    /// About how many messages are due before `t` from the plan's start
    /// (within one or two: [`OpenLoop`](super::schedule::OpenLoop) then
    /// counts due times exactly).
    pub fn count(&self, t: Duration) -> f64 {
        let s = t.as_secs_f64();
        match self {
            Plan::Flat(r) => s * r,
            Plan::Ramp { from, to, over } => {
                let o = over.as_secs_f64();
                let slope = (to - from) / o;
                let at = s.min(o);
                from * at + slope * at * at / 2.0 + (s - at) * to
            }
            Plan::Steps { rates, each } => {
                let e = each.as_secs_f64();
                let mut count = 0.0;
                for (k, &rate) in rates.iter().enumerate() {
                    let start = k as f64 * e;
                    if s <= start {
                        break;
                    }
                    let last = k + 1 == rates.len();
                    let span = if last { s - start } else { (s - start).min(e) };
                    count += if last || span < e {
                        span * rate
                    } else {
                        per_step(rate, *each) as f64
                    };
                }
                count
            }
        }
    }

    /// The warm-up before the plan's start, run at its first rate: how
    /// many messages it holds (those due before `warmup`).
    pub fn lead(&self, warmup: Duration) -> u64 {
        if warmup.is_zero() || !self.varies() {
            return 0;
        }
        per_step(self.first(), warmup)
    }

    /// The stretches a varying run is reported in, from the window's
    /// start, covering `window`: each step, or for a ramp pieces of
    /// `every` (`--interval`), else a tenth of the ramp; at most
    /// [`MAX_SEGMENTS`]. `None` for a flat rate.
    pub fn segment_length(&self, window: Duration, every: Option<Duration>) -> Option<Duration> {
        let wanted = match self {
            Plan::Flat(_) => return None,
            Plan::Ramp { over, .. } => every.unwrap_or(*over / 10),
            Plan::Steps { each, .. } => *each,
        };
        let least = window / MAX_SEGMENTS as u32;
        Some(wanted.max(least).max(Duration::from_millis(1)))
    }
}

/// Messages of a fixed `rate` due within `span` of its start: those `i`
/// with `i / rate < span`.
fn per_step(rate: f64, span: Duration) -> u64 {
    let exact = span.as_secs_f64() * rate;
    // ceil, but a whole product is exact (message `exact` falls on the end).
    let n = exact.ceil();
    if n.is_finite() {
        n as u64
    } else {
        u64::MAX / 2
    }
}

/// `secs` as a `Duration`, saturating at [`MAX_DURATION`].
fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0))
        .unwrap_or(MAX_DURATION)
        .min(MAX_DURATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A flat plan is the old schedule: n / R.
    #[test]
    fn flat_is_n_over_r() {
        let p = Plan::Flat(250.0);
        assert_eq!(p.due(0), Duration::ZERO);
        assert_eq!(p.due(250), Duration::from_secs(1));
        assert!(!p.varies());
        assert_eq!(p.lead(ms(500)), 0);
    }

    /// Steps: each step holds ceil(each × rate) messages, spaced at its
    /// own rate, and the next starts on the step's boundary.
    #[test]
    fn steps_start_on_their_boundaries() {
        let p = Plan::Steps {
            rates: vec![10.0, 100.0, 1000.0],
            each: Duration::from_secs(1),
        };
        assert_eq!(p.due(9), ms(900));
        assert_eq!(p.due(10), ms(1000), "the second step's first");
        assert_eq!(p.due(11), ms(1010));
        assert_eq!(p.due(110), ms(2000), "the third step's first");
        assert_eq!(p.due(111), ms(2001));
        // The last rate holds past the steps.
        assert_eq!(p.due(1110), ms(3000));
        assert_eq!(p.peak(), 1000.0);
        for n in [0u64, 5, 10, 50, 110, 600, 1110] {
            let c = p.count(p.due(n));
            assert!((c - n as f64).abs() <= 1.0, "{n}: count {c}");
        }
    }

    /// A ramp from 100 to 300 msgs/s over 2 s holds 400 messages (the
    /// mean rate, 200, times 2 s); message n is due where the area under
    /// the rate reaches n, and due times only grow. A ramp down works too.
    #[test]
    fn a_ramp_is_the_area_under_the_rate() {
        let up = Plan::Ramp {
            from: 100.0,
            to: 300.0,
            over: Duration::from_secs(2),
        };
        assert_eq!(up.due(0), Duration::ZERO);
        // 100·s + 50·s² = 150 at s = 1.
        assert!((up.due(150).as_secs_f64() - 1.0).abs() < 1e-9);
        assert!((up.due(400).as_secs_f64() - 2.0).abs() < 1e-9);
        // Past the ramp, at 300/s.
        assert!((up.due(700).as_secs_f64() - 3.0).abs() < 1e-9);
        let down = Plan::Ramp {
            from: 300.0,
            to: 100.0,
            over: Duration::from_secs(2),
        };
        assert!((down.due(400).as_secs_f64() - 2.0).abs() < 1e-9);
        for p in [&up, &down] {
            let mut last = Duration::ZERO;
            for n in 0..1000 {
                let d = p.due(n);
                assert!(d >= last, "{p:?}: message {n} before {}", n - 1);
                last = d;
                assert!((p.count(d) - n as f64).abs() < 1e-6, "{n}");
            }
        }
        let flat = Plan::Ramp {
            from: 50.0,
            to: 50.0,
            over: Duration::from_secs(1),
        };
        assert!((flat.due(25).as_secs_f64() - 0.5).abs() < 1e-12);
    }

    /// Threads each get a share; the warm-up runs at the first rate; the
    /// segments follow the steps, or a tenth of the ramp, never more than
    /// MAX_SEGMENTS.
    #[test]
    fn shares_leads_and_segments() {
        let p = Plan::Steps {
            rates: vec![1000.0, 3000.0],
            each: ms(500),
        };
        assert_eq!(
            p.scaled(0.5),
            Plan::Steps {
                rates: vec![500.0, 1500.0],
                each: ms(500)
            }
        );
        assert_eq!(p.lead(ms(200)), 200);
        assert_eq!(p.segment_length(ms(1000), None), Some(ms(500)));
        let r = Plan::Ramp {
            from: 1.0,
            to: 2.0,
            over: Duration::from_secs(10),
        };
        assert_eq!(
            r.segment_length(Duration::from_secs(10), None),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            r.segment_length(Duration::from_secs(1000), Some(ms(100))),
            Some(Duration::from_secs(10)),
            "at most 100 segments"
        );
        assert_eq!(Plan::Flat(1.0).segment_length(ms(10), None), None);
    }
}
