//! gateway.toml `[log]`: the access log's format, destination and masked query parameters.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::ctx::FileCtx;
use crate::config::file_log::FileLog;
use crate::runtime::access_log::{AccessFormat, AccessLogSettings, LogDestination};

/// Validates and compiles `[log]`.
pub(crate) fn access_log(cx: &mut FileCtx, l: &FileLog) -> AccessLogSettings {
    let format = match l.access.get_ref().as_str() {
        "off" => AccessFormat::Off,
        "json" => AccessFormat::Json,
        "text" => AccessFormat::Text,
        other => {
            cx.error(
                &l.access,
                format!("`{other}` is not a value of access"),
                Some("write \"json\", \"text\" or \"off\"".into()),
            );
            AccessFormat::Off
        }
    };
    let destination = destination(cx, &l.access_path);
    let mask_query = match &l.mask_query {
        None => AccessLogSettings::default().mask_query,
        Some(list) => list
            .get_ref()
            .iter()
            .filter_map(|name| mask_name(cx, name))
            .collect(),
    };
    AccessLogSettings {
        format,
        destination,
        mask_query,
    }
}

/// `access_path`: `stdout`, or a file in an existing directory (relative to gateway.toml's).
fn destination(cx: &mut FileCtx, v: &Spanned<String>) -> LogDestination {
    let written = v.get_ref().trim();
    if written == "stdout" {
        return LogDestination::Stdout;
    }
    let hint = || {
        Some(
            "write access_path = \"stdout\" or the path of a file, e.g. \"/var/log/cachegate/access.log\""
                .to_owned(),
        )
    };
    if written.is_empty() || written.ends_with('/') {
        cx.error(
            v,
            format!("access_path {written:?} is not a file path"),
            hint(),
        );
        return LogDestination::Stdout;
    }
    let path = match cx.path.parent() {
        Some(dir) if !written.starts_with('/') => dir.join(written),
        _ => PathBuf::from(written),
    };
    if path.is_dir() {
        cx.error(
            v,
            format!("access_path `{}` is a directory", path.display()),
            hint(),
        );
        return LogDestination::Stdout;
    }
    if inside_config_dir(cx.path, &path) {
        cx.error(
            v,
            format!(
                "access_path `{}` is inside the configuration directory",
                path.display()
            ),
            Some("the directory is watched for changes, so every line written would reload the configuration: write the log elsewhere, e.g. \"/var/log/cachegate/access.log\"".into()),
        );
        return LogDestination::Stdout;
    }
    match path.parent() {
        Some(dir) if dir.as_os_str().is_empty() || dir.is_dir() => LogDestination::File(path),
        _ => {
            cx.error(
                v,
                format!(
                    "the directory of access_path `{}` does not exist",
                    path.display()
                ),
                hint(),
            );
            LogDestination::Stdout
        }
    }
}

/// Whether `log` would be written inside the directory of `gateway` (the configuration
/// directory, watched for changes).
fn inside_config_dir(gateway: &Path, log: &Path) -> bool {
    let dir = match gateway.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let canon = |p: &Path| p.canonicalize().ok();
    match (canon(dir), log.parent().and_then(canon)) {
        (Some(dir), Some(parent)) => parent.starts_with(dir),
        _ => false,
    }
}

/// One `mask_query` entry: a query parameter name, compared in lower case.
fn mask_name(cx: &mut FileCtx, v: &Spanned<String>) -> Option<String> {
    let name = v.get_ref().trim();
    if name.is_empty()
        || name
            .bytes()
            .any(|b| b <= b' ' || b"=&#?".contains(&b) || b >= 0x7f)
    {
        cx.error(
            v,
            format!("mask_query entry {name:?} is not a query parameter name"),
            Some("write names as they appear before `=` in a URL, e.g. mask_query = [\"token\", \"api_key\"]".into()),
        );
        return None;
    }
    Some(name.to_ascii_lowercase())
}
