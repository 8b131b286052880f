//! Unix-domain stream sockets: `echoloop server --bind unix:/path` (and
//! `unix:@name`), `echoloop client unix:/path`, `echoloop load unix:/path`:
//! the same echo, the socket file's life (stale, foreign, removed, mode).

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::Command;

use common::{DEADLINE, Rng, ServerProcess, bin, run_bounded};

/// A fresh path in the temp directory for this test (removed first).
fn sock_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("echoloop-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// `echoloop server --bind unix:PATH ARGS`, started and ready.
fn server_at(path: &str, args: &[&str]) -> ServerProcess {
    let mut cmd = bin();
    cmd.args(["server", "--bind", path]).args(args);
    ServerProcess::spawn(cmd)
}

fn client(args: &[&str]) -> std::process::Output {
    let mut cmd = bin();
    cmd.arg("client").args(args);
    run_bounded(cmd, DEADLINE)
}

/// Echo over a socket file, byte for byte, with a half-close; the ready
/// line names the path; `--unix-mode` sets the file's permissions; the
/// file is gone after SIGTERM.
#[test]
fn echo_over_a_socket_file_and_its_life() {
    let path = sock_path("life");
    let spec = format!("unix:{}", path.display());
    let server = server_at(&spec, &["--unix-mode", "0660"]);
    assert_eq!(server.ready, spec);
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    let payload = Rng::new(5).bytes(300_000);
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut writer = s.try_clone().unwrap();
    let sent = payload.clone();
    let sender = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    sender.join().unwrap();
    assert!(got == payload, "300 kB back byte for byte, then EOF");

    let out = client(&[&spec, "--data", "hi unix", "--half-close"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"b'hi unix'\n");

    server.signal(libc::SIGTERM);
    let (status, out, _) = server.wait_exit();
    assert!(status.success());
    assert!(
        out[0].starts_with("served 2 connections, echoed 300007 bytes"),
        "{out:?}"
    );
    assert!(!path.exists(), "the socket file is removed on shutdown");
}

/// A socket file left by a dead server is replaced; one a live server
/// answers on is "address in use"; a regular file is never touched.
#[test]
fn stale_live_and_foreign_files() {
    let path = sock_path("stale");
    drop(UnixListener::bind(&path).unwrap()); // the file stays, nobody listens
    let spec = format!("unix:{}", path.display());
    let mut server = server_at(&spec, &[]);
    server.wait_stderr(|l| l.contains("replacing a stale socket file"));
    assert_eq!(
        client(&[&spec, "--data", "x", "--half-close"]).stdout,
        b"b'x'\n"
    );

    let second = run_bounded(
        {
            let mut cmd = bin();
            cmd.args(["server", "--bind", &spec]);
            cmd
        },
        DEADLINE,
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {spec}: address in use")),
        "{stderr}"
    );
    drop(server);

    let file = sock_path("foreign");
    std::fs::write(&file, b"not a socket").unwrap();
    let foreign = format!("unix:{}", file.display());
    let mut cmd = bin();
    cmd.args(["server", "--bind", &foreign]);
    let out = run_bounded(cmd, DEADLINE);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("exists and is not a socket"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a socket", "untouched");
    std::fs::remove_file(&file).unwrap();
}

/// The abstract namespace: no file at all; the client and the load
/// generator reach it by name.
#[test]
fn abstract_names_for_client_and_load() {
    let name = format!("unix:@echoloop-test-{}", std::process::id());
    let server = server_at(&name, &[]);
    assert_eq!(server.ready, name);
    let out = client(&[&name, "--data", "abstract", "--half-close"]);
    assert_eq!(
        out.stdout,
        b"b'abstract'\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = bin();
    cmd.args(["load", &name, "-c", "3", "-d", "200ms", "--json"]);
    let out = run_bounded(cmd, DEADLINE);
    let json = common::clean_stdout(out);
    assert!(common::json_number(&json, "messages") > 0.0, "{json}");
    assert_eq!(common::json_number(&json, "errors.mismatch"), 0.0, "{json}");
}

/// Options that need an IP address are refused with a Unix socket (exit
/// 2), and a client or load to a path nobody listens on is exit 7.
#[test]
fn unix_misuse_and_nobody_listening() {
    let path = sock_path("nobody");
    let spec = format!("unix:{}", path.display());
    for extra in [&["--threads", "2"][..], &["--udp"][..]] {
        let mut cmd = bin();
        cmd.args(["server", "--bind", &spec]).args(extra);
        assert_eq!(
            run_bounded(cmd, DEADLINE).status.code(),
            Some(2),
            "{extra:?}"
        );
    }
    let mut cmd = bin();
    cmd.args(["server", "--bind", "127.0.0.1:0", "--unix-mode", "0600"]);
    assert_eq!(run_bounded(cmd, DEADLINE).status.code(), Some(2));
    let out = client(&[&spec, "--data", "x"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_bounded(
        {
            let mut cmd: Command = bin();
            cmd.args(["load", &spec, "-c", "1", "-d", "100ms"]);
            cmd
        },
        DEADLINE,
    );
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server stopping removes its socket file only if the file is still
/// its own: start A on a path, remove the path, start B on it, stop A.
/// B's file stays, and B still answers there.
#[test]
fn a_stopping_server_leaves_a_newer_servers_file() {
    let path = sock_path("replaced");
    let spec = format!("unix:{}", path.display());
    let a = server_at(&spec, &[]);
    std::fs::remove_file(&path).unwrap();
    let b = server_at(&spec, &[]);
    a.signal(libc::SIGTERM);
    let (status, _, err) = a.wait_exit();
    assert!(status.success());
    assert!(
        err.iter()
            .any(|l| l.ends_with("is no longer our socket file: left in place")),
        "{err:?}"
    );
    assert!(path.exists(), "B's file is still there");
    let out = client(&[&spec, "--data", "still B", "--half-close"]);
    assert_eq!(out.stdout, b"b'still B'\n");
    drop(b);
}
