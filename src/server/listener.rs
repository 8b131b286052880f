//! The listener's side of the loop, as one part ([`Acceptor`]): the
//! listening socket (TCP or Unix, with its socket file), whether to accept
//! now ([`Accepting`]), and accepting itself: at most [`ACCEPT_BUDGET`] a
//! turn, after the batch, a pause when file descriptors run out. What
//! becomes of an accepted peer (its registration, its TLS session, its
//! slot) is the loop's business, in `Server::admit`.

use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mio::Interest;
use mio::net::TcpListener;

use super::config::{Config, StartError, UdpMode};
use super::counters::Counters;
use super::tokens::LISTENER;
use crate::shared::addr::Endpoint;
use crate::shared::duration::deadline_after;
use crate::shared::net::{self, describe, interrupted, out_of_resources, would_block};
use crate::shared::stream::Stream;

/// How long accepting pauses after running out of file descriptors.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The most connections accepted in one turn; the rest of the backlog
/// waits for the next turn, after the established connections had theirs.
pub const ACCEPT_BUDGET: usize = 64;

/// The listener's side of the loop: whether to call `accept` now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepting {
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
pub enum Listener {
    Tcp(TcpListener),
    Unix {
        listener: mio::net::UnixListener,
        _file: Option<SocketFile>,
    },
}

impl Listener {
    pub fn register(&mut self, registry: &mio::Registry) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => registry.register(l, LISTENER, Interest::READABLE),
            Listener::Unix { listener, .. } => {
                registry.register(listener, LISTENER, Interest::READABLE)
            }
        }
    }

    /// The next connection waiting in the backlog, and its peer.
    pub fn accept(&self) -> io::Result<(Stream, Peer)> {
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
pub enum Peer {
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
pub struct SocketFile(pub net::SocketFile);

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

/// The listener as a part of the loop: the socket, whether to accept
/// now, and the accept loop with its budget and its pause.
#[derive(Debug)]
pub struct Acceptor {
    /// The listening socket (`None` with `--udp-only`).
    listener: Option<Listener>,
    /// Whether to call `accept` now; see [`Accepting`].
    accepting: Accepting,
    /// `--max-connections`.
    max: Option<usize>,
    /// Whether we are inside a burst of accept failures (log once per burst).
    failing: bool,
}

impl Acceptor {
    /// Accepts from `listener` (nothing, if `None`), at most `max` open.
    pub fn new(listener: Option<Listener>, max: Option<usize>) -> Acceptor {
        Acceptor {
            listener,
            accepting: Accepting::Idle,
            max,
            failing: false,
        }
    }

    /// The listening socket.
    pub fn listener(&self) -> Option<&Listener> {
        self.listener.as_ref()
    }

    /// Readiness on [`LISTENER`]: peers wait. Accepting waits for the end
    /// of the batch (see the server module's first choice).
    pub fn on_event(&mut self) {
        if self.accepting == Accepting::Idle {
            self.accepting = Accepting::Ready;
        }
    }

    /// A connection closed: if we stopped at `--max-connections`, a slot
    /// is free. Peers may be waiting in the backlog, and they raised their
    /// edge long ago: try accepting after this batch.
    pub fn on_close(&mut self) {
        if self.accepting == Accepting::Full {
            self.accepting = Accepting::Ready;
        }
    }

    /// Ends an accept pause that is over by `now`.
    pub fn on_timers(&mut self, now: Instant) {
        if let Accepting::Paused(until) = self.accepting
            && until <= now
        {
            log::trace!("accept resumed");
            self.accepting = Accepting::Ready;
        }
    }

    /// The end of an accept pause, if paused.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.accepting {
            Accepting::Paused(until) => Some(until),
            _ => None,
        }
    }

    /// Whether peers may wait right now (the poll must not sleep).
    pub fn ready(&self) -> bool {
        self.accepting == Accepting::Ready
    }

    // ANCHOR: accept
    /// The next peer to admit, with `open` connections open: `None` once
    /// the backlog is empty, the connection limit is reached, the process
    /// is out of file descriptors, or this turn's `budget` is spent.
    ///
    /// The budget is [`ACCEPT_BUDGET`] per turn: a flood of new peers waits
    /// its turn behind the established connections (the listener stays
    /// `Ready`, so the next poll does not sleep and the next turn goes on).
    pub fn next(
        &mut self,
        now: Instant,
        open: usize,
        budget: &mut usize,
        stats: &mut Counters,
    ) -> Option<(Stream, Peer)> {
        while self.accepting == Accepting::Ready {
            if *budget == 0 {
                stats.budget_spent += 1;
                log::trace!("requeue listener (budget of {ACCEPT_BUDGET} accepts used)");
                return None;
            }
            *budget -= 1;
            if let Some(max) = self.max
                && open >= max
            {
                log::debug!("at --max-connections {max}: accepting paused");
                self.accepting = Accepting::Full;
                return None;
            }
            let Some(listener) = &self.listener else {
                self.accepting = Accepting::Idle;
                return None;
            };
            match listener.accept() {
                Ok(accepted) => return Some(accepted),
                Err(e) if would_block(&e) => {
                    log::trace!("accept wouldblock (the backlog is empty)");
                    self.end_failures(stats);
                    stats.would_blocks += 1;
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
                    stats.accept_errors += 1;
                    if !self.failing {
                        self.failing = true;
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
                    self.accepting = Accepting::Paused(deadline_after(now, ACCEPT_PAUSE));
                }
            }
        }
        None
    }
    // ANCHOR_END: accept

    /// Logs the end of a burst of accept failures. A burst ends when the
    /// backlog is empty, not at the first accept that works: while the
    /// process sits at its fd limit, every close lets one accept through
    /// before the next EMFILE, and that is still the same burst.
    fn end_failures(&mut self, stats: &Counters) {
        if self.failing {
            self.failing = false;
            log::info!(
                "accept caught up: the backlog is empty again ({} failed accepts so far)",
                stats.accept_errors
            );
        }
    }
}

/// Opens the sockets `config` asks for: the listener (TCP or Unix; none
/// with `--udp-only`) and, with `--udp`, a UDP socket on TCP's address
/// and port (the real one, for port 0).
pub fn open(config: &Config) -> Result<(Option<Listener>, Option<UdpSocket>), StartError> {
    warn_if_backlog_capped(config.backlog);
    let listen_err = |source| StartError::Listen {
        addr: config.bind.clone(),
        source,
    };
    let tcp = match &config.bind {
        Endpoint::Ip(addr) => *addr,
        unix => {
            if config.udp != UdpMode::Off {
                let why = "UDP needs an IP address, not a Unix-domain socket";
                return Err(listen_err(io::Error::new(io::ErrorKind::InvalidInput, why)));
            }
            let (listener, file) =
                net::listen_unix(unix, config.unix_mode, config.backlog).map_err(listen_err)?;
            let listener = Listener::Unix {
                listener: mio::net::UnixListener::from_std(listener),
                _file: file.map(SocketFile),
            };
            return Ok((Some(listener), None));
        }
    };
    let listener = match config.udp {
        UdpMode::Only => None,
        _ => Some(net::listen(tcp, config.backlog).map_err(listen_err)?),
    };
    let udp_addr = match &listener {
        Some(l) => l.local_addr().map_err(StartError::Setup)?,
        None => tcp,
    };
    let udp = match config.udp {
        UdpMode::Off => None,
        _ => Some(net::bind_udp(udp_addr, false).map_err(listen_err)?),
    };
    Ok((
        listener.map(|l| Listener::Tcp(TcpListener::from_std(l))),
        udp,
    ))
}

/// Warns that the kernel will silently cap a `--backlog` above somaxconn.
pub fn warn_if_backlog_capped(backlog: u32) {
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
