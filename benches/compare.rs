//! Criterion: the echoloop reactor against a thread-per-connection std
//! server and a tokio `current_thread` server, on identical loopback
//! workloads, all three reading 1024 bytes at a time.
//!
//! Why: echoloop claims that a hand-rolled single-threaded reactor is at
//! least as fast as the usual alternatives. Each group runs the same client
//! against each server in one run, so the numbers compare directly:
//!
//! - `pingpong_64B`: one connection, send 64 B, wait for the echo (latency).
//! - `throughput_50x64B`, `throughput_50x1KiB`: 50 connections in closed
//!   loop driven by `echoloop::load`; time per echoed message (includes
//!   opening the 50 connections once per sample).
//! - `stream_64MiB`: one connection streams 64 MiB through the echo (bulk).
//!
//! The servers run in-process on their own threads, so these are wall-clock
//! times on a shared machine: for CPU per message and idle memory, see the
//! `cpu_per_message` and `idle_memory` benches, which use separate, pinned
//! processes. Run: `cargo bench --bench compare` (HTML report in
//! target/criterion/).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

mod servers;

fn addrs() -> Vec<(&'static str, SocketAddr)> {
    servers::KINDS
        .into_iter()
        .map(|kind| (kind, servers::spawn(kind)))
        .collect()
}

fn pingpong(c: &mut Criterion) {
    let mut group = c.benchmark_group("pingpong_64B");
    for (kind, addr) in addrs() {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let msg = [7u8; 64];
        let mut back = [0u8; 64];
        group.bench_function(kind, |b| {
            b.iter(|| {
                stream.write_all(&msg).unwrap();
                stream.read_exact(&mut back).unwrap();
            })
        });
    }
    group.finish();
}

fn throughput(c: &mut Criterion) {
    for (name, size) in [("throughput_50x64B", 64), ("throughput_50x1KiB", 1024)] {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        for (kind, addr) in addrs() {
            group.bench_function(kind, |b| {
                b.iter_custom(|iters| {
                    let report = echoloop::load::run(
                        echoloop::load::Config {
                            addr: echoloop::shared::addr::Endpoint::Ip(addr),
                            size,
                            duration: Duration::from_secs(600),
                            messages: Some(iters),
                            ..echoloop::load::Config::default()
                        },
                        |_| {},
                    )
                    .unwrap();
                    assert_eq!(report.errors.total(), 0, "{kind}: errors");
                    report.duration
                })
            });
        }
        group.finish();
    }
}

fn stream(c: &mut Criterion) {
    const LEN: usize = 64 * 1024 * 1024;
    let data = vec![0x5au8; LEN];
    let mut group = c.benchmark_group("stream_64MiB");
    group.throughput(Throughput::Bytes(LEN as u64));
    group.sample_size(10);
    for (kind, addr) in addrs() {
        group.bench_function(kind, |b| {
            b.iter(|| {
                let mut reader = TcpStream::connect(addr).unwrap();
                let mut writer = reader.try_clone().unwrap();
                thread::scope(|s| {
                    s.spawn(|| writer.write_all(&data).unwrap());
                    let mut buf = vec![0u8; 256 * 1024];
                    let mut got = 0;
                    while got < LEN {
                        let n = reader.read(&mut buf).unwrap();
                        assert!(n > 0, "{kind}: early EOF");
                        got += n;
                    }
                });
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = pingpong, throughput, stream
}
criterion_main!(benches);
