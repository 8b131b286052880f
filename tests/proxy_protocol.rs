//! The PROXY protocol end to end: `server --proxy-protocol` reads v1 and
//! v2 headers however they arrive and names the client they carry in its
//! log, its summary and its metrics; it closes and counts a connection
//! without a valid header (bad, too long, too late, gone). `load
//! --proxy-protocol v1|v2 [--proxy-source]` sends them, plain and over
//! TLS; real haproxy's `send-proxy` and `send-proxy-v2` are read the
//! same, with TLS terminated at haproxy.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{
    DEADLINE, Haproxy, ServerProcess, assert_usage_error, bin, eventually, json_number, load_json,
    metric, run_bounded, scrape, scratch, server_with_metrics,
};

const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// A v2 PROXY header for TCP over IPv4 from `client` (a, b, c, d, port).
fn v2_header(client: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.extend([0x21, 0x11, 0, 12]);
    h.extend(client);
    h.extend([127, 0, 0, 1]);
    h.extend(port.to_be_bytes());
    h.extend(7878u16.to_be_bytes());
    h
}

/// Whether the server closed `s`: a read ends (EOF or reset) within the
/// deadline.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    }
}

/// Nothing comes back within a short while (the server waits for more).
fn still_waiting(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
}

/// Sends `bytes` after a header, then reads exactly them back.
fn echoes(s: &mut TcpStream, bytes: &[u8]) {
    s.write_all(bytes).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut back = vec![0u8; bytes.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, bytes);
}

/// Hand-made headers: v1 with the first bytes of data in the same write,
/// v2 cut in three writes, LOCAL (a health check). The echo carries only
/// what follows each header, and the log names the header's client.
#[test]
fn headers_whole_or_cut_are_taken_and_their_client_named() {
    let mut cmd = bin();
    cmd.env("RUST_LOG", "debug")
        .args(["server", "--bind", "127.0.0.1:0", "--proxy-protocol"]);
    let mut server = ServerProcess::spawn(cmd);

    let mut v1 = server.connect();
    v1.write_all(b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 7878\r\nfirst")
        .unwrap();
    let mut back = [0u8; 5];
    v1.set_read_timeout(Some(DEADLINE)).unwrap();
    v1.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"first");
    echoes(&mut v1, b"second");
    let line = server.wait_stderr(|l| l.contains("accept conn=#1"));
    assert!(line.contains("peer=192.0.2.7:40000"), "{line}");

    let mut v2 = server.connect();
    v2.set_nodelay(true).unwrap();
    let header = v2_header([198, 51, 100, 9], 5555);
    for part in [&header[..5], &header[5..17]] {
        v2.write_all(part).unwrap();
        assert!(still_waiting(&mut v2), "a cut header is waited for");
    }
    v2.write_all(&header[17..]).unwrap();
    echoes(&mut v2, b"after a cut header");
    let line = server.wait_stderr(|l| l.contains("accept conn=#2"));
    assert!(line.contains("peer=198.51.100.9:5555"), "{line}");

    let mut local = server.connect();
    local.write_all(V2_SIGNATURE).unwrap();
    local.write_all(&[0x20, 0x00, 0, 0]).unwrap();
    echoes(&mut local, b"health check");
    let line = server.wait_stderr(|l| l.contains("accept conn=#3"));
    assert!(
        line.contains("peer=127.0.0.1:"),
        "LOCAL names no client: {line}"
    );

    // The close line names the client too.
    v1.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed_by_server(&mut v1));
    let line = server.wait_stderr(|l| l.contains("close conn=#1"));
    assert!(line.contains("peer=192.0.2.7:40000"), "{line}");
    drop((v2, local));

    server.signal(libc::SIGTERM);
    let (status, out, _) = server.wait_exit();
    assert!(status.success());
    let summary = out.last().unwrap();
    assert!(
        summary.ends_with(
            "; proxy headers v1 1 v2 1 local 1, refused bad 0 oversized 0 timed out 0 left 0, \
             last client 198.51.100.9:5555"
        ),
        "{summary}"
    );
}

/// What is not a valid header is closed and counted by reason, in the
/// summary and in the metrics: not a header, a v1 line past 107 bytes, a
/// v2 header that says it is 60,000 bytes long, a header unfinished at
/// --idle-timeout, a peer gone before its header was whole.
#[test]
fn connections_without_a_valid_header_are_closed_and_counted() {
    let (server, metrics) = server_with_metrics(&["--proxy-protocol", "--idle-timeout", "300ms"]);

    let mut bad = server.connect();
    bad.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(closed_by_server(&mut bad), "not a header");

    let mut long_v1 = server.connect();
    long_v1.write_all(b"PROXY TCP4 ").unwrap();
    long_v1.write_all(&[b'1'; 120]).unwrap();
    assert!(closed_by_server(&mut long_v1), "a v1 line past 107 bytes");

    let mut long_v2 = server.connect();
    let mut header = V2_SIGNATURE.to_vec();
    header.extend([0x21, 0x11]);
    header.extend(60_000u16.to_be_bytes());
    long_v2.write_all(&header).unwrap();
    assert!(
        closed_by_server(&mut long_v2),
        "a v2 header of 60,000 bytes"
    );

    let mut slow = server.connect();
    slow.write_all(b"PROXY TCP4 192.0.2.7").unwrap();
    assert!(closed_by_server(&mut slow), "unfinished at --idle-timeout");

    let mut gone = server.connect();
    gone.write_all(b"PROXY TC").unwrap();
    drop(gone);

    let count = |name: &str| metric(&scrape(metrics), name).unwrap_or(-1.0);
    eventually("the peer that left is counted", || {
        count("echoloop_proxy_refused_left_total") == 1.0
    });
    for (name, n) in [
        ("echoloop_proxy_refused_bad_total", 1.0),
        ("echoloop_proxy_refused_oversized_total", 2.0),
        ("echoloop_proxy_refused_timed_out_total", 1.0),
        ("echoloop_proxy_headers_v1_total", 0.0),
        ("echoloop_connections_accepted_total", 0.0),
    ] {
        assert_eq!(count(name), n, "{name}");
    }

    server.signal(libc::SIGTERM);
    let (status, out, _) = server.wait_exit();
    assert!(status.success());
    let summary = out.last().unwrap();
    assert!(
        summary.ends_with(
            "; proxy headers v1 0 v2 0 local 0, refused bad 1 oversized 2 timed out 1 left 1"
        ),
        "{summary}"
    );
}

/// `load --proxy-protocol` against `server --proxy-protocol`, plain and
/// over TLS, with churn: every connection the generator opened is one
/// header of its version at the server, and `--proxy-source` is the
/// client the server names.
#[test]
fn the_generator_sends_each_version_and_the_server_names_its_client() {
    for tls in [false, true] {
        for (version, series) in [
            ("v1", "echoloop_proxy_headers_v1_total"),
            ("v2", "echoloop_proxy_headers_v2_total"),
        ] {
            let mut args = vec!["--proxy-protocol"];
            if tls {
                args.push("--tls");
            }
            let (server, metrics) = server_with_metrics(&args);
            let target = match tls {
                true => format!("tls://{}", server.addr),
                false => server.addr.to_string(),
            };
            let mut load = vec![
                "-c",
                "4",
                "-d",
                "300ms",
                "--messages-per-connection",
                "3",
                "--proxy-protocol",
                version,
                "--proxy-source",
                "192.0.2.7",
            ];
            if tls {
                load.push("-k");
            }
            let (code, json, err) = load_json(&target, &load);
            assert_eq!(code, Some(0), "{target} {version}: {json}{err}");
            assert_eq!(json_number(&json, "errors.reset"), 0.0, "{json}");
            let connects = json_number(&json, "connects");
            assert!(connects >= 4.0, "{json}");
            // `connects` counts those made inside the window: the 4
            // opened before the clock started are not among them, nor
            // up to 4 whose connect ended after the window.
            let mut seen = 0.0;
            eventually("every header counted", || {
                let now = metric(&scrape(metrics), series).unwrap_or(0.0);
                let settled = now == seen && now >= connects + 4.0;
                seen = now;
                settled
            });
            assert!(
                seen <= connects + 8.0,
                "{seen} headers, {connects} connects"
            );
            server.signal(libc::SIGTERM);
            let (status, out, _) = server.wait_exit();
            assert!(status.success());
            let summary = out.last().unwrap();
            assert!(
                summary.contains(", last client 192.0.2.7:"),
                "{target} {version}: {summary}"
            );
            assert!(
                summary.contains("refused bad 0 oversized 0 timed out 0"),
                "{summary}"
            );
        }
    }
}

/// A load without a header against a server that expects one: each
/// connection is refused (the generator sees resets or closes), none is
/// echoed, and the server counts them as bad.
#[test]
fn a_load_without_a_header_is_refused() {
    let (server, metrics) = server_with_metrics(&["--proxy-protocol"]);
    let (code, json, _) = load_json(&server.addr.to_string(), &["-c", "2", "-d", "200ms"]);
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(json_number(&json, "messages"), 0.0, "{json}");
    eventually("both counted as bad", || {
        metric(&scrape(metrics), "echoloop_proxy_refused_bad_total") == Some(2.0)
    });
}

/// Real haproxy in front of `server --proxy-protocol`: `send-proxy` (v1)
/// and `send-proxy-v2`, and TLS terminated at haproxy with a certificate
/// from `echoloop generate cert`. haproxy connects to the server from
/// 127.0.0.1; the generator connects to haproxy from 127.0.0.2, and the
/// server names 127.0.0.2: the address came from the header.
#[test]
fn haproxy_send_proxy_and_send_proxy_v2_name_the_client() {
    let dir = scratch("proxy_protocol", "haproxy");
    let out = run_bounded(
        {
            let mut c = bin();
            c.args(["generate", "cert"]).arg(&dir);
            c
        },
        DEADLINE,
    );
    assert!(out.status.success(), "{out:?}");
    let pem = [
        std::fs::read(dir.join("cert.pem")).unwrap(),
        std::fs::read(dir.join("key.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(dir.join("haproxy.pem"), pem).unwrap();

    let mut cmd = bin();
    cmd.env("RUST_LOG", "debug")
        .args(["server", "--bind", "127.0.0.1:0", "--proxy-protocol"]);
    let mut server = ServerProcess::spawn(cmd);
    let to = server.addr;
    let (v2_port, tls_port) = (common::free_port(), common::free_port());
    let d = dir.display();
    let v1_port = common::free_port();
    // The first frontend is where Haproxy::start knocks to see haproxy
    // up: it leads nowhere, so that knock is not one of the connections.
    let Some(_haproxy) = Haproxy::start(&dir, |port| {
        format!(
            "listen knock\n  bind 127.0.0.1:{port}\n\
             listen v1\n  bind 127.0.0.1:{v1_port}\n  server s1 {to} send-proxy\n\
             listen v2\n  bind 127.0.0.1:{v2_port}\n  server s1 {to} send-proxy-v2\n\
             listen tls\n  bind 127.0.0.1:{tls_port} ssl crt {d}/haproxy.pem\n  \
             server s1 {to} send-proxy-v2\n"
        )
    }) else {
        return;
    };
    let cacert = format!("{d}/cert.pem");
    let runs = [
        (format!("127.0.0.1:{v1_port}"), vec![]),
        (format!("127.0.0.1:{v2_port}"), vec![]),
        (
            format!("tls://localhost:{tls_port}"),
            vec!["--cacert", cacert.as_str()],
        ),
    ];
    for (target, extra) in &runs {
        let mut args = vec!["-c", "2", "-d", "300ms", "--source", "127.0.0.2"];
        args.extend(extra);
        let (code, json, err) = load_json(target, &args);
        assert_eq!(code, Some(0), "{target}: {json}{err}");
        assert!(json_number(&json, "messages") > 0.0, "{json}");
        let peers = common::accepted_peers(&mut server, 2);
        assert_eq!(peers, ["127.0.0.2", "127.0.0.2"], "{target}");
        server.skip_stderr();
    }
    server.signal(libc::SIGTERM);
    let (status, out, err) = server.wait_exit();
    assert!(status.success());
    let summary = out.last().unwrap();
    assert!(
        summary.contains("; proxy headers v1 2 v2 4 local ")
            && summary.contains("refused bad 0 oversized 0 timed out 0"),
        "{summary}\n{}",
        err.join("\n")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Bad values and combinations: exit 2, with the reason.
#[test]
fn bad_proxy_options_are_usage_errors() {
    assert_usage_error(
        &["load", "127.0.0.1:9", "--proxy-protocol", "v3"],
        "invalid value 'v3' for '--proxy-protocol <VERSION>'",
    );
    assert_usage_error(
        &["load", "127.0.0.1:9", "--proxy-source", "192.0.2.7"],
        "--proxy-protocol <VERSION>",
    );
    assert_usage_error(
        &[
            "load",
            "127.0.0.1:9",
            "--proxy-protocol",
            "v1",
            "--proxy-source",
            "example.com",
        ],
        "\"example.com\" is not an IP address or IP:PORT",
    );
    assert_usage_error(
        &[
            "load",
            "127.0.0.1:9",
            "--proxy-protocol",
            "v2",
            "--proxy-source",
            "2001:db8::7",
        ],
        "--proxy-source 2001:db8::7: a PROXY header names one family",
    );
    assert_usage_error(
        &["load", "udp://127.0.0.1:9", "--proxy-protocol", "v2"],
        "--proxy-protocol is for TCP targets",
    );
    assert_usage_error(
        &["load", "unix:/tmp/nothing", "--proxy-protocol", "v2"],
        "--proxy-protocol is for TCP targets",
    );
}
