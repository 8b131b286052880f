//! The command line's shape: every subcommand, option and value parser
//! (clap derive; the `///` comments are the help text). `main.rs` parses
//! with [`Cli`] and dispatches; the tests read the same definitions, so
//! what `--help` promises is checked against what exists.

// The `///` comments here are help text for the terminal, not Markdown:
// `[::1]:7878` is an address, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::net::SocketAddr;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};

use crate::shared::addr::Endpoint;
use crate::shared::duration::{parse_duration, parse_rate};

/// Echo server, client and load generator on hand-rolled mio event loops,
/// plus a report of the load generator's logs.
#[derive(Parser, Debug)]
#[command(name = "echoloop", version = crate::VERSION, propagate_version = true,
          after_help = TOP_EXAMPLES)]
pub struct Cli {
    /// The part to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The four parts of echoloop.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the TCP echo server (prints `listening on ADDR` once ready).
    #[command(after_help = SERVER_EXAMPLES, after_long_help = SERVER_LONG)]
    Server(ServerArgs),
    /// Send an HTTP GET (or --data) and print Python's repr() of the reply.
    #[command(after_help = CLIENT_EXAMPLES, after_long_help = CLIENT_LONG)]
    Client(ClientArgs),
    /// Drive an echo server with many connections and measure it.
    #[command(after_help = LOAD_EXAMPLES, after_long_help = LOAD_LONG)]
    Load(LoadArgs),
    /// Merge `echoloop load --hdr-log` files and summarize them (--html:
    /// a page of charts).
    #[command(after_help = REPORT_EXAMPLES, after_long_help = REPORT_LONG)]
    Report(ReportArgs),
    /// Write the man pages or a shell's completions (for packagers).
    #[command(hide = true, subcommand)]
    Generate(Generate),
}

/// `echoloop generate`: what ripgrep calls `--generate`, without a build
/// script: the pages and scripts come from the same clap definitions.
#[derive(Subcommand, Debug)]
pub enum Generate {
    /// One man page per subcommand (echoloop.1, echoloop-server.1, ...)
    /// into DIR.
    Man {
        /// Where to write the pages (created if missing).
        #[arg(value_name = "DIR")]
        dir: std::path::PathBuf,
    },
    /// The completion script for SHELL, on stdout.
    Complete {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

/// Typical command lines, under `echoloop --help`.
const TOP_EXAMPLES: &str = "Examples:
  echoloop server                            # echo on 127.0.0.1:7878
  echoloop client 127.0.0.1:7878 --data hi --half-close   # prints b'hi'
  echoloop load 127.0.0.1:7878 -d 5s         # 50 connections, closed loop
  echoloop report run.hlog --html run.html   # merge --hdr-log files

Each subcommand's --help has its own examples; --help (long) lists its exit
codes. Linux only.";

const SERVER_EXAMPLES: &str = "Examples:
  echoloop server
  echoloop server --bind [::]:7878 --threads 4 --udp
  echoloop server --bind unix:/tmp/echo.sock --unix-mode 0660
  echoloop server --bind 127.0.0.1:0 --metrics 127.0.0.1:9100 --stats 1s";

const SERVER_LONG: &str = "Examples:
  echoloop server
  echoloop server --bind [::]:7878 --threads 4 --udp
  echoloop server --bind unix:/tmp/echo.sock --unix-mode 0660
  echoloop server --bind 127.0.0.1:0 --metrics 127.0.0.1:9100 --stats 1s

Exit codes:
  0  stopped by SIGINT or SIGTERM
  1  cannot listen (address in use, a Unix path that is not a socket), or
     the event loop failed
  2  usage";

const CLIENT_EXAMPLES: &str = "Examples:
  echoloop client example.com
  echoloop client http://127.0.0.1:8000/index.html
  echoloop client 127.0.0.1:7878 --data 'hello' --half-close
  echoloop client udp://127.0.0.1:7878 --data ping";

const CLIENT_LONG: &str = "Examples:
  echoloop client example.com
  echoloop client http://127.0.0.1:8000/index.html
  echoloop client 127.0.0.1:7878 --data 'hello' --half-close
  echoloop client udp://127.0.0.1:7878 --data ping

Exit codes (curl's, where curl has one):
  0   the reply was read to EOF and printed
  1   the event loop failed
  2   usage, or a bad SERVER
  6   could not resolve the host
  7   could not connect (UDP: ICMP port unreachable)
  23  could not write the output
  26  could not read --data-file
  28  timed out (connecting, sending, receiving, writing stdout; UDP: no
      reply)
  55  sending failed, or reset before the request was all out
  56  receiving failed
  63  the reply outgrew --max-reply";

const LOAD_EXAMPLES: &str = "Examples:
  echoloop load 127.0.0.1:7878 -c 100 -d 5s
  echoloop load 127.0.0.1:7878 --rate 20000 -d 3s --interval 1s --hdr-log run.hlog
  echoloop load 127.0.0.1:7878 --messages-per-connection 1 --threads 2 -d 2s
  echoloop load udp://127.0.0.1:7878 --rate 10000 -s 512 -d 2s";

const LOAD_LONG: &str = "Examples:
  echoloop load 127.0.0.1:7878 -c 100 -d 5s
  echoloop load 127.0.0.1:7878 --rate 20000 -d 3s --interval 1s --hdr-log run.hlog
  echoloop load 127.0.0.1:7878 --messages-per-connection 1 --threads 2 -d 2s
  echoloop load udp://127.0.0.1:7878 --rate 10000 -s 512 -d 2s

Exit codes:
  0  a clean run (a schedule not kept is a warning)
  1  errors (UDP: corrupted replies), nothing echoed, the event loop failed,
     or --hdr-log or stdout fell behind (said after the summary)
  2  usage: ADDR without a port, a --source of the other family or not of
     this machine, a --tag ending in -connect, -s outside 16 to 65507 over
     UDP, churn or --reconnect over UDP
  6  could not resolve ADDR's host
  7  not one connection established";

const REPORT_EXAMPLES: &str = "Examples:
  echoloop report run.hlog
  echoloop report gen1.hlog gen2.hlog gen3.hlog --html run.html
  echoloop report run.hlog --json";

const REPORT_LONG: &str = "Examples:
  echoloop report run.hlog
  echoloop report gen1.hlog gen2.hlog gen3.hlog --html run.html
  echoloop report run.hlog --json
  echoloop report --compare direct.hlog haproxy.hlog socat.hlog --html cmp.html
  echoloop report --compare before=a1.hlog,a2.hlog after=b1.hlog,b2.hlog

Exit codes:
  0  merged and printed
  1  a file cannot be read, or the page cannot be written
  2  usage, --html over an input, --compare with fewer than 2 runs or
     two of one name; a file given twice, empty or not an interval log, a
     histogram whose declared lengths or shape are refused, or logs past
     the report's memory budget (the line that crosses it is named)";

/// Options of `echoloop report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// HdrHistogram interval logs, from one generator or several. With
    /// --compare, each is a RUN: a log, or NAME=FILE[,FILE...] (the logs
    /// of one run's generators).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<std::path::PathBuf>,

    /// Compare runs side by side instead of merging them: one column per
    /// run with each figure's ratio to the first; with --html, one line
    /// per run on its own time axis and the percentile spectra overlaid.
    #[arg(long)]
    pub compare: bool,

    /// Also write one self-contained HTML page of charts to OUT.
    #[arg(long, value_name = "OUT")]
    pub html: Option<std::path::PathBuf>,

    /// Print one JSON object instead of the human summary.
    #[arg(long)]
    pub json: bool,
}

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

    /// Bytes per read call.
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
    pub tls_resumption: crate::server::tls::Resumption,

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

/// `--rate R` or `--rate FROM..TO`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateArg {
    /// The rate, or where a ramp starts.
    pub from: f64,
    /// Where a ramp ends.
    pub to: Option<f64>,
}

/// `--rate`: a rate, or two joined by `..`.
fn parse_rate_arg(text: &str) -> Result<RateArg, String> {
    match text.split_once("..") {
        Some((from, to)) => Ok(RateArg {
            from: parse_rate(from)?,
            to: Some(parse_rate(to)?),
        }),
        None => Ok(RateArg {
            from: parse_rate(text)?,
            to: None,
        }),
    }
}

/// `--rate-steps R1,R2,…`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSteps(pub Vec<f64>);

/// `--rate-steps`: 1 to 100 rates, comma-separated.
fn parse_rate_steps(text: &str) -> Result<RateSteps, String> {
    let rates = text
        .split(',')
        .map(parse_rate)
        .collect::<Result<Vec<f64>, String>>()?;
    if rates.len() > crate::load::plan::MAX_STEPS {
        return Err(format!(
            "{} steps; at most {}",
            rates.len(),
            crate::load::plan::MAX_STEPS
        ));
    }
    Ok(RateSteps(rates))
}

/// The longest message `load` sends (`-s`, `--message-file`).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Bytes given on the command line (`--message`, `--message-file`), as
/// one shared buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bytes(pub std::sync::Arc<[u8]>);

/// `--message TEXT`: the text with its escapes turned into bytes.
fn parse_message(text: &str) -> Result<Bytes, String> {
    let bytes = unescape(text)?;
    if bytes.is_empty() {
        return Err("a message needs at least one byte".into());
    }
    Ok(Bytes(bytes.into()))
}

/// `--message-file FILE`: the file's bytes, 1 byte to 16 MiB.
fn read_message_file(path: &str) -> Result<Bytes, String> {
    // One byte past the limit tells a file that is too long; a FIFO gets
    // a bounded wait for its writer (`-f <(cmd)` works, a FIFO nobody
    // writes does not hang the run).
    let bytes = crate::shared::input::read_at_most(std::path::Path::new(path), MAX_MESSAGE as u64)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if bytes.is_empty() {
        return Err(format!("{path} is empty"));
    }
    if bytes.len() > MAX_MESSAGE {
        return Err(format!("{path} is longer than 16 MiB"));
    }
    Ok(Bytes(bytes.into()))
}

/// `--first-message TEXT|@FILE`.
fn parse_first_message(text: &str) -> Result<Bytes, String> {
    match text.strip_prefix('@') {
        Some(path) => read_message_file(path),
        None => parse_message(text),
    }
}

/// `on` or `off`.
fn parse_on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{text}` is neither on nor off")),
    }
}

/// Turns `\n`, `\r`, `\t`, `\\` and `\xNN` into their bytes; any other
/// backslash is an error, so that a typo does not go out on the wire.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex = [bytes.next(), bytes.next()];
                let digits = hex.iter().flatten().map(|&d| d as char).collect::<String>();
                let hex_digits = digits.len() == 2 && digits.chars().all(|c| c.is_ascii_hexdigit());
                match u8::from_str_radix(&digits, 16) {
                    Ok(v) if hex_digits => out.push(v),
                    _ => return Err(format!("`\\x{digits}` is not \\x and two hex digits")),
                }
            }
            Some(other) => {
                return Err(format!(
                    "`\\{}` is not an escape (\\n \\r \\t \\\\ \\xNN)",
                    other as char
                ));
            }
            None => return Err("a lone backslash at the end (write \\\\)".into()),
        }
    }
    Ok(out)
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
}

/// How a client speaks TLS: `echoloop client https://…` and `echoloop
/// load tls://…` take the same options, named as curl names them.
#[derive(Args, Debug, Clone)]
pub struct TlsArgs {
    /// Trust the certificates in FILE (PEM) instead of the system's: the
    /// file a server made with --tls prints.
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub cacert: Option<std::path::PathBuf>,

    /// Accept any certificate (the handshake still proves the server holds
    /// its key), as curl -k.
    #[arg(short = 'k', long, conflicts_with = "cacert", help_heading = "TLS")]
    pub insecure: bool,

    /// Present this certificate (PEM) to a server that asks (mTLS); with --key.
    #[arg(long, value_name = "FILE", requires = "key", help_heading = "TLS")]
    pub cert: Option<std::path::PathBuf>,

    /// The private key of --cert (PEM).
    #[arg(long, value_name = "FILE", requires = "cert", help_heading = "TLS")]
    pub key: Option<std::path::PathBuf>,
}

impl TlsArgs {
    /// The options, for [`crate::shared::tls::client_config`].
    pub fn options(&self) -> crate::shared::tls::ClientOptions {
        crate::shared::tls::ClientOptions {
            cacert: self.cacert.clone(),
            insecure: self.insecure,
            cert: self.cert.clone(),
            key: self.key.clone(),
            ..crate::shared::tls::ClientOptions::default()
        }
    }
}

/// Options of `echoloop client`.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// host, host:port, [v6addr]:port, http://host[:port][/path],
    /// udp://host:port (one datagram), unix:/path/echo.sock or unix:@name.
    /// Asked for at a prompt when missing and stdin is a terminal.
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,

    /// Port (overrides SERVER's; default 80).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// Request path (overrides SERVER's; default /).
    #[arg(long)]
    pub path: Option<String>,

    /// Send TEXT instead of the GET request.
    #[arg(long, value_name = "TEXT", conflicts_with = "data_file")]
    pub data: Option<String>,

    /// Send the bytes of FILE instead of the GET request.
    #[arg(long, value_name = "FILE")]
    pub data_file: Option<std::path::PathBuf>,

    /// Shut down the sending side once the request is out (an echo server
    /// then echoes and closes).
    #[arg(long)]
    pub half_close: bool,

    /// Write the reply's bytes unchanged, as they arrive, instead of repr().
    #[arg(long)]
    pub raw: bool,

    /// Give up on one address after this long (10s, 500ms, or seconds).
    #[arg(long, value_name = "DURATION", default_value = "10", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Give up on the whole exchange after this long (writing the reply to
    /// stdout included). On a timeout the reply so far is printed first.
    #[arg(long, value_name = "DURATION", default_value = "30", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Without --raw, the most reply bytes to hold for repr(); a longer
    /// reply stops the client with exit 63. --raw streams without a limit.
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    pub max_reply: u64,

    /// How to speak TLS (https://, tls://).
    #[command(flatten)]
    pub tls: TlsArgs,

    /// Log each state transition and each read and write size to stderr.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Options of `echoloop load`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("open_loop").args(["rate", "rate_steps"])))]
pub struct LoadArgs {
    /// The echo server: 127.0.0.1:7878, [::1]:7878, HOST:PORT (a name is
    /// resolved, and its addresses tried in turn until one accepts),
    /// udp://HOST:PORT (datagrams), unix:/path/echo.sock or unix:@name.
    #[arg(value_name = "ADDR", value_parser = parse_load_target)]
    pub addr: LoadTarget,

    /// Connections to open (1 to 1M; 10k is 10,000).
    #[arg(short = 'c', long, value_name = "N", default_value_t = 50,
          value_parser = parse_connections)]
    pub connections: u64,

    /// Bytes per message (random bytes, checked in the echo).
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=MAX_MESSAGE as u64))]
    pub size: u64,

    /// Send TEXT as every message instead of random bytes, with the
    /// escapes \n \r \t \\ and \xNN; its length is the message size.
    #[arg(short = 'm', long, value_name = "TEXT", value_parser = parse_message,
          conflicts_with_all = ["size", "message_file"])]
    pub message: Option<Bytes>,

    /// Send the bytes of FILE as every message (at most 16 MiB), each
    /// echo checked byte for byte.
    #[arg(short = 'f', long, value_name = "FILE", value_parser = read_message_file,
          conflicts_with = "size")]
    pub message_file: Option<Bytes>,

    /// Send TEXT (escapes as --message), or the bytes of @FILE, once as
    /// each connection opens, before its messages (a handshake, a PROXY
    /// header); never measured.
    #[arg(short = '1', long, value_name = "TEXT|@FILE", value_parser = parse_first_message)]
    pub first_message: Option<Bytes>,

    /// Whether the path echoes --first-message: on (its echo is awaited
    /// and checked before the messages begin) or off (something on the
    /// way consumes it; the messages follow it at once).
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = parse_on_off,
          action = clap::ArgAction::Set,
          requires = "first_message")]
    pub first_message_echo: bool,

    /// How long to measure (10s, 500ms, 1m, or seconds), after --warmup.
    #[arg(short = 'd', long, value_name = "DURATION", default_value = "10s",
          value_parser = parse_duration)]
    pub duration: Duration,

    /// Messages in flight per connection (closed loop: the next is sent
    /// only when an echo is back in full).
    #[arg(long, value_name = "K", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub pipeline: u64,

    /// Open loop: send this many messages per second in all (20k is
    /// 20,000), on a fixed schedule; latency counts from when each message
    /// was due. FROM..TO ramps the rate linearly (see --ramp).
    #[arg(long, value_name = "MSGS_PER_S|FROM..TO", value_parser = parse_rate_arg)]
    pub rate: Option<RateArg>,

    /// Connect first, then start the measured window (and the messages) at
    /// TIME: RFC 3339 (2026-12-02T18:50:00Z) or unix seconds, at most a
    /// day ahead. Generators on many machines given the same TIME start
    /// together (keep their clocks in sync: NTP).
    #[arg(long, value_name = "TIME", value_parser = crate::shared::wall::parse_wall_time,
          conflicts_with = "connect_rate")]
    pub start_at: Option<std::time::SystemTime>,

    /// How to verify a tls:// server, and what to show it.
    #[command(flatten)]
    pub tls: TlsArgs,

    /// The server name to send (SNI) and to find in its certificate,
    /// instead of ADDR's host (tls:// only).
    #[arg(long, value_name = "NAME", help_heading = "TLS")]
    pub sni: Option<String>,

    /// Whether a new connection resumes an earlier session (tls:// only):
    /// never (every handshake full), tickets, or ids (TLS 1.2 session
    /// IDs; TLS 1.3 has tickets only). Default: tickets.
    #[arg(long, value_name = "HOW", help_heading = "TLS")]
    pub tls_resume: Option<crate::shared::tls::Resume>,

    /// With --rate FROM..TO: how long the ramp takes (default: the whole
    /// of -d); the rate holds at TO after it. Each tenth of the ramp (or
    /// each --interval) is reported with its offered rate.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "rate")]
    pub ramp: Option<Duration>,

    /// Open loop in steps: each rate (1k,2k,4k) for --step in turn, each
    /// step reported with its offered and achieved rate; the run lasts
    /// as long as the steps (-d does not apply). At most 100 steps.
    #[arg(long, value_name = "R1,R2,...", value_parser = parse_rate_steps,
          conflicts_with_all = ["rate", "duration"], requires = "step")]
    pub rate_steps: Option<RateSteps>,

    /// How long each of --rate-steps lasts.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "rate_steps")]
    pub step: Option<Duration>,

    /// Open loop: stop sleeping this long before each due message and poll
    /// until it is due (0 to 10ms). Longer sends closer to the due time and
    /// costs CPU; 0 never spins. Default: twice as late as the timer has
    /// lately woken the loop, at most 0.3ms and 5% of the gap between two
    /// messages.
    #[arg(long, value_name = "DURATION", value_parser = parse_spin, requires = "open_loop")]
    pub spin: Option<Duration>,

    /// Open loop: let a send wait up to this long so that messages due close
    /// together go out in one wake-up (0 to 100ms). Above 1/DURATION
    /// messages a second the loop wakes once per DURATION instead of once
    /// per message: less CPU, and send lag up to DURATION (counted in the
    /// latency). 0 wakes for every message.
    #[arg(long, value_name = "DURATION", default_value = "1ms", value_parser = parse_coalesce,
          requires = "open_loop")]
    pub coalesce: Duration,

    /// Open this many connections per second while ramping up (default:
    /// all at once).
    #[arg(long, value_name = "CONNS_PER_S", value_parser = parse_rate)]
    pub connect_rate: Option<f64>,

    /// Run this long first and drop its numbers (default: no warm-up).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub warmup: Option<Duration>,

    /// Stop after this many measured messages, even before --duration (1M
    /// is a million).
    #[arg(long, value_name = "N", value_parser = parse_messages)]
    pub messages: Option<u64>,

    /// A connect or an echo that takes longer than this is an error.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Close each connection after N verified round trips and open a new
    /// one at once (1 is pure connection churn); the summary adds
    /// connections per second and connect latency.
    #[arg(long, value_name = "N", value_parser = parse_messages)]
    pub messages_per_connection: Option<u64>,

    /// Open a connection that failed (reset, refused, timed out, wrong
    /// echo) again after 100 ms instead of leaving it down; failures are
    /// still counted by kind.
    #[arg(long)]
    pub reconnect: bool,

    /// Connect from these local addresses in turn (127.0.0.2,127.0.0.3):
    /// one source address runs out of ports near 28,000 connections to one
    /// server port.
    #[arg(long, value_name = "ADDR[,ADDR...]", value_delimiter = ',')]
    pub source: Vec<std::net::IpAddr>,

    /// Run N generator threads, each its own event loop on a share of the
    /// connections (at most one thread per connection); rates are split so
    /// the whole schedule is kept.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: u64,

    /// Print one line per interval of this length during the run (msgs/s,
    /// MiB/s each way, latency, errors, the generator's CPU), then the
    /// summary; with --json, JSON Lines.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<Duration>,

    /// Write the latency histogram of every interval (--interval, default
    /// 1s) to FILE in HdrHistogram's interval log format.
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<std::path::PathBuf>,

    /// The tag of this generator's histograms in --hdr-log (default
    /// HOST:PID); no spaces or commas.
    #[arg(long, value_name = "NAME", value_parser = parse_tag)]
    pub tag: Option<String>,

    /// Print one JSON object on stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,
}

/// `HOST:PID`, this generator's default tag.
pub fn default_tag() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().replace([',', ' ', '='], "-"))
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// `-c`: 1 to a million connections, `k` and `M` allowed.
pub fn parse_connections(text: &str) -> Result<u64, String> {
    crate::shared::duration::parse_count(text, 1, 1_000_000)
}

/// `--messages`, `--messages-per-connection`: at least 1, `k` and `M`
/// allowed (up to 2^53, where a count is still exact).
pub fn parse_messages(text: &str) -> Result<u64, String> {
    crate::shared::duration::parse_count(text, 1, 1 << 53)
}

/// `--spin`: a duration from 0 to 10 ms.
pub fn parse_spin(text: &str) -> Result<Duration, String> {
    parse_zero_to(text, Duration::from_millis(10), "10ms")
}

/// `--coalesce`: a duration from 0 to 100 ms.
pub fn parse_coalesce(text: &str) -> Result<Duration, String> {
    parse_zero_to(text, Duration::from_millis(100), "100ms")
}

/// A duration from 0 (which `parse_duration` refuses) to `max`.
fn parse_zero_to(text: &str, max: Duration, max_text: &str) -> Result<Duration, String> {
    let number = text.trim().trim_end_matches("ms").trim_end_matches('s');
    if number.trim().parse::<f64>() == Ok(0.0) {
        return Ok(Duration::ZERO);
    }
    let parsed = parse_duration(text)?;
    if parsed > max {
        return Err(format!("`{text}` is more than {max_text}"));
    }
    Ok(parsed)
}

/// An HdrHistogram log tag: printable, no spaces, commas or `=`.
pub fn parse_tag(text: &str) -> Result<String, String> {
    for (suffix, what) in [
        (crate::report::CONNECT_SUFFIX, "connect-latency"),
        (crate::report::SERVICE_SUFFIX, "service-time"),
        (crate::report::HANDSHAKE_SUFFIX, "handshake-latency"),
    ] {
        if text.ends_with(suffix) {
            return Err(format!(
                "`{text}` ends in `{suffix}`, which marks {what} histograms"
            ));
        }
    }
    let ok = !text.is_empty()
        && text.len() <= 200
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && c != ',' && c != '=');
    match ok {
        true => Ok(text.to_string()),
        false => Err(format!(
            "`{text}` is not a tag (printable, no spaces, commas or `=`)"
        )),
    }
}

/// File permissions in octal: `660`, `0660`, `0o660`; at most 0777.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!("`{text}` is not a file mode in octal (0 to 0777)")),
    }
}

/// What `echoloop load` drives: a host and port (TCP), or a Unix socket.
#[derive(Debug, Clone)]
pub enum LoadTarget {
    /// `HOST:PORT`: TCP.
    Tcp(String, u16),
    /// `udp://HOST:PORT`: datagrams.
    Udp(String, u16),
    /// `tls://HOST:PORT`: TLS over TCP.
    Tls(String, u16),
    /// `unix:/path` or `unix:@name`: a Unix-domain stream socket.
    Unix(Endpoint),
}

/// ADDR: `unix:/path`, `unix:@name`, or `HOST:PORT` / `[V6]:PORT`.
pub fn parse_load_target(text: &str) -> Result<LoadTarget, String> {
    if text.starts_with("unix:") {
        return text.parse().map(LoadTarget::Unix);
    }
    if let Some(rest) = text.strip_prefix("udp://") {
        return parse_host_port(rest).map(|(host, port)| LoadTarget::Udp(host, port));
    }
    if let Some(rest) = text.strip_prefix("tls://") {
        return parse_host_port(rest).map(|(host, port)| LoadTarget::Tls(host, port));
    }
    // Another scheme (http://, tcp://): say which ones there are,
    // instead of "no port" on "http".
    if let Some((scheme, _)) = text.split_once("://") {
        return Err(format!(
            "`{scheme}://` is not a scheme echoloop load speaks: use HOST:PORT \
             (TCP), tls://HOST:PORT, udp://HOST:PORT or unix:PATH"
        ));
    }
    parse_host_port(text).map(|(host, port)| LoadTarget::Tcp(host, port))
}

/// `HOST:PORT` or `[V6]:PORT`, split; the port is required.
pub fn parse_host_port(text: &str) -> Result<(String, u16), String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok((addr.ip().to_string(), addr.port()));
    }
    crate::shared::addr::host_and_port(text)
}

/// A usage error found after parsing: clap's kind and the message. `main`
/// prints it in clap's format and exits 2, like one clap finds itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// clap's classification (value, conflict, missing argument).
    pub kind: ErrorKind,
    /// What is wrong, in one line.
    pub msg: String,
}

impl Usage {
    fn new(kind: ErrorKind, msg: impl Into<String>) -> Usage {
        Usage {
            kind,
            msg: msg.into(),
        }
    }
}

impl ServerArgs {
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

    /// What `--tls` and its options ask for (`None` without `--tls`).
    pub fn tls_options(&self) -> Option<crate::server::tls::Options> {
        self.tls.then(|| crate::server::tls::Options {
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            client_ca: self.tls_client_ca.clone(),
            resumption: self.tls_resumption,
            alpn: self.alpn.clone(),
        })
    }
}

impl LoadArgs {
    /// What clap cannot check alone, once ADDR is resolved to `addr`: UDP
    /// sizes and modes, and the `--source` addresses (of ADDR's family, and
    /// this machine's: binding to one says so at once, where a connect from
    /// it would be taken for running out of local ports).
    pub fn check(&self, addr: &Endpoint) -> Result<(), Usage> {
        let udp = matches!(self.addr, LoadTarget::Udp(..));
        use crate::load::DATAGRAM_HEADER;
        use crate::shared::net::MAX_DATAGRAM;
        if udp && !(DATAGRAM_HEADER as u64..=MAX_DATAGRAM as u64).contains(&self.size) {
            let msg = format!(
                "-s {} is not a UDP message size ({DATAGRAM_HEADER} to {MAX_DATAGRAM} bytes)",
                self.size
            );
            return Err(Usage::new(ErrorKind::ValueValidation, msg));
        }
        if udp
            && (self.message.is_some()
                || self.message_file.is_some()
                || self.first_message.is_some())
        {
            let msg = "--message, --message-file and --first-message are for streams: \
                       a datagram carries its own numbered header";
            return Err(Usage::new(ErrorKind::ArgumentConflict, msg));
        }
        if let Some(at) = self.start_at {
            let now = (std::time::SystemTime::now(), std::time::Instant::now());
            crate::shared::wall::instant_of(at, now.0, now.1).map_err(|why| {
                Usage::new(ErrorKind::ValueValidation, format!("--start-at: {why}"))
            })?;
        }
        if self.ramp.is_some() && self.rate.is_some_and(|r| r.to.is_none()) {
            let msg = "--ramp needs a range: --rate FROM..TO";
            return Err(Usage::new(ErrorKind::ArgumentConflict, msg));
        }
        if let Some(ramp) = self.ramp
            && ramp > self.duration
        {
            let msg = format!(
                "--ramp {ramp:?} is longer than the run (-d {:?})",
                self.duration
            );
            return Err(Usage::new(ErrorKind::ValueValidation, msg));
        }
        let tls = matches!(self.addr, LoadTarget::Tls(..));
        let tls_options = self.sni.is_some()
            || self.tls_resume.is_some()
            || self.tls.cacert.is_some()
            || self.tls.insecure
            || self.tls.cert.is_some();
        if tls_options && !tls {
            let msg =
                "--cacert, --insecure, --cert, --sni and --tls-resume are for tls://HOST:PORT";
            return Err(Usage::new(ErrorKind::ArgumentConflict, msg));
        }
        if udp && (self.messages_per_connection.is_some() || self.reconnect) {
            let msg = "--messages-per-connection and --reconnect are for streams, not udp://";
            return Err(Usage::new(ErrorKind::ArgumentConflict, msg));
        }
        let same_family = |s: &std::net::IpAddr| match addr {
            Endpoint::Ip(ip) => s.is_ipv4() == ip.is_ipv4(),
            _ => false,
        };
        if let Some(bad) = self.source.iter().find(|s| !same_family(s)) {
            let msg = format!("--source {bad} is not of the same family as {addr}");
            return Err(Usage::new(ErrorKind::ValueValidation, msg));
        }
        if let Some(foreign) = self
            .source
            .iter()
            .find(|s| std::net::UdpSocket::bind((**s, 0)).is_err())
        {
            let msg = format!("--source {foreign} is not an address of this machine");
            return Err(Usage::new(ErrorKind::ValueValidation, msg));
        }
        Ok(())
    }

    /// The run these arguments ask for, against `addr` (ADDR resolved).
    pub fn config(&self, addr: Endpoint) -> crate::load::Config {
        crate::load::Config {
            addr,
            connections: self.connections as usize,
            size: self.message_bytes().map_or(self.size as usize, |m| m.len()),
            duration: match (&self.rate_steps, self.step) {
                // The run lasts as long as its steps.
                (Some(steps), Some(each)) => each.saturating_mul(steps.0.len() as u32),
                _ => self.duration,
            },
            messages: self.messages,
            pipeline: self.pipeline as usize,
            rate: self.plan(),
            spin: self.spin,
            coalesce: self.coalesce,
            connect_rate: self.connect_rate,
            warmup: self.warmup.unwrap_or(Duration::ZERO),
            timeout: self.timeout,
            messages_per_connection: self.messages_per_connection,
            reconnect: self.reconnect,
            sources: self.source.clone(),
            threads: self.threads as usize,
            udp: matches!(self.addr, LoadTarget::Udp(..)),
            // --hdr-log without --interval logs every second.
            interval: self
                .interval
                .or(self.hdr_log.as_ref().map(|_| Duration::from_secs(1))),
            start_at: self.start_at.and_then(|at| {
                let now = (std::time::SystemTime::now(), std::time::Instant::now());
                crate::shared::wall::instant_of(at, now.0, now.1).ok()
            }),
            payload: crate::load::Payload {
                message: self.message_bytes(),
                first: self.first_message.as_ref().map(|b| b.0.clone()),
                first_echoed: self.first_message_echo,
            },
            // Made by the caller: setting TLS up reads files, and can fail.
            tls: None,
            // Read beside the log's wall clock by the caller.
            origin: None,
            stop: crate::shared::stop::Stop::never(),
        }
    }

    /// The open-loop plan asked for: `--rate`, a ramp, or steps.
    pub fn plan(&self) -> Option<crate::load::Plan> {
        use crate::load::Plan;
        if let (Some(steps), Some(each)) = (&self.rate_steps, self.step) {
            return Some(Plan::Steps {
                rates: steps.0.clone(),
                each,
            });
        }
        let rate = self.rate?;
        Some(match rate.to {
            None => Plan::Flat(rate.from),
            Some(to) => Plan::Ramp {
                from: rate.from,
                to,
                over: self.ramp.unwrap_or(self.duration),
            },
        })
    }

    /// `--message` or `--message-file`, if given.
    fn message_bytes(&self) -> Option<std::sync::Arc<[u8]>> {
        self.message
            .as_ref()
            .or(self.message_file.as_ref())
            .map(|b| b.0.clone())
    }

    /// The `--hdr-log` header's comment: the command line in short, what
    /// the values are, and the tag.
    pub fn log_comment(&self, config: &crate::load::Config, tag: &str) -> String {
        let mode = match &config.rate {
            Some(plan) => plan.as_args(),
            None => format!("--pipeline {}", config.pipeline),
        };
        let threads = match config.threads {
            1 => String::new(),
            n => format!(" --threads {n}"),
        };
        format!(
            "echoloop load {} -c {} -s {} {mode}{threads}: latency in µs, tag {tag}",
            config.addr, config.connections, config.size
        )
    }
}

impl ReportArgs {
    /// With `--compare`, the runs: (name, logs) each; 2 to
    /// [`MAX_RUNS`](crate::report::compare::MAX_RUNS), names unique.
    pub fn runs(&self) -> Result<Vec<(String, Vec<std::path::PathBuf>)>, Usage> {
        use crate::report::compare::{MAX_RUNS, parse_run};
        let bad = |msg: String| Usage::new(ErrorKind::ValueValidation, msg);
        let runs = self
            .files
            .iter()
            .map(|f| parse_run(&f.to_string_lossy()).map_err(bad))
            .collect::<Result<Vec<_>, _>>()?;
        if !(2..=MAX_RUNS).contains(&runs.len()) {
            let msg = format!("--compare takes 2 to {MAX_RUNS} runs, not {}", runs.len());
            return Err(bad(msg));
        }
        for (i, (name, _)) in runs.iter().enumerate() {
            if runs[..i].iter().any(|(other, _)| other == name) {
                let msg = format!("two runs are named {name}: give them NAME=FILE names");
                return Err(bad(msg));
            }
        }
        Ok(runs)
    }

    /// `--html` must not name one of the logs (compared by device and
    /// inode, so links and other spellings count).
    pub fn check(&self) -> Result<(), Usage> {
        let Some(out) = &self.html else { return Ok(()) };
        let logs = match self.compare {
            true => self
                .runs()?
                .into_iter()
                .flat_map(|(_, files)| files)
                .collect(),
            false => self.files.clone(),
        };
        match logs.iter().find(|f| same_file(f, out)) {
            Some(input) => Err(Usage::new(
                ErrorKind::ArgumentConflict,
                format!(
                    "--html {} would overwrite the log {}",
                    out.display(),
                    input.display()
                ),
            )),
            None => Ok(()),
        }
    }
}

/// Whether two paths name the same existing file.
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// `echoloop generate man DIR`: writes `echoloop.1` and one page per
/// visible subcommand (`echoloop-load.1`, ...) into `dir`, and returns
/// their paths.
pub fn write_man_pages(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    let top = Cli::command();
    let mut pages = vec![(String::from("echoloop"), top.clone())];
    for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("echoloop-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name).version(crate::VERSION)));
    }
    let mut written = Vec::new();
    for (name, cmd) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut file = std::fs::File::create(&path)?;
        clap_mangen::Man::new(cmd).render(&mut file)?;
        written.push(path);
    }
    Ok(written)
}

/// `echoloop generate complete SHELL`: the completion script on `out`.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "echoloop", out);
}
