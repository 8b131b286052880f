//! The windows of a run in its log: `load --repeat N` tags each window's
//! intervals `TAG@1`, `TAG@2`, …, and every window (repeated or not) ends
//! with a comment saying how its generator fared:
//!
//! ```text
//! #echoloop-window tag=direct@2 busy=0.412 behind=0
//! ```
//!
//! `busy` is the generator's CPU over the window's wall time (absent when
//! the window was too short to say), `behind` whether it fell behind its
//! open-loop schedule. `report --compare` reads them to show each figure's
//! spread over the windows, and to mark a run whose generator may have
//! been the limit: figures measured by a late or saturated generator say
//! less about the target than they seem to.

/// The comment that ends a window.
pub const WINDOW_COMMENT: &str = "echoloop-window";

/// Between a tag and its window's number (`direct@2`); `load` refuses a
/// `--tag` with one.
pub const WINDOW_MARK: char = '@';

/// The most window comments one merge keeps.
pub const MAX_WINDOWS: usize = 10_000;

/// Above this share of its CPU a generator is marked as maybe the limit.
pub const BUSY_MARK: f64 = 0.9;

/// What a window's comment says.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowNote {
    /// The window's tag (`direct@2`, or the plain tag of a lone window).
    pub tag: String,
    /// The generator's CPU over the window's wall time, 0 to 1.
    pub busy: Option<f64>,
    /// Whether it fell behind its schedule.
    pub behind: bool,
}

impl WindowNote {
    /// The comment line (without its `#`).
    pub fn comment(&self) -> String {
        let busy = self
            .busy
            .map(|b| format!(" busy={b:.3}"))
            .unwrap_or_default();
        format!(
            "{WINDOW_COMMENT} tag={}{busy} behind={}",
            self.tag,
            u8::from(self.behind)
        )
    }

    /// Reads a comment's text (after `#`); `None` if it is not a window's.
    pub fn parse(comment: &str) -> Option<WindowNote> {
        let fields = comment.strip_prefix(WINDOW_COMMENT)?;
        let field = |key: &str| {
            fields
                .split_whitespace()
                .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
        };
        Some(WindowNote {
            tag: field("tag")?.chars().take(200).collect(),
            busy: field("busy")
                .and_then(|b| b.parse::<f64>().ok())
                .filter(|b| b.is_finite())
                .map(|b| b.clamp(0.0, 1.0)),
            behind: field("behind")? == "1",
        })
    }

    /// Why this window's figures may say more about the generator than
    /// about the target, if they may; under `--repeat`, which window.
    pub fn mark(&self) -> Option<String> {
        let busy = self.busy.filter(|b| *b > BUSY_MARK);
        let why = match (self.behind, busy) {
            (false, None) => return None,
            (true, None) => "the generator fell behind its schedule".to_string(),
            (false, Some(b)) => format!("the generator was {:.0}% busy", b * 100.0),
            (true, Some(b)) => format!(
                "the generator fell behind its schedule, {:.0}% busy",
                b * 100.0
            ),
        };
        Some(match window_of(&self.tag) {
            Some((_, n)) => format!("window {n}: {why}"),
            None => why,
        })
    }
}

/// `TAG@N`'s tag and window number; `None` for a tag of no window.
pub fn window_of(tag: &str) -> Option<(&str, u32)> {
    let (base, n) = tag.rsplit_once(WINDOW_MARK)?;
    let n: u32 = n.parse().ok().filter(|n| *n > 0)?;
    Some((base, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_reads_back_as_written() {
        let note = WindowNote {
            tag: "direct@2".into(),
            busy: Some(0.9346),
            behind: true,
        };
        assert_eq!(
            note.comment(),
            "echoloop-window tag=direct@2 busy=0.935 behind=1"
        );
        let back = WindowNote::parse(&note.comment()).unwrap();
        assert_eq!(back.tag, "direct@2");
        assert!(back.behind);
        assert_eq!(back.busy, Some(0.935));
        let quiet = WindowNote::parse("echoloop-window tag=x behind=0").unwrap();
        assert_eq!((quiet.busy, quiet.behind), (None, false));
        assert_eq!(quiet.mark(), None);
        assert_eq!(WindowNote::parse("echoloop-interval tag=x"), None);
        // A hostile value is held within its range.
        let wild = WindowNote::parse("echoloop-window tag=x busy=1e300 behind=0").unwrap();
        assert_eq!(wild.busy, Some(1.0));
    }

    #[test]
    fn marks_name_what_went_wrong() {
        let mark = |busy, behind| {
            WindowNote {
                tag: "t@1".into(),
                busy,
                behind,
            }
            .mark()
        };
        assert_eq!(mark(Some(0.5), false), None);
        assert_eq!(
            mark(Some(0.95), false).unwrap(),
            "window 1: the generator was 95% busy"
        );
        assert_eq!(
            mark(None, true).unwrap(),
            "window 1: the generator fell behind its schedule"
        );
        let lone = WindowNote {
            tag: "gen1".into(),
            busy: Some(0.99),
            behind: true,
        };
        assert_eq!(
            lone.mark().unwrap(),
            "the generator fell behind its schedule, 99% busy"
        );
    }

    #[test]
    fn window_tags_name_their_number() {
        assert_eq!(window_of("direct@3"), Some(("direct", 3)));
        assert_eq!(window_of("a@b@12"), Some(("a@b", 12)));
        assert_eq!(window_of("direct"), None);
        assert_eq!(window_of("direct@0"), None);
        assert_eq!(window_of("direct@x"), None);
    }
}
