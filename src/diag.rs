//! Diagnostics: the one shape every configuration problem takes, whatever file format it came from.
//!
//! A diagnostic names the file, the 1-based line and column, what is wrong and — where there is one —
//! what to write instead. `cachegate validate`, rejected reloads and `GET /config` all print these, so
//! the text is written for the person editing the file.

use std::fmt;
use std::path::{Path, PathBuf};

/// A 1-based position in a text file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub col: u32,
}

impl Pos {
    /// A position at `line`:`col` (both 1-based).
    pub const fn new(line: u32, col: u32) -> Self {
        Self { line, col }
    }

    /// Converts a byte offset into `text` to a 1-based line and column (columns count characters).
    pub fn from_offset(text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = before
            .get(line_start..)
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        Self {
            line: saturate(line),
            col: saturate(col),
        }
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A value together with where it was written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where the value (or the element/key holding it) starts.
    pub pos: Pos,
}

impl<T> Located<T> {
    /// Wraps `value` found at `pos`.
    pub const fn new(value: T, pos: Pos) -> Self {
        Self { value, pos }
    }
}

/// How bad a diagnostic is. Warnings are printed but do not reject a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The configuration is still loaded.
    Warning,
    /// The configuration is rejected.
    Error,
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file, as the user named it (relative paths stay relative).
    pub file: PathBuf,
    /// Where in the file; `None` for problems about a whole file (unreadable, missing).
    pub pos: Option<Pos>,
    /// What is wrong, lower case, no trailing full stop.
    pub message: String,
    /// What to write instead, when there is a clear fix.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error at `pos` in `file`.
    pub fn error(file: impl AsRef<Path>, pos: Option<Pos>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: file.as_ref().to_path_buf(),
            pos,
            message: message.into(),
            hint: None,
        }
    }

    /// A warning at `pos` in `file`.
    pub fn warning(file: impl AsRef<Path>, pos: Option<Pos>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, pos, message)
        }
    }

    /// Adds the "what to write instead" text.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// True for errors (which reject the configuration).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: error: message` then, indented on the next line, `hint: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(pos) = self.pos {
            write!(f, ":{}:{}", pos.line, pos.col)?;
        }
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, ": {level}: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n    hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one load, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// No problems yet.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Records one problem.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Records several problems.
    pub fn extend(&mut self, ds: impl IntoIterator<Item = Diagnostic>) {
        self.0.extend(ds);
    }

    /// True when at least one problem is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }

    /// Sorts by file, then position, so output reads top to bottom.
    pub fn sort(&mut self) {
        self.0
            .sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
    }

    /// Iterates over the problems.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_to_line_and_column() {
        let text = "ab\ncdé\nf";
        assert_eq!(Pos::from_offset(text, 0), Pos::new(1, 1));
        assert_eq!(Pos::from_offset(text, 3), Pos::new(2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(Pos::from_offset(text, 7), Pos::new(2, 4));
        assert_eq!(Pos::from_offset(text, 999), Pos::new(3, 2));
    }

    #[test]
    fn display_has_file_line_col_and_hint() {
        let d = Diagnostic::error("p/x.xml", Some(Pos::new(3, 5)), "unknown element <Foo>")
            .with_hint("write <Bar>");
        assert_eq!(
            d.to_string(),
            "p/x.xml:3:5: error: unknown element <Foo>\n    hint: write <Bar>"
        );
    }
}
