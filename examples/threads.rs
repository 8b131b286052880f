//! Step 2 of 3 on the way to `echoloop server`: one thread per connection.
//!
//! ```text
//! cargo run --example threads -- 127.0.0.1:7878
//! ```
//!
//! What it adds to step 1 (`blocking.rs`): many clients at once. Each
//! accepted connection gets its own OS thread running step 1's blocking
//! loop, so a slow or silent peer holds up only its own thread, and one
//! connection's error ends only that thread.
//!
//! What it still gets wrong:
//!
//! - **A thread per connection is expensive.** Each costs a stack (8 MiB of
//!   address space, tens of KiB touched) and a kernel task: 10,000 idle
//!   connections cost about 10 KB each here against echoloop's 71 bytes
//!   (`cargo bench --bench idle_memory`), and switching between thousands of
//!   threads costs CPU the reactor does not spend.
//! - **No limit.** A flood of peers is a flood of threads, until
//!   `spawn` fails or the machine swaps.
//! - **Still no timeouts**, and a peer that never reads fills the kernel's
//!   buffers and then blocks its thread forever in `write_all`.
//!
//! Step 3 (`mini_reactor.rs`) serves every connection from one thread.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7878".into());
    let listener = TcpListener::bind(&addr)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    for conn in listener.incoming() {
        match conn {
            Ok(conn) => {
                thread::spawn(move || {
                    if let Err(e) = echo(conn) {
                        eprintln!("connection failed: {e}");
                    }
                });
            }
            // One failed accept (a peer that reset first, or out of fds)
            // is not the end of the server.
            Err(e) => eprintln!("accept failed: {e}"),
        }
    }
    Ok(())
}

/// Step 1's loop, now on its own thread: recv(1024), sendall, until EOF.
fn echo(mut conn: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n])?;
    }
}
