//! `--fail-if EXPR`: pass/fail thresholds on a run's figures (k6's
//! `thresholds`, fortio's gates), so that CI can gate on latency and
//! rate, not only on errors.
//!
//! An expression is `FIGURE OP VALUE` (`p99>5ms`, `errors>0`,
//! `msgs_per_s<9000`, `lost>0.1%`), and the run *fails* if it holds. Each
//! figure is read from the run's summary as `--json` prints it, so a
//! threshold means exactly the number a reader of the JSON sees:
//!
//! | figure | from the summary | value |
//! |---|---|---|
//! | `p50` `p90` `p99` `p999` `max` | `latency_us` | a duration: `500us`, `5ms`, `1s` |
//! | `errors`, `errors.KIND` | `errors` (their sum, or one kind) | a count, or `%` of messages |
//! | `lost` | `in_flight_at_end.lost` (UDP: `udp.lost`) | a count, or `%` of messages |
//! | `timed_out` | `in_flight_at_end.timed_out` | a count, or `%` of messages |
//! | `unsent` | `schedule.unsent` (open loop) | a count, or `%` of messages due |
//! | `msgs_per_s` `mib_per_s` | the same names | a number (`k`, `M` allowed) |

use serde_json::Value;

use super::outcome::{Errors, Verdict};

/// What `--fail-if` compares.
#[derive(Debug, Clone, PartialEq)]
enum Figure {
    /// A latency percentile (its key in `latency_us`).
    Latency(&'static str),
    /// All errors, or one kind (`errors.timeout`).
    Errors(Option<String>),
    /// Messages lost with their connection (UDP: datagrams lost).
    Lost,
    /// Messages that timed out at the end.
    TimedOut,
    /// Open loop: messages due that were never sent.
    Unsent,
    /// Messages per second.
    MsgsPerS,
    /// MiB per second received.
    MibPerS,
}

/// The comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Above,
    AtLeast,
    Below,
    AtMost,
}

impl Op {
    fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Above => value > limit,
            Op::AtLeast => value >= limit,
            Op::Below => value < limit,
            Op::AtMost => value <= limit,
        }
    }
}

/// The value compared with: µs for a latency, a count or a percentage,
/// or a plain number.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Limit {
    Micros(f64),
    Count(f64),
    Percent(f64),
    Number(f64),
}

/// One `--fail-if` expression, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    text: String,
    figure: Figure,
    op: Op,
    limit: Limit,
}

impl Threshold {
    /// Parses `FIGURE OP VALUE` (a clap value parser: a bad expression is
    /// a usage error, exit 2, with this message).
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let at = text.find(['<', '>']).ok_or_else(|| {
            format!("`{text}`: no comparison (write FIGURE>VALUE or FIGURE<VALUE, e.g. p99>5ms)")
        })?;
        let name = text[..at].trim();
        let rest = &text[at..];
        let (op, value) = if let Some(v) = rest.strip_prefix(">=") {
            (Op::AtLeast, v)
        } else if let Some(v) = rest.strip_prefix("<=") {
            (Op::AtMost, v)
        } else if let Some(v) = rest.strip_prefix('>') {
            (Op::Above, v)
        } else {
            (Op::Below, &rest[1..])
        };
        let value = value.trim();
        let kinds = Errors::default().by_kind().map(|(kind, _)| kind);
        let figure = match name {
            "p50" | "p90" | "p99" | "p999" | "max" => Figure::Latency(match name {
                "p50" => "p50",
                "p90" => "p90",
                "p99" => "p99",
                "p999" => "p999",
                _ => "max",
            }),
            "errors" => Figure::Errors(None),
            "lost" => Figure::Lost,
            "timed_out" => Figure::TimedOut,
            "unsent" => Figure::Unsent,
            "msgs_per_s" => Figure::MsgsPerS,
            "mib_per_s" => Figure::MibPerS,
            _ => match name.strip_prefix("errors.") {
                Some(kind) if kinds.contains(&kind) => Figure::Errors(Some(kind.into())),
                Some(kind) => {
                    return Err(format!(
                        "`{text}`: no error kind `{kind}` (one of: {})",
                        kinds.join(", ")
                    ));
                }
                None => {
                    return Err(format!(
                        "`{text}`: no figure `{name}` (one of: p50, p90, p99, p999, max, errors, \
                         errors.KIND, lost, timed_out, unsent, msgs_per_s, mib_per_s)"
                    ));
                }
            },
        };
        let limit = match figure {
            Figure::Latency(_) => Limit::Micros(latency(text, value)?),
            Figure::MsgsPerS | Figure::MibPerS => Limit::Number(number(text, value)?),
            _ => match value.strip_suffix('%') {
                Some(p) => {
                    let p = number(text, p)?;
                    if p > 100.0 {
                        return Err(format!("`{text}`: a percentage is at most 100%"));
                    }
                    Limit::Percent(p)
                }
                None => Limit::Count(number(text, value)?),
            },
        };
        Ok(Threshold {
            text: text.trim().to_string(),
            figure,
            op,
            limit,
        })
    }

    /// Whether it needs the open loop's schedule (`unsent`).
    pub fn needs_schedule(&self) -> bool {
        self.figure == Figure::Unsent
    }

    /// The expression as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Judges a run by its summary (`--json`'s object).
    pub fn judge(&self, summary: &Value) -> Verdict {
        let messages = summary["messages"].as_f64().unwrap_or(0.0);
        let of = |count: f64, base: f64| match self.limit {
            Limit::Percent(_) => 100.0 * count / base.max(1.0),
            _ => count,
        };
        let value = match &self.figure {
            Figure::Latency(key) => summary["latency_us"][key].as_f64(),
            Figure::Errors(None) => summary["errors"]
                .as_object()
                .map(|kinds| of(kinds.values().filter_map(Value::as_f64).sum(), messages)),
            Figure::Errors(Some(kind)) => summary["errors"][kind.as_str()]
                .as_f64()
                .map(|n| of(n, messages)),
            Figure::Lost => match summary.get("udp") {
                Some(udp) => udp["lost"]
                    .as_f64()
                    .map(|n| of(n, udp["sent"].as_f64().unwrap_or(0.0))),
                None => summary["in_flight_at_end"]["lost"]
                    .as_f64()
                    .map(|n| of(n, messages + n)),
            },
            Figure::TimedOut => summary["in_flight_at_end"]["timed_out"]
                .as_f64()
                .map(|n| of(n, messages + n)),
            Figure::Unsent => summary["schedule"]["unsent"]
                .as_f64()
                .map(|n| of(n, summary["schedule"]["due"].as_f64().unwrap_or(0.0))),
            Figure::MsgsPerS => summary["msgs_per_s"].as_f64(),
            Figure::MibPerS => summary["mib_per_s"].as_f64(),
        };
        let (limit, scale, unit) = match self.limit {
            Limit::Micros(us) => match self.text.trim_end() {
                t if t.ends_with("us") || t.ends_with("µs") => (us, 1.0, "us"),
                t if t.ends_with("ms") => (us, 1e-3, "ms"),
                _ => (us, 1e-6, "s"),
            },
            Limit::Percent(p) => (p, 1.0, "%"),
            Limit::Count(n) | Limit::Number(n) => (n, 1.0, ""),
        };
        // Compared as read (a latency in µs), shown in the expression's unit.
        Verdict {
            expr: self.text.clone(),
            value: value.map(|v| v * scale),
            unit,
            // A figure the run does not have cannot pass a gate.
            broken: value.is_none_or(|v| self.op.holds(v, limit)),
        }
    }
}

/// A latency: a number and its unit (`us`, `µs`, `ms` or `s`), in µs.
fn latency(text: &str, value: &str) -> Result<f64, String> {
    let (number_part, scale) = if let Some(n) = value.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix("µs") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1e6)
    } else {
        return Err(format!(
            "`{text}`: a latency needs its unit (500us, 5ms, 1s)"
        ));
    };
    let us = number(text, number_part)? * scale;
    if us > 3.6e9 {
        return Err(format!("`{text}`: a latency is at most an hour"));
    }
    Ok(us)
}

/// A number at least zero and finite, with an optional `k` or `M`.
fn number(text: &str, value: &str) -> Result<f64, String> {
    let v = value.trim();
    let (n, times) = match v.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1e3),
        None => match v.strip_suffix('M') {
            Some(n) => (n, 1e6),
            None => (v, 1.0),
        },
    };
    match n.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x * times),
        _ => Err(format!("`{text}`: `{value}` is not a number of at least 0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Value {
        serde_json::json!({
            "messages": 10_000,
            "msgs_per_s": 8_500.0,
            "mib_per_s": 0.52,
            "latency_us": {"p50": 900, "p90": 2_000, "p99": 7_310, "p999": 9_000, "max": 12_000},
            "errors": {"connect": 0, "closed": 0, "reset": 2, "timeout": 1, "mismatch": 0,
                       "handshake": 0, "truncated": 0, "corrupt": 0},
            "in_flight_at_end": {"messages": 50, "answered": 40, "timed_out": 0, "lost": 10},
            "schedule": {"due": 10_000, "sent": 9_990, "unsent": 10}
        })
    }

    fn judged(expr: &str) -> Verdict {
        Threshold::parse(expr).expect(expr).judge(&summary())
    }

    /// Each figure is read where `--json` puts it, compared in the
    /// expression's unit, and shown in it.
    #[test]
    fn figures_come_from_the_summary() {
        let v = judged("p99>5ms");
        assert!(v.broken);
        assert_eq!(v.to_string(), "p99>5ms: p99 was 7.31 ms");
        assert!(!judged("p99>7311us").broken);
        assert!(judged("p99>=7310us").broken);
        assert!(!judged("max>12.5ms").broken);
        assert!(judged("errors>0").broken, "2 resets + 1 timeout");
        assert!(!judged("errors>3").broken);
        assert!(judged("errors.reset>=2").broken);
        assert!(!judged("errors.mismatch>0").broken);
        assert!(judged("msgs_per_s<9000").broken);
        assert!(!judged("msgs_per_s<8.5k").broken);
        assert!(judged("lost>0.05%").broken, "10 of 10,010 is 0.0999%");
        assert!(!judged("lost>0.1%").broken);
        assert_eq!(
            judged("lost>0.05%").to_string(),
            "lost>0.05%: lost was 0.1%"
        );
        assert!(judged("unsent>0").broken);
        assert!(!judged("timed_out>0").broken);
    }

    /// A figure the run does not have fails the gate, and says so.
    #[test]
    fn a_missing_figure_is_broken() {
        let v = Threshold::parse("lost>0")
            .unwrap()
            .judge(&serde_json::json!({"messages": 1}));
        assert!(v.broken);
        assert_eq!(v.to_string(), "lost>0: the run has no lost figure");
    }

    /// Bad expressions are refused with a message that says what is taken.
    #[test]
    fn bad_expressions_say_why() {
        for (bad, says) in [
            ("p99", "no comparison"),
            ("p98>5ms", "no figure `p98`"),
            ("p99>5", "a latency needs its unit"),
            ("p99>-5ms", "is not a number of at least 0"),
            ("errors.oops>0", "no error kind `oops`"),
            ("lost>101%", "at most 100%"),
            ("msgs_per_s<lots", "is not a number"),
            ("p99>2h", "a latency needs its unit"),
        ] {
            let err = Threshold::parse(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
