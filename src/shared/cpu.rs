//! A thread's own CPU time, and the CPU a load generator spends over its
//! measured window (its `cpu_busy`).

use std::time::{Duration, Instant};

/// A generator thread's CPU over its measured window: read when the
/// window opens and when it closes. A run goes on after its window (UDP
/// waits up to `--timeout` for the last replies, spinning before due
/// sends), and CPU read at the very end, divided by the window, gave a
/// `cpu_busy` of 30 and more.
///
/// Each reading keeps the instant it was taken at: the CPU is divided by
/// the wall time between the two readings, not by the window's nominal
/// length, since the turns that take them can come a little after the
/// window's edges (a late turn at the end made a 2 s window read 1.016).
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuWindow {
    from: Option<(Duration, Instant)>,
    to: Option<(Duration, Instant)>,
}

impl CpuWindow {
    /// Called at each turn: reads the thread's CPU at the first turn at or
    /// after `measure_from`, and at the first at or after `end`.
    pub fn on_turn(&mut self, now: Instant, measure_from: Instant, end: Instant) {
        if self.from.is_none() && now >= measure_from {
            self.from = Some((thread_cpu(), Instant::now()));
        }
        if self.to.is_none() && now >= end {
            self.to = Some((thread_cpu(), Instant::now()));
        }
    }

    /// CPU used in the window (until now, if it has not closed).
    pub fn used(&self) -> Duration {
        match self.from {
            Some((from, _)) => self
                .to
                .map_or_else(thread_cpu, |(to, _)| to)
                .saturating_sub(from),
            None => Duration::ZERO,
        }
    }

    /// The wall time between the two readings (until now, if the window
    /// has not closed): what [`used`](Self::used) is a share of.
    pub fn wall(&self) -> Duration {
        match self.from {
            Some((_, from)) => self
                .to
                .map_or_else(Instant::now, |(_, to)| to)
                .saturating_duration_since(from),
            None => Duration::ZERO,
        }
    }
}

/// The calling thread's CPU time so far, user plus system.
pub fn thread_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer we give it,
    // which points to enough space; on failure we read the zeroed value.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv =
        |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
