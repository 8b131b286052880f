//! Step 1 of 3 on the way to `echoloop server`: the classic Python socket
//! tutorial, call for call, in plain `std::net`.
//!
//! ```text
//! cargo run --example blocking -- server 127.0.0.1:7878
//! cargo run --example blocking -- client 127.0.0.1:8000 /index.html
//! ```
//!
//! The server is `socket > bind > listen > accept > recv(1024) > sendall >
//! ... > close`, one client at a time; the client is `connect > send > recv
//! until EOF > shutdown > close`, then prints Python's `repr()` of the reply.
//!
//! What it still gets wrong, and which step fixes it:
//!
//! - **One client at a time.** While `accept`'s connection is being served,
//!   the next peer waits in the kernel's backlog; a peer that connects and
//!   says nothing holds everyone up. Step 2 (`threads.rs`) gives each its
//!   own thread.
//! - **It waits inside every call.** `recv` and `sendall` block until the
//!   peer moves; nothing else can happen meanwhile, not even a timeout.
//!   Step 3 (`mini_reactor.rs`) asks the kernel which sockets are ready
//!   first, and only then calls.
//! - **Errors end the program** (`?` all the way up), where a server should
//!   drop one connection and serve the rest.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["server", addr] => server(addr),
        ["client", addr] => client(addr, "/"),
        ["client", addr, path] => client(addr, path),
        _ => {
            eprintln!("usage: blocking server ADDR | blocking client ADDR [PATH]");
            std::process::exit(2);
        }
    }
}

/// The echo server: one connection at a time, to its end.
fn server(addr: &str) -> io::Result<()> {
    // socket + bind + listen: std does all three in `bind`.
    let listener = TcpListener::bind(addr)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    loop {
        // accept: blocks until a peer has connected.
        let (mut conn, peer) = listener.accept()?;
        eprintln!("connected by {peer}");
        let mut buf = [0u8; 1024];
        loop {
            // recv(1024): blocks until data arrives; 0 means the peer has
            // finished sending (it shut down its side, or closed).
            let n = conn.read(&mut buf)?;
            if n == 0 {
                break;
            }
            // sendall: blocks until every byte is in the kernel's buffer.
            conn.write_all(&buf[..n])?;
        }
        // close: dropping the socket closes it.
    }
}

/// The HTTP GET client: send the request, read until the server closes.
fn client(addr: &str, path: &str) -> io::Result<()> {
    let mut sock = TcpStream::connect(addr)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    sock.write_all(request.as_bytes())?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = sock.read(&mut buf)?;
        if n == 0 {
            break; // EOF: the server has said everything
        }
        reply.extend_from_slice(&buf[..n]);
    }
    sock.shutdown(Shutdown::Both)?;
    println!("{}", echoloop::client::bytes_repr(&reply));
    Ok(())
}
