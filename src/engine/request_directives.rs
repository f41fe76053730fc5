//! Request `Cache-Control` (and `Pragma`) as RFC 9111 §5.2.1 request directives, for http-mode
//! stage caching: what a client may ask of a shared cache, and what a stored entry then gets.
//!
//! In aws mode and for ResponseCache policies the same fields are AWS client invalidation
//! (`client_invalidation`, with its tokens and 403s). Here they only ever cause a revalidation
//! with the target (a conditional request with the stored validators; a 304 refreshes the entry
//! for everyone), a 504 (`only-if-cached`), or a response that is not stored (`no-store`):
//! never a 403, and never anything a client could not get from any standards cache.
//!
//! Parsing: every `Cache-Control` field line is one list (RFC 9110 §5.3), directive names are
//! case-insensitive, commas inside quoted strings do not split (the tokenizer is
//! `client_invalidation::directives`, so both readings split a field identically). Arguments
//! are delta-seconds (§1.2.2): digits only, quotes tolerated; a malformed one ignores the
//! directive, a huge one saturates. A repeated directive keeps its first valid value (as §4.2.1
//! says of responses). `Pragma: no-cache` counts only when there is no `Cache-Control` field
//! at all (§5.4).

use http::header::{CACHE_CONTROL, PRAGMA};
use http::HeaderMap;

use crate::engine::client_invalidation::directives;

/// The request directives a shared cache acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    /// `no-cache` (or `Pragma: no-cache` without `Cache-Control`): validate before reuse.
    pub no_cache: bool,
    /// `no-store`: do not store the response to this request.
    pub no_store: bool,
    /// `only-if-cached`: answer from the cache or with 504, never from the target.
    pub only_if_cached: bool,
    /// `max-age=N`: no response older than N seconds (and no stale one, unless `max-stale`).
    pub max_age: Option<u64>,
    /// `min-fresh=N`: a response fresh for at least N more seconds.
    pub min_fresh: Option<u64>,
    /// `max-stale[=N]`: a response stale by at most N seconds is acceptable (`Some(None)`: any).
    pub max_stale: Option<Option<u64>>,
}

impl RequestDirectives {
    /// Whether any directive is present that changes how a stored entry is used.
    pub fn any(&self) -> bool {
        *self != Self::default()
    }
}

/// Parses a request's `Cache-Control` (or, without one, `Pragma`).
pub fn parse(headers: &HeaderMap) -> RequestDirectives {
    let mut d = RequestDirectives::default();
    let mut cache_control = headers.get_all(CACHE_CONTROL).iter().peekable();
    if cache_control.peek().is_none() {
        d.no_cache = headers.get_all(PRAGMA).iter().any(|v| {
            directives(v.as_bytes()).any(|(name, _)| name.eq_ignore_ascii_case(b"no-cache"))
        });
        return d;
    }
    for value in cache_control {
        for (name, arg) in directives(value.as_bytes()) {
            let seconds = arg.and_then(delta_seconds);
            let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
            if is("no-cache") {
                d.no_cache = true;
            } else if is("no-store") {
                d.no_store = true;
            } else if is("only-if-cached") {
                d.only_if_cached = true;
            } else if is("max-age") {
                d.max_age = d.max_age.or(seconds);
            } else if is("min-fresh") {
                d.min_fresh = d.min_fresh.or(seconds);
            } else if is("max-stale") && d.max_stale.is_none() {
                // Without an argument: any staleness; with a malformed one: ignored.
                match arg {
                    None => d.max_stale = Some(None),
                    Some(_) => d.max_stale = seconds.map(Some),
                }
            }
        }
    }
    d
}

/// delta-seconds: one or more digits; too large saturates (RFC 9111 §1.2.2 allows clamping).
fn delta_seconds(arg: &[u8]) -> Option<u64> {
    if arg.is_empty() || !arg.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(arg.iter().fold(0u64, |n, &b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// What a stored entry is, as the directives judge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryState {
    /// Its current age in seconds (RFC 9111 §4.2.3; Pingora's `meta.age()`).
    pub age: u64,
    /// Seconds it stays fresh (negative: stale for that long).
    pub fresh_left: i64,
    /// It was stored or validated with the target after this request arrived (it waited for
    /// another request's fetch): that validation satisfies this request too.
    pub validated_since_arrival: bool,
    /// The stored response lets a shared cache serve it stale (no `must-revalidate`,
    /// `proxy-revalidate`, `s-maxage` or `no-cache`).
    pub may_serve_stale: bool,
}

/// What to do with a stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitVerdict {
    /// As its freshness says (the directives change nothing).
    AsIs,
    /// Revalidate with the target before use, without serving it stale meanwhile.
    Revalidate,
    /// Serve it although stale (`max-stale`).
    ServeStale,
}

/// Decides what the directives make of a stored entry.
pub fn on_hit(d: &RequestDirectives, e: &EntryState) -> HitVerdict {
    if e.validated_since_arrival {
        return HitVerdict::AsIs;
    }
    // Ages are whole seconds, so an entry stored this second has age 0: `max-age=0` still
    // means "validate", as clients (and AWS) send it.
    let too_old = d.max_age.is_some_and(|n| n == 0 || e.age > n);
    let too_close = d
        .min_fresh
        .is_some_and(|n| e.fresh_left < i64::try_from(n).unwrap_or(i64::MAX));
    if d.no_cache || too_old || too_close {
        return HitVerdict::Revalidate;
    }
    if e.fresh_left >= 0 {
        return HitVerdict::AsIs;
    }
    let stale_by = e.fresh_left.unsigned_abs();
    let stale_ok = d
        .max_stale
        .is_some_and(|limit| limit.is_none_or(|n| stale_by <= n));
    if stale_ok && e.may_serve_stale {
        HitVerdict::ServeStale
    } else if d.max_age.is_some() || d.min_fresh.is_some() {
        // The client will not take a stale response: no stale-while-revalidate for it.
        HitVerdict::Revalidate
    } else {
        HitVerdict::AsIs
    }
}

#[cfg(test)]
#[path = "request_directives_tests.rs"]
mod tests;
