//! Cache decisions: whether a request uses the cache and with which key, and whether a response
//! is stored and for how long. Pure functions over the runtime config and request/response
//! data, so every rule is unit-testable without a server.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderMap;

use crate::cache::entry::StoreKey;
use crate::cache::key::BuiltKey;
use crate::cache::policy::ResponseCachePolicy;
use crate::cache::ttl;
use crate::config::runtime::{Flow, Stage};
use crate::flow::Variables;

/// Why a request does not use the cache (`Cache-Status: …; detail=<reason>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// No ResponseCache on the flow and stage caching off (or TTL 0).
    Off,
    /// The method is not cached (only GET/HEAD unless an override allows it).
    Method,
    /// The request carries `Authorization` and the stage does not allow caching it.
    Authorization,
}

impl Bypass {
    /// Label for headers and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Bypass::Off => "off",
            Bypass::Method => "method",
            Bypass::Authorization => "authorization",
        }
    }
}

/// A request that uses the cache.
#[derive(Debug)]
pub struct CachePlan {
    /// The ResponseCache policy, or `None` for AWS-style stage caching.
    pub policy: Option<Arc<ResponseCachePolicy>>,
    /// The built key.
    pub key: BuiltKey,
    /// Its storage hash.
    pub store_key: StoreKey,
    /// Skip the lookup and re-populate (SkipCacheLookup, or an authorized client refresh).
    pub skip_lookup: bool,
    /// TTL when neither the policy nor the response decides: override TTL, else stage TTL.
    pub fallback_ttl: Duration,
}

impl CachePlan {
    /// The policy label for metrics: the ResponseCache name, or `stage` for stage caching.
    pub fn policy_label(&self) -> &str {
        self.policy.as_ref().map_or("stage", |p| p.name.as_str())
    }
}

/// The ResponseCache attached to this request path: the first enabled ResponseCache step of
/// the pre-flow, the matched flow and the post-flow (request side) whose step condition holds.
pub fn attached_response_cache(
    stage: &Stage,
    flow: Option<&Flow>,
    vars: &dyn Variables,
) -> Option<Arc<ResponseCachePolicy>> {
    let flow_steps = flow.map(|f| f.steps.request.as_slice()).unwrap_or(&[]);
    stage
        .preflow
        .request
        .iter()
        .chain(flow_steps)
        .chain(&stage.postflow.request)
        .filter_map(|step| stage.response_caches.get(&step.policy).map(|p| (step, p)))
        .find(|(step, p)| p.enabled && step.condition.as_ref().is_none_or(|c| c.eval(vars)))
        .map(|(_, p)| Arc::clone(p))
}

/// Decides how a request uses the cache.
pub fn plan(
    stage: &Stage,
    flow: Option<&Flow>,
    method: &str,
    suffix: &str,
    has_authorization: bool,
    vars: &dyn Variables,
) -> Result<CachePlan, Bypass> {
    let cache = &stage.cache;
    let policy = attached_response_cache(stage, flow, vars);
    if policy.is_none() && !(cache.enabled && cache.ttl_secs > 0) {
        return Err(Bypass::Off);
    }
    if !cache.caching_allowed(method, suffix) {
        return Err(Bypass::Method);
    }
    if has_authorization && !cache.allow_authorization {
        return Err(Bypass::Authorization);
    }
    let spec = policy.as_ref().map_or(&stage.default_key, |p| &p.key);
    let key = if cache.allow_authorization {
        spec.clone().with_authorization().build(vars)
    } else {
        spec.build(vars)
    };
    let skip_lookup = policy
        .as_ref()
        .and_then(|p| p.skip_cache_lookup.as_ref())
        .is_some_and(|c| c.eval(vars));
    let fallback = cache.override_ttl(method, suffix).unwrap_or(cache.ttl_secs);
    Ok(CachePlan {
        store_key: key.store_key(),
        key,
        policy,
        skip_lookup,
        fallback_ttl: Duration::from_secs(fallback),
    })
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
    /// `Cache-Control: no-cache` (cachegate does not keep entries that must always be
    /// revalidated).
    NoCache,
    /// Body larger than `max_object_size`.
    Size,
    /// The TTL came out as zero.
    Ttl,
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
            Reject::Size => "size",
            Reject::Ttl => "ttl",
        }
    }
}

/// Decides whether a response is stored, and its TTL.
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
) -> Result<Duration, Reject> {
    let cache = &stage.cache;
    let policy = plan.policy.as_deref();
    if policy
        .and_then(|p| p.skip_cache_population.as_ref())
        .is_some_and(|c| c.eval(vars))
    {
        return Err(Reject::Skip);
    }
    // Apigee caches every status unless ExcludeErrorResponse; stage caching (AWS-style) never
    // stores errors — a cached 500 would be served to everyone for the whole TTL.
    let only_success = policy.is_none_or(|p| p.exclude_error_response);
    if only_success && !(200..=205).contains(&status) || !(200..=599).contains(&status) {
        return Err(Reject::Status);
    }
    if !cache.allow_set_cookie && headers.contains_key(http::header::SET_COOKIE) {
        return Err(Reject::Cookie);
    }
    let cc = ttl::cache_control(headers);
    if !cache.allow_private {
        if cc.no_store {
            return Err(Reject::NoStore);
        }
        if cc.private {
            return Err(Reject::Private);
        }
    }
    if cc.no_cache {
        return Err(Reject::NoCache);
    }
    let too_big = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|len| len > cache.max_object_size);
    if too_big {
        return Err(Reject::Size);
    }
    let from_headers = policy
        .filter(|p| p.use_response_cache_headers)
        .and_then(|_| ttl::response_header_ttl(headers, now));
    let from_policy = || {
        policy
            .and_then(|p| p.expiry.as_ref())
            .and_then(|e| ttl::expiry_ttl(e, vars, now))
    };
    let ttl = ttl::cap(
        from_headers
            .or_else(from_policy)
            .unwrap_or(plan.fallback_ttl),
    );
    if ttl.is_zero() {
        return Err(Reject::Ttl);
    }
    Ok(ttl)
}
