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
//! The command-line shell is `src/main.rs`: it parses arguments, calls into
//! these modules and maps errors to exit codes.

pub mod connection;
pub mod duration;
pub mod net;
pub mod server;
pub mod stats;
