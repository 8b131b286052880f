//! `echoloop server --udp` / `--udp-only`: the RFC 862 echo over UDP, in
//! the same loop as TCP; datagrams back whole, loop protection, the rate
//! limit, and the figures in the stats and the summary.

mod common;

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::{DEADLINE, Rng, ServerProcess, Stats};

/// A UDP socket on 127.0.0.1 (`port` 0: any) that waits at most DEADLINE.
fn socket(port: u16) -> UdpSocket {
    let s = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Sends `payload` to `to` and returns the reply.
#[track_caller]
fn echo(s: &UdpSocket, to: SocketAddr, payload: &[u8]) -> Vec<u8> {
    s.send_to(payload, to).unwrap();
    let mut buf = vec![0; 70_000];
    let (n, from) = s.recv_from(&mut buf).expect("a reply");
    assert_eq!(from, to, "the reply comes from the server's address");
    buf.truncate(n);
    buf
}

/// SIGUSR1's line, parsed.
fn stats_now(server: &mut ServerProcess) -> Stats {
    server.signal(libc::SIGUSR1);
    Stats::parse(&server.wait_stderr(|l| l.starts_with("stats: ")))
}

/// Sizes 0, 1, 1472 (one Ethernet frame) and 65,507 (the largest IPv4
/// datagram) come back byte for byte, on the same port as TCP, which
/// still echoes.
#[test]
fn datagrams_come_back_whole_beside_tcp() {
    let server = ServerProcess::start(&["--udp"]);
    let s = socket(0);
    for size in [0, 1, 1472, 65_507] {
        let payload = Rng::new(size as u64).bytes(size);
        assert!(echo(&s, server.addr, &payload) == payload, "size {size}");
    }
    let mut tcp = server.connect();
    common::round_trip(&mut tcp, b"and tcp");
    server.signal(libc::SIGTERM);
    let (status, out, _) = server.wait_exit();
    assert!(status.success());
    assert!(
        out[0].ends_with("; udp datagrams in 4 out 4 dropped 0 looped 0 limited 0"),
        "{out:?}"
    );
}

/// 200 sockets send at once; each gets its own datagram back.
#[test]
fn two_hundred_sockets_at_once() {
    let server = ServerProcess::start(&["--udp-only"]);
    assert!(
        server.ready.starts_with("udp://127.0.0.1:"),
        "{}",
        server.ready
    );
    let sockets: Vec<UdpSocket> = (0..200).map(|_| socket(0)).collect();
    for (i, s) in sockets.iter().enumerate() {
        s.send_to(format!("datagram {i}").as_bytes(), server.addr)
            .unwrap();
    }
    for (i, s) in sockets.iter().enumerate() {
        let mut buf = [0; 64];
        let (n, _) = s.recv_from(&mut buf).expect("a reply");
        assert_eq!(&buf[..n], format!("datagram {i}").as_bytes());
    }
    // --udp-only: no TCP listener on that port.
    assert!(TcpStream::connect(server.addr).is_err());
}

/// Loop protection: a datagram from port 7 (echo) or 19 (chargen) is not
/// answered, and is counted; the server goes on answering others. (The
/// test binds those ports, so it needs root; it says so and stops if not.)
#[test]
fn datagrams_from_service_ports_are_not_answered() {
    let mut server = ServerProcess::start(&["--udp-only"]);
    let mut looped = Vec::new();
    for port in [7, 19] {
        match UdpSocket::bind(("127.0.0.1", port)) {
            Ok(s) => looped.push(s),
            Err(e) => {
                eprintln!("cannot bind UDP port {port} ({e}): needs root; skipped");
                return;
            }
        }
    }
    for s in &looped {
        s.send_to(b"loop?", server.addr).unwrap();
    }
    // The server handles datagrams in order: once this one is answered,
    // the two before it have been handled too.
    assert_eq!(echo(&socket(0), server.addr, b"after"), b"after");
    for s in &looped {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0; 16];
        let got = s.recv_from(&mut buf);
        assert!(got.is_err(), "answered a service port: {got:?}");
    }
    let stats = stats_now(&mut server);
    assert_eq!((stats.get("udp_looped"), stats.get("udp_out")), (2.0, 1.0));
}

/// `--udp-rate-limit 5`: a burst of 20 from one source gets 5 answers (a
/// second's worth) and 15 are counted as limited; another source address
/// has its own allowance.
#[test]
fn the_rate_limit_caps_each_source() {
    let mut server = ServerProcess::start(&["--udp-only", "--udp-rate-limit", "5"]);
    let s = socket(0);
    for i in 0..20u8 {
        s.send_to(&[i], server.addr).unwrap();
    }
    // A marker from another source: answered, and it comes after the 20.
    let other = UdpSocket::bind("127.0.0.2:0").unwrap();
    other.set_read_timeout(Some(DEADLINE)).unwrap();
    assert_eq!(echo(&other, server.addr, b"mark"), b"mark");
    s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let mut answers = 0;
    let mut buf = [0; 4];
    while s.recv_from(&mut buf).is_ok() {
        answers += 1;
    }
    let stats = stats_now(&mut server);
    let limited = stats.get("udp_limited");
    // A refill during the burst may let one or two more through.
    assert!((5..=7).contains(&answers), "{answers} answers");
    assert_eq!(limited, 20.0 - answers as f64, "limited {limited}");
}

/// Several reactors serve UDP too, each on its own SO_REUSEPORT socket.
#[test]
fn udp_with_two_reactors() {
    let server = ServerProcess::start(&["--udp", "--threads", "2"]);
    for i in 0..20u64 {
        let payload = Rng::new(i).bytes(100);
        assert!(echo(&socket(0), server.addr, &payload) == payload);
    }
}

/// `echoloop client udp://…`: one datagram, its reply printed as repr()
/// (or raw); a port that does not answer is exit 28 at --timeout; a
/// closed port is exit 7 (ICMP port unreachable on the connected socket).
#[test]
fn the_client_over_udp() {
    let server = ServerProcess::start(&["--udp"]);
    let spec = format!("udp://{}", server.addr);
    let client = |args: &[&str]| {
        let mut cmd = common::bin();
        cmd.arg("client").args(args);
        common::run_bounded(cmd, DEADLINE)
    };
    let out = client(&[&spec, "--data", "it's\n"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"b\"it's\\n\"\n");
    let out = client(&[&spec, "--data", "raw bytes", "--raw"]);
    assert_eq!(out.stdout, b"raw bytes");

    // Bound, so no ICMP comes back, and silent.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let spec = format!("udp://{}", silent.local_addr().unwrap());
    let out = client(&[&spec, "--data", "hello?", "--timeout", "300ms"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(28), "{stderr}");
    assert!(
        stderr.contains("timed out after 0.3 s waiting for a datagram from"),
        "{stderr}"
    );
    assert_eq!(
        silent.recv(&mut [0; 16]).unwrap(),
        6,
        "the datagram did arrive"
    );

    drop(silent);
    let out = client(&[&spec, "--data", "anyone?", "--timeout", "5s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("connection refused"), "{stderr}");
}
