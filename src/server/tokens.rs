//! The token plan: which `mio::Token` names which source in a reactor's
//! poll. On the ground floor of the server module, so the loop, the
//! listener, the metrics endpoint and the group all import it downward.
//!
//! ```text
//!   0  LISTENER   the listening socket (TCP or Unix)
//!   1  SIGNALS    the signal pipe (SIGINT, SIGTERM, SIGUSR1)
//!   2  WAKER      Handle::shutdown and Handle::request_counters
//!   3  UDP        the UDP socket (--udp, --udp-only)
//!   4  METRICS    the metrics listener (--metrics)
//!   5 ..          echo connections: slab key k is Token(k + 5)
//!   usize::MAX/4 ..  connections waiting for their PROXY header
//!                    (--proxy-protocol): arrival k is Token(k + usize::MAX/4)
//!   usize::MAX/2 ..  metrics scrapes, far above any echo connection
//!                    (the exporter numbers them: see exporter())
//! ```

use mio::Token;

/// The listening socket's token: a [`Readiness`](crate::shared::readiness::Readiness)
/// for it, handed to [`Server::turn`](super::Server::turn), says that peers
/// wait to be accepted.
pub const LISTENER: Token = Token(0);
/// The signal pipe (SIGINT, SIGTERM, SIGUSR1).
pub const SIGNALS: Token = Token(1);
/// The waker that [`Handle`](super::Handle) uses.
pub const WAKER: Token = Token(2);
/// The UDP socket (`--udp`).
pub const UDP: Token = Token(3);
/// The metrics listener (`--metrics`).
pub const METRICS: Token = Token(4);
/// Echo connection tokens start here.
pub const FIRST_CONNECTION: usize = 5;
/// Tokens of connections waiting for their PROXY header start here.
pub const FIRST_ARRIVAL: usize = usize::MAX / 4;
/// Metrics scrape tokens start here.
pub const FIRST_SCRAPE: usize = usize::MAX / 2;

/// The token of the echo connection in slab slot `key`.
pub fn connection(key: usize) -> Token {
    Token(key + FIRST_CONNECTION)
}

/// The slab slot an echo connection's token names.
pub fn connection_key(token: Token) -> Option<usize> {
    token
        .0
        .checked_sub(FIRST_CONNECTION)
        .filter(|_| token.0 < FIRST_ARRIVAL)
}

/// The token of the connection waiting for its PROXY header in slot `key`
/// of [`Arrivals`](super::proxy_header::Arrivals).
pub fn arrival(key: usize) -> Token {
    Token(key + FIRST_ARRIVAL)
}

/// The arrival slot a token names.
pub fn arrival_key(token: Token) -> Option<usize> {
    token
        .0
        .checked_sub(FIRST_ARRIVAL)
        .filter(|_| token.0 < FIRST_SCRAPE)
}

/// Whether `token` belongs to the metrics endpoint (its listener or a scrape).
pub fn is_metrics(token: Token) -> bool {
    token == METRICS || token.0 >= FIRST_SCRAPE
}

/// Where the metrics exporter's listener and scrapes sit in the poll.
pub fn exporter() -> crate::shared::exporter::Tokens {
    crate::shared::exporter::Tokens {
        listener: METRICS,
        first_scrape: FIRST_SCRAPE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections and scrapes never share a token, and each maps back.
    #[test]
    fn the_plan_keeps_every_kind_apart() {
        assert_eq!(connection_key(connection(0)), Some(0));
        assert_eq!(connection_key(connection(1234)), Some(1234));
        for fixed in [LISTENER, SIGNALS, WAKER, UDP, METRICS] {
            assert_eq!(connection_key(fixed), None, "{fixed:?}");
        }
        let scrape = |k: usize| Token(exporter().first_scrape + k);
        assert_eq!(connection_key(scrape(0)), None);
        assert_eq!(arrival_key(arrival(7)), Some(7));
        assert_eq!(connection_key(arrival(7)), None);
        assert_eq!(arrival_key(connection(7)), None);
        assert_eq!(arrival_key(scrape(0)), None);
        assert!(is_metrics(METRICS) && is_metrics(scrape(3)));
        assert!(!is_metrics(connection(3)) && !is_metrics(UDP));
    }
}
