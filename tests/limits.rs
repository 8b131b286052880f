//! Limits: --max-connections, --idle-timeout, and running out of file
//! descriptors (EMFILE) without dying or spinning.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{ServerProcess, bin, read_to_eof, round_trip};

/// Reads nothing for `wait`: the server is not serving this connection.
#[track_caller]
fn assert_no_reply_within(s: &mut TcpStream, wait: Duration) {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 16];
    match s.read(&mut b) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected no reply yet, got {other:?}"),
    }
    s.set_read_timeout(Some(common::DEADLINE)).unwrap();
}

/// At the limit the third peer waits in the backlog, unserved; as soon as
/// one of the first two closes, it is accepted and echoed.
#[test]
fn max_connections_holds_newcomers_until_a_slot_frees() {
    let mut server = ServerProcess::start(&["--max-connections", "2", "--stats", "0.1"]);
    let mut first = server.connect();
    let mut second = server.connect();
    round_trip(&mut first, b"one");
    round_trip(&mut second, b"two");

    let mut third = server.connect(); // the kernel completes the handshake
    third.write_all(b"three").unwrap();
    assert_no_reply_within(&mut third, Duration::from_millis(300));
    // Not at one moment but over a stretch: five stats lines after the
    // third peer came (half a second and more), each with two open and
    // none accepted in its interval.
    server.skip_stderr();
    for _ in 0..5 {
        let stats = server.wait_stats(|_| true);
        assert_eq!(
            (stats.get("open"), stats.get("accepted")),
            (2.0, 0.0),
            "the third peer was let in"
        );
    }
    assert_no_reply_within(&mut third, Duration::from_millis(10));

    drop(first);
    let mut back = [0u8; 5];
    third.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"three");
    round_trip(&mut second, b"two again");
}

/// A silent connection is closed after --idle-timeout; one that keeps
/// talking is not.
#[test]
fn idle_timeout_closes_only_the_silent() {
    let server = ServerProcess::start(&["--idle-timeout", "0.5"]);
    let mut silent = server.connect();
    let mut chatty = server.connect();
    round_trip(&mut silent, b"hi");
    let quiet_since = Instant::now();

    // Keep `chatty` busy for well over the timeout, one byte every 50 ms
    // (the pace is the behaviour under test, not synchronisation), while
    // this thread waits for the silent peer's EOF and notes when it came.
    let talker = std::thread::spawn(move || {
        while quiet_since.elapsed() < Duration::from_millis(1200) {
            round_trip(&mut chatty, b".");
            std::thread::sleep(Duration::from_millis(50));
        }
        chatty
    });
    assert_eq!(read_to_eof(&mut silent), b"", "silent peer gets EOF");
    let closed_after = quiet_since.elapsed();
    assert!(
        closed_after >= Duration::from_millis(500),
        "closed after {closed_after:?}, before the 500 ms idle timeout"
    );
    let mut chatty = talker.join().unwrap();
    round_trip(&mut chatty, b"still open");
}

/// Out of file descriptors: the server logs once, does not spin (a handful
/// of polls per interval, not thousands), and accepts the waiting peers as
/// soon as descriptors free up.
#[test]
fn emfile_pauses_accepting_without_spinning_and_recovers() {
    // Limit the server (only) to 16 descriptors: about 8 connections.
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -n 16 && exec "$0" server --bind 127.0.0.1:0 --stats 0.5"#)
        .arg(bin().get_program());
    let mut server = ServerProcess::spawn(cmd);

    let mut clients: Vec<TcpStream> = (0..20u8)
        .map(|i| {
            let mut s = server.connect();
            s.write_all(&[b'a' + i]).unwrap();
            s
        })
        .collect();
    server.wait_stderr(|l| l.contains("accept failed"));

    // Two full stats intervals while fds are exhausted.
    server.skip_stderr();
    server.wait_stats(|_| true);
    let stats = server.wait_stats(|_| true);
    assert!(stats.get("accept_errors") >= 1.0);
    assert!(
        stats.get("polls") <= 50.0,
        "the loop spun: {} polls in 0.5 s",
        stats.get("polls")
    );

    // Serve them all, freeing one descriptor after each.
    for (i, mut client) in clients.drain(..).enumerate() {
        let mut b = [0u8; 1];
        client.read_exact(&mut b).unwrap();
        assert_eq!(b[0], b'a' + i as u8);
    }
    server.wait_stderr(|l| l.contains("accept caught up"));
    let (_, _, stderr) = {
        server.signal(libc::SIGTERM);
        server.wait_exit()
    };
    let warnings = stderr
        .iter()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert_eq!(warnings, 1, "one warning per burst:\n{}", stderr.join("\n"));
}
