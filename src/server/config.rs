//! What `echoloop server` is told ([`Config`], with its defaults) and how
//! starting can fail ([`StartError`], with its exit code).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use super::faults::Faults;
use crate::shared::addr::Endpoint;
use crate::shared::net::describe;

/// The most bytes one connection may owe its peer before we stop reading
/// from it (it may go over by at most one read).
pub const DEFAULT_OWED_CAP: usize = 64 * 1024;

/// The most bytes one connection may read in one turn of the loop before
/// the others get theirs (`--budget`). A bystander waits about one budget
/// per greedy peer; each budget costs the greedy peer one more poll. Chosen
/// in `cargo bench --bench fairness`: at 48 KiB a bystander's p99 next to
/// one or two greedy streams is 20% under tokio `current_thread`'s, and one
/// stream keeps 94% of what it got with no budget at all. 16 KiB cost that
/// stream 12%; at 64 KiB the p99 was tokio's, no better.
pub const DEFAULT_BUDGET: usize = 48 * 1024;

/// Everything `echoloop server` can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen: a TCP address (port 0 picks a free port), or a
    /// Unix-domain socket (`unix:/path`, `unix:@name`).
    pub bind: Endpoint,
    /// The listen backlog (capped by the kernel at somaxconn).
    pub backlog: u32,
    /// Stop accepting while this many connections are open.
    pub max_connections: Option<usize>,
    /// Bytes per `read` call, and the size of the one shared read buffer.
    pub read_size: usize,
    /// Close a connection whose peer has sent nothing for this long.
    pub idle_timeout: Option<Duration>,
    /// Print a line of counters to stderr this often.
    pub stats_every: Option<Duration>,
    /// Per-connection cap on bytes owed; see [`DEFAULT_OWED_CAP`].
    pub owed_cap: usize,
    /// Bytes one connection may read per turn; see [`DEFAULT_BUDGET`].
    pub budget: usize,
    /// Handle SIGINT/SIGTERM (shut down) and SIGUSR1 (print counters). Off
    /// for servers embedded in tests and benches.
    pub handle_signals: bool,
    /// Whether to echo UDP datagrams too, or only them.
    pub udp: UdpMode,
    /// Datagrams answered per second per source address (`None`: all).
    pub udp_rate_limit: Option<f64>,
    /// The permissions of a Unix-domain socket file (`--unix-mode`).
    pub unix_mode: Option<u32>,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (`--metrics`).
    pub metrics: Option<SocketAddr>,
    /// Faults injected on purpose (`--delay`, `--close-after`, ...; none
    /// by default).
    pub faults: Faults,
    /// Serve TLS on the TCP listener (`--tls`): every accepted TCP
    /// connection gets a session made from this (see [`super::tls_server`]).
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Every connection begins with a PROXY protocol header
    /// (`--proxy-protocol`; see [`super::proxy_header`]).
    pub proxy_protocol: bool,
}

/// Which transports the server echoes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UdpMode {
    /// TCP only (the default).
    #[default]
    Off,
    /// TCP, and UDP on the same address and port (`--udp`).
    WithTcp,
    /// UDP only, no TCP listener (`--udp-only`).
    Only,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: Endpoint::Ip(SocketAddr::from(([127, 0, 0, 1], 7878))),
            backlog: 1024,
            max_connections: None,
            read_size: 1024,
            idle_timeout: None,
            stats_every: None,
            owed_cap: DEFAULT_OWED_CAP,
            budget: DEFAULT_BUDGET,
            handle_signals: false,
            udp: UdpMode::Off,
            udp_rate_limit: None,
            unix_mode: None,
            metrics: None,
            faults: Faults::default(),
            tls: None,
            proxy_protocol: false,
        }
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// socket/bind/listen failed (address in use, permission denied, ...).
    Listen {
        /// The address we tried.
        addr: Endpoint,
        /// What the kernel said.
        source: io::Error,
    },
    /// Creating the poller, waker or signal handlers failed.
    Setup(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Listen { addr, source } => {
                write!(f, "cannot listen on {addr}: {}", describe(source))
            }
            StartError::Setup(e) => write!(f, "cannot set up the event loop: {e}"),
        }
    }
}

impl StartError {
    /// The process exit code: 1, whatever stopped the start.
    pub fn exit_code(&self) -> u8 {
        1
    }
}

impl std::error::Error for StartError {}
