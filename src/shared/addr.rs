//! Host and port, as people type them: `host:port`, `[v6]:port`, a bare
//! IPv6 literal. The client's SERVER argument and the load generator's
//! ADDR both go through here, so they accept (and refuse) the same text.
//! And [`Endpoint`]: a TCP address or a Unix-domain socket, as `--bind`
//! and the targets spell them; and [`resolve`], the one place a host name
//! becomes addresses (the client, its UDP exchange and the load generator
//! all ask here, and fail the same way: [`Unresolved`], exit 6).

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;

/// Where a server listens, or what a client or load generator connects
/// to, when it is not a host name: a TCP address, a Unix-domain socket
/// file (`unix:/path`), or a name in Linux's abstract namespace
/// (`unix:@name`, no file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// An IP address and port, `127.0.0.1:7878`, `[::1]:7878`: TCP, or
    /// UDP where the program was asked for it.
    Ip(SocketAddr),
    /// `unix:/run/echo.sock` (or a relative path).
    Unix(PathBuf),
    /// `unix:@echo`: the abstract socket named `echo`.
    Abstract(String),
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Endpoint, String> {
        match text.strip_prefix("unix:") {
            Some("") | Some("@") => Err(format!("`{text}` has no path")),
            Some(name) => match name.strip_prefix('@') {
                Some(name) => Ok(Endpoint::Abstract(name.to_string())),
                None => Ok(Endpoint::Unix(PathBuf::from(name))),
            },
            None => text
                .parse()
                .map(Endpoint::Ip)
                .map_err(|_| format!("`{text}` is not ADDR:PORT, [V6]:PORT or unix:PATH")),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Ip(addr) => write!(f, "{addr}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Abstract(name) => write!(f, "unix:@{name}"),
        }
    }
}

/// `HOST:PORT`, `[V6]:PORT` split into host and port, where the port is
/// required (what `echoloop load` takes; the client's SERVER defaults it).
pub fn host_and_port(spec: &str) -> Result<(String, u16), String> {
    match split_host_port(spec.trim())? {
        ("", _) => Err(format!("`{spec}` has no host")),
        (host, Some(port)) => Ok((host.to_string(), port)),
        (_, None) => Err(format!(
            "`{spec}` has no port (try 127.0.0.1:7878 or localhost:7878)"
        )),
    }
}

/// Splits `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 literal
/// into the host (without brackets) and the port, if there is one.
pub(crate) fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("missing `]` in `{authority}`"))?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(parse_port(port)?))),
                None => Err(format!("unexpected `{after}` after `]`")),
            },
        };
    }
    match authority.matches(':').count() {
        0 => Ok((authority, None)),
        1 => {
            let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
            Ok((host, Some(parse_port(port)?)))
        }
        _ => Ok((authority, None)), // a bare IPv6 literal such as ::1
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("`{text}` is not a port (1-65535)")),
    }
}

/// A host name the system resolver did not turn into any address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// The host name asked for.
    pub host: String,
    /// The resolver's own words, e.g. "Name or service not known".
    pub why: String,
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not resolve host {}: {}", self.host, self.why)
    }
}

impl std::error::Error for Unresolved {}

/// Every address of `host` (a name or an IP literal) at `port`, in the
/// resolver's order; never empty. Blocks while the system resolver works
/// (before any event loop starts).
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Unresolved> {
    let unresolved = |why: String| Unresolved {
        host: host.to_string(),
        why,
    };
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| unresolved(resolver_message(&e)))?
        .collect();
    if addrs.is_empty() {
        return Err(unresolved("no addresses".to_string()));
    }
    Ok(addrs)
}

/// The resolver's own message, without std's "failed to lookup address
/// information: " prefix ("Name or service not known").
pub fn resolver_message(err: &io::Error) -> String {
    let text = err.to_string();
    match text.split_once("information: ") {
        Some((_, message)) => message.to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spelling of an endpoint, and back to text.
    #[test]
    fn endpoints_parse_and_print() {
        for (text, want) in [
            ("127.0.0.1:7", Endpoint::Ip("127.0.0.1:7".parse().unwrap())),
            ("[::1]:7", Endpoint::Ip("[::1]:7".parse().unwrap())),
            ("unix:/tmp/e.sock", Endpoint::Unix("/tmp/e.sock".into())),
            ("unix:rel.sock", Endpoint::Unix("rel.sock".into())),
            ("unix:@echo", Endpoint::Abstract("echo".into())),
        ] {
            let got: Endpoint = text.parse().unwrap();
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string(), text);
        }
        for bad in ["unix:", "unix:@", "localhost:7", "nonsense"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }

    /// `load`'s ADDR: a host and a port, both required.
    #[test]
    fn host_and_port_requires_both() {
        assert_eq!(
            host_and_port("localhost:7878"),
            Ok(("localhost".into(), 7878))
        );
        assert_eq!(host_and_port("[::1]:7"), Ok(("::1".into(), 7)));
        for bad in ["nowhere", ":7", "h:x", "[::1]", "h:0"] {
            assert!(host_and_port(bad).is_err(), "{bad:?} was accepted");
        }
    }

    /// One resolver for all: literals resolve to themselves, a name that
    /// does not exist is `Unresolved` with the resolver's words.
    #[test]
    fn resolving_literals_and_failures() {
        let v4: SocketAddr = "127.0.0.1:7".parse().unwrap();
        assert_eq!(resolve("127.0.0.1", 7).unwrap(), [v4]);
        let v6: SocketAddr = "[::1]:7".parse().unwrap();
        assert_eq!(resolve("::1", 7).unwrap(), [v6]);
        // .invalid never resolves (RFC 6761).
        let err = resolve("no-such-host.invalid", 7).unwrap_err();
        assert_eq!(err.host, "no-such-host.invalid");
        assert!(!err.why.is_empty());
        assert!(
            err.to_string()
                .starts_with("could not resolve host no-such-host.invalid: "),
            "{err}"
        );
    }
}
