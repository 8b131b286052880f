//! `load --repeat N`: the same run N times, a pause between, and each
//! figure's median, min and max over the windows (hyperfine's habit). One
//! run cannot tell a 5% change from noise; the spread of N can.
//!
//! Every figure is read from the windows' summaries exactly as `--json`
//! prints them, as `--fail-if` reads them, so the spread is of the very
//! numbers a user would compare by hand.

use serde_json::Value;

use crate::shared::spread::Range;

/// A figure of the spread: its label, its key in `--json`'s spread, and
/// how it is read from a window's summary.
struct Figure {
    label: &'static str,
    key: &'static str,
    read: fn(&Value) -> Option<f64>,
}

/// The number at `path` (dots between keys) of a summary.
fn at(v: &Value, path: &str) -> Option<f64> {
    path.split('.').try_fold(v, |v, key| v.get(key))?.as_f64()
}

/// The figures, in the order they are shown.
const FIGURES: [Figure; 10] = [
    Figure {
        label: "msgs/s",
        key: "msgs_per_s",
        read: |v| at(v, "msgs_per_s"),
    },
    Figure {
        label: "MiB/s",
        key: "mib_per_s",
        read: |v| at(v, "mib_per_s"),
    },
    Figure {
        label: "p50 µs",
        key: "p50_us",
        read: |v| at(v, "latency_us.p50"),
    },
    Figure {
        label: "p90 µs",
        key: "p90_us",
        read: |v| at(v, "latency_us.p90"),
    },
    Figure {
        label: "p99 µs",
        key: "p99_us",
        read: |v| at(v, "latency_us.p99"),
    },
    Figure {
        label: "p99.9 µs",
        key: "p999_us",
        read: |v| at(v, "latency_us.p999"),
    },
    Figure {
        label: "max µs",
        key: "max_us",
        read: |v| at(v, "latency_us.max"),
    },
    Figure {
        label: "errors",
        key: "errors",
        read: |v| {
            Some(
                v.get("errors")?
                    .as_object()?
                    .values()
                    .filter_map(Value::as_f64)
                    .sum(),
            )
        },
    },
    Figure {
        label: "CPU µs/msg",
        key: "cpu_us_per_msg",
        read: |v| at(v, "cpu_us_per_msg"),
    },
    Figure {
        label: "busy",
        key: "cpu_busy",
        read: |v| at(v, "cpu_busy"),
    },
];

/// The windows' summaries, as `--json` printed each.
#[derive(Debug, Default)]
pub struct Repeats {
    windows: Vec<Value>,
}

impl Repeats {
    /// Adds one window's summary (its `--json` text).
    pub fn push(&mut self, summary_json: &str) {
        self.windows
            .push(serde_json::from_str(summary_json).unwrap_or_default());
    }

    /// Windows so far.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Each figure's range, in order; figures no window has are left out.
    fn ranges(&self) -> Vec<(&'static Figure, Range)> {
        FIGURES
            .iter()
            .filter_map(|f| {
                let values: Vec<f64> = self.windows.iter().filter_map(f.read).collect();
                Some((f, Range::of(&values)?))
            })
            .collect()
    }

    /// One window's line: `window 2 of 3  9998.0 msgs/s  p50 120 µs …`.
    pub fn window_line(&self, total: usize) -> String {
        let k = self.windows.len();
        let Some(v) = self.windows.last() else {
            return String::new();
        };
        let read = |i: usize| (FIGURES[i].read)(v).unwrap_or(0.0);
        format!(
            "window {k} of {total}  {:.1} msgs/s  p50 {:.0} µs  p99 {:.0} µs  max {:.0} µs  errors {:.0}  busy {:.0}%",
            read(0),
            read(2),
            read(4),
            read(6),
            read(7),
            read(9) * 100.0
        )
    }

    /// The human table: each figure's median, then [min – max].
    pub fn to_human(&self) -> String {
        let n = self.windows.len();
        let plural = if n == 1 { "" } else { "s" };
        let mut out = format!("over {n} window{plural}: median [min – max]");
        for (f, r) in self.ranges() {
            let (m, lo, hi) = match f.key {
                "cpu_busy" => (r.median * 100.0, r.min * 100.0, r.max * 100.0),
                _ => (r.median, r.min, r.max),
            };
            let digits = match f.key {
                "msgs_per_s" | "mib_per_s" => 1,
                "cpu_us_per_msg" => 2,
                _ => 0,
            };
            let unit = if f.key == "cpu_busy" { "%" } else { "" };
            out.push_str(&format!(
                "\n  {:<11}{m:>12.digits$}{unit} [{lo:.digits$} – {hi:.digits$}]",
                f.label
            ));
        }
        out
    }

    /// `--json`'s last line: `{"type":"repeats","windows":N,"spread":{…}}`.
    pub fn to_json(&self) -> String {
        let spread: serde_json::Map<String, Value> = self
            .ranges()
            .into_iter()
            .map(|(f, r)| {
                (
                    f.key.to_string(),
                    serde_json::to_value(r).unwrap_or_default(),
                )
            })
            .collect();
        serde_json::json!({
            "type": "repeats",
            "windows": self.windows.len(),
            "spread": spread,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_reads_each_summary_as_json_says_it() {
        let mut reps = Repeats::default();
        for (rate, p99, reset) in [(1000.0, 300, 0), (1100.0, 200, 2), (900.0, 900, 0)] {
            reps.push(&format!(
                r#"{{"msgs_per_s":{rate},"latency_us":{{"p50":100,"p99":{p99}}},"errors":{{"reset":{reset},"timeout":1}},"cpu_busy":0.5}}"#
            ));
        }
        let json: Value = serde_json::from_str(&reps.to_json()).unwrap();
        assert_eq!(json["windows"], 3);
        assert_eq!(json["spread"]["msgs_per_s"]["median"], 1000.0);
        assert_eq!(json["spread"]["p99_us"]["min"], 200.0);
        assert_eq!(json["spread"]["p99_us"]["max"], 900.0);
        assert_eq!(json["spread"]["errors"]["max"], 3.0);
        assert!(
            json["spread"].get("mib_per_s").is_none(),
            "no window has it"
        );
        let text = reps.to_human();
        assert!(
            text.starts_with("over 3 windows: median [min – max]\n"),
            "{text}"
        );
        assert!(
            text.contains("\n  msgs/s           1000.0 [900.0 – 1100.0]"),
            "{text}"
        );
        assert!(
            text.contains("\n  busy                 50% [50 – 50]"),
            "{text}"
        );
        assert_eq!(
            reps.window_line(3),
            "window 3 of 3  900.0 msgs/s  p50 100 µs  p99 900 µs  max 0 µs  errors 1  busy 50%"
        );
    }
}
