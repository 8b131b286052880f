//! `echoloop client`: its options.

// The `///` comments here are help text for the terminal, not Markdown:
// `[::1]:7878` is an address, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::time::Duration;

use clap::Args;

use super::tls_args::TlsArgs;
use crate::shared::duration::parse_duration;

pub(super) const CLIENT_EXAMPLES: &str = "Examples:
  echoloop client example.com
  echoloop client http://127.0.0.1:8000/index.html
  echoloop client 127.0.0.1:7878 --data 'hello' --half-close
  echoloop client udp://127.0.0.1:7878 --data ping";

pub(super) const CLIENT_LONG: &str = "Examples:
  echoloop client example.com
  echoloop client http://127.0.0.1:8000/index.html
  echoloop client 127.0.0.1:7878 --data 'hello' --half-close
  echoloop client udp://127.0.0.1:7878 --data ping

Exit codes (curl's, where curl has one):
  0   the reply was read to EOF and printed
  1   the event loop failed
  2   usage, or a bad SERVER
  6   could not resolve the host
  7   could not connect (UDP: ICMP port unreachable)
  23  could not write the output
  26  could not read --data-file
  28  timed out (connecting, sending, receiving, writing stdout; UDP: no
      reply)
  55  sending failed, or reset before the request was all out
  56  receiving failed
  63  the reply outgrew --max-reply";

/// Options of `echoloop client`.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// host, host:port, [v6addr]:port, http://host[:port][/path],
    /// udp://host:port (one datagram), unix:/path/echo.sock or unix:@name.
    /// Asked for at a prompt when missing and stdin is a terminal.
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,

    /// Port (overrides SERVER's; default 80).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// Request path (overrides SERVER's; default /).
    #[arg(long)]
    pub path: Option<String>,

    /// Send TEXT instead of the GET request.
    #[arg(long, value_name = "TEXT", conflicts_with = "data_file")]
    pub data: Option<String>,

    /// Send the bytes of FILE instead of the GET request.
    #[arg(long, value_name = "FILE")]
    pub data_file: Option<std::path::PathBuf>,

    /// Shut down the sending side once the request is out (an echo server
    /// then echoes and closes).
    #[arg(long)]
    pub half_close: bool,

    /// Write the reply's bytes unchanged, as they arrive, instead of repr().
    #[arg(long)]
    pub raw: bool,

    /// Give up on one address after this long (10s, 500ms, or seconds).
    #[arg(long, value_name = "DURATION", default_value = "10", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Give up on the whole exchange after this long (writing the reply to
    /// stdout included). On a timeout the reply so far is printed first.
    #[arg(long, value_name = "DURATION", default_value = "30", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Without --raw, the most reply bytes to hold for repr(); a longer
    /// reply stops the client with exit 63. --raw streams without a limit.
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    pub max_reply: u64,

    /// How to speak TLS (https://, tls://).
    #[command(flatten)]
    pub tls: TlsArgs,

    /// Log each state transition and each read and write size to stderr.
    #[arg(short, long)]
    pub verbose: bool,
}
