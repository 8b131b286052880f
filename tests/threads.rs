//! `echoloop server --threads N`: N reactors behind one address, each with
//! its own SO_REUSEPORT listener; the whole server's output, summed.

mod common;

use std::net::TcpStream;

use common::{DEADLINE, ServerProcess, Stats, bin, random_payloads_come_back, run_bounded};

/// N=2 and N=4 each serve 200 concurrent connections byte for byte.
#[test]
fn two_and_four_reactors_echo_200_concurrent_payloads() {
    for threads in ["2", "4"] {
        let server = ServerProcess::start(&["--threads", threads]);
        random_payloads_come_back(&server, 200, 512 * 1024);
    }
}

/// Port 0 gives one `listening on` line with the real port; 200 open
/// connections land on every reactor, none holding more than 1.5 times its
/// share (SIGUSR1's line shows the spread); SIGTERM ends it with exit 0 and
/// one summed summary whose per-reactor counts add up.
#[test]
fn four_reactors_spread_connections_and_sum_their_counters() {
    let mut server = ServerProcess::start(&["--threads", "4"]);
    assert_ne!(server.addr.port(), 0);
    let held: Vec<TcpStream> = (0..200).map(|_| server.connect()).collect();
    // Each reactor accepts on its own; ask until all 200 show as open.
    let end = std::time::Instant::now() + DEADLINE;
    let line = loop {
        assert!(
            std::time::Instant::now() < end,
            "the reactors never showed 200 open"
        );
        server.signal(libc::SIGUSR1);
        let line = server.wait_stderr(|l| l.starts_with("stats: "));
        if Stats::parse(&line).get("open") == 200.0 {
            break line;
        }
    };
    let spread: Vec<u64> = Stats::parse(&line)
        .text("open_per_reactor")
        .split('/')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(spread.len(), 4, "{line}");
    assert_eq!(spread.iter().sum::<u64>(), 200, "{line}");
    assert!(
        spread.iter().all(|&n| n > 0),
        "every reactor has some: {line}"
    );
    assert!(
        spread.iter().all(|&n| n * 4 <= 200 * 3 / 2),
        "none over 1.5x its share of 50: {line}"
    );
    drop(held);
    server.signal(libc::SIGTERM);
    let (status, out, _) = server.wait_exit();
    assert!(status.success(), "{status:?}");
    // `listening on` was read at the start; after it, only the summary.
    assert_eq!(
        out.len(),
        1,
        "one summary, no second listening line: {out:?}"
    );
    let summary = &out[0];
    let (head, per) = summary.split_once("; per reactor ").expect(summary);
    assert!(
        head.starts_with("served 200 connections, echoed 0 bytes"),
        "{summary}"
    );
    let per: Vec<u64> = per.split('/').map(|n| n.parse().unwrap()).collect();
    assert_eq!(per, spread, "each reactor served what it held");
}

/// A second group, or a plain server, on a group's address fails with
/// "address in use" (exit 1): SO_REUSEPORT does not let it steal a share.
#[test]
fn a_second_server_on_a_groups_address_is_refused() {
    let server = ServerProcess::start(&["--threads", "4"]);
    let addr = server.addr.to_string();
    for threads in ["4", "1"] {
        let mut cmd = bin();
        cmd.args(["server", "--bind", &addr, "--threads", threads]);
        let out = run_bounded(cmd, DEADLINE);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "--threads {threads}: {stderr}");
        assert!(
            stderr.contains(&format!("cannot listen on {addr}")) && stderr.contains("in use"),
            "--threads {threads}: {stderr}"
        );
    }
    // And the other way round: a group on a plain server's address.
    let plain = ServerProcess::start(&[]);
    let mut cmd = bin();
    cmd.args([
        "server",
        "--bind",
        &plain.addr.to_string(),
        "--threads",
        "4",
    ]);
    let out = run_bounded(cmd, DEADLINE);
    assert_eq!(out.status.code(), Some(1));
    drop((server, plain));
}

/// Groups on overlapping addresses of one port exclude each other: the
/// lock is the port, not the address text. A group on 127.0.0.1:P refuses
/// a second group on 0.0.0.0:P, [::]:P or [::ffff:127.0.0.1]:P (each would
/// otherwise bind and take connections from the first), and a UDP group
/// refuses another on the same UDP port. (The refusal comes before any
/// socket is bound, so nothing listens beyond loopback even for a moment.)
#[test]
fn groups_on_overlapping_addresses_are_refused() {
    for (first, udp) in [
        (&["--threads", "2"][..], None),
        (&["--threads", "2", "--udp-only"][..], Some("--udp-only")),
    ] {
        let server = ServerProcess::start(first);
        let port = server.addr.port();
        for bind in [
            format!("0.0.0.0:{port}"),
            format!("[::]:{port}"),
            format!("[::ffff:127.0.0.1]:{port}"),
        ] {
            let mut cmd = bin();
            cmd.args(["server", "--bind", &bind, "--threads", "2"]);
            cmd.args(udp);
            let out = run_bounded(cmd, DEADLINE);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{bind} {udp:?}: {stderr}");
            let protocol = if udp.is_some() { "udp" } else { "tcp" };
            assert!(
                stderr.contains(&format!(
                    "{protocol} port {port} is served by another echoloop server --threads"
                )),
                "{bind}: {stderr}"
            );
        }
        if udp.is_none() {
            common::round_trip(&mut server.connect(), b"still the first group's");
        }
    }
}

/// --max-connections is the whole server's limit, split over the reactors:
/// fewer than one per reactor is a usage error.
#[test]
fn max_connections_below_threads_is_a_usage_error() {
    let mut cmd = bin();
    cmd.args([
        "server",
        "--bind",
        "127.0.0.1:0",
        "--threads",
        "4",
        "--max-connections",
        "3",
    ]);
    let out = run_bounded(cmd, DEADLINE);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--max-connections (3) must be at least --threads (4)"),
        "{stderr}"
    );
}

/// With several reactors, every trace line says which reactor wrote it.
#[test]
fn trace_lines_name_their_reactor() {
    let mut cmd = bin();
    cmd.args(["server", "--bind", "127.0.0.1:0", "--threads", "2"])
        .env("RUST_LOG", "echoloop=trace");
    let mut server = ServerProcess::spawn(cmd);
    let mut c = server.connect();
    common::round_trip(&mut c, b"whose?");
    let line = server.wait_stderr(|l| l.contains("TRACE") && l.contains(" read conn=#1"));
    assert!(
        line.contains("echoloop::server::connection reactor=0]")
            || line.contains("echoloop::server::connection reactor=1]"),
        "{line}"
    );
}
