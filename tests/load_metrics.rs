//! `load --metrics ADDR`: the generator's own Prometheus endpoint, live
//! during the run. Scraped by hand and by a real Prometheus, it has the
//! messages, errors by kind, the offered load and the latency and
//! send-lag histograms; an address that cannot be served is exit 1.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{DEADLINE, Prometheus, ServerProcess, bin, http, missing};

/// An open-loop run of 8 s against echoloop's server with `--metrics` on
/// port 0: the log says where; a scrape by hand has every series; a real
/// Prometheus, scraping each second, stores them while the run goes on;
/// and the run ends as usual (exit 0).
#[test]
fn a_real_prometheus_scrapes_the_generator() {
    let server = ServerProcess::start(&[]);
    let mut load = bin()
        .args([
            "load",
            &server.addr.to_string(),
            "-c",
            "4",
            "--rate",
            "400",
            "-d",
            "8s",
        ])
        .args(["--metrics", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = load.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.split("metrics on http://").nth(1) {
                let _ = tx.send(at.trim_end_matches("/metrics").to_string());
            }
        }
    });
    let addr: std::net::SocketAddr = rx
        .recv_timeout(DEADLINE)
        .expect("the log says where the metrics are")
        .parse()
        .unwrap();
    let scrape = || http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let text = common::eventually_value(|| {
        let text = scrape();
        // Once the window runs: the offered load and the first answers.
        (text.contains("\necholoop_load_due_total ")
            && !text.contains("\necholoop_load_messages_total 0\n"))
        .then_some(text)
    });
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    for series in [
        "echoloop_load_messages_total ",
        "echoloop_load_errors_total{kind=\"timeout\"} 0",
        "echoloop_load_in_flight ",
        "echoloop_load_due_total ",
        "echoloop_load_send_lag_seconds_count ",
        "echoloop_load_latency_seconds_bucket{le=\"+Inf\"} ",
    ] {
        assert!(text.contains(series), "{series} in {text}");
    }
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        missing("no prometheus (Debian's package `prometheus`)");
    } else {
        let dir = common::scratch("load-metrics", "prometheus");
        let prometheus = Prometheus::scraping(addr, &dir);
        let messages = common::eventually_value(|| {
            prometheus
                // Over the last minutes: once the run is over, an instant
                // query finds the series stale.
                .value("max_over_time(echoloop_load_messages_total[5m])")
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|n| *n > 0.0)
        });
        assert!(messages > 0.0);
        let due = prometheus
            .value("max_over_time(echoloop_load_due_total[5m])")
            .unwrap_or_default();
        assert!(due.parse::<f64>().is_ok_and(|d| d > 0.0), "offered: {due}");
        // {kind="timeout"}, percent-encoded for the request line.
        let timeouts = prometheus
            .value("max_over_time(echoloop_load_errors_total%7Bkind%3D%22timeout%22%7D[5m])");
        assert_eq!(timeouts.as_deref(), Some("0"));
    }
    let status = load.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// Not an address, or a port past 65535: usage errors (exit 2).
#[test]
fn a_bad_metrics_address_is_a_usage_error() {
    for bad in ["nonsense", "127.0.0.1:99999", "127.0.0.1", ""] {
        common::assert_usage_error(&["load", "127.0.0.1:9", "--metrics", bad], "--metrics");
    }
}

/// An address already taken: exit 1 and one line that says so, before
/// anything is sent.
#[test]
fn a_metrics_address_in_use_is_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap().to_string();
    let out = bin()
        .args(["load", "127.0.0.1:9", "-d", "1s", "--metrics", &at])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot serve --metrics on {at}: ")),
        "{err}"
    );
}
