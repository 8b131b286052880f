//! Finding the target before a run: a host name resolved, and when it has
//! several addresses, the first that accepts a TCP connection.

use std::net::SocketAddr;
use std::time::Duration;

use super::outcome::Failure;
use crate::shared::net::describe;

/// Resolves ADDR's host, and when the name has several addresses and
/// `probe` is set, picks the first that accepts a TCP connection (as the
/// client does), so `localhost:PORT` works whether the server listens on
/// 127.0.0.1 or ::1. Without `probe` (UDP), the first address.
pub fn resolve(
    host: &str,
    port: u16,
    timeout: Duration,
    probe: bool,
) -> Result<SocketAddr, Failure> {
    let resolved = crate::shared::addr::resolve(host, port).map_err(Failure::Unresolved)?;
    match resolved.as_slice() {
        [] => Err(Failure::NoConnection {
            target: format!("{host}:{port}"),
            why: "no address".into(),
        }),
        [only] => Ok(*only),
        [first, ..] if !probe => Ok(*first),
        several => {
            let mut last = None;
            for addr in several {
                match std::net::TcpStream::connect_timeout(addr, timeout) {
                    Ok(_) => return Ok(*addr),
                    Err(e) => {
                        log::debug!("{addr} does not accept: {e}");
                        last = Some(e);
                    }
                }
            }
            Err(Failure::NoConnection {
                target: format!("{host}:{port}"),
                why: last.map_or("no address accepted".into(), |e| describe(&e)),
            })
        }
    }
}
