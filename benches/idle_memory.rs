//! Bytes of server memory per idle connection, for each I/O model.
//!
//! What it compares: the resident set size (VmRSS) of a server process
//! before and after it holds N idle connections (default 10,000; set
//! IDLE_CONNECTIONS to change it), for the echoloop reactor, a
//! thread-per-connection server, a tokio `current_thread` server, an
//! io_uring server (`uring`: lent buffers shared by every connection) and, when
//! a C compiler can build `benches/c/epoll_echo.c`, the C epoll baseline. The
//! growth divided by N is what one idle connection costs in user space
//! (kernel socket memory is not in RSS). Why it matters: a load-test target
//! that holds 100,000 idle peers should not need gigabytes to do it.
//!
//! KINDS (a comma list) picks the kinds; `before` with `ECHOLOOP_BEFORE`
//! set measures another build of echoloop beside this one.
//!
//! Why a plain `main` and not criterion: criterion measures time; this
//! measures memory once. Run it with `cargo bench --bench idle_memory`.

use std::net::TcpStream;
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;
mod servers;

use common::{ServerProcess, rss_of};

fn main() {
    servers::serve_if_asked();
    let n: usize = std::env::var("IDLE_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // The bench holds one fd per client and each server one per
    // connection, in two processes; both stay under the 20,000 hard limit.
    let limit = echoloop::shared::net::raise_fd_limit().expect("raise the fd limit");
    assert!(
        limit >= n as u64 + 100,
        "fd limit {limit} is too low for {n} connections"
    );
    println!("idle_memory: {n} idle connections per server");
    // KINDS narrows the list (`KINDS=echoloop,before` with ECHOLOOP_BEFORE
    // set compares two builds); every kind by default.
    let all = servers::KINDS.join(",") + ",c,uring";
    let kinds = std::env::var("KINDS").unwrap_or(all);
    for kind in kinds.split(',') {
        let Some(cmd) = servers::command(kind) else {
            servers::skipped(&format!("{kind:>9}: not available, skipped"));
            continue;
        };
        let (before, after, took) = measure(ServerProcess::spawn(cmd), n);
        println!(
            "{kind:>9}: RSS {before} -> {after} bytes: {:.1} bytes per connection \
             (connected in {:.2} s)",
            (after as f64 - before as f64) / n as f64,
            took.as_secs_f64()
        );
    }
}

/// Opens `n` connections to `server`, waits until it holds them all, and
/// returns its RSS before and after, and how long connecting took.
fn measure(server: ServerProcess, n: usize) -> (u64, u64, Duration) {
    let pid = server.pid();
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let fds_before = fds();
    let before = rss_of(pid);
    let started = Instant::now();
    let clients: Vec<TcpStream> = (0..n).map(|_| server.connect()).collect();
    common::eventually("the server to accept every connection", || {
        fds() >= fds_before + n
    });
    // Let the last accepted connections settle (threads start, tasks spawn)
    // until RSS stops moving.
    let mut after = rss_of(pid);
    let settle_by = Instant::now() + Duration::from_secs(5);
    while Instant::now() < settle_by {
        std::thread::sleep(Duration::from_millis(200));
        let now = rss_of(pid);
        if now == after {
            break;
        }
        after = now;
    }
    let took = started.elapsed();
    drop(clients);
    drop(server);
    (before, after, took)
}
