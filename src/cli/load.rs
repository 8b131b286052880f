//! `echoloop load`: its options and their value parsers, what clap cannot
//! check alone, and the [`Config`](crate::load::Config) they make.

// The `///` comments here are help text for the terminal, not Markdown:
// `[::1]:7878` is an address, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use clap::error::ErrorKind;

use super::tls_args::TlsArgs;
use super::usage::Usage;
use crate::load::thresholds::Threshold;
use crate::shared::addr::Endpoint;
use crate::shared::duration::{parse_duration, parse_rate};

pub(super) const LOAD_EXAMPLES: &str = "Examples:
  echoloop load 127.0.0.1:7878 -c 100 -d 5s
  echoloop load 127.0.0.1:7878 --rate 20000 -d 3s --interval 1s --hdr-log run.hlog
  echoloop load 127.0.0.1:7878 --messages-per-connection 1 --threads 2 -d 2s
  echoloop load udp://127.0.0.1:7878 --rate 10000 -s 512 -d 2s";

pub(super) const LOAD_LONG: &str = "Examples:
  echoloop load 127.0.0.1:7878 -c 100 -d 5s
  echoloop load 127.0.0.1:7878 --rate 20000 -d 3s --interval 1s --hdr-log run.hlog
  echoloop load 127.0.0.1:7878 --messages-per-connection 1 --threads 2 -d 2s
  echoloop load udp://127.0.0.1:7878 --rate 10000 -s 512 -d 2s
  echoloop load 127.0.0.1:7878 --rate 20000 -d 2s --fail-if 'p99>250ms' --fail-if 'errors>0'

Exit codes:
  0  a clean run (a schedule not kept is a warning)
  1  errors (UDP: corrupted replies), nothing echoed, the event loop failed,
     or --hdr-log or stdout fell behind (said after the summary)
  2  usage: ADDR without a port, a --source of the other family or not of
     this machine, a --tag ending in -connect, -s outside 16 to 65507 over
     UDP, churn or --reconnect over UDP, a --fail-if that does not parse
  3  a --fail-if expression held (each is said, with the run's figure)
  6  could not resolve ADDR's host
  7  not one connection established";

/// `--rate R` or `--rate FROM..TO`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateArg {
    /// The rate, or where a ramp starts.
    pub from: f64,
    /// Where a ramp ends.
    pub to: Option<f64>,
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

    /// The target is not an echo server: each message's reply is TEXT
    /// (escapes as --message) or the bytes of @FILE, checked byte for byte
    /// (-m 'PING\r\n' --expect '+PONG\r\n'); a different reply is a
    /// mismatch. Latency runs to the reply's last byte.
    #[arg(long, value_name = "TEXT|@FILE", value_parser = parse_first_message,
          conflicts_with = "no_reply")]
    pub expect: Option<Bytes>,

    /// Send only, against any sink: a message is done once written, its
    /// latency is the send lag (from when it was sent or due until its
    /// last byte went), and any byte that comes back is a mismatch.
    #[arg(long)]
    pub no_reply: bool,

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

    /// End each connection with a FIN after its last message (with
    /// --messages-per-connection, after its N; otherwise when the window
    /// ends), then expect every echo and the server's EOF. A server that
    /// closes before echoing everything, or never sends its EOF within
    /// --timeout, is a `half_close` error (a proxy without half-close
    /// support, such as nginx's stream module without proxy_half_close).
    #[arg(long)]
    pub half_close: bool,

    /// Begin each connection with a PROXY protocol header (v1 text or v2
    /// binary) naming its own addresses, as a proxy does for its backend;
    /// over tls://, before the handshake. For a target that expects one
    /// (server --proxy-protocol, haproxy or nginx with accept-proxy).
    #[arg(long, value_name = "VERSION")]
    pub proxy_protocol: Option<crate::load::proxy_header::Version>,

    /// The client a PROXY header names instead of the connection's own
    /// address: IP (the connection's own port) or IP:PORT, of the
    /// target's family. Needs --proxy-protocol.
    #[arg(long, value_name = "ADDR", requires = "proxy_protocol")]
    pub proxy_source: Option<crate::load::proxy_header::Source>,

    /// Run the whole measurement N times (2 to 1000), --repeat-pause
    /// apart, and print each figure's median, min and max over the
    /// windows after a line per window. --hdr-log tags each window's
    /// intervals TAG@1, TAG@2, …; a --fail-if must hold in every window.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub repeat: Option<u32>,

    /// The pause between --repeat's windows, for the target to settle
    /// (0 to 1h).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_repeat_pause,
          requires = "repeat")]
    pub repeat_pause: Duration,

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

    /// Serve the generator's own Prometheus metrics at
    /// http://ADDR/metrics during the run (messages, errors by kind, in
    /// flight, messages due, latency and send lag histograms), so that a
    /// dashboard shows generator and target side by side. Port 0 picks
    /// one; the log says where.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

    /// Fail the run (exit 3) if EXPR holds: FIGURE OP VALUE, where OP is
    /// one of `>`, `>=`, `<`, `<=`. Figures: p50 p90 p99 p999 max (a
    /// latency: 500us, 5ms, 1s), errors and errors.KIND, lost, timed_out,
    /// unsent (a count, or a % of messages), msgs_per_s, mib_per_s. Repeat
    /// for more: each is said with the run's figure. E.g. --fail-if
    /// 'p99>5ms' --fail-if 'errors>0' --fail-if 'msgs_per_s<9000'.
    #[arg(long = "fail-if", value_name = "EXPR", value_parser = Threshold::parse)]
    pub fail_if: Vec<Threshold>,
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
        if let Some(t) = self.fail_if.iter().find(|t| t.needs_schedule())
            && self.rate.is_none()
            && self.rate_steps.is_none()
        {
            let msg = format!(
                "--fail-if {}: unsent is an open loop's figure (give --rate)",
                t.text()
            );
            return Err(Usage::new(ErrorKind::ArgumentConflict, msg));
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
        if udp && (self.expect.is_some() || self.no_reply) {
            let msg = "--expect and --no-reply are for streams: over UDP the generator checks its own numbered echoes";
            return Err(Usage::new(ErrorKind::ArgumentConflict, msg));
        }
        if udp && self.half_close {
            let msg = "--half-close is for streams: a datagram socket has no FIN";
            return Err(Usage::new(ErrorKind::ArgumentConflict, msg));
        }
        if self.proxy_protocol.is_some() && !matches!(addr, Endpoint::Ip(_))
            || udp && self.proxy_protocol.is_some()
        {
            let msg = "--proxy-protocol is for TCP targets (HOST:PORT or tls://HOST:PORT)";
            return Err(Usage::new(ErrorKind::ArgumentConflict, msg));
        }
        if let (Some(source), Endpoint::Ip(target)) = (self.proxy_source, addr)
            && source.ip.is_ipv4() != target.is_ipv4()
        {
            let msg = format!(
                "--proxy-source {}: a PROXY header names one family, and {addr} is not of it",
                source.ip
            );
            return Err(Usage::new(ErrorKind::ValueValidation, msg));
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
            half_close: self.half_close,
            metrics: self.metrics.is_some(),
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
                reply: match (&self.expect, self.no_reply) {
                    (Some(reply), _) => crate::load::Reply::Expect(reply.0.clone()),
                    (None, true) => crate::load::Reply::Nothing,
                    (None, false) => crate::load::Reply::Echo,
                },
            },
            proxy: self.proxy_protocol.map(|version| crate::load::ProxyHeader {
                version,
                source: self.proxy_source,
            }),
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

/// `--repeat-pause`: 0 to an hour.
fn parse_repeat_pause(text: &str) -> Result<Duration, String> {
    parse_zero_to(text, Duration::from_secs(3600), "60m")
}

/// An HdrHistogram log tag: printable, no spaces, commas, `=` or `@`
/// (which marks a `--repeat` window: `TAG@2`).
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
            .all(|c| c.is_ascii_graphic() && c != ',' && c != '=' && c != '@');
    match ok {
        true => Ok(text.to_string()),
        false => Err(format!(
            "`{text}` is not a tag (printable, no spaces, commas, `=` or `@`)"
        )),
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
