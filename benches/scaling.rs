//! Past one core, and connection churn: three tables from one run, each
//! server pinned to core 0 and `echoloop load` to core 1, every figure the
//! median of several rounds that alternate what is compared.
//!
//! 1. **churn**: `echoloop load -c 50 --messages-per-connection 1` (connect,
//!    one verified round trip, close) against the C baseline, echoloop,
//!    tokio `current_thread` and thread-per-connection: connections per
//!    second, and the server's CPU per connection with its ratio to C (the
//!    median of per-round ratios). The goal: echoloop at least as many
//!    connections per second per server core as C, i.e. a ratio ≤ 1. The
//!    generator connects from 64 loopback addresses (127.0.0.2 on), since
//!    each closed connection holds its local port for a minute.
//! 2. **reactors**: `echoloop server --threads 1` vs `--threads 2` at
//!    50 × 64 B: server CPU per message and the ratio of the two (the
//!    goal: within 5%), then how a `--threads 2` server spread 200
//!    connections. Both reactors share core 0 here, so this shows what
//!    running several reactors costs, not how they scale; on a machine with
//!    more cores, unpin (TASKSET=0) and raise the load's --threads.
//! 3. **generator**: `echoloop load --threads 1` vs `--threads 2` driving a
//!    one-reactor echoloop at 50 × 64 B: msgs/s, and the generator's CPU per
//!    message next to the server's.
//!
//! Run: `cargo bench --bench scaling`. Knobs (environment): ROUNDS (default
//! 3), SECS per measurement (default 2), SECTIONS (comma list, default
//! `churn,reactors,generator`), KINDS for the churn table (default
//! `c,echoloop,tokio,threads,uring`). It prints the machine's core count and
//! says when there are too few cores to show scaling.

use std::process::Command;

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "servers/measure.rs"]
mod measure;
mod servers;

use common::{ServerProcess, json_number};
use measure::{Measured, Setup, measure, run_load};
use servers::{clone_command, median};

fn main() {
    servers::serve_if_asked();
    let Setup {
        rounds,
        secs,
        sections,
        pin,
        cores,
    } = Setup::from_env("scaling", "churn,reactors,generator");
    if cores < 4 {
        println!(
            "  (too few cores to show scaling past one core: a server with 2 reactors and a \
             generator need 3 or more; the tables show what the extra threads cost instead)"
        );
    }
    let duration = format!("{secs}s");
    if sections.contains("churn") {
        churn(rounds, &duration, pin);
    }
    if sections.contains("reactors") {
        reactors(rounds, &duration, pin);
    }
    if sections.contains("generator") {
        generator(rounds, &duration, pin);
    }
}

/// `-c 50 -s 64 -d SECS` plus `extra`, as owned strings.
fn load_args(duration: &str, extra: &[&str]) -> Vec<String> {
    ["-c", "50", "-s", "64", "-d", duration]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

/// Runs each of `runs` once per round, in an order rotated every round,
/// and returns the measurements: `[run][round]` (None when one failed).
fn interleaved(
    runs: &[(String, Command, Vec<String>)],
    rounds: usize,
    pin: bool,
) -> Vec<Vec<Option<Measured>>> {
    let mut all = vec![Vec::new(); runs.len()];
    for round in 0..rounds {
        for k in 0..runs.len() {
            let k = (k + round) % runs.len();
            let (_, cmd, load) = &runs[k];
            all[k].push(measure(cmd, load, pin));
        }
    }
    all
}

/// The median over rounds of `figure`, and of its per-round ratio to run
/// `base`'s.
fn median_and_ratio(
    all: &[Vec<Option<Measured>>],
    k: usize,
    base: Option<usize>,
    figure: impl Fn(&Measured) -> f64,
) -> (f64, Option<f64>) {
    let value = |m: &Option<Measured>| m.as_ref().map_or(f64::NAN, &figure);
    let mine = median(all[k].iter().map(value));
    let ratio = base.map(|b| {
        median(
            all[k]
                .iter()
                .zip(&all[b])
                .map(|(m, theirs)| value(m) / value(theirs)),
        )
    });
    (mine, ratio)
}

/// Table 1: connections per second, and server CPU per connection.
fn churn(rounds: usize, duration: &str, pin: bool) {
    let sources: Vec<String> = (2..66).map(|i| format!("127.0.0.{i}")).collect();
    let sources = sources.join(",");
    let load = load_args(
        duration,
        &["--messages-per-connection", "1", "--source", &sources],
    );
    let runs: Vec<(String, Command, Vec<String>)> =
        servers::kinds_from_env("c,echoloop,tokio,threads,uring")
            .into_iter()
            .filter_map(|kind| Some((kind.clone(), servers::command(&kind)?, load.clone())))
            .collect();
    println!(
        "churn: -c 50 --messages-per-connection 1; connections/s, server CPU per connection (ratio to C)"
    );
    let all = interleaved(&runs, rounds, pin);
    let c = runs.iter().position(|(kind, _, _)| kind == "c");
    for (k, (kind, _, _)) in runs.iter().enumerate() {
        let per_conn = |m: &Measured| m.server_cpu_us / json_number(&m.json, "connects").max(1.0);
        let (cpu, ratio) = median_and_ratio(&all, k, c, per_conn);
        let (rate, _) = median_and_ratio(&all, k, None, |m| json_number(&m.json, "connects_per_s"));
        let ratio = ratio.map_or(String::new(), |r| format!(" {r:.2}x"));
        // User space and kernel apart: a gap to C in user space is the
        // server's own code; in the kernel, what it asks of the kernel.
        let (user, _) = median_and_ratio(&all, k, None, |m| {
            m.server_user_us / json_number(&m.json, "connects").max(1.0)
        });
        let (kernel, _) = median_and_ratio(&all, k, None, |m| {
            (m.server_cpu_us - m.server_user_us) / json_number(&m.json, "connects").max(1.0)
        });
        println!(
            "  {kind:<9} {rate:>8.0} conns/s  {cpu:>6.1} µs CPU per connection{ratio}  (user {user:.2} µs, kernel {kernel:.1} µs)"
        );
    }
}

/// Table 2: one reactor vs two, CPU per message; then the spread.
fn reactors(rounds: usize, duration: &str, pin: bool) {
    let load = load_args(duration, &[]);
    let runs: Vec<(String, Command, Vec<String>)> = ["echoloop", "echoloop-t2"]
        .into_iter()
        .filter_map(|kind| Some((kind.to_string(), servers::command(kind)?, load.clone())))
        .collect();
    println!("reactors: -c 50 -s 64; server CPU per message (ratio to --threads 1)");
    let all = interleaved(&runs, rounds, pin);
    for (k, (kind, _, _)) in runs.iter().enumerate() {
        let per_msg = |m: &Measured| m.server_cpu_us / json_number(&m.json, "messages").max(1.0);
        let (cpu, ratio) = median_and_ratio(&all, k, Some(0), per_msg);
        let (rate, _) = median_and_ratio(&all, k, None, |m| json_number(&m.json, "msgs_per_s"));
        println!(
            "  {kind:<12} {cpu:.2} µs {:.3}x  [{rate:.0} msgs/s]",
            ratio.unwrap_or(f64::NAN)
        );
    }
    spread(pin);
}

/// How `--threads 2` spread 200 connections: its shutdown summary.
fn spread(pin: bool) {
    let Some(cmd) = servers::command("echoloop-t2") else {
        return;
    };
    let server = ServerProcess::spawn(clone_command(&cmd, pin.then_some(0)));
    let load = ["-c", "200", "-d", "1s"].map(String::from);
    if run_load(&server, &load, pin).is_none() {
        return;
    }
    server.signal(libc::SIGTERM);
    let (_, out, _) = server.wait_exit();
    let summary = out.last().map_or("", String::as_str);
    println!("  spread of 200 connections over 2 reactors: {summary}");
}

/// Table 3: the generator with one thread and with two, against one
/// reactor: what each drives, and what each costs.
fn generator(rounds: usize, duration: &str, pin: bool) {
    let runs: Vec<(String, Command, Vec<String>)> = [("--threads 1", "1"), ("--threads 2", "2")]
        .into_iter()
        .filter_map(|(name, n)| {
            let cmd = servers::command("echoloop")?;
            Some((
                name.to_string(),
                cmd,
                load_args(duration, &["--threads", n]),
            ))
        })
        .collect();
    println!(
        "generator: echoloop load -c 50 -s 64 against one reactor; msgs/s (ratio to --threads 1), CPU per message"
    );
    let all = interleaved(&runs, rounds, pin);
    for (k, (name, _, _)) in runs.iter().enumerate() {
        let (rate, ratio) =
            median_and_ratio(&all, k, Some(0), |m| json_number(&m.json, "msgs_per_s"));
        let msgs = |m: &Measured| json_number(&m.json, "messages").max(1.0);
        let (load_cpu, _) = median_and_ratio(&all, k, None, |m| m.load_cpu_us / msgs(m));
        let (server_cpu, _) = median_and_ratio(&all, k, None, |m| m.server_cpu_us / msgs(m));
        println!(
            "  load {name}: {rate:.0} msgs/s {:.3}x  generator {load_cpu:.2} µs/msg  server {server_cpu:.2} µs/msg",
            ratio.unwrap_or(f64::NAN)
        );
    }
}
