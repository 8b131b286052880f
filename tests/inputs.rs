//! Files named on the command line that are FIFOs: one nobody writes
//! fails after a bounded wait, with a line that says so and the option's
//! exit code, instead of blocking in `open` until killed; one that is
//! written (as `-f <(cmd)` is) works.

mod common;

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use common::{ServerProcess, bin, run_bounded, scratch};

/// A FIFO at `dir/name`.
fn fifo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates the file.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    path
}

/// Each of the five inputs given a FIFO with no writer ends within the
/// wait (10 s) and the test's bound, with its exit code and one line
/// naming the file. (They run side by side: one wait for all five.)
#[test]
fn a_fifo_nobody_writes_fails_after_a_bounded_wait() {
    let dir = scratch("inputs", "silent");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let cases: Vec<(Vec<String>, i32, PathBuf)> = [
        (
            "cert",
            vec!["server", "--tls", "--tls-cert", "@", "--tls-key", key],
            58,
        ),
        (
            "key",
            vec!["server", "--tls", "--tls-cert", cert, "--tls-key", "@"],
            58,
        ),
        ("ca", vec!["server", "--tls", "--tls-client-ca", "@"], 77),
        (
            "message",
            vec!["load", "127.0.0.1:9", "--message-file", "@"],
            2,
        ),
        (
            "first",
            vec!["load", "127.0.0.1:9", "--first-message", "@@"],
            2,
        ),
    ]
    .into_iter()
    .map(|(name, args, code)| {
        let path = fifo(&dir, name);
        let p = path.to_str().unwrap();
        let args = args
            .iter()
            .map(|a| match *a {
                "@" => p.to_string(),
                "@@" => format!("@{p}"),
                other => other.to_string(),
            })
            .collect();
        (args, code, path)
    })
    .collect();
    let began = Instant::now();
    let runs: Vec<_> = cases
        .into_iter()
        .map(|(args, code, path)| {
            thread::spawn(move || {
                let mut cmd = bin();
                cmd.args(&args);
                if args[0] == "server" {
                    cmd.args(["--bind", "127.0.0.1:0"]);
                }
                (run_bounded(cmd, Duration::from_secs(30)), code, path)
            })
        })
        .collect();
    for run in runs {
        let (out, code, path) = run.join().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{}: {err}", path.display());
        assert!(
            err.contains(&format!(
                "cannot read {}: not written to its end within 10 s (a FIFO with no writer?)",
                path.display()
            )),
            "{err}"
        );
    }
    assert!(
        began.elapsed() >= Duration::from_secs(10),
        "the wait is 10 s"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A FIFO whose writer comes a little later (the shell's `-f <(cmd)`):
/// its bytes are the message, echoed and checked.
#[test]
fn a_fifo_that_is_written_is_the_message() {
    let dir = scratch("inputs", "written");
    let path = fifo(&dir, "message");
    let writer = {
        let path = path.clone();
        thread::spawn(move || std::fs::write(&path, b"PING\r\n").unwrap())
    };
    let server = ServerProcess::start(&[]);
    let mut cmd = bin();
    cmd.arg("load")
        .arg(server.addr.to_string())
        .args(["-c", "1", "-d", "200ms", "--json", "--message-file"])
        .arg(&path);
    let json = common::clean_stdout(run_bounded(cmd, common::DEADLINE));
    assert_eq!(common::json_number(&json, "size"), 6.0, "{json}");
    assert!(common::json_number(&json, "messages") > 0.0, "{json}");
    writer.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
