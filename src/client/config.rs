//! What `echoloop client` is told ([`Config`]) and how it can fail
//! ([`ClientError`], each kind with its exit code): the vocabulary at the
//! bottom of the client, which the state machine in [`client`](super) and
//! the datagram exchange in `udp` both use.

use std::fmt;
use std::io;
use std::time::Duration;

use super::target::Target;
use crate::shared::addr::Unresolved;
use crate::shared::net::describe;

/// Everything `echoloop client` can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to connect, and the path for the request.
    pub target: Target,
    /// The bytes to send: the GET request, or `--data`/`--data-file`.
    pub payload: Vec<u8>,
    /// Shut down our sending side once the payload is out (an echo server
    /// then sees EOF, echoes, and closes).
    pub half_close: bool,
    /// Stream the reply's bytes as they arrive instead of printing `repr()`.
    pub raw: bool,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long the whole exchange may take, connecting included.
    pub timeout: Duration,
    /// The most reply bytes held for `repr()` (not used with `raw`).
    pub max_reply: u64,
    /// TLS (`https://`, `tls://`): how to verify the server and what to
    /// present to it.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// Why the exchange failed. Each kind has its own exit code, following curl.
#[derive(Debug)]
pub enum ClientError {
    /// The resolver found no address for the host (exit 6).
    Resolve(Unresolved),
    /// No address accepted the connection (exit 7).
    Connect {
        /// `host:port`.
        target: String,
        /// Why the last address failed.
        source: io::Error,
    },
    /// A deadline passed (exit 28).
    Timeout {
        /// `host:port`.
        target: String,
        /// What we were doing: "connecting to", "sending to", "reading from".
        during: &'static str,
        /// The limit that was exceeded.
        after: Duration,
    },
    /// Sending failed after connecting, or the connection failed while the
    /// payload was still going out (exit 55).
    Send {
        /// `host:port`.
        target: String,
        /// What the kernel said.
        source: io::Error,
        /// Payload bytes written before the failure.
        sent: usize,
        /// Payload bytes in all.
        total: usize,
    },
    /// The reply outgrew `--max-reply` (exit 63, curl's "maximum file size
    /// exceeded").
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// Receiving failed, e.g. the connection was reset (exit 56).
    Recv {
        /// `host:port`.
        target: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// Writing the reply to stdout failed (exit 23).
    Output(io::Error),
    /// `--data-file` could not be read (exit 26, curl's "read error").
    DataFile {
        /// The file.
        path: std::path::PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The poller could not be created or used (exit 1).
    Poll(io::Error),
    /// The TLS handshake failed (exit 35, curl's "SSL connect error").
    Handshake {
        /// `host:port`.
        target: String,
        /// Why, in rustls's words.
        source: io::Error,
    },
    /// The server's certificate could not be verified (exit 60, curl's
    /// "peer certificate cannot be authenticated").
    Certificate {
        /// `host:port`.
        target: String,
        /// Why, in rustls's words.
        source: io::Error,
    },
    /// TLS could not be set up: `--cacert`, `--cert`, `--key` (exit 58 or
    /// 77, as curl's).
    TlsSetup(crate::shared::tls::TlsSetupError),
}

impl ClientError {
    /// The process exit code for this error (curl's numbers where they fit).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Resolve(_) => 6,
            ClientError::Connect { .. } => 7,
            ClientError::Timeout { .. } => 28,
            ClientError::Send { .. } => 55,
            ClientError::TooLarge { .. } => 63,
            ClientError::Recv { .. } => 56,
            ClientError::Output(_) => 23,
            ClientError::DataFile { .. } => 26,
            ClientError::Poll(_) => 1,
            ClientError::Handshake { .. } => 35,
            ClientError::Certificate { .. } => 60,
            ClientError::TlsSetup(e) => e.exit_code(),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Resolve(unresolved) => write!(f, "{unresolved}"),
            ClientError::DataFile { path, source } => {
                write!(f, "cannot read {}: {}", path.display(), describe(source))
            }
            ClientError::Connect { target, source } => {
                write!(f, "failed to connect to {target}: {}", describe(source))
            }
            ClientError::Timeout {
                target,
                during,
                after,
            } => write!(
                f,
                "timed out after {} s {during} {target}",
                after.as_secs_f64()
            ),
            ClientError::Send {
                target,
                source,
                sent,
                total,
            } => write!(
                f,
                "failed sending to {target}: {} (sent {sent} of {total} bytes)",
                describe(source)
            ),
            ClientError::TooLarge { limit } => write!(
                f,
                "the reply is larger than --max-reply ({limit} bytes); use --raw to stream it"
            ),
            ClientError::Recv { target, source } => {
                write!(f, "failed receiving from {target}: {}", describe(source))
            }
            ClientError::Output(e) => write!(f, "cannot write the reply: {}", describe(e)),
            ClientError::Poll(e) => write!(f, "event loop failed: {}", describe(e)),
            ClientError::Handshake { target, source } => {
                let why = crate::shared::trust::explain(source);
                write!(f, "TLS handshake with {target} failed: {why}")
            }
            ClientError::Certificate { target, source } => {
                let why = crate::shared::trust::explain(source);
                write!(f, "the certificate of {target} cannot be trusted: {why}")
            }
            ClientError::TlsSetup(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}
