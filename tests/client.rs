//! `echoloop client` against servers made in the test and against
//! `echoloop server`: the exact request, byte-exact replies in both output
//! modes, and an exit code for every kind of failure.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::Bounded as _;
use common::{Rng, ServerProcess, bin};
use echoloop::client::bytes_repr;

/// A one-shot server on 127.0.0.1:0: it reads the request (up to the blank
/// line), hands it to the test, and answers `reply` in small segments with
/// pauses between them, then closes.
fn segmented_server(reply: Vec<u8>) -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(common::DEADLINE)).unwrap();
        let mut request = Vec::new();
        let mut b = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap() == 1 {
            request.push(b[0]);
        }
        tx.send(request).unwrap();
        let mut rng = Rng::new(3);
        let mut rest = &reply[..];
        let mut segments = 0;
        while !rest.is_empty() {
            let n = rng.range(1, 4000).min(rest.len());
            s.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
            segments += 1;
            if segments % 16 == 0 {
                thread::sleep(Duration::from_millis(2)); // let segments go out apart
            }
        }
    });
    (addr, rx)
}

/// A reply with every byte value, both quotes, and some length.
fn tricky_reply(body_len: usize) -> Vec<u8> {
    let mut reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    reply.extend(0..=255u8);
    reply.extend_from_slice(b"it's \"quoted\"");
    reply.extend(Rng::new(9).bytes(body_len));
    reply
}

fn client(args: &[&str]) -> Output {
    bin()
        .arg("client")
        .args(args)
        .stdin(Stdio::null())
        .bounded()
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// The documented request goes out byte for byte, and the reply, arriving
/// in hundreds of segments, is printed as Python's repr().
#[test]
fn repr_of_a_segmented_reply_and_the_exact_request() {
    let reply = tricky_reply(200_000);
    let (addr, requests) = segmented_server(reply.clone());
    let out = client(&[&format!("http://{addr}/some/path?q=1")]);
    assert_exit(&out, 0);
    let request = requests.recv().unwrap();
    assert_eq!(
        String::from_utf8(request).unwrap(),
        format!("GET /some/path?q=1 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}\n", bytes_repr(&reply))
    );
}

/// --raw: the same reply, many MiB, byte-exact and unchanged.
#[test]
fn raw_output_is_byte_exact_for_a_multi_mib_reply() {
    let reply = tricky_reply(6 * 1024 * 1024);
    let (addr, requests) = segmented_server(reply.clone());
    let out = client(&[
        "127.0.0.1",
        "--port",
        &addr.port().to_string(),
        "--path",
        "big",
        "--raw",
    ]);
    assert_exit(&out, 0);
    assert_eq!(
        requests.recv().unwrap(),
        format!(
            "GET /big HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            addr.port()
        )
        .into_bytes()
    );
    assert_eq!(out.stdout.len(), reply.len());
    assert!(out.stdout == reply, "bytes differ");
}

/// The README's example: `--data hello --half-close` against the echo
/// server prints b'hello'.
#[test]
fn data_and_half_close_against_the_echo_server() {
    let server = ServerProcess::start(&[]);
    let out = client(&[&server.addr.to_string(), "--data", "hello", "--half-close"]);
    assert_exit(&out, 0);
    assert_eq!(out.stdout, b"b'hello'\n");
}

/// A payload far larger than the echo server's per-connection cap: the
/// client reads while it writes, or both sides would wait forever.
#[test]
fn data_file_larger_than_the_server_cap_round_trips() {
    let server = ServerProcess::start(&[]);
    let payload = Rng::new(77).bytes(3 * 1024 * 1024);
    let path = std::env::temp_dir().join(format!("echoloop-data-{}", std::process::id()));
    std::fs::write(&path, &payload).unwrap();
    let out = client(&[
        &server.addr.to_string(),
        "--data-file",
        path.to_str().unwrap(),
        "--half-close",
        "--raw",
    ]);
    std::fs::remove_file(&path).unwrap();
    assert_exit(&out, 0);
    assert!(out.stdout == payload, "echo differs");
}

/// An unreadable --data-file: exit 26, one line naming the file.
#[test]
fn missing_data_file_exits_26() {
    let out = client(&["127.0.0.1:9", "--data-file", "/nonexistent/echoloop"]);
    let stderr = assert_exit(&out, 26);
    assert_eq!(
        stderr,
        "echoloop: error: cannot read /nonexistent/echoloop: no such file or directory\n"
    );
}

/// A name that cannot resolve: exit 6 with the resolver's message.
#[test]
fn unresolvable_host_exits_6() {
    let out = client(&["nosuch.invalid"]);
    let stderr = assert_exit(&out, 6);
    assert!(
        stderr.starts_with("echoloop: error: could not resolve host nosuch.invalid: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// A port nobody listens on: connection refused, exit 7.
#[test]
fn refused_connection_exits_7() {
    let (_guard, closed) = common::closed_port();
    let port = closed.port();
    let out = client(&[&format!("127.0.0.1:{port}")]);
    let stderr = assert_exit(&out, 7);
    assert_eq!(
        stderr,
        format!("echoloop: error: failed to connect to 127.0.0.1:{port}: connection refused\n")
    );
}

/// A server that accepts and never answers: exit 28 once --timeout passes.
#[test]
fn silent_server_times_out_with_28() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = thread::spawn(move || listener.accept().map(|(s, _)| s));
    let started = Instant::now();
    let out = client(&[&addr.to_string(), "--timeout", "0.5"]);
    let took = started.elapsed();
    let stderr = assert_exit(&out, 28);
    assert_eq!(
        stderr,
        format!("echoloop: error: timed out after 0.5 s reading from {addr}\n")
    );
    assert!(took >= Duration::from_millis(500), "gave up after {took:?}");
    assert!(took < common::DEADLINE, "took {took:?}");
    drop(holder.join().unwrap());
}

/// IPv6 loopback, in both spellings of the address.
#[test]
fn ipv6_loopback() {
    if !ServerProcess::has_ipv6_loopback() {
        return;
    }
    let server = ServerProcess::at("[::1]:0", &[]);
    let port = server.addr.port();
    for spec in [format!("[::1]:{port}"), format!("http://[::1]:{port}/")] {
        let out = client(&[&spec, "--data", "six", "--half-close"]);
        assert_exit(&out, 0);
        assert_eq!(out.stdout, b"b'six'\n", "{spec}");
    }
    drop(server);
}

/// No SERVER and no terminal on stdin: nobody to prompt, usage error.
#[test]
fn no_server_without_a_terminal_is_a_usage_error() {
    let out = bin().arg("client").stdin(Stdio::piped()).bounded();
    let stderr = assert_exit(&out, 2);
    assert!(stderr.contains("SERVER is required"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// Bad SERVER values and flags are usage errors too.
#[test]
fn bad_client_arguments_exit_2() {
    for args in [
        &["ftp://localhost"][..],
        &["tls://localhost"][..],
        &["host:0"][..],
        &["[::1"][..],
        &["h", "--port", "0"][..],
        &["h", "--timeout", "0"][..],
        &["h", "--data", "x", "--data-file", "y"][..],
    ] {
        let out = client(args);
        assert_exit(&out, 2);
    }
}

/// No SERVER with a terminal on stdin: the prompt, then the answer is used.
/// The terminal comes from util-linux's `script`; skipped without it.
#[test]
fn prompt_on_a_terminal_asks_for_the_server() {
    if !std::path::Path::new("/usr/bin/script").exists() {
        common::missing("no /usr/bin/script (util-linux) to make a terminal");
        return;
    }
    let server = ServerProcess::start(&[]);
    let command = format!(
        "{} client --data hi --half-close",
        bin().get_program().to_str().unwrap()
    );
    let mut script = std::process::Command::new("/usr/bin/script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(script.stdin.take().unwrap(), "{}", server.addr).unwrap();
    let out = script.wait_with_output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    // The terminal echoes the typed address, before or after the prompt
    // depending on when `script` passes it on: check each part, not their
    // adjacency.
    assert!(
        screen.contains("What server do you want to connect to? "),
        "{screen:?}"
    );
    assert!(screen.trim_end().ends_with("b'hi'"), "{screen:?}");
}

/// A one-shot server that writes zeros without pause until the client
/// goes away.
fn endless_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let zeros = vec![0u8; 64 * 1024];
        while s.write_all(&zeros).is_ok() {}
    });
    addr
}

/// `echoloop client ARGS`, killed if it runs for more than 20 s.
fn client_bounded(args: &[&str]) -> (Output, Duration) {
    let mut cmd = bin();
    cmd.arg("client").args(args);
    let started = Instant::now();
    let out = common::run_bounded(cmd, Duration::from_secs(20));
    (out, started.elapsed())
}

/// A reply that never ends and never pauses: the read loop never sees
/// WouldBlock, and still the deadline holds (exit 28 soon after 1 s).
/// Before the fix the client read on until it was killed or ran out of
/// memory. Stdout is /dev/null, which never makes a write wait, so it is
/// the read loop's own deadline check that must stop the client.
#[test]
fn endless_reply_still_times_out() {
    let addr = endless_server();
    let started = Instant::now();
    let mut child = bin()
        .args(["client", &addr.to_string(), "--raw", "--timeout", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    let took = started.elapsed();
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(28), "{stderr}");
    assert_eq!(
        stderr,
        format!("echoloop: error: timed out after 1 s reading from {addr}\n")
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// Waits for `child` at most `limit`; kills it (our own child, by its PID)
/// and fails the test if it is still running then.
#[track_caller]
fn wait_bounded(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the client was still running after {limit:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Everything the exited `child` wrote to its piped stderr.
fn stderr_of(child: &mut std::process::Child) -> String {
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

/// Without --raw the reply is held for repr() only up to --max-reply:
/// then exit 63 with one line, never an allocation failure.
#[test]
fn reply_over_max_reply_exits_63() {
    let addr = endless_server();
    let (out, _) = client_bounded(&[&addr.to_string(), "--max-reply", "1000000"]);
    let stderr = assert_exit(&out, 63);
    assert_eq!(
        stderr,
        "echoloop: error: the reply is larger than --max-reply (1000000 bytes); \
         use --raw to stream it\n"
    );
    assert!(out.stdout.is_empty());
}

/// A server that answers and then keeps the connection open: on the
/// timeout the reply so far is printed, then the error (as curl does).
#[test]
fn timeout_prints_the_partial_reply_first() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"hello, it's me").unwrap();
        s
    });
    let (out, _) = client_bounded(&[&addr.to_string(), "--timeout", "0.5"]);
    let stderr = assert_exit(&out, 28);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "b\"hello, it's me\"\n"
    );
    assert_eq!(
        stderr,
        format!("echoloop: error: timed out after 0.5 s reading from {addr}\n")
    );
    drop(holder.join().unwrap());
}

/// Stdout is a pipe nobody reads: the client cannot write its raw reply,
/// and still exits 28 at its deadline instead of waiting for the reader.
#[test]
fn blocked_stdout_does_not_outlast_the_timeout() {
    let addr = endless_server();
    let mut child = bin()
        .args(["client", &addr.to_string(), "--raw", "--timeout", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped()) // held open, never read
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(28), "{stderr}");
    assert_eq!(
        stderr,
        format!("echoloop: error: timed out after 1 s writing the reply from {addr}\n")
    );
}

/// A server that half-closes early (after 1000 bytes) but reads on: the
/// client sends all of its 50 MB upload anyway, and exits 0. Before the fix
/// it stopped sending at the server's EOF and exited 0 with most of the
/// file never sent.
#[test]
fn early_eof_from_the_server_does_not_cut_the_upload() {
    let data = Rng::new(11).bytes(50_000_000);
    let path = std::env::temp_dir().join(format!("echoloop-upload-{}", std::process::id()));
    std::fs::write(&path, &data).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(common::DEADLINE)).unwrap();
        let mut got = vec![0u8; 1000];
        s.read_exact(&mut got).unwrap();
        s.write_all(b"got the start").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        s.read_to_end(&mut got).unwrap();
        got
    });
    let (out, _) = client_bounded(&[
        &addr.to_string(),
        "--data-file",
        path.to_str().unwrap(),
        "--half-close",
    ]);
    let _ = std::fs::remove_file(&path);
    assert_exit(&out, 0);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "b'got the start'\n");
    let got = server.join().unwrap();
    assert_eq!(got.len(), data.len(), "the server got a short upload");
    assert!(got == data, "the upload differs");
}

/// A server that resets the connection while the upload is going out:
/// that is a failed send, exit 55, and the line says how much went out.
#[test]
fn reset_during_upload_exits_55_with_the_byte_counts() {
    let data = vec![b'x'; 50_000_000];
    let path = std::env::temp_dir().join(format!("echoloop-reset-{}", std::process::id()));
    std::fs::write(&path, &data).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut start = vec![0u8; 100_000];
        s.read_exact(&mut start).unwrap();
        // SO_LINGER 0: the close sends a reset, not a FIN.
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    });
    let (out, _) = client_bounded(&[&addr.to_string(), "--data-file", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    let stderr = assert_exit(&out, 55);
    assert!(
        stderr.starts_with(&format!("echoloop: error: failed sending to {addr}: ")),
        "{stderr}"
    );
    assert!(stderr.contains(" of 50000000 bytes)"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// socat, as in the reproduction, sending zeros from /dev/zero in
/// 4 MiB blocks to one client on a free loopback port, killed on drop (our
/// own child, by its PID). `None` when socat is not installed (`.ci/run`
/// installs it).
struct Socat {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Socat {
    fn endless_zeros() -> Option<Socat> {
        let mut child = std::process::Command::new("socat")
            .args(["-d", "-d", "-b", "4194304", "-u", "/dev/zero"])
            .arg("TCP-LISTEN:0,bind=127.0.0.1,reuseaddr")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        // socat -d -d logs "N listening on AF=2 127.0.0.1:PORT" once ready.
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(at) = line.find("listening on AF=2 ") {
                    let _ = tx.send(line[at + 18..].trim().to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(common::DEADLINE)
            .expect("socat's `listening on` line")
            .parse()
            .expect("socat's address");
        Some(Socat { child, addr })
    }
}

impl Drop for Socat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reproduction with the real socat: an endless reply at full
/// speed. With --raw the deadline holds (exit 28 soon after 1 s, where the
/// client used to read on for 11-18 s or run out of memory); without it,
/// --max-reply stops it (exit 63), never an allocation failure.
#[test]
fn socat_endless_reply_times_out_or_hits_max_reply() {
    let Some(socat) = Socat::endless_zeros() else {
        common::missing("socat is not installed (.ci/run installs it)");
        return;
    };
    let started = Instant::now();
    let mut child = bin()
        .args(["client", &socat.addr.to_string(), "--raw", "--timeout", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(28), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "echoloop: error: timed out after 1 s reading from {}\n",
            socat.addr
        )
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(socat);

    let Some(socat) = Socat::endless_zeros() else {
        return;
    };
    let (out, _) = client_bounded(&[&socat.addr.to_string(), "--max-reply", "20000000"]);
    let stderr = assert_exit(&out, 63);
    assert_eq!(
        stderr,
        "echoloop: error: the reply is larger than --max-reply (20000000 bytes); \
         use --raw to stream it\n"
    );
}
