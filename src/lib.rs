//! echoloop: a TCP echo server, an HTTP GET client and a load generator,
//! each driven by a hand-rolled `mio` event loop, and a report that merges
//! the generators' logs.
//!
//! The tree is the architecture: four programs over a small shared core,
//! and no program imports another.
//!
//! ```text
//! src/
//! ├── main.rs        the command line: parse → run → print one line → exit
//! ├── cli/           the subcommands, one file each: options, check(), config()
//! ├── shared/        what every loop is built from
//! ├── server/        echoloop server: the reactor, a connection, counters
//! ├── client/        echoloop client: one connection's state machine
//! ├── load/          echoloop load: the server's reactor turned around
//! └── report/        echoloop report: merges --hdr-log files, draws a page
//! ```
//!
//! # How to read this crate
//!
//! 1. [`shared::readiness`] — the event each loop's `turn` takes, and the
//!    drain rule: when an edge-triggered socket has been read dry.
//! 2. [`server`] — the reactor: `run` (poll, then `turn`), `turn(now,
//!    batch)`, `next_deadline()`, `on_timers(now)`, each a list of calls
//!    to named parts (the acceptor, the connections, the timers, control).
//!    Then its connection (what it owes, which readiness it needs; tested
//!    against a scripted fake stream) and its counters.
//! 3. [`client`] — a second, smaller loop: one connection as a state
//!    machine, resolving → connecting → writing → reading → done.
//! 4. [`load`] — the server's loop shape again, with the roles swapped:
//!    one loop (its `engine`) for a stream generator and a datagram
//!    generator, many client connections, every echoed byte checked,
//!    latency measured.
//! 5. [`report`] — not a loop: reading HdrHistogram logs in bounded
//!    memory (each histogram checked before it is decoded), merging them,
//!    drawing charts; and writing `load --hdr-log` off the generator's loop.
//! 6. The rest of [`shared`]: sockets ([`shared::net`]), durations and
//!    deadlines ([`shared::duration`]), `host:port` ([`shared::addr`]),
//!    and TLS on the same loops ([`shared::tls`]: rustls fed by the loop,
//!    and the two rules of the loop that TLS changes).
//!
//! Before all of this, `examples/` walks from the blocking server of the
//! Python socket tutorial to a 100-line reactor; see README.

#[cfg(not(target_os = "linux"))]
compile_error!(
    "echoloop runs on Linux only: it is built on epoll (through mio), timerfd, \
     SO_REUSEPORT and Linux's abstract Unix sockets"
);

/// This build's version: the package version, and the git commit when it
/// was built from a checkout (`0.1.0 (3f2c1a9d0b7e)`, see `build.rs`).
pub const VERSION: &str = env!("ECHOLOOP_VERSION");

pub mod cli;
pub mod client;
pub mod load;
pub mod report;
pub mod server;
pub mod shared;
