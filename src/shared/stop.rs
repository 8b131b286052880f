//! A run stopped from outside: SIGINT (Ctrl-C) or SIGTERM (a CI job's
//! timeout, `kill`). A program that owns a measured run asks [`Stop`]
//! at each turn of its loop whether it was told to stop, and ends its run
//! the way it ends at its deadline: summary printed, logs flushed. A
//! second signal takes the default action (the process ends at once), so
//! a run that will not wind down can still be stopped.
//!
//! The signal handlers only set a flag (an atomic store is all a handler
//! may safely do); the loop notices at its next wake-up. A signal also
//! interrupts `epoll_wait` (it is never restarted after a handler,
//! signal(7)), so the thread that catches it wakes at once; the others
//! see the flag at their next tick.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

/// Whether SIGINT or SIGTERM has arrived. Cheap to clone: every clone
/// shares the flags, so each generator thread can hold one.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    int: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

impl Stop {
    /// A stop that no signal sets (tests, benches, a library caller that
    /// handles signals itself).
    pub fn never() -> Stop {
        Stop::default()
    }

    /// Catches SIGINT and SIGTERM from now on: the first of them sets
    /// the flag, a second one after that ends the process at once.
    pub fn on_signals() -> io::Result<Stop> {
        let stop = Stop::default();
        for (signal, flag) in [(SIGINT, &stop.int), (SIGTERM, &stop.term)] {
            // In this order: the conditional default sees the flag still
            // clear at the first signal, and set at the second.
            signal_hook::flag::register_conditional_default(signal, Arc::clone(flag))?;
            signal_hook::flag::register(signal, Arc::clone(flag))?;
        }
        Ok(stop)
    }

    /// The signal that asked for the stop, if one did.
    pub fn requested(&self) -> Option<&'static str> {
        if self.int.load(Ordering::Relaxed) {
            Some("SIGINT")
        } else if self.term.load(Ordering::Relaxed) {
            Some("SIGTERM")
        } else {
            None
        }
    }

    /// Sets the flag as a signal would (for tests, and for a caller that
    /// stops a run itself).
    pub fn request(&self) {
        self.term.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stop nobody asked for says so; asking sets it for every clone.
    #[test]
    fn a_request_is_seen_by_every_clone() {
        let stop = Stop::never();
        let other = stop.clone();
        assert_eq!(other.requested(), None);
        stop.request();
        assert_eq!(other.requested(), Some("SIGTERM"));
    }
}
