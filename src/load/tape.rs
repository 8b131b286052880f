//! What a load connection sends: one shared "tape" of random bytes.
//!
//! Connection `i` sends the tape from its own starting offset, cyclically,
//! so checking an echoed chunk is one `memcmp` against the tape however
//! the replies are segmented, and a lost, repeated or reordered segment
//! shows up as a mismatch. Nothing is stored per message.

use crate::shared::dice::splitmix64;

/// The period of the byte tape. Shifts of whole multiples of it would go
/// unnoticed; 1 MiB is far beyond anything a TCP stream reorders.
pub(super) const TAPE_PERIOD: usize = 1 << 20;
/// The most bytes one read or write handles, and the tape's overhang past
/// its period (so any chunk starting inside the period is one slice).
pub(super) const CHUNK: usize = 64 * 1024;
/// The `len` tape bytes (at most [`CHUNK`]) at `offset` of the stream of a
/// connection whose bytes start at `start` on the tape.
pub(super) fn tape_slice(tape: &[u8], start: usize, offset: u64, len: usize) -> &[u8] {
    let at = (start + (offset % TAPE_PERIOD as u64) as usize) % TAPE_PERIOD;
    &tape[at..at + len.min(CHUNK)]
}

/// The tape every connection sends from: one period of random bytes
/// (splitmix64), then its first [`CHUNK`] bytes again, so that a chunk that
/// starts near the end of the period reads on, seamlessly, into its start.
pub(super) fn make_tape() -> Vec<u8> {
    let mut state: u64 = 0x0123_4567_89ab_cdef;
    let mut tape = Vec::with_capacity(TAPE_PERIOD + CHUNK + 8);
    while tape.len() < TAPE_PERIOD {
        tape.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    tape.truncate(TAPE_PERIOD);
    tape.extend_from_within(..CHUNK);
    tape
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any chunk read at any offset equals the bytes written there, however
    /// the stream is cut: the tape wraps seamlessly.
    #[test]
    fn tape_slices_agree_across_the_wrap() {
        let tape = make_tape();
        let start = TAPE_PERIOD - 100;
        let written: Vec<u8> = [
            tape_slice(&tape, start, 0, 5000),
            tape_slice(&tape, start, 5000, 3000),
        ]
        .concat();
        let mut read = Vec::new();
        for (offset, len) in [(0, 37), (37, 63), (100, 4000), (4100, 3900)] {
            read.extend_from_slice(tape_slice(&tape, start, offset, len));
        }
        assert_eq!(read, written);
        assert_eq!(tape_slice(&tape, start, 100, 10), &tape[..10]);
    }
}
