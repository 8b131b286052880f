//! The `echoloop` command line: parse the arguments, run the chosen part,
//! turn its outcome into one line and an exit code.
//!
//! Exit codes: 0 success; 1 the server could not start or its loop failed;
//! 2 usage error (bad or missing arguments, from clap).

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use echoloop::duration::parse_duration;
use echoloop::server::{self, Server};

/// A TCP echo server, HTTP GET client and load generator, each a
/// hand-rolled mio event loop on one thread.
#[derive(Parser, Debug)]
#[command(name = "echoloop", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the TCP echo server (prints `listening on ADDR` once ready).
    Server(ServerArgs),
}

/// Options of `echoloop server`.
#[derive(Args, Debug)]
struct ServerArgs {
    /// Address to listen on: 127.0.0.1:7878, [::1]:7878, [::]:7878; port 0
    /// picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    bind: SocketAddr,

    /// Listen backlog (the kernel caps it at net.core.somaxconn).
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    backlog: u32,

    /// Stop accepting while N connections are open; newcomers wait in the
    /// kernel backlog until one closes. Default: no limit but the fd limit.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,

    /// Bytes per read call.
    #[arg(long, value_name = "BYTES", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=16 * 1024 * 1024))]
    read_size: u64,

    /// Close a connection whose peer sent nothing for this long (seconds,
    /// or 500ms, 10s, 2m). Default: never.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    idle_timeout: Option<Duration>,

    /// Print one line of the loop's counters to stderr this often (seconds,
    /// or 500ms, 10s). Default: off. SIGUSR1 prints the totals at any time.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    stats: Option<Duration>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match cli.command {
        Command::Server(args) => run_server(args),
    }
}

/// `echoloop server`: bind, announce the address, run until a signal.
fn run_server(args: ServerArgs) -> ExitCode {
    let config = server::Config {
        bind: args.bind,
        backlog: args.backlog,
        max_connections: args.max_connections.map(|n| n as usize),
        read_size: args.read_size as usize,
        idle_timeout: args.idle_timeout,
        stats_every: args.stats,
        handle_signals: true,
        ..server::Config::default()
    };
    let mut server = match Server::bind(config) {
        Ok(server) => server,
        Err(e) => return fail(&e),
    };
    let addr = match server.local_addr() {
        Ok(addr) => addr,
        Err(e) => return fail(&e),
    };
    // Scripts and tests read the port from this line: print it exactly once,
    // and flush, since stdout is a pipe for them and would otherwise hold it.
    let mut stdout = std::io::stdout();
    // If nobody reads stdout the line is lost, but the server still serves.
    let _ = writeln!(stdout, "listening on {addr}").and_then(|()| stdout.flush());
    log::info!("echo server listening on {addr}");
    match server.run() {
        Ok(totals) => {
            let summary = totals.summary_line();
            let _ = writeln!(stdout, "{summary}").and_then(|()| stdout.flush());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("event loop failed: {e}")),
    }
}

/// Prints one line to stderr and returns exit code 1.
fn fail(err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("echoloop: error: {err}");
    ExitCode::from(1)
}
