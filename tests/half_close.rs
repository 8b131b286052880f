//! `load --half-close`: each connection ends with the generator's FIN
//! after its last message, still expects every echo, then the server's
//! EOF. Against `echoloop server` (TCP and TLS, churn and long-lived),
//! nothing is an error; against real nginx's stream module without
//! `proxy_half_close` in front of a slow server, the proxy's early close
//! is a `half_close` error, and with it, none; a server that never sends
//! its EOF is one too.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::{
    DEADLINE, Nginx, ServerProcess, assert_usage_error, bin, json_number, load_json, run_bounded,
    scratch,
};

/// `echoloop load TARGET --json --half-close ARGS`.
fn load(target: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["--half-close"];
    all.extend_from_slice(args);
    load_json(target, &all)
}

/// Against echoloop's own server, which echoes what is owed after a FIN
/// and then closes: every message comes back and every connection ends
/// cleanly, with churn (`--messages-per-connection`) and without (the
/// FIN goes when the window ends), over TCP and over TLS (close_notify
/// before the FIN).
#[test]
fn echoloop_server_ends_every_half_closed_connection_cleanly() {
    let server = ServerProcess::start(&[]);
    let target = server.addr.to_string();
    for args in [
        &["-c", "4", "-d", "400ms", "--messages-per-connection", "3"][..],
        &["-c", "4", "-d", "300ms", "--pipeline", "4"][..],
    ] {
        let (code, json, err) = load(&target, args);
        assert_eq!(code, Some(0), "{args:?}: {json}{err}");
        assert_eq!(json_number(&json, "errors.half_close"), 0.0, "{json}");
        assert!(json_number(&json, "messages") > 0.0, "{json}");
    }
    let tls = ServerProcess::start(&["--tls"]);
    let (cert, _) = tls.tls_cert.clone().unwrap();
    let target = format!("tls://localhost:{}", tls.addr.port());
    let (code, json, err) = load(
        &target,
        &[
            "--cacert",
            &cert,
            "-c",
            "3",
            "-d",
            "400ms",
            "--messages-per-connection",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{json}{err}");
    assert_eq!(json_number(&json, "errors.half_close"), 0.0, "{json}");
    assert_eq!(json_number(&json, "errors.truncated"), 0.0, "{json}");
}

/// A server that echoes everything but never closes after the client's
/// FIN: each connection waits out --timeout for the EOF, then is a
/// half_close error, and the human summary shows the kind.
#[test]
fn a_server_that_never_sends_eof_is_a_half_close_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                // EOF read: hold the socket open, never answer with ours.
                std::thread::sleep(std::time::Duration::from_secs(20));
            });
        }
    });
    let mut cmd = bin();
    cmd.args(["load", &addr.to_string(), "--half-close", "-c", "2"])
        .args([
            "--messages-per-connection",
            "2",
            "--timeout",
            "300ms",
            "-d",
            "200ms",
        ]);
    let out = run_bounded(cmd, DEADLINE);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("  half-close 2"), "{stdout}");
    assert!(stderr.contains(", half-close 2"), "{stderr}");
}

/// Real nginx: without `proxy_half_close` it ends the whole session on
/// the client's FIN, so echoes the server still holds (`--delay 300ms`)
/// never come back: each connection is a half_close error. With
/// `proxy_half_close on` every echo and the EOF come through.
#[test]
fn nginx_without_proxy_half_close_is_caught() {
    if !common::have_nginx_stream() {
        return;
    }
    let backend = ServerProcess::start(&["--delay", "300ms"]);
    for (half_close, broken) in [(false, true), (true, false)] {
        let dir = scratch("half-close", if half_close { "on" } else { "off" });
        let nginx = Nginx::start(&dir, |port| {
            format!(
                "    listen 127.0.0.1:{port};\n    proxy_pass 127.0.0.1:{};\n{}",
                backend.addr.port(),
                if half_close {
                    "    proxy_half_close on;\n"
                } else {
                    ""
                }
            )
        });
        let target = format!("127.0.0.1:{}", nginx.port);
        let (code, json, err) = load(
            &target,
            &[
                "-c",
                "2",
                "--messages-per-connection",
                "1",
                "-d",
                "200ms",
                "--timeout",
                "2s",
            ],
        );
        let errors = json_number(&json, "errors.half_close");
        if broken {
            assert_eq!(code, Some(1), "{json}{err}");
            assert!(errors >= 1.0, "nginx closed early: {json}");
            assert_eq!(json_number(&json, "errors.mismatch"), 0.0, "{json}");
        } else {
            assert_eq!(code, Some(0), "{json}{err}");
            assert_eq!(errors, 0.0, "{json}");
            assert!(json_number(&json, "messages") >= 2.0, "{json}");
        }
    }
}

/// Over UDP there is no FIN: a usage error.
#[test]
fn half_close_over_udp_is_a_usage_error() {
    assert_usage_error(
        &["load", "udp://127.0.0.1:9", "--half-close"],
        "--half-close is for streams: a datagram socket has no FIN",
    );
}
