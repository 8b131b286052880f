//! An experiment for `cargo bench --bench tls` (section `idle`): a TLS
//! echo server on rustls's *unbuffered* API, to see what an idle TLS
//! connection costs when the server keeps one shared read buffer.
//!
//! `echoloop server --tls` uses rustls's buffered `ServerConnection`,
//! which owns a deframer buffer: once a read has grown it to 4 KiB, it
//! keeps it for the connection's life. `UnbufferedServerConnection`
//! owns no buffer: the caller hands it the received bytes on each call.
//! Here every connection reads into one shared 64 KiB buffer, and only
//! a record cut in half by a read is copied out to the connection
//! (`held`, empty and unallocated when the connection is idle).
//!
//! It is a measuring kind, not a server: same certificate and TLS
//! configuration as `echoloop server --tls` (built by the same code),
//! one thread, and a write the socket will not take at once drops the
//! connection (counted on exit) instead of waiting for WRITABLE. The
//! idle section's single byte per connection never comes close.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::ConnectionState;

/// The listener's token; connections count up from 1.
const LISTENER: Token = Token(0);
/// Bytes the shared buffers hold: four maximal TLS records.
const SHARED: usize = 4 * (16 * 1024 + 256);

/// One connection: the session, the socket, and the part of a record
/// that a read cut off (carried to the next read).
struct Conn {
    sock: TcpStream,
    tls: UnbufferedServerConnection,
    held: Vec<u8>,
}

/// Runs the server if the bench was started as
/// `tls --serve-unbuffered CERT KEY`: prints `listening on ADDR` and
/// serves until killed.
pub fn serve_if_asked() {
    let Some(config) = super::servers::tls_config_if_asked("--serve-unbuffered") else {
        return;
    };
    if let Err(e) = serve(config) {
        eprintln!("unbuffered server: {e}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

fn serve(config: Arc<rustls::ServerConfig>) -> io::Result<()> {
    let mut listener = TcpListener::bind("127.0.0.1:0".parse().expect("an address"))?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut next = 1;
    let (mut inbuf, mut outbuf) = (vec![0u8; SHARED], vec![0u8; SHARED]);
    let mut events = Events::with_capacity(256);
    loop {
        poll.poll(&mut events, None)?;
        for event in &events {
            if event.token() == LISTENER {
                while let Ok((mut sock, _)) = listener.accept() {
                    let tls = UnbufferedServerConnection::new(config.clone())
                        .map_err(io::Error::other)?;
                    poll.registry()
                        .register(&mut sock, Token(next), Interest::READABLE)?;
                    let held = Vec::new();
                    conns.insert(next, Conn { sock, tls, held });
                    next += 1;
                }
                continue;
            }
            let id = event.token().0;
            let keep = match conns.get_mut(&id) {
                Some(conn) => turn(conn, &mut inbuf, &mut outbuf).unwrap_or(false),
                None => true,
            };
            if !keep && let Some(mut conn) = conns.remove(&id) {
                let _ = poll.registry().deregister(&mut conn.sock);
            }
        }
    }
}

/// One readable event: read until the socket would block, let rustls
/// work through what came, answer it. `Ok(false)`: the connection is
/// over.
fn turn(conn: &mut Conn, inbuf: &mut [u8], outbuf: &mut [u8]) -> io::Result<bool> {
    loop {
        // What the last read left unfinished goes first, then new bytes.
        let mut used = conn.held.len();
        inbuf[..used].copy_from_slice(&conn.held);
        conn.held = Vec::new();
        let mut eof = false;
        while used < inbuf.len() {
            match conn.sock.read(&mut inbuf[used..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => used += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let full = used == inbuf.len();
        let left = process(conn, &mut inbuf[..used], outbuf)?;
        let Some(left) = left else {
            return Ok(false);
        };
        if eof {
            return Ok(false);
        }
        // Keep only the unfinished record, sized to what it is.
        conn.held = inbuf[used - left..used].to_vec();
        if !full {
            return Ok(true);
        }
    }
}

/// Drives the session over `incoming` until it needs more bytes.
/// `Some(n)`: the last `n` bytes are an unfinished record; `None`: the
/// connection is over.
fn process(conn: &mut Conn, incoming: &mut [u8], outbuf: &mut [u8]) -> io::Result<Option<usize>> {
    let mut start = 0;
    let mut echo: Vec<u8> = Vec::new();
    let mut encoded = 0;
    loop {
        let status = conn.tls.process_tls_records(&mut incoming[start..]);
        let mut wait = false;
        match status.state {
            Ok(ConnectionState::ReadTraffic(mut records)) => {
                while let Some(record) = records.next_record() {
                    let record = record.map_err(io::Error::other)?;
                    echo.extend_from_slice(record.payload);
                }
            }
            Ok(ConnectionState::EncodeTlsData(mut data)) => {
                encoded += data
                    .encode(&mut outbuf[encoded..])
                    .map_err(|e| io::Error::other(format!("{e:?}")))?;
            }
            Ok(ConnectionState::TransmitTlsData(data)) => {
                send_all(&mut conn.sock, &outbuf[..encoded])?;
                encoded = 0;
                data.done();
            }
            Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                if echo.is_empty() {
                    wait = true;
                } else {
                    let n = traffic
                        .encrypt(&echo, outbuf)
                        .map_err(|e| io::Error::other(format!("{e:?}")))?;
                    send_all(&mut conn.sock, &outbuf[..n])?;
                    echo.clear();
                }
            }
            Ok(ConnectionState::BlockedHandshake) => wait = true,
            // The peer's close_notify, or both sides closed, or an error.
            Ok(_) | Err(_) => return Ok(None),
        }
        start += status.discard;
        if wait {
            return Ok(Some(incoming.len() - start));
        }
    }
}

/// Writes all of `bytes` now, or fails: this experiment never waits
/// for WRITABLE (see the module's note).
fn send_all(sock: &mut TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match sock.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
