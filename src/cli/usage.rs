//! A usage error found after parsing: what clap cannot check alone
//! (options that conflict once resolved, a file that is not there). At the
//! bottom of the command line: every subcommand's `check()` returns one.

use clap::error::ErrorKind;

/// A usage error found after parsing: clap's kind and the message. `main`
/// prints it in clap's format and exits 2, like one clap finds itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// clap's classification (value, conflict, missing argument).
    pub kind: ErrorKind,
    /// What is wrong, in one line.
    pub msg: String,
}

impl Usage {
    pub(super) fn new(kind: ErrorKind, msg: impl Into<String>) -> Usage {
        Usage {
            kind,
            msg: msg.into(),
        }
    }
}
