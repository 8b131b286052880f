//! `echoloop server --tls` against real TLS peers on loopback: OpenSSL's
//! `s_client`, Python's `ssl` module, curl, and rustls; mTLS, resumption,
//! plaintext on the TLS port, a stalled handshake, a bare FIN, and the
//! setup errors with their exit codes.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Bounded as _;
use common::{DEADLINE, ServerProcess, bin, missing, scratch};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Whether `program` runs here; if not, the test skips (fails in CI).
fn have(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
        || Command::new(program)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
    if !found {
        missing(&format!("{program} is not installed"));
    }
    found
}

/// A TLS server with a self-signed certificate, and that certificate's file.
fn tls_server(args: &[&str]) -> (ServerProcess, PathBuf) {
    let mut all = vec!["--tls"];
    all.extend_from_slice(args);
    let server = ServerProcess::start(&all);
    assert!(
        server.ready.starts_with("tls://127.0.0.1:"),
        "{}",
        server.ready
    );
    let (file, fp) = server.tls_cert.clone().expect("a tls certificate line");
    assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
    (server, PathBuf::from(file))
}

/// A rustls client configuration that trusts `ca` (and, with `me`,
/// presents that certificate and key).
fn client_config(ca: &Path, me: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match me {
        Some((cert, key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A blocking rustls client connected to `server`, handshake done.
fn connect(server: &ServerProcess, config: &Arc<rustls::ClientConfig>) -> Tls {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, server.connect());
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("handshake");
    }
    tls
}

/// Sends SIGTERM and returns the summary line.
fn summary(server: ServerProcess) -> String {
    server.signal(libc::SIGTERM);
    let (status, out, _) = server.wait_exit();
    assert!(status.success(), "{status:?}");
    out.last().cloned().unwrap_or_default()
}

/// Writes `data`, half-closes with a `close_notify`, and reads until the
/// server's own `close_notify`: rustls returns `Ok(0)` only for that (a
/// FIN without one is an `UnexpectedEof` error).
#[test]
fn a_close_notify_is_a_half_close_and_is_answered_with_one() {
    let (server, cert) = tls_server(&[]);
    let config = client_config(&cert, None);
    let mut tls = connect(&server, &config);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    tls.write_all(&data).unwrap();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    let mut back = Vec::new();
    tls.read_to_end(&mut back)
        .expect("a clean close_notify at the end");
    assert!(back == data, "{} bytes back of {}", back.len(), data.len());
    let line = summary(server);
    assert!(
        line.contains(
            "; tls handshakes full 1 resumed 0, refused 0 aborted 0 timed out 0, truncated 0,"
        ),
        "{line}"
    );
}

/// A FIN without a close_notify is counted as a truncation, not taken
/// for a clean end.
#[test]
fn a_bare_fin_is_counted_as_truncated() {
    let (server, cert) = tls_server(&[]);
    let config = client_config(&cert, None);
    let mut tls = connect(&server, &config);
    tls.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    tls.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    tls.sock.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    // The server closes its side without a close_notify of its own.
    let _ = tls.sock.read_to_end(&mut rest);
    let line = summary(server);
    assert!(line.contains(" truncated 1,"), "{line}");
}

/// OpenSSL's s_client, verifying the self-signed certificate it was
/// handed: a line goes out and comes back; closing stdin makes it send
/// its close_notify and exit 0.
#[test]
fn openssl_s_client_gets_its_line_back() {
    if !have("openssl") {
        return;
    }
    let (server, cert) = tls_server(&[]);
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-no_ign_eof",
            "-verify_return_error",
            "-servername",
            "localhost",
        ])
        .arg("-connect")
        .arg(server.addr.to_string())
        .arg("-CAfile")
        .arg(&cert)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello over tls\n").unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "hello over tls\n");
    drop(stdin);
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < end, "s_client did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
    let line = summary(server);
    assert!(
        line.contains("; tls handshakes full 1 resumed 0, refused 0 aborted 0 timed out 0,"),
        "{line}"
    );
}

/// The tutorial's client wrapped in Python's `ssl`: 1 MiB out and back
/// byte for byte, then `unwrap()` (close_notify both ways) and the FIN.
#[test]
fn python_ssl_round_trips_a_mebibyte_byte_for_byte() {
    if !have("python3") {
        return;
    }
    let (server, cert) = tls_server(&[]);
    // One thread, select() over one non-blocking socket: sending and
    // reading at once (an OpenSSL object must not be used from two
    // threads), or a mebibyte would fill both directions and deadlock.
    let script = r#"
import select, socket, ssl, sys
port, cafile = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=cafile)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30), server_hostname="localhost")
data = bytes(i * 7 % 256 for i in range(1 << 20))
out, got = memoryview(data), bytearray()
s.setblocking(False)
while len(got) < len(data):
    readable, writable, _ = select.select([s], [s] if out else [], [], 30)
    if not readable and not writable:
        sys.exit("stuck")
    if writable:
        try:
            out = out[s.send(out[:65536]):]
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                sys.exit("early EOF")
            got += chunk
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        pass
s.setblocking(True)
raw = s.unwrap()
print(len(got), got == data, raw.recv(1) == b"")
"#;
    let out = Command::new("python3")
        .args(["-c", script, &server.addr.port().to_string()])
        .arg(&cert)
        .bounded();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1048576 True True\n");
    let line = summary(server);
    assert!(line.contains("echoed 1048576 bytes"), "{line}");
    assert!(line.contains(" truncated 0,"), "{line}");
}

/// curl sends its GET over TLS; the echo is the GET itself, which curl
/// takes for an HTTP/0.9 reply and writes out as it comes. The test
/// reads the file until the request's end is there, then stops curl.
#[test]
fn curl_gets_its_own_request_back() {
    if !have("curl") {
        return;
    }
    let (server, cert) = tls_server(&[]);
    let dir = scratch("tls", "curl");
    let out = dir.join("reply");
    let url = format!("https://localhost:{}/echo/me", server.addr.port());
    let mut child = Command::new("curl")
        .args(["--http0.9", "-sSN", "--http1.1", "-A", "echoloop-test"])
        .arg("--cacert")
        .arg(&cert)
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", server.addr.port()))
        .arg("-o")
        .arg(&out)
        .arg(&url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reply = common::eventually_value(|| {
        let got = std::fs::read(&out).ok()?;
        got.ends_with(b"\r\n\r\n").then_some(got)
    });
    let _ = child.kill();
    let _ = child.wait();
    let expected = format!(
        "GET /echo/me HTTP/1.1\r\nHost: localhost:{}\r\nUser-Agent: echoloop-test\r\nAccept: */*\r\n\r\n",
        server.addr.port()
    );
    assert_eq!(String::from_utf8_lossy(&reply), expected);
    let _ = std::fs::remove_dir_all(dir);
}

/// Plaintext sent to the TLS port fails that connection alone (with an
/// alert); a TLS connection beside it goes on echoing.
#[test]
fn plaintext_on_the_tls_port_fails_only_that_connection() {
    let (server, cert) = tls_server(&[]);
    let config = client_config(&cert, None);
    let mut good = connect(&server, &config);
    good.write_all(b"before").unwrap();
    let mut back = [0u8; 6];
    good.read_exact(&mut back).unwrap();
    let mut plain = server.connect();
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let answer = common::read_to_eof(&mut plain);
    assert_eq!(answer.first(), Some(&0x15), "an alert record: {answer:?}");
    good.write_all(b"after").unwrap();
    let mut back = [0u8; 5];
    good.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"after");
    good.conn.send_close_notify();
    good.flush().unwrap();
    let line = summary(server);
    assert!(
        line.contains(" full 1 resumed 0, refused 1 aborted 0 timed out 0,"),
        "{line}"
    );
}

/// A peer that connects and closes (a port scan), or resets, before its
/// handshake is over abandoned it: `aborted`, not `refused` (both used to
/// count as failed handshakes).
#[test]
fn a_peer_that_leaves_mid_handshake_aborted_it() {
    let (server, metrics) = common::server_with_metrics(&["--tls"]);
    drop(server.connect());
    let half = server.connect();
    (&half).write_all(&[0x16, 0x03, 0x01]).unwrap();
    socket2::SockRef::from(&half)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(half);
    common::eventually("two aborted handshakes", || {
        common::scrape(metrics).contains("echoloop_tls_handshakes_aborted_total 2\n")
    });
    let line = summary(server);
    assert!(
        line.contains(" full 0 resumed 0, refused 0 aborted 2 timed out 0,"),
        "{line}"
    );
}

/// A peer that connects and never says hello is closed at the idle
/// timeout.
#[test]
fn a_stalled_handshake_is_closed_at_the_idle_timeout() {
    let (server, _cert) = tls_server(&["--idle-timeout", "300ms"]);
    let mut stalled = server.connect();
    // Half a record header: a handshake that starts and stops.
    let began = Instant::now();
    stalled.write_all(&[0x16, 0x03]).unwrap();
    let rest = common::read_to_eof(&mut stalled);
    assert!(rest.is_empty(), "{rest:?}");
    // Closed by the idle timeout, not before it (the server's own clock
    // may only be later than ours; the upper bound is the read's
    // DEADLINE, which read_to_eof enforces).
    assert!(
        began.elapsed() >= Duration::from_millis(300),
        "closed after {:?}, before the 300 ms idle timeout",
        began.elapsed()
    );
    let line = summary(server);
    assert!(
        line.contains(" full 0 resumed 0, refused 0 aborted 0 timed out 1,"),
        "{line}"
    );
}

/// Reconnects resume with tickets (the default), also across reactors
/// (`--threads 2`: one ticket key), and never with resumption off.
#[test]
fn reconnects_resume_unless_resumption_is_off() {
    for (args, resumed) in [
        (vec![], true),
        (vec!["--threads", "2"], true),
        (vec!["--tls-resumption", "ids"], true),
        (vec!["--tls-resumption", "off"], false),
    ] {
        let (server, cert) = tls_server(&args);
        let config = client_config(&cert, None);
        for i in 0..4 {
            let mut tls = connect(&server, &config);
            tls.write_all(b"x").unwrap();
            let mut back = [0u8; 1];
            tls.read_exact(&mut back).unwrap();
            let kind = tls.conn.handshake_kind();
            let want = if i > 0 && resumed {
                rustls::HandshakeKind::Resumed
            } else {
                rustls::HandshakeKind::Full
            };
            assert_eq!(kind, Some(want), "{args:?} connection {i}");
            tls.conn.send_close_notify();
            tls.flush().unwrap();
            let mut rest = Vec::new();
            tls.read_to_end(&mut rest).unwrap();
        }
        let line = summary(server);
        let counts = if resumed {
            " full 1 resumed 3, refused 0 aborted 0 timed out 0,"
        } else {
            " full 4 resumed 0, refused 0 aborted 0 timed out 0,"
        };
        assert!(line.contains(counts), "{args:?}: {line}");
    }
}

/// A CA, and a certificate it signed for `name` (PEM files in `dir`).
fn make_ca_and_leaf(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let (ca_file, cert_file, key_file) =
        (dir.join("ca.pem"), dir.join("me.pem"), dir.join("me.key"));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&cert_file, leaf.pem()).unwrap();
    std::fs::write(&key_file, leaf_key.serialize_pem()).unwrap();
    (ca_file, cert_file, key_file)
}

/// `--tls-client-ca`: a client with a certificate the CA signed is
/// served; one without a certificate fails its handshake alone.
#[test]
fn mtls_serves_a_signed_client_and_refuses_one_without_a_certificate() {
    let dir = scratch("tls", "mtls");
    let (ca, cert, key) = make_ca_and_leaf(&dir, "client.example");
    let (server, server_cert) = tls_server(&["--tls-client-ca", ca.to_str().unwrap()]);
    let with = client_config(&server_cert, Some((&cert, &key)));
    let mut tls = connect(&server, &with);
    tls.write_all(b"mutual").unwrap();
    let mut back = [0u8; 6];
    tls.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"mutual");
    let without = client_config(&server_cert, None);
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(without, name).unwrap();
    let mut refused = rustls::StreamOwned::new(conn, server.connect());
    // TLS 1.3: the client's side of the handshake ends first; the
    // server's refusal arrives as an alert on the next read.
    let _ = refused.write_all(b"let me in");
    let mut buf = [0u8; 16];
    let err = refused.read(&mut buf).expect_err("refused");
    assert!(err.to_string().contains("CertificateRequired"), "{err}");
    let line = summary(server);
    assert!(
        line.contains(" full 1 resumed 0, refused 1 aborted 0 timed out 0,"),
        "{line}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `--metrics` with `--tls`: handshakes by kind, and their latency as a
/// histogram in seconds.
#[test]
fn metrics_count_handshakes_and_their_latency() {
    let (server, metrics) = common::server_with_metrics(&["--tls"]);
    let (cert, _) = server.tls_cert.clone().expect("a certificate line");
    let config = client_config(Path::new(&cert), None);
    // Each is dropped without a close_notify: a truncation.
    for _ in 0..2 {
        let mut tls = connect(&server, &config);
        tls.write_all(b"m").unwrap();
        let mut back = [0u8; 1];
        tls.read_exact(&mut back).unwrap();
    }
    let text = common::eventually_value(|| {
        let out = common::scrape(metrics);
        out.contains("echoloop_tls_truncated_total 2\n")
            .then_some(out)
    });
    for line in [
        "echoloop_tls_handshakes_full_total 1\n",
        "echoloop_tls_handshakes_resumed_total 1\n",
        "echoloop_tls_handshakes_refused_total 0\n",
        "echoloop_tls_handshakes_aborted_total 0\n",
        "echoloop_tls_handshakes_timed_out_total 0\n",
        "# TYPE echoloop_tls_handshake_seconds histogram\n",
        "echoloop_tls_handshake_seconds_count 2\n",
        "echoloop_tls_handshake_seconds_bucket{le=\"+Inf\"} 2\n",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

/// Runs `echoloop server ARGS` expecting a start failure: its exit code
/// and a one-line message that says `says`.
#[track_caller]
fn refused_to_start(args: &[&str], code: i32, says: &str) {
    let out = bin()
        .args(["server", "--bind", "127.0.0.1:0"])
        .args(args)
        .bounded();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Bad certificates, keys and CA files: one line and curl's exit codes
/// (58 for our own certificate or key, 77 for a CA file); combinations
/// that make no sense are usage errors (2).
#[test]
fn bad_tls_setup_is_one_line_and_its_exit_code() {
    let dir = scratch("tls", "bad");
    let (ca, cert, key) = make_ca_and_leaf(&dir, "localhost");
    let (_, _, other_key) = make_ca_and_leaf(&dir.join(".."), "x");
    let other_key_moved = dir.join("other.key");
    std::fs::rename(other_key, &other_key_moved).unwrap();
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM\n").unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let missing_file = dir.join("absent.pem");
    refused_to_start(
        &[
            "--tls",
            "--tls-cert",
            &s(&missing_file),
            "--tls-key",
            &s(&key),
        ],
        58,
        "cannot read",
    );
    refused_to_start(
        &[
            "--tls",
            "--tls-cert",
            &s(&cert),
            "--tls-key",
            &s(&other_key_moved),
        ],
        58,
        "is not the key of the certificate",
    );
    refused_to_start(
        &["--tls", "--tls-cert", &s(&garbage), "--tls-key", &s(&key)],
        58,
        "holds no PEM certificate",
    );
    refused_to_start(
        &["--tls", "--tls-client-ca", &s(&garbage)],
        77,
        "holds no PEM certificate",
    );
    // An expired certificate.
    let old_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let old = params.self_signed(&old_key).unwrap();
    let (old_cert, old_key_file) = (dir.join("old.pem"), dir.join("old.key"));
    std::fs::write(&old_cert, old.pem()).unwrap();
    std::fs::write(&old_key_file, old_key.serialize_pem()).unwrap();
    refused_to_start(
        &[
            "--tls",
            "--tls-cert",
            &s(&old_cert),
            "--tls-key",
            &s(&old_key_file),
        ],
        58,
        "expired",
    );
    common::assert_usage_error(&["server", "--tls", "--tls-key", &s(&key)], "--tls-cert");
    common::assert_usage_error(&["server", "--tls", "--udp-only"], "DTLS");
    common::assert_usage_error(
        &["server", "--tls", "--bind", "unix:@x"],
        "--tls needs an IP",
    );
    common::assert_usage_error(&["server", "--tls-resumption", "off"], "--tls");
    let _ = ca;
    let _ = std::fs::remove_dir_all(dir);
}

/// Backpressure and fairness over TLS: a TLS peer that pushes without
/// reading stalls once the owed cap is reached (the server's memory stays
/// bounded), while a TLS bystander's echoes keep flowing.
#[test]
fn a_tls_peer_that_never_reads_is_held_at_the_cap_and_others_flow() {
    let (mut server, metrics) = common::server_with_metrics(&["--tls", "--stats", "0.1"]);
    let (cert, _) = server.tls_cert.clone().expect("a certificate line");
    let cert = PathBuf::from(cert);
    let rss_before = server.rss();
    let config = client_config(&cert, None);
    let mut slow = connect(&server, &config);
    slow.sock
        .set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // Stalled is what the server says (its owed bytes at the cap while the
    // writer is blocked), not a write timeout alone.
    let pusher = std::thread::spawn(move || {
        let data = vec![7u8; 64 * 1024 * 1024];
        let sent = common::push_until_stalled(&mut slow, &data, metrics, 64.0 * 1024.0);
        (sent, slow)
    });
    let mut brisk = connect(&server, &config);
    let mut back = vec![0u8; 1024];
    for i in 0..200u32 {
        let msg: Vec<u8> = (0..1024u32).map(|j| (i + j) as u8).collect();
        brisk.write_all(&msg).unwrap();
        brisk.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    let (sent, _slow) = pusher.join().unwrap();
    assert!(
        sent > 512 * 1024 && sent < 64 * 1024 * 1024,
        "the slow writer should stall, sent {sent}"
    );
    server.skip_stderr();
    let stats = server.wait_stats(|s| s.get("open") == 2.0);
    let cap = (64 * 1024 + 1024) as f64;
    // Held at the cap: reached (the lower bound), never passed.
    assert!(
        (64.0 * 1024.0..=cap).contains(&stats.get("owed_peak")),
        "owed {}",
        stats.get("owed_peak")
    );
    let grown = server.rss().saturating_sub(rss_before);
    assert!(grown < 16 * 1024 * 1024, "server RSS grew by {grown} bytes");
}

/// `--alpn`: the protocol both sides name is agreed on; a client that
/// offers none of the server's fails its handshake.
#[test]
fn alpn_agrees_on_a_protocol_or_refuses() {
    let (server, cert) = tls_server(&["--alpn", "echo/1,h2"]);
    let mut offering = (*client_config(&cert, None)).clone();
    offering.alpn_protocols = vec![b"h2".to_vec(), b"echo/1".to_vec()];
    let offering = Arc::new(offering);
    let tls = connect(&server, &offering);
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"echo/1"[..]));
    let mut other = (*client_config(&cert, None)).clone();
    other.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(other), name).unwrap();
    let mut refused = rustls::StreamOwned::new(conn, server.connect());
    let mut buf = [0u8; 1];
    let err = refused.read(&mut buf).expect_err("no common protocol");
    assert!(err.to_string().contains("NoApplicationProtocol"), "{err}");
    // A client that offers no ALPN at all is served, without a protocol,
    // and the help says so (it said such a client fails).
    let mut plain = connect(&server, &client_config(&cert, None));
    plain.write_all(b"no alpn").unwrap();
    let mut back = [0u8; 7];
    plain.read_exact(&mut back).unwrap();
    assert_eq!((&back, plain.conn.alpn_protocol()), (b"no alpn", None));
    let help = bin().args(["server", "--help"]).bounded();
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains(
            "A client that offers ALPN but none of these fails its handshake; a client that \
             offers no ALPN is served without it (RFC 7301)"
        ),
        "{help}"
    );
}

/// `RUST_LOG=trace` narrates the TLS session beside the TCP connection:
/// ciphertext read and written, the handshake's end, the close_notify.
#[test]
fn the_trace_narrates_the_tls_state() {
    let mut cmd = bin();
    cmd.args(["server", "--bind", "127.0.0.1:0", "--tls"])
        .env("RUST_LOG", "echoloop=trace");
    let mut server = ServerProcess::spawn(cmd);
    let (cert, _) = server.tls_cert.clone().unwrap();
    let config = client_config(Path::new(&cert), None);
    let mut tls = connect(&server, &config);
    tls.write_all(b"hi").unwrap();
    let mut back = [0u8; 2];
    tls.read_exact(&mut back).unwrap();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).unwrap();
    for said in [
        "tls read ciphertext bytes=",
        "tls state EncodeTlsData",
        "tls sent bytes=",
        "tls state handshaking => traffic (full)",
        "read conn=#1 bytes=2",
        "read conn=#1 eof",
        "tls close_notify",
    ] {
        server.wait_stderr(|line| line.contains(said));
    }
}

/// `--tls --udp`: TCP speaks TLS, UDP on the same port stays plain
/// (DTLS is not served), and both echo.
#[test]
fn udp_beside_tls_stays_plain() {
    let (server, cert) = tls_server(&["--udp"]);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(DEADLINE)).unwrap();
    udp.send_to(b"datagram", server.addr).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = udp.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"datagram"[..], server.addr));
    let config = client_config(&cert, None);
    let mut tls = connect(&server, &config);
    tls.write_all(b"stream").unwrap();
    let mut back = [0u8; 6];
    tls.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"stream");
}

/// The self-signed certificate is `cert.pem` in a directory of its own
/// under `$TMPDIR`, which only the server's user can enter (a planted
/// symlink or a file made first by someone else is refused, see the unit
/// tests of `write_private`); both are gone once the server stops.
#[test]
fn the_self_signed_certificate_lives_in_a_private_directory() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = common::scratch("tls", "private");
    let mut cmd = bin();
    cmd.args(["server", "--bind", "127.0.0.1:0", "--tls"])
        .env("TMPDIR", &tmp);
    let server = ServerProcess::spawn(cmd);
    let (file, _) = server.tls_cert.clone().unwrap();
    let dir = tmp.join(format!("echoloop-{}", server.pid()));
    assert_eq!(PathBuf::from(&file), dir.join("cert.pem"));
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    server.signal(libc::SIGTERM);
    let (status, _, _) = server.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert!(
        !dir.exists(),
        "the directory is removed with the certificate"
    );

    std::fs::remove_dir_all(&tmp).unwrap();
}

/// A socket that counts the TLS records passing through it (each record
/// is a 5-byte header, then as many bytes as the header says).
struct RecordCounter<'a> {
    sock: &'a mut TcpStream,
    /// Bytes left of the record being read, or of its header.
    left: usize,
    header: Vec<u8>,
    records: usize,
}

impl Read for RecordCounter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.sock.read(buf)?;
        for &byte in &buf[..n] {
            if self.left > 0 {
                self.left -= 1;
                continue;
            }
            self.header.push(byte);
            if self.header.len() == 5 {
                self.left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.header.clear();
                self.records += 1;
            }
        }
        Ok(n)
    }
}

/// One record per read pass: the server reads a 16 KiB message in 1 KiB
/// pieces and echoes each at once, but seals what one pass echoes into as
/// few records as it fills. The 16 KiB echo arrives as one or two
/// records, counted at the peer (each 1 KiB write was a record of its own
/// before: 16).
#[test]
fn a_16_kib_echo_arrives_in_one_or_two_records() {
    let (server, cert) = tls_server(&[]);
    let config = client_config(&cert, None);
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = rustls::ClientConnection::new(config, name).unwrap();
    let mut sock = TcpStream::connect(server.addr).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    // The handshake, and one small echo so that the session tickets the
    // server sends after its handshake are read before the count starts.
    let round = |tls: &mut rustls::ClientConnection, sock: &mut TcpStream, msg: &[u8]| {
        tls.writer().write_all(msg).unwrap();
        while tls.wants_write() {
            tls.write_tls(sock).unwrap();
        }
        let mut counter = RecordCounter {
            sock,
            left: 0,
            header: Vec::new(),
            records: 0,
        };
        let mut back = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while back.len() < msg.len() {
            tls.read_tls(&mut counter).unwrap();
            tls.process_new_packets().unwrap();
            while let Ok(n) = tls.reader().read(&mut buf) {
                if n == 0 {
                    break;
                }
                back.extend_from_slice(&buf[..n]);
            }
            while tls.wants_write() {
                tls.write_tls(counter.sock).unwrap();
            }
        }
        assert_eq!(back, msg, "every byte back, in order");
        counter.records
    };
    tls.complete_io(&mut sock).unwrap();
    round(&mut tls, &mut sock, b"x");
    let message: Vec<u8> = (0..16 * 1024u32).map(|i| (i % 251) as u8).collect();
    let records = round(&mut tls, &mut sock, &message);
    assert!(
        (1..=2).contains(&records),
        "a 16 KiB echo came back in {records} records"
    );
    drop(server);
}
