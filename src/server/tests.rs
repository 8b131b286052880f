//! The reactor driven by hand: batches of events and instants made up by
//! the test, to pin down the traps that real timing rarely shows (a stale
//! token, a greedy peer, a flood of connects, a timer at its deadline).
//! Unit tests, so they can look at the ready queue itself.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Token};

use super::tokens::FIRST_CONNECTION;
use super::*;

/// Generous upper bound for anything a test waits on.
const DEADLINE: Duration = Duration::from_secs(30);

/// Writes `msg` and reads exactly its echo back.
fn round_trip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

/// Polls `cond` every few milliseconds until it holds; fails past DEADLINE.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

fn server() -> Server {
    server_with_budget(Config::default().budget)
}

/// A server on 127.0.0.1:0 whose connections read at most `budget` bytes
/// per turn.
fn server_with_budget(budget: usize) -> Server {
    server_on(Config {
        budget,
        ..Config::default()
    })
}

/// A server with `config`, on 127.0.0.1 and a port of the kernel's choice.
fn server_on(config: Config) -> Server {
    Server::bind(Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..config
    })
    .unwrap()
}

/// Polls real events, without handling them, until one satisfies `want`.
#[track_caller]
fn poll_until(server: &mut Server, want: impl Fn(&Readiness) -> bool) {
    let mut events = Events::with_capacity(64);
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        server
            .poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        if events.iter().map(Readiness::from).any(|e| want(&e)) {
            return;
        }
    }
    panic!("the expected event never came");
}

/// Runs the server on a thread, calls `f`, stops it and returns its counters.
fn run_while(mut server: Server, f: impl FnOnce()) -> Counters {
    let handle = server.handle();
    let runner = thread::spawn(move || server.run().unwrap());
    f();
    handle.shutdown().unwrap();
    runner.join().unwrap()
}

/// A connection closes in the middle of a batch, a new peer is waiting, and
/// a later event of the same batch still names the closed connection's
/// token. That event must not reach the newcomer (which will get the same
/// token): accepting waits until the batch is done, so the event finds an
/// empty slot and is dropped.
#[test]
fn stale_event_for_a_reused_token_is_not_delivered_to_the_newcomer() {
    let mut server = server();
    let addr = server.local_addr().unwrap();
    let first = Token(FIRST_CONNECTION);

    let a = TcpStream::connect(addr).unwrap();
    poll_until(&mut server, |e| e.token == LISTENER);
    server.turn(Instant::now(), [Readiness::readable(LISTENER)]);
    assert_eq!(server.stats().accepted, 1);

    drop(a);
    poll_until(&mut server, |e| e.token == first && e.read_closed);
    let mut b = TcpStream::connect(addr).unwrap();
    b.set_read_timeout(Some(DEADLINE)).unwrap();

    let hangup = Readiness {
        read_closed: true,
        ..Readiness::readable(first)
    };
    let stale_error = Readiness {
        error: true,
        read_closed: true,
        ..Readiness::readable(first)
    };
    server.turn(
        Instant::now(),
        [hangup, Readiness::readable(LISTENER), stale_error],
    );

    let stats = *server.stats();
    assert_eq!(stats.closed, 1, "a was closed");
    assert_eq!(stats.stale_events, 1, "the late event hit an empty slot");
    assert_eq!(stats.accepted, 2, "b was accepted after the batch");
    assert_eq!(stats.open(), 1);

    let totals = run_while(server, || round_trip(&mut b, b"I am b"));
    assert_eq!(totals.bytes_out, 6);
    assert_eq!(totals.failed, 0);
}

/// Spurious wake-ups and events for tokens nobody owns change nothing.
#[test]
fn spurious_and_unknown_events_are_ignored() {
    let mut server = server();
    let addr = server.local_addr().unwrap();
    let first = Token(FIRST_CONNECTION);
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    poll_until(&mut server, |e| e.token == LISTENER);
    server.turn(Instant::now(), [Readiness::readable(LISTENER)]);

    let writable = Readiness {
        writable: true,
        readable: false,
        ..Readiness::readable(first)
    };
    let error_without_error = Readiness {
        error: true,
        ..Readiness::readable(first)
    };
    server.turn(
        Instant::now(),
        [
            Readiness::readable(first), // nothing to read: WouldBlock
            writable,                   // nothing owed
            error_without_error,        // take a read: still WouldBlock
            Readiness::readable(Token(FIRST_CONNECTION + 500)),
            Readiness::readable(LISTENER), // nobody waiting: WouldBlock
        ],
    );
    let stats = *server.stats();
    assert_eq!(stats.stale_events, 1);
    assert_eq!((stats.accepted, stats.closed, stats.reads), (1, 0, 0));

    let totals = run_while(server, || round_trip(&mut c, b"fine"));
    assert_eq!(totals.bytes_out, 4);
}

/// Bytes `stream` has sent that the peer's kernel has not yet taken in
/// (SIOCOUTQ); 0 once everything sits in the server's receive buffer.
fn unsent(stream: &TcpStream) -> i32 {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int into the pointer we pass.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    assert_eq!(rc, 0, "ioctl(SIOCOUTQ)");
    n
}

/// A peer with one and a half budgets waiting gets one budget in the turn
/// its event arrives, then goes on the ready queue; a bystander's event in
/// the next batch is served, and the greedy peer gets its next budget in
/// that same turn, after the batch. Before the budget, the first turn read
/// everything however long that took.
#[test]
fn a_greedy_connection_is_requeued_after_its_budget() {
    use std::io::Write;
    // A small budget, so that the test does not depend on how much the
    // kernel's socket buffers hold.
    const BUDGET: usize = 8 * 1024;
    let mut server = server_with_budget(BUDGET);
    let addr = server.local_addr().unwrap();
    let (greedy_token, bystander_token) = (Token(FIRST_CONNECTION), Token(FIRST_CONNECTION + 1));
    let mut greedy = TcpStream::connect(addr).unwrap();
    let mut bystander = TcpStream::connect(addr).unwrap();
    bystander.set_read_timeout(Some(DEADLINE)).unwrap();
    poll_until(&mut server, |e| e.token == LISTENER);
    server.turn(Instant::now(), [Readiness::readable(LISTENER)]);
    assert_eq!(server.stats().accepted, 2);

    let waiting = BUDGET * 3 / 2;
    greedy.write_all(&vec![7u8; waiting]).unwrap();
    wait_until("the bytes to reach the server", || unsent(&greedy) == 0);
    server.turn(Instant::now(), [Readiness::readable(greedy_token)]);
    assert_eq!(
        server.stats().bytes_in,
        BUDGET as u64,
        "one budget, no more"
    );
    assert_eq!(server.stats().budget_spent, 1);
    assert_eq!(server.ready.len(), 1, "the greedy peer waits its turn");

    bystander.write_all(b"ping").unwrap();
    poll_until(&mut server, |e| e.token == bystander_token);
    server.turn(Instant::now(), [Readiness::readable(bystander_token)]);
    assert_eq!(
        server.stats().bytes_in,
        waiting as u64 + 4,
        "both were served"
    );
    assert_eq!(
        server.ready.len(),
        0,
        "the rest fitted in the second budget"
    );

    let mut back = [0u8; 4];
    std::io::Read::read_exact(&mut bystander, &mut back).unwrap();
    assert_eq!(&back, b"ping");
}

/// A flood of new peers waits its turn: one turn accepts at most
/// ACCEPT_BUDGET of them, counts the spent budget, and keeps the listener
/// ready, so the next turn (after the established connections had theirs)
/// accepts the rest without waiting for an edge that will not come.
#[test]
fn a_flood_of_peers_is_accepted_one_budget_per_turn() {
    let mut server = server();
    let addr = server.local_addr().unwrap();
    let flood = ACCEPT_BUDGET + ACCEPT_BUDGET / 2;
    // The kernel completes these handshakes itself; they wait in the backlog.
    let peers: Vec<TcpStream> = (0..flood)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    poll_until(&mut server, |e| e.token == LISTENER);
    server.turn(Instant::now(), [Readiness::readable(LISTENER)]);
    assert_eq!(server.stats().accepted, ACCEPT_BUDGET as u64);
    assert_eq!(server.stats().budget_spent, 1);
    server.turn(Instant::now(), []); // no new event: the listener is still ready
    assert_eq!(server.stats().accepted, flood as u64);
    drop(peers);
}

/// An event for a connection that already waits on the ready queue does
/// not earn it a second budget in the same turn: the ready pass reads it,
/// once.
#[test]
fn a_queued_connection_gets_one_budget_per_turn_even_with_an_event() {
    use std::io::Write;
    // A small budget, so that three of them fit in the kernel's buffers.
    const BUDGET: usize = 8 * 1024;
    let mut server = server_with_budget(BUDGET);
    let addr = server.local_addr().unwrap();
    let token = Token(FIRST_CONNECTION);
    let mut greedy = TcpStream::connect(addr).unwrap();
    poll_until(&mut server, |e| e.token == LISTENER);
    server.turn(Instant::now(), [Readiness::readable(LISTENER)]);

    greedy.write_all(&vec![7u8; BUDGET * 3]).unwrap();
    wait_until("the bytes to reach the server", || unsent(&greedy) == 0);
    server.turn(Instant::now(), [Readiness::readable(token)]);
    assert_eq!(server.stats().bytes_in, BUDGET as u64);
    server.turn(Instant::now(), [Readiness::readable(token)]); // queued, and an event too
    assert_eq!(
        server.stats().bytes_in,
        2 * BUDGET as u64,
        "one budget per turn"
    );
    assert_eq!(server.ready.len(), 1);
    server.turn(Instant::now(), []);
    server.turn(Instant::now(), []);
    assert_eq!(server.stats().bytes_in, 3 * BUDGET as u64);
    assert_eq!(server.ready.len(), 0, "drained");
}

/// A server with `--idle-timeout` of `timeout` (no other timers).
fn server_with_idle_timeout(timeout: Duration) -> Server {
    server_on(Config {
        idle_timeout: Some(timeout),
        ..Config::default()
    })
}

/// With made-up instants: a silent connection is closed exactly at its
/// idle deadline and not a nanosecond before, and the poll is told to wake
/// for that deadline. No sleeping, no real waiting.
#[test]
fn idle_timeout_fires_at_the_deadline_and_not_before() {
    let timeout = Duration::from_secs(10);
    let mut server = server_with_idle_timeout(timeout);
    let addr = server.local_addr().unwrap();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    poll_until(&mut server, |e| e.token == LISTENER);
    let t0 = Instant::now();
    server.turn(t0, [Readiness::readable(LISTENER)]);
    assert_eq!(server.stats().accepted, 1);
    assert_eq!(server.next_deadline(), Some(t0 + timeout));

    server.turn(t0 + timeout - Duration::from_nanos(1), []);
    assert_eq!(server.stats().idle_closed, 0, "not before the deadline");
    server.turn(t0 + timeout, []);
    assert_eq!(server.stats().idle_closed, 1, "at the deadline");
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"", "the peer sees EOF");
}

/// Data from the peer moves its deadline: the old deadline passes without
/// a close, and the new one (counted from the data) closes it.
#[test]
fn idle_timeout_counts_from_the_last_data() {
    use std::io::Write;
    let timeout = Duration::from_secs(10);
    let mut server = server_with_idle_timeout(timeout);
    let addr = server.local_addr().unwrap();
    let token = Token(FIRST_CONNECTION);
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    poll_until(&mut server, |e| e.token == LISTENER);
    let t0 = Instant::now();
    server.turn(t0, [Readiness::readable(LISTENER)]);

    c.write_all(b"still here").unwrap();
    poll_until(&mut server, |e| e.token == token);
    let t1 = t0 + Duration::from_secs(4);
    server.turn(t1, [Readiness::readable(token)]);
    let mut back = [0u8; 10];
    std::io::Read::read_exact(&mut c, &mut back).unwrap();
    assert_eq!(&back, b"still here");

    server.turn(t0 + timeout, []);
    assert_eq!(server.stats().idle_closed, 0, "active since t0");
    assert_eq!(server.next_deadline(), Some(t1 + timeout));
    server.turn(t1 + timeout, []);
    assert_eq!(server.stats().idle_closed, 1);
}

/// `--stats` with made-up instants: `turn` hands the line out at the
/// deadline, not a nanosecond before, and prints nothing itself; the next
/// line is due a period later.
#[test]
fn a_stats_line_is_handed_out_at_its_deadline() {
    let every = Duration::from_secs(1);
    let mut server = server_on(Config {
        stats_every: Some(every),
        ..Config::default()
    });
    let t0 = server.clock;
    assert_eq!(server.next_deadline(), Some(t0 + every));
    assert!(
        server
            .turn(t0 + every - Duration::from_nanos(1), [])
            .is_empty()
    );
    let said = server.turn(t0 + every, []);
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].starts_with("stats: "), "{said:?}");
    assert_eq!(server.next_deadline(), Some(t0 + 2 * every));
    assert!(server.turn(t0 + every, []).is_empty(), "said once");
}

/// A server that injects `faults`.
fn server_with_faults(faults: Faults) -> Server {
    server_on(Config {
        faults,
        ..Config::default()
    })
}

/// `--delay` with made-up instants: the echo is held in the loop's own
/// timer and written exactly at its due time, not a nanosecond before; the
/// poll is told to wake for it, and a second read pass queues behind the
/// first in order.
#[test]
fn a_delayed_echo_is_written_at_its_due_time_and_not_before() {
    let delay = Duration::from_millis(50);
    let mut server = server_with_faults(Faults {
        delay,
        ..Faults::default()
    });
    let addr = server.local_addr().unwrap();
    let token = Token(FIRST_CONNECTION);
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    poll_until(&mut server, |e| e.token == LISTENER);
    let t0 = Instant::now();
    server.turn(t0, [Readiness::readable(LISTENER)]);

    c.write_all(b"first ").unwrap();
    poll_until(&mut server, |e| e.token == token);
    server.turn(t0, [Readiness::readable(token)]);
    assert_eq!(server.stats().bytes_in, 6);
    assert_eq!(server.stats().bytes_out, 0, "held, not written");
    assert_eq!(server.next_deadline(), Some(t0 + delay));

    c.write_all(b"second").unwrap();
    poll_until(&mut server, |e| e.token == token);
    let t1 = t0 + Duration::from_millis(20);
    server.turn(t1, [Readiness::readable(token)]);
    assert_eq!(server.stats().injected_delays, 2);

    server.turn(t0 + delay - Duration::from_nanos(1), []);
    assert_eq!(server.stats().bytes_out, 0, "not before the deadline");
    server.turn(t0 + delay, []);
    assert_eq!(
        server.stats().bytes_out,
        6,
        "the first pass, at its deadline"
    );
    assert_eq!(server.next_deadline(), Some(t1 + delay));
    let mut back = [0u8; 6];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"first ");
    server.turn(t1 + delay, []);
    assert_eq!(server.stats().bytes_out, 12);
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"second");
    assert_eq!(server.next_deadline(), None, "nothing held, no timer");
}

/// `--close-after 4`: four bytes echoed, then our FIN; what the peer sent
/// past them is read away, not echoed, and its EOF ends the connection
/// cleanly (counted as injected, not as failed).
#[test]
fn close_after_echoes_its_bytes_then_sends_a_clean_fin() {
    let mut server = server_with_faults(Faults {
        end: Some((4, End::Close)),
        ..Faults::default()
    });
    let addr = server.local_addr().unwrap();
    let token = Token(FIRST_CONNECTION);
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    poll_until(&mut server, |e| e.token == LISTENER);
    server.turn(Instant::now(), [Readiness::readable(LISTENER)]);
    c.write_all(b"abcdefgh").unwrap();
    poll_until(&mut server, |e| e.token == token);
    server.turn(Instant::now(), [Readiness::readable(token)]);
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"abcd", "four bytes, then EOF");
    assert_eq!(server.stats().injected_closes, 1);
    assert_eq!(
        server.stats().bytes_in,
        4,
        "the rest was read away, not echoed"
    );
    c.shutdown(std::net::Shutdown::Write).unwrap();
    poll_until(&mut server, |e| e.token == token);
    server.turn(Instant::now(), [Readiness::readable(token)]);
    assert_eq!(server.stats().closed, 1);
    assert_eq!(server.stats().failed, 0);
}
