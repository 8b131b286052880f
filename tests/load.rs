//! `echoloop load` against `echoloop server` and against misbehaving
//! servers made in the test: clean runs, the JSON shape, mismatches,
//! resets, refused connections, and the open-loop schedule.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::OpenOptionsExt as _;
use std::process::Output;
use std::thread;
use std::time::Duration;

use common::Bounded as _;
use common::{ServerProcess, bin, json_number};

/// Runs `echoloop load ADDR ARGS`, killed if it outlives DEADLINE (a
/// run that hangs fails its test instead of hanging it).
fn load(addr: SocketAddr, args: &[&str]) -> Output {
    load_to(&addr.to_string(), args)
}

/// Runs `echoloop load TARGET ARGS`, killed if it outlives DEADLINE (a
/// run that hangs fails its test instead of hanging it).
fn load_to(target: &str, args: &[&str]) -> Output {
    let mut cmd = bin();
    cmd.arg("load").arg(target).args(args);
    common::run_bounded(cmd, common::DEADLINE)
}

/// Runs `echoloop load ADDR ARGS --json`, asserts a clean exit (0), and
/// returns the JSON.
#[track_caller]
fn clean_json(addr: SocketAddr, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--json");
    common::clean_stdout(load(addr, &all))
}

/// Every key of a JSON document, depth first, in document order (parsed by
/// serde_json, which the tests build with `preserve_order`).
fn json_keys(json: &str) -> Vec<String> {
    fn walk(value: &serde_json::Value, keys: &mut Vec<String>) {
        if let serde_json::Value::Object(map) = value {
            for (k, v) in map {
                keys.push(k.clone());
                walk(v, keys);
            }
        }
    }
    let mut keys = Vec::new();
    walk(&serde_json::from_str(json).expect(json), &mut keys);
    keys
}

/// A server that echoes, but with one byte flipped at `corrupt_at` on every
/// connection (None: a faithful echo), that closes each connection after
/// `close_after` bytes (None: never), and that holds every echo back for
/// `delay` (the behaviour under test, not synchronisation).
fn bad_server(
    corrupt_at: Option<usize>,
    close_after: Option<usize>,
    delay: Duration,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut seen = 0;
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if let Some(at) = corrupt_at
                        && (seen..seen + n).contains(&at)
                    {
                        buf[at - seen] ^= 0x20;
                    }
                    seen += n;
                    thread::sleep(delay);
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                    if close_after.is_some_and(|limit| seen >= limit) {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A short clean run: exit 0, no errors, messages echoed, and exactly the
/// documented JSON keys.
#[test]
fn clean_run_against_the_echo_server_reports_json() {
    let server = ServerProcess::start(&[]);
    let out = load(
        server.addr,
        &["-c", "8", "-s", "100", "-d", "500ms", "--json"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(json.lines().count(), 1, "{json}");
    assert_eq!(
        json_keys(&json),
        [
            "connections",
            "size",
            "duration_s",
            "messages",
            "msgs_per_s",
            "mib_per_s",
            "latency_us",
            "p50",
            "p90",
            "p99",
            "p999",
            "max",
            "connects",
            "connects_per_s",
            "connect_latency_us",
            "p50",
            "p90",
            "p99",
            "max",
            "up_at_end",
            "died",
            "errors",
            "connect",
            "closed",
            "reset",
            "timeout",
            "mismatch",
            "handshake",
            "truncated",
            "corrupt",
            "half_close",
            "in_flight_at_end",
            "messages",
            "answered",
            "timed_out",
            "lost",
            "cpu_us_per_msg",
            "cpu_busy",
            "threads"
        ]
    );
    assert_eq!(json_number(&json, "connections"), 8.0);
    assert_eq!(json_number(&json, "size"), 100.0);
    assert!(json_number(&json, "messages") > 0.0, "{json}");
    assert!(json_number(&json, "latency_us.p50") >= 1.0, "{json}");
    for kind in ["connect", "reset", "timeout", "mismatch"] {
        assert_eq!(
            json_number(&json, &format!("errors.{kind}")),
            0.0,
            "{kind}: {json}"
        );
    }
}

/// A server that stalls at the end of the window (every echo held back
/// 800 ms, longer than the whole 500 ms window): every message sent in
/// the window is still counted, with its whole latency, as answered after
/// the window, in the open loop and the closed loop alike. (Before, the
/// window's end dropped them: 0 messages, "no message was echoed".)
#[test]
fn a_stall_at_the_windows_end_counts_every_sent_message() {
    let stalled = bad_server(None, None, Duration::from_millis(800));
    let open = common::clean_stdout(load_to(
        &stalled.to_string(),
        &["-c", "2", "-d", "500ms", "--rate", "40", "--json"],
    ));
    let sent = json_number(&open, "schedule.sent");
    assert!(sent >= 10.0, "{open}");
    assert_eq!(json_number(&open, "messages"), sent, "{open}");
    assert_eq!(
        json_number(&open, "in_flight_at_end.messages"),
        sent,
        "{open}"
    );
    assert_eq!(
        json_number(&open, "in_flight_at_end.answered"),
        sent,
        "{open}"
    );
    assert_eq!(json_number(&open, "in_flight_at_end.timed_out"), 0.0);
    assert!(json_number(&open, "latency_us.p50") >= 800_000.0, "{open}");

    let out = load_to(
        &stalled.to_string(),
        &["-c", "2", "--pipeline", "3", "-d", "500ms"],
    );
    let human = common::clean_stdout(out);
    // Each connection's 3 messages were sent at once in the window; the
    // stall answers each read (all 3) after it.
    assert!(human.contains("  messages    6 ("), "{human}");
    assert!(
        human.contains(
            "  at the end  6 in flight: 6 answered after the window, 0 timed out, 0 lost with their connection"
        ),
        "{human}"
    );
}

/// A stall longer than --timeout at the window's end: the messages it
/// held are timeouts (exit 1), not silently dropped.
#[test]
fn a_stall_past_the_timeout_at_the_windows_end_is_a_timeout() {
    let stalled = bad_server(None, None, Duration::from_millis(1500));
    let out = load_to(
        &stalled.to_string(),
        &["-c", "1", "-d", "300ms", "--timeout", "500ms", "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(json_number(&json, "messages"), 0.0, "{json}");
    assert_eq!(json_number(&json, "errors.timeout"), 1.0, "{json}");
    assert_eq!(json_number(&json, "in_flight_at_end.messages"), 1.0);
    assert_eq!(json_number(&json, "in_flight_at_end.timed_out"), 1.0);
}

/// A run whose connections all die at once measures no message: the
/// summary says so instead of a CPU per message (it read "2386.00 µs CPU
/// per message" with 0 messages), and the JSON has `null` there.
#[test]
fn no_message_means_no_cpu_per_message() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for s in listener.incoming() {
            drop(s); // accepted, and closed at once
        }
    });
    let out = load_to(&addr.to_string(), &["-c", "3", "-d", "300ms"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("  messages    0 ("), "{text}");
    assert!(
        text.contains("  generator   ") && text.contains(" ms CPU, no message measured, "),
        "{text}"
    );
    assert!(!text.contains("per message"), "{text}");
    let out = load_to(&addr.to_string(), &["-c", "3", "-d", "300ms", "--json"]);
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        common::json_at(&json, "cpu_us_per_msg"),
        serde_json::Value::Null
    );
}

/// The human summary names every figure; pipelining and big messages work.
#[test]
fn human_summary_with_pipeline_and_large_messages() {
    let server = ServerProcess::start(&[]);
    let out = load(
        server.addr,
        &["-c", "3", "-s", "200000", "--pipeline", "3", "-d", "300ms"],
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for word in [
        "3 connections (3 established) x 200000 B",
        "pipeline 3",
        "msgs/s",
        "MiB/s sent",
        "MiB/s received",
        "p99.9",
        "errors      connect 0  closed 0  reset 0  timeout 0  mismatch 0",
    ] {
        assert!(stdout.contains(word), "{word:?} missing from:\n{stdout}");
    }
}

/// One flipped byte per connection: every connection counts a mismatch,
/// the run goes on and exits non-zero.
#[test]
fn a_corrupted_byte_is_a_mismatch_and_a_failed_run() {
    let addr = bad_server(Some(1000), None, Duration::ZERO);
    let out = load(addr, &["-c", "4", "-s", "64", "-d", "500ms", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(json_number(&json, "errors.mismatch"), 4.0, "{json}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("mismatch 4"), "{stderr}");
}

/// A server that hangs up mid-run: the closes counted (a clean close, or
/// a reset when the next message reached the server before its close),
/// non-zero exit.
#[test]
fn a_server_closing_mid_run_counts_closes() {
    let addr = bad_server(None, Some(640), Duration::ZERO);
    let out = load(addr, &["-c", "3", "-s", "64", "-d", "500ms", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json = String::from_utf8(out.stdout).unwrap();
    let closed = json_number(&json, "errors.closed") + json_number(&json, "errors.reset");
    assert_eq!(closed, 3.0, "{json}");
    assert_eq!(json_number(&json, "errors.mismatch"), 0.0, "{json}");
    // The connections' fate: none up at the end, three died, and when.
    assert_eq!(json_number(&json, "up_at_end"), 0.0, "{json}");
    assert_eq!(json_number(&json, "died"), 3.0, "{json}");
    let (first, last) = (
        json_number(&json, "first_death_s"),
        json_number(&json, "last_death_s"),
    );
    assert!(0.0 <= first && first <= last && last <= 0.6, "{json}");
    let out = load(addr, &["-c", "3", "-s", "64", "-d", "500ms"]);
    let human = String::from_utf8(out.stdout).unwrap();
    assert!(
        human.contains("  connections 0 of 3 up at the end; 3 died between "),
        "{human}"
    );
}

/// A closed port: every connection is a connect error, one clear line,
/// exit 7.
#[test]
fn a_closed_port_is_connect_errors_and_exit_7() {
    let (_guard, addr) = common::closed_port();
    let out = load(addr, &["-c", "5", "-d", "300ms", "--json"]);
    assert_eq!(out.status.code(), Some(7));
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(json_number(&json, "errors.connect"), 5.0, "{json}");
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!("echoloop: error: could not connect to {addr}: connection refused\n")
    );
    // Without --json: the error alone, no summary of zeros above it.
    let out = load(addr, &["-c", "5", "-d", "300ms"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "");
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!("echoloop: error: could not connect to {addr}: connection refused\n")
    );
}

/// Another scheme than udp:// or unix: names the ones there are, instead
/// of complaining that `http` has no port.
#[test]
fn a_foreign_scheme_is_named() {
    let out = load_to("http://127.0.0.1:9", &["-d", "100ms"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("`http://` is not a scheme echoloop load speaks: use HOST:PORT (TCP), tls://HOST:PORT, udp://HOST:PORT or unix:PATH"),
        "{stderr}"
    );
}

/// Open loop: --rate's schedule is exact (1,000 due in 1 s at 1000/s),
/// every message sent is counted, and what was not sent is said.
#[test]
fn rate_holds_its_schedule() {
    let server = ServerProcess::start(&[]);
    let out = load(
        server.addr,
        &["-c", "4", "--rate", "1000", "-d", "1s", "--json"],
    );
    assert_eq!(out.status.code(), Some(0));
    let json = String::from_utf8(out.stdout).unwrap();
    // What the plan says is exact; what went out is the machine's: every
    // message sent is counted, and what was not is said.
    let (due, sent) = (
        json_number(&json, "schedule.due"),
        json_number(&json, "schedule.sent"),
    );
    assert_eq!(due, 1000.0, "1000/s for 1 s: {json}");
    assert_eq!(json_number(&json, "messages"), sent, "{json}");
    assert_eq!(json_number(&json, "schedule.unsent"), due - sent, "{json}");
    assert!(sent > 0.0, "{json}");
}

/// --messages stops the run early; warm-up and connect-rate are accepted.
#[test]
fn messages_limit_warmup_and_connect_rate() {
    let server = ServerProcess::start(&[]);
    let out = load(
        server.addr,
        &[
            "-c",
            "4",
            "--connect-rate",
            "100",
            "--warmup",
            "100ms",
            "--messages",
            "500",
            "-d",
            "30s",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let json = String::from_utf8(out.stdout).unwrap();
    let messages = json_number(&json, "messages");
    assert!((500.0..504.0).contains(&messages), "{json}");
    assert!(json_number(&json, "duration_s") < 30.0, "{json}");
}

/// Bad arguments: exit 2.
#[test]
fn bad_load_arguments_exit_2() {
    for args in [
        &["load"][..],
        &["load", "nowhere"][..],
        &["load", "127.0.0.1:1", "-c", "0"][..],
        &["load", "127.0.0.1:1", "-s", "0"][..],
        &["load", "127.0.0.1:1", "-d", "0"][..],
        &["load", "127.0.0.1:1", "--rate", "-5"][..],
        &["load", "127.0.0.1:1", "--pipeline", "0"][..],
    ] {
        let out = bin().args(args).bounded();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// A rate far past what the generator can do: the run still ends at -d,
/// the figures agree with each other, and the summary says the schedule
/// was not kept (due vs sent), instead of running on or hiding it.
#[test]
fn an_impossible_rate_ends_on_time_and_says_so() {
    let server = ServerProcess::start(&[]);
    let started = std::time::Instant::now();
    let out = load(
        server.addr,
        &["-c", "50", "--rate", "10000000", "-d", "1s", "--json"],
    );
    let took = started.elapsed();
    let json = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{json} {stderr}");
    assert!(took.as_secs_f64() < 5.0, "a 1 s run took {took:?}");
    let (msgs, mib) = (
        json_number(&json, "msgs_per_s"),
        json_number(&json, "mib_per_s"),
    );
    let implied = msgs * 64.0 / 1048576.0;
    assert!((mib - implied).abs() <= implied * 0.05 + 0.01, "{json}");
    let due = json_number(&json, "schedule.due");
    let sent = json_number(&json, "schedule.sent");
    assert!(due > 5_000_000.0, "{json}");
    assert!(sent < due, "{json}");
    assert_eq!(json_number(&json, "schedule.unsent"), due - sent, "{json}");
    assert!(json.contains("\"kept\":false"), "{json}");
    assert!(stderr.contains("fell behind its schedule"), "{stderr}");
}

/// An echo that comes back after --timeout is a timeout, not a success,
/// even though it arrives between two of the generator's timeout checks.
#[test]
fn a_late_echo_is_a_timeout() {
    // The server holds each echo back 150 ms.
    let addr = bad_server(None, None, Duration::from_millis(150));
    let out = load(
        addr,
        &["-c", "1", "-d", "1s", "--timeout", "100ms", "--json"],
    );
    let json = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{json}");
    assert_eq!(json_number(&json, "errors.timeout"), 1.0, "{json}");
    assert_eq!(json_number(&json, "messages"), 0.0, "{json}");
}

/// A run shorter than connecting takes still connects and measures: the
/// clock starts once the connections are up. (Before, `-d 1ms` ended before
/// the connect finished: exit 7, "could not connect".) The first message
/// goes out as the clock starts, inside the millisecond, and its echo is
/// awaited after the window however loaded the machine: at least one
/// message, exit 0.
#[test]
fn a_one_millisecond_run_connects_and_measures() {
    let server = ServerProcess::start(&[]);
    let out = load(server.addr, &["-c", "1", "-d", "1ms"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains(": 1 connection (1 established) x 64 B"),
        "{stdout}{stderr}"
    );
    let messages: u64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("messages"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a messages line");
    assert!(messages >= 1, "{stdout}{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
}

/// Names are resolved, and every address tried: `localhost` may come back
/// as ::1 first while the server listens on 127.0.0.1 only.
#[test]
fn host_names_resolve_and_bad_names_exit_6() {
    let server = ServerProcess::start(&[]);
    let out = bin()
        .args(["load", &format!("localhost:{}", server.addr.port())])
        .args(["-c", "2", "-d", "200ms"])
        .bounded();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let out = bin()
        .args(["load", "no-such-host.invalid:7", "-d", "200ms"])
        .bounded();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.starts_with("echoloop: error: could not resolve host no-such-host.invalid: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// `--messages-per-connection 1` is pure churn: every verified round trip
/// has its own connection, so the connections established in the window
/// and the messages match (to within the connections in flight at either
/// edge), and the server served at least that many. With 3, each
/// connection carries three messages.
#[test]
fn messages_per_connection_churns_connections() {
    // Bounded by --messages: each closed connection holds a local port in
    // TIME_WAIT for a minute, and the suite shares the port range.
    for (per, args) in [
        (1.0, ["-c", "4", "--messages", "300"]),
        (3.0, ["-c", "4", "--messages", "300"]),
    ] {
        let server = ServerProcess::start(&[]);
        let quota = format!("{per}");
        let mut all = args.to_vec();
        all.extend(["--messages-per-connection", &quota]);
        let json = clean_json(server.addr, &all);
        let (connects, messages) = (
            json_number(&json, "connects"),
            json_number(&json, "messages"),
        );
        assert!(connects >= 300.0 / per - 4.0, "churn: {json}");
        assert!(
            (messages - per * connects).abs() <= 4.0 * per,
            "{per} message(s) per connection: {json}"
        );
        assert!(json_number(&json, "connects_per_s") > 0.0, "{json}");
        assert!(
            json_number(&json, "connect_latency_us.p50") >= 1.0,
            "{json}"
        );
        server.signal(libc::SIGTERM);
        let (status, out, _) = server.wait_exit();
        assert!(status.success());
        let served: f64 = out[0].split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(served >= connects, "served {served} < {connects} connects");
    }
}

/// The human summary shows the churn: connections per second and the
/// connect latency.
#[test]
fn churn_shows_in_the_human_summary() {
    let server = ServerProcess::start(&[]);
    let out = load(
        server.addr,
        &[
            "-c",
            "2",
            "--messages",
            "50",
            "--messages-per-connection",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("connects"))
        .expect(&text);
    assert!(line.contains("conns/s), connect µs p50 "), "{line}");
}

/// `--reconnect`: a server that hangs up after 640 bytes keeps being
/// reconnected to, so far more connections are established than asked
/// for, and every hang-up is still counted as a reset.
#[test]
fn reconnect_reopens_failed_connections() {
    let addr = bad_server(None, Some(640), Duration::ZERO);
    let out = load(addr, &["-c", "2", "-s", "64", "-d", "600ms", "--reconnect"]);
    assert_eq!(out.status.code(), Some(1), "resets are still errors");
    let text = String::from_utf8(out.stdout).unwrap();
    let established: u64 = text
        .split(" established)")
        .next()
        .and_then(|head| head.rsplit('(').next())
        .and_then(|n| n.trim().parse().ok())
        .expect(&text);
    // 600 ms with a 100 ms back-off: about five rounds of two connections.
    assert!(established >= 6, "reconnected: {text}");
    let count = |kind: &str| -> u64 {
        text.split(&format!("  {kind} "))
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect(&text)
    };
    let hang_ups = count("closed") + count("reset");
    assert!(hang_ups + 2 >= established, "every hang-up counted: {text}");
    // Without --reconnect the same run has exactly two connections.
    let out = load(addr, &["-c", "2", "-s", "64", "-d", "300ms"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("(2 established)"), "{text}");
}

/// `--source`: connections come from the given loopback addresses, in
/// turn (the server's debug log names each peer); a source of the wrong
/// family is a usage error.
#[test]
fn source_addresses_are_used_in_turn() {
    let mut cmd = bin();
    cmd.args(["server", "--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "debug");
    let mut server = ServerProcess::spawn(cmd);
    let out = load(
        server.addr,
        &["-c", "4", "-d", "100ms", "--source", "127.0.0.2,127.0.0.3"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut peers = common::accepted_peers(&mut server, 4);
    peers.sort();
    assert_eq!(peers, ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"]);
    let out = load(server.addr, &["-c", "1", "-d", "100ms", "--source", "::1"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--source ::1 is not of the same family"),
        "{stderr}"
    );
}

/// `--threads 2`: two generator threads, one report: per-thread msgs/s in
/// the JSON, both busy, and together the messages of the run; more threads
/// than connections become one thread per connection.
#[test]
fn threads_split_the_connections_and_merge_the_report() {
    let server = ServerProcess::start(&[]);
    let json = clean_json(server.addr, &["-c", "4", "-d", "300ms", "--threads", "2"]);
    let per: Vec<f64> = json
        .split("\"threads\":[")
        .nth(1)
        .and_then(|t| t.split(']').next())
        .unwrap()
        .split(',')
        .map(|m| m.parse().unwrap())
        .collect();
    assert_eq!(per.len(), 2, "{json}");
    assert!(per.iter().all(|&m| m > 0.0), "{json}");
    let total = json_number(&json, "msgs_per_s");
    let sum: f64 = per.iter().sum();
    assert!(
        (sum - total).abs() <= 0.1 * total,
        "threads {per:?} vs {total}: {json}"
    );
    assert!(json_number(&json, "cpu_us_per_msg") > 0.0, "{json}");

    let out = load(server.addr, &["-c", "2", "-d", "200ms", "--threads", "8"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("busy on 2 threads (msgs/s "), "{text}");
}

/// `--rate` over three threads keeps the whole schedule: what was due is
/// the rate times the window, within 10%, and all of it was sent.
#[test]
fn threads_keep_the_whole_schedule() {
    let server = ServerProcess::start(&[]);
    let args = ["-c", "6", "-d", "1s", "--rate", "600", "--threads", "3"];
    let json = clean_json(server.addr, &args);
    let due = json_number(&json, "schedule.due");
    assert!((540.0..=660.0).contains(&due), "due {due}: {json}");
    assert_eq!(json_number(&json, "schedule.sent"), due, "{json}");
}

/// `--interval 200ms -d 1s`: interval lines during the run, then the
/// summary; the intervals' messages add up to the summary's. With
/// `--json`, JSON Lines: `"type":"interval"` objects, then the summary,
/// which says `"type":"summary"`.
#[test]
fn intervals_as_lines_and_as_json_lines() {
    let server = ServerProcess::start(&[]);
    let out = load(server.addr, &["-c", "2", "-d", "1s", "--interval", "200ms"]);
    let text = common::clean_stdout(out);
    let intervals: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(intervals.len(), 5, "{text}");
    assert!(intervals[0].starts_with("[   0.2s] msgs/s "), "{text}");
    assert!(intervals[4].starts_with("[   1.0s] msgs/s "), "{text}");
    assert!(
        text.lines().nth(5).unwrap().contains("1.00 s measured"),
        "{text}"
    );

    let json = clean_json(
        server.addr,
        &["-c", "2", "-d", "600ms", "--interval", "200ms"],
    );
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 4, "{json}");
    let mut sum = 0.0;
    for (i, line) in lines[..3].iter().enumerate() {
        assert!(
            line.starts_with(&format!("{{\"type\":\"interval\",\"index\":{i},")),
            "{line}"
        );
        sum += json_number(line, "messages");
    }
    assert!(
        lines[3].starts_with("{\"type\":\"summary\",\"connections\":2,"),
        "{}",
        lines[3]
    );
    assert_eq!(sum, json_number(lines[3], "messages"), "{json}");
}

/// `--hdr-log FILE`: an HdrHistogram interval log with a StartTime and
/// one histogram per interval under the tag, that HdrHistogram's own
/// HistogramLogProcessor (Java, Debian's libhdrhistogram-java, which
/// .ci/run installs) reads: its total count and max are the run's.
#[test]
fn the_hdr_log_is_read_by_hdrhistograms_own_processor() {
    let server = ServerProcess::start(&[]);
    let dir = std::env::temp_dir().join(format!("echoloop-hlog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("run.hlog");
    let args = [
        "-c",
        "2",
        "-d",
        "1s",
        "--hdr-log",
        log.to_str().unwrap(),
        "--tag",
        "gen1",
    ];
    let json = clean_json(server.addr, &args);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("#[StartTime: "), "{text}");
    let tagged = text.lines().filter(|l| l.starts_with("Tag=gen1,")).count();
    assert_eq!(
        tagged, 1,
        "one histogram per interval (1 s by default) of 1 s: {text}"
    );
    let jar = "/usr/share/java/hdrhistogram.jar";
    let has_java = std::process::Command::new("java")
        .arg("-version")
        .output()
        .is_ok();
    if !std::path::Path::new(jar).exists() || !has_java {
        common::missing(&format!(
            "no java or {jar} (Debian's libhdrhistogram-java): the processor check"
        ));
        return;
    }
    let out = std::process::Command::new("java")
        .args(["-cp", jar, "org.HdrHistogram.HistogramLogProcessor", "-i"])
        .arg(&log)
        .args(["-tag", "gen1", "-outputValueUnitRatio", "1"])
        .bounded();
    let report = String::from_utf8_lossy(&out.stdout);
    let total = format!("Total count    = {:>12}]", json_number(&json, "messages"));
    assert!(report.contains(&total), "{total} in {report}");
    let max = format!("#[Max     = {:>12.3}", json_number(&json, "latency_us.max"));
    assert!(report.contains(&max), "{max} in {report}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A FIFO at `dir/name`.
fn fifo(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates the file.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    path
}

/// A fresh directory for this test's files.
fn scratch(name: &str) -> std::path::PathBuf {
    common::scratch("load", name)
}

/// `--hdr-log FIFO` with no reader fails at once, with one line, instead
/// of waiting in `open` forever (it ignored `-d`).
#[test]
fn an_hdr_log_fifo_without_a_reader_fails_at_once() {
    let server = ServerProcess::start(&[]);
    let dir = scratch("fifo-alone");
    let path = fifo(&dir, "log");
    let log = path.to_str().unwrap();
    let out = load_to(&server.addr.to_string(), &["-d", "1s", "--hdr-log", log]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "echoloop: error: cannot write {}: it is a FIFO with no reader\n",
            path.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A reader that opens the FIFO and never reads: the log's writes block,
/// but off the loop. The run ends on time, prints its summary, and then
/// fails (exit 1) saying the log fell behind. (Before, the loop itself
/// blocked in the write and the run never ended.)
#[test]
fn a_stalled_hdr_log_reader_does_not_stall_the_run() {
    let server = ServerProcess::start(&[]);
    let dir = scratch("fifo-stalled");
    let path = fifo(&dir, "log");
    // Opened for reading, never read; non-blocking so that open returns.
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    let log = path.to_str().unwrap();
    let args = [
        "-c",
        "2",
        "-d",
        "2s",
        "--interval",
        "1ms",
        "--json",
        "--hdr-log",
        log,
    ];
    let out = load_to(&server.addr.to_string(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let summary = stdout.lines().last().unwrap();
    assert_eq!(common::json_at(summary, "type"), "summary");
    assert!(json_number(summary, "messages") > 0.0, "{summary}");
    let line = stderr.lines().last().unwrap();
    let prefix = format!(
        "echoloop: error: cannot write {}: the log fell behind: ",
        path.display()
    );
    assert!(line.starts_with(&prefix), "{stderr}");
    assert!(line.contains(" intervals not written"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--hdr-log /dev/full`: the measured summary is printed all the same,
/// then the failure, in words (exit 1).
#[test]
fn a_full_disk_keeps_the_summary() {
    let server = ServerProcess::start(&[]);
    let args = ["-d", "300ms", "--json", "--hdr-log", "/dev/full"];
    let out = load_to(&server.addr.to_string(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(json_number(&stdout, "messages") > 0.0, "{stdout}");
    // (A busy warning may come first on a loaded machine.)
    assert_eq!(
        stderr.lines().last(),
        Some("echoloop: error: cannot write /dev/full: no space left on device"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
}

/// A tag ending in `-connect` would be taken for connect latency by
/// `report`: refused as usage (exit 2).
#[test]
fn a_tag_ending_in_connect_is_refused() {
    let out = load("127.0.0.1:9".parse().unwrap(), &["--tag", "x-connect"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`x-connect` ends in `-connect`, which marks connect-latency histograms"),
        "{stderr}"
    );
}

/// A server that accepts slowly (one connection per 20 ms, the behaviour
/// under test) from a backlog of one, so that most connects wait for a SYN
/// retransmission, and echoes each connection's bytes. Serves for as long
/// as the test process lives.
fn slow_accepting_server() -> SocketAddr {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(1).unwrap();
    let listener: TcpListener = socket.into();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
            thread::sleep(Duration::from_millis(20));
        }
    });
    addr
}

/// Churn against a server that is slow to accept (as `ncat --exec` is,
/// forking a process per connection): some slot is always connecting
/// again, and the clock used to wait for a moment when none was, so the
/// run never ended. The clock now starts once every slot's first connect
/// has ended, and the run ends within -d plus --timeout.
#[test]
fn churn_against_a_slow_acceptor_ends_on_time() {
    let addr = slow_accepting_server();
    let args = [
        "-c",
        "12",
        "-d",
        "1s",
        "--timeout",
        "3s",
        "--messages-per-connection",
        "1",
        "--json",
    ];
    let out = load_to(&addr.to_string(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some(),
        "killed at the deadline: {stderr}"
    );
    let json = String::from_utf8(out.stdout).unwrap();
    assert!(json_number(&json, "connects") > 0.0, "{json}");
    assert_eq!(json_number(&json, "duration_s"), 1.0, "{json}");
}

/// Both generators keep one schedule: the same rate and window give the
/// same due count over TCP and over UDP, and it is the count of due times
/// in the window (333.3/s does not divide a second: 334, messages 0 to
/// 333). The two used to count differently (334 and 333).
#[test]
fn streams_and_datagrams_keep_the_same_schedule() {
    let server = ServerProcess::start(&["--udp"]);
    let args = ["-c", "4", "--rate", "333.3", "-d", "1s"];
    let tcp = clean_json(server.addr, &args);
    let mut udp_args = args.to_vec();
    udp_args.push("--json");
    let out = load_to(&format!("udp://{}", server.addr), &udp_args);
    let udp = common::clean_stdout(out);
    assert_eq!(json_number(&tcp, "schedule.due"), 334.0, "{tcp}");
    assert_eq!(json_number(&udp, "schedule.due"), 334.0, "{udp}");
}

/// `--coalesce`: above 1/D msgs/s both generators send in passes at least
/// D apart, each carrying what fell due, and every due message still goes
/// out. 20,000/s for 0.5 s in passes of 10 ms is 10,000 messages in at
/// most 50 passes (plus the first and the last); with `--coalesce 0` the
/// same run takes many more. The human header says it.
#[test]
fn sends_share_passes_at_high_rates() {
    let server = ServerProcess::start(&["--udp"]);
    let args = [
        "-c",
        "10",
        "--rate",
        "20000",
        "-d",
        "500ms",
        "--coalesce",
        "10ms",
    ];
    let tcp = clean_json(server.addr, &args);
    let mut udp_args = args.to_vec();
    udp_args.push("--json");
    let out = load_to(&format!("udp://{}", server.addr), &udp_args);
    let udp = common::clean_stdout(out);
    for json in [&tcp, &udp] {
        assert_eq!(json_number(json, "schedule.due"), 10_000.0, "{json}");
        assert_eq!(json_number(json, "schedule.sent"), 10_000.0, "{json}");
        let passes = json_number(json, "schedule.passes");
        assert!((1.0..=52.0).contains(&passes), "{passes} passes: {json}");
    }
    let each = clean_json(
        server.addr,
        &[
            "-c",
            "10",
            "--rate",
            "2000",
            "-d",
            "500ms",
            "--coalesce",
            "0",
        ],
    );
    assert!(json_number(&each, "schedule.passes") > 52.0, "{each}");
    let out = load(server.addr, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(", open loop at 20000 msgs/s in passes every 10ms, "),
        "{stdout}"
    );
}

/// A reader of stdout that stops reading never stalls the run: the
/// generator hands `--interval`'s lines to a thread, lines that do not fit
/// are counted as lost, the run ends on time (its debug line comes, where
/// before the loop blocked in `write` for good), and after the summary it
/// says what was lost and exits 1. Here stdout is a pipe nobody reads until
/// the run is over: 2,000 lines of 1 ms intervals do not fit its 64 KiB.
#[test]
fn a_stdout_nobody_reads_never_stalls_the_run() {
    use std::io::BufRead as _;
    use std::process::Stdio;
    let server = ServerProcess::start(&[]);
    let mut child = bin()
        .args(["load", &server.addr.to_string(), "-c", "2", "-d", "2s"])
        .args(["--interval", "1ms"])
        .env("RUST_LOG", "echoloop=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if line.contains("the run is over") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let over = rx.recv_timeout(common::DEADLINE);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    let stderr = reader.join().unwrap();
    assert!(over.is_ok(), "the run never ended: {stderr}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("echoloop: error: stdout fell behind: "))
        .collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(
        said[0].contains(" interval lines not written (a reader that stopped reading)"),
        "{stderr}"
    );
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.starts_with(' '))
        .unwrap_or_default();
    assert!(
        last.starts_with(&format!("{}: 2 connections", server.addr)),
        "the summary is last: {last}"
    );
}

/// Open loop reports the service time (from each message's actual send)
/// beside the latency (from its due time): every message was sent at or
/// after it was due, so each percentile of the service time is at most the
/// latency's. Closed loop, where the two are one, has no service figures.
#[test]
fn open_loop_reports_service_time_beside_latency() {
    let server = ServerProcess::start(&[]);
    let json = clean_json(server.addr, &["-c", "10", "--rate", "2000", "-d", "500ms"]);
    for q in ["p50", "p90", "p99", "p999", "max"] {
        let service = json_number(&json, &format!("service_us.{q}"));
        let latency = json_number(&json, &format!("latency_us.{q}"));
        assert!(1.0 <= service && service <= latency, "{q}: {json}");
    }
    let closed = clean_json(server.addr, &["-c", "2", "-d", "200ms"]);
    assert!(!closed.contains("service_us"), "{closed}");
    let out = load(server.addr, &["-c", "10", "--rate", "2000", "-d", "300ms"]);
    let human = String::from_utf8(out.stdout).unwrap();
    assert!(human.contains("  service µs  p50 "), "{human}");
    assert!(human.contains("(from each actual send)"), "{human}");
}

/// Rates and counts take `k` and `M`, as oha and fortio users type them:
/// `--rate 2k` is 2,000 a second (600 due in 300 ms), `--messages 1k`
/// stops at a thousand, `-c 0.004k` is four connections.
#[test]
fn rates_and_counts_take_k_and_m() {
    let server = ServerProcess::start(&[]);
    let json = clean_json(
        server.addr,
        &["-c", "0.004k", "--rate", "2k", "-d", "300ms"],
    );
    assert_eq!(json_number(&json, "schedule.due"), 600.0, "{json}");
    assert_eq!(json_number(&json, "connections"), 4.0, "{json}");
    let json = clean_json(server.addr, &["-c", "2", "--messages", "1k", "-d", "30s"]);
    let messages = json_number(&json, "messages");
    assert!((1000.0..1100.0).contains(&messages), "{json}");
    assert!(json_number(&json, "duration_s") < 30.0, "{json}");
}

/// Open loop over a stream logs the service time beside the latency, under
/// `TAG-service`; `report` keeps it apart from the message latency (the
/// whole run counts messages once) and prints it on a line of its own.
#[test]
fn the_hdr_log_carries_service_time_apart() {
    let server = ServerProcess::start(&[]);
    let dir = common::scratch("load", "service-log");
    let log = dir.join("run.hlog");
    let log_arg = log.to_str().unwrap();
    let args = [
        "-c",
        "4",
        "--rate",
        "1000",
        "-d",
        "1s",
        "--tag",
        "gen",
        "--hdr-log",
        log_arg,
    ];
    let json = clean_json(server.addr, &args);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("Tag=gen-service,")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("Tag=gen,")), "{text}");
    let out = bin().args(["report", log_arg, "--json"]).bounded();
    let report = common::clean_stdout(out);
    assert_eq!(
        common::json_number(&report, "messages"),
        json_number(&json, "messages"),
        "service histograms are not counted as messages: {report}"
    );
    assert!(
        common::json_number(&report, "service_us.p50") >= 1.0,
        "{report}"
    );
    let out = bin().args(["report", log_arg]).bounded();
    let human = common::clean_stdout(out);
    assert!(human.contains("  service     "), "{human}");
}
