//! [`FileCtx`]: the file being compiled, which turns TOML spans into positions and collects the
//! diagnostics of every section, and [`file_error`] for problems with a whole file.

use std::path::Path;

use toml::Spanned;

use crate::diag::{Diagnostic, Diagnostics, Pos};

/// Positions inside one file: turns TOML spans into line:col and records diagnostics.
pub(crate) struct FileCtx<'a> {
    /// The file (as the user named it).
    pub path: &'a Path,
    /// Its text.
    pub text: &'a str,
    /// Where problems go.
    pub diags: &'a mut Diagnostics,
}

impl FileCtx<'_> {
    pub(crate) fn pos<T>(&self, s: &Spanned<T>) -> Option<Pos> {
        let span = s.span();
        // Defaults carry an empty 0..0 span: point at the file, not at line 1.
        (span.end > 0).then(|| Pos::from_offset(self.text, span.start))
    }

    pub(crate) fn error<T>(
        &mut self,
        at: &Spanned<T>,
        msg: impl Into<String>,
        hint: Option<String>,
    ) {
        let mut d = Diagnostic::error(self.path, self.pos(at), msg);
        d.hint = hint;
        self.diags.push(d);
    }

    pub(crate) fn warning<T>(
        &mut self,
        at: &Spanned<T>,
        msg: impl Into<String>,
        hint: Option<String>,
    ) {
        let mut d = Diagnostic::warning(self.path, self.pos(at), msg);
        d.hint = hint;
        self.diags.push(d);
    }
}

/// A diagnostic for a whole file.
pub(crate) fn file_error(path: &Path, msg: impl Into<String>) -> Diagnostic {
    Diagnostic::error(path, None, msg)
}
