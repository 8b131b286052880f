//! `load --expect` and `--no-reply`: targets that are not echo servers.
//! A line server written here answers `PING\r\n` with `+PONG\r\n` (a
//! Redis-like target), and a sink reads and discards; each reply is
//! checked byte for byte, and with `--no-reply` what the sink received
//! covers every message the generator counted.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{ServerProcess, assert_usage_error, json_number, load_json, scratch};

/// A line server: `PING` is answered `+PONG`, anything else `-ERR`, each
/// line ended by CRLF, however the lines are cut.
fn pong_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let (mut pending, mut buf) = (Vec::new(), [0u8; 4096]);
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    pending.extend_from_slice(&buf[..n]);
                    let mut out = Vec::new();
                    while let Some(at) = pending.windows(2).position(|w| w == b"\r\n") {
                        let line: Vec<u8> = pending.drain(..at + 2).collect();
                        out.extend_from_slice(if line == b"PING\r\n" {
                            b"+PONG\r\n"
                        } else {
                            b"-ERR\r\n"
                        });
                    }
                    if s.write_all(&out).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A sink: reads and discards, counting every byte it was sent.
fn sink() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(AtomicU64::new(0));
    let total = Arc::clone(&got);
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            let total = Arc::clone(&total);
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    total.fetch_add(n as u64, Ordering::Relaxed);
                }
            });
        }
    });
    (addr, got)
}

/// `-m 'PING\r\n' --expect '+PONG\r\n'`: every reply checked, in closed
/// loop with a pipeline, in open loop, over two threads and with churn;
/// the reply from a file (`@FILE`) too.
#[test]
fn a_line_server_answers_every_message_as_expected() {
    let target = pong_server().to_string();
    let dir = scratch("targets", "expect");
    let file = dir.join("pong.txt");
    std::fs::write(&file, b"+PONG\r\n").unwrap();
    let from_file = format!("@{}", file.display());
    for args in [
        &[
            "-c",
            "4",
            "--pipeline",
            "3",
            "-d",
            "300ms",
            "--expect",
            "+PONG\\r\\n",
        ][..],
        &[
            "-c",
            "4",
            "--rate",
            "2000",
            "-d",
            "300ms",
            "--expect",
            "+PONG\\r\\n",
        ][..],
        &[
            "-c",
            "4",
            "--threads",
            "2",
            "-d",
            "300ms",
            "--expect",
            &from_file,
        ][..],
        &[
            "-c",
            "2",
            "--messages-per-connection",
            "3",
            "-d",
            "300ms",
            "--expect",
            "+PONG\\r\\n",
        ][..],
    ] {
        let mut all = vec!["-m", "PING\\r\\n"];
        all.extend_from_slice(args);
        let (code, json, err) = load_json(&target, &all);
        assert_eq!(code, Some(0), "{args:?}: {json}{err}");
        assert!(json_number(&json, "messages") > 10.0, "{json}");
        assert_eq!(json_number(&json, "errors.mismatch"), 0.0, "{json}");
    }
}

/// A reply that differs from `--expect` by one byte is a mismatch (exit
/// 1); so is a message the server answers with `-ERR`.
#[test]
fn a_different_reply_is_a_mismatch() {
    let target = pong_server().to_string();
    for (message, expect) in [("PING\\r\\n", "+PANG\\r\\n"), ("PONG\\r\\n", "+PONG\\r\\n")] {
        let (code, json, err) = load_json(
            &target,
            &["-c", "2", "-d", "200ms", "-m", message, "--expect", expect],
        );
        assert_eq!(code, Some(1), "{json}{err}");
        assert_eq!(json_number(&json, "errors.mismatch"), 2.0, "{json}");
        assert_eq!(json_number(&json, "messages"), 0.0, "{json}");
    }
}

/// `--no-reply` against a sink: every message counted was received by
/// it, in closed loop (as fast as the socket takes) and in open loop (the
/// schedule kept); against an echo server, the echo is a mismatch.
#[test]
fn no_reply_sends_only_and_the_sink_has_it_all() {
    let (addr, got) = sink();
    let target = addr.to_string();
    let (code, json, err) = load_json(
        &target,
        &["-c", "2", "-s", "512", "-d", "300ms", "--no-reply"],
    );
    assert_eq!(code, Some(0), "{json}{err}");
    let sent = json_number(&json, "messages") * 512.0;
    assert!(sent > 0.0, "{json}");
    common::eventually("the sink has every counted byte", || {
        got.load(Ordering::Relaxed) as f64 >= sent
    });
    let (code, json, err) = load_json(
        &target,
        &[
            "-c",
            "2",
            "-s",
            "64",
            "--rate",
            "1000",
            "-d",
            "500ms",
            "--no-reply",
        ],
    );
    assert_eq!(code, Some(0), "{json}{err}");
    assert_eq!(json_number(&json, "schedule.due"), 500.0, "{json}");
    assert_eq!(json_number(&json, "schedule.unsent"), 0.0, "{json}");
    assert!(json_number(&json, "messages") >= 450.0, "{json}");

    let echo = ServerProcess::start(&[]);
    let (code, json, _) = load_json(
        &echo.addr.to_string(),
        &["-c", "1", "-d", "200ms", "--no-reply"],
    );
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(json_number(&json, "errors.mismatch"), 1.0, "{json}");
}

/// Over UDP the generator checks its own numbered echoes; `--expect` and
/// `--no-reply` do not go together.
#[test]
fn usage_errors() {
    assert_usage_error(
        &["load", "udp://127.0.0.1:9", "--no-reply"],
        "--expect and --no-reply are for streams",
    );
    assert_usage_error(
        &["load", "127.0.0.1:9", "--no-reply", "--expect", "x"],
        "cannot be used with",
    );
    // An empty reply, a file that is not there, an escape that is not one.
    assert_usage_error(
        &["load", "127.0.0.1:9", "--expect", ""],
        "a message needs at least one byte",
    );
    assert_usage_error(
        &["load", "127.0.0.1:9", "--expect", "@/nonexistent/reply"],
        "cannot read /nonexistent/reply",
    );
    assert_usage_error(&["load", "127.0.0.1:9", "--expect", "\\q"], "--expect");
}
