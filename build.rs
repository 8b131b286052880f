//! Names the git commit in `echoloop --version` when echoloop is built
//! from a checkout (`0.1.0 (3f2c1a9d0b7e)`); from a source tarball or
//! without git, the plain version. Nothing else is generated here: the man
//! pages and completions come from `echoloop generate` at run time.

use std::path::Path;
use std::process::Command;

/// `git ARGS` in the package's directory, its trimmed output if it worked.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_string())
}

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let full = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => format!("{version} ({commit})"),
        None => version.to_string(),
    };
    println!("cargo:rustc-env=ECHOLOOP_VERSION={full}");
    // Run again when the commit moves: HEAD itself (a checkout), the
    // branch it points to (a commit), and packed refs.
    println!("cargo:rerun-if-changed=build.rs");
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let dir = Path::new(&dir);
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("packed-refs").display()
        );
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", dir.join(branch).display());
        }
    }
}
