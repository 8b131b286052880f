//! Server CPU time per echoed message, and bulk throughput, for each server.
//!
//! What it compares: the C epoll baseline (`benches/c/epoll_echo.c`, when
//! a C compiler can build it), the echoloop reactor, tokio `current_thread` and
//! thread-per-connection, each as its own process pinned to core 0 while
//! `echoloop load` drives it from core 1. The figure is the server's
//! utime+stime (from /proc/PID/stat) divided by the messages echoed.
//!
//! Why this figure and not msgs/s: on a 2-core machine the load generator
//! co-limits msgs/s at 50+ connections, and whole runs swing by 15–25%, so
//! servers are ranked by what each message costs the server, as the median
//! of several rounds that alternate the servers (each round runs them in a
//! rotated order), all inside one run. The ratio to C is the median of the
//! per-round ratios, which cancels slow and fast spells of the machine.
//!
//! Run: `cargo bench --bench cpu_per_message`. Knobs (environment):
//! ROUNDS (default 5), SECS per measurement (default 3), KINDS (comma list,
//! default `c,echoloop,tokio,threads,uring`), WORKLOADS (comma list of CxS,
//! default `1x64,50x64,500x64,50x1024`), BULK=0 to skip the 1 GiB streams.

use std::process::Command;

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "servers/measure.rs"]
mod measure;
mod servers;

use common::{ServerProcess, json_number};
use measure::{Measured, bulk_mb_per_s, measure, run_load};
use servers::{clone_command, env_or, has, has_taskset, median};

/// One measurement: server and load CPU µs per message, and msgs/s.
#[derive(Debug, Clone, Copy)]
struct Sample {
    cpu_us_per_msg: f64,
    load_us_per_msg: f64,
    msgs_per_s: f64,
}

impl Sample {
    /// A measurement that failed: left out of every median.
    const FAILED: Sample = Sample {
        cpu_us_per_msg: f64::NAN,
        load_us_per_msg: f64::NAN,
        msgs_per_s: f64::NAN,
    };

    /// Per message, from a measured run.
    fn of(m: &Measured) -> Sample {
        let messages = json_number(&m.json, "messages").max(1.0);
        Sample {
            cpu_us_per_msg: m.server_cpu_us / messages,
            load_us_per_msg: m.load_cpu_us / messages,
            msgs_per_s: json_number(&m.json, "msgs_per_s"),
        }
    }
}

fn main() {
    servers::serve_if_asked();
    echoloop::shared::net::raise_fd_limit().expect("raise the fd limit");
    let rounds: usize = env_or("ROUNDS", 5);
    let secs: f64 = env_or("SECS", 3.0);
    let kinds = servers::kinds_from_env("c,echoloop,tokio,threads,uring");
    let workloads: Vec<(usize, usize)> = std::env::var("WORKLOADS")
        .unwrap_or_else(|_| "1x64,50x64,500x64,50x1024".into())
        .split(',')
        .filter_map(|w| {
            let (c, s) = w.split_once('x')?;
            Some((c.parse().ok()?, s.parse().ok()?))
        })
        .collect();
    let pin = has_taskset();
    if !pin {
        println!("taskset not found: server and load are NOT pinned");
    }
    println!(
        "cpu_per_message: {rounds} rounds x {secs} s, server on core 0, load on core 1; \
         medians of server CPU per message (msgs/s and the load's CPU per message in brackets)"
    );

    for &(conns, size) in &workloads {
        // samples[kind][round]; a failed measurement is NaN.
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); kinds.len()];
        for round in 0..rounds {
            for k in 0..kinds.len() {
                let k = (k + round) % kinds.len(); // rotate the order each round
                let load = [
                    "-c".to_string(),
                    conns.to_string(),
                    "-s".into(),
                    size.to_string(),
                    "-d".into(),
                    format!("{secs}s"),
                ];
                let sample = servers::command(&kinds[k])
                    .and_then(|cmd| measure(&cmd, &load, pin))
                    .map_or(Sample::FAILED, |m| Sample::of(&m));
                samples[k].push(sample);
            }
        }
        print!("{conns:>4} x {size:<5} B:");
        let c = kinds.iter().position(|k| k == "c");
        for (kind, s) in kinds.iter().zip(&samples) {
            let cpu = median(s.iter().map(|s| s.cpu_us_per_msg));
            let rate = median(s.iter().map(|s| s.msgs_per_s));
            let load = median(s.iter().map(|s| s.load_us_per_msg));
            // The ratio to C is taken round by round (the two ran a few
            // seconds apart), then the median of those ratios.
            let ratio = c.map_or(String::new(), |c| {
                let ratios = s
                    .iter()
                    .zip(&samples[c])
                    .map(|(mine, theirs)| mine.cpu_us_per_msg / theirs.cpu_us_per_msg);
                format!(" {:.2}x", median(ratios))
            });
            print!("  {kind} {cpu:.2} µs{ratio} [{rate:.0}/s, load {load:.2} µs]");
        }
        println!();
    }

    if std::env::var("BULK").as_deref() != Ok("0") {
        bulk(&kinds, pin);
    }
}

/// One connection streaming 1 GiB through the echo (1 MiB messages, 4 in
/// flight): MB/s for each server, and for echoloop with 64 KiB reads.
fn bulk(kinds: &[String], pin: bool) {
    let load = [
        "-c",
        "1",
        "-s",
        "1048576",
        "--pipeline",
        "4",
        "--messages",
        "1024",
        "-d",
        "120s",
    ]
    .map(String::from);
    println!("bulk: 1 GiB through one connection, MB/s (median of 3)");
    let mut runs: Vec<(String, Option<Command>)> = kinds
        .iter()
        .filter(|k| k.as_str() != "threads" && k.as_str() != "tokio")
        .map(|k| (k.clone(), servers::command(k)))
        .collect();
    let mut wide = servers::command("echoloop").unwrap();
    wide.args(["--read-size", "65536"]);
    runs.push(("echoloop --read-size 65536".into(), Some(wide)));
    if has("socat") {
        // socat's echo (8 KiB buffers by default), on a free port; `fork`
        // so that the probe connection below does not use it up.
        let mut socat = Command::new("sh");
        socat.args([
            "-c",
            "port=$(python3 -c 'import socket;s=socket.socket();s.bind((\"127.0.0.1\",0));print(s.getsockname()[1])'); \
             echo listening on 127.0.0.1:$port; \
             exec socat TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork PIPE",
        ]);
        runs.push(("socat".into(), Some(socat)));
    }
    for (name, cmd) in runs {
        let Some(cmd) = cmd else { continue };
        let mut rates = Vec::new();
        for _ in 0..3 {
            let server = ServerProcess::spawn(clone_command(&cmd, pin.then_some(0)));
            // socat prints nothing itself: wait until it really listens.
            common::eventually("the server to listen", || {
                std::net::TcpStream::connect(server.addr).is_ok()
            });
            if let Some(json) = run_load(&server, &load, pin) {
                rates.push(bulk_mb_per_s(&json));
            }
        }
        println!("  {name}: {:.0} MB/s", median(rates.into_iter()));
    }
}
