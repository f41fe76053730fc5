//! Cache decisions: whether a request uses the cache and with which key, and whether a response
//! is stored and for how long. Pure functions over the runtime config and request/response
//! data, so every rule is unit-testable without a server.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderMap;

pub use crate::engine::facts::RequestFacts;
use crate::runtime::age::{self, Exchange};
use crate::runtime::flow::Variables;
use crate::runtime::key::{BuiltKey, KeySpec, StoreKey};
use crate::runtime::policy::ResponseCachePolicy;
use crate::runtime::stage::{CacheMode, Stage, StageCache};
use crate::runtime::targeted;
use crate::runtime::ttl::{self, DEFAULT_TTL_SECS};

/// Why a request does not use the cache (`Cache-Status: …; detail=<reason>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// No ResponseCache on the flow and stage caching off (or TTL 0).
    Off,
    /// The method is not cached (only GET/HEAD unless an override allows it).
    Method,
    /// The request carries `Authorization` and the stage does not allow caching it.
    Authorization,
    /// The request carries `Cookie` and the stage does not allow caching it.
    Cookie,
    /// A request with a body its key does not read (any GET or HEAD with a body).
    Body,
    /// `Connection` asks to drop an end-to-end header before forwarding.
    HopByHop,
    /// A query parameter the ResponseCache key reads appears more than once: the key holds the
    /// first value while the target, which gets the whole query, may use another.
    RepeatedParameter,
    /// A null route: nothing is forwarded, the policies make the response.
    NullRoute,
    /// The ResponseCache key is over Apigee's 2 KB limit.
    KeyTooLong,
    /// The ResponseCache key reads a request body the gateway did not read (over 64 KiB, or
    /// not text): every such request would share one entry.
    BodyUnread,
}

impl Bypass {
    /// Label for headers and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Bypass::Off => "off",
            Bypass::Method => "method",
            Bypass::Authorization => "authorization",
            Bypass::Cookie => "cookie",
            Bypass::Body => "body",
            Bypass::HopByHop => "hop_by_hop",
            Bypass::RepeatedParameter => "repeated_parameter",
            Bypass::NullRoute => "null_route",
            Bypass::KeyTooLong => "key_too_long",
            Bypass::BodyUnread => "body_unread",
        }
    }
}

/// A request that uses the cache.
#[derive(Debug)]
pub struct CachePlan {
    /// The ResponseCache policy, or `None` for AWS-style stage caching.
    pub policy: Option<Arc<ResponseCachePolicy>>,
    /// The built key (shared with the cache bridge, which needs its prefixes on a miss).
    pub key: Arc<BuiltKey>,
    /// Its storage hash.
    pub store_key: StoreKey,
    /// Skip the lookup and re-populate (SkipCacheLookup, or an authorized client refresh).
    pub skip_lookup: bool,
    /// The stage TTL for this method and resource (a `[[cache.method]]` override, else
    /// `[cache] ttl`), in seconds: what [`ttl_for`] falls back to.
    pub stage_ttl: u64,
    /// Seal the entry in the shared tier (stage `encrypted` or a method override).
    pub encrypted: bool,
}

impl CachePlan {
    /// The policy label for metrics: the ResponseCache name, or `stage` for stage caching.
    pub fn policy_label(&self) -> &str {
        self.policy
            .as_ref()
            .map_or("stage", |p| p.common.name.as_str())
    }
}

/// The one TTL rule for every entry a policy or stage caching writes (ResponseCache,
/// PopulateCache, stage caching; the proxy, the admin API and `explain` alike):
/// 1. what the policy itself says, when it resolves — the response's headers with
///    `UseResponseCacheHeaders`, else its `ExpirySettings` — capped at
///    `ttl::POLICY_MAX_TTL_SECS` (why it is not yet Apigee's 30 days: see there);
/// 2. else the stage TTL for the request's method and resource (`stage_ttl`: a
///    `[[cache.method]]` override's `ttl`, else `[cache] ttl`; at most AWS's 3600 s);
/// 3. else, when that is 0, 300 s (Apigee's default): a stage TTL of 0 turns AWS-style stage
///    caching off, not the policies a flow attaches (stage caching never reaches this rule, as
///    it does not plan a lookup with a TTL of 0).
pub fn ttl_for(own: Option<Duration>, stage_ttl: u64) -> Duration {
    match own {
        Some(own) => ttl::cap_policy(own),
        None if stage_ttl > 0 => ttl::cap(Duration::from_secs(stage_ttl)),
        None => Duration::from_secs(DEFAULT_TTL_SECS),
    }
}

/// Variables for key building: a HEAD is answered from a cached GET, so it must build the
/// GET's key (`request.verb`, and Apigee's `message.verb`, read GET).
pub struct KeyVars<'a>(pub &'a dyn Variables);

impl Variables for KeyVars<'_> {
    fn get(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        match self.0.get(name) {
            Some(v) if matches!(name, "request.verb" | "message.verb") && v == "HEAD" => {
                Some(std::borrow::Cow::Borrowed("GET"))
            }
            other => other,
        }
    }

    fn withheld(&self, name: &str) -> bool {
        self.0.withheld(name)
    }
}

/// Decides how a request uses the cache. `policy` is the ResponseCache the request steps
/// reached (`engine::walk`), if any; without one, stage caching decides.
pub fn plan(
    stage: &Stage,
    policy: Option<Arc<ResponseCachePolicy>>,
    req: &RequestFacts<'_>,
    vars: &dyn Variables,
) -> Result<CachePlan, Bypass> {
    let cache = &stage.cache;
    let (method, suffix) = (req.method, req.suffix);
    // A HEAD builds the key of the GET it is answered from.
    let vars = &KeyVars(vars);
    let fallback = cache.override_ttl(method, suffix).unwrap_or(cache.ttl_secs);
    // Stage caching needs a non-zero TTL (0 disables it, as in AWS); a ResponseCache brings its
    // own expiry.
    if policy.is_none() && !(cache.enabled && fallback > 0) {
        return Err(Bypass::Off);
    }
    if !cache.caching_allowed(method, suffix) {
        return Err(Bypass::Method);
    }
    if req.has_authorization && !cache.allow_authorization {
        return Err(Bypass::Authorization);
    }
    if req.has_cookie && !cache.allow_cookie {
        return Err(Bypass::Cookie);
    }
    if req.drops_end_to_end {
        return Err(Bypass::HopByHop);
    }
    let spec = policy
        .as_ref()
        .map_or(&stage.default_key, |p| &p.common.key);
    // A body reaches the target, so it must be in the key, or every body (and no body) would
    // share one entry. A GET's body has no meaning (RFC 9110 §9.3.1) and is never keyed; another
    // method's is keyed only by a key that reads it (`request.content`, `request.formparam.*`).
    if req.has_body && (method == "GET" || !spec.reads_request_body()) {
        return Err(Bypass::Body);
    }
    // Stage caching forwards only the first value of each declared parameter, so its key and
    // the upstream request agree; a ResponseCache forwards the whole query.
    if policy.is_some()
        && spec
            .query_params()
            .any(|name| crate::util::query_param_count(req.query, name) > 1)
    {
        return Err(Bypass::RepeatedParameter);
    }
    let key = build_key(stage, spec, req.host, vars);
    // Apigee refuses keys over 2 KB; stage caching's keys are AWS's and have no such limit.
    if policy.is_some() && key.too_long() {
        return Err(Bypass::KeyTooLong);
    }
    if key.withheld {
        return Err(Bypass::BodyUnread);
    }
    // A body the key reads nothing of (a form without the keyed field) would share the entry of
    // requests without a body: never keyed either.
    if req.has_body && !spec.keys_request_body(vars) {
        return Err(Bypass::Body);
    }
    let skip_lookup = policy
        .as_ref()
        .and_then(|p| p.skip_cache_lookup.as_ref())
        .is_some_and(|c| c.eval(vars));
    Ok(CachePlan {
        store_key: key.store_key(),
        key: Arc::new(key),
        policy,
        skip_lookup,
        stage_ttl: fallback,
        encrypted: cache.encrypted_for(method, suffix),
    })
}

/// The key `spec` gives a request of `stage`: the one place a request's cache key is built
/// ([`plan`], and [`invalidation_key`] after an unsafe method). The `Authorization` is framed in
/// on a stage that caches authorized requests, and the client's `Host` on a stage that forwards
/// it (two hosts must not share an entry); `vars` should be [`KeyVars`] or [`AsGet`].
fn build_key(stage: &Stage, spec: &KeySpec, host: Option<&str>, vars: &dyn Variables) -> BuiltKey {
    let mut key = if stage.cache.allow_authorization {
        spec.clone().with_authorization().build(vars)
    } else {
        spec.build(vars)
    };
    if stage.preserve_host {
        key.append_extra(b'h', host);
    }
    key
}

/// Variables for the key of the GET an unsafe request's target would be cached under (RFC 9111
/// §4.4): like [`KeyVars`] for a HEAD, any method reads GET.
pub struct AsGet<'a>(pub &'a dyn Variables);

impl Variables for AsGet<'_> {
    fn get(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        match name {
            "request.verb" | "message.verb" => Some(std::borrow::Cow::Borrowed("GET")),
            _ => self.0.get(name),
        }
    }

    fn withheld(&self, name: &str) -> bool {
        self.0.withheld(name)
    }
}

/// The stage-caching key a GET of the request's target would have, for invalidating it after
/// an unsafe method (RFC 9111 §4.4). Only for http-mode stage caching: an AWS-mode key holds
/// only the declared parameters, and a ResponseCache key is whatever its `<CacheKey>` says, so
/// neither can be derived from a URI (InvalidateCache and the admin API invalidate those).
/// `None` too when a key input is a body the gateway did not read.
pub fn invalidation_key(
    stage: &Stage,
    req: &RequestFacts<'_>,
    vars: &dyn Variables,
) -> Option<BuiltKey> {
    if !(stage.cache.enabled && stage.cache.mode == CacheMode::Http) {
        return None;
    }
    let key = build_key(stage, &stage.default_key, req.host, &AsGet(vars));
    (!key.withheld).then_some(key)
}

/// Why a response is not stored (`cachegate_cache_store_rejections_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// SkipCachePopulation held.
    Skip,
    /// Status outside what is stored.
    Status,
    /// `Set-Cookie` present.
    Cookie,
    /// `Cache-Control: private`.
    Private,
    /// `Cache-Control: no-store`.
    NoStore,
    /// `Cache-Control: no-cache` outside http mode (cachegate only keeps entries that must
    /// always be revalidated when it acts as a standards cache).
    NoCache,
    /// `Vary: *`: no request can ever match the stored response.
    Vary,
    /// Body larger than `max_object_size`.
    Size,
    /// The TTL came out as zero.
    Ttl,
    /// http mode: the response says nothing about freshness and no heuristic applies.
    NoFreshness,
}

impl Reject {
    /// Label for metrics and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Skip => "skip",
            Reject::Status => "status",
            Reject::Cookie => "cookie",
            Reject::Private => "private",
            Reject::NoStore => "no_store",
            Reject::NoCache => "no_cache",
            Reject::Vary => "vary",
            Reject::Size => "size",
            Reject::Ttl => "ttl",
            Reject::NoFreshness => "no_freshness",
        }
    }
}

/// How a stored response ages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    /// Fresh for this long.
    pub ttl: Duration,
    /// Then servable stale while one background request refreshes it.
    pub stale_while_revalidate: Duration,
    /// Or servable stale when the target fails.
    pub stale_if_error: Duration,
    /// Kept (for revalidation with the target) at least this long even when not fresh: http
    /// mode keeps entries that have a validator for `[cache] revalidate_keep` past their stale
    /// windows (and `no-cache` ones, which must be revalidated on every use).
    pub keep: Duration,
    /// How old the response already was when it arrived (RFC 9111 §4.2.3 corrected initial
    /// age; http mode only, else zero): the `Age` of a hit counts from it.
    pub initial_age: Duration,
    /// Fields left out of the stored header (http mode): those a qualified `private="…"` or
    /// `no-cache="…"` names (RFC 9111 §5.2.2.4, §5.2.2.7), and cachegate's own targeted field.
    pub not_stored: Vec<http::HeaderName>,
}

/// Longest stale window accepted from a target (the stage settings have the same bound).
const MAX_STALE_SECS: u64 = 86_400;

/// Statuses a standards cache may store with heuristic freshness (RFC 9110 §15.1).
const HEURISTICALLY_CACHEABLE: &[u16] = &[200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// Decides whether a response is stored, and how it ages.
///
/// `vars` must resolve response variables (`response.status.code`, `response.header.*`) for
/// SkipCachePopulation.
pub fn store(
    plan: &CachePlan,
    stage: &Stage,
    status: u16,
    headers: &HeaderMap,
    vars: &dyn Variables,
    now: SystemTime,
    exchange: Option<Exchange>,
) -> Result<Freshness, Reject> {
    let cache = &stage.cache;
    let policy = plan.policy.as_deref();
    let http_mode = policy.is_none() && cache.mode == CacheMode::Http;
    if policy
        .and_then(|p| p.skip_cache_population.as_ref())
        .is_some_and(|c| c.eval(vars))
    {
        return Err(Reject::Skip);
    }
    // Apigee caches every status unless ExcludeErrorResponse; AWS-style stage caching never
    // stores errors (a cached 500 would be served to everyone for the whole TTL); http mode
    // follows RFC 9111 below. Partial content is never stored whole.
    let only_success = !http_mode && policy.is_none_or(|p| p.exclude_error_response);
    if only_success && !(200..=205).contains(&status)
        || !(200..=599).contains(&status)
        || status == 206
    {
        return Err(Reject::Status);
    }
    if !cache.allow_set_cookie && headers.contains_key(http::header::SET_COOKIE) {
        return Err(Reject::Cookie);
    }
    // http mode: the first targeted field (RFC 9213) the response carries replaces
    // Cache-Control and Expires; see `runtime::targeted`.
    let cc = http_mode
        .then(|| targeted::select(&cache.targeted_cache_control, headers))
        .flatten()
        .unwrap_or_else(|| ttl::cache_control(headers));
    if !cache.allow_private {
        if cc.no_store {
            return Err(Reject::NoStore);
        }
        // Outside http mode a qualified `private="x"` is read as unqualified (not stored).
        if cc.private || !http_mode && !cc.private_fields.is_empty() {
            return Err(Reject::Private);
        }
    }
    if headers.get_all(http::header::VARY).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|f| f.trim() == "*"))
    }) {
        return Err(Reject::Vary);
    }
    let too_big =
        crate::util::content_length(headers).is_some_and(|len| len > cache.max_object_size);
    if too_big {
        return Err(Reject::Size);
    }
    let stage_windows = Freshness {
        ttl: Duration::ZERO,
        stale_while_revalidate: Duration::from_secs(cache.stale_while_revalidate_secs),
        stale_if_error: Duration::from_secs(cache.stale_if_error_secs),
        keep: Duration::ZERO,
        initial_age: Duration::ZERO,
        not_stored: Vec::new(),
    };
    if http_mode {
        let initial_age = match exchange {
            Some(x) => age::corrected_initial_age(headers, x),
            None => Duration::from_secs(ttl::age_value(headers).unwrap_or(0)),
        };
        let f = Freshness {
            initial_age,
            not_stored: not_stored(&cc, cache),
            ..stage_windows
        };
        return http_freshness(status, headers, &cc, f, cache, now);
    }
    if cc.no_cache || !cc.no_cache_fields.is_empty() {
        return Err(Reject::NoCache);
    }
    let from_headers = policy
        .filter(|p| p.use_response_cache_headers)
        .and_then(|_| ttl::response_header_ttl(headers, now));
    let from_policy = || {
        policy
            .and_then(|p| p.expiry.as_ref())
            .and_then(|e| ttl::expiry_ttl(e, vars, now))
    };
    let ttl = ttl_for(from_headers.or_else(from_policy), plan.stage_ttl);
    if ttl.is_zero() {
        return Err(Reject::Ttl);
    }
    // A ResponseCache may set its own stale windows (cachegate extension elements).
    Ok(Freshness {
        ttl,
        stale_while_revalidate: policy
            .and_then(|p| p.stale_while_revalidate)
            .unwrap_or(stage_windows.stale_while_revalidate),
        stale_if_error: policy
            .and_then(|p| p.stale_if_error)
            .unwrap_or(stage_windows.stale_if_error),
        ..stage_windows
    })
}

/// The fields an http-mode entry is stored without (see [`Freshness::not_stored`]); names that
/// are not field names were already dropped by the parser.
fn not_stored(cc: &ttl::CacheControlFlags, cache: &StageCache) -> Vec<http::HeaderName> {
    cc.fields_not_stored()
        .filter_map(|f| http::HeaderName::from_bytes(f.as_bytes()).ok())
        .chain(targeted::own_field(&cache.targeted_cache_control).cloned())
        .collect()
}

/// RFC 9111 freshness for a standards-mode stage: explicit freshness (`s-maxage`, `max-age`,
/// `Expires`) minus the response's corrected initial age (`windows.initial_age`); else the 10 % Last-Modified heuristic for statuses
/// that allow it, bounded by the stage TTL; `no-cache` responses are kept but always
/// revalidated; `must-revalidate` forbids serving stale; the target's `stale-while-revalidate`
/// and `stale-if-error` directives override the stage windows.
fn http_freshness(
    status: u16,
    headers: &HeaderMap,
    cc: &ttl::CacheControlFlags,
    windows: Freshness,
    cache: &StageCache,
    now: SystemTime,
) -> Result<Freshness, Reject> {
    let stage_ttl = cache.ttl_secs;
    let header_date = |name: http::header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(ttl::parse_http_date)
    };
    let age = windows.initial_age;
    let lifetime = match ttl::explicit_lifetime(cc, headers, now) {
        Some(explicit) => explicit,
        None if HEURISTICALLY_CACHEABLE.contains(&status) => {
            let date = header_date(http::header::DATE).unwrap_or(now);
            let heuristic = header_date(http::header::LAST_MODIFIED)
                .and_then(|lm| date.duration_since(lm).ok())
                .map(|d| d / 10);
            match heuristic {
                Some(h) => h.min(Duration::from_secs(stage_ttl)),
                None if cc.no_cache => Duration::ZERO,
                None => return Err(Reject::NoFreshness),
            }
        }
        None if cc.no_cache => Duration::ZERO,
        None => return Err(Reject::NoFreshness),
    };
    let mut f = windows;
    f.ttl = ttl::cap(lifetime.saturating_sub(age));
    // The target's stale windows, bounded like the stage's own (one day).
    if let Some(s) = cc.stale_while_revalidate {
        f.stale_while_revalidate = Duration::from_secs(s.min(MAX_STALE_SECS));
    }
    if let Some(s) = cc.stale_if_error {
        f.stale_if_error = Duration::from_secs(s.min(MAX_STALE_SECS));
    }
    if cc.must_revalidate || cc.no_cache {
        f.stale_while_revalidate = Duration::ZERO;
        f.stale_if_error = Duration::ZERO;
    }
    if cc.no_cache {
        f.ttl = Duration::ZERO;
    }
    // An entry with a validator stays past its freshness and stale windows, so that it can be
    // revalidated with a conditional request (a 304 costs the target no body) rather than
    // fetched again; one that was never fresh is only worth storing if so.
    let revalidatable = headers.contains_key(http::header::ETAG)
        || headers.contains_key(http::header::LAST_MODIFIED);
    let keep = Duration::from_secs(cache.revalidate_keep_secs);
    if revalidatable && !keep.is_zero() {
        f.keep = f.ttl + f.stale_while_revalidate.max(f.stale_if_error) + keep;
    } else if f.ttl.is_zero() {
        return Err(Reject::Ttl);
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ttl_rule() {
        let s = Duration::from_secs;
        // The policy's own TTL wins.
        assert_eq!(ttl_for(Some(s(60)), 120), s(60));
        // A policy's own TTL is capped at the policy maximum.
        assert_eq!(ttl_for(Some(s(3_000)), 120), s(3_000));
        assert_eq!(
            ttl_for(Some(s(365 * 86_400)), 120),
            s(ttl::POLICY_MAX_TTL_SECS)
        );
        assert_eq!(ttl_for(Some(Duration::ZERO), 120), Duration::ZERO);
        // Else the stage TTL for the resource, else (stage TTL 0) Apigee's default.
        assert_eq!(ttl_for(None, 120), s(120));
        assert_eq!(ttl_for(None, 0), s(DEFAULT_TTL_SECS));
    }

    #[test]
    fn key_vars_read_head_as_get() {
        let mut vars = std::collections::HashMap::new();
        vars.insert("request.verb".to_owned(), "HEAD".to_owned());
        vars.insert("message.verb".to_owned(), "HEAD".to_owned());
        vars.insert("other".to_owned(), "HEAD".to_owned());
        let k = KeyVars(&vars);
        assert_eq!(k.get("request.verb").as_deref(), Some("GET"));
        assert_eq!(k.get("message.verb").as_deref(), Some("GET"));
        assert_eq!(k.get("other").as_deref(), Some("HEAD"));
    }

    #[test]
    fn as_get_reads_any_method_as_get() {
        let mut vars = std::collections::HashMap::new();
        vars.insert("request.verb".to_owned(), "M-SEARCH".to_owned());
        vars.insert("other".to_owned(), "POST".to_owned());
        let k = AsGet(&vars);
        assert_eq!(k.get("request.verb").as_deref(), Some("GET"));
        assert_eq!(k.get("message.verb").as_deref(), Some("GET"));
        assert_eq!(k.get("other").as_deref(), Some("POST"));
    }
}
