//! docs/load-testing.md runs as written: every `sh` block, in order, in
//! one bash session in an empty directory, with `echoloop` on the PATH
//! and real haproxy as the proxy under test. Only the ports change: each
//! one the guide uses is swapped for a free one, so the test never takes
//! a fixed port. Blocks marked `<!-- recipe: … -->` (run by
//! tests/fanout.rs) or `<!-- not run by tests/guide.rs: … -->` are left
//! out. The files each section makes are checked, and so is what the
//! PROXY protocol section says the server's summary shows.

mod common;

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, missing, scratch};

/// Every port the guide uses. A port it uses that is not here fails the
/// test (it would run on a fixed port).
const PORTS: [u16; 11] = [
    7878, 7879, 7880, 7882, 7443, 8080, 8081, 8443, 8444, 8445, 9100,
];

/// The most the whole guide may take.
const GUIDE_DEADLINE: Duration = Duration::from_secs(300);

/// The guide's `sh` blocks that this test runs, in order.
fn blocks(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut previous = "";
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line == "```sh" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            let skipped = previous.starts_with("<!-- recipe:")
                || previous.starts_with("<!-- not run by tests/guide.rs");
            if !skipped {
                out.push(block.join("\n"));
            }
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    out
}

/// The ports `script` names after `127.0.0.1:` or `ready `.
fn ports_named(script: &str) -> Vec<u16> {
    let mut found = Vec::new();
    for marker in ["127.0.0.1:", "ready ", "/dev/tcp/127.0.0.1/"] {
        for rest in script.split(marker).skip(1) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(port) = digits.parse() {
                found.push(port);
            }
        }
    }
    found
}

#[test]
fn the_guide_runs_as_written() {
    if Command::new("haproxy").arg("-v").output().is_err() {
        missing("no haproxy for docs/load-testing.md (apt install haproxy)");
        return;
    }
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/load-testing.md"))
            .unwrap();
    let mut script = blocks(&doc).join("\n");
    assert!(script.contains("haproxy -db -f haproxy.cfg &"), "{script}");
    for port in ports_named(&script) {
        assert!(
            PORTS.contains(&port),
            "the guide uses port {port}: add it to PORTS"
        );
    }
    for port in PORTS {
        let free = free_port().to_string();
        let port = port.to_string();
        script = script
            .replace(&format!("127.0.0.1:{port}"), &format!("127.0.0.1:{free}"))
            .replace(&format!("ready {port}"), &format!("ready {free}"))
            .replace(&format!("localhost:{port}"), &format!("localhost:{free}"));
    }
    let dir = scratch("guide", "run");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_echoloop")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(&dir)
        .env("PATH", path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: on a failure, what it started ends too.
        .process_group(0)
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let end = Instant::now() + GUIDE_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > end {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.is_some_and(|s| s.success()) {
        // SAFETY: a signal to the process group of the shell we started
        // (its id is the shell's PID): the guide's servers and proxies.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
    }
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(
        status.is_some_and(|s| s.success()),
        "the guide failed ({status:?}):\n{stdout}\n{stderr}"
    );
    for made in [
        "cmp.html",
        "knee.html",
        "worked.html",
        "report.html",
        "proxy.html",
        "proxy.json",
        "certs/key.pem",
        "request.bin",
    ] {
        assert!(dir.join(made).exists(), "{made} was not made:\n{stdout}");
    }
    assert!(
        stdout.contains("2 runs compared, ratios to direct"),
        "{stdout}"
    );
    assert!(
        stdout.contains("over 3 windows: median [min – max]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("; proxy headers v1 0 v2 ")
            && stdout.contains("refused bad 0 oversized 0 timed out 0 left ")
            && stdout.contains(", last client 192.0.2.7:"),
        "{stdout}"
    );
    assert!(stdout.contains("exit 1: resets counted"), "{stdout}");
    assert!(stdout.contains("exit 1: timeouts counted"), "{stdout}");
    let worked = std::fs::read_to_string(dir.join("worked.html")).unwrap();
    assert!(
        worked.contains("haproxy-tls-pp"),
        "the worked example's page"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn blocks_are_found_and_marked_ones_left_out() {
    let doc = "intro\n```sh\na\nb\n```\n<!-- recipe: x -->\n```sh\nskip\n```\n\
               <!-- not run by tests/guide.rs: y -->\n\n```sh\nskip too\n```\n```text\nno\n```\n```sh\nc\n```\n";
    assert_eq!(blocks(doc), ["a\nb", "c"]);
    assert_eq!(
        ports_named("x 127.0.0.1:7878 ready 8080 /dev/tcp/127.0.0.1/9"),
        [7878, 8080, 9]
    );
}
