//! [`AssignError`]: why an AssignMessage step failed, and the escaping that keeps the values it
//! quotes from forging log lines.

use crate::runtime::flow::template::Unresolved;

/// Why an AssignMessage step failed. The message is left unchanged whenever one is returned.
///
/// Values quoted in these errors are escaped (`escape_debug`), so a CR/LF smuggled in through a
/// variable cannot forge log lines either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignError {
    /// A `{var}` did not resolve and `<IgnoreUnresolvedVariables>` is false.
    #[error("unresolved variable `{0}`")]
    Unresolved(String),
    /// A rendered header value (or a payload `contentType`) is not a valid header value, for
    /// example because it contains CR, LF or NUL (response splitting); it is never written.
    #[error("invalid header value for `{name}`")]
    InvalidHeaderValue {
        /// The header, lower case.
        name: String,
    },
    /// `<StatusCode>` did not render to a number in 100..=599.
    #[error("invalid status code `{0}`")]
    InvalidStatus(String),
    /// `<ReasonPhrase>` rendered to text with control characters (CR/LF would split the
    /// response's status line).
    #[error("invalid reason phrase `{0}`")]
    InvalidReasonPhrase(String),
    /// `<Verb>` did not render to an HTTP method token.
    #[error("invalid method `{0}`")]
    InvalidMethod(String),
    /// `<Path>` did not render to an absolute path of visible ASCII without `?` or `#`.
    #[error("invalid path `{0}`")]
    InvalidPath(String),
}

impl From<Unresolved> for AssignError {
    fn from(u: Unresolved) -> Self {
        AssignError::Unresolved(u.0)
    }
}

/// Escapes control characters for error messages (see [`AssignError`]).
pub(crate) fn escaped(s: &str) -> String {
    s.escape_debug().to_string()
}
