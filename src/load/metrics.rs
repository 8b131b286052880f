//! `load --metrics ADDR`: the generator's own Prometheus metrics, served
//! during the run so that a dashboard shows generator and target side by
//! side (k6's outputs, fortio's UI).
//!
//! The figures are the live line's, taken at each tick (every 200 ms,
//! every thread's merged): [`render`] turns them into the OpenMetrics
//! text. The HTTP side is the server's own [`Exporter`], run by a small
//! loop on a thread of its own ([`Endpoint`]): the generator's loops are
//! not touched, and a slow scraper never holds them up (it waits for the
//! text behind a mutex held only to copy a string).
//!
//! The series (all `echoloop_load_…`): `messages_total` (answered, or
//! with `--no-reply` written, in the measured window), `errors_total`
//! by `kind`, `in_flight`, `due_total` (open loop: the offered load;
//! `rate()` of it beside `rate(messages_total)` is offered against
//! achieved), `latency_seconds` and `send_lag_seconds` (open loop)
//! histograms, and `measured_seconds`.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use hdrhistogram::Histogram;
use mio::{Events, Poll, Token, Waker};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::outcome::Progress;
use crate::shared::exporter::{Exporter, Fixed, Tokens};
use crate::shared::net::interrupted;

/// The bucket bounds of the latency and send-lag histograms, µs (then +Inf).
const BUCKETS_US: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// The `kind` label of `errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

/// The metrics text for the live figures `p`.
pub fn render(p: &Progress) -> String {
    let mut registry = Registry::with_prefix("echoloop_load");
    let messages = Counter::<u64>::default();
    messages.inc_by(p.messages);
    registry.register(
        "messages",
        "Messages answered in the measured window (with --no-reply: written)",
        messages,
    );
    let measured = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    measured.set(p.measured.as_secs_f64());
    registry.register_with_unit(
        "measured",
        "Time measured so far (0 while connecting or warming up)",
        Unit::Seconds,
        measured,
    );
    if let Some(f) = &p.figures {
        let errors = Family::<Kind, Counter<u64>>::default();
        for (kind, n) in f.errors.by_kind() {
            errors.get_or_create(&Kind { kind }).inc_by(n);
        }
        registry.register("errors", "Errors in the measured window, by kind", errors);
        let in_flight = Gauge::<i64>::default();
        in_flight.set(i64::try_from(f.in_flight).unwrap_or(i64::MAX));
        registry.register(
            "in_flight",
            "Messages sent inside the window and not answered yet",
            in_flight,
        );
        if let Some(due) = f.due {
            let counter = Counter::<u64>::default();
            counter.inc_by(due);
            registry.register(
                "due",
                "Open loop: messages due so far in the window (the offered load)",
                counter,
            );
        }
        registry.register_with_unit(
            "latency",
            "Latency of each message measured (open loop: from when it was due)",
            Unit::Seconds,
            seconds(&f.latency),
        );
        if let Some(lag) = &f.lag {
            registry.register_with_unit(
                "send_lag",
                "Open loop: how late each message was handed out",
                Unit::Seconds,
                seconds(lag),
            );
        }
    }
    let mut text = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// A histogram of µs as Prometheus buckets of seconds.
fn seconds(h: &Histogram<u64>) -> Fixed {
    let mut counts = [0u64; BUCKETS_US.len() + 1];
    let mut sum_us = 0.0;
    for v in h.iter_recorded() {
        let value = v.value_iterated_to();
        let n = v.count_at_value();
        let bucket = BUCKETS_US
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(BUCKETS_US.len());
        counts[bucket] += n;
        sum_us += value as f64 * n as f64;
    }
    let bounds = BUCKETS_US
        .iter()
        .map(|us| *us as f64 / 1e6)
        .chain([f64::INFINITY]);
    Fixed {
        buckets: bounds.zip(counts).collect(),
        sum: sum_us / 1e6,
        count: h.len(),
    }
}

/// The waker's token in the endpoint's loop.
const WAKE: Token = Token(0);
/// The exporter's tokens in it.
const TOKENS: Tokens = Tokens {
    listener: Token(1),
    first_scrape: 2,
};

/// The endpoint: a loop on its own thread that serves the latest text.
#[derive(Debug)]
pub struct Endpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    text: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl Endpoint {
    /// Listens on `addr` (here, so that a bad address fails the run at
    /// once) and starts serving an empty text.
    pub fn serve(addr: SocketAddr) -> io::Result<Endpoint> {
        let poll = Poll::new()?;
        let exporter = Exporter::bind(addr, poll.registry(), TOKENS)?;
        let addr = exporter.local_addr()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let text = Arc::new(Mutex::new(String::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("load metrics".into())
            .spawn({
                let (text, stop) = (Arc::clone(&text), Arc::clone(&stop));
                move || run(poll, exporter, &text, &stop)
            })?;
        Ok(Endpoint {
            addr,
            text,
            stop,
            waker,
            thread: Some(thread),
        })
    }

    /// What scrapes get from now on.
    pub fn set(&self, text: String) {
        match self.text.lock() {
            Ok(mut held) => *held = text,
            Err(poisoned) => *poisoned.into_inner() = text,
        }
    }
}

impl Drop for Endpoint {
    /// Stops the loop and waits for it (scrapes in progress are dropped).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.waker.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The endpoint's loop: scrapes in, the latest text out, until stopped.
fn run(mut poll: Poll, mut exporter: Exporter, text: &Mutex<String>, stop: &AtomicBool) {
    let mut events = Events::with_capacity(64);
    let render = || match text.lock() {
        Ok(held) => Some(held.clone()),
        Err(poisoned) => Some(poisoned.into_inner().clone()),
    };
    while !stop.load(Ordering::Relaxed) {
        let timeout = exporter
            .next_deadline()
            .map(|at| at.saturating_duration_since(Instant::now()));
        match poll.poll(&mut events, timeout) {
            Err(e) if interrupted(&e) => continue,
            Err(e) => {
                log::warn!("--metrics: the endpoint's poll failed, it stops: {e}");
                return;
            }
            Ok(()) => {}
        }
        let now = Instant::now();
        for event in &events {
            if event.token() != WAKE {
                exporter.on_event(poll.registry(), event.token(), now, &render);
            }
        }
        exporter.on_timers(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::outcome::{Errors, Figures};

    /// The text has every series, the errors by kind, and the latency
    /// histogram's buckets from the HdrHistogram (cumulative, in seconds).
    #[test]
    fn the_text_names_every_figure() {
        let mut latency = Histogram::<u64>::new(3).unwrap();
        latency.record_n(80, 3).unwrap();
        latency.record(3_000).unwrap();
        let p = Progress {
            messages: 4,
            figures: Some(Box::new(Figures {
                errors: Errors {
                    timeout: 2,
                    ..Errors::default()
                },
                in_flight: 7,
                due: Some(5),
                latency,
                lag: None,
            })),
            ..Progress::default()
        };
        let text = render(&p);
        for line in [
            "echoloop_load_messages_total 4",
            "echoloop_load_errors_total{kind=\"timeout\"} 2",
            "echoloop_load_errors_total{kind=\"reset\"} 0",
            "echoloop_load_in_flight 7",
            "echoloop_load_due_total 5",
            "echoloop_load_latency_seconds_bucket{le=\"0.00005\"} 0",
            "echoloop_load_latency_seconds_bucket{le=\"0.0001\"} 3",
            "echoloop_load_latency_seconds_bucket{le=\"0.005\"} 4",
            "echoloop_load_latency_seconds_count 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        assert!(!text.contains("send_lag"), "closed loop: no lag");
    }
}
