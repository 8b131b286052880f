//! Backpressure: a peer that sends but never reads must not grow the
//! server's memory past the per-connection cap, nor slow anyone else down.

mod common;

use std::net::Shutdown;
use std::thread;
use std::time::Duration;

use common::{Rng, read_to_eof, round_trip};

/// The server's per-connection cap on owed bytes, plus one read of slack.
const CAP: f64 = (64 * 1024 + 1024) as f64;

/// A client pushes up to 64 MiB without reading. It stalls after a few MiB
/// of kernel buffers; the server owes it at most the cap; another client's
/// echoes keep flowing meanwhile; and once the slow one reads, it gets back
/// exactly what it managed to send.
#[test]
fn slow_reader_stays_under_the_cap_and_others_keep_flowing() {
    let (mut server, metrics) = common::server_with_metrics(&["--stats", "0.1"]);
    let rss_before = server.rss();

    let slow = server.connect();
    let writer = slow.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // Stalled is what the server says: its owed bytes at the cap while
    // the writer is blocked (a slow server on a loaded machine is not a
    // stall).
    let pusher = thread::spawn(move || {
        let data = Rng::new(64).bytes(64 * 1024 * 1024);
        let sent = common::push_until_stalled(&writer, &data, metrics, 64.0 * 1024.0);
        data[..sent].to_vec()
    });

    // While the slow one pushes (and after it has stalled), another client
    // gets every echo.
    let mut brisk = server.connect();
    let mut rng = Rng::new(1);
    for _ in 0..200 {
        round_trip(&mut brisk, &rng.bytes(1024));
    }
    let sent = pusher.join().unwrap();
    assert!(
        sent.len() > 1024 * 1024 && sent.len() < 64 * 1024 * 1024,
        "the slow writer should stall after some MiB, sent {}",
        sent.len()
    );
    for _ in 0..50 {
        round_trip(&mut brisk, &rng.bytes(1024));
    }

    server.skip_stderr();
    let stats = server.wait_stats(|s| s.get("open") == 2.0);
    assert!(
        stats.get("owed_peak") >= (64 * 1024) as f64,
        "the cap was never reached: owed_peak={}",
        stats.get("owed_peak")
    );
    assert!(
        stats.get("owed_peak") <= CAP,
        "one connection owed {} bytes",
        stats.get("owed_peak")
    );
    let grown = server.rss().saturating_sub(rss_before);
    assert!(grown < 16 * 1024 * 1024, "server RSS grew by {grown} bytes");

    // Now the slow reader reads: everything it sent comes back, in order.
    let mut slow = slow;
    slow.shutdown(Shutdown::Write).unwrap();
    let got = read_to_eof(&mut slow);
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "bytes differ");
}
