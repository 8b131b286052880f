//! `echoloop report`: three generators against one server at once, each
//! from its own loopback address and with its own `--hdr-log`, merged;
//! the HTML page; bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use common::{DEADLINE, ServerProcess, bin, free_port, json_number, run_bounded};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;

/// A fresh directory for this test's files.
fn scratch(name: &str) -> std::path::PathBuf {
    common::scratch("report", name)
}

fn report(args: &[&str]) -> Output {
    let mut cmd = bin();
    cmd.arg("report").args(args);
    run_bounded(cmd, DEADLINE)
}

/// Adds up every `Tag=…` histogram of the logs, independently of the
/// report's own code: base64, then HdrHistogram's V2 deserializer.
fn added_histograms(logs: &[PathBuf]) -> Histogram<u64> {
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for log in logs {
        for line in std::fs::read_to_string(log).unwrap().lines() {
            if !line.starts_with("Tag=") || line.contains("-connect,") {
                continue;
            }
            let encoded = line.rsplit(',').next().unwrap();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap();
            let h: Histogram<u64> = Deserializer::new()
                .deserialize(&mut bytes.as_slice())
                .unwrap();
            all.add(&h).unwrap();
        }
    }
    all
}

/// Three generators run at once against one server, from 127.0.0.2, .3
/// and .4, each writing its own log; `report` merges the three: its count
/// is the sum of the three summaries, its percentiles are those of the
/// three logs' histograms added, and each tag has its own count.
#[test]
fn three_generators_merge_into_one_report() {
    let dir = scratch("three");
    let server = ServerProcess::start(&[]);
    let runs: Vec<(PathBuf, std::thread::JoinHandle<Output>)> = (2..=4)
        .map(|i| {
            let log = dir.join(format!("gen{i}.hlog"));
            let mut cmd: Command = bin();
            cmd.arg("load")
                .arg(server.addr.to_string())
                .args(["-c", "2", "-d", "2s", "--interval", "500ms", "--json"])
                .args([
                    "--source",
                    &format!("127.0.0.{i}"),
                    "--tag",
                    &format!("gen{i}"),
                ])
                .arg("--hdr-log")
                .arg(&log);
            (log, std::thread::spawn(move || run_bounded(cmd, DEADLINE)))
        })
        .collect();
    let mut logs = Vec::new();
    let mut sum = 0.0;
    let mut each = Vec::new();
    for (log, run) in runs {
        let out = run.join().unwrap();
        let text = common::clean_stdout(out);
        let summary = text.lines().last().unwrap();
        sum += json_number(summary, "messages");
        each.push(json_number(summary, "messages"));
        logs.push(log);
    }
    let paths: Vec<&str> = logs.iter().map(|p| p.to_str().unwrap()).collect();
    let mut args = paths.clone();
    args.push("--json");
    let out = report(&args);
    let json = common::clean_stdout(out);
    assert_eq!(json_number(&json, "messages"), sum, "{json}");
    let added = added_histograms(&logs);
    assert_eq!(added.len() as f64, sum);
    for (key, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
        assert_eq!(
            json_number(&json, &format!("latency_us.{key}")),
            added.value_at_quantile(q) as f64,
            "{key}: {json}"
        );
    }
    assert_eq!(
        json_number(&json, "latency_us.max"),
        added.max() as f64,
        "{json}"
    );
    for (i, n) in (2..=4).zip(&each) {
        assert_eq!(
            json_number(&json, &format!("tags.gen{i}")),
            *n,
            "gen{i}: {json}"
        );
    }
    assert_eq!(
        common::json_at(&json, "apart"),
        false,
        "they overlap: {json}"
    );

    // The human summary and the page.
    let page = dir.join("report.html");
    let mut args = paths;
    args.extend(["--html", page.to_str().unwrap()]);
    let out = report(&args);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("3 logs, tags gen2 gen3 gen4; "), "{text}");
    check_page(&page, sum as u64, &each);
    screenshot(&page, &dir);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The page: self-contained (no scripts, no fetches), four charts whose
/// SVG is well-formed XML (python3's parser), and the right numbers.
fn check_page(page: &Path, total: u64, each: &[f64]) {
    let html = std::fs::read_to_string(page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Nothing to run or fetch (the SVG's xmlns URI is a name, not a fetch).
    for fetch in ["<script", "<link", "<img", "src=", "url(", "@import"] {
        assert!(!html.contains(fetch), "{fetch} in the page");
    }
    assert_eq!(html.matches("<svg").count(), 4, "four charts");
    assert!(
        html.contains(&format!("<p id=\"summary\">{total} messages over ")),
        "total"
    );
    for (i, n) in (2..=4).zip(each) {
        assert!(
            html.contains(&format!("<tr><td>gen{i}</td><td>{n}</td>")),
            "gen{i}"
        );
    }
    let check = "import re,sys,xml.dom.minidom as m\n\
                 t=open(sys.argv[1]).read()\n\
                 svgs=re.findall(r'<svg.*?</svg>',t,re.S)\n\
                 [m.parseString(s) for s in svgs]\n\
                 print(len(svgs))";
    match Command::new("python3")
        .args(["-c", check])
        .arg(page)
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4");
        }
        Err(e) => common::missing(&format!(
            "no python3 ({e}) for the SVG well-formedness check"
        )),
    }
}

/// Headless Chromium renders the page to a PNG of the asked size (Debian's
/// `chromium`, which .ci/run installs; skipped, saying so, without it).
fn screenshot(page: &Path, dir: &Path) {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
    else {
        common::missing("no chromium for the rendering check");
        return;
    };
    let png = dir.join("page.png");
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1000,1600",
    ])
    .arg(format!("--screenshot={}", png.display()))
    .arg(format!("file://{}", page.display()));
    let out = run_bounded(cmd, DEADLINE);
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1000, 1600));
    assert!(bytes.len() > 20_000, "a page with charts, not a blank one");
}

/// A missing file is exit 1; an empty or foreign one is exit 2
/// naming the file (and the line); logs that do not overlap are said so.
#[test]
fn bad_logs_and_logs_apart() {
    let dir = scratch("bad");
    let missing = dir.join("missing.hlog");
    let out = report(&[missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot read {}", missing.display())),
        "{stderr}"
    );

    let empty = dir.join("empty.hlog");
    std::fs::write(&empty, b"").unwrap();
    let foreign = dir.join("foreign.txt");
    std::fs::write(&foreign, b"hello\nworld\n").unwrap();

    // A real log, then a copy cut in the middle of its last histogram.
    let server = ServerProcess::start(&[]);
    let log = dir.join("real.hlog");
    let mut cmd = bin();
    cmd.arg("load")
        .arg(server.addr.to_string())
        .args([
            "-c",
            "1",
            "-d",
            "1s",
            "--interval",
            "250ms",
            "--tag",
            "a",
            "--hdr-log",
        ])
        .arg(&log);
    assert_eq!(run_bounded(cmd, DEADLINE).status.code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    // Cut in the middle of the last histogram's base64.
    let cut = text.rfind("Tag=").unwrap() + 60;
    let truncated = dir.join("truncated.hlog");
    std::fs::write(&truncated, &text[..cut]).unwrap();
    let last_line = text[..cut].lines().count();

    for (file, want) in [
        (
            &empty,
            format!("{}: no interval histograms", empty.display()),
        ),
        (
            &foreign,
            format!("{}:1: not an interval log line", foreign.display()),
        ),
    ] {
        let out = report(&[file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", file.display());
        assert!(stderr.contains(&want), "{want} in {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
    // A log cut mid-line (a run killed while it wrote) is no longer
    // refused: its whole lines are used, with a note (tests/stop.rs).
    let out = report(&[truncated.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("line {last_line} is cut short")),
        "{stderr}"
    );

    // The same run, retagged and moved 1000 s later: apart in time.
    let moved: String = text
        .lines()
        .map(|l| {
            if let Some(rest) = l.strip_prefix("#[BaseTime: ") {
                let t: f64 = rest.split_whitespace().next().unwrap().parse().unwrap();
                format!("#[BaseTime: {:.3} (seconds since epoch)]", t + 1000.0)
            } else {
                l.replace("Tag=a,", "Tag=b,")
            }
        })
        .map(|l| l + "\n")
        .collect();
    let later = dir.join("later.hlog");
    std::fs::write(&later, moved).unwrap();
    let page = dir.join("apart.html");
    let out = report(&[
        log.to_str().unwrap(),
        later.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(
            "note: the tags' logs do not all overlap in time (see each tag's span above); \
             to compare separate runs, use --compare"
        ),
        "{text}"
    );
    // The page says so too, and its lines break over the 1000 s between
    // the logs: the total (blue) is drawn as two stretches, two separate
    // <polyline>s in plotters' SVG, not one line bridging the gap.
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<p id=\"apart\">"), "{html}");
    let throughput = html.split("<h2>").nth(1).unwrap();
    let total_line = "<polyline fill=\"none\" opacity=\"1\" stroke=\"#0000FF\" stroke-width=\"2\"";
    assert_eq!(throughput.matches(total_line).count(), 2, "{throughput}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A proxy process (socat, haproxy) on a loopback port, ended (by its
/// PID, which we started) when dropped.
struct Proxy {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` as a proxy listening on `addr`, and waits (bounded) until
/// it accepts; `None`, saying so, when the program is not installed.
fn proxy(mut cmd: Command, addr: std::net::SocketAddr, name: &str) -> Option<Proxy> {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            common::missing(&format!("no {name} ({e}) for the proxy comparison"));
            return None;
        }
    };
    let proxy = Proxy { child, addr };
    common::eventually(&format!("{name} listening on {addr}"), || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    Some(proxy)
}

/// socat forwarding `addr` → `to`, a process per connection (its default).
fn socat(to: std::net::SocketAddr) -> Option<Proxy> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut cmd = Command::new("socat");
    cmd.arg(format!(
        "TCP-LISTEN:{},bind=127.0.0.1,fork,reuseaddr",
        addr.port()
    ))
    .arg(format!("TCP:{to}"));
    proxy(cmd, addr, "socat")
}

/// The same open-loop run (2,000 msgs/s over 10 connections for 2 s)
/// against `addr`, logged to `log`.
fn logged_run(addr: std::net::SocketAddr, log: &Path, tag: &str) {
    let mut cmd = bin();
    cmd.arg("load")
        .arg(addr.to_string())
        .args(["-c", "10", "--rate", "2000", "-d", "2s", "--tag", tag])
        .arg("--hdr-log")
        .arg(log);
    let out = run_bounded(cmd, DEADLINE);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `report --compare`: the same load direct, through socat and through
/// haproxy (Debian's, installed by .ci/run), one column per run with its
/// ratios to the first, JSON alike, and a page with one line per run on
/// its own axis (rendered by headless Chromium).
#[test]
fn compare_direct_and_through_proxies() {
    let dir = scratch("compare");
    let server = ServerProcess::start(&[]);
    let direct = dir.join("direct.hlog");
    logged_run(server.addr, &direct, "direct");
    let mut runs = vec![format!("direct={}", direct.display())];
    if let Some(p) = socat(server.addr) {
        let log = dir.join("socat.hlog");
        logged_run(p.addr, &log, "socat");
        runs.push(format!("socat={}", log.display()));
    }
    let haproxy = common::Haproxy::start(&dir, |port| {
        format!(
            "frontend echo\n  bind 127.0.0.1:{port}\n  default_backend target\n\
             backend target\n  server s1 {}\n",
            server.addr
        )
    });
    if let Some(p) = haproxy {
        let log = dir.join("haproxy.hlog");
        logged_run(p.addr(), &log, "haproxy");
        runs.push(format!("haproxy={}", log.display()));
    }
    let mut args: Vec<&str> = vec!["--compare"];
    args.extend(runs.iter().map(String::as_str));
    let out = report(&[&args[..], &["--json"]].concat());
    let json = common::clean_stdout(out);
    for (i, name) in ["direct", "socat", "haproxy"]
        .iter()
        .take(runs.len())
        .enumerate()
    {
        assert_eq!(common::json_at(&json, &format!("runs.{i}.name")), *name);
        let msgs = json_number(&json, &format!("runs.{i}.msgs_per_s"));
        // Offered 2,000/s: never more came back (how many did is the
        // machine's load, shown, not asserted).
        assert!(msgs > 0.0 && msgs <= 2100.0, "{name}: {json}");
        assert_eq!(json_number(&json, &format!("runs.{i}.errors")), 0.0);
        let p50 = json_number(&json, &format!("runs.{i}.latency_us.p50"));
        let base = json_number(&json, "runs.0.latency_us.p50");
        let ratio = json_number(&json, &format!("runs.{i}.ratio.p50"));
        assert!((ratio - p50 / base).abs() < 0.001, "{json}");
    }
    assert_eq!(json_number(&json, "runs.0.ratio.p99"), 1.0);

    let page = dir.join("compare.html");
    args.extend(["--html", page.to_str().unwrap()]);
    let text = common::clean_stdout(report(&args));
    assert!(
        text.starts_with(&format!(
            "{} runs compared, ratios to direct; each on its own time axis\n",
            runs.len()
        )),
        "{text}"
    );
    assert!(text.contains("\n  p99 µs "), "{text}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<svg").count(), 5, "five charts");
    assert!(html.contains("ratios to direct"), "{html}");
    for name in runs.iter().map(|r| r.split('=').next().unwrap()) {
        // Each run is a line, named in the legends.
        let legend = format!(">\n{name}\n</text>");
        assert_eq!(
            html.matches(&legend).count(),
            5,
            "{name}'s line in each chart"
        );
    }
    screenshot(&page, &dir);
    // A second run of the same name is refused; one run is not a comparison.
    let twice = report(&["--compare", &runs[0], &runs[0]]);
    assert_eq!(twice.status.code(), Some(2));
    let one = report(&["--compare", &runs[0]]);
    assert_eq!(one.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&one.stderr).contains("takes 2 to 12 runs"));
    std::fs::remove_dir_all(&dir).unwrap();
}
