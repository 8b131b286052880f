//! The Kubernetes manifests in deploy/kubernetes/ are valid against the
//! Kubernetes schemas (real `kubernetes-validate --strict`, from PyPI,
//! which `.ci/run` installs) and name the image `.ci/package` builds, at
//! this version. They are validated, not run on a cluster: none runs
//! here.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{DEADLINE, missing, run_bounded};

/// Every manifest, sorted.
fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    all.sort();
    all
}

#[test]
fn every_manifest_passes_the_schemas() {
    let files = manifests();
    assert_eq!(files.len(), 3, "target, generators, report: {files:?}");
    if Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_err()
    {
        missing("no kubernetes-validate (pip install kubernetes-validate)");
        return;
    }
    let mut cmd = Command::new("kubernetes-validate");
    cmd.arg("--strict").args(&files);
    let out = run_bounded(cmd, DEADLINE);
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    // One line per resource: 5 resources, each passed.
    assert_eq!(said.matches(" passed for resource ").count(), 5, "{said}");
}

#[test]
fn every_manifest_runs_the_image_of_this_version() {
    let image = format!("image: echoloop:{}", env!("CARGO_PKG_VERSION"));
    for file in manifests() {
        let text = std::fs::read_to_string(&file).unwrap();
        let images: Vec<&str> = text
            .lines()
            .filter(|l| l.trim().starts_with("image:"))
            .collect();
        assert!(!images.is_empty(), "{}", file.display());
        for line in images {
            assert_eq!(line.trim(), image, "{}", file.display());
        }
        assert!(
            text.contains("runAsNonRoot: true") && text.contains("readOnlyRootFilesystem: true"),
            "{}: not root, read-only",
            file.display()
        );
    }
}
