//! Invalidation after unsafe methods (RFC 9111 §4.4), for http-mode stage caching.
//!
//! When a request whose method is not safe (anything but GET, HEAD, OPTIONS and TRACE — unknown
//! methods such as `M-SEARCH` included, RFC 9110 §9.2.1) gets a non-error (2xx/3xx) response
//! from the target, every stored response for its target URI is invalidated: the key a GET of the
//! same target would have ([`plan::invalidation_key`], the one key builder), by its primary hash,
//! so all `Vary` variants go, through the store's exact invalidation (both tiers, every instance,
//! and a purge record so an in-flight fill cannot bring it back). The URIs in the response's
//! `Location` and `Content-Location` are invalidated too when they resolve (RFC 3986 §5,
//! against the request URI) to the same origin — scheme, host and port — each under the stage
//! its path routes to. A failed response (4xx/5xx) invalidates nothing.
//!
//! Only http mode: AWS-mode keys hold only the declared parameters and ResponseCache keys are
//! whatever the policy says, so neither can be derived from a URI (InvalidateCache policies and
//! the admin API cover those).

use http::header::{CONTENT_LOCATION, HOST, LOCATION};
use http::HeaderMap;
use pingora::http::RequestHeader;

use crate::cache::store::TieredStore;
use crate::engine::facts::RequestFacts;
use crate::engine::plan;
use crate::engine::state::{Env, RequestState};
use crate::metrics::METRICS;
use crate::runtime::key::BuiltKey;
use crate::runtime::stage::CacheMode;

/// Whether a method is safe (RFC 9110 §9.2.1); every other method, known or not, is unsafe.
pub fn is_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// Whether a response to `method` with `status` invalidates its target (§4.4: non-error
/// responses to unsafe methods).
pub fn invalidates(method: &str, status: u16) -> bool {
    !is_safe(method) && (200..400).contains(&status)
}

/// Invalidates what an unsafe request's response makes stale, if it does: its target and the
/// same-origin `Location`/`Content-Location` of `headers`. `req` and `state` are the request as
/// the gateway routed it. Returns how many keys were invalidated.
pub fn after_response(
    env: Env<'_>,
    store: &TieredStore,
    req: &RequestHeader,
    state: &RequestState,
    status: u16,
    headers: &HeaderMap,
) -> usize {
    if !invalidates(req.method.as_str(), status) || env.stage.cache.mode != CacheMode::Http {
        return 0;
    }
    let mut done = 0;
    let params = state.params();
    let vars = env.vars(req, state, &params, None);
    if let Some(key) =
        plan::invalidation_key(env.stage, &RequestFacts::of(req, &state.suffix), &vars)
    {
        invalidate(&env.stage.name, store, &key, "target");
        done += 1;
    }
    let own = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let authority = authority(req);
    for name in [LOCATION, CONTENT_LOCATION] {
        let Some(reference) = headers.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Some(target) = same_origin(reference, own, authority.as_deref()) else {
            continue;
        };
        if target == own {
            continue;
        }
        if let Some(key) = key_of(env, req, &target) {
            invalidate(key.0.as_str(), store, &key.1, name.as_str());
            done += 1;
        }
    }
    done
}

/// The key (and its stage's name) a GET of `target` (a same-origin path and query) would have:
/// routed like any request, with the original request's `Host` and `Authorization` (key inputs
/// on stages that forward the Host or cache authorized requests).
fn key_of(env: Env<'_>, req: &RequestHeader, target: &str) -> Option<(String, BuiltKey)> {
    let path = target.split('?').next().unwrap_or(target);
    let routed = crate::engine::route(env.config, path)?;
    let mut get = RequestHeader::build("GET", target.as_bytes(), None).ok()?;
    for name in [HOST, http::header::AUTHORIZATION] {
        if let Some(v) = req.headers.get(&name) {
            get.insert_header(name, v.clone()).ok()?;
        }
    }
    let stage: &crate::runtime::stage::Stage = &routed.stage;
    let env = Env {
        stage,
        request_body: crate::runtime::flow::vars::Body::Absent,
        ..env
    };
    let state = RequestState::new(routed.suffix);
    let vars = env.vars(&get, &state, &[], None);
    let facts = RequestFacts::of(&get, &state.suffix);
    plan::invalidation_key(stage, &facts, &vars).map(|k| (stage.name.clone(), k))
}

/// Removes the entry (every variant) everywhere, with the audit line and metric.
fn invalidate(stage: &str, store: &TieredStore, key: &BuiltKey, from: &str) {
    store.invalidate_exact(key.partition(), &key.store_key());
    METRICS
        .cache_invalidations
        .with_label_values(&[stage, "unsafe_method", "done"])
        .inc();
    tracing::info!(
        target: "cachegate::audit",
        stage,
        source = "unsafe_method",
        uri = from,
        key = %key.readable,
        "Cache invalidated after an unsafe method."
    );
}

/// The request's authority: the `Host` field, else the target's (absolute form).
fn authority(req: &RequestHeader) -> Option<String> {
    req.headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri.authority().map(|a| a.as_str().to_owned()))
}

/// Resolves `reference` (a `Location` or `Content-Location` value) against the request's
/// `path_and_query` (RFC 3986 §5.2) and returns the path and query it names when it is on the
/// same origin as the request (`http`, the request's `authority`), dot segments removed as the
/// gateway removes them from requests. `None` for another origin, another scheme, or anything
/// unparsable.
pub fn same_origin(reference: &str, own: &str, authority: Option<&str>) -> Option<String> {
    let reference = reference.trim();
    let reference = reference.split('#').next().unwrap_or(reference);
    let has_scheme = reference
        .split_once(':')
        .is_some_and(|(s, _)| is_scheme(s) && !s.contains('/'));
    let (path, query) = if has_scheme || reference.starts_with("//") {
        let absolute = if has_scheme {
            reference.to_owned()
        } else {
            format!("http:{reference}")
        };
        let uri: http::Uri = absolute.parse().ok()?;
        if !uri.scheme_str()?.eq_ignore_ascii_case("http")
            || !same_authority(uri.authority()?.as_str(), authority?)
        {
            return None;
        }
        let path = match uri.path() {
            "" => "/",
            p => p,
        };
        (path.to_owned(), uri.query().map(str::to_owned))
    } else {
        let (base_path, base_query) = split_query(own);
        let (ref_path, ref_query) = split_query(reference);
        if ref_path.is_empty() {
            let query = ref_query.or(base_query);
            (base_path.to_owned(), query.map(str::to_owned))
        } else if ref_path.starts_with('/') {
            (ref_path.to_owned(), ref_query.map(str::to_owned))
        } else {
            let dir = base_path.rfind('/').map_or("/", |i| &base_path[..=i]);
            (format!("{dir}{ref_path}"), ref_query.map(str::to_owned))
        }
    };
    let path = crate::util::normalize_path(&path)?;
    Some(match query {
        Some(q) => format!("{path}?{q}"),
        None => path.into_owned(),
    })
}

fn split_query(s: &str) -> (&str, Option<&str>) {
    match s.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (s, None),
    }
}

/// RFC 3986 §3.1: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Whether two authorities name the same host and port (host case-insensitive, port 80 when
/// absent). Userinfo never matches.
fn same_authority(a: &str, b: &str) -> bool {
    fn norm(a: &str) -> Option<(String, u16)> {
        if a.contains('@') {
            return None;
        }
        let a = a.to_ascii_lowercase();
        // An IPv6 literal keeps its colons inside brackets.
        let (host, port) = match a.rfind(':') {
            Some(i) if !a[i..].contains(']') => (a[..i].to_owned(), a[i + 1..].parse().ok()?),
            _ => (a, 80),
        };
        Some((host, port))
    }
    matches!((norm(a), norm(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_A: Option<&str> = Some("api.test:8080");

    #[test]
    fn safe_and_unsafe_methods() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE"] {
            assert!(!invalidates(m, 200), "{m}");
        }
        for m in ["POST", "PUT", "DELETE", "PATCH", "M-SEARCH"] {
            assert!(invalidates(m, 200), "{m}");
            assert!(invalidates(m, 204), "{m}");
            assert!(invalidates(m, 303), "{m}");
            assert!(!invalidates(m, 404), "{m}");
            assert!(!invalidates(m, 500), "{m}");
        }
    }

    #[test]
    fn relative_references_resolve_against_the_request() {
        let own = "/prod/items/1?x=1";
        let r = |s| same_origin(s, own, HOST_A);
        assert_eq!(r("/prod/items/2").as_deref(), Some("/prod/items/2"));
        assert_eq!(r("2").as_deref(), Some("/prod/items/2"));
        assert_eq!(r("../other/3?y=2").as_deref(), Some("/prod/other/3?y=2"));
        assert_eq!(r("?y=2").as_deref(), Some("/prod/items/1?y=2"));
        assert_eq!(r("").as_deref(), Some("/prod/items/1?x=1"));
        assert_eq!(r("5#frag").as_deref(), Some("/prod/items/5"));
    }

    #[test]
    fn absolute_references_must_share_the_origin() {
        let own = "/prod/items/1";
        let r = |s| same_origin(s, own, HOST_A);
        assert_eq!(
            r("http://api.test:8080/prod/items/2").as_deref(),
            Some("/prod/items/2")
        );
        assert_eq!(
            r("HTTP://API.TEST:8080/prod/items/2?q").as_deref(),
            Some("/prod/items/2?q")
        );
        assert_eq!(r("//api.test:8080/a").as_deref(), Some("/a"));
        assert_eq!(r("http://other.test:8080/prod/items/2"), None);
        assert_eq!(r("http://api.test:8081/prod/items/2"), None);
        assert_eq!(r("http://api.test/prod/items/2"), None);
        assert_eq!(r("https://api.test:8080/prod/items/2"), None);
        assert_eq!(r("http://user@api.test:8080/x"), None);
        assert_eq!(r("mailto:a@b"), None);
        // Port 80 is the default.
        assert_eq!(
            same_origin("http://api.test/x", own, Some("api.test")).as_deref(),
            Some("/x")
        );
        assert_eq!(same_origin("/x", own, None).as_deref(), Some("/x"));
        assert_eq!(same_origin("http://api.test/x", own, None), None);
    }
}
