//! Fairness: what one or two greedy streams do to a bystander's latency,
//! for each server, and what the streams themselves get.
//!
//! What it compares: the C epoll baseline (`benches/c/`), the echoloop reactor, tokio
//! `current_thread`, thread-per-connection, and (when `ECHOLOOP_BEFORE`
//! names another echoloop binary, e.g. the last commit's) that build as
//! `before`. Each server is its own process pinned to core 0; this process,
//! pinned to core 1, runs 0, 1 or 2 greedy streams (a writer thread pushing
//! 64 KiB writes and a reader thread reading the echo, flat out) and one
//! bystander connection that ping-pongs 64 B messages one at a time.
//!
//! Figures: the bystander's p50 / p99 / max round trip (µs) and echoes per
//! second, and the greedy streams' echoed MB/s (summed). Medians over
//! ROUNDS rounds that rotate the order of the servers, all in one run.
//!
//! The greedy threads run at nice 10 so that, on the one core the client
//! side has, the bystander is woken promptly: what is measured is the
//! server's scheduling, not the client's.
//!
//! `echoloop-tls` is the echoloop reactor serving TLS (`--tls`): its
//! bystander ping-pongs over rustls, and each greedy stream is an
//! `echoloop load tls://` process with one connection pushing 64 KiB
//! messages four at a time (a TLS session cannot be split between a
//! writer and a reader thread as a socket can), at nice 10 on the client
//! core as the threads are.
//!
//! Run: `cargo bench --bench fairness`. Knobs (environment): ROUNDS
//! (default 3), SECS per measurement (default 3), KINDS (comma list,
//! default `c,echoloop,echoloop-tls,tokio,threads,uring`, plus `before` when
//! ECHOLOOP_BEFORE is set), STREAMS (comma list, default `0,1,2`), ALONE=1 to run the
//! streams without the bystander (what the budget costs a stream when
//! there is nobody else to serve).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

#[path = "../tests/common/mod.rs"]
mod common;
mod servers;

use common::ServerProcess;
use servers::{clone_command, env_or, has_taskset, median};

/// One measurement of one server under `streams` greedy streams.
#[derive(Debug, Clone, Copy)]
struct Sample {
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    echoes_per_s: f64,
    greedy_mb_s: f64,
    /// The slowest greedy stream's MB/s: a server that serves one stream
    /// at a time shows a high total and a starved stream here.
    slowest_mb_s: f64,
}

impl Sample {
    /// The bystander's round trips over `elapsed` seconds, beside each
    /// greedy stream's MB/s.
    fn of(latency: &Histogram<u64>, elapsed: f64, streams_mb_s: &[f64]) -> Sample {
        let at = |q: f64| match latency.is_empty() {
            true => f64::NAN,
            false => latency.value_at_quantile(q) as f64 / 1000.0,
        };
        Sample {
            p50_us: at(0.5),
            p99_us: at(0.99),
            max_us: latency.max() as f64 / 1000.0,
            echoes_per_s: latency.len() as f64 / elapsed,
            // Folded from 0.0: an empty f64 sum is -0.0, printed "-0".
            greedy_mb_s: streams_mb_s.iter().fold(0.0, |a, b| a + b),
            slowest_mb_s: streams_mb_s.iter().copied().reduce(f64::min).unwrap_or(0.0),
        }
    }
}

fn main() {
    servers::serve_if_asked();
    let rounds: usize = env_or("ROUNDS", 3);
    let secs: f64 = env_or("SECS", 3.0);
    let default_kinds = if std::env::var_os("ECHOLOOP_BEFORE").is_some() {
        "c,echoloop,echoloop-tls,before,tokio,threads,uring"
    } else {
        "c,echoloop,echoloop-tls,tokio,threads,uring"
    };
    // The TLS kind is this bench's own: the shared list does not know it.
    let kinds = servers::kinds_from_env_with(default_kinds, &["echoloop-tls"]);
    let streams: Vec<usize> = std::env::var("STREAMS")
        .unwrap_or_else(|_| "0,1,2".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    // Count the cores before pinning ourselves to one of them.
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let pin = has_taskset() && pin_self_to(1);
    println!(
        "fairness: {cores} cores (more cannot change this single-loop figure); {rounds} rounds x {secs} s; server on core 0, clients on core 1{}",
        if pin {
            ""
        } else {
            " (NOT pinned: taskset or sched_setaffinity unavailable)"
        }
    );
    println!("bystander 64 B ping-pong: p50 / p99 / max µs, echoes/s; greedy streams: MB/s echoed");
    let window = Duration::from_secs_f64(secs);
    let alone = std::env::var("ALONE").as_deref() == Ok("1");
    if alone {
        println!("ALONE=1: no bystander; only the streams' MB/s mean anything");
    }
    for &n in &streams {
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); kinds.len()];
        for round in 0..rounds {
            for k in 0..kinds.len() {
                let k = (k + round) % kinds.len();
                if let Some(sample) = measure(&kinds[k], n, window, pin, alone) {
                    samples[k].push(sample);
                }
            }
        }
        println!("{n} greedy stream{}:", if n == 1 { "" } else { "s" });
        for (kind, s) in kinds.iter().zip(&samples) {
            let m = |f: fn(&Sample) -> f64| median(s.iter().map(f));
            println!(
                "  {kind:<12} p50 {:>7.0}  p99 {:>7.0}  max {:>8.0}  {:>7.0} echoes/s  \
                 greedy {:>6.0} MB/s (slowest stream {:.0})",
                m(|s| s.p50_us),
                m(|s| s.p99_us),
                m(|s| s.max_us),
                m(|s| s.echoes_per_s),
                m(|s| s.greedy_mb_s),
                m(|s| s.slowest_mb_s),
            );
        }
    }
}

/// Starts `kind` on core 0, runs `streams` greedy streams and the
/// bystander against it for `window`, and stops it.
fn measure(kind: &str, streams: usize, window: Duration, pin: bool, alone: bool) -> Option<Sample> {
    if kind == "echoloop-tls" {
        return measure_tls(streams, window, pin, alone);
    }
    let server = ServerProcess::spawn(clone_command(&servers::command(kind)?, pin.then_some(0)));
    common::eventually("the server to listen", || {
        TcpStream::connect(server.addr).is_ok()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let echoed: Vec<Arc<AtomicU64>> = (0..streams).map(|_| Arc::default()).collect();
    let mut threads = Vec::new();
    for counter in &echoed {
        threads.extend(greedy(server.addr, &stop, counter)?);
    }
    let read = |c: &Vec<Arc<AtomicU64>>| -> Vec<u64> {
        c.iter().map(|e| e.load(Ordering::Relaxed)).collect()
    };
    // Let the streams reach full speed before measuring.
    let warm = Instant::now() + Duration::from_millis(300);
    while Instant::now() < warm && streams > 0 {
        thread::yield_now();
    }
    let before = read(&echoed);
    let started = Instant::now();
    let latency = if alone {
        thread::sleep(window); // the streams run; this thread only times them
        Histogram::new(3).ok()
    } else {
        bystander(server.addr, window)
    };
    let elapsed = started.elapsed().as_secs_f64();
    let per_stream: Vec<u64> = read(&echoed)
        .iter()
        .zip(&before)
        .map(|(now, then)| now - then)
        .collect();
    stop.store(true, Ordering::Relaxed);
    drop(server); // kills it: the stream threads see EOF or an error
    for t in threads {
        let _ = t.join();
    }
    let mb_s: Vec<f64> = per_stream
        .iter()
        .map(|&b| b as f64 / elapsed / 1e6)
        .collect();
    Some(Sample::of(&latency?, elapsed, &mb_s))
}

/// `echoloop-tls`: the server with `--tls` on core 0; greedy streams are
/// `echoloop load tls://` processes, the bystander a rustls ping-pong.
fn measure_tls(streams: usize, window: Duration, pin: bool, alone: bool) -> Option<Sample> {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_echoloop"));
    cmd.args(["server", "--bind", "127.0.0.1:0", "--tls"]);
    let server = ServerProcess::spawn(clone_command(&cmd, pin.then_some(0)));
    let (cert, _) = server.tls_cert.clone()?;
    let run = format!("{}ms", (window.as_millis() + 600).min(600_000));
    let greedy: Vec<std::process::Child> = (0..streams)
        .filter_map(|_| {
            std::process::Command::new("nice")
                .args([
                    "-n",
                    "10",
                    env!("CARGO_BIN_EXE_echoloop"),
                    "load",
                    &server.ready,
                ])
                .args([
                    "--cacert",
                    &cert,
                    "-c",
                    "1",
                    "-s",
                    "65536",
                    "--pipeline",
                    "4",
                ])
                .args(["-d", &run, "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()
        })
        .collect();
    // Let the streams reach full speed before measuring.
    let warm = Instant::now() + Duration::from_millis(300);
    while Instant::now() < warm && streams > 0 {
        thread::yield_now();
    }
    let started = Instant::now();
    let latency = if alone {
        thread::sleep(window);
        Histogram::new(3).ok()
    } else {
        tls_bystander(&server, &cert, window)
    };
    let elapsed = started.elapsed().as_secs_f64();
    // Each stream's own figure, over its own window (close to ours).
    let per_stream: Vec<f64> = greedy
        .into_iter()
        .filter_map(|child| child.wait_with_output().ok())
        .map(|out| {
            let json = String::from_utf8_lossy(&out.stdout);
            common::json_number(&json, "mib_per_s") * 1048576.0 / 1e6
        })
        .collect();
    drop(server);
    Some(Sample::of(&latency?, elapsed, &per_stream))
}

/// The bystander over TLS: 64 B ping-pong through rustls for `window`.
fn tls_bystander(server: &ServerProcess, cert: &str, window: Duration) -> Option<Histogram<u64>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(cert).ok()? {
        roots.add(c.ok()?).ok()?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").ok()?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
    let tcp = TcpStream::connect(server.addr).ok()?;
    tcp.set_nodelay(true).ok()?;
    tcp.set_read_timeout(Some(window + Duration::from_secs(10)))
        .ok()?;
    ping_pong(&mut rustls::StreamOwned::new(conn, tcp), window)
}

/// One greedy stream: a writer thread and a reader thread on one
/// connection, both flat out until `stop`, at nice 10.
fn greedy(
    addr: SocketAddr,
    stop: &Arc<AtomicBool>,
    echoed: &Arc<AtomicU64>,
) -> Option<[thread::JoinHandle<()>; 2]> {
    let reader = TcpStream::connect(addr).ok()?;
    let writer = reader.try_clone().ok()?;
    let (stop_w, stop_r) = (Arc::clone(stop), Arc::clone(stop));
    let echoed = Arc::clone(echoed);
    let w = thread::spawn(move || {
        lower_priority();
        let mut writer = writer;
        let chunk = vec![0x5au8; 64 * 1024];
        while !stop_w.load(Ordering::Relaxed) {
            if writer.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let r = thread::spawn(move || {
        lower_priority();
        let mut reader = reader;
        let mut buf = vec![0u8; 256 * 1024];
        while !stop_r.load(Ordering::Relaxed) {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    echoed.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
    });
    Some([w, r])
}

/// Ping-pongs 64 B for `window`; the histogram of round trips in ns.
/// `None` if the connection fails (the bench reports the server as failed
/// for that round rather than guessing).
fn bystander(addr: SocketAddr, window: Duration) -> Option<Histogram<u64>> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_nodelay(true).ok()?;
    s.set_read_timeout(Some(window + Duration::from_secs(10)))
        .ok()?;
    ping_pong(&mut s, window)
}

/// The bystander's loop, plain or TLS: 64 B out, 64 B back, each round
/// trip recorded, for `window`. `None` on an error or a wrong echo.
fn ping_pong(s: &mut (impl Read + Write), window: Duration) -> Option<Histogram<u64>> {
    let mut latency = Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3).ok()?;
    let msg = [0x42u8; 64];
    let mut back = [0u8; 64];
    let end = Instant::now() + window;
    while Instant::now() < end {
        let sent = Instant::now();
        s.write_all(&msg).ok()?;
        s.read_exact(&mut back).ok()?;
        latency.saturating_record(sent.elapsed().as_nanos() as u64);
        if back != msg {
            eprintln!("bystander: echo differs from what was sent");
            return None;
        }
    }
    Some(latency)
}

/// Pins this process (and the threads it starts later) to `core`.
fn pin_self_to(core: usize) -> bool {
    // SAFETY: sched_setaffinity reads the cpu_set_t we built; pid 0 is us.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Nice 10 for the calling thread (Linux: a thread id is a PRIO_PROCESS who).
fn lower_priority() {
    // SAFETY: gettid and setpriority take and return plain integers.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}
