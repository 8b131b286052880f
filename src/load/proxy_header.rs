//! `load --proxy-protocol v1|v2`: each connection begins with the PROXY
//! header a proxy would send its backend, so a server that expects one
//! (`server --proxy-protocol`, or nginx and haproxy listening with
//! `accept-proxy`) can be loaded directly, and what it makes of the
//! header checked end to end.
//!
//! The header names the connection's own addresses, or `--proxy-source`
//! as the client, and goes out on the bare socket as soon as TCP is up:
//! before the TLS handshake over `tls://`, as a proxy sends it. It is a
//! few dozen bytes into an empty send buffer, so one write takes it
//! whole; a write that does not is a connect error, not a header cut in
//! two.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

use mio::net::TcpStream;
use ppp::{v1, v2};

/// Which header to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Version {
    /// The text header: `PROXY TCP4 SRC DST SPORT DPORT\r\n`.
    V1,
    /// The binary header (a PROXY command, TCP over IPv4 or IPv6).
    V2,
}

/// The client a header names instead of the connection's own address
/// (`--proxy-source IP` or `IP:PORT`; without a port, the connection's
/// own port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The client's address.
    pub ip: IpAddr,
    /// The client's port, if given.
    pub port: Option<u16>,
}

impl std::str::FromStr for Source {
    type Err = String;

    fn from_str(text: &str) -> Result<Source, String> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Source {
                ip: addr.ip(),
                port: Some(addr.port()),
            });
        }
        match text.parse::<IpAddr>() {
            Ok(ip) => Ok(Source { ip, port: None }),
            Err(_) => Err(format!(
                "{text:?} is not an IP address or IP:PORT (192.0.2.7, 192.0.2.7:40000, [2001:db8::7]:40000)"
            )),
        }
    }
}

/// What each connection sends first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// v1 or v2.
    pub version: Version,
    /// `--proxy-source`: the client to name, if not the connection's own.
    pub source: Option<Source>,
}

impl ProxyHeader {
    /// The header for a connection from `local` to `peer`.
    pub fn bytes(&self, local: SocketAddr, peer: SocketAddr) -> io::Result<Vec<u8>> {
        let client = match self.source {
            Some(Source { ip, port }) => SocketAddr::new(ip, port.unwrap_or(local.port())),
            None => local,
        };
        if client.is_ipv4() != peer.is_ipv4() {
            let why = format!("a PROXY header names one family: {client} and {peer} differ");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
        }
        match self.version {
            Version::V1 => Ok(v1::Addresses::from((client, peer)).to_string().into_bytes()),
            Version::V2 => v2::Builder::with_addresses(
                v2::Version::Two | v2::Command::Proxy,
                v2::Protocol::Stream,
                (client, peer),
            )
            .build(),
        }
    }

    /// Sends the header on `tcp`, just connected, in one write.
    pub fn send(&self, tcp: &TcpStream) -> io::Result<()> {
        let header = self.bytes(tcp.local_addr()?, tcp.peer_addr()?)?;
        let mut socket = tcp;
        match socket.write(&header) {
            Ok(n) if n == header.len() => Ok(()),
            Ok(n) => Err(io::Error::other(format!(
                "the PROXY header did not go out whole ({n} of {} bytes)",
                header.len()
            ))),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::proxy_header::{Parsed, parse};

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    /// What the generator sends, the server reads: both versions, both
    /// families, with and without --proxy-source.
    #[test]
    fn the_server_reads_what_the_generator_sends() {
        let (local, peer) = (addr("127.0.0.1:40000"), addr("127.0.0.1:7878"));
        let (local6, peer6) = (addr("[::1]:40000"), addr("[::1]:7878"));
        let named = Source {
            ip: "192.0.2.7".parse().unwrap(),
            port: None,
        };
        let cases = [
            (Version::V1, None, local, peer, local),
            (Version::V2, None, local, peer, local),
            (Version::V2, None, local6, peer6, local6),
            (
                Version::V1,
                Some(named),
                local,
                peer,
                addr("192.0.2.7:40000"),
            ),
            (
                Version::V2,
                Some("192.0.2.7:5".parse().unwrap()),
                local,
                peer,
                addr("192.0.2.7:5"),
            ),
        ];
        for (version, source, local, peer, client) in cases {
            let bytes = ProxyHeader { version, source }.bytes(local, peer).unwrap();
            assert_eq!(
                parse(&bytes),
                Parsed::Header {
                    len: bytes.len(),
                    version: if version == Version::V1 { 1 } else { 2 },
                    client: Some(client),
                },
                "{version:?} {source:?}"
            );
        }
        let v1 = ProxyHeader {
            version: Version::V1,
            source: None,
        };
        assert_eq!(
            v1.bytes(local, peer).unwrap(),
            b"PROXY TCP4 127.0.0.1 127.0.0.1 40000 7878\r\n"
        );
    }

    #[test]
    fn a_source_of_the_other_family_is_refused() {
        let header = ProxyHeader {
            version: Version::V2,
            source: Some("2001:db8::7".parse().unwrap()),
        };
        let err = header
            .bytes(addr("127.0.0.1:1"), addr("127.0.0.1:2"))
            .unwrap_err();
        assert!(err.to_string().contains("names one family"), "{err}");
    }

    #[test]
    fn a_source_is_an_address_with_or_without_a_port() {
        let s: Source = "[2001:db8::7]:9".parse().unwrap();
        assert_eq!((s.ip.to_string(), s.port), ("2001:db8::7".into(), Some(9)));
        let s: Source = "192.0.2.7".parse().unwrap();
        assert_eq!(s.port, None);
        let err = "example.com".parse::<Source>().unwrap_err();
        assert!(err.contains("is not an IP address"), "{err}");
    }
}
