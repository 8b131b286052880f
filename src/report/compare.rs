//! `echoloop report --compare RUN RUN…`: several runs side by side, each
//! on its own time axis, with every figure's ratio to the first run. The
//! question it answers is "how much does the proxy add?": run the same
//! load direct and through the proxy, then compare.
//!
//! A RUN is a log file, or `NAME=FILE[,FILE…]`: the logs of the several
//! generators of one run, merged as a plain `report` merges them. Each run
//! is read and merged on its own ([`super::summarize`]), so its memory is
//! bounded as a report's is, and there are at most [`MAX_RUNS`] of them.
//!
//! A run made with `load --repeat N` has windows (tags `TAG@1`…`TAG@N`,
//! see [`super::windows`]): each figure is then the median over its
//! windows, shown with its [min – max], and the ratios are of medians. A
//! run whose generator fell behind its schedule or ran over 90% busy in
//! any window is marked (`!` after its name, and a line saying which
//! window and why): its figures may be the generator's, not the target's.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::windows::window_of;
use super::{Budget, Merged, Percentiles, ReportError, quantile, round, summarize_within};
use crate::shared::spread::Range;

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
    /// Its `--repeat` windows, by number (empty for a run of one).
    pub windows: Vec<Window>,
}

/// One `--repeat` window of a run: every generator's intervals tagged
/// with its number, merged.
#[derive(Debug)]
pub struct Window {
    /// Message latency, µs.
    pub latency: Histogram<u64>,
    /// Seconds from the window's first interval's start to its last's end.
    pub span: f64,
}

/// A run's windows, in order of their numbers.
fn windows(merged: &Merged) -> Vec<Window> {
    let mut by_number: BTreeMap<u32, (Histogram<u64>, f64, f64)> = BTreeMap::new();
    for (tag, run) in &merged.tags {
        let Some((_, n)) = window_of(tag) else {
            continue;
        };
        match by_number.entry(n) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((run.latency.clone(), run.first, run.last));
            }
            // Another generator's share of the same window. (The merged
            // histograms auto-resize: adding cannot fail on range.)
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let (latency, first, last) = o.get_mut();
                let _ = latency.add(&run.latency);
                *first = first.min(run.first);
                *last = last.max(run.last);
            }
        }
    }
    by_number
        .into_values()
        .map(|(latency, first, last)| Window {
            latency,
            span: last - first,
        })
        .collect()
}

impl Run {
    /// A figure of this run: its value over the whole run, or, with
    /// windows, their median, with the range.
    fn figure(&self, f: &Figure) -> (f64, Option<Range>) {
        let (_, of_run, of_window) = f;
        let whole = of_run(&self.merged);
        let Some(of_window) = of_window else {
            return (whole, None);
        };
        if self.windows.len() < 2 {
            return (whole, None);
        }
        let values: Vec<f64> = self.windows.iter().map(of_window).collect();
        match Range::of(&values) {
            Some(range) => (range.median, Some(range)),
            None => (whole, None),
        }
    }

    /// Why this run's figures may be its generator's: one line per window
    /// whose generator fell behind or ran over 90% busy.
    pub fn marks(&self) -> Vec<String> {
        self.merged
            .windows
            .iter()
            .filter_map(|w| w.mark())
            .collect()
    }
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
            let merged = summarize_within(files, &mut budget)?;
            Ok(Run {
                name: name.clone(),
                windows: windows(&merged),
                merged,
            })
        })
        .collect();
    if let Some(note) = budget.clamped_note() {
        log::warn!("{note}");
    }
    merged
}

/// The figures compared, each with how it reads: name and unit, its
/// value for a whole run, and for one window (if it has a spread).
type Figure = (&'static str, fn(&Merged) -> f64, Option<fn(&Window) -> f64>);

/// The rows of the comparison, in order.
const FIGURES: [Figure; 8] = [
    (
        "msgs/s",
        |m| m.total.len() as f64 / m.span().max(1e-9),
        Some(|w| w.latency.len() as f64 / w.span.max(1e-9)),
    ),
    (
        "p50 µs",
        |m| quantile(&m.total, 0.5) as f64,
        Some(|w| quantile(&w.latency, 0.5) as f64),
    ),
    (
        "p90 µs",
        |m| quantile(&m.total, 0.9) as f64,
        Some(|w| quantile(&w.latency, 0.9) as f64),
    ),
    (
        "p99 µs",
        |m| quantile(&m.total, 0.99) as f64,
        Some(|w| quantile(&w.latency, 0.99) as f64),
    ),
    (
        "p99.9 µs",
        |m| quantile(&m.total, 0.999) as f64,
        Some(|w| quantile(&w.latency, 0.999) as f64),
    ),
    (
        "max µs",
        |m| m.total.max() as f64,
        Some(|w| w.latency.max() as f64),
    ),
    ("messages", |m| m.total.len() as f64, None),
    ("errors", |m| m.errors() as f64, None),
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
    let names: Vec<String> = runs
        .iter()
        .map(|r| match r.marks().is_empty() {
            true => r.name.clone(),
            false => format!("{} !", r.name),
        })
        .collect();
    let windows: Vec<String> = runs
        .iter()
        .map(|r| match r.windows.len() {
            0 | 1 => "1".to_string(),
            n => n.to_string(),
        })
        .collect();
    let spans: Vec<String> = runs
        .iter()
        .map(|r| format!("{:.1}", r.merged.span()))
        .collect();
    let mut rows = vec![("".to_string(), names), ("span s".to_string(), spans)];
    if runs.iter().any(|r| r.windows.len() > 1) {
        rows.push(("windows".to_string(), windows));
    }
    for f in &FIGURES {
        let (label, ..) = f;
        let base = first.figure(f).0;
        let cells = runs
            .iter()
            .enumerate()
            .map(|(k, run)| {
                let (value, range) = run.figure(f);
                let digits = usize::from(*label == "msgs/s");
                let mut cell = format!("{value:.digits$}");
                if let Some(r) = range {
                    let _ = write!(cell, " [{:.digits$}–{:.digits$}]", r.min, r.max);
                }
                if let (Some(r), true) = (ratio(value, base), k > 0) {
                    let _ = write!(cell, " ({r:.2}×)");
                }
                cell
            })
            .collect();
        rows.push((label.to_string(), cells));
    }
    let width = rows
        .iter()
        .flat_map(|(_, cells)| cells.iter().map(|c| c.chars().count()))
        .max()
        .unwrap_or(0)
        .max(18);
    for (label, cells) in &rows {
        let _ = write!(out, "  {label:<10}");
        for cell in cells {
            let _ = write!(out, " {cell:>width$}");
        }
        out.push('\n');
    }
    if runs.iter().any(|r| r.windows.len() > 1) {
        out.push_str("  (a run of several windows: each figure is their median [min–max])\n");
    }
    for run in runs {
        for mark in run.marks() {
            let _ = writeln!(
                out,
                "! {}: {mark}: its figures may be the generator's, not the target's",
                run.name
            );
        }
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
    /// Each figure over the first run's (absent where that one is zero);
    /// for runs of several windows, of their medians.
    ratio: RatioJson,
    /// `--repeat`'s windows (1 for a run of one).
    windows: usize,
    /// Over several windows, each figure's median, min and max.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    spread: BTreeMap<&'static str, Range>,
    /// Why its figures may be its generator's (a window behind its
    /// schedule, or over 90% busy).
    marks: Vec<String>,
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
        let f = &FIGURES[i];
        ratio(run.figure(f).0, first.figure(f).0).map(|x| round(x, 3))
    };
    const KEYS: [&str; 6] = [
        "msgs_per_s",
        "p50_us",
        "p90_us",
        "p99_us",
        "p999_us",
        "max_us",
    ];
    let all: Vec<RunJson<'_>> = runs
        .iter()
        .map(|run| {
            let m = &run.merged;
            RunJson {
                name: &run.name,
                files: m.files.iter().map(|f| f.display().to_string()).collect(),
                messages: m.total.len(),
                msgs_per_s: round(run.figure(&FIGURES[0]).0, 1),
                span_s: round(m.span(), 3),
                latency_us: Percentiles::of(&m.total),
                errors: m.errors(),
                windows: run.windows.len().max(1),
                spread: KEYS
                    .iter()
                    .zip(&FIGURES)
                    .filter_map(|(key, f)| Some((*key, run.figure(f).1?)))
                    .collect(),
                marks: run.marks(),
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
