//! Why the server closed a connection: the one vocabulary the loop, the
//! debug log and the counters (TLS's among them) share. At the bottom of
//! the server module: it names a fault's [`End`] and nothing above.

use std::fmt;
use std::io;

use super::faults::End;

/// Why a connection was closed (for the debug log and the counters). The
/// load generator's reasons have the same names where they mean the same
/// thing.
#[derive(Debug)]
pub(super) enum Close {
    /// The peer sent EOF and got everything back.
    Done,
    /// An I/O error on this connection.
    Failed(io::Error),
    /// Silent for longer than `--idle-timeout`.
    Timeout,
    /// Ended on purpose (`--reset-after`).
    Injected(End),
}

impl fmt::Display for Close {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Close::Done => f.write_str("peer finished"),
            Close::Failed(e) => write!(f, "error: {e}"),
            Close::Timeout => f.write_str("idle timeout"),
            Close::Injected(end) => write!(f, "{end} on purpose"),
        }
    }
}
