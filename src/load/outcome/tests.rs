//! The outcome's figures and both renderings, from made-up runs.

use super::*;
use crate::load::config::Config;
use crate::load::datagrams::Jitter;

/// What an open-loop run reports about its schedule.
#[test]
fn schedule_kept_and_not_kept() {
    let mut lag = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
    lag.record(20).unwrap();
    let kept = Schedule {
        due: 10,
        sent: 10,
        passes: 1,
        lag: lag.clone(),
    };
    assert!(kept.kept());
    assert_eq!(kept.unsent(), 0);
    let short = Schedule {
        due: 10,
        sent: 7,
        passes: 1,
        lag: lag.clone(),
    };
    assert!(!short.kept());
    assert_eq!(short.unsent(), 3);
    assert!(
        short
            .line()
            .starts_with("due 10, sent 7 in 1 passes, not sent 3; send lag µs p50 20")
    );
    lag.record(5_000).unwrap();
    lag.record(5_000).unwrap();
    let late = Schedule {
        due: 3,
        sent: 3,
        passes: 1,
        lag,
    };
    assert!(
        !late.kept(),
        "2 of 3 sends 5 ms late is not keeping the schedule"
    );
    assert_eq!(
        late.shortfall(),
        "0 of 3 due messages not sent (0.0%), 2 sends more than 1 ms late (66.7%, p99 5003 µs)"
    );
    // One outlier among 20,000 on-time sends keeps the schedule.
    let mut lag = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
    lag.record_n(3, 19_999).unwrap();
    lag.record(4_500).unwrap();
    let outlier = Schedule {
        due: 20_000,
        sent: 20_000,
        passes: 1,
        lag,
    };
    assert!(outlier.kept());
}

fn report(established: usize, errors: Errors, messages: u64) -> Summary {
    Summary {
        tls: None,
        connections: 2,
        established,
        size: 64,
        duration: Duration::from_secs(1),
        messages,
        bytes_sent: 0,
        bytes_received: 0,
        latency: Histogram::new(3).unwrap(),
        connects: 0,
        connect_latency: Histogram::new(3).unwrap(),
        errors,
        cpu: Duration::ZERO,
        cpu_wall: Duration::ZERO,
        per_thread: vec![0.0],
        datagrams: None,
        ending: None,
        segments: Vec::new(),
        thresholds: Vec::new(),
        first_connect_error: Some("connection refused".into()),
        fate: Fate::default(),
        service: None,
        schedule: None,
    }
}

/// Two threads' summaries as one: counts and histograms add up, the
/// schedule too, and each thread keeps its msgs/s.
#[test]
fn merged_summaries_add_up() {
    let mut a = report(2, Errors::default(), 10);
    a.latency.record(100).unwrap();
    a.per_thread = vec![10.0];
    a.cpu = Duration::from_millis(30);
    let mut b = report(
        1,
        Errors {
            reset: 2,
            ..Errors::default()
        },
        5,
    );
    b.latency.record(300).unwrap();
    b.latency.record(300).unwrap();
    b.per_thread = vec![5.0];
    b.cpu = Duration::from_millis(20);
    b.duration = Duration::from_secs(2);
    let all = Summary::merge(vec![a, b]).unwrap();
    assert_eq!((all.connections, all.established, all.messages), (4, 3, 15));
    assert_eq!(
        (all.latency.len(), all.latency.max()),
        (3, all.latency.highest_equivalent(300))
    );
    assert_eq!(all.errors.reset, 2);
    assert_eq!(all.duration, Duration::from_secs(2));
    assert_eq!(all.per_thread, [10.0, 5.0]);
    assert_eq!(all.cpu, Duration::from_millis(50));
    assert!((all.busy() - 0.05 / 4.0).abs() < 1e-9, "{}", all.busy());
    assert!(Summary::merge(Vec::new()).is_none());
}

/// The verdict and its exit code, in the documented order.
#[test]
fn failure_verdicts_and_exit_codes() {
    let addr: Endpoint = "127.0.0.1:9".parse().unwrap();
    let refused = Errors {
        connect: 2,
        ..Errors::default()
    };
    let f = report(0, refused, 0).failure(&addr).unwrap();
    assert_eq!(
        (f.exit_code(), f.to_string().as_str()),
        (7, "could not connect to 127.0.0.1:9: connection refused")
    );
    let reset = Errors {
        reset: 1,
        ..Errors::default()
    };
    let f = report(2, reset, 10).failure(&addr).unwrap();
    assert_eq!(
        (f.exit_code(), f.to_string().as_str()),
        (
            1,
            "1 errors (connect 0, closed 0, reset 1, timeout 0, mismatch 0)"
        )
    );
    let f = report(2, Errors::default(), 0).failure(&addr).unwrap();
    assert_eq!(
        (f.exit_code(), f.to_string().as_str()),
        (1, "no message was echoed")
    );
    assert_eq!(report(2, Errors::default(), 10).failure(&addr), None);
}

/// Busy is the CPU over the wall time it was read across, and never
/// above 1: a late last turn or the CPU clock's step (1.016 on a 2 s
/// window before) is not a thread busier than the clock. With no
/// message there is no CPU per message.
#[test]
fn busy_is_bounded_and_per_message_needs_a_message() {
    let mut r = report(2, Errors::default(), 0);
    r.cpu = Duration::from_millis(2032);
    r.cpu_wall = Duration::from_millis(2000);
    assert_eq!(r.busy(), 1.0);
    r.cpu = Duration::from_millis(900);
    r.cpu_wall = Duration::from_millis(1200);
    assert!(
        (r.busy() - 0.75).abs() < 1e-9,
        "over the readings' wall time"
    );
    assert_eq!(r.cpu_us_per_msg(), None);
    assert!(r.to_json(false).contains("\"cpu_us_per_msg\":null"));
    r.messages = 300;
    assert_eq!(r.cpu_us_per_msg(), Some(3000.0));
}

/// The busy warning names the cause it can see in the configuration:
/// a spin, a wake-up per message, or the generator's own limit.
#[test]
fn busy_advice_names_the_cause() {
    let mut busy = report(2, Errors::default(), 10);
    busy.per_thread = vec![1.0];
    busy.duration = Duration::from_secs(1);
    busy.cpu = Duration::from_millis(950);
    let closed = Config::default();
    let said = busy.busy_advice(&closed.shape()).unwrap();
    assert!(
        said.starts_with("the generator was busy 95% of its 1 thread(s)"),
        "{said}"
    );
    assert!(
        said.ends_with("(try --threads, or fewer connections per thread)"),
        "{said}"
    );
    let open = Config {
        rate: Some(crate::load::Plan::Flat(50_000.0)),
        ..Config::default()
    };
    assert!(
        busy.busy_advice(&open.shape())
            .unwrap()
            .contains("a longer --coalesce")
    );
    let each = Config {
        coalesce: Duration::ZERO,
        ..open.clone()
    };
    assert!(
        busy.busy_advice(&each.shape())
            .unwrap()
            .contains("with --coalesce 0 it wakes for every one of 50000 msgs/s")
    );
    let spinning = Config {
        spin: Some(Duration::from_micros(300)),
        ..each
    };
    assert!(
        busy.busy_advice(&spinning.shape())
            .unwrap()
            .contains("it spins 300µs before each")
    );
    busy.cpu = Duration::from_millis(500);
    assert_eq!(busy.busy_advice(&spinning.shape()), None, "50% is not busy");
}

/// The live line says "connecting" before the clock starts and
/// "warming up" only inside a --warmup; threads merge to the earliest.
#[test]
fn the_live_line_names_the_stage() {
    let t0 = std::time::Instant::now();
    let later = t0 + Duration::from_secs(1);
    let end = later + Duration::from_secs(1);
    assert_eq!(RunStage::at(t0, false, later, end), RunStage::Connecting);
    assert_eq!(RunStage::at(t0, true, later, end), RunStage::WarmingUp);
    assert_eq!(RunStage::at(later, true, later, end), RunStage::Measuring);
    assert_eq!(RunStage::at(end, true, later, end), RunStage::Settling);
    let connecting = Progress {
        stage: RunStage::Connecting,
        ..Progress::default()
    };
    assert_eq!(connecting.line(), "connecting...  errors 0");
    let warming = Progress {
        stage: RunStage::WarmingUp,
        ..Progress::default()
    };
    assert_eq!(warming.line(), "warming up...  errors 0");
    assert!(Progress::default().line().starts_with("elapsed "));
    assert!(RunStage::Connecting < RunStage::WarmingUp);
    assert!(RunStage::WarmingUp < RunStage::Measuring);
}

/// RFC 3550's jitter: steady transit times give none; alternating
/// transits 100 µs apart move the estimate a sixteenth of the way each
/// time, toward 100 µs.
#[test]
fn jitter_follows_rfc_3550() {
    let t0 = std::time::Instant::now();
    let us = Duration::from_micros;
    let mut steady = Jitter::default();
    for k in 0..10 {
        let sent = t0 + us(1000 * k);
        steady.on_reply(sent, sent + us(50));
    }
    assert_eq!(steady.estimate_ns, 0.0);
    assert!(!steady.known());
    let mut varying = Jitter::default();
    varying.on_reply(t0, t0 + us(50));
    varying.on_reply(t0 + us(1000), t0 + us(1150));
    assert_eq!(varying.estimate_ns, 100_000.0 / 16.0);
    for k in 2..400u64 {
        let sent = t0 + us(1000 * k);
        varying.on_reply(sent, sent + us(if k % 2 == 0 { 50 } else { 150 }));
    }
    assert!(
        (varying.estimate_ns - 100_000.0).abs() < 1.0,
        "{}",
        varying.estimate_ns
    );
    let figures = DatagramFigures {
        jitter_sum_ns: 300_000.0,
        jitter_sockets: 3,
        ..DatagramFigures::default()
    };
    assert_eq!(figures.jitter_us(), 100.0);
}

/// The connections line: nothing when all were up throughout; who is
/// up, who died and when, and reconnects explained, otherwise.
#[test]
fn the_connections_line_tells_their_fate() {
    let all_up = Fate {
        up_at_end: 50,
        ..Fate::default()
    };
    assert_eq!(all_up.line(50, 50), None);
    let mut fate = Fate {
        up_at_end: 16,
        ..Fate::default()
    };
    for ms in [20, 400, 910] {
        fate.death(Duration::from_millis(ms));
    }
    assert_eq!(
        fate.line(50, 82).unwrap(),
        "16 of 50 up at the end; 3 died between 0.02 s and 0.91 s; \
         82 established for 50 slots (connections opened again)"
    );
    let mut other = Fate::default();
    other.death(Duration::from_millis(5));
    fate.add(&other);
    assert_eq!(
        (fate.died, fate.first_death),
        (4, Some(Duration::from_millis(5)))
    );
    assert_eq!(fate.last_death, Some(Duration::from_millis(910)));
}
