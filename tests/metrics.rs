//! `echoloop server --metrics ADDR`: the OpenMetrics text over a small
//! HTTP/1.1 exchange from the same loop, checked by hand and scraped by a
//! real Prometheus server (Debian's `prometheus`, which .ci/run installs).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use common::{DEADLINE, Prometheus, http, round_trip, server_with_metrics};

/// GET /metrics after 3 echo connections: 200, OpenMetrics, the counters
/// with Prometheus names; anything else is 404, 405 or 400; HEAD has no
/// body; a head past 8 KiB is 400.
#[test]
fn the_metrics_exchange() {
    let (server, metrics) = server_with_metrics(&["--udp"]);
    for _ in 0..3 {
        let mut c = server.connect();
        round_trip(&mut c, b"count me");
    }
    let got = common::eventually_value(|| {
        let r = http(metrics, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        r.contains("echoloop_connections_closed_total 3\n")
            .then_some(r)
    });
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(
        got.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{got}"
    );
    for line in [
        "echoloop_connections_accepted_total 3\n",
        "echoloop_received_bytes_total 24\n",
        "echoloop_sent_bytes_total 24\n",
        "# TYPE echoloop_connections_open gauge\n",
        "# TYPE echoloop_events_per_poll histogram\n",
        "echoloop_events_per_poll_bucket{le=\"+Inf\"} ",
        "echoloop_udp_datagrams_received_total 0\n",
    ] {
        assert!(got.contains(line), "{line} in {got}");
    }
    assert!(got.ends_with("# EOF\n"), "{got}");
    let head = http(metrics, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200 OK") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert!(http(metrics, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
    assert!(http(metrics, b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    assert!(http(metrics, b"nonsense\r\n\r\n").starts_with("HTTP/1.1 400 "));
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    assert!(http(metrics, huge.as_bytes()).starts_with("HTTP/1.1 400 "));
    // The echo goes on meanwhile.
    round_trip(&mut server.connect(), b"still here");
}

/// With `--threads 2` the main thread serves the metrics, one series per
/// reactor (label `reactor`).
#[test]
fn per_reactor_labels() {
    let (server, metrics) = server_with_metrics(&["--threads", "2"]);
    let held: Vec<_> = (0..20).map(|_| server.connect()).collect();
    let got = common::eventually_value(|| {
        let r = http(metrics, b"GET /metrics HTTP/1.1\r\n\r\n");
        let open: u64 = r
            .lines()
            .filter(|l| l.starts_with("echoloop_connections_open{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        (open == 20).then_some(r)
    });
    for reactor in ["0", "1"] {
        let series = format!("echoloop_connections_accepted_total{{reactor=\"{reactor}\"}} ");
        assert!(got.contains(&series), "{series} in {got}");
        let histogram = format!("echoloop_events_per_poll_count{{reactor=\"{reactor}\"}} ");
        assert!(got.contains(&histogram), "{histogram} in {got}");
    }
    assert!(
        !got.contains("echoloop_events_per_poll_count "),
        "no unlabelled one: {got}"
    );
    drop(held);
}

/// Heads that real clients send: bare LF line ends (`printf … | nc`) and
/// the absolute-form target (`curl --request-target http://…`) get the
/// metrics at once (the bare-LF head used to wait out the 10 s timeout);
/// a version other than 1.0 or 1.1 does not.
#[test]
fn bare_lf_and_absolute_form_heads_are_answered() {
    let (_server, metrics) = server_with_metrics(&[]);
    let bare = http(metrics, b"GET /metrics HTTP/1.1\nHost: x\n\n");
    assert!(bare.starts_with("HTTP/1.1 200 OK\r\n"), "{bare}");
    let absolute = format!("GET http://{metrics}/metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let got = http(metrics, absolute.as_bytes());
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    let got = http(metrics, b"GET /metrics HTTP/1.9\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 505 "), "{got}");
}

/// A request sent and half-closed at once, as `printf … | nc -q 12`
/// does: the FIN ends the head, not the scrape, and the request is
/// answered, bare LF or CRLF (it used to be dropped unanswered). A head
/// cut short by the FIN is closed without an answer.
#[test]
fn a_request_followed_by_a_fin_is_answered() {
    let (_server, metrics) = server_with_metrics(&[]);
    let half_closed = |request: &[u8]| {
        let mut s = TcpStream::connect(metrics).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(request).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };
    for request in [
        &b"GET /metrics HTTP/1.1\nHost: x\n\n"[..],
        &b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"[..],
    ] {
        let got = half_closed(request);
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(
            got.contains("\necholoop_connections_accepted_total 0\n"),
            "{got}"
        );
    }
    assert_eq!(half_closed(b"GET /metrics HTTP/1.1\nHost:"), "");
}

/// A real Prometheus scrapes the endpoint: through its query API the
/// target is up, and `echoloop_connections_accepted_total` is what this
/// test did (7 connections).
#[test]
fn a_real_prometheus_scrapes_it() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        common::missing("no prometheus (Debian's package `prometheus`)");
        return;
    }
    let (server, metrics) = server_with_metrics(&[]);
    for _ in 0..7 {
        round_trip(&mut server.connect(), b"seven");
    }
    let dir = std::env::temp_dir().join(format!("echoloop-prom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut prometheus = Prometheus::scraping(metrics, &dir);
    let value = |query: &str| prometheus.value(query);
    // The first value Prometheus has is its first scrape's, taken after
    // the seven connections: it must be right, not become right.
    let up = common::eventually_value(|| value("up"));
    assert_eq!(up, "1");
    let accepted = common::eventually_value(|| value("echoloop_connections_accepted_total"));
    assert_eq!(accepted, "7");
    prometheus.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}
