//! Reading configuration files: bounded in size, and TOML parse errors turned into positioned
//! diagnostics with a did-you-mean for misspelt keys.

use std::fs;
use std::path::Path;

use super::compile::file_error;
use crate::diag::{Diagnostic, Diagnostics, Pos};

/// Largest configuration file read (a policy directory is not a place for big files).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads a whole configuration file, or reports why it cannot.
pub(crate) fn read(path: &Path, diags: &mut Diagnostics) -> Option<String> {
    match fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE_BYTES => {
            diags.push(file_error(
                path,
                format!("file is {} bytes; the limit is {MAX_FILE_BYTES}", m.len()),
            ));
            return None;
        }
        Err(e) => {
            diags.push(file_error(path, format!("cannot read: {e}")));
            return None;
        }
        Ok(_) => {}
    }
    match fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            diags.push(file_error(path, format!("cannot read: {e}")));
            None
        }
    }
}

/// Parses TOML into `T`, turning a syntax or schema error into a positioned diagnostic.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    diags: &mut Diagnostics,
) -> Option<T> {
    match toml::from_str::<T>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            let pos = e.span().map(|s| Pos::from_offset(text, s.start));
            let message = e.message().trim().to_owned();
            let hint = unknown_field_hint(&message);
            let mut d = Diagnostic::error(path, pos, message);
            d.hint = hint;
            diags.push(d);
            None
        }
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`", suggest the closest name.
fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    match crate::util::did_you_mean(field, expected.iter().copied()) {
        Some(m) => Some(format!("did you mean `{m}`?")),
        None if !expected.is_empty() => Some(format!("valid keys here: {}", expected.join(", "))),
        None => None,
    }
}
