//! Bytes of server memory per idle connection.
//!
//! What it compares: the resident set size (VmRSS) of an `echoloop server`
//! process before and after it holds N idle connections (default 10,000;
//! set IDLE_CONNECTIONS to change it). The difference divided by N is what
//! one connection costs in user space: its slab entry, and nothing on the
//! heap, because the read buffer is shared and a connection only allocates
//! while it owes bytes. Kernel socket memory is not in RSS and not counted.
//!
//! Why a plain `main` and not criterion: criterion measures time, and this
//! measures memory once. Run it with `cargo bench --bench idle_memory`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// The test helpers (RSS from /proc, raising the fd limit) serve here too.
#[path = "../tests/common/mod.rs"]
mod common;
use common::{raise_fd_limit, rss_of as rss};

fn main() {
    let n: usize = std::env::var("IDLE_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // The bench holds one fd per client and the server one per connection,
    // in two processes; both stay under the 20,000 hard limit.
    let limit = raise_fd_limit(n as u64 + 200);
    assert!(
        limit >= n as u64 + 100,
        "fd limit {limit} is too low for {n} connections"
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_echoloop"))
        .args(["server", "--bind", "127.0.0.1:0", "--stats", "0.2"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn echoloop server");
    let pid = child.id();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .parse()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();

    let before = rss(pid);
    let started = Instant::now();
    let clients: Vec<TcpStream> = (0..n)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    // Wait until the server reports every connection open.
    let deadline = Instant::now() + Duration::from_secs(120);
    for line in stderr.by_ref() {
        let line = line.unwrap();
        if line.contains(&format!(" open={n} ")) {
            break;
        }
        assert!(Instant::now() < deadline, "server never reached {n} open");
    }
    let after = rss(pid);
    let per_conn = (after as f64 - before as f64) / n as f64;
    println!(
        "idle_memory: echoloop server, {n} idle connections (opened in {:.2} s): \
         RSS {before} -> {after} bytes, {per_conn:.1} bytes per connection",
        started.elapsed().as_secs_f64()
    );
    drop(clients);
    let _ = child.kill();
    let _ = child.wait();
}
