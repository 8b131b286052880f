//! `echoloop report`: its options and what clap cannot check alone.

// The `///` comments here are help text for the terminal, not Markdown:
// `[::1]:7878` is an address, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use clap::Args;
use clap::error::ErrorKind;

use super::usage::Usage;

pub(super) const REPORT_EXAMPLES: &str = "Examples:
  echoloop report run.hlog
  echoloop report gen1.hlog gen2.hlog gen3.hlog --html run.html
  echoloop report run.hlog --json";

pub(super) const REPORT_LONG: &str = "Examples:
  echoloop report run.hlog
  echoloop report gen1.hlog gen2.hlog gen3.hlog --html run.html
  echoloop report run.hlog --json
  echoloop report --compare direct.hlog haproxy.hlog socat.hlog --html cmp.html
  echoloop report --compare before=a1.hlog,a2.hlog after=b1.hlog,b2.hlog

Exit codes:
  0  merged and printed
  1  a file cannot be read, or the page cannot be written
  2  usage, --html over an input, --compare with fewer than 2 runs or
     two of one name; a file given twice, empty or not an interval log, a
     histogram whose declared lengths or shape are refused, or logs past
     the report's memory budget (the line that crosses it is named)";

/// Options of `echoloop report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// HdrHistogram interval logs, from one generator or several. With
    /// --compare, each is a RUN: a log, or NAME=FILE[,FILE...] (the logs
    /// of one run's generators).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<std::path::PathBuf>,

    /// Compare runs side by side instead of merging them: one column per
    /// run with each figure's ratio to the first; with --html, one line
    /// per run on its own time axis and the percentile spectra overlaid.
    #[arg(long)]
    pub compare: bool,

    /// Also write one self-contained HTML page of charts to OUT.
    #[arg(long, value_name = "OUT")]
    pub html: Option<std::path::PathBuf>,

    /// Print one JSON object instead of the human summary.
    #[arg(long)]
    pub json: bool,
}

impl ReportArgs {
    /// With `--compare`, the runs: (name, logs) each; 2 to
    /// [`MAX_RUNS`](crate::report::compare::MAX_RUNS), names unique.
    pub fn runs(&self) -> Result<Vec<(String, Vec<std::path::PathBuf>)>, Usage> {
        use crate::report::compare::{MAX_RUNS, parse_run};
        let bad = |msg: String| Usage::new(ErrorKind::ValueValidation, msg);
        let runs = self
            .files
            .iter()
            .map(|f| parse_run(&f.to_string_lossy()).map_err(bad))
            .collect::<Result<Vec<_>, _>>()?;
        if !(2..=MAX_RUNS).contains(&runs.len()) {
            let msg = format!("--compare takes 2 to {MAX_RUNS} runs, not {}", runs.len());
            return Err(bad(msg));
        }
        for (i, (name, _)) in runs.iter().enumerate() {
            if runs[..i].iter().any(|(other, _)| other == name) {
                let msg = format!("two runs are named {name}: give them NAME=FILE names");
                return Err(bad(msg));
            }
        }
        Ok(runs)
    }

    /// `--html` must not name one of the logs (compared by device and
    /// inode, so links and other spellings count).
    pub fn check(&self) -> Result<(), Usage> {
        let Some(out) = &self.html else { return Ok(()) };
        let logs = match self.compare {
            true => self
                .runs()?
                .into_iter()
                .flat_map(|(_, files)| files)
                .collect(),
            false => self.files.clone(),
        };
        match logs.iter().find(|f| same_file(f, out)) {
            Some(input) => Err(Usage::new(
                ErrorKind::ArgumentConflict,
                format!(
                    "--html {} would overwrite the log {}",
                    out.display(),
                    input.display()
                ),
            )),
            None => Ok(()),
        }
    }
}

/// Whether two paths name the same existing file.
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}
