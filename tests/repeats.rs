//! `load --repeat N`: N windows a pause apart, a line per window, then
//! each figure's median, min and max; the JSON says the same; the
//! `--hdr-log` tags each window and ends each with its generator's
//! state; `report --compare` shows the spread of a repeated run and
//! marks a run whose generator fell behind or was saturated, on the text,
//! the JSON and the page; `--fail-if` holds in every window; a signal
//! keeps the windows run so far.

mod common;

use std::io::Read as _;
use std::process::Stdio;

use common::{DEADLINE, ServerProcess, assert_usage_error, bin, json_at, run_bounded, scratch};

/// `echoloop load ARGS`: exit code, stdout, stderr.
fn load(args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = bin();
    cmd.arg("load").args(args);
    let out = run_bounded(cmd, DEADLINE);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The median of three.
fn median3(mut v: Vec<f64>) -> f64 {
    assert_eq!(v.len(), 3);
    v.sort_by(f64::total_cmp);
    v[1]
}

/// Three windows in text: a line each, then the spread, whose median,
/// min and max are those of the window lines; in JSON, a summary per
/// window (numbered) and the spread last, alike.
#[test]
fn three_windows_give_each_figure_its_median_min_and_max() {
    let server = ServerProcess::start(&[]);
    let target = server.addr.to_string();
    let base = [
        target.as_str(),
        "-c",
        "4",
        "--rate",
        "2000",
        "-d",
        "400ms",
        "--repeat",
        "3",
        "--repeat-pause",
        "100ms",
    ];

    let (code, text, err) = load(&base);
    assert_eq!(code, Some(0), "{text}{err}");
    let lines: Vec<&str> = text.lines().collect();
    let mut p99s = Vec::new();
    for k in 1..=3 {
        let line = lines[k - 1];
        assert!(line.starts_with(&format!("window {k} of 3  ")), "{text}");
        let p99: f64 = line
            .split("  p99 ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        p99s.push(p99);
    }
    assert_eq!(lines[3], "over 3 windows: median [min – max]", "{text}");
    let row = lines
        .iter()
        .find(|l| l.starts_with("  p99 µs"))
        .unwrap_or_else(|| panic!("{text}"));
    let (lo, hi) = (
        p99s.iter().copied().fold(f64::MAX, f64::min),
        p99s.iter().copied().fold(0.0, f64::max),
    );
    let expected = format!("{:.0} [{lo:.0} – {hi:.0}]", median3(p99s.clone()));
    assert!(row.ends_with(&expected), "{row} vs {expected}");

    let mut json_args = base.to_vec();
    json_args.push("--json");
    let (code, out, err) = load(&json_args);
    assert_eq!(code, Some(0), "{out}{err}");
    let objects: Vec<&str> = out.lines().collect();
    assert_eq!(objects.len(), 4, "{out}");
    let mut rates = Vec::new();
    for (k, object) in objects[..3].iter().enumerate() {
        assert_eq!(json_at(object, "type"), "summary");
        assert_eq!(json_at(object, "window"), k + 1);
        rates.push(json_at(object, "msgs_per_s").as_f64().unwrap());
    }
    let spread = objects[3];
    assert_eq!(json_at(spread, "type"), "repeats");
    assert_eq!(json_at(spread, "windows"), 3);
    let median = json_at(spread, "spread.msgs_per_s.median")
        .as_f64()
        .unwrap();
    assert_eq!(median, median3(rates.clone()), "{spread}");
    let min = json_at(spread, "spread.msgs_per_s.min").as_f64().unwrap();
    assert_eq!(min, rates.iter().copied().fold(f64::MAX, f64::min));
}

/// The log tags each window and ends each with a comment; `report
/// --compare` shows the repeated run's spread and marks a run whose
/// generator could not keep up (1,000,000 msgs/s asked of one
/// connection, a wake-up per message: it falls behind its schedule, or
/// runs over 90% busy trying), on the text, the JSON and the page.
#[test]
fn compare_shows_the_spread_and_marks_a_late_generator() {
    let dir = scratch("repeats", "compare");
    let server = ServerProcess::start(&[]);
    let target = server.addr.to_string();
    let steady = dir.join("steady.hlog");
    let (code, out, err) = load(&[
        &target,
        "-c",
        "4",
        "--rate",
        "2000",
        "-d",
        "400ms",
        "--repeat",
        "3",
        "--repeat-pause",
        "0",
        "--tag",
        "steady",
        "--hdr-log",
        steady.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let log = std::fs::read_to_string(&steady).unwrap();
    for k in 1..=3 {
        assert!(log.contains(&format!("Tag=steady@{k},")), "{log}");
        assert!(
            log.contains(&format!("#echoloop-window tag=steady@{k} busy=")),
            "{log}"
        );
    }
    let late = dir.join("late.hlog");
    let (code, out, err) = load(&[
        &target,
        "-c",
        "1",
        "--rate",
        "1000000",
        "--coalesce",
        "0",
        "-d",
        "400ms",
        "--tag",
        "late",
        "--hdr-log",
        late.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        std::fs::read_to_string(&late)
            .unwrap()
            .contains("#echoloop-window tag=late busy=")
            && err.contains("the generator "),
        "{err}"
    );

    let runs = [
        format!("steady={}", steady.display()),
        format!("late={}", late.display()),
    ];
    let page = dir.join("compare.html");
    let mut cmd = bin();
    cmd.args(["report", "--compare", &runs[0], &runs[1], "--html"])
        .arg(&page);
    let out = run_bounded(cmd, DEADLINE);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(" late !"),
        "the late run's name is marked: {text}"
    );
    assert!(text.contains("\n! late: the generator "), "{text}");
    let windows_row = text
        .lines()
        .find(|l| l.starts_with("  windows"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        windows_row.contains(" 3 ") && windows_row.ends_with(" 1"),
        "{text}"
    );
    let p99_row = text.lines().find(|l| l.starts_with("  p99 µs")).unwrap();
    assert!(p99_row.contains('[') && p99_row.contains('–'), "{p99_row}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("! late: the generator "),
        "the page says it too"
    );

    let mut cmd = bin();
    cmd.args(["report", "--compare", &runs[0], &runs[1], "--json"]);
    let json = String::from_utf8(run_bounded(cmd, DEADLINE).stdout).unwrap();
    assert_eq!(json_at(&json, "runs.0.windows"), 3);
    assert_eq!(json_at(&json, "runs.1.windows"), 1);
    let (lo, mid, hi) = (
        json_at(&json, "runs.0.spread.p99_us.min").as_f64().unwrap(),
        json_at(&json, "runs.0.spread.p99_us.median")
            .as_f64()
            .unwrap(),
        json_at(&json, "runs.0.spread.p99_us.max").as_f64().unwrap(),
    );
    assert!(lo <= mid && mid <= hi, "{json}");
    assert_eq!(json_at(&json, "runs.0.marks").as_array().unwrap().len(), 0);
    let marks = json_at(&json, "runs.1.marks");
    assert!(
        marks[0].as_str().unwrap().starts_with("the generator "),
        "{json}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A threshold must hold in every window: one broken in each is said for
/// each, and the run exits 3.
#[test]
fn a_threshold_is_judged_in_every_window() {
    let server = ServerProcess::start(&[]);
    let (code, out, err) = load(&[
        &server.addr.to_string(),
        "-c",
        "2",
        "-d",
        "200ms",
        "--repeat",
        "2",
        "--repeat-pause",
        "0",
        "--fail-if",
        "p50>1us",
    ]);
    assert_eq!(code, Some(3), "{out}{err}");
    for k in [1, 2] {
        assert!(
            err.contains(&format!(": the run fails on it (window {k})")),
            "{err}"
        );
    }
}

/// SIGINT in the second of five windows: that window ends, no other
/// begins, and the spread is of the windows run.
#[test]
fn a_signal_keeps_the_windows_run_so_far() {
    let server = ServerProcess::start(&[]);
    let dir = scratch("repeats", "signal");
    let log = dir.join("run.hlog");
    let mut child = bin()
        .args([
            "load",
            &server.addr.to_string(),
            "-c",
            "2",
            "--rate",
            "1000",
        ])
        .args(["-d", "30s", "--repeat", "5", "--repeat-pause", "0"])
        .args(["--interval", "100ms", "--hdr-log"])
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    // The first window is 30 s long: the signal lands in it, once it
    // has logged an interval.
    common::eventually("the first window logs an interval", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("Tag=") && t.ends_with('\n'))
    });
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let mut all = String::new();
    let _ = out.read_to_string(&mut all);
    // The interval lines come first; the windows' lines after them.
    let text: String = all
        .lines()
        .filter(|l| !l.starts_with("  ") || l.contains('['))
        .filter(|l| l.starts_with("window") || l.starts_with("over") || l.starts_with("  "))
        .map(|l| format!("{l}\n"))
        .collect();
    let status = child.wait().unwrap();
    let stderr = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{text}{stderr}");
    assert!(text.starts_with("window 1 of 5  "), "{text}");
    assert!(!text.contains("window 2 of 5"), "{text}");
    assert!(text.contains("over 1 window: median [min – max]"), "{text}");
    assert!(stderr.contains("SIGINT: 1 of 5 windows run"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Bad values: exit 2 with the reason.
#[test]
fn bad_repeat_options_are_usage_errors() {
    for (args, says) in [
        (&["--repeat", "1"][..], "1 is not in 2..=1000"),
        (&["--repeat", "1001"], "1001 is not in 2..=1000"),
        (&["--repeat", "x"], "invalid digit"),
        (&["--repeat", "0"], "0 is not in 2..=1000"),
        (&["--repeat", "-3"], "unexpected argument '-3'"),
        (&["--repeat", "99999999999"], "--repeat"),
        (
            &["--repeat", "2", "--repeat-pause", "soon"],
            "is not a duration",
        ),
        (&["--repeat-pause", "1s"], "--repeat <N>"),
        (
            &["--repeat", "2", "--repeat-pause", "61m"],
            "is more than 60m",
        ),
        (
            &["--repeat", "2", "--repeat-pause", "-1s"],
            "--repeat-pause",
        ),
        (
            &["--tag", "a@b"],
            "is not a tag (printable, no spaces, commas, `=` or `@`)",
        ),
    ] {
        let mut all = vec!["load", "127.0.0.1:9"];
        all.extend_from_slice(args);
        assert_usage_error(&all, says);
    }
}
