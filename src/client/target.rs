//! What `echoloop client` connects to: parsing `host`, `host:port`,
//! `[v6addr]:port` and `http://host[:port][/path]`, and the exact HTTP
//! request that goes with it.
//!
//! Next: [`repr`](super::repr), how the reply is printed.

use std::fmt;

use crate::shared::addr::split_host_port;

/// A parsed SERVER argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or address literal, without IPv6 brackets.
    pub host: String,
    /// TCP port (80 unless given).
    pub port: u16,
    /// Request path, starting with `/`.
    pub path: String,
}

impl Target {
    /// Parses SERVER; `port` and `path` (from `--port`, `--path`) win over
    /// what SERVER says.
    pub fn parse(spec: &str, port: Option<u16>, path: Option<&str>) -> Result<Target, String> {
        let spec = spec.trim();
        let rest = match spec.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!("unsupported scheme `{scheme}://` (only http://)"));
            }
            None => spec,
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
        Ok(Target {
            host: host.to_string(),
            port: port.or(url_port).unwrap_or(80),
            path,
        })
    }

    /// The `Host` header's value: the host (bracketed if IPv6), with
    /// `:port` unless the port is 80.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
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
    /// `host:port`, with brackets around IPv6 literals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
            "https://h",
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
