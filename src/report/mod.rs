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
//! **Memory is bounded by what is shown, not by what is read.** A 24-hour
//! log of 1 s intervals has 86,400 histograms; keeping each (as an earlier
//! version did, ~280 KB apiece) needs 24 GB. So the logs are read twice,
//! line by line. The first pass ([`Scan`]) only reads each interval's
//! place on the time axis and its tag, and fixes the step the report is
//! drawn in: the intervals' own length, or a multiple of it so that there
//! are at most [`MAX_STEPS`] steps. The second pass decodes each histogram
//! (checked before it is allocated: [`decode`]) and adds it at once into
//! what the report shows: the whole run, its tag, its step. Histograms
//! grow with the values merged into them (auto-resize), so a value beyond
//! any preset range is merged, never dropped, up to an hour
//! ([`CEILING_US`]; a larger value is counted as an hour, and said). What
//! stays in memory is one histogram per tag and per step, and a count per
//! tag and step, all within one [`Budget`] of [`MEMORY_BUDGET`] (shared by
//! the runs of `--compare`): past it the report stops at the line that
//! would cross it.
//!
//! [`decode`] reads one histogram, [`html`] draws the page, and [`writer`]
//! writes `load --hdr-log` from its own thread.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::io::{self, BufRead as _, Read as _};
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use serde::Serialize;

pub mod compare;
pub mod decode;
pub mod html;
pub mod windows;
pub mod writer;

/// A tag ending in this holds connect latency, not message latency
/// (`echoloop load` refuses a `--tag` of its own that ends so).
pub const CONNECT_SUFFIX: &str = "-connect";

/// A tag ending in this holds open-loop service time (from each message's
/// actual send), not latency from the due time; `echoloop load` refuses a
/// `--tag` of its own that ends so too.
pub const SERVICE_SUFFIX: &str = "-service";

/// A tag ending in this holds TLS handshake latency (`tls://`), not
/// message latency; `echoloop load` refuses a `--tag` that ends so.
pub const HANDSHAKE_SUFFIX: &str = "-handshake";

/// Whether a tag names a side histogram (connect, service, handshake)
/// rather than a run's message latency.
pub fn is_side_tag(tag: &str) -> bool {
    [CONNECT_SUFFIX, SERVICE_SUFFIX, HANDSHAKE_SUFFIX]
        .iter()
        .any(|suffix| tag.ends_with(suffix))
}

/// The most steps a report is drawn in (text lines, chart points).
pub const MAX_STEPS: usize = 1000;

/// The most tags one report merges.
pub const MAX_TAGS: usize = 4096;

/// The longest line read from a log (a 3-digit histogram of any range
/// takes a few KiB).
pub const MAX_LINE: usize = 1 << 22;

/// The most comment lines of the runs kept for the page.
pub const MAX_COMMENTS: usize = 100;

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
    /// The `--html` page could not be written (exit 1).
    PageUnwritable {
        /// The page's path.
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
    /// The process exit code: 1 unreadable (or the page unwritable), 2 not
    /// a log.
    pub fn exit_code(&self) -> u8 {
        match self {
            ReportError::Unreadable { .. } | ReportError::PageUnwritable { .. } => 1,
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
            ReportError::PageUnwritable { path, source } => {
                write!(
                    f,
                    "cannot write {}: {}",
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

/// One line of an interval log, as the report needs it.
#[derive(Debug)]
enum Line {
    /// A `#` comment that is not StartTime or BaseTime.
    Comment(String),
    /// An interval histogram: its tag, its start on the common axis
    /// (seconds since the epoch), its length, and its base64 histogram.
    Interval {
        tag: String,
        start: f64,
        length: f64,
        encoded: String,
    },
}

/// Reads a log line by line (each at most [`MAX_LINE`] bytes), handing
/// each [`Line`] with its number to `each`; StartTime and BaseTime are
/// applied here. Reads at most `limit` bytes when given. Returns how many
/// bytes of whole lines it read.
///
/// A last line with no newline is a line still being written (a log
/// `load` is writing now) or cut by a run that was killed: it is left
/// out, and the lines before it are used, so a stopped soak test keeps
/// everything it logged.
fn read_lines(
    path: &Path,
    limit: Option<u64>,
    mut each: impl FnMut(usize, Line) -> Result<(), ReportError>,
) -> Result<u64, ReportError> {
    let malformed = |line: usize, why: String| ReportError::Malformed {
        path: path.to_path_buf(),
        line,
        why,
    };
    let unreadable = |source| ReportError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut reader = io::BufReader::new(file.take(limit.unwrap_or(u64::MAX)));
    let mut base_time = None;
    let mut intervals = 0;
    let mut whole = 0u64;
    let mut raw = Vec::new();
    for number in 1.. {
        raw.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut raw)
            .map_err(unreadable)?;
        if read == 0 {
            break;
        }
        if raw.len() > MAX_LINE {
            return Err(malformed(
                number,
                format!("a line longer than {MAX_LINE} bytes"),
            ));
        }
        if raw.last() != Some(&b'\n') {
            if limit.is_none() {
                log::warn!(
                    "{}: line {number} is cut short (a log still being written, or a run \
                     that was killed); the {} lines before it are used",
                    path.display(),
                    number - 1
                );
            }
            break;
        }
        whole += read as u64;
        let text = std::str::from_utf8(&raw)
            .map_err(|_| malformed(number, "not text: not an HdrHistogram interval log".into()))?;
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.starts_with("\"StartTimestamp\"") {
            continue;
        }
        let with_newline = format!("{trimmed}\n");
        let comment = || Line::Comment(trimmed.trim_start_matches('#').trim().to_string());
        match IntervalLogIterator::new(with_newline.as_bytes()).next() {
            // The crate's iterator skips comments it does not know.
            _ if trimmed.starts_with('#') && !trimmed.starts_with("#[") => each(number, comment())?,
            None if trimmed.starts_with('#') => each(number, comment())?,
            None | Some(Err(_)) => {
                return Err(malformed(number, "not an interval log line".into()));
            }
            Some(Ok(LogEntry::StartTime(_))) => {}
            Some(Ok(LogEntry::BaseTime(t))) => base_time = Some(t.as_secs_f64()),
            Some(Ok(LogEntry::Interval(h))) => {
                // Timestamps count from BaseTime, else they are absolute.
                let start = base_time.unwrap_or(0.0) + h.start_timestamp().as_secs_f64();
                let length = h.duration().as_secs_f64();
                if !start.is_finite() || !length.is_finite() || length > 1e9 {
                    return Err(malformed(
                        number,
                        "an interval outside any time axis".into(),
                    ));
                }
                intervals += 1;
                let tag = h.tag().map_or("untagged", |t| t.as_str()).to_string();
                each(
                    number,
                    Line::Interval {
                        tag,
                        start,
                        length,
                        encoded: h.encoded_histogram().to_string(),
                    },
                )?;
            }
        }
    }
    if intervals == 0 {
        return Err(malformed(
            0,
            "no interval histograms: empty, truncated or not an interval log".into(),
        ));
    }
    Ok(whole)
}

/// Refuses a file given twice (`report a a`, `NAME=a,./a`): merged
/// twice, every count would double without a word. Two names of one file
/// (a link, another spelling) are the same device and inode.
fn refuse_twice(paths: &[PathBuf]) -> Result<(), ReportError> {
    use std::os::unix::fs::MetadataExt as _;
    let mut seen: BTreeMap<(u64, u64), &PathBuf> = BTreeMap::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| ReportError::Unreadable {
            path: path.clone(),
            source,
        })?;
        if let Some(first) = seen.insert((meta.dev(), meta.ino()), path) {
            return Err(ReportError::Malformed {
                path: path.clone(),
                line: 0,
                why: format!(
                    "the same file as {}: given twice, its counts would be doubled",
                    first.display()
                ),
            });
        }
    }
    Ok(())
}

/// What the first pass learns: where the run lies on the time axis, how
/// long its intervals are, and its tags.
#[derive(Debug)]
pub struct Scan {
    /// Seconds since the epoch of the earliest interval.
    pub t0: f64,
    /// Seconds since the epoch of the latest end.
    pub end: f64,
    /// The intervals' usual (median) length, seconds.
    pub interval: f64,
    /// The message tags (not the connect ones), sorted.
    pub tags: BTreeSet<String>,
    /// Per file, the bytes of whole lines the scan read: the merge reads
    /// exactly those, so a log that grows in between (one `load` is still
    /// writing) is merged as it was scanned.
    pub whole: Vec<u64>,
}

impl Scan {
    /// Reads every log once, without decoding a histogram.
    pub fn of(paths: &[PathBuf]) -> Result<Scan, ReportError> {
        let (mut t0, mut end) = (f64::INFINITY, f64::NEG_INFINITY);
        // Lengths in ms: a histogram finds their median in bounded memory
        // (exact to 2,048 ms, within 0.1% beyond).
        let mut lengths = Histogram::<u64>::new(3).expect("3 digits is a valid precision");
        let mut tags = BTreeSet::new();
        let mut whole = Vec::with_capacity(paths.len());
        refuse_twice(paths)?;
        for path in paths {
            let read = read_lines(path, None, |number, line| {
                let Line::Interval {
                    tag, start, length, ..
                } = line
                else {
                    return Ok(());
                };
                t0 = t0.min(start);
                end = end.max(start + length);
                let _ = lengths.record((length * 1e3).round().max(1.0) as u64);
                if !is_side_tag(&tag) && !tags.contains(&tag) {
                    if tags.len() == MAX_TAGS {
                        return Err(ReportError::Malformed {
                            path: path.clone(),
                            line: number,
                            why: format!("more than {MAX_TAGS} tags"),
                        });
                    }
                    tags.insert(tag);
                }
                Ok(())
            })?;
            whole.push(read);
        }
        let median = lengths.value_at_quantile(0.5);
        let interval = lengths.lowest_equivalent(median) as f64 / 1e3;
        Ok(Scan {
            t0,
            end,
            interval,
            tags,
            whole,
        })
    }

    /// The step the report is drawn in: the intervals' length (at least a
    /// millisecond), or the smallest multiple of it that makes at most
    /// [`MAX_STEPS`] steps.
    pub fn step(&self) -> f64 {
        let base = self.interval.max(1e-3);
        let span = (self.end - self.t0).max(0.0);
        let multiple = (span / MAX_STEPS as f64 / base).ceil().max(1.0);
        base * multiple
    }
}

/// One tag over the whole run.
#[derive(Debug)]
pub struct TagRun {
    /// Its messages' latency, µs.
    pub latency: Histogram<u64>,
    /// Its first and last second, from the run's start.
    pub first: f64,
    /// See `first`.
    pub last: f64,
}

/// One step of the merged run.
#[derive(Debug)]
pub struct Step {
    /// All tags' message latency in this step, µs.
    pub latency: Histogram<u64>,
    /// Messages per tag, in the order of [`Merged::tags`].
    pub per_tag: Vec<u64>,
    /// Errors the logs' interval comments give for this step.
    pub errors: u64,
    /// Messages offered in this step, by the interval comments of runs
    /// whose rate varies (a ramp, steps): `offered=` × length, summed.
    pub due: f64,
}

impl Step {
    /// The rate offered in it, msgs/s, over a step of `length` seconds
    /// (0 when no log said).
    pub fn offered(&self, length: f64) -> f64 {
        self.due / length.max(1e-9)
    }
}

/// The merged run.
#[derive(Debug)]
pub struct Merged {
    /// The files, in the order given.
    pub files: Vec<PathBuf>,
    /// Comment lines (`#…`) that are not interval comments: the runs' own
    /// descriptions (at most [`MAX_COMMENTS`]).
    pub comments: Vec<String>,
    /// Seconds since the epoch of the earliest interval.
    pub t0: f64,
    /// The time step the intervals are grouped by, seconds.
    pub step: f64,
    /// All message latencies of the run.
    pub total: Histogram<u64>,
    /// Per tag, sorted by name.
    pub tags: BTreeMap<String, TagRun>,
    /// Steps 0, 1, …: `None` where no interval fell.
    pub steps: Vec<Option<Step>>,
    /// Connect latency of all the runs (tags ending in `-connect`).
    pub connect: Option<Histogram<u64>>,
    /// Service time of all the runs (tags ending in `-service`).
    pub service: Option<Histogram<u64>>,
    /// TLS handshake latency of all the runs (tags ending in
    /// `-handshake`).
    pub handshake: Option<Histogram<u64>>,
    /// Whether the logs say what rate was offered (a varying run): the
    /// page then draws latency against it.
    pub offered: bool,
    /// What each window's comment says of its generator (at most
    /// [`windows::MAX_WINDOWS`]).
    pub windows: Vec<windows::WindowNote>,
}

/// An empty histogram that grows with what is added (3 digits).
fn growing() -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).expect("3 digits is a valid precision");
    h.auto(true);
    h
}

/// The largest value a report shows apart, µs: an hour. A larger one (no
/// echo takes that long; a crafted or foreign log can claim 2^60) is
/// counted as an hour, and the report says how many were. Without the
/// ceiling each merged histogram grows to the widest value it meets, and
/// a thousand tags of such values take gigabytes.
pub const CEILING_US: u64 = 3_600_000_000;

/// The memory all of a report's merged histograms may take together,
/// across its tags, steps and (`--compare`) runs: with what reading
/// needs besides, a report stays under 512 MB whatever its input.
pub const MEMORY_BUDGET: u64 = 320 << 20;

/// The report's memory, counted as its merged histograms grow, and the
/// values it clamped to [`CEILING_US`].
#[derive(Debug, Default)]
pub struct Budget {
    /// Bytes of counters held by the merged histograms.
    used: u64,
    /// Values above the ceiling counted as the ceiling, and where the
    /// first one was.
    clamped: u64,
    first_clamped: Option<(PathBuf, usize)>,
}

impl Budget {
    /// Values past the ceiling in `h` (from `path:line`) are counted at
    /// the ceiling; the rest as they are.
    fn clamp(&mut self, h: Histogram<u64>, path: &Path, line: usize) -> Histogram<u64> {
        if h.max() <= CEILING_US {
            return h;
        }
        let mut bounded = growing();
        for v in h.iter_recorded() {
            let value = v.value_iterated_to();
            if value > CEILING_US {
                self.clamped += v.count_at_value();
                self.first_clamped
                    .get_or_insert_with(|| (path.to_path_buf(), line));
            }
            // The histogram grows to the ceiling at most; should a record
            // still fail, counting at the edge beats dropping the value.
            let (value, n) = (value.min(CEILING_US), v.count_at_value());
            if bounded.record_n(value, n).is_err() {
                bounded.saturating_record_n(value, n);
            }
        }
        bounded
    }

    /// The note for what was clamped, if anything was.
    pub fn clamped_note(&self) -> Option<String> {
        let (path, line) = self.first_clamped.as_ref()?;
        Some(format!(
            "{} values above {CEILING_US} µs (an hour) were counted as an hour, the first at {}:{line}",
            self.clamped,
            path.display()
        ))
    }
}

/// Adds `what` into `into`, or says which line could not be merged: a
/// value or count beyond what a histogram holds, or a report past its
/// [`MEMORY_BUDGET`].
fn add(
    into: &mut Histogram<u64>,
    what: &Histogram<u64>,
    path: &Path,
    line: usize,
    budget: &mut Budget,
) -> Result<(), ReportError> {
    let refuse = |why: String| ReportError::Malformed {
        path: path.to_path_buf(),
        line,
        why,
    };
    // A histogram merged into for the first time counts whole.
    let before = if into.is_empty() {
        0
    } else {
        into.distinct_values() as u64
    };
    // The merged histograms grow as needed (to the ceiling at most).
    into.add(what).map_err(|_| {
        refuse(format!(
            "cannot merge this histogram (values to {} µs, {} counts): beyond what a histogram holds",
            what.max(),
            what.len()
        ))
    })?;
    let after = into.distinct_values() as u64;
    budget.used += after.saturating_sub(before) * 8;
    if budget.used > MEMORY_BUDGET {
        return Err(refuse(format!(
            "the report's histograms would take more than {} MiB (values to {} µs): \
             report fewer logs, tags or runs at once",
            MEMORY_BUDGET >> 20,
            what.max()
        )));
    }
    Ok(())
}

/// Reads and merges the logs: the second pass, after [`Scan`], within
/// `budget` (shared by every run of a `--compare`).
pub fn merge(paths: &[PathBuf], scan: &Scan, budget: &mut Budget) -> Result<Merged, ReportError> {
    let step = scan.step();
    let n_steps = (((scan.end - scan.t0) / step).floor() as usize + 1).min(MAX_STEPS + 1);
    let index_of = |start: f64, length: f64| {
        // The step the interval mostly covers (its middle).
        let i = ((start - scan.t0 + length / 2.0) / step).floor().max(0.0) as usize;
        i.min(n_steps - 1)
    };
    let tag_index: BTreeMap<&str, usize> = scan
        .tags
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut merged = Merged {
        files: paths.to_vec(),
        comments: Vec::new(),
        t0: scan.t0,
        step,
        total: growing(),
        tags: BTreeMap::new(),
        steps: (0..n_steps).map(|_| None).collect(),
        connect: None,
        service: None,
        handshake: None,
        offered: false,
        windows: Vec::new(),
    };
    for (k, path) in paths.iter().enumerate() {
        read_lines(path, scan.whole.get(k).copied(), |number, line| {
            let (tag, start, length, encoded) = match line {
                Line::Comment(text) => {
                    if let Some(c) = interval_comment(&text) {
                        let step = index_of(c.start, c.length);
                        if let Some(Some(s)) = merged.steps.get_mut(step) {
                            s.errors += c.errors;
                            if let Some(rate) = c.offered {
                                s.due += rate * c.length;
                                merged.offered = true;
                            }
                        }
                    } else if let Some(note) = windows::WindowNote::parse(&text) {
                        if merged.windows.len() < windows::MAX_WINDOWS {
                            merged.windows.push(note);
                        }
                    } else if merged.comments.len() < MAX_COMMENTS {
                        merged.comments.push(text);
                    }
                    return Ok(());
                }
                Line::Interval {
                    tag,
                    start,
                    length,
                    encoded,
                } => (tag, start, length, encoded),
            };
            let h = decode::histogram(&encoded).map_err(|why| ReportError::Malformed {
                path: path.clone(),
                line: number,
                why,
            })?;
            let h = budget.clamp(h, path, number);
            if tag.ends_with(CONNECT_SUFFIX) {
                let connect = merged.connect.get_or_insert_with(growing);
                return add(connect, &h, path, number, budget);
            }
            if tag.ends_with(SERVICE_SUFFIX) {
                let service = merged.service.get_or_insert_with(growing);
                return add(service, &h, path, number, budget);
            }
            if tag.ends_with(HANDSHAKE_SUFFIX) {
                let handshake = merged.handshake.get_or_insert_with(growing);
                return add(handshake, &h, path, number, budget);
            }
            add(&mut merged.total, &h, path, number, budget)?;
            let offset = start - scan.t0;
            let run = merged.tags.entry(tag.clone()).or_insert_with(|| TagRun {
                latency: growing(),
                first: f64::INFINITY,
                last: 0.0,
            });
            add(&mut run.latency, &h, path, number, budget)?;
            run.first = run.first.min(offset);
            run.last = run.last.max(offset + length);
            let step = merged.steps[index_of(start, length)].get_or_insert_with(|| Step {
                latency: growing(),
                per_tag: vec![0; tag_index.len()],
                errors: 0,
                due: 0.0,
            });
            add(&mut step.latency, &h, path, number, budget)?;
            if let Some(i) = tag_index.get(tag.as_str()) {
                step.per_tag[*i] += h.len();
            }
            Ok(())
        })?;
    }
    Ok(merged)
}

/// The value at quantile `q` of `h`, 0 when it is empty.
pub fn quantile(h: &Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q)
    }
}

/// `x` rounded to `digits` decimals, for JSON that reads like the text.
fn round(x: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    (x * k).round() / k
}

/// Percentiles of a histogram, as JSON has them.
#[derive(Debug, Serialize)]
pub(crate) struct Percentiles {
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

impl Percentiles {
    pub(crate) fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles {
            p50: quantile(h, 0.5),
            p90: quantile(h, 0.9),
            p99: quantile(h, 0.99),
            p999: quantile(h, 0.999),
            max: h.max(),
        }
    }
}

/// `report --json`: one object.
#[derive(Debug, Serialize)]
struct Json<'a> {
    messages: u64,
    msgs_per_s: f64,
    span_s: f64,
    step_s: f64,
    latency_us: Percentiles,
    tags: BTreeMap<&'a str, u64>,
    spans: BTreeMap<&'a str, [f64; 2]>,
    apart: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    connect_latency_us: Option<Percentiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_us: Option<Percentiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    handshake_latency_us: Option<Percentiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_skew_ms: Option<f64>,
}

impl Merged {
    /// Errors the logs' interval comments give, over the whole run.
    pub fn errors(&self) -> u64 {
        self.steps.iter().flatten().map(|s| s.errors).sum()
    }

    /// Seconds from the first interval's start to the last one's end.
    pub fn span(&self) -> f64 {
        self.tags.values().map(|t| t.last).fold(0.0, f64::max)
    }

    /// How far apart the tags' first intervals start, seconds (several
    /// generators: how well they started together). `None` for one tag.
    pub fn start_skew(&self) -> Option<f64> {
        if self.tags.len() < 2 {
            return None;
        }
        let firsts = self.tags.values().map(|t| t.first);
        let (lo, hi) = firsts.fold((f64::INFINITY, 0.0f64), |(lo, hi), f| {
            (lo.min(f), hi.max(f))
        });
        Some(hi - lo)
    }

    /// Whether the tags' logs do not all overlap in time: some tag ended
    /// before another began.
    pub fn apart(&self) -> bool {
        let latest_first = self.tags.values().map(|t| t.first).fold(0.0, f64::max);
        let earliest_last = self
            .tags
            .values()
            .map(|t| t.last)
            .fold(f64::INFINITY, f64::min);
        latest_first >= earliest_last
    }

    /// The steps that hold data, with the time their end falls at.
    pub fn steps(&self) -> impl Iterator<Item = (f64, &Step)> {
        self.steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some(((i + 1) as f64 * self.step, s.as_ref()?)))
    }

    /// The human summary: the whole run, per tag, per step.
    pub fn to_human(&self) -> String {
        let mut out = String::new();
        let span = self.span().max(1e-9);
        let tags: Vec<&str> = self.tags.keys().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "{} log{}, tags {}; {:.1} s, intervals of {:.1} s",
            self.files.len(),
            if self.files.len() == 1 { "" } else { "s" },
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
        for (tag, run) in &self.tags {
            let h = &run.latency;
            let _ = writeln!(
                out,
                "  tag {tag:<12} {} messages ({:.1} msgs/s) from {:.1} s to {:.1} s  p50 {}  p99 {}  max {}",
                h.len(),
                h.len() as f64 / (run.last - run.first).max(1e-9),
                run.first,
                run.last,
                quantile(h, 0.5),
                quantile(h, 0.99),
                h.max()
            );
        }
        // The side histograms: connect latency, TLS handshakes, and
        // open-loop service time.
        let sides = [
            ("connect", "connections", "", &self.connect),
            ("handshake", "handshakes", "", &self.handshake),
            (
                "service",
                "messages",
                "  (from each actual send)",
                &self.service,
            ),
        ];
        for (name, counted, note, h) in sides {
            if let Some(h) = h {
                let _ = writeln!(
                    out,
                    "  {name:<11} {} {counted}  µs p50 {}  p99 {}  max {}{note}",
                    h.len(),
                    quantile(h, 0.5),
                    quantile(h, 0.99),
                    h.max()
                );
            }
        }
        if let Some(skew) = self.start_skew().filter(|_| !self.apart()) {
            let _ = writeln!(
                out,
                "  start skew  {:.1} ms between the first and the last tag's start",
                skew * 1e3
            );
        }
        if self.apart() {
            let _ = writeln!(
                out,
                "  note: the tags' logs do not all overlap in time (see each tag's span above); \
                 to compare separate runs, use --compare"
            );
        }
        for (end, step) in self.steps() {
            let h = &step.latency;
            let offered = match self.offered {
                true => format!("offered {:.0}/s  ", step.offered(self.step)),
                false => String::new(),
            };
            let _ = writeln!(
                out,
                "  [{end:>6.1}s] {offered}msgs/s {:.0}  p50 {}µs  p99 {}µs  max {}µs",
                h.len() as f64 / self.step,
                quantile(h, 0.5),
                quantile(h, 0.99),
                h.max()
            );
        }
        out.trim_end().to_string()
    }

    /// One JSON object: `messages`, `msgs_per_s`, `span_s`, `step_s`,
    /// `latency_us` {p50, p90, p99, p999, max}, `tags` {TAG: messages},
    /// `spans` {TAG: [from_s, to_s]}, `apart` (the tags' logs do not all
    /// overlap), and `connect_latency_us` when there are connect logs.
    pub fn to_json(&self) -> String {
        let t = &self.total;
        let json = Json {
            messages: t.len(),
            msgs_per_s: round(t.len() as f64 / self.span().max(1e-9), 1),
            span_s: round(self.span(), 3),
            step_s: round(self.step, 3),
            latency_us: Percentiles::of(t),
            tags: self
                .tags
                .iter()
                .map(|(k, v)| (k.as_str(), v.latency.len()))
                .collect(),
            spans: self
                .tags
                .iter()
                .map(|(k, v)| (k.as_str(), [round(v.first, 3), round(v.last, 3)]))
                .collect(),
            apart: self.apart(),
            connect_latency_us: self.connect.as_ref().map(Percentiles::of),
            service_us: self.service.as_ref().map(Percentiles::of),
            handshake_latency_us: self.handshake.as_ref().map(Percentiles::of),
            start_skew_ms: self.start_skew().map(|s| round(s * 1e3, 1)),
        };
        // Plain numbers, strings and maps: serializing cannot fail.
        serde_json::to_string(&json).unwrap_or_default()
    }
}

/// Reads and merges the logs: what `echoloop report` prints.
pub fn summarize(paths: &[PathBuf]) -> Result<Merged, ReportError> {
    let mut budget = Budget::default();
    let merged = summarize_within(paths, &mut budget)?;
    if let Some(note) = budget.clamped_note() {
        log::warn!("{note}");
    }
    Ok(merged)
}

/// [`summarize`] within a budget shared with other runs (`--compare`).
pub fn summarize_within(paths: &[PathBuf], budget: &mut Budget) -> Result<Merged, ReportError> {
    let scan = Scan::of(paths)?;
    merge(paths, &scan, budget)
}

/// The comment `echoloop load --hdr-log` writes after each interval:
/// `echoloop-interval tag=T start=EPOCH_S length=S errors=N`.
pub const INTERVAL_COMMENT: &str = "echoloop-interval";

/// What an interval comment says.
#[derive(Debug, PartialEq)]
struct IntervalComment {
    start: f64,
    length: f64,
    errors: u64,
    /// `offered=` (msgs/s), in the logs of a varying run.
    offered: Option<f64>,
}

/// An interval comment's start, length, errors and offered rate.
fn interval_comment(comment: &str) -> Option<IntervalComment> {
    let fields = comment.strip_prefix(INTERVAL_COMMENT)?;
    let value = |key: &str| {
        fields
            .split_whitespace()
            .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    Some(IntervalComment {
        start: value("start")?,
        length: value("length")?.min(1e9),
        errors: value("errors")?.min(u64::MAX as f64) as u64,
        offered: value("offered").map(|o| o.min(1e12)),
    })
}
