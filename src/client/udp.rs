//! `echoloop client udp://HOST:PORT`: one datagram out, one back. No state
//! machine is needed for that: resolve, send, wait (in a poll, up to the
//! deadline) for the reply, print it.
//!
//! The socket is *connected* (`connect` on a UDP socket only fixes the
//! peer): the kernel then drops datagrams from anyone else, and when the
//! server's host answers with ICMP "port unreachable" the next receive
//! fails with `ConnectionRefused`, which is exit 7, as for TCP. Without an
//! answer of any kind, the deadline gives exit 28.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use super::config::{ClientError, Config};
use super::repr::bytes_repr;
use crate::shared::addr::resolve;
use crate::shared::duration::deadline_after;
use crate::shared::net::{MAX_DATAGRAM, interrupted, would_block};

/// The reply buffer: the largest UDP payload over IPv6 without jumbograms
/// (65,527, twenty bytes more than IPv4's).
const MAX_REPLY: usize = MAX_DATAGRAM + 20;

/// Sends `opts.payload` as one datagram and writes the one reply to `out`.
/// Returns the reply's length.
pub(super) fn exchange(opts: &Config, out: &mut dyn Write) -> Result<u64, ClientError> {
    let deadline = deadline_after(Instant::now(), opts.timeout);
    let target = opts.target.to_string();
    let host = &opts.target.host;
    // The first address: a datagram has no connect to try the next on.
    let addr: SocketAddr = resolve(host, opts.target.port).map_err(ClientError::Resolve)?[0];
    let any: SocketAddr = match addr {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let connect_error = |source| ClientError::Connect {
        target: target.clone(),
        source,
    };
    let mut socket = UdpSocket::bind(any).map_err(connect_error)?;
    socket.connect(addr).map_err(connect_error)?;
    let mut poll = Poll::new().map_err(ClientError::Poll)?;
    poll.registry()
        .register(&mut socket, Token(0), Interest::READABLE)
        .map_err(ClientError::Poll)?;
    let total = opts.payload.len();
    socket
        .send(&opts.payload)
        .map_err(|source| ClientError::Send {
            target: target.clone(),
            source,
            sent: 0,
            total,
        })?;
    log::debug!("sent {total} bytes to udp://{addr}");
    let mut buf = vec![0; MAX_REPLY];
    let mut events = Events::with_capacity(4);
    let n = loop {
        match socket.recv(&mut buf) {
            Ok(n) => break n,
            Err(e) if would_block(&e) || interrupted(&e) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(connect_error(e));
            }
            Err(source) => return Err(ClientError::Recv { target, source }),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(ClientError::Timeout {
                target,
                during: "waiting for a datagram from",
                after: opts.timeout,
            });
        }
        match poll.poll(&mut events, Some(deadline - now)) {
            Ok(()) => {}
            Err(e) if interrupted(&e) => {}
            Err(e) => return Err(ClientError::Poll(e)),
        }
    };
    let reply = &buf[..n];
    log::debug!("received {n} bytes");
    let written = if opts.raw {
        out.write_all(reply)
    } else {
        writeln!(out, "{}", bytes_repr(reply))
    };
    written
        .and_then(|()| out.flush())
        .map_err(ClientError::Output)?;
    Ok(n as u64)
}
