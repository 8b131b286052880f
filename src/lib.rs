//! echoloop: a TCP echo server, an HTTP GET client and a load generator,
//! each driven by a hand-rolled `mio` event loop on a single thread.
//!
//! # How to read this crate
//!
//! Start with the server, then the pieces it uses:
//!
//! - [`server`] — the reactor: one `Poll`, the listener, the loop, timers.
//! - [`connection`] — one echo connection: what it owes, which readiness it
//!   needs; unit-tested against a scripted fake stream.
//! - [`net`] — the listening socket and the `would_block`/`interrupted` helpers.
//! - [`stats`] — the loop's counters, the `--stats` line and the summary.
//! - [`duration`] — parsing `500ms`, `10s`, `1.5`.
//!
//! Then the client, a second, smaller event loop:
//!
//! - [`client`] — the state machine: resolving → connecting → writing →
//!   reading → done, on one `Poll`.
//! - [`target`] — the SERVER argument and the exact HTTP request.
//! - [`repr`] — Python's `repr()` of bytes, for the client's output.
//! - [`stdout`] — stdout written without ever waiting past the deadline.
//!
//! Last, the load generator, the server's reactor turned around:
//!
//! - [`load`] — many connections, each a small state machine, on one `Poll`;
//!   closed or open loop, every echoed byte checked, latency histograms.
//! - [`timer`] — a timerfd in the poll, for an open-loop schedule kept to
//!   the microsecond (poll timeouts are whole milliseconds).
//!
//! The command-line shell is `src/main.rs`: it parses arguments, calls into
//! these modules and maps errors to exit codes.

#![warn(missing_docs)]

pub mod client;
pub mod connection;
pub mod duration;
pub mod load;
pub mod net;
pub mod repr;
pub mod server;
pub mod stats;
pub mod stdout;
pub mod target;
pub mod timer;
