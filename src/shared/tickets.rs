//! Where a TLS client keeps what lets it resume: the session tickets a
//! server sent (TLS 1.3), a TLS 1.2 session, and the key-exchange group
//! the server chose last time.
//!
//! rustls's own in-memory cache keeps at most 8 TLS 1.3 tickets per
//! server, and a ticket is used once. That suits a browser; a load
//! generator reconnecting 50 connections at once to one server takes 50
//! tickets at the same moment, finds 8, and 42 handshakes are full ones:
//! under churn at `-c 50` only 19% of handshakes resumed. This store keeps
//! as many tickets per server as it is told (the generator asks for two
//! per connection, as many as a server sends after each handshake), and
//! still a bounded number: the memory is tickets × a few hundred bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use rustls::NamedGroup;
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;

/// The most tickets one server's queue may be told to hold.
pub const MAX_TICKETS: usize = 65_536;

/// The most servers remembered (a client or a generator speaks to one).
const MAX_SERVERS: usize = 32;

/// What is kept for one server.
#[derive(Debug, Default)]
struct Kept {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    /// TLS 1.3 tickets, oldest first; each is taken once.
    tls13: VecDeque<Tls13ClientSessionValue>,
}

/// A client session store holding up to `tickets` TLS 1.3 tickets per
/// server, for up to [`MAX_SERVERS`] servers (the oldest is forgotten).
#[derive(Debug)]
pub struct TicketStore {
    tickets: usize,
    servers: Mutex<(
        HashMap<ServerName<'static>, Kept>,
        VecDeque<ServerName<'static>>,
    )>,
}

impl TicketStore {
    /// A store keeping up to `tickets` (1 to [`MAX_TICKETS`]) per server.
    pub fn new(tickets: usize) -> TicketStore {
        TicketStore {
            tickets: tickets.clamp(1, MAX_TICKETS),
            servers: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// Runs `f` on what is kept for `name`, made if new.
    fn edit(&self, name: ServerName<'static>, f: impl FnOnce(&mut Kept)) {
        // A poisoned lock means a panic elsewhere; resumption is an
        // optimisation, so go on with what is there.
        let mut guard = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *guard;
        if !map.contains_key(&name) {
            if map.len() >= MAX_SERVERS
                && let Some(oldest) = order.pop_front()
            {
                map.remove(&oldest);
            }
            order.push_back(name.clone());
        }
        f(map.entry(name).or_default());
    }

    /// Runs `f` on what is kept for `name`, if anything is.
    fn read<T>(&self, name: &ServerName<'_>, f: impl FnOnce(&mut Kept) -> Option<T>) -> Option<T> {
        let mut guard = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        let (map, _) = &mut *guard;
        // (Keys are owned names; the lookup owns one too, once a handshake.)
        map.get_mut(&name.to_owned()).and_then(f)
    }

    /// How many TLS 1.3 tickets are kept for `name`.
    pub fn tickets_for(&self, name: &ServerName<'_>) -> usize {
        self.read(name, |kept| Some(kept.tls13.len())).unwrap_or(0)
    }
}

impl ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.edit(name, |kept| kept.kx_hint = Some(group));
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.read(name, |kept| kept.kx_hint)
    }

    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.edit(name, |kept| kept.tls12 = Some(value));
    }

    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.read(name, |kept| kept.tls12.clone())
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.read(name, |kept| kept.tls12.take());
    }

    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        let cap = self.tickets;
        self.edit(name, |kept| {
            if kept.tls13.len() >= cap {
                kept.tls13.pop_front(); // the oldest goes first
            }
            kept.tls13.push_back(value);
        });
    }

    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        // The newest: the likeliest to be within the server's lifetime.
        self.read(name, |kept| kept.tls13.pop_back())
    }
}
