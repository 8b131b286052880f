//! The command line: start-up errors, usage errors, signals and the
//! shutdown summary, against the real binary.

mod common;

use std::net::TcpListener;

use common::Bounded as _;
use common::{ServerProcess, bin, round_trip};

/// SIGTERM: exit 0 and one summary line with the exact figures.
#[test]
fn sigterm_prints_the_summary_and_exits_zero() {
    let server = ServerProcess::start(&[]);
    let mut a = server.connect();
    let mut b = server.connect();
    round_trip(&mut a, b"hello");
    round_trip(&mut b, b"world!");
    drop(a);
    round_trip(&mut b, b"+"); // b's echo after a's close: a's close was handled
    server.signal(libc::SIGTERM);
    let (status, stdout, _) = server.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        stdout,
        ["served 2 connections, echoed 12 bytes, peak 2 concurrent"]
    );
}

/// SIGINT (Ctrl-C) does the same.
#[test]
fn sigint_exits_zero_too() {
    let server = ServerProcess::start(&[]);
    server.signal(libc::SIGINT);
    let (status, stdout, _) = server.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        stdout,
        ["served 0 connections, echoed 0 bytes, peak 0 concurrent"]
    );
}

/// Signals that interrupt `poll` (EINTR) are retried, not fatal; SIGUSR1
/// prints the counters so far.
#[test]
fn sigusr1_interrupts_poll_harmlessly_and_prints_counters() {
    let mut cmd = bin();
    cmd.args(["server", "--bind", "127.0.0.1:0"])
        .env("RUST_LOG", "echoloop::server=trace");
    let mut server = ServerProcess::spawn(cmd);
    let mut c = server.connect();
    let wchan = format!("/proc/{}/wchan", server.pid());
    for i in 0..20u8 {
        // Signal only once the server sleeps in epoll_wait, so the signal
        // really interrupts it (instead of landing while it runs).
        common::eventually("the server to block in epoll_wait", || {
            std::fs::read_to_string(&wchan).is_ok_and(|w| w.contains("epoll"))
        });
        server.signal(libc::SIGUSR1);
        let line = server.wait_stderr(|l| l.starts_with("stats: "));
        assert!(line.contains(&format!("in={}", i as u32 * 2)), "{line}");
        round_trip(&mut c, &[i, i]);
    }
    server.signal(libc::SIGTERM);
    let (status, _, stderr) = server.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("poll interrupted by a signal")),
        "no EINTR was seen"
    );
}

/// Address in use: one clear line, exit 1, no panic.
#[test]
fn address_in_use_is_one_clear_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = bin()
        .args(["server", "--bind", &addr.to_string()])
        .bounded();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        format!("echoloop: error: cannot listen on {addr}: address already in use\n")
    );
}

/// Bad arguments are clap usage errors: exit 2, a message naming the flag.
#[test]
fn bad_arguments_exit_2() {
    for (args, names) in [
        (&["server", "--bind", "nonsense"][..], "--bind"),
        (&["server", "--bind", "127.0.0.1"][..], "--bind"),
        (&["server", "--backlog", "0"][..], "--backlog"),
        (&["server", "--backlog", "many"][..], "--backlog"),
        (&["server", "--read-size", "0"][..], "--read-size"),
        (
            &["server", "--max-connections", "0"][..],
            "--max-connections",
        ),
        (&["server", "--idle-timeout", "0"][..], "--idle-timeout"),
        (&["server", "--stats", "soon"][..], "--stats"),
        (&["server", "--frobnicate"][..], "--frobnicate"),
        (&["teleport"][..], "teleport"),
    ] {
        let out = bin().args(args).bounded();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(names), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// A backlog above somaxconn gets a warning (the kernel caps it silently).
#[test]
fn backlog_above_somaxconn_warns() {
    let Some(max) = echoloop::shared::net::somaxconn() else {
        return; // no /proc here: nothing to compare against
    };
    let mut server = ServerProcess::start(&["--backlog", &(max + 1).to_string()]);
    let line = server.wait_stderr(|l| l.contains("somaxconn"));
    assert!(line.contains("WARN"), "{line}");
    let mut c = server.connect();
    round_trip(&mut c, b"ok");
}

/// `--help` documents every option of every subcommand: the list comes
/// from clap's own `Command` (the definitions in `echoloop::cli`), and each
/// long option, with its help line, is in what the binary prints.
#[test]
fn help_lists_every_option() {
    use clap::CommandFactory;
    let cli = echoloop::cli::Cli::command();
    let mut checked = 0;
    for sub in cli.get_subcommands() {
        let name = sub.get_name();
        let out = bin().args([name, "--help"]).bounded();
        assert_eq!(out.status.code(), Some(0), "{name} --help");
        let help = String::from_utf8(out.stdout).unwrap();
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let Some(long) = arg.get_long() else { continue };
            assert!(
                help.contains(&format!("--{long}")),
                "{name}: --{long} missing from:\n{help}"
            );
            assert!(
                arg.get_help().is_some(),
                "{name}: --{long} has no help line"
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} options found");
}

/// A low port without the privilege: one clear line, exit 1. Needs to drop
/// root for the attempt (util-linux's setpriv, which .ci/run installs, as
/// root, which CI is); skipped, saying so, where that is not possible or
/// low ports are open to everyone (a failure under CI). The binary is
/// copied where the unprivileged user can run it (the build may be under
/// a directory only root can enter).
#[test]
fn permission_denied_on_a_low_port_is_one_clear_line() {
    let unprivileged_start: u32 =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::missing("not root: cannot drop to an unprivileged user");
        return;
    }
    let setpriv = std::path::Path::new("/usr/bin/setpriv");
    if !setpriv.exists() {
        common::missing("no /usr/bin/setpriv (util-linux)");
        return;
    }
    if unprivileged_start <= 80 {
        common::missing("ip_unprivileged_port_start is 80 or lower: port 80 is open to all");
        return;
    }
    let dir = std::env::temp_dir().join(format!("echoloop-setpriv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("echoloop");
    std::fs::copy(bin().get_program(), &exe).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    for (path, mode) in [(&dir, 0o755), (&exe, 0o755)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let out = std::process::Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args(["server", "--bind", "127.0.0.1:80"])
        .bounded();
    std::fs::remove_dir_all(&dir).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        "echoloop: error: cannot listen on 127.0.0.1:80: permission denied\n"
    );
}

/// `--version` names the commit it was built from (build.rs), as `git`
/// sees it here; every subcommand says the same.
#[test]
fn version_names_the_commit() {
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string());
    let version = env!("CARGO_PKG_VERSION");
    let expected = match head {
        Some(commit) => format!("echoloop {version} ({commit})\n"),
        None => format!("echoloop {version}\n"),
    };
    for args in [&["--version"][..], &["load", "--version"]] {
        let out = bin().args(args).bounded();
        assert_eq!(out.status.code(), Some(0));
        let said = String::from_utf8(out.stdout).unwrap();
        let said = said.replace("echoloop-load ", "echoloop ");
        assert_eq!(said, expected, "{args:?}");
    }
}
