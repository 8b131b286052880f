//! `echoloop load --hdr-log FILE`: the interval log's writer, on a thread
//! of its own ([`Offload`]) so that the file can never stall the
//! generator's loop: a slow disk or a FIFO whose reader stopped reading
//! costs intervals (counted; the run, which ends on time, then says so and
//! fails with exit 1 after its summary), never the loop's time.
//!
//! Opening is non-blocking too: `open` on a FIFO with no reader would wait
//! forever, so the file is opened with `O_NONBLOCK` (a FIFO without a
//! reader then fails at once, `ENXIO`), then made blocking for the thread.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use super::windows::{WINDOW_MARK, WindowNote};
use super::{CONNECT_SUFFIX, HANDSHAKE_SUFFIX, INTERVAL_COMMENT, SERVICE_SUFFIX};
use crate::shared::offload::{Offload, Unfinished};

/// How long the end of a run waits for the writer to finish.
pub const FINISH_WAIT: Duration = Duration::from_secs(2);

/// One interval, as the log gets it.
#[derive(Debug)]
pub struct Record {
    /// Message latency, µs.
    pub latency: Histogram<u64>,
    /// Connect latency, µs, when the run churns connections.
    pub connect: Option<Histogram<u64>>,
    /// Service time, µs, in open loop (logged under `TAG-service`).
    pub service: Option<Histogram<u64>>,
    /// TLS handshake latency, µs, over `tls://` (`TAG-handshake`).
    pub handshake: Option<Histogram<u64>>,
    /// When the interval started, from the run's start.
    pub at: Duration,
    /// How long it lasted.
    pub length: Duration,
    /// Errors in it.
    pub errors: u64,
    /// The rate offered in it, msgs/s, when the run's rate varies (a
    /// ramp, steps): `report` draws latency against it (the knee).
    pub offered: Option<f64>,
    /// `--repeat`'s window it belongs to (1, 2, …): logged as `TAG@N`.
    pub window: Option<u32>,
}

/// What the writer thread is handed: an interval, or the end of a window.
/// (Unboxed: the queue holds a few of them, and moves them once.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Entry {
    Interval(Record),
    WindowEnd(WindowNote),
}

/// Why the log is incomplete.
#[derive(Debug)]
pub enum LogError {
    /// The file could not be opened.
    Open(io::Error),
    /// A write failed (a full disk, a closed FIFO).
    Write(io::Error),
    /// The writer fell behind: `lost` intervals of `total` were never
    /// queued; `stuck` when it was still blocked at the end, so that what
    /// it held may not be written either.
    Behind {
        /// Intervals not written.
        lost: u64,
        /// Intervals of the run.
        total: u64,
        /// Whether the writer was still blocked when the run ended.
        stuck: bool,
    },
}

impl LogError {
    /// The process exit code: 1, after the run's summary.
    pub fn exit_code(&self) -> u8 {
        1
    }
}

impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::shared::net::describe;
        match self {
            LogError::Open(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                write!(f, "it is a FIFO with no reader")
            }
            LogError::Open(e) | LogError::Write(e) => write!(f, "{}", describe(e)),
            LogError::Behind { lost, total, stuck } => {
                write!(
                    f,
                    "the log fell behind: {lost} of {total} intervals not written"
                )?;
                if *stuck {
                    write!(f, ", and a write was still blocked at the end")?;
                }
                write!(f, " (a slow disk, or a reader that stopped reading)")
            }
        }
    }
}

/// The writer: the file's name, and the thread that writes it.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    tag: String,
    thread: Offload<Entry>,
}

impl LogWriter {
    /// Opens `path` without blocking and starts the writer thread, which
    /// writes the header (`comment`, the start time) at once. `tag` is the
    /// generator's tag; connect histograms get `tag-connect`.
    pub fn create(
        path: &Path,
        comment: String,
        start: SystemTime,
        tag: String,
    ) -> Result<LogWriter, LogError> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(LogError::Open)?;
        set_blocking(&file).map_err(LogError::Open)?;
        let base = tag.clone();
        let thread = Offload::spawn("hdr-log", move |entries| {
            write_all(file, &comment, start, &base, entries)
        })
        .map_err(LogError::Open)?;
        Ok(LogWriter {
            path: path.to_path_buf(),
            tag,
            thread,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands one interval to the thread, never waiting: when its queue is
    /// full the interval is counted as lost instead.
    pub fn push(&mut self, record: Record) {
        self.thread.push(Entry::Interval(record));
    }

    /// Ends a window (`window`: `--repeat`'s number, if repeating) with
    /// the comment that says whether its generator was `behind` its
    /// schedule and how `busy` it was; as [`push`](Self::push), never
    /// waiting.
    pub fn end_window(&mut self, window: Option<u32>, busy: Option<f64>, behind: bool) {
        self.thread.push(Entry::WindowEnd(WindowNote {
            tag: window_tag(&self.tag, window),
            busy,
            behind,
        }));
    }

    /// Closes the queue and waits until `deadline` for the thread to write
    /// what it holds.
    pub fn finish(self, deadline: Instant) -> Result<(), LogError> {
        self.thread
            .finish(deadline)
            .map_err(|unfinished| match unfinished {
                Unfinished::Failed(e) => LogError::Write(e),
                Unfinished::Behind { lost, total, stuck } => {
                    LogError::Behind { lost, total, stuck }
                }
            })
    }
}

/// The writer thread: the header, then each record as it comes.
fn write_all(
    file: File,
    comment: &str,
    start: SystemTime,
    base: &str,
    entries: Receiver<Entry>,
) -> io::Result<()> {
    let to_io = |e: hdrhistogram::serialization::interval_log::IntervalLogWriterError<
        hdrhistogram::serialization::V2DeflateSerializeError,
    >| match e {
        hdrhistogram::serialization::interval_log::IntervalLogWriterError::IoError(e) => e,
        other => io::Error::other(format!("{other:?}")),
    };
    // Each interval reaches the file whole, in one write: a run stopped
    // at any moment (a second Ctrl-C, a kill) leaves a log of whole
    // lines, which `report` reads, even while it is being written.
    let mut file = file;
    let pending = Rc::new(RefCell::new(Vec::new()));
    let mut out = Pending(Rc::clone(&pending));
    let mut flush = move || -> io::Result<()> {
        let mut bytes = pending.borrow_mut();
        file.write_all(&bytes)?;
        bytes.clear();
        Ok(())
    };
    let mut serializer = V2DeflateSerializer::new();
    let wall = |at: Duration| {
        start
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            + at
    };
    {
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment(comment)
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1.0)
            .begin_log_with(&mut out, &mut serializer)
            .map_err(io::Error::other)?;
        flush()?;
        for entry in entries {
            let r = match entry {
                Entry::Interval(r) => r,
                Entry::WindowEnd(note) => {
                    log.write_comment(&note.comment())?;
                    flush()?;
                    continue;
                }
            };
            let tag = window_tag(base, r.window);
            let tag = tag.as_str();
            log.write_histogram(&r.latency, r.at, r.length, Tag::new(tag))
                .map_err(to_io)?;
            let offered = r
                .offered
                .map(|o| format!(" offered={o:.1}"))
                .unwrap_or_default();
            let line = format!(
                "{INTERVAL_COMMENT} tag={tag} start={:.3} length={:.3} errors={}{offered}",
                wall(r.at).as_secs_f64(),
                r.length.as_secs_f64(),
                r.errors
            );
            log.write_comment(&line)?;
            if let Some(connect) = &r.connect {
                let connect_tag = format!("{tag}{CONNECT_SUFFIX}");
                log.write_histogram(connect, r.at, r.length, Tag::new(&connect_tag))
                    .map_err(to_io)?;
            }
            if let Some(handshake) = &r.handshake {
                let handshake_tag = format!("{tag}{HANDSHAKE_SUFFIX}");
                log.write_histogram(handshake, r.at, r.length, Tag::new(&handshake_tag))
                    .map_err(to_io)?;
            }
            if let Some(service) = &r.service {
                let service_tag = format!("{tag}{SERVICE_SUFFIX}");
                log.write_histogram(service, r.at, r.length, Tag::new(&service_tag))
                    .map_err(to_io)?;
            }
            flush()?;
        }
    }
    flush()
}

/// The tag of `window` of a run tagged `base`: `base@N`, or `base`.
fn window_tag(base: &str, window: Option<u32>) -> String {
    match window {
        Some(n) => format!("{base}{WINDOW_MARK}{n}"),
        None => base.to_string(),
    }
}

/// Where the log's lines gather until a whole interval is there: the
/// writer thread then hands them to the file in one write.
struct Pending(Rc<RefCell<Vec<u8>>>);

impl io::Write for Pending {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Clears `O_NONBLOCK`, so the writer thread's writes wait as usual.
fn set_blocking(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with flags it returned.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
