//! `server --proxy-protocol`: every connection begins with a PROXY
//! protocol header (v1 text or v2 binary, as haproxy's `send-proxy` and
//! `send-proxy-v2` and nginx's `proxy_protocol on` send it), and the
//! client it names is the one the server talks about.
//!
//! A connection's life gains one phase, before the echo (and before TLS,
//! since a proxy sends the header in the clear ahead of the ClientHello):
//!
//! ```text
//!   accept ──▶ Arrivals (this part: waiting for the header)
//!                │ whole and valid ─▶ admitted: a Connection, TLS if --tls
//!                │ not a header, too long, too late, or the peer left
//!                └──────────────────▶ closed and counted (bad, oversized,
//!                                     timed_out, left)
//! ```
//!
//! A waiting connection has a token of its own (see [`tokens`])
//! and costs no buffer: the header is looked at with a peek (`MSG_PEEK`)
//! into one scratch buffer shared by the reactor, and only once it is
//! whole is exactly its length taken from the socket. The bytes after it
//! stay in the kernel for the echo, and moving the socket to its echo
//! token (`epoll_ctl` MOD) re-checks readiness, so they raise an event of
//! their own.
//!
//! A peer that trickles its header waits at most `--idle-timeout`, or
//! [`HEADER_TIMEOUT`] without one; a header longer than [`V1_MAX`] (the
//! spec's bound) or [`V2_MAX`] (ours) is refused at once. The peek reads
//! at most [`V2_MAX`] bytes, whatever the peer sends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Interest, Registry, Token};
use ppp::{HeaderResult, PartialResult, v1, v2};
use slab::Slab;

use super::counters::ProxyHeaders;
use super::deadlines::Deadlines;
use super::listener::Peer;
use super::tokens;
use crate::shared::duration::deadline_after;
use crate::shared::net::{interrupted, would_block};
use crate::shared::readiness::Readiness;
use crate::shared::stream::Stream;

/// The longest v1 header, CRLF included: the spec's bound (TCP6 with the
/// longest addresses and ports).
pub const V1_MAX: usize = 107;

/// The longest v2 header we take: the 16-byte preamble, the addresses
/// (216 bytes at most, for Unix paths) and up to 3,864 bytes of TLVs. The
/// spec lets the length field say up to 65,535; proxies send a few dozen
/// bytes of TLVs (ALPN, authority, a unique ID), and a bound this size
/// keeps the peek small.
pub const V2_MAX: usize = 4096;

/// How long a header may take without `--idle-timeout`: a proxy sends it
/// in its first segment, so anything slower is a peer that will not.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Not enough yet to tell: wait for more.
    Incomplete,
    /// A whole, valid header of `len` bytes naming `client` (`None`: it
    /// names none, so the connection's own peer stands for it).
    Header {
        /// The header's length: the bytes to take before the echo.
        len: usize,
        /// 1 or 2.
        version: u8,
        /// The client's address, if the header names one.
        client: Option<SocketAddr>,
    },
    /// Not a header the spec allows, or longer than we take.
    Refused(Refusal),
}

/// Why a waiting connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its first bytes are not a valid header.
    Bad,
    /// Its header is longer than [`V1_MAX`] or [`V2_MAX`].
    Oversized,
    /// No whole header came in time.
    TimedOut,
    /// The peer closed (or reset) before its header was whole.
    Left,
}

impl Refusal {
    /// Counts one refusal.
    fn count(self, counts: &mut ProxyHeaders) {
        match self {
            Refusal::Bad => counts.bad += 1,
            Refusal::Oversized => counts.oversized += 1,
            Refusal::TimedOut => counts.timed_out += 1,
            Refusal::Left => counts.left += 1,
        }
    }
}

// ANCHOR: parse
/// Reads a PROXY header (either version) at the start of `bytes`.
pub fn parse(bytes: &[u8]) -> Parsed {
    // A v1 header is one line: until its LF comes it is incomplete (ppp
    // takes some cuts, such as one after a space, for a bad header), and
    // past V1_MAX without one it is too long.
    if bytes.starts_with(b"PROXY") || b"PROXY".starts_with(bytes) {
        match bytes.iter().position(|&b| b == b'\n') {
            None if bytes.len() < V1_MAX => return Parsed::Incomplete,
            Some(end) if end < V1_MAX => {}
            _ => return Parsed::Refused(Refusal::Oversized),
        }
    }
    let header = HeaderResult::parse(bytes);
    if header.is_incomplete() {
        return match header {
            // The v2 length field is known after 16 bytes: a header that
            // says it is longer than we take is refused before it comes.
            HeaderResult::V2(Err(v2::ParseError::Partial(_, len))) if 16 + len > V2_MAX => {
                Parsed::Refused(Refusal::Oversized)
            }
            _ if bytes.len() >= V2_MAX => Parsed::Refused(Refusal::Oversized),
            _ => Parsed::Incomplete,
        };
    }
    match header {
        HeaderResult::V1(Ok(h)) => Parsed::Header {
            len: h.header.len(),
            version: 1,
            client: match h.addresses {
                v1::Addresses::Tcp4(a) => Some((a.source_address, a.source_port).into()),
                v1::Addresses::Tcp6(a) => Some((a.source_address, a.source_port).into()),
                v1::Addresses::Unknown => None,
            },
        },
        HeaderResult::V1(Err(v1::BinaryParseError::Parse(v1::ParseError::HeaderTooLong))) => {
            Parsed::Refused(Refusal::Oversized)
        }
        HeaderResult::V2(Ok(h)) => Parsed::Header {
            len: h.len(),
            version: 2,
            client: match (h.command, h.addresses) {
                (v2::Command::Local, _) => None,
                (_, v2::Addresses::IPv4(a)) => Some((a.source_address, a.source_port).into()),
                (_, v2::Addresses::IPv6(a)) => Some((a.source_address, a.source_port).into()),
                (_, v2::Addresses::Unix(_) | v2::Addresses::Unspecified) => None,
            },
        },
        HeaderResult::V1(Err(_)) | HeaderResult::V2(Err(_)) => Parsed::Refused(Refusal::Bad),
    }
}
// ANCHOR_END: parse

/// A connection whose header has not come whole yet.
#[derive(Debug)]
struct Waiting {
    stream: Stream,
    /// The socket's own peer (the proxy).
    peer: Peer,
    /// A serial, so that a deadline left behind by a slot's earlier
    /// tenant is told from the current one's.
    id: u64,
}

/// A connection whose header came whole: the loop admits it.
#[derive(Debug)]
pub struct Arrived {
    /// The socket, registered under the arrival token `token` still.
    pub stream: Stream,
    /// The token it is registered with now (the loop moves it).
    pub token: Token,
    /// The client the header named, or the proxy when it named none.
    pub client: Peer,
    /// The proxy: the socket's own peer.
    pub via: Peer,
}

/// What an event made of a waiting connection.
#[derive(Debug)]
pub enum Arrival {
    /// Its header is not whole yet (or the event was spurious).
    Waiting,
    /// Its header is whole: the loop admits it.
    Whole(Arrived),
    /// It was closed (bad, oversized, or its peer left): a slot is free.
    Refused,
}

/// The connections waiting for their header, and the clients of those
/// admitted (for the logs).
#[derive(Debug)]
pub struct Arrivals {
    waiting: Slab<Waiting>,
    /// When each waiting connection's time is up.
    deadlines: Deadlines,
    /// How long a header may take.
    timeout: Duration,
    /// The peek buffer, shared by every waiting connection.
    scratch: Vec<u8>,
    /// The next waiting connection's serial.
    next_id: u64,
    /// The client of each admitted connection, by its slab key in the
    /// loop: what its close line names.
    clients: HashMap<usize, Peer>,
}

impl Arrivals {
    /// No one waiting yet; a header may take `idle_timeout`, or
    /// [`HEADER_TIMEOUT`] without one.
    pub fn new(idle_timeout: Option<Duration>) -> Arrivals {
        Arrivals {
            waiting: Slab::new(),
            deadlines: Deadlines::default(),
            timeout: idle_timeout.unwrap_or(HEADER_TIMEOUT),
            scratch: vec![0; V2_MAX],
            next_id: 1,
            clients: HashMap::new(),
        }
    }

    /// Connections waiting for their header (they count against
    /// `--max-connections` like admitted ones).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Takes a freshly accepted connection: it waits for its header under
    /// a token of its own. Registering it reports bytes that came with the
    /// connection at once, as an event.
    pub fn on_accept(&mut self, registry: &Registry, mut stream: Stream, peer: Peer, now: Instant) {
        let entry = self.waiting.vacant_entry();
        let token = tokens::arrival(entry.key());
        if let Err(e) = registry.register(&mut stream, token, Interest::READABLE) {
            log::warn!("accept peer={peer}: cannot register with the poller: {e}");
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.deadlines
            .push(deadline_after(now, self.timeout), entry.key(), id);
        log::trace!("proxy header awaited peer={peer} token={}", token.0);
        entry.insert(Waiting { stream, peer, id });
    }

    /// Readiness on an arrival token: looks at what came. A whole header
    /// is taken from the socket and the connection handed back to be
    /// admitted; a bad one closes the connection, and so does a peer
    /// that has finished sending (or failed) with its header still cut:
    /// no more will come. (A peek never reads the EOF behind the bytes
    /// it sees, so the event's flags say it.)
    pub fn on_event(&mut self, event: &Readiness, counts: &mut ProxyHeaders) -> Arrival {
        let Some(key) = tokens::arrival_key(event.token) else {
            return Arrival::Waiting;
        };
        let Some(waiting) = self.waiting.get(key) else {
            return Arrival::Waiting; // closed earlier in this batch
        };
        let parsed = loop {
            match waiting.stream.peek(&mut self.scratch) {
                Ok(0) => break Parsed::Refused(Refusal::Left),
                Ok(n) => break parse(&self.scratch[..n]),
                Err(e) if interrupted(&e) => {}
                Err(e) if would_block(&e) => break Parsed::Incomplete,
                Err(e) => {
                    log::debug!("proxy header peer={}: {e}", waiting.peer);
                    break Parsed::Refused(Refusal::Left);
                }
            }
        };
        log::trace!("proxy header peer={} read {parsed:?}", waiting.peer);
        match parsed {
            Parsed::Incomplete if event.read_closed || event.error => {
                self.refuse(key, Refusal::Left, counts);
                Arrival::Refused
            }
            Parsed::Incomplete => Arrival::Waiting,
            Parsed::Refused(why) => {
                self.refuse(key, why, counts);
                Arrival::Refused
            }
            Parsed::Header {
                len,
                version,
                client,
            } => self.take(key, len, version, client, counts),
        }
    }

    /// Takes the `len` bytes of a whole header off connection `key`'s
    /// socket and hands the connection back (or closes it, if the bytes
    /// the peek saw are gone).
    fn take(
        &mut self,
        key: usize,
        len: usize,
        version: u8,
        client: Option<SocketAddr>,
        counts: &mut ProxyHeaders,
    ) -> Arrival {
        let mut waiting = self.waiting.remove(key);
        // The peek saw these bytes, so the read returns them all.
        match std::io::Read::read(&mut waiting.stream, &mut self.scratch[..len]) {
            Ok(n) if n == len => {}
            other => {
                log::debug!("proxy header peer={}: taking it: {other:?}", waiting.peer);
                Refusal::Left.count(counts);
                return Arrival::Refused;
            }
        }
        match (client, version) {
            (None, _) => counts.local += 1,
            (Some(_), 1) => counts.v1 += 1,
            (Some(_), _) => counts.v2 += 1,
        }
        if client.is_some() {
            counts.last = client;
        }
        let via = waiting.peer;
        let client = client.map_or(via, Peer::Ip);
        log::debug!("proxy header v{version} client={client} via={via}");
        Arrival::Whole(Arrived {
            stream: waiting.stream,
            token: tokens::arrival(key),
            client,
            via,
        })
    }

    /// Closes waiting connection `key` (dropping the socket closes it).
    fn refuse(&mut self, key: usize, why: Refusal, counts: &mut ProxyHeaders) {
        let waiting = self.waiting.remove(key);
        why.count(counts);
        log::debug!("proxy header peer={} refused: {why:?}", waiting.peer);
    }

    /// Closes the connections whose time for a header is up by `now`;
    /// whether it closed any (slots are free).
    pub fn on_timers(&mut self, now: Instant, counts: &mut ProxyHeaders) -> bool {
        let mut closed = false;
        while let Some((key, id)) = self.deadlines.pop_due(now) {
            if self.waiting.get(key).is_some_and(|w| w.id == id) {
                self.refuse(key, Refusal::TimedOut, counts);
                closed = true;
            }
        }
        closed
    }

    /// When the soonest waiting connection's time is up.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.next_deadline()
    }

    /// Remembers that the connection admitted in slot `key` is `client`'s.
    pub fn admitted(&mut self, key: usize, client: Peer) {
        self.clients.insert(key, client);
    }

    /// The client of the connection in slot `key`, forgotten as it closes.
    pub fn closed(&mut self, key: usize) -> Option<Peer> {
        self.clients.remove(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

    /// A v2 header: PROXY, TCP over IPv4, 192.0.2.7:40000 to 127.0.0.1:7878.
    fn v2_tcp4() -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend([0x21, 0x11, 0, 12, 192, 0, 2, 7, 127, 0, 0, 1]);
        h.extend(40000u16.to_be_bytes());
        h.extend(7878u16.to_be_bytes());
        h
    }

    #[test]
    fn a_v1_header_names_its_client_and_its_length() {
        let h = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 7878\r\nhello";
        assert_eq!(
            parse(h),
            Parsed::Header {
                len: h.len() - 5,
                version: 1,
                client: Some("192.0.2.7:40000".parse().unwrap()),
            }
        );
        let h6 = b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n";
        assert_eq!(
            parse(h6),
            Parsed::Header {
                len: h6.len(),
                version: 1,
                client: Some("[2001:db8::1]:1".parse().unwrap()),
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Parsed::Header {
                len: 15,
                version: 1,
                client: None
            }
        );
    }

    #[test]
    fn a_v2_header_names_its_client_and_local_names_none() {
        let mut h = v2_tcp4();
        let len = h.len();
        h.extend(b"after");
        assert_eq!(
            parse(&h),
            Parsed::Header {
                len,
                version: 2,
                client: Some("192.0.2.7:40000".parse().unwrap()),
            }
        );
        let mut local = V2_SIGNATURE.to_vec();
        local.extend([0x20, 0x00, 0, 0]);
        assert_eq!(
            parse(&local),
            Parsed::Header {
                len: 16,
                version: 2,
                client: None
            }
        );
    }

    /// Every cut of a valid header waits for more; none is refused.
    #[test]
    fn a_header_cut_anywhere_waits_for_the_rest() {
        let v1 = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 7878\r\n".to_vec();
        for h in [v1, v2_tcp4()] {
            for cut in 0..h.len() {
                assert_eq!(parse(&h[..cut]), Parsed::Incomplete, "{:?}", &h[..cut]);
            }
        }
    }

    #[test]
    fn what_is_not_a_header_is_refused_as_bad() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 300.0.0.1 127.0.0.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 127.0.0.1 99999 2\r\n",
            b"PROXY UDP4 192.0.2.7 127.0.0.1 1 2\r\n",
            b"\x16\x03\x01\x02\x00",
            b"\r\n\r\n\0\r\nQUIT\n\x31\x11\0\x0c",
        ] {
            assert_eq!(parse(bad), Parsed::Refused(Refusal::Bad), "{bad:?}");
        }
    }

    #[test]
    fn a_header_longer_than_allowed_is_refused_before_it_comes() {
        let endless = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert_eq!(parse(&endless), Parsed::Refused(Refusal::Oversized));
        // A v2 header that says it is 60,000 bytes long: refused at 16.
        let mut h = V2_SIGNATURE.to_vec();
        h.extend([0x21, 0x11]);
        h.extend(60_000u16.to_be_bytes());
        assert_eq!(parse(&h), Parsed::Refused(Refusal::Oversized));
        // The longest we take still waits.
        let mut h = V2_SIGNATURE.to_vec();
        h.extend([0x21, 0x11]);
        h.extend(((V2_MAX - 16) as u16).to_be_bytes());
        assert_eq!(parse(&h), Parsed::Incomplete);
    }
}
