//! Every duration and rate option of every subcommand refuses values the
//! program cannot represent — with clap's one-line error and exit 2, never
//! a panic (exit 101) and never a server that starts and crashes later.

mod common;

use std::process::Output;
use std::time::Duration;

use common::bin;

/// Runs `echoloop ARGS`, killing it if it has not exited within a few
/// seconds (a bad value that was accepted starts a server).
fn run_bounded(args: &[String]) -> Output {
    let mut cmd = bin();
    cmd.args(args);
    common::run_bounded(cmd, Duration::from_secs(10))
}

/// The table: each subcommand (with what it needs to get as far as parsing
/// the option), each of its duration and rate options, each bad value.
#[test]
fn out_of_range_durations_and_rates_exit_2_with_one_line() {
    let options: [(&[&str], &str); 11] = [
        (&["server"], "--idle-timeout"),
        (&["server"], "--stats"),
        (&["server"], "--udp-rate-limit"),
        (&["load", "127.0.0.1:9"], "--interval"),
        (&["client", "127.0.0.1:9"], "--timeout"),
        (&["client", "127.0.0.1:9"], "--connect-timeout"),
        (&["load", "127.0.0.1:9"], "--duration"),
        (&["load", "127.0.0.1:9"], "--warmup"),
        (&["load", "127.0.0.1:9"], "--timeout"),
        (&["load", "127.0.0.1:9"], "--rate"),
        (&["load", "127.0.0.1:9", "-c", "2"], "--connect-rate"),
    ];
    let values = ["1e19", "1e-20", "inf", "nan", "-1", "0", "2e17m", "1e30"];
    for (sub, option) in options {
        for value in values {
            let mut args: Vec<String> = sub.iter().map(|s| s.to_string()).collect();
            args.push(format!("{option}={value}"));
            let out = run_bounded(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
            assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
            assert!(errors[0].contains(option), "{args:?}: {stderr}");
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        }
    }
}

/// The largest value in range is accepted and does not crash on first use:
/// a server with a ten-year idle timeout echoes (its first connection
/// pushes a deadline ten years out).
#[test]
fn ten_year_idle_timeout_serves() {
    let server = common::ServerProcess::start(&["--idle-timeout", "315360000", "--stats", "5m"]);
    let mut s = server.connect();
    common::round_trip(&mut s, b"still here");
}

/// The two byte-count options this work added refuse what they cannot
/// mean: huge, zero, negative, non-numeric; exit 2 with one line naming
/// the option. The largest value in range is accepted.
#[test]
fn new_size_options_refuse_bad_input() {
    let options: [(&[&str], &str, &str); 2] = [
        (&["server"], "--budget", "67108864"),
        (&["client", "127.0.0.1:9"], "--max-reply", "1099511627776"),
    ];
    for (sub, option, _) in options {
        for value in [
            "99999999999999999999999",
            "67108865000000",
            "0",
            "-1",
            "lots",
            "1.5",
            "",
        ] {
            let mut args: Vec<String> = sub.iter().map(|s| s.to_string()).collect();
            args.push(format!("{option}={value}"));
            let out = run_bounded(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
            assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
            assert!(errors[0].contains(option), "{args:?}: {stderr}");
        }
    }
    // The top of each range is accepted (the client then finds a closed
    // port: exit 7, a connect error, not a usage error).
    let (_, option, max) = options[1];
    let (_guard, closed) = common::closed_port();
    let out = run_bounded(&[
        "client".into(),
        closed.to_string(),
        format!("{option}={max}"),
    ]);
    assert_eq!(out.status.code(), Some(7));
    let server = common::ServerProcess::start(&[&format!("{}={}", options[0].1, options[0].2)]);
    let mut s = server.connect();
    common::round_trip(&mut s, b"budget at its maximum");
}

/// The counts, modes, addresses and names the later options take: each
/// refuses huge, zero, negative, non-numeric (or malformed) values with
/// exit 2 and one `error:` line naming the option, and never starts.
#[test]
fn counts_modes_addresses_and_names_exit_2_with_one_line() {
    let huge = "99999999999999999999999";
    let cases: [(&[&str], &str, &[&str]); 14] = [
        (
            &["server"],
            "--threads",
            &["0", "-1", "1025", huge, "x", ""],
        ),
        (
            &["load", "127.0.0.1:9"],
            "--threads",
            &["0", "-1", "1025", huge, "x", ""],
        ),
        (
            &["load", "127.0.0.1:9"],
            "--messages-per-connection",
            &["0", "-1", huge, "x", "1.5"],
        ),
        (
            &["server"],
            "--unix-mode",
            &["1000", "-1", huge, "x", "8", ""],
        ),
        (
            &["server"],
            "--metrics",
            &["nonsense", "127.0.0.1", "127.0.0.1:99999", "-1", ""],
        ),
        (&["server"], "--bind", &["unix:", "unix:@", "127.0.0.1:-1"]),
        (
            &["load", "127.0.0.1:9"],
            "--source",
            // 192.0.2.1 (TEST-NET-1) is an address, but not this machine's.
            &["nonsense", "-1", "256.0.0.1", "::1", "192.0.2.1"],
        ),
        (
            &["load", "127.0.0.1:9"],
            "--tag",
            &["", "a b", "a,b", "a=b", "x-connect", "x-service"],
        ),
        (&["load", "127.0.0.1:9"], "--hdr-log", &[""]),
        (
            &["load", "127.0.0.1:9"],
            "--spin",
            &["11ms", "-1", "x", "", "1e9", "nan"],
        ),
        (
            &["load", "127.0.0.1:9"],
            "-c",
            &["0", "-1", "2M", huge, "x", "1.5", "1kk", ""],
        ),
        (
            &["load", "127.0.0.1:9"],
            "--messages",
            &["0", "-1", "1e30", huge, "x", "0.0005k", ""],
        ),
        (
            &["load", "127.0.0.1:9"],
            "--coalesce",
            &["101ms", "-1", "x", "", "1e9", "nan", "1h"],
        ),
        (
            &["load", "udp://127.0.0.1:9", "-s"],
            "",
            &["0", "8", "70000", huge],
        ),
    ];
    for (sub, option, values) in cases {
        for value in values {
            let mut args: Vec<String> = sub.iter().map(|s| s.to_string()).collect();
            match option {
                "" => args.push(value.to_string()),
                _ => args.push(format!("{option}={value}")),
            }
            let out = run_bounded(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
            assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
            let named = if option.is_empty() { "-s" } else { option };
            assert!(errors[0].contains(named), "{args:?}: {stderr}");
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        }
    }
}

/// The open loop's own knobs mean nothing in closed loop: asked for
/// without `--rate` (or `--rate-steps`), they are a usage error that
/// names both.
#[test]
fn open_loop_options_need_a_rate() {
    for option in ["--spin=1ms", "--coalesce=2ms"] {
        let args: Vec<String> = ["load", "127.0.0.1:9", option]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = run_bounded(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: the following required arguments were not provided:"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("<--rate <MSGS_PER_S|FROM..TO>|--rate-steps <R1,R2,...>>"),
            "{args:?}: {stderr}"
        );
    }
}
