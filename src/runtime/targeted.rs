//! Targeted cache-control fields (RFC 9213): `CDN-Cache-Control`, and `Cachegate-Cache-Control`
//! for this gateway alone. In `mode = "http"` a stage has an ordered target list
//! (`[cache] targeted_cache_control`); the first listed field that is present and valid decides
//! freshness, and `Cache-Control` and `Expires` are then ignored for this cache.
//!
//! A targeted field is a Structured Field Dictionary (RFC 8941), parsed with `sfv`, not with the
//! lenient `Cache-Control` reader: a field that does not parse, is empty, or gives a
//! delta-seconds directive a value that is not a non-negative Integer is ignored as a whole
//! (RFC 9213 §2.1, "values that violate the type SHOULD NOT be consumed"). A dictionary keeps the
//! last of duplicated keys (RFC 8941 §4.2.2).

use http::{HeaderMap, HeaderName};
use sfv::{BareItem, ListEntry, Parser};

use crate::runtime::cache_control::{field_names, CacheControlFlags, DELTA_SECONDS_MAX};

/// cachegate's own targeted field: read, then removed before the response is forwarded or
/// stored (other caches have no business with it).
pub const OWN_FIELD: &str = "cachegate-cache-control";

/// The default target list: cachegate's own field, then `CDN-Cache-Control`.
pub const DEFAULT_TARGETS: [&str; 2] = [OWN_FIELD, "cdn-cache-control"];

/// The directives of the first field of `targets` that the response carries with a valid,
/// non-empty value; `None` when there is none (then `Cache-Control` and `Expires` decide).
pub fn select(targets: &[HeaderName], headers: &HeaderMap) -> Option<CacheControlFlags> {
    targets.iter().find_map(|name| parse(headers, name))
}

/// The field of the target list that names cachegate itself and is removed from what is
/// forwarded and stored: the first entry, unless it is the shared `CDN-Cache-Control` (which a
/// CDN forwards so caches further down can read it too).
pub fn own_field(targets: &[HeaderName]) -> Option<&HeaderName> {
    targets
        .first()
        .filter(|n| **n != http::header::CDN_CACHE_CONTROL)
}

/// One targeted field (all its lines, joined as one dictionary) as flags; `None` to ignore it.
fn parse(headers: &HeaderMap, name: &HeaderName) -> Option<CacheControlFlags> {
    let mut joined = Vec::new();
    for line in headers.get_all(name) {
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(line.as_bytes());
    }
    let dict = Parser::parse_dictionary(&joined).ok()?;
    if dict.is_empty() {
        return None;
    }
    let mut flags = CacheControlFlags {
        targeted: true,
        ..CacheControlFlags::default()
    };
    for (key, entry) in &dict {
        let item = match entry {
            ListEntry::Item(item) => Some(&item.bare_item),
            ListEntry::InnerList(_) => None,
        };
        let on = matches!(item, Some(BareItem::Boolean(true)));
        match key.as_str() {
            "no-store" => flags.no_store |= on,
            "must-revalidate" | "proxy-revalidate" => flags.must_revalidate |= on,
            "private" | "no-cache" => {
                if let Some(fields) = qualifier(entry) {
                    flags.set_qualified(key == "private", fields);
                }
            }
            "max-age" => flags.max_age = Some(integer(item)?),
            "s-maxage" => flags.s_maxage = Some(integer(item)?),
            "stale-while-revalidate" => flags.stale_while_revalidate = Some(integer(item)?),
            "stale-if-error" => flags.stale_if_error = Some(integer(item)?),
            _ => {}
        }
    }
    Some(flags)
}

/// A delta-seconds directive's value: a non-negative Integer (clamped at 2^31), else `None`.
fn integer(item: Option<&BareItem>) -> Option<u64> {
    match item {
        Some(BareItem::Integer(n)) => u64::try_from(*n).ok().map(|n| n.min(DELTA_SECONDS_MAX)),
        _ => None,
    }
}

/// `private` / `no-cache`: `Some(None)` for the unqualified form (`?1`, or a value the cache
/// cannot read — the restrictive reading), `Some(Some(fields))` for a String, Token or Inner
/// List of field names, `None` for `?0` (off).
fn qualifier(entry: &ListEntry) -> Option<Option<Vec<String>>> {
    match entry {
        ListEntry::Item(item) => match &item.bare_item {
            BareItem::Boolean(false) => None,
            BareItem::String(s) | BareItem::Token(s) => Some(Some(field_names(s))),
            _ => Some(None),
        },
        ListEntry::InnerList(list) => {
            let names: Option<Vec<&str>> = list
                .items
                .iter()
                .map(|i| match &i.bare_item {
                    BareItem::String(s) | BareItem::Token(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect();
            Some(names.map(|n| field_names(&n.join(","))))
        }
    }
}

#[cfg(test)]
#[path = "targeted_tests.rs"]
mod tests;
