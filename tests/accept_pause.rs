//! The fd-exhaustion pause, with made-up instants: when accept fails for
//! lack of file descriptors, accepting pauses for exactly ACCEPT_PAUSE and
//! then resumes on its own, without a new listener event.
//!
//! Alone in its file, so alone in its process: it lowers the process's fd
//! limit, which would starve any test running beside it.

use std::fs::File;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use echoloop::server::{ACCEPT_PAUSE, Config, LISTENER, Readiness, Server};

/// The highest file descriptor open in this process.
fn highest_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap()
}

/// Sets the soft limit on open files, returning the old one.
fn set_fd_limit(soft: u64) -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        let new = libc::rlimit {
            rlim_cur: soft,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &new), 0);
    }
    old
}

#[test]
fn accepting_pauses_for_accept_pause_and_resumes_on_time() {
    let mut server = Server::bind(Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    })
    .unwrap();
    // A peer waiting in the backlog (the kernel completes its handshake).
    let _peer = TcpStream::connect(server.local_addr().unwrap()).unwrap();

    // Use up every descriptor: the next accept fails with EMFILE.
    let old = set_fd_limit(highest_fd() + 1);
    let mut hold = Vec::new();
    let full = loop {
        match File::open("/dev/null") {
            Ok(f) => hold.push(f),
            Err(e) => break e,
        }
    };
    assert_eq!(full.raw_os_error(), Some(libc::EMFILE), "{full}");

    let t0 = Instant::now();
    server.turn(t0, [Readiness::readable(LISTENER)]);
    let (accepted, failed) = (server.stats().accepted, server.stats().accept_errors);
    assert_eq!(
        (accepted, failed),
        (0, 1),
        "accept failed once, then paused"
    );
    assert_eq!(server.next_deadline(), Some(t0 + ACCEPT_PAUSE));

    // Descriptors are free again, but the pause holds to its deadline.
    drop(hold);
    restore_fd_limit(old);
    server.turn(t0 + ACCEPT_PAUSE - Duration::from_nanos(1), []);
    assert_eq!(server.stats().accepted, 0, "not a nanosecond early");
    assert_eq!(server.stats().accept_errors, 1, "and no retry meanwhile");
    assert_eq!(server.next_deadline(), Some(t0 + ACCEPT_PAUSE));

    server.turn(t0 + ACCEPT_PAUSE, []);
    assert_eq!(server.stats().accepted, 1, "resumed at the deadline");
    assert_eq!(server.stats().accept_errors, 1);
    assert_eq!(server.next_deadline(), None, "nothing left to wake for");
}

/// Puts the fd limit back.
fn restore_fd_limit(old: libc::rlimit) {
    set_fd_limit(old.rlim_cur);
}
