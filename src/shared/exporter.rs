//! A Prometheus exporter's HTTP side: a listener and the scrapes in
//! progress, as one part of its owner's `mio` loop. The server serves its
//! `--metrics` with it from inside the echo loop, and the load generator
//! from a loop of its own. Each scrape is a tiny HTTP/1.1 exchange with
//! its own token: read the request head, answer once, close.
//!
//! A scraper gets no more than an echo peer would: its request head may be
//! 8 KiB at most (else 400), it has [`SCRAPE_TIMEOUT`] to finish (else it
//! is closed), and at most [`MAX_SCRAPES`] are open at once (more get 503).
//! What the text says is the owner's: `render` makes it when a scrape asks.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use slab::Slab;

use super::duration::deadline_after;
use super::net::{interrupted, would_block};

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
    tokens: Tokens,
}

/// Where an exporter's sources sit in its owner's poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tokens {
    /// The listener's token.
    pub listener: Token,
    /// Scrape `k` is `Token(first_scrape + k)`.
    pub first_scrape: usize,
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
    /// Its listener is `tokens.listener` in the poll, and scrape `k` is
    /// `Token(tokens.first_scrape + k)` (the owner's token plan says where
    /// they fit).
    pub fn bind(addr: SocketAddr, registry: &Registry, tokens: Tokens) -> io::Result<Exporter> {
        let std_listener = super::net::listen(addr, 64)?;
        let mut listener = TcpListener::from_std(std_listener);
        registry.register(&mut listener, tokens.listener, Interest::READABLE)?;
        Ok(Exporter {
            listener,
            scrapes: Slab::new(),
            tokens,
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
        if token == self.tokens.listener {
            self.accept(registry, now);
            return;
        }
        let Some(key) = token.0.checked_sub(self.tokens.first_scrape) else {
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
            let token = Token(self.tokens.first_scrape + entry.key());
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

/// A histogram with fixed buckets, as OpenMetrics writes one (the
/// server's events per poll and handshake latency, the load generator's
/// latency and send lag).
#[derive(Debug)]
pub struct Fixed {
    /// Each bucket's upper bound (the last is +Inf) and its own count.
    pub buckets: Vec<(f64, u64)>,
    /// The observations added up.
    pub sum: f64,
    /// How many observations.
    pub count: u64,
}

impl Fixed {
    /// Writes it as one histogram (the encoder makes the counts
    /// cumulative).
    pub fn encode(&self, encoder: &mut MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.sum,
            self.count,
            &self.buckets,
            None,
        )
    }
}

/// One `Fixed` histogram as a metric of its own.
impl prometheus_client::metrics::TypedMetric for Fixed {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Fixed {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        Fixed::encode(self, &mut encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
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
        let tokens = Tokens {
            listener: Token(0),
            first_scrape: 1,
        };
        let mut exporter =
            Exporter::bind("127.0.0.1:0".parse().unwrap(), poll.registry(), tokens).unwrap();
        let mut peer = std::net::TcpStream::connect(exporter.local_addr().unwrap()).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let t0 = Instant::now();
        let render = || Some(String::new());
        // The handshake is done by the kernel; poll for the accept.
        let end = t0 + Duration::from_secs(30);
        while exporter.scrapes.is_empty() {
            assert!(Instant::now() < end, "never accepted");
            exporter.on_event(poll.registry(), Token(0), t0, &render);
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
