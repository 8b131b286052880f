//! Parsing the durations and rates users type on the command line (`1.5`
//! seconds, `500ms`, `10s`, `2m`; `250.5` messages per second), range-checked
//! at parse time, and deadline arithmetic that cannot overflow.
//!
//! Why the bounds live here: `Instant + Duration` panics when the sum does
//! not fit, and `Duration::from_secs_f64` panics on huge or non-finite
//! values. A limit refused by clap is exit 2 with one clear line; a limit
//! accepted and then added to `now` deep inside a loop is a crash. So every
//! duration is at most [`MAX_DURATION`] and at least [`MIN_DURATION`], every
//! rate lies in [`MIN_RATE`]..=[`MAX_RATE`], and the loops still add through
//! [`deadline_after`], which saturates instead of panicking.

use std::time::{Duration, Instant};

/// The longest duration any option takes: ten years (of 365 days).
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The shortest duration any option takes: one microsecond. Shorter values
/// (`1e-20`) would round to zero, which no timer can honour.
pub const MIN_DURATION: Duration = Duration::from_micros(1);

/// The slowest rate: one event every 1000 seconds.
pub const MIN_RATE: f64 = 0.001;

/// The fastest rate: a billion per second, far past what one loop can do
/// (the load generator reports when it cannot keep a schedule).
pub const MAX_RATE: f64 = 1e9;

/// Parses a duration: a number of seconds, or a number followed by `ms`,
/// `s` or `m`, between [`MIN_DURATION`] and [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 1.5, 500ms, 10s or 2m)"))?;
    if value.is_nan() {
        return Err(format!("`{text}` is not a number"));
    }
    let secs = value * scale;
    if secs <= 0.0 {
        return Err(format!("`{text}` must be more than zero"));
    }
    if secs > MAX_DURATION.as_secs_f64() {
        // Also catches `inf`.
        return Err(format!("`{text}` is too long (at most 10 years)"));
    }
    if secs < MIN_DURATION.as_secs_f64() {
        return Err(format!("`{text}` is too short (at least 1 µs)"));
    }
    // In range, so the conversion cannot fail; map the error all the same.
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{text}` is not a duration"))
}

/// A number with an optional `k` (thousand) or `M` (million) suffix, as
/// oha and fortio users type rates and counts: `20k`, `1.5M`.
fn with_suffix(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (number, times) = match t.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1e3),
        None => match t.strip_suffix('M') {
            Some(n) => (n, 1e6),
            None => (t, 1.0),
        },
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a number (a k or M suffix may follow)"))?;
    Ok(value * times)
}

/// Parses a count from `min` to `max`, with an optional `k` or `M`
/// suffix (`10k` is 10,000); it must come out whole.
pub fn parse_count(text: &str, min: u64, max: u64) -> Result<u64, String> {
    let value = with_suffix(text)?;
    if value.is_nan() || value.fract() != 0.0 {
        return Err(format!("`{text}` is not a whole number"));
    }
    if !(min as f64..=max as f64).contains(&value) {
        return Err(format!("`{text}` is out of range ({min} to {max})"));
    }
    Ok(value as u64)
}

/// Parses a rate (events per second) between [`MIN_RATE`] and [`MAX_RATE`],
/// with an optional `k` or `M` suffix (`20k` is 20,000 a second).
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let rate = with_suffix(text)?;
    if rate.is_nan() {
        return Err(format!("`{text}` is not a number"));
    }
    if rate <= 0.0 {
        return Err(format!("`{text}` must be more than zero"));
    }
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(format!(
            "`{text}` is out of range ({MIN_RATE} to {MAX_RATE:e} per second)"
        ));
    }
    Ok(rate)
}

/// `now + d`, or the latest instant that fits when that would overflow.
/// Options are bounded at parse time, so the fallback is belt and braces:
/// no deadline computation in this crate can panic.
pub fn deadline_after(now: Instant, d: Duration) -> Instant {
    let mut d = d;
    loop {
        if let Some(at) = now.checked_add(d) {
            return at;
        }
        d /= 2;
    }
}

/// `n / rate` seconds as a `Duration`, saturating at [`MAX_DURATION`] (for
/// schedules: when event `n` of a fixed-rate series is due).
pub fn nth_period(n: u64, rate: f64) -> Duration {
    Duration::try_from_secs_f64(n as f64 / rate)
        .unwrap_or(MAX_DURATION)
        .min(MAX_DURATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_seconds_and_units() {
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("0.001ms"), Ok(MIN_DURATION));
        assert_eq!(parse_duration("315360000"), Ok(MAX_DURATION));
    }

    #[test]
    fn refuses_zero_negative_and_garbage() {
        for bad in ["0", "-1", "abc", "", "1h", "nan", "infs"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    /// Each out-of-range value is refused for the right reason.
    #[test]
    fn refuses_out_of_range_with_the_reason() {
        for (bad, why) in [
            ("1e19", "too long"),
            ("2e17m", "too long"),
            ("inf", "too long"),
            ("315360001", "too long"),
            ("1e-20", "too short"),
            ("nan", "not a number"),
            ("-1", "more than zero"),
            ("-inf", "more than zero"),
            ("0ms", "more than zero"),
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn rates_are_range_checked() {
        assert_eq!(parse_rate("250.5"), Ok(250.5));
        assert_eq!(parse_rate("1e9"), Ok(1e9));
        for (bad, why) in [
            ("1e-20", "out of range"),
            ("2e9", "out of range"),
            ("inf", "out of range"),
            ("nan", "not a number"),
            ("0", "more than zero"),
            ("-1", "more than zero"),
            ("fast", "not a number"),
        ] {
            let err = parse_rate(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    /// Deadlines saturate instead of panicking, and are exact when they fit.
    #[test]
    fn deadline_after_never_overflows() {
        let now = Instant::now();
        assert_eq!(
            deadline_after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let far = deadline_after(now, Duration::MAX);
        assert!(far > now + MAX_DURATION);
    }

    #[test]
    fn nth_period_saturates() {
        assert_eq!(nth_period(3, 2.0), Duration::from_millis(1500));
        assert_eq!(nth_period(u64::MAX, MIN_RATE), MAX_DURATION);
    }

    /// `k` and `M` multiply; anything else after the number is refused;
    /// counts must come out whole and in range.
    #[test]
    fn rates_and_counts_take_k_and_m() {
        assert_eq!(parse_rate("20k"), Ok(20_000.0));
        assert_eq!(parse_rate("1.5M"), Ok(1_500_000.0));
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        for bad in ["k", "20kk", "20m", "20 k x", "-2k", "0k", "2e9M"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_count("10k", 1, 1_000_000), Ok(10_000));
        assert_eq!(parse_count("1M", 1, u64::MAX / 2), Ok(1_000_000));
        assert_eq!(parse_count("7", 1, 10), Ok(7));
        assert!(parse_count("1.5", 1, 10).is_err(), "not whole");
        assert!(parse_count("0.0001k", 1, 10).is_err(), "not whole");
        assert!(parse_count("2M", 1, 1_000_000).is_err(), "out of range");
        assert!(parse_count("0", 1, 10).is_err(), "below the range");
    }
}
