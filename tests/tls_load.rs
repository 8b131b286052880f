//! `echoloop load tls://…` against `echoloop server --tls` and against
//! nginx's stream module terminating TLS in front of the plain server:
//! every byte verified, closed and open loop, threads, handshakes counted
//! with resumption on and off, the handshake log read back by `report`.

mod common;

use std::path::Path;
use std::process::Output;

use common::Bounded as _;
use common::{DEADLINE, Nginx, ServerProcess, bin, json_at, json_number, run_bounded, scratch};

/// `echoloop load TARGET ARGS --json`, bounded; asserts exit 0 and no
/// error of any kind, and returns the JSON.
#[track_caller]
fn clean_run(target: &str, args: &[&str]) -> String {
    let out = load(target, args);
    let json = common::clean_stdout(out);
    for kind in [
        "connect",
        "closed",
        "reset",
        "timeout",
        "mismatch",
        "handshake",
        "truncated",
        "corrupt",
    ] {
        assert_eq!(
            json_number(&json, &format!("errors.{kind}")),
            0.0,
            "{kind}: {json}"
        );
    }
    assert!(json_number(&json, "messages") > 0.0, "{json}");
    json
}

fn load(target: &str, args: &[&str]) -> Output {
    let mut cmd = bin();
    cmd.arg("load").arg(target).args(args).arg("--json");
    run_bounded(cmd, DEADLINE)
}

/// A TLS server, its `tls://` target and its certificate file.
fn tls_server(args: &[&str]) -> (ServerProcess, String, String) {
    let mut all = vec!["--tls"];
    all.extend_from_slice(args);
    let server = ServerProcess::start(&all);
    let (cert, _) = server.tls_cert.clone().expect("a certificate line");
    let target = format!("tls://localhost:{}", server.addr.port());
    (server, target, cert)
}

/// The server's summary line, after SIGTERM.
fn summary(server: ServerProcess) -> String {
    server.signal(libc::SIGTERM);
    let (_, out, _) = server.wait_exit();
    out.last().cloned().unwrap_or_default()
}

/// Closed loop, pipelined, open loop, threads and 16 KiB messages: every
/// echo checked byte for byte, no error; the connections end with a
/// close_notify, so the server counts no truncation.
#[test]
fn every_mode_runs_over_tls_with_every_byte_checked() {
    let (server, target, cert) = tls_server(&[]);
    let base = ["--cacert", cert.as_str(), "-c", "4", "-d", "300ms"];
    for extra in [
        &[][..],
        &["--pipeline", "4"][..],
        &["--rate", "2000"][..],
        &["--threads", "2"][..],
        &["-s", "16384"][..],
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let json = clean_run(&target, &args);
        assert_eq!(
            json_number(&json, "tls.handshakes"),
            0.0,
            "all before the window: {json}"
        );
    }
    let line = summary(server);
    assert!(
        line.contains(", refused 0 aborted 0 timed out 0, truncated 0,"),
        "{line}"
    );
}

/// Churn (one message per connection): every connection a handshake,
/// counted full or resumed; resumed only when both sides resume.
#[test]
fn churn_counts_handshakes_and_resumes_only_when_on() {
    for (server_args, client_args, resumes) in [
        (&[][..], &[][..], true),
        (&[][..], &["--tls-resume", "never"][..], false),
        (&["--tls-resumption", "off"][..], &[][..], false),
        (
            &["--tls-resumption", "ids"][..],
            &["--tls-resume", "ids"][..],
            true,
        ),
    ] {
        let (server, target, cert) = tls_server(server_args);
        let mut args = vec!["--cacert", cert.as_str(), "-c", "2", "-d", "300ms"];
        args.extend(["--messages-per-connection", "1"]);
        args.extend_from_slice(client_args);
        let json = clean_run(&target, &args);
        let (full, resumed) = (
            json_number(&json, "tls.full"),
            json_number(&json, "tls.resumed"),
        );
        assert!(full + resumed > 10.0, "{json}");
        assert_eq!(json_number(&json, "tls.handshakes"), full + resumed);
        if resumes {
            assert!(
                json_number(&json, "tls.resumed_fraction") > 0.9,
                "{client_args:?}: {json}"
            );
        } else {
            assert_eq!(resumed, 0.0, "{server_args:?} {client_args:?}: {json}");
        }
        assert!(
            json_number(&json, "tls.handshake_latency_us.p50") > 0.0,
            "{json}"
        );
        // A connection still in its handshake when the run ends leaves
        // without finishing it: the server counts that as aborted (at most
        // one per connection), never as refused; a finished one says
        // close_notify.
        let line = summary(server);
        let aborted: u32 = line
            .split(" aborted ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(aborted <= 2, "{line}");
        assert!(line.contains(", refused 0 aborted "), "{line}");
        assert!(line.contains(" timed out 0,"), "{line}");
        assert!(line.contains(", truncated 0,"), "{line}");
    }
}

/// Resumption holds under churn at any connection count, with default
/// options: 50 connections reconnecting at once each find a ticket (the
/// generator keeps two per connection; rustls's own store keeps 8 per
/// server, and resumed only 19% of such a run's handshakes).
#[test]
fn resumption_holds_under_churn_at_fifty_connections() {
    let (server, target, cert) = tls_server(&[]);
    let args = [
        "--cacert",
        cert.as_str(),
        "-c",
        "50",
        "--messages-per-connection",
        "1",
        "-d",
        "1s",
    ];
    let json = clean_run(&target, &args);
    let (full, resumed) = (
        json_number(&json, "tls.full"),
        json_number(&json, "tls.resumed"),
    );
    assert!(full + resumed >= 100.0, "two rounds of 50 at least: {json}");
    assert!(json_number(&json, "tls.resumed_fraction") >= 0.95, "{json}");
    drop(server);
}

/// `--hdr-log` logs the handshakes under TAG-handshake; `report` reads
/// them as a side histogram; intervals show handshakes per second.
#[test]
fn the_handshake_log_is_reported() {
    let (_server, target, cert) = tls_server(&[]);
    let dir = scratch("tls-load", "hlog");
    let log = dir.join("run.hlog");
    let out = load(
        &target,
        &[
            "--cacert",
            &cert,
            "-c",
            "2",
            "-d",
            "400ms",
            "--messages-per-connection",
            "1",
            "--interval",
            "200ms",
            "--tag",
            "edge",
            "--hdr-log",
            log.to_str().unwrap(),
        ],
    );
    let stdout = common::clean_stdout(out);
    let first = stdout.lines().next().unwrap();
    assert!(json_number(first, "handshakes_per_s") > 0.0, "{first}");
    assert!(
        json_at(first, "handshake_latency_us.p99").is_u64(),
        "{first}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("Tag=edge-handshake,"), "{text}");
    let report = bin().arg("report").arg(&log).arg("--json").bounded();
    let json = common::clean_stdout(report);
    assert!(
        json_number(&json, "handshake_latency_us.p50") > 0.0,
        "{json}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// An untrusted certificate: no connection is established (exit 7), and
/// the message says why; TLS options without tls:// and a tag that ends
/// in -handshake are usage errors.
#[test]
fn refusals_and_usage_errors() {
    let (_server, target, _cert) = tls_server(&[]);
    let out = load(&target, &["-c", "2", "-d", "200ms"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(
        err.contains("tls: it is not signed by a CA we trust: give the CA's certificate"),
        "{err}"
    );
    common::assert_usage_error(
        &["load", "127.0.0.1:9", "--cacert", "x.pem"],
        "are for tls://",
    );
    common::assert_usage_error(&["load", &target, "--tag", "a-handshake"], "-handshake");
}

/// nginx (its stream module) terminating TLS in front of the plain
/// server, as users do today: every byte comes back through it.
#[test]
fn through_nginx_stream_terminating_tls() {
    if !common::have_nginx_stream() {
        return;
    }
    let backend = ServerProcess::start(&[]);
    let dir = scratch("tls-load", "nginx");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let mut nginx = Nginx::start(&dir, |port| {
        format!(
            "    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    \
             ssl_certificate_key {};\n    proxy_pass 127.0.0.1:{};\n",
            cert.display(),
            key.display(),
            backend.addr.port()
        )
    });
    let target = format!("tls://localhost:{}", nginx.port);
    let json = clean_run(
        &target,
        &[
            "--cacert",
            cert.to_str().unwrap(),
            "-c",
            "4",
            "-d",
            "300ms",
            "-s",
            "1024",
        ],
    );
    assert!(json_number(&json, "messages") > 10.0, "{json}");
    nginx.stop();
    let _ = std::fs::remove_dir_all(dir);
}

/// A TLS server made here (rustls) that completes each handshake, echoes
/// the first read, then misbehaves: `bare_fin` closes TCP with no
/// `close_notify`; otherwise it sends a record that does not decrypt.
/// Returns its `tls://` target and the certificate file.
fn misbehaving_tls_server(dir: &Path, bare_fin: bool) -> (String, std::path::PathBuf) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{Read as _, Write as _};
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = dir.join(if bare_fin { "fin.pem" } else { "garbage.pem" });
    std::fs::write(&cert, made.cert.pem()).unwrap();
    let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(made.cert.der().to_vec())], key)
        .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { return };
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, sock);
                let mut buf = [0u8; 64];
                let Ok(n @ 1..) = tls.read(&mut buf) else {
                    return;
                };
                if tls.write_all(&buf[..n]).and_then(|()| tls.flush()).is_err() {
                    return;
                }
                if bare_fin {
                    let _ = tls.sock.shutdown(std::net::Shutdown::Both);
                } else {
                    // An application-data record of junk: it cannot
                    // decrypt under the session's keys.
                    let mut junk = vec![0x17, 0x03, 0x03, 0x00, 0x20];
                    junk.extend_from_slice(&[0xA5; 32]);
                    let _ = tls.sock.write_all(&junk);
                    let _ = tls.sock.read(&mut buf);
                }
            });
        }
    });
    (format!("tls://localhost:{port}"), cert)
}

/// A server's bare FIN after the handshake is a `truncated` connection
/// and a record that does not decrypt a `corrupt` one, each counted as
/// its own kind (both were filed as `reset`), with exit 1.
#[test]
fn a_bare_fin_is_truncated_and_a_bad_record_corrupt() {
    let dir = scratch("tls-load", "misbehaving");
    for (bare_fin, kind) in [(true, "truncated"), (false, "corrupt")] {
        let (target, cert) = misbehaving_tls_server(&dir, bare_fin);
        let out = load(
            &target,
            &[
                "--cacert",
                cert.to_str().unwrap(),
                "-c",
                "1",
                "-s",
                "8",
                "-d",
                "1s",
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let json = String::from_utf8_lossy(&out.stdout);
        assert_eq!(json_number(&json, &format!("errors.{kind}")), 1.0, "{json}");
        assert_eq!(json_number(&json, "errors.reset"), 0.0, "{json}");
        assert!(err.contains(&format!(", {kind} 1)")), "{err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
