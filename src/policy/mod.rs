//! Policies: the model, and the XML and TOML syntaxes that parse into it.
//!
//! [`load_policy_file`] reads one policy file and [`parse_policy`] parses text by the file's
//! extension: `.xml` is Apigee's own syntax ([`xml`]), `.toml` the same model written in TOML
//! ([`toml`](self::toml)). Both return a [`ParseOutcome`]: the policy when there were no errors, and
//! every diagnostic (errors and warnings) in file order. [`bundle`] reads a whole Apigee
//! `apiproxy/` folder: its layout and endpoint files (the policies in it go through the above).

pub mod bundle;
pub mod check;
pub mod kinds;
pub mod model;
pub mod toml;
pub mod xml;

#[cfg(test)]
mod fixture_tests;

use std::io::Read;
use std::path::Path;

use crate::diag::{Diagnostic, Pos};

pub use check::MAX_POLICY_FILE_BYTES;

/// Result of parsing one policy file: the policy when there were no errors, and every diagnostic
/// (errors and warnings).
#[derive(Debug, Clone, PartialEq)]
pub struct ParseOutcome {
    /// The policy, present exactly when no diagnostic is an error.
    pub policy: Option<model::PolicyFile>,
    /// Every problem found, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
}

impl ParseOutcome {
    /// An outcome with one error and no policy.
    fn failed(d: Diagnostic) -> Self {
        Self {
            policy: None,
            diagnostics: vec![d],
        }
    }

    /// True when at least one diagnostic is an error (the fixture tests' question; the loader
    /// asks `Diagnostics::has_errors` of the whole load).
    #[cfg(test)]
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Dispatch on extension: `.xml` → [`xml::parse`], `.toml` → [`toml::parse`] (case-insensitive).
/// Any other extension is an error.
pub fn parse_policy(path: &Path, text: &str) -> ParseOutcome {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("xml") {
        xml::parse(path, text)
    } else if ext.eq_ignore_ascii_case("toml") {
        self::toml::parse(path, text)
    } else {
        ParseOutcome::failed(
            Diagnostic::error(
                path,
                None,
                "not a policy file: the extension is neither .xml nor .toml",
            )
            .with_hint("name Apigee XML policies *.xml and TOML policies *.toml"),
        )
    }
}

/// Reads the file (at most [`MAX_POLICY_FILE_BYTES`]; a larger file is an error and is not read)
/// and parses it with [`parse_policy`].
pub fn load_policy_file(path: &Path) -> ParseOutcome {
    let limit = MAX_POLICY_FILE_BYTES;
    let cannot_read = |e: std::io::Error| {
        ParseOutcome::failed(Diagnostic::error(
            path,
            None,
            format!("cannot read policy file: {e}"),
        ))
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return cannot_read(e),
    };
    let too_large = |len: u64| {
        ParseOutcome::failed(
            Diagnostic::error(
                path,
                None,
                format!("policy file is {len} bytes, more than the {limit} byte limit"),
            )
            .with_hint("policy files are small; split or shorten the file"),
        )
    };
    if let Ok(meta) = file.metadata() {
        if meta.len() > limit as u64 {
            return too_large(meta.len());
        }
    }
    // Read at most one byte past the limit, in case the file grew after the metadata check.
    let mut bytes = Vec::new();
    if let Err(e) = file.take(limit as u64 + 1).read_to_end(&mut bytes) {
        return cannot_read(e);
    }
    if bytes.len() > limit {
        return too_large(bytes.len() as u64);
    }
    match String::from_utf8(bytes) {
        Ok(text) => parse_policy(path, &text),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let prefix = String::from_utf8_lossy(e.as_bytes().get(..valid).unwrap_or_default());
            let pos = Pos::from_offset(&prefix, prefix.len());
            ParseOutcome::failed(
                Diagnostic::error(path, Some(pos), "policy file is not valid UTF-8")
                    .with_hint("save the file as UTF-8"),
            )
        }
    }
}
