//! `load --fail-if EXPR`: a run fails (exit 3) when a threshold holds,
//! judged on the figures its `--json` summary prints, against a server
//! whose latency is known (`--delay`); every expression is said with the
//! run's figure, passed or failed, and a bad one is a usage error.

mod common;

use common::{Bounded as _, ServerProcess, assert_usage_error, bin, json_at};

/// `--delay 20ms` makes every echo take at least 20 ms: `p99>5ms` fails
/// the run with exit 3 and one line naming it and the figure;
/// `errors>0` passes. Both are in the summary, and in the JSON.
#[test]
fn a_latency_threshold_fails_a_slow_run_with_exit_3() {
    let server = ServerProcess::start(&["--delay", "20ms"]);
    let target = server.addr.to_string();
    let out = bin()
        .args(["load", &target, "-c", "2", "-d", "300ms"])
        .args(["--fail-if", "p99>5ms", "--fail-if", "errors>0"])
        .bounded();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    let failed: Vec<&str> = stderr.lines().filter(|l| l.contains("--fail-if")).collect();
    assert_eq!(failed.len(), 1, "{stderr}");
    assert!(
        failed[0].starts_with("echoloop: error: --fail-if p99>5ms: p99 was ")
            && failed[0].ends_with(" ms: the run fails on it"),
        "{stderr}"
    );
    let summary: Vec<&str> = stdout.lines().filter(|l| l.contains("threshold")).collect();
    assert_eq!(summary.len(), 2, "{stdout}");
    assert!(
        summary[0].starts_with("  threshold   FAILED p99>5ms: p99 was "),
        "{stdout}"
    );
    assert_eq!(summary[1], "  threshold   passed errors>0: errors was 0");

    let json = bin()
        .args(["load", &target, "-c", "2", "-d", "300ms", "--json"])
        .args(["--fail-if", "p99>5ms", "--fail-if", "p99>1s"])
        .bounded();
    assert_eq!(json.status.code(), Some(3));
    let json = String::from_utf8_lossy(&json.stdout);
    let judged = json_at(&json, "thresholds");
    let judged = judged.as_array().expect("a thresholds array");
    assert_eq!(judged.len(), 2, "{json}");
    assert_eq!(judged[0]["expr"], "p99>5ms");
    assert_eq!(judged[0]["unit"], "ms");
    assert_eq!(judged[0]["broken"], true);
    let p99_ms = judged[0]["value"].as_f64().unwrap();
    assert!(p99_ms >= 20.0, "the delay is in it: {json}");
    assert_eq!(
        p99_ms,
        json_at(&json, "latency_us.p99").as_f64().unwrap() / 1000.0,
        "the figure --json prints"
    );
    assert_eq!(judged[1]["broken"], false);
}

/// Thresholds that do not hold leave exit 0; a rate gate reads the rate.
#[test]
fn thresholds_that_pass_leave_exit_0() {
    let server = ServerProcess::start(&[]);
    let target = server.addr.to_string();
    let out = bin()
        .args(["load", &target, "-c", "2", "-d", "300ms", "--rate", "200"])
        .args(["--fail-if", "p99>10s", "--fail-if", "msgs_per_s<10"])
        .args(["--fail-if", "unsent>50%", "--fail-if", "lost>0"])
        .bounded();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("threshold   passed").count(), 4, "{stdout}");
}

/// Bad expressions and a figure the run cannot have are usage errors.
#[test]
fn bad_thresholds_are_usage_errors() {
    assert_usage_error(
        &["load", "127.0.0.1:9", "--fail-if", "p99>5"],
        "a latency needs its unit (500us, 5ms, 1s)",
    );
    assert_usage_error(
        &["load", "127.0.0.1:9", "--fail-if", "p98>5ms"],
        "no figure `p98`",
    );
    // Huge, negative, not finite, not a number.
    for (expr, says) in [
        ("p99>1e20ms", "a latency is at most an hour"),
        ("msgs_per_s<-5", "is not a number of at least 0"),
        ("lost>1e400", "is not a number of at least 0"),
        ("errors>many", "is not a number of at least 0"),
        ("p99>0x5ms", "is not a number of at least 0"),
    ] {
        assert_usage_error(&["load", "127.0.0.1:9", "--fail-if", expr], says);
    }
    assert_usage_error(
        &["load", "127.0.0.1:9", "--fail-if", "unsent>0"],
        "--fail-if unsent>0: unsent is an open loop's figure (give --rate)",
    );
}
