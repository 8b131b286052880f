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

/// The tree in "The code" chapter, as `folder/file.rs` paths: each `├──`
/// or `└──` entry, nested by its indentation (four columns a level).
fn mapped_files() -> Vec<String> {
    let text = std::fs::read_to_string(book().join("code.md")).unwrap();
    let (_, tree) = blocks(&text)
        .into_iter()
        .find(|(lang, body)| lang == "text" && body.first().is_some_and(|l| l == "src/"))
        .expect("code.md has the src/ tree");
    let mut folders: Vec<String> = Vec::new();
    let mut files = Vec::new();
    for line in &tree[1..] {
        let Some(at) = line.find("── ") else {
            continue;
        };
        // "├── " starts at column 4 × depth (chars, not bytes: the box
        // drawing characters are several bytes each).
        let depth = line[..at].chars().count().saturating_sub(1) / 4;
        let name = line[at + "── ".len()..]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        folders.truncate(depth);
        if let Some(folder) = name.strip_suffix('/') {
            folders.push(folder.to_string());
        } else if name.ends_with(".rs") {
            let mut path = folders.join("/");
            if !path.is_empty() {
                path.push('/');
            }
            files.push(path + &name);
        }
    }
    files
}

/// Every source file, relative to `src/`.
fn source_files(dir: &Path, under: &str, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let rel = if under.is_empty() {
            name.clone()
        } else {
            format!("{under}/{name}")
        };
        if path.is_dir() {
            source_files(&path, &rel, out);
        } else if name.ends_with(".rs") {
            out.push(rel);
        }
    }
}

/// "The code" maps every source file, and nothing that is not one.
#[test]
fn the_code_map_names_every_source_file() {
    let mapped = mapped_files();
    let mut real = Vec::new();
    source_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut real,
    );
    real.sort();
    let missing: Vec<_> = real.iter().filter(|f| !mapped.contains(f)).collect();
    let stale: Vec<_> = mapped.iter().filter(|f| !real.contains(f)).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "code.md's map is out of date: missing {missing:?}, no such file {stale:?}"
    );
}

/// The introduction names every chapter the summary lists.
#[test]
fn the_introduction_lists_every_chapter() {
    let intro = std::fs::read_to_string(book().join("introduction.md")).unwrap();
    for chapter in chapters() {
        let file = chapter.file_name().unwrap().to_string_lossy().into_owned();
        if file == "introduction.md" || file == "glossary.md" {
            continue;
        }
        assert!(
            intro.contains(&format!("({file})")),
            "introduction.md does not link {file}"
        );
    }
}

/// The listings that teach the loop and the echo (the server's `run`,
/// `turn`, `dispatch`, `on_timers`, and a connection's `interest`,
/// `on_readable`, `echo`) hold the core alone: no word of the faults a
/// server injects on purpose, nor of TLS. Those have chapters of their
/// own (a part may be named, as `on_timers` names each part it asks;
/// its mechanics may not). The loop the book teaches stays the core loop.
#[test]
fn the_core_listings_teach_the_core() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server");
    let core = [
        ("mod.rs", "run"),
        ("mod.rs", "turn"),
        ("mod.rs", "dispatch"),
        ("mod.rs", "on_timers"),
        ("connection.rs", "interest"),
        ("connection.rs", "on_readable"),
        ("connection.rs", "echo"),
    ];
    let words = [
        "fault",
        "delay",
        "jitter",
        "held",
        "hold",
        "release",
        "stall",
        "closing",
        "close_after",
        "read_until",
        "write_until",
        "echo_until",
        "ending",
        "tls",
        "handshake",
        "close_notify",
        "rustls",
        "record",
        "sealed",
        "ciphertext",
    ];
    for (file, anchor) in core {
        let text = std::fs::read_to_string(src.join(file)).unwrap();
        let start = text
            .find(&format!("// ANCHOR: {anchor}\n"))
            .unwrap_or_else(|| panic!("no anchor {anchor} in {file}"));
        let end = text[start..]
            .find(&format!("// ANCHOR_END: {anchor}\n"))
            .unwrap_or_else(|| panic!("no end of {anchor} in {file}"));
        let listing = text[start..start + end].to_lowercase();
        for word in words {
            let found = listing
                .match_indices(word)
                .any(|(at, _)| !listing[..at].ends_with(|c: char| c.is_alphanumeric()));
            assert!(!found, "{file}:{anchor} teaches `{word}`");
        }
    }
}
