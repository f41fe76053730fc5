//! gateway.toml `[log]`, compiled: whether and where the access log is written, and which query
//! parameters it masks. Reloadable: the proxy reads it from each request's snapshot.

use std::path::PathBuf;

/// The query parameters masked when `mask_query` is not written: the usual names of credentials
/// and signatures passed in URLs.
pub const DEFAULT_MASK_QUERY: [&str; 9] = [
    "token",
    "access_token",
    "api_key",
    "apikey",
    "key",
    "password",
    "secret",
    "sig",
    "signature",
];

/// `[log] access`: the shape of an access log line, or no log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessFormat {
    /// No access log (the default: embedded and test gateways stay quiet).
    #[default]
    Off,
    /// One JSON object per line.
    Json,
    /// A fixed NGINX-like line (README, "Access log").
    Text,
}

/// `[log] access_path`: where lines go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogDestination {
    /// The process's standard output.
    #[default]
    Stdout,
    /// A file opened for append (reopened on SIGUSR1).
    File(PathBuf),
}

/// `[log]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogSettings {
    /// The line format, or `Off`.
    pub format: AccessFormat,
    /// Where lines are written.
    pub destination: LogDestination,
    /// Query parameter names (lower case) whose values are logged as `***`.
    pub mask_query: Vec<String>,
}

impl Default for AccessLogSettings {
    fn default() -> Self {
        Self {
            format: AccessFormat::Off,
            destination: LogDestination::Stdout,
            mask_query: DEFAULT_MASK_QUERY.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}
