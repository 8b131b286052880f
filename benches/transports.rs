//! UDP, and TCP loopback vs a Unix-domain socket: two tables from one run,
//! each server pinned to core 0 and `echoloop load` to core 1, every
//! figure the median of rounds that alternate what is compared (ratios as
//! medians of per-round ratios).
//!
//! 1. **udp**: `echoloop load udp://… -c 50 -s 64` against the C baseline
//!    (`benches/c/udp_echo.c`: edge-triggered epoll, `recvfrom` until
//!    EAGAIN, `sendto` each datagram back), `echoloop server --udp-only`
//!    and a tokio `current_thread` UDP echo: server CPU per datagram with
//!    its ratio to C (the goal: within 5%), and datagrams per second; then
//!    the kernel's part of it, and that part's ratio to C's whole CPU: the
//!    floor a server reaches with no user-space work at all.
//! 2. **unix**: `echoloop server` over TCP loopback and over a Unix
//!    socket, the same 50 × 64 B load: CPU per message; then one
//!    connection streaming 256 MiB (1 MiB messages, 4 in flight): MB/s.
//!    The difference is what the TCP stack costs on loopback.
//! 3. **generator**: the UDP generator's own CPU per datagram at 50,000
//!    datagrams/s of 64 B, open loop, against the C loop: on one socket
//!    (iperf3's shape) and on 50, beside iperf3 `-u`'s sender at the same
//!    rate (Debian's iperf3 against its own server on core 0; it only
//!    sends, where echoloop also receives and checks every reply).
//!    Skipped, with a line, without iperf3.
//!
//! Run: `cargo bench --bench transports`. Knobs: ROUNDS (default 3), SECS
//! (default 2), SECTIONS (`udp,unix,generator`), ECHOLOOP_BEFORE (another echoloop
//! binary, added to the udp table as `before-udp`), UDP_KINDS (the udp
//! table's kinds, the first being the one ratios are to).

use std::process::Command;

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "servers/iperf3.rs"]
mod iperf3;
#[path = "servers/measure.rs"]
mod measure;
mod servers;

use common::json_number;
use measure::{Measured, Setup, bulk_mb_per_s, measure};
use servers::median;

fn main() {
    servers::serve_if_asked();
    let Setup {
        rounds,
        secs,
        sections,
        pin,
        ..
    } = Setup::from_env("transports", "udp,unix,generator");
    let duration = format!("{secs}s");
    let small: Vec<String> = ["-c", "50", "-s", "64", "-d", &duration]
        .map(String::from)
        .to_vec();
    if sections.contains("udp") {
        println!(
            "udp: -c 50 -s 64 (closed loop); server CPU per datagram (ratio to the first), datagrams/s"
        );
        // `before-udp` only with ECHOLOOP_BEFORE=path/to/an/older/echoloop;
        // UDP_KINDS=before-udp,echoloop-udp puts it first (ratios to it).
        let kinds = std::env::var("UDP_KINDS")
            .unwrap_or_else(|_| "c-udp,echoloop-udp,tokio-udp,before-udp".into());
        let kinds: Vec<&str> = kinds.split(',').collect();
        table(&kinds, &small, rounds, pin);
    }
    if sections.contains("unix") {
        println!("unix: -c 50 -s 64; server CPU per message (ratio to TCP), msgs/s");
        table(&["echoloop", "echoloop-unix"], &small, rounds, pin);
        let bulk: Vec<String> = [
            "-c",
            "1",
            "-s",
            "1048576",
            "--pipeline",
            "4",
            "--messages",
            "256",
            "-d",
            "120s",
        ]
        .map(String::from)
        .to_vec();
        println!("unix: one connection, 256 MiB in 1 MiB messages, 4 in flight; MB/s");
        for kind in ["echoloop", "echoloop-unix"] {
            let Some(cmd) = servers::command(kind) else {
                continue;
            };
            let rates = (0..rounds)
                .filter_map(|_| measure(&cmd, &bulk, pin))
                .map(|m| bulk_mb_per_s(&m.json));
            println!("  {kind:<14} {:.0} MB/s", median(rates));
        }
    }
    if sections.contains("generator") {
        generators(rounds, secs, pin);
    }
}

/// The generators section's offered rate: datagrams per second.
const GENERATOR_RATE: u32 = 50_000;

/// One generator of the generators section.
#[derive(Debug, Clone, Copy)]
enum Generator {
    /// iperf3 `-u` sending 64 B datagrams at the same rate, one socket.
    Iperf3,
    /// `echoloop load udp://` on this many sockets.
    Load(usize),
}

/// Section 3: the generator's CPU per datagram (its own process, from
/// `getrusage`) at [`GENERATOR_RATE`], in rotated rounds, with ratios to
/// iperf3's sender.
fn generators(rounds: usize, secs: f64, pin: bool) {
    let iperf3 = Command::new("iperf3").arg("--version").output();
    if !iperf3.is_ok_and(|o| o.status.success()) {
        servers::skipped("generator: no iperf3 on PATH: skipped");
        return;
    }
    let Some(target) = servers::command("c-udp") else {
        return;
    };
    let target = common::ServerProcess::spawn(servers::clone_command(&target, pin.then_some(0)));
    println!(
        "generator: {GENERATOR_RATE} datagrams/s of 64 B for {secs} s, open loop, against the C loop; the generator's CPU per datagram (ratio to iperf3's sender), syscalls not counted"
    );
    let kinds = [Generator::Iperf3, Generator::Load(1), Generator::Load(50)];
    let mut all: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    for round in 0..rounds {
        for k in 0..kinds.len() {
            let k = (k + round) % kinds.len();
            let cost = match kinds[k] {
                Generator::Iperf3 => iperf3_cost(secs, pin),
                Generator::Load(sockets) => load_cost(&target.ready, sockets, secs, pin),
            };
            all[k].push(cost.unwrap_or(f64::NAN));
        }
    }
    for (k, kind) in kinds.iter().enumerate() {
        let name = match kind {
            Generator::Iperf3 => "iperf3 -u".to_string(),
            Generator::Load(n) => format!("load -c {n}"),
        };
        let ratio = median(all[k].iter().zip(&all[0]).map(|(a, b)| a / b));
        println!(
            "  {name:<14} {:.2} µs {ratio:.3}x",
            median(all[k].iter().copied())
        );
    }
}

/// `echoloop load udp://…` at the section's rate on `sockets` sockets:
/// its CPU per datagram sent, µs.
fn load_cost(target: &str, sockets: usize, secs: f64, pin: bool) -> Option<f64> {
    let mut load = Command::new(env!("CARGO_BIN_EXE_echoloop"));
    load.args(["load", target, "-s", "64", "--json"])
        .args(["-c", &sockets.to_string()])
        .args(["--rate", &GENERATOR_RATE.to_string()])
        .args(["-d", &format!("{secs}s")]);
    let before = measure::children_cpu_us();
    let out = servers::clone_command(&load, pin.then_some(1))
        .output()
        .ok()?;
    let used = measure::children_cpu_us() - before;
    let json = String::from_utf8(out.stdout).ok()?;
    out.status
        .success()
        .then(|| used / json_number(&json, "udp.sent").max(1.0))
}

/// iperf3's sender at the section's rate against its own one-off server
/// (on core 0, as the echo servers are): its CPU per datagram, µs.
fn iperf3_cost(secs: f64, pin: bool) -> Option<f64> {
    let wrap = |cmd: &Command| servers::clone_command(cmd, pin.then_some(0));
    let mut server = iperf3::start_server(wrap, std::time::Duration::from_secs(10))?;
    let secs = secs.round().max(1.0) as u64;
    let mut client = Command::new("iperf3");
    client.args(iperf3::client_args(server.port, GENERATOR_RATE, 64, secs));
    let before = measure::children_cpu_us();
    let out = servers::clone_command(&client, pin.then_some(1))
        .output()
        .ok()?;
    // Only the client has been waited for yet: the server's CPU is not in.
    let used = measure::children_cpu_us() - before;
    let _ = server.child.wait();
    let json = String::from_utf8(out.stdout).ok()?;
    out.status
        .success()
        .then(|| used / json_number(&json, "end.sum.packets").max(1.0))
}

/// Runs `load` against each of `kinds`, `rounds` times in rotated order,
/// and prints server CPU per message with its ratio to the first kind.
fn table(kinds: &[&str], load: &[String], rounds: usize, pin: bool) {
    let runs: Vec<(&str, Command)> = kinds
        .iter()
        .filter_map(|&kind| Some((kind, servers::command(kind)?)))
        .collect();
    let mut all: Vec<Vec<Option<Measured>>> = vec![Vec::new(); runs.len()];
    for round in 0..rounds {
        for k in 0..runs.len() {
            let k = (k + round) % runs.len();
            all[k].push(measure(&runs[k].1, load, pin));
        }
    }
    let per_msg = |m: &Option<Measured>| {
        m.as_ref().map_or(f64::NAN, |m| {
            m.server_cpu_us / json_number(&m.json, "messages").max(1.0)
        })
    };
    for (k, (kind, _)) in runs.iter().enumerate() {
        let cpu = median(all[k].iter().map(per_msg));
        let ratio = median(
            all[k]
                .iter()
                .zip(&all[0])
                .map(|(m, base)| per_msg(m) / per_msg(base)),
        );
        let rate = median(all[k].iter().map(|m| {
            m.as_ref()
                .map_or(f64::NAN, |m| json_number(&m.json, "msgs_per_s"))
        }));
        // Where the time goes: the kernel's share bounds what any change
        // in user space can win.
        let system = median(all[k].iter().map(|m| {
            m.as_ref().map_or(f64::NAN, |m| {
                (m.server_cpu_us - m.server_user_us) / json_number(&m.json, "messages").max(1.0)
            })
        }));
        let system_ratio = median(all[k].iter().zip(&all[0]).map(|(m, base)| match m {
            Some(m) => {
                (m.server_cpu_us - m.server_user_us)
                    / json_number(&m.json, "messages").max(1.0)
                    / per_msg(base)
            }
            None => f64::NAN,
        }));
        println!(
            "  {kind:<14} {cpu:.2} µs {ratio:.3}x  [{rate:.0}/s]  kernel {system:.2} µs ({system_ratio:.3}x the first's whole)"
        );
    }
}
