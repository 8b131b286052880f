//! Fairness: one connection that always has data (a greedy full-duplex
//! stream) must not starve the others. Each connection gets a budget per
//! turn of the loop; one that used it goes to the back of a ready queue.
//!
//! These are liveness checks with generous margins, not speed measurements:
//! before the budget, a bystander completed one round trip or none while
//! the stream ran. The latency figures are in `benches/fairness.rs`.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{ServerProcess, bin};

/// Starts `echoloop load` as a greedy stream against `server`: one
/// connection, 1 MiB messages, 4 in flight, for `secs` seconds.
fn greedy_stream(server: &ServerProcess, secs: u32) -> Child {
    bin()
        .args(["load", &server.addr.to_string(), "-c", "1", "-s", "1048576"])
        .args(["--pipeline", "4", "-d", &format!("{secs}s"), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn echoloop load")
}

/// Waits until the server has echoed at least `bytes` more than now,
/// reading its `--stats` lines (so the greedy stream is really flowing).
fn wait_for_flow(server: &mut ServerProcess, bytes: f64) {
    server.skip_stderr();
    server.wait_stats(|s| s.get("out") >= bytes);
}

/// Ping-pongs 4 bytes for `window` and returns how many round trips came
/// back, each one checked byte for byte.
fn bystander_round_trips(server: &ServerProcess, window: Duration) -> u32 {
    let mut s = server.connect();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(window)).unwrap();
    let end = Instant::now() + window;
    let mut done = 0u32;
    let mut back = [0u8; 4];
    while Instant::now() < end {
        let msg = done.to_le_bytes();
        s.write_all(&msg).unwrap();
        if s.read_exact(&mut back).is_err() {
            break; // no echo within the whole window: starved
        }
        assert_eq!(back, msg);
        done += 1;
    }
    done
}

/// With a greedy stream running, a bystander completes at least 100 round
/// trips within 2 s. The overlap is certain, not hoped for: the stream
/// runs until it is stopped (SIGINT, after the bystander's window), it is
/// still running when the window ends, and it moved at least 4 MiB during
/// it (the server's own byte counter). The stream's own run then ends
/// clean, and the server's budget ran out while they shared it.
#[test]
fn a_greedy_stream_does_not_starve_a_bystander() {
    let (mut server, metrics) = common::server_with_metrics(&["--stats", "0.1"]);
    let mut greedy = greedy_stream(&server, 600);
    wait_for_flow(&mut server, 4.0 * 1048576.0);
    let sent = || common::metric(&common::scrape(metrics), "echoloop_sent_bytes_total");
    let before = sent().expect("echoloop_sent_bytes_total");
    let done = bystander_round_trips(&server, Duration::from_secs(2));
    let during = sent().expect("echoloop_sent_bytes_total") - before;
    assert!(
        greedy.try_wait().unwrap().is_none(),
        "the greedy stream ended before the bystander's window did"
    );
    assert!(
        during >= 4.0 * 1048576.0,
        "the greedy stream moved only {during} bytes during the window"
    );
    eprintln!("bystander: {done} round trips");
    assert!(
        done >= 100,
        "the bystander completed {done} round trips in 2 s"
    );
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(greedy.id() as i32, libc::SIGINT) }, 0);
    let end = Instant::now() + common::DEADLINE;
    let status = loop {
        if let Some(status) = greedy.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < end, "the greedy stream did not stop");
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut json = String::new();
    greedy
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut json)
        .unwrap();
    assert_eq!(status.code(), Some(0), "greedy stream: {json}");
    assert!(common::json_number(&json, "messages") > 0.0, "{json}");
    let exhausted = common::metric(
        &common::scrape(metrics),
        "echoloop_budget_exhaustions_total",
    );
    assert!(
        exhausted > Some(0.0),
        "the budget never ran out: {exhausted:?}"
    );
}
