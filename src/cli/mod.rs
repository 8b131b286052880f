//! The command line's shape: every subcommand, option and value parser
//! (clap derive; the `///` comments are the help text), one file per
//! subcommand, each holding its arguments, their `check()` and the
//! `config()` they make, side by side (ripgrep's layering):
//!
//! * [`server`], [`client`], [`load`], [`report`]: the four subcommands;
//! * [`tls_args`]: the TLS options the client and the load generator share;
//! * [`usage`]: a usage error found after parsing (exit 2), at the bottom.
//!
//! `main.rs` parses with [`Cli`] and dispatches; the tests read the same
//! definitions, so what `--help` promises is checked against what exists.

// The `///` comments here are help text for the terminal, not Markdown:
// `[::1]:7878` is an address, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use clap::{Parser, Subcommand};

pub use client::ClientArgs;
pub use load::{
    Bytes, LoadArgs, LoadTarget, MAX_MESSAGE, RateArg, RateSteps, default_tag, parse_coalesce,
    parse_connections, parse_host_port, parse_load_target, parse_messages, parse_spin, parse_tag,
    unescape,
};
pub use report::ReportArgs;
pub use server::{ServerArgs, parse_mode};
pub use tls_args::TlsArgs;
pub use usage::Usage;

use client::{CLIENT_EXAMPLES, CLIENT_LONG};
use load::{LOAD_EXAMPLES, LOAD_LONG};
use report::{REPORT_EXAMPLES, REPORT_LONG};
use server::{SERVER_EXAMPLES, SERVER_LONG};

pub mod client;
pub mod load;
pub mod report;
pub mod server;
pub mod tls_args;
pub mod usage;

/// Echo server, client and load generator on hand-rolled mio event loops,
/// plus a report of the load generator's logs.
#[derive(Parser, Debug)]
#[command(name = "echoloop", version = crate::VERSION, propagate_version = true,
          after_help = TOP_EXAMPLES)]
pub struct Cli {
    /// The part to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The four parts of echoloop.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the TCP echo server (prints `listening on ADDR` once ready).
    #[command(after_help = SERVER_EXAMPLES, after_long_help = SERVER_LONG)]
    Server(ServerArgs),
    /// Send an HTTP GET (or --data) and print Python's repr() of the reply.
    #[command(after_help = CLIENT_EXAMPLES, after_long_help = CLIENT_LONG)]
    Client(ClientArgs),
    /// Drive an echo server with many connections and measure it.
    #[command(after_help = LOAD_EXAMPLES, after_long_help = LOAD_LONG)]
    Load(Box<LoadArgs>),
    /// Merge `echoloop load --hdr-log` files and summarize them (--html:
    /// a page of charts).
    #[command(after_help = REPORT_EXAMPLES, after_long_help = REPORT_LONG)]
    Report(ReportArgs),
    /// Write a certificate and key for a proxy or a server, the man pages,
    /// or a shell's completions.
    #[command(subcommand, after_help = GENERATE_EXAMPLES)]
    Generate(Generate),
}

/// `echoloop generate`: what ripgrep calls `--generate`, without a build
/// script: the pages and scripts come from the same clap definitions.
#[derive(Subcommand, Debug)]
pub enum Generate {
    /// A certificate and its key, for a proxy that terminates TLS (haproxy,
    /// nginx) or `server --tls-cert/--tls-key`: DIR/cert.pem and
    /// DIR/key.pem (mode 0600). ECDSA P-256, self-signed, not a CA, the
    /// names as subjectAltNames; clients trust it with `--cacert
    /// DIR/cert.pem`. Files already there are refused, not overwritten.
    #[command(after_help = CERT_EXAMPLES)]
    Cert {
        /// Where to write cert.pem and key.pem (created if missing).
        #[arg(value_name = "DIR")]
        dir: std::path::PathBuf,
        /// A name the certificate is for: a DNS name (`*.` first for a
        /// wildcard) or an IP address; repeat for more. Default:
        /// localhost, 127.0.0.1 and ::1.
        #[arg(long = "name", value_name = "NAME", value_parser = crate::shared::certificate::check_name)]
        names: Vec<String>,
    },
    /// One man page per subcommand (echoloop.1, echoloop-server.1, ...)
    /// into DIR.
    Man {
        /// Where to write the pages (created if missing).
        #[arg(value_name = "DIR")]
        dir: std::path::PathBuf,
    },
    /// The completion script for SHELL, on stdout.
    Complete {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

/// Under `echoloop generate --help`.
const GENERATE_EXAMPLES: &str = "Examples:
  echoloop generate cert tls --name proxy.example   # tls/cert.pem and tls/key.pem
  echoloop generate man man1                        # man1/echoloop.1, man1/echoloop-server.1, ...
  echoloop generate complete bash                   # > /etc/bash_completion.d/echoloop

Exit codes: 0 written; 1 a file could not be written; 2 usage.";

/// Under `echoloop generate cert --help`.
const CERT_EXAMPLES: &str = "Examples:
  echoloop generate cert local                            # local/cert.pem, local/key.pem: localhost, 127.0.0.1, ::1
  echoloop generate cert proxy --name proxy.example --name 10.0.0.5
  echoloop server --tls --tls-cert local/cert.pem --tls-key local/key.pem
  cat proxy/cert.pem proxy/key.pem > proxy/haproxy.pem    # haproxy: bind :8443 ssl crt proxy/haproxy.pem

Exit codes: 0 written; 1 a file could not be written (or exists already);
2 usage (a name that is neither a DNS name nor an IP address).";

/// Typical command lines, under `echoloop --help`.
const TOP_EXAMPLES: &str = "Examples:
  echoloop server                            # echo on 127.0.0.1:7878
  echoloop client 127.0.0.1:7878 --data hi --half-close   # prints b'hi'
  echoloop load 127.0.0.1:7878 -d 5s         # 50 connections, closed loop
  echoloop report run.hlog --html run.html   # merge --hdr-log files

Each subcommand's --help has its own examples; --help (long) lists its exit
codes. Linux only.";

/// `echoloop generate man DIR`: writes `echoloop.1` and one page per
/// visible subcommand (`echoloop-load.1`, ...) into `dir`, and returns
/// their paths.
pub fn write_man_pages(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    let top = Cli::command();
    let mut pages = vec![(String::from("echoloop"), top.clone())];
    for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("echoloop-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name).version(crate::VERSION)));
    }
    let mut written = Vec::new();
    for (name, cmd) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut file = std::fs::File::create(&path)?;
        clap_mangen::Man::new(cmd).render(&mut file)?;
        written.push(path);
    }
    Ok(written)
}

/// `echoloop generate complete SHELL`: the completion script on `out`.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "echoloop", out);
}
