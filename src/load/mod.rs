//! The load generator: many client connections, each a small state
//! machine, on one `mio::Poll` — the server's reactor turned around.
//!
//! Each connection sends a stream of fixed-size messages and checks every
//! echoed byte against what it sent, however the replies are segmented
//! (the bytes come from one shared random [`tape`]).
//!
//! Two ways to drive the server:
//!
//! * **Closed loop** (the default): each connection keeps `--pipeline K`
//!   messages in flight and sends the next only when an echo has come back
//!   in full. Latency is measured from the actual send.
//! * **Open loop** (`--rate R`): messages are due on a fixed schedule, R per
//!   second over all connections, whether or not earlier echoes came back.
//!   Latency is measured from the time a message was *due*, so a server that
//!   stalls is charged for the whole stall, not only for the one message
//!   that was waiting (the "coordinated omission" trap).
//!
//!   A schedule the generator itself cannot keep is reported, not hidden:
//!   due messages wait in a backlog (a count, not a queue, so memory stays
//!   flat whatever the rate) and are handed to connections whose sockets
//!   have taken everything so far; the report says how many were due, how
//!   many were sent, how many never were, and how late the sends were. The
//!   schedule ([`schedule`], one for both generators) is kept with a
//!   timerfd ([`timer`]), not the poll's millisecond timeout.
//!
//! The clock starts once the connections are up (with `--connect-rate`, at
//! once: the ramp is part of the run): `--warmup`, then `--duration`. So a
//! run shorter than connecting still measures what it was asked to.
//!
//! The costs per message are the server's mirror image: one `write`, one
//! `read` (a short read means the socket is drained: no read that only says
//! `WouldBlock`), and a share of one `epoll_wait`. Sockets are registered
//! once for both directions and never re-registered.
//!
//! Reading order: [`engine`] is the one loop both generators run (poll,
//! then `turn`, then the intervals and the end), the server's loop turned
//! around name for name; [`stream`] is the stream generator and
//! [`datagrams`] the same over UDP sockets (`udp://`), each an `Engine`.
//! The stream generator's slots live in [`pool`] (connect, handshake,
//! recycle, down, behind one traced `set_phase`), one connection's bytes in
//! [`connection`]; [`window`] says whether the window is open, settling
//! after its end, or halted. [`schedule`] and [`plan`] keep the open loop's
//! time, [`timer`] wakes it; [`counters`] count, [`intervals`] cut
//! `--interval`; [`outcome`] is what a run tells (types, then the human
//! and JSON renderings), [`thresholds`] what `--fail-if` judges by it,
//! [`metrics`] the live figures served to Prometheus (`--metrics`);
//! [`threads`] runs one generator here or N side by
//! side (`--threads`).
//!
//! Imports point down, and `tests/imports.rs` fails on a circle. The
//! floors, each importing only from those below it:
//!
//! ```text
//!   mod.rs                              run
//!   threads                             one generator here, or N side by side
//!   stream, datagrams                   the two generators
//!   engine, pool                        the one loop; the slots' lives
//!   intervals, connection               --interval; one connection's bytes
//!   counters                            what a run counts
//!   schedule, config, resolve           the open loop's time; what a run is asked; the target
//!   thresholds, metrics                 --fail-if on the summary's JSON; --metrics, served
//!   outcome, plan, tape, timer, window  the bottom: words, plans, bytes, a timerfd
//! ```

use std::io;

pub use crate::shared::dice::splitmix64;
pub use config::{COALESCE, Config};
/// The bytes before the tape in each datagram of `load udp://` (sequence,
/// socket, magic): the smallest `-s` over UDP.
pub use datagrams::HEADER as DATAGRAM_HEADER;
pub use outcome::{
    DatagramFigures, Ending, Errors, Failure, Fate, Interval, Progress, RunStage, Schedule, Shape,
    Summary, Update, repeats,
};
pub use plan::Plan;
pub use pool::RECONNECT_BACKOFF;
pub use proxy_header::ProxyHeader;
pub use resolve::resolve;
pub use tape::{Payload, Reply};

mod config;
mod connection;
mod counters;
mod datagrams;
mod engine;
mod intervals;
pub mod metrics;
mod outcome;
pub mod plan;
mod pool;
pub mod proxy_header;
mod resolve;
mod schedule;
mod stream;
mod tape;
#[cfg(test)]
mod tests;
mod threads;
pub mod thresholds;
mod timer;
mod window;

/// Runs a whole load test: one generator on this thread, or `--threads` side by side.
pub fn run(config: Config, progress: impl FnMut(Update<'_>)) -> io::Result<Summary> {
    if config.threads > 1 {
        threads::run(config, progress)
    } else {
        threads::run_one(config, progress)
    }
}
