//! What the four programs share: the small core every loop in this crate
//! is built from. Nothing in here knows about echoing, HTTP or load; the
//! server, the client, the load generator and the report each import from
//! here and never from one another.
//!
//! - [`readiness`] — the event type each reactor's `turn` takes, and the
//!   drain rule (when a socket has been read dry). Read this first.
//! - [`net`] — sockets: the listener, `would_block`/`interrupted`, how a
//!   non-blocking connect finishes, error messages, the fd limit.
//! - [`duration`] — `500ms`, `10s`, `2.5k/s` as people type them, range
//!   checked, and deadline arithmetic that cannot overflow.
//! - [`addr`] — `host:port` and `[v6]:port`, as people type them; and
//!   [`addr::Endpoint`], a TCP address or a Unix-domain socket.
//! - [`stream`] — a connected TCP or Unix-domain stream, as one type.
//! - [`tls_stream`] — TLS on a non-blocking socket: a rustls session
//!   read and written as plaintext, its ciphertext read into one buffer
//!   per thread.
//! - [`tls`] — setting TLS up: certificates, keys, the client's
//!   configuration.
//! - [`certificate`] — certificates made here: `server --tls`'s own, and
//!   `generate cert`'s for a proxy.
//! - [`trust`] — whom a TLS client trusts (`--cacert`, `-k`), and a
//!   failed handshake in words.
//! - [`tickets`] — where a TLS client keeps its session tickets, as many
//!   per server as it is told (a generator's churn uses many at once).
//! - [`mmsg`] — many datagrams per system call (`recvmmsg`,
//!   `sendmmsg`), and why a short batch means the socket is empty.
//! - [`cpu`] — a thread's own CPU time, over a measured window.
//! - [`dice`] — splitmix64: repeatable randomness from a seed.
//! - [`wall`] — wall-clock times (`--start-at`): RFC 3339 or unix seconds.
//! - [`input`] — files named on the command line, read whole, bounded
//!   in size and in the time a FIFO's writer may take.
//! - [`stop`] — SIGINT and SIGTERM as a flag a loop asks at each turn:
//!   a run stopped from outside ends as at its deadline.
//! - [`exporter`] — a Prometheus endpoint's HTTP side, one part of a
//!   loop (the server's `--metrics`, and the load generator's).
//! - [`offload`] — blocking writes moved off a loop, through a bounded
//!   queue the loop never waits on.

pub mod addr;
pub mod certificate;
pub mod cpu;
pub mod dice;
pub mod duration;
pub mod exporter;
#[cfg(test)]
pub(crate) mod fake;
pub mod input;
pub mod mmsg;
pub mod net;
pub mod offload;
pub mod readiness;
pub mod spread;
pub mod stop;
pub mod stream;
pub mod tickets;
pub mod tls;
pub mod tls_stream;
pub mod trust;
pub mod wall;
