//! Helpers shared by the integration tests: start the real `echoloop`
//! binary on a free loopback port, wait on it with deadlines, make random
//! payloads, raise the fd limit.
#![allow(dead_code)] // each test file uses its own subset

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// Generous upper bound for anything a test waits on.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The `echoloop` binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_echoloop"))
}

/// A running `echoloop server` child process, killed on drop.
pub struct ServerProcess {
    child: Child,
    /// The address from its `listening on` line.
    pub addr: SocketAddr,
    /// What its `listening on` line says, whole (`udp://…`, `unix:…`).
    pub ready: String,
    /// With `--tls`: the certificate file and its fingerprint, from the
    /// `tls certificate FILE sha256 FP` line before the ready line.
    pub tls_cert: Option<(String, String)>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    stderr_seen: Vec<String>,
}

/// Reads `reader` line by line into a channel, on its own thread.
fn lines_of(reader: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl ServerProcess {
    /// Starts `echoloop server --bind 127.0.0.1:0 ARGS...` and waits for its
    /// `listening on` line.
    #[track_caller]
    pub fn start(args: &[&str]) -> ServerProcess {
        Self::at("127.0.0.1:0", args)
    }

    /// Starts `echoloop server --bind BIND ARGS...` and waits for its
    /// `listening on` line (which has the real port when BIND's is 0).
    #[track_caller]
    pub fn at(bind: &str, args: &[&str]) -> ServerProcess {
        let mut cmd = bin();
        cmd.args(["server", "--bind", bind]).args(args);
        Self::spawn(cmd)
    }

    /// Whether this machine has an IPv6 loopback (tests that need one skip,
    /// saying so through [`missing`], when it does not).
    #[track_caller]
    pub fn has_ipv6_loopback() -> bool {
        let ok = std::net::TcpListener::bind("[::1]:0").is_ok();
        if !ok {
            // Said where `cargo test` shows it; a failure under CI.
            missing("no IPv6 loopback here");
        }
        ok
    }

    /// Spawns a prepared command that runs a server, and waits for its
    /// `listening on` line.
    #[track_caller]
    pub fn spawn(mut cmd: Command) -> ServerProcess {
        if !cmd.get_envs().any(|(k, _)| k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn echoloop");
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        let mut line = stdout
            .recv_timeout(DEADLINE)
            .expect("no `listening on` line from the server");
        let mut tls_cert = None;
        if let Some(rest) = line.strip_prefix("tls certificate ") {
            let (file, fp) = rest
                .split_once(" sha256 ")
                .expect("tls certificate FILE sha256 FP");
            tls_cert = Some((file.to_string(), fp.to_string()));
            line = stdout
                .recv_timeout(DEADLINE)
                .expect("no `listening on` line from the server");
        }
        let ready = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        // `ADDR`, `udp://ADDR`, or `unix:PATH` (no IP address: 0.0.0.0:0).
        let addr = ready
            .strip_prefix("udp://")
            .or_else(|| ready.strip_prefix("tls://"))
            .unwrap_or(&ready)
            .parse()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        ServerProcess {
            child,
            addr,
            ready,
            tls_cert,
            stdout,
            stderr,
            stderr_seen: Vec::new(),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Connects a blocking client with read and write timeouts.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect to the server");
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.set_write_timeout(Some(DEADLINE)).unwrap();
        s
    }

    /// Sends a signal to the server.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of a child we spawned and still own.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits (bounded) for the next stderr line that satisfies `pred`.
    #[track_caller]
    pub fn wait_stderr(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no matching stderr line; saw:\n{}",
                    self.stderr_seen.join("\n")
                ),
            }
        }
    }

    /// Forgets stderr lines already printed, so the next wait sees only
    /// fresh ones (a stats line from before now says nothing about now).
    pub fn skip_stderr(&mut self) {
        while let Ok(line) = self.stderr.try_recv() {
            self.stderr_seen.push(line);
        }
    }

    /// Waits (bounded) for the next `--stats` line that satisfies `pred`.
    #[track_caller]
    pub fn wait_stats(&mut self, pred: impl Fn(&Stats) -> bool) -> Stats {
        let end = Instant::now() + DEADLINE;
        loop {
            assert!(Instant::now() < end, "stats never matched");
            let line = self.wait_stderr(|l| l.starts_with("stats: "));
            let stats = Stats::parse(&line);
            if pred(&stats) {
                return stats;
            }
        }
    }

    /// Waits (bounded) for the process to exit, and returns its status, all
    /// of its remaining stdout, and all of its stderr.
    #[track_caller]
    pub fn wait_exit(mut self) -> (ExitStatus, Vec<String>, Vec<String>) {
        let end = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < end, "server did not exit");
            thread::sleep(Duration::from_millis(10));
        };
        let out: Vec<String> = self.stdout.iter().collect();
        let mut err = std::mem::take(&mut self.stderr_seen);
        err.extend(self.stderr.iter());
        (status, out, err)
    }

    /// The server's resident set size in bytes, from /proc.
    pub fn rss(&self) -> u64 {
        rss_of(self.child.id())
    }
}

impl Drop for ServerProcess {
    /// SIGTERM first, so that a server ends as it would for a user: a
    /// `--tls` server removes the certificate directory it made
    /// (`$TMPDIR/echoloop-PID`). SIGKILL would leave it behind, and with
    /// PIDs reused (pid_max is 32,768 here) a later server that gets the
    /// same PID would refuse to start (exit 58). A child that has not
    /// ended within two seconds is killed. Only our own child, by its PID.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on the pid of a child we spawned and still own.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until && matches!(self.child.try_wait(), Ok(None)) {
                thread::sleep(Duration::from_millis(5));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident set size of process `pid`, in bytes.
pub fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

/// A `--stats` line, parsed into its `key=value` figures.
#[derive(Debug)]
pub struct Stats(Vec<(String, String)>);

impl Stats {
    /// Parses `stats: polls=1 ... | open=2 ...`.
    pub fn parse(line: &str) -> Stats {
        Stats(
            line.split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// One figure as it was printed.
    #[track_caller]
    pub fn text(&self, key: &str) -> &str {
        &self.0.iter().find(|(k, _)| k == key).expect(key).1
    }

    /// One figure as a number.
    #[track_caller]
    pub fn get(&self, key: &str) -> f64 {
        let v = &self.0.iter().find(|(k, _)| k == key).expect(key).1;
        v.trim_end_matches('s').parse().expect(key)
    }
}

/// The stdout of a run that must have exited 0, as text; its stderr is
/// shown when it did not.
#[track_caller]
pub fn clean_stdout(out: std::process::Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// The value at a dotted path (`latency_us.p50`, `runs.1.name`: a number
/// indexes an array) of a JSON document, parsed with serde_json: exactly
/// that key, never a namesake elsewhere.
#[track_caller]
pub fn json_at(json: &str, path: &str) -> serde_json::Value {
    let doc: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    let mut at = &doc;
    for key in path.split('.') {
        let next = match key.parse::<usize>() {
            Ok(i) if at.is_array() => at.get(i),
            _ => at.get(key),
        };
        at = next.unwrap_or_else(|| panic!("no {path} in {json}"));
    }
    at.clone()
}

/// The number at a dotted path of a JSON document (see [`json_at`]).
#[track_caller]
pub fn json_number(json: &str, path: &str) -> f64 {
    json_at(json, path)
        .as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in {json}"))
}

/// A loopback port that refuses connections and stays that way: a socket
/// bound to it but not listening (so the kernel answers a SYN with a reset)
/// holds the port for as long as the returned guard lives, where binding a
/// listener and dropping it would leave the port free for anyone to take.
pub fn closed_port() -> (socket2::Socket, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).expect("bind");
    let addr = socket
        .local_addr()
        .expect("local address")
        .as_socket()
        .expect("an inet address");
    (socket, addr)
}

/// Reads until EOF and returns everything read.
pub fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read until EOF");
    got
}

/// Sends `msg` and reads back exactly as many bytes.
#[track_caller]
pub fn round_trip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

/// Runs `cmd` to completion with stdin closed and stdout and stderr
/// captured, but kills it once `limit` has passed: a program that should
/// have exited (an error, a timeout) but hangs fails the test, naming the
/// command, instead of hanging it.
#[track_caller]
pub fn run_bounded(mut cmd: Command, limit: Duration) -> std::process::Output {
    run_for(&mut cmd, limit)
}

/// [`run_bounded`] for a command built in place: `bin().args(…).bounded()`
/// instead of the unbounded `.output()`.
pub trait Bounded {
    /// Runs to completion within DEADLINE, or fails the test.
    fn bounded(&mut self) -> std::process::Output;
}

impl Bounded for Command {
    #[track_caller]
    fn bounded(&mut self) -> std::process::Output {
        run_for(self, DEADLINE)
    }
}

#[track_caller]
fn run_for(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the command");
    // Drain both pipes on threads, so a chatty child cannot block on them.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let end = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill(); // our own child, by its PID
            let _ = child.wait();
            panic!("{cmd:?} did not end within {limit:?}: killed");
        }
        thread::sleep(Duration::from_millis(10));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Polls `cond` every few milliseconds until it holds or the deadline ends.
#[track_caller]
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `get` every few milliseconds until it gives a value, and returns
/// it; fails past DEADLINE.
#[track_caller]
pub fn eventually_value<T>(mut get: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = get() {
            return value;
        }
        assert!(Instant::now() < end, "timed out waiting for a value");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A small deterministic PRNG (the crate's splitmix64): reproducible
/// payloads without a dependency.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        echoloop::load::splitmix64(&mut self.0)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

/// Writes `payload` in random-sized chunks, then shuts down the write side;
/// meanwhile (on this thread) reads everything back until EOF.
pub fn echo_in_chunks(mut stream: TcpStream, payload: Vec<u8>, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut writer = stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        let mut rng = Rng::new(seed);
        let mut rest = &payload[..];
        while !rest.is_empty() {
            let n = rng.range(1, 64 * 1024).min(rest.len());
            writer.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        writer.shutdown(Shutdown::Write).unwrap();
        payload
    });
    let got = read_to_eof(&mut stream);
    (sender.join().unwrap(), got)
}

/// `connections` connections to `server` at once, payloads from 1 byte to
/// `max` (log-uniform), written in random chunk sizes: asserts that each
/// gets back exactly what it sent.
pub fn random_payloads_come_back(server: &ServerProcess, connections: usize, max: usize) {
    let mut rng = Rng::new(0x5eed);
    let sizes: Vec<usize> = (0..connections)
        .map(|i| match i {
            0 => 1,
            1 => max,
            _ => ((rng.next_u64() as f64 / u64::MAX as f64) * (max as f64).ln()).exp() as usize,
        })
        .collect();
    let clients: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let stream = server.connect();
            let payload = Rng::new(i as u64).bytes(size);
            thread::spawn(move || echo_in_chunks(stream, payload, i as u64 + 1000))
        })
        .collect();
    for (i, client) in clients.into_iter().enumerate() {
        let (sent, got) = client.join().unwrap();
        assert_eq!(got.len(), sent.len(), "connection {i}: length");
        assert!(got == sent, "connection {i}: bytes differ");
    }
}

/// A test cannot run here because `what` is missing (a tool, root, IPv6).
/// Under CI (`ECHOLOOP_CI` set, as `.ci/run` does) that is a failure: CI
/// installs everything and runs as root. On a developer's machine the test
/// skips, and says so straight on stderr, where `cargo test` shows it even
/// for a test that passes (the `eprintln!` macro would be captured).
#[track_caller]
pub fn missing(what: &str) {
    if std::env::var_os("ECHOLOOP_CI").is_some() {
        panic!("{what} (ECHOLOOP_CI is set: a missing component is a failure)");
    }
    let at = std::panic::Location::caller();
    let _ = writeln!(std::io::stderr(), "skipped at {at}: {what}");
}

/// Sends one UDP datagram with a forged source address, through a raw
/// socket (needs root, or CAP_NET_RAW): how a reflection attack starts.
/// Returns `Err` where raw sockets are not allowed.
pub fn forge_udp(
    from: std::net::SocketAddrV4,
    to: std::net::SocketAddrV4,
    payload: &[u8],
) -> std::io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    let raw = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(libc::IPPROTO_RAW)),
    )?;
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut packet = Vec::with_capacity(total);
    // IPv4 header (IPPROTO_RAW implies IP_HDRINCL; the kernel fills in the
    // header checksum and, with 0, the identification).
    packet.extend_from_slice(&[0x45, 0]);
    packet.extend_from_slice(&(total as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    packet.extend_from_slice(&from.ip().octets());
    packet.extend_from_slice(&to.ip().octets());
    // UDP header; a zero checksum means "none" over IPv4.
    packet.extend_from_slice(&from.port().to_be_bytes());
    packet.extend_from_slice(&to.port().to_be_bytes());
    packet.extend_from_slice(&(udp_len as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    raw.send_to(&packet, &SocketAddr::V4(to).into())?;
    Ok(())
}

/// A fresh, empty directory for one test's files (`echoloop-AREA-PID-NAME`
/// under the temporary directory); the test removes it when it is done.
pub fn scratch(area: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("echoloop-{area}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `echoloop ARGS` and asserts a usage error: exit 2, and `says` in
/// its message.
#[track_caller]
pub fn assert_usage_error(args: &[&str], says: &str) {
    let out = bin().args(args).output().expect("run echoloop");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
}

/// `echoloop server --bind 127.0.0.1:0 --metrics 127.0.0.1:0 ARGS`, and
/// where its metrics are (from its log line).
pub fn server_with_metrics(args: &[&str]) -> (ServerProcess, SocketAddr) {
    server_with_metrics_at("127.0.0.1:0", args)
}

/// [`server_with_metrics`] listening on `bind` (a Unix socket, say).
pub fn server_with_metrics_at(bind: &str, args: &[&str]) -> (ServerProcess, SocketAddr) {
    let mut cmd = bin();
    cmd.args(["server", "--bind", bind, "--metrics", "127.0.0.1:0"])
        .args(args);
    let mut server = ServerProcess::spawn(cmd);
    let line = server.wait_stderr(|l| l.contains("metrics on http://"));
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .and_then(|a| a.parse().ok())
        .expect("the metrics address");
    (server, addr)
}

/// The peer addresses (without ports) of the next `n` connections a
/// server started with `RUST_LOG=debug` logs as accepted.
pub fn accepted_peers(server: &mut ServerProcess, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let line = server.wait_stderr(|l| l.contains("accept conn=#"));
            let peer = line.split("peer=").nth(1).unwrap_or_default();
            peer.split(':').next().unwrap_or_default().to_string()
        })
        .collect()
}

/// GET /metrics from a `--metrics` address: the whole response.
pub fn scrape(metrics: SocketAddr) -> String {
    let mut s = TcpStream::connect(metrics).expect("connect to the metrics");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// A loopback port free right now (bound, then released), for a program
/// that cannot be told port 0 (a proxy, nginx, stunnel).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A gauge or counter's value in a metrics scrape (`NAME VALUE` line).
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Writes `data` to `writer` (a socket with a short write timeout), 64
/// KiB a call, until it is stalled as the server itself says: a write
/// times out *and* the server's `echoloop_owed_bytes` (scraped from
/// `metrics`) has reached `owed_at_least`. A timeout while the server
/// owes less only means it was slow (a loaded machine), and writing goes
/// on. Returns the bytes written. Fails past DEADLINE, or if all of
/// `data` went out without a stall.
#[track_caller]
pub fn push_until_stalled(
    mut writer: impl Write,
    data: &[u8],
    metrics: SocketAddr,
    owed_at_least: f64,
) -> usize {
    let end = Instant::now() + DEADLINE;
    let mut sent = 0;
    loop {
        assert!(Instant::now() < end, "never stalled: {sent} bytes written");
        assert!(sent < data.len(), "never stalled: all {sent} bytes written");
        let upto = (sent + 65536).min(data.len());
        match writer.write(&data[sent..upto]) {
            Ok(n) => sent += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let owed = metric(&scrape(metrics), "echoloop_owed_bytes").unwrap_or(0.0);
                if owed >= owed_at_least {
                    return sent;
                }
            }
            Err(e) => panic!("pushing: {e}"),
        }
    }
}

/// Sends `request` as is and returns the whole response.
pub fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A Prometheus server we started, on a free loopback port.
pub struct Prometheus {
    child: Child,
    address: SocketAddr,
}

impl Prometheus {
    fn start(config: &std::path::Path, dir: &std::path::Path) -> Prometheus {
        let mut child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Its log says where it listens: msg="Listening on" address=127.0.0.1:P
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("msg=\"Listening on\"")
                    && let Some(a) = line.split("address=").nth(1)
                {
                    let _ = tx.send(a.trim().to_string());
                }
            }
        });
        let address = rx
            .recv_timeout(DEADLINE)
            .expect("prometheus said where it listens")
            .parse()
            .unwrap();
        Prometheus { child, address }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Ends it (our own child, by its PID) and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Prometheus {
    /// A Prometheus that scrapes `target` (`host:port`) every second, its
    /// configuration and data in `dir`.
    pub fn scraping(target: SocketAddr, dir: &std::path::Path) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: echoloop\n    \
                 static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        Prometheus::start(&config, dir)
    }

    /// The first value of an instant query's answer (`"value":[t,"7"]`),
    /// or `None` while it has none.
    pub fn value(&self, query: &str) -> Option<String> {
        let response = http(
            self.address,
            format!("GET /api/v1/query?query={query} HTTP/1.0\r\n\r\n").as_bytes(),
        );
        response
            .split("\"value\":[")
            .nth(1)
            .and_then(|v| v.split('"').nth(1))
            .map(str::to_string)
    }
}

/// `echoloop load TARGET --json ARGS`, bounded: its exit code, stdout
/// (the JSON summary) and stderr.
pub fn load_json(target: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = bin();
    cmd.args(["load", target, "--json"]).args(args);
    let out = run_bounded(cmd, DEADLINE);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether nginx and its stream module are here (else `missing` says so:
/// a failure under CI).
pub fn have_nginx_stream() -> bool {
    let module = std::path::Path::new("/usr/lib/nginx/modules/ngx_stream_module.so");
    if Command::new("nginx").arg("-v").output().is_err() || !module.exists() {
        missing("nginx with its stream module (libnginx-mod-stream) is not installed");
        return false;
    }
    true
}

/// nginx in the foreground, one process (`master_process off`: killing a
/// master would orphan its workers), with one stream `server` block:
/// `block` gets the port it listens on (nginx cannot be told port 0) and
/// returns the block's directives.
pub struct Nginx {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl Nginx {
    pub fn start(dir: &std::path::Path, block: impl FnOnce(u16) -> String) -> Nginx {
        let port = free_port();
        let d = dir.display();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
                 worker_processes 1;\nmaster_process off;\ndaemon off;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log;\nevents {{ worker_connections 1024; }}\n\
                 stream {{\n  server {{\n{}  }}\n}}\n",
                block(port)
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx { child, port };
        eventually("nginx listens", || {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}): {log}");
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        nginx
    }

    /// Ends it (our own child, by its PID) and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A real haproxy in the foreground on a loopback port, given its
/// `frontend`/`backend` sections; ended (by its PID, our own child) when
/// dropped.
pub struct Haproxy {
    child: Child,
    /// The port its first frontend listens on (`{port}` in the sections).
    pub port: u16,
}

impl Haproxy {
    /// Starts haproxy in TCP mode with `sections(port)` after its
    /// defaults, and waits (bounded) until `port` accepts. `None`, saying
    /// so through [`missing`], where haproxy is not installed.
    #[track_caller]
    pub fn start(dir: &std::path::Path, sections: impl FnOnce(u16) -> String) -> Option<Haproxy> {
        if Command::new("haproxy").arg("-v").output().is_err() {
            missing("no haproxy (apt install haproxy)");
            return None;
        }
        let port = free_port();
        let config = dir.join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "global\n  maxconn 1000\n\
                 defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n{}",
                sections(port)
            ),
        )
        .unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let mut haproxy = Haproxy { child, port };
        eventually("haproxy listens", || {
            if let Ok(Some(status)) = haproxy.child.try_wait() {
                panic!(
                    "haproxy exited ({status}); its config:\n{}",
                    std::fs::read_to_string(&config).unwrap_or_default()
                );
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(haproxy)
    }

    /// Where its first frontend listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
