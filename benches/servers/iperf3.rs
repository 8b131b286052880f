//! iperf3 as a yardstick for the UDP generator: its one-off server, and
//! the client arguments that offer the same datagrams at the same rate as
//! `echoloop load udp:// -s SIZE --rate RATE`. Shared by the `transports`
//! bench and `tests/iperf3.rs`, so that the test checks what the bench
//! runs.
#![allow(dead_code)] // each user takes its own subset

use std::io::BufRead;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A one-off iperf3 server (`-s -1`: it ends after one test) on
/// 127.0.0.1, ready to be asked.
pub struct Server {
    /// The process, to wait for once its test ran.
    pub child: Child,
    /// Its control port.
    pub port: u16,
}

/// Starts `iperf3 -s -1` on a free loopback port, as `wrap` runs it (a
/// `taskset` pinning, or the command itself), and waits up to `wait` for
/// it to say it listens. `None` when it never does (it is then killed).
pub fn start_server(wrap: impl Fn(&Command) -> Command, wait: Duration) -> Option<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()?
        .port();
    let mut server = Command::new("iperf3");
    // --forceflush: its ready line must not wait in a pipe's buffer.
    server.args(["-s", "-1", "--forceflush", "-B", "127.0.0.1"]);
    server.args(["-p", &port.to_string()]);
    let mut child = wrap(&server).stdout(Stdio::piped()).spawn().ok()?;
    let stdout = child.stdout.take()?;
    if ready(stdout, wait) {
        Some(Server { child, port })
    } else {
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

/// Whether `iperf3 -s` said "Server listening" within `wait`. The rest
/// of its output is read and dropped on the same thread, so it never
/// blocks on a full pipe.
fn ready(stdout: ChildStdout, wait: Duration) -> bool {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if line.contains("Server listening") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(wait).is_ok()
}

/// The client's arguments: `rate` datagrams of `size` bytes a second
/// (iperf3 takes a bit rate) for `secs` whole seconds, to `port`, with
/// a JSON report (`end.sum.packets`: the datagrams it sent).
pub fn client_args(port: u16, rate: u32, size: usize, secs: u64) -> Vec<String> {
    let bits_per_s = u64::from(rate) * size as u64 * 8;
    [
        "-c",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-u",
        "-l",
        &size.to_string(),
        "-b",
        &bits_per_s.to_string(),
        "-t",
        &secs.max(1).to_string(),
        "--json",
    ]
    .map(String::from)
    .to_vec()
}
