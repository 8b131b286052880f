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
/// trips within 2 s; and the stream's own run ends clean.
#[test]
fn a_greedy_stream_does_not_starve_a_bystander() {
    let mut server = ServerProcess::start(&["--stats", "0.1"]);
    let greedy = greedy_stream(&server, 4);
    wait_for_flow(&mut server, 4.0 * 1048576.0);
    let done = bystander_round_trips(&server, Duration::from_secs(2));
    eprintln!("bystander: {done} round trips");
    assert!(
        done >= 100,
        "the bystander completed {done} round trips in 2 s"
    );
    let out = greedy.wait_with_output().unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "greedy stream: {json}");
    let stats = server.wait_stats(|_| true);
    assert!(stats.get("budget_spent") > 0.0, "the budget never ran out");
}
