//! `echoloop load --rate FROM..TO --ramp D` and `--rate-steps R1,R2,…
//! --step D`: the schedule offers exactly what the plan says, each step
//! (or piece of the ramp) is reported with its offered and achieved rate,
//! in the summary, JSON, the interval lines and the HdrHistogram log, and
//! `report` draws latency against the offered rate (the knee).

mod common;

use common::Bounded as _;
use common::{DEADLINE, ServerProcess, bin, json_at, json_number, run_bounded};

/// `echoloop load ADDR ARGS`, bounded.
fn load(server: &ServerProcess, args: &[&str]) -> std::process::Output {
    let mut cmd = bin();
    cmd.arg("load").arg(server.addr.to_string()).args(args);
    run_bounded(cmd, DEADLINE)
}

/// Steps of 400 ms at 200, 400 and 800 msgs/s: 560 messages due in all,
/// each step offering exactly its rate; the echo server keeps up, so each
/// achieves nearly all of it (the last step loses what was still in
/// flight at the end); two threads offer the same in sum.
#[test]
fn steps_offer_their_rates_and_report_each() {
    let server = ServerProcess::start(&[]);
    for threads in ["1", "2"] {
        let args = [
            "-c",
            "4",
            "--threads",
            threads,
            "--rate-steps",
            "200,400,800",
            "--step",
            "400ms",
            "--json",
        ];
        let json = common::clean_stdout(load(&server, &args));
        assert_eq!(json_number(&json, "duration_s"), 1.2, "{json}");
        assert_eq!(json_number(&json, "schedule.due"), 560.0, "{json}");
        let steps = json_at(&json, "steps");
        assert_eq!(steps.as_array().map(Vec::len), Some(3), "{json}");
        for (k, rate) in [200.0, 400.0, 800.0].into_iter().enumerate() {
            let at = |key: &str| json_number(&json, &format!("steps.{k}.{key}"));
            assert_eq!(at("offered_per_s"), rate, "step {k}: {json}");
            assert_eq!(at("start_s"), 0.4 * k as f64, "{json}");
            let achieved = at("achieved_per_s");
            // Every message sent in a step is counted (the window's end
            // waits for the last); how many the generator sent on time is
            // the machine's load: never more than offered, some.
            assert!(achieved <= rate && achieved > 0.0, "step {k}: {json}");
            assert_eq!(at("errors"), 0.0);
        }
    }
}

/// A ramp from 100 to 900 msgs/s over 1 s: the area under the rate, 500
/// messages, is due; the tenths offer a growing rate, adding up to it.
#[test]
fn a_ramp_offers_the_area_under_its_rate() {
    let server = ServerProcess::start(&[]);
    let args = ["-c", "4", "--rate", "100..900", "-d", "1s", "--json"];
    let json = common::clean_stdout(load(&server, &args));
    let due = json_number(&json, "schedule.due");
    assert!((499.0..=501.0).contains(&due), "{json}");
    let steps = json_at(&json, "steps");
    let steps = steps.as_array().expect("steps");
    assert_eq!(steps.len(), 10, "{json}");
    let offered: Vec<f64> = steps
        .iter()
        .map(|s| s["offered_per_s"].as_f64().unwrap())
        .collect();
    assert!(
        offered.windows(2).all(|w| w[1] > w[0]),
        "growing: {offered:?}"
    );
    let sum: f64 = offered.iter().map(|r| r * 0.1).sum();
    assert!((sum - due).abs() < 0.5, "{sum} vs {due}");
    // The human summary says the plan and has a row per tenth.
    let out = common::clean_stdout(load(
        &server,
        &[
            "-c", "2", "--rate", "100..900", "--ramp", "500ms", "-d", "1s",
        ],
    ));
    assert!(
        out.contains("open loop at 100 to 900 msgs/s over 500ms"),
        "{out}"
    );
    assert!(
        out.contains("  steps         from s  offered/s achieved/s"),
        "{out}"
    );
}

/// The interval lines and the log carry the offered rate; `report`
/// prints it per step and draws the knee chart from it.
#[test]
fn the_log_and_the_report_know_the_offered_rate() {
    let server = ServerProcess::start(&[]);
    let dir = common::scratch("ramps", "knee");
    let log = dir.join("steps.hlog");
    let args = [
        "-c",
        "4",
        "--rate-steps",
        "300,600",
        "--step",
        "500ms",
        "--interval",
        "250ms",
        "--hdr-log",
        log.to_str().unwrap(),
    ];
    let text = common::clean_stdout(load(&server, &args));
    assert!(text.contains("] offered 300/s  msgs/s "), "{text}");
    assert!(text.contains("] offered 600/s  msgs/s "), "{text}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(logged.matches(" offered=300.0").count(), 2, "{logged}");
    assert_eq!(logged.matches(" offered=600.0").count(), 2, "{logged}");
    let page = dir.join("knee.html");
    let mut cmd = bin();
    cmd.arg("report").arg(&log).arg("--html").arg(&page);
    let report = common::clean_stdout(run_bounded(cmd, DEADLINE));
    assert!(report.contains("] offered 300/s  msgs/s "), "{report}");
    assert!(report.contains("] offered 600/s  msgs/s "), "{report}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<h2>Latency against offered rate (µs)</h2>"));
    assert_eq!(html.matches("<svg").count(), 5);
    assert!(
        html.contains(">\nmsgs/s offered\n</text>"),
        "the knee's axis"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Bad plans: one clear line, exit 2.
#[test]
fn bad_plans_are_usage_errors() {
    let cases: [(&[&str], &str); 8] = [
        (&["--rate", "100", "--ramp", "1s"], "--ramp needs a range"),
        (&["--rate", "1..2", "--ramp", "20s"], "longer than the run"),
        (&["--ramp", "1s"], "--rate"),
        (&["--rate-steps", "1,2"], "--step"),
        (
            &["--rate-steps", "1,2", "--step", "1s", "-d", "2s"],
            "cannot be used with",
        ),
        (&["--rate-steps", "1,0", "--step", "1s"], "more than zero"),
        (&["--rate", "5..x"], "not a number"),
        (
            &["--rate", "1", "--rate-steps", "1", "--step", "1s"],
            "cannot be used with",
        ),
    ];
    for (args, says) in cases {
        common::assert_usage_error(&[&["load", "127.0.0.1:9"][..], args].concat(), says);
    }
    let many = vec!["10"; 101].join(",");
    let out = bin()
        .args(["load", "127.0.0.1:9", "--rate-steps", &many, "--step", "1s"])
        .bounded();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 100"));
}

/// Bad values of the new options, each refused at parse time with its own
/// message (exit 2): non-numeric, negative, zero, huge, and a message
/// file past its 16 MiB bound.
#[test]
fn bad_values_of_the_new_options_are_refused() {
    let big = common::scratch("ramps", "big").join("big.bin");
    std::fs::write(&big, vec![b'x'; 16 * 1024 * 1024 + 1]).unwrap();
    let big = big.to_str().unwrap().to_string();
    let load: [(&[&str], &str); 10] = [
        (&["--start-at", "100"], "in the past"),
        (&["--start-at", "2099-01-01T00:00:00Z"], "at most a day"),
        (&["--start-at", "tomorrow"], "neither RFC 3339"),
        (&["--start-at", "-5"], "unexpected argument"),
        (&["--rate", "1..1e99"], "out of range"),
        (&["--rate=-1..5"], "more than zero"),
        (&["--rate-steps", "", "--step", "1s"], "not a number"),
        (&["--rate-steps", "5", "--step", "0"], "more than zero"),
        (&["-f", &big], "longer than 16 MiB"),
        (&["-1", &format!("@{big}")], "longer than 16 MiB"),
    ];
    for (args, says) in load {
        common::assert_usage_error(&[&["load", "127.0.0.1:9"][..], args].concat(), says);
    }
    let server: [(&[&str], &str); 4] = [
        (&["--seed=-1"], "--seed"),
        (&["--seed", "x"], "--seed"),
        (&["--udp", "--drop", "abc"], "not a percentage"),
        (&["--delay=-1s"], "more than zero"),
    ];
    for (args, says) in server {
        let all = [&["server", "--bind", "127.0.0.1:0"][..], args].concat();
        common::assert_usage_error(&all, says);
    }
    let runs: Vec<String> = (0..13).map(|i| format!("r{i}=x.hlog")).collect();
    let mut args = vec!["report", "--compare"];
    args.extend(runs.iter().map(String::as_str));
    common::assert_usage_error(&args, "takes 2 to 12 runs");
}
