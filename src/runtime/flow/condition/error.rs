//! [`ConditionError`]: why a condition could not be parsed, with the byte offset of the problem.
//!
//! Every other part of the condition language (lexer, parser, pattern compiler) produces these
//! errors, so the type sits in a file of its own at the bottom of the module's imports.

/// Why a condition could not be parsed.
///
/// `offset` is a byte offset into the condition text so that callers can point at the exact spot
/// (for example with a caret under the XML element's text); `hint` suggests a fix when one is known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConditionError {
    /// Byte offset into the source text where the problem is (always `<=` the source length).
    pub offset: usize,
    /// What is wrong, in one line.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl ConditionError {
    pub(super) fn new(offset: usize, message: impl Into<String>) -> Self {
        ConditionError {
            offset,
            message: message.into(),
            hint: None,
        }
    }

    pub(super) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}
