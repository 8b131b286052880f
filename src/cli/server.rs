//! `echoloop server`: its options, what clap cannot check alone, and the
//! [`Config`](crate::server::Config) they make.

// The `///` comments here are help text for the terminal, not Markdown:
// `[::1]:7878` is an address, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use clap::error::ErrorKind;

use super::usage::Usage;
use crate::shared::addr::Endpoint;
use crate::shared::duration::{parse_duration, parse_rate};

pub(super) const SERVER_EXAMPLES: &str = "Examples:
  echoloop server
  echoloop server --bind [::]:7878 --threads 4 --udp
  echoloop server --bind unix:/tmp/echo.sock --unix-mode 0660
  echoloop server --bind 127.0.0.1:0 --metrics 127.0.0.1:9100 --stats 1s";

pub(super) const SERVER_LONG: &str = "Examples:
  echoloop server
  echoloop server --bind [::]:7878 --threads 4 --udp
  echoloop server --bind unix:/tmp/echo.sock --unix-mode 0660
  echoloop server --bind 127.0.0.1:0 --metrics 127.0.0.1:9100 --stats 1s
  echoloop server --bind 127.0.0.1:0 --proxy-protocol --tls   # behind haproxy's send-proxy-v2

Exit codes:
  0  stopped by SIGINT or SIGTERM
  1  cannot listen (address in use, a Unix path that is not a socket), or
     the event loop failed
  2  usage";

/// Options of `echoloop server`.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Address to listen on: 127.0.0.1:7878, [::1]:7878, [::]:7878 (port 0
    /// picks a free port), or a Unix-domain socket: unix:/path/echo.sock,
    /// unix:@name (Linux's abstract namespace, no file).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    pub bind: Endpoint,

    /// Permissions of the Unix-domain socket file, in octal (0660).
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub unix_mode: Option<u32>,

    /// Listen backlog (the kernel caps it at net.core.somaxconn).
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub backlog: u32,

    /// Stop accepting while N connections are open; newcomers wait in the
    /// kernel backlog until one closes. Default: no limit but the fd limit.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,

    /// Bytes per read call (over --tls, a read takes a record's plaintext:
    /// at least 16 KiB).
    #[arg(long, value_name = "BYTES", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=16 * 1024 * 1024))]
    pub read_size: u64,

    /// Bytes one connection may read in one turn of the loop before the
    /// others get theirs; a connection with more waiting goes to the back
    /// of a ready queue (fairness). At least one read is always made.
    #[arg(long, value_name = "BYTES", default_value_t = crate::server::DEFAULT_BUDGET as u64,
          value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024))]
    pub budget: u64,

    /// Close a connection whose peer sent nothing for this long (10s,
    /// 500ms, 2m, or seconds). Default: never.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,

    /// Print one line of the loop's counters to stderr this often (1s,
    /// 500ms, or seconds). Default: off. SIGUSR1 prints the totals at any
    /// time.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub stats: Option<Duration>,

    /// Run N share-nothing reactors, one per thread, each with its own
    /// SO_REUSEPORT listener on the address; the kernel spreads new
    /// connections over them. --max-connections is split between them.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: u64,

    /// Echo UDP datagrams too (RFC 862), on the same address and port as
    /// TCP. Loop protection: datagrams from the ports of self-answering
    /// services (7, 9, 13, 17, 19, 37) or from this server's own port are
    /// never answered, nor the same bytes from one source bouncing back
    /// 1,001 times in a row within a second of each answer.
    #[arg(long)]
    pub udp: bool,

    /// Echo UDP only: no TCP listener.
    #[arg(long, conflicts_with = "udp")]
    pub udp_only: bool,

    /// Answer at most this many datagrams per second per source address,
    /// whichever reactor gets them (for an exposed port). Default: no limit.
    #[arg(long, value_name = "N", value_parser = parse_rate)]
    pub udp_rate_limit: Option<f64>,

    /// Every connection begins with a PROXY protocol header, v1 or v2, as
    /// haproxy's send-proxy and send-proxy-v2 send it (before TLS, with
    /// --tls). The client it names is the one the logs and --stats name.
    /// A connection without a valid header, with one longer than allowed
    /// (107 bytes for v1, 4 KiB for v2) or whose header takes longer than
    /// --idle-timeout (10s without one) is closed and counted.
    #[arg(long)]
    pub proxy_protocol: bool,

    /// Serve Prometheus metrics at http://ADDR/metrics, from the same loop
    /// (port 0 picks a free port; the log says which).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

    /// Hold every echo this long before writing it back (a slow backend;
    /// up to 60s). The bytes wait in the loop's own timers, within the
    /// owed cap. TCP only: not with --udp or --udp-only.
    #[arg(long, value_name = "DURATION", value_parser = parse_fault_delay,
          help_heading = "Misbehaving on purpose (per connection)")]
    pub delay: Option<Duration>,

    /// Add a uniform extra delay from 0 to this to each read's echo (up to
    /// 60s); a connection's bytes still come back in order. TCP only.
    #[arg(long, value_name = "DURATION", value_parser = parse_fault_delay,
          help_heading = "Misbehaving on purpose (per connection)")]
    pub jitter: Option<Duration>,

    /// Close a connection cleanly (FIN) once it has echoed this many bytes
    /// (640, 64k, 1M); what the peer sends past them is never echoed.
    #[arg(long, value_name = "BYTES", value_parser = parse_fault_bytes,
          conflicts_with_all = ["reset_after", "stall_after"],
          help_heading = "Misbehaving on purpose (per connection)")]
    pub close_after: Option<u64>,

    /// Reset a connection (RST) once it has echoed this many bytes.
    #[arg(long, value_name = "BYTES", value_parser = parse_fault_bytes,
          conflicts_with = "stall_after",
          help_heading = "Misbehaving on purpose (per connection)")]
    pub reset_after: Option<u64>,

    /// Stop reading a connection once it has echoed this many bytes: the
    /// peer's sends back up (TCP flow control) until it gives up.
    #[arg(long, value_name = "BYTES", value_parser = parse_fault_bytes,
          help_heading = "Misbehaving on purpose (per connection)")]
    pub stall_after: Option<u64>,

    /// Leave this percentage of UDP datagrams unanswered (0 to 100; needs
    /// --udp or --udp-only).
    #[arg(long, value_name = "PCT", value_parser = parse_percent,
          help_heading = "Misbehaving on purpose (per connection)")]
    pub drop: Option<f64>,

    /// Seed the random choices of --jitter and --drop, so that a run can
    /// be repeated. Default: from the clock (the log says which).
    #[arg(
        long,
        value_name = "N",
        help_heading = "Misbehaving on purpose (per connection)"
    )]
    pub seed: Option<u64>,

    /// Serve TLS (1.3 and 1.2) on the TCP listener; the ready line then
    /// says tls://ADDR. Without --tls-cert/--tls-key, a self-signed
    /// certificate for localhost, 127.0.0.1 and ::1 is made at start and
    /// written where the next line of stdout says, with its SHA-256
    /// fingerprint (hand that file to clients: --cacert). UDP is never
    /// TLS (DTLS is not served).
    #[arg(long, help_heading = "TLS")]
    pub tls: bool,

    /// The certificate chain to serve (PEM, leaf first); with --tls-key.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_key"], help_heading = "TLS")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_cert"], help_heading = "TLS")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Require a client certificate signed by a CA in FILE (mTLS): a
    /// client without one fails its handshake.
    #[arg(long, value_name = "FILE", requires = "tls", help_heading = "TLS")]
    pub tls_client_ca: Option<std::path::PathBuf>,

    /// How returning clients resume: stateless tickets sealed with one
    /// key all reactors share, a session-ID cache all reactors share, or
    /// not at all.
    #[arg(
        long,
        value_name = "HOW",
        default_value = "tickets",
        requires = "tls",
        help_heading = "TLS"
    )]
    pub tls_resumption: crate::server::tls_server::Resumption,

    /// Protocols to agree on in ALPN, most preferred first (h2,http/1.1).
    /// A client that offers ALPN but none of these fails its handshake; a
    /// client that offers no ALPN is served without it (RFC 7301).
    #[arg(
        long,
        value_name = "PROTO,...",
        value_delimiter = ',',
        requires = "tls",
        help_heading = "TLS"
    )]
    pub alpn: Vec<String>,
}

impl ServerArgs {
    /// The faults asked for, with the seed (from the clock when none was
    /// given).
    pub fn faults(&self) -> crate::server::Faults {
        use crate::server::End;
        let end = [
            (self.close_after, End::Close),
            (self.reset_after, End::Reset),
            (self.stall_after, End::Stall),
        ]
        .into_iter()
        .find_map(|(after, end)| after.map(|n| (n, end)));
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        crate::server::Faults {
            delay: self.delay.unwrap_or_default(),
            jitter: self.jitter.unwrap_or_default(),
            end,
            drop: self.drop.map_or(0.0, |pct| pct / 100.0),
            seed,
        }
    }

    /// What clap cannot check alone: `--max-connections` against
    /// `--threads`, and what a Unix-domain socket cannot do.
    pub fn check(&self) -> Result<(), Usage> {
        if let Some(max) = self.max_connections
            && max < self.threads
        {
            let msg = format!(
                "--max-connections ({max}) must be at least --threads ({})",
                self.threads
            );
            return Err(Usage::new(ErrorKind::ValueValidation, msg));
        }
        let unix = !matches!(self.bind, Endpoint::Ip(_));
        if unix && (self.threads > 1 || self.udp || self.udp_only) {
            let msg = "--threads and --udp need an IP address, not a Unix-domain socket";
            return Err(Usage::new(ErrorKind::ArgumentConflict, msg));
        }
        if self.unix_mode.is_some() && !matches!(self.bind, Endpoint::Unix(_)) {
            let msg = "--unix-mode needs --bind unix:/path";
            return Err(Usage::new(ErrorKind::ArgumentConflict, msg));
        }
        if self.drop.is_some() && !(self.udp || self.udp_only) {
            let msg = "--drop applies to datagrams: add --udp or --udp-only";
            return Err(Usage::new(ErrorKind::ArgumentConflict, msg));
        }
        // Holding datagrams would need a queue of them per peer, which
        // a reflector's victim could fill; --drop is the datagrams' fault.
        if (self.delay.is_some() || self.jitter.is_some()) && (self.udp || self.udp_only) {
            let msg = "--delay and --jitter hold TCP echoes only: not with --udp or --udp-only \
                       (datagrams are answered at once; --drop loses some on purpose)";
            return Err(Usage::new(ErrorKind::ArgumentConflict, msg));
        }
        if self.tls && self.udp_only {
            let msg = "--tls serves TCP: with --udp-only there is none (DTLS is not served)";
            return Err(Usage::new(ErrorKind::ArgumentConflict, msg));
        }
        if self.tls && unix {
            let msg = "--tls needs an IP address, not a Unix-domain socket";
            return Err(Usage::new(ErrorKind::ArgumentConflict, msg));
        }
        if let Some(empty) = self.alpn.iter().find(|p| p.is_empty() || p.len() > 255) {
            let msg = format!("--alpn: a protocol name is 1 to 255 bytes, not {:?}", empty);
            return Err(Usage::new(ErrorKind::ValueValidation, msg));
        }
        Ok(())
    }

    /// The server's configuration, as these options ask (the TLS config
    /// is added once `--tls` is set up: it needs the certificate files).
    pub fn config(&self) -> crate::server::Config {
        use crate::server::{Config, UdpMode};
        Config {
            bind: self.bind.clone(),
            unix_mode: self.unix_mode,
            backlog: self.backlog,
            max_connections: self.max_connections.map(|n| n as usize),
            read_size: self.read_size as usize,
            budget: self.budget as usize,
            idle_timeout: self.idle_timeout,
            stats_every: self.stats,
            handle_signals: true,
            udp: match (self.udp, self.udp_only) {
                (_, true) => UdpMode::Only,
                (true, false) => UdpMode::WithTcp,
                (false, false) => UdpMode::Off,
            },
            udp_rate_limit: self.udp_rate_limit,
            proxy_protocol: self.proxy_protocol,
            metrics: self.metrics,
            faults: self.faults(),
            ..Config::default()
        }
    }

    /// What `--tls` and its options ask for (`None` without `--tls`).
    pub fn tls_options(&self) -> Option<crate::server::tls_server::Settings> {
        self.tls.then(|| crate::server::tls_server::Settings {
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            client_ca: self.tls_client_ca.clone(),
            resumption: self.tls_resumption,
            alpn: self.alpn.clone(),
        })
    }
}

/// `--delay`, `--jitter`: a duration of at most a minute.
fn parse_fault_delay(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d > Duration::from_secs(60) {
        return Err(format!("`{text}` is too long (at most 60s)"));
    }
    Ok(d)
}

/// `--close-after` and the like: 1 byte to 1 TiB, `k` and `M` allowed.
fn parse_fault_bytes(text: &str) -> Result<u64, String> {
    crate::shared::duration::parse_count(text, 1, 1 << 40)
}

/// `--drop`: a percentage, more than 0 and at most 100.
fn parse_percent(text: &str) -> Result<f64, String> {
    let pct: f64 = text
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{text}` is not a percentage"))?;
    if !(pct > 0.0 && pct <= 100.0) {
        return Err(format!(
            "`{text}` is out of range (more than 0, at most 100)"
        ));
    }
    Ok(pct)
}

/// File permissions in octal: `660`, `0660`, `0o660`; at most 0777.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!("`{text}` is not a file mode in octal (0 to 0777)")),
    }
}
