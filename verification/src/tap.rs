//! TAP output: `1..N`, one `ok`/`not ok` line per test (a failure's reason follows as
//! `  # reason` lines), and a closing `# P tests passed, F failed`.

use std::io::{self, Write};
use std::path::Path;

use crate::runner::Outcome;

/// The file `--ci` writes next to its stdout TAP stream.
pub const TAP_FILE: &str = "verification-results.tap";

/// The plan line.
pub fn plan(count: usize) -> String {
    format!("1..{count}")
}

/// The line(s) for test number `number` (from 1).
pub fn test_line(number: usize, outcome: &Outcome) -> String {
    let name = format!("{}: {}", outcome.category, outcome.test);
    match &outcome.result {
        Ok(()) => format!("ok {number} - {name}"),
        Err(reason) => {
            let mut text = format!("not ok {number} - {name}");
            for line in reason.lines() {
                text.push_str("\n  # ");
                text.push_str(line);
            }
            if reason.is_empty() {
                text.push_str("\n  # (no reason given)");
            }
            text
        }
    }
}

/// The closing summary line.
pub fn summary(passed: usize, failed: usize) -> String {
    format!("# {passed} tests passed, {failed} failed")
}

/// Writes TAP lines to a stream as they come and keeps a copy for the results file.
#[derive(Debug)]
pub struct TapWriter<W: Write> {
    out: W,
    copy: String,
    next: usize,
    passed: usize,
    failed: usize,
}

impl<W: Write> TapWriter<W> {
    /// Starts a TAP stream of `count` tests.
    pub fn new(out: W, count: usize) -> io::Result<TapWriter<W>> {
        let mut writer = TapWriter {
            out,
            copy: String::new(),
            next: 1,
            passed: 0,
            failed: 0,
        };
        writer.line(&plan(count))?;
        Ok(writer)
    }

    fn line(&mut self, line: &str) -> io::Result<()> {
        self.copy.push_str(line);
        self.copy.push('\n');
        writeln!(self.out, "{line}")?;
        self.out.flush()
    }

    /// Writes the next test's result.
    pub fn outcome(&mut self, outcome: &Outcome) -> io::Result<()> {
        match outcome.result {
            Ok(()) => self.passed += 1,
            Err(_) => self.failed += 1,
        }
        let text = test_line(self.next, outcome);
        self.next += 1;
        self.line(&text)
    }

    /// Writes the summary; returns how many tests failed.
    pub fn finish(&mut self) -> io::Result<usize> {
        let text = summary(self.passed, self.failed);
        self.line(&text)?;
        Ok(self.failed)
    }

    /// Everything written so far.
    pub fn text(&self) -> &str {
        &self.copy
    }

    /// Saves everything written so far to `path`.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, &self.copy)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn outcome(result: Result<(), String>) -> Outcome {
        Outcome {
            category: "Messaging",
            test: "Echo",
            result,
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn lines_follow_the_tap_layout() {
        let mut tap = TapWriter::new(Vec::new(), 2).unwrap();
        tap.outcome(&outcome(Ok(()))).unwrap();
        tap.outcome(&outcome(Err("expected 1\ngot 2".into())))
            .unwrap();
        assert_eq!(tap.finish().unwrap(), 1);
        let expected = "1..2\nok 1 - Messaging: Echo\nnot ok 2 - Messaging: Echo\n  # expected 1\n  # got 2\n# 1 tests passed, 1 failed\n";
        assert_eq!(tap.text(), expected);
        assert_eq!(String::from_utf8(tap.out.clone()).unwrap(), expected);
    }
}
