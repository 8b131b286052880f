//! iperf3 is the UDP generator's yardstick in `cargo bench --bench
//! transports` (section `generator`). This runs the bench's own iperf3
//! code (`benches/servers/iperf3.rs`) against the real iperf3, and checks
//! the comparison's premise: iperf3 and `echoloop load` offer the same
//! datagrams, 64 B at 50,000 a second, each counting what it sent.

use std::process::Command;
use std::time::Duration;

mod common;
#[path = "../benches/servers/iperf3.rs"]
mod iperf3;

use common::{ServerProcess, json_number};

const DEADLINE: Duration = Duration::from_secs(60);

/// The bench's iperf3 server comes up and is asked once; the client's
/// arguments make it 64 B datagrams at 25.6 Mbit/s, i.e. 50,000 a
/// second, every one 64 B. `echoloop load -s 64 --rate 50000 -d 1s`
/// schedules exactly 50,000 in that second.
#[test]
fn iperf3_and_the_generator_offer_the_same_datagrams() {
    if Command::new("iperf3").arg("--version").output().is_err() {
        common::missing("iperf3 is not installed (.ci/run installs it)");
        return;
    }
    let plain = |cmd: &Command| {
        let mut c = Command::new(cmd.get_program());
        c.args(cmd.get_args());
        c
    };
    let mut server =
        iperf3::start_server(plain, Duration::from_secs(30)).expect("iperf3 -s says it listens");
    let mut client = Command::new("iperf3");
    client.args(iperf3::client_args(server.port, 50_000, 64, 1));
    let out = common::run_bounded(client, DEADLINE);
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{json}");
    assert_eq!(
        server.child.wait().unwrap().code(),
        Some(0),
        "one test, then gone"
    );
    assert_eq!(json_number(&json, "start.test_start.blksize"), 64.0);
    assert_eq!(json_number(&json, "start.test_start.duration"), 1.0);
    let bits = json_number(&json, "start.test_start.target_bitrate");
    assert_eq!(bits / (64.0 * 8.0), 50_000.0, "datagrams a second");
    let packets = json_number(&json, "end.sum.packets");
    assert!(packets > 0.0, "{json}");
    assert_eq!(
        json_number(&json, "end.sum.bytes"),
        packets * 64.0,
        "{json}"
    );

    let echo = ServerProcess::start(&["--udp-only"]);
    let mut load = common::bin();
    load.args(["load", &echo.ready, "-c", "1", "-s", "64"])
        .args(["--rate", "50000", "-d", "1s", "--timeout", "1s", "--json"]);
    let out = common::run_bounded(load, DEADLINE);
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{json}");
    assert_eq!(json_number(&json, "schedule.due"), 50_000.0, "{json}");
    assert_eq!(json_number(&json, "size"), 64.0, "{json}");
    assert_eq!(json_number(&json, "udp.corrupted"), 0.0, "{json}");
}
