//! What a load run is asked to do: [`Config`], with `echoloop load`'s
//! defaults, and how the summary words it ([`Shape`]). Low in the load
//! module: it names only the plan, the payload and the outcome's words.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::outcome::Shape;
use super::plan::Plan;
use super::tape::Payload;
use crate::shared::addr::Endpoint;

/// How late a send may be so that messages due close together share one
/// wake-up (`--coalesce`'s default). Each wake-up costs the generator far
/// more than a send: arming the timer, sleeping, waking, and waking the
/// server for the first message after a pause (on this project's virtual
/// machines 60–90 µs of CPU, against 5 µs per message in closed loop). Below
/// `1 / COALESCE` messages a second every message still gets its own
/// wake-up, on time; above it the loop wakes once per `COALESCE` and sends
/// everything due, each connection's share in one write.
pub const COALESCE: Duration = Duration::from_millis(1);

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The echo server.
    pub addr: Endpoint,
    /// Connections to open.
    pub connections: usize,
    /// Bytes per message.
    pub size: usize,
    /// How long to measure (after the warm-up).
    pub duration: Duration,
    /// Stop once this many messages were measured (benches use this).
    pub messages: Option<u64>,
    /// Messages in flight per connection (closed loop).
    pub pipeline: usize,
    /// Messages per second over all connections (open loop): flat, a
    /// ramp or steps.
    pub rate: Option<Plan>,
    /// Open loop: how long before each due message the loop stops
    /// sleeping (`--spin`); `None`: see [`OpenLoop::spin`](super::schedule::OpenLoop::spin).
    pub spin: Option<Duration>,
    /// Open loop: how late a send may be so that messages due close
    /// together share one wake-up (`--coalesce`; 0: a wake-up per message).
    pub coalesce: Duration,
    /// Connections opened per second while ramping up (default: all at once).
    pub connect_rate: Option<f64>,
    /// A period at the start whose numbers are dropped.
    pub warmup: Duration,
    /// How long a connect or an echo may take before it counts as an error.
    pub timeout: Duration,
    /// Close each connection after this many verified round trips and open
    /// a new one at once (`1` is pure connection churn).
    pub messages_per_connection: Option<u64>,
    /// `--half-close`: each connection ends with our FIN after its last
    /// message, then expects every echo and the server's EOF.
    pub half_close: bool,
    /// `--metrics`: each live tick carries the figures the endpoint serves.
    pub metrics: bool,
    /// Open a failed connection again after [`RECONNECT_BACKOFF`](super::RECONNECT_BACKOFF) instead
    /// of leaving it down for the rest of the run.
    pub reconnect: bool,
    /// Local addresses to connect from, in turn (empty: the kernel picks).
    pub sources: Vec<IpAddr>,
    /// Generator threads, each a whole [`Generator`](super::stream::Generator) on its own share of
    /// the connections (see [`threads`](super::threads)).
    pub threads: usize,
    /// Datagrams over UDP (`udp://`) instead of a stream; see [`datagrams`](super::datagrams).
    pub udp: bool,
    /// Report an [`Interval`](super::Interval) this often (`--interval`).
    pub interval: Option<Duration>,
    /// What the stream connections send (`--message`, `--first-message`).
    pub payload: Payload,
    /// `--start-at`: connect first, then start the clock (and send) at
    /// this instant, so that generators on many machines start together.
    pub start_at: Option<std::time::Instant>,
    /// `--proxy-protocol`: each connection first sends this PROXY header.
    pub proxy: Option<super::proxy_header::ProxyHeader>,
    /// `tls://`: each connection speaks TLS, made by this.
    pub tls: Option<crate::shared::tls::Dialer>,
    /// The instant the run counts from: intervals' `since_run_start`
    /// and the HdrHistogram log's timestamps are offsets from it, so the
    /// caller that writes the log's wall-clock StartTime reads both
    /// clocks together and passes this. `None`: when the generator is made.
    pub origin: Option<std::time::Instant>,
    /// Asked at each turn: once set (SIGINT, SIGTERM), the window ends
    /// there and the run winds down as at its deadline.
    pub stop: crate::shared::stop::Stop,
}

impl Default for Config {
    /// `echoloop load`'s own defaults, against 127.0.0.1:7878: 50
    /// connections of 64 B messages, closed loop with one in flight, 10 s,
    /// a 10 s timeout, one thread.
    fn default() -> Config {
        Config {
            addr: Endpoint::Ip(SocketAddr::from(([127, 0, 0, 1], 7878))),
            connections: 50,
            size: 64,
            duration: Duration::from_secs(10),
            messages: None,
            pipeline: 1,
            rate: None,
            spin: None,
            coalesce: COALESCE,
            connect_rate: None,
            warmup: Duration::ZERO,
            timeout: Duration::from_secs(10),
            messages_per_connection: None,
            half_close: false,
            metrics: false,
            reconnect: false,
            sources: Vec::new(),
            threads: 1,
            udp: false,
            interval: None,
            payload: Payload::default(),
            start_at: None,
            proxy: None,
            tls: None,
            origin: None,
            stop: crate::shared::stop::Stop::never(),
        }
    }
}

impl Config {
    /// What the run was asked to do, as the summary words it.
    pub fn shape(&self) -> Shape {
        let mode = match &self.rate {
            Some(plan) if plan.peak() * self.coalesce.as_secs_f64() > 1.0 => format!(
                "open loop at {} in passes every {:?}",
                plan.describe(),
                self.coalesce
            ),
            Some(plan) => format!("open loop at {}", plan.describe()),
            None => format!("closed loop, pipeline {}", self.pipeline),
        };
        let busy_cause = match &self.rate {
            Some(_) if self.spin.is_some_and(|s| !s.is_zero()) => format!(
                "it spins {:?} before each due message (--spin) instead of sleeping; \
                 a shorter --spin, or none, frees the CPU",
                self.spin.unwrap_or_default()
            ),
            Some(plan) if self.coalesce.is_zero() && plan.peak() >= 1000.0 => format!(
                "with --coalesce 0 it wakes for every one of {} msgs/s, and a wake-up \
                 costs far more than a send; --coalesce 1ms sends what falls due in one pass",
                plan.peak()
            ),
            Some(_) => "it may be the limit, not the server (try --threads, fewer \
                        connections per thread, or a longer --coalesce)"
                .to_string(),
            None => "it may be the limit, not the server (try --threads, or fewer \
                     connections per thread)"
                .to_string(),
        };
        Shape {
            target: self.addr.to_string(),
            mode,
            churn: self.messages_per_connection.is_some() || self.reconnect,
            half_close: self.half_close,
            sends_only: self.payload.reply == super::tape::Reply::Nothing,
            busy_cause,
        }
    }
}

/// How often overdue echoes are looked for and the live line is refreshed.
/// (An echo that does come back late is a timeout whatever the tick: see
/// `Counters::complete`.)
pub const TICK: Duration = Duration::from_millis(200);
