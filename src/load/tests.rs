//! The generator's loop driven by hand: real loopback sockets, but every
//! instant made up by the test, so its timers are checked at their
//! deadlines without waiting for them.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use mio::Events;

use super::config::TICK;
use super::connection::Phase;
use super::engine::Engine;
use super::stream::Generator;
use super::*;
use crate::shared::addr::Endpoint;
use crate::shared::readiness::Readiness;

/// Generous upper bound for the real events a test waits on.
const DEADLINE: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(1);

/// A generator with one closed-loop connection to `addr`.
fn generator(addr: SocketAddr) -> Generator {
    Generator::new(Config {
        addr: Endpoint::Ip(addr),
        connections: 1,
        duration: Duration::from_secs(60),
        timeout: TIMEOUT,
        ..Config::default()
    })
    .unwrap()
}

/// Feeds real events to `turn`, all stamped `now`, until `done` holds.
fn turn_until(g: &mut Generator, now: Instant, done: impl Fn(&Generator) -> bool) {
    let mut events = Events::with_capacity(16);
    let end = Instant::now() + DEADLINE;
    while !done(g) {
        assert!(Instant::now() < end, "timed out waiting for real events");
        g.poll
            .poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        g.turn(now, events.iter().map(Readiness::from));
    }
}

/// A server that accepts (in the kernel's backlog) but never echoes: the
/// first message's echo never comes. The generator notices at the first
/// tick past `--timeout`, not before, and the poll is told when to wake.
#[test]
fn an_echo_that_never_comes_is_a_timeout_at_the_first_tick_past_it() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut g = generator(silent.local_addr().unwrap());
    let t0 = Instant::now();
    let first = g.turn(t0, []);
    assert!(first.is_some(), "the first turn is a tick (the live line)");
    assert_eq!(g.pool.opened, 1);
    turn_until(&mut g, t0, |g| g.pool.established() == 1);
    assert_eq!(
        g.t0,
        Some(t0),
        "the clock started when the connection was up"
    );
    assert_eq!(
        g.pool.conns[0].oldest_in_flight(),
        Some(t0),
        "one message sent at t0"
    );

    // The tick after t0 is at t0 + TICK; nothing else is due before.
    assert_eq!(g.next_deadline(), Some(t0 + TICK));
    let at_timeout = g.turn(t0 + TIMEOUT, []).expect("a tick");
    assert_eq!(at_timeout.errors, 0, "exactly --timeout is not late yet");
    assert_eq!(g.next_deadline(), Some(t0 + TIMEOUT + TICK));
    assert!(g.turn(t0 + TIMEOUT + TICK / 2, []).is_none(), "no tick");
    assert_eq!(g.counters.errors.timeout, 0, "found at ticks only");
    let after = g.turn(t0 + TIMEOUT + TICK, []).expect("a tick");
    assert_eq!((after.errors, g.counters.errors.timeout), (1, 1));
    assert!(g.finished(), "its only connection is gone");
    let report = g.finish();
    assert_eq!((report.messages, report.errors.timeout), (0, 1));
}

/// The end of the window is a deadline like the others: the window closes
/// at `t0 + duration`, not a nanosecond before. A message sent inside it
/// whose echo has not come back is then awaited, for its whole
/// `--timeout` at most, and counted as a timeout of the window's end: it
/// is in a figure, not between them.
#[test]
fn the_window_ends_at_its_deadline_and_its_last_echo_is_awaited() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut g = generator(silent.local_addr().unwrap());
    let t0 = Instant::now();
    g.turn(t0, []);
    turn_until(&mut g, t0, |g| g.pool.established() == 1);
    let end = t0 + Duration::from_secs(60);
    // Keep the only message from timing out inside the window.
    g.config.timeout = Duration::from_secs(3600);
    g.counters.timeout = g.config.timeout;
    g.turn(end - Duration::from_nanos(1), []);
    assert!(!g.finished());
    assert!(!g.window.settling());
    g.turn(end, []);
    assert!(g.window.settling(), "the window has closed");
    assert!(!g.finished(), "its one message is still awaited");
    assert_eq!(g.counters.ending.in_flight, 1);
    let settled_by = end + Duration::from_secs(3600);
    let tick = end - Duration::from_nanos(1) + TICK;
    assert_eq!(g.next_deadline(), Some(tick), "the next tick, no sooner");
    g.turn(settled_by, []);
    assert!(g.finished(), "the message has had its whole --timeout");
    let report = g.finish();
    assert_eq!(report.duration, Duration::from_secs(60));
    assert_eq!((report.messages, report.errors.timeout), (0, 1));
    let ending = report.ending.expect("a stream run says what was in flight");
    assert_eq!(
        (
            ending.in_flight,
            ending.answered,
            ending.timed_out,
            ending.lost
        ),
        (1, 0, 1, 0)
    );
}

/// A server stall at the window's end (the echo of the last message held
/// back until well after it) shows in the figures: the message is
/// counted, with its whole latency, and as answered after the window.
#[test]
fn an_echo_held_past_the_window_counts_with_its_whole_latency() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut s, _) = held.accept().unwrap();
        let mut buf = [0u8; 64];
        s.read_exact(&mut buf).unwrap();
        released.recv().unwrap();
        s.write_all(&buf).unwrap();
        // Nothing more comes: the window had closed when the echo came.
        s.read(&mut buf).unwrap()
    });
    let mut g = generator(addr);
    g.config.timeout = Duration::from_secs(3600);
    g.counters.timeout = g.config.timeout;
    let t0 = Instant::now();
    g.turn(t0, []);
    turn_until(&mut g, t0, |g| g.pool.established() == 1);
    let end = t0 + Duration::from_secs(60);
    g.turn(end, []);
    assert!(g.window.settling() && !g.finished());
    release.send(()).unwrap();
    let late = end + Duration::from_secs(5);
    turn_until(&mut g, late, Generator::finished);
    let report = g.finish();
    assert_eq!(report.messages, 1, "the held message is counted");
    assert_eq!(report.errors.total(), 0);
    assert_eq!(
        report.latency.max(),
        report.latency.highest_equivalent(65_000_000),
        "with its whole latency, from its send at t0"
    );
    let ending = report.ending.unwrap();
    assert_eq!((ending.in_flight, ending.answered), (1, 1));
    assert_eq!(server.join().unwrap(), 0, "nothing sent after the window");
}

/// The counts `set_phase` keeps agree with the phases themselves.
#[track_caller]
fn assert_counts(g: &Generator) {
    let connecting = g
        .pool
        .conns
        .iter()
        .filter(|c| matches!(c.phase, Phase::Connecting { .. }))
        .count();
    let closed = g
        .pool
        .conns
        .iter()
        .filter(|c| matches!(c.phase, Phase::Closed))
        .count();
    assert_eq!((g.pool.connecting, g.pool.closed), (connecting, closed));
}

/// Feeds real events for `token` to `turn`, stamped `now`, until `done`
/// holds; the other tokens' events are kept in `held` (readiness is
/// edge-triggered: an event dropped would never come again).
fn turn_only(
    g: &mut Generator,
    token: usize,
    now: Instant,
    held: &mut Vec<Readiness>,
    done: impl Fn(&Generator) -> bool,
) {
    let mut events = Events::with_capacity(16);
    let end = Instant::now() + DEADLINE;
    let (mine, others): (Vec<_>, Vec<_>) = held.drain(..).partition(|e| e.token.0 == token);
    held.extend(others);
    g.turn(now, mine);
    while !done(g) {
        assert!(Instant::now() < end, "timed out waiting for real events");
        g.poll
            .poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        let (mine, others): (Vec<_>, Vec<_>) = events
            .iter()
            .map(Readiness::from)
            .partition(|e| e.token.0 == token);
        held.extend(others);
        g.turn(now, mine);
    }
}

/// With churn, a slot that has carried its quota connects again at once,
/// so some slot may always be connecting. The clock starts when every
/// slot's *first* connect has ended, even while slot 0 is connecting
/// again (it used to wait for a moment with none connecting, which against
/// a slow acceptor never came, and the run never ended).
#[test]
fn the_clock_starts_when_every_first_connect_has_ended() {
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in echo.incoming() {
            let Ok(mut s) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut g = generator(addr);
    g.config.connections = 2;
    g.config.messages_per_connection = Some(1);
    let mut g = Generator::new(g.config.clone()).unwrap();
    let t0 = Instant::now();
    g.turn(t0, []);
    assert_eq!((g.pool.opened, g.pool.connecting), (2, 2));
    // Slot 0 connects, carries its one message and connects again.
    let mut held = Vec::new();
    turn_only(&mut g, 0, t0, &mut held, |g| {
        g.pool.established() == 1 && matches!(g.pool.conns[0].phase, Phase::Connecting { .. })
    });
    assert_eq!(g.pool.connecting, 2, "slot 0 again, slot 1 still");
    assert_counts(&g);
    assert_eq!(g.t0, None);
    // Slot 1's first connect ends: the clock starts, slot 0 connecting.
    turn_only(&mut g, 1, t0, &mut held, |g| g.pool.established() == 2);
    assert_eq!(g.pool.connecting, 1);
    assert_counts(&g);
    assert_eq!(g.t0, Some(t0));
    let report = g.finish();
    assert_counts(&g);
    assert_eq!(g.pool.closed, 2, "the end closes every slot once");
    assert_eq!(report.errors.total(), 0);
}
