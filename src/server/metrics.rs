//! `--metrics ADDR`: Prometheus metrics at `http://ADDR/metrics`, served
//! by the same loop that echoes. A second protocol in one reactor: the
//! metrics listener is one more token, and each scrape is a tiny HTTP/1.1
//! exchange with its own tokens (far above the echo connections'): read
//! the request head, answer once, close.
//!
//! The HTTP exchange is [`Exporter`]'s (in
//! [`shared::exporter`](crate::shared::exporter), which the load generator's
//! `--metrics` serves with too); this file says what the server counts.
//! Each scrape is handled in the turn's event dispatch like any
//! connection, so a slow or broken scraper cannot hold the echo
//! connections up.
//!
//! The text is the OpenMetrics exposition, written by the Prometheus
//! project's `prometheus-client` crate; only the HTTP exchange is ours.

use super::counters::{Counters, HANDSHAKE_BUCKETS_US, POLL_BUCKETS};
pub use crate::shared::exporter::Exporter;
use crate::shared::exporter::Fixed;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry as Metrics, Unit};

/// The `reactor` label of per-reactor metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct Reactor {
    reactor: String,
}

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
    let proxy = per_reactor.iter().any(|c| c.proxy.on);
    for series in SERIES.iter().filter(|s| {
        (udp || !s.udp) && (faults || !s.faults) && (tls || !s.tls) && (proxy || !s.proxy)
    }) {
        register(&mut registry, series, per_reactor, labelled);
    }
    registry.register(
        "events_per_poll",
        "Readiness events per poll that returned",
        FixedFamily::of(per_reactor, events_per_poll),
    );
    if tls {
        registry.register_with_unit(
            "tls_handshake",
            "TLS handshakes completed, by time from accept to the peer's Finished",
            Unit::Seconds,
            FixedFamily::of(per_reactor, handshake_seconds),
        );
    }
    let mut text = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// One series: its name (after `echoloop_`), help, unit, whether it is a
/// gauge (else a counter), whether only with `--udp`, only with faults
/// injected, only with `--tls`, only with `--proxy-protocol`, and its
/// figure.
struct Series {
    name: &'static str,
    help: &'static str,
    bytes: bool,
    gauge: bool,
    udp: bool,
    faults: bool,
    tls: bool,
    proxy: bool,
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
        proxy: false,
        figure,
    }
}

/// A PROXY protocol counter, shown only with `--proxy-protocol`.
const fn proxy(name: &'static str, help: &'static str, figure: fn(&Counters) -> u64) -> Series {
    Series {
        proxy: true,
        ..counter(name, help, figure)
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
const SERIES: [Series; 40] = [
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
    proxy(
        "proxy_headers_v1",
        "PROXY protocol v1 headers that named a client",
        |c| c.proxy.v1,
    ),
    proxy(
        "proxy_headers_v2",
        "PROXY protocol v2 headers that named a client",
        |c| c.proxy.v2,
    ),
    proxy(
        "proxy_headers_local",
        "PROXY protocol headers that named no client (v2 LOCAL, v1 UNKNOWN): a proxy's health check",
        |c| c.proxy.local,
    ),
    proxy(
        "proxy_refused_bad",
        "Connections closed because they did not begin with a valid PROXY header",
        |c| c.proxy.bad,
    ),
    proxy(
        "proxy_refused_oversized",
        "Connections closed because their PROXY header was longer than allowed",
        |c| c.proxy.oversized,
    ),
    proxy(
        "proxy_refused_timed_out",
        "Connections closed because no whole PROXY header came in time",
        |c| c.proxy.timed_out,
    ),
    proxy(
        "proxy_refused_left",
        "Connections whose peer left before its PROXY header was whole",
        |c| c.proxy.left,
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
