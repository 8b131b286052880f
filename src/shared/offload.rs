//! Work that may block, moved off an event loop: a thread fed through a
//! bounded queue that the loop never waits on.
//!
//! A write to a file or a pipe can block (a slow disk, a reader that
//! stopped reading, a FIFO). Done on the loop's thread, every message in
//! flight would wait for it and be charged the stall as latency. So the
//! loop [`push`](Offload::push)es each item and goes on; a thread does the
//! writing. When the thread falls [`QUEUE`] items behind, further items are
//! not queued (memory stays bounded) but counted, and
//! [`finish`](Offload::finish) says how many were lost. Nothing is lost
//! silently: the caller turns that into its own error line and exit code.
//!
//! `load --hdr-log` ([`crate::report::writer`]) and `load --interval`'s
//! lines on stdout go through here.

use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread;
use std::time::Instant;

/// Items that may wait for the thread.
pub const QUEUE: usize = 64;

/// Why not everything pushed was done.
#[derive(Debug)]
pub enum Unfinished {
    /// The work failed (a write error): what it said.
    Failed(io::Error),
    /// The thread fell behind: `lost` items of `total` were never queued;
    /// `stuck` when it was still busy (blocked) at the deadline, so what
    /// it held may not be done either.
    Behind {
        /// Items not done.
        lost: u64,
        /// Items pushed in all.
        total: u64,
        /// Whether the thread was still busy at the deadline.
        stuck: bool,
    },
}

/// The loop's end of the queue, and what the thread will say when done.
#[derive(Debug)]
pub struct Offload<T> {
    queue: Option<SyncSender<T>>,
    outcome: Receiver<io::Result<()>>,
    sent: u64,
    lost: u64,
}

impl<T: Send + 'static> Offload<T> {
    /// Starts thread `name`, which runs `work` on the queue's items until
    /// the queue is closed (by [`finish`](Self::finish)).
    pub fn spawn(
        name: &str,
        work: impl FnOnce(Receiver<T>) -> io::Result<()> + Send + 'static,
    ) -> io::Result<Offload<T>> {
        let (queue, items) = mpsc::sync_channel(QUEUE);
        let (done, outcome) = mpsc::channel();
        thread::Builder::new().name(name.into()).spawn(move || {
            let _ = done.send(work(items));
        })?;
        Ok(Offload {
            queue: Some(queue),
            outcome,
            sent: 0,
            lost: 0,
        })
    }

    /// Hands one item to the thread, never waiting: when the queue is full
    /// (or the thread has ended) the item is counted as lost instead.
    pub fn push(&mut self, item: T) {
        let Some(queue) = &self.queue else { return };
        match queue.try_send(item) {
            Ok(()) => self.sent += 1,
            Err(TrySendError::Full(_)) => {
                log::trace!("offload queue full: an item is lost");
                self.lost += 1;
            }
            // The work ended early (an error): finish() says why.
            Err(TrySendError::Disconnected(_)) => self.lost += 1,
        }
    }

    /// Closes the queue and waits until `deadline` for the thread to do
    /// what it holds.
    pub fn finish(mut self, deadline: Instant) -> Result<(), Unfinished> {
        drop(self.queue.take());
        let total = self.sent + self.lost;
        let wait = deadline.saturating_duration_since(Instant::now());
        let (lost, stuck) = match self.outcome.recv_timeout(wait) {
            Ok(Err(e)) => return Err(Unfinished::Failed(e)),
            Ok(Ok(())) if self.lost == 0 => return Ok(()),
            Ok(Ok(())) => (self.lost, false),
            Err(RecvTimeoutError::Timeout) => (self.lost, true),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Unfinished::Failed(io::Error::other("the thread ended")));
            }
        };
        Err(Unfinished::Behind { lost, total, stuck })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Everything pushed is done, in order, when the thread keeps up.
    #[test]
    fn what_is_pushed_is_done_in_order() {
        let done = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&done);
        let mut offload = Offload::spawn("test", move |items: Receiver<u32>| {
            for i in items {
                seen.lock().unwrap().push(i);
            }
            Ok(())
        })
        .unwrap();
        for i in 0..10 {
            offload.push(i);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        offload.finish(deadline).unwrap();
        assert_eq!(*done.lock().unwrap(), (0..10).collect::<Vec<_>>());
    }

    /// A thread that is stuck (blocked) never stalls the pusher: past QUEUE
    /// items, the rest are counted as lost, and finish says so at its
    /// deadline instead of waiting.
    #[test]
    fn a_stuck_thread_loses_items_and_says_so() {
        let (release, blocked) = mpsc::channel::<()>();
        let mut offload = Offload::spawn("test", move |items: Receiver<u32>| {
            let _ = blocked.recv(); // stuck until released
            for _ in items {}
            Ok(())
        })
        .unwrap();
        let pushed = QUEUE as u64 + 10;
        for i in 0..pushed {
            offload.push(i as u32);
        }
        let started = Instant::now();
        match offload.finish(started) {
            Err(Unfinished::Behind { lost, total, stuck }) => {
                assert_eq!((lost, total, stuck), (10, pushed, true));
            }
            other => panic!("{other:?}"),
        }
        drop(release);
    }

    /// A work that fails: its error is what finish returns.
    #[test]
    fn a_failed_work_is_the_error() {
        let offload = Offload::spawn("test", |_: Receiver<u32>| {
            Err(io::Error::other("disk full"))
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        match offload.finish(deadline) {
            Err(Unfinished::Failed(e)) => assert_eq!(e.to_string(), "disk full"),
            other => panic!("{other:?}"),
        }
    }
}
