//! `echoloop report FILE…`: reads HdrHistogram interval logs (from
//! `echoloop load --hdr-log`, on one machine or several), lines them up on
//! the time axis by each log's StartTime, and merges them: totals over the
//! whole run, per interval, per tag. With `--html`, one page of charts
//! ([`html`]).
//!
//! This is how a load test that outgrows one machine is run: one
//! generator per machine, each with its own `--tag`, the logs collected,
//! then merged here. Histograms add exactly (HdrHistogram's `add`), so the
//! merged percentiles are those of all the messages, not an average of
//! percentiles.
//!
//! Next: [`html`].

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

pub mod html;

/// A tag ending in this holds connect latency, not message latency.
pub const CONNECT_SUFFIX: &str = "-connect";

/// Why logs could not be read.
#[derive(Debug)]
pub enum ReportError {
    /// The file could not be read (exit 1).
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file is not an interval log, or a line of it is broken (exit 2).
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line (1-based; 0: the file as a whole).
        line: usize,
        /// What is wrong.
        why: String,
    },
}

impl ReportError {
    /// The process exit code: 1 unreadable, 2 not a log.
    pub fn exit_code(&self) -> u8 {
        match self {
            ReportError::Unreadable { .. } => 1,
            ReportError::Malformed { .. } => 2,
        }
    }
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::Unreadable { path, source } => {
                write!(
                    f,
                    "cannot read {}: {}",
                    path.display(),
                    crate::shared::net::describe(source)
                )
            }
            ReportError::Malformed { path, line: 0, why } => write!(f, "{}: {why}", path.display()),
            ReportError::Malformed { path, line, why } => {
                write!(f, "{}:{line}: {why}", path.display())
            }
        }
    }
}

impl std::error::Error for ReportError {}

/// One interval histogram of one log, placed on the common time axis.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its tag (`untagged` when it has none).
    pub tag: String,
    /// Seconds since the epoch at which it starts.
    pub start: f64,
    /// How long it is, seconds.
    pub length: f64,
    /// Its latency histogram, µs.
    pub histogram: Histogram<u64>,
}

/// Everything read from the logs.
#[derive(Debug, Default)]
pub struct Logs {
    /// Every interval of every log.
    pub entries: Vec<Entry>,
    /// The files, in the order given.
    pub files: Vec<PathBuf>,
    /// Comment lines (`#…`) that are not StartTime or BaseTime: the runs'
    /// own descriptions.
    pub comments: Vec<String>,
}

impl Logs {
    /// Reads and parses each file.
    pub fn read(paths: &[PathBuf]) -> Result<Logs, ReportError> {
        let mut logs = Logs::default();
        for path in paths {
            let bytes = std::fs::read(path).map_err(|source| ReportError::Unreadable {
                path: path.clone(),
                source,
            })?;
            logs.parse(path, &bytes)?;
            logs.files.push(path.clone());
        }
        Ok(logs)
    }

    /// Parses one log, line by line, so that an error names its line.
    fn parse(&mut self, path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
        let malformed = |line: usize, why: String| ReportError::Malformed {
            path: path.to_path_buf(),
            line,
            why,
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|_| malformed(0, "not text: not an HdrHistogram interval log".into()))?;
        let (mut start_time, mut base_time) = (None, None);
        let before = self.entries.len();
        for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with("\"StartTimestamp\"") {
                continue;
            }
            let with_newline = format!("{trimmed}\n");
            let mut entries = IntervalLogIterator::new(with_newline.as_bytes());
            match entries.next() {
                None if trimmed.starts_with('#') => {
                    self.comments
                        .push(trimmed.trim_start_matches('#').trim().to_string());
                }
                // The crate's iterator skips comments it does not know.
                _ if trimmed.starts_with('#') && !trimmed.starts_with("#[") => {
                    self.comments
                        .push(trimmed.trim_start_matches('#').trim().to_string());
                }
                None => return Err(malformed(number, "not an interval log line".into())),
                Some(Err(_)) => return Err(malformed(number, "not an interval log line".into())),
                Some(Ok(LogEntry::StartTime(t))) => start_time = Some(t.as_secs_f64()),
                Some(Ok(LogEntry::BaseTime(t))) => base_time = Some(t.as_secs_f64()),
                Some(Ok(LogEntry::Interval(h))) => {
                    let encoded = base64::engine::general_purpose::STANDARD
                        .decode(h.encoded_histogram())
                        .map_err(|e| malformed(number, format!("bad base64: {e}")))?;
                    let histogram: Histogram<u64> = Deserializer::new()
                        .deserialize(&mut encoded.as_slice())
                        .map_err(|e| malformed(number, format!("bad histogram: {e:?}")))?;
                    // Timestamps count from BaseTime, else they are absolute.
                    let base = base_time.unwrap_or(0.0);
                    self.entries.push(Entry {
                        tag: h
                            .tag()
                            .map_or("untagged".to_string(), |t| t.as_str().to_string()),
                        start: base + h.start_timestamp().as_secs_f64(),
                        length: h.duration().as_secs_f64(),
                        histogram,
                    });
                }
            }
        }
        let _ = start_time;
        if self.entries.len() == before {
            return Err(malformed(
                0,
                "no interval histograms: empty, truncated or not an interval log".into(),
            ));
        }
        Ok(())
    }
}

/// The merged run.
#[derive(Debug)]
pub struct Merged {
    /// Seconds since the epoch of the earliest interval.
    pub t0: f64,
    /// The time step the intervals are grouped by, seconds.
    pub step: f64,
    /// All message latencies of the run.
    pub total: Histogram<u64>,
    /// Per tag: its messages' histogram, and its first and last second.
    pub tags: BTreeMap<String, (Histogram<u64>, f64, f64)>,
    /// Per step (0, 1, …): per tag, that step's histogram.
    pub steps: BTreeMap<u64, BTreeMap<String, Histogram<u64>>>,
    /// Connect latency of all the runs (tags ending in `-connect`).
    pub connect: Option<Histogram<u64>>,
    /// Pairs of tags whose logs do not overlap in time.
    pub apart: Vec<(String, String)>,
}

/// Merges the logs' intervals on the time axis.
pub fn merge(logs: &Logs) -> Merged {
    let t0 = logs
        .entries
        .iter()
        .map(|e| e.start)
        .fold(f64::INFINITY, f64::min);
    // The step: the shortest interval length (intervals are all the same
    // length within a run; the last one of each may be shorter).
    let mut lengths: Vec<f64> = logs.entries.iter().map(|e| e.length).collect();
    lengths.sort_by(f64::total_cmp);
    let step = lengths
        .get(lengths.len() / 2)
        .copied()
        .unwrap_or(1.0)
        .max(1e-3);
    let empty = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut merged = Merged {
        t0,
        step,
        total: empty(),
        tags: BTreeMap::new(),
        steps: BTreeMap::new(),
        connect: None,
        apart: Vec::new(),
    };
    for e in &logs.entries {
        if e.tag.ends_with(CONNECT_SUFFIX) {
            let _ = merged.connect.get_or_insert_with(empty).add(&e.histogram);
            continue;
        }
        let _ = merged.total.add(&e.histogram);
        let offset = e.start - t0;
        let (h, first, last) = merged
            .tags
            .entry(e.tag.clone())
            .or_insert_with(|| (empty(), f64::INFINITY, 0.0));
        let _ = h.add(&e.histogram);
        *first = first.min(offset);
        *last = last.max(offset + e.length);
        // The step the interval mostly covers (its middle).
        let index = ((offset + e.length / 2.0) / step).floor().max(0.0) as u64;
        let _ = merged
            .steps
            .entry(index)
            .or_default()
            .entry(e.tag.clone())
            .or_insert_with(empty)
            .add(&e.histogram);
    }
    let spans: Vec<(&String, f64, f64)> = merged
        .tags
        .iter()
        .map(|(t, (_, a, b))| (t, *a, *b))
        .collect();
    for (i, (a, a0, a1)) in spans.iter().enumerate() {
        for (b, b0, b1) in &spans[i + 1..] {
            if a1 <= b0 || b1 <= a0 {
                merged.apart.push(((*a).clone(), (*b).clone()));
            }
        }
    }
    merged
}

/// The value at quantile `q` of `h`, 0 when it is empty.
pub fn quantile(h: &Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q)
    }
}

impl Merged {
    /// Seconds from the first interval's start to the last one's end.
    pub fn span(&self) -> f64 {
        self.tags
            .values()
            .map(|(_, _, last)| *last)
            .fold(0.0, f64::max)
    }

    /// The human summary: the whole run, per tag, per interval.
    pub fn to_human(&self, logs: &Logs) -> String {
        let mut out = String::new();
        let span = self.span().max(1e-9);
        let tags: Vec<&str> = self.tags.keys().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "{} log{}, tags {}; {:.1} s, intervals of {:.1} s",
            logs.files.len(),
            if logs.files.len() == 1 { "" } else { "s" },
            tags.join(" "),
            span,
            self.step
        );
        let t = &self.total;
        let _ = writeln!(
            out,
            "  whole run   {} messages ({:.1} msgs/s)  latency µs p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            t.len(),
            t.len() as f64 / span,
            quantile(t, 0.5),
            quantile(t, 0.9),
            quantile(t, 0.99),
            quantile(t, 0.999),
            t.max()
        );
        for (tag, (h, first, last)) in &self.tags {
            let _ = writeln!(
                out,
                "  tag {tag:<12} {} messages ({:.1} msgs/s) from {first:.1} s to {last:.1} s  p50 {}  p99 {}  max {}",
                h.len(),
                h.len() as f64 / (last - first).max(1e-9),
                quantile(h, 0.5),
                quantile(h, 0.99),
                h.max()
            );
        }
        if let Some(c) = &self.connect {
            let _ = writeln!(
                out,
                "  connect     {} connections  µs p50 {}  p99 {}  max {}",
                c.len(),
                quantile(c, 0.5),
                quantile(c, 0.99),
                c.max()
            );
        }
        for (a, b) in &self.apart {
            let _ = writeln!(
                out,
                "  note: the logs of {a} and {b} do not overlap in time"
            );
        }
        for (index, per_tag) in &self.steps {
            let mut all = per_tag.values();
            let Some(first) = all.next() else { continue };
            let mut h = first.clone();
            for other in all {
                let _ = h.add(other);
            }
            let _ = writeln!(
                out,
                "  [{:>6.1}s] msgs/s {:.0}  p50 {}µs  p99 {}µs  max {}µs",
                (*index + 1) as f64 * self.step,
                h.len() as f64 / self.step,
                quantile(&h, 0.5),
                quantile(&h, 0.99),
                h.max()
            );
        }
        out.trim_end().to_string()
    }

    /// One JSON object: `messages`, `msgs_per_s`, `span_s`, `latency_us`
    /// {p50, p90, p99, p999, max}, `tags` {TAG: messages}, `apart` (pairs
    /// of tags that do not overlap).
    pub fn to_json(&self) -> String {
        let t = &self.total;
        let tags: Vec<String> = self
            .tags
            .iter()
            .map(|(tag, (h, _, _))| format!("\"{tag}\":{}", h.len()))
            .collect();
        let apart: Vec<String> = self
            .apart
            .iter()
            .map(|(a, b)| format!("[\"{a}\",\"{b}\"]"))
            .collect();
        format!(
            "{{\"messages\":{},\"msgs_per_s\":{:.1},\"span_s\":{:.3},\
             \"latency_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{}}},\
             \"tags\":{{{}}},\"apart\":[{}]}}",
            t.len(),
            t.len() as f64 / self.span().max(1e-9),
            self.span(),
            quantile(t, 0.5),
            quantile(t, 0.9),
            quantile(t, 0.99),
            quantile(t, 0.999),
            t.max(),
            tags.join(","),
            apart.join(",")
        )
    }
}

/// Reads, merges and describes the logs: what `echoloop report` prints.
pub fn summarize(paths: &[PathBuf]) -> Result<(Logs, Merged), ReportError> {
    let logs = Logs::read(paths)?;
    let merged = merge(&logs);
    Ok((logs, merged))
}

/// The comment `echoloop load --hdr-log` writes after each interval:
/// `echoloop-interval tag=T start=EPOCH_S length=S errors=N`.
pub const INTERVAL_COMMENT: &str = "echoloop-interval";

/// Errors per step of `merged`, from the logs' interval comments.
pub fn errors_by_step(logs: &Logs, merged: &Merged) -> BTreeMap<u64, u64> {
    let mut errors = BTreeMap::new();
    for comment in &logs.comments {
        let Some(fields) = comment.strip_prefix(INTERVAL_COMMENT) else {
            continue;
        };
        let value = |key: &str| {
            fields
                .split_whitespace()
                .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
                .and_then(|v| v.parse::<f64>().ok())
        };
        let (Some(start), Some(length), Some(n)) =
            (value("start"), value("length"), value("errors"))
        else {
            continue;
        };
        let index = ((start - merged.t0 + length / 2.0) / merged.step)
            .floor()
            .max(0.0) as u64;
        *errors.entry(index).or_insert(0) += n as u64;
    }
    errors
}
