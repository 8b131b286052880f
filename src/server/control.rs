//! Control from outside the loop: a [`Handle`] another thread uses to stop
//! the server or ask for its counters, the signals (SIGINT, SIGTERM,
//! SIGUSR1), and the stats lines on stderr.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mio::Waker;

use super::{Counters, Server};

/// Stops a running [`Server`] from another thread.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(super) stop: Arc<AtomicBool>,
    pub(super) counters_asked: Arc<AtomicBool>,
    pub(super) waker: Arc<Waker>,
}

impl Handle {
    /// Asks the server to shut down; [`Server::run`] returns soon after.
    pub fn shutdown(&self) -> io::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        self.waker.wake()
    }

    /// Asks the server for a copy of its counters, which it sends on the
    /// channel given to [`Server::send_counters_to`] at its next turn.
    pub fn request_counters(&self) -> io::Result<()> {
        self.counters_asked.store(true, Ordering::SeqCst);
        self.waker.wake()
    }
}

impl Server {
    // ANCHOR: on_signals
    /// SIGINT/SIGTERM stop the loop; SIGUSR1 prints the counters.
    pub(super) fn on_signals(&mut self) {
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        let mut usr1 = false;
        for signal in signals.pending() {
            match signal {
                signal_hook::consts::SIGUSR1 => usr1 = true,
                other => {
                    let name = if other == signal_hook::consts::SIGINT {
                        "SIGINT"
                    } else {
                        "SIGTERM"
                    };
                    log::info!("{name}: shutting down");
                    self.stop.store(true, Ordering::Relaxed);
                }
            }
        }
        if usr1 {
            let since_start = Counters::default();
            let elapsed = self.now - self.started;
            let line = self.stats.interval_line(&since_start, elapsed);
            self.said.push(line);
        }
    }
    // ANCHOR_END: on_signals
}

/// Prints a stats line to stderr. Unlike `eprintln!`, a closed stderr is
/// not a panic: the line is dropped and the server goes on.
pub(super) fn print_stats(line: &str) {
    use std::io::Write;
    let _ = writeln!(io::stderr(), "{line}");
}
