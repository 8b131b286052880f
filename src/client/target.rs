//! What `echoloop client` connects to: parsing `host`, `host:port`,
//! `[v6addr]:port`, `http://host[:port][/path]`,
//! `https://host[:port][/path]`, `tls://host:port`, `udp://host:port` and
//! `unix:/path` (or `unix:@name`), and the exact HTTP request that goes
//! with it.

use std::fmt;

use crate::shared::addr::{Endpoint, split_host_port};

/// How the client talks to its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A TCP connection (SERVER is a host, or `http://…`).
    Tcp,
    /// One datagram each way (`udp://host:port`).
    Udp,
    /// A Unix-domain stream socket (`unix:/path`, `unix:@name`).
    Unix(Endpoint),
    /// TLS over TCP: `https://…` (port 443 unless given) or
    /// `tls://host:port` (raw TLS, for `--data` and `--half-close`).
    Tls,
}

/// A parsed SERVER argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or address literal, without IPv6 brackets (`localhost`
    /// for a Unix-domain socket: what the Host header says).
    pub host: String,
    /// TCP or UDP port (80, or 443 for https, unless given; unused over a
    /// Unix socket).
    pub port: u16,
    /// The scheme's own port, which the `Host` header leaves out.
    pub default_port: u16,
    /// Request path, starting with `/`.
    pub path: String,
    /// TCP, UDP, or a Unix-domain socket.
    pub transport: Transport,
}

impl Target {
    /// Parses SERVER; `port` and `path` (from `--port`, `--path`) win over
    /// what SERVER says.
    pub fn parse(spec: &str, port: Option<u16>, path: Option<&str>) -> Result<Target, String> {
        let spec = spec.trim();
        if spec.starts_with("unix:") {
            let endpoint: Endpoint = spec.parse()?;
            return Ok(Target {
                host: "localhost".to_string(),
                port: 80,
                default_port: 80,
                path: path.map_or("/".to_string(), |p| {
                    format!("/{}", p.trim_start_matches('/'))
                }),
                transport: Transport::Unix(endpoint),
            });
        }
        let mut default_port = 80;
        let (rest, transport) = match spec.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (rest, Transport::Tcp),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("udp") => (rest, Transport::Udp),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("tls") => (rest, Transport::Tls),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => {
                default_port = 443;
                (rest, Transport::Tls)
            }
            Some((scheme, _)) => {
                return Err(format!(
                    "unsupported scheme `{scheme}://` (http://, https://, tls://, udp:// or unix:)"
                ));
            }
            None => (spec, Transport::Tcp),
        };
        let (authority, url_path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, url_port) = split_host_port(authority)?;
        if host.is_empty() {
            return Err(format!("no host in `{spec}`"));
        }
        let path = match path {
            Some(p) if p.starts_with('/') => p.to_string(),
            Some(p) => format!("/{p}"),
            None => url_path.to_string(),
        };
        if path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(format!(
                "the path `{path}` has spaces or control characters"
            ));
        }
        let port = port.or(url_port);
        if port.is_none()
            && default_port == 80
            && matches!(transport, Transport::Udp | Transport::Tls)
        {
            let scheme = if transport == Transport::Udp {
                "udp"
            } else {
                "tls"
            };
            return Err(format!("`{spec}` has no port ({scheme}://HOST:PORT)"));
        }
        Ok(Target {
            host: host.to_string(),
            port: port.unwrap_or(default_port),
            default_port,
            path,
            transport,
        })
    }

    /// The `Host` header's value: the host (bracketed if IPv6), with
    /// `:port` unless the port is the scheme's own (80; 443 for https).
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The request: `GET <path> HTTP/1.1`, `Host`, `Connection: close`.
    pub fn request(&self) -> Vec<u8> {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.path,
            self.host_header()
        )
        .into_bytes()
    }
}

impl fmt::Display for Target {
    /// `host:port`, with brackets around IPv6 literals; `unix:/path`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Transport::Unix(endpoint) = &self.transport {
            return write!(f, "{endpoint}");
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(spec: &str) -> Target {
        Target::parse(spec, None, None).unwrap()
    }

    #[test]
    fn every_documented_form_parses() {
        let cases = [
            ("example.com", "example.com", 80, "/"),
            ("example.com:8080", "example.com", 8080, "/"),
            ("[::1]:7878", "::1", 7878, "/"),
            ("[::1]", "::1", 80, "/"),
            ("::1", "::1", 80, "/"),
            ("http://example.com", "example.com", 80, "/"),
            (
                "HTTP://example.com:81/a/b?c=d",
                "example.com",
                81,
                "/a/b?c=d",
            ),
            ("http://[::1]:8000/x", "::1", 8000, "/x"),
            ("127.0.0.1:7878", "127.0.0.1", 7878, "/"),
        ];
        for (spec, host, port, path) in cases {
            let got = t(spec);
            assert_eq!(
                (got.host.as_str(), got.port, got.path.as_str()),
                (host, port, path),
                "{spec}"
            );
        }
    }

    /// `udp://` needs a port; `unix:` takes a path or an abstract name.
    #[test]
    fn udp_and_unix_targets() {
        let u = t("udp://127.0.0.1:7");
        assert_eq!(
            (&u.transport, u.port, u.to_string()),
            (&Transport::Udp, 7, "127.0.0.1:7".into())
        );
        assert!(Target::parse("udp://127.0.0.1", None, None).is_err());
        let x = t("unix:/tmp/e.sock");
        assert_eq!(
            x.transport,
            Transport::Unix(Endpoint::Unix("/tmp/e.sock".into()))
        );
        assert_eq!(x.to_string(), "unix:/tmp/e.sock");
        assert_eq!(
            x.request(),
            b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        );
        assert!(Target::parse("unix:", None, None).is_err());
    }

    /// `https://` is TLS on 443 unless told, and its Host header leaves
    /// 443 out; `tls://` needs a port.
    #[test]
    fn https_and_tls_targets() {
        let h = t("https://example.com/x");
        assert_eq!((&h.transport, h.port), (&Transport::Tls, 443));
        assert_eq!(
            h.request(),
            b"GET /x HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
        );
        let h = t("https://localhost:8443");
        assert_eq!(h.host_header(), "localhost:8443");
        let r = t("tls://127.0.0.1:7878");
        assert_eq!((&r.transport, r.port), (&Transport::Tls, 7878));
        assert!(Target::parse("tls://127.0.0.1", None, None).is_err());
    }

    #[test]
    fn flags_override_the_url() {
        let got = Target::parse("http://h:81/a", Some(9000), Some("b")).unwrap();
        assert_eq!((got.port, got.path.as_str()), (9000, "/b"));
    }

    #[test]
    fn bad_specs_are_refused() {
        for bad in [
            "",
            ":80",
            "h:0",
            "h:99999",
            "h:x",
            "[::1",
            "[::1]x",
            "tls://h",
            "ftp://h",
            "http:///p",
        ] {
            assert!(Target::parse(bad, None, None).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn request_is_exactly_the_documented_bytes() {
        assert_eq!(
            t("example.com").request(),
            b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            t("http://[::1]:8080/p").request(),
            b"GET /p HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n"
        );
    }
}
