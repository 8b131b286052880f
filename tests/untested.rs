//! Behaviours that had no test: `--connect-rate` pacing, TLS 1.2, `load
//! --sni` and client certificates, the server's dropped UDP sends, Unix
//! sockets under backpressure, the idle timeout and max-connections, the
//! fd-limit raise, and the client's exit 23.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Bounded as _, DEADLINE, ServerProcess, bin, json_number, scratch};

/// `--connect-rate 20` opens six connections 50 ms apart: the accepts of
/// a listener made here span 250 ms, at least half of it however late
/// the acceptor runs (all at once they would span about 1 ms).
#[test]
fn connect_rate_paces_the_connects() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            seen.lock().unwrap().push(Instant::now());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let out = bin()
        .args(["load", &addr.to_string(), "-c", "6", "--connect-rate", "20"])
        .args(["-d", "400ms"])
        .bounded();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let times = accepted.lock().unwrap().clone();
    assert_eq!(times.len(), 6);
    let span = times[5].duration_since(times[0]);
    // Paced, the last connect is 250 ms after the first; all at once,
    // about 1 ms. Half the pacing leaves room for an acceptor thread
    // that runs late on a loaded machine (late accepts only bunch up).
    assert!(span >= Duration::from_millis(125), "6 connects in {span:?}");
}

/// A rustls client that speaks TLS 1.2 only gets TLS 1.2 from `--tls`,
/// and its echo.
#[test]
fn tls_1_2_is_negotiated_and_echoes() {
    let server = ServerProcess::start(&["--tls"]);
    let (cert, _) = server.tls_cert.clone().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject as _;
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, server.connect());
    tls.write_all(b"twelve").unwrap();
    let mut back = [0u8; 6];
    tls.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"twelve");
    assert_eq!(
        tls.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

/// A certificate for `localhost` only, and its key, in `dir`; the same
/// for a client, signed by the first as a CA.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let mut ca_params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    let client_params = rcgen::CertificateParams::new(vec!["client".into()]).unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();
    let files = [
        ("ca.pem", ca.pem()),
        ("server.pem", server_cert.pem()),
        ("server-key.pem", server_key.serialize_pem()),
        ("client.pem", client_cert.pem()),
        ("client-key.pem", client_key.serialize_pem()),
    ];
    for (name, pem) in &files {
        std::fs::write(dir.join(name), pem).unwrap();
    }
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("client.pem"),
        dir.join("client-key.pem"),
    )
}

/// `load tls://127.0.0.1:PORT --sni localhost` verifies the certificate
/// for `localhost` (without `--sni` the address's name is not in it); with
/// `--cert`/`--key` it passes a server that requires a client certificate,
/// and without them every handshake fails (exit 7).
#[test]
fn load_sni_and_client_certificates() {
    let dir = scratch("untested", "sni");
    let (ca, cert, client, client_key) = certificates(&dir);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let server = ServerProcess::start(&[
        "--tls",
        "--tls-cert",
        &s(&cert),
        "--tls-key",
        &s(&dir.join("server-key.pem")),
        "--tls-client-ca",
        &s(&ca),
    ]);
    let target = format!("tls://127.0.0.1:{}", server.addr.port());
    let load = |extra: &[&str]| {
        bin()
            .args([
                "load",
                &target,
                "-c",
                "2",
                "-d",
                "200ms",
                "--cacert",
                &s(&ca),
            ])
            .args(extra)
            .args(["--json"])
            .bounded()
    };
    let with = [
        "--sni",
        "localhost",
        "--cert",
        &s(&client),
        "--key",
        &s(&client_key),
    ];
    let out = load(&with);
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{json}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(json_number(&json, "messages") > 0.0, "{json}");
    // Without --sni the certificate is not for 127.0.0.1.
    let out = load(&with[2..]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(
        err.contains("it is for localhost, not for 127.0.0.1"),
        "{err}"
    );
    // Without a client certificate the server refuses every handshake (in
    // TLS 1.3 the refusal comes as an alert after the client's side is
    // done): counted as handshake errors.
    let out = load(&with[..2]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{json}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_number(&json, "errors.handshake"), 2.0, "{json}");
    assert_eq!(json_number(&json, "errors.corrupt"), 0.0, "{json}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A client that writes to /dev/full: exit 23, in words.
#[test]
fn the_client_cannot_write_its_output_exit_23() {
    let server = ServerProcess::start(&[]);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = bin()
        .args([
            "client",
            &server.addr.to_string(),
            "--data",
            "hi",
            "--half-close",
        ])
        .stdout(full)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(23), "{err}");
    assert!(
        err.starts_with("echoloop: error: cannot write the reply: "),
        "{err}"
    );
}

/// With a soft limit of 64 descriptors (and a hard one of 4,096), the
/// server raises its own and holds 300 connections, each echoed.
#[test]
fn the_server_raises_its_fd_limit() {
    if !Path::new("/usr/bin/prlimit").exists() {
        common::missing("no /usr/bin/prlimit (util-linux)");
        return;
    }
    let mut cmd = std::process::Command::new("/usr/bin/prlimit");
    cmd.arg("--nofile=64:4096")
        .arg(bin().get_program())
        .args(["server", "--bind", "127.0.0.1:0"]);
    let server = ServerProcess::spawn(cmd);
    let mut held: Vec<_> = (0..300).map(|_| server.connect()).collect();
    for (i, s) in held.iter_mut().enumerate() {
        common::round_trip(s, format!("conn {i}").as_bytes());
    }
}

/// Unix-domain sockets keep the TCP rules: a peer that never reads is held
/// at the owed cap while another is served; a silent peer is closed at
/// `--idle-timeout`, not before; with `--max-connections 1` the second
/// peer waits until the first leaves.
#[test]
fn unix_sockets_keep_the_limits() {
    let dir = scratch("untested", "unix");
    let path = dir.join("echo.sock");
    let bind = format!("unix:{}", path.display());
    let (_server, metrics) = common::server_with_metrics_at(&bind, &[]);
    let slow = UnixStream::connect(&path).unwrap();
    slow.set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let data = common::Rng::new(3).bytes(64 * 1024 * 1024);
    let pushed = std::thread::spawn(move || {
        let sent = common::push_until_stalled(&slow, &data, metrics, 64.0 * 1024.0);
        (sent, slow)
    });
    let mut brisk = UnixStream::connect(&path).unwrap();
    brisk.set_read_timeout(Some(DEADLINE)).unwrap();
    for i in 0..100u32 {
        let msg = i.to_le_bytes();
        brisk.write_all(&msg).unwrap();
        let mut back = [0u8; 4];
        brisk.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    let (sent, _slow) = pushed.join().unwrap();
    assert!(sent < 64 * 1024 * 1024, "stalled after {sent} bytes");
    let owed = common::metric(&common::scrape(metrics), "echoloop_owed_bytes").unwrap();
    assert!(owed <= (64 * 1024 + 1024) as f64, "owed {owed}");
    // The idle timeout: a silent peer is closed after 500 ms, not before.
    let idle = dir.join("idle.sock");
    let mut cmd = bin();
    cmd.args(["server", "--bind", &format!("unix:{}", idle.display())])
        .args(["--idle-timeout", "500ms"]);
    let _idle_server = ServerProcess::spawn(cmd);
    let mut silent = UnixStream::connect(&idle).unwrap();
    silent.set_read_timeout(Some(DEADLINE)).unwrap();
    let began = Instant::now();
    let mut rest = Vec::new();
    silent.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert!(
        began.elapsed() >= Duration::from_millis(500),
        "{:?}",
        began.elapsed()
    );

    let limited = dir.join("one.sock");
    let one = format!("unix:{}", limited.display());
    let mut cmd = bin();
    cmd.args(["server", "--bind", &one, "--max-connections", "1"]);
    let _limited_server = ServerProcess::spawn(cmd);
    let mut first = UnixStream::connect(&limited).unwrap();
    first.set_read_timeout(Some(DEADLINE)).unwrap();
    first.write_all(b"1").unwrap();
    let mut b = [0u8; 1];
    first.read_exact(&mut b).unwrap();
    let mut second = UnixStream::connect(&limited).unwrap();
    second.write_all(b"2").unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        second.read(&mut b).is_err(),
        "the second peer was served at once"
    );
    drop(first);
    second.set_read_timeout(Some(DEADLINE)).unwrap();
    second.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"2");
    std::fs::remove_dir_all(&dir).unwrap();
}
