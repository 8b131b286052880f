//! `echoloop server` misbehaving on purpose (`--delay`, `--jitter`,
//! `--close-after`, `--reset-after`, `--stall-after`, `--drop`), proved
//! the way a user would see it: through `echoloop load`, whose latency,
//! error kinds and loss must show each fault, and through the server's own
//! counters (its summary line and `--metrics`).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Output;

use common::{DEADLINE, ServerProcess, bin, json_number};

/// `echoloop load TARGET ARGS --json`, bounded: its exit code and JSON.
fn load_json(target: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = bin();
    cmd.args(["load", target, "--json"]).args(args);
    let out: Output = common::run_bounded(cmd, DEADLINE);
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

/// Stops the server with SIGTERM and returns its summary line.
fn summary_of(server: ServerProcess) -> String {
    server.signal(libc::SIGTERM);
    let (status, out, err) = server.wait_exit();
    assert!(status.success(), "{err:?}");
    out.into_iter()
        .find(|l| l.starts_with("served "))
        .expect("a summary line")
}

/// `--delay 40ms`: every echo comes back no sooner than 40 ms after it was
/// sent, so the generator's fastest message takes that long; nothing is
/// lost or reordered, and the server counts the held passes.
#[test]
fn a_delay_shows_in_the_generators_latency() {
    let server = ServerProcess::start(&["--delay", "40ms", "--seed", "1"]);
    let target = server.addr.to_string();
    let args = ["-c", "4", "-s", "64", "--pipeline", "3", "-d", "400ms"];
    let (code, json) = load_json(&target, &args);
    assert_eq!(code, Some(0), "{json}");
    assert!(json_number(&json, "messages") > 0.0, "{json}");
    // The histogram's p50 is its lowest bucket's value or above: any
    // message faster than 40 ms would drag the median under it.
    assert!(json_number(&json, "latency_us.p50") >= 40_000.0, "{json}");
    assert_eq!(json_number(&json, "errors.mismatch"), 0.0, "{json}");
    let line = summary_of(server);
    assert!(line.contains("; injected delays "), "{line}");
    assert!(!line.contains("injected delays 0 "), "{line}");
}

/// `--jitter`: the delays spread over their range (the generator's p90 is
/// well above its median), while the bytes of each connection still come
/// back in order with four messages in flight (no mismatch).
#[test]
fn jitter_spreads_the_latency_and_keeps_the_order() {
    let server = ServerProcess::start(&["--delay", "5ms", "--jitter", "40ms", "--seed", "7"]);
    let target = server.addr.to_string();
    let args = ["-c", "4", "-s", "100", "--pipeline", "4", "-d", "600ms"];
    let (code, json) = load_json(&target, &args);
    assert_eq!(code, Some(0), "{json}");
    let (p50, p90) = (
        json_number(&json, "latency_us.p50"),
        json_number(&json, "latency_us.p90"),
    );
    assert!(p50 >= 5_000.0, "never sooner than the delay: {json}");
    assert!(p90 >= p50 + 5_000.0, "the jitter spreads: {json}");
    assert_eq!(json_number(&json, "errors.mismatch"), 0.0, "{json}");
}

/// `--close-after 640`: each connection gets exactly 640 bytes back and
/// then a clean FIN, which the generator counts as `closed`, not `reset`.
#[test]
fn close_after_is_a_clean_close_for_the_generator() {
    let server = ServerProcess::start(&["--close-after", "640"]);
    let target = server.addr.to_string();
    let (code, json) = load_json(&target, &["-c", "3", "-s", "64", "-d", "2s"]);
    assert_eq!(code, Some(1), "a run with errors: {json}");
    assert_eq!(json_number(&json, "errors.closed"), 3.0, "{json}");
    assert_eq!(json_number(&json, "errors.reset"), 0.0, "{json}");
    assert_eq!(json_number(&json, "errors.mismatch"), 0.0, "{json}");
    // By hand: the bytes past the limit are not echoed, and EOF follows.
    let mut c = TcpStream::connect(server.addr).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    c.write_all(&[b'x'; 1000]).unwrap();
    let back = common::read_to_eof(&mut c);
    assert_eq!(back, vec![b'x'; 640]);
    let line = summary_of(server);
    assert!(line.contains(" closes 4 resets 0 "), "{line}");
}

/// `--reset-after 640`: an RST, which the generator counts as `reset`;
/// by hand, a read after the echoed bytes fails with ECONNRESET.
#[test]
fn reset_after_is_a_reset_for_the_generator() {
    let server = ServerProcess::start(&["--reset-after", "640"]);
    let target = server.addr.to_string();
    let (code, json) = load_json(&target, &["-c", "3", "-s", "64", "-d", "2s"]);
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(json_number(&json, "errors.reset"), 3.0, "{json}");
    assert_eq!(json_number(&json, "errors.closed"), 0.0, "{json}");
    let mut c = TcpStream::connect(server.addr).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    c.write_all(&[b'y'; 640]).unwrap();
    let mut back = vec![0; 640];
    c.read_exact(&mut back).unwrap();
    assert_eq!(back, vec![b'y'; 640]);
    let mut more = [0u8; 16];
    let err = c.read(&mut more).expect_err("a reset, not EOF");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    let line = summary_of(server);
    assert!(line.contains(" resets 4 "), "{line}");
}

/// `--stall-after 640`: the echoes stop, the generator's messages time
/// out (its own `--timeout`), and the server goes on serving others: a
/// fresh connection still gets its echo while the stalled ones hang.
#[test]
fn stall_after_times_the_generator_out_and_spares_the_others() {
    let server = ServerProcess::start(&["--stall-after", "640"]);
    let target = server.addr.to_string();
    let args = ["-c", "2", "-s", "64", "-d", "1s", "--timeout", "200ms"];
    let (code, json) = load_json(&target, &args);
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(json_number(&json, "errors.timeout"), 2.0, "{json}");
    assert_eq!(json_number(&json, "errors.closed"), 0.0, "{json}");
    let mut c = server.connect();
    common::round_trip(&mut c, b"still served");
    let line = summary_of(server);
    assert!(line.contains(" stalls 2 "), "{line}");
}

/// `--drop 30`: about 30% of the datagrams go unanswered, and the
/// generator's loss is within five standard deviations of it (about 2,000
/// datagrams: σ ≈ 1%). The same seed drops alike.
#[test]
fn drop_loses_its_share_of_datagrams() {
    let server = ServerProcess::start(&["--udp-only", "--drop", "30", "--seed", "3"]);
    let target = format!("udp://{}", server.addr);
    let args = [
        "-c",
        "4",
        "--rate",
        "4000",
        "-d",
        "500ms",
        "--timeout",
        "300ms",
    ];
    let (code, json) = load_json(&target, &args);
    assert_eq!(code, Some(0), "UDP loss is a figure, not an error: {json}");
    let sent = json_number(&json, "udp.sent");
    let lost = json_number(&json, "udp.lost");
    assert!(sent >= 1000.0, "{json}");
    let share = lost / sent;
    let sigma = (0.3 * 0.7 / sent).sqrt();
    assert!(
        (share - 0.3).abs() < 5.0 * sigma,
        "lost {lost} of {sent}: {json}"
    );
    let line = summary_of(server);
    assert!(line.contains(" drops "), "{line}");
}

/// The injected faults are Prometheus series too, shown only when on.
#[test]
fn metrics_count_what_was_injected() {
    let (server, metrics) = common::server_with_metrics(&["--close-after", "4"]);
    let mut c = server.connect();
    c.write_all(b"abcdefgh").unwrap();
    assert_eq!(common::read_to_eof(&mut c), b"abcd");
    let got = common::eventually_value(|| {
        let out = common::scrape(metrics);
        out.contains("echoloop_injected_closes_total 1\n")
            .then_some(out)
    });
    assert!(got.contains("echoloop_injected_resets_total 0\n"), "{got}");
}

/// Bad fault options: one clear line and exit 2.
#[test]
fn bad_fault_options_are_usage_errors() {
    for (args, says) in [
        (&["--drop", "10"][..], "--drop applies to datagrams"),
        (&["--udp", "--drop", "0"][..], "out of range"),
        (&["--udp", "--drop", "101"][..], "out of range"),
        (&["--delay", "2m"][..], "at most 60s"),
        (&["--jitter", "0"][..], "more than zero"),
        (&["--close-after", "0"][..], "out of range"),
        (
            &["--close-after", "10", "--reset-after", "10"][..],
            "cannot be used with",
        ),
        (&["--stall-after", "1.5"][..], "not a whole number"),
        // Datagrams are never held: refused, not accepted and ignored.
        (
            &["--udp-only", "--delay", "100ms"][..],
            "--delay and --jitter hold TCP echoes only: not with --udp or --udp-only",
        ),
        (&["--udp", "--jitter", "5ms"][..], "hold TCP echoes only"),
    ] {
        let all = [&["server", "--bind", "127.0.0.1:0"][..], args].concat();
        common::assert_usage_error(&all, says);
    }
}
