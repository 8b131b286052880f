//! A run stopped from outside is kept: SIGINT or SIGTERM ends `load`'s
//! window early, the summary of what was measured is printed, the
//! `--hdr-log` holds whole lines only, and `report` reads it — also a log
//! cut mid-line and a log that `load` is still writing.

mod common;

use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::Bounded as _;
use common::{ServerProcess, bin};

/// The histogram lines of the interval log at `path` so far.
fn histograms(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().filter(|l| l.starts_with("Tag=")).count())
        .unwrap_or(0)
}

/// Starts `echoloop load ADDR ARGS` with both pipes drained on threads.
fn start_load(addr: &str, args: &[&str]) -> (Child, thread::JoinHandle<(String, String)>) {
    let mut child = bin()
        .arg("load")
        .arg(addr)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let pipes = thread::spawn(move || {
        let e = thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let mut o = String::new();
        let _ = out.read_to_string(&mut o);
        (o, e.join().unwrap())
    });
    (child, pipes)
}

/// Waits (bounded) for `child` to exit; kills it and fails past the
/// deadline.
#[track_caller]
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let end = Instant::now() + common::DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("load did not end after the signal");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// SIGINT and SIGTERM end a 60 s run early with exit 0, its summary (of
/// the seconds measured) on stdout and a note on stderr, and a log that
/// ends with a whole line, which `report` reads. (Before, the process died
/// at once: no summary, and a log cut mid-line that `report` refused.)
#[test]
fn a_signal_ends_the_window_and_keeps_the_run() {
    let server = ServerProcess::start(&[]);
    let dir = common::scratch("stop", "signal");
    for (signal, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let log = dir.join(format!("{name}.hlog"));
        let (mut child, pipes) = start_load(
            &server.addr.to_string(),
            &[
                "-c",
                "4",
                "-d",
                "60s",
                "--rate",
                "2000",
                "--interval",
                "100ms",
                "--hdr-log",
                log.to_str().unwrap(),
            ],
        );
        common::eventually("three logged intervals", || histograms(&log) >= 3);
        // SAFETY: a signal to the child this test started.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let status = wait_exit(&mut child);
        let (stdout, stderr) = pipes.join().unwrap();
        assert_eq!(status.code(), Some(0), "{name}: {stdout}\n{stderr}");
        assert!(
            stderr.contains(&format!("{name}: the window ends now")),
            "{stderr}"
        );
        let summary = stdout
            .lines()
            .find(|l| l.contains(" s measured"))
            .unwrap_or_else(|| panic!("no summary: {stdout}"));
        let measured: f64 = summary
            .rsplit(", ")
            .next()
            .and_then(|s| s.strip_suffix(" s measured"))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{summary}"));
        assert!((0.2..30.0).contains(&measured), "{summary}");
        assert!(stdout.contains("  messages    "), "{stdout}");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.ends_with('\n'), "the log ends with a whole line");
        let report = bin().arg("report").arg(&log).bounded();
        assert_eq!(
            report.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&report.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A log cut mid-line (a run killed while writing it): `report` uses every
/// whole line, says that the last one was cut, and counts exactly the
/// messages of the whole lines.
#[test]
fn report_uses_the_whole_lines_of_a_log_cut_short() {
    let server = ServerProcess::start(&[]);
    let dir = common::scratch("stop", "cut");
    let log = dir.join("whole.hlog");
    let out = common::run_bounded(
        {
            let mut cmd = bin();
            cmd.arg("load").arg(server.addr.to_string()).args([
                "-c",
                "2",
                "-d",
                "600ms",
                "--interval",
                "100ms",
                "--hdr-log",
                log.to_str().unwrap(),
            ]);
            cmd
        },
        common::DEADLINE,
    );
    assert_eq!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    // Cut in the middle of the last histogram line.
    let last = text.rfind("\nTag=").unwrap() + 1;
    let (head, tail) = text.split_at(last);
    let whole = dir.join("head.hlog");
    std::fs::write(&whole, head).unwrap();
    let cut = dir.join("cut.hlog");
    std::fs::write(&cut, format!("{head}{}", &tail[..tail.len() / 2])).unwrap();

    let json = |path: &Path| {
        let out = bin().args(["report", "--json"]).arg(path).bounded();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(0), "{err}");
        (String::from_utf8(out.stdout).unwrap(), err)
    };
    let (expected, quiet) = json(&whole);
    assert_eq!(quiet, "");
    let (got, note) = json(&cut);
    assert_eq!(got, expected, "the whole lines, exactly");
    let lines = head.lines().count();
    assert!(
        note.contains(&format!(
            "cut.hlog: line {} is cut short (a log still being written, or a run that was killed); the {lines} lines before it are used",
            lines + 1
        )),
        "{note}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `report` reads a log that `load` is writing at that moment: every try
/// succeeds (each interval reaches the file whole, in one write).
#[test]
fn report_reads_a_log_being_written() {
    let server = ServerProcess::start(&[]);
    let dir = common::scratch("stop", "live");
    let log = dir.join("live.hlog");
    let (mut child, pipes) = start_load(
        &server.addr.to_string(),
        &[
            "-c",
            "2",
            "-d",
            "3s",
            "--interval",
            "10ms",
            "--hdr-log",
            log.to_str().unwrap(),
        ],
    );
    common::eventually("a logged interval", || histograms(&log) >= 1);
    let mut tries = 0;
    while child.try_wait().unwrap().is_none() && tries < 40 {
        let out = bin().arg("report").arg(&log).bounded();
        assert_eq!(
            out.status.code(),
            Some(0),
            "try {tries}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tries += 1;
    }
    assert!(tries >= 5, "only {tries} tries while the run went on");
    assert_eq!(wait_exit(&mut child).code(), Some(0));
    let _ = pipes.join();
    std::fs::remove_dir_all(&dir).unwrap();
}
