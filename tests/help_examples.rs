//! Every example in `--help` runs as written: each `echoloop …` line of
//! the top-level and each subcommand's long help is run against real
//! servers on loopback. Only what ties an example to one machine is
//! changed: the port 7878 becomes the test server's (or 0 where a server
//! binds), `/tmp/echo.sock` a scratch path, and hosts off this machine
//! (`example.com`, the web server on 127.0.0.1:8000) a small HTTP server
//! made here. Each must end on its own with exit 0 (servers: once
//! listening, SIGTERM stops them with exit 0).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::thread;

use common::Bounded as _;
use common::{DEADLINE, ServerProcess, bin, run_bounded, scratch};

/// The example lines of `echoloop ARGS --help`, comments cut off.
fn examples(args: &[&str]) -> Vec<String> {
    let out = bin().args(args).arg("--help").bounded();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("  echoloop "))
        .map(|l| l.split(" # ").next().unwrap_or(l).trim().to_string())
        .collect()
}

/// Words as a shell splits them (single quotes only, as the examples use).
fn words(line: &str) -> Vec<String> {
    let (mut out, mut word, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

/// An HTTP server that answers every request with `hello` and closes.
fn web_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        }
    });
    port
}

/// Runs one example, `args` already tied to this machine, in `dir`.
#[track_caller]
fn run(args: &[String], dir: &Path) -> std::process::Output {
    let mut cmd = bin();
    cmd.args(args).current_dir(dir);
    run_bounded(cmd, DEADLINE)
}

#[test]
fn every_help_example_runs_as_written() {
    let dir = scratch("help", "examples");
    let echo = ServerProcess::start(&["--udp"]);
    let port = echo.addr.port().to_string();
    let web = web_server();
    let tie = |line: &str, binds: bool| -> Vec<String> {
        let line = line
            .replace("/tmp/echo.sock", dir.join("echo.sock").to_str().unwrap())
            .replace("127.0.0.1:8000", &format!("127.0.0.1:{web}"))
            .replace(" example.com", &format!(" 127.0.0.1:{web}"))
            .replace(":7878", &format!(":{}", if binds { "0" } else { &port }))
            .replace(":9100", ":0");
        words(&line)
    };
    let mut lines = examples(&[]);
    for sub in ["server", "client", "load", "report"] {
        lines.extend(examples(&[sub]));
    }
    lines.extend(examples(&["generate"]));
    lines.extend(examples(&["generate", "cert"]));
    // The certificates the server examples serve come from the generate
    // examples (generate runs first); the logs the report examples read:
    // run.hlog comes from a load example (load runs before report); the
    // others are copies of it.
    lines.sort_by_key(|l| {
        ["generate", "server", "client", "load", "report"]
            .iter()
            .position(|s| l.starts_with(s))
    });
    lines.dedup();
    let mut ran = 0;
    for line in &lines {
        if line.starts_with("report") {
            for name in [
                "gen1", "gen2", "gen3", "direct", "haproxy", "socat", "a1", "a2", "b1", "b2",
            ] {
                let to = dir.join(format!("{name}.hlog"));
                if !to.exists() {
                    std::fs::copy(dir.join("run.hlog"), to).expect("run.hlog from a load example");
                }
            }
        }
        if line.starts_with("server") {
            let mut cmd = bin();
            cmd.args(tie(line, true)).current_dir(&dir);
            let server = ServerProcess::spawn(cmd);
            server.signal(libc::SIGTERM);
            let (status, _, _) = server.wait_exit();
            assert_eq!(status.code(), Some(0), "{line}");
        } else {
            let out = run(&tie(line, false), &dir);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{line}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if line.contains("--data hi") {
                assert_eq!(String::from_utf8_lossy(&out.stdout), "b'hi'\n", "{line}");
            }
        }
        ran += 1;
    }
    assert!(ran >= 22, "{ran} examples: {lines:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
