//! `echoloop report` on logs that are long or crafted: memory bounded by
//! what is shown (each run's peak RSS is measured), every histogram merged
//! or refused by name, never silently dropped.
//!
//! Alone in its file: the peak RSS comes from `getrusage(RUSAGE_CHILDREN)`,
//! the largest child this test process has waited for, so the only
//! children here are `report` runs.

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use base64::Engine as _;
use common::{bin, json_at, json_number, run_bounded};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};

/// The most any report run here may take: the goal for a 24-hour log is
/// 2 GB; an unbounded report of it would take about 24 GB.
const PEAK_LIMIT: u64 = 512 << 20;

/// A fresh directory for this test's files.
fn scratch(name: &str) -> std::path::PathBuf {
    common::scratch("bounds", name)
}

/// Runs `echoloop report ARGS` and checks the peak RSS of the children so
/// far (this one included).
#[track_caller]
fn report(args: &[&str]) -> Output {
    let mut cmd = bin();
    cmd.arg("report").args(args);
    let out = run_bounded(cmd, Duration::from_secs(300));
    // SAFETY: rusage is plain integers, for which all zeros is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(ok, 0);
    let peak = usage.ru_maxrss as u64 * 1024;
    assert!(peak < PEAK_LIMIT, "peak RSS {} MB", peak >> 20);
    out
}

/// `report ARGS --json`, which must succeed: its JSON.
#[track_caller]
fn clean_json(args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--json");
    let out = report(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// A histogram's line body: V2, compressed, base64.
fn encoded(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new().serialize(h, &mut bytes).unwrap();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A log: the header, then `lines` of `(tag, start_s, length_s, base64)`.
fn write_log(path: &Path, lines: impl Iterator<Item = (String, f64, f64, String)>) {
    let mut text = String::from(
        "#[StartTime: 1700000000.000 (seconds since epoch)]\n\
         #[BaseTime: 1700000000.000 (seconds since epoch)]\n\
         \"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
    );
    for (tag, start, length, b64) in lines {
        let _ = writeln!(text, "Tag={tag},{start:.3},{length:.3},0.0,{b64}");
    }
    std::fs::write(path, text).unwrap();
}

/// A 24-hour soak of 1 s intervals (86,400 histograms of 1,000 messages
/// each, spread from 20 µs to 50 ms) is reported whole, in at most 1,001
/// steps, within the peak RSS limit: every message counted, the maximum
/// exact to 3 digits.
#[test]
fn a_day_of_one_second_intervals_stays_bounded() {
    let dir = scratch("day");
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for i in 0..1000u64 {
        h.record(20 + i * i * 50).unwrap();
    }
    let b64 = encoded(&h);
    let log = dir.join("day.hlog");
    write_log(
        &log,
        (0..86_400).map(|i| ("soak".to_string(), f64::from(i), 1.0, b64.clone())),
    );
    let json = clean_json(&[log.to_str().unwrap()]);
    assert_eq!(json_number(&json, "messages"), 86_400_000.0);
    assert_eq!(json_number(&json, "latency_us.max"), h.max() as f64);
    // 86,400 s in at most 1,000 steps: whole multiples of the interval.
    assert_eq!(json_number(&json, "step_s"), 87.0, "{json}");
    let out = report(&[log.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let steps = text.lines().filter(|l| l.starts_with("  [")).count();
    assert_eq!(steps, 994, "ceil(86400 / 87) steps");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The three crafted logs of the attack: each is refused or reported in
/// bounded memory and with one clear line.
#[test]
fn crafted_logs_are_refused_by_line() {
    let dir = scratch("crafted");
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);

    // (a) An 80-byte line whose header claims a 2 GiB compressed payload.
    let mut claim = 0x1c84_9314u32.to_be_bytes().to_vec();
    claim.extend_from_slice(&0x8000_0000u32.to_be_bytes());
    claim.extend_from_slice(&[0x78, 0x9c, 0, 0, 0, 0]);
    let two_gib = dir.join("two-gib.hlog");
    write_log(
        &two_gib,
        std::iter::once(("a".into(), 0.0, 1.0, b64(&claim))),
    );

    // (b) 40 lines of lowest 1, highest 2^62, 5 significant digits.
    let wide = Histogram::<u64>::new_with_bounds(1, 1 << 62, 5).unwrap();
    let wide_b64 = encoded(&wide);
    let wide_log = dir.join("wide.hlog");
    write_log(
        &wide_log,
        (0..40).map(|i| ("a".into(), f64::from(i), 1.0, wide_b64.clone())),
    );

    for (log, want) in [
        (
            &two_gib,
            "declares 2147483648 compressed bytes; the line holds 6",
        ),
        (
            &wide_log,
            "declares lowest 1, highest 4611686018427387904, 5 significant digits: \
             6160384 counters, more than the 2097152 this report merges",
        ),
    ] {
        let out = report(&[log.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let line = format!(
            "echoloop: error: {}:4: the histogram {want}\n",
            log.display()
        );
        assert_eq!(stderr, line);
    }

    // (c) 4,000 tags, a second apart, each one interval long: one note,
    // not one per pair (8 million lines before).
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    h.record(100).unwrap();
    let one = encoded(&h);
    let tags = dir.join("tags.hlog");
    write_log(
        &tags,
        (0..4000).map(|i| (format!("t{i}"), f64::from(i) * 2.0, 1.0, one.clone())),
    );
    let out = report(&[tags.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("note:").count(), 1);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("  tag ")).count(),
        4000
    );
    assert!(text.len() < 2 << 20, "{} bytes of output", text.len());
    let out = report(&[tags.to_str().unwrap(), "--json"]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(json_at(&json, "apart"), true);
    assert_eq!(
        json_at(&json, "spans.t3999"),
        serde_json::json!([7998.0, 7999.0])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A log from another HdrHistogram writer, with a range of an hour: a
/// value of 100 s beside 2,000 small ones is merged, not dropped with its
/// interval (2,001 messages, max 100 s to 3 digits).
#[test]
fn a_value_beyond_a_minute_is_merged() {
    let dir = scratch("hundred");
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    h.record_n(50, 2000).unwrap();
    h.record(100_000_000).unwrap();
    let log = dir.join("long.hlog");
    write_log(&log, std::iter::once(("x".into(), 0.0, 1.0, encoded(&h))));
    let json = clean_json(&[log.to_str().unwrap()]);
    assert_eq!(json_number(&json, "messages"), 2001.0);
    let max = json_number(&json, "latency_us.max");
    assert!((max - 1e8).abs() <= 1e8 * 1e-3, "max {max} µs");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Tags with a quote and a backslash come out as valid JSON, and
/// `--html` never writes over one of its inputs.
#[test]
fn tags_are_escaped_and_inputs_are_not_overwritten() {
    let dir = scratch("escape");
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    h.record(7).unwrap();
    let log = dir.join("q.hlog");
    write_log(
        &log,
        std::iter::once((r#"a"b\c"#.to_string(), 0.0, 1.0, encoded(&h))),
    );
    let out = report(&[log.to_str().unwrap(), "--json"]);
    let json = String::from_utf8_lossy(&out.stdout);
    let tags = json_at(&json, "tags");
    assert_eq!(tags, serde_json::json!({ r#"a"b\c"#: 1 }), "{json}");

    let before = std::fs::read(&log).unwrap();
    let spelled = dir.join(".").join("q.hlog");
    let out = report(&[log.to_str().unwrap(), "--html", spelled.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("would overwrite the log"), "{stderr}");
    assert_eq!(std::fs::read(&log).unwrap(), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// 4,096 tags, each one histogram of range 1..2^60 holding a value near
/// 2^59 (a 420 KB log that took 1.7 GB): the values are counted at the
/// ceiling of an hour, and the report's histograms together stop at
/// their budget with one line naming file:line, within the peak RSS limit
/// (`report` checks it). `--compare` of four runs of a smaller such log
/// shares that budget (1.76 GB before).
#[test]
fn many_wide_tags_stay_within_one_budget() {
    let dir = scratch("wide-tags");
    let mut h = Histogram::<u64>::new_with_bounds(1, 1 << 60, 3).unwrap();
    h.record(1 << 59).unwrap();
    let one = encoded(&h);
    let log = dir.join("tags.hlog");
    write_log(
        &log,
        (0..4096).map(|i| (format!("t{i}"), 0.0, 1.0, one.clone())),
    );
    assert!(std::fs::metadata(&log).unwrap().len() < 1 << 20);
    let out = report(&[log.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = stderr.lines().last().unwrap();
    let prefix = format!("echoloop: error: {}:", log.display());
    assert!(line.starts_with(&prefix), "{stderr}");
    assert!(
        line.contains(": the report's histograms would take more than 320 MiB"),
        "{stderr}"
    );

    let small = dir.join("small.hlog");
    write_log(
        &small,
        (0..600).map(|i| (format!("t{i}"), 0.0, 1.0, one.clone())),
    );
    let runs: Vec<String> = (0..4)
        .map(|k| format!("r{k}={}", small.display()))
        .collect();
    let mut args = vec!["--compare"];
    args.extend(runs.iter().map(String::as_str));
    let out = report(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("would take more than 320 MiB"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A value past an hour is counted as an hour, and the report says how
/// many were and where the first was.
#[test]
fn a_value_past_the_ceiling_is_counted_at_it_and_said() {
    let dir = scratch("ceiling");
    let mut h = Histogram::<u64>::new_with_bounds(1, 1 << 60, 3).unwrap();
    h.record_n(40, 9).unwrap();
    h.record_n(1 << 50, 2).unwrap();
    let log = dir.join("far.hlog");
    write_log(&log, std::iter::once(("x".into(), 0.0, 1.0, encoded(&h))));
    let out = report(&[log.to_str().unwrap(), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(json_number(&json, "messages"), 11.0);
    let max = json_number(&json, "latency_us.max");
    assert!((max - 3.6e9).abs() <= 3.6e9 * 1e-3, "max {max} µs");
    assert!(
        stderr.contains(&format!(
            "2 values above 3600000000 µs (an hour) were counted as an hour, the first at {}:4",
            log.display()
        )),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One file given twice (by the same name, another spelling, or a hard
/// link) is refused: its counts would double without a word.
#[test]
fn a_file_given_twice_is_refused() {
    let dir = scratch("twice");
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    h.record(7).unwrap();
    let log = dir.join("a.hlog");
    write_log(&log, std::iter::once(("a".into(), 0.0, 1.0, encoded(&h))));
    let linked = dir.join("b.hlog");
    std::fs::hard_link(&log, &linked).unwrap();
    let spelled = dir.join(".").join("a.hlog");
    let a = log.to_str().unwrap();
    for other in [a, spelled.to_str().unwrap(), linked.to_str().unwrap()] {
        let out = report(&[a, other]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(
            stderr,
            format!(
                "echoloop: error: {other}: the same file as {a}: given twice, its counts would be doubled\n"
            )
        );
        let run = format!("NAME={a},{other}");
        let out = report(&["--compare", &run, &format!("B={a}")]);
        assert_eq!(out.status.code(), Some(2));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
