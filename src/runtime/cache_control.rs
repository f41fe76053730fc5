//! The response `Cache-Control` field as RFC 9111 §5.2 defines it, for a shared cache: which
//! directives forbid storing, which force revalidation, and the delta-seconds lifetimes.
//!
//! Kept apart from `ttl` (the arithmetic) so the parsing rules — first occurrence wins, exact
//! delta-seconds, quoted strings never hide directives — live and are tested in one place;
//! `targeted` maps RFC 9213 fields (`CDN-Cache-Control`) into the same [`CacheControlFlags`].

use std::borrow::Cow;

use http::header::CACHE_CONTROL;
use http::HeaderMap;

/// RFC 9111 §1.2.2: a delta-seconds value too large to represent is taken as 2^31.
pub const DELTA_SECONDS_MAX: u64 = 2_147_483_648;

/// What a response's cache directives say, for deciding whether (and how long) a shared cache
/// may keep it. `no_store` or `private` forbid storing; `no_cache` allows storing but every reuse
/// must be revalidated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheControlFlags {
    /// `no-store`: never store.
    pub no_store: bool,
    /// Unqualified `private`: not for shared caches.
    pub private: bool,
    /// Unqualified `no-cache`: store, but revalidate before each reuse.
    pub no_cache: bool,
    /// `must-revalidate` (or `proxy-revalidate`, its shared-cache twin): never serve stale.
    pub must_revalidate: bool,
    /// `s-maxage` seconds.
    pub s_maxage: Option<u64>,
    /// `max-age` seconds.
    pub max_age: Option<u64>,
    /// `stale-while-revalidate` seconds (RFC 5861).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` seconds (RFC 5861).
    pub stale_if_error: Option<u64>,
    /// Field names (lower-case) of a qualified `private="a, b"` (RFC 9111 §5.2.2.7): a shared
    /// cache may store the response without them.
    pub private_fields: Vec<String>,
    /// Field names (lower-case) of a qualified `no-cache="a, b"` (§5.2.2.4): the response may be
    /// reused without them.
    pub no_cache_fields: Vec<String>,
    /// Read from a targeted field (RFC 9213 §2.2): `Expires` then does not count either.
    pub targeted: bool,
}

impl CacheControlFlags {
    /// Whether a shared cache must not store the response (`no-store` or `private`).
    #[cfg(test)]
    pub fn forbids_shared_storage(&self) -> bool {
        self.no_store || self.private
    }

    /// The fields a shared cache leaves out of what it stores: those named by qualified
    /// `private` and `no-cache`.
    pub fn fields_not_stored(&self) -> impl Iterator<Item = &str> {
        self.private_fields
            .iter()
            .chain(&self.no_cache_fields)
            .map(String::as_str)
    }

    /// Records a `no-cache` / `private` argument: `None` is the unqualified form; a field list
    /// that is empty or names something that is not a field name counts as unqualified too (the
    /// most restrictive reading of a value the cache cannot use).
    pub(crate) fn set_qualified(&mut self, private: bool, fields: Option<Vec<String>>) {
        let (flag, list) = if private {
            (&mut self.private, &mut self.private_fields)
        } else {
            (&mut self.no_cache, &mut self.no_cache_fields)
        };
        match fields {
            Some(fields) if !fields.is_empty() => {
                for f in fields {
                    if !list.contains(&f) {
                        list.push(f);
                    }
                }
            }
            _ => *flag = true,
        }
    }
}

/// Parses every `Cache-Control` field line as one comma-separated list (RFC 9110 §5.3).
///
/// - Directive names are case-insensitive tokens; a comma or `max-age=…` inside another
///   directive's quoted string is part of that string, not a directive.
/// - Duplicates (RFC 9111 §4.2.1): the first occurrence of a delta-seconds directive wins, across
///   field lines and within one; later ones are ignored.
/// - Delta-seconds (§1.2.2): digits only, quoted or not (`max-age="60"`); a value too large
///   counts as 2^31. An invalid value (`-1`, `+5`, `5.0`, `abc`, missing) of `max-age` or
///   `s-maxage` makes the response stale (§4.2.1 encourages it), of `stale-*` gives no stale
///   window — the most restrictive reading, and it still counts as the first occurrence.
/// - `private` / `no-cache` with a field list (quoted, or a bare token) name fields not to
///   store; without one they keep their full meaning; both forms together → the full meaning.
pub fn cache_control(headers: &HeaderMap) -> CacheControlFlags {
    let mut flags = CacheControlFlags::default();
    for line in headers.get_all(CACHE_CONTROL) {
        let line = String::from_utf8_lossy(line.as_bytes());
        for directive in split_list(&line) {
            apply_directive(&mut flags, directive);
        }
    }
    flags
}

/// Records one `name[=value]` directive.
fn apply_directive(flags: &mut CacheControlFlags, directive: &str) {
    let (name, value) = match directive.split_once('=') {
        Some((n, v)) => (n, Some(unquote(v))),
        None => (directive, None),
    };
    // A name is a token: `max-age =5` is not max-age (RFC 9111 §5.2 allows no spaces there).
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return;
    }
    let name = name.to_ascii_lowercase();
    // Invalid → 0: stale, or no stale window (see `cache_control`).
    let seconds = || Some(value.as_deref().and_then(delta_seconds).unwrap_or(0));
    match name.as_str() {
        "no-store" => flags.no_store = true,
        "private" => flags.set_qualified(true, value.as_deref().map(field_names)),
        "no-cache" => flags.set_qualified(false, value.as_deref().map(field_names)),
        "must-revalidate" | "proxy-revalidate" => flags.must_revalidate = true,
        "s-maxage" => first(&mut flags.s_maxage, seconds),
        "max-age" => first(&mut flags.max_age, seconds),
        "stale-while-revalidate" => first(&mut flags.stale_while_revalidate, seconds),
        "stale-if-error" => first(&mut flags.stale_if_error, seconds),
        _ => {}
    }
}

/// Sets `slot` unless an earlier occurrence did (RFC 9111 §4.2.1: the first one is used).
fn first(slot: &mut Option<u64>, value: impl FnOnce() -> Option<u64>) {
    if slot.is_none() {
        *slot = value();
    }
}

/// A field-name list (`a, b`), lower-cased. An element that is not a token yields an empty list
/// (which the caller reads as the unqualified form).
pub(crate) fn field_names(list: &str) -> Vec<String> {
    let mut names = Vec::new();
    for name in list.split(',').map(|n| n.trim_matches([' ', '\t'])) {
        if name.is_empty() {
            continue;
        }
        if !name.bytes().all(is_tchar) {
            return Vec::new();
        }
        names.push(name.to_ascii_lowercase());
    }
    names
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9111 §1.2.2 delta-seconds: `1*DIGIT`, nothing else (no sign, no fraction, no spaces);
/// values over 2^31 count as 2^31.
pub fn delta_seconds(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        s.parse::<u64>()
            .map_or(DELTA_SECONDS_MAX, |n| n.min(DELTA_SECONDS_MAX)),
    )
}

/// Strips one pair of surrounding double quotes and backslash escapes inside them.
pub(crate) fn unquote(s: &str) -> Cow<'_, str> {
    let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return Cow::Borrowed(s);
    };
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or('\\')
        } else {
            c
        });
    }
    Cow::Owned(out)
}

/// Splits a comma-separated list, ignoring commas inside quoted strings; empty elements dropped;
/// each element trimmed of optional whitespace.
pub(crate) fn split_list(s: &str) -> impl Iterator<Item = &str> {
    let mut items = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(s.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(s.get(start..).unwrap_or_default());
    items
        .into_iter()
        .map(|i| i.trim_matches([' ', '\t']))
        .filter(|i| !i.is_empty())
}

#[cfg(test)]
#[path = "cache_control_tests.rs"]
mod tests;
