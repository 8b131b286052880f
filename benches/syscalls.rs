//! System calls per echoed message, counted: the figure that shows where
//! a readiness loop stops and batching or completion begins.
//!
//! Times on this machine swing by half from day to day; counts do not.
//! For each server kind this bench runs a fixed load (`echoloop load
//! -c 50 -s 64 --messages N`, TCP or UDP as the kind serves) with the
//! server under `perf stat`, counting the kernel's syscall tracepoints
//! (`raw_syscalls:sys_enter` for all, `syscalls:sys_enter_NAME` by call),
//! for the server's process and every thread it starts. A run with no
//! load is counted the same way and subtracted (start-up and shutdown).
//! Tracepoints count every call and barely slow it, so batches stay the
//! size they are without a tracer; `strace -f -c` would count the same
//! calls, but slows each one so much that datagrams pile up and batches
//! look far fuller than they are. CPU per message, the other half of the
//! picture, is measured without perf in the same run (median of ROUNDS,
//! server pinned to core 0 and load to core 1).
//!
//! Kinds (KINDS, a comma list): TCP `c` (the C epoll baseline),
//! `echoloop`, `tokio`, `threads`, `uring` (io_uring: multishot accept
//! and receive into lent buffers, `servers/uring.rs`); UDP `c-udp` (recvfrom/sendto),
//! `c-udp-mmsg` (recvmmsg/sendmmsg, batches of 32), `echoloop-udp`,
//! `tokio-udp`. A kind that cannot run here is skipped with a line.
//!
//! A second section, `churn`, asks what a PROXY protocol header costs the
//! server per connection: `echoloop server` plain against `--proxy-protocol`,
//! under `load --messages-per-connection 1` (a connection per message)
//! with and without `--proxy-protocol v1|v2`, counted and timed the same
//! way, per connection.
//!
//! Run: `cargo bench --bench syscalls`. Knobs: MESSAGES (100000; churn
//! uses a tenth), KINDS, SECTIONS (`count,churn`), ROUNDS (3) and SECS
//! (2) for the CPU column. Needs perf (Debian's
//! `linux-perf`) with tracepoints readable; without them the bench says
//! so and counts nothing.

use std::process::Command;

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "servers/measure.rs"]
mod measure;
mod servers;

use common::{ServerProcess, json_number};
use measure::{Setup, measure, perf_counts_syscalls, run_load};
use servers::{clone_command, env_or, median};

/// One kind's count: calls per message, in all and by call.
struct Count {
    messages: f64,
    total: f64,
    by_call: Vec<(String, f64)>,
}

fn main() {
    servers::serve_if_asked();
    let setup = Setup::from_env("syscalls", "count,churn");
    let messages: u64 = env_or("MESSAGES", 100_000);
    let kinds = servers::kinds_from_env(
        "c,echoloop,tokio,threads,uring,c-udp,c-udp-mmsg,echoloop-udp,tokio-udp",
    );
    if !perf_counts_syscalls() {
        servers::skipped(
            "syscalls: perf cannot count syscall tracepoints here (Debian: apt-get install linux-perf; \
             /proc/sys/kernel/perf_event_paranoid); nothing counted",
        );
        return;
    }
    if setup.sections.contains("count") {
        count_section(&setup, messages, &kinds);
    }
    if setup.sections.contains("churn") {
        churn_section(&setup, messages / 10);
    }
}

/// Calls and CPU per echoed message, for each server kind.
fn count_section(setup: &Setup, messages: u64, kinds: &[String]) {
    let count_load: Vec<String> = [
        "-c",
        "50",
        "-s",
        "64",
        "--messages",
        &messages.to_string(),
        "-d",
        "600s",
    ]
    .map(String::from)
    .to_vec();
    let secs = format!("{}s", setup.secs);
    let cpu_load: Vec<String> = ["-c", "50", "-s", "64", "-d", &secs]
        .map(String::from)
        .to_vec();
    println!(
        "syscalls per echoed message, server only (perf stat, syscall tracepoints, over {messages} messages, -c 50 -s 64); \
         server CPU per message without perf (median of {} x {} s)",
        setup.rounds, setup.secs
    );
    println!(
        "  {:<13} {:>9} {:>10}  by call (per message)",
        "kind", "calls/msg", "CPU µs/msg"
    );
    for kind in kinds {
        let Some(cmd) = servers::command(kind) else {
            continue;
        };
        let Some(count) = count_calls(&cmd, &count_load, setup.pin) else {
            println!("  {kind:<13} (the count failed)");
            continue;
        };
        let cpu = median((0..setup.rounds).filter_map(|_| {
            let m = measure(&cmd, &cpu_load, setup.pin)?;
            Some(m.server_cpu_us / json_number(&m.json, "messages").max(1.0))
        }));
        print_row(kind, &count, cpu, "messages");
    }
}

/// One row: the calls per unit in all and by call, and the CPU.
fn print_row(kind: &str, count: &Count, cpu: f64, unit: &str) {
    let calls: Vec<String> = count
        .by_call
        .iter()
        .filter(|(_, per)| *per >= 0.001)
        .map(|(name, per)| format!("{name} {per:.3}"))
        .collect();
    println!(
        "  {kind:<13} {:>9.3} {cpu:>10.2}  {} ({} {unit})",
        count.total,
        calls.join(", "),
        count.messages
    );
}

/// The PROXY header's cost per connection under churn: `echoloop
/// server` plain, then with `--proxy-protocol` loaded with v1 and v2
/// headers; calls counted over `connections` connections, CPU timed
/// (rounds interleaved, so the three share the machine's moods).
fn churn_section(setup: &Setup, connections: u64) {
    let secs = format!("{}s", setup.secs);
    let kinds: [(&str, &[&str], &[&str]); 3] = [
        ("plain", &[], &[]),
        (
            "proxy-v1",
            &["--proxy-protocol"],
            &["--proxy-protocol", "v1"],
        ),
        (
            "proxy-v2",
            &["--proxy-protocol"],
            &["--proxy-protocol", "v2"],
        ),
    ];
    let churn = |extra: &[&str], stop: [&str; 2]| -> Vec<String> {
        let mut args = vec!["-c", "50", "-s", "64", "--messages-per-connection", "1"];
        args.extend(stop);
        args.extend(extra);
        args.into_iter().map(String::from).collect()
    };
    let n = connections.to_string();
    println!(
        "\nthe PROXY header per connection: syscalls over {connections} connections of one message \
         (-c 50 --messages-per-connection 1), server CPU per connection (median of {} x {} s, interleaved)",
        setup.rounds, setup.secs
    );
    println!(
        "  {:<13} {:>9} {:>10}  by call (per connection)",
        "kind", "calls/conn", "CPU µs/conn"
    );
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    for _ in 0..setup.rounds {
        for (k, (_, server_args, load_args)) in kinds.iter().enumerate() {
            let Some(mut cmd) = servers::command("echoloop") else {
                return;
            };
            cmd.args(*server_args);
            let load = churn(load_args, ["-d", &secs]);
            if let Some(m) = measure(&cmd, &load, setup.pin) {
                cpu[k].push(m.server_cpu_us / json_number(&m.json, "connects").max(1.0));
            }
        }
    }
    let base = median(cpu[0].iter().copied());
    for (k, (kind, server_args, load_args)) in kinds.iter().enumerate() {
        let Some(mut cmd) = servers::command("echoloop") else {
            return;
        };
        cmd.args(*server_args);
        let load = churn(load_args, ["--messages", &n]);
        let per_conn = median(cpu[k].iter().copied());
        match count_calls(&cmd, &load, setup.pin) {
            Some(count) => print_row(kind, &count, per_conn, "connections"),
            None => println!("  {kind:<13} (the count failed)"),
        }
        println!(
            "  {:<13} {:>9} {:>10.3}× plain's CPU",
            "",
            "",
            per_conn / base
        );
    }
}

/// Counts by call name (`total` for all calls).
type Counts = Vec<(String, f64)>;

/// The calls counted one by one (the total counts every call).
const CALLS: [&str; 12] = [
    "read",
    "write",
    "recvfrom",
    "sendto",
    "recvmmsg",
    "sendmmsg",
    "epoll_wait",
    "epoll_pwait",
    "epoll_ctl",
    "accept4",
    "close",
    "io_uring_enter",
];

/// The server's calls over the load, per message: one counted run with
/// the load, one without, the difference divided by the messages.
fn count_calls(cmd: &Command, load: &[String], pin: bool) -> Option<Count> {
    let (loaded, json) = perf_run(cmd, Some(load), pin)?;
    let (idle, _) = perf_run(cmd, None, pin)?;
    let messages = json_number(&json?, "messages");
    if messages <= 0.0 {
        return None;
    }
    let per = |name: &str| {
        let n = |t: &[(String, f64)]| t.iter().find(|(k, _)| k == name).map_or(0.0, |(_, v)| *v);
        (n(&loaded) - n(&idle)).max(0.0) / messages
    };
    let mut by_call: Vec<(String, f64)> = CALLS.iter().map(|c| (c.to_string(), per(c))).collect();
    by_call.sort_by(|a, b| b.1.total_cmp(&a.1));
    Some(Count {
        messages,
        total: per("total"),
        by_call,
    })
}

/// Runs the server under `perf stat` (it and every thread it starts),
/// with `load` against it or none, stops it with SIGTERM, and reads the
/// counts: `(name, count)`, the total as `total`.
fn perf_run(cmd: &Command, load: Option<&[String]>, pin: bool) -> Option<(Counts, Option<String>)> {
    let out = std::env::temp_dir().join(format!(
        "echoloop-syscalls-{}-{}.csv",
        std::process::id(),
        load.is_some()
    ));
    let mut events = vec!["raw_syscalls:sys_enter".to_string()];
    events.extend(CALLS.iter().map(|c| format!("syscalls:sys_enter_{c}")));
    let mut perf = Command::new("perf");
    perf.args(["stat", "-x,", "-o"])
        .arg(&out)
        .args(["-e", &events.join(","), "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => perf.env(k, v),
            None => perf.env_remove(k),
        };
    }
    let server = ServerProcess::spawn(clone_command(&perf, pin.then_some(0)));
    let json = load.map(|l| run_load(&server, l, pin));
    // The server is perf's child: end it (perf then writes its counts).
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", server.pid())).ok()?;
    let child: i32 = children.split_whitespace().next()?.parse().ok()?;
    // SAFETY: kill(2) on the server this bench started (perf's child).
    unsafe {
        libc::kill(child, libc::SIGTERM);
    }
    let _ = server.wait_exit();
    let text = std::fs::read_to_string(&out).ok()?;
    let _ = std::fs::remove_file(&out);
    let counts = text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let n: f64 = fields.first()?.parse().ok()?;
            let event = fields.get(2)?;
            let name = match *event {
                "raw_syscalls:sys_enter" => "total",
                e => e.strip_prefix("syscalls:sys_enter_")?,
            };
            Some((name.to_string(), n))
        })
        .collect();
    Some((counts, json.flatten()))
}
