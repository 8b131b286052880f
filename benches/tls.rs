//! What TLS costs, and who terminates it best: handshakes, record
//! protection and idle memory, for `echoloop server --tls` beside what
//! people put in front of a plain echo server today.
//!
//! The kinds, each terminating TLS 1.3 with the same ECDSA P-256
//! certificate, X25519 and TLS_AES_128_GCM_SHA256, pinned to core 0
//! while `echoloop load tls://` drives it from core 1:
//!
//! - `echoloop`: `echoloop server --tls` (tickets on);
//! - `tokio-rustls`: a tokio `current_thread` runtime with tokio-rustls
//!   over the same rustls configuration (`servers/tokio_rustls.rs`): an
//!   async runtime over the same crypto, the fair peer;
//! - `nginx`: nginx's stream module (`worker_processes 1`, master
//!   process off, tickets on) proxying to the plain echoloop server,
//!   which runs on core 0 too; `nginx-notickets`, the same with session
//!   tickets and the session cache off;
//! - `stunnel`: stunnel4 in front of the plain server (what users do
//!   today);
//! - `s_server`: `openssl s_server -rev`, OpenSSL with nothing around it:
//!   the crypto floor. It serves ONE connection at a time (the others
//!   wait in its backlog), and reverses lines: the load sends the
//!   palindrome `abcba\n`, which comes back the same.
//!
//! The server side's CPU is every process of the kind (a proxy and its
//! backend together), from /proc, over the load's run.
//!
//! Sections (SECTIONS, a comma list; all by default):
//! - `handshakes`: churn, one message per connection, 8 connections:
//!   full handshakes (`--tls-resume never`) and resumed ones (tickets):
//!   handshakes/s and server CPU per handshake; the per-core ceiling of
//!   full handshakes from `openssl speed` (one ECDSA P-256 signature and
//!   two X25519 operations each); and `openssl s_time -new`/`-reuse`
//!   against echoloop as an independent client's count.
//!   Resumption under churn: 50 connections reconnecting at once, with
//!   default options, and the fraction of handshakes resumed.
//! - `messages`: CPU per echoed message on 50 long-lived connections at
//!   64 B and 16 KiB, in an open loop (RATE_64, RATE_16K: 50,000/s and
//!   20,000/s) held below what any kind serves, so that the server's CPU
//!   is not paced by a saturated load; and, where perf counts syscall
//!   tracepoints, the server side's read calls (`read`, `recvfrom`) per
//!   message.
//! - `idle`: bytes of server memory per idle TLS connection (after one
//!   echo), against a plain one and tokio-rustls.
//!
//! Ratios are to `echoloop`, per round, then the median over rounds (the
//! kinds run in a rotated order each round). This machine has few cores:
//! the core count is printed first; nothing here shows scaling.
//!
//! Run: `cargo bench --bench tls`. Knobs: ROUNDS (3), SECS (2), SECTIONS,
//! KINDS (echoloop,tokio-rustls,nginx,nginx-notickets,stunnel,s_server),
//! IDLE_CONNECTIONS (2000).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "servers/measure.rs"]
mod measure;
mod servers;
#[path = "servers/tokio_rustls.rs"]
mod tokio_rustls;

use common::{ServerProcess, free_port, json_number, rss_of};
use measure::{ReadCount, Setup, perf_counts_syscalls};
use servers::{clone_command, env_or, has, median};

/// A kind running: its processes (all measured), and the target the load
/// is pointed at.
struct Front {
    /// echoloop servers (the kind itself, or a proxy's backend).
    echoloop: Vec<ServerProcess>,
    /// Other programs (nginx, stunnel, s_server), killed on drop.
    others: Vec<Child>,
    /// `tls://localhost:PORT`, or `HOST:PORT` for plain TCP.
    target: String,
}

impl Front {
    /// A TLS proxy (`child`, listening on `port`) in front of `backend`.
    fn proxy(backend: ServerProcess, child: Child, port: u16) -> Front {
        Front {
            echoloop: vec![backend],
            others: vec![child],
            target: format!("tls://localhost:{port}"),
        }
    }

    fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.echoloop.iter().map(ServerProcess::pid).collect();
        pids.extend(self.others.iter().map(Child::id));
        pids
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        for child in &mut self.others {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The certificate every kind serves.
struct Cert {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_cert() -> Cert {
    let dir = std::env::temp_dir().join(format!("echoloop-bench-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    Cert { dir, cert, key }
}

/// `echoloop server ARGS` on core 0.
fn echoloop(args: &[&str], pin: bool) -> ServerProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_echoloop"));
    cmd.args(["server", "--bind", "127.0.0.1:0"]).args(args);
    cmd.env("RUST_LOG", "warn");
    ServerProcess::spawn(clone_command(&cmd, pin.then_some(0)))
}

/// Starts `cmd` on core 0 and waits until `port` accepts.
fn program(cmd: Command, port: u16, pin: bool) -> Option<Child> {
    let mut cmd = clone_command(&cmd, pin.then_some(0));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let end = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > end || child.try_wait().ok()?.is_some() {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(child)
}

/// Starts a kind; `None` (said once by the caller) when it cannot run.
fn start(kind: &str, cert: &Cert, pin: bool) -> Option<Front> {
    let (c, k) = (cert.cert.display(), cert.key.display());
    let (c, k) = (c.to_string(), k.to_string());
    match kind {
        "echoloop" => {
            let server = echoloop(&["--tls", "--tls-cert", &c, "--tls-key", &k], pin);
            let target = format!("tls://localhost:{}", server.addr.port());
            Some(Front {
                echoloop: vec![server],
                others: vec![],
                target,
            })
        }
        // Servers this bench binary runs itself, over the same certificate.
        "tokio-rustls" => {
            let mut cmd = Command::new(std::env::current_exe().ok()?);
            cmd.args([&format!("--serve-{kind}"), &c, &k]);
            let server = ServerProcess::spawn(clone_command(&cmd, pin.then_some(0)));
            let target = format!("tls://localhost:{}", server.addr.port());
            Some(Front {
                echoloop: vec![server],
                others: vec![],
                target,
            })
        }
        "plain" => {
            let server = echoloop(&[], pin);
            let target = server.addr.to_string();
            Some(Front {
                echoloop: vec![server],
                others: vec![],
                target,
            })
        }
        "nginx" | "nginx-notickets" => {
            let module = "/usr/lib/nginx/modules/ngx_stream_module.so";
            if !has("nginx") || !Path::new(module).exists() {
                return None;
            }
            let backend = echoloop(&[], pin);
            let port = free_port();
            let tickets = if kind == "nginx" {
                "ssl_session_tickets on; ssl_session_cache shared:tls:10m;"
            } else {
                "ssl_session_tickets off; ssl_session_cache off;"
            };
            let d = cert.dir.join(kind);
            std::fs::create_dir_all(&d).unwrap();
            let conf = d.join("nginx.conf");
            std::fs::write(
                &conf,
                format!(
                    "load_module {module};\nworker_processes 1;\nmaster_process off;\ndaemon off;\n\
                     pid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
                     events {{ worker_connections 4096; }}\n\
                     stream {{ server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {c}; \
                     ssl_certificate_key {k}; ssl_protocols TLSv1.3; ssl_ecdh_curve X25519; \
                     ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256; {tickets} \
                     proxy_pass 127.0.0.1:{back}; }} }}\n",
                    dir = d.display(),
                    back = backend.addr.port()
                ),
            )
            .unwrap();
            let mut cmd = Command::new("nginx");
            cmd.arg("-c").arg(&conf).arg("-p").arg(&d);
            Some(Front::proxy(backend, program(cmd, port, pin)?, port))
        }
        "stunnel" => {
            let binary = if has("stunnel4") {
                "stunnel4"
            } else {
                "stunnel"
            };
            if !has(binary) {
                return None;
            }
            let backend = echoloop(&[], pin);
            let port = free_port();
            let conf = cert.dir.join("stunnel.conf");
            std::fs::write(
                &conf,
                format!(
                    "foreground = yes\npid =\n[echo]\naccept = 127.0.0.1:{port}\n\
                     connect = 127.0.0.1:{}\ncert = {c}\nkey = {k}\nsslVersionMin = TLSv1.3\n\
                     curves = X25519\nciphersuites = TLS_AES_128_GCM_SHA256\n",
                    backend.addr.port()
                ),
            )
            .unwrap();
            let mut cmd = Command::new(binary);
            cmd.arg(&conf);
            Some(Front::proxy(backend, program(cmd, port, pin)?, port))
        }
        "s_server" => {
            if !has("openssl") {
                return None;
            }
            let port = free_port();
            let mut cmd = Command::new("openssl");
            cmd.args(["s_server", "-rev", "-tls1_3", "-groups", "X25519"])
                .args(["-ciphersuites", "TLS_AES_128_GCM_SHA256", "-accept"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-cert", &c, "-key", &k]);
            let child = program(cmd, port, pin)?;
            let target = format!("tls://localhost:{port}");
            Some(Front {
                echoloop: vec![],
                others: vec![child],
                target,
            })
        }
        _ => None,
    }
}

/// utime + stime of `pid` in µs (0 once it is gone).
fn cpu_us(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after = &stat[stat.rfind(')').unwrap_or(0) + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    ticks as f64 * 1e4
}

/// What one load run measured.
struct Ran {
    /// The load's JSON report.
    json: String,
    /// The server side's CPU, µs (a proxy and its backend together).
    server_cpu: f64,
    /// The load's own CPU, µs.
    load_cpu: f64,
    /// The server side's read calls (`read` + `recvfrom`), where perf
    /// counts them.
    reads: Option<u64>,
}

/// One load run against a kind.
/// With `count_reads`, perf counts the server side's read calls (its
/// tracepoints cost every system call a little: those runs are not the
/// ones whose CPU is reported).
fn run(front: &Front, args: &[String], cert: &Cert, pin: bool, count_reads: bool) -> Option<Ran> {
    let pids = front.pids();
    let counting = if count_reads {
        ReadCount::start(&pids)
    } else {
        None
    };
    let before: f64 = pids.iter().map(|p| cpu_us(*p)).sum();
    let mut load = Command::new(env!("CARGO_BIN_EXE_echoloop"));
    load.arg("load").arg(&front.target).args(args).arg("--json");
    if front.target.starts_with("tls://") {
        load.arg("--cacert").arg(&cert.cert);
    }
    let out = clone_command(&load, pin.then_some(1)).output().ok()?;
    let after: f64 = pids.iter().map(|p| cpu_us(*p)).sum();
    let reads = counting.and_then(ReadCount::stop);
    let json = String::from_utf8(out.stdout).ok()?;
    if !out.status.success() {
        eprintln!(
            "load on {} failed: {json}{}",
            front.target,
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let load_cpu = json_number(&json, "cpu_us_per_msg") * json_number(&json, "messages");
    Some(Ran {
        json,
        server_cpu: after - before,
        load_cpu,
        reads,
    })
}

/// One figure per round for each kind; prints medians and ratios to the
/// first kind (echoloop).
fn compare(
    title: &str,
    kinds: &[String],
    setup: &Setup,
    cert: &Cert,
    args: &[String],
    figure: impl Fn(&str) -> (f64, f64, &'static str),
) {
    println!("\n{title}");
    // per kind, each round: (rate, server CPU µs per unit, load CPU µs
    // per unit, server reads per unit (NaN: not counted), resumed fraction)
    let mut samples: Vec<Vec<[f64; 5]>> = vec![Vec::new(); kinds.len()];
    let mut unit = "";
    for round in 0..setup.rounds {
        for j in 0..kinds.len() {
            let k = (j + round) % kinds.len();
            let Some(front) = start(&kinds[k], cert, setup.pin) else {
                continue;
            };
            let Some(ran) = run(&front, args, cert, setup.pin, false) else {
                continue;
            };
            let (rate, count, u) = figure(&ran.json);
            unit = u;
            let count = count.max(1.0);
            let resumed = match u {
                "handshake" => json_number(&ran.json, "tls.resumed_fraction"),
                _ => f64::NAN,
            };
            samples[k].push([
                rate,
                ran.server_cpu / count,
                ran.load_cpu / count,
                f64::NAN,
                resumed,
            ]);
        }
    }
    // One more run per kind, under perf, for the read calls (exact
    // counts: one run says it).
    if perf_counts_syscalls() {
        for (k, kind) in kinds.iter().enumerate() {
            let Some(front) = start(kind, cert, setup.pin) else {
                continue;
            };
            if let Some(ran) = run(&front, args, cert, setup.pin, true)
                && let (Some(reads), Some(first)) = (ran.reads, samples[k].first_mut())
            {
                first[3] = reads as f64 / figure(&ran.json).1.max(1.0);
            }
        }
    }
    let base = samples[0].clone();
    for (k, kind) in kinds.iter().enumerate() {
        if samples[k].is_empty() {
            servers::skipped(&format!(
                "  {kind:<16} not available here (program missing, or it failed): skipped"
            ));
            continue;
        }
        let of = |i: usize| median(samples[k].iter().map(|s| s[i]));
        let ratio = median(samples[k].iter().zip(&base).map(|(s, b)| s[1] / b[1]));
        let reads = match samples[k][0][3] {
            r if r.is_nan() => String::new(),
            r => format!("   {r:.3} reads per {unit}"),
        };
        let resumed = match of(4) {
            r if r.is_nan() || unit != "handshake" => String::new(),
            r => format!("   resumed {r:.2}"),
        };
        println!(
            "  {kind:<16} {:>10.0} {unit}/s   server {:>8.2} µs CPU per {unit} ({ratio:.2}x echoloop)   load {:.2} µs{reads}{resumed}",
            of(0),
            of(1),
            of(2)
        );
    }
}

fn main() {
    servers::serve_if_asked();
    tokio_rustls::serve_if_asked();
    let setup = Setup::from_env("tls", "handshakes,messages,idle");
    let kinds: Vec<String> = std::env::var("KINDS")
        .unwrap_or_else(|_| "echoloop,tokio-rustls,nginx,nginx-notickets,stunnel,s_server".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let cert = make_cert();
    let secs = format!("{}s", setup.secs);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    if setup.sections.contains("handshakes") {
        ceiling();
        let churn = [
            "-c",
            "8",
            "-d",
            &secs,
            "--messages-per-connection",
            "1",
            "-m",
            "abcba\\n",
        ];
        let handshakes = |json: &str| {
            (
                json_number(json, "tls.handshakes_per_s"),
                json_number(json, "tls.handshakes"),
                "handshake",
            )
        };
        let mut full = s(&churn);
        full.extend(s(&["--tls-resume", "never"]));
        compare(
            "full handshakes (--tls-resume never; s_server: one connection at a time)",
            &kinds,
            &setup,
            &cert,
            &full,
            handshakes,
        );
        compare(
            "resumed handshakes (tickets)",
            &kinds,
            &setup,
            &cert,
            &s(&churn),
            handshakes,
        );
        let mut many = s(&churn);
        many[1] = "50".into();
        compare(
            "resumption under churn: 50 connections, one message each (tickets, default options)",
            &kinds,
            &setup,
            &cert,
            &many,
            handshakes,
        );
        s_time(&cert, &setup);
    }
    if setup.sections.contains("messages") {
        let mut kinds: Vec<String> = kinds
            .iter()
            .filter(|k| matches!(k.as_str(), "echoloop" | "tokio-rustls" | "nginx"))
            .cloned()
            .collect();
        kinds.push("plain".into());
        // An open loop below what any kind can serve: in a closed loop the
        // server and the load each take a whole core and pace each other,
        // and CPU per message then says more about the pacing than the
        // server. RATE_64 and RATE_16K set the rates.
        for (size, rate) in [
            ("64", env_or("RATE_64", 50_000u64)),
            ("16384", env_or("RATE_16K", 20_000u64)),
        ] {
            let rate = rate.to_string();
            let args = s(&["-c", "50", "-s", size, "-d", &secs, "--rate", &rate]);
            let per_message = |json: &str| {
                (
                    json_number(json, "msgs_per_s"),
                    json_number(json, "messages"),
                    "msg",
                )
            };
            compare(
                &format!(
                    "CPU per echoed message, 50 connections x {size} B at {rate}/s (plain = TCP, no TLS)"
                ),
                &kinds,
                &setup,
                &cert,
                &args,
                per_message,
            );
        }
    }
    if setup.sections.contains("idle") {
        idle(&cert, setup.pin);
    }
    let _ = std::fs::remove_dir_all(&cert.dir);
}

/// `openssl speed`: the per-core ceiling of full handshakes (server side:
/// one ECDSA P-256 signature and two X25519 operations).
fn ceiling() {
    let Ok(out) = Command::new("openssl")
        .args(["speed", "-seconds", "1", "ecdsap256", "ecdhx25519"])
        .output()
    else {
        servers::skipped("openssl speed: openssl not found, skipped");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let number = |line: &str, field: usize| -> Option<f64> {
        line.split_whitespace().nth(field)?.parse().ok()
    };
    let sign = text
        .lines()
        .find(|l| l.contains("ecdsa (nistp256)"))
        .and_then(|l| number(l, 6));
    let x25519 = text
        .lines()
        .find(|l| l.contains("ecdh (X25519)"))
        .and_then(|l| number(l, 5));
    if let (Some(sign), Some(x)) = (sign, x25519) {
        let per = 1.0 / sign + 2.0 / x;
        println!(
            "openssl speed: ECDSA P-256 {sign:.0} signs/s, X25519 {x:.0} ops/s: at most {:.0} full handshakes/s per core ({:.1} µs of crypto each)",
            1.0 / per,
            per * 1e6
        );
    } else {
        println!("openssl speed: output not understood: {text}");
    }
}

/// `openssl s_time` against `echoloop server --tls`: an independent
/// client's count of new and resumed handshakes per second.
fn s_time(cert: &Cert, setup: &Setup) {
    if !has("openssl") {
        return;
    }
    let Some(front) = start("echoloop", cert, setup.pin) else {
        return;
    };
    let addr = front
        .target
        .trim_start_matches("tls://")
        .replace("localhost", "127.0.0.1");
    for mode in ["-new", "-reuse"] {
        let mut cmd = Command::new("openssl");
        cmd.args(["s_time", "-connect", &addr, mode, "-time"])
            .arg(format!("{}", setup.secs.ceil() as u64))
            .arg("-CAfile")
            .arg(&cert.cert);
        let Ok(out) = clone_command(&cmd, setup.pin.then_some(1)).output() else {
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("connections in") && l.contains("real seconds"))
            .unwrap_or("(no figure)");
        let rate = line
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<f64>().ok())
            .zip(
                line.split_whitespace()
                    .nth(3)
                    .and_then(|t| t.parse::<f64>().ok()),
            )
            .map(|(n, t)| n / t.max(1e-9));
        println!(
            "openssl s_time {mode} against echoloop: {} ({line})",
            rate.map_or("?".into(), |r| format!("{r:.0} handshakes/s"))
        );
    }
}

/// Bytes of server memory per idle TLS connection (handshake done, one
/// byte echoed), against plain TCP.
fn idle(cert: &Cert, pin: bool) {
    let n: usize = env_or("IDLE_CONNECTIONS", 2000);
    println!("\nidle memory, {n} connections each (one byte echoed on each, then idle)");
    let config = {
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_file_iter(&cert.cert).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    };
    let mut plain_bytes = f64::NAN;
    for kind in ["plain", "echoloop", "tokio-rustls"] {
        let front = start(kind, cert, pin).unwrap();
        let server = &front.echoloop[0];
        let before = rss_of(server.pid());
        let started = Instant::now();
        let mut held: Vec<Box<dyn Write>> = Vec::with_capacity(n);
        for _ in 0..n {
            let tcp = server.connect();
            if kind == "plain" {
                let mut tcp = tcp;
                tcp.write_all(b"x").unwrap();
                let mut b = [0u8; 1];
                tcp.read_exact(&mut b).unwrap();
                assert_eq!(&b, b"x", "{kind}: the echo differs");
                held.push(Box::new(tcp));
            } else {
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                tls.write_all(b"x").unwrap();
                let mut b = [0u8; 1];
                tls.read_exact(&mut b).unwrap();
                assert_eq!(&b, b"x", "{kind}: the echo differs");
                held.push(Box::new(tls));
            }
        }
        let after = rss_of(server.pid());
        let per = (after as f64 - before as f64) / n as f64;
        if kind == "plain" {
            plain_bytes = per;
        }
        let name = match kind {
            "plain" => "plain TCP",
            "echoloop" => "echoloop --tls",
            _ => "tokio-rustls",
        };
        let vs_plain = match kind {
            "plain" => String::new(),
            _ => format!(", {:.1}x plain", per / plain_bytes),
        };
        println!(
            "  {name:<16} RSS {before} -> {after} bytes: {per:.0} bytes per connection{vs_plain} (connected in {:.2} s)",
            started.elapsed().as_secs_f64()
        );
        drop(held);
    }
}
