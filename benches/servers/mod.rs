//! The servers the benches compare, all echoing with 1024-byte reads:
//!
//! - `echoloop`: this crate's reactor (`echoloop::server::Server`).
//! - `threads`: one OS thread per connection, blocking std sockets.
//! - `tokio`: a tokio `current_thread` runtime, one task per connection.
//!
//! Each can run in-process on a background thread (criterion benches) or,
//! through [`serve_if_asked`], as a separate process: a bench binary started
//! with `--serve KIND` becomes that server, prints `listening on ADDR` and
//! runs until killed. Separate processes are what memory and CPU-time
//! measurements need.
#![allow(dead_code)] // each bench uses its own subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::thread;

mod uring;

/// The read size every server uses.
pub const READ_SIZE: usize = 1024;

/// The kinds of server, as named on the command line.
pub const KINDS: [&str; 3] = ["echoloop", "threads", "tokio"];

/// Starts server `kind` on 127.0.0.1:0 on a background thread and returns
/// its address. The server lives until the process ends.
pub fn spawn(kind: &str) -> SocketAddr {
    match kind {
        "echoloop" => {
            let mut server = echoloop::server::Server::bind(echoloop::server::Config {
                bind: "127.0.0.1:0".parse().unwrap(),
                read_size: READ_SIZE,
                ..Default::default()
            })
            .expect("bind echoloop server");
            let addr = server.local_addr().unwrap();
            thread::spawn(move || server.run());
            addr
        }
        "threads" => {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            thread::spawn(move || threads(listener));
            addr
        }
        "tokio" => {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            thread::spawn(move || tokio_current_thread(listener));
            addr
        }
        other => panic!("unknown server kind {other}"),
    }
}

/// Thread per connection: the blocking textbook server.
pub fn threads(listener: TcpListener) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        thread::spawn(move || echo_blocking(stream));
    }
}

fn echo_blocking(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = [0u8; READ_SIZE];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// tokio's single-threaded runtime: the async equivalent of the reactor.
pub fn tokio_current_thread(listener: TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    runtime.block_on(async move {
        listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let mut buf = [0u8; READ_SIZE];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
}

/// A UDP echo on a tokio `current_thread` runtime: receive a datagram,
/// send it back, as tokio's `echo-udp` example does.
pub fn tokio_udp(socket: std::net::UdpSocket) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    runtime.block_on(async move {
        socket.set_nonblocking(true).unwrap();
        let socket = tokio::net::UdpSocket::from_std(socket).unwrap();
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
}

/// If this process was started with `--serve KIND`, becomes that server
/// (printing `listening on ADDR`) and never returns.
pub fn serve_if_asked() {
    let args: Vec<String> = std::env::args().collect();
    let Some(i) = args.iter().position(|a| a == "--serve") else {
        return;
    };
    let kind = args.get(i + 1).map(String::as_str).unwrap_or("");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    match kind {
        "tokio-udp" => {
            drop(listener);
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            println!("listening on udp://{}", socket.local_addr().unwrap());
            std::io::stdout().flush().unwrap();
            tokio_udp(socket);
        }
        "uring" => {
            if let Err(e) = uring::serve(listener) {
                eprintln!("uring: {e}");
                std::process::exit(1);
            }
        }
        "threads" | "tokio" => {
            println!("listening on {addr}");
            std::io::stdout().flush().unwrap();
            if kind == "threads" {
                threads(listener);
            } else {
                tokio_current_thread(listener);
            }
        }
        other => panic!("--serve takes threads, tokio, tokio-udp or uring, not {other:?}"),
    }
    std::process::exit(0);
}

/// Every server kind a bench can start as its own process, by the name
/// `KINDS=` and the benches use. A name that is none of these is a typo,
/// and an error ([`kinds_from_env`] exits), never "not available, skipped".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// This crate's reactor.
    Echoloop,
    /// This crate's reactor with N reactors (`echoloop-t2`, `echoloop-t4`, ...).
    EcholoopThreads(u32),
    /// This crate's reactor serving UDP only.
    EcholoopUdp,
    /// This crate's reactor on a Unix-domain socket.
    EcholoopUnix,
    /// Thread per connection.
    Threads,
    /// tokio `current_thread`.
    Tokio,
    /// tokio serving UDP.
    TokioUdp,
    /// io_uring (completions, not readiness).
    Uring,
    /// The C epoll baseline.
    C,
    /// The C UDP loop.
    CUdp,
    /// The batched C UDP loop (recvmmsg/sendmmsg).
    CUdpMmsg,
    /// The echoloop binary named by `ECHOLOOP_BEFORE`.
    Before,
    /// The same, serving UDP only.
    BeforeUdp,
}

impl std::str::FromStr for Kind {
    type Err = String;

    fn from_str(name: &str) -> Result<Kind, String> {
        Ok(match name {
            "echoloop" => Kind::Echoloop,
            "echoloop-udp" => Kind::EcholoopUdp,
            "echoloop-unix" => Kind::EcholoopUnix,
            "threads" => Kind::Threads,
            "tokio" => Kind::Tokio,
            "tokio-udp" => Kind::TokioUdp,
            "uring" => Kind::Uring,
            "c" => Kind::C,
            "c-udp" => Kind::CUdp,
            "c-udp-mmsg" => Kind::CUdpMmsg,
            "before" => Kind::Before,
            "before-udp" => Kind::BeforeUdp,
            several => match several
                .strip_prefix("echoloop-t")
                .and_then(|n| n.parse::<u32>().ok())
            {
                Some(n) if n >= 1 => Kind::EcholoopThreads(n),
                _ => {
                    return Err(format!(
                        "unknown server kind {name:?} (known: echoloop, echoloop-tN, \
                         echoloop-udp, echoloop-unix, threads, tokio, tokio-udp, uring, \
                         c, c-udp, c-udp-mmsg, before, before-udp)"
                    ));
                }
            },
        })
    }
}

/// The command that runs server `kind` as its own process on
/// 127.0.0.1:0. `kind` is one of [`KINDS`], `c` (the C epoll baseline,
/// when [`c_anchor`] can build it) or `before` and `before-udp` (the
/// echoloop binary named by `ECHOLOOP_BEFORE`, when set). The process prints `listening on ADDR` first.
pub fn command(name: &str) -> Option<std::process::Command> {
    use std::process::Command;
    let kind: Kind = match name.parse() {
        Ok(kind) => kind,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    let cmd = match kind {
        Kind::Echoloop => {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_echoloop"));
            cmd.args(["server", "--bind", "127.0.0.1:0"])
                .env("RUST_LOG", "warn");
            cmd
        }
        Kind::Threads | Kind::Tokio => {
            let mut cmd = Command::new(std::env::current_exe().ok()?);
            cmd.args(["--serve", name]);
            cmd
        }
        // io_uring (completions, not readiness), where the kernel has it.
        Kind::Uring => {
            if !uring_available() {
                return None;
            }
            let mut cmd = Command::new(std::env::current_exe().ok()?);
            cmd.args(["--serve", name]);
            cmd
        }
        // echoloop with N reactors: `echoloop-t2`, `echoloop-t4`, ...
        Kind::EcholoopThreads(threads) => {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_echoloop"));
            cmd.args([
                "server",
                "--bind",
                "127.0.0.1:0",
                "--threads",
                &threads.to_string(),
            ])
            .env("RUST_LOG", "warn");
            cmd
        }
        Kind::C => {
            let mut cmd = Command::new(c_anchor()?);
            cmd.arg("0");
            cmd
        }
        // UDP echo servers: the C baseline, echoloop, tokio.
        Kind::CUdp => {
            let mut cmd = Command::new(c_binary("udp_echo")?);
            cmd.arg("0");
            cmd
        }
        // The batched C yardstick: recvmmsg and sendmmsg, 32 at a time.
        Kind::CUdpMmsg => {
            let mut cmd = Command::new(c_binary("udp_echo_mmsg")?);
            cmd.arg("0");
            cmd
        }
        Kind::EcholoopUdp => {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_echoloop"));
            cmd.args(["server", "--bind", "127.0.0.1:0", "--udp-only"])
                .env("RUST_LOG", "warn");
            cmd
        }
        Kind::TokioUdp => {
            let mut cmd = Command::new(std::env::current_exe().ok()?);
            cmd.args(["--serve", name]);
            cmd
        }
        // echoloop on a Unix-domain socket (a fresh path per process).
        Kind::EcholoopUnix => {
            let path = std::env::temp_dir().join(format!(
                "echoloop-bench-{}-{}.sock",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ));
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_echoloop"));
            cmd.args(["server", "--bind", &format!("unix:{}", path.display())])
                .env("RUST_LOG", "warn");
            cmd
        }
        // Another build of echoloop (say, the last commit's), to compare
        // before and after a change in one interleaved run.
        Kind::Before => {
            let mut cmd = Command::new(std::env::var_os("ECHOLOOP_BEFORE")?);
            cmd.args(["server", "--bind", "127.0.0.1:0"])
                .env("RUST_LOG", "warn");
            cmd
        }
        // The same, serving UDP only: the loop checks' cost per datagram.
        Kind::BeforeUdp => {
            let mut cmd = Command::new(std::env::var_os("ECHOLOOP_BEFORE")?);
            cmd.args(["server", "--bind", "127.0.0.1:0", "--udp-only"])
                .env("RUST_LOG", "warn");
            cmd
        }
    };
    Some(cmd)
}

/// The project's C epoll baseline (`benches/c/epoll_echo.c`), compiled
/// with `cc -O2` into `target/`; or the binary named by
/// `ECHOLOOP_C_ANCHOR`. `None`, with a line saying why, when there is no C
/// compiler: it is a yardstick, not part of the project.
pub fn c_anchor() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("ECHOLOOP_C_ANCHOR") {
        return Some(std::path::PathBuf::from(path));
    }
    c_binary("epoll_echo")
}

/// `benches/c/NAME.c`, compiled with `cc -O2` into `target/NAME` (again
/// only when the source is newer); `None`, with a line saying why, when
/// there is no C compiler.
pub fn c_binary(name: &str) -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let source = manifest.join(format!("benches/c/{name}.c"));
    let binary = manifest.join(format!("target/{name}"));
    let fresh = |b: &PathBuf| {
        let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        matches!((modified(b), modified(&source)), (Some(b), Some(s)) if b >= s)
    };
    if fresh(&binary) {
        return Some(binary);
    }
    let built = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .status();
    match built {
        Ok(status) if status.success() => Some(binary),
        Ok(status) => {
            skipped(&format!(
                "c: `cc` failed ({status}) on {}: skipped",
                source.display()
            ));
            None
        }
        Err(e) => {
            skipped(&format!("c: no C compiler (`cc`: {e}): skipped"));
            None
        }
    }
}

/// `cmd`, optionally run under `taskset -c CORE`.
pub fn clone_command(cmd: &Command, core: Option<usize>) -> Command {
    let mut out = match core {
        Some(core) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(core.to_string()).arg(cmd.get_program());
            c
        }
        None => Command::new(cmd.get_program()),
    };
    out.args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => out.env(key, v),
            None => out.env_remove(key),
        };
    }
    out
}

/// The median of the finite values (NaN when there are none).
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Says that a part of a bench cannot run here, and goes on without it.
/// Under `.ci/run` (ECHOLOOP_CI), which runs every bench once at a tiny
/// size to check that it works, every kind is required: a missing or
/// misspelt one ends the bench with an error instead.
pub fn skipped(line: &str) {
    println!("{line}");
    if std::env::var_os("ECHOLOOP_CI").is_some() {
        eprintln!("bench: {line} (ECHOLOOP_CI is set: every part must run)");
        std::process::exit(1);
    }
}

/// The environment variable `key` parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether `program` is on the PATH.
pub fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `taskset` can pin processes to cores.
pub fn has_taskset() -> bool {
    has("taskset")
}

/// The server kinds to compare: the comma list in `KINDS`, or `default`;
/// kinds that cannot run here are announced and left out.
pub fn kinds_from_env(default: &str) -> Vec<String> {
    kinds_from_env_with(default, &[])
}

/// [`kinds_from_env`], also keeping the kinds in `own`: those a bench
/// starts itself, which the shared list does not know.
pub fn kinds_from_env_with(default: &str, own: &[&str]) -> Vec<String> {
    std::env::var("KINDS")
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(str::to_string)
        .filter(|k| {
            if !own.contains(&k.as_str())
                && let Err(e) = k.parse::<Kind>()
            {
                eprintln!("bench: {e}");
                std::process::exit(2);
            }
            let ok = own.contains(&k.as_str()) || command(k).is_some();
            if !ok {
                skipped(&format!("{k}: not available, skipped"));
            }
            ok
        })
        .collect()
}

/// Whether io_uring works here, with the multishot receive the `uring`
/// kind needs; says why not when it does not.
pub fn uring_available() -> bool {
    let ring = match io_uring::IoUring::new(8) {
        Ok(ring) => ring,
        Err(e) => {
            skipped(&format!("uring: no io_uring here ({e}): skipped"));
            return false;
        }
    };
    let mut probe = io_uring::Probe::new();
    if ring.submitter().register_probe(&mut probe).is_err()
        || !probe.is_supported(io_uring::opcode::RecvMulti::CODE)
    {
        skipped("uring: this kernel lacks multishot receive (Linux 6.0+): skipped");
        return false;
    }
    true
}

/// The TLS configuration a bench server was asked to serve with
/// `FLAG CERT KEY` on its command line (`--serve-tokio-rustls`): `None` when the flag is absent; a usage error
/// (exit 2) or an unusable file (exit 1) ends the process with one line.
/// The configuration is `echoloop server --tls`'s own (`tls_server::setup`),
/// so every kind serves the same certificate, provider and ciphers.
pub fn tls_config_if_asked(flag: &str) -> Option<std::sync::Arc<rustls::ServerConfig>> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == flag)?;
    let (cert, key) = match (args.get(i + 1), args.get(i + 2)) {
        (Some(c), Some(k)) => (std::path::PathBuf::from(c), std::path::PathBuf::from(k)),
        _ => {
            eprintln!("{flag} takes CERT KEY");
            std::process::exit(2);
        }
    };
    let opts = echoloop::server::tls_server::Settings {
        cert: Some(cert),
        key: Some(key),
        ..Default::default()
    };
    match echoloop::server::tls_server::setup(&opts, &std::env::temp_dir()) {
        Ok(served) => Some(std::sync::Arc::clone(&served.config)),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
