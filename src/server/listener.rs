//! The listener's side of the loop: the listening socket (TCP or Unix,
//! with its socket file), whether to accept now ([`Accepting`]), and
//! accepting itself: at most [`ACCEPT_BUDGET`] a turn, after the batch, a
//! pause when file descriptors run out.

use std::cmp::Reverse;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Interest, Token};

use super::connection::Connection;
use super::faults::Held;
use super::{FIRST_CONNECTION, IdleCheck, LISTENER, Server, stamp};
use crate::shared::duration::deadline_after;
use crate::shared::net::{self, describe, interrupted, out_of_resources, would_block};
use crate::shared::stream::Stream;
use crate::shared::tls::TlsStream;

/// How long accepting pauses after running out of file descriptors.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The most connections accepted in one turn; the rest of the backlog
/// waits for the next turn, after the established connections had theirs.
pub const ACCEPT_BUDGET: usize = 64;

/// The listener's side of the loop: whether to call `accept` now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Accepting {
    /// The backlog was drained (accept said WouldBlock); wait for an event.
    Idle,
    /// The listener signalled, or we have reason to think peers wait.
    Ready,
    /// At `--max-connections`; the next close makes us `Ready` again.
    Full,
    /// Out of file descriptors; `Ready` again at this instant.
    Paused(Instant),
}

/// The listening socket: TCP, or Unix-domain (with its file, if any).
#[derive(Debug)]
pub(super) enum Listener {
    Tcp(TcpListener),
    Unix {
        listener: mio::net::UnixListener,
        _file: Option<SocketFile>,
    },
}

impl Listener {
    pub(super) fn register(&mut self, registry: &mio::Registry) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => registry.register(l, LISTENER, Interest::READABLE),
            Listener::Unix { listener, .. } => {
                registry.register(listener, LISTENER, Interest::READABLE)
            }
        }
    }

    /// The next connection waiting in the backlog, and its peer.
    pub(super) fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, peer)| (Stream::Tcp(s), Peer::Ip(peer))),
            Listener::Unix { listener, .. } => listener
                .accept()
                .map(|(s, _)| (Stream::Unix(s), Peer::Unix)),
        }
    }
}

/// Who connected, for the logs (no allocation per accept).
#[derive(Debug, Clone, Copy)]
pub(super) enum Peer {
    Ip(SocketAddr),
    /// A Unix-domain peer that connects has no name of its own.
    Unix,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ip(addr) => write!(f, "{addr}"),
            Peer::Unix => f.write_str("unix"),
        }
    }
}

/// A Unix-domain socket file, removed when the server that made it stops
/// (however `run` ends: the removal is in `Drop`), unless another file has
/// taken its path since.
#[derive(Debug)]
pub(super) struct SocketFile(pub(super) net::SocketFile);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let path = self.0.path.display();
        match self.0.remove_if_ours() {
            Ok(true) => {}
            Ok(false) => log::info!("{path} is no longer our socket file: left in place"),
            Err(e) => log::warn!("cannot remove {path}: {}", describe(&e)),
        }
    }
}

impl Server {
    // ANCHOR: accept
    /// Accepts until the backlog is empty, the connection limit is reached,
    /// or the process runs out of file descriptors.
    ///
    /// At most [`ACCEPT_BUDGET`] per turn: a flood of new peers waits its
    /// turn behind the established connections (the listener stays `Ready`,
    /// so the next poll does not sleep and the next turn goes on accepting).
    pub(super) fn accept(&mut self) {
        let mut budget = ACCEPT_BUDGET;
        while self.accepting == Accepting::Ready {
            if budget == 0 {
                self.stats.budget_spent += 1;
                log::trace!("requeue listener (budget of {ACCEPT_BUDGET} accepts used)");
                return;
            }
            budget -= 1;
            if let Some(max) = self.config.max_connections
                && self.conns.len() >= max
            {
                log::debug!("at --max-connections {max}: accepting paused");
                self.accepting = Accepting::Full;
                return;
            }
            let Some(listener) = &self.listener else {
                self.accepting = Accepting::Idle;
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.add(stream, peer),
                Err(e) if would_block(&e) => {
                    log::trace!("accept wouldblock (the backlog is empty)");
                    self.end_accept_failures();
                    self.stats.would_blocks += 1;
                    self.accepting = Accepting::Idle;
                }
                Err(e) if interrupted(&e) => {}
                Err(e) if peer_gave_up(&e) => {
                    log::debug!("accept: a peer gave up before we got to it: {e}");
                }
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM, or something we do not
                    // expect: none of them goes away if we call accept again
                    // right now. Pause, and let a timer bring us back.
                    self.stats.accept_errors += 1;
                    if !self.accept_failing {
                        self.accept_failing = true;
                        let what = if out_of_resources(&e) {
                            "out of resources"
                        } else {
                            "unexpected error"
                        };
                        log::warn!(
                            "accept failed ({what}): {e}; retrying every {} ms \
                             (logged once per burst; see accept_errors in --stats)",
                            ACCEPT_PAUSE.as_millis()
                        );
                    }
                    log::trace!("accept paused for {} ms", ACCEPT_PAUSE.as_millis());
                    self.accepting = Accepting::Paused(deadline_after(self.now, ACCEPT_PAUSE));
                }
            }
        }
    }
    // ANCHOR_END: accept

    /// Logs the end of a burst of accept failures. A burst ends when the
    /// backlog is empty, not at the first accept that works: while the
    /// process sits at its fd limit, every close lets one accept through
    /// before the next EMFILE, and that is still the same burst.
    fn end_accept_failures(&mut self) {
        if self.accept_failing {
            self.accept_failing = false;
            log::info!(
                "accept caught up: the backlog is empty again ({} failed accepts so far)",
                self.stats.accept_errors
            );
        }
    }

    /// Registers a freshly accepted connection.
    fn add(&mut self, stream: Stream, peer: Peer) {
        // An echo is a small reply that must leave now: Nagle's algorithm
        // would hold it back waiting for the peer's ACK.
        if let Err(e) = stream.set_nodelay() {
            log::debug!("accept peer={peer}: TCP_NODELAY failed: {e}");
        }
        let accepted = stamp(self.started, self.now);
        // With --tls, a TCP peer is served through a session of its own
        // (a Unix-socket peer is not: TLS is for the network).
        let mut stream = match (stream, &self.config.tls) {
            (Stream::Tcp(tcp), Some(tls)) => match rustls::ServerConnection::new(tls.clone()) {
                Ok(session) => Stream::Tls(Box::new(TlsStream::new(
                    session,
                    tcp,
                    self.config.owed_cap,
                    accepted,
                ))),
                Err(e) => {
                    log::warn!("accept peer={peer}: cannot start a TLS session: {e}");
                    return;
                }
            },
            (stream, _) => stream,
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let token = Token(key + FIRST_CONNECTION);
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE)
        {
            log::warn!("accept peer={peer}: cannot register with the poller: {e}");
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        entry.insert(Connection::new(stream, id, accepted));
        if self.config.faults.holds() {
            self.held
                .insert(key, Held::new(self.config.faults.seed, id));
        }
        self.stats.accepted += 1;
        self.stats.peak_open = self.stats.peak_open.max(self.stats.open());
        if let Some(timeout) = self.config.idle_timeout {
            let at = deadline_after(self.now, timeout);
            self.idle.push(Reverse(IdleCheck { at, key, id }));
        }
        log::debug!("accept conn=#{id} peer={peer} token={}", token.0);
    }
}

/// Warns that the kernel will silently cap a `--backlog` above somaxconn.
pub(super) fn warn_if_backlog_capped(backlog: u32) {
    if let Some(max) = net::somaxconn()
        && backlog > max
    {
        log::warn!(
            "--backlog {backlog} is above net.core.somaxconn ({max}): the kernel silently caps it at {max}"
        );
    }
}

/// Accept errors that concern one peer only (it reset before we accepted
/// it, or a firewall rule refused it): go on accepting the others.
fn peer_gave_up(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) || matches!(err.raw_os_error(), Some(libc::EPROTO | libc::EPERM))
}
