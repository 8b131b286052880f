//! Moments on the wall clock, as people (and `date`) type them: RFC 3339
//! (`2026-12-02T18:50:00Z`, `2026-12-02T19:50:00.250+01:00`) or unix
//! seconds (`1796237400`, `1796237400.25`). `load --start-at` takes one,
//! so that generators on many machines start their measured window at
//! the same instant.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The furthest ahead `--start-at` may be.
pub const MAX_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// Parses `text` as RFC 3339 or unix seconds.
pub fn parse_wall_time(text: &str) -> Result<SystemTime, String> {
    let t = text.trim();
    let secs = if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        t.parse::<f64>()
            .map_err(|_| format!("`{text}` is not unix seconds"))?
    } else {
        rfc3339(t).ok_or_else(|| {
            format!("`{text}` is neither RFC 3339 (2026-12-02T18:50:00Z) nor unix seconds")
        })?
    };
    let since =
        Duration::try_from_secs_f64(secs).map_err(|_| format!("`{text}` is out of range"))?;
    UNIX_EPOCH
        .checked_add(since)
        .ok_or_else(|| format!("`{text}` is out of range"))
}

/// `at` as an instant of this process's monotonic clock, if it is ahead
/// of `now` (and `now_instant`, read together) by at most [`MAX_AHEAD`].
pub fn instant_of(
    at: SystemTime,
    now: SystemTime,
    now_instant: Instant,
) -> Result<Instant, String> {
    let ahead = at.duration_since(now).map_err(|e| {
        format!(
            "the time is {:.3} s in the past",
            e.duration().as_secs_f64()
        )
    })?;
    if ahead > MAX_AHEAD {
        return Err(format!(
            "the time is {:.0} s ahead; at most a day",
            ahead.as_secs_f64()
        ));
    }
    Ok(now_instant + ahead)
}

/// Seconds since the epoch of an RFC 3339 date-time, if `t` is one.
fn rfc3339(t: &str) -> Option<f64> {
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = t.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // A fraction of a second, then Z or an offset.
    let mut rest = &t[19..];
    let mut fraction = 0.0;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        fraction = format!("0.{}", &f[..digits]).parse().ok()?;
        rest = &f[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(&rest[3..4], ":") => {
            let sign = match &rest[..1] {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let (h, m) = (num(t.len() - 5..t.len() - 3)?, num(t.len() - 2..t.len())?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(secs as f64 + fraction)
}

/// Days in `month` of `year` (proleptic Gregorian).
fn days_in(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to `year-month-day` (Howard Hinnant's
/// days_from_civil, which counts in 400-year eras from a March year).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> f64 {
        parse_wall_time(text)
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    }

    /// Known instants (checked against `date -d … +%s`), offsets, fractions.
    #[test]
    fn rfc3339_and_unix_seconds() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), 0.0);
        assert_eq!(secs("2000-02-29T12:00:00Z"), 951_825_600.0);
        assert_eq!(secs("2026-12-02T18:50:00Z"), 1_796_237_400.0);
        assert_eq!(secs("2026-12-02T19:50:00+01:00"), 1_796_237_400.0);
        assert_eq!(secs("2026-12-02T13:20:00-05:30"), 1_796_237_400.0);
        assert_eq!(secs("2026-12-02 18:50:00.250Z"), 1_796_237_400.25);
        assert_eq!(secs("1796237400"), 1_796_237_400.0);
        assert_eq!(secs("1796237400.5"), 1_796_237_400.5);
        for bad in [
            "2026-13-02T18:50:00Z",
            "2026-02-30T18:50:00Z",
            "2026-12-02T24:00:00Z",
            "2026-12-02T18:50:00",
            "2026-12-02T18:50:00+0100",
            "2026-12-02T18:50:00.Z",
            "tomorrow",
            "",
        ] {
            assert!(parse_wall_time(bad).is_err(), "{bad}");
        }
    }

    /// A time in the past, or more than a day ahead, is refused; one in
    /// between becomes the instant that far ahead.
    #[test]
    fn only_the_next_day_is_accepted() {
        let now = SystemTime::now();
        let i = Instant::now();
        let soon = now + Duration::from_secs(5);
        assert_eq!(instant_of(soon, now, i), Ok(i + Duration::from_secs(5)));
        let past = now - Duration::from_secs(1);
        assert!(
            instant_of(past, now, i)
                .unwrap_err()
                .contains("in the past")
        );
        let far = now + MAX_AHEAD + Duration::from_secs(1);
        assert!(
            instant_of(far, now, i)
                .unwrap_err()
                .contains("at most a day")
        );
    }
}
