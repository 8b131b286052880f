//! One keyed timer heap: "look at slot `key` (serial `id`) again at `at`".
//! The idle timeouts and the held echoes of `--delay` each keep one.
//!
//! Entries are never removed early. A connection that closes, or whose
//! deadline moved later, leaves its old entry behind; [`Deadlines::pop_due`]
//! hands it out anyway, and the owner skips it when the slot's serial no
//! longer matches (a slab key is reused, a serial is not) or pushes the
//! new deadline again. That is cheaper than finding an entry in a heap,
//! and the heap never holds more than one live entry per connection plus
//! the stale ones that fall due.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// One deadline. Ordered by `at` first (the fields' order), so the heap
/// gives the soonest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: Instant,
    key: usize,
    id: u64,
}

/// Deadlines keyed by slab slot and serial, soonest first.
#[derive(Debug, Default)]
pub struct Deadlines {
    heap: BinaryHeap<Reverse<Due>>,
}

impl Deadlines {
    /// Remembers to look at `(key, id)` at `at`.
    pub fn push(&mut self, at: Instant, key: usize, id: u64) {
        self.heap.push(Reverse(Due { at, key, id }));
    }

    /// The soonest deadline, if any (maybe a stale one: waking early is
    /// harmless, waking late is not).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(due)| due.at)
    }

    /// Takes the soonest entry due by `now`: `(key, id)`, or `None` when
    /// nothing is due.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, u64)> {
        match self.heap.peek() {
            Some(Reverse(due)) if due.at <= now => {
                let Reverse(due) = self.heap.pop()?;
                Some((due.key, due.id))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Entries come out soonest first, only once due, and not before.
    #[test]
    fn pop_due_gives_the_soonest_and_nothing_early() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Deadlines::default();
        d.push(t0 + ms(30), 3, 30);
        d.push(t0 + ms(10), 1, 10);
        d.push(t0 + ms(20), 2, 20);
        assert_eq!(d.next_deadline(), Some(t0 + ms(10)));
        assert_eq!(d.pop_due(t0 + ms(9)), None, "one millisecond early");
        assert_eq!(d.pop_due(t0 + ms(25)), Some((1, 10)));
        assert_eq!(d.pop_due(t0 + ms(25)), Some((2, 20)));
        assert_eq!(d.pop_due(t0 + ms(25)), None);
        assert_eq!(d.next_deadline(), Some(t0 + ms(30)));
        assert_eq!(d.pop_due(t0 + ms(30)), Some((3, 30)));
        assert_eq!(d.next_deadline(), None);
    }
}
