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
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{
    DEADLINE, ServerProcess, assert_usage_error, bin, json_number, missing, run_bounded, scratch,
};

/// `echoloop load TARGET --json --half-close ARGS`: the exit code and the
/// JSON summary.
fn load(target: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = bin();
    cmd.args(["load", target, "--json", "--half-close"])
        .args(args);
    let out = run_bounded(cmd, DEADLINE);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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

/// nginx, the stream module, in front of `server --delay 300ms`.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(dir: &Path, backend: u16, half_close: bool) -> Nginx {
        let port = common::free_port();
        let d = dir.display();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
                 worker_processes 1;\nmaster_process off;\ndaemon off;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log;\nevents {{ worker_connections 256; }}\n\
                 stream {{\n  server {{\n    listen 127.0.0.1:{port};\n    proxy_pass 127.0.0.1:{backend};\n\
                 {}  }}\n}}\n",
                if half_close { "    proxy_half_close on;\n" } else { "" }
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx { child, port };
        common::eventually("nginx listens", || {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}): {log}");
            }
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Real nginx: without `proxy_half_close` it ends the whole session on
/// the client's FIN, so echoes the server still holds (`--delay 300ms`)
/// never come back: each connection is a half_close error. With
/// `proxy_half_close on` every echo and the EOF come through.
#[test]
fn nginx_without_proxy_half_close_is_caught() {
    let module = Path::new("/usr/lib/nginx/modules/ngx_stream_module.so");
    if Command::new("nginx").arg("-v").output().is_err() || !module.exists() {
        missing("nginx with its stream module (libnginx-mod-stream) is not installed");
        return;
    }
    let backend = ServerProcess::start(&["--delay", "300ms"]);
    for (half_close, broken) in [(false, true), (true, false)] {
        let dir = scratch("half-close", if half_close { "on" } else { "off" });
        let nginx = Nginx::start(&dir, backend.addr.port(), half_close);
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
