//! Step 3 of 3 on the way to `echoloop server`: a minimal reactor on mio.
//!
//! ```text
//! cargo run --example mini_reactor -- 127.0.0.1:7878
//! ```
//!
//! What it adds to step 2 (`threads.rs`): every connection on one thread.
//! Instead of waiting inside `accept` or `recv`, the loop asks the kernel
//! which sockets are ready (`Poll::poll`, epoll underneath) and only then
//! makes the call, which will not block. Readiness is edge-triggered: an
//! event says "something changed" once, so each handler goes on until the
//! kernel says `WouldBlock`. An idle connection costs a `TcpStream` in a map.
//!
//! It is correct for small messages and polite peers. What it leaves out,
//! each handled in `src/server/mod.rs` and `src/server/connection.rs`:
//!
//! - **Short writes.** `write_all` on a non-blocking socket fails with
//!   `WouldBlock` when the send buffer is full, with part of the bytes sent
//!   and no way to tell how many; here that closes the connection. The real
//!   server keeps what was not taken (`owed`) and asks for WRITABLE.
//! - **Backpressure.** A peer that sends but never reads makes the server
//!   buffer without bound in a design that keeps leftovers; the real server
//!   stops reading at a cap (`Connection::interest`).
//! - **Fairness.** A peer that sends as fast as we read keeps `echo` in its
//!   loop forever; the real server reads one budget per turn and queues the
//!   rest (`Server::serve_ready`).
//! - **Running out of file descriptors.** `accept` failing with EMFILE ends
//!   this program; the real server pauses accepting and retries on a timer.
//! - **Half-close and hang-up.** It closes at the first EOF; the real server
//!   first writes back what it still owes.
//! - Also: no idle timeout, no signals, no counters, no connection limit.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// The listener's token; connections count up from 1 (never reused here,
/// so a stale event can never reach the wrong connection).
const LISTENER: Token = Token(0);

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7878".into());
    let addr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;

    let mut conns: HashMap<Token, TcpStream> = HashMap::new();
    let mut next = 1;
    let mut events = Events::with_capacity(128);
    loop {
        // Wait until something is ready. A signal may interrupt the wait.
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                // Accept until WouldBlock: the edge will not be repeated for
                // peers that are already waiting.
                loop {
                    match listener.accept() {
                        Ok((mut conn, _peer)) => {
                            let token = Token(next);
                            next += 1;
                            poll.registry()
                                .register(&mut conn, token, Interest::READABLE)?;
                            conns.insert(token, conn);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
            } else if let Some(conn) = conns.get_mut(&event.token())
                && !echo(conn)
            {
                // Dropping the socket closes it and takes it out of epoll.
                conns.remove(&event.token());
            }
        }
    }
}

/// Reads until WouldBlock, writing each chunk straight back. Returns false
/// when the connection should close: EOF, an error, or a short write.
fn echo(conn: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return false, // the peer is done (see "half-close")
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return false; // see "short writes" above
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}
