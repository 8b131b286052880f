//! What a release ships, run as a user would: the static archive
//! unpacked into an empty directory, and the container image run with
//! real podman (and runc). `.ci/package` builds both and `.ci/run` hands
//! them over: `ECHOLOOP_ARCHIVE` (the .tar.gz) and `ECHOLOOP_IMAGE` (a
//! podman image name). Without them each test says it skipped (under CI,
//! fails).
//!
//! The containers run with `--network host` (the tests' traffic stays on
//! loopback) and explicit `--ulimit`s: without them runc cannot set the
//! limits on this kind of machine. crun, podman's default runtime,
//! refuses here ("cgroups in hybrid mode"), so every run says
//! `--runtime runc`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{DEADLINE, ServerProcess, bin, free_port, json_number, missing, run_bounded, scratch};

/// The archive `.ci/package` made, if we were given one.
fn archive() -> Option<PathBuf> {
    match std::env::var_os("ECHOLOOP_ARCHIVE").filter(|a| !a.is_empty()) {
        Some(a) => Some(PathBuf::from(a)),
        None => {
            missing("no ECHOLOOP_ARCHIVE (.ci/package makes it)");
            None
        }
    }
}

/// The image `.ci/package` built, if we were given one and podman runs.
fn image() -> Option<String> {
    let Some(image) = std::env::var("ECHOLOOP_IMAGE")
        .ok()
        .filter(|i| !i.is_empty())
    else {
        missing("no ECHOLOOP_IMAGE (.ci/package builds it with podman)");
        return None;
    };
    if Command::new("podman").arg("--version").output().is_err() {
        missing("no podman");
        return None;
    }
    Some(image)
}

/// Runs `cmd` (bounded), returning its output.
fn run(mut cmd: Command) -> Output {
    cmd.env_remove("RUST_LOG");
    run_bounded(cmd, DEADLINE)
}

/// Unpacks the archive into an empty directory: the directory inside it.
fn unpacked(archive: &Path, area: &str) -> PathBuf {
    let dir = scratch("release", area);
    let mut tar = Command::new("tar");
    tar.arg("-xzf").arg(archive).arg("-C").arg(&dir);
    let out = run(tar);
    assert!(out.status.success(), "{out:?}");
    let inside: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(inside.len(), 1, "one top directory: {inside:?}");
    inside.into_iter().next().unwrap()
}

/// The archive holds what ripgrep's hold, and works from where it was
/// unpacked: the binary says the same version and commit as the one
/// built here, its man page renders, its bash completion completes, and
/// host names resolve (`localhost`) in the static binary.
#[test]
fn the_archive_unpacks_and_runs_from_anywhere() {
    let Some(archive) = archive() else { return };
    let name = archive.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("echoloop-") && name.ends_with("-x86_64-unknown-linux-static.tar.gz"),
        "{name}"
    );
    let top = unpacked(&archive, "archive");
    assert_eq!(
        top.file_name().unwrap().to_string_lossy(),
        name.trim_end_matches(".tar.gz")
    );
    for file in [
        "echoloop",
        "README.md",
        "LICENSE",
        "CHANGELOG.md",
        "doc/echoloop.1",
        "doc/echoloop-server.1",
        "doc/echoloop-load.1",
        "complete/echoloop.bash",
        "complete/_echoloop",
        "complete/echoloop.fish",
    ] {
        assert!(top.join(file).is_file(), "{file} is in the archive");
    }
    let echoloop = top.join("echoloop");
    let ldd = run({
        let mut c = Command::new("ldd");
        c.arg(&echoloop);
        c
    });
    let said =
        String::from_utf8_lossy(&ldd.stdout).into_owned() + &String::from_utf8_lossy(&ldd.stderr);
    assert!(
        said.contains("statically linked") || said.contains("not a dynamic executable"),
        "{said}"
    );
    let version = |cmd: Command| String::from_utf8(run(cmd).stdout).unwrap();
    let shipped = version({
        let mut c = Command::new(&echoloop);
        c.arg("--version");
        c
    });
    let built = version({
        let mut c = bin();
        c.arg("--version");
        c
    });
    assert_eq!(shipped, built, "the same version and commit");
    assert!(
        shipped.contains('('),
        "--version names the commit: {shipped}"
    );

    let man = run({
        let mut c = Command::new("man");
        c.arg("-l")
            .arg(top.join("doc/echoloop-load.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80");
        c
    });
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(man.status.success() && page.contains("--repeat"), "{page}");

    let completion = run({
        let mut c = Command::new("bash");
        // What bash does on TAB after `echoloop lo`: the words, the
        // cursor, then the function `complete -p` names.
        c.current_dir(&top)
            .args(["--norc", "--noprofile", "-c"])
            .arg(
                "source complete/echoloop.bash && complete -p echoloop && \
             COMP_WORDS=(echoloop lo) COMP_CWORD=1 COMP_LINE='echoloop lo' COMP_POINT=11 && \
             _echoloop echoloop lo echoloop && printf '%s\\n' \"${COMPREPLY[@]}\"",
            );
        c
    });
    let said = String::from_utf8_lossy(&completion.stdout);
    assert!(completion.status.success(), "{said}{:?}", completion);
    assert!(
        said.lines().any(|l| l == "load"),
        "`echoloop lo<TAB>` completes to load: {said}"
    );

    // Host names resolve in the static binary (glibc's files and dns,
    // built in): the load and the client both reach `localhost`.
    let server = ServerProcess::start(&[]);
    let port = server.addr.port();
    let load = run({
        let mut c = Command::new(&echoloop);
        c.args([
            "load",
            &format!("localhost:{port}"),
            "-c",
            "2",
            "-d",
            "200ms",
            "--json",
        ]);
        c
    });
    let json = String::from_utf8_lossy(&load.stdout);
    assert_eq!(load.status.code(), Some(0), "{json}");
    assert!(json_number(&json, "messages") > 0.0, "{json}");
    let client = run({
        let mut c = Command::new(&echoloop);
        c.args([
            "client",
            &format!("http://localhost:{port}/"),
            "--half-close",
        ]);
        c
    });
    let reply = String::from_utf8_lossy(&client.stdout);
    assert_eq!(client.status.code(), Some(0), "{reply}");
    assert!(
        reply.starts_with("b'GET / HTTP/1.1\\r\\nHost: localhost:"),
        "{reply}"
    );
    std::fs::remove_dir_all(top.parent().unwrap()).unwrap();
}

/// `podman run` with what this machine needs: runc, the host's network,
/// and explicit limits.
fn podman_run(image: &str, name: &str, args: &[&str]) -> Command {
    let mut c = Command::new("podman");
    c.args([
        "--runtime",
        "runc",
        "run",
        "--name",
        name,
        "--network",
        "host",
    ])
    .args([
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=1024:1024",
    ]);
    c.args(args).arg(image);
    c
}

/// A container by name, removed (with `podman rm -f`, which ends it
/// first) when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rm", "-f", &self.0]).output();
    }
}

/// A unique container name for this test.
fn container(what: &str) -> Container {
    Container(format!("echoloop-test-{what}-{}", std::process::id()))
}

/// `podman logs NAME`: stdout and stderr together.
fn logs(name: &str) -> String {
    let out = run({
        let mut c = Command::new("podman");
        c.args(["logs", name]);
        c
    });
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The image is `FROM scratch` with the binary alone: under 8 MB, not
/// root, 7878 exposed, `server --bind 0.0.0.0:7878` by default.
#[test]
fn the_image_is_small_and_not_root() {
    let Some(image) = image() else { return };
    let inspect = |format: &str| {
        let out = run({
            let mut c = Command::new("podman");
            c.args(["image", "inspect", &image, "--format", format]);
            c
        });
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let size: u64 = inspect("{{.Size}}").parse().unwrap();
    assert!(size < 8_000_000, "the image is {size} bytes");
    assert_eq!(inspect("{{.Config.User}}"), "65532:65532");
    let ports = inspect("{{.Config.ExposedPorts}}");
    assert!(
        ports.contains("7878/tcp") && ports.contains("7878/udp"),
        "{ports}"
    );
    assert_eq!(inspect("{{.Config.Cmd}}"), "[server --bind 0.0.0.0:7878]");
}

/// A server in the container echoes to `echoloop load` outside, every
/// byte checked; `podman stop` (SIGTERM to PID 1) gives the summary and
/// exit 0 within a second or two, and SIGINT (Ctrl-C in `podman run
/// -it`) stops it the same way.
#[test]
fn a_server_in_the_container_echoes_and_stops_cleanly() {
    let Some(image) = image() else { return };
    for (signal, name) in [("TERM", "stop"), ("INT", "int")] {
        let c = container(name);
        let port = free_port();
        let bind = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let out = run({
            let mut cmd = podman_run(&image, &c.0, &["-d"]);
            cmd.args(["server", "--bind", &bind]);
            cmd
        });
        assert!(out.status.success(), "{out:?}");
        common::eventually("the container's server says it listens", || {
            logs(&c.0).contains(&format!("listening on {bind}"))
        });
        let ready = started.elapsed();
        let (code, json, err) = common::load_json(&bind, &["-c", "4", "-d", "300ms"]);
        assert_eq!(code, Some(0), "{json}{err}");
        assert!(json_number(&json, "messages") > 0.0, "{json}");
        assert_eq!(json_number(&json, "errors.mismatch"), 0.0);

        let stopping = Instant::now();
        let stop = run({
            let mut cmd = Command::new("podman");
            match signal {
                "TERM" => cmd.args(["stop", "-t", "10", &c.0]),
                _ => cmd.args(["kill", "--signal", "INT", &c.0]),
            };
            cmd
        });
        assert!(stop.status.success(), "{stop:?}");
        let wait = run({
            let mut cmd = Command::new("podman");
            cmd.args(["wait", &c.0]);
            cmd
        });
        let took = stopping.elapsed();
        assert_eq!(
            String::from_utf8_lossy(&wait.stdout).trim(),
            "0",
            "SIG{signal}: exit 0"
        );
        assert!(
            took < Duration::from_secs(5),
            "SIG{signal}: stopped in {took:?}"
        );
        let said = logs(&c.0);
        assert!(said.contains("served 4 connections"), "SIG{signal}: {said}");
        assert!(
            said.contains(&format!("SIG{signal}: shutting down")),
            "{said}"
        );
        eprintln!("SIG{signal}: ready {ready:?} after podman run; stopped in {took:?}");
    }
}

/// `echoloop load` in a container measures a server outside, reached by
/// the name `localhost`, and its `--hdr-log`, written into a mounted
/// directory as the image's user, is read by `report` outside.
#[test]
fn a_load_in_the_container_logs_to_a_mounted_directory() {
    let Some(image) = image() else { return };
    let server = ServerProcess::start(&[]);
    let dir = scratch("release", "mount");
    // The image's user (65532) writes there.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let c = container("load");
    let out = run({
        let mut cmd = podman_run(&image, &c.0, &["-v", &format!("{}:/out", dir.display())]);
        // By name: a scratch image resolves `localhost` from the
        // /etc/hosts podman mounts (glibc's built-in files lookup).
        let target = format!("localhost:{}", server.addr.port());
        cmd.args(["load", &target, "-c", "4", "-d", "500ms"]).args([
            "--hdr-log",
            "/out/run.hlog",
            "--tag",
            "container",
        ]);
        cmd
    });
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("  errors      connect 0  closed 0  reset 0  timeout 0  mismatch 0"),
        "{said}"
    );
    let report = run({
        let mut cmd = bin();
        cmd.arg("report").arg(dir.join("run.hlog")).arg("--json");
        cmd
    });
    let json = String::from_utf8_lossy(&report.stdout);
    assert_eq!(report.status.code(), Some(0), "{json}");
    assert!(json_number(&json, "messages") > 0.0, "{json}");
    assert!(json.contains("\"container\""), "the tag: {json}");
    drop(c);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The `sh` block under `<!-- install: WHAT -->` in README.md.
fn readme_block(what: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let after = readme
        .split(&format!("<!-- install: {what} -->"))
        .nth(1)
        .unwrap_or_else(|| panic!("README.md has no install block {what}"));
    let block = after.split("```sh\n").nth(1).expect("its code block");
    block.split("\n```").next().unwrap().to_string()
}

/// Runs `script` with bash (`set -euo pipefail`) in `dir`: its output.
fn bash_in(dir: &Path, script: &str) -> String {
    let out = run({
        let mut c = Command::new("bash");
        c.current_dir(dir)
            .args(["--norc", "--noprofile", "-c"])
            .arg(format!("set -euo pipefail\n{script}"))
            .env("MANPAGER", "cat");
        c
    });
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}\n{said}");
    said
}

/// README's archive block, as written, in a directory holding the archive.
#[test]
fn readme_archive_install_runs_as_written() {
    let Some(archive) = archive() else { return };
    let block = readme_block("archive");
    let name = archive.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        block.contains(&name),
        "README names this version's archive, {name}:\n{block}"
    );
    let dir = scratch("release", "readme-archive");
    std::fs::copy(&archive, dir.join(&name)).unwrap();
    let said = bash_in(&dir, &block);
    assert!(
        said.contains(&format!("echoloop {}", env!("CARGO_PKG_VERSION"))),
        "{said}"
    );
    assert!(
        said.contains("echoloop-load"),
        "the man page's head: {said}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// README's image block, as written but for its port and the
/// container's name (a free port, a name of this test's own).
#[test]
fn readme_image_install_runs_as_written() {
    let Some(image) = image() else { return };
    let block = readme_block("image");
    assert!(
        block.contains(&format!(" {image} ")),
        "README runs {image}:\n{block}"
    );
    let c = container("readme");
    let port = free_port();
    let script = block
        .replace("127.0.0.1:7878", &format!("127.0.0.1:{port}"))
        .replace("--name echo ", &format!("--name {} ", c.0))
        .replace("stop echo ", &format!("stop {} ", c.0))
        .replace("logs echo ", &format!("logs {} ", c.0))
        .replace("rm echo", &format!("rm {}", c.0));
    let dir = scratch("release", "readme-image");
    // The generator in the second container may knock before the server
    // in the first listens: wait for its line in between, as a user sees it.
    let (first, rest) = script.split_once("\npodman run --rm").expect("two runs");
    bash_in(&dir, first);
    common::eventually("the server in the container listens", || {
        logs(&c.0).contains("listening on")
    });
    let said = bash_in(&dir, &format!("podman run --rm{rest}"));
    assert!(
        said.contains("  errors      connect 0  closed 0  reset 0  timeout 0  mismatch 0"),
        "{said}"
    );
    assert!(said.contains("served 10 connections"), "{said}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `server --tls` without a certificate of its own makes one, in the
/// image's /tmp (the user's): a client that trusts that certificate,
/// copied out with `podman cp`, verifies the server by the name
/// `localhost` and gets its bytes back.
#[test]
fn a_tls_server_in_the_container_makes_its_certificate() {
    let Some(image) = image() else { return };
    let c = container("tls");
    let bind = format!("127.0.0.1:{}", free_port());
    let out = run({
        let mut cmd = podman_run(&image, &c.0, &["-d"]);
        cmd.args(["server", "--tls", "--bind", &bind]);
        cmd
    });
    assert!(out.status.success(), "{out:?}");
    common::eventually("the TLS server listens", || {
        logs(&c.0).contains(&format!("listening on tls://{bind}"))
    });
    let said = logs(&c.0);
    assert!(
        said.contains("tls certificate /tmp/echoloop-1/cert.pem sha256 "),
        "{said}"
    );
    let dir = scratch("release", "tls");
    let copied = run({
        let mut cmd = Command::new("podman");
        cmd.arg("cp")
            .arg(format!("{}:/tmp/echoloop-1/cert.pem", c.0))
            .arg(dir.join("cert.pem"));
        cmd
    });
    assert!(copied.status.success(), "{copied:?}");
    let port = bind.rsplit(':').next().unwrap();
    let client = run({
        let mut cmd = bin();
        cmd.args(["client", &format!("tls://localhost:{port}"), "--cacert"])
            .arg(dir.join("cert.pem"))
            .args(["--data", "hi", "--half-close"]);
        cmd
    });
    assert_eq!(
        String::from_utf8_lossy(&client.stdout),
        "b'hi'\n",
        "{}",
        String::from_utf8_lossy(&client.stderr)
    );
    drop(c);
    std::fs::remove_dir_all(&dir).unwrap();
}
