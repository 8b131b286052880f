//! Files given on the command line (`--message-file`, `--first-message
//! @FILE`, certificates and keys), read whole and bounded in size and in
//! time.
//!
//! A FIFO has no end until its writer closes it, and opening one for
//! reading blocks until a writer opens it: `--message-file /tmp/fifo` with
//! nobody writing would hang forever, before `-d` or any timeout could
//! apply. A regular file is read at once; anything else (a FIFO, the pipe
//! behind `-f <(cmd)`, a device) is opened and read on a thread of its
//! own, and given [`WRITER_WAIT`] to be written to its end.

use std::io::{self, Read as _};
use std::path::Path;
use std::time::Duration;

/// How long a FIFO (or a pipe, a device) may take to be opened by its
/// writer and written to its end.
pub const WRITER_WAIT: Duration = Duration::from_secs(10);

/// The bytes of `path`: at most `max + 1` of them, so that a caller can
/// tell a file longer than `max` from one of exactly `max`. A FIFO that
/// nobody opens, or whose writer does not finish, within [`WRITER_WAIT`]
/// is a `TimedOut` error that says so.
pub fn read_at_most(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    if std::fs::metadata(path)?.file_type().is_file() {
        return read_now(path, max);
    }
    log::debug!(
        "{} is not a regular file: waiting up to {} s for its writer",
        path.display(),
        WRITER_WAIT.as_secs()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = path.to_path_buf();
    // On a timeout the thread stays blocked in open or read; the caller
    // then stops the program with the error, which ends it.
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            let _ = tx.send(read_now(&owned, max));
        })?;
    rx.recv_timeout(WRITER_WAIT).unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "not written to its end within {} s (a FIFO with no writer?)",
                WRITER_WAIT.as_secs()
            ),
        ))
    })
}

/// Opens and reads `path` here, up to `max + 1` bytes.
fn read_now(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A regular file is read whole, one byte past the limit at most.
    #[test]
    fn a_file_is_read_up_to_one_byte_past_the_limit() {
        let path = std::env::temp_dir().join(format!("echoloop-input-{}", std::process::id()));
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_at_most(&path, 100).unwrap(), b"0123456789");
        assert_eq!(read_at_most(&path, 4).unwrap(), b"01234");
        std::fs::remove_file(&path).unwrap();
    }
}
