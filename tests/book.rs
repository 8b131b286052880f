//! The learner's book (`docs/learn/`) cannot drift from the code: every
//! Rust or Python listing in it is an `{{#include}}` of a real file (and,
//! where it names one, of a real anchor in it), every chapter in the
//! summary exists, and the Python it includes compiles. `.ci/run` builds
//! the book with mdBook too.

mod common;

use std::path::{Path, PathBuf};

/// The book's source directory.
fn book() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/learn/src")
}

/// Each chapter file the summary lists.
fn chapters() -> Vec<PathBuf> {
    let summary = std::fs::read_to_string(book().join("SUMMARY.md")).unwrap();
    summary
        .split("](")
        .skip(1)
        .map(|rest| book().join(&rest[..rest.find(')').unwrap()]))
        .collect()
}

/// The fenced blocks of a chapter: (language, body lines).
fn blocks(text: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let mut open: Option<(String, Vec<String>)> = None;
    for line in text.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => open = Some((lang.trim().to_string(), Vec::new())),
            (Some(_), Some(_)) => found.push(open.take().unwrap()),
            (Some((_, body)), None) => body.push(line.to_string()),
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "an unclosed fence");
    found
}

#[test]
fn every_listing_is_included_from_a_real_file() {
    let chapters = chapters();
    assert!(chapters.len() >= 12, "{chapters:?}");
    let mut included = 0;
    let mut python = Vec::new();
    for chapter in &chapters {
        let text = std::fs::read_to_string(chapter)
            .unwrap_or_else(|e| panic!("{}: {e}", chapter.display()));
        for (lang, body) in blocks(&text) {
            if !matches!(lang.as_str(), "rust" | "python") {
                continue; // terminal output and traces, not code
            }
            assert!(
                !body.is_empty(),
                "{}: an empty {lang} block",
                chapter.display()
            );
            for line in body {
                let spec = line
                    .strip_prefix("{{#include ")
                    .and_then(|l| l.strip_suffix("}}"))
                    .unwrap_or_else(|| {
                        panic!("{}: a {lang} line not included: {line}", chapter.display())
                    });
                let (file, anchor) = match spec.split_once(':') {
                    Some((file, anchor)) => (file, Some(anchor)),
                    None => (spec, None),
                };
                let path = chapter.parent().unwrap().join(file);
                let source = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {}: {e}", chapter.display(), path.display()));
                if let Some(anchor) = anchor {
                    for mark in [format!("ANCHOR: {anchor}"), format!("ANCHOR_END: {anchor}")] {
                        assert!(
                            source
                                .lines()
                                .any(|l| l.trim_start().trim_start_matches("// ") == mark),
                            "{}: no `{mark}` in {}",
                            chapter.display(),
                            path.display()
                        );
                    }
                }
                if lang == "python" {
                    python.push(path.clone());
                }
                included += 1;
            }
        }
    }
    assert!(included >= 15, "only {included} listings");
    // The Python the book shows compiles (the Rust compiles with the crate).
    // (compile() in memory: py_compile would leave __pycache__ in the book.)
    let compiles = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys\nfor f in sys.argv[1:]: compile(open(f).read(), f, 'exec')",
        ])
        .args(&python)
        .output();
    match compiles {
        Ok(out) => assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => common::missing("python3, to compile the book's Python"),
    }
}
