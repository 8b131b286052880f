//! Every import points down: no folder of `src/` has an import circle
//! between its files, and the programs under `src/` (server, client, load,
//! report, cli, shared) form no circle between them either.
//!
//! A small reader of paths, not a compiler: in each file (its unit tests
//! cut off), every `super::NAME` and `crate::FOLDER::NAME` path names a
//! sibling file when NAME is one (else the folder's `mod.rs`), and in a
//! `mod.rs` every `CHILD::` path names that child. `pub use` re-exports
//! and `mod` lines are not imports: they say what a folder shows, not what
//! a file needs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Files of one folder, and which of them each one uses.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The source, without comments, `pub use` and `mod` lines, and without
/// its `#[cfg(test)]` module at the bottom.
fn code_of(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut code = String::new();
    let mut in_pub_use = false;
    for line in text.lines() {
        let t = line.trim_start();
        if in_pub_use {
            in_pub_use = !t.contains(';');
            continue;
        }
        if t.starts_with("pub use ") || t.starts_with("pub(crate) use ") {
            in_pub_use = !t.contains(';');
            continue;
        }
        if t.starts_with("//") || t.starts_with("mod ") || t.starts_with("pub mod ") {
            continue;
        }
        // A comment at the end of a line of code.
        let t = match t.find(" //") {
            Some(at) => &t[..at],
            None => t,
        };
        code.push_str(t);
        code.push('\n');
    }
    code
}

/// The first segment of each path after `prefix` (`super::{a::X, b}` gives
/// `a` and `b`; `super::c::Y` gives `c`).
fn names_after(code: &str, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(at) = code[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        // Only a whole path segment: `foo_super::` is not `super::`.
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let rest = &code[from..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut end = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            let mut depth = 0;
            let mut item = String::new();
            for c in inner[..end].chars().chain([',']) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let first = item.trim().split("::").next().unwrap_or("").to_string();
                        if !first.is_empty() {
                            names.push(first);
                        }
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

/// The `.rs` files of `dir` (not its subfolders), by module name.
fn files(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            out.insert(name, path);
        }
    }
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            out.insert(name, path.join("mod.rs"));
        }
    }
    out
}

/// Who uses whom among the files of the folder `src/FOLDER`.
fn folder_graph(src: &Path, folder: &str) -> Graph {
    let files = files(&src.join(folder));
    let mut graph = Graph::new();
    for (name, path) in &files {
        if name == "tests" || !path.exists() {
            continue;
        }
        let code = code_of(path);
        let mut uses = BTreeSet::new();
        let mut note = |target: &str| {
            let target = if files.contains_key(target) {
                target
            } else {
                "mod"
            };
            if target != name && target != "tests" {
                uses.insert(target.to_string());
            }
        };
        if name == "mod" {
            for child in files.keys().filter(|c| *c != "mod") {
                if !names_after(&code, &format!("{child}::")).is_empty()
                    || code.contains(&format!("use {child}::"))
                {
                    note(child);
                }
            }
        } else {
            for n in names_after(&code, "super::") {
                note(&n);
            }
        }
        for n in names_after(&code, &format!("crate::{}::", folder.replace('/', "::"))) {
            note(&n);
        }
        graph.insert(name.clone(), uses);
    }
    graph
}

/// Who uses whom among the folders of `src/` (a file of `server/` naming
/// `crate::shared::…` makes server use shared).
fn top_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    let folders: Vec<String> = fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for folder in &folders {
        let mut uses = BTreeSet::new();
        for path in files(&src.join(folder)).values() {
            if !path.exists() {
                continue;
            }
            let code = code_of(path);
            for other in folders.iter().filter(|o| *o != folder) {
                if code.contains(&format!("crate::{other}::"))
                    || code.contains(&format!("crate::{other}::{{"))
                {
                    uses.insert(other.clone());
                }
            }
        }
        graph.insert(folder.clone(), uses);
    }
    graph
}

/// A circle in `graph`, as the names along it, if there is one.
fn circle(graph: &Graph) -> Option<Vec<String>> {
    // Depth-first search with colours: a grey node met again closes a circle.
    fn visit(
        node: &str,
        graph: &Graph,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = path.iter().position(|p| p == next).unwrap();
                    let mut found = path[from..].to_vec();
                    found.push(next.clone());
                    return Some(found);
                }
                0 => {
                    if let Some(found) = visit(next, graph, state, path) {
                        return Some(found);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node).copied().unwrap_or(0) == 0
            && let Some(found) = visit(node, graph, &mut state, &mut Vec::new())
        {
            return Some(found);
        }
    }
    None
}

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every folder under `src/`, as a path relative to it (`load/outcome`).
fn folders(src: &Path, under: &str, out: &mut Vec<String>) {
    for entry in fs::read_dir(src.join(under)).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let folder = match under {
                "" => name,
                _ => format!("{under}/{name}"),
            };
            folders(src, &folder, out);
            out.push(folder);
        }
    }
}

/// No folder of `src/` has a circle between its files.
#[test]
fn no_folder_of_src_has_an_import_circle() {
    let src = src();
    let mut circles = Vec::new();
    let mut all = Vec::new();
    folders(&src, "", &mut all);
    assert!(all.len() >= 5, "the folders were found: {all:?}");
    for folder in all {
        let graph = folder_graph(&src, &folder);
        assert!(graph.len() > 1, "src/{folder} was read: {graph:?}");
        if let Some(found) = circle(&graph) {
            circles.push(format!("src/{folder}: {}", found.join(" -> ")));
        }
    }
    assert!(
        circles.is_empty(),
        "import circles (every import must point down):\n{}",
        circles.join("\n")
    );
}

/// The programs import `shared`, and nothing imports a program.
#[test]
fn the_programs_form_no_circle_and_shared_imports_no_program() {
    let graph = top_graph(&src());
    assert_eq!(circle(&graph), None, "{graph:?}");
    let shared = &graph["shared"];
    assert!(shared.is_empty(), "shared imports {shared:?}");
}

/// The reader finds a circle when there is one, and reads braces and
/// nested paths as the compiler would.
#[test]
fn the_reader_sees_a_circle_and_reads_nested_paths() {
    let names = names_after(
        "use super::{a::X, b::{Y, Z}, Server};\nlet t = super::c::new();\nfoo_super::d",
        "super::",
    );
    assert_eq!(names, ["a", "b", "Server", "c"]);
    let mut graph = Graph::new();
    graph.insert("config".into(), ["schedule".to_string()].into());
    graph.insert("schedule".into(), ["counters".to_string()].into());
    graph.insert("counters".into(), ["outcome".to_string()].into());
    graph.insert("outcome".into(), ["config".to_string()].into());
    assert_eq!(
        circle(&graph).unwrap(),
        ["config", "schedule", "counters", "outcome", "config"]
    );
    graph.get_mut("outcome").unwrap().clear();
    assert_eq!(circle(&graph), None);
}
