//! A timer for the poll with nanosecond resolution: a Linux `timerfd`
//! registered with mio like any socket.
//!
//! Why: mio's poll timeout is whole milliseconds, rounded up (epoll_wait
//! takes an int of ms). A schedule of one message every 100 µs, or a
//! message due 30 µs from now, would wait up to a millisecond too long, and
//! in an open-loop load test that wait is charged to the server as latency.
//! A timerfd becomes readable at its exact expiry; the poll then wakes on
//! it as on any other event.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// A one-shot timer that readies its token when it expires.
#[derive(Debug)]
pub struct Timer {
    /// The timerfd (non-blocking, close-on-exec).
    fd: OwnedFd,
    /// The instant it is armed for, if any (so re-arming for the same
    /// instant costs no system call).
    armed: Option<Instant>,
}

impl Timer {
    /// Creates a disarmed timer and registers it under `token`.
    pub fn new(registry: &Registry, token: Token) -> io::Result<Timer> {
        // SAFETY: timerfd_create takes two flags and returns a new fd or -1.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        // Linux may let a sleeping thread's timers expire up to its "timer
        // slack" late (50 µs by default) to batch wake-ups; a schedule wants
        // them on time. The setting is per thread, and each generator is
        // made on the thread that runs it. It costs nothing when it fails.
        // SAFETY: PR_SET_TIMERSLACK takes one integer (nanoseconds).
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
        }
        Ok(Timer { fd, armed: None })
    }

    /// Arms the timer to expire at `at` (`now` is the caller's clock
    /// reading); `None` disarms it. An instant already past expires at
    /// once (after one nanosecond: zero would mean "disarm").
    pub fn set(&mut self, now: Instant, at: Option<Instant>) -> io::Result<()> {
        if self.armed == at {
            return Ok(());
        }
        // The timer counts from the moment it is set, and the caller's
        // reading may be a whole turn old (a turn that opened connections
        // takes milliseconds): read the clock again, or it fires that late.
        let now = now.max(Instant::now());
        let left = at.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(now)
                .max(Duration::from_nanos(1))
        });
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: left.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: the spec lives across the call; the old value is not wanted.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        self.armed = at;
        Ok(())
    }

    /// Acknowledges an expiry (after its event): reads the expiry count so
    /// the next expiry raises a new edge. The timer is then disarmed.
    /// Returns the instant it was armed for (how late the wake-up was is
    /// the caller's clock minus that).
    pub fn fired(&mut self) -> Option<Instant> {
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a buffer of 8. WouldBlock (a
        // spurious event) and errors leave nothing to do.
        unsafe {
            libc::read(self.fd.as_raw_fd(), count.as_mut_ptr().cast(), count.len());
        }
        self.armed.take()
    }
}
