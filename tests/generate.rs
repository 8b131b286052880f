//! `echoloop generate`: the man pages render with `man` without a warning,
//! the bash completion script is valid and completes in a real bash, and
//! the certificate it writes is served and trusted by echoloop and OpenSSL.
//! (A packager's commands: see the Debian package in `.ci/run`.)

mod common;

use std::process::{Command, Stdio};

use common::Bounded as _;
use common::{ServerProcess, bin};

/// Whether `program` runs here (`program --version` or similar).
fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A page as man prints it to a pipe, without its bold and underline
/// (a character, a backspace, and the same character or `_` again).
fn unbold(text: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out.into_iter().collect()
}

/// One page per visible subcommand, and the top page; each renders with
/// `man --warnings -l` (groff's `-ww`) with nothing on stderr, and says
/// what its --help says: the address forms, the examples, the exit codes.
#[test]
fn every_man_page_renders_without_warnings() {
    let dir = common::scratch("generate", "man");
    let out = bin().args(["generate", "man"]).arg(&dir).bounded();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(out.stdout).unwrap();
    let names = [
        "echoloop",
        "echoloop-server",
        "echoloop-client",
        "echoloop-load",
        "echoloop-report",
        "echoloop-generate",
    ];
    assert_eq!(listed.lines().count(), names.len(), "{listed}");
    if !have("man", "--version") {
        common::missing("man (man-db) to render the pages");
        return;
    }
    for name in names {
        let page = dir.join(format!("{name}.1"));
        assert!(listed.contains(&page.display().to_string()), "{listed}");
        let rendered = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .bounded();
        let stderr = String::from_utf8_lossy(&rendered.stderr);
        assert_eq!(rendered.status.code(), Some(0), "{name}: {stderr}");
        assert_eq!(stderr, "", "{name} renders with warnings");
        let text = unbold(&String::from_utf8_lossy(&rendered.stdout));
        assert!(text.contains("NAME"), "{name}: {text}");
        if name != "echoloop" {
            assert!(text.contains("Exit codes"), "{name}: {text}");
            assert!(text.contains("Examples"), "{name}: {text}");
        }
    }
    let load = std::fs::read_to_string(dir.join("echoloop-load.1")).unwrap();
    assert!(load.contains("udp://") && load.contains("unix:"), "{load}");
}

/// The bash script parses (`bash -n`), registers itself (`complete -p`),
/// and completes `echoloop lo<TAB>` to `load` and `echoloop load --co<TAB>`
/// to the options that start so, as bash itself would call it.
#[test]
fn bash_completes_subcommands_and_options() {
    let out = bin().args(["generate", "complete", "bash"]).bounded();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = common::scratch("generate", "bash").join("echoloop.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    if !have("bash", "--version") {
        common::missing("bash");
        return;
    }
    let check = Command::new("bash").arg("-n").arg(&script).bounded();
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // What bash does on TAB: the words so far, the index of the word under
    // the cursor, then the function `complete -p` names.
    let complete = |line: &str| -> String {
        let program = format!(
            r#"source '{}'
complete -p echoloop >&2
read -r -a COMP_WORDS <<< "$LINE"
[[ "$LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="$LINE"; COMP_POINT=${{#LINE}}
fn=$(complete -p echoloop | sed -E 's/.*-F ([^ ]+).*/\1/')
"$fn" echoloop "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
            script.display()
        );
        let out = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &program])
            .env("LINE", line)
            .bounded();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{line}: {stderr}");
        assert!(
            stderr.starts_with("complete ") && stderr.contains(" -F _echoloop echoloop"),
            "{line}: {stderr}"
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(complete("echoloop lo").trim(), "load");
    let options = complete("echoloop load --co");
    let mut got: Vec<&str> = options.split_whitespace().collect();
    got.sort();
    assert_eq!(
        got,
        ["--coalesce", "--connect-rate", "--connections"],
        "{options}"
    );
    let top = complete("echoloop ");
    for sub in ["server", "client", "load", "report", "generate"] {
        assert!(top.lines().any(|l| l == sub), "{top}");
    }
    // `generate` makes a proxy's certificate too: --help lists it.
    let help = bin().arg("--help").bounded();
    assert!(String::from_utf8_lossy(&help.stdout).contains("\n  generate  "));
}

/// Every shell clap_complete knows gets a script that names echoloop.
#[test]
fn every_shell_gets_a_script() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = bin().args(["generate", "complete", shell]).bounded();
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains("echoloop") && script.len() > 500,
            "{shell}: {script}"
        );
    }
    let out = bin().args(["generate", "complete", "tcsh"]).bounded();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

/// A directory that cannot be made is one line and exit 1, not a panic.
#[test]
fn man_pages_into_an_impossible_directory_fail_cleanly() {
    let out = bin()
        .args(["generate", "man", "/proc/echoloop-no/man"])
        .bounded();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("echoloop: error: cannot write /proc/echoloop-no/man: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// `generate cert DIR --name …`: `cert.pem` (0644) and `key.pem` (0600),
/// ECDSA P-256, not a CA, the names as subjectAltNames, as OpenSSL reads
/// them; `server --tls-cert/--tls-key` serves it, and OpenSSL's s_client
/// and echoloop's client trust it with it as their CA file. Written twice,
/// it is refused (exit 1) and left as it was; a bad name is exit 2.
#[test]
fn a_generated_certificate_is_served_and_trusted() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = common::scratch("generate", "cert").join("tls");
    let out = bin()
        .args(["generate", "cert"])
        .arg(&dir)
        .args(["--name", "localhost", "--name", "127.0.0.1"])
        .bounded();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{} sha256 ", cert.display())),
        "{stdout}"
    );
    assert_eq!(lines[1], format!("{} (mode 0600)", key.display()));
    assert_eq!(lines[2], "names: localhost, 127.0.0.1");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&cert), mode(&key)), (0o644, 0o600));
    let again = bin().args(["generate", "cert"]).arg(&dir).bounded();
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        format!(
            "echoloop: error: {} exists already: remove it, or give another directory\n",
            cert.display()
        )
    );
    let label = "a".repeat(64);
    for huge in [format!("{label}.example"), "a.".repeat(200)] {
        let out = bin()
            .args(["generate", "cert"])
            .arg(&dir)
            .args(["--name", &huge])
            .bounded();
        assert_eq!(out.status.code(), Some(2), "{huge}");
    }
    let bad = bin()
        .args(["generate", "cert"])
        .arg(&dir)
        .args(["--name", "two words"])
        .bounded();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("not a DNS name or an IP address: \"two words\""),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let server = ServerProcess::start(&["--tls", "--tls-cert", c, "--tls-key", k]);
    let port = server.addr.port();
    let client = bin()
        .args(["client", &format!("tls://localhost:{port}"), "--cacert", c])
        .args(["--data", "hi", "--half-close"])
        .bounded();
    assert_eq!(
        (
            client.status.code(),
            String::from_utf8_lossy(&client.stdout).as_ref()
        ),
        (Some(0), "b'hi'\n"),
        "{}",
        String::from_utf8_lossy(&client.stderr)
    );
    if !have("openssl", "version") {
        common::missing("openssl, to read and verify the generated certificate");
        return;
    }
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", c])
        .bounded();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("NIST CURVE: P-256"), "{text}");
    assert!(
        text.contains("DNS:localhost, IP Address:127.0.0.1"),
        "{text}"
    );
    assert!(!text.contains("CA:TRUE"), "not a CA: {text}");
    let key_text = Command::new("openssl")
        .args(["pkey", "-noout", "-text", "-in", k])
        .bounded();
    assert_eq!(key_text.status.code(), Some(0), "openssl reads the key");
    let verified = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-CAfile",
            c,
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
        ])
        .stdin(Stdio::null())
        .bounded();
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(
        said.contains("Verify return code: 0 (ok)"),
        "{said}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
}
