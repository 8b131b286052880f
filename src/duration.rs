//! Parsing the durations users type on the command line: `1.5` (seconds),
//! `500ms`, `10s`, `2m`.

use std::time::Duration;

/// Parses a positive duration: a number of seconds, or a number followed by
/// `ms`, `s` or `m`. Zero, negative and non-finite values are refused.
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
    let secs = value * scale;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("`{text}` must be more than zero"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{text}` is too long"))
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
    }

    #[test]
    fn refuses_zero_negative_and_garbage() {
        for bad in ["0", "-1", "abc", "", "1h", "nan", "infs"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
