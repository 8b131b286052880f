//! Echo correctness against the real binary: every byte back, in order, on
//! many connections at once; half-close; resets that touch no one else.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::thread;

use common::{
    Rng, ServerProcess, echo_in_chunks, random_payloads_come_back, read_to_eof, round_trip,
};

/// 100 connections at once, payloads from 1 byte to 8 MiB (log-uniform),
/// written in random chunk sizes: each gets back exactly what it sent.
#[test]
fn random_payloads_on_100_connections_come_back_byte_exact() {
    let server = ServerProcess::start(&[]);
    random_payloads_come_back(&server, 100, 8 * 1024 * 1024);
}

/// The textbook client, twice on fresh connections: connect, send, read the
/// echo, shutdown, close.
#[test]
fn classic_client_sequence_twice() {
    let server = ServerProcess::start(&[]);
    for _ in 0..2 {
        let mut s = server.connect();
        round_trip(&mut s, b"Hello, world");
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_eof(&mut s), b"", "nothing after the echo but EOF");
        drop(s);
    }
}

/// Half-close: 10 MiB, then shutdown(Write). All 10 MiB come back, then EOF.
#[test]
fn half_close_after_10_mib_loses_nothing() {
    let server = ServerProcess::start(&[]);
    let payload = Rng::new(10).bytes(10 * 1024 * 1024);
    let (sent, got) = echo_in_chunks(server.connect(), payload, 7);
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "bytes differ");
}

/// Half-close with the whole payload sent before the server reads a byte
/// (one write, then FIN): the FIN arrives with the data and must not be
/// missed after a short read.
#[test]
fn data_and_fin_together_are_both_seen() {
    let server = ServerProcess::start(&[]);
    for size in [1, 1023, 1024, 1025, 3000] {
        let mut s = server.connect();
        let payload = Rng::new(size as u64).bytes(size);
        s.write_all(&payload).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_eof(&mut s), payload, "size {size}");
    }
}

/// A client that resets mid-stream (SO_LINGER 0) while the server still owes
/// it bytes does not disturb the others, and the server keeps accepting.
#[test]
fn a_reset_mid_stream_touches_no_other_connection() {
    let server = ServerProcess::start(&[]);
    let others: Vec<_> = (0..8)
        .map(|i| {
            let stream = server.connect();
            let payload = Rng::new(100 + i).bytes(2 * 1024 * 1024);
            thread::spawn(move || echo_in_chunks(stream, payload, i))
        })
        .collect();
    for round in 0..5 {
        let mut rude = server.connect();
        // Send a lot and read nothing, so the server owes this one bytes.
        let junk = Rng::new(round).bytes(512 * 1024);
        rude.write_all(&junk).unwrap();
        let mut first = [0u8; 16];
        rude.read_exact(&mut first).unwrap();
        assert_eq!(first, junk[..16]);
        socket2::SockRef::from(&rude)
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        drop(rude); // RST
    }
    for (i, other) in others.into_iter().enumerate() {
        let (sent, got) = other.join().unwrap();
        assert!(got == sent, "connection {i} was disturbed");
    }
    let mut after = server.connect();
    round_trip(&mut after, b"still here");
}

/// IPv6 loopback, where the machine has it.
#[test]
fn echoes_over_ipv6_loopback() {
    if !ServerProcess::has_ipv6_loopback() {
        return;
    }
    let server = ServerProcess::at("[::1]:0", &[]);
    assert!(server.addr.is_ipv6(), "{}", server.addr);
    let mut s = server.connect();
    round_trip(&mut s, b"over six");
}
