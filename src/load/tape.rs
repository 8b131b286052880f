//! What a load connection sends: one shared "tape" of bytes.
//!
//! By default the tape is random: connection `i` sends it from its own
//! starting offset, cyclically, so checking an echoed chunk is one `memcmp`
//! against the tape however the replies are segmented, and a lost,
//! repeated or reordered segment shows up as a mismatch. Nothing is stored
//! per message. With `--message` or `--message-file` the tape is that
//! message over and over, and every connection starts at its beginning:
//! the same check, the same code.
//!
//! A connection may also open with a first message (`--first-message`):
//! the [`Tape`] carries it, and whether the path echoes it.
//!
//! What comes back is the tape itself (an echo), or for a target that is
//! not an echo server one fixed reply per message (`--expect`: the reply
//! tape is that reply over and over, checked the same way), or nothing
//! (`--no-reply`: any byte that comes back is a mismatch).

use std::sync::Arc;

use crate::shared::dice::splitmix64;

/// What the stream connections send (`load::Config::payload`).
#[derive(Debug, Clone)]
pub struct Payload {
    /// Every message's bytes (`--message`, `--message-file`); `None`: the
    /// random tape, `size` bytes a message.
    pub message: Option<Arc<[u8]>>,
    /// Sent once as each connection opens, before its first message
    /// (`--first-message`); never measured.
    pub first: Option<Arc<[u8]>>,
    /// Whether the path echoes the first message: if so its echo is
    /// awaited and checked before the measured messages begin; if not (a
    /// proxy consumes it), they follow it at once (`--first-message-echo`).
    pub first_echoed: bool,
    /// What each message's reply is.
    pub reply: Reply,
}

/// What comes back for each message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Reply {
    /// The message itself (an echo server, or a proxy in front of one).
    #[default]
    Echo,
    /// These bytes, whatever was sent (`--expect`: `+PONG\r\n` for `PING\r\n`).
    Expect(Arc<[u8]>),
    /// Nothing: a sink (`--no-reply`). A message is done once written.
    Nothing,
}

impl Default for Payload {
    fn default() -> Payload {
        Payload {
            message: None,
            first: None,
            first_echoed: true,
            reply: Reply::Echo,
        }
    }
}

/// The bytes every stream connection sends, and how to find its place.
#[derive(Debug)]
pub struct Tape {
    /// One period, then its first [`CHUNK`] bytes again (or more).
    bytes: Vec<u8>,
    period: usize,
    /// Random bytes: each connection starts at a place of its own.
    spread: bool,
    first: Arc<[u8]>,
    first_echoed: bool,
    reply: Reply,
    /// `--expect`: the reply over and over, covering its length plus a
    /// chunk (any chunk starting inside one reply is one slice).
    replies: Vec<u8>,
}

impl Tape {
    /// The tape for `payload`.
    pub fn new(payload: &Payload) -> Tape {
        let (bytes, period, spread) = match &payload.message {
            None => (make_tape(), TAPE_PERIOD, true),
            Some(message) => {
                // Whole repeats covering one period plus a chunk, so that
                // any chunk starting inside the period is one slice.
                let repeats = (message.len() + CHUNK).div_ceil(message.len().max(1));
                (message.repeat(repeats), message.len().max(1), false)
            }
        };
        Tape {
            bytes,
            period,
            spread,
            first: payload.first.clone().unwrap_or_else(|| Arc::from(&b""[..])),
            first_echoed: payload.first_echoed,
            reply: payload.reply.clone(),
            replies: match &payload.reply {
                Reply::Expect(r) => r.repeat((r.len() + CHUNK).div_ceil(r.len().max(1))),
                _ => Vec::new(),
            },
        }
    }

    /// What each message's reply is.
    pub fn reply(&self) -> &Reply {
        &self.reply
    }

    /// `--expect`: the `len` bytes (at most [`CHUNK`]) at `offset` of the
    /// replies (`offset` counts from the first reply's first byte).
    pub fn reply_slice(&self, offset: u64, len: usize) -> &[u8] {
        let period = match &self.reply {
            Reply::Expect(r) => r.len().max(1),
            _ => return &[],
        };
        let at = (offset % period as u64) as usize;
        &self.replies[at..at + len.min(CHUNK)]
    }

    /// Where connection `i`'s bytes start.
    pub fn start(&self, i: usize) -> usize {
        if self.spread {
            (i * 7919 * 64) % TAPE_PERIOD
        } else {
            0
        }
    }

    /// The `len` bytes (at most [`CHUNK`]) at `offset` of the stream of a
    /// connection whose bytes start at `start`.
    pub fn slice(&self, start: usize, offset: u64, len: usize) -> &[u8] {
        let at = (start + (offset % self.period as u64) as usize) % self.period;
        &self.bytes[at..at + len.min(CHUNK)]
    }

    /// The first message (empty: none).
    pub fn first(&self) -> &[u8] {
        &self.first
    }

    /// Whether the first message comes back.
    pub fn first_echoed(&self) -> bool {
        self.first_echoed
    }
}

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
    fn a_message_tape_repeats_the_message_from_any_offset() {
        let payload = Payload {
            message: Some(Arc::from(&b"GET / HTTP/1.1\r\n\r\n"[..])),
            ..Payload::default()
        };
        let tape = Tape::new(&payload);
        assert_eq!(tape.start(5), 0, "every connection starts at the start");
        assert_eq!(tape.slice(0, 0, 18), b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(tape.slice(0, 18 * 1000 + 4, 6), b"/ HTTP");
        let long = tape.slice(0, 7, CHUNK);
        assert_eq!(long.len(), CHUNK);
        assert_eq!(&long[11..29], b"GET / HTTP/1.1\r\n\r\n");
        let one = Tape::new(&Payload {
            message: Some(Arc::from(&b"x"[..])),
            ..Payload::default()
        });
        assert_eq!(one.slice(0, 12345, CHUNK), vec![b'x'; CHUNK]);
    }

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
