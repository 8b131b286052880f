//! `bytes_repr` against Python's own `repr()`, when python3 is on the
//! machine; the fixed table in `src/client/repr.rs` covers machines without it.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use echoloop::client::bytes_repr;

/// Python's repr of each input, one per line (via a hex round trip).
fn python_reprs(inputs: &[Vec<u8>]) -> Option<Vec<String>> {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys\nfor line in sys.stdin:\n    print(repr(bytes.fromhex(line.strip())))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take().unwrap();
    for input in inputs {
        let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(stdin, "{hex}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect(),
    )
}

#[test]
fn identical_to_python_for_every_byte_and_quote_case() {
    let mut inputs: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    inputs.push((0..=255u8).collect());
    for extra in [&b"'"[..], b"\"", b"'\"", b"\"'", b"a'b", b"a\"b", b""] {
        inputs.push(extra.to_vec());
        let mut all: Vec<u8> = (0..=255u8).collect();
        all.retain(|b| !b"'\"".contains(b));
        all.extend_from_slice(extra);
        inputs.push(all);
    }
    let Some(python) = python_reprs(&inputs) else {
        common::missing(
            "python3 is not on this machine (the fixed tables in src/client/repr.rs still ran)",
        );
        return;
    };
    assert_eq!(python.len(), inputs.len());
    for (input, want) in inputs.iter().zip(&python) {
        assert_eq!(&bytes_repr(input), want, "{input:?}");
    }
}
