//! `echoloop generate`: the man pages render with `man` without a warning,
//! and the bash completion script is valid and completes in a real bash.
//! (A packager's commands: see the Debian package in `.ci/run`.)

mod common;

use std::process::{Command, Stdio};

use common::Bounded as _;
use common::bin;

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
    for sub in ["server", "client", "load", "report"] {
        assert!(top.lines().any(|l| l == sub), "{top}");
    }
    // `generate` is for packagers: not in --help (clap's bash script still
    // offers it, as it does every subcommand).
    let help = bin().arg("--help").bounded();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("generate"));
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
