//! gateway.toml `[log]` as written (see `file.rs` for the conventions: spans for what
//! validation may point at, unknown keys refused, `///` comments become schema descriptions).

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// `[log]`: the access log, one line per client request.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileLog {
    /// The access log's format: `json` (one object per line), `text` (a fixed NGINX-like line)
    /// or `off` (the default). Reloadable.
    #[serde(default = "access_default")]
    #[schemars(with = "AccessSchema")]
    pub access: Spanned<String>,
    /// Where access log lines go: `stdout` (the default) or a file path (relative paths are
    /// relative to gateway.toml's directory), opened for append and reopened on SIGUSR1 (for
    /// logrotate). Its directory must exist. Reloadable.
    #[serde(default = "path_default")]
    #[schemars(with = "String")]
    pub access_path: Spanned<String>,
    /// Query parameter names (compared without regard to case) whose values the access log
    /// replaces with `***`. Writing it replaces the default list (`token`, `access_token`,
    /// `api_key`, `apikey`, `key`, `password`, `secret`, `sig`, `signature`); write
    /// `mask_query = []` to mask nothing.
    #[schemars(with = "Option<Vec<String>>")]
    pub mask_query: Option<Spanned<Vec<Spanned<String>>>>,
}

/// Values of `access` (schema only).
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum AccessSchema {
    Json,
    Text,
    Off,
}

fn access_default() -> Spanned<String> {
    Spanned::new(0..0, "off".to_owned())
}

fn path_default() -> Spanned<String> {
    Spanned::new(0..0, "stdout".to_owned())
}

impl Default for FileLog {
    fn default() -> Self {
        Self {
            access: access_default(),
            access_path: path_default(),
            mask_query: None,
        }
    }
}
