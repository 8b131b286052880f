//! `echoloop server --udp` / `--udp-only`: the RFC 862 echo over UDP, in
//! the same loop as TCP; datagrams back whole, loop protection, the rate
//! limit, and the figures in the stats and the summary.

mod common;

use std::net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
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

/// The server's address as IPv4, for forged datagrams.
fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("an IPv4 server"),
    }
}

/// Sends a forged datagram, or says the test cannot run here.
fn forged(from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> bool {
    match common::forge_udp(from, to, payload) {
        Ok(()) => true,
        Err(e) => {
            common::missing(&format!(
                "no raw socket to forge a datagram ({e}): needs root"
            ));
            false
        }
    }
}

/// CVE-1999-0103 between two echoloop servers on ordinary ports: one
/// datagram to B forged "from" A starts them answering each other. The
/// bounce check ends it: one of them stops answering (`udp_looped`), after
/// which neither hears another datagram of the loop (a probe to each is
/// the only thing either receives next).
#[test]
fn a_forged_datagram_between_two_servers_dies_out() {
    let mut a = ServerProcess::start(&["--udp-only"]);
    let mut b = ServerProcess::start(&["--udp-only"]);
    if !forged(v4(a.addr), v4(b.addr), b"ping-pong forever?") {
        return;
    }
    let (stats_a, stats_b) = common::eventually_value(|| {
        let (sa, sb) = (stats_now(&mut a), stats_now(&mut b));
        (sa.get("udp_looped") + sb.get("udp_looped") >= 1.0).then_some((sa, sb))
    });
    // The loop was one datagram; once refused, nothing of it is in flight.
    let bounces = stats_a.get("udp_out") + stats_b.get("udp_out");
    assert!(bounces >= 1000.0, "it was a loop: {bounces} answers");
    assert!(
        bounces <= 2.0 * 1001.0 + 2.0,
        "cut within the bound: {bounces}"
    );
    let probe = socket(0);
    assert_eq!(echo(&probe, a.addr, b"probe"), b"probe");
    assert_eq!(echo(&probe, b.addr, b"probe"), b"probe");
    let (after_a, after_b) = (stats_now(&mut a), stats_now(&mut b));
    assert_eq!(after_a.get("udp_in"), stats_a.get("udp_in") + 1.0);
    assert_eq!(after_b.get("udp_in"), stats_b.get("udp_in") + 1.0);
}

/// The same against another echo service, one that answers anything: a
/// datagram forged "from" it to echoloop would loop forever; echoloop ends
/// it after the bounce allowance, and hears nothing more of it.
#[test]
fn a_loop_with_a_naive_echo_service_dies_out() {
    let mut server = ServerProcess::start(&["--udp-only"]);
    let naive = bad_udp_server(Misbehave::Faithful);
    if !forged(v4(naive), v4(server.addr), b"loop me") {
        return;
    }
    let stats = common::eventually_value(|| {
        let stats = stats_now(&mut server);
        (stats.get("udp_looped") >= 1.0).then_some(stats)
    });
    assert_eq!(stats.get("udp_looped"), 1.0);
    assert_eq!(stats.get("udp_out"), 1001.0, "the allowance, then silence");
    assert_eq!(echo(&socket(0), server.addr, b"probe"), b"probe");
    let after = stats_now(&mut server);
    assert_eq!(after.get("udp_in"), stats.get("udp_in") + 1.0);
}

/// A datagram forged "from" the server's own port is never answered: from
/// its own address (it would echo to itself forever) or from another local
/// address on the same port (what `--bind 0.0.0.0:P` would loop on).
#[test]
fn a_datagram_from_the_servers_own_port_is_not_answered() {
    let mut server = ServerProcess::start(&["--udp-only"]);
    let own = v4(server.addr);
    let other_local = SocketAddrV4::new([127, 0, 0, 5].into(), own.port());
    for from in [own, other_local] {
        if !forged(from, own, b"myself?") {
            return;
        }
    }
    // Datagrams are handled in order: once this is answered, both were seen.
    assert_eq!(echo(&socket(0), server.addr, b"after"), b"after");
    let stats = stats_now(&mut server);
    assert_eq!(
        (
            stats.get("udp_in"),
            stats.get("udp_looped"),
            stats.get("udp_out")
        ),
        (3.0, 2.0, 1.0)
    );
}

/// A client that sends the same bytes again and again from one socket, as
/// fast as answers come (a fixed-payload ping, closed loop), is answered
/// every time within the bounce allowance: the loop check does not take
/// it for a loop.
#[test]
fn a_fixed_payload_ping_is_answered() {
    let server = ServerProcess::start(&["--udp-only"]);
    let s = socket(0);
    for i in 0..500 {
        assert_eq!(
            echo(&s, server.addr, b"same bytes"),
            b"same bytes",
            "ping {i}"
        );
    }
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
                common::missing(&format!("cannot bind UDP port {port} ({e}): needs root"));
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

/// `--udp-rate-limit` is per source address for the whole server, not per
/// reactor: 400 sockets on one address, one datagram each, spread by the
/// kernel over 8 reactors, get exactly 5 answers in all.
#[test]
fn the_rate_limit_holds_across_reactors() {
    let mut server =
        ServerProcess::start(&["--udp-only", "--udp-rate-limit", "5", "--threads", "8"]);
    let sockets: Vec<UdpSocket> = (0..400)
        .map(|_| UdpSocket::bind("127.0.0.9:0").unwrap())
        .collect();
    let began = std::time::Instant::now();
    for s in &sockets {
        s.send_to(b"x", server.addr).unwrap();
    }
    // Once all 400 were counted in, every answer has been sent (a send to
    // loopback is queued at the receiver before it returns).
    let stats = common::eventually_value(|| {
        let stats = stats_now(&mut server);
        (stats.get("udp_in") == 400.0).then_some(stats)
    });
    let took = began.elapsed().as_secs_f64();
    let answered = sockets
        .iter()
        .filter(|s| {
            s.set_nonblocking(true).unwrap();
            s.recv_from(&mut [0; 4]).is_ok()
        })
        .count();
    // The burst of 5, and what the bucket refilled (5/s) while the 400
    // arrived: on a loaded machine that can take more than 200 ms.
    let refilled = (5.0 * took).ceil() as usize;
    assert!(
        (5..=6 + refilled).contains(&answered),
        "{answered} answers in {took:.3} s"
    );
    // Every datagram was limited, answered, or (its answer meeting a full
    // send buffer on a loaded machine) dropped; every answer sent arrived.
    assert_eq!(stats.get("udp_out"), answered as f64, "{stats:?}");
    assert_eq!(
        stats.get("udp_limited") + stats.get("udp_dropped"),
        400.0 - answered as f64,
        "{stats:?}"
    );
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

/// What a misbehaving UDP echo server in the tests does to each reply.
#[derive(Clone, Copy)]
enum Misbehave {
    /// Drops every tenth datagram it receives.
    DropTenth,
    /// Sends every reply twice.
    Duplicate,
    /// Holds each odd datagram back and sends it after the next one.
    Swap,
    /// Flips a byte in every reply.
    Corrupt,
    /// Echoes every datagram faithfully, whoever it is from (a naive echo
    /// service on an ordinary port).
    Faithful,
}

/// A UDP echo server on its own thread that misbehaves as told; it stops
/// by itself after two idle seconds.
fn bad_udp_server(how: Misbehave) -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut held: Option<(Vec<u8>, SocketAddr)> = None;
        let mut count = 0u64;
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            count += 1;
            let reply = &mut buf[..n];
            match how {
                Misbehave::DropTenth if count.is_multiple_of(10) => continue,
                Misbehave::DropTenth => {}
                Misbehave::Duplicate => {
                    let _ = s.send_to(reply, from);
                }
                Misbehave::Swap => match held.take() {
                    None => {
                        held = Some((reply.to_vec(), from));
                        continue;
                    }
                    Some((old, to)) => {
                        let _ = s.send_to(reply, from);
                        let _ = s.send_to(&old, to);
                        continue;
                    }
                },
                Misbehave::Corrupt => reply[n - 1] ^= 0x40,
                Misbehave::Faithful => {}
            }
            let _ = s.send_to(reply, from);
        }
    });
    addr
}

/// A UDP echo server on its own thread that answers every datagram, but
/// only `delay` after it came (the behaviour under test); it stops by
/// itself once it has been idle for two seconds with nothing held.
fn late_udp_server(delay: Duration) -> SocketAddr {
    udp_server_delaying(move |_| delay)
}

/// A UDP echo server that holds the reply to the `k`th datagram it gets
/// for `delay_of(k)` (to within its 5 ms read timeout).
fn udp_server_delaying(delay_of: impl Fn(u64) -> Duration + Send + 'static) -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut held = Vec::new();
        let mut heard = std::time::Instant::now();
        let mut k = 0;
        loop {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                heard = std::time::Instant::now();
                held.push((heard + delay_of(k), buf[..n].to_vec(), from));
                k += 1;
            }
            let now = std::time::Instant::now();
            held.sort_by_key(|(at, _, _)| std::cmp::Reverse(*at));
            while held.last().is_some_and(|(at, _, _)| *at <= now) {
                let (_, reply, to) = held.pop().unwrap();
                let _ = s.send_to(&reply, to);
            }
            if held.is_empty() && now.duration_since(heard) > Duration::from_secs(2) {
                return;
            }
        }
    });
    addr
}

/// `echoloop load udp://… --json ARGS`: exit code and JSON.
fn load_udp(addr: SocketAddr, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = common::bin();
    cmd.args(["load", &format!("udp://{addr}"), "--json"])
        .args(args);
    let out = common::run_bounded(cmd, DEADLINE);
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

/// The figure `udp.key` of the summary.
fn udp_figure(json: &str, key: &str) -> f64 {
    common::json_number(json, &format!("udp.{key}"))
}

/// Against echoloop on loopback: no loss, every datagram sent in the
/// window answered, none duplicated, reordered or corrupted.
#[test]
fn load_over_udp_is_clean_on_loopback() {
    let server = ServerProcess::start(&["--udp-only"]);
    let (code, json) = load_udp(server.addr, &["-c", "20", "-d", "300ms", "--pipeline", "2"]);
    assert_eq!(code, Some(0), "{json}");
    let sent = udp_figure(&json, "sent");
    assert!(sent > 100.0, "{json}");
    assert_eq!(udp_figure(&json, "answered"), sent, "{json}");
    for key in ["lost", "duplicated", "reordered", "corrupted"] {
        assert_eq!(udp_figure(&json, key), 0.0, "{key}: {json}");
    }
}

/// Datagrams due together on one socket leave in one `sendmmsg`: a
/// closed loop of 16 fills its pipeline with one call, and one socket at
/// 5,000/s sends what fell due since the last wake-up together. Either
/// way every datagram is answered or lost (none duplicated or corrupted),
/// and `--messages` ends the window without calling the 16 still in
/// flight lost: they settle.
#[test]
fn load_over_udp_sends_due_datagrams_in_one_call() {
    let server = ServerProcess::start(&["--udp-only"]);
    for (args, least) in [
        (
            &["-c", "1", "--pipeline", "16", "--messages", "3000"][..],
            16,
        ),
        (&["-c", "1", "--rate", "5000", "-d", "400ms"][..], 2),
    ] {
        let mut cmd = common::bin();
        cmd.args(["load", &format!("udp://{}", server.addr), "--json"])
            .args(args)
            .env("RUST_LOG", "echoloop::load::datagrams=trace");
        let out = common::run_bounded(cmd, DEADLINE);
        let json = String::from_utf8(out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {json}");
        let sent = udp_figure(&json, "sent");
        assert!(sent >= 1000.0, "{args:?}: {json}");
        let (answered, lost) = (udp_figure(&json, "answered"), udp_figure(&json, "lost"));
        assert_eq!(answered + lost, sent, "{args:?}: {json}");
        if args.contains(&"--pipeline") {
            // 16 in flight cannot overflow a socket buffer: none is lost,
            // not even the 16 in flight when --messages is reached.
            assert_eq!(lost, 0.0, "{args:?}: {json}");
        } else {
            // A slow test machine can overflow a buffer with a burst of
            // due datagrams: a measurement, but a small one.
            assert!(lost <= sent / 100.0, "{args:?}: {json}");
        }
        for key in ["duplicated", "corrupted"] {
            assert_eq!(udp_figure(&json, key), 0.0, "{args:?} {key}: {json}");
        }
        // "udp socket 0: sent N of N in one call"
        let trace = String::from_utf8_lossy(&out.stderr);
        let most = trace
            .lines()
            .filter_map(|l| l.split("udp socket 0: sent ").nth(1))
            .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
            .max();
        assert!(
            most.is_some_and(|n| n >= least),
            "{args:?}: the largest send was {most:?} datagrams, not {least} or more"
        );
    }
}

/// Jitter (RFC 3550) is reported beside loss: small on loopback, and near
/// the injected spread against a server that holds every other reply 30 ms
/// (the transit times then differ by about 30 ms from one reply to the
/// next). The human summary says it too.
#[test]
fn udp_jitter_is_reported() {
    let server = ServerProcess::start(&["--udp-only"]);
    let (code, json) = load_udp(server.addr, &["-c", "4", "--rate", "400", "-d", "500ms"]);
    assert_eq!(code, Some(0), "{json}");
    let clean = udp_figure(&json, "jitter_us");
    assert!(
        (0.0..5_000.0).contains(&clean),
        "loopback jitter {clean} µs: {json}"
    );
    let uneven = udp_server_delaying(|k| Duration::from_millis(if k % 2 == 0 { 0 } else { 30 }));
    let (code, json) = load_udp(uneven, &["-c", "1", "--rate", "100", "-d", "1s"]);
    assert_eq!(code, Some(0), "{json}");
    let jitter = udp_figure(&json, "jitter_us");
    assert!(
        (15_000.0..45_000.0).contains(&jitter),
        "jitter {jitter} µs: {json}"
    );
    let mut cmd = common::bin();
    cmd.args([
        "load",
        &format!("udp://{}", server.addr),
        "-c",
        "2",
        "-d",
        "200ms",
    ]);
    let out = common::run_bounded(cmd, DEADLINE);
    let human = String::from_utf8(out.stdout).unwrap();
    assert!(
        human.contains(" µs\n") && human.contains("; jitter "),
        "{human}"
    );
}

/// Every reply comes after `--timeout`, thousands of them on one socket:
/// each is counted late, never duplicated (the server answered each once;
/// past the 4,096 losses a socket remembers, they used to be taken for
/// duplicates). The generator's CPU is measured over the window only, so
/// `cpu_busy` stays within 0 to 1 although the run waits after it.
#[test]
fn replies_after_the_timeout_are_late_not_duplicated() {
    // 700 ms late: longer than the 0.4 s of losses (4,096) a socket
    // remembers at 10,000 a second.
    let server = late_udp_server(Duration::from_millis(700));
    let args = [
        "-c",
        "1",
        "--rate",
        "10000",
        "-d",
        "2s",
        "--timeout",
        "100ms",
    ];
    let (_, json) = load_udp(server, &args);
    let sent = udp_figure(&json, "sent");
    assert!(sent > 16_000.0, "{json}");
    assert_eq!(udp_figure(&json, "lost"), sent, "{json}");
    assert_eq!(udp_figure(&json, "duplicated"), 0.0, "{json}");
    assert!(udp_figure(&json, "late") > 10_000.0, "{json}");
    let busy = common::json_number(&json, "cpu_busy");
    assert!((0.0..=1.0).contains(&busy), "cpu_busy {busy}: {json}");
}

/// A server that drops every tenth datagram: 10% loss, and the run is
/// still a clean exit (loss is a measurement); duplicates, reordering and
/// corruption are each seen for what they are, and corruption fails the
/// run.
#[test]
fn load_over_udp_names_what_the_network_did() {
    let args = [
        "-c",
        "4",
        "--rate",
        "2000",
        "-d",
        "1s",
        "--timeout",
        "100ms",
    ];
    let (code, json) = load_udp(bad_udp_server(Misbehave::DropTenth), &args);
    assert_eq!(code, Some(0), "{json}");
    // Never answered (lost, less those answered after --timeout: a loaded
    // machine's lateness is the clock's, not the server's drop): a tenth.
    let sent = udp_figure(&json, "sent");
    let dropped = udp_figure(&json, "lost") - udp_figure(&json, "late");
    let share = 100.0 * dropped / sent.max(1.0);
    assert!((9.0..=11.0).contains(&share), "dropped {share}%: {json}");
    let settled = udp_figure(&json, "answered") + udp_figure(&json, "lost");
    assert_eq!(settled, sent, "every datagram answered or lost: {json}");

    let (_, json) = load_udp(bad_udp_server(Misbehave::Duplicate), &args);
    let (dup, answered) = (
        udp_figure(&json, "duplicated"),
        udp_figure(&json, "answered"),
    );
    assert!(dup >= answered - 5.0 && answered > 0.0, "{json}");

    // One socket, so that the swapped pairs are its own.
    let one = [
        "-c",
        "1",
        "--rate",
        "2000",
        "-d",
        "1s",
        "--timeout",
        "100ms",
    ];
    let (_, json) = load_udp(bad_udp_server(Misbehave::Swap), &one);
    assert!(udp_figure(&json, "reordered") > 100.0, "{json}");

    let (code, json) = load_udp(bad_udp_server(Misbehave::Corrupt), &args);
    assert_eq!(code, Some(1), "{json}");
    assert!(udp_figure(&json, "corrupted") > 100.0, "{json}");
    assert_eq!(udp_figure(&json, "answered"), 0.0, "{json}");
}
