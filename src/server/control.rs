//! Control from outside the loop, as one part: the signals (SIGINT,
//! SIGTERM, SIGUSR1), the stop flag, and the waker through which a
//! [`Handle`] on another thread stops the server or asks for its counters.
//! [`Signals`] is shared with the [`Group`](super::Group)'s main thread,
//! which reads the same three signals the same way.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

use mio::{Interest, Registry, Token, Waker};

use super::counters::Counters;
use super::tokens::{SIGNALS, WAKER};

/// Stops a running [`Server`](super::Server) from another thread, or
/// asks it for its counters.
#[derive(Debug, Clone)]
pub struct Handle {
    stop: Arc<AtomicBool>,
    counters_asked: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl Handle {
    /// Asks the server to shut down; [`Server::run`](super::Server::run)
    /// returns soon after.
    pub fn shutdown(&self) -> io::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        self.waker.wake()
    }

    /// Asks the server for a copy of its counters, which it sends on the
    /// channel given to [`Server::send_counters_to`](super::Server::send_counters_to)
    /// at its next turn.
    pub fn request_counters(&self) -> io::Result<()> {
        self.counters_asked.store(true, Ordering::SeqCst);
        self.waker.wake()
    }
}

/// What the signals that came in ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signalled {
    /// SIGINT or SIGTERM: shut down.
    pub stop: bool,
    /// SIGUSR1: print the counters since the start.
    pub counters: bool,
}

/// SIGINT, SIGTERM and SIGUSR1, delivered as readiness on a token.
pub struct Signals(signal_hook_mio::v1_0::Signals);

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signals")
    }
}

impl Signals {
    /// Catches the three signals and registers their pipe as `token`.
    pub fn register(registry: &Registry, token: Token) -> io::Result<Signals> {
        use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
        let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM, SIGUSR1])?;
        registry.register(&mut signals, token, Interest::READABLE)?;
        Ok(Signals(signals))
    }

    // ANCHOR: on_signals
    /// Reads every signal that came in since the last call.
    pub fn drain(&mut self) -> Signalled {
        let mut said = Signalled::default();
        for signal in self.0.pending() {
            match signal {
                signal_hook::consts::SIGUSR1 => said.counters = true,
                other => {
                    let name = match other {
                        signal_hook::consts::SIGINT => "SIGINT",
                        _ => "SIGTERM",
                    };
                    log::info!("{name}: shutting down");
                    said.stop = true;
                }
            }
        }
        said
    }
    // ANCHOR_END: on_signals
}

/// Where a reactor of a [`Group`](super::Group) sends its counters when
/// asked: this reactor's number, the channel, and the waker of the poll
/// that reads it.
#[derive(Debug)]
struct CountersTo {
    number: usize,
    tx: Sender<(usize, Counters)>,
    waker: Arc<Waker>,
}

/// The loop's control part: owns the signals, the stop flag and the waker.
#[derive(Debug)]
pub struct Control {
    /// `None` when another thread handles signals (a [`Group`](super::Group)'s reactors, tests).
    signals: Option<Signals>,
    /// Set by [`Handle::shutdown`] or a signal; the loop ends when it is.
    stop: Arc<AtomicBool>,
    /// Set by [`Handle::request_counters`]: send the counters to `counters_to`.
    counters_asked: Arc<AtomicBool>,
    /// Where the counters go when asked.
    counters_to: Option<CountersTo>,
    /// Wakes the poll for the [`Handle`].
    waker: Arc<Waker>,
}

impl Control {
    /// Registers the waker (and, if `signals`, the signal pipe).
    pub fn new(registry: &Registry, signals: bool) -> io::Result<Control> {
        Ok(Control {
            signals: match signals {
                true => Some(Signals::register(registry, SIGNALS)?),
                false => None,
            },
            stop: Arc::new(AtomicBool::new(false)),
            counters_asked: Arc::new(AtomicBool::new(false)),
            counters_to: None,
            waker: Arc::new(Waker::new(registry, WAKER)?),
        })
    }

    /// A handle that can stop this loop from another thread.
    pub fn handle(&self) -> Handle {
        Handle {
            stop: Arc::clone(&self.stop),
            counters_asked: Arc::clone(&self.counters_asked),
            waker: Arc::clone(&self.waker),
        }
    }

    /// Sends `(number, counters)` on `tx` when asked, then wakes `waker`.
    pub fn send_counters_to(
        &mut self,
        number: usize,
        tx: Sender<(usize, Counters)>,
        waker: Arc<Waker>,
    ) {
        self.counters_to = Some(CountersTo { number, tx, waker });
    }

    /// Whether the loop should end.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Readiness on [`SIGNALS`] or [`WAKER`]: a stop is remembered, asked-for
    /// counters are sent at once. Returns whether SIGUSR1 asks for a
    /// counters line.
    pub fn on_event(&mut self, token: Token, stats: &Counters) -> bool {
        if token == WAKER {
            // The stop flag is checked by the loop; asked-for counters go now.
            if self.counters_asked.swap(false, Ordering::SeqCst)
                && let Some(to) = &self.counters_to
            {
                let _ = to.tx.send((to.number, *stats));
                let _ = to.waker.wake();
            }
            return false;
        }
        let Some(signals) = self.signals.as_mut() else {
            return false;
        };
        let said = signals.drain();
        if said.stop {
            self.stop.store(true, Ordering::Relaxed);
        }
        said.counters
    }
}

/// Prints a stats line to stderr. Unlike `eprintln!`, a closed stderr is
/// not a panic: the line is dropped and the server goes on.
pub fn print_stats(line: &str) {
    use std::io::Write;
    let _ = writeln!(io::stderr(), "{line}");
}
