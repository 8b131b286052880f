//! Where a stream generator's measured window is: open (messages go
//! out), settling (closed: nothing more is sent, the echoes of what was
//! sent inside it are awaited), or halted (stopped before its clock
//! started: nothing to wait for). One enum instead of three flags, so no
//! impossible mix of them can be written, and each change is traced.

/// The window's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Window {
    /// Before and during the measured window: messages are sent.
    Open,
    /// After it: reading on until every message sent inside it is
    /// accounted for. `dealt` is set once the open loop's one pass after
    /// the end (what fell due just before it) has been made.
    Settling {
        /// The open loop's last pass is done.
        dealt: bool,
    },
    /// SIGINT or SIGTERM before the clock started: the run ends at once.
    Halted,
}

impl Window {
    /// Whether messages may still be sent (the window is open).
    pub(super) fn open(self) -> bool {
        self == Window::Open
    }

    /// Whether the window has closed and its echoes are awaited.
    pub(super) fn settling(self) -> bool {
        matches!(self, Window::Settling { .. })
    }

    /// Open → Settling; traced. Any other phase stays.
    pub(super) fn close(&mut self) {
        if *self == Window::Open {
            log::trace!("window: open => settling");
            *self = Window::Settling { dealt: false };
        }
    }

    /// Open → Halted; traced.
    pub(super) fn halt(&mut self) {
        if *self == Window::Open {
            log::trace!("window: open => halted");
            *self = Window::Halted;
        }
    }

    /// Whether the open loop may make a pass now: always while open, once
    /// after the end (which it uses up), never when halted.
    pub(super) fn take_pass(&mut self) -> bool {
        match self {
            Window::Open => true,
            Window::Settling { dealt } => !std::mem::replace(dealt, true),
            Window::Halted => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The open loop gets exactly one pass after the window closes, and
    /// none once halted; closing or halting twice changes nothing.
    #[test]
    fn one_pass_after_the_end_and_none_when_halted() {
        let mut w = Window::Open;
        assert!(w.open() && w.take_pass() && w.take_pass());
        w.close();
        assert!(w.settling() && !w.open());
        assert!(w.take_pass(), "the one pass after the end");
        assert!(!w.take_pass());
        w.halt();
        assert!(w.settling(), "a closed window is not halted after");
        let mut h = Window::Open;
        h.halt();
        assert_eq!(h, Window::Halted);
        assert!(!h.take_pass() && !h.settling() && !h.open());
    }
}
