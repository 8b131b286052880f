//! `--metrics ADDR`: Prometheus metrics at `http://ADDR/metrics`, served
//! by the same loop that echoes. A second protocol in one reactor: the
//! metrics listener is one more token, and each scrape is a tiny HTTP/1.1
//! exchange with its own tokens (far above the echo connections'): read
//! the request head, answer once, close.
//!
//! A scraper gets no more than an echo peer would: its request head may be
//! 8 KiB at most (else 400), it has [`SCRAPE_TIMEOUT`] to finish (else it
//! is closed), at most [`MAX_SCRAPES`] are open at once (more get 503), and
//! each is handled in the turn's event dispatch like any connection, so a
//! slow or broken scraper cannot hold the echo connections up.
//!
//! The text is the OpenMetrics exposition, written by the Prometheus
//! project's `prometheus-client` crate; only the HTTP exchange is ours.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry as Metrics, Unit};
use slab::Slab;

use super::counters::{Counters, HANDSHAKE_BUCKETS_US, POLL_BUCKETS};
use crate::shared::duration::deadline_after;
use crate::shared::net::{interrupted, would_block};

use super::tokens::{self, METRICS};

/// How long a scrape may take, from accept to the last byte out.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most scrapes open at once.
pub const MAX_SCRAPES: usize = 16;
/// The longest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// Where one scrape is.
enum Stage {
    /// Reading the request head.
    Reading(Vec<u8>),
    /// Asked for the metrics, which are not at hand yet: with several
    /// reactors, the main thread asks each for its counters and answers
    /// every waiting scrape at once when they are in ([`Exporter::deliver`]).
    /// `true` for a HEAD request.
    Waiting(bool),
    /// Writing the response; this much is out.
    Writing(Vec<u8>, usize),
    /// The response is out and our side shut: reading what the scraper
    /// still sends until its EOF, then closing. (Closing with unread bytes
    /// would reset the connection, and the scraper could lose the answer:
    /// nginx's "lingering close".)
    Lingering,
}

struct Scrape {
    stream: TcpStream,
    since: Instant,
    stage: Stage,
}

/// The metrics exporter (Prometheus's word for a process that serves its metrics): its listener and the scrapes in progress.
pub struct Exporter {
    listener: TcpListener,
    scrapes: Slab<Scrape>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("listener", &self.listener)
            .field("scrapes", &self.scrapes.len())
            .finish()
    }
}

impl Exporter {
    /// Listens on `addr` and registers with `registry`.
    pub fn bind(addr: SocketAddr, registry: &Registry) -> io::Result<Exporter> {
        let std_listener = crate::shared::net::listen(addr, 64)?;
        let mut listener = TcpListener::from_std(std_listener);
        registry.register(&mut listener, METRICS, Interest::READABLE)?;
        Ok(Exporter {
            listener,
            scrapes: Slab::new(),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Handles an event for the listener or a scrape; `render` makes the
    /// metrics text when a scrape asks for it, or says (`None`) that it is
    /// not at hand yet: the scrape then waits for [`deliver`](Self::deliver).
    pub fn on_event(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        render: &dyn Fn() -> Option<String>,
    ) {
        if token == METRICS {
            self.accept(registry, now);
            return;
        }
        let Some(key) = tokens::scrape_key(token) else {
            return;
        };
        if let Some(scrape) = self.scrapes.get_mut(key)
            && !scrape.serve(render)
        {
            self.scrapes.remove(key);
        }
    }

    /// Accepts until the backlog is empty; past [`MAX_SCRAPES`], answers 503.
    fn accept(&mut self, registry: &Registry, now: Instant) {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                Err(e) => {
                    log::debug!("metrics accept: {e}");
                    return;
                }
            };
            if self.scrapes.len() >= MAX_SCRAPES {
                let _ = stream.write(&response(503, "text/plain", b"too many scrapes\n"));
                continue;
            }
            let entry = self.scrapes.vacant_entry();
            let token = tokens::scrape(entry.key());
            if registry
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                continue;
            }
            log::debug!("metrics scrape from {peer}");
            entry.insert(Scrape {
                stream,
                since: now,
                stage: Stage::Reading(Vec::new()),
            });
        }
    }

    /// Whether a scrape waits for the metrics text.
    pub fn waiting(&self) -> bool {
        self.scrapes
            .iter()
            .any(|(_, s)| matches!(s.stage, Stage::Waiting(_)))
    }

    /// The metrics text is here: every waiting scrape gets it, and as much
    /// of each answer is written as the sockets take.
    pub fn deliver(&mut self, text: &str) {
        let render = || Some(text.to_string());
        self.scrapes.retain(|_, scrape| match scrape.stage {
            Stage::Waiting(head_only) => {
                scrape.stage = Stage::Writing(metrics_response(text, head_only), 0);
                scrape.serve(&render)
            }
            _ => true,
        });
    }

    /// The soonest a scrape runs out of time.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.scrapes
            .iter()
            .map(|(_, s)| deadline_after(s.since, SCRAPE_TIMEOUT))
            .min()
    }

    /// Closes the scrapes that ran out of time.
    pub fn on_timers(&mut self, now: Instant) {
        self.scrapes.retain(|_, s| {
            let alive = deadline_after(s.since, SCRAPE_TIMEOUT) > now;
            if !alive {
                log::debug!("metrics scrape timed out");
            }
            alive
        });
    }
}

impl Scrape {
    /// Reads the request, answers it, and says whether to keep the scrape.
    fn serve(&mut self, render: &dyn Fn() -> Option<String>) -> bool {
        if let Stage::Reading(head) = &mut self.stage {
            let mut buf = [0u8; 1024];
            // A scraper may send its request and half-close at once (`nc
            // -q`, `printf … | nc`): the FIN ends the head, not the
            // scrape, and the request before it is answered.
            let mut ended = false;
            loop {
                match self.stream.read(&mut buf) {
                    Ok(0) => {
                        ended = true;
                        break;
                    }
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                    Err(e) if would_block(&e) => break,
                    Err(e) if interrupted(&e) => {}
                    Err(_) => return false,
                }
                if head.len() > MAX_HEAD {
                    break;
                }
            }
            self.stage = match answer(head) {
                None if ended => return false, // the head will never end
                None => return true,           // wait for the rest of the head
                Some(Reply::Bytes(out)) => Stage::Writing(out, 0),
                Some(Reply::Metrics { head_only }) => match render() {
                    Some(text) => Stage::Writing(metrics_response(&text, head_only), 0),
                    None => Stage::Waiting(head_only),
                },
            };
        }
        if let Stage::Waiting(_) = self.stage {
            // Not answered yet: what the scraper sends meanwhile stays
            // unread (a pipelined second request is not served anyway).
            return true;
        }
        if let Stage::Writing(out, written) = &mut self.stage {
            while *written < out.len() {
                match self.stream.write(&out[*written..]) {
                    Ok(n) => *written += n,
                    Err(e) if would_block(&e) => return true,
                    Err(e) if interrupted(&e) => {}
                    Err(_) => return false,
                }
            }
            // All out (the response says Connection: close).
            let _ = self.stream.shutdown(std::net::Shutdown::Write);
            self.stage = Stage::Lingering;
        }
        let mut sink = [0u8; 1024];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) if would_block(&e) => return true,
                Err(e) if interrupted(&e) => {}
                Err(_) => return false,
            }
        }
    }
}

/// The response to a request head, the bytes read so far; `None` while
/// they are a valid start of a head within [`MAX_HEAD`].
///
/// httparse reads the head (as hyper does): CRLF or bare LF line ends,
/// only `HTTP/1.0` and `HTTP/1.1`, header names and values checked. A
/// request line without a version (HTTP/0.9) is a 400, an unknown version a
/// 505. The target may be origin-form (`/metrics`) or absolute-form
/// (`http://host:port/metrics`), which RFC 9112 §3.2.2 says a server must
/// accept.
fn answer(head: &[u8]) -> Option<Reply> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let too_large = || Reply::Bytes(response(400, "text/plain", b"request head too large\n"));
    let (method, target) = match request.parse(head) {
        Ok(httparse::Status::Partial) if head.len() <= MAX_HEAD => return None,
        Ok(httparse::Status::Partial) => return Some(too_large()),
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => return Some(too_large()),
        Ok(httparse::Status::Complete(_)) => (
            request.method.unwrap_or_default(),
            request.path.unwrap_or_default(),
        ),
        Err(httparse::Error::Version) => {
            let out = response(505, "text/plain", b"only HTTP/1.0 and HTTP/1.1\n");
            return Some(Reply::Bytes(out));
        }
        Err(e) => {
            let out = response(400, "text/plain", format!("bad request: {e}\n").as_bytes());
            return Some(Reply::Bytes(out));
        }
    };
    let path = origin_path(target);
    Some(match (method, path) {
        ("GET" | "HEAD", "/metrics") => Reply::Metrics {
            head_only: method == "HEAD",
        },
        ("GET" | "HEAD", _) => {
            Reply::Bytes(response(404, "text/plain", b"not found: try /metrics\n"))
        }
        _ => Reply::Bytes(response(405, "text/plain", b"only GET\n")),
    })
}

/// What a complete request head asks for.
enum Reply {
    /// This answer, ready to write.
    Bytes(Vec<u8>),
    /// The metrics (only the head of the answer for a HEAD request).
    Metrics { head_only: bool },
}

/// The 200 answer carrying `text` (its head alone for a HEAD request).
fn metrics_response(text: &str, head_only: bool) -> Vec<u8> {
    let mut out = response(200, OPENMETRICS, text.as_bytes());
    if head_only {
        let at = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(out.len(), |p| p + 4);
        out.truncate(at);
    }
    out
}

/// The path of a request target, without its query: `/metrics` from
/// `/metrics?x=1` or from `http://127.0.0.1:9100/metrics`.
fn origin_path(target: &str) -> &str {
    let origin = match target.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => {
            rest.find('/').map_or("/", |at| &rest[at..])
        }
        _ => target,
    };
    origin.split('?').next().unwrap_or_default()
}

/// The content type of the OpenMetrics text exposition.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An HTTP/1.1 response that closes the connection.
fn response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        505 => "HTTP Version Not Supported",
        _ => "Service Unavailable",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n{}\r\n",
        body.len(),
        if status == 405 {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        }
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The `reactor` label of per-reactor metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct Reactor {
    reactor: String,
}

/// A histogram with fixed buckets (events per poll, handshake latency),
/// as OpenMetrics writes one.
#[derive(Debug)]
struct Fixed {
    /// Each bucket's upper bound (the last is +Inf) and its own count.
    buckets: Vec<(f64, u64)>,
    /// The observations added up.
    sum: f64,
    /// How many observations.
    count: u64,
}

impl Fixed {
    /// One reactor's events per poll.
    fn events_per_poll(c: &Counters) -> Fixed {
        let buckets = c
            .events_per_poll
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let bound = if i + 1 == POLL_BUCKETS {
                    f64::INFINITY
                } else {
                    (1u64 << i) as f64
                };
                (bound, *n)
            })
            .collect();
        Fixed {
            buckets,
            sum: c.events as f64,
            // Counted when a turn ends, as the buckets are (`polls` also
            // counts the poll whose batch is being handled now).
            count: c.events_per_poll.iter().sum(),
        }
    }

    /// One reactor's TLS handshake latencies, in seconds.
    fn handshake_seconds(c: &Counters) -> Fixed {
        let bounds = HANDSHAKE_BUCKETS_US
            .iter()
            .map(|us| *us as f64 / 1e6)
            .chain([f64::INFINITY]);
        Fixed {
            buckets: bounds.zip(c.tls.buckets).collect(),
            sum: c.tls.sum_us as f64 / 1e6,
            count: c.tls.buckets.iter().sum(),
        }
    }

    fn encode(&self, encoder: &mut MetricEncoder) -> Result<(), std::fmt::Error> {
        // Per-bucket counts; the encoder makes them cumulative.
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.sum,
            self.count,
            &self.buckets,
            None,
        )
    }
}

/// Histograms of one kind: one without labels for one reactor, one per
/// `reactor` label with `--threads`, like every other series.
#[derive(Debug)]
struct FixedFamily(Vec<(Option<Reactor>, Fixed)>);

impl FixedFamily {
    /// Each reactor's histogram, made by `of`.
    fn of(per_reactor: &[Counters], of: fn(&Counters) -> Fixed) -> FixedFamily {
        let labelled = per_reactor.len() > 1;
        FixedFamily(
            per_reactor
                .iter()
                .enumerate()
                .map(|(k, c)| {
                    let label = labelled.then(|| Reactor {
                        reactor: k.to_string(),
                    });
                    (label, of(c))
                })
                .collect(),
        )
    }
}

impl prometheus_client::metrics::TypedMetric for FixedFamily {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for FixedFamily {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (label, histogram) in &self.0 {
            match label {
                Some(label) => histogram.encode(&mut encoder.encode_family(label)?)?,
                None => histogram.encode(&mut encoder)?,
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The metrics text for `per_reactor` (one entry: no reactor label).
pub fn render(per_reactor: &[Counters]) -> String {
    let mut registry = Metrics::with_prefix("echoloop");
    let labelled = per_reactor.len() > 1;
    let udp = per_reactor.iter().any(|c| c.udp);
    let faults = per_reactor.iter().any(|c| c.faults);
    let tls = per_reactor.iter().any(|c| c.tls.on);
    for series in SERIES
        .iter()
        .filter(|s| (udp || !s.udp) && (faults || !s.faults) && (tls || !s.tls))
    {
        register(&mut registry, series, per_reactor, labelled);
    }
    registry.register(
        "events_per_poll",
        "Readiness events per poll that returned",
        FixedFamily::of(per_reactor, Fixed::events_per_poll),
    );
    if tls {
        registry.register_with_unit(
            "tls_handshake",
            "TLS handshakes completed, by time from accept to the peer's Finished",
            Unit::Seconds,
            FixedFamily::of(per_reactor, Fixed::handshake_seconds),
        );
    }
    let mut text = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// One series: its name (after `echoloop_`), help, unit, whether it is a
/// gauge (else a counter), whether only with `--udp`, only with faults
/// injected, only with `--tls`, and its figure.
struct Series {
    name: &'static str,
    help: &'static str,
    bytes: bool,
    gauge: bool,
    udp: bool,
    faults: bool,
    tls: bool,
    figure: fn(&Counters) -> u64,
}

/// A counter.
const fn counter(name: &'static str, help: &'static str, figure: fn(&Counters) -> u64) -> Series {
    Series {
        name,
        help,
        bytes: false,
        gauge: false,
        udp: false,
        faults: false,
        tls: false,
        figure,
    }
}

/// A TLS counter, shown only with `--tls`.
const fn tls(name: &'static str, help: &'static str, figure: fn(&Counters) -> u64) -> Series {
    Series {
        tls: true,
        ..counter(name, help, figure)
    }
}

/// A counter of injected faults, shown only when faults are on.
const fn injected(name: &'static str, help: &'static str, figure: fn(&Counters) -> u64) -> Series {
    Series {
        faults: true,
        ..counter(name, help, figure)
    }
}

/// Every series, in the order they are written.
const SERIES: [Series; 33] = [
    counter("connections_accepted", "Connections accepted", |c| {
        c.accepted
    }),
    counter(
        "connections_closed",
        "Connections closed, for any reason",
        |c| c.closed,
    ),
    counter(
        "connections_failed",
        "Connections closed by an error on them",
        |c| c.failed,
    ),
    counter(
        "connections_idle_closed",
        "Connections closed by --idle-timeout",
        |c| c.idle_closed,
    ),
    Series {
        bytes: true,
        ..counter("received", "Bytes read from peers", |c| c.bytes_in)
    },
    Series {
        bytes: true,
        ..counter("sent", "Bytes written back to peers", |c| c.bytes_out)
    },
    counter("reads", "read calls that returned data", |c| c.reads),
    counter("writes", "write calls that took data", |c| c.writes),
    counter(
        "would_blocks",
        "Reads, writes and accepts that said WouldBlock",
        |c| c.would_blocks,
    ),
    counter(
        "budget_exhaustions",
        "Read passes or accept loops stopped by their per-turn budget",
        |c| c.budget_spent,
    ),
    counter(
        "accept_errors",
        "Accepts that failed (out of fds or memory)",
        |c| c.accept_errors,
    ),
    counter(
        "stale_events",
        "Events for tokens that no longer belong to anything",
        |c| c.stale_events,
    ),
    counter("polls", "Calls to poll", |c| c.polls),
    counter("events", "Readiness events delivered", |c| c.events),
    Series {
        gauge: true,
        ..counter("connections_open", "Connections open now", |c| c.open())
    },
    Series {
        gauge: true,
        ..counter(
            "connections_peak",
            "The most connections open at once",
            |c| c.peak_open,
        )
    },
    Series {
        gauge: true,
        bytes: true,
        ..counter("owed", "Bytes owed to peers now", |c| c.owed_now)
    },
    Series {
        udp: true,
        ..counter("udp_datagrams_received", "UDP datagrams received", |c| {
            c.udp_in
        })
    },
    Series {
        udp: true,
        ..counter("udp_datagrams_sent", "UDP datagrams sent back", |c| {
            c.udp_out
        })
    },
    Series {
        udp: true,
        ..counter(
            "udp_datagrams_dropped",
            "UDP datagrams not sent back: the send would block",
            |c| c.udp_dropped,
        )
    },
    Series {
        udp: true,
        ..counter(
            "udp_datagrams_looped",
            "UDP datagrams not answered because they would feed a loop",
            |c| c.udp_looped,
        )
    },
    Series {
        udp: true,
        ..counter(
            "udp_datagrams_limited",
            "UDP datagrams over --udp-rate-limit, not answered",
            |c| c.udp_limited,
        )
    },
    injected(
        "injected_delays",
        "Read passes whose echo was held back on purpose (--delay, --jitter)",
        |c| c.injected_delays,
    ),
    injected(
        "injected_closes",
        "Connections closed cleanly on purpose (--close-after)",
        |c| c.injected_closes,
    ),
    injected(
        "injected_resets",
        "Connections reset on purpose (--reset-after)",
        |c| c.injected_resets,
    ),
    injected(
        "injected_stalls",
        "Connections no longer read on purpose (--stall-after)",
        |c| c.injected_stalls,
    ),
    injected(
        "injected_drops",
        "UDP datagrams not answered on purpose (--drop)",
        |c| c.injected_drops,
    ),
    tls(
        "tls_handshakes_full",
        "TLS handshakes completed in full",
        |c| c.tls.full,
    ),
    tls(
        "tls_handshakes_resumed",
        "TLS handshakes that resumed a session (a ticket or a session ID)",
        |c| c.tls.resumed,
    ),
    tls(
        "tls_handshakes_refused",
        "TLS handshakes refused: a handshake error (a bad hello, a certificate refused, not TLS)",
        |c| c.tls.refused,
    ),
    tls(
        "tls_handshakes_aborted",
        "TLS handshakes the peer abandoned, closing or resetting before the end",
        |c| c.tls.aborted,
    ),
    tls(
        "tls_handshakes_timed_out",
        "TLS handshakes unfinished at --idle-timeout",
        |c| c.tls.timed_out,
    ),
    tls(
        "tls_truncated",
        "TLS connections whose peer closed TCP without a close_notify",
        |c| c.tls.truncated,
    ),
];

/// Registers one series: a counter or a gauge, per reactor when labelled.
fn register(registry: &mut Metrics, series: &Series, per_reactor: &[Counters], labelled: bool) {
    let figure = series.figure;
    let total: u64 = per_reactor.iter().map(figure).sum();
    let label = |k: usize| Reactor {
        reactor: k.to_string(),
    };
    macro_rules! add {
        ($metric:expr) => {
            match series.bytes {
                true => registry.register_with_unit(series.name, series.help, Unit::Bytes, $metric),
                false => registry.register(series.name, series.help, $metric),
            }
        };
    }
    match (series.gauge, labelled) {
        (false, false) => {
            let c = Counter::<u64>::default();
            c.inc_by(total);
            add!(c);
        }
        (true, false) => {
            let g = Gauge::<i64>::default();
            g.set(total as i64);
            add!(g);
        }
        (false, true) => {
            let family = Family::<Reactor, Counter<u64>>::default();
            for (k, c) in per_reactor.iter().enumerate() {
                family.get_or_create(&label(k)).inc_by(figure(c));
            }
            add!(family);
        }
        (true, true) => {
            let family = Family::<Reactor, Gauge<i64>>::default();
            for (k, c) in per_reactor.iter().enumerate() {
                family.get_or_create(&label(k)).set(figure(c) as i64);
            }
            add!(family);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With made-up instants: a scraper that connects and says nothing is
    /// closed at SCRAPE_TIMEOUT, not before, and the poll is told when.
    #[test]
    fn a_silent_scraper_is_closed_at_the_timeout() {
        let poll = mio::Poll::new().unwrap();
        let mut exporter = Exporter::bind("127.0.0.1:0".parse().unwrap(), poll.registry()).unwrap();
        let mut peer = std::net::TcpStream::connect(exporter.local_addr().unwrap()).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let t0 = Instant::now();
        let render = || Some(String::new());
        // The handshake is done by the kernel; poll for the accept.
        let end = t0 + Duration::from_secs(30);
        while exporter.scrapes.is_empty() {
            assert!(Instant::now() < end, "never accepted");
            exporter.on_event(poll.registry(), METRICS, t0, &render);
        }
        assert_eq!(exporter.next_deadline(), Some(t0 + SCRAPE_TIMEOUT));
        exporter.on_timers(t0 + SCRAPE_TIMEOUT - Duration::from_nanos(1));
        assert_eq!(exporter.scrapes.len(), 1, "not a nanosecond early");
        exporter.on_timers(t0 + SCRAPE_TIMEOUT);
        assert_eq!(exporter.scrapes.len(), 0, "closed at the timeout");
        assert_eq!(exporter.next_deadline(), None);
        let mut buf = [0u8; 8];
        assert_eq!(peer.read(&mut buf).unwrap(), 0, "the scraper sees EOF");
    }

    /// The answers, by request head.
    #[test]
    fn answers_by_request_head() {
        let status = |head: &[u8]| match answer(head) {
            Some(Reply::Bytes(out)) => String::from_utf8_lossy(&out[..12]).into_owned(),
            Some(Reply::Metrics { head_only }) => {
                let out = metrics_response("# EOF\n", head_only);
                String::from_utf8_lossy(&out[..12]).into_owned()
            }
            None => "waiting".into(),
        };
        assert_eq!(status(b"GET /metrics HTTP/1.1\r\n\r\n"), "HTTP/1.1 200");
        assert_eq!(status(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), "HTTP/1.1 200");
        assert_eq!(
            status(b"GET /metrics HTTP/1.1\nHost: x\n\n"),
            "HTTP/1.1 200",
            "bare LF"
        );
        assert_eq!(
            status(b"GET http://127.0.0.1:9/metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            "HTTP/1.1 200",
            "absolute-form"
        );
        assert_eq!(status(b"GET http://h HTTP/1.1\r\n\r\n"), "HTTP/1.1 404");
        assert_eq!(status(b"GET /other HTTP/1.1\r\n\r\n"), "HTTP/1.1 404");
        assert_eq!(status(b"DELETE /metrics HTTP/1.1\r\n\r\n"), "HTTP/1.1 405");
        assert_eq!(status(b"GET /metrics\r\n\r\n"), "HTTP/1.1 400", "HTTP/0.9");
        assert_eq!(status(b"GET /metrics HTTP/1.9\r\n\r\n"), "HTTP/1.1 505");
        assert_eq!(status(b"GET /metrics HTTP/1.1junk\r\n\r\n"), "HTTP/1.1 400");
        assert_eq!(
            status(b"GET /metrics HTTP/1.1\r\nBad Header\r\n\r\n"),
            "HTTP/1.1 400"
        );
        assert_eq!(status(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), "waiting");
        let long = [
            b"GET /metrics HTTP/1.1\r\nX: ".as_slice(),
            &[b'a'; MAX_HEAD],
        ]
        .concat();
        assert_eq!(status(&long), "HTTP/1.1 400");
    }
}
