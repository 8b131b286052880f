//! `echoloop load --message`, `--message-file` and `--first-message`:
//! what goes on the wire is exactly what was asked for, byte for byte, as
//! a recording echo server sees it; each echo is checked; and the first
//! message's echo rule works both ways (echoed, or consumed on the way).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread;

use common::Bounded as _;
use common::{DEADLINE, ServerProcess, bin, json_number};

/// What each connection of a [`recording_server`] received, in order of
/// acceptance.
type Recorded = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

/// An echo server on its own threads that also records every byte each
/// connection sent. When `consume_line` is set it first reads one line
/// (up to `\n`) and does not echo it, as a proxy that eats a header would.
fn recording_server(consume_line: bool) -> (SocketAddr, Recorded) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let recorded: Recorded = Arc::default();
    let all = recorded.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mine: Arc<Mutex<Vec<u8>>> = Arc::default();
            all.lock().unwrap().push(mine.clone());
            thread::spawn(move || {
                s.set_read_timeout(Some(DEADLINE)).unwrap();
                let mut eating = consume_line;
                let mut buf = [0u8; 16384];
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    mine.lock().unwrap().extend_from_slice(&buf[..n]);
                    let mut echo = &buf[..n];
                    if eating {
                        if let Some(end) = echo.iter().position(|&b| b == b'\n') {
                            echo = &echo[end + 1..];
                            eating = false;
                        } else {
                            continue;
                        }
                    }
                    if s.write_all(echo).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, recorded)
}

/// `echoloop load ADDR --json ARGS`, bounded: exit code and JSON.
fn load_json(addr: SocketAddr, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = bin();
    cmd.args(["load", &addr.to_string(), "--json"]).args(args);
    let out = common::run_bounded(cmd, DEADLINE);
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

/// Each recorded stream, whole, once the run is over.
fn streams(recorded: &Recorded) -> Vec<Vec<u8>> {
    let all = recorded.lock().unwrap();
    all.iter().map(|s| s.lock().unwrap().clone()).collect()
}

/// Whether `stream` is `head`, then copies of `message`, the last of
/// which may be cut short (the run ended while it was being written):
/// returns how many whole copies.
fn repeats(stream: &[u8], head: &[u8], message: &[u8]) -> Option<usize> {
    let rest = stream.strip_prefix(head)?;
    let copies = rest.chunks(message.len());
    copies
        .clone()
        .all(|c| message.starts_with(c))
        .then(|| copies.filter(|c| c.len() == message.len()).count())
}

/// `--message` with escapes: every connection sends exactly the message,
/// over and over; the size is its length; every echo checks out.
#[test]
fn a_message_goes_on_the_wire_exactly() {
    let (addr, recorded) = recording_server(false);
    let args = [
        "-c",
        "3",
        "-d",
        "300ms",
        "--message",
        "PING \\x01\\t\\\\\\r\\n",
    ];
    let (code, json) = load_json(addr, &args);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json_number(&json, "size"), 10.0, "{json}");
    assert!(json_number(&json, "messages") > 0.0, "{json}");
    let streams = streams(&recorded);
    assert_eq!(streams.len(), 3);
    for s in &streams {
        let whole = repeats(s, b"", b"PING \x01\t\\\r\n");
        assert!(whole.is_some_and(|n| n >= 1), "{s:?}");
    }
}

/// `--message-file`: a 100 KiB file of random bytes is each message, in
/// closed loop with two in flight and in open loop; every byte of every
/// echo is checked (no mismatch), and the wire carries whole copies.
#[test]
fn a_message_file_is_each_message_byte_for_byte() {
    let file = common::scratch("payloads", "message").join("message.bin");
    let payload = common::Rng::new(7).bytes(100 * 1024);
    std::fs::write(&file, &payload).unwrap();
    let path = file.to_str().unwrap();
    for mode in [&["--pipeline", "2"][..], &["--rate", "200"][..]] {
        let (addr, recorded) = recording_server(false);
        let mut args = vec!["-c", "2", "-d", "300ms", "--message-file", path];
        args.extend_from_slice(mode);
        let (code, json) = load_json(addr, &args);
        assert_eq!(code, Some(0), "{mode:?}: {json}");
        assert_eq!(json_number(&json, "size"), 102_400.0, "{json}");
        assert_eq!(json_number(&json, "errors.mismatch"), 0.0, "{json}");
        assert!(json_number(&json, "messages") >= 2.0, "{json}");
        // One recorded stream per connection: the loop below checks both.
        let recorded = streams(&recorded);
        assert_eq!(recorded.len(), 2, "{mode:?}: two connections");
        for s in recorded {
            let whole = repeats(&s, b"", &payload);
            assert!(whole.is_some_and(|n| n >= 1), "{mode:?}: {} B", s.len());
        }
    }
}

/// `--first-message` echoed (the default): each connection opens with it
/// (here from a file), waits for its echo, then sends its messages; with
/// churn (a new socket every 3 messages) and two threads, every socket
/// carries the greeting once and exactly three messages.
#[test]
fn a_first_message_opens_every_connection() {
    let hello = common::scratch("payloads", "hello").join("hello.txt");
    std::fs::write(&hello, b"HELLO proxy v1\n").unwrap();
    let at = format!("@{}", hello.to_str().unwrap());
    let (addr, recorded) = recording_server(false);
    let args = [
        "-c",
        "4",
        "-d",
        "300ms",
        "--threads",
        "2",
        "--messages-per-connection",
        "3",
        "-m",
        "msg\\n",
        "--first-message",
        &at,
    ];
    let (code, json) = load_json(addr, &args);
    assert_eq!(code, Some(0), "{json}");
    let streams = streams(&recorded);
    assert!(streams.len() > 4, "churned: {} sockets", streams.len());
    // The sockets still open at the end may have carried fewer.
    let full = streams
        .iter()
        .filter(|s| repeats(s, b"HELLO proxy v1\n", b"msg\n") == Some(3))
        .count();
    assert!(
        full >= streams.len() - 4,
        "{full} of {}: {:?}",
        streams.len(),
        streams
            .iter()
            .map(|s| String::from_utf8_lossy(s))
            .collect::<Vec<_>>()
    );
    // (A socket opened as the run ended may have carried nothing.)
    for s in streams.iter().filter(|s| !s.is_empty()) {
        assert!(s.starts_with(b"HELLO proxy v1\n"), "{s:?}");
    }
}

/// `--first-message-echo off`: through a path that consumes the first
/// line, the run is clean; against a plain echo server, which does echo
/// it, the first message's bytes arrive where a message was expected: a
/// mismatch, as the rule says.
#[test]
fn a_consumed_first_message_is_not_awaited() {
    let (addr, recorded) = recording_server(true);
    let args = [
        "-c",
        "2",
        "-d",
        "300ms",
        "-1",
        "PROXY TCP4 127.0.0.1 127.0.0.1 1 2\\r\\n",
        "--first-message-echo",
        "off",
    ];
    let (code, json) = load_json(addr, &args);
    assert_eq!(code, Some(0), "{json}");
    assert!(json_number(&json, "messages") > 0.0, "{json}");
    let recorded = streams(&recorded);
    assert_eq!(recorded.len(), 2, "one recorded stream per connection");
    for s in recorded {
        assert!(
            s.starts_with(b"PROXY TCP4 127.0.0.1 127.0.0.1 1 2\r\n"),
            "{s:?}"
        );
    }
    let server = ServerProcess::start(&[]);
    let (code, json) = load_json(server.addr, &args);
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(json_number(&json, "errors.mismatch"), 2.0, "{json}");
}

/// Bad payload options: one clear line, exit 2.
#[test]
fn bad_payload_options_are_usage_errors() {
    let empty = common::scratch("payloads", "empty").join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    let empty = empty.to_str().unwrap().to_string();
    let cases: [(&[&str], &str); 8] = [
        (&["-m", ""], "at least one byte"),
        (&["-m", "a\\q"], "`\\q` is not an escape"),
        (&["-m", "a\\x4"], "two hex digits"),
        (&["-m", "a\\"], "lone backslash"),
        (&["-f", &empty], "is empty"),
        (&["-f", "/nonexistent/x"], "cannot read /nonexistent/x"),
        (&["-s", "10", "-m", "x"], "cannot be used with"),
        (&["--first-message-echo", "off"], "--first-message"),
    ];
    for (args, says) in cases {
        common::assert_usage_error(&[&["load", "127.0.0.1:9"][..], args].concat(), says);
    }
    let out = bin()
        .args(["load", "udp://127.0.0.1:9", "-m", "x"])
        .bounded();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("are for streams"), "{err}");
}
