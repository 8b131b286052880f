//! `echoloop report --compare RUN RUN…`: several runs side by side, each
//! on its own time axis, with every figure's ratio to the first run. The
//! question it answers is "how much does the proxy add?": run the same
//! load direct and through the proxy, then compare.
//!
//! A RUN is a log file, or `NAME=FILE[,FILE…]`: the logs of the several
//! generators of one run, merged as a plain `report` merges them. Each run
//! is read and merged on its own ([`super::summarize`]), so its memory is
//! bounded as a report's is, and there are at most [`MAX_RUNS`] of them.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::{Budget, Merged, Percentiles, ReportError, quantile, round, summarize_within};

/// The most runs one comparison holds (one column and one line colour
/// each).
pub const MAX_RUNS: usize = 12;

/// One run: its name and its merged logs.
#[derive(Debug)]
pub struct Run {
    /// `NAME` of `NAME=FILES`, or the file's name.
    pub name: String,
    /// Its logs, merged.
    pub merged: Merged,
}

/// Parses one RUN argument: `NAME=FILE[,FILE…]`, or a lone FILE named by
/// its file name.
pub fn parse_run(text: &str) -> Result<(String, Vec<PathBuf>), String> {
    let (name, files) = match text.split_once('=') {
        Some((name, files)) => (name.trim().to_string(), files),
        None => {
            let name = std::path::Path::new(text)
                .file_stem()
                .map_or_else(|| text.to_string(), |s| s.to_string_lossy().into_owned());
            return Ok((name, vec![PathBuf::from(text)]));
        }
    };
    if name.is_empty() {
        return Err(format!("`{text}`: a run's NAME before `=` is empty"));
    }
    let files: Vec<PathBuf> = files
        .split(',')
        .filter(|f| !f.is_empty())
        .map(PathBuf::from)
        .collect();
    if files.is_empty() {
        return Err(format!("`{text}`: run {name} names no file"));
    }
    Ok((name, files))
}

/// Reads and merges each run.
///
/// The runs share one memory [`Budget`]: four runs of one log may take
/// no more than one report may.
pub fn compare(runs: &[(String, Vec<PathBuf>)]) -> Result<Vec<Run>, ReportError> {
    let mut budget = Budget::default();
    let merged = runs
        .iter()
        .map(|(name, files)| {
            Ok(Run {
                name: name.clone(),
                merged: summarize_within(files, &mut budget)?,
            })
        })
        .collect();
    if let Some(note) = budget.clamped_note() {
        log::warn!("{note}");
    }
    merged
}

/// The figures compared, each with how it reads: name, unit, and its
/// value for a run.
type Figure = (&'static str, fn(&Merged) -> f64);

/// The rows of the comparison, in order.
const FIGURES: [Figure; 8] = [
    ("msgs/s", |m| m.total.len() as f64 / m.span().max(1e-9)),
    ("p50 µs", |m| quantile(&m.total, 0.5) as f64),
    ("p90 µs", |m| quantile(&m.total, 0.9) as f64),
    ("p99 µs", |m| quantile(&m.total, 0.99) as f64),
    ("p99.9 µs", |m| quantile(&m.total, 0.999) as f64),
    ("max µs", |m| m.total.max() as f64),
    ("messages", |m| m.total.len() as f64),
    ("errors", |m| m.errors() as f64),
];

/// `x / base`, or `None` when the base is zero (no ratio to speak of).
fn ratio(x: f64, base: f64) -> Option<f64> {
    (base > 0.0).then(|| x / base)
}

/// The text table: one column per run, each figure with its ratio to the
/// first run's.
pub fn to_human(runs: &[Run]) -> String {
    let mut out = String::new();
    let Some(first) = runs.first() else {
        return out;
    };
    let _ = writeln!(
        out,
        "{} runs compared, ratios to {}; each on its own time axis",
        runs.len(),
        first.name
    );
    let width = runs
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(18);
    let _ = write!(out, "  {:<10}", "");
    for run in runs {
        let _ = write!(out, " {:>width$}", run.name);
    }
    out.push('\n');
    let _ = write!(out, "  {:<10}", "span s");
    for run in runs {
        let _ = write!(out, " {:>width$.1}", run.merged.span());
    }
    out.push('\n');
    for (label, figure) in FIGURES {
        let base = figure(&first.merged);
        let _ = write!(out, "  {label:<10}");
        for (k, run) in runs.iter().enumerate() {
            let value = figure(&run.merged);
            let shown = if label == "msgs/s" {
                format!("{value:.1}")
            } else {
                format!("{value:.0}")
            };
            let cell = match ratio(value, base) {
                Some(r) if k > 0 => format!("{shown} ({r:.2}×)"),
                _ => shown,
            };
            let _ = write!(out, " {cell:>width$}");
        }
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// One run in `--compare --json`.
#[derive(Debug, Serialize)]
struct RunJson<'a> {
    name: &'a str,
    files: Vec<String>,
    messages: u64,
    msgs_per_s: f64,
    span_s: f64,
    latency_us: Percentiles,
    errors: u64,
    /// Each figure over the first run's (absent where that one is zero).
    ratio: RatioJson,
}

/// The ratios of one run to the first.
#[derive(Debug, Serialize)]
struct RatioJson {
    msgs_per_s: Option<f64>,
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    p999: Option<f64>,
    max: Option<f64>,
    errors: Option<f64>,
}

/// `--compare --json`: `{"runs": [...]}`, the first run first.
pub fn to_json(runs: &[Run]) -> String {
    let Some(first) = runs.first() else {
        return "{\"runs\":[]}".into();
    };
    let r = |i: usize, run: &Run| {
        let (_, figure) = FIGURES[i];
        ratio(figure(&run.merged), figure(&first.merged)).map(|x| round(x, 3))
    };
    let all: Vec<RunJson<'_>> = runs
        .iter()
        .map(|run| {
            let m = &run.merged;
            RunJson {
                name: &run.name,
                files: m.files.iter().map(|f| f.display().to_string()).collect(),
                messages: m.total.len(),
                msgs_per_s: round(FIGURES[0].1(m), 1),
                span_s: round(m.span(), 3),
                latency_us: Percentiles::of(&m.total),
                errors: m.errors(),
                ratio: RatioJson {
                    msgs_per_s: r(0, run),
                    p50: r(1, run),
                    p90: r(2, run),
                    p99: r(3, run),
                    p999: r(4, run),
                    max: r(5, run),
                    errors: r(7, run),
                },
            }
        })
        .collect();
    #[derive(Serialize)]
    struct All<'a> {
        runs: Vec<RunJson<'a>>,
    }
    // Plain numbers, strings and lists: serializing cannot fail.
    serde_json::to_string(&All { runs: all }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NAME=FILE,FILE, a lone file named by its stem, and the errors.
    #[test]
    fn runs_are_parsed_with_their_names() {
        assert_eq!(
            parse_run("direct=a.hlog,b.hlog").unwrap(),
            ("direct".into(), vec!["a.hlog".into(), "b.hlog".into()])
        );
        assert_eq!(
            parse_run("/tmp/x/haproxy.hlog").unwrap(),
            ("haproxy".into(), vec!["/tmp/x/haproxy.hlog".into()])
        );
        assert!(parse_run("=a.hlog").unwrap_err().contains("NAME"));
        assert!(parse_run("x=").unwrap_err().contains("names no file"));
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(3.0, 0.0), None);
    }
}
