//! Checks of single values that several sections share: names, environment variable names, TTLs,
//! resource patterns and HTTP method names.

use toml::Spanned;

use super::ctx::FileCtx;
use crate::config::defaults::MAX_TTL_SECS;
use crate::runtime::resource::ResourcePattern;

/// Letters, digits, `-`, `_`, `.`; non-empty.
pub(crate) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) fn env_var_name(cx: &mut FileCtx, s: &Spanned<String>) -> bool {
    let v = s.get_ref();
    let ok = v
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && v.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        cx.error(
            s,
            "this is not an environment variable name (the value is not shown: it may be a secret)",
            Some(
                "name the variable, not its value: e.g. token_env = \"CACHEGATE_ADMIN_TOKEN\""
                    .into(),
            ),
        );
    }
    ok
}

pub(super) fn ttl(cx: &mut FileCtx, v: &Spanned<u64>, key: &str) -> u64 {
    let ttl = *v.get_ref();
    if ttl > MAX_TTL_SECS {
        cx.error(
            v,
            format!("{key} = {ttl} exceeds the maximum of {MAX_TTL_SECS} seconds"),
            Some(format!(
                "write {key} = {MAX_TTL_SECS} or less (0 disables caching)"
            )),
        );
    }
    ttl.min(MAX_TTL_SECS)
}

pub(super) fn pattern(cx: &mut FileCtx, v: &Spanned<String>) -> Option<ResourcePattern> {
    match ResourcePattern::parse(v.get_ref()) {
        Ok(p) => Some(p),
        Err(e) => {
            cx.error(
                v,
                e,
                Some("write e.g. \"/items/{id}\", \"/items/*\" or \"/*\"".into()),
            );
            None
        }
    }
}

pub(super) const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
