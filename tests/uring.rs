//! The io_uring comparison kind of the benches (`benches/servers/uring.rs`)
//! is an echo server like the others: every byte back in order on many
//! connections at once, a half-close answered with EOF once all is
//! echoed, and no descriptor left behind by a thousand short
//! connections. Where the kernel has no io_uring the test says so and
//! skips, except under `.ci/run` (ECHOLOOP_CI), where that is a failure.

mod common;

#[path = "../benches/servers/uring.rs"]
#[allow(dead_code)]
mod uring;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

/// The server on its thread (it lives as long as the test process).
struct Server {
    addr: std::net::SocketAddr,
    thread: std::thread::JoinHandle<()>,
}

impl Server {
    /// Fails the test with the server's own error if it has stopped: a
    /// server that dies says why, instead of leaving the test to fail on
    /// a refused connection with no word of the cause.
    #[track_caller]
    fn assert_running(self) -> Server {
        if !self.thread.is_finished() {
            return self;
        }
        match self.thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("the io_uring server returned while it should serve"),
        }
    }
}

/// Starts the server, or `None` where io_uring cannot be had.
fn start() -> Option<Server> {
    if let Err(e) = io_uring::IoUring::new(8) {
        common::missing(&format!("no io_uring here ({e})"));
        return None;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        // Its error is the test's failure, with the reason (the panic's
        // message is shown with the failing test's output).
        if let Err(e) = uring::serve(listener) {
            panic!("the io_uring server failed: {e}");
        }
    });
    Some(Server { addr, thread })
}

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Eight connections each send 300 KB of their own pattern (far more
/// than the 1 KiB lent buffers) while reading the echo; each gets its own
/// bytes back exactly, then EOF after its half-close. Then a thousand
/// connections that each echo one message and close. Afterwards the
/// process holds no more descriptors than when the server started (one
/// test, so that no other test's sockets are counted).
#[test]
fn an_echo_server_like_the_others() {
    let Some(server) = start() else { return };
    let addr = server.addr;
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    // One echo first: the server has made its ring (a descriptor) by then.
    let mut first = connect(addr);
    first.write_all(b"ready?").unwrap();
    let mut back = [0u8; 6];
    first.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ready?");
    // Both ends of `first` are open now (the server echoed, and has not
    // seen an EOF): the process holds two more than the server's own.
    let before = fds() - 2;
    drop(first);
    let server = server.assert_running();
    many_connections_get_their_bytes_back_in_order(addr);
    let server = server.assert_running();
    short_connections_one_after_another(addr);
    // The server closes through its ring: poll until it has.
    let end = Instant::now() + DEADLINE;
    while fds() > before {
        assert!(
            Instant::now() < end,
            "{} descriptors, {before} before",
            fds()
        );
        std::thread::yield_now();
    }
    server.assert_running();
}

fn many_connections_get_their_bytes_back_in_order(addr: std::net::SocketAddr) {
    let workers: Vec<_> = (0..8u8)
        .map(|k| {
            std::thread::spawn(move || {
                let data: Vec<u8> = (0..300_000u32)
                    .map(|i| (i.wrapping_mul(31) as u8) ^ k)
                    .collect();
                let mut s = connect(addr);
                let mut reader = s.try_clone().unwrap();
                let expect = data.clone();
                let read = std::thread::spawn(move || {
                    let mut got = Vec::new();
                    reader.read_to_end(&mut got).unwrap();
                    got
                });
                s.write_all(&data).unwrap();
                s.shutdown(Shutdown::Write).unwrap();
                let got = read.join().unwrap();
                assert!(
                    got == expect,
                    "connection {k}: {} bytes, not its own",
                    got.len()
                );
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

fn short_connections_one_after_another(addr: std::net::SocketAddr) {
    for i in 0..1000u32 {
        let mut s = connect(addr);
        s.write_all(&i.to_be_bytes()).unwrap();
        let mut back = [0u8; 4];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, i.to_be_bytes());
        s.shutdown(Shutdown::Write).unwrap();
        // A blocking read in this process can be interrupted (EINTR):
        // the io_uring server runs on a thread of it, and the kernel may
        // signal the process to run the ring's task work. Interrupted is
        // std's "try again", as read_exact and read_to_end do.
        let eof = loop {
            match s.read(&mut back) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        assert_eq!(
            eof.as_ref().ok(),
            Some(&0),
            "EOF after the half-close, connection {i}: {eof:?}"
        );
    }
}
